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

use wgpu_mlp::checkpoint::{self, CheckpointInfo};
use wgpu_mlp::data::Dataset;
use wgpu_mlp::files::{check_can_write, write_atomically};
use wgpu_mlp::gpu::profile::Profile;
use wgpu_mlp::optim::Optimizer;
use wgpu_mlp::plot::{EpochPoint, training_curves_svg};
use wgpu_mlp::train::{CpuTrainer, Evaluation, GpuTrainer, Split, TrainConfig, Trainer};
use wgpu_mlp::{Activation, Init, Loss, Mlp};

use crate::common::{
    CPU_ADAPTER, Console, DataArgs, hidden_activation, interrupt_flag, is_interruption, open_gpu,
    parse_sizes, print_confusion, profile_json, progress_bar,
};
use crate::settings::{Settings, recorded};

/// Layer sizes as `--layers` gives them.
#[derive(Clone, Debug, PartialEq)]
pub struct Sizes(pub Vec<usize>);

#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Layer sizes, inputs first [default: 784,128,10].
    #[arg(long, value_parser = |text: &str| parse_sizes(text).map(Sizes))]
    pub layers: Option<Sizes>,
    /// Activation of the hidden layers [default: sigmoid].
    #[arg(long, value_parser = hidden_activation())]
    pub hidden: Option<Activation>,
    /// Activation of the output layer [default: the one --loss requires, else sigmoid].
    #[arg(long, value_enum)]
    pub output: Option<Activation>,
    /// Loss [default: mse].
    #[arg(long, value_enum)]
    pub loss: Option<Loss>,
    /// Weight initialisation (auto: He for ReLU layers, Xavier otherwise) [default: auto].
    #[arg(long, value_enum)]
    pub init: Option<Init>,
    /// Optimizer (momentum: μ = 0.9; adam: β = 0.9, 0.999, ε = 1e-8) [default: sgd, or the
    /// --resume'd model's].
    #[arg(long, value_enum)]
    pub optimizer: Option<Optimizer>,
    /// Learning rate [default: 0.5, or the --resume'd model's].
    #[arg(long)]
    pub lr: Option<f32>,
    /// L2 weight decay [default: 0, or the --resume'd model's].
    #[arg(long)]
    pub weight_decay: Option<f32>,
    /// Samples per step [default: 64, or the --resume'd model's].
    #[arg(long)]
    pub batch: Option<usize>,
    /// Epochs to train (more epochs on top of a --resume'd model).
    #[arg(long, default_value_t = 5)]
    pub epochs: usize,
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
    /// Save the model here (safetensors) after every epoch, and its optimizer state beside it
    /// (NAME.optimizer.safetensors) for --resume.
    #[arg(long, value_name = "FILE")]
    pub save: Option<PathBuf>,
    /// Continue from a saved model with the settings it records (architecture, loss, optimizer
    /// and its state, learning rate, batch, data set, seed).
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
    evaluation: Option<Evaluation>,
}

pub fn run(args: TrainArgs) -> Result<()> {
    let start_time = Instant::now();
    let mut settings = Settings::from_args(&args)?;
    settings
        .mlp
        .validate()
        .context("the network options do not describe a model that can be trained")?;
    if args.epochs == 0 {
        bail!("--epochs 0: nothing to train (give at least 1)");
    }
    if args.cpu && args.profile.is_some() {
        bail!("--profile times GPU kernels with timestamp queries; it cannot be used with --cpu");
    }
    let mut metrics = check_outputs(&args)?;
    let console = Console::new(args.json);
    let stop = interrupt_flag()?;
    let (train_set, test_set) = args.data.load(settings.dataset, settings.seed)?;
    cap_batch(&mut settings, train_set.len());
    let config = TrainConfig {
        optimizer: settings.optimizer,
        batch_size: settings.batch,
        seed: settings.seed,
    };
    let mlp = &settings.mlp;
    let (mut trainer, adapter) = build_trainer(&args, mlp, (&train_set, &test_set), config)?;
    trainer.set_epochs_done(settings.epochs_before);
    trainer.stop_on(stop.clone());
    if let Some(path) = &args.resume {
        restore_optimizer(trainer.as_mut(), path, mlp, &config, settings.epochs_before)?;
    }
    eprintln!(
        "training {:?} {}→{} {} with {} (lr {}) on {} ({} train / {} test samples), adapter: {adapter}",
        mlp.sizes(),
        mlp.layers[0].activation.name(),
        mlp.layers[mlp.layers.len() - 1].activation.name(),
        mlp.loss.name(),
        config.optimizer.optimizer.name(),
        config.optimizer.learning_rate,
        settings.dataset.name(),
        train_set.len(),
        test_set.len()
    );
    let mut history = History::default();
    let ended = train_epochs(
        &args,
        &console,
        trainer.as_mut(),
        &settings,
        metrics.as_mut(),
        &mut history,
        train_set.len(),
    );
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
    finish(
        &args,
        &console,
        trainer.as_ref(),
        &settings,
        &history,
        &ending,
    )?;
    match interrupted {
        Some(error) => Err(error.context(match &args.save {
            Some(path) => format!("{} holds the last completed epoch", path.display()),
            None => "nothing was saved (no --save)".to_string(),
        })),
        None => Ok(()),
    }
}

