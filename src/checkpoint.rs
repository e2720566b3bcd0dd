//! Model files: [safetensors] that PyTorch can load, written atomically.
//!
//! Tensors are named as the `state_dict` of the equivalent `torch.nn.Sequential` in which every
//! `nn.Linear` is followed by its activation module: layer `l` is `{2l}.weight` `(out, in)` and
//! `{2l}.bias` `(out)`, f32 little-endian. The architecture goes into the safetensors metadata
//! (`sizes`, `activations`, `loss`), so a file alone rebuilds the model. Training state that
//! `--resume` needs (`epochs`, `seed`, `optimizer`) rides along in the metadata too.
//!
//! A save writes a temporary file beside the target, syncs it, and renames it into place, so an
//! interrupted save leaves the previous file intact.
//!
//! [safetensors]: https://github.com/huggingface/safetensors

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::error::{Error, Result};
use crate::model::{Activation, Dense, Loss, Mlp};
use crate::optim::{OptimizerConfig, OptimizerState};

/// The value of the `format` metadata key this version writes.
pub const FORMAT: &str = "wgpu-mlp/1";

/// What a model file holds besides the parameters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CheckpointInfo {
    /// Epochs the model has been trained for.
    pub epochs: usize,
    /// Any further `key → value` pairs (optimizer, seed, data set, …).
    pub extra: HashMap<String, String>,
}

fn model_error(path: &Path, why: impl Into<String>) -> Error {
    Error::Model(format!("{}: {}", path.display(), why.into()))
}

