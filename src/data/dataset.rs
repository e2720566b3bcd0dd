//! [`Dataset`]: samples as the trainers take them — features as bytes (images, scaled to
//! `[0, 1]` where they are used) or as floats (used as stored, after any standardization), and
//! targets as class labels or as float values to regress.
//!
//! Features stay in the type they came in: the GPU trainer uploads bytes as bytes (60,000 × 784
//! f32 would not fit a 128 MiB binding) and converts them in the gather kernel, so a byte data
//! set costs a quarter of its float form on the device.

use ndarray::{Array1, Array2, ArrayView1, Axis};

use crate::error::{Error, Result};
use crate::rng::Rng;

/// Every sample's features, one row per sample.
#[derive(Clone, Debug, PartialEq)]
pub enum Features {
    /// Bytes, scaled by 1/255 where they are used (pixels: 0 = black, 255 = white).
    Bytes(Array2<u8>),
    /// Floats, used as they are.
    Floats(Array2<f32>),
}

impl Features {
    /// Number of samples.
    pub fn len(&self) -> usize {
        match self {
            Features::Bytes(x) => x.nrows(),
            Features::Floats(x) => x.nrows(),
        }
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Features per sample.
    pub fn width(&self) -> usize {
        match self {
            Features::Bytes(x) => x.ncols(),
            Features::Floats(x) => x.ncols(),
        }
    }

    /// Bytes per stored sample: 1 per byte feature, 4 per float.
    pub fn bytes_per_sample(&self) -> usize {
        match self {
            Features::Bytes(x) => x.ncols(),
            Features::Floats(x) => 4 * x.ncols(),
        }
    }

    /// The bytes, if the features are bytes.
    pub fn bytes(&self) -> Option<&Array2<u8>> {
        match self {
            Features::Bytes(x) => Some(x),
            Features::Floats(_) => None,
        }
    }

    /// The floats, if the features are floats.
    pub fn floats(&self) -> Option<&Array2<f32>> {
        match self {
            Features::Bytes(_) => None,
            Features::Floats(x) => Some(x),
        }
    }

    /// Sample `index` as the model sees it: bytes divided by 255, floats as stored.
    pub fn write_row(&self, index: usize, out: &mut [f32]) {
        match self {
            Features::Bytes(x) => {
                let row = x.row(index);
                let scale = |(value, &byte): (&mut f32, &u8)| *value = f32::from(byte) / 255.0;
                // Over a slice where the row is contiguous, so that the loop vectorizes.
                match row.as_slice() {
                    Some(bytes) => out.iter_mut().zip(bytes).for_each(scale),
                    None => out.iter_mut().zip(row.iter()).for_each(scale),
                }
            }
            Features::Floats(x) => {
                for (value, &float) in out.iter_mut().zip(x.row(index)) {
                    *value = float;
                }
            }
        }
    }

    fn select(&self, indices: &[usize]) -> Features {
        match self {
            Features::Bytes(x) => Features::Bytes(x.select(Axis(0), indices)),
            Features::Floats(x) => Features::Floats(x.select(Axis(0), indices)),
        }
    }
}

impl From<Array2<u8>> for Features {
    fn from(x: Array2<u8>) -> Self {
        Features::Bytes(x.as_standard_layout().into_owned())
    }
}

impl From<Array2<f32>> for Features {
    fn from(x: Array2<f32>) -> Self {
        Features::Floats(x.as_standard_layout().into_owned())
    }
}

/// Every sample's target.
#[derive(Clone, Debug, PartialEq)]
pub enum Targets {
    /// A class index per sample, below `classes`; the model's outputs are the classes.
    Classes {
        /// One label per sample.
        labels: Array1<u32>,
        /// Number of classes (at least the largest label + 1).
        classes: usize,
    },
    /// `values.ncols()` floats per sample, to regress.
    Values(Array2<f32>),
}

impl Targets {
    /// Number of samples.
    pub fn len(&self) -> usize {
        match self {
            Targets::Classes { labels, .. } => labels.len(),
            Targets::Values(values) => values.nrows(),
        }
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The model's output width: the class count, or values per sample.
    pub fn width(&self) -> usize {
        match self {
            Targets::Classes { classes, .. } => *classes,
            Targets::Values(values) => values.ncols(),
        }
    }

    /// The labels and class count, for classification.
    pub fn classes(&self) -> Option<(ArrayView1<'_, u32>, usize)> {
        match self {
            Targets::Classes { labels, classes } => Some((labels.view(), *classes)),
            Targets::Values(_) => None,
        }
    }

    /// Sample `index` as the loss sees it: one-hot for a class, the values for regression.
    pub fn write_row(&self, index: usize, out: &mut [f32]) {
        match self {
            Targets::Classes { labels, .. } => {
                out.fill(0.0);
                out[labels[index] as usize] = 1.0;
            }
            Targets::Values(values) => {
                for (o, &v) in out.iter_mut().zip(values.row(index)) {
                    *o = v;
                }
            }
        }
    }

    fn select(&self, indices: &[usize]) -> Targets {
        match self {
            Targets::Classes { labels, classes } => Targets::Classes {
                labels: labels.select(Axis(0), indices),
                classes: *classes,
            },
            Targets::Values(values) => Targets::Values(values.select(Axis(0), indices)),
        }
    }
}

/// Samples for training or evaluation: features and targets, row for row.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// One row per sample.
    pub features: Features,
    /// One target per sample.
    pub targets: Targets,
    /// `(height, width)` when the features are images, row-major; `None` otherwise.
    pub image_shape: Option<(usize, usize)>,
}

impl Dataset {
    /// Classification over `classes` classes (`None`: the largest label + 1), checked.
    pub fn classification(
        features: impl Into<Features>,
        labels: Array1<u32>,
        classes: Option<usize>,
    ) -> Result<Dataset> {
        let largest = labels.iter().copied().max().map_or(0, |l| l as usize + 1);
        let dataset = Dataset {
            features: features.into(),
            targets: Targets::Classes {
                classes: classes.unwrap_or(largest),
                labels,
            },
            image_shape: None,
        };
        dataset.validate("data set")?;
        Ok(dataset)
    }

