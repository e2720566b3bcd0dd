//! `wgpu-mlp train`: trains a network on the GPU (or the CPU reference), printing a line per
//! epoch, and saves, resumes, logs and plots as asked. Ctrl-C or SIGTERM stops it after the step
//! in progress, keeping the last completed save and printing the summary so far (exit status 130).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::json;

use clap::ValueEnum;
use wgpu_mlp::checkpoint::{self, CheckpointInfo};
use wgpu_mlp::files::{check_can_write, write_atomically};
use wgpu_mlp::gpu::profile::Profile;
use wgpu_mlp::optim::Optimizer;
use wgpu_mlp::plot::{EpochPoint, training_curves_svg};
use wgpu_mlp::train::{
    CpuTrainer, DataPlacement, EarlyStopping, EpochReport, Evaluation, GpuTrainer, Split,
    TrainConfig, Trainer,
};
use wgpu_mlp::{Activation, Init, Loss, Mlp};

use crate::augment::{self, AugmentArgs, Deformations};
use crate::common::{
    CPU_ADAPTER, Console, DEFAULT_SEED, Recorded, hidden_activation, interrupt_flag,
    is_interruption, open_gpu, output_activation_option, parse_sizes, print_confusion,
    profile_json, progress_bar, stated_architecture,
};
use crate::dataset::{DataArgs, RecordedData, RunData};
use crate::scores::{scores_json, scores_text};
use crate::settings::{DataShape, Resumed, Settings, recorded};

/// `--lr-schedule`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ScheduleName {
    /// The same rate every epoch.
    Constant,
    /// Multiplied by --lr-gamma every --lr-step epochs.
    Step,
    /// Half a cosine from the rate down to 0 over the run.
    Cosine,
}

/// Layer sizes as `--layers` gives them.
#[derive(Clone, Debug, PartialEq)]
pub struct Sizes(pub Vec<usize>);

/// `--dropout`'s probabilities: one for every hidden layer, or one per hidden layer.
#[derive(Clone, Debug)]
pub struct Rates(pub Vec<f32>);

