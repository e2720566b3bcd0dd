//! What several commands share: the model options, opening the adapter, the console the output goes to, parsing lists of sizes, and printing a confusion
//! matrix, a progress bar or a kernel profile.

use std::fmt::Display;
use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

use anyhow::{Context, Result};
use clap::Args;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use indicatif::{ProgressBar, ProgressStyle};

use wgpu_mlp::checkpoint::{self, Architecture, CheckpointInfo};
use wgpu_mlp::ndarray::Array2;
use wgpu_mlp::train::StopFlag;
use wgpu_mlp::{Activation, AdapterChoice, Gpu, Loss, Mlp};

/// The seed of the synthetic set and of a new model when none is given or saved.
pub const DEFAULT_SEED: u64 = wgpu_mlp::train::DEFAULT_SEED;

/// The activations a hidden layer may have: softmax only ends a network.
const HIDDEN_ACTIVATIONS: [&str; 7] = [
    "identity",
    "sigmoid",
    "relu",
    "tanh",
    "gelu",
    "silu",
    "leaky-relu",
];

/// `--hidden`: one of [`HIDDEN_ACTIVATIONS`], listed as such in `--help`.
pub fn hidden_activation() -> impl TypedValueParser<Value = Activation> {
    PossibleValuesParser::new(HIDDEN_ACTIVATIONS).try_map(|name| Activation::from_name(&name))
}

/// `--output`: an activation that may end a network (gelu, silu and leaky-relu are for hidden
/// layers: [`Activation::is_hidden_only`]), listed as such in `--help`.
pub fn output_activation_option() -> impl TypedValueParser<Value = Activation> {
    let names = Activation::ALL
        .into_iter()
        .filter(|a| !a.is_hidden_only())
        .map(Activation::name);
    PossibleValuesParser::new(names).try_map(|name| Activation::from_name(&name))
}

/// A saved model, and what it is when the file does not say (a PyTorch `state_dict`).
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// The model file (safetensors, as `train --save` writes it or a PyTorch state_dict).
    #[arg(long, value_name = "FILE")]
    pub model: PathBuf,
    /// For a file without wgpu-mlp's metadata (a PyTorch state_dict): the hidden layers' activation.
    #[arg(long, value_parser = hidden_activation())]
    pub hidden: Option<Activation>,
    /// For such a file: the output layer's activation [default: the one --loss requires].
    /// (`predict --output` names the file its predictions go to.)
    #[arg(
        long = "output-activation",
        id = "output_activation",
        value_name = "ACTIVATION",
        value_parser = output_activation_option()
    )]
    pub output: Option<Activation>,
    /// For such a file: the loss.
    #[arg(long, value_enum)]
    pub loss: Option<Loss>,
}

impl ModelArgs {
    /// Loads the model, with the architecture the options state for a file that has none.
    pub fn load(&self) -> Result<(Mlp, CheckpointInfo)> {
        let architecture = Architecture::stated(self.hidden, self.output, self.loss);
        Ok(checkpoint::load_with(&self.model, architecture.as_ref())?)
    }
}

/// The output activation options ask for: `--output`, else what `--loss` requires, else sigmoid.
pub fn output_activation(output: Option<Activation>, loss: Option<Loss>) -> Activation {
    output
        .or_else(|| loss.and_then(Loss::required_output))
        .unwrap_or(Activation::Sigmoid)
}

/// The adapter `--adapter` names: `auto`, `software`, or part of an adapter's name. On an adapter
/// that is itself a CPU (lavapipe, SwiftShader, WARP) it says once that `--cpu` may be faster.
pub fn open_gpu(adapter: &str) -> Result<Gpu> {
    let choice: AdapterChoice = adapter.parse()?;
    let gpu = Gpu::new(choice)?;
    if gpu.adapter_info().device_type == wgpu_mlp::wgpu::DeviceType::Cpu {
        eprintln!(
            "note: {} is a software adapter running on the CPU; the CPU trainer (--cpu) may be faster here",
            gpu.adapter_description()
        );
    }
    Ok(gpu)
}

/// Where a command's lines go. Human-readable lines go to stdout, except with `--json`, where
/// stdout carries only the JSON line and the human lines go to stderr, so that `| jq` works. A
/// failed write (a full disk) is an error naming the stream, not a panic.
#[derive(Clone, Copy, Debug)]
pub struct Console {
    json: bool,
}

impl Console {
    /// The console of a command run with `--json` or without.
    pub fn new(json: bool) -> Self {
        Console { json }
    }

    /// A human-readable line.
    pub fn line(&self, text: impl Display) -> Result<()> {
        if self.json {
            writeln!(std::io::stderr().lock(), "{text}").context("writing to standard error")
        } else {
            write_stdout(text)
        }
    }

    /// The JSON line.
    pub fn json(&self, value: &serde_json::Value) -> Result<()> {
        write_stdout(value)
    }
}

/// `println!` that returns a failed write (a full disk) as an error instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::common::write_stdout(format_args!($($arg)*))
    };
}
pub(crate) use out;

/// A line on stdout, flushed, with a failure as an error.
pub fn write_stdout(text: impl Display) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")
        .and_then(|()| stdout.flush())
        .context("writing to standard output")
}

/// The flag Ctrl-C and SIGTERM raise: training stops after the step in progress. A second signal
/// ends the process at once (exit status 130); a save it cuts short leaves a temporary file that
/// the next save of the same file removes.
pub fn interrupt_flag() -> Result<StopFlag> {
    static FLAG: OnceLock<StopFlag> = OnceLock::new();
    if let Some(flag) = FLAG.get() {
        return Ok(flag.clone());
    }
    let flag = StopFlag::default();
    let raised = flag.clone();
    ctrlc::set_handler(move || {
        if raised.is_raised() {
            std::process::exit(130);
        }
        raised.raise();
        eprintln!("\nstopping after the current step (again to stop at once)");
    })
    .context("installing the Ctrl-C handler")?;
    Ok(FLAG.get_or_init(|| flag).clone())
}

/// Whether `error` is work stopped by Ctrl-C or SIGTERM: training between steps, or a download
/// between chunks.
pub fn is_interruption(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<wgpu_mlp::Error>(),
            Some(wgpu_mlp::Error::Interrupted { .. })
        )
    })
}

/// A comma-separated list of sizes, spaces allowed: `784,128,10` or `"784, 128, 10"`.
pub fn parse_sizes(text: &str) -> Result<Vec<usize>, String> {
    text.split(',')
        .map(|part| {
            let part = part.trim();
            part.parse::<usize>()
                .map_err(|_| format!("{part:?} in {text:?} is not a size (a whole number)"))
        })
        .collect()
}

/// How the CLI names the fast CPU engine where it names an adapter.
pub const CPU_ADAPTER: &str = wgpu_mlp::run::CPU_ADAPTER;

/// Prints `confusion[[truth, predicted]]` as a table with a header row of predicted classes.
pub fn print_confusion(console: &Console, confusion: &Array2<u64>) -> Result<()> {
    console.line("confusion matrix (rows: true class, columns: predicted)")?;
    let header: String = (0..confusion.ncols()).map(|c| format!("{c:>6}")).collect();
    console.line(format_args!("     {header}"))?;
    for (t, row) in confusion.rows().into_iter().enumerate() {
        let cells: String = row.iter().map(|n| format!("{n:>6}")).collect();
        console.line(format_args!("{t:>4} {cells}"))?;
    }
    Ok(())
}

/// A progress bar for one epoch of `total` samples.
pub fn progress_bar(epoch: usize, epochs: usize, total: usize) -> ProgressBar {
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
