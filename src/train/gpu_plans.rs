//! What the GPU trainer records around the network's own step, bound once when it is built: the
//! data set's gathers ([`super::gpu_data`]), and the loss, accuracy and squared-error
//! bookkeeping.

use super::gpu_data::{DataPlacement, GatherTarget, GpuDataset, HostData};
use super::total_squares;
use crate::data::Targets;
use crate::error::Result;
use crate::gpu::context::Gpu;
use crate::gpu::kernels::Dispatch;
use crate::gpu::kernels::data::{Gather, GatherBuffers, GatherShape};
use crate::gpu::kernels::metrics::{Metrics, MetricsBuffers};
use crate::gpu::network::GpuMlp;

/// Everything an evaluation pass records per batch, bound once.
pub(super) struct EvalPlan {
    pub(super) dataset: GpuDataset,
    pub(super) counters: wgpu::Buffer,
    /// Classification: `[correct, confusion…]`; regression: unused.
    pub(super) counts: wgpu::Buffer,
    /// `[Σ loss·rows, Σ squared error of each output (regression)…]`.
    pub(super) loss_total: wgpu::Buffer,
    pub(super) advance_cursor: Dispatch,
    /// Accuracy and confusion (classification) or squared errors (regression).
    pub(super) scores: Dispatch,
    pub(super) accumulate_loss: Dispatch,
    /// Regression: `Σ (y − ȳ)²` of each output over the set, for R².
    pub(super) total_squares: Option<Vec<f64>>,
}

/// Everything a training step records besides the network's own step, bound once.
pub(super) struct TrainPlan {
    pub(super) dataset: GpuDataset,
    pub(super) accumulate_loss: Dispatch,
    pub(super) watch_loss: Dispatch,
    /// `[steps this epoch, first step whose loss was not finite (0: none)]`.
    pub(super) watch: wgpu::Buffer,
    pub(super) loss_total: wgpu::Buffer,
}

impl TrainPlan {
    pub(super) fn bind(
        gpu: &Gpu,
        net: &GpuMlp,
        train: HostData<'_>,
        placement: DataPlacement,
        batch: usize,
    ) -> Result<Self> {
        let outputs = net.outputs();
        let target = GatherTarget {
            counters: net.counters_buffer(),
            x: net.x_buffer(),
            y: net.y_buffer(),
        };
        let dataset = GpuDataset::bind(gpu, "train", train, placement, batch, &target)?;
        let watch = gpu.storage_buffer("train.watch", 2)?;
        let loss_total = gpu.storage_buffer("train.loss_total", 1)?;
        let metrics_buffers = MetricsBuffers {
            a: net.output_buffer(),
            y: net.y_buffer(),
            batch_loss: net.loss_buffer(),
            counts: &watch,
            loss_total: &loss_total,
        };
        let accumulate_loss = Metrics::bind_accumulate_loss(
            gpu,
            "train.accumulate_loss",
            &metrics_buffers,
            batch,
            outputs,
        )?;
        let watch_loss =
            Metrics::bind_watch_loss(gpu, "train.watch_loss", &metrics_buffers, outputs)?;
        Ok(TrainPlan {
            dataset,
            accumulate_loss,
            watch_loss,
            watch,
            loss_total,
        })
    }
}

impl EvalPlan {
    pub(super) fn bind(
        gpu: &Gpu,
        net: &GpuMlp,
        (name, data): (&str, HostData<'_>),
        placement: DataPlacement,
        batch: usize,
    ) -> Result<Self> {
        let outputs = net.outputs();
        let total_squares = match &data.get().targets {
            Targets::Values(values) => Some(total_squares(values)),
            Targets::Classes { .. } => None,
        };
        let counters = gpu.storage_buffer(&format!("{name}.counters"), 2)?;
        let counts_len = if total_squares.is_some() {
            1
        } else {
            1 + outputs * outputs
        };
        let counts = gpu.storage_buffer(&format!("{name}.counts"), counts_len)?;
        let loss_total = gpu.storage_buffer(&format!("{name}.loss_total"), 1 + outputs)?;
        let target = GatherTarget {
            counters: &counters,
            x: net.x_buffer(),
            y: net.y_buffer(),
        };
        let dataset = GpuDataset::bind(gpu, name, data, placement, batch, &target)?;
        let metrics_buffers = MetricsBuffers {
            a: net.output_buffer(),
            y: net.y_buffer(),
            batch_loss: net.loss_buffer(),
            counts: &counts,
            loss_total: &loss_total,
        };
        let label = |what: &str| format!("{name}.{what}");
        let scores = if total_squares.is_some() {
            Metrics::bind_squared_error(
                gpu,
                &label("squared_error"),
                &metrics_buffers,
                batch,
                outputs,
            )?
        } else {
            Metrics::bind_accuracy(gpu, &label("accuracy"), &metrics_buffers, batch, outputs)?
        };
        let shape = GatherShape {
            rows: batch,
            inputs: net.inputs(),
            outputs,
            float_features: false,
            value_targets: false,
        };
        let cursor_buffers = GatherBuffers {
            features: &dataset.order,
            targets: &dataset.order,
            order: &dataset.order,
            counters: &counters,
            x: net.x_buffer(),
            y: net.y_buffer(),
        };
        Ok(EvalPlan {
            advance_cursor: Gather::bind_advance_cursor(
                gpu,
                &label("advance_cursor"),
                &cursor_buffers,
                &shape,
            )?,
            scores,
            accumulate_loss: Metrics::bind_accumulate_loss(
                gpu,
                &label("accumulate_loss"),
                &metrics_buffers,
                batch,
                outputs,
            )?,
            dataset,
            counters,
            counts,
            loss_total,
            total_squares,
        })
    }
}
