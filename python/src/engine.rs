//! The one place the binding reaches into the library's training API: a [`Spec`] of settings
//! already resolved by the estimators, a training set (and an optional validation set) in, the
//! model after every epoch out through a callback, and the trained model, its file's metadata
//! and its optimizer state at the end. Everything else in the binding only converts arrays and
//! errors, so moving to another front door changes this file alone.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use wgpu_mlp::checkpoint::{self, CheckpointInfo};
use wgpu_mlp::data::scaling::{InputScaling, Standardization};
use wgpu_mlp::ndarray::Array2;
use wgpu_mlp::optim::{OptimizerConfig, OptimizerState};
use wgpu_mlp::train::{
    CpuTrainer, DataPlacement, EpochReport, Evaluation, GpuTrainer, Progress, Split, StopFlag,
    TrainConfig, Trainer,
};
use wgpu_mlp::{AdapterChoice, Dataset, Error, Gpu, Mlp, Regularization, Result};

/// What a training run takes, each setting already given its value.
#[derive(Clone, Debug)]
pub struct Spec {
    /// The update rule, learning rate and weight decay.
    pub optimizer: OptimizerConfig,
    /// Samples per step (at most the training set's size).
    pub batch: usize,
    /// Seeds the shuffles (a new model's weights are drawn by the caller).
    pub seed: u64,
    /// Epochs to train at most.
    pub epochs: usize,
    /// Label smoothing, clipping and dropout.
    pub regularization: Regularization,
    /// `cpu` for the CPU reference, else an adapter as `--adapter` names it.
    pub device: String,
}

/// The model a run starts from: a new one, or a fitted one to continue (a warm start).
pub struct Start {
    /// The model.
    pub mlp: Mlp,
    /// Its epochs so far and what its file records.
    pub info: CheckpointInfo,
    /// The optimizer's state to continue with, or `None` to start it afresh.
    pub optimizer: Option<OptimizerState>,
}

/// One finished epoch, handed to the caller.
pub struct EpochEnd {
    /// The epoch's report (1-based, counting the model's earlier epochs).
    pub report: EpochReport,
    /// The learning rate the epoch trained with.
    pub learning_rate: f32,
    /// The validation set's loss and scores, if one was given.
    pub validation: Option<Evaluation>,
    /// The model file's bytes after the epoch.
    pub model: Vec<u8>,
    /// The CLI's line for the epoch.
    pub line: String,
}

/// What the caller decides after an epoch.
pub enum Verdict {
    /// Train the next epoch.
    Continue,
    /// Train the next epoch at this learning rate.
    LearningRate(f32),
    /// Stop here.
    Stop,
}

/// The end of a run.
pub struct Outcome {
    /// The model file's bytes after the last completed epoch.
    pub model: Vec<u8>,
    /// The optimizer's state after it, for a later warm start; `None` after an interruption.
    pub optimizer: Option<OptimizerState>,
}

/// Trains `start` on `train` as `spec` says. `on_epoch` sees each finished epoch and decides
/// whether to go on; `interrupted` is polled during epochs and stops training after the step in
/// progress when it answers true, the run then ending with the last completed epoch.
pub fn train(
    spec: &Spec,
    train: Dataset,
    validation: Option<Dataset>,
    start: Start,
    on_epoch: &mut dyn FnMut(EpochEnd) -> Result<Verdict>,
    interrupted: &mut dyn FnMut() -> bool,
) -> Result<Outcome> {
    let config = TrainConfig {
        optimizer: spec.optimizer,
        batch_size: spec.batch.min(train.len()).max(1),
        seed: spec.seed,
        regularization: spec.regularization.clone(),
    };
    let Start {
        mlp,
        mut info,
        optimizer,
    } = start;
    info.extra.extend(recorded(spec, &config, &train));
    let validating = validation.is_some();
    let mut run = |trainer: &mut dyn Trainer| {
        trainer.set_epochs_done(info.epochs);
        if let Some(state) = &optimizer {
            trainer.set_optimizer_state(state)?;
        }
        epochs(spec, trainer, &mut info, on_epoch, interrupted, validating)
    };
    if spec.device.trim().eq_ignore_ascii_case("cpu") {
        let mut trainer = CpuTrainer::new(&mlp, &train, None, config)?;
        if let Some(validation) = &validation {
            trainer.set_validation(validation)?;
        }
        run(&mut trainer)
    } else {
        let gpu = open_gpu(&spec.device)?;
        let (train, validation) = (Arc::new(train), validation.map(Arc::new));
        let placement = DataPlacement::Auto;
        let mut trainer = GpuTrainer::with_placement(&gpu, &mlp, train, None, config, placement)?;
        if let Some(validation) = validation {
            trainer.set_validation(validation)?;
        }
        run(&mut trainer)
    }
}

