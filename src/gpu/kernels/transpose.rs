//! `shaders/transpose.wgsl`: `out: (cols, rows) = input: (rows, cols)ᵀ`.
//!
//! Backprop reads transposed operands in place (see `matmul.rs`); this copy is for layouts that
//! need one, and the baseline the index variants are measured against.

use crate::error::Result;
use crate::gpu::context::{Gpu, PipelineSpec};
use crate::gpu::kernels::{Dispatch, MatrixParams, Shader, bindings};

/// The transpose kernel.
#[derive(Clone, Copy, Debug)]
pub struct Transpose;

impl Transpose {
    fn layout(gpu: &Gpu, rows: usize, cols: usize) -> Result<(MatrixParams, [u32; 3])> {
        let params = MatrixParams::new("transpose shape", rows, cols, 0.0)?;
        let config = gpu.config();
        Ok((params, config.grid_1d(rows * cols, config.workgroup_size)))
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
        Dispatch::new(gpu, label, &spec, &params, &[input, out], groups)
    }

    /// Points the dispatch at a new shape.
    pub fn reshape(gpu: &Gpu, dispatch: &mut Dispatch, rows: usize, cols: usize) -> Result<()> {
        let (params, groups) = Self::layout(gpu, rows, cols)?;
        dispatch.update(gpu, &params, groups);
        Ok(())
    }
}
