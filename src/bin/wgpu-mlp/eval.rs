//! `wgpu-mlp eval`: the test loss and scores (accuracy and the confusion matrix, or RMSE and R²)
//! of a saved model, on the data (and for the synthetic set, the seed) the model records unless
//! told otherwise, scaled as the model's training data was.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use serde_json::json;

use wgpu_mlp::data::DatasetKind;
use wgpu_mlp::run::{HeldOutScores, Preparation, Recorded, Source};
use wgpu_mlp::train::{GpuTrainer, Split, Trainer, evaluate_cpu};

use crate::common::{CPU_ADAPTER, Console, DEFAULT_SEED, ModelArgs, open_gpu, print_confusion};
use crate::dataset::DataArgs;

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
    /// Evaluate on the CPU instead of the GPU.
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
    let preparation = Preparation::of(&recorded, &mlp)?;
    let source = source(&args, &recorded)?;
    let seed = match (args.seed, recorded.value::<u64>("seed")?) {
        (Some(asked), Some(saved))
            if asked != saved && source == Source::Builtin(DatasetKind::Synthetic) =>
        {
            eprintln!(
                "note: {file} was trained on the synthetic set of seed {saved}; evaluating on seed {asked} as asked"
            );
            asked
        }
        (asked, saved) => asked.or(saved).unwrap_or(DEFAULT_SEED),
    };
    let mut notes = Vec::new();
    let dir = args.data.data.as_deref();
    let test = args.data.options().load_for_evaluation(
        (&source, dir),
        seed,
        (&preparation, mlp.outputs()),
        &mut notes,
    );
    for note in notes {
        eprintln!("{note}");
    }
    let test = test?;
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
    let name = match &source {
        Source::Files {
            test: Some(path), ..
        } => path.display().to_string(),
        _ => source.name(),
    };
    let held_out = HeldOutScores::of(&evaluation, &preparation);
    let scores = match held_out.accuracy {
        Some(accuracy) => format!("test accuracy {:.2}%", accuracy * 100.0),
        None => format!(
            "test RMSE {:.5}, test R² {:.4}",
            held_out.rmse.unwrap_or(f64::NAN),
            held_out.r2.unwrap_or(f64::NAN)
        ),
    };
    console.line(format_args!(
        "{file}: test loss {:.5}, {scores} on {} samples of {name} ({adapter})",
        evaluation.loss, evaluation.samples,
    ))?;
    if let Some(confusion) = evaluation.confusion() {
        print_confusion(&console, confusion)?;
    }
    if args.json {
        let mut summary = held_out.json_fields("test_");
        let rest = json!({
            "samples": evaluation.samples, "adapter": adapter, "model": file.to_string(),
            "dataset": name, "task": preparation.task.name(),
        });
        if let serde_json::Value::Object(rest) = rest {
            summary.extend(rest);
        }
        console.json(&serde_json::Value::Object(summary))?;
    }
    Ok(())
}

/// What to evaluate on: `--test PATH`, else `--dataset` (said when it is not the model's), else
/// the model's own test file or data set.
fn source(args: &EvalArgs, recorded: &Recorded) -> Result<Source> {
    let file = args.model.model.display();
    if args.data.train.is_some() {
        bail!("eval evaluates a trained model: give the data with --test PATH, not --train");
    }
    if let Some(test) = &args.data.test {
        return Ok(Source::Files {
            train: PathBuf::new(),
            test: Some(test.clone()),
        });
    }
    let recorded_kind = recorded.dataset()?;
    if let Some(asked) = args.data.dataset {
        if let Some(saved) = recorded_kind
            && saved != asked
        {
            eprintln!(
                "note: {file} was trained on {}; evaluating on {} as asked",
                saved.name(),
                asked.name()
            );
        }
        return Ok(Source::Builtin(asked));
    }
    if let Some(test) = recorded.text("test_file") {
        return Ok(Source::Files {
            train: PathBuf::new(),
            test: Some(PathBuf::from(test)),
        });
    }
    if recorded.text("train_file").is_some() {
        bail!("{file} was trained on a file without a test file: give one with --test PATH");
    }
    Ok(Source::Builtin(
        recorded_kind.unwrap_or(DatasetKind::Synthetic),
    ))
}