/// The epoch loop of [`train`].
fn epochs(
    spec: &Spec,
    trainer: &mut dyn Trainer,
    info: &mut CheckpointInfo,
    on_epoch: &mut dyn FnMut(EpochEnd) -> Result<Verdict>,
    interrupted: &mut dyn FnMut() -> bool,
    validating: bool,
) -> Result<Outcome> {
    let stop = StopFlag::default();
    trainer.stop_on(stop.clone());
    let mut learning_rate = spec.optimizer.learning_rate;
    let mut model = checkpoint::to_bytes(&trainer.to_mlp()?, info)?;
    for _ in 0..spec.epochs {
        let report = trainer.train_epoch(&mut |_: Progress| {
            if interrupted() {
                stop.raise();
            }
        });
        let report = match report {
            Err(Error::Interrupted { .. }) => {
                return Ok(Outcome {
                    model,
                    optimizer: None,
                });
            }
            report => report?,
        };
        let validation = match validating {
            true => Some(trainer.evaluate(Split::Validation)?),
            false => None,
        };
        info.epochs = report.epoch;
        model = checkpoint::to_bytes(&trainer.to_mlp()?, info)?;
        let line = epoch_line(&report, validation.as_ref());
        let end = EpochEnd {
            report,
            learning_rate,
            validation,
            model: model.clone(),
            line,
        };
        match on_epoch(end)? {
            Verdict::Continue => {}
            Verdict::LearningRate(rate) => {
                trainer.set_learning_rate(rate)?;
                learning_rate = rate;
            }
            Verdict::Stop => break,
        }
    }
    Ok(Outcome {
        model,
        optimizer: Some(trainer.optimizer_state()?),
    })
}

/// `epoch   3  train loss 0.12345  val loss …  12345 samples/s  0.4 s`, as `wgpu-mlp train`
/// prints it.
fn epoch_line(report: &EpochReport, validation: Option<&Evaluation>) -> String {
    let mut line = format!(
        "epoch {:>3}  train loss {:.5}",
        report.epoch, report.train_loss
    );
    if let Some(evaluation) = validation {
        line += &match evaluation.accuracy() {
            Some(accuracy) => format!(
                "  val loss {:.5}  val accuracy {:6.2}%",
                evaluation.loss,
                accuracy * 100.0
            ),
            None => format!(
                "  val loss {:.5}  val RMSE {:.5}  val R² {:.4}",
                evaluation.loss,
                evaluation.rmse(None).unwrap_or(f64::NAN),
                evaluation.r2().unwrap_or(f64::NAN)
            ),
        };
    }
    format!(
        "{line}  {:>8.0} samples/s  {:.1} s",
        report.samples_per_second(),
        report.seconds
    )
}

/// What the model file records about the run, under the keys `wgpu-mlp train --save` writes,
/// so that `eval`, `predict` and `--resume` read it as one of their own.
fn recorded(spec: &Spec, config: &TrainConfig, train: &Dataset) -> Vec<(String, String)> {
    let scaling = match train.features.bytes() {
        Some(_) => InputScaling::Bytes,
        None => InputScaling::None,
    };
    let task = match train.classes() {
        Some(_) => "classification",
        None => "regression",
    };
    let regularization = &spec.regularization;
    let mut keys = vec![
        ("task", task.to_string()),
        ("input_scaling", scaling.to_metadata()),
        ("optimizer", config.optimizer.optimizer.name().to_string()),
        ("lr", config.optimizer.learning_rate.to_string()),
        ("weight_decay", config.optimizer.weight_decay.to_string()),
        ("batch", config.batch_size.to_string()),
        ("seed", spec.seed.to_string()),
        (
            "label_smoothing",
            regularization.label_smoothing.to_string(),
        ),
        ("dropout", regularization.dropout.hidden_text()),
        ("input_dropout", regularization.dropout.input.to_string()),
    ];
    keys.extend(
        regularization
            .clip_norm
            .map(|max_norm| ("clip_norm", max_norm.to_string())),
    );
    keys.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// The device for `device` (as `--adapter` names it), opened once per process and kept: opening
/// one costs far more than a small fit.
pub fn open_gpu(device: &str) -> Result<Gpu> {
    static OPENED: Mutex<Vec<(String, Gpu)>> = Mutex::new(Vec::new());
    let choice: AdapterChoice = device.parse()?;
    let key = device.trim().to_lowercase();
    let mut opened = OPENED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, gpu)) = opened.iter().find(|(name, _)| *name == key) {
        return Ok(gpu.clone());
    }
    let gpu = Gpu::new(choice)?;
    opened.push((key, gpu.clone()));
    Ok(gpu)
}

/// The model and metadata of a model file's `bytes`; `path` names it in errors.
pub fn read_model(bytes: &[u8], path: &Path) -> Result<(Mlp, CheckpointInfo)> {
    checkpoint::from_bytes(bytes, path)
}

/// How a model's inputs are scaled, as its file records (floats as they are when it says
/// nothing).
pub fn input_scaling(extra: &HashMap<String, String>) -> Result<InputScaling> {
    match extra.get("input_scaling") {
        Some(text) => InputScaling::from_metadata(text),
        None => Ok(InputScaling::None),
    }
}

/// `mlp`'s outputs for features `x`, given in the units it was trained on: scaled as its file
/// records (`bytes` ÷255, `standard:` standardized), and regression outputs returned to the
/// targets' units when their standardization is recorded. Runs on the CPU reference.
pub fn predict(mlp: &Mlp, info: &CheckpointInfo, mut x: Array2<f32>) -> Result<Array2<f32>> {
    match input_scaling(&info.extra)? {
        InputScaling::Bytes => x.mapv_inplace(|v| v / 255.0),
        InputScaling::Standard(standardization) => {
            if standardization.mean.len() == x.ncols() {
                standardization.apply(&mut x);
            }
        }
        InputScaling::None => {}
    }
    let mut outputs = mlp.forward(x.view())?;
    if let Some(text) = info.extra.get("target_scaling") {
        Standardization::from_metadata(text)?.invert(&mut outputs);
    }
    Ok(outputs)
}
