//! Mini-batch training and evaluation over a [`Dataset`]: on the GPU ([`GpuTrainer`]) with the
//! whole data set resident there, or on the CPU ([`CpuTrainer`]: the fast engine, or the ndarray
//! reference for comparison).
//!
//! Both follow the same schedule: each epoch visits the training set in an order shuffled by a
//! seeded [`Rng`], in batches of `batch_size` (the last one smaller), and evaluation reports the
//! mean loss and the task's scores: accuracy and the confusion matrix for classes, squared errors
//! (for RMSE and R²) for regression. The same seed on the same adapter gives the
//! same result.
//!
//! On the GPU an epoch writes only the shuffled order (once) and reads back only the summed loss
//! (when asked for progress, at most every [`PROGRESS_INTERVAL`]); each step gathers its batch from
//! the resident bytes, trains and advances a cursor, in one submission.
//!
//! Both implement [`Trainer`], so a caller can drive either the same way.

mod cpu;
pub mod defaults;
mod gpu;
mod gpu_data;
mod gpu_plans;
pub mod schedule;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ndarray::Array2;
use web_time::Instant;

pub use cpu::{CpuTrainer, evaluate_cpu};
pub use defaults::{DEFAULT_HIDDEN_SIZES, DEFAULT_SEED, Defaults, MAX_DEFAULT_EPOCHS};
pub use gpu::GpuTrainer;
pub use gpu_data::{DataPlacement, RESIDENT_CHUNKS};
pub use schedule::{EarlyStopping, LrSchedule, ScheduleKind};

use crate::data::Dataset;
use crate::dropout::Dropout;
use crate::error::{Error, Result};
use crate::gpu::profile::Profile;
use crate::model::{Loss, Mlp};
use crate::optim::{OptimizerConfig, OptimizerState};
use crate::rng::Rng;

/// Training steps recorded into one submission when nothing is read back between them.
pub const STEPS_PER_SUBMIT: usize = 8;

/// How often a progress callback may cost a read-back of the running loss.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

/// What to train with.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// Update rule, learning rate and weight decay.
    pub optimizer: OptimizerConfig,
    /// Samples per step.
    pub batch_size: usize,
    /// Seeds the per-epoch shuffles.
    pub seed: u64,
    /// Label smoothing, gradient clipping and dropout (none by default).
    pub regularization: Regularization,
}

impl TrainConfig {
    /// Checks the batch size, the optimizer and the regularization's ranges.
    pub fn validate(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(Error::invalid("batch size", "0 (must be at least 1)"));
        }
        self.optimizer.validate()?;
        self.regularization.check_ranges()
    }
}

/// What training adds to the loss and the gradients to generalize, each as PyTorch spells it.
/// Evaluation, `predict` and [`Mlp::loss_and_gradients`] never apply them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Regularization {
    /// `nn.CrossEntropyLoss(label_smoothing=ε)`: cross-entropy's targets become
    /// `(1 − ε)·y + ε/K` for `K` classes; 0 for none, in `[0, 1)`, cross-entropy only.
    pub label_smoothing: f32,
    /// `torch.nn.utils.clip_grad_norm_(parameters, max_norm)` before each update: when the global
    /// L2 norm of every weight and bias gradient exceeds it, they are scaled by
    /// `max_norm/(norm + 1e-6)`; `None` for no clipping.
    pub clip_norm: Option<f32>,
    /// `nn.Dropout(p)` on the input and after each hidden layer's activation, training only.
    pub dropout: Dropout,
}

impl Regularization {
    /// Checks each setting's range.
    pub fn check_ranges(&self) -> Result<()> {
        let epsilon = self.label_smoothing;
        if !(epsilon.is_finite() && (0.0..1.0).contains(&epsilon)) {
            return Err(Error::invalid(
                "label smoothing",
                format!("{epsilon} (must be in [0, 1))"),
            ));
        }
        if let Some(max_norm) = self.clip_norm
            && !(max_norm.is_finite() && max_norm > 0.0)
        {
            return Err(Error::invalid(
                "clip norm",
                format!("{max_norm} (must be a finite number > 0)"),
            ));
        }
        self.dropout.check_ranges()
    }

