//! `wgpu-mlp train`: trains a network on the GPU (or the CPU reference), printing a line per
//! epoch, and saves, resumes, logs and plots as asked. Ctrl-C or SIGTERM stops it after the step
//! in progress, keeping the last completed save and printing the summary so far (exit status 130).

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;

use wgpu_mlp::checkpoint;
use wgpu_mlp::files::{check_can_write, write_atomically};
use wgpu_mlp::optim::Optimizer;
use wgpu_mlp::plot::{EpochPoint, training_curves_svg};
use wgpu_mlp::run::{Device, EpochOutcome, Resume, Run, ScheduleName, TrainSpec};
use wgpu_mlp::{Activation, Init, Loss};

use crate::augment::AugmentArgs;
use crate::common::{
    Console, hidden_activation, interrupt_flag, is_interruption, open_gpu,
    output_activation_option, parse_sizes, print_confusion, progress_bar,
};
use crate::dataset::DataArgs;

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
    /// Train on the CPU instead of the GPU.
    #[arg(long)]
    pub cpu: bool,
    /// Train on the CPU with the ndarray reference (the executable spec, slower) instead of the
    /// GPU.
    #[arg(long, conflicts_with = "cpu")]
    pub cpu_reference: bool,
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

/// The spec the options describe.
fn spec(args: &TrainArgs) -> Result<TrainSpec> {
    Ok(TrainSpec {
        data: args.data.data()?,
        data_options: args.data.options(),
        layers: args.layers.as_ref().map(|s| s.0.clone()),
        hidden_sizes: args.hidden_sizes.as_ref().map(|s| s.0.clone()),
        hidden: args.hidden,
        leaky_slope: args.leaky_slope,
        output: args.output,
        loss: args.loss,
        init: args.init,
        tutorial: args.tutorial,
        optimizer: args.optimizer,
        lr: args.lr,
        weight_decay: args.weight_decay,
        label_smoothing: args.label_smoothing,
        clip_norm: args.clip_norm,
        dropout: args.dropout.as_ref().map(|r| r.0.clone()),
        input_dropout: args.input_dropout,
        augment: args.augment.augmentation(None)?,
        image_shape: args.augment.image_shape,
        batch: args.batch,
        epochs: args.epochs,
        lr_schedule: args.lr_schedule,
        lr_step: args.lr_step,
        lr_gamma: args.lr_gamma,
        warmup: args.warmup,
        early_stopping: args.early_stopping,
        tol: None,
        seed: args.seed,
        shuffle: None,
        device: match (args.cpu, args.cpu_reference) {
            (_, true) => Device::CpuReference,
            (true, false) => Device::Cpu,
            (false, false) => Device::Gpu(args.adapter.parse()?),
        },
        placement: Default::default(),
        profile: args.profile,
        resume: args.resume.clone().map(Resume::File),
    })
}