    /// Regression onto `targets`, one row per sample, checked.
    pub fn regression(features: impl Into<Features>, targets: Array2<f32>) -> Result<Dataset> {
        let dataset = Dataset {
            features: features.into(),
            targets: Targets::Values(targets.as_standard_layout().into_owned()),
            image_shape: None,
        };
        dataset.validate("data set")?;
        Ok(dataset)
    }

    /// `count` images of `rows × cols` bytes with their class labels, unchecked (see
    /// [`Dataset::validate`]).
    pub fn images(
        pixels: Vec<u8>,
        (rows, cols): (usize, usize),
        labels: Vec<u32>,
        classes: usize,
    ) -> Result<Dataset> {
        let count = labels.len();
        let features = Array2::from_shape_vec((count, rows * cols), pixels).map_err(|_| {
            Error::invalid(
                "images",
                format!("the pixels are not {count} images of {rows}×{cols}"),
            )
        })?;
        Ok(Dataset {
            features: Features::Bytes(features),
            targets: Targets::Classes {
                labels: Array1::from(labels),
                classes,
            },
            image_shape: Some((rows, cols)),
        })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Features per sample: the model's input width.
    pub fn inputs(&self) -> usize {
        self.features.width()
    }

    /// The model's output width: classes, or target values per sample.
    pub fn outputs(&self) -> usize {
        self.targets.width()
    }

    /// The number of classes, for a classification set.
    pub fn classes(&self) -> Option<usize> {
        self.targets.classes().map(|(_, classes)| classes)
    }

    /// Whether the targets are classes (else values to regress).
    pub fn is_classification(&self) -> bool {
        self.classes().is_some()
    }

    /// The samples at `indices` as `x: (n, inputs)`, bytes scaled to `[0, 1]`, and `y: (n,
    /// outputs)`, one-hot for classes. Indices must be below [`Dataset::len`].
    pub fn batch(&self, indices: &[usize]) -> (Array2<f32>, Array2<f32>) {
        let mut x = Array2::zeros((indices.len(), self.inputs()));
        let mut y = Array2::zeros((indices.len(), self.outputs()));
        for (row, &sample) in indices.iter().enumerate() {
            let x_row = x
                .row_mut(row)
                .into_slice()
                .expect("a fresh array is contiguous");
            self.features.write_row(sample, x_row);
            let y_row = y
                .row_mut(row)
                .into_slice()
                .expect("a fresh array is contiguous");
            self.targets.write_row(sample, y_row);
        }
        (x, y)
    }

    /// The samples at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        Dataset {
            features: self.features.select(indices),
            targets: self.targets.select(indices),
            image_shape: self.image_shape,
        }
    }

    /// The first `count` samples (all of them if there are fewer).
    pub fn take(&self, count: usize) -> Dataset {
        let count = count.min(self.len());
        self.subset(&(0..count).collect::<Vec<_>>())
    }

