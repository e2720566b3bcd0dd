//! `shaders/optim.wgsl`: one update dispatch per layer (SGD, momentum, Adam or AdamW, with weight
//! decay), or one per tensor on a device that binds four storage buffers per stage, the per-step
//! counter the updates and the data gather read, and gradient-norm clipping ([`ClipNorm`])
//! between the backward pass and the updates.
//!
//! Shapes: `weight, dweight: (out, in)`, `bias, dbias: (out)`; the moments as
//! [`MomentLayout`] places them, each `(out·in + out)` (its weight entries, then its bias
//! entries; a buffer holding none is one element); `counters: (3 + layers)` = `[steps taken,
//! data cursor, scale, Σ g² per layer…]` (the last as f32 bits; [`counters_len`]).

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::context::{Access, Gpu, PipelineSpec};
use crate::gpu::kernels::{Dispatch, Shader};
use crate::optim::{Optimizer, OptimizerConfig};

use Access::{Read, ReadWrite, Unused};

/// Bindings after the uniform: weight, dweight, bias, dbias, moments, second_moments, counters.
pub(crate) const STORAGE: &[Access] = &[
    ReadWrite, Read, ReadWrite, Read, ReadWrite, ReadWrite, ReadWrite,
];

/// `update_tensor`'s: one tensor (at weight and dweight), both moments in `moments`, counters.
const TENSOR_STORAGE: &[Access] = &[
    ReadWrite, Read, Unused, Unused, ReadWrite, Unused, ReadWrite,
];

/// `square_sum`'s: the gradients and counters.
const SQUARES_STORAGE: &[Access] = &[Unused, Read, Unused, Read, Unused, Unused, ReadWrite];

/// `advance`'s and `clip_scale`'s: counters.
const COUNTERS_STORAGE: &[Access] = &[Unused, Unused, Unused, Unused, Unused, Unused, ReadWrite];

/// Where a layer's optimizer moments live: each in its own buffer where the device binds the
/// fused update's seven storage buffers, so a moment may be as large as a binding; both in one
/// buffer where it binds four and updates a tensor at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MomentLayout {
    /// The first moment in `moments`, the second in `second_moments`.
    Separate,
    /// The first moment then the second in `moments`.
    Shared,
}

impl MomentLayout {
    /// The layout of `gpu`'s update.
    pub fn of(gpu: &Gpu) -> MomentLayout {
        match gpu.config().binds(STORAGE) {
            true => MomentLayout::Separate,
            false => MomentLayout::Shared,
        }
    }

    /// The lengths of the `moments` and `second_moments` buffers of a layer of `len` parameters
    /// whose rule keeps `states` moments (0 where a buffer holds none).
    pub fn lengths(self, states: usize, len: usize) -> [usize; 2] {
        match self {
            MomentLayout::Separate => [
                if states >= 1 { len } else { 0 },
                if states >= 2 { len } else { 0 },
            ],
            MomentLayout::Shared => [states * len, 0],
        }
    }
}

/// Words of the counters buffer of a network of `layers` layers: steps taken, the data cursor,
/// the clipping scale and each layer's sum of squared gradients.
pub fn counters_len(layers: usize) -> usize {
    3 + layers
}

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
    moment_base: u32,
    second_moment: u32,
    _pad: [u32; 2],
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
    /// Velocity or Adam's first moment, `(out·in + out)`; in [`MomentLayout::Shared`] the
    /// second moment after it.
    pub moments: &'a wgpu::Buffer,
    /// Adam's second moment in [`MomentLayout::Separate`], `(out·in + out)`.
    pub second_moments: &'a wgpu::Buffer,
    /// `[steps taken, data cursor, gradient scale, Σ g² of each layer…]`, `(3 + layers)`.
    pub counters: &'a wgpu::Buffer,
}

impl UpdateBuffers<'_> {
    fn list(&self) -> [&wgpu::Buffer; 7] {
        [
            self.weight,
            self.dweight,
            self.bias,
            self.dbias,
            self.moments,
            self.second_moments,
            self.counters,
        ]
    }

    /// The bias in the weight's place, for the second of a layer's per-tensor dispatches.
    fn bias_as_tensor(&self) -> [&wgpu::Buffer; 7] {
        let [_, _, bias, dbias, moments, second_moments, counters] = self.list();
        [bias, dbias, bias, dbias, moments, second_moments, counters]
    }
}

