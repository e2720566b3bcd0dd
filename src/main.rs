//! `wgpu-mlp`: train, evaluate and use multi-layer perceptrons on any GPU from the command line.
//!
//! With no subcommand it trains the default network on the built-in synthetic data set, so that
//! `cargo run --release` works offline on a fresh machine.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use wgpu_mlp::bench::{GpuBenchOptions, Workload, bench_cpu, bench_gpu_with};
use wgpu_mlp::checkpoint::{self, CheckpointInfo};
use wgpu_mlp::data::{self, Dataset, DatasetKind, download, image, synthetic};
use wgpu_mlp::gpu::context::{available_adapters, describe_adapter};
use wgpu_mlp::gpu::kernels::MatmulStrategy;
use wgpu_mlp::gpu::profile::Profile;
use wgpu_mlp::ndarray::Array2;
use wgpu_mlp::optim::{Optimizer, OptimizerConfig, OptimizerState};
use wgpu_mlp::plot::{EpochPoint, training_curves_svg};
use wgpu_mlp::rng::Rng;
use wgpu_mlp::train::{
    CpuTrainer, EpochReport, Evaluation, GpuTrainer, Progress, TrainConfig, argmax, evaluate_cpu,
};
use wgpu_mlp::{Activation, AdapterChoice, Fusion, Gpu, GpuMlp, Init, Loss, Mlp, reference};

