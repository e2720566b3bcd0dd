//! The model file: the parameters as a PyTorch `state_dict`, the architecture in the metadata.

use std::collections::HashMap;
use std::path::Path;

use ndarray::{Array1, Array2};
use safetensors::tensor::SafeTensors;

use super::{CheckpointInfo, FORMAT, f32_bytes, model_error, read_tensor, serialize, tensor_names};
use crate::error::{Error, Result};
use crate::files::write_atomically;
use crate::model::{Activation, DEFAULT_LEAKY_SLOPE, Dense, Loss, Mlp};

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
    // Only a model with a leaky ReLU layer has a slope to record; others read the default.
    if mlp
        .layers
        .iter()
        .any(|l| l.activation == Activation::LeakyRelu)
    {
        metadata.insert("leaky_slope".into(), mlp.leaky_slope.to_string());
    }
    metadata.insert("epochs".into(), info.epochs.to_string());
    serialize(&buffers, metadata, "the model")
}

/// Writes `mlp` to `path` atomically: a temporary file beside it, fsync, rename.
pub fn save(path: &Path, mlp: &Mlp, info: &CheckpointInfo) -> Result<()> {
    let bytes = to_bytes(mlp, info)?;
    write_atomically(path, &bytes)
}

/// Reads a model file written by [`save`] (or by PyTorch with the same names and metadata).
pub fn load(path: &Path) -> Result<(Mlp, CheckpointInfo)> {
    load_with(path, None)
}

/// [`load`], accepting a file without the architecture in its metadata when `architecture` says
/// what it is (see [`from_bytes_with`]).
pub fn load_with(
    path: &Path,
    architecture: Option<&Architecture>,
) -> Result<(Mlp, CheckpointInfo)> {
    let bytes = std::fs::read(path).map_err(|source| Error::io(path, source))?;
    from_bytes_with(&bytes, path, architecture)
}

/// What a file without this crate's metadata (a PyTorch `state_dict` saved as safetensors) cannot
/// say about itself; the layer sizes come from its tensors' shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Architecture {
    /// The activation of every hidden layer.
    pub hidden: Activation,
    /// The activation of the output layer.
    pub output: Activation,
    /// The loss.
    pub loss: Loss,
}

/// Parses a model file's bytes; `path` only names it in errors.
pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<(Mlp, CheckpointInfo)> {
    from_bytes_with(bytes, path, None)
}

/// [`from_bytes`], accepting a file without the architecture in its metadata when `architecture`
/// says what it is.
pub fn from_bytes_with(
    bytes: &[u8],
    path: &Path,
    architecture: Option<&Architecture>,
) -> Result<(Mlp, CheckpointInfo)> {
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| model_error(path, format!("is not a safetensors file ({e})")))?;
    let tensors = SafeTensors::deserialize(bytes)
        .map_err(|e| model_error(path, format!("is not a valid safetensors file ({e})")))?;
    let mut metadata = header.metadata().clone().unwrap_or_default();
    if let Some(format) = metadata.remove("format")
        && format != FORMAT
    {
        return Err(model_error(
            path,
            format!(
                "is in format {format:?}, which this version does not read (it reads {FORMAT:?})"
            ),
        ));
    }
    let epochs = metadata
        .remove("epochs")
        .map(|e| e.parse::<usize>())
        .transpose()
        .map_err(|e| model_error(path, format!("epochs: {e}")))?
        .unwrap_or(0);
    let (sizes, activations, loss) = match architecture {
        _ if metadata.contains_key("sizes") => architecture_from_metadata(&mut metadata, path)?,
        Some(architecture) => architecture_from_tensors(&tensors, architecture, path)?,
        None => {
            let missing: Vec<&str> = ["sizes", "activations", "loss"]
                .into_iter()
                .filter(|key| !metadata.contains_key(*key))
                .collect();
            return Err(model_error(
                path,
                format!(
                    "has no {} in its metadata (a PyTorch state_dict?); say what it is with the \
                     hidden and output activations and the loss (--hidden, --output, --loss)",
                    missing.join(", ")
                ),
            ));
        }
    };
    let leaky_slope = metadata
        .remove("leaky_slope")
        .map(|text| text.trim().parse::<f32>())
        .transpose()
        .map_err(|e| model_error(path, format!("leaky_slope: {e}")))?
        .unwrap_or(DEFAULT_LEAKY_SLOPE);
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
    refuse_extra_tensors(&tensors, layers.len(), path)?;
    let mlp = Mlp {
        layers,
        loss,
        leaky_slope,
    };
    mlp.validate().map_err(|e| match e {
        Error::Model(why) => model_error(path, why),
        other => model_error(path, other.to_string()),
    })?;
    Ok((
        mlp,
        CheckpointInfo {
            epochs,
            extra: metadata,
        },
    ))
}

/// Sizes, activations and loss as the metadata states them (taken out of it).
fn architecture_from_metadata(
    metadata: &mut HashMap<String, String>,
    path: &Path,
) -> Result<(Vec<usize>, Vec<Activation>, Loss)> {
    let mut take = |key: &str| {
        metadata
            .remove(key)
            .ok_or_else(|| model_error(path, format!("has no {key:?} in its metadata")))
    };
    let sizes_text = take("sizes")?;
    let activations_text = take("activations")?;
    let loss = Loss::from_name(&take("loss")?).map_err(|e| model_error(path, e.to_string()))?;
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
    Ok((sizes, activations, loss))
}

/// Sizes from the shapes of `0.weight`, `2.weight`, …; activations and loss from `architecture`.
fn architecture_from_tensors(
    tensors: &SafeTensors<'_>,
    architecture: &Architecture,
    path: &Path,
) -> Result<(Vec<usize>, Vec<Activation>, Loss)> {
    let mut sizes = Vec::new();
    for l in 0.. {
        let Ok(weight) = tensors.tensor(&tensor_names(l).0) else {
            break;
        };
        let [outputs, inputs] = weight.shape() else {
            return Err(model_error(
                path,
                format!(
                    "tensor {:?} has shape {:?}, not (out, in)",
                    tensor_names(l).0,
                    weight.shape()
                ),
            ));
        };
        if sizes.is_empty() {
            sizes.push(*inputs);
        }
        sizes.push(*outputs);
    }
    if sizes.is_empty() {
        return Err(model_error(
            path,
            "has no tensor \"0.weight\": not the state_dict of an nn.Sequential of nn.Linear layers",
        ));
    }
    let layers = sizes.len() - 1;
    let mut activations = vec![architecture.hidden; layers - 1];
    activations.push(architecture.output);
    Ok((sizes, activations, architecture.loss))
}

/// An error naming every tensor that a model of `layers` layers does not have.
fn refuse_extra_tensors(tensors: &SafeTensors<'_>, layers: usize, path: &Path) -> Result<()> {
    let expected: Vec<String> = (0..layers)
        .flat_map(|l| <[String; 2]>::from(tensor_names(l)))
        .collect();
    let mut extra: Vec<String> = tensors
        .names()
        .into_iter()
        .filter(|name| !expected.iter().any(|e| e == *name))
        .map(|name| format!("{name:?}"))
        .collect();
    if extra.is_empty() {
        return Ok(());
    }
    extra.sort();
    Err(model_error(
        path,
        format!(
            "has tensors that are not part of its {layers}-layer model: {}",
            extra.join(", ")
        ),
    ))
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
        )
        .unwrap();
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
        )
        .unwrap();
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
