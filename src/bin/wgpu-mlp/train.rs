//! `wgpu-mlp train`: trains a network on the GPU (or the CPU reference), printing a line per
//! epoch, and saves, resumes, logs and plots as asked.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser};
use serde_json::json;

use wgpu_mlp::checkpoint::{self, CheckpointInfo};
use wgpu_mlp::files::write_atomically;
use wgpu_mlp::gpu::profile::Profile;
use wgpu_mlp::optim::{Optimizer, OptimizerConfig};
use wgpu_mlp::plot::{EpochPoint, training_curves_svg};
use wgpu_mlp::train::{CpuTrainer, Evaluation, GpuTrainer, TrainConfig, Trainer};
use wgpu_mlp::{Activation, Init, Loss, Mlp};

use crate::common::{
    CPU_ADAPTER, DEFAULT_SEED, DataArgs, open_gpu, print_confusion, profile_json, progress_bar,
};

#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Layer sizes, inputs first.
    #[arg(long, value_delimiter = ',', default_value = "784,128,10")]
    layers: Vec<usize>,
    /// Activation of the hidden layers.
    #[arg(long, value_enum, default_value = "sigmoid")]
    hidden: Activation,
    /// Activation of the output layer.
    #[arg(long, value_enum, default_value = "sigmoid")]
    output: Activation,
    /// Loss.
    #[arg(long, value_enum, default_value = "mse")]
    loss: Loss,
    /// Weight initialisation (auto: He for ReLU layers, Xavier otherwise).
    #[arg(long, value_enum, default_value = "auto")]
    init: Init,
    /// Optimizer (momentum: μ = 0.9; adam: β = 0.9, 0.999, ε = 1e-8).
    #[arg(long, value_enum, default_value = "sgd")]
    optimizer: Optimizer,
    /// Learning rate.
    #[arg(long, default_value_t = 0.5)]
    lr: f32,
    /// L2 weight decay.
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f32,
    /// Samples per step.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Epochs to train (more epochs on top of a --resume'd model).
    #[arg(long, default_value_t = 5)]
    epochs: usize,
    /// Seed of the initial weights, the shuffles and the synthetic data [default: 42, or the
    /// seed saved with a --resume'd model].
    #[arg(long)]
    seed: Option<u64>,
    /// Adapter: auto, software, or part of an adapter's name.
    #[arg(long, default_value = "auto")]
    adapter: String,
    /// Train with the CPU reference instead of the GPU.
    #[arg(long)]
    cpu: bool,
    /// Save the model here (safetensors) after every epoch.
    #[arg(long, value_name = "FILE")]
    save: Option<PathBuf>,
    /// Continue from a saved model (its architecture replaces --layers/--hidden/--output/--loss).
    #[arg(long, value_name = "FILE")]
    resume: Option<PathBuf>,
    /// Write one JSON line per epoch here.
    #[arg(long, value_name = "FILE")]
    metrics: Option<PathBuf>,
    /// Draw loss and accuracy curves here (SVG).
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
    /// Time the first STEPS training steps kernel by kernel with timestamp queries (they train
    /// as usual) and print where a step's GPU time goes.
    #[arg(long, value_name = "STEPS", num_args = 0..=1, default_missing_value = "20")]
    profile: Option<usize>,
    /// Print a one-line JSON summary at the end.
    #[arg(long)]
    json: bool,
}

impl TrainArgs {
    /// The options of a bare `wgpu-mlp` with no command: every default.
    pub fn defaults() -> clap::error::Result<Self> {
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            train: TrainArgs,
        }
        Wrapper::try_parse_from(["train"]).map(|w| w.train)
    }

    fn optimizer_config(&self) -> OptimizerConfig {
        OptimizerConfig {
            optimizer: self.optimizer,
            learning_rate: self.lr,
            weight_decay: self.weight_decay,
        }
    }
}