#[derive(Parser, Debug)]
#[command(
    name = "wgpu-mlp",
    version,
    about = "Train multi-layer perceptrons with backpropagation on any GPU (Vulkan, Metal, DX12)."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train a network (the default command).
    Train(TrainArgs),
    /// Evaluate a saved model on a data set's test images.
    Eval(EvalArgs),
    /// Classify images (PNG or PGM of any size, scaled to the model's input).
    Predict(PredictArgs),
    /// Check GPU gradients against the CPU reference, and the CPU reference against finite differences.
    Gradcheck(GradcheckArgs),
    /// List every adapter wgpu can see.
    Adapters,
    /// Download MNIST or Fashion-MNIST and verify their checksums.
    Download(DownloadArgs),
    /// Measure training throughput on a fixed workload.
    Bench(BenchArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum WorkloadArg {
    /// 784-128-10 sigmoid, MSE, batch 64, SGD 0.5.
    #[value(name = "W1", alias = "w1")]
    W1,
    /// 784-1024-1024-10 ReLU/softmax, cross-entropy, batch 256, SGD 0.05.
    #[value(name = "W2", alias = "w2")]
    W2,
}

#[derive(Args, Debug)]
struct BenchArgs {
    /// The workload.
    #[arg(long, value_enum, default_value = "W1")]
    workload: WorkloadArg,
    /// Adapter: auto, software, or part of an adapter's name.
    #[arg(long, default_value = "auto")]
    adapter: String,
    /// Benchmark the CPU reference instead of the GPU.
    #[arg(long)]
    cpu: bool,
    /// Samples in the timed region (after the first step and a warm-up).
    #[arg(long, default_value_t = 12_800)]
    samples: usize,
    /// Then time STEPS more steps kernel by kernel with timestamp queries, and print where a
    /// step's GPU time goes.
    #[arg(long, value_name = "STEPS", num_args = 0..=1, default_missing_value = "20")]
    profile: Option<usize>,
    /// Run bias, activation and ⊙g′ as kernels of their own instead of in the matmul
    /// epilogues, to measure what fusing them saves.
    #[arg(long)]
    unfused: bool,
    /// The matmul kernel: the adapter's choice, or one forced, to compare them.
    #[arg(long, value_enum, default_value = "auto")]
    matmul: MatmulArg,
    /// Print the result as one JSON line.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum MatmulArg {
    /// What the adapter gets: shared-memory tiles on GPUs, register blocks on CPU adapters
    /// (shuffled where they have subgroups).
    Auto,
    /// Shared-memory tiles of vec4s, the tile chosen per product.
    Tiled,
    /// Register blocks with no barrier.
    Register,
    /// Register blocks with A passed between lanes by subgroup shuffles.
    Shuffled,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum DatasetArg {
    Mnist,
    FashionMnist,
    Synthetic,
}

impl From<DatasetArg> for DatasetKind {
    fn from(arg: DatasetArg) -> Self {
        match arg {
            DatasetArg::Mnist => DatasetKind::Mnist,
            DatasetArg::FashionMnist => DatasetKind::FashionMnist,
            DatasetArg::Synthetic => DatasetKind::Synthetic,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ActivationArg {
    Identity,
    Sigmoid,
    Relu,
    Tanh,
    Softmax,
}

impl From<ActivationArg> for Activation {
    fn from(arg: ActivationArg) -> Self {
        match arg {
            ActivationArg::Identity => Activation::Identity,
            ActivationArg::Sigmoid => Activation::Sigmoid,
            ActivationArg::Relu => Activation::Relu,
            ActivationArg::Tanh => Activation::Tanh,
            ActivationArg::Softmax => Activation::Softmax,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LossArg {
    Mse,
    CrossEntropy,
    BinaryCrossEntropy,
}

impl From<LossArg> for Loss {
    fn from(arg: LossArg) -> Self {
        match arg {
            LossArg::Mse => Loss::Mse,
            LossArg::CrossEntropy => Loss::CrossEntropy,
            LossArg::BinaryCrossEntropy => Loss::BinaryCrossEntropy,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum OptimizerArg {
    Sgd,
    Momentum,
    Adam,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum InitArg {
    Auto,
    Xavier,
    He,
}

/// Where the data comes from.
#[derive(Args, Debug, Clone)]
struct DataArgs {
    /// Data set.
    #[arg(long, value_enum, default_value = "synthetic")]
    dataset: DatasetArg,
    /// Folder with the IDX files (.gz or raw); default: $WGPU_MLP_DATA, ./data/<dataset>, and for
    /// Fashion-MNIST /usr/share/datasets/fashion-mnist.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Training samples to use (all when omitted; the synthetic set makes this many, default 10000).
    #[arg(long, value_name = "N")]
    train_size: Option<usize>,
    /// Test samples to use (all when omitted; the synthetic set makes this many, default 2000).
    #[arg(long, value_name = "N")]
    test_size: Option<usize>,
}

#[derive(Args, Debug)]
struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Layer sizes, inputs first.
    #[arg(long, value_delimiter = ',', default_value = "784,128,10")]
    layers: Vec<usize>,
    /// Activation of the hidden layers.
    #[arg(long, value_enum, default_value = "sigmoid")]
    hidden: ActivationArg,
    /// Activation of the output layer.
    #[arg(long, value_enum, default_value = "sigmoid")]
    output: ActivationArg,
    /// Loss.
    #[arg(long, value_enum, default_value = "mse")]
    loss: LossArg,
    /// Weight initialisation (auto: He for ReLU layers, Xavier otherwise).
    #[arg(long, value_enum, default_value = "auto")]
    init: InitArg,
    /// Optimizer (momentum: μ = 0.9; adam: β = 0.9, 0.999, ε = 1e-8).
    #[arg(long, value_enum, default_value = "sgd")]
    optimizer: OptimizerArg,
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

#[derive(Args, Debug)]
struct EvalArgs {
    /// The model file.
    #[arg(long, value_name = "FILE")]
    model: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// Samples per batch.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Adapter: auto, software, or part of an adapter's name.
    #[arg(long, default_value = "auto")]
    adapter: String,
    /// Evaluate with the CPU reference instead of the GPU.
    #[arg(long)]
    cpu: bool,
    /// Print the result as one JSON line.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct PredictArgs {
    /// The model file.
    #[arg(long, value_name = "FILE")]
    model: PathBuf,
    /// Images to classify.
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<PathBuf>,
}

#[derive(Args, Debug)]
struct GradcheckArgs {
    /// Layer sizes, inputs first.
    #[arg(long, value_delimiter = ',', default_value = "784,128,10")]
    layers: Vec<usize>,
    /// Activation of the hidden layers.
    #[arg(long, value_enum, default_value = "sigmoid")]
    hidden: ActivationArg,
    /// Loss (the output layer follows it: softmax for cross-entropy, sigmoid otherwise).
    #[arg(long, value_enum, default_value = "mse")]
    loss: LossArg,
    /// Rows in the random batch.
    #[arg(long, default_value_t = 7)]
    batch: usize,
    /// Parameters per layer checked by finite differences (sampled evenly).
    #[arg(long, default_value_t = 200)]
    samples: usize,
    /// Seed of the model and the batch.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Adapter: auto, software, or part of an adapter's name.
    #[arg(long, default_value = "auto")]
    adapter: String,
}

#[derive(Args, Debug)]
struct DownloadArgs {
    /// Data set to fetch.
    #[arg(long, value_enum, default_value = "mnist")]
    dataset: DatasetArg,
    /// Folder to put the files in (default: ./data/<dataset>).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// A mirror (URL prefix) to try; repeat for several. Default: the data set's usual mirrors.
    #[arg(long, value_name = "URL")]
    mirror: Vec<String>,
}

fn main() {
    restore_sigpipe();
    let cli = Cli::parse();
    let result = match cli.command {
        None => TrainArgs::try_parse_from(["train"])
            .map_err(anyhow::Error::from)
            .and_then(train),
        Some(Command::Train(args)) => train(args),
        Some(Command::Eval(args)) => eval(args),
        Some(Command::Predict(args)) => predict(args),
        Some(Command::Gradcheck(args)) => gradcheck(args),
        Some(Command::Adapters) => adapters(),
        Some(Command::Download(args)) => download_command(args),
        Some(Command::Bench(args)) => bench(args),
    };
    if let Err(error) = result {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

/// Rust ignores SIGPIPE, so a write to a closed pipe (`wgpu-mlp adapters | head -1`) fails and
/// `println!` panics. Command-line tools instead end when the reader has gone; the signal's
/// default action does that. Saved files are unaffected: they are written whole and renamed.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in `main`, before any thread exists; SIG_DFL is a valid action.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

impl TrainArgs {
    fn try_parse_from<const N: usize>(args: [&str; N]) -> clap::error::Result<Self> {
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            train: TrainArgs,
        }
        Wrapper::try_parse_from(args).map(|w| w.train)
    }
}

/// The training and test sets the options select.
fn load_data(args: &DataArgs, seed: u64) -> Result<(Dataset, Dataset)> {
    let kind = DatasetKind::from(args.dataset);
    let (train, test) = if kind == DatasetKind::Synthetic {
        synthetic::generate(
            args.train_size.unwrap_or(10_000),
            args.test_size.unwrap_or(2_000),
            seed,
        )
    } else {
        let dir = data::find_data_dir(kind, args.data.as_deref())?;
        let (train, test) = data::load(&dir)?;
        (
            args.train_size.map_or(train.clone(), |n| train.take(n)),
            args.test_size.map_or(test.clone(), |n| test.take(n)),
        )
    };
    Ok((train, test))
}

fn open_gpu(adapter: &str) -> Result<Gpu> {
    let choice: AdapterChoice = adapter.parse().unwrap_or_default();
    Ok(Gpu::new(choice)?)
}

fn optimizer_config(args: &TrainArgs) -> OptimizerConfig {
    let optimizer = match args.optimizer {
        OptimizerArg::Sgd => Optimizer::Sgd,
        OptimizerArg::Momentum => Optimizer::MOMENTUM,
        OptimizerArg::Adam => Optimizer::ADAM,
    };
    OptimizerConfig {
        optimizer,
        learning_rate: args.lr,
        weight_decay: args.weight_decay,
    }
}

/// A trainer on either side.
enum Trainer<'a> {
    Gpu(Box<GpuTrainer>),
    Cpu(CpuTrainer<'a>),
}

impl Trainer<'_> {
    fn train_epoch(&mut self, progress: impl FnMut(Progress)) -> wgpu_mlp::Result<EpochReport> {
        match self {
            Trainer::Gpu(t) => t.train_epoch(progress),
            Trainer::Cpu(t) => t.train_epoch(progress),
        }
    }

    fn evaluate(&mut self) -> wgpu_mlp::Result<Evaluation> {
        match self {
            Trainer::Gpu(t) => t.evaluate(),
            Trainer::Cpu(t) => t.evaluate(),
        }
    }

    fn set_epochs_done(&mut self, epochs: usize) {
        match self {
            Trainer::Gpu(t) => t.set_epochs_done(epochs),
            Trainer::Cpu(t) => t.set_epochs_done(epochs),
        }
    }

    /// The model as trained so far (downloaded from the GPU on that path).
    fn trained_mlp(&mut self) -> wgpu_mlp::Result<Mlp> {
        match self {
            Trainer::Gpu(t) => t.to_mlp(),
            Trainer::Cpu(t) => Ok(t.to_mlp()),
        }
    }

    fn optimizer_state(&mut self) -> wgpu_mlp::Result<OptimizerState> {
        match self {
            Trainer::Gpu(t) => t.optimizer_state(),
            Trainer::Cpu(t) => Ok(t.optimizer_state()),
        }
    }

    fn set_optimizer_state(&mut self, state: &OptimizerState) -> wgpu_mlp::Result<()> {
        match self {
            Trainer::Gpu(t) => t.set_optimizer_state(state),
            Trainer::Cpu(t) => t.set_optimizer_state(state),
        }
    }
}

fn progress_bar(epoch: usize, epochs: usize, total: usize) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "epoch {prefix} [{bar:30}] {pos}/{len} {per_sec} loss {msg} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_prefix(format!("{epoch}/{epochs}"));
    bar
}

fn train(args: TrainArgs) -> Result<()> {
    let start = Instant::now();
    const DEFAULT_SEED: u64 = 42;
    let (mlp, epochs_before, seed) = match &args.resume {
        Some(path) => {
            let (mlp, info) = checkpoint::load(path)?;
            let saved_seed = info.extra.get("seed").and_then(|s| s.parse().ok());
            let seed = args.seed.or(saved_seed).unwrap_or(DEFAULT_SEED);
            eprintln!(
                "resuming {} ({:?}, {} epochs done, seed {seed})",
                path.display(),
                mlp.sizes(),
                info.epochs
            );
            (mlp, info.epochs, seed)
        }
        None => {
            let init = match args.init {
                InitArg::Auto => Init::Auto,
                InitArg::Xavier => Init::Xavier,
                InitArg::He => Init::He,
            };
            let seed = args.seed.unwrap_or(DEFAULT_SEED);
            let mlp = Mlp::with_init(
                &args.layers,
                args.hidden.into(),
                args.output.into(),
                args.loss.into(),
                init,
                seed,
            );
            (mlp, 0, seed)
        }
    };
    mlp.validate()
        .context("the network options do not describe a model that can be trained")?;
    if args.epochs == 0 {
        bail!("--epochs 0: nothing to train (give at least 1)");
    }
    if args.cpu && args.profile.is_some() {
        bail!("--profile times GPU kernels with timestamp queries; it cannot be used with --cpu");
    }
    let (train_set, test_set) = load_data(&args.data, seed)?;
    let config = TrainConfig {
        optimizer: optimizer_config(&args),
        batch_size: args.batch,
        seed,
    };
    let (mut trainer, adapter) = if args.cpu {
        (
            Trainer::Cpu(CpuTrainer::new(&mlp, &train_set, Some(&test_set), config)?),
            "cpu (ndarray reference)".to_string(),
        )
    } else {
        let gpu = open_gpu(&args.adapter)?;
        let adapter = gpu.adapter_description();
        let mut trainer = GpuTrainer::new(&gpu, &mlp, &train_set, Some(&test_set), config)?;
        if let Some(steps) = args.profile {
            trainer.profile_next_steps(steps)?;
        }
        (Trainer::Gpu(Box::new(trainer)), adapter)
    };
    trainer.set_epochs_done(epochs_before);
    if let Some(path) = &args.resume {
        let state_path = checkpoint::optimizer_path(path);
        match checkpoint::load_optimizer(&state_path, &mlp, &config.optimizer, epochs_before)? {
            Some(state) => {
                trainer.set_optimizer_state(&state)?;
                eprintln!(
                    "restored the {} state of {} steps from {}",
                    config.optimizer.optimizer.name(),
                    state.steps,
                    state_path.display()
                );
            }
            None if config.optimizer.optimizer.state_per_parameter() > 0 => eprintln!(
                "no {} state saved for epoch {epochs_before} in {}: the optimizer starts afresh",
                config.optimizer.optimizer.name(),
                state_path.display()
            ),
            None => {}
        }
    }
    eprintln!(
        "training {:?} {}→{} {} with {} (lr {}) on {} ({} train / {} test samples), adapter: {adapter}",
        mlp.sizes(),
        mlp.layers[0].activation.name(),
        mlp.layers[mlp.layers.len() - 1].activation.name(),
        mlp.loss.name(),
        config.optimizer.optimizer.name(),
        config.optimizer.learning_rate,
        DatasetKind::from(args.data.dataset).name(),
        train_set.len(),
        test_set.len()
    );

    let mut metrics = match &args.metrics {
        Some(path) => {
            Some(File::create(path).with_context(|| format!("creating {}", path.display()))?)
        }
        None => None,
    };
    let mut history = Vec::new();
    let (mut samples, mut train_seconds) = (0usize, 0.0f64);
    let mut evaluation = None;
    for epoch in 1..=args.epochs {
        let bar = progress_bar(epoch, args.epochs, train_set.len());
        let report = trainer.train_epoch(|p| {
            bar.set_position(p.samples as u64);
            bar.set_message(format!("{:.4}", p.running_loss));
        });
        bar.finish_and_clear();
        let report = report?;
        let eval = trainer.evaluate()?;
        samples += report.samples;
        train_seconds += report.seconds;
        let total_epochs = epochs_before + epoch;
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
        history.push(EpochPoint {
            epoch: total_epochs,
            train_loss: report.train_loss,
            test_loss: eval.loss,
            test_accuracy: eval.accuracy,
        });
        if let Some(path) = &args.save {
            let info = CheckpointInfo {
                epochs: total_epochs,
                extra: [
                    (
                        "optimizer".to_string(),
                        config.optimizer.optimizer.name().to_string(),
                    ),
                    (
                        "dataset".to_string(),
                        DatasetKind::from(args.data.dataset).name().to_string(),
                    ),
                    ("seed".to_string(), seed.to_string()),
                ]
                .into(),
            };
            // The optimizer state first: a crash between the two files leaves a model whose saved
            // state is stale, which --resume detects and ignores, never a model without weights.
            let state = trainer.optimizer_state()?;
            checkpoint::save_optimizer(
                &checkpoint::optimizer_path(path),
                &state,
                &config.optimizer,
                total_epochs,
            )?;
            checkpoint::save(path, &trainer.trained_mlp()?, &info)?;
        }
        evaluation = Some(eval);
    }
    let evaluation = evaluation.context("no epoch ran")?;
    if let Some(path) = &args.save {
        eprintln!("saved {}", path.display());
    }
    print_confusion(&evaluation.confusion);
    let profile = match &trainer {
        Trainer::Gpu(t) => t.profile(),
        Trainer::Cpu(_) => None,
    };
    if let Some(profile) = &profile {
        println!("{profile}");
    }
    if let Some(path) = &args.plot {
        checkpoint::write_atomically(path, training_curves_svg(&history).as_bytes())?;
        eprintln!("plotted {}", path.display());
    }
    if args.json {
        let summary = json!({
            "test_accuracy": evaluation.accuracy, "test_loss": evaluation.loss,
            "train_loss": history.last().map(|p| p.train_loss),
            "epochs": epochs_before + args.epochs, "seconds": start.elapsed().as_secs_f64(),
            "samples_per_s": samples as f64 / train_seconds.max(1e-9), "adapter": adapter,
            "dataset": DatasetKind::from(args.data.dataset).name(),
            "profile": profile.as_ref().map(profile_json),
        });
        println!("{summary}");
    }
    Ok(())
}

fn print_confusion(confusion: &Array2<u64>) {
    println!("confusion matrix (rows: true class, columns: predicted)");
    let header: String = (0..confusion.ncols()).map(|c| format!("{c:>6}")).collect();
    println!("     {header}");
    for (t, row) in confusion.rows().into_iter().enumerate() {
        let cells: String = row.iter().map(|n| format!("{n:>6}")).collect();
        println!("{t:>4} {cells}");
    }
}

fn eval(args: EvalArgs) -> Result<()> {
    let (mlp, _) = checkpoint::load(&args.model)?;
    let (_, test) = load_data(&args.data, 42)?;
    let (evaluation, adapter) = if args.cpu {
        (
            evaluate_cpu(&mlp, &test, args.batch)?,
            "cpu (ndarray reference)".to_string(),
        )
    } else {
        let gpu = open_gpu(&args.adapter)?;
        // A trainer with an empty role for the training set: evaluation only reads the test set.
        let config = TrainConfig {
            optimizer: OptimizerConfig::sgd(0.1),
            batch_size: args.batch.min(test.len()).max(1),
            seed: 0,
        };
        let mut trainer = GpuTrainer::new(&gpu, &mlp, &test.take(1), Some(&test), config)?;
        (trainer.evaluate()?, gpu.adapter_description())
    };
    if args.json {
        let line = json!({
            "test_accuracy": evaluation.accuracy, "test_loss": evaluation.loss, "samples": evaluation.samples,
            "adapter": adapter, "model": args.model.display().to_string(),
        });
        println!("{line}");
    } else {
        println!(
            "{}: test loss {:.5}, test accuracy {:.2}% on {} samples ({adapter})",
            args.model.display(),
            evaluation.loss,
            evaluation.accuracy * 100.0,
            evaluation.samples
        );
        print_confusion(&evaluation.confusion);
    }
    Ok(())
}

fn predict(args: PredictArgs) -> Result<()> {
    let (mlp, _) = checkpoint::load(&args.model)?;
    let inputs = mlp.inputs();
    let side = (inputs as f64).sqrt() as usize;
    if side * side != inputs {
        bail!("the model takes {inputs} inputs, which is not a square image");
    }
    for path in &args.images {
        let pixels = image::load_image(path, side, side)?;
        let x = Array2::from_shape_vec((1, inputs), pixels)?;
        let outputs = mlp.forward(x.view())?;
        let row: Vec<f32> = outputs.row(0).to_vec();
        let best = argmax(row.iter().copied());
        let mut ranked: Vec<(usize, f32)> = row.iter().copied().enumerate().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        let top: Vec<String> = ranked
            .iter()
            .take(3)
            .map(|(c, v)| format!("{c}: {v:.3}"))
            .collect();
        println!("{}: {best}  ({})", path.display(), top.join(", "));
    }
    Ok(())
}

fn gradcheck(args: GradcheckArgs) -> Result<()> {
    let loss: Loss = args.loss.into();
    let output = loss.required_output().unwrap_or(Activation::Sigmoid);
    let mlp = Mlp::new(&args.layers, args.hidden.into(), output, loss, args.seed);
    mlp.validate()?;
    if args.batch == 0 {
        bail!("--batch 0: the check needs at least one row");
    }
    let mut rng = Rng::new(args.seed + 1);
    let x =
        Array2::from_shape_simple_fn((args.batch, mlp.inputs()), || rng.uniform(-1.0, 1.0) as f32);
    let y = match loss {
        Loss::CrossEntropy => Array2::from_shape_fn((args.batch, mlp.outputs()), |(r, c)| {
            f32::from(u8::from(c == r % mlp.outputs()))
        }),
        _ => Array2::from_shape_simple_fn((args.batch, mlp.outputs()), || {
            rng.uniform(0.05, 0.95) as f32
        }),
    };
    let gpu = open_gpu(&args.adapter)?;
    println!(
        "gradcheck {:?} {}→{} {} batch {} on {}",
        mlp.sizes(),
        mlp.layers[0].activation.name(),
        output.name(),
        loss.name(),
        args.batch,
        gpu.adapter_description()
    );

    let (cpu_loss, cpu) = mlp.loss_and_gradients(x.view(), y.view())?;
    let mut net = GpuMlp::new(&gpu, &mlp)?;
    let (gpu_loss, gpu_grads) = net.loss_and_gradients(x.view(), y.view())?;
    let mut worst_gpu = (f32::from(0u8), String::new());
    for (l, (g, c)) in gpu_grads.layers.iter().zip(&cpu.layers).enumerate() {
        let dweight = g
            .dweight
            .iter()
            .zip(c.dweight.iter())
            .map(|p| ("dweight", p));
        let dbias = g.dbias.iter().zip(c.dbias.iter()).map(|p| ("dbias", p));
        for (name, (a, b)) in dweight.chain(dbias) {
            {
                if (a - b).abs() > worst_gpu.0 {
                    worst_gpu = ((a - b).abs(), format!("layer {l} {name}"));
                }
            }
        }
    }
    println!("loss: gpu {gpu_loss:.9}, cpu {cpu_loss:.9}");
    println!(
        "worst |gpu − cpu| gradient difference: {:.3e} ({})",
        worst_gpu.0, worst_gpu.1
    );

    let step = 1e-6;
    let all_checks =
        reference::finite_difference_check(&mlp, x.view(), y.view(), step, args.samples)?;
    // Across a ReLU kink a finite difference estimates no derivative: leave those out, and say so.
    let (checks, kinked): (Vec<_>, Vec<_>) =
        all_checks.into_iter().partition(|c| !c.crosses_relu_kink);
    if !kinked.is_empty() {
        println!(
            "{} sampled parameters left out: their step crosses a ReLU kink",
            kinked.len()
        );
    }
    let checked = checks.len();
    let worst_fd = checks
        .iter()
        .map(|c| {
            (
                (c.finite_difference - c.analytic).abs(),
                c.parameter.clone(),
            )
        })
        .fold((0.0f64, String::new()), |worst, next| {
            if next.0 > worst.0 { next } else { worst }
        });
    println!(
        "worst |finite difference − analytic| (f64, {checked} parameters, step {step:e}): {:.3e} ({})",
        worst_fd.0, worst_fd.1
    );
    const GPU_TOLERANCE: f32 = 1e-4;
    const FD_TOLERANCE: f64 = 1e-6;
    if worst_gpu.0 > GPU_TOLERANCE || worst_fd.0 > FD_TOLERANCE {
        bail!(
            "gradient check failed (tolerances: gpu {GPU_TOLERANCE:e}, finite differences {FD_TOLERANCE:e})"
        );
    }
    println!("ok (tolerances: gpu {GPU_TOLERANCE:e}, finite differences {FD_TOLERANCE:e})");
    Ok(())
}

fn adapters() -> Result<()> {
    let adapters = available_adapters();
    if adapters.is_empty() {
        // The same message Gpu::new gives.
        Gpu::new(AdapterChoice::Auto)?;
    }
    for adapter in adapters {
        let info = adapter.get_info();
        let limits = adapter.limits();
        println!("{}", describe_adapter(&info));
        println!("    driver: {} {}", info.driver, info.driver_info);
        println!(
            "    max_storage_buffer_binding_size: {} MiB, max_buffer_size: {} MiB, max_compute_workgroup_size_x: {}, max_compute_invocations_per_workgroup: {}",
            limits.max_storage_buffer_binding_size >> 20,
            limits.max_buffer_size >> 20,
            limits.max_compute_workgroup_size_x,
            limits.max_compute_invocations_per_workgroup
        );
    }
    let gpu = Gpu::new(AdapterChoice::Auto)?;
    println!(
        "--adapter auto uses: {} (kernels: {:?} matmul{})",
        gpu.adapter_description(),
        gpu.config().matmul,
        if gpu.config().bounds_checks {
            ", wgpu's bounds checks on (WGPU_MLP_BOUNDS_CHECKS=1)"
        } else {
            ""
        }
    );
    Ok(())
}

fn download_command(args: DownloadArgs) -> Result<()> {
    let kind = DatasetKind::from(args.dataset);
    let dir = args
        .data
        .unwrap_or_else(|| Path::new("data").join(kind.name()));
    let mirrors = if args.mirror.is_empty() {
        download::default_mirrors(kind)
    } else {
        args.mirror
    };
    for outcome in download::download(kind, &dir, &mirrors)? {
        match outcome {
            download::FileOutcome::Present(path) => {
                println!("{}: present, checksum ok", path.display())
            }
            download::FileOutcome::Downloaded(path, url) => {
                println!("{}: downloaded from {url}, checksum ok", path.display())
            }
        }
    }
    Ok(())
}

fn bench(args: BenchArgs) -> Result<()> {
    let workload = match args.workload {
        WorkloadArg::W1 => Workload::W1,
        WorkloadArg::W2 => Workload::W2,
    };
    let fusion = if args.unfused {
        Fusion::Unfused
    } else {
        Fusion::Fused
    };
    let (report, profile) = if args.cpu {
        if args.profile.is_some() || args.unfused || args.matmul != MatmulArg::Auto {
            bail!(
                "--profile, --unfused and --matmul are about the GPU kernels; they cannot be used \
                 with --cpu"
            );
        }
        (bench_cpu(workload, args.samples)?, None)
    } else {
        let options = GpuBenchOptions {
            adapter: args.adapter.parse().unwrap_or_default(),
            fusion,
            profile_steps: args.profile.unwrap_or(0),
            matmul: match args.matmul {
                MatmulArg::Auto => None,
                MatmulArg::Tiled => Some(MatmulStrategy::Tiled),
                MatmulArg::Register => Some(MatmulStrategy::RegisterBlocked),
                MatmulArg::Shuffled => Some(MatmulStrategy::Shuffled),
            },
        };
        bench_gpu_with(workload, args.samples, &options)?
    };
    if args.json {
        let line = json!({
            "workload": report.workload, "adapter": report.adapter, "samples_per_s": report.samples_per_s,
            "gflops": report.gflops, "first_step_s": report.first_step_s, "samples": report.samples, "seconds": report.seconds,
            "kernels": if args.cpu { "cpu" } else if args.unfused { "unfused" } else { "fused" },
            "matmul": report.matmul.map(|m| format!("{m:?}")),
            "profile": profile.as_ref().map(profile_json),
        });
        println!("{line}");
    } else {
        println!(
            "{} on {}: {:.0} samples/s, {:.2} GFLOP/s over {} samples in {:.2} s; first step {:.2} s{}{}",
            report.workload,
            report.adapter,
            report.samples_per_s,
            report.gflops,
            report.samples,
            report.seconds,
            report.first_step_s,
            if args.unfused {
                " (unfused kernels)"
            } else {
                ""
            },
            report
                .matmul
                .map(|m| format!(" ({m:?} matmul)"))
                .unwrap_or_default()
        );
        if let Some(profile) = &profile {
            println!("{profile}");
        }
    }
    Ok(())
}

/// A profile as JSON: the kernels in step order with their time per step.
fn profile_json(profile: &Profile) -> serde_json::Value {
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
