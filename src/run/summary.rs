//! How a run reports: the scores of an evaluation ([`HeldOutScores`]: the loss with accuracy for
//! classes, or RMSE in the targets' own units and R² for values), each epoch's line and JSON
//! record ([`EpochOutcome`]), and the run's [`Summary`], whose one JSON form is the CLI's
//! `--json` line, the page's summary and what Python reads.

use serde_json::{Map, Value, json};

use crate::data::files::Task;
use crate::gpu::profile::Profile;
use crate::train::{EpochReport, Evaluation};

use super::recorded::Preparation;

/// The scores of one evaluation, in the targets' own units.
#[derive(Clone, Debug, PartialEq)]
pub struct HeldOutScores {
    /// Mean loss.
    pub loss: f32,
    /// Fraction classified correctly (classification).
    pub accuracy: Option<f64>,
    /// Root mean squared error in the targets' own units (regression).
    pub rmse: Option<f64>,
    /// Coefficient of determination (regression).
    pub r2: Option<f64>,
}

impl HeldOutScores {
    /// The scores of `evaluation` of data prepared as `preparation` says.
    pub fn of(evaluation: &Evaluation, preparation: &Preparation) -> HeldOutScores {
        HeldOutScores {
            loss: evaluation.loss,
            accuracy: evaluation.accuracy(),
            rmse: evaluation.rmse(preparation.target_scale()),
            r2: evaluation.r2(),
        }
    }

    /// The JSON fields under `prefix` (`val_`, `test_`): the loss and accuracy, or RMSE and R².
    pub fn json_fields(&self, prefix: &str) -> Map<String, Value> {
        let mut map = Map::new();
        map.insert(format!("{prefix}loss"), json!(self.loss));
        match self.accuracy {
            Some(accuracy) => {
                map.insert(format!("{prefix}accuracy"), json!(accuracy));
            }
            None => {
                map.insert(format!("{prefix}rmse"), json!(self.rmse));
                map.insert(format!("{prefix}r2"), json!(self.r2));
            }
        }
        map
    }

    /// `name loss 0.12345  name accuracy 97.10%`, or RMSE and R² for regression.
    pub fn text(&self, name: &str) -> String {
        match self.accuracy {
            Some(accuracy) => format!(
                "{name} loss {:.5}  {name} accuracy {:6.2}%",
                self.loss,
                accuracy * 100.0
            ),
            None => format!(
                "{name} loss {:.5}  {name} RMSE {:.5}  {name} R² {:.4}",
                self.loss,
                self.rmse.unwrap_or(f64::NAN),
                self.r2.unwrap_or(f64::NAN)
            ),
        }
    }
}

/// One finished epoch of a run: its training report, learning rate and held-out evaluations.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochOutcome {
    /// The trainer's report (the epoch is counted over the whole run, a resumed model's
    /// epochs included).
    pub report: EpochReport,
    /// The learning rate the epoch trained with.
    pub learning_rate: f32,
    /// The validation set's evaluation, if there is one.
    pub validation: Option<Evaluation>,
    /// The test set's evaluation, if there is one.
    pub test: Option<Evaluation>,
    /// The validation scores and test scores, in the targets' own units.
    pub validation_scores: Option<HeldOutScores>,
    /// The test set's scores.
    pub test_scores: Option<HeldOutScores>,
    /// Whether its validation loss is the lowest so far (always, without a validation set).
    pub best: bool,
}

impl EpochOutcome {
    /// The CLI's line: `epoch   3  train loss 0.12345  val loss …  test loss …  samples/s  s`.
    pub fn line(&self) -> String {
        let report = &self.report;
        let mut line = format!(
            "epoch {:>3}  train loss {:.5}",
            report.epoch, report.train_loss
        );
        for (name, scores) in self.held_out() {
            line += &format!("  {}", scores.text(name));
        }
        format!(
            "{line}  {:>8.0} samples/s  {:.1} s",
            report.samples_per_second(),
            report.seconds
        )
    }

    /// The `--metrics` record: the epoch, its training loss and learning rate, each held-out
    /// set's scores, its seconds and throughput.
    pub fn json(&self) -> Value {
        let report = &self.report;
        let mut record = Map::new();
        record.insert("epoch".into(), json!(report.epoch));
        record.insert("train_loss".into(), json!(report.train_loss));
        record.insert("lr".into(), json!(self.learning_rate));
        for (name, scores) in self.held_out() {
            record.extend(scores.json_fields(&format!("{name}_")));
        }
        record.insert("seconds".into(), json!(report.seconds));
        record.insert("samples_per_s".into(), json!(report.samples_per_second()));
        Value::Object(record)
    }

    fn held_out(&self) -> impl Iterator<Item = (&'static str, &HeldOutScores)> {
        [
            ("val", &self.validation_scores),
            ("test", &self.test_scores),
        ]
        .into_iter()
        .filter_map(|(name, scores)| scores.as_ref().map(|s| (name, s)))
    }
}

/// What a run produced: serialized by [`Summary::to_json`], the CLI's `--json` line.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// The last epoch's validation scores.
    pub validation: Option<HeldOutScores>,
    /// The last epoch's test scores.
    pub test: Option<HeldOutScores>,
    /// The last epoch's training loss.
    pub train_loss: Option<f32>,
    /// Epochs the model has been trained, a resumed model's included.
    pub epochs: usize,
    /// Wall time since the run began.
    pub seconds: f64,
    /// Training throughput over this run's epochs.
    pub samples_per_s: f64,
    /// Where it trained.
    pub adapter: String,
    /// The data's name.
    pub dataset: String,
    /// Classification or regression.
    pub task: Task,
    /// The epoch with the lowest validation loss.
    pub best_epoch: Option<usize>,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
    /// Whether a stop flag ended the run before its last epoch.
    pub interrupted: bool,
    /// Where a profiled step's GPU time went.
    pub profile: Option<Profile>,
}

impl Summary {
    /// The JSON object: `val_*` and `test_*` scores, `train_loss`, `epochs`, `seconds`,
    /// `samples_per_s`, `adapter`, `dataset`, `task`, `best_epoch`, `stopped_early`,
    /// `interrupted` and `profile`.
    pub fn to_json(&self) -> Value {
        let mut summary = Map::new();
        for (prefix, scores) in [("val_", &self.validation), ("test_", &self.test)] {
            if let Some(scores) = scores {
                summary.extend(scores.json_fields(prefix));
            }
        }
        let rest = json!({
            "train_loss": self.train_loss,
            "epochs": self.epochs, "seconds": self.seconds,
            "samples_per_s": self.samples_per_s,
            "adapter": self.adapter, "dataset": self.dataset,
            "task": self.task.name(),
            "best_epoch": self.best_epoch, "stopped_early": self.stopped_early,
            "interrupted": self.interrupted,
            "profile": self.profile.as_ref().map(profile_json),
        });
        if let Value::Object(rest) = rest {
            summary.extend(rest);
        }
        Value::Object(summary)
    }
}

/// A profile as JSON: the kernels in step order with their time per step.
pub fn profile_json(profile: &Profile) -> Value {
    let kernels: Vec<_> = profile
        .kernels
        .iter()
        .map(|k| {
            json!({
                "kernel": k.label, "calls_per_step": k.calls_per_step,
                "ms_per_step": k.per_step.as_secs_f64() * 1e3,
            })
        })
        .collect();
    json!({
        "steps": profile.steps, "gpu_ms_per_step": profile.gpu_per_step().as_secs_f64() * 1e3,
        "kernels": kernels,
    })
}
