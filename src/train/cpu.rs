//! [`CpuTrainer`]: the same schedule as the GPU trainer, on the ndarray reference.

use web_time::Instant;

use ndarray::Array2;

use super::{
    EpochReport, Evaluation, PROGRESS_INTERVAL, Progress, Regularization, Scores, Split, StopFlag,
    TrainConfig, Trainer, argmax, batch_sizes, check_dataset, diverged, epoch_order, no_such_set,
    total_squares,
};
use std::sync::Arc;

use super::gpu_data::HostData;
use crate::augment::{Augmentation, deform};
use crate::data::{Dataset, Targets};
use crate::error::{Error, Result};
use crate::model::Mlp;
use crate::optim::{OptimizerState, clip_grad_norm};
use crate::reference::smooth_labels;

/// Trains an [`Mlp`] with the CPU reference.
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
}

impl<'a> CpuTrainer<'a> {
    /// A trainer for `mlp` on `train`, evaluating on `test`.
    pub fn new(
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
        let test = test.map(HostData::Shared);
        CpuTrainer::build(mlp, HostData::Shared(train), test, config)
    }

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

/// Evaluates `mlp` on `dataset` with the CPU reference, `batch_size` samples at a time.
pub fn evaluate_cpu(mlp: &Mlp, dataset: &Dataset, batch_size: usize) -> Result<Evaluation> {
    check_dataset(mlp.inputs(), mlp.outputs(), dataset, "data set")?;
    let outputs = dataset.outputs();
    let mut confusion = Array2::<u64>::zeros((outputs, outputs));
    let mut squared_errors = vec![0.0f64; outputs];
    let (mut loss_sum, mut start) = (0.0f64, 0usize);
    for rows in batch_sizes(dataset.len(), batch_size.max(1)) {
        let indices: Vec<usize> = (start..start + rows).collect();
        let (x, y) = dataset.batch(&indices);
        let (predicted, loss) = mlp.forward_and_loss(x.view(), y.view())?;
        loss_sum += f64::from(loss) * rows as f64;
        for (row, &sample) in indices.iter().enumerate() {
            match dataset.targets.classes() {
                Some((labels, _)) => {
                    let guess = argmax(predicted.row(row).iter().copied());
                    confusion[[labels[sample] as usize, guess]] += 1;
                }
                None => {
                    for (c, error) in squared_errors.iter_mut().enumerate() {
                        *error += f64::from(predicted[[row, c]] - y[[row, c]]).powi(2);
                    }
                }
            }
        }
        start += rows;
    }
    let len = dataset.len();
    let scores = match &dataset.targets {
        Targets::Classes { .. } => Scores::Classification {
            accuracy: confusion.diag().sum() as f64 / len as f64,
            confusion,
        },
        Targets::Values(values) => Scores::Regression {
            squared_errors,
            total_squares: total_squares(values),
        },
    };
    Ok(Evaluation {
        loss: (loss_sum / len as f64) as f32,
        samples: len,
        scores,
    })
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
        let widths = self.mlp.sizes();
        for (step, rows) in batch_sizes(len, self.config.batch_size).enumerate() {
            self.stop.check(self.epochs_done + 1, samples)?;
            let indices: Vec<usize> = order[samples..samples + rows]
                .iter()
                .map(|&i| i as usize)
                .collect();
            let (mut x, mut y) = train.batch(&indices);
            if let Some((augmentation, shape)) = &self.augmentation {
                let epoch = u32::try_from(self.epochs_done + 1).unwrap_or(u32::MAX);
                for (mut row, &sample) in x.rows_mut().into_iter().zip(&indices) {
                    let image = row.to_vec();
                    let key = (epoch, sample as u32);
                    let deformed = deform(augmentation, self.config.seed, key, *shape, &image);
                    row.assign(&ndarray::ArrayView1::from(&deformed));
                }
            }
            let Regularization {
                label_smoothing,
                clip_norm,
                dropout,
            } = &self.config.regularization;
            if *label_smoothing > 0.0 {
                y = smooth_labels(y.view(), *label_smoothing);
            }
            let (loss, mut grads) = if dropout.is_active() {
                // The step before this one's count, as the GPU's counter holds it.
                let masks = dropout.masks(self.config.seed, self.state.steps, rows, &widths);
                self.mlp
                    .loss_and_gradients_with_dropout(x.view(), y.view(), &masks)?
            } else {
                self.mlp.loss_and_gradients(x.view(), y.view())?
            };
            if !loss.is_finite() {
                return Err(diverged(
                    self.epochs_done + 1,
                    step + 1,
                    steps,
                    &self.config.optimizer,
                ));
            }
            if let Some(max_norm) = *clip_norm {
                clip_grad_norm(&mut grads, max_norm);
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
        let set = set.as_ref().ok_or_else(|| no_such_set(split))?;
        evaluate_cpu(&self.mlp, set.get(), self.config.batch_size)
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
