//! The front door for training: a [`TrainSpec`] (every setting, each with its default) becomes
//! a [`Run`] that prepares the data, builds the GPU or CPU trainer, trains epoch by epoch with
//! a learning-rate schedule and early stopping, saves and resumes, and reports one [`Summary`].
//! The CLI's `train`, the browser page and the Python package are thin shells over it.
//!
//! ```no_run
//! use wgpu_mlp::{Data, Device, Run, TrainSpec};
//!
//! # fn main() -> wgpu_mlp::Result<()> {
//! let spec = TrainSpec {
//!     data: Data::default(), // the synthetic set
//!     hidden_sizes: Some(vec![64]),
//!     epochs: Some(2),
//!     device: Device::Cpu,
//!     ..TrainSpec::default()
//! };
//! let mut run = Run::new(spec)?;
//! while !run.is_done() {
//!     let epoch = run.train_epoch()?;
//!     println!("{}", epoch.line());
//! }
//! println!("{}", run.summary().to_json());
//! # Ok(())
//! # }
//! ```
//!
//! In a browser nothing may block: open the adapter with [`crate::Gpu::new_async`], build the
//! run with [`Run::with_gpu`] (from [`Data::Sets`] or [`Data::Arrays`]) and train with
//! [`Run::train_epoch_async`].

mod data;
mod recorded;
mod settings;
mod spec;
mod summary;

use std::path::{Path, PathBuf};

use ndarray::Array2;
use web_time::Instant;

pub use data::{RunData, Source, prepare};
pub use recorded::{Preparation, Recorded, RecordedData};
pub use settings::{DataShape, Resumed, Settings, apply_image_shape, defaults, deformations};
pub use spec::{Data, DataOptions, Device, Normalize, Resume, ScheduleName, TrainSpec};
pub use summary::{EpochOutcome, HeldOutScores, Summary, profile_json};

use crate::checkpoint::{self, Architecture, CheckpointInfo};
use crate::data::{Dataset, Features, Targets, Task};
use crate::error::{Error, Result};
use crate::gpu::profile::Profile;
use crate::gpu::{Gpu, GpuMlp};
use crate::model::Mlp;
use crate::optim::OptimizerState;
use crate::train::{
    CpuTrainer, EarlyStopping, EpochReport, Evaluation, GpuTrainer, Progress, Split, StopFlag,
    Trainer,
};

/// How a run names the fast CPU trainer ([`Device::Cpu`]) where it names an adapter.
pub const CPU_ADAPTER: &str = crate::fast::NAME;
/// How a run names the CPU reference ([`Device::CpuReference`]) where it names an adapter.
pub const CPU_REFERENCE_ADAPTER: &str = crate::reference::NAME;

/// What a run calls during training ([`Run::train`]); each method has a default that does
/// nothing.
pub trait Callbacks {
    /// Progress within an epoch, at most every [`crate::train::PROGRESS_INTERVAL`].
    fn progress(&mut self, _progress: Progress) {}

    /// An epoch finished (and was saved, if the run saves every epoch); an error stops the run.
    fn epoch(&mut self, _outcome: &EpochOutcome) -> Result<()> {
        Ok(())
    }
}

/// Callbacks that do nothing.
impl Callbacks for () {}

/// What a run's epochs have produced so far.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    /// Each epoch of this run, in order.
    pub epochs: Vec<EpochOutcome>,
    /// The epoch with the lowest validation loss (counted over the whole run), and that loss.
    pub best: Option<(usize, f32)>,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
}

impl History {
    /// The training loss of each epoch of this run.
    pub fn loss_curve(&self) -> Vec<f32> {
        self.epochs.iter().map(|e| e.report.train_loss).collect()
    }

    /// The validation loss of each epoch of this run that had a validation set.
    pub fn validation_losses(&self) -> Vec<f32> {
        self.epochs
            .iter()
            .filter_map(|e| e.validation.as_ref().map(|v| v.loss))
            .collect()
    }

    /// The validation accuracy (classes) or R² (values) of each epoch of this run.
    pub fn validation_scores(&self) -> Vec<f64> {
        self.epochs
            .iter()
            .filter_map(|e| e.validation_scores.as_ref())
            .filter_map(|s| s.accuracy.or(s.r2))
            .collect()
    }

