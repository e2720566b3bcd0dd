//! The CPU reference (ndarray): forward, loss, backward and SGD. The executable spec of the math
//! that the WGSL kernels implement, written once, generic over the float type, so that the same
//! code runs in f32 (the CPU trainer, and what the GPU is compared with) and in f64 (what the
//! finite-difference gradient check differentiates).
//!
//! For layers `l = 0 … L−1` with `a₋₁ = x: (batch, in)`:
//! ```text
//! z_l = a_{l−1} · W_lᵀ + b_l          a_l = g_l(z_l)
//! δ_{L−1} = ∂L/∂z_{L−1}               (fused forms: see `output_loss_and_delta`)
//! dW_l = δ_lᵀ · a_{l−1}               db_l = Σ_rows δ_l
//! δ_{l−1} = (δ_l · W_l) ⊙ g′_{l−1}(a_{l−1})
//! ```

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis, LinalgScalar, ScalarOperand, Zip};
use num_traits::Float;
use std::ops::AddAssign;

use crate::error::{Error, Result};
use crate::model::{Activation, DenseGradients, Gradients, Loss, Mlp, check_batch};
use crate::optim::OptimizerConfig;

/// The float types the reference runs in (f32 and f64).
pub trait Real:
    Float + LinalgScalar + ScalarOperand + AddAssign + std::fmt::Debug + Send + Sync
{
}
impl<T: Float + LinalgScalar + ScalarOperand + AddAssign + std::fmt::Debug + Send + Sync> Real
    for T
{
}

/// One layer as the reference reads it.
#[derive(Clone, Copy, Debug)]
pub struct LayerView<'a, F> {
    /// `(out, in)`.
    pub weight: ArrayView2<'a, F>,
    /// `(out)`.
    pub bias: ArrayView1<'a, F>,
    /// `g`.
    pub activation: Activation,
}

/// One layer's gradients `(dW, db)`.
pub type LayerGradients<F> = (Array2<F>, Array1<F>);

/// One layer's parameters in f64, for the gradient check.
pub type Layer64 = (Array2<f64>, Array1<f64>, Activation);

/// Views of `mlp`'s f32 layers (no copy).
pub fn layer_views(mlp: &Mlp) -> Vec<LayerView<'_, f32>> {
    mlp.layers
        .iter()
        .map(|l| LayerView {
            weight: l.weight.view(),
            bias: l.bias.view(),
            activation: l.activation,
        })
        .collect()
}

/// `mlp`'s layers converted to f64.
pub fn layers_f64(mlp: &Mlp) -> Vec<Layer64> {
    mlp.layers
        .iter()
        .map(|l| {
            (
                l.weight.mapv(f64::from),
                l.bias.mapv(f64::from),
                l.activation,
            )
        })
        .collect()
}

/// Views of f64 layers.
pub fn views_f64(layers: &[Layer64]) -> Vec<LayerView<'_, f64>> {
    layers
        .iter()
        .map(|(w, b, a)| LayerView {
            weight: w.view(),
            bias: b.view(),
            activation: *a,
        })
        .collect()
}

/// Applies `activation` to `z` in place (softmax row-wise, stabilised by the row maximum).
pub fn activate_in_place<F: Real>(z: &mut Array2<F>, activation: Activation) {
    if activation == Activation::Softmax {
        for mut row in z.rows_mut() {
            let max = row.fold(F::neg_infinity(), |m, &v| m.max(v));
            row.mapv_inplace(|v| (v - max).exp());
            let total = row.sum();
            row.mapv_inplace(|v| v / total);
        }
    } else {
        z.mapv_inplace(|v| activation.apply(v));
    }
}