/// The model to train: a new one from the options, or the one `--resume` names.
struct Start {
    mlp: Mlp,
    epochs_before: usize,
    seed: u64,
}

impl Start {
    fn from_args(args: &TrainArgs) -> Result<Start> {
        let Some(path) = &args.resume else {
            let seed = args.seed.unwrap_or(DEFAULT_SEED);
            let (layers, init) = (&args.layers, args.init);
            let mlp = Mlp::with_init(layers, args.hidden, args.output, args.loss, init, seed)?;
            return Ok(Start {
                mlp,
                epochs_before: 0,
                seed,
            });
        };
        let (mlp, info) = checkpoint::load(path)?;
        let saved_seed = info.extra.get("seed").and_then(|s| s.parse().ok());
        let seed = args.seed.or(saved_seed).unwrap_or(DEFAULT_SEED);
        eprintln!(
            "resuming {} ({:?}, {} epochs done, seed {seed})",
            path.display(),
            mlp.sizes(),
            info.epochs
        );
        Ok(Start {
            mlp,
            epochs_before: info.epochs,
            seed,
        })
    }
}

/// What the epochs have produced so far.
#[derive(Default)]
struct Progress {
    history: Vec<EpochPoint>,
    samples: usize,
    train_seconds: f64,
    evaluation: Option<Evaluation>,
}

