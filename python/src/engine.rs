//! Where the binding meets the library's front door: a [`TrainSpec`] becomes a [`Run`] trained
//! epoch by epoch, the model after every epoch handed to the caller, which decides whether to go
//! on; prediction and model files go through the library's own readers. Everything else in the
//! binding only converts arrays, settings and errors.

use std::path::Path;
use std::sync::Mutex;

use wgpu_mlp::checkpoint::{self, CheckpointInfo};
use wgpu_mlp::ndarray::Array2;
use wgpu_mlp::optim::OptimizerState;
use wgpu_mlp::run::{Preparation, Recorded};
use wgpu_mlp::train::StopFlag;
use wgpu_mlp::{
    AdapterChoice, Device, EpochOutcome, Error, Features, Gpu, Mlp, Result, Run, TrainSpec,
};

/// One finished epoch, handed to the caller.
pub struct EpochEnd {
    /// The run's report of it.
    pub outcome: EpochOutcome,
    /// The model file's bytes after it.
    pub model: Vec<u8>,
    /// What the run has said since the last epoch (a capped batch, a replaced setting).
    pub notes: Vec<String>,
}

/// The end of a run.
pub struct Outcome {
    /// The model file's bytes after the last completed epoch.
    pub model: Vec<u8>,
    /// The optimizer's state after it, for a later warm start; `None` after an interruption.
    pub optimizer: Option<OptimizerState>,
    /// The run's summary in its one JSON form (the CLI's `--json` line, the page's summary).
    pub summary: String,
}

/// Trains as `spec` says, on its device (adapters are opened once per process). `on_epoch` sees
/// each finished epoch and answers whether to go on; `interrupted` is polled during epochs and
/// stops training after the step in progress when it answers true, the run then ending with the
/// last completed epoch.
pub fn train(
    spec: TrainSpec,
    on_epoch: &mut dyn FnMut(EpochEnd) -> bool,
    interrupted: &mut dyn FnMut() -> bool,
) -> Result<Outcome> {
    let gpu = match &spec.device {
        Device::Gpu(choice) => Some(open_gpu(choice)?),
        Device::Cpu | Device::CpuReference => None,
    };
    let mut run = Run::with_gpu(spec, gpu.as_ref())?;
    let stop = StopFlag::default();
    run.stop_on(stop.clone());
    let mut model = model_bytes(&mut run)?;
    while !run.is_done() {
        let outcome = run.train_epoch_with(&mut |_| {
            if interrupted() {
                stop.raise();
            }
        });
        let outcome = match outcome {
            Err(Error::Interrupted { .. }) => {
                return Ok(Outcome {
                    model,
                    optimizer: None,
                    summary: run.summary().to_json().to_string(),
                });
            }
            outcome => outcome?,
        };
        model = model_bytes(&mut run)?;
        let end = EpochEnd {
            outcome,
            model: model.clone(),
            notes: run.take_notes(),
        };
        if !on_epoch(end) {
            break;
        }
    }
    Ok(Outcome {
        model,
        optimizer: Some(run.optimizer_state()?),
        summary: run.summary().to_json().to_string(),
    })
}

/// The bytes of the run's model file as it stands.
fn model_bytes(run: &mut Run) -> Result<Vec<u8>> {
    checkpoint::to_bytes(&run.mlp()?, &run.checkpoint_info())
}

/// The adapter `choice` names, opened once per process and kept: opening one costs far more
/// than a small fit.
pub fn open_gpu(choice: &AdapterChoice) -> Result<Gpu> {
    static OPENED: Mutex<Vec<(AdapterChoice, Gpu)>> = Mutex::new(Vec::new());
    let mut opened = OPENED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, gpu)) = opened.iter().find(|(c, _)| c == choice) {
        return Ok(gpu.clone());
    }
    let gpu = Gpu::new(choice.clone())?;
    opened.push((choice.clone(), gpu.clone()));
    Ok(gpu)
}

/// The model and metadata of a model file's `bytes`; `path` names it in errors.
pub fn read_model(bytes: &[u8], path: &Path) -> Result<(Mlp, CheckpointInfo)> {
    checkpoint::from_bytes(bytes, path)
}

/// `mlp`'s outputs for raw features `x`, prepared as its file records (the library's
/// `predict`: inputs scaled, standardized targets mapped back), on the CPU reference.
pub fn predict(mlp: &Mlp, info: &CheckpointInfo, x: Features) -> Result<Array2<f32>> {
    let preparation = Preparation::of(&Recorded::of(info, Path::new("the model")), mlp)?;
    wgpu_mlp::run::predict(mlp, &preparation, x)
}
