//! `shaders/optim.wgsl`: one update dispatch per layer (SGD, momentum, Adam or AdamW, with weight
//! decay), the per-step counter the updates and the data gather read, and gradient-norm clipping
//! ([`ClipNorm`]) between the backward pass and the updates.
//!
//! Shapes: `weight, dweight: (out, in)`, `bias, dbias: (out)`, `moment1, moment2:
//! (out·in + out)` (weight entries, then bias entries; one element when the rule keeps none),
//! `counters: (2)` = `[steps taken, data cursor]`, `clip: (1 + layers)` = `[scale, Σ g² per
//! layer…]`.

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::context::{Access, Gpu, PipelineSpec};
use crate::gpu::kernels::{Dispatch, Shader};
use crate::optim::{Optimizer, OptimizerConfig};

/// Bindings after the uniform: weight, dweight, bias, dbias, moment1, moment2, counters, clip.
const STORAGE: &[Access] = &[
    Access::ReadWrite,
    Access::Read,
    Access::ReadWrite,
    Access::Read,
    Access::ReadWrite,
    Access::ReadWrite,
    Access::ReadWrite,
    Access::ReadWrite,
];

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
struct OptimParams {
    weight_len: u32,
    bias_len: u32,
    learning_rate: f32,
    weight_decay: f32,
    beta1: f32,
    beta2: f32,
    epsilon: f32,
    rows: u32,
    log_beta1: f32,
    log_beta2: f32,
    max_norm: f32,
    layer: u32,
}

/// A layer's parameters, gradients and optimizer state, as the update binds them.
#[derive(Clone, Copy, Debug)]
pub struct UpdateBuffers<'a> {
    /// `(out, in)`.
    pub weight: &'a wgpu::Buffer,
    /// `(out, in)`.
    pub dweight: &'a wgpu::Buffer,
    /// `(out)`.
    pub bias: &'a wgpu::Buffer,
    /// `(out)`.
    pub dbias: &'a wgpu::Buffer,
    /// Velocity or Adam's first moment, `(out·in + out)`.
    pub moment1: &'a wgpu::Buffer,
    /// Adam's second moment, `(out·in + out)`.
    pub moment2: &'a wgpu::Buffer,
    /// `[steps taken, data cursor]`.
    pub counters: &'a wgpu::Buffer,
    /// `[gradient scale, Σ g² of each layer…]`, `(1 + layers)`.
    pub clip: &'a wgpu::Buffer,
}

impl UpdateBuffers<'_> {
    fn list(&self) -> [&wgpu::Buffer; 8] {
        [
            self.weight,
            self.dweight,
            self.bias,
            self.dbias,
            self.moment1,
            self.moment2,
            self.counters,
            self.clip,
        ]
    }
}

/// One layer's update by an [`OptimizerConfig`].
#[derive(Clone, Copy, Debug)]
pub struct Update {
    /// The rule and its hyper-parameters.
    pub config: OptimizerConfig,
    /// The gradient-norm threshold [`ClipNorm`] scales the gradients to, if any.
    pub clip_norm: Option<f32>,
}

impl Update {
    fn layout(
        &self,
        gpu: &Gpu,
        weight_len: usize,
        bias_len: usize,
    ) -> Result<(OptimParams, [u32; 3])> {
        self.config.validate()?;
        let total = weight_len + bias_len;
        if u32::try_from(total).is_err() {
            return Err(Error::invalid(
                "update size",
                format!("{total} parameters exceed 32-bit indexing"),
            ));
        }
        let (beta1, beta2, epsilon) = match self.config.optimizer {
            Optimizer::Sgd => (0.0, 0.0, 0.0),
            Optimizer::Momentum { momentum } => (momentum, 0.0, 0.0),
            Optimizer::Adam {
                beta1,
                beta2,
                epsilon,
            }
            | Optimizer::AdamW {
                beta1,
                beta2,
                epsilon,
            } => (beta1, beta2, epsilon),
        };
        let params = OptimParams {
            weight_len: weight_len as u32,
            bias_len: bias_len as u32,
            learning_rate: self.config.learning_rate,
            weight_decay: self.config.weight_decay,
            beta1,
            beta2,
            epsilon,
            rows: 0,
            log_beta1: (beta1 as f64).ln() as f32,
            log_beta2: (beta2 as f64).ln() as f32,
            max_norm: self.clip_norm.unwrap_or(0.0),
            layer: 0,
        };
        let config = gpu.config();
        Ok((params, config.grid_1d(total, config.workgroup_size)))
    }

