//! `Data`: a training and a test set, made in the module (the synthetic set) or parsed from the
//! four IDX files of MNIST or Fashion-MNIST as the page fetched or the user picked them.

use std::io::Read;
use std::path::Path;

use serde_json::json;
use wasm_bindgen::prelude::*;
use wgpu_mlp::data::idx::{IdxArray, parse_idx};
use wgpu_mlp::data::{IDX_FILES, synthetic};
use wgpu_mlp::{Dataset, Error};

use crate::js;

/// The gzip magic number.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

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
        let train = pair([train_images, train_labels], [IDX_FILES[0], IDX_FILES[1]]);
        let test = pair([test_images, test_labels], [IDX_FILES[2], IDX_FILES[3]]);
        let (train, test) = (train.map_err(js::error)?, test.map_err(js::error)?);
        if train.image_shape != test.image_shape {
            return Err(js::error(Error::Data {
                path: IDX_FILES[2].into(),
                why: format!(
                    "test images are {:?} but training images {:?}",
                    test.image_shape, train.image_shape
                ),
            }));
        }
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

/// An image file and its label file as a data set of 10 classes, checked as the native loader
/// checks them.
fn pair(
    [images, labels]: [&[u8]; 2],
    [images_name, labels_name]: [&str; 2],
) -> Result<Dataset, Error> {
    let images = parse(images, images_name)?;
    let (count, rows, cols) = match images.dims[..] {
        [count, rows, cols] if count > 0 && rows > 0 && cols > 0 => (count, rows, cols),
        _ => {
            return Err(data_error(
                images_name,
                format!(
                    "has dimensions {:?}; an image file has three, all non-zero: [count, rows, cols]",
                    images.dims
                ),
            ));
        }
    };
    let labels = parse(labels, labels_name)?;
    if !matches!(labels.dims[..], [count] if count > 0) {
        return Err(data_error(
            labels_name,
            format!(
                "has dimensions {:?}; a label file has one, non-zero: [count]",
                labels.dims
            ),
        ));
    }
    if labels.data.len() != count {
        return Err(data_error(
            labels_name,
            format!(
                "has {} labels but {images_name} has {count} images",
                labels.data.len()
            ),
        ));
    }
    if let Some(i) = labels.data.iter().position(|&l| l >= 10) {
        return Err(data_error(
            labels_name,
            format!("label {} of sample {i} is outside 0–9", labels.data[i]),
        ));
    }
    let labels = labels.data.into_iter().map(u32::from).collect();
    Dataset::images(images.data, (rows, cols), labels, 10)
}

/// An IDX file's content, decompressed if it is gzip (told by its magic number), parsed with the
/// library's checks; `name` names it in errors.
fn parse(bytes: &[u8], name: &str) -> Result<IdxArray, Error> {
    let path = Path::new(name);
    if bytes.starts_with(&GZIP_MAGIC) {
        // The gzip trailer states the content's size (modulo 2³²), a cheap check of the header.
        let size = (bytes.len() >= 18).then(|| {
            let trailer: [u8; 4] = bytes[bytes.len() - 4..].try_into().unwrap_or_default();
            u64::from(u32::from_le_bytes(trailer))
        });
        let reader: Box<dyn Read> = Box::new(flate2::read::GzDecoder::new(bytes));
        parse_idx(reader, path, size)
    } else {
        parse_idx(bytes, path, Some(bytes.len() as u64))
    }
}

fn data_error(name: &str, why: String) -> Error {
    Error::Data {
        path: name.into(),
        why,
    }
}
