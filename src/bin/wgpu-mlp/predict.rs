//! `wgpu-mlp predict`: a saved model's predictions. For images (PNG, PGM), a line each with the
//! top three classes; for a `.csv` or `.npz` of samples, a CSV line per sample — the predicted
//! class and the class probabilities, or the regression outputs in the targets' own units — after
//! a header row, to stdout or `--output FILE` (written atomically).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;

use wgpu_mlp::data::files::{self, Task};
use wgpu_mlp::data::image;
use wgpu_mlp::files::{check_can_write, write_atomically};
use wgpu_mlp::ndarray::Array2;
use wgpu_mlp::train::argmax;
use wgpu_mlp::{Dataset, Mlp};

use wgpu_mlp::run::{Preparation, Recorded};

use crate::common::{ModelArgs, out};

#[derive(Args, Debug)]
pub struct PredictArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Images to classify (PNG, PGM), or one .csv or .npz file of samples.
    #[arg(required = true, value_name = "INPUT")]
    inputs: Vec<PathBuf>,
    /// With a .csv or .npz: write the predictions here instead of to stdout.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// Whether `path` names a file of samples rather than an image.
fn is_table(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("csv" | "npz" | "CSV" | "NPZ")
    )
}

pub fn run(args: PredictArgs) -> Result<()> {
    let (mlp, info) = args.model.load()?;
    let recorded = Recorded::of(&info, &args.model.model);
    let preparation = Preparation::of(&recorded, &mlp)?;
    match &args.inputs[..] {
        [path] if is_table(path) => predict_table(&args, path, &mlp, &preparation),
        paths if paths.iter().any(|p| is_table(p)) => {
            bail!("give one .csv or .npz file, or any number of images, not both")
        }
        _ if args.output.is_some() => {
            bail!("--output writes the predictions for a .csv or .npz file; images print theirs")
        }
        paths => predict_images(paths, &mlp),
    }
}

fn predict_images(paths: &[PathBuf], mlp: &Mlp) -> Result<()> {
    let inputs = mlp.inputs();
    let side = (inputs as f64).sqrt() as usize;
    if side * side != inputs {
        bail!("the model takes {inputs} inputs, which is not a square image");
    }
    for path in paths {
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
        out!("{}: {best}  ({})", path.display(), top.join(", "))?;
    }
    Ok(())
}

/// Predicts every sample of a `.csv` or `.npz` file, scaled as the model's training data was.
fn predict_table(args: &PredictArgs, path: &Path, mlp: &Mlp, prep: &Preparation) -> Result<()> {
    if let Some(output) = &args.output {
        check_can_write(output).with_context(|| format!("--output {}", output.display()))?;
    }
    let features = files::load_features(path, prep.target.as_deref())?;
    let mut samples = Dataset {
        targets: wgpu_mlp::data::Targets::Values(Array2::zeros((features.len(), 1))),
        features,
        image_shape: None,
    };
    if samples.inputs() != mlp.inputs() {
        bail!(
            "{} has {} features per sample but the model takes {}",
            path.display(),
            samples.inputs(),
            mlp.inputs()
        );
    }
    prep.apply(&mut samples)
        .with_context(|| format!("scaling {} as the model's data was", path.display()))?;
    let text = predictions_csv(mlp, &samples, prep)?;
    match &args.output {
        Some(output) => {
            write_atomically(output, text.as_bytes())?;
            eprintln!(
                "wrote {} predictions to {}",
                samples.len(),
                output.display()
            );
        }
        None => out!("{}", text.trim_end())?,
    }
    Ok(())
}

/// The CSV of predictions: a header row, then a line per sample.
fn predictions_csv(mlp: &Mlp, samples: &Dataset, prep: &Preparation) -> Result<String> {
    let outputs = mlp.outputs();
    let mut text = match prep.task {
        Task::Classification => {
            let probabilities: Vec<String> = (0..outputs).map(|c| format!("p{c}")).collect();
            format!("class,{}\n", probabilities.join(","))
        }
        Task::Regression => {
            let names: Vec<String> = match (&prep.target, outputs) {
                (Some(name), 1) => vec![name.clone()],
                _ => (0..outputs).map(|c| format!("y{c}")).collect(),
            };
            format!("{}\n", names.join(","))
        }
    };
    const BATCH: usize = 1024;
    let indices: Vec<usize> = (0..samples.len()).collect();
    for chunk in indices.chunks(BATCH) {
        let (x, _) = samples.batch(chunk);
        let mut predicted = mlp.forward(x.view())?;
        if let (Task::Regression, Some(scaling)) = (prep.task, &prep.targets) {
            scaling.invert(&mut predicted);
        }
        for row in predicted.rows() {
            let values: Vec<String> = row.iter().map(|v| v.to_string()).collect();
            match prep.task {
                Task::Classification => {
                    let class = argmax(row.iter().copied());
                    writeln!(text, "{class},{}", values.join(","))?;
                }
                Task::Regression => writeln!(text, "{}", values.join(","))?,
            }
        }
    }
    Ok(text)
}
