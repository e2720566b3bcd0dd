//! `wgpu-mlp predict`: classifies images with a saved model and prints its top three outputs.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;

use wgpu_mlp::data::image;
use wgpu_mlp::ndarray::Array2;
use wgpu_mlp::train::argmax;

use crate::common::{ModelArgs, out};

#[derive(Args, Debug)]
pub struct PredictArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Images to classify.
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<PathBuf>,
}

pub fn run(args: PredictArgs) -> Result<()> {
    let (mlp, _) = args.model.load()?;
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
        out!("{}: {best}  ({})", path.display(), top.join(", "))?;
    }
    Ok(())
}
