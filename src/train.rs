//! Mini-batch training and evaluation over a [`Dataset`]: on the GPU ([`GpuTrainer`]) with the
//! whole data set resident there, or on the CPU reference ([`CpuTrainer`]) for comparison.
//!
//! Both follow the same schedule: each epoch visits the training set in an order shuffled by a
//! seeded [`Rng`], in batches of `batch_size` (the last one smaller), and evaluation reports the
//! mean loss, the accuracy and the confusion matrix. The same seed on the same adapter gives the
//! same result.
//!
//! On the GPU an epoch writes only the shuffled order (once) and reads back only the summed loss
//! (when asked for progress, at most every [`PROGRESS_INTERVAL`]); each step gathers its batch from
//! the resident bytes, trains and advances a cursor, in one submission.

use std::time::{Duration, Instant};

use ndarray::Array2;

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::gpu::context::Gpu;
use crate::gpu::kernels::data::{Gather, GatherBuffers, pack_bytes};
use crate::gpu::kernels::metrics::{Metrics, MetricsBuffers};
use crate::gpu::kernels::{Dispatch, Recorder};
use crate::gpu::network::{Fusion, GpuMlp};
use crate::gpu::profile::{CountDispatches, Profile, Profiler};
use crate::model::Mlp;
use crate::optim::{OptimizerConfig, OptimizerState};
use crate::rng::Rng;

/// Training steps recorded into one submission when nothing is read back between them.
pub const STEPS_PER_SUBMIT: usize = 8;

/// How often a progress callback may cost a read-back of the running loss.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

/// What to train with.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainConfig {
    /// Update rule, learning rate and weight decay.
    pub optimizer: OptimizerConfig,
    /// Samples per step.
    pub batch_size: usize,
    /// Seeds the per-epoch shuffles.
    pub seed: u64,
}

impl TrainConfig {
    /// Checks the batch size and the optimizer.
    pub fn validate(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(Error::invalid("batch size", "0 (must be at least 1)"));
        }
        self.optimizer.validate()
    }
}

/// Progress within an epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    /// Samples trained on so far this epoch.
    pub samples: usize,
    /// Samples in the epoch.
    pub total: usize,
    /// Mean loss of the samples so far.
    pub running_loss: f32,
}

/// One finished epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochReport {
    /// 1-based.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches, weighted by their sizes.
    pub train_loss: f32,
    /// Samples trained on.
    pub samples: usize,
    /// Wall time of the epoch.
    pub seconds: f64,
}

impl EpochReport {
    /// Training throughput.
    pub fn samples_per_second(&self) -> f64 {
        self.samples as f64 / self.seconds.max(1e-9)
    }
}

/// The result of evaluating a model on a data set.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Mean loss.
    pub loss: f32,
    /// Fraction of samples whose largest output is their label.
    pub accuracy: f64,
    /// `confusion[[truth, predicted]]` counts.
    pub confusion: Array2<u64>,
    /// Samples evaluated.
    pub samples: usize,
}

/// A batch's row count for each step of an epoch of `len` samples.
fn batch_sizes(len: usize, batch_size: usize) -> impl Iterator<Item = usize> {
    (0..len.div_ceil(batch_size)).map(move |i| batch_size.min(len - i * batch_size))
}

/// Shuffles `order` for 1-based `epoch`. The permutation depends only on the seed and the epoch
/// number, so training resumed at epoch k visits the data exactly as an uninterrupted run does.
fn epoch_order(seed: u64, epoch: usize, order: &mut [u32]) {
    Rng::new(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)).shuffle(order);
}

/// The error for a loss that stopped being finite at 1-based `step` of `epoch`.
fn diverged(epoch: usize, step: usize, steps: usize, learning_rate: f32) -> Error {
    Error::Diverged {
        epoch,
        step,
        steps,
        learning_rate,
    }
}

fn check_dataset(
    mlp_inputs: usize,
    mlp_outputs: usize,
    dataset: &Dataset,
    what: &str,
) -> Result<()> {
    dataset.validate(what)?;
    if dataset.inputs() != mlp_inputs {
        return Err(Error::invalid(
            what,
            format!(
                "has {}×{} = {} pixels per image but the model takes {mlp_inputs} inputs",
                dataset.rows,
                dataset.cols,
                dataset.inputs()
            ),
        ));
    }
    if dataset.classes != mlp_outputs {
        return Err(Error::invalid(
            what,
            format!(
                "has {} classes but the model has {mlp_outputs} outputs",
                dataset.classes
            ),
        ));
    }
    Ok(())
}

