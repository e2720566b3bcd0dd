//! [`GpuTrainer`]: the data set on the GPU (see [`super::gpu_plans`]), each step gathered,
//! trained and accounted for there, several steps to a submission, nothing read back but the
//! loss when asked for.

use std::sync::Arc;

use web_time::Instant;

use ndarray::Array2;

use super::gpu_data::{DataPlacement, GatherTarget, HostData};
use super::gpu_plans::{EvalPlan, TrainPlan};
#[cfg_attr(target_arch = "wasm32", allow(unused_imports))]
use super::{
    EpochReport, Evaluation, PROGRESS_INTERVAL, Progress, STEPS_PER_SUBMIT, Scores, Split,
    StopFlag, TrainConfig, Trainer, check_dataset, diverged, epoch_order, no_such_set,
};
use crate::augment::Augmentation;
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
    outputs: usize,
    placement: DataPlacement,
    train: Option<TrainPlan>,
    test: Option<EvalPlan>,
    validation: Option<EvalPlan>,
    staging: wgpu::Buffer,
    /// The epoch's sample order, as written to the GPU (and, streamed, gathered from).
    order: Vec<u32>,
    /// Training rows consumed since the last shuffle (the GPU's data cursor, mirrored).
    rows_into_epoch: usize,
    /// With `--profile`: the profiler and how many of the coming steps it still times.
    profiler: Option<(Profiler, usize)>,
    /// Raised to stop after the steps in flight.
    stop: StopFlag,
    /// Whether each epoch visits the samples in a new seeded order (else in their order).
    shuffle: bool,
}

impl GpuTrainer {
    /// Uploads `mlp`, the training set and (if given) the test set to `gpu`, resident or
    /// streamed as [`DataPlacement::Auto`] decides; a streamed set is copied to be kept.
    pub fn new(
        gpu: &Gpu,
        mlp: &Mlp,
        train: &Dataset,
        test: Option<&Dataset>,
        config: TrainConfig,
    ) -> Result<GpuTrainer> {
        let test = test.map(|t| (Split::Test, HostData::Borrowed(t)));
        let data = (Some(HostData::Borrowed(train)), test);
        Self::build(gpu, mlp, data, config, DataPlacement::Auto)
    }

