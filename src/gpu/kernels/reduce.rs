//! `shaders/reduce.wgsl`: column sums (`db = Σ_rows δ`) and the full sum of a vector (the loss).
//!
//! [`ColumnSum`] runs once per layer per step on a `(batch, outputs)` matrix. On a CPU adapter it
//! runs one invocation per column walking down the rows, barrier-free, as the columns alone fill
//! its cores; on a GPU, where they would not, a workgroup splits each column's rows over 8 rows
//! of invocations ([`KernelConfig::split_column_sums`]).
//! [`Sum`] runs one workgroup that strides over the whole input and finishes with a tree in
//! workgroup memory, which assumes a power-of-two `WORKGROUP_SIZE` ([`KernelConfig`] guarantees
//! one); it sums a batch's losses, so one workgroup is plenty. Both sum in blocks of 64 terms to
//! keep the rounding error of long sums small, and both are deterministic.
//!
//! [`KernelConfig`]: crate::gpu::kernels::KernelConfig
//! [`KernelConfig::split_column_sums`]: crate::gpu::kernels::KernelConfig::split_column_sums

use crate::error::Result;
use crate::gpu::context::{Gpu, PipelineSpec};
use crate::gpu::kernels::{
    Dispatch, MatrixParams, Shader, bindings, bound_sizes, check_operand, grid_checked,
};

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
    const WHAT: &str = "column sum shape";

    /// Columns per workgroup of `column_sum_split` (`SPLIT_COLS` in reduce.wgsl).
    const SPLIT_COLS: u32 = 32;

    /// The entry point this adapter gets.
    fn entry_point(gpu: &Gpu) -> &'static str {
        if gpu.config().split_column_sums {
            "column_sum_split"
        } else {
            "column_sum"
        }
    }

    /// The columns one workgroup sums on `gpu`: what sizes the grid, and so the widest matrix
    /// that fits the adapter's workgroup limits.
    pub fn columns_per_workgroup(gpu: &Gpu) -> u32 {
        if gpu.config().split_column_sums {
            Self::SPLIT_COLS
        } else {
            gpu.config().workgroup_size
        }
    }

    fn layout(gpu: &Gpu, rows: usize, cols: usize) -> Result<(MatrixParams, [u32; 3])> {
        let params = MatrixParams::new(Self::WHAT, rows, cols, 0.0)?;
        let groups = grid_checked(gpu, Self::WHAT, cols, Self::columns_per_workgroup(gpu))?;
        Ok((params, groups))
    }

    /// `sizes` in binding order: input, output.
    fn check_buffers(rows: usize, cols: usize, [input, output]: [u64; 2]) -> Result<()> {
        check_operand(Self::WHAT, "input", input, rows * cols)?;
        check_operand(Self::WHAT, "output", output, cols)
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
        Self::check_buffers(rows, cols, [input.size(), output.size()])?;
        Dispatch::new(
            gpu,
            label,
            &spec(Self::entry_point(gpu)),
            &params,
            &[input, output],
            groups,
        )
    }

    /// Points the dispatch at a new shape; the bound buffers must hold it.
    pub fn reshape(gpu: &Gpu, dispatch: &mut Dispatch, rows: usize, cols: usize) -> Result<()> {
        let (params, groups) = Self::layout(gpu, rows, cols)?;
        Self::check_buffers(rows, cols, bound_sizes(dispatch, "ColumnSum")?)?;
        dispatch.update(gpu, &params, groups);
        Ok(())
    }
}

/// `output[0] = Σ input[0 .. len]` for `input: (len)`, `output: (1)`, in one workgroup.
#[derive(Clone, Copy, Debug)]
pub struct Sum;

impl Sum {
    const WHAT: &str = "sum length";

    /// The shader sums `rows · cols` values: one row of `len`.
    fn params(len: usize) -> Result<MatrixParams> {
        MatrixParams::new(Self::WHAT, 1, len, 0.0)
    }

    /// `sizes` in binding order: input, output.
    fn check_buffers(len: usize, [input, output]: [u64; 2]) -> Result<()> {
        check_operand(Self::WHAT, "input", input, len)?;
        check_operand(Self::WHAT, "output", output, 1)
    }

    /// Binds `input: (len)` and `output: (1)`.
    pub fn bind(
        gpu: &Gpu,
        label: &str,
        len: usize,
        input: &wgpu::Buffer,
        output: &wgpu::Buffer,
    ) -> Result<Dispatch> {
        let params = Self::params(len)?;
        Self::check_buffers(len, [input.size(), output.size()])?;
        Dispatch::new(
            gpu,
            label,
            &spec("sum"),
            &params,
            &[input, output],
            [1, 1, 1],
        )
    }

    /// Points the dispatch at a new length; the bound input must hold it.
    pub fn reshape(gpu: &Gpu, dispatch: &mut Dispatch, len: usize) -> Result<()> {
        let params = Self::params(len)?;
        Self::check_buffers(len, bound_sizes(dispatch, "Sum")?)?;
        dispatch.update(gpu, &params, [1, 1, 1]);
        Ok(())
    }
}