pub fn run(args: TrainArgs) -> Result<()> {
    if (args.cpu || args.cpu_reference) && args.profile.is_some() {
        bail!("--profile times GPU kernels with timestamp queries; it cannot be used with --cpu");
    }
    check_outputs(&args)?;
    let console = Console::new(args.json);
    let stop = interrupt_flag()?;
    let spec = spec(&args)?;
    let gpu = match spec.device {
        Device::Gpu(_) => Some(open_gpu(&args.adapter)?),
        Device::Cpu | Device::CpuReference => None,
    };
    let mut run = Run::with_gpu(spec, gpu.as_ref())?;
    for note in run.take_notes() {
        eprintln!("{note}");
    }
    if args.save_best && run.data().validation.is_none() {
        bail!(
            "--early-stopping and --save-best watch the validation loss: hold out part of the \
             training data with --validation FRACTION"
        );
    }
    run.stop_on(stop);
    if let Some(path) = &args.save {
        run.save_every_epoch(path.clone(), args.save_best);
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
    say_training(&run);
    let ended = train_epochs(&mut run, &console, metrics.as_mut());
    let interrupted = match ended {
        Ok(()) => None,
        Err(error) if is_interruption(&error) => Some(error),
        Err(error) => return Err(error),
    };
    finish(&args, &mut run, &console)?;
    match interrupted {
        Some(error) => Err(error.context(match &args.save {
            Some(path) => format!("{} holds the last completed epoch", path.display()),
            None => "nothing was saved (no --save)".to_string(),
        })),
        None => Ok(()),
    }
}

/// The line that says what trains, on what, where.
fn say_training(run: &Run) {
    let (settings, data) = (run.settings(), run.data());
    let mlp = &settings.mlp;
    let mut counts = vec![format!("{} train", data.train.len())];
    counts.extend(
        data.validation
            .as_ref()
            .map(|v| format!("{} validation", v.len())),
    );
    counts.extend(data.test.as_ref().map(|t| format!("{} test", t.len())));
    eprintln!(
        "training {:?} {}→{} {} with {} (lr {}) on {} ({} samples), adapter: {}",
        mlp.sizes(),
        mlp.layers[0].activation.name(),
        mlp.layers[mlp.layers.len() - 1].activation.name(),
        mlp.loss.name(),
        settings.optimizer.optimizer.name(),
        settings.optimizer.learning_rate,
        data.source.name(),
        counts.join(" / "),
        run.adapter(),
    );
}

/// Trains the run's epochs, printing each line with a progress bar, logging and saving after
/// each; stops with the error of an interruption, the run's history holding the epochs that
/// finished.
fn train_epochs(run: &mut Run, console: &Console, mut metrics: Option<&mut File>) -> Result<()> {
    let epochs = run.settings().epochs;
    while !run.is_done() {
        let epoch = run.history().epochs.len() + 1;
        let bar = progress_bar(epoch, epochs, run.data().train.len());
        let outcome = run.train_epoch_with(&mut |p| {
            bar.set_position(p.samples as u64);
            bar.set_message(format!("{:.4}", p.running_loss));
        });
        bar.finish_and_clear();
        let outcome = outcome?;
        console.line(outcome.line())?;
        if let Some(file) = metrics.as_deref_mut() {
            writeln!(file, "{}", outcome.json()).context("writing the metrics file")?;
        }
        for note in run.take_notes() {
            eprintln!("{note}");
        }
    }
    Ok(())
}

/// What ends a run, complete or interrupted: the confusion matrix, the profile, the plot
/// and the `--json` line of the epochs that finished.
fn finish(args: &TrainArgs, run: &mut Run, console: &Console) -> Result<()> {
    let history = run.history();
    let Some(last) = history.epochs.last() else {
        return Ok(());
    };
    let Some(held_out) = last.test.as_ref().or(last.validation.as_ref()) else {
        return Ok(());
    };
    if let Some(path) = &args.save {
        match (args.save_best, history.best_epoch()) {
            (true, Some(best)) => eprintln!("saved {} (epoch {best}, the best)", path.display()),
            _ => eprintln!("saved {}", path.display()),
        }
    }
    if let Some(confusion) = held_out.confusion() {
        print_confusion(console, confusion)?;
    }
    if let Some(profile) = &run.profile() {
        console.line(profile)?;
    }
    if let Some(path) = &args.plot {
        let points: Vec<EpochPoint> = history.epochs.iter().filter_map(point).collect();
        write_atomically(path, training_curves_svg(&points).as_bytes())?;
        eprintln!("plotted {}", path.display());
    }
    if args.json {
        console.json(&run.summary().to_json())?;
    }
    Ok(())
}

/// An epoch's point on the training curves: the held-out loss and accuracy (R² for
/// regression), the test set's where there is one.
fn point(outcome: &EpochOutcome) -> Option<EpochPoint> {
    let held_out = outcome.test.as_ref().or(outcome.validation.as_ref())?;
    Some(EpochPoint {
        epoch: outcome.report.epoch,
        train_loss: outcome.report.train_loss,
        test_loss: held_out.loss,
        test_accuracy: held_out
            .accuracy()
            .or(held_out.r2())
            .unwrap_or(0.0)
            .max(0.0),
    })
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
