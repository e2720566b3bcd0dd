//! [`GpuTrainer`]: the data set resident on the GPU, each step gathered, trained and accounted
//! for there, several steps to a submission, nothing read back but the loss when asked for.

use web_time::Instant;

use ndarray::Array2;

use super::gpu_plans::{EvalPlan, TrainPlan};
#[cfg_attr(target_arch = "wasm32", allow(unused_imports))]
use super::{
    EpochReport, Evaluation, PROGRESS_INTERVAL, Progress, STEPS_PER_SUBMIT, StopFlag, TrainConfig,
    Trainer, check_dataset, diverged, epoch_order, no_test_set,
};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::gpu::context::Gpu;
use crate::gpu::kernels::Recorder;
use crate::gpu::kernels::data::Gather;
use crate::gpu::kernels::metrics::Metrics;
use crate::gpu::network::{Fusion, GpuMlp};
#[cfg_attr(target_arch = "wasm32", allow(unused_imports))]
use crate::gpu::profile::{CountDispatches, Profile, Profiler};
use crate::model::Mlp;
#[cfg_attr(target_arch = "wasm32", allow(unused_imports))]
use crate::optim::{OptimizerConfig, OptimizerState};

/// Trains a [`GpuMlp`] on a data set held on the GPU, and evaluates it there.
pub struct GpuTrainer {
    net: GpuMlp,
    config: TrainConfig,
    epochs_done: usize,
    classes: usize,
    train: Option<TrainPlan>,
    eval: Option<EvalPlan>,
    staging: wgpu::Buffer,
    /// Training rows consumed since the last shuffle (the GPU's data cursor, mirrored).
    rows_into_epoch: usize,
    /// With `--profile`: the profiler and how many of the coming steps it still times.
    profiler: Option<(Profiler, usize)>,
    /// Raised to stop after the steps in flight.
    stop: StopFlag,
}

impl GpuTrainer {
    /// Uploads `mlp`, the training set and (if given) the test set to `gpu`.
    pub fn new(
        gpu: &Gpu,
        mlp: &Mlp,
        train: &Dataset,
        test: Option<&Dataset>,
        config: TrainConfig,
    ) -> Result<GpuTrainer> {
        Self::build(gpu, mlp, Some(train), test, config)
    }

    /// A trainer that only evaluates `mlp` on `test`, `batch_size` samples at a time.
    pub fn evaluator(
        gpu: &Gpu,
        mlp: &Mlp,
        test: &Dataset,
        batch_size: usize,
    ) -> Result<GpuTrainer> {
        let config = TrainConfig {
            optimizer: OptimizerConfig::sgd(1.0),
            batch_size: batch_size.min(test.len().max(1)),
            seed: 0,
        };
        Self::build(gpu, mlp, None, Some(test), config)
    }

    fn build(
        gpu: &Gpu,
        mlp: &Mlp,
        train: Option<&Dataset>,
        test: Option<&Dataset>,
        config: TrainConfig,
    ) -> Result<GpuTrainer> {
        config.validate()?;
        mlp.validate()?;
        for (set, what) in [(train, "training set"), (test, "test set")] {
            if let Some(set) = set {
                check_dataset(mlp.inputs(), mlp.outputs(), set, what)?;
                // Refuse before anything is allocated; the bytes go up packed as they are.
                gpu.check_storage_size(
                    &format!("the {what}'s {} samples", set.len()),
                    (set.len() * set.features.bytes_per_sample()).next_multiple_of(4) as u64,
                )?;
            }
        }
        let mut net = GpuMlp::with_batch_capacity(gpu, mlp, config.batch_size)?;
        net.set_optimizer(config.optimizer)?;
        let train = match train {
            Some(train) => Some(TrainPlan::bind(gpu, &net, train, config.batch_size)?),
            None => None,
        };
        let eval = match test {
            Some(test) => Some(EvalPlan::bind(gpu, &net, test, config.batch_size)?),
            None => None,
        };
        let classes = mlp.outputs();
        Ok(GpuTrainer {
            staging: gpu.staging_buffer("trainer.staging", ((2 + classes * classes) * 4) as u64)?,
            net,
            config,
            epochs_done: 0,
            classes,
            train,
            eval,
            rows_into_epoch: 0,
            profiler: None,
            stop: StopFlag::default(),
        })
    }