    /// The epoch with the lowest validation loss.
    pub fn best_epoch(&self) -> Option<usize> {
        self.best.map(|(epoch, _)| epoch)
    }
}

/// The trainer a run drives.
enum Engine {
    Gpu(Box<GpuTrainer>),
    Cpu(Box<CpuTrainer<'static>>),
}

/// A training run: its settings, data, trainer and history. Made by [`Run::new`] (native) or
/// [`Run::with_gpu`] from a [`TrainSpec`].
pub struct Run {
    settings: Settings,
    data: RunData,
    engine: Engine,
    adapter: String,
    notes: Vec<String>,
    history: History,
    stopping: EarlyStopping,
    early_stopping: Option<usize>,
    save: Option<(PathBuf, bool)>,
    started: Instant,
    interrupted: bool,
}

impl Run {
    /// A run as `spec` describes it, on the adapter its device names (opened here) or the CPU.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new(spec: TrainSpec) -> Result<Run> {
        let gpu = match &spec.device {
            Device::Gpu(choice) => Some(Gpu::new(choice.clone())?),
            Device::Cpu | Device::CpuReference => None,
        };
        Run::build(spec, gpu.as_ref())
    }

    /// A run as `spec` describes it, on `gpu` (its device is ignored), or on the CPU when the
    /// device is [`Device::Cpu`] and `gpu` is `None`.
    pub fn with_gpu(spec: TrainSpec, gpu: Option<&Gpu>) -> Result<Run> {
        Run::build(spec, gpu)
    }

    fn build(mut spec: TrainSpec, gpu: Option<&Gpu>) -> Result<Run> {
        let started = Instant::now();
        let mut notes = Vec::new();
        let (resumed, optimizer_state) = load_resumed(&spec)?;
        let recorded = resumed
            .as_ref()
            .map(|(mlp, info, path)| (Recorded::of(info, path), mlp));
        let recorded_seed = match &recorded {
            Some((recorded, _)) => recorded.value::<u64>("seed")?,
            None => None,
        };
        let seed = spec
            .seed
            .or(recorded_seed)
            .unwrap_or(crate::train::DEFAULT_SEED);
        let source = Source::of(&spec.data, recorded.as_ref().map(|(r, _)| r))?;
        let recorded_data = recorded
            .as_ref()
            .map(|(recorded, mlp)| RecordedData::of(recorded, mlp))
            .transpose()?;
        let data = std::mem::take(&mut spec.data);
        let mut run_data = prepare(
            data,
            &spec.data_options,
            (source, seed),
            recorded_data,
            &mut notes,
        )?;
        let resumed_info = resumed
            .as_ref()
            .map(|(_, info, path)| (info, path.as_path()));
        let augmentation = deformations(&spec, resumed_info, &mut run_data)?;
        let shape = DataShape::of(&run_data);
        let resumed = resumed.as_ref().map(|(mlp, info, path)| Resumed {
            path,
            mlp: mlp.clone(),
            info,
        });
        let mut settings = Settings::resolve(&spec, resumed, shape, &mut notes)?;
        settings.augmentation = augmentation;
        if spec.early_stopping.is_some() && run_data.validation.is_none() {
            return Err(Error::Settings(
                "--early-stopping and --save-best watch the validation loss: hold out part of the \
                 training data with --validation FRACTION"
                    .into(),
            ));
        }
        let (mut engine, adapter) = Engine::build(&spec, &settings, &run_data, gpu)?;
        engine.set_epochs_done(settings.epochs_before);
        let optimizer_state = match (&spec.resume, optimizer_state) {
            (Some(Resume::File(path)), _) => restored_state(path, &settings, &mut notes)?,
            (_, state) => state,
        };
        if let Some(state) = &optimizer_state {
            engine.set_optimizer_state(state)?;
        }
        Ok(Run {
            stopping: EarlyStopping::with_tolerance(
                spec.early_stopping.unwrap_or(usize::MAX),
                spec.tol.unwrap_or(0.0),
            ),
            early_stopping: spec.early_stopping,
            settings,
            data: run_data,
            engine,
            adapter,
            notes,
            history: History::default(),
            save: None,
            started,
            interrupted: false,
        })
    }

