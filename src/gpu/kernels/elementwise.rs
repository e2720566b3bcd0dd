//! `shaders/elementwise.wgsl`: the Hadamard product, the bias add, axpy and scaling over
//! `(rows, cols)`, one invocation per element.
//!
//! Shapes: [`Elementwise`] reads `first: (rows, cols)` and `second: (rows, cols)` (`(cols)` for
//! the bias add) and writes `out: (rows, cols)`; [`Update`] reads `x: (rows, cols)` and writes
//! (axpy: reads and writes) `y: (rows, cols)`.

use crate::error::Result;
use crate::gpu::context::{Access, Gpu, PipelineSpec};
use crate::gpu::kernels::{
    Dispatch, MatrixParams, Shader, bindings, bound_sizes, check_operand, grid_1d_checked,
};

/// `first, out, second`: the two inputs of [`Elementwise`] around its output, so that
/// [`Update`]'s `x, y` are the prefix [`bindings::UNARY`] of the same shader's bindings.
const FIRST_OUT_SECOND: &[Access] = &[Access::Read, Access::ReadWrite, Access::Read];

/// One matrix shape as the uniform block, and the grid of one invocation per element.
fn layout(
    gpu: &Gpu,
    what: &str,
    rows: usize,
    cols: usize,
    alpha: f32,
) -> Result<(MatrixParams, [u32; 3])> {
    let params = MatrixParams::new(what, rows, cols, alpha)?;
    Ok((params, grid_1d_checked(gpu, what, rows * cols)?))
}

/// An element-wise operation of two inputs into a third buffer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Elementwise {
    /// `out = first ⊙ second`, all `(rows, cols)`.
    Hadamard,
    /// `out[r, c] = first[r, c] + second[c]`, with `second: (cols)`.
    BiasAdd,
    /// `out = alpha·first + second`, all `(rows, cols)` (axpy written out of place).
    Axpy(f32),
}

impl Elementwise {
    const WHAT: &str = "elementwise shape";

    fn alpha(self) -> f32 {
        match self {
            Elementwise::Axpy(alpha) => alpha,
            Elementwise::Hadamard | Elementwise::BiasAdd => 0.0,
        }
    }

    fn spec(self) -> PipelineSpec {
        let entry_point = match self {
            Elementwise::Hadamard => "hadamard",
            Elementwise::BiasAdd => "bias_add",
            Elementwise::Axpy(_) => "axpy",
        };
        PipelineSpec {
            shader: Shader::Elementwise,
            entry_point,
            constants: vec![],
            storage: FIRST_OUT_SECOND,
        }
    }

    /// `sizes` in binding order: first, out, second.
    fn check_buffers(self, rows: usize, cols: usize, [first, out, second]: [u64; 3]) -> Result<()> {
        let len = rows * cols;
        let second_len = if self == Elementwise::BiasAdd {
            cols
        } else {
            len
        };
        check_operand(Self::WHAT, "first", first, len)?;
        check_operand(Self::WHAT, "second", second, second_len)?;
        check_operand(Self::WHAT, "out", out, len)
    }

    /// Binds `first`, `second` and `out` (shapes on [`Elementwise`]'s variants); `out` must be a
    /// buffer of its own (in-place axpy is [`Update::Axpy`]).
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
        let (params, groups) = layout(gpu, Self::WHAT, rows, cols, self.alpha())?;
        self.check_buffers(rows, cols, [first.size(), out.size(), second.size()])?;
        Dispatch::new(
            gpu,
            label,
            &self.spec(),
            &params,
            &[first, out, second],
            groups,
        )
    }

    /// Points a dispatch of the same operation at a new shape (and, for axpy, a new alpha); the
    /// bound buffers must hold it.
    pub fn reshape(
        self,
        gpu: &Gpu,
        dispatch: &mut Dispatch,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        let (params, groups) = layout(gpu, Self::WHAT, rows, cols, self.alpha())?;
        self.check_buffers(rows, cols, bound_sizes(dispatch, "Elementwise")?)?;
        dispatch.update(gpu, &params, groups);
        Ok(())
    }
}

/// An update of `y: (rows, cols)` from `x: (rows, cols)` and a scalar.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Update {
    /// `y ← y + alpha·x` (BLAS axpy, in place).
    Axpy(f32),
    /// `y ← alpha·x` (`y`'s old values are not read).
    Scale(f32),
}

impl Update {
    const WHAT: &str = "update shape";

    fn alpha(self) -> f32 {
        match self {
            Update::Axpy(alpha) | Update::Scale(alpha) => alpha,
        }
    }

    fn spec(self) -> PipelineSpec {
        let entry_point = match self {
            Update::Axpy(_) => "add_scaled",
            Update::Scale(_) => "scale",
        };
        PipelineSpec {
            shader: Shader::Elementwise,
            entry_point,
            constants: vec![],
            storage: bindings::UNARY,
        }
    }

    fn check_buffers(rows: usize, cols: usize, [x, y]: [u64; 2]) -> Result<()> {
        check_operand(Self::WHAT, "x", x, rows * cols)?;
        check_operand(Self::WHAT, "y", y, rows * cols)
    }

    /// Binds `x` (read) and `y` (written; for axpy also read); they must be different buffers.
    pub fn bind(
        self,
        gpu: &Gpu,
        label: &str,
        rows: usize,
        cols: usize,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
    ) -> Result<Dispatch> {
        let (params, groups) = layout(gpu, Self::WHAT, rows, cols, self.alpha())?;
        Self::check_buffers(rows, cols, [x.size(), y.size()])?;
        Dispatch::new(gpu, label, &self.spec(), &params, &[x, y], groups)
    }

    /// Points a dispatch of the same update at a new shape and this alpha; the bound buffers must
    /// hold the shape.
    pub fn reshape(
        self,
        gpu: &Gpu,
        dispatch: &mut Dispatch,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        let (params, groups) = layout(gpu, Self::WHAT, rows, cols, self.alpha())?;
        Self::check_buffers(rows, cols, bound_sizes(dispatch, "Update")?)?;
        dispatch.update(gpu, &params, groups);
        Ok(())
    }
}