#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub augment: AugmentArgs,
    /// Layer sizes, inputs first; the first and last must be the data's widths [default: the
    /// data's widths around --hidden-sizes].
    #[arg(long, value_parser = |text: &str| parse_sizes(text).map(Sizes), conflicts_with = "hidden_sizes")]
    pub layers: Option<Sizes>,
    /// Hidden layer sizes; the input and output widths come from the data [default: 128].
    #[arg(long, value_name = "SIZES", value_parser = |text: &str| parse_sizes(text).map(Sizes))]
    pub hidden_sizes: Option<Sizes>,
    /// Activation of the hidden layers (gelu: exact, erf-based, as torch.nn.GELU(); silu:
    /// z·σ(z); leaky-relu: see --leaky-slope) [default: relu; sigmoid with --tutorial].
    #[arg(long, value_parser = hidden_activation())]
    pub hidden: Option<Activation>,
    /// Negative slope of --hidden leaky-relu, in [0, 1), as
    /// torch.nn.LeakyReLU(negative_slope) [default: 0.01, or the --resume'd model's].
    #[arg(long, value_name = "SLOPE", allow_negative_numbers = true)]
    pub leaky_slope: Option<f32>,
    /// Activation of the output layer [default: identity for regression; for classes the one
    /// --loss requires (softmax for cross-entropy), sigmoid for mse].
    #[arg(long, value_parser = output_activation_option())]
    pub output: Option<Activation>,
    /// Loss [default: cross-entropy for classes (mse with --tutorial or an --output other than
    /// softmax), mse for regression].
    #[arg(long, value_enum)]
    pub loss: Option<Loss>,
    /// Weight initialisation (auto: He for the ReLU family, i.e. relu, leaky-relu, gelu and silu
    /// layers, Xavier otherwise) [default: auto].
    #[arg(long, value_enum)]
    pub init: Option<Init>,
    /// Optimizer (momentum: μ = 0.9; adam: β = 0.9, 0.999, ε = 1e-8; adamw: the same with
    /// decoupled weight decay, torch.optim.AdamW) [default: adam; sgd with --tutorial; or the
    /// --resume'd model's].
    #[arg(long, value_enum)]
    pub optimizer: Option<Optimizer>,
    /// Learning rate [default: 0.001; 0.5 with --tutorial; or the --resume'd model's].
    #[arg(long)]
    pub lr: Option<f32>,
    /// Weight decay: L2 in the gradient, or with adamw decoupled (p ← p − lr·λ·p) [default: 0,
    /// 0.01 with adamw, or the --resume'd model's].
    #[arg(long)]
    pub weight_decay: Option<f32>,
    /// Label smoothing ε of the cross-entropy loss: targets become (1 − ε)·y + ε/classes, as
    /// torch.nn.CrossEntropyLoss(label_smoothing=ε) [default: 0, or the --resume'd model's].
    #[arg(long, value_name = "EPSILON")]
    pub label_smoothing: Option<f32>,
    /// Clip the global L2 norm of all gradients to this before each update, as
    /// torch.nn.utils.clip_grad_norm_ [default: no clipping, or the --resume'd model's].
    #[arg(long, value_name = "MAX_NORM")]
    pub clip_norm: Option<f32>,
    /// Inverted dropout after each hidden layer's activation, as torch.nn.Dropout(p): one
    /// probability for every hidden layer, or a comma list with one per hidden layer; training
    /// only [default: 0, or the --resume'd model's; a value given replaces it and is said].
    #[arg(long, value_name = "P", value_parser = |text: &str| wgpu_mlp::dropout::parse_rates(text).map(Rates))]
    pub dropout: Option<Rates>,
    /// Inverted dropout on the input features, as torch.nn.Dropout(p) before the first layer
    /// [default: 0, or the --resume'd model's; a value given replaces it and is said].
    #[arg(long, value_name = "P")]
    pub input_dropout: Option<f32>,
    /// Samples per step [default: 64, or the --resume'd model's].
    #[arg(long)]
    pub batch: Option<usize>,
    /// Epochs to train (more epochs on top of a --resume'd model) [default: 10, or more to make
    /// 5000 steps, at most 200; 5 with --tutorial].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// The tutorial's network as the defaults: sigmoid hidden units, a sigmoid output with the
    /// mean squared error (identity for regression), SGD at lr 0.5, batch 64, 5 epochs; each
    /// option given still wins.
    #[arg(long)]
    pub tutorial: bool,
    /// How the learning rate changes from epoch to epoch [default: constant].
    #[arg(long, value_enum)]
    pub lr_schedule: Option<ScheduleName>,
    /// With --lr-schedule step: epochs between drops [default: 10].
    #[arg(long, value_name = "EPOCHS")]
    pub lr_step: Option<usize>,
    /// With --lr-schedule step: the factor of each drop [default: 0.1].
    #[arg(long, value_name = "FACTOR")]
    pub lr_gamma: Option<f32>,
    /// Epochs of linear warm-up to the learning rate, before any schedule [default: 0].
    #[arg(long, value_name = "EPOCHS")]
    pub warmup: Option<usize>,
    /// Stop once the validation loss has not improved for PATIENCE epochs.
    #[arg(long, value_name = "PATIENCE")]
    pub early_stopping: Option<usize>,
    /// With --save: keep the model of the epoch with the lowest validation loss, not the last.
    #[arg(long, requires = "save")]
    pub save_best: bool,
    /// Seed of the initial weights, the shuffles and the synthetic data [default: 42, or the
    /// --resume'd model's].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Adapter: auto, software, a backend (vulkan, metal, dx12, gl), NAME@BACKEND, or part of an
    /// adapter's name.
    #[arg(long, default_value = "auto")]
    pub adapter: String,
    /// Train with the CPU reference instead of the GPU.
    #[arg(long)]
    pub cpu: bool,
    /// Save the model here (safetensors) after every epoch (with --save-best, after every best
    /// one), and its optimizer state beside it (NAME.optimizer.safetensors) for --resume.
    #[arg(long, value_name = "FILE")]
    pub save: Option<PathBuf>,
    /// Continue from a saved model with the settings it records (architecture, loss, optimizer
    /// and its state, learning rate, batch, data and its scaling, seed).
    #[arg(long, value_name = "FILE")]
    pub resume: Option<PathBuf>,
    /// Write one JSON line per epoch here.
    #[arg(long, value_name = "FILE")]
    pub metrics: Option<PathBuf>,
    /// Draw loss and accuracy curves here (SVG).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Time the first STEPS training steps kernel by kernel with timestamp queries (they train
    /// as usual) and print where a step's GPU time goes.
    #[arg(long, value_name = "STEPS", num_args = 0..=1, default_missing_value = "20")]
    pub profile: Option<usize>,
    /// Print a one-line JSON summary at the end (and nothing else on stdout).
    #[arg(long)]
    pub json: bool,
}

