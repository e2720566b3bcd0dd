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
//! clip       (with a clip norm) Σ g² per layer, then the scale   optim, no read-back
//! GELU/SiLU  (hidden layers whose g′ needs z) the forward matmul writes z to a buffer of its own
//!            and an activation kernel gives a_l; backward's ⊙g′ reads that z
//! dropout    (training, where asked for) x and a_l ⊙ mask after the forward epilogue, δ_{l−1} ⊙
//!            mask after the backward one, g′ from a copy of a_l kept before the mask   dropout
//! update     W_l, b_l ← W_l − lr·dW_l, b_l − lr·db_l  optim, a dispatch per layer or per tensor
//! ```
//! Updates are recorded after the whole backward pass, so every δ sees the old weights.
//!
//! This file builds the network and switches its optimizer and fusion; `buffers` holds the
//! device buffers, `products` each layer's matrix products, `plan` the bound dispatches,
//! `step` recording and submitting a step, and `transfer` what moves to and from the host.

mod buffers;
mod plan;
mod products;
mod step;
mod transfer;

use crate::error::{Error, Result};
use crate::gpu::context::Gpu;
use crate::gpu::kernels::optim::{MomentLayout, Update, counters_len};
use crate::model::{Loss, Mlp};
use crate::optim::OptimizerConfig;
use crate::rng::philox_key;
use crate::train::Regularization;
use buffers::{BatchBuffers, LayerParams};
use plan::{Plan, StepSpec, StepState};

/// The batch capacity [`GpuMlp::new`] allocates for; larger batches reallocate once.
pub const DEFAULT_BATCH_CAPACITY: usize = 256;

/// How many submitted steps may be in flight before `train_step` waits for the oldest: enough to
/// overlap host and GPU, few enough that queued uploads cannot pile up.
const MAX_STEPS_IN_FLIGHT: usize = 2;

