//! The device buffers of a [`GpuMlp`](super::GpuMlp): each layer's parameters, gradients and
//! optimizer moments, which live as long as the network, and the buffers sized by the batch
//! capacity, which a larger batch reallocates.

use std::borrow::Cow;

use ndarray::ArrayView2;

use crate::dropout::Dropout;
use crate::error::Result;
use crate::gpu::context::Gpu;
use crate::gpu::kernels::optim::UpdateBuffers;
use crate::gpu::network::Fusion;
use crate::model::{Activation, Dense};

/// A layer's parameters and their gradients on the device.
pub(super) struct LayerParams {
    pub inputs: usize,
    pub outputs: usize,
    pub activation: Activation,
    /// The model's [`Mlp::leaky_slope`](crate::Mlp::leaky_slope), which leaky ReLU's kernels read.
    pub leaky_slope: f32,
    pub weight: wgpu::Buffer,
    pub bias: wgpu::Buffer,
    pub dweight: wgpu::Buffer,
    pub dbias: wgpu::Buffer,
    /// Optimizer state: the moments the rule keeps, `(out·in + out)` each, placed as
    /// [`MomentLayout`](crate::gpu::kernels::optim::MomentLayout) says; a buffer that holds none
    /// is one element.
    pub moments: wgpu::Buffer,
    /// Adam's second moment where the layout keeps it apart; else one element.
    pub second_moments: wgpu::Buffer,
}

impl LayerParams {
    /// Buffers for layer `index` shaped like `layer` of a model with `leaky_slope`, zero-filled,
    /// with room for no optimizer state (plain SGD keeps none).
    pub fn allocate(
        gpu: &Gpu,
        index: usize,
        layer: &Dense,
        leaky_slope: f32,
    ) -> Result<LayerParams> {
        let (outputs, inputs) = layer.weight.dim();
        let name = |what: &str| format!("layer{index}.{what}");
        Ok(LayerParams {
            inputs,
            outputs,
            activation: layer.activation,
            leaky_slope,
            weight: gpu.storage_buffer(&name("weight"), outputs * inputs)?,
            bias: gpu.storage_buffer(&name("bias"), outputs)?,
            dweight: gpu.storage_buffer(&name("dweight"), outputs * inputs)?,
            dbias: gpu.storage_buffer(&name("dbias"), outputs)?,
            moments: gpu.storage_buffer(&name("moments"), 1)?,
            second_moments: gpu.storage_buffer(&name("second_moments"), 1)?,
        })
    }

    pub fn weight_len(&self) -> usize {
        self.outputs * self.inputs
    }

    /// What the optimizer's kernels bind for this layer, with the network's step counters and
    /// clipping slots.
    pub fn update_buffers<'a>(&'a self, counters: &'a wgpu::Buffer) -> UpdateBuffers<'a> {
        UpdateBuffers {
            weight: &self.weight,
            dweight: &self.dweight,
            bias: &self.bias,
            dbias: &self.dbias,
            moments: &self.moments,
            second_moments: &self.second_moments,
            counters,
        }
    }
}

/// Buffers whose size depends on the batch capacity.
pub(super) struct BatchBuffers {
    pub capacity: usize,
    /// `(capacity, inputs)`.
    pub x: wgpu::Buffer,
    /// `(capacity, outputs)`.
    pub y: wgpu::Buffer,
    /// `a_l: (capacity, outputs_l)` per layer.
    pub activations: Vec<wgpu::Buffer>,
    /// `δ_l: (capacity, outputs_l)` per layer.
    pub deltas: Vec<wgpu::Buffer>,
    /// The output layer's pre-activation `z: (capacity, outputs)`.
    pub logits: wgpu::Buffer,
    /// [`Fusion::Unfused`] only: per layer `(capacity, outputs_l)`, for the matmul's result
    /// before the bias-add or the ⊙g′ kernel reads it.
    pub scratch: Vec<wgpu::Buffer>,
    /// `(capacity)`.
    pub row_loss: wgpu::Buffer,
    /// The batch loss, one value.
    pub loss: wgpu::Buffer,
    /// Mappable; large enough for every parameter plus the loss, or one batch of outputs.
    pub staging: wgpu::Buffer,
    /// Per hidden layer with dropout, its activation before the mask `(capacity, outputs_l)`,
    /// from which backward takes g′ (see [`BatchBuffers::allocate_undropped`]).
    pub undropped: Vec<Option<wgpu::Buffer>>,
    /// Per hidden layer whose g′ needs `z` (GELU, SiLU: [`Activation::keeps_preactivation`]),
    /// its `z: (capacity, outputs_l)`; `None` for the others, which take g′ from `a`.
    pub preactivations: Vec<Option<wgpu::Buffer>>,
}