    /// [`GpuTrainer::new`] with shared data sets, kept rather than copied when streamed, and the
    /// placement chosen.
    pub fn with_placement(
        gpu: &Gpu,
        mlp: &Mlp,
        train: Arc<Dataset>,
        test: Option<Arc<Dataset>>,
        config: TrainConfig,
        placement: DataPlacement,
    ) -> Result<GpuTrainer> {
        let test = test.map(|t| (Split::Test, HostData::Shared(t)));
        let data = (Some(HostData::Shared(train)), test);
        Self::build(gpu, mlp, data, config, placement)
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
            regularization: Default::default(),
        };
        let data = (None, Some((Split::Test, HostData::Borrowed(test))));
        Self::build(gpu, mlp, data, config, DataPlacement::Auto)
    }

    /// Deforms every training batch with `augmentation` from the next epoch on, each sample
    /// anew each epoch as [`crate::augment::deform`] does; held-out sets are never deformed. An
    /// error naming `--augment` when the training set has no image shape, and
    /// [`Error::Unsupported`] when its images do not fit the device's workgroup memory.
    pub fn set_augmentation(&mut self, augmentation: &Augmentation) -> Result<()> {
        let train = self.train.as_mut().ok_or_else(no_training_set)?;
        let to = GatherTarget {
            counters: self.net.counters_buffer(),
            x: self.net.x_buffer(),
            y: self.net.y_buffer(),
        };
        let how = (
            augmentation,
            self.config.seed,
            epoch_number(self.epochs_done + 1)?,
        );
        let gpu = self.net.gpu();
        train
            .dataset
            .bind_deformation(gpu, "train", how, self.net.batch(), &to)
    }

    /// Adds a validation set, evaluated with `evaluate(Split::Validation)`.
    pub fn set_validation(&mut self, validation: Arc<Dataset>) -> Result<()> {
        let mlp_shape = (self.net.inputs(), self.net.outputs());
        check_dataset(mlp_shape.0, mlp_shape.1, &validation, "validation set")?;
        let gpu = self.net.gpu().clone();
        let batch = self.config.batch_size;
        self.set_rows(batch)?;
        let data = ("validation", HostData::Shared(validation));
        let plan = EvalPlan::bind(&gpu, &self.net, data, self.placement, batch)?;
        self.validation = Some(plan);
        Ok(())
    }

    fn build(
        gpu: &Gpu,
        mlp: &Mlp,
        (train, test): (Option<HostData<'_>>, Option<(Split, HostData<'_>)>),
        config: TrainConfig,
        placement: DataPlacement,
    ) -> Result<GpuTrainer> {
        config.validate()?;
        mlp.validate()?;
        if let Some(train) = &train {
            check_dataset(mlp.inputs(), mlp.outputs(), train.get(), "training set")?;
        }
        if let Some((_, test)) = &test {
            check_dataset(mlp.inputs(), mlp.outputs(), test.get(), "test set")?;
        }
        let mut net = GpuMlp::with_batch_capacity(gpu, mlp, config.batch_size)?;
        net.set_optimizer(config.optimizer)?;
        net.set_dropout_seed(config.seed)?;
        net.set_regularization(config.regularization.clone())?;
        let batch = config.batch_size;
        let train = match train {
            Some(train) => Some(TrainPlan::bind(gpu, &net, train, placement, batch)?),
            None => None,
        };
        let test = match test {
            Some((split, test)) => Some(EvalPlan::bind(
                gpu,
                &net,
                (split.name(), test),
                placement,
                batch,
            )?),
            None => None,
        };
        let outputs = mlp.outputs();
        let train_len = train.as_ref().map_or(0, |plan| plan.dataset.len);
        // An evaluation's loss and per-output sums, then its counts and confusion matrix.
        let staging_words = (1 + outputs) + (1 + outputs * outputs);
        Ok(GpuTrainer {
            staging: gpu.staging_buffer("trainer.staging", (staging_words * 4) as u64)?,
            net,
            config,
            epochs_done: 0,
            outputs,
            placement,
            train,
            test,
            validation: None,
            // The order the data went up in, which `run_steps` starts with.
            order: (0..train_len as u32).collect(),
            rows_into_epoch: 0,
            profiler: None,
            stop: StopFlag::default(),
            shuffle: true,
        })
    }

    /// The network being trained.
    pub fn network(&mut self) -> &mut GpuMlp {
        &mut self.net
    }

    /// Whether each epoch visits the training samples in a new seeded order (the default) or
    /// in their order, as scikit-learn's `shuffle=False`.
    pub fn set_shuffle(&mut self, shuffle: bool) {
        self.shuffle = shuffle;
    }

    /// [`Trainer::set_learning_rate`], on every target (a browser's included).
    pub fn set_learning_rate(&mut self, learning_rate: f32) -> Result<()> {
        let mut optimizer = self.net.optimizer();
        optimizer.learning_rate = learning_rate;
        self.net.set_optimizer(optimizer)?;
        self.config.optimizer = optimizer;
        Ok(())
    }

    /// [`Trainer::set_epochs_done`], on every target.
    pub fn set_epochs_done(&mut self, epochs: usize) {
        self.epochs_done = epochs;
    }

    /// [`Trainer::stop_on`], on every target.
    pub fn stop_on(&mut self, flag: StopFlag) {
        self.stop = flag;
    }

    /// [`Trainer::set_optimizer_state`], on every target.
    pub fn set_optimizer_state(&mut self, state: &OptimizerState) -> Result<()> {
        self.net.set_optimizer_state(state)
    }

    /// [`Trainer::profile`], on every target.
    pub fn profile(&self) -> Option<Profile> {
        self.profiler
            .as_ref()
            .map(|(profiler, _)| profiler.profile())
    }

    /// Shapes every batch-sized dispatch for `rows`.
    fn set_rows(&mut self, rows: usize) -> Result<()> {
        if rows == self.net.batch() {
            return Ok(());
        }
        let gpu = self.net.gpu().clone();
        let outputs = self.outputs;
        self.net.set_batch(rows)?;
        if let Some(train) = self.train.as_mut() {
            train.dataset.reshape(&gpu, rows)?;
            Metrics::reshape_accumulate_loss(&gpu, &mut train.accumulate_loss, rows, outputs)?;
        }
        for eval in [self.test.as_mut(), self.validation.as_mut()]
            .into_iter()
            .flatten()
        {
            eval.dataset.reshape(&gpu, rows)?;
            Gather::reshape(&gpu, &mut eval.advance_cursor, rows, true)?;
            if eval.total_squares.is_some() {
                Metrics::reshape_squared_error(&gpu, &mut eval.scores, rows, outputs)?;
            } else {
                Metrics::reshape_accuracy(&gpu, &mut eval.scores, rows, outputs)?;
            }
            Metrics::reshape_accumulate_loss(&gpu, &mut eval.accumulate_loss, rows, outputs)?;
        }
        Ok(())
    }

    /// Reads `loss_total.1` words of a loss total (its sum first) and `counts.1` words of a counts
    /// buffer, through the one staging buffer.
    async fn read_totals(
        &self,
        what: &str,
        loss_total: (&wgpu::Buffer, usize),
        counts: (&wgpu::Buffer, usize),
    ) -> Result<(Vec<f32>, Vec<u32>)> {
        let gpu = self.net.gpu();
        let sources = [loss_total, counts];
        let values: Vec<Vec<u32>> = gpu
            .read_back_async(what, gpu.encoder(what), &self.staging, &sources)
            .await?;
        let loss_total = values[0].iter().map(|&bits| f32::from_bits(bits)).collect();
        Ok((loss_total, values.get(1).cloned().unwrap_or_default()))
    }

    /// Writes the next epoch's shuffled order and resets the data cursor and the epoch's loss;
    /// returns the number of training samples.
    fn begin_epoch(&mut self) -> Result<usize> {
        let epoch = epoch_number(self.epochs_done + 1)?;
        let train = self.train.as_mut().ok_or_else(no_training_set)?;
        train.dataset.set_epoch(self.net.gpu(), epoch)?;
        let len = train.dataset.len;
        self.order.clear();
        self.order.extend(0..len as u32);
        if self.shuffle {
            epoch_order(self.config.seed, self.epochs_done + 1, &mut self.order);
        }
        let queue = self.net.gpu().queue();
        if !train.dataset.is_streamed() {
            queue.write_buffer(&train.dataset.order, 0, bytemuck::cast_slice(&self.order));
        }
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
        train.dataset.record_gather(recorder);
        net.record_step(recorder);
        train.accumulate_loss.record(recorder);
        train.watch_loss.record(recorder);
    }

    /// Records `count` consecutive steps of `rows` rows each into one submission: nothing is read
    /// between them, and the data cursor moves on the GPU. Steps still to be profiled go one
    /// submission each, with every dispatch timed.
    fn submit_steps(&mut self, rows: usize, mut count: usize) -> Result<()> {
        self.set_rows(rows)?;
        while count > 0 && self.profiler.as_ref().is_some_and(|(_, left)| *left > 0) {
            self.stage_steps(rows, 1)?;
            let train = self.train.as_ref().ok_or_else(no_training_set)?;
            if let Some((profiler, left)) = &mut self.profiler {
                profiler.profile_step(|timed| Self::record_step(&self.net, train, timed))?;
                *left -= 1;
            }
            count -= 1;
            self.rows_into_epoch += rows;
        }
        if count == 0 {
            return Ok(());
        }
        self.stage_steps(rows, count)?;
        let train = self.train.as_ref().ok_or_else(no_training_set)?;
        let encoder = self.net.encode("train.steps", |pass| {
            for _ in 0..count {
                Self::record_step(&self.net, train, pass);
            }
        });
        self.net.submit(encoder)?;
        self.rows_into_epoch += rows * count;
        Ok(())
    }

    /// The most training steps of `rows` to record into one submission.
    fn steps_per_submit(&self, rows: usize) -> Result<usize> {
        let train = self.train.as_ref().ok_or_else(no_training_set)?;
        Ok(STEPS_PER_SUBMIT.min(train.dataset.steps_per_submit(rows)))
    }

    /// Streamed: copies the samples of the next `count` steps of `rows` into a slab.
    fn stage_steps(&mut self, rows: usize, count: usize) -> Result<()> {
        let train = self.train.as_mut().ok_or_else(no_training_set)?;
        let start = self.rows_into_epoch;
        let samples = self.order[start..start + rows * count].iter().copied();
        let gpu = self.net.gpu();
        train
            .dataset
            .stage(gpu, samples, self.net.counters_buffer())
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
                .min(self.steps_per_submit(batch)?)
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
            .read_totals(what, (&train.loss_total, 1), (&train.watch, 2))
            .await?;
        match watch.get(1) {
            Some(&step) if step > 0 => Err(diverged(
                self.epochs_done + 1,
                step as usize,
                steps,
                &self.config.optimizer,
            )),
            _ => Ok(loss_sum[0] / samples as f32),
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
            let count = self.steps_per_submit(batch)?.min(full - done);
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
    pub async fn evaluate_async(&mut self, split: Split) -> Result<Evaluation> {
        let batch_size = self.config.batch_size;
        let (len, per_submit) = {
            let eval = self.eval_plan(split)?;
            let queue = self.net.gpu().queue();
            queue.write_buffer(&eval.counters, 0, bytemuck::cast_slice(&[0u32, 0]));
            queue.write_buffer(&eval.counts, 0, &vec![0u8; eval.counts.size() as usize]);
            queue.write_buffer(&eval.loss_total, 0, &vec![0u8; 4 * (1 + self.outputs)]);
            (eval.dataset.len, eval.dataset.steps_per_submit(batch_size))
        };
        // Full batches, as many to a submission as the placement allows, then the remainder
        // (reshaped).
        let mut start = 0;
        for (rows, mut batches) in [(batch_size, len / batch_size), (len % batch_size, 1)] {
            while rows > 0 && batches > 0 {
                let count = batches.min(per_submit);
                self.submit_evaluation(split, start, rows, count)?;
                start += rows * count;
                batches -= count;
            }
        }
        self.read_evaluation(split, len).await
    }

    /// Records and submits `count` evaluation batches of `rows`, the first at sample `start`.
    fn submit_evaluation(
        &mut self,
        split: Split,
        start: usize,
        rows: usize,
        count: usize,
    ) -> Result<()> {
        self.set_rows(rows)?;
        let gpu = self.net.gpu().clone();
        let eval = self.eval_plan_mut(split)?;
        let samples = start as u32..(start + rows * count) as u32;
        eval.dataset.stage(&gpu, samples, &eval.counters)?;
        let eval = self.eval_plan(split)?;
        let encoder = self.net.encode("evaluate", |pass| {
            for _ in 0..count {
                eval.dataset.record_gather(pass);
                self.net.record_forward(pass, true, false);
                eval.scores.record(pass);
                eval.accumulate_loss.record(pass);
                eval.advance_cursor.record(pass);
            }
        });
        self.net.submit(encoder)
    }

    /// Reads the totals of an evaluation of `len` samples into its loss and scores.
    async fn read_evaluation(&self, split: Split, len: usize) -> Result<Evaluation> {
        let eval = self.eval_plan(split)?;
        let outputs = self.outputs;
        let counts_len = (eval.counts.size() / 4) as usize;
        let (loss_total, counts) = self
            .read_totals(
                "the evaluation",
                (&eval.loss_total, 1 + outputs),
                (&eval.counts, counts_len),
            )
            .await?;
        let scores = match &eval.total_squares {
            Some(total_squares) => Scores::Regression {
                squared_errors: loss_total[1..].iter().map(|&e| f64::from(e)).collect(),
                total_squares: total_squares.clone(),
            },
            None => Scores::Classification {
                accuracy: f64::from(counts[0]) / len as f64,
                confusion: Array2::from_shape_fn((outputs, outputs), |(t, p)| {
                    u64::from(counts[1 + t * outputs + p])
                }),
            },
        };
        Ok(Evaluation {
            loss: loss_total[0] / len as f32,
            samples: len,
            scores,
        })
    }

    fn eval_plan(&self, split: Split) -> Result<&EvalPlan> {
        match split {
            Split::Test => self.test.as_ref(),
            Split::Validation => self.validation.as_ref(),
        }
        .ok_or_else(|| no_such_set(split))
    }

    fn eval_plan_mut(&mut self, split: Split) -> Result<&mut EvalPlan> {
        match split {
            Split::Test => self.test.as_mut(),
            Split::Validation => self.validation.as_mut(),
        }
        .ok_or_else(|| no_such_set(split))
    }
}

/// A 1-based epoch as the deformations' counter word holds it.
fn epoch_number(epoch: usize) -> Result<u32> {
    u32::try_from(epoch).map_err(|_| Error::invalid("epochs", format!("epoch {epoch} is past 2³²")))
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

    fn evaluate(&mut self, split: Split) -> Result<Evaluation> {
        pollster::block_on(self.evaluate_async(split))
    }

    fn set_learning_rate(&mut self, learning_rate: f32) -> Result<()> {
        GpuTrainer::set_learning_rate(self, learning_rate)
    }

    fn epochs_done(&self) -> usize {
        self.epochs_done
    }

    fn set_epochs_done(&mut self, epochs: usize) {
        GpuTrainer::set_epochs_done(self, epochs);
    }

    fn optimizer_state(&mut self) -> Result<OptimizerState> {
        self.net.optimizer_state()
    }

    fn set_optimizer_state(&mut self, state: &OptimizerState) -> Result<()> {
        GpuTrainer::set_optimizer_state(self, state)
    }

    fn to_mlp(&mut self) -> Result<Mlp> {
        self.net.to_mlp()
    }

    fn stop_on(&mut self, flag: StopFlag) {
        GpuTrainer::stop_on(self, flag);
    }

    fn profile(&self) -> Option<Profile> {
        GpuTrainer::profile(self)
    }
}