/// The forward pass: the activations of every layer, and the output layer's logits `z`.
pub fn forward_trace<F: Real>(
    layers: &[LayerView<'_, F>],
    x: ArrayView2<'_, F>,
) -> (Vec<Array2<F>>, Array2<F>) {
    let mut activations: Vec<Array2<F>> = Vec::with_capacity(layers.len());
    let mut logits = Array2::zeros((0, 0));
    for (l, layer) in layers.iter().enumerate() {
        let input = if l == 0 { x } else { activations[l - 1].view() };
        let mut z = input.dot(&layer.weight.t());
        z += &layer.bias;
        if l + 1 == layers.len() {
            logits = z.clone();
        }
        activate_in_place(&mut z, layer.activation);
        activations.push(z);
    }
    (activations, logits)
}

/// The mean loss and `δ = ∂L/∂z` of the output layer, from its logits `z`, activations `a` and
/// targets `y`, all `(batch, out)`:
/// - `CrossEntropy` (softmax): `L = mean_rows(lse(z)·Σy − Σ y·z)`, `δ = (a·Σy − y)/batch`;
/// - `BinaryCrossEntropy` (sigmoid): `L = mean(max(z,0) − z·y + ln(1+e^−|z|))`,
///   `δ = (a − y)/(batch·out)`;
/// - `Mse`: `L = mean((a − y)²)`, `g = 2(a − y)/(batch·out)`, `δ = g ⊙ g′(a)`, or for a softmax
///   output `δ = a ⊙ (g − Σ_row g·a)`.
pub fn output_loss_and_delta<F: Real>(
    activation: Activation,
    loss: Loss,
    z: ArrayView2<'_, F>,
    a: ArrayView2<'_, F>,
    y: ArrayView2<'_, F>,
) -> (F, Array2<F>) {
    let rows = F::from(z.nrows()).unwrap_or_else(F::one);
    let elements = F::from(z.len()).unwrap_or_else(F::one);
    let two = F::one() + F::one();
    match loss {
        Loss::CrossEntropy => {
            let mut total = F::zero();
            let mut delta = Array2::zeros(z.raw_dim());
            for (((z_row, a_row), y_row), mut d_row) in z
                .rows()
                .into_iter()
                .zip(a.rows())
                .zip(y.rows())
                .zip(delta.rows_mut())
            {
                let max = z_row.fold(F::neg_infinity(), |m, &v| m.max(v));
                let lse = max + z_row.fold(F::zero(), |s, &v| s + (v - max).exp()).ln();
                let y_sum = y_row.sum();
                total = total + lse * y_sum - y_row.dot(&z_row);
                Zip::from(&mut d_row)
                    .and(&a_row)
                    .and(&y_row)
                    .for_each(|d, &a, &y| *d = (a * y_sum - y) / rows);
            }
            (total / rows, delta)
        }
        Loss::BinaryCrossEntropy => {
            let total = Zip::from(&z).and(&y).fold(F::zero(), |s, &z, &y| {
                s + z.max(F::zero()) - z * y + (-z.abs()).exp().ln_1p()
            });
            let delta = Zip::from(&a)
                .and(&y)
                .map_collect(|&a, &y| (a - y) / elements);
            (total / elements, delta)
        }
        Loss::Mse => {
            let total = Zip::from(&a)
                .and(&y)
                .fold(F::zero(), |s, &a, &y| s + (a - y) * (a - y));
            let mut delta = Zip::from(&a)
                .and(&y)
                .map_collect(|&a, &y| two * (a - y) / elements);
            if activation == Activation::Softmax {
                for (mut d_row, a_row) in delta.rows_mut().into_iter().zip(a.rows()) {
                    let ga = d_row.dot(&a_row);
                    Zip::from(&mut d_row)
                        .and(&a_row)
                        .for_each(|d, &a| *d = a * (*d - ga));
                }
            } else {
                Zip::from(&mut delta)
                    .and(&a)
                    .for_each(|d, &a| *d = *d * activation.derivative_from_output(a));
            }
            (total / elements, delta)
        }
    }
}

/// The loss and the gradients `(dW, db)` of every layer, for `x: (batch, in)`, `y: (batch, out)`.
/// The caller has checked the shapes.
pub fn loss_and_gradients<F: Real>(
    layers: &[LayerView<'_, F>],
    loss: Loss,
    x: ArrayView2<'_, F>,
    y: ArrayView2<'_, F>,
) -> (F, Vec<LayerGradients<F>>) {
    let (activations, logits) = forward_trace(layers, x);
    let last = layers.len() - 1;
    let (value, mut delta) = output_loss_and_delta(
        layers[last].activation,
        loss,
        logits.view(),
        activations[last].view(),
        y,
    );
    let mut grads = Vec::with_capacity(layers.len());
    for l in (0..layers.len()).rev() {
        let input = if l == 0 { x } else { activations[l - 1].view() };
        let dweight = delta.t().dot(&input);
        let dbias = delta.sum_axis(Axis(0));
        if l > 0 {
            // δ_{l−1} = (δ_l · W_l) ⊙ g′(a_{l−1}), with W_l before any update.
            let mut previous = delta.dot(&layers[l].weight);
            let activation = layers[l - 1].activation;
            Zip::from(&mut previous)
                .and(&activations[l - 1])
                .for_each(|d, &a| *d = *d * activation.derivative_from_output(a));
            delta = previous;
        }
        grads.push((dweight, dbias));
    }
    grads.reverse();
    (value, grads)
}

/// The mean loss only.
pub fn loss<F: Real>(
    layers: &[LayerView<'_, F>],
    loss: Loss,
    x: ArrayView2<'_, F>,
    y: ArrayView2<'_, F>,
) -> F {
    let (activations, logits) = forward_trace(layers, x);
    let last = layers.len() - 1;
    output_loss_and_delta(
        layers[last].activation,
        loss,
        logits.view(),
        activations[last].view(),
        y,
    )
    .0
}

impl Mlp {
    /// Validates the model and a batch `x: (batch, in)` with targets `y: (batch, out)`.
    fn check_inputs(&self, x: ArrayView2<'_, f32>, y: Option<ArrayView2<'_, f32>>) -> Result<()> {
        self.validate()?;
        check_batch(self.inputs(), self.outputs(), x, y)
    }

    /// The output activations `(batch, out)` for `x: (batch, in)`.
    pub fn forward(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        self.check_inputs(x, None)?;
        let (mut activations, _) = forward_trace(&layer_views(self), x);
        Ok(activations.pop().unwrap_or_default())
    }

    /// The mean loss on `x: (batch, in)`, `y: (batch, out)`.
    pub fn loss(&self, x: ArrayView2<'_, f32>, y: ArrayView2<'_, f32>) -> Result<f32> {
        self.check_inputs(x, Some(y))?;
        Ok(loss(&layer_views(self), self.loss, x, y))
    }

    /// The mean loss and the gradient of every layer on `x: (batch, in)`, `y: (batch, out)`.
    pub fn loss_and_gradients(
        &self,
        x: ArrayView2<'_, f32>,
        y: ArrayView2<'_, f32>,
    ) -> Result<(f32, Gradients)> {
        self.check_inputs(x, Some(y))?;
        let (value, grads) = loss_and_gradients(&layer_views(self), self.loss, x, y);
        let layers = grads
            .into_iter()
            .map(|(dweight, dbias)| DenseGradients { dweight, dbias })
            .collect();
        Ok((value, Gradients { layers }))
    }

    /// Plain SGD: `W ← W − lr·dW`, `b ← b − lr·db`.
    pub fn apply_sgd(&mut self, grads: &Gradients, learning_rate: f32) -> Result<()> {
        OptimizerConfig::sgd(learning_rate).validate()?;
        if grads.layers.len() != self.layers.len() {
            return Err(Error::invalid(
                "gradients",
                format!(
                    "{} layers of gradients for a {}-layer model",
                    grads.layers.len(),
                    self.layers.len()
                ),
            ));
        }
        for (i, (layer, grad)) in self.layers.iter_mut().zip(&grads.layers).enumerate() {
            if grad.dweight.dim() != layer.weight.dim() || grad.dbias.len() != layer.bias.len() {
                return Err(Error::shape(
                    format!("layer {i} dweight"),
                    grad.dweight.shape(),
                    format!("{:?}", layer.weight.shape()),
                ));
            }
            layer.weight.scaled_add(-learning_rate, &grad.dweight);
            layer.bias.scaled_add(-learning_rate, &grad.dbias);
        }
        Ok(())
    }

    /// One plain SGD step; returns the loss before the step.
    pub fn train_step(
        &mut self,
        x: ArrayView2<'_, f32>,
        y: ArrayView2<'_, f32>,
        learning_rate: f32,
    ) -> Result<f32> {
        OptimizerConfig::sgd(learning_rate).validate()?;
        let (value, grads) = self.loss_and_gradients(x, y)?;
        self.apply_sgd(&grads, learning_rate)?;
        Ok(value)
    }
}

/// The f64 loss of `mlp` (with its f32 parameters widened), for finite differences.
pub fn loss_f64(
    layers: &[Layer64],
    loss_kind: Loss,
    x: ArrayView2<'_, f32>,
    y: ArrayView2<'_, f32>,
) -> f64 {
    loss(
        &views_f64(layers),
        loss_kind,
        x.mapv(f64::from).view(),
        y.mapv(f64::from).view(),
    )
}

/// The f64 loss and gradients, for the gradient check.
pub fn loss_and_gradients_f64(
    layers: &[Layer64],
    loss_kind: Loss,
    x: ArrayView2<'_, f32>,
    y: ArrayView2<'_, f32>,
) -> (f64, Vec<LayerGradients<f64>>) {
    loss_and_gradients(
        &views_f64(layers),
        loss_kind,
        x.mapv(f64::from).view(),
        y.mapv(f64::from).view(),
    )
}

/// One parameter's gradient by central finite differences beside the analytic one, both f64.
#[derive(Clone, Debug, PartialEq)]
pub struct GradientCheck {
    /// Which parameter, e.g. `layer 1 dweight[2, 3]`.
    pub parameter: String,
    /// `(L(p + h) − L(p − h)) / 2h`.
    pub finite_difference: f64,
    /// The backward pass's value.
    pub analytic: f64,
}

/// Central finite differences with step `step` of the f64 loss for up to `per_layer` parameters
/// of each layer (evenly spaced over its weights and then biases; all of them if `per_layer` is
/// at least their number), beside the analytic f64 gradient.
pub fn finite_difference_check(
    mlp: &Mlp,
    x: ArrayView2<'_, f32>,
    y: ArrayView2<'_, f32>,
    step: f64,
    per_layer: usize,
) -> Result<Vec<GradientCheck>> {
    mlp.validate()?;
    check_batch(mlp.inputs(), mlp.outputs(), x, Some(y))?;
    let layers = layers_f64(mlp);
    let (_, analytic) = loss_and_gradients_f64(&layers, mlp.loss, x, y);
    let mut checks = Vec::new();
    for l in 0..layers.len() {
        let (rows, cols) = layers[l].0.dim();
        let count = rows * cols + rows;
        let stride = (count / per_layer.max(1)).max(1);
        for i in (0..count).step_by(stride) {
            let nudged = |delta: f64| {
                let mut copy = layers.clone();
                if i < rows * cols {
                    copy[l].0[[i / cols, i % cols]] += delta;
                } else {
                    copy[l].1[i - rows * cols] += delta;
                }
                loss_f64(&copy, mlp.loss, x, y)
            };
            let (parameter, exact) = if i < rows * cols {
                (
                    format!("layer {l} dweight[{}, {}]", i / cols, i % cols),
                    analytic[l].0[[i / cols, i % cols]],
                )
            } else {
                (
                    format!("layer {l} dbias[{}]", i - rows * cols),
                    analytic[l].1[i - rows * cols],
                )
            };
            let finite_difference = (nudged(step) - nudged(-step)) / (2.0 * step);
            checks.push(GradientCheck {
                parameter,
                finite_difference,
                analytic: exact,
            });
        }
    }
    Ok(checks)
}