    /// Checks the ranges, that label smoothing goes with a cross-entropy `loss` and that dropout
    /// has one probability per hidden layer (of `hidden_layers`) or none.
    pub fn validate(&self, loss: Loss, hidden_layers: usize) -> Result<()> {
        self.check_ranges()?;
        self.dropout.validate(hidden_layers)?;
        if self.label_smoothing > 0.0 && loss != Loss::CrossEntropy {
            return Err(Error::invalid(
                "label smoothing",
                format!(
                    "{} applies to the cross-entropy loss, not {}",
                    self.label_smoothing,
                    loss.name()
                ),
            ));
        }
        Ok(())
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
    /// The report of 1-based `epoch`, which started at `start`.
    pub(crate) fn finished(epoch: usize, train_loss: f32, samples: usize, start: Instant) -> Self {
        EpochReport {
            epoch,
            train_loss,
            samples,
            seconds: start.elapsed().as_secs_f64(),
        }
    }

    /// Training throughput.
    pub fn samples_per_second(&self) -> f64 {
        self.samples as f64 / self.seconds.max(1e-9)
    }
}

/// Which held-out set to evaluate on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// The validation set, split off the training data, for early stopping and model choice.
    Validation,
    /// The test set.
    Test,
}

impl Split {
    /// `validation` or `test`, as errors and reports name it.
    pub fn name(self) -> &'static str {
        match self {
            Split::Validation => "validation",
            Split::Test => "test",
        }
    }
}

/// The scores of an evaluation, by task.
#[derive(Clone, Debug, PartialEq)]
pub enum Scores {
    /// Classification.
    Classification {
        /// Fraction of samples whose largest output is their label.
        accuracy: f64,
        /// `confusion[[truth, predicted]]` counts.
        confusion: Array2<u64>,
    },
    /// Regression, per output column, in the units of the targets as given to the trainer.
    Regression {
        /// `Σ (output − target)²`.
        squared_errors: Vec<f64>,
        /// `Σ (target − mean target)²`.
        total_squares: Vec<f64>,
    },
}

/// The result of evaluating a model on a data set.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Mean loss.
    pub loss: f32,
    /// Samples evaluated.
    pub samples: usize,
    /// Accuracy and confusion, or squared errors.
    pub scores: Scores,
}

impl Evaluation {
    /// The fraction of samples classified correctly (classification).
    pub fn accuracy(&self) -> Option<f64> {
        match &self.scores {
            Scores::Classification { accuracy, .. } => Some(*accuracy),
            Scores::Regression { .. } => None,
        }
    }

    /// `confusion[[truth, predicted]]` counts (classification).
    pub fn confusion(&self) -> Option<&Array2<u64>> {
        match &self.scores {
            Scores::Classification { confusion, .. } => Some(confusion),
            Scores::Regression { .. } => None,
        }
    }

    /// The root mean squared error over every output (regression). With `scale`, each output's
    /// errors are first multiplied by its entry: the standard deviations of standardized targets
    /// give the RMSE in the targets' own units.
    pub fn rmse(&self, scale: Option<&[f32]>) -> Option<f64> {
        let Scores::Regression { squared_errors, .. } = &self.scores else {
            return None;
        };
        let sum: f64 = squared_errors
            .iter()
            .enumerate()
            .map(|(c, &e)| e * scale.map_or(1.0, |s| f64::from(s[c]).powi(2)))
            .sum();
        Some((sum / (self.samples * squared_errors.len()) as f64).sqrt())
    }

    /// The coefficient of determination `1 − SSE/SST`, averaged over outputs as scikit-learn's
    /// `r2_score` does by default (regression); the same in any units, as both sums scale alike.
    /// An output whose targets are all equal counts as 1 when predicted exactly, else 0.
    pub fn r2(&self) -> Option<f64> {
        let Scores::Regression {
            squared_errors,
            total_squares,
        } = &self.scores
        else {
            return None;
        };
        let per_output = squared_errors.iter().zip(total_squares).map(|(&e, &t)| {
            if t > 0.0 {
                1.0 - e / t
            } else if e == 0.0 {
                1.0
            } else {
                0.0
            }
        });
        Some(per_output.sum::<f64>() / squared_errors.len() as f64)
    }
}

/// `Σ (y − ȳ)²` of each target column, in f64: R²'s denominator.
pub(crate) fn total_squares(values: &Array2<f32>) -> Vec<f64> {
    values
        .columns()
        .into_iter()
        .map(|column| {
            let mean = column.iter().map(|&v| f64::from(v)).sum::<f64>() / column.len() as f64;
            column.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum()
        })
        .collect()
}

/// A batch's row count for each step of an epoch of `len` samples.
pub(crate) fn batch_sizes(len: usize, batch_size: usize) -> impl Iterator<Item = usize> {
    (0..len.div_ceil(batch_size)).map(move |i| batch_size.min(len - i * batch_size))
}

