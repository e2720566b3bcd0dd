//! [`CpuTrainer`]: the same schedule as the GPU trainer, on the CPU: by default on the fast
//! engine ([`crate::fast`]), which allocates nothing per step, or on the ndarray reference
//! ([`CpuTrainer::reference`]). Both share the batching, deformations, dropout draws, clipping
//! and the optimizer ([`OptimizerState`]), so the two differ only by f32 rounding.

use web_time::Instant;

use ndarray::Array2;

use super::{
    EpochReport, Evaluation, PROGRESS_INTERVAL, Progress, Regularization, Scores, Split, StopFlag,
    TrainConfig, Trainer, argmax, batch_sizes, check_dataset, diverged, epoch_order, no_such_set,
    total_squares,
};
use std::sync::Arc;

use super::gpu_data::HostData;
use crate::augment::{Augmentation, DeformScratch, deform, deform_in_place};
use crate::data::{Dataset, Targets};
use crate::error::{Error, Result};
use crate::fast::{Workspace, standard_layout, zero_gradients};
use crate::model::{Gradients, Mlp};
use crate::optim::{Optimizer, OptimizerConfig, OptimizerState, clip_grad_norm};
use crate::reference::{smooth_labels, smooth_labels_in_place};

/// Trains an [`Mlp`] on the CPU.
pub struct CpuTrainer<'a> {
    mlp: Mlp,
    state: OptimizerState,
    config: TrainConfig,
    epochs_done: usize,
    train: HostData<'a>,
    test: Option<HostData<'a>>,
    validation: Option<HostData<'a>>,
    /// Deformations of the training images, with their shape.
    augmentation: Option<(Augmentation, (usize, usize))>,
    /// Raised to stop after the step in progress.
    stop: StopFlag,
    /// Whether each epoch visits the samples in a new seeded order (else in their order).
    shuffle: bool,
    /// The last step's gradients.
    grads: Gradients,
    /// The fast engine's buffers, `None` when training with the reference.
    fast: Option<FastBuffers>,
}

/// Samples the fast engine evaluates at a time (or the training batch, if larger): large
/// products run at the cores' full rate and split over them, where a small training batch's
/// would not.
const EVALUATION_ROWS: usize = 1024;

/// What the fast engine reuses from step to step.
struct FastBuffers {
    /// The batch, every layer's values and the dropout factors.
    workspace: Workspace,
    /// The buffers of [`EVALUATION_ROWS`] samples, made at the first evaluation.
    evaluation: Option<Workspace>,
    /// Each thread's buffers for deforming an image.
    deform: Vec<DeformScratch>,
}

impl<'a> CpuTrainer<'a> {
    /// A trainer for `mlp` on `train`, evaluating on `test`, on the fast engine.
    pub fn new(
        mlp: &Mlp,
        train: &'a Dataset,
        test: Option<&'a Dataset>,
        config: TrainConfig,
    ) -> Result<Self> {
        CpuTrainer::reference(mlp, train, test, config)?.on_fast_engine()
    }

    /// A trainer for `mlp` on `train`, evaluating on `test`, on the ndarray reference: the
    /// executable spec, slower, for comparisons.
    pub fn reference(
        mlp: &Mlp,
        train: &'a Dataset,
        test: Option<&'a Dataset>,
        config: TrainConfig,
    ) -> Result<Self> {
        let test = test.map(HostData::Borrowed);
        CpuTrainer::build(mlp, HostData::Borrowed(train), test, config)
    }

