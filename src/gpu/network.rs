//! [`GpuMlp`]: an [`Mlp`] living on the GPU, trained with every buffer kept there.
//!
//! Weights, biases, activations, deltas and gradients are device buffers allocated when the
//! network is built, for a batch capacity (a larger batch reallocates them once). Every dispatch
//! of a training step, with its bind group, is made then too; a step only writes the batch, records
//! the prepared dispatches into one command encoder and submits once. Nothing is read back unless
//! asked for ([`GpuMlp::last_loss`], [`GpuMlp::loss_and_gradients`], [`GpuMlp::to_mlp`]).
//!
//! One step, for layers `l = 0 … L−1` with `a₋₁ = x`:
//! ```text
//! forward    a_l = g_l(a_{l−1} · W_lᵀ + b_l)          matmul NT, bias + activation fused
//!            (output layer: z, then loss.wgsl gives a, the row losses and δ_{L−1})
//! loss       Σ row losses                              reduce
//! backward   dW_l = δ_lᵀ · a_{l−1}                    matmul TN
//!            db_l = Σ_rows δ_l                         reduce (column sums)
//!            δ_{l−1} = (δ_l · W_l) ⊙ g′(a_{l−1})       matmul NN, ⊙g′ fused
//! update     W_l, b_l ← W_l − lr·dW_l, b_l − lr·db_l  optim, one dispatch per layer
//! ```
//! Updates are recorded after the whole backward pass, so every δ sees the old weights.

use ndarray::{Array1, Array2, ArrayView2};

use crate::error::{Error, Result};
use crate::gpu::context::Gpu;
use crate::gpu::kernels::activation::ActivationKernel;
use crate::gpu::kernels::elementwise::Elementwise;
use crate::gpu::kernels::loss::{OutputLayer, OutputMode};
use crate::gpu::kernels::matmul::{Epilogue, Matmul, MatmulShape};
use crate::gpu::kernels::optim::{Advance, Update, UpdateBuffers};
use crate::gpu::kernels::reduce::{ColumnSum, Sum};
use crate::gpu::kernels::{Dispatch, Recorder};
use crate::model::{Activation, Dense, DenseGradients, Gradients, Loss, Mlp, check_batch};
use crate::optim::{OptimizerConfig, OptimizerState};

/// The batch capacity [`GpuMlp::new`] allocates for; larger batches reallocate once.
pub const DEFAULT_BATCH_CAPACITY: usize = 256;

/// How many submitted steps may be in flight before `train_step` waits for the oldest: enough to
/// overlap host and GPU, few enough that queued uploads cannot pile up.
const MAX_STEPS_IN_FLIGHT: usize = 2;

/// Whether the bias, the activation and the ⊙g′ of backprop ride in the matmul epilogues (one
/// pass over each layer's output) or run as kernels of their own after a plain matmul (three
/// passes). Both compute the same numbers; the unfused step exists so that the benchmark can
/// show what fusing saves (`wgpu-mlp bench --unfused`). The output layer's activation, loss and
/// δ are one kernel either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Fusion {
    /// Epilogues fused into the matmuls.
    #[default]
    Fused,
    /// Plain matmuls, then bias-add and activation kernels (forward) and the activation's
    /// backward kernel (backward).
    Unfused,
}

/// A layer's parameters and their gradients on the device.
struct LayerParams {
    inputs: usize,
    outputs: usize,
    activation: Activation,
    weight: wgpu::Buffer,
    bias: wgpu::Buffer,
    dweight: wgpu::Buffer,
    dbias: wgpu::Buffer,
    /// Optimizer state, `(out·in + out)` each, or one element when the rule keeps none.
    moment1: wgpu::Buffer,
    moment2: wgpu::Buffer,
}

impl LayerParams {
    fn weight_len(&self) -> usize {
        self.outputs * self.inputs
    }

    fn update_buffers<'a>(&'a self, counters: &'a wgpu::Buffer) -> UpdateBuffers<'a> {
        UpdateBuffers {
            weight: &self.weight,
            dweight: &self.dweight,
            bias: &self.bias,
            dbias: &self.dbias,
            moment1: &self.moment1,
            moment2: &self.moment2,
            counters,
        }
    }
}

