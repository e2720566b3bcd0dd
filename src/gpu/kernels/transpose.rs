//! `shaders/transpose.wgsl`: `out: (cols, rows) = input: (rows, cols)ᵀ`.
//!
//! Backprop reads transposed operands in place (see the `matmul` module); this copy is for layouts that
//! need one, and the baseline the index variants are measured against.
//!
//! The kernel is the barrier-free one: one invocation per output element, writes contiguous,
//! reads strided. The classic shared-memory tiled transpose makes both sides contiguous on a
//! GPU, but its workgroup barriers are what a CPU adapter (lavapipe) pays most for, and a copy
//! that is off the training path is not worth a second kernel per adapter kind.

use crate::error::Result;
use crate::gpu::context::{Gpu, PipelineSpec};
use crate::gpu::kernels::{
    Dispatch, MatrixParams, Shader, bindings, bound_sizes, check_operand, grid_1d_checked,
};

/// The transpose kernel.
#[derive(Clone, Copy, Debug)]
pub struct Transpose;

impl Transpose {
    const WHAT: &str = "transpose shape";

    fn layout(gpu: &Gpu, rows: usize, cols: usize) -> Result<(MatrixParams, [u32; 3])> {
        let params = MatrixParams::new(Self::WHAT, rows, cols, 0.0)?;
        Ok((params, grid_1d_checked(gpu, Self::WHAT, rows * cols)?))
    }

    /// `sizes` in binding order: input, out.
    fn check_buffers(rows: usize, cols: usize, [input, out]: [u64; 2]) -> Result<()> {
        check_operand(Self::WHAT, "input", input, rows * cols)?;
        check_operand(Self::WHAT, "out", out, rows * cols)
    }

    /// Binds `input: (rows, cols)` and `out: (cols, rows)`.
    pub fn bind(
        gpu: &Gpu,
        label: &str,
        rows: usize,
        cols: usize,
        input: &wgpu::Buffer,
        out: &wgpu::Buffer,
    ) -> Result<Dispatch> {
        let spec = PipelineSpec {
            shader: Shader::Transpose,
            entry_point: "transpose",
            constants: vec![],
            storage: bindings::UNARY,
        };
        let (params, groups) = Self::layout(gpu, rows, cols)?;
        Self::check_buffers(rows, cols, [input.size(), out.size()])?;
        Dispatch::new(gpu, label, &spec, &params, &[input, out], groups)
    }

    /// Points the dispatch at a new shape; the bound buffers must hold it.
    pub fn reshape(gpu: &Gpu, dispatch: &mut Dispatch, rows: usize, cols: usize) -> Result<()> {
        let (params, groups) = Self::layout(gpu, rows, cols)?;
        Self::check_buffers(rows, cols, bound_sizes(dispatch, "Transpose")?)?;
        dispatch.update(gpu, &params, groups);
        Ok(())
    }
}