    /// [`CpuTrainer::new`] on shared data sets, which the trainer keeps without borrowing.
    pub fn shared(
        mlp: &Mlp,
        train: Arc<Dataset>,
        test: Option<Arc<Dataset>>,
        config: TrainConfig,
    ) -> Result<CpuTrainer<'static>> {
        CpuTrainer::shared_reference(mlp, train, test, config)?.on_fast_engine()
    }

    /// [`CpuTrainer::reference`] on shared data sets, which the trainer keeps without borrowing.
    pub fn shared_reference(
        mlp: &Mlp,
        train: Arc<Dataset>,
        test: Option<Arc<Dataset>>,
        config: TrainConfig,
    ) -> Result<CpuTrainer<'static>> {
        let test = test.map(HostData::Shared);
        CpuTrainer::build(mlp, HostData::Shared(train), test, config)
    }

    /// This trainer, moved onto the fast engine: the model in its standard layout and the
    /// engine's buffers made once for the largest batch.
    fn on_fast_engine(mut self) -> Result<Self> {
        let mlp = standard_layout(&self.mlp);
        let largest_batch = self.config.batch_size.min(self.train.get().len());
        self.fast = Some(FastBuffers {
            workspace: Workspace::new(&mlp, largest_batch)?,
            evaluation: None,
            deform: Vec::new(),
        });
        self.grads = zero_gradients(&mlp);
        self.mlp = mlp;
        Ok(self)
    }

    /// A trainer on the ndarray reference, whose data are kept as `train` and `test` say.
    fn build(
        mlp: &Mlp,
        train: HostData<'a>,
        test: Option<HostData<'a>>,
        config: TrainConfig,
    ) -> Result<Self> {
        config.validate()?;
        mlp.validate()?;
        config
            .regularization
            .validate(mlp.loss, mlp.layers.len() - 1)?;
        check_dataset(mlp.inputs(), mlp.outputs(), train.get(), "training set")?;
        if let Some(test) = &test {
            check_dataset(mlp.inputs(), mlp.outputs(), test.get(), "test set")?;
        }
        Ok(CpuTrainer {
            state: OptimizerState::new(mlp),
            mlp: mlp.clone(),
            config,
            epochs_done: 0,
            train,
            test,
            validation: None,
            augmentation: None,
            stop: StopFlag::default(),
            shuffle: true,
            grads: zero_gradients(mlp),
            fast: None,
        })
    }

    /// Deforms every training batch with `augmentation` from the next epoch on, exactly as
    /// [`super::GpuTrainer::set_augmentation`] does; held-out sets are never deformed.
    pub fn set_augmentation(&mut self, augmentation: &Augmentation) -> Result<()> {
        augmentation.validate()?;
        let shape = self.train.get().image_shape;
        augmentation.check_image_shape(shape, "the training set")?;
        self.augmentation = shape.map(|shape| (*augmentation, shape));
        Ok(())
    }

    /// The reference's loss and gradients on the training samples `batch`, deformed for 1-based
    /// `epoch` and regularized as the config asks.
    fn reference_step(&self, batch: &[u32], epoch: u32) -> Result<(f32, Gradients)> {
        let indices: Vec<usize> = batch.iter().map(|&i| i as usize).collect();
        let (mut x, mut y) = self.train.get().batch(&indices);
        if let Some((augmentation, shape)) = &self.augmentation {
            for (mut row, &sample) in x.rows_mut().into_iter().zip(&indices) {
                let image = row.to_vec();
                let key = (epoch, sample as u32);
                let deformed = deform(augmentation, self.config.seed, key, *shape, &image);
                row.assign(&ndarray::ArrayView1::from(&deformed));
            }
        }
        let Regularization {
            label_smoothing,
            dropout,
            ..
        } = &self.config.regularization;
        if *label_smoothing > 0.0 {
            y = smooth_labels(y.view(), *label_smoothing);
        }
        if dropout.is_active() {
            // The step before this one's count, as the GPU's counter holds it.
            let widths = self.mlp.sizes();
            let masks = dropout.masks(self.config.seed, self.state.steps, x.nrows(), &widths);
            return self
                .mlp
                .loss_and_gradients_with_dropout(x.view(), y.view(), &masks);
        }
        self.mlp.loss_and_gradients(x.view(), y.view())
    }

    /// One training step on the samples `batch` (indices into the training set), the 0-based
    /// `step` of `steps` in 1-based `epoch`: the loss and gradients, clipped as the config asks,
    /// and the optimizer's update; on the fast engine, plain SGD without clipping writes its
    /// update from the backward pass itself ([`Workspace::sgd_step`]). Returns the batch's mean
    /// loss.
    fn training_step(
        &mut self,
        batch: &[u32],
        (epoch, step, steps): (u32, usize, usize),
    ) -> Result<f32> {
        let rows = batch.len();
        let loss = match &mut self.fast {
            Some(fast) => {
                let augmentation = self.augmentation.as_ref();
                let key = (epoch, self.state.steps);
                fast.prepare(self.train.get(), batch, &self.config, augmentation, key);
                let dropout = self.config.regularization.dropout.is_active();
                fast.workspace.training_loss(&self.mlp, rows, dropout)
            }
            None => {
                let (loss, grads) = self.reference_step(batch, epoch)?;
                self.grads = grads;
                loss
            }
        };
        if !loss.is_finite() {
            return Err(diverged(
                self.epochs_done + 1,
                step + 1,
                steps,
                &self.config.optimizer,
            ));
        }
        let clip_norm = self.config.regularization.clip_norm;
        if let Some(fast) = &mut self.fast {
            let OptimizerConfig {
                optimizer,
                learning_rate,
                weight_decay,
            } = self.config.optimizer;
            if optimizer == Optimizer::Sgd && clip_norm.is_none() {
                let workspace = &mut fast.workspace;
                workspace.sgd_step(&mut self.mlp, rows, learning_rate, weight_decay);
                self.state.steps += 1;
                return Ok(loss);
            }
            fast.workspace.gradients(&self.mlp, rows, &mut self.grads);
        }
        if let Some(max_norm) = clip_norm {
            clip_grad_norm(&mut self.grads, max_norm);
        }
        self.state
            .apply(&self.config.optimizer, &mut self.mlp, &self.grads)?;
        Ok(loss)
    }

    /// Adds a validation set, evaluated with `evaluate(Split::Validation)`.
    pub fn set_validation(&mut self, validation: &'a Dataset) -> Result<()> {
        self.set_validation_data(HostData::Borrowed(validation))
    }

    /// [`CpuTrainer::set_validation`] with a shared data set.
    pub fn set_shared_validation(&mut self, validation: Arc<Dataset>) -> Result<()> {
        self.set_validation_data(HostData::Shared(validation))
    }

    fn set_validation_data(&mut self, validation: HostData<'a>) -> Result<()> {
        check_dataset(
            self.mlp.inputs(),
            self.mlp.outputs(),
            validation.get(),
            "validation set",
        )?;
        self.validation = Some(validation);
        Ok(())
    }

    /// Whether each epoch visits the training samples in a new seeded order (the default) or
    /// in their order, as the GPU trainer's [`super::GpuTrainer::set_shuffle`].
    pub fn set_shuffle(&mut self, shuffle: bool) {
        self.shuffle = shuffle;
    }
}