/// Buffers whose size depends on the batch capacity.
struct BatchBuffers {
    capacity: usize,
    /// `(capacity, inputs)`.
    x: wgpu::Buffer,
    /// `(capacity, outputs)`.
    y: wgpu::Buffer,
    /// `a_l: (capacity, outputs_l)` per layer.
    activations: Vec<wgpu::Buffer>,
    /// `δ_l: (capacity, outputs_l)` per layer.
    deltas: Vec<wgpu::Buffer>,
    /// The output layer's pre-activation `z: (capacity, outputs)`.
    logits: wgpu::Buffer,
    /// [`Fusion::Unfused`] only: per layer `(capacity, outputs_l)`, for the matmul's result
    /// before the bias-add or the ⊙g′ kernel reads it.
    scratch: Vec<wgpu::Buffer>,
    /// `(capacity)`.
    row_loss: wgpu::Buffer,
    /// The batch loss, one value.
    loss: wgpu::Buffer,
    /// Mappable; large enough for every parameter plus the loss, or one batch of outputs.
    staging: wgpu::Buffer,
}

/// The dispatches of one layer's forward pass.
struct LayerForward {
    matmul: Dispatch,
    /// [`Fusion::Unfused`] only: the bias-add…
    bias_add: Option<Dispatch>,
    /// …then, for a hidden layer, the activation.
    activation: Option<Dispatch>,
}

/// The dispatches of one layer's backward pass.
struct LayerBackward {
    dweight: Dispatch,
    dbias: Dispatch,
    /// `δ_{l−1}`; absent for the first layer.
    delta_prev: Option<Dispatch>,
    /// [`Fusion::Unfused`] only: ⊙g′ applied to `delta_prev`'s result.
    delta_prev_epilogue: Option<Dispatch>,
}

/// What a [`Plan`] is bound for besides the buffers.
#[derive(Clone, Copy, Debug)]
struct StepSpec {
    loss: Loss,
    batch: usize,
    optimizer: OptimizerConfig,
    fusion: Fusion,
}

/// Every dispatch of a step, bound once.
struct Plan {
    forward: Vec<LayerForward>,
    output_forward: Dispatch,
    output_loss: Dispatch,
    loss_sum: Dispatch,
    backward: Vec<LayerBackward>,
    advance: Dispatch,
    update: Vec<Dispatch>,
}

/// An [`Mlp`] on the GPU.
pub struct GpuMlp {
    gpu: Gpu,
    loss: Loss,
    layers: Vec<LayerParams>,
    buffers: BatchBuffers,
    plan: Plan,
    /// The batch size the dispatches are currently shaped for.
    batch: usize,
    /// The update rule currently in the update dispatches.
    optimizer: OptimizerConfig,
    /// Whether the plan's matmuls carry the epilogues.
    fusion: Fusion,
    /// `[steps taken, data cursor]`, advanced on the GPU once per step.
    counters: wgpu::Buffer,
    in_flight: std::collections::VecDeque<wgpu::SubmissionIndex>,
    /// Staging for [`GpuMlp::last_loss`], one value.
    loss_staging: wgpu::Buffer,
}

impl std::fmt::Debug for GpuMlp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuMlp")
            .field("sizes", &self.sizes())
            .field("loss", &self.loss)
            .field("batch_capacity", &self.buffers.capacity)
            .finish_non_exhaustive()
    }
}

/// The activation a layer's forward pass applies: the output layer's is in the output kernel.
fn hidden_activation(layer: &LayerParams, is_output: bool) -> Activation {
    if is_output {
        Activation::Identity
    } else {
        layer.activation
    }
}

fn forward_matmul(layer: &LayerParams, is_output: bool, fusion: Fusion) -> Matmul {
    match fusion {
        Fusion::Fused => Matmul::NT.with_epilogue(Epilogue::BiasActivation(hidden_activation(
            layer, is_output,
        ))),
        Fusion::Unfused => Matmul::NT,
    }
}

fn delta_prev_matmul(previous_activation: Activation, fusion: Fusion) -> Matmul {
    match fusion {
        Fusion::Fused => Matmul::NN.with_epilogue(Epilogue::TimesDerivative(previous_activation)),
        Fusion::Unfused => Matmul::NN,
    }
}