impl BatchBuffers {
    /// Buffers for batches of up to `capacity` rows through `layers`, with the scratch buffers
    /// `fusion` needs.
    pub fn allocate(
        gpu: &Gpu,
        layers: &[LayerParams],
        capacity: usize,
        fusion: Fusion,
        dropout: &Dropout,
    ) -> Result<BatchBuffers> {
        let inputs = layers[0].inputs;
        let outputs = layers[layers.len() - 1].outputs;
        let mut activations = Vec::with_capacity(layers.len());
        let mut deltas = Vec::with_capacity(layers.len());
        for (i, layer) in layers.iter().enumerate() {
            activations.push(
                gpu.storage_buffer(&format!("layer{i}.activation"), capacity * layer.outputs)?,
            );
            deltas.push(gpu.storage_buffer(&format!("layer{i}.delta"), capacity * layer.outputs)?);
        }
        let scratch = match fusion {
            Fusion::Fused => Vec::new(),
            Fusion::Unfused => layers
                .iter()
                .enumerate()
                .map(|(i, layer)| {
                    gpu.storage_buffer(&format!("layer{i}.scratch"), capacity * layer.outputs)
                })
                .collect::<Result<_>>()?,
        };
        let parameters: usize = layers.iter().map(|l| l.outputs * (l.inputs + 1)).sum();
        let staging_values = (parameters + 1).max(capacity * outputs);
        Ok(BatchBuffers {
            capacity,
            x: gpu.storage_buffer("batch.x", capacity * inputs)?,
            y: gpu.storage_buffer("batch.y", capacity * outputs)?,
            activations,
            deltas,
            logits: gpu.storage_buffer("output.logits", capacity * outputs)?,
            scratch,
            row_loss: gpu.storage_buffer("output.row_loss", capacity)?,
            loss: gpu.storage_buffer("output.loss", 1)?,
            staging: gpu.staging_buffer("gpu_mlp.staging", (staging_values * 4) as u64)?,
            undropped: Self::allocate_undropped(gpu, layers, capacity, dropout)?,
            preactivations: Self::allocate_preactivations(gpu, layers, capacity)?,
        })
    }

    /// A buffer for `z` of each hidden layer that keeps it for backward, `None` for the others.
    fn allocate_preactivations(
        gpu: &Gpu,
        layers: &[LayerParams],
        capacity: usize,
    ) -> Result<Vec<Option<wgpu::Buffer>>> {
        let hidden = &layers[..layers.len() - 1];
        hidden
            .iter()
            .enumerate()
            .map(|(l, layer)| {
                let size = capacity * layer.outputs;
                (layer.activation.keeps_preactivation())
                    .then(|| gpu.storage_buffer(&format!("layer{l}.preactivation"), size))
                    .transpose()
            })
            .collect()
    }

    /// A buffer for each hidden layer that `dropout` drops from and that takes g′ from `a`,
    /// `None` for the others.
    pub fn allocate_undropped(
        gpu: &Gpu,
        layers: &[LayerParams],
        capacity: usize,
        dropout: &Dropout,
    ) -> Result<Vec<Option<wgpu::Buffer>>> {
        let hidden = &layers[..layers.len() - 1];
        (0..hidden.len())
            .map(|l| {
                let size = capacity * hidden[l].outputs;
                let takes_derivative_from_a = !hidden[l].activation.keeps_preactivation();
                (dropout.hidden_rate(l) > 0.0 && takes_derivative_from_a)
                    .then(|| gpu.storage_buffer(&format!("layer{l}.undropped"), size))
                    .transpose()
            })
            .collect()
    }

    /// The activation of hidden layer `l` as its activation function produced it: the undropped
    /// copy where it has dropout.
    pub fn undropped_of(&self, l: usize) -> &wgpu::Buffer {
        self.undropped
            .get(l)
            .and_then(Option::as_ref)
            .unwrap_or(&self.activations[l])
    }

    /// What backward takes hidden layer `l`'s g′ from ([`Activation::derivative`]): its `z`
    /// where it keeps one, else its undropped activation.
    pub fn derivative_source_of(&self, l: usize) -> &wgpu::Buffer {
        self.preactivation_of(l)
            .unwrap_or_else(|| self.undropped_of(l))
    }

    /// Hidden layer `l`'s `z`, if it keeps one.
    pub fn preactivation_of(&self, l: usize) -> Option<&wgpu::Buffer> {
        self.preactivations.get(l).and_then(Option::as_ref)
    }

    /// What layer `l` reads: the batch for the first layer, the previous layer's output after.
    pub fn input_of(&self, l: usize) -> &wgpu::Buffer {
        if l == 0 {
            &self.x
        } else {
            &self.activations[l - 1]
        }
    }
}

/// Row-major contiguous data of `array`, copying only if it is not already.
pub(super) fn contiguous(array: ArrayView2<'_, f32>) -> Cow<'_, [f32]> {
    match array.to_slice() {
        Some(slice) => Cow::Borrowed(slice),
        None => Cow::Owned(array.iter().copied().collect()),
    }
}
