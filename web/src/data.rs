//! `Data`: a training and a test set, made in the module (the synthetic set) or parsed from the
//! four IDX files of MNIST or Fashion-MNIST as the page fetched or the user picked them.

use std::path::Path;

use serde_json::json;
use wasm_bindgen::prelude::*;
use wgpu_mlp::augment::{Augmentation, deform};
use wgpu_mlp::data::{self, IDX_FILES, synthetic};
use wgpu_mlp::{Dataset, Error};

use crate::js;

/// A training and a test set (see `Data` in `web/API.md`).
#[wasm_bindgen]
pub struct Data {
    pub(crate) train: Dataset,
    pub(crate) test: Dataset,
}

#[wasm_bindgen]
impl Data {
    /// The library's synthetic set: `train_size` and `test_size` 28×28 glyph images of 10
    /// classes, fixed by `seed`.
    pub fn synthetic(train_size: usize, test_size: usize, seed: f64) -> Result<Data, JsError> {
        let seed = js::whole(seed, "seed").map_err(js::error)?;
        let (train, test) = synthetic::generate(train_size, test_size, seed);
        Ok(Data { train, test })
    }

    /// The four IDX files (gzip or raw) of MNIST or Fashion-MNIST, in the order training
    /// images, training labels, test images, test labels. Errors name the files as the
    /// published data set names them.
    #[wasm_bindgen(js_name = fromIdx)]
    pub fn from_idx(
        train_images: &[u8],
        train_labels: &[u8],
        test_images: &[u8],
        test_labels: &[u8],
    ) -> Result<Data, JsError> {
        let name = |i: usize| Path::new(IDX_FILES[i]);
        let train = data::idx_pair_from_bytes([train_images, train_labels], [name(0), name(1)]);
        let test = data::idx_pair_from_bytes([test_images, test_labels], [name(2), name(3)]);
        let (train, test) = (train.map_err(js::error)?, test.map_err(js::error)?);
        data::check_image_shapes(&train, &test, IDX_FILES[2]).map_err(js::error)?;
        Ok(Data { train, test })
    }

    /// `{train, test, inputs, classes, rows, cols}`.
    pub fn info(&self) -> Result<JsValue, JsError> {
        let (rows, cols) = self.train.image_shape.unwrap_or((1, self.train.inputs()));
        js::object(&json!({
            "train": self.train.len(),
            "test": self.test.len(),
            "inputs": self.train.inputs(),
            "classes": self.train.classes(),
            "rows": rows,
            "cols": cols,
        }))
    }

    /// Training sample `index` as a session with `"augment": kinds` (`affine`, `elastic` or
    /// `affine,elastic`, the CLI's default ranges) and `seed` trains on it in 1-based `epoch`:
    /// the library's CPU deformation, the same images as the GPU's within f32 rounding.
    #[wasm_bindgen(js_name = deformedTrainImage)]
    pub fn deformed_train_image(
        &self,
        index: usize,
        kinds: &str,
        epoch: u32,
        seed: f64,
    ) -> Result<Vec<f32>, JsError> {
        let seed = js::whole(seed, "seed").map_err(js::error)?;
        let augmentation = Augmentation::from_kinds(kinds).map_err(js::error)?;
        augmentation
            .check_image_shape(self.train.image_shape, "the training set")
            .map_err(js::error)?;
        if index >= self.train.len() || epoch == 0 {
            return Err(js::error(Error::Invalid {
                what: "training image".into(),
                why: format!(
                    "{index} in epoch {epoch} (the training set has {}; epochs count from 1)",
                    self.train.len()
                ),
            }));
        }
        let mut pixels = vec![0.0; self.train.inputs()];
        self.train.features.write_row(index, &mut pixels);
        let shape = self.train.image_shape.unwrap_or_default();
        Ok(deform(
            &augmentation,
            seed,
            (epoch, index as u32),
            shape,
            &pixels,
        ))
    }

    /// Test sample `index` as the model sees it (pixels in [0, 1]).
    #[wasm_bindgen(js_name = testImage)]
    pub fn test_image(&self, index: usize) -> Result<Vec<f32>, JsError> {
        if index >= self.test.len() {
            return Err(js::error(Error::Invalid {
                what: "test image".into(),
                why: format!("{index} (the test set has {})", self.test.len()),
            }));
        }
        let mut pixels = vec![0.0; self.test.inputs()];
        self.test.features.write_row(index, &mut pixels);
        Ok(pixels)
    }
}