/// Evaluates `mlp` on `dataset` on the fast engine, `batch_size` samples at a time.
pub fn evaluate_cpu(mlp: &Mlp, dataset: &Dataset, batch_size: usize) -> Result<Evaluation> {
    check_dataset(mlp.inputs(), mlp.outputs(), dataset, "data set")?;
    let mlp = standard_layout(mlp);
    let mut workspace = Workspace::new(&mlp, batch_size.min(dataset.len()))?;
    Ok(evaluate_fast(&mlp, dataset, &mut workspace))
}

/// [`evaluate_cpu`] in `workspace` (made for `mlp`), [`Workspace::capacity`] samples at a time.
fn evaluate_fast(mlp: &Mlp, dataset: &Dataset, workspace: &mut Workspace) -> Evaluation {
    let mut tally = Tally::new(dataset);
    let mut start = 0;
    for rows in batch_sizes(dataset.len(), workspace.capacity()) {
        let (x, y) = workspace.batch_mut(rows);
        gather(dataset, start..start + rows, x, y);
        let loss = workspace.forward_and_loss(mlp, rows);
        tally.add(
            start,
            workspace.outputs(rows),
            workspace.targets(rows),
            loss,
        );
        start += rows;
    }
    tally.finish()
}

/// Evaluates `mlp` on `dataset` with the ndarray reference, `batch_size` samples at a time.
pub fn evaluate_reference(mlp: &Mlp, dataset: &Dataset, batch_size: usize) -> Result<Evaluation> {
    check_dataset(mlp.inputs(), mlp.outputs(), dataset, "data set")?;
    let mut tally = Tally::new(dataset);
    let mut start = 0;
    for rows in batch_sizes(dataset.len(), batch_size.max(1)) {
        let indices: Vec<usize> = (start..start + rows).collect();
        let (x, y) = dataset.batch(&indices);
        let (predicted, loss) = mlp.forward_and_loss(x.view(), y.view())?;
        let rows_of = |a: &Array2<f32>| a.iter().copied().collect::<Vec<f32>>();
        tally.add(start, &rows_of(&predicted), &rows_of(&y), loss);
        start += rows;
    }
    Ok(tally.finish())
}