    /// The network being trained.
    pub fn network(&mut self) -> &mut GpuMlp {
        &mut self.net
    }

    /// Shapes every batch-sized dispatch for `rows`.
    fn set_rows(&mut self, rows: usize) -> Result<()> {
        if rows == self.net.batch() {
            return Ok(());
        }
        let gpu = self.net.gpu().clone();
        let (inputs, classes) = (self.net.inputs(), self.classes);
        self.net.set_batch(rows)?;
        if let Some(train) = self.train.as_mut() {
            Gather::reshape(&gpu, &mut train.gather, rows, inputs, classes, false)?;
            Metrics::reshape_accumulate_loss(&gpu, &mut train.accumulate_loss, rows, classes)?;
        }
        if let Some(eval) = self.eval.as_mut() {
            Gather::reshape(&gpu, &mut eval.gather, rows, inputs, classes, false)?;
            Gather::reshape(&gpu, &mut eval.advance_cursor, rows, inputs, classes, true)?;
            Metrics::reshape_accuracy(&gpu, &mut eval.accuracy, rows, classes)?;
            Metrics::reshape_accumulate_loss(&gpu, &mut eval.accumulate_loss, rows, classes)?;
        }
        Ok(())
    }

    /// Reads a loss total and `counts.1` words of a counts buffer, through the one staging buffer.
    async fn read_totals(
        &self,
        what: &str,
        loss_total: &wgpu::Buffer,
        counts: (&wgpu::Buffer, usize),
    ) -> Result<(f32, Vec<u32>)> {
        let gpu = self.net.gpu();
        let sources = [(loss_total, 1), counts];
        let values: Vec<Vec<u32>> = gpu
            .read_back_async(what, gpu.encoder(what), &self.staging, &sources)
            .await?;
        let loss_total = f32::from_bits(values[0][0]);
        Ok((loss_total, values.get(1).cloned().unwrap_or_default()))
    }

    /// Writes the next epoch's shuffled order and resets the data cursor and the epoch's loss;
    /// returns the number of training samples.
    fn begin_epoch(&mut self) -> Result<usize> {
        let train = self.train.as_ref().ok_or_else(no_training_set)?;
        let len = train.dataset.len;
        let mut order: Vec<u32> = (0..len as u32).collect();
        epoch_order(self.config.seed, self.epochs_done + 1, &mut order);
        let queue = self.net.gpu().queue();
        queue.write_buffer(&train.dataset.order, 0, bytemuck::cast_slice(&order));
        // Reset the data cursor (counters[1]), not the step count Adam reads.
        queue.write_buffer(self.net.counters_buffer(), 4, bytemuck::bytes_of(&0u32));
        queue.write_buffer(&train.loss_total, 0, bytemuck::bytes_of(&0f32));
        queue.write_buffer(&train.watch, 0, bytemuck::cast_slice(&[0u32, 0]));
        self.rows_into_epoch = 0;
        Ok(len)
    }

    /// Records one training step: the batch's gather, the network's step, and the loss
    /// bookkeeping.
    fn record_step(net: &GpuMlp, train: &TrainPlan, recorder: &mut impl Recorder) {
        train.gather.record(recorder);
        net.record_step(recorder);
        train.accumulate_loss.record(recorder);
        train.watch_loss.record(recorder);
    }