// ---- GPU ------------------------------------------------------------------------------------

/// A data set resident on the GPU as packed bytes, with a buffer for its sample order.
struct GpuDataset {
    len: usize,
    images: wgpu::Buffer,
    labels: wgpu::Buffer,
    order: wgpu::Buffer,
}

impl GpuDataset {
    fn upload(gpu: &Gpu, name: &str, dataset: &Dataset) -> Result<Self> {
        let order: Vec<u32> = (0..dataset.len() as u32).collect();
        Ok(GpuDataset {
            len: dataset.len(),
            images: gpu
                .storage_buffer_with(&format!("{name}.images"), &pack_bytes(&dataset.images))?,
            labels: gpu
                .storage_buffer_with(&format!("{name}.labels"), &pack_bytes(&dataset.labels))?,
            order: gpu.storage_buffer_with(&format!("{name}.order"), &order)?,
        })
    }
}

/// Everything an evaluation pass records per batch, bound once.
struct EvalPlan {
    dataset: GpuDataset,
    counters: wgpu::Buffer,
    counts: wgpu::Buffer,
    loss_total: wgpu::Buffer,
    gather: Dispatch,
    advance_cursor: Dispatch,
    accuracy: Dispatch,
    accumulate_loss: Dispatch,
}

/// Everything a training step records besides the network's own step, bound once.
struct TrainPlan {
    dataset: GpuDataset,
    gather: Dispatch,
    accumulate_loss: Dispatch,
    watch_loss: Dispatch,
    /// `[steps this epoch, first step whose loss was not finite (0: none)]`.
    watch: wgpu::Buffer,
    loss_total: wgpu::Buffer,
}

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
                    &format!("the {what}'s {} images", set.len()),
                    set.images.len().next_multiple_of(4) as u64,
                )?;
            }
        }
        let mut net = GpuMlp::with_batch_capacity(gpu, mlp, config.batch_size)?;
        net.set_optimizer(config.optimizer)?;
        let train = match train {
            Some(train) => Some(Self::bind_train(gpu, &net, train, config.batch_size)?),
            None => None,
        };
        let eval = match test {
            Some(test) => Some(Self::bind_eval(gpu, &net, test, config.batch_size)?),
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
        })
    }

    fn bind_train(gpu: &Gpu, net: &GpuMlp, train: &Dataset, batch: usize) -> Result<TrainPlan> {
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

    fn bind_eval(gpu: &Gpu, net: &GpuMlp, test: &Dataset, batch: usize) -> Result<EvalPlan> {
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

    /// The network being trained.
    pub fn network(&mut self) -> &mut GpuMlp {
        &mut self.net
    }

    /// Epochs finished so far.
    pub fn epochs_done(&self) -> usize {
        self.epochs_done
    }

    /// Continues the epoch count of a resumed model: the next epoch is `epochs + 1`, shuffled as
    /// that epoch of an uninterrupted run would be.
    pub fn set_epochs_done(&mut self, epochs: usize) {
        self.epochs_done = epochs;
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
    fn read_totals(
        &self,
        what: &str,
        loss_total: &wgpu::Buffer,
        counts: (&wgpu::Buffer, usize),
    ) -> Result<(f32, Vec<u32>)> {
        let gpu = self.net.gpu();
        let sources = [(loss_total, 1), counts];
        let values: Vec<Vec<u32>> =
            gpu.read_back(what, gpu.encoder(what), &self.staging, &sources)?;
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

    /// The per-kernel times of the steps profiled so far, if profiling was asked for.
    pub fn profile(&self) -> Option<Profile> {
        self.profiler
            .as_ref()
            .map(|(profiler, _)| profiler.profile())
    }

    /// Trains one epoch; `progress` is called at most every [`PROGRESS_INTERVAL`] and at the end,
    /// with the running loss (which costs one read-back each).
    pub fn train_epoch(&mut self, mut progress: impl FnMut(Progress)) -> Result<EpochReport> {
        let start = Instant::now();
        let len = self.begin_epoch()?;
        let batch = self.config.batch_size;
        let (full, remainder) = (len / batch, len % batch);
        let steps = full + usize::from(remainder > 0);
        let mut last_report = Instant::now();
        let mut done = 0;
        while done < full {
            let count = STEPS_PER_SUBMIT.min(full - done);
            self.submit_steps(batch, count)?;
            done += count;
            if last_report.elapsed() >= PROGRESS_INTERVAL && done < steps {
                let samples = done * batch;
                let running_loss = self.read_epoch_loss("the running loss", samples, steps)?;
                progress(Progress {
                    samples,
                    total: len,
                    running_loss,
                });
                last_report = Instant::now();
            }
        }
        if remainder > 0 {
            self.submit_steps(remainder, 1)?;
        }
        let train_loss = self.read_epoch_loss("the epoch loss", len, steps)?;
        progress(Progress {
            samples: len,
            total: len,
            running_loss: train_loss,
        });
        self.epochs_done += 1;
        Ok(EpochReport {
            epoch: self.epochs_done,
            train_loss,
            samples: len,
            seconds: start.elapsed().as_secs_f64(),
        })
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
    fn read_epoch_loss(&self, what: &str, samples: usize, steps: usize) -> Result<f32> {
        let train = self.train.as_ref().ok_or_else(no_training_set)?;
        let (loss_sum, watch) = self.read_totals(what, &train.loss_total, (&train.watch, 2))?;
        match watch.get(1) {
            Some(&step) if step > 0 => Err(diverged(
                self.epochs_done + 1,
                step as usize,
                steps,
                self.config.optimizer.learning_rate,
            )),
            _ => Ok(loss_sum / samples as f32),
        }
    }

    /// Loss, accuracy and confusion matrix on the test set, computed on the GPU.
    pub fn evaluate(&mut self) -> Result<Evaluation> {
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
        let (loss_sum, counts) = self.read_totals(
            "the evaluation",
            &eval.loss_total,
            (&eval.counts, 1 + self.classes * self.classes),
        )?;
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

    /// The optimizer's moments and step count, downloaded (to save for `--resume`).
    pub fn optimizer_state(&mut self) -> Result<OptimizerState> {
        self.net.optimizer_state()
    }

    /// Restores a saved optimizer state, to continue exactly where a run stopped.
    pub fn set_optimizer_state(&mut self, state: &OptimizerState) -> Result<()> {
        self.net.set_optimizer_state(state)
    }

    /// The trained model, downloaded.
    pub fn to_mlp(&mut self) -> Result<Mlp> {
        self.net.to_mlp()
    }
}

fn no_training_set() -> Error {
    Error::invalid("training", "this trainer was built for evaluation only")
}

fn no_test_set() -> Error {
    Error::invalid("evaluation", "no test set was given to the trainer")
}

// ---- CPU ------------------------------------------------------------------------------------

/// Trains an [`Mlp`] with the CPU reference.
pub struct CpuTrainer<'a> {
    mlp: Mlp,
    state: OptimizerState,
    config: TrainConfig,
    epochs_done: usize,
    train: &'a Dataset,
    test: Option<&'a Dataset>,
}

impl<'a> CpuTrainer<'a> {
    /// A trainer for `mlp` on `train`, evaluating on `test`.
    pub fn new(
        mlp: &Mlp,
        train: &'a Dataset,
        test: Option<&'a Dataset>,
        config: TrainConfig,
    ) -> Result<Self> {
        config.validate()?;
        mlp.validate()?;
        check_dataset(mlp.inputs(), mlp.outputs(), train, "training set")?;
        if let Some(test) = test {
            check_dataset(mlp.inputs(), mlp.outputs(), test, "test set")?;
        }
        Ok(CpuTrainer {
            state: OptimizerState::new(mlp),
            mlp: mlp.clone(),
            config,
            epochs_done: 0,
            train,
            test,
        })
    }

    /// Trains one epoch; `progress` is called at most every [`PROGRESS_INTERVAL`] and at the end.
    pub fn train_epoch(&mut self, mut progress: impl FnMut(Progress)) -> Result<EpochReport> {
        let start = Instant::now();
        let len = self.train.len();
        let mut order: Vec<u32> = (0..len as u32).collect();
        epoch_order(self.config.seed, self.epochs_done + 1, &mut order);
        let (mut samples, mut loss_sum) = (0, 0.0f64);
        let mut last_report = Instant::now();
        let steps = len.div_ceil(self.config.batch_size);
        for (step, rows) in batch_sizes(len, self.config.batch_size).enumerate() {
            let indices: Vec<usize> = order[samples..samples + rows]
                .iter()
                .map(|&i| i as usize)
                .collect();
            let (x, y) = self.train.batch(&indices);
            let (loss, grads) = self.mlp.loss_and_gradients(x.view(), y.view())?;
            if !loss.is_finite() {
                return Err(diverged(
                    self.epochs_done + 1,
                    step + 1,
                    steps,
                    self.config.optimizer.learning_rate,
                ));
            }
            self.state
                .apply(&self.config.optimizer, &mut self.mlp, &grads)?;
            loss_sum += f64::from(loss) * rows as f64;
            samples += rows;
            if last_report.elapsed() >= PROGRESS_INTERVAL || samples == len {
                progress(Progress {
                    samples,
                    total: len,
                    running_loss: (loss_sum / samples as f64) as f32,
                });
                last_report = Instant::now();
            }
        }
        self.epochs_done += 1;
        let train_loss = (loss_sum / len as f64) as f32;
        Ok(EpochReport {
            epoch: self.epochs_done,
            train_loss,
            samples: len,
            seconds: start.elapsed().as_secs_f64(),
        })
    }

    /// Loss, accuracy and confusion matrix on the test set.
    pub fn evaluate(&mut self) -> Result<Evaluation> {
        let test = self.test.ok_or_else(no_test_set)?;
        evaluate_cpu(&self.mlp, test, self.config.batch_size)
    }

    /// Continues the epoch count of a resumed model (see [`GpuTrainer::set_epochs_done`]).
    pub fn set_epochs_done(&mut self, epochs: usize) {
        self.epochs_done = epochs;
    }

    /// The optimizer's moments and step count.
    pub fn optimizer_state(&self) -> OptimizerState {
        self.state.clone()
    }

    /// Restores a saved optimizer state, to continue exactly where a run stopped.
    pub fn set_optimizer_state(&mut self, state: &OptimizerState) -> Result<()> {
        let shapes = |s: &OptimizerState| -> Vec<(usize, usize)> {
            s.moment1.iter().map(|(w, b)| (w.len(), b.len())).collect()
        };
        if shapes(state) != shapes(&self.state) || state.moment2.len() != self.state.moment2.len() {
            return Err(Error::Model(
                "the optimizer state does not match the model's layers".into(),
            ));
        }
        self.state = state.clone();
        Ok(())
    }

    /// The model being trained.
    pub fn to_mlp(&self) -> Mlp {
        self.mlp.clone()
    }
}

/// Evaluates `mlp` on `dataset` with the CPU reference, `batch_size` samples at a time.
pub fn evaluate_cpu(mlp: &Mlp, dataset: &Dataset, batch_size: usize) -> Result<Evaluation> {
    check_dataset(mlp.inputs(), mlp.outputs(), dataset, "data set")?;
    let classes = dataset.classes;
    let mut confusion = Array2::<u64>::zeros((classes, classes));
    let (mut loss_sum, mut correct, mut start) = (0.0f64, 0usize, 0usize);
    for rows in batch_sizes(dataset.len(), batch_size.max(1)) {
        let indices: Vec<usize> = (start..start + rows).collect();
        let (x, y) = dataset.batch(&indices);
        let outputs = mlp.forward(x.view())?;
        loss_sum += f64::from(mlp.loss(x.view(), y.view())?) * rows as f64;
        for (row, &sample) in indices.iter().enumerate() {
            let predicted = argmax(outputs.row(row).iter().copied());
            let truth = dataset.labels[sample] as usize;
            confusion[[truth, predicted]] += 1;
            correct += usize::from(predicted == truth);
        }
        start += rows;
    }
    let len = dataset.len();
    Ok(Evaluation {
        loss: (loss_sum / len as f64) as f32,
        accuracy: correct as f64 / len as f64,
        confusion,
        samples: len,
    })
}

/// The index of the largest value (the first on ties, as `torch.argmax`).
pub fn argmax(values: impl Iterator<Item = f32>) -> usize {
    let mut best = (0, f32::NEG_INFINITY);
    for (i, v) in values.enumerate() {
        if v > best.1 {
            best = (i, v);
        }
    }
    best.0
}