/// An evaluation's sums over its batches.
struct Tally<'a> {
    dataset: &'a Dataset,
    confusion: Array2<u64>,
    squared_errors: Vec<f64>,
    loss_sum: f64,
}

impl<'a> Tally<'a> {
    fn new(dataset: &'a Dataset) -> Self {
        let outputs = dataset.outputs();
        Tally {
            dataset,
            confusion: Array2::zeros((outputs, outputs)),
            squared_errors: vec![0.0; outputs],
            loss_sum: 0.0,
        }
    }

    /// Adds the batch of samples from `first` on: their outputs and targets, `(rows, outputs)`
    /// row-major, and its mean loss.
    fn add(&mut self, first: usize, outputs: &[f32], targets: &[f32], loss: f32) {
        let width = self.squared_errors.len();
        self.loss_sum += f64::from(loss) * (outputs.len() / width) as f64;
        let rows = outputs.chunks_exact(width).zip(targets.chunks_exact(width));
        for (row, (predicted, y)) in rows.enumerate() {
            match self.dataset.targets.classes() {
                Some((labels, _)) => {
                    let guess = argmax(predicted.iter().copied());
                    self.confusion[[labels[first + row] as usize, guess]] += 1;
                }
                None => {
                    for (error, (&p, &y)) in
                        self.squared_errors.iter_mut().zip(predicted.iter().zip(y))
                    {
                        *error += f64::from(p - y).powi(2);
                    }
                }
            }
        }
    }

    fn finish(self) -> Evaluation {
        let len = self.dataset.len();
        let scores = match &self.dataset.targets {
            Targets::Classes { .. } => Scores::Classification {
                accuracy: self.confusion.diag().sum() as f64 / len as f64,
                confusion: self.confusion,
            },
            Targets::Values(values) => Scores::Regression {
                squared_errors: self.squared_errors,
                total_squares: total_squares(values),
            },
        };
        Evaluation {
            loss: (self.loss_sum / len as f64) as f32,
            samples: len,
            scores,
        }
    }
}

/// Writes `samples` of `dataset` into `x: (rows, inputs)` and `y: (rows, outputs)`, row-major.
fn gather(dataset: &Dataset, samples: impl Iterator<Item = usize>, x: &mut [f32], y: &mut [f32]) {
    let x_rows = x.chunks_exact_mut(dataset.inputs());
    let y_rows = y.chunks_exact_mut(dataset.outputs());
    for ((sample, x_row), y_row) in samples.zip(x_rows).zip(y_rows) {
        dataset.features.write_row(sample, x_row);
        dataset.targets.write_row(sample, y_row);
    }
}

impl FastBuffers {
    /// Gathers the training samples `batch` into the workspace, deformed by `augmentation` for
    /// 1-based `epoch` and with smoothed labels where `config` asks, and draws the dropout
    /// factors of training step `step` (0-based over the run).
    fn prepare(
        &mut self,
        train: &Dataset,
        batch: &[u32],
        config: &TrainConfig,
        augmentation: Option<&(Augmentation, (usize, usize))>,
        (epoch, step): (u32, u64),
    ) {
        let rows = batch.len();
        let (x, y) = self.workspace.batch_mut(rows);
        gather(train, batch.iter().map(|&i| i as usize), x, y);
        if let Some((augmentation, shape)) = augmentation {
            let deform = |x: &mut [f32], samples: &[u32], scratch: &mut DeformScratch| {
                for (image, &sample) in x.chunks_exact_mut(train.inputs()).zip(samples) {
                    let key = (epoch, sample);
                    deform_in_place(augmentation, config.seed, key, *shape, image, scratch);
                }
            };
            split_over_threads(x, train.inputs(), batch, &mut self.deform, deform);
        }
        let Regularization {
            label_smoothing,
            dropout,
            ..
        } = &config.regularization;
        if *label_smoothing > 0.0 {
            smooth_labels_in_place(y, train.outputs(), *label_smoothing);
        }
        if dropout.is_active() {
            self.workspace.draw_masks(dropout, config.seed, step, rows);
        }
    }
}