/// The tensor names of layer `l`.
pub fn tensor_names(l: usize) -> (String, String) {
    (format!("{}.weight", 2 * l), format!("{}.bias", 2 * l))
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A named f32 tensor: name, shape, little-endian bytes.
type NamedTensor = (String, Vec<usize>, Vec<u8>);

/// safetensors bytes of `tensors` with `metadata`; `what` names the content in errors.
fn serialize(
    tensors: &[NamedTensor],
    metadata: HashMap<String, String>,
    what: &str,
) -> Result<Vec<u8>> {
    let views = tensors
        .iter()
        .map(|(name, shape, bytes)| {
            let view = TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map_err(|e| Error::Model(format!("serializing {what}: {e}")))?;
            Ok((name.clone(), view))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, Some(metadata))
        .map_err(|e| Error::Model(format!("serializing {what}: {e}")))
}

/// The file's bytes: tensors and metadata.
pub fn to_bytes(mlp: &Mlp, info: &CheckpointInfo) -> Result<Vec<u8>> {
    mlp.validate()?;
    let mut buffers = Vec::new();
    for (l, layer) in mlp.layers.iter().enumerate() {
        let (weight_name, bias_name) = tensor_names(l);
        let weight: Vec<f32> = layer.weight.iter().copied().collect();
        buffers.push((
            weight_name,
            vec![layer.outputs(), layer.inputs()],
            f32_bytes(&weight),
        ));
        buffers.push((
            bias_name,
            vec![layer.outputs()],
            f32_bytes(&layer.bias.to_vec()),
        ));
    }
    let mut metadata = info.extra.clone();
    let sizes: Vec<String> = mlp.sizes().iter().map(usize::to_string).collect();
    let activations: Vec<&str> = mlp.layers.iter().map(|l| l.activation.name()).collect();
    metadata.insert("format".into(), FORMAT.into());
    metadata.insert("sizes".into(), sizes.join(","));
    metadata.insert("activations".into(), activations.join(","));
    metadata.insert("loss".into(), mlp.loss.name().into());
    metadata.insert("epochs".into(), info.epochs.to_string());
    serialize(&buffers, metadata, "the model")
}

/// Writes `mlp` to `path` atomically: a temporary file beside it, fsync, rename.
pub fn save(path: &Path, mlp: &Mlp, info: &CheckpointInfo) -> Result<()> {
    let bytes = to_bytes(mlp, info)?;
    write_atomically(path, &bytes)
}

/// Replaces `path` with `bytes` so that a reader (or a crash) sees the old file or the new one,
/// never a mixture.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| Error::Io {
        path: path.display().to_string(),
        source,
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| Error::invalid("model path", format!("{} names no file", path.display())))?;
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let temporary = directory.join(format!(
        ".{}.tmp-{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut file = File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        // Make the rename itself durable.
        if let Ok(dir) = File::open(&directory) {
            let _ = dir.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result.map_err(io)
}

/// Where the optimizer state of the model file `model` is kept: beside it, as
/// `<stem>.optimizer.safetensors`, so that the model file itself stays a plain `state_dict`.
pub fn optimizer_path(model: &Path) -> PathBuf {
    model.with_extension("optimizer.safetensors")
}

/// Saves an optimizer state for a model trained `epochs` epochs with `optimizer` (atomically, as
/// [`save`]). Moments are named after their parameters: `{2l}.weight.moment1`, ….
pub fn save_optimizer(
    path: &Path,
    state: &OptimizerState,
    optimizer: &OptimizerConfig,
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
        (
            "optimizer".to_string(),
            optimizer.optimizer.name().to_string(),
        ),
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
            return Err(Error::Io {
                path: path.display().to_string(),
                source,
            });
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

/// Reads a model file written by [`save`] (or by PyTorch with the same names and metadata).
pub fn load(path: &Path) -> Result<(Mlp, CheckpointInfo)> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    from_bytes(&bytes, path)
}

/// Parses a model file's bytes; `path` only names it in errors.
pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<(Mlp, CheckpointInfo)> {
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| model_error(path, format!("is not a safetensors file ({e})")))?;
    let tensors = SafeTensors::deserialize(bytes)
        .map_err(|e| model_error(path, format!("is not a valid safetensors file ({e})")))?;
    let mut metadata = header.metadata().clone().unwrap_or_default();
    let mut take = |key: &str| {
        metadata
            .remove(key)
            .ok_or_else(|| model_error(path, format!("has no {key:?} in its metadata")))
    };
    let sizes_text = take("sizes")?;
    let activations_text = take("activations")?;
    let loss = Loss::from_name(&take("loss")?).map_err(|e| model_error(path, e.to_string()))?;
    let epochs = metadata
        .remove("epochs")
        .map(|e| e.parse::<usize>())
        .transpose()
        .map_err(|e| model_error(path, format!("epochs: {e}")))?
        .unwrap_or(0);
    metadata.remove("format");

    let sizes = sizes_text
        .split(',')
        .map(|s| {
            s.trim().parse::<usize>().map_err(|_| {
                model_error(
                    path,
                    format!("sizes {sizes_text:?} is not a list of numbers"),
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let activations = activations_text
        .split(',')
        .map(|s| Activation::from_name(s.trim()).map_err(|e| model_error(path, e.to_string())))
        .collect::<Result<Vec<_>>>()?;
    if sizes.len() < 2 || activations.len() != sizes.len() - 1 {
        return Err(model_error(
            path,
            format!(
                "has {} sizes and {} activations; a model of n layers has n+1 sizes and n activations",
                sizes.len(),
                activations.len()
            ),
        ));
    }
    let mut layers = Vec::with_capacity(activations.len());
    for (l, activation) in activations.into_iter().enumerate() {
        let (inputs, outputs) = (sizes[l], sizes[l + 1]);
        let (weight_name, bias_name) = tensor_names(l);
        let weight = read_tensor(&tensors, &weight_name, &[outputs, inputs], path)?;
        let bias = read_tensor(&tensors, &bias_name, &[outputs], path)?;
        layers.push(Dense {
            weight: Array2::from_shape_vec((outputs, inputs), weight)
                .map_err(|e| model_error(path, e.to_string()))?,
            bias: Array1::from(bias),
            activation,
        });
    }
    let mlp = Mlp { layers, loss };
    mlp.validate()
        .map_err(|e| model_error(path, e.to_string()))?;
    Ok((
        mlp,
        CheckpointInfo {
            epochs,
            extra: metadata,
        },
    ))
}

fn read_tensor(
    tensors: &SafeTensors<'_>,
    name: &str,
    shape: &[usize],
    path: &Path,
) -> Result<Vec<f32>> {
    let view = tensors
        .tensor(name)
        .map_err(|_| model_error(path, format!("has no tensor {name:?}")))?;
    if view.dtype() != Dtype::F32 {
        return Err(model_error(
            path,
            format!(
                "tensor {name:?} is {:?}; only F32 is supported",
                view.dtype()
            ),
        ));
    }
    if view.shape() != shape {
        return Err(model_error(
            path,
            format!(
                "tensor {name:?} has shape {:?} but the metadata's sizes make it {shape:?}",
                view.shape()
            ),
        ));
    }
    Ok(view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_every_bit_and_the_metadata() {
        let mlp = Mlp::new(
            &[5, 7, 3],
            Activation::Relu,
            Activation::Softmax,
            Loss::CrossEntropy,
            3,
        );
        let info = CheckpointInfo {
            epochs: 4,
            extra: HashMap::from([("optimizer".to_string(), "adam".to_string())]),
        };
        let bytes = to_bytes(&mlp, &info).unwrap();
        let (back, back_info) = from_bytes(&bytes, Path::new("m.safetensors")).unwrap();
        assert_eq!(back, mlp);
        assert_eq!(back_info, info);
        let names = SafeTensors::deserialize(&bytes)
            .unwrap()
            .names()
            .into_iter()
            .map(String::from)
            .collect::<std::collections::BTreeSet<_>>();
        assert_eq!(
            names,
            ["0.bias", "0.weight", "2.bias", "2.weight"]
                .map(String::from)
                .into()
        );
    }

    #[test]
    fn broken_files_are_errors_naming_the_problem() {
        let path = Path::new("m.safetensors");
        let error = from_bytes(b"not a model", path).unwrap_err().to_string();
        assert!(error.contains("not a safetensors file"), "{error}");
        let mlp = Mlp::new(
            &[2, 2],
            Activation::Relu,
            Activation::Identity,
            Loss::Mse,
            1,
        );
        let mut info = CheckpointInfo::default();
        info.extra.insert("note".into(), "x".into());
        let good = to_bytes(&mlp, &info).unwrap();
        for cut in [8, 20, good.len() - 1] {
            assert!(
                from_bytes(&good[..cut], path).is_err(),
                "truncated at {cut}"
            );
        }
        let mut nan = mlp.clone();
        nan.layers[0].weight[[0, 0]] = f32::NAN;
        assert!(
            to_bytes(&nan, &info)
                .unwrap_err()
                .to_string()
                .contains("NaN")
        );
    }
}
