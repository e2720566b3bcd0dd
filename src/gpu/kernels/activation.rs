//! `shaders/activation.wgsl`: activations as kernels of their own, forward beside backward.
//!
//! Shapes: every buffer `(rows, cols)`. Forward reads `z` and writes `a = g(z)`; backward reads
//! `a` and `da` and writes `dz = da ⊙ g′(a)` (softmax: the row-wise Jacobian-vector product
//! `a ⊙ (da − Σ da·a)`). The training step uses the fused forms in `matmul.wgsl` and
//! `loss.wgsl`; these are the building blocks and the unfused baseline.

use crate::error::Result;
use crate::gpu::context::{Gpu, PipelineSpec};
use crate::gpu::kernels::{Dispatch, MatrixParams, Shader, bindings};
use crate::model::Activation;

/// Which direction of which activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActivationKernel {
    /// `a = g(z)`.
    Forward(Activation),
    /// `dz = da ⊙ g′(a)`.
    Backward(Activation),
}

impl ActivationKernel {
    fn activation(self) -> Activation {
        match self {
            ActivationKernel::Forward(a) | ActivationKernel::Backward(a) => a,
        }
    }

    fn spec(self) -> PipelineSpec {
        let softmax = self.activation() == Activation::Softmax;
        let entry_point = match (self, softmax) {
            (ActivationKernel::Forward(_), false) => "forward",
            (ActivationKernel::Backward(_), false) => "backward",
            (ActivationKernel::Forward(_), true) => "softmax_forward",
            (ActivationKernel::Backward(_), true) => "softmax_backward",
        };
        let constants = if softmax {
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

    fn layout(self, gpu: &Gpu, rows: usize, cols: usize) -> Result<(MatrixParams, [u32; 3])> {
        let params = MatrixParams::new("activation shape", rows, cols, 0.0)?;
        // Softmax runs one invocation per row, the others one per element.
        let items = if self.activation() == Activation::Softmax {
            rows
        } else {
            rows * cols
        };
        let config = gpu.config();
        Ok((params, config.grid_1d(items, config.workgroup_size)))
    }

    /// Binds `(rows, cols)` buffers: forward `z → out`, backward `a, da → out` (`second` is
    /// ignored by the forward kernels; pass any buffer).
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
        let (params, groups) = self.layout(gpu, rows, cols)?;
        Dispatch::new(
            gpu,
            label,
            &self.spec(),
            &params,
            &[first, second, out],
            groups,
        )
    }

    /// Points the dispatch at a new shape.
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