/// How a run ended, for its summary.
struct Ending<'a> {
    adapter: &'a str,
    start_time: Instant,
    /// Ctrl-C or SIGTERM stopped it before its last epoch.
    interrupted: bool,
}

/// What the epochs have produced so far.
#[derive(Default)]
struct History {
    points: Vec<EpochPoint>,
    samples: usize,
    train_seconds: f64,
    /// The last epoch's validation and test evaluations.
    validation: Option<Evaluation>,
    test: Option<Evaluation>,
    /// The epoch with the lowest validation loss, and whether training stopped early.
    best_epoch: Option<usize>,
    stopped_early: bool,
}

pub fn run(args: TrainArgs) -> Result<()> {
    let start_time = Instant::now();
    if args.epochs == Some(0) {
        bail!("--epochs 0: nothing to train (give at least 1)");
    }
    if args.cpu && args.profile.is_some() {
        bail!("--profile times GPU kernels with timestamp queries; it cannot be used with --cpu");
    }
    check_outputs(&args)?;
    let console = Console::new(args.json);
    let stop = interrupt_flag()?;
    let resumed = match &args.resume {
        Some(path) => {
            let architecture = stated_architecture(args.hidden, args.output, args.loss);
            let (mlp, info) = checkpoint::load_with(path, architecture.as_ref())?;
            Some(Resumed { path, mlp, info })
        }
        None => None,
    };
    let mut data = load_data(&args, resumed.as_ref())?;
    let resumed_info = resumed.as_ref().map(|r| (&r.info, r.path));
    let augmentation = augment::for_training(&args.augment, resumed_info, &mut data)?;
    let shape = DataShape {
        inputs: data.train.inputs(),
        outputs: data.train.outputs(),
        task: data.preparation.task,
        samples: data.train.len(),
    };
    let mut settings = Settings::from_args(&args, resumed, shape)?;
    settings
        .mlp
        .validate()
        .context("the network options do not describe a model that can be trained")?;
    if (args.early_stopping.is_some() || args.save_best) && data.validation.is_none() {
        bail!(
            "--early-stopping and --save-best watch the validation loss: hold out part of the \
             training data with --validation FRACTION"
        );
    }
    cap_batch(&mut settings, data.train.len());
    let config = TrainConfig {
        optimizer: settings.optimizer,
        batch_size: settings.batch,
        seed: settings.seed,
        regularization: settings.regularization.clone(),
    };
    let mlp = &settings.mlp;
    let (mut trainer, adapter) = build_trainer(&args, mlp, &data, config.clone(), augmentation)?;
    trainer.set_epochs_done(settings.epochs_before);
    trainer.stop_on(stop.clone());
    if let Some(path) = &args.resume {
        restore_optimizer(trainer.as_mut(), path, mlp, &config, settings.epochs_before)?;
    }
    // Created only now: a run refused for its data or options leaves an earlier log as it was.
    let mut metrics = args
        .metrics
        .as_ref()
        .map(|path| {
            File::create(path)
                .with_context(|| format!("--metrics {}: cannot create it", path.display()))
        })
        .transpose()?;
    let mut counts = vec![format!("{} train", data.train.len())];
    counts.extend(
        data.validation
            .as_ref()
            .map(|v| format!("{} validation", v.len())),
    );
    counts.extend(data.test.as_ref().map(|t| format!("{} test", t.len())));
    eprintln!(
        "training {:?} {}→{} {} with {} (lr {}) on {} ({} samples), adapter: {adapter}",
        mlp.sizes(),
        mlp.layers[0].activation.name(),
        mlp.layers[mlp.layers.len() - 1].activation.name(),
        mlp.loss.name(),
        config.optimizer.optimizer.name(),
        config.optimizer.learning_rate,
        data.source.name(),
        counts.join(" / "),
    );
    let mut history = History::default();
    let run = Run {
        augmentation,
        args: &args,
        console: &console,
        settings: &settings,
        data: &data,
    };
    let ended = run.train_epochs(trainer.as_mut(), metrics.as_mut(), &mut history);
    let interrupted = match ended {
        Ok(()) => None,
        Err(error) if is_interruption(&error) => Some(error),
        Err(error) => return Err(error),
    };
    let ending = Ending {
        adapter: &adapter,
        start_time,
        interrupted: interrupted.is_some(),
    };
    run.finish(trainer.as_ref(), &history, &ending)?;
    match interrupted {
        Some(error) => Err(error.context(match &args.save {
            Some(path) => format!("{} holds the last completed epoch", path.display()),
            None => "nothing was saved (no --save)".to_string(),
        })),
        None => Ok(()),
    }
}

