//! `shaders/metrics.wgsl`: correct predictions, the confusion matrix and the summed loss of an
//! evaluation pass, accumulated on the GPU batch after batch.
//!
//! Shapes: `a, y: (rows, classes)`, `batch_loss: (1)`, `counts: (1 + classes²)` u32 (correct,
//! then the confusion matrix `[truth][predicted]`), `loss_total: (1)`, or `(1 + classes)` with
//! each output's squared error after the loss (regression, where `classes` is the output width).

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::context::{Access, Gpu, PipelineSpec};
use crate::gpu::kernels::{Dispatch, Shader};

use Access::{Read, ReadWrite, Unused};

/// Bindings after the uniform: a, y, batch_loss, counts, loss_total; each entry point's layout
/// holds only those it uses, so that none needs more than three storage buffers.
fn storage(entry_point: &str) -> &'static [Access] {
    match entry_point {
        "accuracy" => &[Read, Read, Unused, ReadWrite, Unused],
        "squared_error" => &[Read, Read, Unused, Unused, ReadWrite],
        "accumulate_loss" => &[Unused, Unused, Read, Unused, ReadWrite],
        _ => &[Unused, Unused, Read, ReadWrite, Unused], // watch_loss
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct MetricsParams {
    rows: u32,
    classes: u32,
    _pad: [u32; 2],
}

/// The buffers the metrics read and accumulate into.
#[derive(Clone, Copy, Debug)]
pub struct MetricsBuffers<'a> {
    /// Output activations `(rows, classes)`.
    pub a: &'a wgpu::Buffer,
    /// One-hot targets `(rows, classes)`.
    pub y: &'a wgpu::Buffer,
    /// The batch's mean loss.
    pub batch_loss: &'a wgpu::Buffer,
    /// `(1 + classes²)` counters.
    pub counts: &'a wgpu::Buffer,
    /// The running loss sum.
    pub loss_total: &'a wgpu::Buffer,
}

impl MetricsBuffers<'_> {
    fn list(&self) -> [&wgpu::Buffer; 5] {
        [
            self.a,
            self.y,
            self.batch_loss,
            self.counts,
            self.loss_total,
        ]
    }
}

/// The metrics of one evaluation batch: [`Metrics::bind_accuracy`] and
/// [`Metrics::bind_accumulate_loss`] are recorded after the batch's forward pass and loss.
#[derive(Clone, Copy, Debug)]
pub struct Metrics;

impl Metrics {
    fn params(rows: usize, classes: usize) -> Result<MetricsParams> {
        if rows == 0 || classes == 0 || u32::try_from(rows * classes).is_err() {
            return Err(Error::invalid(
                "metrics shape",
                format!("rows={rows}, classes={classes}"),
            ));
        }
        Ok(MetricsParams {
            rows: rows as u32,
            classes: classes as u32,
            _pad: [0; 2],
        })
    }

    fn spec(entry_point: &'static str) -> PipelineSpec {
        PipelineSpec {
            shader: Shader::Metrics,
            entry_point,
            constants: vec![],
            storage: storage(entry_point),
        }
    }

    /// Counts correct predictions and fills the confusion matrix, one invocation per row.
    pub fn bind_accuracy(
        gpu: &Gpu,
        label: &str,
        buffers: &MetricsBuffers<'_>,
        rows: usize,
        classes: usize,
    ) -> Result<Dispatch> {
        let config = gpu.config();
        let groups = config.grid_1d(rows, config.workgroup_size);
        Dispatch::new(
            gpu,
            label,
            &Self::spec("accuracy"),
            &Self::params(rows, classes)?,
            &buffers.list(),
            groups,
        )
    }

    /// Adds the batch's squared error of each output column `c` to `loss_total[1 + c]`, one
    /// invocation per column (regression).
    pub fn bind_squared_error(
        gpu: &Gpu,
        label: &str,
        buffers: &MetricsBuffers<'_>,
        rows: usize,
        columns: usize,
    ) -> Result<Dispatch> {
        let config = gpu.config();
        Dispatch::new(
            gpu,
            label,
            &Self::spec("squared_error"),
            &Self::params(rows, columns)?,
            &buffers.list(),
            config.grid_1d(columns, config.workgroup_size),
        )
    }

    /// Changes the rows per batch of a squared-error dispatch.
    pub fn reshape_squared_error(
        gpu: &Gpu,
        dispatch: &mut Dispatch,
        rows: usize,
        columns: usize,
    ) -> Result<()> {
        let config = gpu.config();
        dispatch.update(
            gpu,
            &Self::params(rows, columns)?,
            config.grid_1d(columns, config.workgroup_size),
        );
        Ok(())
    }

    /// Adds the batch's loss, weighted by its rows, to the running sum.
    pub fn bind_accumulate_loss(
        gpu: &Gpu,
        label: &str,
        buffers: &MetricsBuffers<'_>,
        rows: usize,
        classes: usize,
    ) -> Result<Dispatch> {
        Dispatch::new(
            gpu,
            label,
            &Self::spec("accumulate_loss"),
            &Self::params(rows, classes)?,
            &buffers.list(),
            [1, 1, 1],
        )
    }

    /// Counts training steps in `counts[0]` and records in `counts[1]` the first whose loss is
    /// not finite (0 while none is).
    pub fn bind_watch_loss(
        gpu: &Gpu,
        label: &str,
        buffers: &MetricsBuffers<'_>,
        classes: usize,
    ) -> Result<Dispatch> {
        Dispatch::new(
            gpu,
            label,
            &Self::spec("watch_loss"),
            &Self::params(1, classes)?,
            &buffers.list(),
            [1, 1, 1],
        )
    }

    /// Changes the rows per batch of an accuracy dispatch.
    pub fn reshape_accuracy(
        gpu: &Gpu,
        dispatch: &mut Dispatch,
        rows: usize,
        classes: usize,
    ) -> Result<()> {
        let config = gpu.config();
        dispatch.update(
            gpu,
            &Self::params(rows, classes)?,
            config.grid_1d(rows, config.workgroup_size),
        );
        Ok(())
    }

    /// Changes the rows per batch of a loss accumulation.
    pub fn reshape_accumulate_loss(
        gpu: &Gpu,
        dispatch: &mut Dispatch,
        rows: usize,
        classes: usize,
    ) -> Result<()> {
        dispatch.update(gpu, &Self::params(rows, classes)?, [1, 1, 1]);
        Ok(())
    }
}
