//! The CPU reference checked against itself: central finite differences of the f64 loss beside
//! the analytic f64 gradient, parameter by parameter.

use ndarray::ArrayView2;

use super::{Layer64, Masks, Network, check_masks, widen};
use crate::dropout::DropoutMasks;
use crate::error::{Error, Result};
use crate::model::{Mlp, check_batch};

/// One parameter's gradient by central finite differences beside the analytic one, both f64.
#[derive(Clone, Debug, PartialEq)]
pub struct GradientCheck {
    /// Which parameter, e.g. `layer 1 dweight[2, 3]`.
    pub parameter: String,
    /// `(L(p + h) − L(p − h)) / 2h`.
    pub finite_difference: f64,
    /// The backward pass's value.
    pub analytic: f64,
    /// Some ReLU or leaky ReLU input changes sign between `p − h` and `p + h`: the loss has a kink
    /// there and the finite difference does not estimate the derivative.
    pub crosses_relu_kink: bool,
}

/// Central finite differences `(L(p + h) − L(p − h)) / 2h` of the f64 loss, with `h = step`, for
/// up to `per_layer` parameters of each layer (evenly spaced over its weights and then biases;
/// all of them if `per_layer` is at least their number), beside the analytic f64 gradient.
pub fn finite_difference_check(
    mlp: &Mlp,
    x: ArrayView2<'_, f32>,
    y: ArrayView2<'_, f32>,
    step: f64,
    per_layer: usize,
) -> Result<Vec<GradientCheck>> {
    let no_dropout = DropoutMasks::default();
    finite_difference_check_with_dropout(mlp, x, y, &no_dropout, step, per_layer)
}

/// [`finite_difference_check`] of the loss with dropout, its `masks` held fixed: the gradient a
/// training step with those masks computes.
pub fn finite_difference_check_with_dropout(
    mlp: &Mlp,
    x: ArrayView2<'_, f32>,
    y: ArrayView2<'_, f32>,
    masks: &DropoutMasks,
    step: f64,
    per_layer: usize,
) -> Result<Vec<GradientCheck>> {
    mlp.validate()?;
    check_batch(mlp.inputs(), mlp.outputs(), x, Some(y))?;
    check_masks(mlp, masks, x.nrows())?;
    let masks = Masks::of(masks);
    if !(step.is_finite() && step > 0.0) {
        return Err(Error::invalid(
            "finite-difference step",
            format!("{step} (must be a finite number > 0)"),
        ));
    }
    let (x, y) = (x.mapv(f64::from), y.mapv(f64::from));
    let mut layers = widen(mlp);
    let (_, analytic) = Network::of_f64(&layers, mlp.loss, mlp.leaky_slope).loss_and_gradients(
        x.view(),
        y.view(),
        Some(&masks),
        None,
    );
    let has_relu = mlp.layers.iter().any(|l| l.activation.has_kink());
    let mut checks = Vec::new();
    for (l, (dweight, dbias)) in analytic.iter().enumerate() {
        let (rows, cols) = dweight.dim();
        let parameters = rows * cols + rows;
        let stride = parameters.div_ceil(per_layer.max(1)).max(1);
        for i in (0..parameters).step_by(stride) {
            let (parameter, exact) = if i < rows * cols {
                let (r, c) = (i / cols, i % cols);
                (format!("layer {l} dweight[{r}, {c}]"), dweight[[r, c]])
            } else {
                (
                    format!("layer {l} dbias[{}]", i - rows * cols),
                    dbias[i - rows * cols],
                )
            };
            let original = *parameter_mut(&mut layers, l, i);
            // The loss and the ReLU input signs with this one parameter set to `value`.
            let mut at = |value: f64| {
                *parameter_mut(&mut layers, l, i) = value;
                let mut signs = Vec::new();
                let network = Network::of_f64(&layers, mlp.loss, mlp.leaky_slope);
                let signs_out = has_relu.then_some(&mut signs);
                let loss = network.loss(x.view(), y.view(), Some(&masks), signs_out);
                (loss, signs)
            };
            let (up, down) = (original + step, original - step);
            let (loss_up, signs_up) = at(up);
            let (loss_down, signs_down) = at(down);
            *parameter_mut(&mut layers, l, i) = original;
            checks.push(GradientCheck {
                parameter,
                // Divided by the step actually taken, which rounding makes differ from 2h.
                finite_difference: (loss_up - loss_down) / (up - down),
                analytic: exact,
                crosses_relu_kink: signs_up != signs_down,
            });
        }
    }
    Ok(checks)
}

/// Parameter `i` of layer `l`, counting its weights row by row and then its biases.
fn parameter_mut(layers: &mut [Layer64], l: usize, i: usize) -> &mut f64 {
    let (weight, bias, _) = &mut layers[l];
    let cols = weight.ncols();
    if i < weight.len() {
        &mut weight[[i / cols, i % cols]]
    } else {
        &mut bias[i - weight.len()]
    }
}