/// The run's data: what the options name, or what the `--resume`d model records, scaled as it
/// records.
fn load_data(args: &TrainArgs, resumed: Option<&Resumed>) -> Result<RunData> {
    let recorded = resumed.map(|r| Recorded::of(&r.info, r.path));
    let source = args.data.source(recorded.as_ref())?;
    let recorded_seed = match &recorded {
        Some(recorded) => recorded.value::<u64>("seed")?,
        None => None,
    };
    let seed = args.seed.or(recorded_seed).unwrap_or(DEFAULT_SEED);
    let recorded_data = match (&recorded, resumed) {
        (Some(recorded), Some(resumed)) => Some(RecordedData::of(recorded, resumed.mlp.outputs())?),
        _ => None,
    };
    args.data.load_for_training(source, seed, recorded_data)
}

/// The trainer the options ask for, on the GPU or the CPU reference, and how to name where it runs.
fn build_trainer<'a>(
    args: &TrainArgs,
    mlp: &Mlp,
    data: &'a RunData,
    config: TrainConfig,
    augmentation: Deformations,
) -> Result<(Box<dyn Trainer + 'a>, String)> {
    if args.cpu {
        let mut trainer = CpuTrainer::new(mlp, &data.train, data.test.as_deref(), config)?;
        if let Some(validation) = &data.validation {
            trainer.set_validation(validation)?;
        }
        if let Some((augmentation, _)) = &augmentation {
            trainer.set_augmentation(augmentation)?;
        }
        return Ok((Box::new(trainer), CPU_ADAPTER.to_string()));
    }
    let gpu = open_gpu(&args.adapter)?;
    let (train, test) = (data.train.clone(), data.test.clone());
    let mut trainer =
        GpuTrainer::with_placement(&gpu, mlp, train, test, config, DataPlacement::Auto)?;
    if let Some(validation) = &data.validation {
        trainer.set_validation(validation.clone())?;
    }
    if let Some((augmentation, _)) = &augmentation {
        trainer.set_augmentation(augmentation)?;
    }
    if let Some(steps) = args.profile {
        trainer.profile_next_steps(steps)?;
    }
    Ok((Box::new(trainer), gpu.adapter_description()))
}

/// A batch larger than the training set is the whole set, on either side, and said.
fn cap_batch(settings: &mut Settings, train_len: usize) {
    if settings.batch > train_len && train_len > 0 {
        eprintln!(
            "note: a batch of {} is more than the {train_len} training samples; using batches of {train_len}",
            settings.batch
        );
        settings.batch = train_len;
    }
}

/// Checks every output path before any work is done.
fn check_outputs(args: &TrainArgs) -> Result<()> {
    if let Some(path) = &args.save {
        check_can_write(path).with_context(|| format!("--save {}", path.display()))?;
        let state = checkpoint::optimizer_path(path);
        check_can_write(&state).with_context(|| {
            format!(
                "--save {}: its optimizer state goes beside it, to {}",
                path.display(),
                state.display()
            )
        })?;
    }
    if let Some(path) = &args.plot {
        check_can_write(path).with_context(|| format!("--plot {}", path.display()))?;
    }
    if let Some(path) = &args.metrics {
        check_can_write(path).with_context(|| format!("--metrics {}", path.display()))?;
    }
    Ok(())
}

/// Loads the optimizer state saved beside the `--resume`d model into `trainer`, if there is one
/// for this optimizer and epoch.
fn restore_optimizer(
    trainer: &mut dyn Trainer,
    path: &Path,
    mlp: &Mlp,
    config: &TrainConfig,
    epochs_before: usize,
) -> Result<()> {
    let state_path = checkpoint::optimizer_path(path);
    let optimizer = config.optimizer.optimizer;
    match checkpoint::load_optimizer(&state_path, mlp, &config.optimizer, epochs_before)? {
        Some(state) => {
            trainer.set_optimizer_state(&state)?;
            eprintln!(
                "restored the {} state of {} steps from {}",
                optimizer.name(),
                state.steps,
                state_path.display()
            );
        }
        None if optimizer.state_per_parameter() > 0 => eprintln!(
            "no {} state saved for epoch {epochs_before} in {}: the optimizer starts afresh",
            optimizer.name(),
            state_path.display()
        ),
        None => {}
    }
    Ok(())
}