    /// Records `count` consecutive steps of `rows` rows each into one submission: nothing is read
    /// between them, and the data cursor moves on the GPU. Steps still to be profiled go one
    /// submission each, with every dispatch timed.
    fn submit_steps(&mut self, rows: usize, mut count: usize) -> Result<()> {
        self.set_rows(rows)?;
        let train = self.train.as_ref().ok_or_else(no_training_set)?;
        if let Some((profiler, left)) = &mut self.profiler {
            while count > 0 && *left > 0 {
                profiler.profile_step(|timed| Self::record_step(&self.net, train, timed))?;
                *left -= 1;
                count -= 1;
                self.rows_into_epoch += rows;
            }
        }
        if count == 0 {
            return Ok(());
        }
        let encoder = self.net.encode("train.steps", |pass| {
            for _ in 0..count {
                Self::record_step(&self.net, train, pass);
            }
        });
        self.net.submit(encoder)?;
        self.rows_into_epoch += rows * count;
        Ok(())
    }

    /// Times every dispatch of the next `steps` training steps with timestamp queries (see
    /// [`crate::gpu::profile`]); the steps train exactly as they otherwise would. An error if
    /// the adapter has no timestamp queries.
    pub fn profile_next_steps(&mut self, steps: usize) -> Result<()> {
        let train = self.train.as_ref().ok_or_else(no_training_set)?;
        let mut count = CountDispatches::default();
        Self::record_step(&self.net, train, &mut count);
        self.profiler = Some((Profiler::new(self.net.gpu(), count.0)?, steps));
        Ok(())
    }

    /// Rebinds the training step to `fusion`; nothing trained so far changes.
    pub fn set_fusion(&mut self, fusion: Fusion) -> Result<()> {
        self.net.set_fusion(fusion)
    }

    /// Runs `steps` full-batch steps through the shuffled training set, starting over with a new
    /// order when too few samples are left, and waits for the GPU to finish them. For
    /// benchmarks: no loss is read back and no epoch is counted.
    pub fn run_steps(&mut self, steps: usize) -> Result<()> {
        let batch = self.config.batch_size;
        let len = self.train.as_ref().ok_or_else(no_training_set)?.dataset.len;
        if len < batch {
            return Err(Error::invalid(
                "benchmark",
                format!("{len} training samples do not fill one batch of {batch}"),
            ));
        }
        let mut left = steps;
        while left > 0 {
            if self.rows_into_epoch + batch > len {
                self.begin_epoch()?;
            }
            let count = left
                .min(STEPS_PER_SUBMIT)
                .min((len - self.rows_into_epoch) / batch);
            self.submit_steps(batch, count)?;
            left -= count;
        }
        self.net.wait_idle()
    }

    /// The mean loss of the epoch's first `samples`, or an error naming the first step whose
    /// loss was not finite.
    async fn read_epoch_loss(&self, what: &str, samples: usize, steps: usize) -> Result<f32> {
        let train = self.train.as_ref().ok_or_else(no_training_set)?;
        let (loss_sum, watch) = self
            .read_totals(what, &train.loss_total, (&train.watch, 2))
            .await?;
        match watch.get(1) {
            Some(&step) if step > 0 => Err(diverged(
                self.epochs_done + 1,
                step as usize,
                steps,
                &self.config.optimizer,
            )),
            _ => Ok(loss_sum / samples as f32),
        }
    }