/// The trainer the options ask for, on the GPU or the CPU reference, and how to name where it runs.
fn build_trainer<'a>(
    args: &TrainArgs,
    mlp: &Mlp,
    (train_set, test_set): (&'a Dataset, &'a Dataset),
    config: TrainConfig,
) -> Result<(Box<dyn Trainer + 'a>, String)> {
    if args.cpu {
        let trainer = CpuTrainer::new(mlp, train_set, Some(test_set), config)?;
        return Ok((Box::new(trainer), CPU_ADAPTER.to_string()));
    }
    let gpu = open_gpu(&args.adapter)?;
    let mut trainer = GpuTrainer::new(&gpu, mlp, train_set, Some(test_set), config)?;
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

/// Checks every output path before any work is done, and opens the metrics file.
fn check_outputs(args: &TrainArgs) -> Result<Option<File>> {
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
    args.metrics
        .as_ref()
        .map(|path| {
            File::create(path)
                .with_context(|| format!("--metrics {}: cannot create it", path.display()))
        })
        .transpose()
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

/// Trains `args.epochs` epochs, printing, logging and saving after each; stops early with the
/// error of an interruption, `history` holding the epochs that finished.
fn train_epochs(
    args: &TrainArgs,
    console: &Console,
    trainer: &mut dyn Trainer,
    settings: &Settings,
    mut metrics: Option<&mut File>,
    history: &mut History,
    train_len: usize,
) -> Result<()> {
    for epoch in 1..=args.epochs {
        let bar = progress_bar(epoch, args.epochs, train_len);
        let report = trainer.train_epoch(&mut |p| {
            bar.set_position(p.samples as u64);
            bar.set_message(format!("{:.4}", p.running_loss));
        });
        bar.finish_and_clear();
        let report = report?;
        let eval = trainer.evaluate(Split::Test)?;
        history.samples += report.samples;
        history.train_seconds += report.seconds;
        let total_epochs = settings.epochs_before + epoch;
        console.line(format_args!(
            "epoch {total_epochs:>3}  train loss {:.5}  test loss {:.5}  test accuracy {:6.2}%  {:>8.0} samples/s  {:.1} s",
            report.train_loss,
            eval.loss,
            eval.accuracy().unwrap_or(f64::NAN) * 100.0,
            report.samples_per_second(),
            report.seconds
        ))?;
        if let Some(file) = metrics.as_mut() {
            let line = json!({
                "epoch": total_epochs, "train_loss": report.train_loss, "test_loss": eval.loss,
                "test_accuracy": eval.accuracy(), "seconds": report.seconds, "samples_per_s": report.samples_per_second(),
            });
            writeln!(file, "{line}").context("writing the metrics file")?;
        }
        history.points.push(EpochPoint {
            epoch: total_epochs,
            train_loss: report.train_loss,
            test_loss: eval.loss,
            test_accuracy: eval.accuracy().unwrap_or(f64::NAN),
        });
        history.evaluation = Some(eval);
        if let Some(path) = &args.save {
            save(trainer, path, settings, total_epochs)?;
        }
    }
    Ok(())
}

/// Saves the model and, beside it, the optimizer state, after `epochs` epochs in all.
fn save(trainer: &mut dyn Trainer, path: &Path, settings: &Settings, epochs: usize) -> Result<()> {
    let info = CheckpointInfo {
        epochs,
        extra: recorded(settings)
            .map(|(key, value)| (key.to_string(), value))
            .into(),
    };
    // The optimizer state first: a crash between the two files leaves a model whose saved state
    // is stale, which --resume detects and ignores, never a model without weights.
    let state = trainer.optimizer_state()?;
    let state_path = checkpoint::optimizer_path(path);
    checkpoint::save_optimizer(&state_path, &state, &settings.optimizer, epochs)?;
    checkpoint::save(path, &trainer.to_mlp()?, &info)?;
    Ok(())
}

/// What ends a run, complete or interrupted: the confusion matrix, the profile, the plot and the
/// `--json` line of the epochs that finished.
fn finish(
    args: &TrainArgs,
    console: &Console,
    trainer: &dyn Trainer,
    settings: &Settings,
    history: &History,
    ending: &Ending,
) -> Result<()> {
    let Some(evaluation) = &history.evaluation else {
        return Ok(());
    };
    if let Some(path) = &args.save {
        eprintln!("saved {}", path.display());
    }
    if let Some(confusion) = evaluation.confusion() {
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
        console.json(&summary(
            settings,
            history,
            evaluation,
            ending,
            profile.as_ref(),
        ))?;
    }
    Ok(())
}

/// The `--json` line.
fn summary(
    settings: &Settings,
    history: &History,
    evaluation: &Evaluation,
    ending: &Ending,
    profile: Option<&Profile>,
) -> serde_json::Value {
    let epochs = history
        .points
        .last()
        .map_or(settings.epochs_before, |p| p.epoch);
    json!({
        "test_accuracy": evaluation.accuracy(), "test_loss": evaluation.loss,
        "train_loss": history.points.last().map(|p| p.train_loss),
        "epochs": epochs, "seconds": ending.start_time.elapsed().as_secs_f64(),
        "samples_per_s": history.samples as f64 / history.train_seconds.max(1e-9),
        "adapter": ending.adapter, "dataset": settings.dataset.name(),
        "interrupted": ending.interrupted,
        "profile": profile.map(profile_json),
    })
}