    /// Binds one layer of `weight_len` weights and `bias_len` biases.
    pub fn bind(
        &self,
        gpu: &Gpu,
        label: &str,
        buffers: &UpdateBuffers<'_>,
        weight_len: usize,
        bias_len: usize,
    ) -> Result<Dispatch> {
        let (params, groups) = self.layout(gpu, weight_len, bias_len)?;
        let spec = PipelineSpec {
            shader: Shader::Optim,
            entry_point: self.config.optimizer.name(),
            constants: vec![],
            storage: STORAGE,
        };
        Dispatch::new(gpu, label, &spec, &params, &buffers.list(), groups)
    }

    /// Rewrites a bound update for new hyper-parameters of the same rule (a new learning rate).
    pub fn reconfigure(
        &self,
        gpu: &Gpu,
        dispatch: &mut Dispatch,
        weight_len: usize,
        bias_len: usize,
    ) -> Result<()> {
        let (params, groups) = self.layout(gpu, weight_len, bias_len)?;
        dispatch.update(gpu, &params, groups);
        Ok(())
    }
}

/// Counts a step and moves the data cursor by `rows`: one invocation, once per step.
#[derive(Clone, Copy, Debug)]
pub struct Advance;

impl Advance {
    /// Binds `buffers.counters` (the other buffers are only there to fill the shared layout).
    pub fn bind(
        gpu: &Gpu,
        label: &str,
        buffers: &UpdateBuffers<'_>,
        rows: usize,
    ) -> Result<Dispatch> {
        let params = OptimParams {
            rows: rows as u32,
            ..Default::default()
        };
        let spec = PipelineSpec {
            shader: Shader::Optim,
            entry_point: "advance",
            constants: vec![],
            storage: STORAGE,
        };
        Dispatch::new(gpu, label, &spec, &params, &buffers.list(), [1, 1, 1])
    }

    /// Changes the rows per step.
    pub fn reshape(gpu: &Gpu, dispatch: &mut Dispatch, rows: usize) {
        dispatch.update(
            gpu,
            &OptimParams {
                rows: rows as u32,
                ..Default::default()
            },
            [1, 1, 1],
        );
    }
}

/// `torch.nn.utils.clip_grad_norm_` on the GPU: one `square_sum` dispatch per layer, then one
/// `clip_scale` that leaves the scale in `clip[0]` for the updates, with nothing read back.
#[derive(Clone, Copy, Debug)]
pub struct ClipNorm {
    /// The largest global L2 norm the gradients may keep.
    pub max_norm: f32,
}

impl ClipNorm {
    fn spec(entry_point: &'static str) -> PipelineSpec {
        PipelineSpec {
            shader: Shader::Optim,
            entry_point,
            constants: vec![],
            storage: STORAGE,
        }
    }

    /// Binds the sum of squares of layer `layer`'s gradients (`weight_len` weights and
    /// `bias_len` biases) into `clip[1 + layer]`.
    pub fn bind_square_sum(
        &self,
        gpu: &Gpu,
        label: &str,
        buffers: &UpdateBuffers<'_>,
        layer: usize,
        weight_len: usize,
        bias_len: usize,
    ) -> Result<Dispatch> {
        let params = OptimParams {
            weight_len: weight_len as u32,
            bias_len: bias_len as u32,
            max_norm: self.max_norm,
            layer: layer as u32,
            ..Default::default()
        };
        let spec = Self::spec("square_sum");
        Dispatch::new(gpu, label, &spec, &params, &buffers.list(), [1, 1, 1])
    }

    /// Binds the scale of `layers` layers' gradients into `clip[0]`.
    pub fn bind_scale(
        &self,
        gpu: &Gpu,
        label: &str,
        buffers: &UpdateBuffers<'_>,
        layers: usize,
    ) -> Result<Dispatch> {
        let params = OptimParams {
            max_norm: self.max_norm,
            layer: layers as u32,
            ..Default::default()
        };
        let spec = Self::spec("clip_scale");
        Dispatch::new(gpu, label, &spec, &params, &buffers.list(), [1, 1, 1])
    }
}
