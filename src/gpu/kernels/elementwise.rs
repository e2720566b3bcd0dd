//! `shaders/elementwise.wgsl`: the Hadamard product, the bias add and axpy over `(rows, cols)`.
//!
//! Shapes: `first, out: (rows, cols)`; `second: (rows, cols)`, or `(cols)` for the bias add.

use crate::error::Result;
use crate::gpu::context::{Gpu, PipelineSpec};
use crate::gpu::kernels::{Dispatch, MatrixParams, Shader, bindings};

/// An element-wise operation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Elementwise {
    /// `out = first ⊙ second`.
    Hadamard,
    /// `out[r, c] = first[r, c] + second[c]`.
    BiasAdd,
    /// `out = alpha·first + second`.
    Axpy(f32),
}

impl Elementwise {
    fn layout(self, gpu: &Gpu, rows: usize, cols: usize) -> Result<(MatrixParams, [u32; 3])> {
        let alpha = if let Elementwise::Axpy(alpha) = self {
            alpha
        } else {
            0.0
        };
        let params = MatrixParams::new("elementwise shape", rows, cols, alpha)?;
        let config = gpu.config();
        Ok((params, config.grid_1d(rows * cols, config.workgroup_size)))
    }

    /// Binds `first`, `second` and `out` for a `(rows, cols)` operation.
    #[allow(clippy::too_many_arguments)]
    pub fn bind(
        self,
        gpu: &Gpu,
        label: &str,
        rows: usize,
        cols: usize,
        first: &wgpu::Buffer,
        second: &wgpu::Buffer,
        out: &wgpu::Buffer,
    ) -> Result<Dispatch> {
        let entry_point = match self {
            Elementwise::Hadamard => "hadamard",
            Elementwise::BiasAdd => "bias_add",
            Elementwise::Axpy(_) => "axpy",
        };
        let spec = PipelineSpec {
            shader: Shader::Elementwise,
            entry_point,
            constants: vec![],
            storage: bindings::BINARY,
        };
        let (params, groups) = self.layout(gpu, rows, cols)?;
        Dispatch::new(gpu, label, &spec, &params, &[first, second, out], groups)
    }

    /// Points the dispatch at a new shape (and, for axpy, a new alpha).
    pub fn reshape(
        self,
        gpu: &Gpu,
        dispatch: &mut Dispatch,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        let (params, groups) = self.layout(gpu, rows, cols)?;
        dispatch.update(gpu, &params, groups);
        Ok(())
    }
}