    /// Splits off a `fraction` of the samples, chosen by `seed`, as a validation set: returns
    /// `(rest, validation)`, each in the original order. At least one sample stays on each side
    /// when the fraction is above 0 and there are two samples or more.
    pub fn split_validation(&self, fraction: f64, seed: u64) -> Result<(Dataset, Dataset)> {
        if !(0.0..1.0).contains(&fraction) {
            return Err(Error::invalid(
                "validation fraction",
                format!("{fraction} (must be at least 0 and below 1)"),
            ));
        }
        let len = self.len();
        let held = ((len as f64 * fraction).round() as usize).clamp(
            usize::from(fraction > 0.0 && len > 1),
            len.saturating_sub(1),
        );
        let mut order: Vec<u32> = (0..len as u32).collect();
        Rng::new(seed ^ 0x7661_6c69_6461_7465).shuffle(&mut order);
        let mut held_out = vec![false; len];
        for &i in &order[..held] {
            held_out[i as usize] = true;
        }
        let (validation, rest): (Vec<usize>, Vec<usize>) = (0..len).partition(|&i| held_out[i]);
        Ok((self.subset(&rest), self.subset(&validation)))
    }

    /// Checks that sizes agree, every label is below the class count and every float is
    /// finite; `what` names the set in errors.
    pub fn validate(&self, what: &str) -> Result<()> {
        let invalid = |why: String| Error::invalid(what, why);
        if self.is_empty() {
            return Err(invalid("has no samples".into()));
        }
        if self.features.len() != self.len() {
            return Err(invalid(format!(
                "has {} feature rows for {} targets",
                self.features.len(),
                self.len()
            )));
        }
        if self.inputs() == 0 || self.outputs() == 0 {
            return Err(invalid(format!(
                "has {} features and {} outputs per sample (each must be at least 1)",
                self.inputs(),
                self.outputs()
            )));
        }
        if let Some((rows, cols)) = self.image_shape
            && rows * cols != self.inputs()
        {
            return Err(invalid(format!(
                "has {} features per sample, not {rows}×{cols} pixels",
                self.inputs()
            )));
        }
        if let Features::Floats(x) = &self.features
            && let Some((i, v)) = x.iter().enumerate().find(|(_, v)| !v.is_finite())
        {
            let width = self.inputs();
            return Err(invalid(format!(
                "feature {} of sample {} is {v}, not a finite number",
                i % width,
                i / width
            )));
        }
        match &self.targets {
            Targets::Classes { labels, classes } => {
                if let Some(i) = labels.iter().position(|&l| l as usize >= *classes) {
                    return Err(invalid(format!(
                        "label {} of sample {i} is not below the class count {classes}",
                        labels[i]
                    )));
                }
            }
            Targets::Values(values) => {
                if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                    let width = values.ncols();
                    return Err(invalid(format!(
                        "target {} of sample {} is {v}, not a finite number",
                        i % width,
                        i / width
                    )));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use ndarray::array;

    use super::*;

    #[test]
    fn a_batch_scales_bytes_and_one_hot_encodes_classes() {
        let x = array![[0u8, 255], [51, 102], [255, 0]];
        let set = Dataset::classification(x, array![2, 0, 1], None).unwrap();
        assert_eq!(set.classes(), Some(3));
        let (x, y) = set.batch(&[1, 0]);
        assert_eq!(x, array![[0.2, 0.4], [0.0, 1.0]]);
        assert_eq!(y, array![[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]);
    }

    #[test]
    fn a_regression_batch_passes_floats_through() {
        let x = array![[1.5f32, -2.0], [3.0, 4.0]];
        let set = Dataset::regression(x, array![[10.0f32], [-1.0]]).unwrap();
        let (x, y) = set.batch(&[1]);
        assert_eq!(x, array![[3.0, 4.0]]);
        assert_eq!(y, array![[-1.0]]);
        assert!(!set.is_classification());
    }

    #[test]
    fn bad_values_are_named_by_sample_and_column() {
        let nan = Dataset::regression(array![[1.0f32, 2.0], [3.0, f32::NAN]], array![[1.0], [2.0]]);
        let message = nan.unwrap_err().to_string();
        assert!(message.contains("feature 1 of sample 1"), "{message}");
        let label = Dataset::classification(array![[1u8], [2]], array![0, 5], Some(3));
        let message = label.unwrap_err().to_string();
        assert!(message.contains("label 5 of sample 1"), "{message}");
    }

    #[test]
    fn a_validation_split_is_seeded_disjoint_and_complete() {
        let x = Array2::from_shape_fn((100, 1), |(i, _)| i as f32);
        let set = Dataset::regression(x.clone(), x).unwrap();
        let (rest, validation) = set.split_validation(0.1, 7).unwrap();
        assert_eq!((rest.len(), validation.len()), (90, 10));
        let (a, b) = (
            rest.features.floats().unwrap(),
            validation.features.floats().unwrap(),
        );
        let mut all: Vec<f32> = a.iter().chain(b.iter()).copied().collect();
        all.sort_by(f32::total_cmp);
        assert_eq!(all, (0..100).map(|i| i as f32).collect::<Vec<_>>());
        assert_eq!(set.split_validation(0.1, 7).unwrap().1, validation);
        assert_ne!(set.split_validation(0.1, 8).unwrap().1, validation);
    }
}