/// A submitted step that may still run: natively its index, to wait for; in a browser a future
/// ready once it has finished.
#[cfg(not(target_arch = "wasm32"))]
type InFlight = wgpu::SubmissionIndex;
#[cfg(target_arch = "wasm32")]
type InFlight = std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;

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
    /// Label smoothing, gradient clipping and dropout, as the plan is bound for them.
    regularization: Regularization,
    /// `philox_key(seed)`, which dropout's masks are drawn under.
    dropout_key: [u32; 2],
    /// Whether the plan's matmuls carry the epilogues.
    fusion: Fusion,
    /// `[steps taken, data cursor, gradient scale, Σ g² per layer…]`: the first two advanced on
    /// the GPU once per step, the others written by the clipping kernels.
    counters: wgpu::Buffer,
    in_flight: std::collections::VecDeque<InFlight>,
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
            .map(|(i, layer)| LayerParams::allocate(gpu, i, layer, mlp.leaky_slope))
            .collect::<Result<Vec<_>>>()?;
        let counters = gpu.storage_buffer("gpu_mlp.counters", counters_len(layers.len()))?;
        let fusion = Fusion::Fused;
        let regularization = Regularization::default();
        let buffers =
            BatchBuffers::allocate(gpu, &layers, capacity, fusion, &regularization.dropout)?;
        let dropout_key = philox_key(0);
        let step = StepSpec {
            loss: mlp.loss,
            batch: capacity,
            optimizer,
            regularization: regularization.clone(),
            fusion,
            dropout_key,
        };
        let state = StepState {
            counters: &counters,
        };
        let plan = Plan::bind(gpu, &layers, &buffers, state, step)?;
        let loss_staging = gpu.staging_buffer("gpu_mlp.loss_staging", 4)?;
        let mut net = GpuMlp {
            gpu: gpu.clone(),
            loss: mlp.loss,
            layers,
            buffers,
            plan,
            batch: capacity,
            optimizer,
            regularization,
            dropout_key,
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
                Update {
                    config: optimizer,
                    clip_norm: self.regularization.clip_norm,
                }
                .reconfigure(
                    &self.gpu,
                    dispatch,
                    layer.weight_len(),
                    layer.outputs,
                )?;
            }
        } else {
            self.wait_idle()?;
            let states = optimizer.optimizer.state_per_parameter();
            let layout = MomentLayout::of(&self.gpu);
            let what = |i: usize| match layout {
                MomentLayout::Separate => format!("layer {i} optimizer moment"),
                MomentLayout::Shared => format!(
                    "layer {i} optimizer state ({states} moments in one binding, as the device \
                     binds {} storage buffers per stage)",
                    self.gpu.limits().max_storage_buffers_per_shader_stage
                ),
            };
            for (i, layer) in self.layers.iter().enumerate() {
                let [largest, _] = layout.lengths(states, layer.weight_len() + layer.outputs);
                self.gpu
                    .check_storage_size(&what(i), (largest * 4) as u64)?;
            }
            for (i, layer) in self.layers.iter_mut().enumerate() {
                let [first, second] = layout.lengths(states, layer.weight_len() + layer.outputs);
                layer.moments = self
                    .gpu
                    .storage_buffer(&format!("layer{i}.moments"), first)?;
                layer.second_moments = self
                    .gpu
                    .storage_buffer(&format!("layer{i}.second_moments"), second)?;
            }
            self.gpu
                .queue()
                .write_buffer(&self.counters, 0, bytemuck::cast_slice(&[0u32, 0]));
            self.plan.update = Plan::bind_updates(
                &self.gpu,
                &self.layers,
                self.step_state(),
                &optimizer,
                self.regularization.clip_norm,
            )?;
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
        let capacity = self.buffers.capacity;
        let dropout = &self.regularization.dropout;
        let buffers = BatchBuffers::allocate(&self.gpu, &self.layers, capacity, fusion, dropout)?;
        let step = StepSpec {
            fusion,
            ..self.step_spec()
        };
        let plan = Plan::bind(&self.gpu, &self.layers, &buffers, self.step_state(), step)?;
        (self.buffers, self.plan, self.fusion) = (buffers, plan, fusion);
        Ok(())
    }

    /// Rebinds the step for `regularization` (label smoothing in the training loss, gradient
    /// clipping before the updates, dropout in training steps). Weights, optimizer state and
    /// counters are untouched.
    pub fn set_regularization(&mut self, regularization: Regularization) -> Result<()> {
        regularization.validate(self.loss, self.layers.len() - 1)?;
        if regularization == self.regularization {
            return Ok(());
        }
        if regularization.dropout != self.regularization.dropout {
            self.wait_idle()?;
            self.buffers.undropped = BatchBuffers::allocate_undropped(
                &self.gpu,
                &self.layers,
                self.buffers.capacity,
                &regularization.dropout,
            )?;
        }
        self.rebind(StepSpec {
            regularization: regularization.clone(),
            ..self.step_spec()
        })?;
        self.regularization = regularization;
        Ok(())
    }

    /// The label smoothing, gradient clipping and dropout the step applies.
    pub fn regularization(&self) -> &Regularization {
        &self.regularization
    }

    /// Draws dropout's masks under `philox_key(seed)` (the run's seed; 0 until set).
    pub fn set_dropout_seed(&mut self, seed: u64) -> Result<()> {
        let dropout_key = philox_key(seed);
        if dropout_key == self.dropout_key {
            return Ok(());
        }
        self.dropout_key = dropout_key;
        if self.regularization.dropout.is_active() {
            self.rebind(self.step_spec())?;
        }
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

    /// What the plan is bound for, as it is now.
    fn step_spec(&self) -> StepSpec {
        StepSpec {
            loss: self.loss,
            batch: self.batch,
            optimizer: self.optimizer,
            regularization: self.regularization.clone(),
            fusion: self.fusion,
            dropout_key: self.dropout_key,
        }
    }

    /// Binds a new plan for `step` to the current buffers.
    fn rebind(&mut self, step: StepSpec) -> Result<()> {
        self.plan = Plan::bind(
            &self.gpu,
            &self.layers,
            &self.buffers,
            self.step_state(),
            step,
        )?;
        Ok(())
    }

    /// The network-wide buffers the updates bind.
    fn step_state(&self) -> StepState<'_> {
        StepState {
            counters: &self.counters,
        }
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
}