/// Row-major contiguous data of `array`, copying only if it is not already.
fn contiguous(array: ArrayView2<'_, f32>) -> std::borrow::Cow<'_, [f32]> {
    match array.to_slice() {
        Some(slice) => std::borrow::Cow::Borrowed(slice),
        None => std::borrow::Cow::Owned(array.iter().copied().collect()),
    }
}

impl GpuMlp {
    /// Uploads `mlp` to `gpu`, with buffers for batches of up to [`DEFAULT_BATCH_CAPACITY`].
    pub fn new(gpu: &Gpu, mlp: &Mlp) -> Result<GpuMlp> {
        Self::with_batch_capacity(gpu, mlp, DEFAULT_BATCH_CAPACITY)
    }

    /// Uploads `mlp` to `gpu`, with buffers for batches of up to `capacity` rows. The network
    /// trains with plain SGD until [`GpuMlp::set_optimizer`] says otherwise.
    pub fn with_batch_capacity(gpu: &Gpu, mlp: &Mlp, capacity: usize) -> Result<GpuMlp> {
        mlp.validate()?;
        if capacity == 0 {
            return Err(Error::invalid("batch capacity", "0 (must be at least 1)"));
        }
        Self::check_fits(gpu, mlp, capacity)?;
        let optimizer = OptimizerConfig::sgd(0.1);
        let layers = mlp
            .layers
            .iter()
            .enumerate()
            .map(|(i, layer)| {
                let (outputs, inputs) = layer.weight.dim();
                let name = |what: &str| format!("layer{i}.{what}");
                Ok(LayerParams {
                    inputs,
                    outputs,
                    activation: layer.activation,
                    weight: gpu.storage_buffer(&name("weight"), outputs * inputs)?,
                    bias: gpu.storage_buffer(&name("bias"), outputs)?,
                    dweight: gpu.storage_buffer(&name("dweight"), outputs * inputs)?,
                    dbias: gpu.storage_buffer(&name("dbias"), outputs)?,
                    moment1: gpu.storage_buffer(&name("moment1"), 1)?,
                    moment2: gpu.storage_buffer(&name("moment2"), 1)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let counters = gpu.storage_buffer("gpu_mlp.counters", 2)?;
        let fusion = Fusion::Fused;
        let buffers = Self::allocate_batch_buffers(gpu, &layers, capacity, fusion)?;
        let step = StepSpec {
            loss: mlp.loss,
            batch: capacity,
            optimizer,
            fusion,
        };
        let plan = Self::bind_plan(gpu, &layers, &buffers, &counters, step)?;
        let loss_staging = gpu.staging_buffer("gpu_mlp.loss_staging", 4)?;
        let mut net = GpuMlp {
            gpu: gpu.clone(),
            loss: mlp.loss,
            layers,
            buffers,
            plan,
            batch: capacity,
            optimizer,
            fusion,
            counters,
            in_flight: Default::default(),
            loss_staging,
        };
        net.set_parameters(mlp)?;
        Ok(net)
    }

    /// Refuses, before anything is allocated, a model or batch capacity whose buffers exceed the
    /// device's limits, naming the first buffer that does not fit. (Optimizer moments, allocated
    /// by [`GpuMlp::set_optimizer`], are the size of the weights and are checked there.)
    fn check_fits(gpu: &Gpu, mlp: &Mlp, capacity: usize) -> Result<()> {
        let bytes = |values: usize| (values as u64).saturating_mul(4);
        let mut buffers = vec![
            (
                "batch.x".to_string(),
                bytes(capacity.saturating_mul(mlp.inputs())),
            ),
            (
                "batch.y".to_string(),
                bytes(capacity.saturating_mul(mlp.outputs())),
            ),
        ];
        for (i, layer) in mlp.layers.iter().enumerate() {
            buffers.push((
                format!("layer {i} weight [{}, {}]", layer.outputs(), layer.inputs()),
                bytes(layer.weight.len()),
            ));
            buffers.push((
                format!("layer {i} activations for a batch of {capacity}"),
                bytes(capacity.saturating_mul(layer.outputs())),
            ));
        }
        buffers
            .iter()
            .try_for_each(|(what, size)| gpu.check_storage_size(what, *size))
    }

    /// Switches the update rule. A new rule starts from zero moments and step 0; a new learning
    /// rate or weight decay for the same rule keeps the state.
    pub fn set_optimizer(&mut self, optimizer: OptimizerConfig) -> Result<()> {
        optimizer.validate()?;
        if optimizer == self.optimizer {
            return Ok(());
        }
        let same_rule = std::mem::discriminant(&optimizer.optimizer)
            == std::mem::discriminant(&self.optimizer.optimizer);
        if same_rule {
            for (layer, dispatch) in self.layers.iter().zip(&mut self.plan.update) {
                Update { config: optimizer }.reconfigure(
                    &self.gpu,
                    dispatch,
                    layer.weight_len(),
                    layer.outputs,
                )?;
            }
        } else {
            self.wait_idle()?;
            let states = optimizer.optimizer.state_per_parameter();
            for (i, layer) in self.layers.iter().enumerate() {
                let bytes = ((layer.weight_len() + layer.outputs) * 4) as u64;
                if states > 0 {
                    self.gpu
                        .check_storage_size(&format!("layer {i} optimizer state"), bytes)?;
                }
            }
            for (i, layer) in self.layers.iter_mut().enumerate() {
                let len = if states > 0 {
                    layer.weight_len() + layer.outputs
                } else {
                    1
                };
                layer.moment1 = self.gpu.storage_buffer(
                    &format!("layer{i}.moment1"),
                    if states >= 1 { len } else { 1 },
                )?;
                layer.moment2 = self.gpu.storage_buffer(
                    &format!("layer{i}.moment2"),
                    if states >= 2 { len } else { 1 },
                )?;
            }
            self.gpu
                .queue()
                .write_buffer(&self.counters, 0, bytemuck::cast_slice(&[0u32, 0]));
            self.plan.update =
                Self::bind_updates(&self.gpu, &self.layers, &self.counters, &optimizer)?;
        }
        self.optimizer = optimizer;
        Ok(())
    }

    /// The update rule in use.
    pub fn optimizer(&self) -> OptimizerConfig {
        self.optimizer
    }

    /// Whether the step's matmuls carry their epilogues.
    pub fn fusion(&self) -> Fusion {
        self.fusion
    }

    /// Rebinds the step to `fusion` (allocating or freeing the unfused step's scratch buffers).
    /// Weights, optimizer state and counters are untouched.
    pub fn set_fusion(&mut self, fusion: Fusion) -> Result<()> {
        if fusion == self.fusion {
            return Ok(());
        }
        self.wait_idle()?;
        let buffers =
            Self::allocate_batch_buffers(&self.gpu, &self.layers, self.buffers.capacity, fusion)?;
        let step = StepSpec {
            fusion,
            ..self.step_spec()
        };
        let plan = Self::bind_plan(&self.gpu, &self.layers, &buffers, &self.counters, step)?;
        (self.buffers, self.plan, self.fusion) = (buffers, plan, fusion);
        Ok(())
    }

    /// The layer sizes `[inputs, hidden…, outputs]`.
    pub fn sizes(&self) -> Vec<usize> {
        let mut sizes = vec![self.layers[0].inputs];
        sizes.extend(self.layers.iter().map(|l| l.outputs));
        sizes
    }

    /// The loss this network is trained on.
    pub fn loss_kind(&self) -> Loss {
        self.loss
    }

    /// The GPU context the network lives on.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// The largest batch the current buffers hold.
    pub fn batch_capacity(&self) -> usize {
        self.buffers.capacity
    }

    /// Input width.
    pub fn inputs(&self) -> usize {
        self.layers[0].inputs
    }

    /// Output width.
    pub fn outputs(&self) -> usize {
        self.layers[self.layers.len() - 1].outputs
    }

    fn allocate_batch_buffers(
        gpu: &Gpu,
        layers: &[LayerParams],
        capacity: usize,
        fusion: Fusion,
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
        })
    }

    /// What the plan is bound for, as it is now.
    fn step_spec(&self) -> StepSpec {
        StepSpec {
            loss: self.loss,
            batch: self.batch,
            optimizer: self.optimizer,
            fusion: self.fusion,
        }
    }

    /// Binds every dispatch of a step for `step.batch` rows.
    fn bind_plan(
        gpu: &Gpu,
        layers: &[LayerParams],
        buffers: &BatchBuffers,
        counters: &wgpu::Buffer,
        step: StepSpec,
    ) -> Result<Plan> {
        let StepSpec {
            loss,
            batch,
            optimizer,
            fusion,
        } = step;
        let last = layers.len() - 1;
        let input_of = |l: usize| {
            if l == 0 {
                &buffers.x
            } else {
                &buffers.activations[l - 1]
            }
        };
        // Every product's pipeline at once, compiled in parallel (the shapes are those bound
        // below; layout and epilogue are run-time parameters and need no pipeline of their own).
        let mut specs = Vec::new();
        for (l, layer) in layers.iter().enumerate() {
            let (inputs, outputs) = (layer.inputs, layer.outputs);
            let mut product = |variant: Matmul, m, n, k| {
                specs.extend(variant.pipeline_specs(gpu, MatmulShape { m, n, k }));
            };
            product(Matmul::NT, batch, outputs, inputs);
            product(Matmul::TN, outputs, inputs, batch);
            if l > 0 {
                product(Matmul::NN, batch, inputs, outputs);
            }
        }
        gpu.prepare_pipelines(&specs)?;

        let mut forward = Vec::with_capacity(layers.len());
        for (l, layer) in layers.iter().enumerate() {
            let output = if l == last {
                &buffers.logits
            } else {
                &buffers.activations[l]
            };
            let shape = MatmulShape {
                m: batch,
                n: layer.outputs,
                k: layer.inputs,
            };
            let label = |what: &str| format!("layer{l}.{what}");
            let matmul_output = match fusion {
                Fusion::Fused => output,
                Fusion::Unfused => &buffers.scratch[l],
            };
            let matmul = forward_matmul(layer, l == last, fusion).bind(
                gpu,
                &label("forward"),
                shape,
                input_of(l),
                &layer.weight,
                &layer.bias,
                &layer.bias, // no aux operand in this epilogue
                matmul_output,
            )?;
            let (mut bias_add, mut activation_kernel) = (None, None);
            if fusion == Fusion::Unfused {
                let (rows, cols) = (batch, layer.outputs);
                let activation = hidden_activation(layer, l == last);
                // scratch + bias → z, then g(z) → a. The output layer has no activation here
                // (it is in the output kernel), so its bias-add writes the logits directly; a
                // hidden layer keeps z in its δ buffer, which nothing reads until backward
                // overwrites it.
                let z = if activation == Activation::Identity {
                    output
                } else {
                    &buffers.deltas[l] // free until the backward pass writes δ_l
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
                    activation_kernel = Some(ActivationKernel::Forward(activation).bind(
                        gpu,
                        &label("activation"),
                        rows,
                        cols,
                        z,
                        z, // forward reads no second operand
                        output,
                    )?);
                }
            }
            forward.push(LayerForward {
                matmul,
                bias_add,
                activation: activation_kernel,
            });
        }

        let output_layer = &layers[last];
        let output_kernel = |mode, label: &str| {
            OutputLayer {
                activation: output_layer.activation,
                loss,
                mode,
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
        let output_forward = output_kernel(OutputMode::Forward, "output.forward")?;
        let output_loss = output_kernel(OutputMode::Loss, "output.loss")?;
        let loss_sum = Sum::bind(
            gpu,
            "output.loss_sum",
            batch,
            &buffers.row_loss,
            &buffers.loss,
        )?;

        let mut backward = Vec::with_capacity(layers.len());
        for (l, layer) in layers.iter().enumerate() {
            let delta = &buffers.deltas[l];
            let dweight = Matmul::TN.bind(
                gpu,
                &format!("layer{l}.dweight"),
                MatmulShape {
                    m: layer.outputs,
                    n: layer.inputs,
                    k: batch,
                },
                delta,
                input_of(l),
                delta, // no bias or aux operand: any read-only buffer
                delta,
                &layer.dweight,
            )?;
            let dbias = ColumnSum::bind(
                gpu,
                &format!("layer{l}.dbias"),
                batch,
                layer.outputs,
                delta,
                &layer.dbias,
            )?;
            let (delta_prev, delta_prev_epilogue) = if l == 0 {
                (None, None)
            } else {
                let previous = &buffers.activations[l - 1];
                let previous_activation = layers[l - 1].activation;
                let matmul_output = match fusion {
                    Fusion::Fused => &buffers.deltas[l - 1],
                    Fusion::Unfused => &buffers.scratch[l - 1],
                };
                let delta_prev = delta_prev_matmul(previous_activation, fusion).bind(
                    gpu,
                    &format!("layer{}.delta", l - 1),
                    MatmulShape {
                        m: batch,
                        n: layer.inputs,
                        k: layer.outputs,
                    },
                    delta,
                    &layer.weight,
                    previous, // no bias operand: any read-only buffer
                    previous,
                    matmul_output,
                )?;
                let epilogue = match fusion {
                    Fusion::Fused => None,
                    Fusion::Unfused => Some(ActivationKernel::Backward(previous_activation).bind(
                        gpu,
                        &format!("layer{}.activation_backward", l - 1),
                        batch,
                        layer.inputs,
                        previous,
                        matmul_output,
                        &buffers.deltas[l - 1],
                    )?),
                };
                (Some(delta_prev), epilogue)
            };
            backward.push(LayerBackward {
                dweight,
                dbias,
                delta_prev,
                delta_prev_epilogue,
            });
        }

        let advance = Advance::bind(
            gpu,
            "gpu_mlp.advance",
            &layers[0].update_buffers(counters),
            batch,
        )?;
        let update = Self::bind_updates(gpu, layers, counters, &optimizer)?;

        Ok(Plan {
            forward,
            output_forward,
            output_loss,
            loss_sum,
            backward,
            advance,
            update,
        })
    }

    fn bind_updates(
        gpu: &Gpu,
        layers: &[LayerParams],
        counters: &wgpu::Buffer,
        optimizer: &OptimizerConfig,
    ) -> Result<Vec<Dispatch>> {
        let update = Update { config: *optimizer };
        layers
            .iter()
            .enumerate()
            .map(|(l, layer)| {
                let label = format!("layer{l}.{}", optimizer.optimizer.name());
                update.bind(
                    gpu,
                    &label,
                    &layer.update_buffers(counters),
                    layer.weight_len(),
                    layer.outputs,
                )
            })
            .collect()
    }

    /// The batch input buffer `x: (capacity, inputs)`, for kernels that fill it on the GPU.
    pub(crate) fn x_buffer(&self) -> &wgpu::Buffer {
        &self.buffers.x
    }

    /// The batch target buffer `y: (capacity, outputs)`.
    pub(crate) fn y_buffer(&self) -> &wgpu::Buffer {
        &self.buffers.y
    }

    /// The output activations `(capacity, outputs)`.
    pub(crate) fn output_buffer(&self) -> &wgpu::Buffer {
        &self.buffers.activations[self.layers.len() - 1]
    }

    /// The batch's mean loss, one value.
    pub(crate) fn loss_buffer(&self) -> &wgpu::Buffer {
        &self.buffers.loss
    }

    /// `[steps taken, data cursor]`.
    pub(crate) fn counters_buffer(&self) -> &wgpu::Buffer {
        &self.counters
    }

    /// The batch size the dispatches are shaped for.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Reshapes every dispatch for `batch` rows (growing the buffers first if needed; callers
    /// that bound the batch buffers elsewhere must rebind them if the capacity grew).
    pub(crate) fn set_batch(&mut self, batch: usize) -> Result<()> {
        if batch == self.batch {
            return Ok(());
        }
        if batch > self.buffers.capacity {
            let capacity = batch.next_power_of_two();
            self.wait_idle()?;
            self.buffers =
                Self::allocate_batch_buffers(&self.gpu, &self.layers, capacity, self.fusion)?;
            let step = StepSpec {
                batch,
                ..self.step_spec()
            };
            self.plan =
                Self::bind_plan(&self.gpu, &self.layers, &self.buffers, &self.counters, step)?;
            self.batch = batch;
            return Ok(());
        }
        let gpu = &self.gpu;
        let last = self.layers.len() - 1;
        for (l, layer) in self.layers.iter().enumerate() {
            let shape = MatmulShape {
                m: batch,
                n: layer.outputs,
                k: layer.inputs,
            };
            let fusion = self.fusion;
            let forward = &mut self.plan.forward[l];
            forward_matmul(layer, l == last, fusion).reshape(gpu, &mut forward.matmul, shape)?;
            if let Some(bias_add) = forward.bias_add.as_mut() {
                Elementwise::BiasAdd.reshape(gpu, bias_add, batch, layer.outputs)?;
            }
            if let Some(activation) = forward.activation.as_mut() {
                let kernel = ActivationKernel::Forward(hidden_activation(layer, l == last));
                kernel.reshape(gpu, activation, batch, layer.outputs)?;
            }
            let backward = &mut self.plan.backward[l];
            Matmul::TN.reshape(
                gpu,
                &mut backward.dweight,
                MatmulShape {
                    m: layer.outputs,
                    n: layer.inputs,
                    k: batch,
                },
            )?;
            ColumnSum::reshape(gpu, &mut backward.dbias, batch, layer.outputs)?;
            if let Some(delta_prev) = backward.delta_prev.as_mut() {
                let shape = MatmulShape {
                    m: batch,
                    n: layer.inputs,
                    k: layer.outputs,
                };
                let previous_activation = self.layers[l - 1].activation;
                delta_prev_matmul(previous_activation, fusion).reshape(gpu, delta_prev, shape)?;
            }
            if let Some(epilogue) = backward.delta_prev_epilogue.as_mut() {
                ActivationKernel::Backward(self.layers[l - 1].activation).reshape(
                    gpu,
                    epilogue,
                    batch,
                    layer.inputs,
                )?;
            }
        }
        let outputs = self.outputs();
        OutputLayer::reshape(gpu, &mut self.plan.output_forward, batch, outputs)?;
        OutputLayer::reshape(gpu, &mut self.plan.output_loss, batch, outputs)?;
        Sum::reshape(gpu, &mut self.plan.loss_sum, batch)?;
        Advance::reshape(gpu, &mut self.plan.advance, batch);
        self.batch = batch;
        Ok(())
    }

    /// Checks `x` (and `y`) and writes them into the batch buffers, reshaping for their rows.
    fn upload_batch(&mut self, x: ArrayView2<f32>, y: Option<ArrayView2<f32>>) -> Result<usize> {
        check_batch(self.inputs(), self.outputs(), x, y)?;
        let batch = x.nrows();
        self.set_batch(batch)?;
        let queue = self.gpu.queue();
        queue.write_buffer(&self.buffers.x, 0, bytemuck::cast_slice(&contiguous(x)));
        if let Some(y) = y {
            queue.write_buffer(&self.buffers.y, 0, bytemuck::cast_slice(&contiguous(y)));
        }
        Ok(batch)
    }

    /// Records the forward pass, and with `training` the output loss and δ.
    pub(crate) fn record_forward(&self, pass: &mut impl Recorder, training: bool) {
        for layer in &self.plan.forward {
            for dispatch in std::iter::once(&layer.matmul)
                .chain(&layer.bias_add)
                .chain(&layer.activation)
            {
                dispatch.record(pass);
            }
        }
        if training {
            self.plan.output_loss.record(pass);
            self.plan.loss_sum.record(pass);
        } else {
            self.plan.output_forward.record(pass);
        }
    }

    fn record_backward(&self, pass: &mut impl Recorder) {
        for step in self.plan.backward.iter().rev() {
            step.dweight.record(pass);
            step.dbias.record(pass);
            for dispatch in step.delta_prev.iter().chain(&step.delta_prev_epilogue) {
                dispatch.record(pass);
            }
        }
    }

    /// An encoder with one compute pass holding whatever `record` puts in it.
    pub(crate) fn encode(
        &self,
        label: &str,
        record: impl FnOnce(&mut wgpu::ComputePass<'_>),
    ) -> wgpu::CommandEncoder {
        let mut encoder = self.gpu.encoder(label);
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(label),
                timestamp_writes: None,
            });
            record(&mut pass);
        }
        encoder
    }

    /// One training step on the batch `x: (batch, in)`, `y: (batch, out)` at `learning_rate`:
    /// forward, loss, backward and update in one submission. The update is plain SGD unless
    /// [`GpuMlp::set_optimizer`] chose another rule. Nothing is read back; see
    /// [`GpuMlp::last_loss`].
    pub fn train_step(
        &mut self,
        x: ArrayView2<f32>,
        y: ArrayView2<f32>,
        learning_rate: f32,
    ) -> Result<()> {
        self.set_optimizer(OptimizerConfig {
            learning_rate,
            ..self.optimizer
        })?;
        self.upload_batch(x, Some(y))?;
        let encoder = self.encode("train_step", |pass| self.record_step(pass));
        self.submit(encoder)
    }

    /// Records one whole training step on whatever is in the batch buffers.
    pub(crate) fn record_step(&self, pass: &mut impl Recorder) {
        self.record_forward(pass, true);
        self.record_backward(pass);
        self.plan.advance.record(pass);
        for dispatch in &self.plan.update {
            dispatch.record(pass);
        }
    }

    /// Submits a step and bounds the number in flight.
    pub(crate) fn submit(&mut self, encoder: wgpu::CommandEncoder) -> Result<()> {
        let index = self.gpu.queue().submit([encoder.finish()]);
        self.in_flight.push_back(index);
        if self.in_flight.len() > MAX_STEPS_IN_FLIGHT
            && let Some(oldest) = self.in_flight.pop_front()
        {
            self.gpu
                .device()
                .poll(wgpu::PollType::Wait {
                    submission_index: Some(oldest),
                    timeout: Some(crate::gpu::context::READBACK_TIMEOUT),
                })
                .map_err(|e| Error::Gpu {
                    during: "waiting for a training step".into(),
                    message: e.to_string(),
                })?;
        }
        self.gpu.check_fault()
    }

    /// Waits until every submitted step has finished.
    pub(crate) fn wait_idle(&mut self) -> Result<()> {
        self.in_flight.clear();
        self.gpu.submit_and_wait(self.gpu.encoder("wait_idle"))
    }

    /// The mean loss of the batch of the last [`GpuMlp::train_step`] (before its update) or
    /// [`GpuMlp::loss_and_gradients`]. Reads one value back.
    pub fn last_loss(&mut self) -> Result<f32> {
        self.in_flight.clear();
        let encoder = self.gpu.encoder("last_loss");
        let values = self.gpu.read_back(
            "the loss",
            encoder,
            &self.loss_staging,
            &[(&self.buffers.loss, 1)],
        )?;
        Ok(values[0][0])
    }

    /// The loss on `x: (batch, in)`, `y: (batch, out)` and the gradient of every layer, computed
    /// on the GPU and read back. The parameters are not changed.
    pub fn loss_and_gradients(
        &mut self,
        x: ArrayView2<f32>,
        y: ArrayView2<f32>,
    ) -> Result<(f32, Gradients)> {
        self.upload_batch(x, Some(y))?;
        let encoder = self.encode("loss_and_gradients", |pass| {
            self.record_forward(pass, true);
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
            .read_back(
                "the loss and gradients",
                encoder,
                &self.buffers.staging,
                &sources,
            )?
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

    /// The output activations for `x: (batch, in)`, as `(batch, out)`.
    pub fn forward(&mut self, x: ArrayView2<f32>) -> Result<Array2<f32>> {
        let batch = self.upload_batch(x, None)?;
        let encoder = self.encode("forward", |pass| self.record_forward(pass, false));
        let outputs = self.outputs();
        let last = self.layers.len() - 1;
        self.in_flight.clear();
        let mut values = self.gpu.read_back(
            "the outputs",
            encoder,
            &self.buffers.staging,
            &[(&self.buffers.activations[last], batch * outputs)],
        )?;
        Array2::from_shape_vec((batch, outputs), values.pop().unwrap_or_default())
            .map_err(|e| Error::invalid("output read-back", e.to_string()))
    }

    /// Replaces the parameters with those of `mlp`, which must have the same architecture.
    pub fn set_parameters(&mut self, mlp: &Mlp) -> Result<()> {
        mlp.validate()?;
        if mlp.sizes() != self.sizes() || mlp.loss != self.loss {
            return Err(Error::Model(format!(
                "cannot load a {:?} {} model into a {:?} {} network",
                mlp.sizes(),
                mlp.loss.name(),
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

    /// Downloads the optimizer's state: its moments (zero for rules that keep none) and the
    /// number of steps taken, as [`OptimizerState`] holds them on the CPU.
    pub fn optimizer_state(&mut self) -> Result<OptimizerState> {
        let states = self.optimizer.optimizer.state_per_parameter();
        let mut sources: Vec<(&wgpu::Buffer, usize)> = vec![(&self.counters, 1)];
        for layer in &self.layers {
            let len = layer.weight_len() + layer.outputs;
            sources.push((&layer.moment1, if states >= 1 { len } else { 0 }));
            sources.push((&layer.moment2, if states >= 2 { len } else { 0 }));
        }
        self.in_flight.clear();
        // A one-off read of up to twice the model: its own staging buffer, not the step's.
        let bytes = sources.iter().map(|(_, len)| *len as u64 * 4).sum();
        let staging = self
            .gpu
            .staging_buffer("gpu_mlp.optimizer_staging", bytes)?;
        let encoder = self.gpu.encoder("optimizer_state");
        let values: Vec<Vec<u32>> =
            self.gpu
                .read_back("the optimizer state", encoder, &staging, &sources)?;
        let split = |words: &[u32], layer: &LayerParams| -> Result<(Array2<f32>, Array1<f32>)> {
            if words.is_empty() {
                return Ok((
                    Array2::zeros((layer.outputs, layer.inputs)),
                    Array1::zeros(layer.outputs),
                ));
            }
            let floats: Vec<f32> = words.iter().map(|w| f32::from_bits(*w)).collect();
            let (weight, bias) = floats.split_at(layer.weight_len());
            let weight = Array2::from_shape_vec((layer.outputs, layer.inputs), weight.to_vec())
                .map_err(|e| Error::invalid("optimizer state read-back", e.to_string()))?;
            Ok((weight, Array1::from(bias.to_vec())))
        };
        let mut moment1 = Vec::new();
        let mut moment2 = Vec::new();
        for (l, layer) in self.layers.iter().enumerate() {
            moment1.push(split(&values[1 + 2 * l], layer)?);
            moment2.push(split(&values[2 + 2 * l], layer)?);
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
        let queue = self.gpu.queue();
        for (i, layer) in self.layers.iter().enumerate() {
            for (k, (moments, buffer)) in [
                (&state.moment1[i], &layer.moment1),
                (&state.moment2[i], &layer.moment2),
            ]
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
                    let mut values: Vec<f32> = weight.iter().copied().collect();
                    values.extend(bias.iter());
                    queue.write_buffer(buffer, 0, bytemuck::cast_slice(&values));
                }
            }
        }
        queue.write_buffer(&self.counters, 0, bytemuck::bytes_of(&steps));
        Ok(())
    }

    /// Downloads the parameters into a host-side [`Mlp`].
    pub fn to_mlp(&mut self) -> Result<Mlp> {
        let mut sources = Vec::new();
        for layer in &self.layers {
            sources.push((&layer.weight, layer.outputs * layer.inputs));
            sources.push((&layer.bias, layer.outputs));
        }
        self.in_flight.clear();
        let encoder = self.gpu.encoder("to_mlp");
        let mut values = self
            .gpu
            .read_back("the parameters", encoder, &self.buffers.staging, &sources)?
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
        })
    }
}
