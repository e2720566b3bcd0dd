//! What the GPU trainer records around the network's own step, bound once when it is built: the
//! data set resident on the GPU, the batch gather, and the loss and accuracy bookkeeping.

use crate::data::Dataset;
use crate::error::Result;
use crate::gpu::context::Gpu;
use crate::gpu::kernels::Dispatch;
use crate::gpu::kernels::data::{Gather, GatherBuffers, pack_bytes};
use crate::gpu::kernels::metrics::{Metrics, MetricsBuffers};
use crate::gpu::network::GpuMlp;

/// A data set resident on the GPU as packed bytes, with a buffer for its sample order.
pub(super) struct GpuDataset {
    pub(super) len: usize,
    pub(super) images: wgpu::Buffer,
    pub(super) labels: wgpu::Buffer,
    pub(super) order: wgpu::Buffer,
}

impl GpuDataset {
    pub(super) fn upload(gpu: &Gpu, name: &str, dataset: &Dataset) -> Result<Self> {
        let order: Vec<u32> = (0..dataset.len() as u32).collect();
        let (Some(pixels), Some((labels, _))) =
            (dataset.features.bytes(), dataset.targets.classes())
        else {
            return Err(crate::error::Error::invalid(
                "data set",
                "float data is not yet on the GPU",
            ));
        };
        let labels: Vec<u8> = labels.iter().map(|&l| l as u8).collect();
        Ok(GpuDataset {
            len: dataset.len(),
            images: gpu.storage_buffer_with(
                &format!("{name}.images"),
                &pack_bytes(pixels.as_slice().expect("standard layout")),
            )?,
            labels: gpu.storage_buffer_with(&format!("{name}.labels"), &pack_bytes(&labels))?,
            order: gpu.storage_buffer_with(&format!("{name}.order"), &order)?,
        })
    }
}

/// Everything an evaluation pass records per batch, bound once.
pub(super) struct EvalPlan {
    pub(super) dataset: GpuDataset,
    pub(super) counters: wgpu::Buffer,
    pub(super) counts: wgpu::Buffer,
    pub(super) loss_total: wgpu::Buffer,
    pub(super) gather: Dispatch,
    pub(super) advance_cursor: Dispatch,
    pub(super) accuracy: Dispatch,
    pub(super) accumulate_loss: Dispatch,
}

/// Everything a training step records besides the network's own step, bound once.
pub(super) struct TrainPlan {
    pub(super) dataset: GpuDataset,
    pub(super) gather: Dispatch,
    pub(super) accumulate_loss: Dispatch,
    pub(super) watch_loss: Dispatch,
    /// `[steps this epoch, first step whose loss was not finite (0: none)]`.
    pub(super) watch: wgpu::Buffer,
    pub(super) loss_total: wgpu::Buffer,
}

impl TrainPlan {
    pub(super) fn bind(gpu: &Gpu, net: &GpuMlp, train: &Dataset, batch: usize) -> Result<Self> {
        let (inputs, classes) = (net.inputs(), net.outputs());
        let dataset = GpuDataset::upload(gpu, "train", train)?;
        let gather_buffers = GatherBuffers {
            images: &dataset.images,
            labels: &dataset.labels,
            order: &dataset.order,
            counters: net.counters_buffer(),
            x: net.x_buffer(),
            y: net.y_buffer(),
        };
        let gather = Gather::bind(gpu, "train.gather", &gather_buffers, batch, inputs, classes)?;
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
            classes,
        )?;
        let watch_loss =
            Metrics::bind_watch_loss(gpu, "train.watch_loss", &metrics_buffers, classes)?;
        Ok(TrainPlan {
            dataset,
            gather,
            accumulate_loss,
            watch_loss,
            watch,
            loss_total,
        })
    }
}

impl EvalPlan {
    pub(super) fn bind(gpu: &Gpu, net: &GpuMlp, test: &Dataset, batch: usize) -> Result<Self> {
        let (inputs, classes) = (net.inputs(), net.outputs());
        let dataset = GpuDataset::upload(gpu, "test", test)?;
        let counters = gpu.storage_buffer("test.counters", 2)?;
        let counts = gpu.storage_buffer("test.counts", 1 + classes * classes)?;
        let loss_total = gpu.storage_buffer("test.loss_total", 1)?;
        let gather_buffers = GatherBuffers {
            images: &dataset.images,
            labels: &dataset.labels,
            order: &dataset.order,
            counters: &counters,
            x: net.x_buffer(),
            y: net.y_buffer(),
        };
        let metrics_buffers = MetricsBuffers {
            a: net.output_buffer(),
            y: net.y_buffer(),
            batch_loss: net.loss_buffer(),
            counts: &counts,
            loss_total: &loss_total,
        };
        Ok(EvalPlan {
            gather: Gather::bind(gpu, "test.gather", &gather_buffers, batch, inputs, classes)?,
            advance_cursor: Gather::bind_advance_cursor(
                gpu,
                "test.advance_cursor",
                &gather_buffers,
                batch,
                inputs,
                classes,
            )?,
            accuracy: Metrics::bind_accuracy(
                gpu,
                "test.accuracy",
                &metrics_buffers,
                batch,
                classes,
            )?,
            accumulate_loss: Metrics::bind_accumulate_loss(
                gpu,
                "test.accumulate_loss",
                &metrics_buffers,
                batch,
                classes,
            )?,
            dataset,
            counters,
            counts,
            loss_total,
        })
    }
}