pub fn run(args: TrainArgs) -> Result<()> {
    let start_time = Instant::now();
    let start = Start::from_args(&args)?;
    let mlp = &start.mlp;
    mlp.validate()
        .context("the network options do not describe a model that can be trained")?;
    if args.epochs == 0 {
        bail!("--epochs 0: nothing to train (give at least 1)");
    }
    if args.cpu && args.profile.is_some() {
        bail!("--profile times GPU kernels with timestamp queries; it cannot be used with --cpu");
    }
    let (train_set, test_set) = args.data.load(start.seed)?;
    let config = TrainConfig {
        optimizer: args.optimizer_config(),
        batch_size: args.batch,
        seed: start.seed,
    };
    let (mut trainer, adapter): (Box<dyn Trainer + '_>, String) = if args.cpu {
        let trainer = CpuTrainer::new(mlp, &train_set, Some(&test_set), config)?;
        (Box::new(trainer), CPU_ADAPTER.to_string())
    } else {
        let gpu = open_gpu(&args.adapter)?;
        let mut trainer = GpuTrainer::new(&gpu, mlp, &train_set, Some(&test_set), config)?;
        if let Some(steps) = args.profile {
            trainer.profile_next_steps(steps)?;
        }
        (Box::new(trainer), gpu.adapter_description())
    };
    trainer.set_epochs_done(start.epochs_before);
    if let Some(path) = &args.resume {
        restore_optimizer(trainer.as_mut(), path, mlp, &config, start.epochs_before)?;
    }
    eprintln!(
        "training {:?} {}→{} {} with {} (lr {}) on {} ({} train / {} test samples), adapter: {adapter}",
        mlp.sizes(),
        mlp.layers[0].activation.name(),
        mlp.layers[mlp.layers.len() - 1].activation.name(),
        mlp.loss.name(),
        config.optimizer.optimizer.name(),
        config.optimizer.learning_rate,
        args.data.dataset.name(),
        train_set.len(),
        test_set.len()
    );
    let progress = train_epochs(&args, trainer.as_mut(), &start, &config, train_set.len())?;
    let evaluation = progress.evaluation.as_ref().context("no epoch ran")?;
    if let Some(path) = &args.save {
        eprintln!("saved {}", path.display());
    }
    print_confusion(&evaluation.confusion);
    let profile = trainer.profile();
    if let Some(profile) = &profile {
        println!("{profile}");
    }
    if let Some(path) = &args.plot {
        write_atomically(path, training_curves_svg(&progress.history).as_bytes())?;
        eprintln!("plotted {}", path.display());
    }
    if args.json {
        print_summary(&args, &start, &progress, &adapter, profile.as_ref(), start_time);
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

/// Trains `args.epochs` epochs, printing, logging and saving after each.
fn train_epochs(
    args: &TrainArgs,
    trainer: &mut dyn Trainer,
    start: &Start,
    config: &TrainConfig,
    train_len: usize,
) -> Result<Progress> {
    let mut metrics = match &args.metrics {
        Some(path) => {
            Some(File::create(path).with_context(|| format!("creating {}", path.display()))?)
        }
        None => None,
    };
    let mut progress = Progress::default();
    for epoch in 1..=args.epochs {
        let bar = progress_bar(epoch, args.epochs, train_len);
        let report = trainer.train_epoch(&mut |p| {
            bar.set_position(p.samples as u64);
            bar.set_message(format!("{:.4}", p.running_loss));
        });
        bar.finish_and_clear();
        let report = report?;
        let eval = trainer.evaluate()?;
        progress.samples += report.samples;
        progress.train_seconds += report.seconds;
        let total_epochs = start.epochs_before + epoch;
        println!(
            "epoch {total_epochs:>3}  train loss {:.5}  test loss {:.5}  test accuracy {:6.2}%  {:>8.0} samples/s  {:.1} s",
            report.train_loss,
            eval.loss,
            eval.accuracy * 100.0,
            report.samples_per_second(),
            report.seconds
        );
        if let Some(file) = metrics.as_mut() {
            let line = json!({
                "epoch": total_epochs, "train_loss": report.train_loss, "test_loss": eval.loss,
                "test_accuracy": eval.accuracy, "seconds": report.seconds, "samples_per_s": report.samples_per_second(),
            });
            writeln!(file, "{line}").context("writing the metrics file")?;
        }
        progress.history.push(EpochPoint {
            epoch: total_epochs,
            train_loss: report.train_loss,
            test_loss: eval.loss,
            test_accuracy: eval.accuracy,
        });
        if let Some(path) = &args.save {
            save(args, trainer, path, start.seed, config, total_epochs)?;
        }
        progress.evaluation = Some(eval);
    }
    Ok(progress)
}

/// Saves the model and, beside it, the optimizer state, after `epochs` epochs in all.
fn save(
    args: &TrainArgs,
    trainer: &mut dyn Trainer,
    path: &Path,
    seed: u64,
    config: &TrainConfig,
    epochs: usize,
) -> Result<()> {
    let extra = [
        ("optimizer", config.optimizer.optimizer.name().to_string()),
        ("dataset", args.data.dataset.name().to_string()),
        ("seed", seed.to_string()),
    ];
    let info = CheckpointInfo {
        epochs,
        extra: extra.map(|(k, v)| (k.to_string(), v)).into(),
    };
    // The optimizer state first: a crash between the two files leaves a model whose saved state
    // is stale, which --resume detects and ignores, never a model without weights.
    let state = trainer.optimizer_state()?;
    let state_path = checkpoint::optimizer_path(path);
    checkpoint::save_optimizer(&state_path, &state, &config.optimizer, epochs)?;
    checkpoint::save(path, &trainer.to_mlp()?, &info)?;
    Ok(())
}

/// The `--json` line.
fn print_summary(
    args: &TrainArgs,
    start: &Start,
    progress: &Progress,
    adapter: &str,
    profile: Option<&Profile>,
    start_time: Instant,
) {
    let Some(evaluation) = &progress.evaluation else {
        return;
    };
    let summary = json!({
        "test_accuracy": evaluation.accuracy, "test_loss": evaluation.loss,
        "train_loss": progress.history.last().map(|p| p.train_loss),
        "epochs": start.epochs_before + args.epochs, "seconds": start_time.elapsed().as_secs_f64(),
        "samples_per_s": progress.samples as f64 / progress.train_seconds.max(1e-9), "adapter": adapter,
        "dataset": args.data.dataset.name(),
        "profile": profile.map(profile_json),
    });
    println!("{summary}");
}
