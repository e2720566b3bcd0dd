//! `wgpu-mlp eval`: the test loss, accuracy and confusion matrix of a saved model, on the data set
//! (and for the synthetic set, the seed) the model records unless told otherwise.

use anyhow::Result;
use clap::Args;
use serde_json::json;

use wgpu_mlp::data::DatasetKind;
use wgpu_mlp::train::{GpuTrainer, Split, Trainer, evaluate_cpu};

use crate::common::{
    CPU_ADAPTER, Console, DEFAULT_SEED, DataArgs, ModelArgs, Recorded, open_gpu, print_confusion,
};

#[derive(Args, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    data: DataArgs,
    /// Seed of the synthetic set [default: the one the model was trained with].
    #[arg(long)]
    seed: Option<u64>,
    /// Samples per batch.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Adapter: auto, software, a backend (vulkan, metal, dx12, gl), NAME@BACKEND, or part of an
    /// adapter's name.
    #[arg(long, default_value = "auto")]
    adapter: String,
    /// Evaluate with the CPU reference instead of the GPU.
    #[arg(long)]
    cpu: bool,
    /// Print the result as one JSON line (and nothing else on stdout).
    #[arg(long)]
    json: bool,
}

pub fn run(args: EvalArgs) -> Result<()> {
    let console = Console::new(args.json);
    let (mlp, info) = args.model.load()?;
    let file = args.model.model.display();
    let recorded = Recorded::of(&info, &args.model.model);
    let recorded_dataset = recorded.dataset()?;
    let dataset = match (args.data.dataset, recorded_dataset) {
        (Some(asked), Some(recorded)) if asked != recorded => {
            eprintln!(
                "note: {file} was trained on {}; evaluating on {} as asked",
                recorded.name(),
                asked.name()
            );
            asked
        }
        (asked, recorded) => asked.or(recorded).unwrap_or(DatasetKind::Synthetic),
    };
    let seed = match (args.seed, recorded.value::<u64>("seed")?) {
        (Some(asked), Some(recorded)) if asked != recorded && dataset == DatasetKind::Synthetic => {
            eprintln!(
                "note: {file} was trained on the synthetic set of seed {recorded}; evaluating on seed {asked} as asked"
            );
            asked
        }
        (asked, recorded) => asked.or(recorded).unwrap_or(DEFAULT_SEED),
    };
    let (_, test) = args.data.load(dataset, seed)?;
    let (evaluation, adapter) = if args.cpu {
        (
            evaluate_cpu(&mlp, &test, args.batch)?,
            CPU_ADAPTER.to_string(),
        )
    } else {
        let gpu = open_gpu(&args.adapter)?;
        let mut evaluator = GpuTrainer::evaluator(&gpu, &mlp, &test, args.batch)?;
        (evaluator.evaluate(Split::Test)?, gpu.adapter_description())
    };
    console.line(format_args!(
        "{file}: test loss {:.5}, test accuracy {:.2}% on {} samples of {} ({adapter})",
        evaluation.loss,
        evaluation.accuracy().unwrap_or(f64::NAN) * 100.0,
        evaluation.samples,
        dataset.name()
    ))?;
    if let Some(confusion) = evaluation.confusion() {
        print_confusion(&console, confusion)?;
    }
    if args.json {
        console.json(&json!({
            "test_accuracy": evaluation.accuracy(), "test_loss": evaluation.loss, "samples": evaluation.samples,
            "adapter": adapter, "model": file.to_string(), "dataset": dataset.name(),
        }))?;
    }
    Ok(())
}