    /// What the run has to say beyond its epochs: where the data came from, each recorded
    /// setting a spec value replaced, a batch capped at the training set's size. The CLI prints
    /// them on standard error.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Takes the notes said so far (the CLI prints them as they come).
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    /// What the run trains with, every default filled in.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The prepared data.
    pub fn data(&self) -> &RunData {
        &self.data
    }

    /// Where it trains: the adapter's description, [`CPU_ADAPTER`] or [`CPU_REFERENCE_ADAPTER`].
    pub fn adapter(&self) -> &str {
        &self.adapter
    }

    /// The epochs trained so far in this run.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// Epochs the model has been trained, a resumed model's included.
    pub fn epochs_done(&self) -> usize {
        self.settings.epochs_before + self.history.epochs.len()
    }

    /// Whether the run has trained its epochs or stopped early.
    pub fn is_done(&self) -> bool {
        self.history.stopped_early || self.history.epochs.len() >= self.settings.epochs
    }

    /// Saves the model (and its optimizer state beside it) to `path` after every epoch, or with
    /// `best_only` after every epoch with the lowest validation loss so far.
    pub fn save_every_epoch(&mut self, path: PathBuf, best_only: bool) {
        self.save = Some((path, best_only));
    }

    /// Stops training after the step in progress once `flag` is raised; the epoch then ends
    /// with [`Error::Interrupted`].
    pub fn stop_on(&mut self, flag: StopFlag) {
        match &mut self.engine {
            Engine::Gpu(trainer) => trainer.stop_on(flag),
            Engine::Cpu(trainer) => trainer.stop_on(flag),
        }
    }

