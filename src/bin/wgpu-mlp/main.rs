//! `wgpu-mlp`: train, evaluate and use multi-layer perceptrons on any GPU from the command line.
//!
//! One module per command; `common` holds what several commands share (data options, the adapter,
//! printing a confusion matrix or a profile). With no subcommand it trains the default network on
//! the built-in synthetic data set, so that `cargo run --release` works offline on a fresh machine.

mod adapters;
mod augment;
mod bench;
mod common;
mod dataset;
mod download;
mod eval;
mod gradcheck;
mod predict;
mod train;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "wgpu-mlp",
    version,
    about = "Train multi-layer perceptrons with backpropagation on any GPU (Vulkan, Metal, DX12).",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// With no command: train's options (`wgpu-mlp --epochs 1` is `wgpu-mlp train --epochs 1`).
    #[command(flatten)]
    train: train::TrainArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train a network (the default command).
    Train(Box<train::TrainArgs>),
    /// Evaluate a saved model on a data set's test set or a test file.
    Eval(eval::EvalArgs),
    /// Predict with a saved model: images (PNG or PGM of any size, scaled to the model's input),
    /// or the samples of a .csv or .npz file.
    Predict(predict::PredictArgs),
    /// Check GPU gradients against the CPU reference, and the CPU reference against finite differences.
    Gradcheck(gradcheck::GradcheckArgs),
    /// List every adapter wgpu can see.
    Adapters,
    /// Download MNIST or Fashion-MNIST and verify their checksums.
    Download(download::DownloadArgs),
    /// Measure training throughput on a fixed workload.
    Bench(bench::BenchArgs),
    /// Show what the deformation options do: a PNG grid of training images and their
    /// deformations (and with --npz, the same as arrays).
    Augment(Box<augment::AugmentCommandArgs>),
}

fn main() {
    restore_sigpipe();
    let cli = Cli::parse();
    let result = match cli.command {
        None => train::run(cli.train),
        Some(Command::Train(args)) => train::run(*args),
        Some(Command::Eval(args)) => eval::run(args),
        Some(Command::Predict(args)) => predict::run(args),
        Some(Command::Gradcheck(args)) => gradcheck::run(args),
        Some(Command::Adapters) => adapters::run(),
        Some(Command::Download(args)) => download::run(args),
        Some(Command::Bench(args)) => bench::run(args),
        Some(Command::Augment(args)) => augment::run(*args),
    };
    if let Err(error) = result {
        eprintln!("error: {}", describe(&error));
        // 128 + SIGINT, as a shell reports a command Ctrl-C ended.
        std::process::exit(if common::is_interruption(&error) {
            130
        } else {
            1
        });
    }
}

/// An error and its causes, each said once: a cause whose message its effect already quotes (an
/// I/O error inside "FILE: reason") is not repeated.
fn describe(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let message = cause.to_string();
        if text.contains(&message) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&message);
    }
    text
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
