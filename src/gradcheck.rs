//! Comparing two sets of gradients element by element under `|value − reference| ≤ atol +
//! rtol·|reference|`, reporting the element that came closest to (or went furthest past) its
//! allowance.
//!
//! An absolute tolerance alone cannot judge gradients whose sizes span orders of magnitude: a
//! first layer's gradients can be 1e-5, where an atol of 1e-4 lets a 100% error pass, while a
//! large gradient legitimately differs by several of its ulps through the order of f32 sums. The
//! relative term scales the allowance with each reference value; the absolute one covers values
//! near zero, where any relative tolerance is too strict.

use std::fmt;

use crate::error::{Error, Result};
use crate::model::Gradients;

/// `atol + rtol·|reference|`: what an element may differ from its reference.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    /// The absolute part, for references near zero.
    pub atol: f32,
    /// The relative part, a fraction of `|reference|`.
    pub rtol: f32,
}

impl Tolerance {
    /// GPU gradients against the CPU reference's: both are f32 and only the order of the sums
    /// differs, which costs a few ulps of each sum's largest terms.
    pub const GPU_VS_CPU: Tolerance = Tolerance {
        atol: 2e-6,
        rtol: 1e-3,
    };

    /// The largest difference from `reference` this tolerance allows.
    pub fn allowed(self, reference: f32) -> f32 {
        self.atol + self.rtol * reference.abs()
    }

    /// Whether `value` is within the tolerance of `reference`; NaN on either side is not.
    pub fn accepts(self, value: f32, reference: f32) -> bool {
        (value - reference).abs() <= self.allowed(reference)
    }
}

/// Which of a layer's two gradients an element belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tensor {
    /// `dweight`, shaped `(out, in)`.
    Weight,
    /// `dbias`, shaped `(out)`.
    Bias,
}

impl Tensor {
    /// `dweight` or `dbias`.
    pub fn name(self) -> &'static str {
        match self {
            Tensor::Weight => "dweight",
            Tensor::Bias => "dbias",
        }
    }
}

/// One element compared against its reference.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Element {
    /// The layer, 0 for the first.
    pub layer: usize,
    /// Its weight's or its bias's gradient.
    pub tensor: Tensor,
    /// The row-major index into that tensor: `row·inputs + column` for a weight.
    pub index: usize,
    /// The value checked.
    pub value: f32,
    /// The reference value.
    pub reference: f32,
    /// `|value − reference|`.
    pub difference: f32,
    /// `atol + rtol·|reference|`.
    pub allowed: f32,
    /// `difference / allowed`: at most 1 passes; infinite for a NaN on either side.
    pub ratio: f32,
}

impl fmt::Display for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "layer {} {}[{}]: {:e} vs reference {:e} (|diff| {:e}, allowed {:e}, {:.3}× the tolerance)",
            self.layer,
            self.tensor.name(),
            self.index,
            self.value,
            self.reference,
            self.difference,
            self.allowed,
            self.ratio
        )
    }
}

/// The outcome of [`compare`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Comparison {
    /// The tolerance applied.
    pub tolerance: Tolerance,
    /// The element with the largest [`Element::ratio`] (the first of equals); `None` only when
    /// there was no element to compare.
    pub worst: Option<Element>,
    /// The largest `|value − reference|` of any element (which need not be the worst's).
    pub largest_difference: f32,
    /// How many elements were compared.
    pub compared: usize,
    /// How many were outside the tolerance.
    pub failed: usize,
}

impl Comparison {
    /// Counts one element, keeping the worst and the largest difference.
    fn add(&mut self, layer: usize, tensor: Tensor, index: usize, value: f32, reference: f32) {
        let difference = (value - reference).abs();
        let allowed = self.tolerance.allowed(reference);
        let ratio = if difference.is_nan() {
            f32::INFINITY
        } else if difference == 0.0 {
            0.0
        } else {
            difference / allowed
        };
        self.compared += 1;
        if !self.tolerance.accepts(value, reference) {
            self.failed += 1;
        }
        if difference.is_nan() || difference > self.largest_difference {
            self.largest_difference = difference;
        }
        if self.worst.is_none_or(|w| ratio > w.ratio) {
            self.worst = Some(Element {
                layer,
                tensor,
                index,
                value,
                reference,
                difference,
                allowed,
                ratio,
            });
        }
    }

    /// Whether every element was within the tolerance.
    pub fn passed(&self) -> bool {
        self.failed == 0
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of {} gradients outside atol {:e} + rtol {:e}·|reference|",
            self.failed, self.compared, self.tolerance.atol, self.tolerance.rtol
        )?;
        if let Some(worst) = &self.worst {
            write!(f, "; worst: {worst}")?;
        }
        Ok(())
    }
}

/// Compares `checked` with `reference` (same layers, same shapes) element by element under
/// `tolerance`. Fails only on mismatched shapes or a negative or non-finite tolerance; a gradient outside the tolerance is a
/// [`Comparison`] that has not [`passed`](Comparison::passed).
pub fn compare(
    checked: &Gradients,
    reference: &Gradients,
    tolerance: Tolerance,
) -> Result<Comparison> {
    let usable = |t: f32| t.is_finite() && t >= 0.0;
    if !usable(tolerance.atol) || !usable(tolerance.rtol) {
        return Err(Error::invalid(
            "tolerance",
            format!(
                "atol {} and rtol {} must be finite and ≥ 0",
                tolerance.atol, tolerance.rtol
            ),
        ));
    }
    if checked.layers.len() != reference.layers.len() {
        return Err(Error::invalid(
            "gradients",
            format!(
                "{} layers checked against {} reference layers",
                checked.layers.len(),
                reference.layers.len()
            ),
        ));
    }
    let mut comparison = Comparison {
        tolerance,
        worst: None,
        largest_difference: 0.0,
        compared: 0,
        failed: 0,
    };
    for (layer, (got, want)) in checked.layers.iter().zip(&reference.layers).enumerate() {
        if got.dweight.dim() != want.dweight.dim() {
            return Err(Error::shape(
                format!("layer {layer} dweight"),
                got.dweight.shape(),
                format!("{:?} as the reference's", want.dweight.shape()),
            ));
        }
        if got.dbias.len() != want.dbias.len() {
            return Err(Error::shape(
                format!("layer {layer} dbias"),
                got.dbias.shape(),
                format!("{:?} as the reference's", want.dbias.shape()),
            ));
        }
        // Row-major order whatever the arrays' memory layout, so that indices mean the same.
        let row_major = |a: &ndarray::Array2<f32>| a.iter().copied().collect::<Vec<f32>>();
        let tensors = [
            (
                Tensor::Weight,
                row_major(&got.dweight),
                row_major(&want.dweight),
            ),
            (Tensor::Bias, got.dbias.to_vec(), want.dbias.to_vec()),
        ];
        for (tensor, values, references) in tensors {
            for (index, (&value, &reference)) in values.iter().zip(&references).enumerate() {
                comparison.add(layer, tensor, index, value, reference);
            }
        }
    }
    Ok(comparison)
}
