//! Model files: [safetensors] that PyTorch can load, written atomically.
//!
//! Tensors are named as the `state_dict` of the equivalent `torch.nn.Sequential` in which every
//! `nn.Linear` is followed by its activation module: layer `l` is `{2l}.weight` `(out, in)` and
//! `{2l}.bias` `(out)`, f32 little-endian. The architecture goes into the safetensors metadata
//! (`sizes`, `activations`, `loss`), so a file alone rebuilds the model. Training state that
//! `--resume` needs (`epochs`, `seed`, `optimizer`) rides along in the metadata too.
//!
//! A save writes a temporary file beside the target, syncs it, and renames it into place, so an
//! interrupted save leaves the previous file intact ([`crate::files::write_atomically`]).
//!
//! [`model_file`] reads and writes the model; [`optimizer_file`] the optimizer state kept beside it
//! for `--resume`; this module holds what both share.
//!
//! [safetensors]: https://github.com/huggingface/safetensors

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::error::{Error, Result};

pub mod model_file;
pub mod optimizer_file;

pub use model_file::{Architecture, from_bytes, from_bytes_with, load, load_with, save, to_bytes};
pub use optimizer_file::{load_optimizer, optimizer_path, save_optimizer};

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

pub(crate) fn model_error(path: &Path, why: impl Into<String>) -> Error {
    Error::Model(format!("{}: {}", path.display(), why.into()))
}

/// The tensor names of layer `l`.
pub fn tensor_names(l: usize) -> (String, String) {
    (format!("{}.weight", 2 * l), format!("{}.bias", 2 * l))
}

pub(crate) fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A named f32 tensor: name, shape, little-endian bytes.
pub(crate) type NamedTensor = (String, Vec<usize>, Vec<u8>);

/// safetensors bytes of `tensors` with `metadata`; `what` names the content in errors.
pub(crate) fn serialize(
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

/// Reads the f32 tensor `name` of `shape`; `path` names the file in errors.
pub(crate) fn read_tensor(
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