/// Runs `work` on consecutive shares of the batch's rows `x` (of `width` values) and their
/// `samples`, one share per thread, each with its own scratch from `scratches`.
fn split_over_threads(
    x: &mut [f32],
    width: usize,
    samples: &[u32],
    scratches: &mut Vec<DeformScratch>,
    work: impl Fn(&mut [f32], &[u32], &mut DeformScratch) + Sync,
) {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        let threads = rayon::current_num_threads().min(samples.len()).max(1);
        scratches.resize_with(threads, DeformScratch::default);
        let share = samples.len().div_ceil(threads);
        x.par_chunks_mut(share * width)
            .zip(samples.par_chunks(share))
            .zip(scratches.par_iter_mut())
            .for_each(|((x, samples), scratch)| work(x, samples, scratch));
    }
    #[cfg(target_arch = "wasm32")]
    {
        let _ = width;
        scratches.resize_with(1, DeformScratch::default);
        work(x, samples, &mut scratches[0]);
    }
}

/// Runs `step` on one of the thread pool's workers: a product or update that `step` splits over
/// the cores then runs one share on that worker and hands the other to a worker that is awake,
/// where from the caller's thread every split would wake two workers and put the caller to
/// sleep (5% of MNIST's batch-64 step, measured in BENCHMARKS.md). Steps that split nothing stay
/// on the caller's thread, which the hand-over would only delay.
fn on_worker_thread<T: Send>(step: impl FnOnce() -> T + Send) -> T {
    #[cfg(not(target_arch = "wasm32"))]
    return rayon::scope(|_| step());
    #[cfg(target_arch = "wasm32")]
    step()
}

impl Trainer for CpuTrainer<'_> {
    fn train_epoch(&mut self, progress: &mut dyn FnMut(Progress)) -> Result<EpochReport> {
        let start = Instant::now();
        let train = self.train.get();
        let len = train.len();
        let mut order: Vec<u32> = (0..len as u32).collect();
        if self.shuffle {
            epoch_order(self.config.seed, self.epochs_done + 1, &mut order);
        }
        let (mut samples, mut loss_sum) = (0, 0.0f64);
        let mut last_report = Instant::now();
        let steps = len.div_ceil(self.config.batch_size);
        for (step, rows) in batch_sizes(len, self.config.batch_size).enumerate() {
            self.stop.check(self.epochs_done + 1, samples)?;
            let batch = &order[samples..samples + rows];
            let epoch = u32::try_from(self.epochs_done + 1).unwrap_or(u32::MAX);
            let position = (epoch, step, steps);
            let loss = match &self.fast {
                Some(fast) if fast.workspace.splits_over_cores() => {
                    on_worker_thread(|| self.training_step(batch, position))?
                }
                _ => self.training_step(batch, position)?,
            };
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
        Ok(EpochReport::finished(
            self.epochs_done,
            train_loss,
            len,
            start,
        ))
    }

    fn evaluate(&mut self, split: Split) -> Result<Evaluation> {
        let set = match split {
            Split::Test => &self.test,
            Split::Validation => &self.validation,
        };
        let set = set.as_ref().ok_or_else(|| no_such_set(split))?.get();
        let Some(fast) = &mut self.fast else {
            return evaluate_reference(&self.mlp, set, self.config.batch_size);
        };
        let rows = EVALUATION_ROWS.max(self.config.batch_size).min(set.len());
        let workspace = match &mut fast.evaluation {
            Some(workspace) if workspace.capacity() >= rows => workspace,
            evaluation => evaluation.insert(Workspace::new(&self.mlp, rows)?),
        };
        Ok(evaluate_fast(&self.mlp, set, workspace))
    }

    fn set_learning_rate(&mut self, learning_rate: f32) -> Result<()> {
        let mut optimizer = self.config.optimizer;
        optimizer.learning_rate = learning_rate;
        optimizer.validate()?;
        self.config.optimizer = optimizer;
        Ok(())
    }

    fn stop_on(&mut self, flag: StopFlag) {
        self.stop = flag;
    }

    fn epochs_done(&self) -> usize {
        self.epochs_done
    }

    fn set_epochs_done(&mut self, epochs: usize) {
        self.epochs_done = epochs;
    }

    fn optimizer_state(&mut self) -> Result<OptimizerState> {
        Ok(self.state.clone())
    }

    fn set_optimizer_state(&mut self, state: &OptimizerState) -> Result<()> {
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

    fn to_mlp(&mut self) -> Result<Mlp> {
        Ok(self.mlp.clone())
    }
}
