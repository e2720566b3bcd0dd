//! What moves between the host and a [`GpuMlp`] outside the training loop: parameters and
//! optimizer state in both directions, and losses, gradients and outputs read back.

use ndarray::{Array1, Array2, ArrayView2};

use crate::error::{Error, Result};
use crate::gpu::kernels::optim::MomentLayout;
use crate::gpu::network::GpuMlp;
use crate::gpu::network::buffers::{LayerParams, contiguous};
use crate::model::{Dense, DenseGradients, Gradients, Mlp};
use crate::optim::OptimizerState;

impl GpuMlp {
    /// The mean loss of the batch of the last [`GpuMlp::train_step`] (before its update) or
    /// [`GpuMlp::loss_and_gradients`]. Reads one value back. Blocks: the native form of
    /// [`GpuMlp::last_loss_async`].
    #[cfg(not(target_arch = "wasm32"))]
    pub fn last_loss(&mut self) -> Result<f32> {
        pollster::block_on(self.last_loss_async())
    }

    /// [`GpuMlp::last_loss`] as a future.
    pub async fn last_loss_async(&mut self) -> Result<f32> {
        self.in_flight.clear();
        let encoder = self.gpu.encoder("last_loss");
        let values = self
            .gpu
            .read_back_async(
                "the loss",
                encoder,
                &self.loss_staging,
                &[(&self.buffers.loss, 1)],
            )
            .await?;
        Ok(values[0][0])
    }

    /// The loss on `x: (batch, in)`, `y: (batch, out)` and the gradient of every layer, computed
    /// on the GPU and read back, with dropout the masks of the next training step (the step
    /// counter does not move). The parameters are not changed. Blocks: the native form of
    /// [`GpuMlp::loss_and_gradients_async`].
    #[cfg(not(target_arch = "wasm32"))]
    pub fn loss_and_gradients(
        &mut self,
        x: ArrayView2<f32>,
        y: ArrayView2<f32>,
    ) -> Result<(f32, Gradients)> {
        pollster::block_on(self.loss_and_gradients_async(x, y))
    }