    /// [`Trainer::train_epoch`] as a future, for a browser, where nothing may block.
    pub async fn train_epoch_async(
        &mut self,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<EpochReport> {
        let start = Instant::now();
        let len = self.begin_epoch()?;
        let batch = self.config.batch_size;
        let (full, remainder) = (len / batch, len % batch);
        let steps = full + usize::from(remainder > 0);
        let mut last_report = Instant::now();
        let mut done = 0;
        while done < full {
            self.stop.check(self.epochs_done + 1, done * batch)?;
            let count = STEPS_PER_SUBMIT.min(full - done);
            self.submit_steps(batch, count)?;
            self.net.throttle().await?;
            done += count;
            if last_report.elapsed() >= PROGRESS_INTERVAL && done < steps {
                let samples = done * batch;
                let running_loss = self
                    .read_epoch_loss("the running loss", samples, steps)
                    .await?;
                progress(Progress {
                    samples,
                    total: len,
                    running_loss,
                });
                last_report = Instant::now();
            }
        }
        if remainder > 0 {
            self.stop.check(self.epochs_done + 1, full * batch)?;
            self.submit_steps(remainder, 1)?;
        }
        let train_loss = self.read_epoch_loss("the epoch loss", len, steps).await?;
        progress(Progress {
            samples: len,
            total: len,
            running_loss: train_loss,
        });
        self.epochs_done += 1;
        Ok(EpochReport::finished(
            self.epochs_done,
            train_loss,
            len,
            start,
        ))
    }

    /// [`Trainer::evaluate`] as a future, for a browser, where nothing may block.
    pub async fn evaluate_async(&mut self) -> Result<Evaluation> {
        let batch_size = self.config.batch_size;
        let len = self.eval.as_ref().ok_or_else(no_test_set)?.dataset.len;
        {
            let (queue, eval) = (
                self.net.gpu().queue(),
                self.eval.as_ref().ok_or_else(no_test_set)?,
            );
            queue.write_buffer(&eval.counters, 0, bytemuck::cast_slice(&[0u32, 0]));
            queue.write_buffer(
                &eval.counts,
                0,
                &vec![0u8; 4 * (1 + self.classes * self.classes)],
            );
            queue.write_buffer(&eval.loss_total, 0, bytemuck::bytes_of(&0f32));
        }
        // Full batches in one submission, then the remainder (reshaped) in another.
        for (rows, batches) in [(batch_size, len / batch_size), (len % batch_size, 1)] {
            if rows == 0 || batches == 0 {
                continue;
            }
            self.set_rows(rows)?;
            let eval = self.eval.as_ref().ok_or_else(no_test_set)?;
            let encoder = self.net.encode("test.evaluate", |pass| {
                for _ in 0..batches {
                    eval.gather.record(pass);
                    self.net.record_forward(pass, true);
                    eval.accuracy.record(pass);
                    eval.accumulate_loss.record(pass);
                    eval.advance_cursor.record(pass);
                }
            });
            self.net.submit(encoder)?;
        }
        let eval = self.eval.as_ref().ok_or_else(no_test_set)?;
        let (loss_sum, counts) = self
            .read_totals(
                "the evaluation",
                &eval.loss_total,
                (&eval.counts, 1 + self.classes * self.classes),
            )
            .await?;
        let classes = self.classes;
        let confusion = Array2::from_shape_fn((classes, classes), |(t, p)| {
            u64::from(counts[1 + t * classes + p])
        });
        Ok(Evaluation {
            loss: loss_sum / len as f32,
            accuracy: f64::from(counts[0]) / len as f64,
            confusion,
            samples: len,
        })
    }
}

fn no_training_set() -> Error {
    Error::invalid("training", "this trainer was built for evaluation only")
}

// The trait's methods block, which nothing in a browser may do: there the trainer is driven
// through its futures.
#[cfg(not(target_arch = "wasm32"))]
impl Trainer for GpuTrainer {
    fn train_epoch(&mut self, progress: &mut dyn FnMut(Progress)) -> Result<EpochReport> {
        pollster::block_on(self.train_epoch_async(progress))
    }

    fn evaluate(&mut self) -> Result<Evaluation> {
        pollster::block_on(self.evaluate_async())
    }

    fn epochs_done(&self) -> usize {
        self.epochs_done
    }

    fn set_epochs_done(&mut self, epochs: usize) {
        self.epochs_done = epochs;
    }

    fn optimizer_state(&mut self) -> Result<OptimizerState> {
        self.net.optimizer_state()
    }

    fn set_optimizer_state(&mut self, state: &OptimizerState) -> Result<()> {
        self.net.set_optimizer_state(state)
    }

    fn to_mlp(&mut self) -> Result<Mlp> {
        self.net.to_mlp()
    }

    fn stop_on(&mut self, flag: StopFlag) {
        self.stop = flag;
    }

    fn profile(&self) -> Option<Profile> {
        self.profiler
            .as_ref()
            .map(|(profiler, _)| profiler.profile())
    }
}
