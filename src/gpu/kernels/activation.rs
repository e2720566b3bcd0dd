//! `shaders/activation.wgsl`: activations as kernels of their own, forward beside backward.
//!
//! Shapes: every buffer `(rows, cols)`. Forward reads `z` and writes `a = g(z)`; backward reads
//! `a` (`z` for GELU and SiLU, [`Activation::keeps_preactivation`]) and `da` and writes
//! `dz = da ⊙ g′` (softmax: the row-wise Jacobian-vector product `a ⊙ (da − Σ_j da_j a_j)`). Softmax subtracts
//! each row's maximum before `exp`, so any finite logits give finite probabilities.
//!
//! The element-wise kernels run one invocation per element; the softmax kernels one per row,
//! looping over its `cols` (rows are batch rows and short, e.g. 10 classes; barrier-free, which
//! CPU adapters favour). The training step uses the fused forms in `matmul.wgsl` and
//! `loss.wgsl`; these are the building blocks and the unfused baseline.

use crate::error::{Error, Result};
use crate::gpu::context::{Gpu, PipelineSpec};
use crate::gpu::kernels::{
    Dispatch, MatrixParams, Shader, bindings, bound_sizes, check_operand, grid_1d_checked,
};
use crate::model::{Activation, DEFAULT_LEAKY_SLOPE};

/// Which direction of which activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActivationKernel {
    /// `a = g(z)`.
    Forward(Activation),
    /// `dz = da ⊙ g′(a)`.
    Backward(Activation),
}

impl ActivationKernel {
    const WHAT: &str = "activation shape";

    fn activation(self) -> Activation {
        match self {
            ActivationKernel::Forward(a) | ActivationKernel::Backward(a) => a,
        }
    }

    fn is_row_wise(self) -> bool {
        self.activation() == Activation::Softmax
    }

    fn spec(self) -> PipelineSpec {
        let entry_point = match (self, self.is_row_wise()) {
            (ActivationKernel::Forward(_), false) => "forward",
            (ActivationKernel::Backward(_), false) => "backward",
            (ActivationKernel::Forward(_), true) => "softmax_forward",
            (ActivationKernel::Backward(_), true) => "softmax_backward",
        };
        let constants = if self.is_row_wise() {
            vec![]
        } else {
            vec![("ACTIVATION", self.activation().wgsl_code() as f64)]
        };
        PipelineSpec {
            shader: Shader::Activation,
            entry_point,
            constants,
            storage: bindings::BINARY,
        }
    }

    fn layout(
        self,
        gpu: &Gpu,
        (rows, cols): (usize, usize),
        leaky_slope: f32,
    ) -> Result<(MatrixParams, [u32; 3])> {
        let params = MatrixParams::new(Self::WHAT, rows, cols, leaky_slope)?;
        let invocations = if self.is_row_wise() {
            rows
        } else {
            rows * cols
        };
        Ok((params, grid_1d_checked(gpu, Self::WHAT, invocations)?))
    }

    /// `sizes` in binding order: first, second, out. Forward never reads `second`.
    fn check_buffers(self, rows: usize, cols: usize, [first, second, out]: [u64; 3]) -> Result<()> {
        let len = rows * cols;
        check_operand(Self::WHAT, "first", first, len)?;
        if let ActivationKernel::Backward(_) = self {
            check_operand(Self::WHAT, "second", second, len)?;
        }
        check_operand(Self::WHAT, "out", out, len)
    }

    /// Binds `(rows, cols)` buffers: forward `first = z → out = a`, backward
    /// `first = a (z for GELU and SiLU), second = da → out = dz`. Forward never reads `second`:
    /// pass any buffer but `out`, which may not be bound as an input too. Leaky ReLU's slope is
    /// [`DEFAULT_LEAKY_SLOPE`] ([`ActivationKernel::bind_with_slope`] chooses another).
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
        let operands = [first, second, out];
        self.bind_with_slope(gpu, label, (rows, cols), DEFAULT_LEAKY_SLOPE, operands)
    }

    /// [`ActivationKernel::bind`] of a `(rows, cols)` `shape` with leaky ReLU's `leaky_slope`;
    /// `[first, second, out]` as there.
    pub fn bind_with_slope(
        self,
        gpu: &Gpu,
        label: &str,
        shape: (usize, usize),
        leaky_slope: f32,
        [first, second, out]: [&wgpu::Buffer; 3],
    ) -> Result<Dispatch> {
        let (rows, cols) = shape;
        let (params, groups) = self.layout(gpu, shape, leaky_slope)?;
        self.check_buffers(rows, cols, [first.size(), second.size(), out.size()])?;
        Dispatch::new(
            gpu,
            label,
            &self.spec(),
            &params,
            &[first, second, out],
            groups,
        )
    }

    /// Points a dispatch of the same kernel at a new shape; the bound buffers must hold it. The
    /// leaky slope is the one it was bound with.
    pub fn reshape(
        self,
        gpu: &Gpu,
        dispatch: &mut Dispatch,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        let bound: MatrixParams = dispatch.params().ok_or_else(|| {
            Error::invalid(
                "ActivationKernel reshape",
                format!(
                    "dispatch {} was not bound by ActivationKernel::bind",
                    dispatch.label()
                ),
            )
        })?;
        let (params, groups) = self.layout(gpu, (rows, cols), bound.alpha)?;
        self.check_buffers(rows, cols, bound_sizes(dispatch, "ActivationKernel")?)?;
        dispatch.update(gpu, &params, groups);
        Ok(())
    }
}
