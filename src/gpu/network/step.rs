//! Running a [`GpuMlp`]'s step: shaping the plan for a batch, writing the batch, recording the
//! bound dispatches into one compute pass and submitting it, with a bound on the steps in flight.

use ndarray::ArrayView2;

use crate::error::Result;
use crate::gpu::kernels::{Dispatch, Recorder};
use crate::gpu::network::buffers::{BatchBuffers, contiguous};
use crate::gpu::network::plan::StepSpec;
use crate::gpu::network::{GpuMlp, MAX_STEPS_IN_FLIGHT};
use crate::model::check_batch;
use crate::optim::OptimizerConfig;

impl GpuMlp {
    /// Reshapes every dispatch for `batch` rows (growing the buffers first if needed; callers
    /// that bound the batch buffers elsewhere must rebind them if the capacity grew).
    pub(crate) fn set_batch(&mut self, batch: usize) -> Result<()> {
        if batch == self.batch {
            return Ok(());
        }
        if batch > self.buffers.capacity {
            let capacity = batch.next_power_of_two();
            self.wait_idle()?;
            let dropout = &self.regularization.dropout;
            self.buffers =
                BatchBuffers::allocate(&self.gpu, &self.layers, capacity, self.fusion, dropout)?;
            self.rebind(StepSpec {
                batch,
                ..self.step_spec()
            })?;
            self.batch = batch;
            return Ok(());
        }
        self.plan.reshape(&self.gpu, &self.layers, batch)?;
        self.batch = batch;
        Ok(())
    }

    /// Checks `x` (and `y`) and writes them into the batch buffers, reshaping for their rows.
    pub(super) fn upload_batch(
        &mut self,
        x: ArrayView2<f32>,
        y: Option<ArrayView2<f32>>,
    ) -> Result<usize> {
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

    /// Records the forward pass, and with `with_loss` the output loss and δ (unsmoothed, as
    /// evaluation reports it); with `dropout`, the masks of the coming training step.
    pub(crate) fn record_forward(&self, pass: &mut impl Recorder, with_loss: bool, dropout: bool) {
        self.record_hidden(pass, dropout);
        if with_loss {
            self.plan.output.loss.record(pass);
            self.plan.output.loss_sum.record(pass);
        } else {
            self.plan.output.forward.record(pass);
        }
    }

    /// Records every layer's forward product up to the output layer's logits, with dropout's
    /// masks (where the network has dropout) if `dropout`.
    fn record_hidden(&self, pass: &mut impl Recorder, dropout: bool) {
        fn masks(mask: &Option<Dispatch>, dropout: bool) -> Option<&Dispatch> {
            mask.as_ref().filter(|_| dropout)
        }
        if let Some(mask) = masks(&self.plan.input_dropout, dropout) {
            mask.record(pass);
        }
        for layer in &self.plan.forward {
            for dispatch in std::iter::once(&layer.matmul)
                .chain(&layer.bias_add)
                .chain(&layer.activation)
                .chain(masks(&layer.dropout, dropout))
            {
                dispatch.record(pass);
            }
        }
    }

    /// Records the backward pass of a forward pass recorded with dropout.
    pub(super) fn record_backward(&self, pass: &mut impl Recorder) {
        for step in self.plan.backward.iter().rev() {
            step.dweight.record(pass);
            step.dbias.record(pass);
            for dispatch in step
                .delta_prev
                .iter()
                .chain(&step.delta_prev_epilogue)
                .chain(&step.delta_prev_dropout)
            {
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
        self.record_hidden(pass, true);
        let output = &self.plan.output;
        output
            .smoothed_loss
            .as_ref()
            .unwrap_or(&output.loss)
            .record(pass);
        output.loss_sum.record(pass);
        self.record_backward(pass);
        self.plan.advance.record(pass);
        for dispatch in self.plan.clip.iter().chain(&self.plan.update) {
            dispatch.record(pass);
        }
    }

    /// Submits a step and, natively, bounds the number in flight by waiting for the oldest. In
    /// a browser, where nothing may block, a loop of steps bounds them by awaiting
    /// [`GpuMlp::throttle`] after each submission.
    pub(crate) fn submit(&mut self, encoder: wgpu::CommandEncoder) -> Result<()> {
        let index = self.gpu.queue().submit([encoder.finish()]);
        #[cfg(target_arch = "wasm32")]
        {
            let _ = index;
            self.in_flight.push_back(Box::pin(self.gpu.work_done()));
        }
        #[cfg(not(target_arch = "wasm32"))]
        self.in_flight.push_back(index);
        #[cfg(not(target_arch = "wasm32"))]
        if self.in_flight.len() > MAX_STEPS_IN_FLIGHT
            && let Some(oldest) = self.in_flight.pop_front()
        {
            self.gpu
                .device()
                .poll(wgpu::PollType::Wait {
                    submission_index: Some(oldest),
                    timeout: Some(crate::gpu::context::READBACK_TIMEOUT),
                })
                .map_err(|e| crate::Error::Gpu {
                    during: "waiting for a training step".into(),
                    message: e.to_string(),
                })?;
        }
        self.gpu.check_fault()
    }

    /// Waits until no more than `MAX_STEPS_IN_FLIGHT` submitted steps may still run, without
    /// blocking: what a browser's training loop awaits after each submission, so that it does
    /// not queue a whole epoch ahead of the GPU (and its progress reports come as the steps
    /// finish). Natively `GpuMlp::submit` has already waited, and this is ready at once.
    pub async fn throttle(&mut self) -> Result<()> {
        #[cfg(target_arch = "wasm32")]
        while self.in_flight.len() > MAX_STEPS_IN_FLIGHT {
            if let Some(oldest) = self.in_flight.pop_front() {
                oldest.await;
            }
        }
        self.gpu.check_fault()
    }

    /// Waits until every submitted step has finished. In a browser, which cannot wait, it only
    /// forgets them: the queue runs in order, so later work and read-backs see their results
    /// (await [`Gpu::submit_and_wait_async`](crate::Gpu::submit_and_wait_async) to wait).
    pub(crate) fn wait_idle(&mut self) -> Result<()> {
        self.in_flight.clear();
        #[cfg(not(target_arch = "wasm32"))]
        return self.gpu.submit_and_wait(self.gpu.encoder("wait_idle"));
        #[cfg(target_arch = "wasm32")]
        self.gpu.check_fault()
    }
}
