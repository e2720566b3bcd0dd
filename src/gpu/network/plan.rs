//! [`Plan`]: every dispatch of a training step, bound once to the network's buffers and
//! reshaped in place when the batch size changes.

use crate::error::Result;
use crate::gpu::context::Gpu;
use crate::gpu::kernels::Dispatch;
use crate::gpu::kernels::activation::ActivationKernel;
use crate::gpu::kernels::dropout::{DropoutKernel, DropoutSite};
use crate::gpu::kernels::elementwise::Elementwise;
use crate::gpu::kernels::loss::{OutputLayer, OutputMode};
use crate::gpu::kernels::matmul::{Epilogue, MatmulOperands};
use crate::gpu::kernels::optim::{Advance, ClipNorm, Update};
use crate::gpu::kernels::reduce::{ColumnSum, Sum};
use crate::gpu::network::Fusion;
use crate::gpu::network::buffers::{BatchBuffers, LayerParams};
use crate::gpu::network::products::{LayerProducts, Product};
use crate::model::{Activation, Loss};
use crate::optim::OptimizerConfig;
use crate::train::Regularization;

/// The dispatches of one layer's forward pass.
pub(super) struct LayerForward {
    pub matmul: Dispatch,
    /// [`Fusion::Unfused`] only: the bias-add…
    pub bias_add: Option<Dispatch>,
    /// …then, for a hidden layer, the activation; fused too for a layer that keeps `z`
    /// ([`Activation::keeps_preactivation`]).
    pub activation: Option<Dispatch>,
    /// Training only, for a hidden layer with dropout: the mask, keeping the undropped copy.
    pub dropout: Option<Dispatch>,
}

/// The dispatches of one layer's backward pass.
pub(super) struct LayerBackward {
    pub dweight: Dispatch,
    pub dbias: Dispatch,
    /// `δ_{l−1}`; absent for the first layer.
    pub delta_prev: Option<Dispatch>,
    /// [`Fusion::Unfused`] only: ⊙g′ applied to `delta_prev`'s result.
    pub delta_prev_epilogue: Option<Dispatch>,
    /// For a previous layer with dropout: `δ_{l−1}` times its mask.
    pub delta_prev_dropout: Option<Dispatch>,
}

/// The output layer's kernels: activation, loss and `δ_{L−1}` in one, then the loss's sum.
pub(super) struct OutputStep {
    /// The activation alone, for inference.
    pub forward: Dispatch,
    /// The activation, each row's loss and `δ_{L−1}`, for evaluation and training.
    pub loss: Dispatch,
    /// The same with label smoothing, which only training uses (absent without it).
    pub smoothed_loss: Option<Dispatch>,
    /// The rows' losses summed into the batch loss.
    pub loss_sum: Dispatch,
}

/// What a [`Plan`] is bound for besides the buffers.
#[derive(Clone, Debug)]
pub(super) struct StepSpec {
    pub loss: Loss,
    pub batch: usize,
    pub optimizer: OptimizerConfig,
    pub regularization: Regularization,
    pub fusion: Fusion,
    /// `philox_key(seed)`, which dropout's masks are drawn under.
    pub dropout_key: [u32; 2],
}

/// The network-wide buffers the update kernels bind besides each layer's.
#[derive(Clone, Copy)]
pub(super) struct StepState<'a> {
    /// `[steps taken, data cursor, gradient scale, Σ g² per layer…]`.
    pub counters: &'a wgpu::Buffer,
}

/// Every dispatch of a step, bound once.
pub(super) struct Plan {
    /// Training only, with input dropout: the mask on `x`.
    pub input_dropout: Option<Dispatch>,
    pub forward: Vec<LayerForward>,
    pub output: OutputStep,
    pub backward: Vec<LayerBackward>,
    pub advance: Dispatch,
    /// Gradient-norm clipping before the updates (empty without it).
    pub clip: Vec<Dispatch>,
    pub update: Vec<Dispatch>,
}

