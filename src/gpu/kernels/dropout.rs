//! `shaders/dropout.wgsl`: inverted dropout of a `(rows, cols)` matrix in place, with the mask
//! regenerated from the Philox generator and the step counter ([`crate::dropout`] is the rule).
//!
//! Shapes: `values: (rows, cols)`, `counters: [steps taken, …]`, and for
//! [`DropoutKernel::Keeping`] `undropped: (rows, cols)`, which receives the values before the mask.

use crate::dropout::keep_scale;
use crate::error::Result;
use crate::gpu::context::{Access, Gpu, PipelineSpec};
use crate::gpu::kernels::{Dispatch, MatrixParams, Shader, check_operand, grid_1d_checked};

/// `values, counters, undropped`.
const VALUES_COUNTERS_UNDROPPED: &[Access] = &[Access::ReadWrite, Access::Read, Access::ReadWrite];

/// One dropout site: where its units sit in the counter, and their probability.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DropoutSite {
    /// 0 for the input, `l + 1` for hidden layer `l`.
    pub site: usize,
    /// The probability of dropping a unit, in `(0, 1)`.
    pub p: f32,
    /// `philox_key(seed)`.
    pub key: [u32; 2],
}

/// The uniform block of `dropout.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct DropoutParams {
    rows: u32,
    cols: u32,
    site: u32,
    p: f32,
    scale: f32,
    _pad: u32,
    key: [u32; 2],
}

/// Which form of dropout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropoutKernel {
    /// `values ← values ⊙ mask`: the input in forward, and `δ` in backward.
    InPlace,
    /// `undropped ← values`, then `values ← values ⊙ mask`: a hidden activation in forward.
    Keeping,
}

impl DropoutKernel {
    const WHAT: &str = "dropout shape";

    fn spec(self) -> PipelineSpec {
        let (entry_point, storage) = match self {
            DropoutKernel::InPlace => ("dropout_in_place", &VALUES_COUNTERS_UNDROPPED[..2]),
            DropoutKernel::Keeping => ("dropout_keeping", VALUES_COUNTERS_UNDROPPED),
        };
        PipelineSpec {
            shader: Shader::Dropout,
            entry_point,
            constants: vec![],
            storage,
        }
    }

    fn layout(
        gpu: &Gpu,
        site: DropoutSite,
        rows: usize,
        cols: usize,
    ) -> Result<(DropoutParams, [u32; 3])> {
        // Checks the shape as every matrix kernel does.
        MatrixParams::new(Self::WHAT, rows, cols, 0.0)?;
        let params = DropoutParams {
            rows: rows as u32,
            cols: cols as u32,
            site: site.site as u32,
            p: site.p,
            scale: keep_scale(site.p),
            _pad: 0,
            key: site.key,
        };
        Ok((params, grid_1d_checked(gpu, Self::WHAT, rows * cols)?))
    }

    fn check_buffers(rows: usize, sizes: &[u64], cols: usize) -> Result<()> {
        check_operand(Self::WHAT, "values", sizes[0], rows * cols)?;
        check_operand(Self::WHAT, "counters", sizes[1], 1)?;
        match sizes.get(2) {
            Some(&undropped) => check_operand(Self::WHAT, "undropped", undropped, rows * cols),
            None => Ok(()),
        }
    }

    /// Binds `values`, the network's `counters` and, for [`DropoutKernel::Keeping`], `undropped`
    /// (ignored otherwise).
    #[allow(clippy::too_many_arguments)]
    pub fn bind(
        self,
        gpu: &Gpu,
        label: &str,
        site: DropoutSite,
        (rows, cols): (usize, usize),
        values: &wgpu::Buffer,
        counters: &wgpu::Buffer,
        undropped: &wgpu::Buffer,
    ) -> Result<Dispatch> {
        let (params, groups) = Self::layout(gpu, site, rows, cols)?;
        let buffers: &[&wgpu::Buffer] = match self {
            DropoutKernel::InPlace => &[values, counters],
            DropoutKernel::Keeping => &[values, counters, undropped],
        };
        let sizes: Vec<u64> = buffers.iter().map(|b| b.size()).collect();
        Self::check_buffers(rows, &sizes, cols)?;
        Dispatch::new(gpu, label, &self.spec(), &params, buffers, groups)
    }

    /// Points a dispatch made by [`DropoutKernel::bind`] at `rows` rows of the buffers it is bound
    /// to, which must hold them.
    pub fn reshape_rows(gpu: &Gpu, dispatch: &mut Dispatch, rows: usize) -> Result<()> {
        let Some(old) = dispatch.params::<DropoutParams>() else {
            return Err(crate::Error::invalid(
                "DropoutKernel reshape",
                format!(
                    "dispatch {} was not bound by DropoutKernel::bind",
                    dispatch.label()
                ),
            ));
        };
        let site = DropoutSite {
            site: old.site as usize,
            p: old.p,
            key: old.key,
        };
        let cols = old.cols as usize;
        let (params, groups) = Self::layout(gpu, site, rows, cols)?;
        let sizes = dispatch.buffer_sizes().to_vec();
        Self::check_buffers(rows, &sizes, cols)?;
        dispatch.update(gpu, &params, groups);
        Ok(())
    }
}
