//! The optimizer state kept beside a model file for `--resume`: its moments, named after their
//! parameters, and its step count.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2};
use safetensors::tensor::SafeTensors;

use super::{FORMAT, f32_bytes, model_error, read_tensor, serialize, tensor_names};
use crate::error::{Error, Result};
use crate::files::write_atomically;
use crate::model::Mlp;
use crate::optim::{Optimizer, OptimizerConfig, OptimizerState};

/// Where the optimizer state of the model file `model` is kept: beside it, as
/// `<stem>.optimizer.safetensors`, so that the model file itself stays a plain `state_dict`.
pub fn optimizer_path(model: &Path) -> PathBuf {
    model.with_extension("optimizer.safetensors")
}

/// Saves an optimizer state for a model trained `epochs` epochs with the rule `optimizer`
/// (atomically, as [`save`](super::save)). Moments are named after their parameters:
/// `{2l}.weight.moment1`, ….
pub fn save_optimizer(
    path: &Path,
    state: &OptimizerState,
    optimizer: Optimizer,
    epochs: usize,
) -> Result<()> {
    let mut buffers = Vec::new();
    for (l, ((w1, b1), (w2, b2))) in state.moment1.iter().zip(&state.moment2).enumerate() {
        let (weight_name, bias_name) = tensor_names(l);
        for (name, values, shape) in [
            (
                format!("{weight_name}.moment1"),
                w1.iter().copied().collect::<Vec<_>>(),
                w1.shape().to_vec(),
            ),
            (
                format!("{bias_name}.moment1"),
                b1.to_vec(),
                b1.shape().to_vec(),
            ),
            (
                format!("{weight_name}.moment2"),
                w2.iter().copied().collect(),
                w2.shape().to_vec(),
            ),
            (
                format!("{bias_name}.moment2"),
                b2.to_vec(),
                b2.shape().to_vec(),
            ),
        ] {
            buffers.push((name, shape, f32_bytes(&values)));
        }
    }
    let metadata = HashMap::from([
        ("format".to_string(), format!("{FORMAT}-optimizer")),
        ("optimizer".to_string(), optimizer.name().to_string()),
        ("steps".to_string(), state.steps.to_string()),
        ("epochs".to_string(), epochs.to_string()),
    ]);
    let bytes = serialize(&buffers, metadata, "the optimizer state")?;
    write_atomically(path, &bytes)
}

/// Loads the optimizer state saved for `mlp` if it exists and belongs to the same epoch and rule;
/// `Ok(None)` when there is none or it is stale (a save interrupted between the two files).
pub fn load_optimizer(
    path: &Path,
    mlp: &Mlp,
    optimizer: &OptimizerConfig,
    epochs: usize,
) -> Result<Option<OptimizerState>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(Error::io(path, source));
        }
    };
    let (_, header) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| model_error(path, format!("is not a safetensors file ({e})")))?;
    let tensors = SafeTensors::deserialize(&bytes)
        .map_err(|e| model_error(path, format!("is not a valid safetensors file ({e})")))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let field = |key: &str| metadata.get(key).cloned().unwrap_or_default();
    if field("optimizer") != optimizer.optimizer.name() || field("epochs") != epochs.to_string() {
        return Ok(None);
    }
    let steps = field("steps")
        .parse::<u64>()
        .map_err(|_| model_error(path, "has no valid \"steps\" in its metadata"))?;
    let mut state = OptimizerState::new(mlp);
    state.steps = steps;
    for (l, layer) in mlp.layers.iter().enumerate() {
        let (weight_name, bias_name) = tensor_names(l);
        let (outputs, inputs) = (layer.outputs(), layer.inputs());
        for (k, moments) in [&mut state.moment1, &mut state.moment2]
            .into_iter()
            .enumerate()
        {
            let weight = read_tensor(
                &tensors,
                &format!("{weight_name}.moment{}", k + 1),
                &[outputs, inputs],
                path,
            )?;
            let bias = read_tensor(
                &tensors,
                &format!("{bias_name}.moment{}", k + 1),
                &[outputs],
                path,
            )?;
            moments[l] = (
                Array2::from_shape_vec((outputs, inputs), weight)
                    .map_err(|e| model_error(path, e.to_string()))?,
                Array1::from(bias),
            );
        }
    }
    Ok(Some(state))
}