    /// Trains one more epoch (past the planned ones if called again), then evaluates on the
    /// validation and test sets and saves as asked. An epoch stopped by the stop flag ends with
    /// [`Error::Interrupted`], its steps so far applied to the weights and missing from the
    /// history; a caller that must keep the last completed epoch's model takes [`Run::mlp`]
    /// after each epoch (or saves every epoch).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn train_epoch(&mut self) -> Result<EpochOutcome> {
        self.train_epoch_with(&mut |_| {})
    }

    /// [`Run::train_epoch`], calling `progress` at the trainer's progress read-backs.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn train_epoch_with(&mut self, progress: &mut dyn FnMut(Progress)) -> Result<EpochOutcome> {
        pollster::block_on(self.train_epoch_async(progress))
    }

    /// [`Run::train_epoch_with`] as a future, for a browser, where nothing may block.
    pub async fn train_epoch_async(
        &mut self,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<EpochOutcome> {
        let epoch = self.epochs_done() + 1;
        let learning_rate = self.settings.schedule.learning_rate(epoch);
        self.engine.set_learning_rate(learning_rate)?;
        let report = match self.engine.train_epoch(progress).await {
            Ok(report) => report,
            Err(error) => {
                self.interrupted = matches!(error, Error::Interrupted { .. });
                return Err(error);
            }
        };
        let validation = match &self.data.validation {
            Some(_) => Some(self.engine.evaluate(Split::Validation).await?),
            None => None,
        };
        let test = match &self.data.test {
            Some(_) => Some(self.engine.evaluate(Split::Test).await?),
            None => None,
        };
        let best = match &validation {
            Some(v) => self.stopping.record(epoch, v.loss),
            None => true,
        };
        let preparation = &self.data.preparation;
        let outcome = EpochOutcome {
            report,
            learning_rate,
            validation_scores: validation
                .as_ref()
                .map(|v| HeldOutScores::of(v, preparation)),
            test_scores: test.as_ref().map(|t| HeldOutScores::of(t, preparation)),
            validation,
            test,
            best,
        };
        let history = &mut self.history;
        history.best = self.stopping.best();
        history.epochs.push(outcome.clone());
        if let Some(patience) = self.early_stopping
            && self.stopping.should_stop(epoch)
        {
            history.stopped_early = true;
            self.notes.push(format!(
                "stopping early: the validation loss has not improved for {patience} epochs since \
                 epoch {}",
                history.best_epoch().unwrap_or(0)
            ));
        }
        #[cfg(not(target_arch = "wasm32"))]
        if let Some((path, best_only)) = self.save.clone()
            && (best || !best_only)
        {
            self.save(&path)?;
        }
        Ok(outcome)
    }

    /// Trains the remaining epochs, calling `callbacks`; stops early as the spec asks, and with
    /// [`Error::Interrupted`] when the stop flag is raised (the history keeps the epochs that
    /// finished; [`Run::summary`] then says `interrupted`).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn train(&mut self, callbacks: &mut dyn Callbacks) -> Result<Summary> {
        while !self.is_done() {
            let outcome = self.train_epoch_with(&mut |p| callbacks.progress(p))?;
            callbacks.epoch(&outcome)?;
        }
        Ok(self.summary())
    }

    /// The model as trained so far.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn mlp(&mut self) -> Result<Mlp> {
        pollster::block_on(self.mlp_async())
    }

    /// [`Run::mlp`] as a future.
    pub async fn mlp_async(&mut self) -> Result<Mlp> {
        match &mut self.engine {
            Engine::Gpu(trainer) => trainer.network().to_mlp_async().await,
            Engine::Cpu(trainer) => trainer.to_mlp(),
        }
    }

    /// The network the GPU trainer trains (`None` on the CPU reference), e.g. to copy its
    /// parameters to another network on the GPU without a read-back.
    pub fn gpu_network(&mut self) -> Option<&mut GpuMlp> {
        match &mut self.engine {
            Engine::Gpu(trainer) => Some(trainer.network()),
            Engine::Cpu(_) => None,
        }
    }

    /// What a model file of this run records: the epochs, the settings, the data's source and
    /// preparation, the deformations.
    pub fn checkpoint_info(&self) -> CheckpointInfo {
        let mut extra = self.settings.recorded();
        extra.extend(self.data.recorded());
        CheckpointInfo {
            epochs: self.epochs_done(),
            extra: extra
                .into_iter()
                .map(|(key, value)| (key.to_string(), value))
                .collect(),
        }
    }

    /// The model file's bytes (safetensors, as [`checkpoint::save`] writes them).
    pub async fn to_bytes_async(&mut self) -> Result<Vec<u8>> {
        let mlp = self.mlp_async().await?;
        checkpoint::to_bytes(&mlp, &self.checkpoint_info())
    }

    /// Saves the model to `path` with everything it was trained with, and its optimizer state
    /// beside it ([`checkpoint::optimizer_path`]), for a later [`Resume::File`].
    #[cfg(not(target_arch = "wasm32"))]
    pub fn save(&mut self, path: &Path) -> Result<()> {
        let state = self.optimizer_state()?;
        save_model(path, &self.mlp()?, &self.checkpoint_info(), Some(&state))
    }

    /// The optimizer's state (moments and step count), for a warm start in memory.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn optimizer_state(&mut self) -> Result<OptimizerState> {
        match &mut self.engine {
            Engine::Gpu(trainer) => trainer.optimizer_state(),
            Engine::Cpu(trainer) => trainer.optimizer_state(),
        }
    }

    /// The model's outputs for raw features `x [n, inputs]`, scaled first as the training data
    /// was (probabilities for a softmax output; standardized targets mapped back to their
    /// units).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn predict(&mut self, x: impl Into<Features>) -> Result<Array2<f32>> {
        let mlp = self.mlp()?;
        predict(&mlp, &self.data.preparation, x.into())
    }

    /// The loss and scores of the model on `split`.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn evaluate(&mut self, split: Split) -> Result<Evaluation> {
        pollster::block_on(self.engine.evaluate(split))
    }

    /// Where the profiled steps' GPU time went, if profiling was asked for.
    pub fn profile(&self) -> Option<Profile> {
        match &self.engine {
            Engine::Gpu(trainer) => trainer.profile(),
            Engine::Cpu(_) => None,
        }
    }

    /// The summary of the epochs so far.
    pub fn summary(&self) -> Summary {
        let history = &self.history;
        let last = history.epochs.last();
        let (samples, seconds) = history.epochs.iter().fold((0, 0.0), |(n, s), e| {
            (n + e.report.samples, s + e.report.seconds)
        });
        Summary {
            validation: last.and_then(|e| e.validation_scores.clone()),
            test: last.and_then(|e| e.test_scores.clone()),
            train_loss: last.map(|e| e.report.train_loss),
            epochs: self.epochs_done(),
            seconds: self.started.elapsed().as_secs_f64(),
            samples_per_s: samples as f64 / f64::max(seconds, 1e-9),
            adapter: self.adapter.clone(),
            dataset: self.data.source.name(),
            task: self.data.preparation.task,
            best_epoch: history.best_epoch(),
            stopped_early: history.stopped_early,
            interrupted: self.interrupted,
            profile: self.profile(),
        }
    }
}