/// The pipeline of optim.wgsl's `entry_point` with `storage`.
fn spec(entry_point: &'static str, storage: &'static [Access]) -> PipelineSpec {
    PipelineSpec {
        shader: Shader::Optim,
        entry_point,
        constants: vec![],
        storage,
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
    /// The rule's code in optim.wgsl (`RULE_*`).
    fn rule(&self) -> f64 {
        match self.config.optimizer {
            Optimizer::Sgd => 0.0,
            Optimizer::Momentum { .. } => 1.0,
            Optimizer::Adam { .. } => 2.0,
            Optimizer::AdamW { .. } => 3.0,
        }
    }

    /// The update's pipeline: `update` where the device binds its seven storage buffers, else
    /// `update_tensor`.
    fn spec(&self, gpu: &Gpu) -> PipelineSpec {
        let (entry_point, storage) = match MomentLayout::of(gpu) {
            MomentLayout::Separate => ("update", STORAGE),
            MomentLayout::Shared => ("update_tensor", TENSOR_STORAGE),
        };
        PipelineSpec {
            constants: vec![("RULE", self.rule())],
            ..spec(entry_point, storage)
        }
    }

    /// The parameter blocks and grids of a layer's update: one for the whole layer, or with
    /// `per_tensor` one for its weight and one for its bias.
    fn layout(
        &self,
        gpu: &Gpu,
        weight_len: usize,
        bias_len: usize,
        per_tensor: bool,
    ) -> Result<Vec<(OptimParams, [u32; 3])>> {
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
            moment_base: 0,
            second_moment: total as u32,
            _pad: [0; 2],
        };
        let config = gpu.config();
        let grid = |len| config.grid_1d(len, config.workgroup_size);
        if !per_tensor {
            return Ok(vec![(params, grid(total))]);
        }
        let bias = OptimParams {
            weight_len: bias_len as u32,
            bias_len: 0,
            moment_base: weight_len as u32,
            ..params
        };
        let weight = OptimParams {
            bias_len: 0,
            ..params
        };
        Ok(vec![(weight, grid(weight_len)), (bias, grid(bias_len))])
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
        let spec = self.spec(gpu);
        let per_tensor = spec.entry_point == "update_tensor";
        let passes = self.layout(gpu, weight_len, bias_len, per_tensor)?;
        let (params, groups) = passes[0];
        let dispatch = Dispatch::new(gpu, label, &spec, &params, &buffers.list(), groups)?;
        match passes.get(1) {
            Some((bias, groups)) => {
                dispatch.then_with(gpu, &spec, bias, &buffers.bias_as_tensor(), *groups)
            }
            None => Ok(dispatch),
        }
    }

    /// Rewrites a bound update for new hyper-parameters of the same rule (a new learning rate).
    pub fn reconfigure(
        &self,
        gpu: &Gpu,
        dispatch: &mut Dispatch,
        weight_len: usize,
        bias_len: usize,
    ) -> Result<()> {
        let per_tensor = dispatch.has_follow_up();
        let passes = self.layout(gpu, weight_len, bias_len, per_tensor)?;
        let (params, groups) = passes[0];
        dispatch.update(gpu, &params, groups);
        if let Some((bias, groups)) = passes.get(1) {
            dispatch.update_follow_up_params(gpu, bias, *groups);
        }
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
        let spec = spec("advance", COUNTERS_STORAGE);
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
/// `clip_scale` that leaves the scale in `counters[2]` for the updates, with nothing read back.
#[derive(Clone, Copy, Debug)]
pub struct ClipNorm {
    /// The largest global L2 norm the gradients may keep.
    pub max_norm: f32,
}

impl ClipNorm {
    /// Binds the sum of squares of layer `layer`'s gradients (`weight_len` weights and
    /// `bias_len` biases) into `counters[3 + layer]`.
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
        let spec = spec("square_sum", SQUARES_STORAGE);
        Dispatch::new(gpu, label, &spec, &params, &buffers.list(), [1, 1, 1])
    }

    /// Binds the scale of `layers` layers' gradients into `counters[2]`.
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
        let spec = spec("clip_scale", COUNTERS_STORAGE);
        Dispatch::new(gpu, label, &spec, &params, &buffers.list(), [1, 1, 1])
    }
}