/// The activation a layer's forward pass applies: the output layer's is in the output kernel.
fn hidden_activation(layer: &LayerParams, is_output: bool) -> Activation {
    if is_output {
        Activation::Identity
    } else {
        layer.activation
    }
}

/// What every binding reads: the device, the layers, their products and the batch buffers.
struct Binder<'a> {
    gpu: &'a Gpu,
    layers: &'a [LayerParams],
    products: &'a [LayerProducts],
    buffers: &'a BatchBuffers,
    state: StepState<'a>,
    step: StepSpec,
}

impl Plan {
    /// Binds every dispatch of a step for `step.batch` rows, creating every product's pipeline
    /// first, in parallel.
    pub fn bind(
        gpu: &Gpu,
        layers: &[LayerParams],
        buffers: &BatchBuffers,
        state: StepState<'_>,
        step: StepSpec,
    ) -> Result<Plan> {
        let products = LayerProducts::of_network(layers, step.batch);
        gpu.prepare_pipelines(&LayerProducts::pipeline_specs(gpu, &products))?;
        let clip_norm = step.regularization.clip_norm;
        let optimizer = step.optimizer;
        let binder = Binder {
            gpu,
            layers,
            products: &products,
            buffers,
            state,
            step,
        };
        let first_layer = layers[0].update_buffers(state.counters);
        let input_rate = binder.step.regularization.dropout.input;
        Ok(Plan {
            input_dropout: binder.dropout((0, input_rate), "input.dropout", &buffers.x, None)?,
            forward: binder.forward()?,
            output: binder.output()?,
            backward: binder.backward()?,
            advance: Advance::bind(gpu, "gpu_mlp.advance", &first_layer, binder.step.batch)?,
            clip: Self::bind_clip(gpu, layers, state, clip_norm)?,
            update: Self::bind_updates(gpu, layers, state, &optimizer, clip_norm)?,
        })
    }

    /// One update dispatch per layer, for `optimizer`, scaling the gradients by the clipping
    /// factor when `clip_norm` is set.
    pub fn bind_updates(
        gpu: &Gpu,
        layers: &[LayerParams],
        state: StepState<'_>,
        optimizer: &OptimizerConfig,
        clip_norm: Option<f32>,
    ) -> Result<Vec<Dispatch>> {
        let update = Update {
            config: *optimizer,
            clip_norm,
        };
        layers
            .iter()
            .enumerate()
            .map(|(l, layer)| {
                let label = format!("layer{l}.{}", optimizer.optimizer.name());
                update.bind(
                    gpu,
                    &label,
                    &layer.update_buffers(state.counters),
                    layer.weight_len(),
                    layer.outputs,
                )
            })
            .collect()
    }