/// A training run's options, settings and data, for the epoch loop and its ending.
struct Run<'a> {
    args: &'a TrainArgs,
    console: &'a Console,
    settings: &'a Settings,
    data: &'a RunData,
    /// The deformations trained with, and the image shape they assume.
    augmentation: Deformations,
}

impl Run<'_> {
    /// Trains `settings.epochs` epochs, printing, logging and saving after each; stops early with
    /// the error of an interruption, `history` holding the epochs that finished.
    fn train_epochs(
        &self,
        trainer: &mut dyn Trainer,
        mut metrics: Option<&mut File>,
        history: &mut History,
    ) -> Result<()> {
        let (args, settings) = (self.args, self.settings);
        let mut stopping = EarlyStopping::new(args.early_stopping.unwrap_or(usize::MAX));
        for epoch in 1..=settings.epochs {
            let total_epochs = settings.epochs_before + epoch;
            let learning_rate = settings.schedule.learning_rate(total_epochs);
            trainer.set_learning_rate(learning_rate)?;
            let bar = progress_bar(epoch, settings.epochs, self.data.train.len());
            let report = trainer.train_epoch(&mut |p| {
                bar.set_position(p.samples as u64);
                bar.set_message(format!("{:.4}", p.running_loss));
            });
            bar.finish_and_clear();
            let report = report?;
            let validation = match &self.data.validation {
                Some(_) => Some(trainer.evaluate(Split::Validation)?),
                None => None,
            };
            let test = match &self.data.test {
                Some(_) => Some(trainer.evaluate(Split::Test)?),
                None => None,
            };
            history.samples += report.samples;
            history.train_seconds += report.seconds;
            let evaluations = [("val", &validation), ("test", &test)];
            self.report_epoch(&report, learning_rate, &evaluations, metrics.as_deref_mut())?;
            let held_out = test.as_ref().or(validation.as_ref());
            if let Some(held_out) = held_out {
                history.points.push(EpochPoint {
                    epoch: total_epochs,
                    train_loss: report.train_loss,
                    test_loss: held_out.loss,
                    // Regression plots R² where classification plots accuracy.
                    test_accuracy: held_out
                        .accuracy()
                        .or(held_out.r2())
                        .unwrap_or(0.0)
                        .max(0.0),
                });
            }
            let best = match &validation {
                Some(v) => stopping.record(total_epochs, v.loss),
                None => true,
            };
            history.best_epoch = stopping.best().map(|(epoch, _)| epoch);
            (history.validation, history.test) = (validation, test);
            if let Some(path) = &args.save
                && (best || !args.save_best)
            {
                let data = (self.data, self.augmentation);
                save(trainer, path, settings, data, total_epochs)?;
            }
            if args.early_stopping.is_some() && stopping.should_stop(total_epochs) {
                history.stopped_early = true;
                eprintln!(
                    "stopping early: the validation loss has not improved for {} epochs since epoch {}",
                    args.early_stopping.unwrap_or(0),
                    history.best_epoch.unwrap_or(0)
                );
                break;
            }
        }
        Ok(())
    }

    /// Prints the epoch's line and writes its `--metrics` record: the training loss, the
    /// learning rate, and each held-out set's scores.
    fn report_epoch(
        &self,
        report: &EpochReport,
        learning_rate: f32,
        evaluations: &[(&str, &Option<Evaluation>)],
        metrics: Option<&mut File>,
    ) -> Result<()> {
        let prep = &self.data.preparation;
        let mut line = format!(
            "epoch {:>3}  train loss {:.5}",
            report.epoch, report.train_loss
        );
        let mut record = serde_json::Map::new();
        record.insert("epoch".into(), json!(report.epoch));
        record.insert("train_loss".into(), json!(report.train_loss));
        record.insert("lr".into(), json!(learning_rate));
        for (name, evaluation) in evaluations {
            if let Some(evaluation) = evaluation {
                line += &format!("  {}", scores_text(name, evaluation, prep));
                record.extend(scores_json(&format!("{name}_"), evaluation, prep));
            }
        }
        self.console.line(format_args!(
            "{line}  {:>8.0} samples/s  {:.1} s",
            report.samples_per_second(),
            report.seconds
        ))?;
        record.insert("seconds".into(), json!(report.seconds));
        record.insert("samples_per_s".into(), json!(report.samples_per_second()));
        if let Some(file) = metrics {
            writeln!(file, "{}", serde_json::Value::Object(record))
                .context("writing the metrics file")?;
        }
        Ok(())
    }

    /// What ends a run, complete or interrupted: the confusion matrix, the profile, the plot
    /// and the `--json` line of the epochs that finished.
    fn finish(&self, trainer: &dyn Trainer, history: &History, ending: &Ending) -> Result<()> {
        let (args, console) = (self.args, self.console);
        let Some(held_out) = history.test.as_ref().or(history.validation.as_ref()) else {
            return Ok(());
        };
        if let Some(path) = &args.save {
            match (args.save_best, history.best_epoch) {
                (true, Some(best)) => {
                    eprintln!("saved {} (epoch {best}, the best)", path.display())
                }
                _ => eprintln!("saved {}", path.display()),
            }
        }
        if let Some(confusion) = held_out.confusion() {
            print_confusion(console, confusion)?;
        }
        let profile = trainer.profile();
        if let Some(profile) = &profile {
            console.line(profile)?;
        }
        if let Some(path) = &args.plot {
            write_atomically(path, training_curves_svg(&history.points).as_bytes())?;
            eprintln!("plotted {}", path.display());
        }
        if args.json {
            console.json(&self.summary(history, ending, profile.as_ref()))?;
        }
        Ok(())
    }

    /// The `--json` line.
    fn summary(
        &self,
        history: &History,
        ending: &Ending,
        profile: Option<&Profile>,
    ) -> serde_json::Value {
        let settings = self.settings;
        let epochs = history
            .points
            .last()
            .map_or(settings.epochs_before, |p| p.epoch);
        let mut summary = serde_json::Map::new();
        let prep = &self.data.preparation;
        for (prefix, evaluation) in [("val_", &history.validation), ("test_", &history.test)] {
            if let Some(evaluation) = evaluation {
                summary.extend(scores_json(prefix, evaluation, prep));
            }
        }
        let rest = json!({
            "train_loss": history.points.last().map(|p| p.train_loss),
            "epochs": epochs, "seconds": ending.start_time.elapsed().as_secs_f64(),
            "samples_per_s": history.samples as f64 / history.train_seconds.max(1e-9),
            "adapter": ending.adapter, "dataset": self.data.source.name(),
            "task": prep.task.name(),
            "best_epoch": history.best_epoch, "stopped_early": history.stopped_early,
            "interrupted": ending.interrupted,
            "profile": profile.map(profile_json),
        });
        if let serde_json::Value::Object(rest) = rest {
            summary.extend(rest);
        }
        serde_json::Value::Object(summary)
    }
}

/// Saves the model and, beside it, the optimizer state, after `epochs` epochs in all.
fn save(
    trainer: &mut dyn Trainer,
    path: &Path,
    settings: &Settings,
    (data, augmentation): (&RunData, Deformations),
    epochs: usize,
) -> Result<()> {
    let mut extra: Vec<(String, String)> = recorded(settings)
        .into_iter()
        .map(|(key, value)| (key.to_string(), value))
        .collect();
    extra.extend(data.recorded().into_iter().map(|(k, v)| (k.to_string(), v)));
    if let Some((augmentation, shape)) = augmentation {
        let recorded = augmentation.metadata(shape).into_iter();
        extra.extend(recorded.map(|(k, v)| (k.to_string(), v)));
    }
    let info = CheckpointInfo {
        epochs,
        extra: extra.into_iter().collect(),
    };
    // The optimizer state first: a crash between the two files leaves a model whose saved state
    // is stale, which --resume detects and ignores, never a model without weights.
    let state = trainer.optimizer_state()?;
    let state_path = checkpoint::optimizer_path(path);
    checkpoint::save_optimizer(&state_path, &state, &settings.optimizer, epochs)?;
    checkpoint::save(path, &trainer.to_mlp()?, &info)?;
    Ok(())
}
