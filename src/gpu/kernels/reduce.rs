//! `shaders/reduce.wgsl`: column sums (`db = Σ_rows δ`) and the full sum of a vector (the loss).
//!
//! [`Sum`]'s tree assumes a power-of-two `WORKGROUP_SIZE`, which [`KernelConfig`] guarantees.
//!
//! [`KernelConfig`]: crate::gpu::kernels::KernelConfig

use crate::error::Result;
use crate::gpu::context::{Gpu, PipelineSpec};
use crate::gpu::kernels::{Dispatch, MatrixParams, Shader, bindings};

fn params(what: &str, rows: usize, cols: usize) -> Result<MatrixParams> {
    MatrixParams::new(what, rows, cols, 0.0)
}

fn spec(entry_point: &'static str) -> PipelineSpec {
    PipelineSpec {
        shader: Shader::Reduce,
        entry_point,
        constants: vec![],
        storage: bindings::UNARY,
    }
}

/// `output[c] = Σ_r input[r, c]` for `input: (rows, cols)`, `output: (cols)`.
#[derive(Clone, Copy, Debug)]
pub struct ColumnSum;

impl ColumnSum {
    fn layout(gpu: &Gpu, rows: usize, cols: usize) -> Result<(MatrixParams, [u32; 3])> {
        let config = gpu.config();
        Ok((
            params("column sum shape", rows, cols)?,
            config.grid_1d(cols, config.workgroup_size),
        ))
    }

    /// Binds `input: (rows, cols)` and `output: (cols)`.
    pub fn bind(
        gpu: &Gpu,
        label: &str,
        rows: usize,
        cols: usize,
        input: &wgpu::Buffer,
        output: &wgpu::Buffer,
    ) -> Result<Dispatch> {
        let (params, groups) = Self::layout(gpu, rows, cols)?;
        Dispatch::new(
            gpu,
            label,
            &spec("column_sum"),
            &params,
            &[input, output],
            groups,
        )
    }

    /// Points the dispatch at a new shape.
    pub fn reshape(gpu: &Gpu, dispatch: &mut Dispatch, rows: usize, cols: usize) -> Result<()> {
        let (params, groups) = Self::layout(gpu, rows, cols)?;
        dispatch.update(gpu, &params, groups);
        Ok(())
    }
}

/// `output[0] = Σ input[0 .. len]`, in one workgroup.
#[derive(Clone, Copy, Debug)]
pub struct Sum;

impl Sum {
    /// Binds `input: (len)` and `output: (1)`.
    pub fn bind(
        gpu: &Gpu,
        label: &str,
        len: usize,
        input: &wgpu::Buffer,
        output: &wgpu::Buffer,
    ) -> Result<Dispatch> {
        Dispatch::new(
            gpu,
            label,
            &spec("sum"),
            &params("sum length", 1, len)?,
            &[input, output],
            [1, 1, 1],
        )
    }

    /// Points the dispatch at a new length.
    pub fn reshape(gpu: &Gpu, dispatch: &mut Dispatch, len: usize) -> Result<()> {
        dispatch.update(gpu, &params("sum length", 1, len)?, [1, 1, 1]);
        Ok(())
    }
}