    /// Each layer's sum of squared gradients, then the clipping factor: nothing without
    /// `clip_norm`.
    pub fn bind_clip(
        gpu: &Gpu,
        layers: &[LayerParams],
        state: StepState<'_>,
        clip_norm: Option<f32>,
    ) -> Result<Vec<Dispatch>> {
        let Some(max_norm) = clip_norm else {
            return Ok(Vec::new());
        };
        let clip = ClipNorm { max_norm };
        let mut dispatches = layers
            .iter()
            .enumerate()
            .map(|(l, layer)| {
                clip.bind_square_sum(
                    gpu,
                    &format!("layer{l}.gradient_square_sum"),
                    &layer.update_buffers(state.counters),
                    l,
                    layer.weight_len(),
                    layer.outputs,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let buffers = layers[0].update_buffers(state.counters);
        dispatches.push(clip.bind_scale(gpu, "gpu_mlp.clip_scale", &buffers, layers.len())?);
        Ok(dispatches)
    }

    /// Points every dispatch at `batch` rows of the buffers it is bound to, which must hold them.
    pub fn reshape(&mut self, gpu: &Gpu, layers: &[LayerParams], batch: usize) -> Result<()> {
        let products = LayerProducts::of_network(layers, batch);
        let last = layers.len() - 1;
        let dropouts = self.forward.iter_mut().map(|f| &mut f.dropout);
        let dropouts = dropouts.chain(self.backward.iter_mut().map(|b| &mut b.delta_prev_dropout));
        for dispatch in dropouts.chain([&mut self.input_dropout]).flatten() {
            DropoutKernel::reshape_rows(gpu, dispatch, batch)?;
        }
        for (l, (layer, products)) in layers.iter().zip(&products).enumerate() {
            let forward = &mut self.forward[l];
            products.forward.reshape(gpu, &mut forward.matmul)?;
            // The unfused kernels work on the product they follow, (rows, cols) = (m, n).
            let (rows, cols) = (products.forward.shape.m, products.forward.shape.n);
            if let Some(bias_add) = forward.bias_add.as_mut() {
                Elementwise::BiasAdd.reshape(gpu, bias_add, rows, cols)?;
            }
            if let Some(activation) = forward.activation.as_mut() {
                let kernel = ActivationKernel::Forward(hidden_activation(layer, l == last));
                kernel.reshape(gpu, activation, rows, cols)?;
            }
            let backward = &mut self.backward[l];
            products.dweight.reshape(gpu, &mut backward.dweight)?;
            ColumnSum::reshape(gpu, &mut backward.dbias, batch, layer.outputs)?;
            if let (Some(product), Some(delta_prev)) = (products.delta, &mut backward.delta_prev) {
                product.reshape(gpu, delta_prev)?;
                if let Some(epilogue) = backward.delta_prev_epilogue.as_mut() {
                    let kernel = ActivationKernel::Backward(layers[l - 1].activation);
                    kernel.reshape(gpu, epilogue, product.shape.m, product.shape.n)?;
                }
            }
        }
        let outputs = layers[last].outputs;
        OutputLayer::reshape(gpu, &mut self.output.forward, batch, outputs)?;
        OutputLayer::reshape(gpu, &mut self.output.loss, batch, outputs)?;
        if let Some(smoothed) = self.output.smoothed_loss.as_mut() {
            OutputLayer::reshape(gpu, smoothed, batch, outputs)?;
        }
        Sum::reshape(gpu, &mut self.output.loss_sum, batch)?;
        Advance::reshape(gpu, &mut self.advance, batch);
        Ok(())
    }
}

impl Binder<'_> {
    /// Dropout site `site`'s mask on `values: (batch, width)` at rate `p`, copying the undropped
    /// values to `undropped` if given: nothing where `p` is 0.
    fn dropout(
        &self,
        (site, p): (usize, f32),
        label: &str,
        values: &wgpu::Buffer,
        undropped: Option<&wgpu::Buffer>,
    ) -> Result<Option<Dispatch>> {
        if p <= 0.0 {
            return Ok(None);
        }
        let width = if site == 0 {
            self.layers[0].inputs
        } else {
            self.layers[site - 1].outputs
        };
        let (kernel, undropped) = match undropped {
            Some(buffer) => (DropoutKernel::Keeping, buffer),
            None => (DropoutKernel::InPlace, values),
        };
        let site = DropoutSite {
            site,
            p,
            key: self.step.dropout_key,
        };
        let shape = (self.step.batch, width);
        let counters = self.state.counters;
        kernel
            .bind(self.gpu, label, site, shape, values, counters, undropped)
            .map(Some)
    }

    /// `a_l = g_l(a_{l−1} · W_lᵀ + b_l)` per layer, the output layer stopping at `z`.
    fn forward(&self) -> Result<Vec<LayerForward>> {
        let (gpu, buffers, fusion) = (self.gpu, self.buffers, self.step.fusion);
        let last = self.layers.len() - 1;
        let mut forward = Vec::with_capacity(self.layers.len());
        for (l, (layer, products)) in self.layers.iter().zip(self.products).enumerate() {
            let output = if l == last {
                &buffers.logits
            } else {
                &buffers.activations[l]
            };
            let label = |what: &str| format!("layer{l}.{what}");
            let activation = hidden_activation(layer, l == last);
            let leaky_slope = layer.leaky_slope;
            // A hidden layer that keeps z for backward (GELU, SiLU) has the matmul write z there
            // and its activation run as a kernel of its own after, fused or not.
            let preactivation = if l < last {
                buffers.preactivation_of(l)
            } else {
                None
            };
            let (matmul_output, epilogue) = match (fusion, preactivation) {
                (Fusion::Fused, None) => (
                    output,
                    Epilogue::BiasActivation {
                        bias: &layer.bias,
                        activation,
                        leaky_slope,
                    },
                ),
                (Fusion::Fused, Some(z)) => (
                    z,
                    Epilogue::BiasActivation {
                        bias: &layer.bias,
                        activation: Activation::Identity,
                        leaky_slope,
                    },
                ),
                (Fusion::Unfused, _) => (&buffers.scratch[l], Epilogue::None),
            };
            let operands = MatmulOperands {
                a: buffers.input_of(l),
                b: &layer.weight,
                c: matmul_output,
            };
            let matmul = products
                .forward
                .bind(gpu, &label("forward"), operands, epilogue)?;
            let (rows, cols) = (products.forward.shape.m, products.forward.shape.n);
            let bind_activation = |z: &wgpu::Buffer| {
                // Forward reads no second operand.
                let operands = [z, z, output];
                ActivationKernel::Forward(activation).bind_with_slope(
                    gpu,
                    &label("activation"),
                    (rows, cols),
                    leaky_slope,
                    operands,
                )
            };
            let (mut bias_add, mut activation_kernel) = (None, None);
            if fusion == Fusion::Unfused {
                // scratch + bias → z, then g(z) → a. The output layer has no activation here
                // (it is in the output kernel), so its bias-add writes the logits directly; a
                // hidden layer keeps z in its preactivation buffer if it has one, else in its δ
                // buffer, which nothing reads until backward overwrites it.
                let z = match preactivation {
                    Some(z) => z,
                    None if activation == Activation::Identity => output,
                    None => &buffers.deltas[l],
                };
                bias_add = Some(Elementwise::BiasAdd.bind(
                    gpu,
                    &label("bias_add"),
                    rows,
                    cols,
                    matmul_output,
                    &layer.bias,
                    z,
                )?);
                if activation != Activation::Identity {
                    activation_kernel = Some(bind_activation(z)?);
                }
            } else if let Some(z) = preactivation {
                activation_kernel = Some(bind_activation(z)?);
            }
            // Hidden layer l is dropout site l + 1; the output layer has none.
            let dropout = if l < last {
                let rate = self.step.regularization.dropout.hidden_rate(l);
                let undropped = buffers.undropped[l].as_ref();
                self.dropout((l + 1, rate), &label("dropout"), output, undropped)?
            } else {
                None
            };
            forward.push(LayerForward {
                matmul,
                bias_add,
                activation: activation_kernel,
                dropout,
            });
        }
        Ok(forward)
    }

    /// The output layer's activation, row losses and `δ_{L−1}`, and the batch loss.
    fn output(&self) -> Result<OutputStep> {
        let (gpu, buffers, batch) = (self.gpu, self.buffers, self.step.batch);
        let last = self.layers.len() - 1;
        let output_layer = &self.layers[last];
        let output_kernel = |mode, label_smoothing, label: &str| {
            OutputLayer {
                activation: output_layer.activation,
                loss: self.step.loss,
                mode,
                label_smoothing,
            }
            .bind(
                gpu,
                label,
                batch,
                output_layer.outputs,
                &buffers.logits,
                &buffers.y,
                &buffers.activations[last],
                &buffers.deltas[last],
                &buffers.row_loss,
            )
        };
        Ok(OutputStep {
            forward: output_kernel(OutputMode::Forward, 0.0, "output.forward")?,
            loss: output_kernel(OutputMode::Loss, 0.0, "output.loss")?,
            smoothed_loss: match self.step.regularization.label_smoothing {
                epsilon if epsilon > 0.0 => Some(output_kernel(
                    OutputMode::Loss,
                    epsilon,
                    "output.smoothed_loss",
                )?),
                _ => None,
            },
            loss_sum: Sum::bind(
                gpu,
                "output.loss_sum",
                batch,
                &buffers.row_loss,
                &buffers.loss,
            )?,
        })
    }

    /// Per layer `dW_l = δ_lᵀ · a_{l−1}`, `db_l = Σ_rows δ_l` and `δ_{l−1} = (δ_l · W_l) ⊙ g′`.
    fn backward(&self) -> Result<Vec<LayerBackward>> {
        let (gpu, buffers, batch) = (self.gpu, self.buffers, self.step.batch);
        let mut backward = Vec::with_capacity(self.layers.len());
        for (l, (layer, products)) in self.layers.iter().zip(self.products).enumerate() {
            let delta = &buffers.deltas[l];
            let dweight = products.dweight.bind(
                gpu,
                &format!("layer{l}.dweight"),
                MatmulOperands {
                    a: delta,
                    b: buffers.input_of(l),
                    c: &layer.dweight,
                },
                Epilogue::None,
            )?;
            let dbias = ColumnSum::bind(
                gpu,
                &format!("layer{l}.dbias"),
                batch,
                layer.outputs,
                delta,
                &layer.dbias,
            )?;
            let (delta_prev, delta_prev_epilogue) = match products.delta {
                Some(product) => {
                    let (matmul, epilogue) = self.delta_prev(l, product)?;
                    (Some(matmul), epilogue)
                }
                None => (None, None),
            };
            // δ_{l−1} belongs to hidden layer l − 1, dropout site l.
            let delta_prev_dropout = if l > 0 {
                let rate = self.step.regularization.dropout.hidden_rate(l - 1);
                let label = format!("layer{}.delta_dropout", l - 1);
                self.dropout((l, rate), &label, &buffers.deltas[l - 1], None)?
            } else {
                None
            };
            backward.push(LayerBackward {
                dweight,
                dbias,
                delta_prev,
                delta_prev_epilogue,
                delta_prev_dropout,
            });
        }
        Ok(backward)
    }

    /// `δ_{l−1} = (δ_l · W_l) ⊙ g′(a_{l−1})`: one fused product, or a plain product then the
    /// activation's backward kernel.
    fn delta_prev(&self, l: usize, product: Product) -> Result<(Dispatch, Option<Dispatch>)> {
        let (gpu, buffers) = (self.gpu, self.buffers);
        // g′ from z, or from the activation as the activation function produced it, before any
        // dropout.
        let previous = buffers.derivative_source_of(l - 1);
        let (activation, leaky_slope) = (
            self.layers[l - 1].activation,
            self.layers[l - 1].leaky_slope,
        );
        let (matmul_output, epilogue) = match self.step.fusion {
            Fusion::Fused => (
                &buffers.deltas[l - 1],
                Epilogue::TimesDerivative {
                    activations: previous,
                    activation,
                    leaky_slope,
                },
            ),
            Fusion::Unfused => (&buffers.scratch[l - 1], Epilogue::None),
        };
        let operands = MatmulOperands {
            a: &buffers.deltas[l],
            b: &self.layers[l].weight,
            c: matmul_output,
        };
        let matmul = product.bind(gpu, &format!("layer{}.delta", l - 1), operands, epilogue)?;
        let times_derivative = match self.step.fusion {
            Fusion::Fused => None,
            Fusion::Unfused => Some(ActivationKernel::Backward(activation).bind_with_slope(
                gpu,
                &format!("layer{}.activation_backward", l - 1),
                (product.shape.m, product.shape.n),
                leaky_slope,
                [previous, matmul_output, &buffers.deltas[l - 1]],
            )?),
        };
        Ok((matmul, times_derivative))
    }
}