/// Shuffles `order` for 1-based `epoch`. The permutation depends only on the seed and the epoch
/// number, so training resumed at epoch k visits the data exactly as an uninterrupted run does.
pub(crate) fn epoch_order(seed: u64, epoch: usize, order: &mut [u32]) {
    Rng::new(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)).shuffle(order);
}

/// The error for a loss that stopped being finite at 1-based `step` of `epoch`.
pub(crate) fn diverged(
    epoch: usize,
    step: usize,
    steps: usize,
    optimizer: &OptimizerConfig,
) -> Error {
    Error::Diverged {
        epoch,
        step,
        steps,
        learning_rate: optimizer.learning_rate,
        weight_decay: optimizer.weight_decay,
    }
}

/// Checks that `dataset` is well formed and fits a model of `mlp_inputs` inputs and
/// `mlp_outputs` outputs; `what` names it in errors.
pub(crate) fn check_dataset(
    mlp_inputs: usize,
    mlp_outputs: usize,
    dataset: &Dataset,
    what: &str,
) -> Result<()> {
    dataset.validate(what)?;
    if dataset.inputs() != mlp_inputs {
        let shape = match dataset.image_shape {
            Some((rows, cols)) => format!("{rows}×{cols} = {} pixels per image", rows * cols),
            None => format!("{} features per sample", dataset.inputs()),
        };
        return Err(Error::invalid(
            what,
            format!("has {shape} but the model takes {mlp_inputs} inputs"),
        ));
    }
    if dataset.outputs() != mlp_outputs {
        let targets = match dataset.classes() {
            Some(classes) => format!("{classes} classes"),
            None => format!("{} target values per sample", dataset.outputs()),
        };
        return Err(Error::invalid(
            what,
            format!("has {targets} but the model has {mlp_outputs} outputs"),
        ));
    }
    Ok(())
}

/// A flag that another thread (a signal handler) raises to stop training after the step in
/// progress; the epoch then ends with [`Error::Interrupted`]. Clones share the flag.
#[derive(Clone, Debug, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// Asks every trainer holding this flag to stop.
    pub fn raise(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether [`StopFlag::raise`] was called.
    pub fn is_raised(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// `Err(Error::Interrupted)` once raised, for 1-based `epoch` after `samples` of it.
    pub(crate) fn check(&self, epoch: usize, samples: usize) -> Result<()> {
        if self.is_raised() {
            return Err(Error::Interrupted {
                during: format!("in epoch {epoch}, after {samples} of its samples"),
            });
        }
        Ok(())
    }
}

/// The error for evaluating with a trainer that was given no such set.
pub(crate) fn no_such_set(split: Split) -> Error {
    Error::invalid(
        "evaluation",
        format!("no {} set was given to the trainer", split.name()),
    )
}

/// What a training loop needs from a trainer, on the GPU or the CPU.
pub trait Trainer {
    /// Trains one epoch; `progress` is called at most every [`PROGRESS_INTERVAL`] and at the end,
    /// with the running loss.
    fn train_epoch(&mut self, progress: &mut dyn FnMut(Progress)) -> Result<EpochReport>;

    /// Loss and scores on the test or validation set.
    fn evaluate(&mut self, split: Split) -> Result<Evaluation>;

    /// Sets the learning rate for the coming steps, keeping the optimizer's state (for a
    /// schedule). On the GPU this rewrites a uniform: no pipeline or bind group changes.
    fn set_learning_rate(&mut self, learning_rate: f32) -> Result<()>;

    /// Epochs finished so far.
    fn epochs_done(&self) -> usize;

    /// Continues the epoch count of a resumed model: the next epoch is `epochs + 1`, shuffled as
    /// that epoch of an uninterrupted run would be.
    fn set_epochs_done(&mut self, epochs: usize);

    /// The optimizer's moments and step count (to save for `--resume`).
    fn optimizer_state(&mut self) -> Result<OptimizerState>;

    /// Restores a saved optimizer state, to continue exactly where a run stopped.
    fn set_optimizer_state(&mut self, state: &OptimizerState) -> Result<()>;

    /// The model as trained so far.
    fn to_mlp(&mut self) -> Result<Mlp>;

    /// Stops training after the step in progress once `flag` is raised.
    fn stop_on(&mut self, flag: StopFlag);

    /// The per-kernel times of the steps profiled so far, where profiling was asked for.
    fn profile(&self) -> Option<Profile> {
        None
    }
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