/// Saves `mlp` with `info` to `path`, and `state` beside it ([`checkpoint::optimizer_path`])
/// under the optimizer `info` records: the two files [`Run::save`] writes and a [`Resume::File`]
/// reads, for a model kept after its run ended. The state is written first, so that a crash
/// between the two files leaves a stale state, which a resume detects and ignores, never a model
/// without weights.
#[cfg(not(target_arch = "wasm32"))]
pub fn save_model(
    path: &Path,
    mlp: &Mlp,
    info: &CheckpointInfo,
    state: Option<&OptimizerState>,
) -> Result<()> {
    if let Some(state) = state {
        let optimizer = Recorded::of(info, path).optimizer()?.ok_or_else(|| {
            Error::Model(format!(
                "{}: an optimizer state is saved only for a model whose metadata records its optimizer",
                path.display()
            ))
        })?;
        let state_path = checkpoint::optimizer_path(path);
        checkpoint::save_optimizer(&state_path, state, optimizer, info.epochs)?;
    }
    checkpoint::save(path, mlp, info)
}

/// The outputs of `mlp` for raw features `x`, scaled as `preparation` says (the training
/// data's scaling), with standardized regression targets mapped back to their own units.
pub fn predict(mlp: &Mlp, preparation: &Preparation, x: Features) -> Result<Array2<f32>> {
    if x.width() != mlp.inputs() {
        return Err(Error::Shape {
            what: "x".into(),
            actual: vec![x.len(), x.width()],
            expected: format!("[n, {}] (the model's inputs)", mlp.inputs()),
        });
    }
    // Targets the scaling leaves alone: predictions need none.
    let mut samples = Dataset {
        targets: Targets::Classes {
            labels: ndarray::Array1::zeros(x.len()),
            classes: 1,
        },
        features: x,
        image_shape: None,
    };
    preparation.apply(&mut samples)?;
    // At most this many rows go through the reference at once, to bound its memory.
    const ROWS: usize = 4096;
    let mut outputs = Array2::zeros((samples.len(), mlp.outputs()));
    let indices: Vec<usize> = (0..samples.len()).collect();
    for (c, chunk) in indices.chunks(ROWS).enumerate() {
        let (x, _) = samples.batch(chunk);
        let predicted = mlp.forward(x.view())?;
        outputs
            .slice_mut(ndarray::s![c * ROWS..c * ROWS + chunk.len(), ..])
            .assign(&predicted);
    }
    if let (Task::Regression, Some(scaling)) = (preparation.task, &preparation.targets) {
        scaling.invert(&mut outputs);
    }
    Ok(outputs)
}

/// The model a spec resumes, its file's records and the name of its file; the optimizer state
/// given in memory.
#[allow(clippy::type_complexity)]
fn load_resumed(
    spec: &TrainSpec,
) -> Result<(
    Option<(Mlp, CheckpointInfo, PathBuf)>,
    Option<OptimizerState>,
)> {
    Ok(match &spec.resume {
        None => (None, None),
        Some(Resume::File(path)) => {
            let architecture = Architecture::stated(spec.hidden, spec.output, spec.loss);
            let (mlp, info) = checkpoint::load_with(path, architecture.as_ref())?;
            (Some((mlp, info, path.clone())), None)
        }
        Some(Resume::Model {
            mlp,
            info,
            optimizer,
        }) => (
            Some((mlp.clone(), info.clone(), PathBuf::from("the model"))),
            optimizer.clone(),
        ),
    })
}

