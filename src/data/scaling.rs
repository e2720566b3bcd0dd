//! Input and target scaling: standardization of float columns to mean 0 and standard deviation 1,
//! fitted on the training set and applied unchanged to every other set, with a compact text
//! form that round-trips bit for bit (for a checkpoint's metadata).
//!
//! The standard deviation is the population one (numpy's default `np.std`, `ddof = 0`), computed
//! in f64; a constant column gets 1, so that it maps to 0 instead of dividing by zero.

use ndarray::{Array2, Axis};

use super::dataset::{Dataset, Features, Targets};
use crate::error::{Error, Result};

/// Per-column mean and standard deviation: `x ↦ (x − mean) / std`.
#[derive(Clone, Debug, PartialEq)]
pub struct Standardization {
    /// One mean per column.
    pub mean: Vec<f32>,
    /// One standard deviation per column, never 0.
    pub std: Vec<f32>,
}

impl Standardization {
    /// The mean and population standard deviation of each column of `x`.
    pub fn fit(x: &Array2<f32>) -> Standardization {
        let rows = x.nrows().max(1) as f64;
        let mut mean = Vec::with_capacity(x.ncols());
        let mut std = Vec::with_capacity(x.ncols());
        for column in x.axis_iter(Axis(1)) {
            let m = column.iter().map(|&v| f64::from(v)).sum::<f64>() / rows;
            let variance = column
                .iter()
                .map(|&v| (f64::from(v) - m).powi(2))
                .sum::<f64>()
                / rows;
            let s = variance.sqrt() as f32;
            mean.push(m as f32);
            std.push(if s > 0.0 && s.is_finite() { s } else { 1.0 });
        }
        Standardization { mean, std }
    }

    /// Standardizes `x` in place. Its columns must be as many as those fitted.
    pub fn apply(&self, x: &mut Array2<f32>) {
        for mut row in x.rows_mut() {
            for ((v, &m), &s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = (*v - m) / s;
            }
        }
    }

    /// Undoes [`Standardization::apply`]: model outputs back to the targets' units.
    pub fn invert(&self, x: &mut Array2<f32>) {
        for mut row in x.rows_mut() {
            for ((v, &m), &s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = *v * s + m;
            }
        }
    }

    /// `mean,…;std,…`, each f32 in its shortest round-trip form.
    pub fn to_metadata(&self) -> String {
        format!("{};{}", join(&self.mean), join(&self.std))
    }

    /// Parses [`Standardization::to_metadata`]'s form.
    pub fn from_metadata(text: &str) -> Result<Standardization> {
        let invalid = |why: String| Error::invalid("standardization metadata", why);
        let (mean, std) = text
            .split_once(';')
            .ok_or_else(|| invalid(format!("`{text}` is not `mean,…;std,…`")))?;
        let (mean, std) = (split(mean).map_err(invalid)?, split(std).map_err(invalid)?);
        if mean.len() != std.len() {
            return Err(invalid(format!(
                "{} means but {} standard deviations",
                mean.len(),
                std.len()
            )));
        }
        if let Some(s) = std.iter().find(|s| !(**s > 0.0 && s.is_finite())) {
            return Err(invalid(format!(
                "standard deviation {s} is not a positive finite number"
            )));
        }
        if let Some(m) = mean.iter().find(|m| !m.is_finite()) {
            return Err(invalid(format!("mean {m} is not finite")));
        }
        Ok(Standardization { mean, std })
    }
}

fn join(values: &[f32]) -> String {
    values
        .iter()
        .map(f32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn split(text: &str) -> std::result::Result<Vec<f32>, String> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|v| v.parse().map_err(|_| format!("`{v}` is not a number")))
        .collect()
}

/// How a model's inputs were scaled, to scale new inputs the same way.
#[derive(Clone, Debug, PartialEq)]
pub enum InputScaling {
    /// Bytes divided by 255.
    Bytes,
    /// Floats standardized.
    Standard(Standardization),
    /// Floats used as they are.
    None,
}

impl InputScaling {
    /// `bytes`, `none`, or `standard:` and [`Standardization::to_metadata`].
    pub fn to_metadata(&self) -> String {
        match self {
            InputScaling::Bytes => "bytes".into(),
            InputScaling::None => "none".into(),
            InputScaling::Standard(s) => format!("standard:{}", s.to_metadata()),
        }
    }

    /// Parses [`InputScaling::to_metadata`]'s form.
    pub fn from_metadata(text: &str) -> Result<InputScaling> {
        match text {
            "bytes" => Ok(InputScaling::Bytes),
            "none" => Ok(InputScaling::None),
            _ => match text.strip_prefix("standard:") {
                Some(rest) => Standardization::from_metadata(rest).map(InputScaling::Standard),
                None => Err(Error::invalid(
                    "input scaling metadata",
                    format!("`{text}` is not `bytes`, `none` or `standard:…`"),
                )),
            },
        }
    }
}

/// Fits a standardization on `train`'s float features and applies it to `train` and every set
/// in `others` with float features; `None` (and nothing changed) when `train`'s are bytes.
pub fn standardize_features(
    train: &mut Dataset,
    others: &mut [&mut Dataset],
) -> Option<Standardization> {
    let Features::Floats(x) = &mut train.features else {
        return None;
    };
    let scaling = Standardization::fit(x);
    scaling.apply(x);
    for other in others.iter_mut() {
        if let Features::Floats(x) = &mut other.features {
            scaling.apply(x);
        }
    }
    Some(scaling)
}

/// Fits a standardization on `train`'s regression targets and applies it to `train` and every
/// regression set in `others`; `None` (and nothing changed) for classification.
pub fn standardize_targets(
    train: &mut Dataset,
    others: &mut [&mut Dataset],
) -> Option<Standardization> {
    let Targets::Values(y) = &mut train.targets else {
        return None;
    };
    let scaling = Standardization::fit(y);
    scaling.apply(y);
    for other in others.iter_mut() {
        if let Targets::Values(y) = &mut other.targets {
            scaling.apply(y);
        }
    }
    Some(scaling)
}

#[cfg(test)]
mod tests {
    use ndarray::array;

    use super::*;

    #[test]
    fn a_constant_column_maps_to_zero_and_inversion_restores_values() {
        let x = array![[1.0f32, 5.0], [3.0, 5.0]];
        let scaling = Standardization::fit(&x);
        assert_eq!(scaling.mean, vec![2.0, 5.0]);
        assert_eq!(scaling.std, vec![1.0, 1.0]);
        let mut y = x.clone();
        scaling.apply(&mut y);
        assert_eq!(y, array![[-1.0, 0.0], [1.0, 0.0]]);
        scaling.invert(&mut y);
        assert_eq!(y, x);
    }

    #[test]
    fn metadata_refuses_malformed_text() {
        assert!(Standardization::from_metadata("1,2;3").is_err());
        assert!(Standardization::from_metadata("1;0").is_err());
        assert!(Standardization::from_metadata("a;1").is_err());
        assert!(InputScaling::from_metadata("standard").is_err());
    }
}