    /// [`GpuMlp::loss_and_gradients`] as a future.
    pub async fn loss_and_gradients_async(
        &mut self,
        x: ArrayView2<'_, f32>,
        y: ArrayView2<'_, f32>,
    ) -> Result<(f32, Gradients)> {
        self.upload_batch(x, Some(y))?;
        let encoder = self.encode("loss_and_gradients", |pass| {
            self.record_forward(pass, true, true);
            self.record_backward(pass);
        });
        let mut sources = vec![(&self.buffers.loss, 1)];
        for layer in &self.layers {
            sources.push((&layer.dweight, layer.outputs * layer.inputs));
            sources.push((&layer.dbias, layer.outputs));
        }
        self.in_flight.clear();
        let mut values = self
            .gpu
            .read_back_async(
                "the loss and gradients",
                encoder,
                &self.buffers.staging,
                &sources,
            )
            .await?
            .into_iter();
        let loss = values.next().map_or(f32::NAN, |v| v[0]);
        let layers = self
            .layers
            .iter()
            .map(|layer| {
                let dweight = values.next().unwrap_or_default();
                let dbias = values.next().unwrap_or_default();
                Ok(DenseGradients {
                    dweight: Array2::from_shape_vec((layer.outputs, layer.inputs), dweight)
                        .map_err(|e| Error::invalid("gradient read-back", e.to_string()))?,
                    dbias: Array1::from(dbias),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((loss, Gradients { layers }))
    }

    /// The output activations for `x: (batch, in)`, as `(batch, out)`. Blocks: the native form
    /// of [`GpuMlp::forward_async`].
    #[cfg(not(target_arch = "wasm32"))]
    pub fn forward(&mut self, x: ArrayView2<f32>) -> Result<Array2<f32>> {
        pollster::block_on(self.forward_async(x))
    }

    /// [`GpuMlp::forward`] as a future.
    pub async fn forward_async(&mut self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        let batch = self.upload_batch(x, None)?;
        let encoder = self.encode("forward", |pass| self.record_forward(pass, false, false));
        let outputs = self.outputs();
        let last = self.layers.len() - 1;
        self.in_flight.clear();
        let mut values = self
            .gpu
            .read_back_async(
                "the outputs",
                encoder,
                &self.buffers.staging,
                &[(&self.buffers.activations[last], batch * outputs)],
            )
            .await?;
        Array2::from_shape_vec((batch, outputs), values.pop().unwrap_or_default())
            .map_err(|e| Error::invalid("output read-back", e.to_string()))
    }

    /// Replaces the parameters with those of `mlp`, which must have the same architecture.
    pub fn set_parameters(&mut self, mlp: &Mlp) -> Result<()> {
        mlp.validate()?;
        let leaky_slope = self.layers[0].leaky_slope;
        if mlp.sizes() != self.sizes() || mlp.loss != self.loss || mlp.leaky_slope != leaky_slope {
            return Err(Error::Model(format!(
                "cannot load a {:?} {} model (leaky slope {}) into a {:?} {} network (leaky \
                 slope {leaky_slope})",
                mlp.sizes(),
                mlp.loss.name(),
                mlp.leaky_slope,
                self.sizes(),
                self.loss.name()
            )));
        }
        for (i, (dense, layer)) in mlp.layers.iter().zip(&self.layers).enumerate() {
            if dense.activation != layer.activation {
                return Err(Error::Model(format!(
                    "layer {i} uses {} but the network's layer {i} uses {}",
                    dense.activation.name(),
                    layer.activation.name()
                )));
            }
            let queue = self.gpu.queue();
            queue.write_buffer(
                &layer.weight,
                0,
                bytemuck::cast_slice(&contiguous(dense.weight.view())),
            );
            queue.write_buffer(&layer.bias, 0, bytemuck::cast_slice(&dense.bias.to_vec()));
        }
        Ok(())
    }

    /// Copies `source`'s parameters into this network's on the GPU, nothing read back: e.g. a
    /// trainer's into a one-sample network that predicts as the user draws. Both must have the
    /// same layer sizes and live on the same device.
    pub fn copy_parameters_from(&mut self, source: &GpuMlp) -> Result<()> {
        if source.sizes() != self.sizes() {
            return Err(Error::Model(format!(
                "cannot copy the parameters of a {:?} network into a {:?} one",
                source.sizes(),
                self.sizes()
            )));
        }
        let mut encoder = self.gpu.encoder("copy_parameters");
        for (from, to) in source.layers.iter().zip(&self.layers) {
            encoder.copy_buffer_to_buffer(&from.weight, 0, &to.weight, 0, to.weight.size());
            encoder.copy_buffer_to_buffer(&from.bias, 0, &to.bias, 0, to.bias.size());
        }
        self.gpu.queue().submit([encoder.finish()]);
        self.gpu.check_fault()
    }

    /// Downloads the optimizer's state: its moments (zero for rules that keep none) and the
    /// number of steps taken, as [`OptimizerState`] holds them on the CPU. Blocks: the native
    /// form of [`GpuMlp::optimizer_state_async`].
    #[cfg(not(target_arch = "wasm32"))]
    pub fn optimizer_state(&mut self) -> Result<OptimizerState> {
        pollster::block_on(self.optimizer_state_async())
    }

    /// [`GpuMlp::optimizer_state`] as a future.
    pub async fn optimizer_state_async(&mut self) -> Result<OptimizerState> {
        let states = self.optimizer.optimizer.state_per_parameter();
        let layout = MomentLayout::of(&self.gpu);
        let mut sources: Vec<(&wgpu::Buffer, usize)> = vec![(&self.counters, 1)];
        for layer in &self.layers {
            let [first, second] = layout.lengths(states, layer.weight_len() + layer.outputs);
            sources.push((&layer.moments, first));
            sources.push((&layer.second_moments, second));
        }
        self.in_flight.clear();
        // A one-off read of up to twice the model: its own staging buffer, not the step's.
        let bytes = sources.iter().map(|(_, len)| *len as u64 * 4).sum();
        let staging = self
            .gpu
            .staging_buffer("gpu_mlp.optimizer_staging", bytes)?;
        let encoder = self.gpu.encoder("optimizer_state");
        let values: Vec<Vec<u32>> = self
            .gpu
            .read_back_async("the optimizer state", encoder, &staging, &sources)
            .await?;
        // Moment `k` of a layer: its weight entries, then its bias entries, in its two buffers'
        // words one after the other (whichever layout placed them); zero if the rule keeps fewer
        // moments.
        let moment = |words: &[u32], layer: &LayerParams, k: usize| {
            let len = layer.weight_len() + layer.outputs;
            let Some(words) = words.get(k * len..(k + 1) * len) else {
                return Ok((
                    Array2::zeros((layer.outputs, layer.inputs)),
                    Array1::zeros(layer.outputs),
                ));
            };
            let floats: Vec<f32> = words.iter().map(|w| f32::from_bits(*w)).collect();
            let (weight, bias) = floats.split_at(layer.weight_len());
            let weight = Array2::from_shape_vec((layer.outputs, layer.inputs), weight.to_vec())
                .map_err(|e| Error::invalid("optimizer state read-back", e.to_string()))?;
            Ok((weight, Array1::from(bias.to_vec())))
        };
        let mut moment1 = Vec::new();
        let mut moment2 = Vec::new();
        for (l, layer) in self.layers.iter().enumerate() {
            let words = [&values[1 + 2 * l][..], &values[2 + 2 * l]].concat();
            moment1.push(moment(&words, layer, 0)?);
            moment2.push(moment(&words, layer, 1)?);
        }
        Ok(OptimizerState {
            steps: u64::from(values[0][0]),
            moment1,
            moment2,
        })
    }

    /// Uploads an optimizer state (from [`GpuMlp::optimizer_state`] or the CPU trainer) for the
    /// current rule, to continue training exactly where it stopped.
    pub fn set_optimizer_state(&mut self, state: &OptimizerState) -> Result<()> {
        if state.moment1.len() != self.layers.len() || state.moment2.len() != self.layers.len() {
            return Err(Error::Model(format!(
                "an optimizer state of {} layers cannot continue a {}-layer network",
                state.moment1.len(),
                self.layers.len()
            )));
        }
        let steps = u32::try_from(state.steps).map_err(|_| {
            Error::invalid(
                "optimizer state",
                format!("{} steps exceed the GPU counter", state.steps),
            )
        })?;
        let states = self.optimizer.optimizer.state_per_parameter();
        let layout = MomentLayout::of(&self.gpu);
        let queue = self.gpu.queue();
        for (i, layer) in self.layers.iter().enumerate() {
            let mut values: Vec<f32> = Vec::new();
            for (k, moments) in [&state.moment1[i], &state.moment2[i]]
                .into_iter()
                .enumerate()
            {
                let (weight, bias) = moments;
                if weight.dim() != (layer.outputs, layer.inputs) || bias.len() != layer.outputs {
                    return Err(Error::shape(
                        format!("layer {i} optimizer moment {}", k + 1),
                        weight.shape(),
                        format!("[{}, {}]", layer.outputs, layer.inputs),
                    ));
                }
                if k < states {
                    values.extend(weight.iter());
                    values.extend(bias.iter());
                }
            }
            let [first, _] = layout.lengths(states, layer.weight_len() + layer.outputs);
            let (first, second) = values.split_at(first);
            for (buffer, values) in [(&layer.moments, first), (&layer.second_moments, second)] {
                if !values.is_empty() {
                    queue.write_buffer(buffer, 0, bytemuck::cast_slice(values));
                }
            }
        }
        queue.write_buffer(&self.counters, 0, bytemuck::bytes_of(&steps));
        Ok(())
    }

    /// Downloads the parameters into a host-side [`Mlp`]. Blocks: the native form of
    /// [`GpuMlp::to_mlp_async`].
    #[cfg(not(target_arch = "wasm32"))]
    pub fn to_mlp(&mut self) -> Result<Mlp> {
        pollster::block_on(self.to_mlp_async())
    }

    /// [`GpuMlp::to_mlp`] as a future.
    pub async fn to_mlp_async(&mut self) -> Result<Mlp> {
        let mut sources = Vec::new();
        for layer in &self.layers {
            sources.push((&layer.weight, layer.outputs * layer.inputs));
            sources.push((&layer.bias, layer.outputs));
        }
        self.in_flight.clear();
        let encoder = self.gpu.encoder("to_mlp");
        let mut values = self
            .gpu
            .read_back_async("the parameters", encoder, &self.buffers.staging, &sources)
            .await?
            .into_iter();
        let layers = self
            .layers
            .iter()
            .map(|layer| {
                let weight = values.next().unwrap_or_default();
                let bias = values.next().unwrap_or_default();
                Ok(Dense {
                    weight: Array2::from_shape_vec((layer.outputs, layer.inputs), weight)
                        .map_err(|e| Error::invalid("parameter read-back", e.to_string()))?,
                    bias: Array1::from(bias),
                    activation: layer.activation,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Mlp {
            layers,
            loss: self.loss,
            leaky_slope: self.layers[0].leaky_slope,
        })
    }
}
