//! `wgpu-mlp eval`: the test loss, accuracy and confusion matrix of a saved model.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use serde_json::json;

use wgpu_mlp::checkpoint;
use wgpu_mlp::train::{GpuTrainer, Trainer, evaluate_cpu};

use crate::common::{CPU_ADAPTER, DEFAULT_SEED, DataArgs, open_gpu, print_confusion};

#[derive(Args, Debug)]
pub struct EvalArgs {
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

pub fn run(args: EvalArgs) -> Result<()> {
    let (mlp, info) = checkpoint::load(&args.model)?;
    // The synthetic set is generated from the seed the model was trained with.
    let seed = info.extra.get("seed").and_then(|s| s.parse().ok());
    let (_, test) = args.data.load(seed.unwrap_or(DEFAULT_SEED))?;
    let (evaluation, adapter) = if args.cpu {
        (evaluate_cpu(&mlp, &test, args.batch)?, CPU_ADAPTER.to_string())
    } else {
        let gpu = open_gpu(&args.adapter)?;
        let mut evaluator = GpuTrainer::evaluator(&gpu, &mlp, &test, args.batch)?;
        (evaluator.evaluate()?, gpu.adapter_description())
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