/// The optimizer state saved beside the resumed model file `path`, if there is one for this
/// optimizer and epoch; `notes` says which.
#[cfg(not(target_arch = "wasm32"))]
fn restored_state(
    path: &Path,
    settings: &Settings,
    notes: &mut Vec<String>,
) -> Result<Option<OptimizerState>> {
    let state_path = checkpoint::optimizer_path(path);
    let optimizer = settings.optimizer.optimizer;
    let epochs = settings.epochs_before;
    let state =
        checkpoint::load_optimizer(&state_path, &settings.mlp, &settings.optimizer, epochs)?;
    match &state {
        Some(state) => notes.push(format!(
            "restored the {} state of {} steps from {}",
            optimizer.name(),
            state.steps,
            state_path.display()
        )),
        None if optimizer.state_per_parameter() > 0 => notes.push(format!(
            "no {} state saved for epoch {epochs} in {}: the optimizer starts afresh",
            optimizer.name(),
            state_path.display()
        )),
        None => {}
    }
    Ok(state)
}

/// A browser has no files to restore a state from.
#[cfg(target_arch = "wasm32")]
fn restored_state(_: &Path, _: &Settings, _: &mut Vec<String>) -> Result<Option<OptimizerState>> {
    Ok(None)
}

impl Engine {
    /// The trainer `spec`'s device asks for, on `gpu` or the CPU reference, with the data, the
    /// deformations and the profiling set up; and how to name where it runs.
    fn build(
        spec: &TrainSpec,
        settings: &Settings,
        data: &RunData,
        gpu: Option<&Gpu>,
    ) -> Result<(Engine, String)> {
        let config = settings.train_config();
        let shuffle = spec.shuffle.unwrap_or(true);
        let Some(gpu) = gpu else {
            if spec.profile.is_some() {
                return Err(Error::Settings(
                    "--profile times GPU kernels with timestamp queries; it cannot be used with \
                     --cpu"
                        .into(),
                ));
            }
            let (train, test) = (data.train.clone(), data.test.clone());
            let (mut trainer, adapter) = match spec.device {
                Device::CpuReference => (
                    CpuTrainer::shared_reference(&settings.mlp, train, test, config)?,
                    CPU_REFERENCE_ADAPTER,
                ),
                _ => (
                    CpuTrainer::shared(&settings.mlp, train, test, config)?,
                    CPU_ADAPTER,
                ),
            };
            if let Some(validation) = &data.validation {
                trainer.set_shared_validation(validation.clone())?;
            }
            if let Some((augmentation, _)) = &settings.augmentation {
                trainer.set_augmentation(augmentation)?;
            }
            trainer.set_shuffle(shuffle);
            return Ok((Engine::Cpu(Box::new(trainer)), adapter.to_string()));
        };
        let (train, test) = (data.train.clone(), data.test.clone());
        let mut trainer =
            GpuTrainer::with_placement(gpu, &settings.mlp, train, test, config, spec.placement)?;
        if let Some(validation) = &data.validation {
            trainer.set_validation(validation.clone())?;
        }
        if let Some((augmentation, _)) = &settings.augmentation {
            trainer.set_augmentation(augmentation)?;
        }
        if let Some(steps) = spec.profile {
            trainer.profile_next_steps(steps)?;
        }
        trainer.set_shuffle(shuffle);
        Ok((Engine::Gpu(Box::new(trainer)), gpu.adapter_description()))
    }

    fn set_epochs_done(&mut self, epochs: usize) {
        match self {
            Engine::Gpu(trainer) => trainer.set_epochs_done(epochs),
            Engine::Cpu(trainer) => trainer.set_epochs_done(epochs),
        }
    }

    fn set_learning_rate(&mut self, learning_rate: f32) -> Result<()> {
        match self {
            Engine::Gpu(trainer) => trainer.set_learning_rate(learning_rate),
            Engine::Cpu(trainer) => trainer.set_learning_rate(learning_rate),
        }
    }

    fn set_optimizer_state(&mut self, state: &OptimizerState) -> Result<()> {
        match self {
            Engine::Gpu(trainer) => trainer.set_optimizer_state(state),
            Engine::Cpu(trainer) => trainer.set_optimizer_state(state),
        }
    }

    async fn train_epoch(&mut self, progress: &mut dyn FnMut(Progress)) -> Result<EpochReport> {
        match self {
            Engine::Gpu(trainer) => trainer.train_epoch_async(progress).await,
            Engine::Cpu(trainer) => trainer.train_epoch(progress),
        }
    }

    async fn evaluate(&mut self, split: Split) -> Result<Evaluation> {
        match self {
            Engine::Gpu(trainer) => trainer.evaluate_async(split).await,
            Engine::Cpu(trainer) => trainer.evaluate(split),
        }
    }
}
