//! The CPU reference (ndarray): forward, loss, backward and SGD. The executable spec of the math
//! that the WGSL kernels implement, written once, generic over the float type, so that the same
//! code runs in f32 (the CPU trainer, and what the GPU is compared with) and in f64 (what the
//! finite-difference gradient check differentiates).
//!
//! For layers `l = 0 … L−1` with `a₋₁ = x: (batch, in)`:
//! ```text
//! z_l = a_{l−1} · W_lᵀ + b_l          a_l = g_l(z_l)
//! δ_{L−1} = ∂L/∂z_{L−1}               (fused per loss: see `output_delta_in_place`)
//! dW_l = δ_lᵀ · a_{l−1}               db_l = Σ_rows δ_l
//! δ_{l−1} = (δ_l · W_l) ⊙ g′_{l−1}                (g′ from a_{l−1}, or from z_{l−1} for GELU, SiLU)
//! W_l ← W_l − lr·dW_l                 b_l ← b_l − lr·db_l
//! ```
//! With dropout ([`crate::dropout`]) a training step multiplies `x` and each hidden `a_l` by its
//! mask `m` (`1/(1 − p)` kept, 0 dropped) after the activation; the next layer and `dW` read the
//! dropped values, and backward gives `δ_{l−1} = ((δ_l · W_l) ⊙ g′_{l−1}(a_{l−1})) ⊙ m_{l−1}`
//! with `g′` of the undropped activation.
//! Losses are means (PyTorch's `reduction='mean'`); cross-entropy and binary cross-entropy are
//! computed from the output logits so that they stay finite for any logits.
//!
//! Every public entry validates the model and the batch and returns an error, never panics. The
//! f32 path works on views of the model's weights and allocates only the per-layer results.

use ndarray::{
    Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut2, Axis, LinalgScalar, ScalarOperand, Zip,
};
use num_traits::Float;
use std::ops::AddAssign;

use crate::dropout::DropoutMasks;
use crate::error::{Error, Result};
use crate::model::{Activation, DenseGradients, Gradients, Loss, Mlp, check_batch};
use crate::optim::OptimizerConfig;

mod finite_difference;

/// How reports name the reference where they name an adapter.
pub const NAME: &str = "cpu (ndarray reference)";

pub use finite_difference::{
    GradientCheck, finite_difference_check, finite_difference_check_with_dropout,
};

/// The float types the reference runs in (f32 and f64).
pub(crate) trait Real:
    Float + LinalgScalar + ScalarOperand + AddAssign + std::fmt::Debug
{
}
impl<T: Float + LinalgScalar + ScalarOperand + AddAssign + std::fmt::Debug> Real for T {}

/// One layer's gradients `(dW: (out, in), db: (out))`.
pub type LayerGradients<F> = (Array2<F>, Array1<F>);

/// A training step's dropout factors in the reference's float type: on `x`, then on each hidden
/// activation, `None` where there is no dropout.
struct Masks<F> {
    input: Option<Array2<F>>,
    hidden: Vec<Option<Array2<F>>>,
}

impl<F: Real> Masks<F> {
    /// `masks` widened to `F` (the factors are exact in both).
    fn of(masks: &DropoutMasks) -> Self {
        let widen = |m: &Option<Array2<f32>>| m.as_ref().map(|m| m.mapv(|v| F::from(v).unwrap()));
        Masks {
            input: widen(&masks.input),
            hidden: masks.hidden.iter().map(widen).collect(),
        }
    }

    /// Hidden layer `l`'s mask, if it has one.
    fn hidden(&self, l: usize) -> Option<&Array2<F>> {
        self.hidden.get(l).and_then(Option::as_ref)
    }
}

/// Refuses `masks` whose shapes do not fit `mlp` and a batch of `rows`.
fn check_masks(mlp: &Mlp, masks: &DropoutMasks, rows: usize) -> Result<()> {
    let hidden = mlp.layers.len() - 1;
    if masks.hidden.len() > hidden {
        return Err(Error::invalid(
            "dropout masks",
            format!(
                "{} hidden masks for {hidden} hidden layers",
                masks.hidden.len()
            ),
        ));
    }
    let sites = std::iter::once((&masks.input, mlp.inputs(), "input".to_string())).chain(
        masks
            .hidden
            .iter()
            .enumerate()
            .map(|(l, m)| (m, mlp.layers[l].outputs(), format!("hidden layer {l}"))),
    );
    for (mask, width, name) in sites {
        if let Some(mask) = mask
            && mask.dim() != (rows, width)
        {
            return Err(Error::shape(
                format!("dropout mask of the {name}"),
                mask.shape(),
                format!("[{rows}, {width}]"),
            ));
        }
    }
    Ok(())
}

/// Every intermediate of one forward and backward pass, layer by layer (input side first). It is
/// recorded by the same code that [`Mlp::loss_and_gradients`] runs, so it explains exactly what
/// the trainer computes.
#[derive(Clone, Debug, PartialEq)]
pub struct Trace<F> {
    /// `z_l = a_{l−1} · W_lᵀ + b_l`, `(batch, out_l)`.
    pub preactivations: Vec<Array2<F>>,
    /// `a_l = g_l(z_l)`, `(batch, out_l)`.
    pub activations: Vec<Array2<F>>,
    /// The mean loss.
    pub loss: F,
    /// `δ_l = ∂L/∂z_l`, `(batch, out_l)`.
    pub deltas: Vec<Array2<F>>,
    /// `(dW_l, db_l)`.
    pub gradients: Vec<LayerGradients<F>>,
}

// ---- the math, one equation per function ----------------------------------------------------

/// One layer as the reference reads it: views, so that the f32 path never copies weights.
#[derive(Clone, Copy)]
struct LayerView<'a, F> {
    /// `(out, in)`.
    weight: ArrayView2<'a, F>,
    /// `(out)`.
    bias: ArrayView1<'a, F>,
    activation: Activation,
}

/// `n` as a float (exact for every batch or layer size that fits in memory).
fn count<F: Real>(n: usize) -> F {
    F::from(n).unwrap_or_else(F::nan)
}

/// `z = input · Wᵀ + b`. input: `(batch, in)` → z: `(batch, out)`.
fn affine<F: Real>(input: ArrayView2<'_, F>, layer: &LayerView<'_, F>) -> Array2<F> {
    let mut z = input.dot(&layer.weight.t());
    z += &layer.bias;
    z
}

/// `log Σ_j e^{v_j}`, shifted by the maximum so that no exponential overflows.
fn log_sum_exp<F: Real>(row: ArrayView1<'_, F>) -> F {
    let max = row.fold(F::neg_infinity(), |m, &v| m.max(v));
    max + row.fold(F::zero(), |s, &v| s + (v - max).exp()).ln()
}

/// `a = g(z)` in place, z: `(batch, out)`, with leaky ReLU's `leaky_slope`. Softmax is row-wise,
/// `a_j = e^{z_j − lse(z)}`, as the GPU computes it.
fn activate_in_place<F: Real>(mut z: ArrayViewMut2<'_, F>, activation: Activation, leaky_slope: F) {
    if activation == Activation::Softmax {
        for mut row in z.rows_mut() {
            let lse = log_sum_exp(row.view());
            row.mapv_inplace(|v| (v - lse).exp());
        }
    } else {
        z.mapv_inplace(|v| activation.apply(v, leaky_slope));
    }
}

/// The output layer (never leaky ReLU, GELU or SiLU: [`Activation::is_hidden_only`], so no slope
/// and no `z` for g′ are needed): replaces its logits `z: (batch, out)` by its activations `a = g(z)` and
/// returns the mean loss against `y: (batch, out)` (the fast CPU engine reuses it, as the output
/// layer is narrow):
/// - `CrossEntropy` (softmax output): `mean_rows(lse(z)·Σ_j y_j − Σ_j y_j z_j)`;
/// - `BinaryCrossEntropy` (sigmoid output): `mean(max(z, 0) − z·y + ln(1 + e^{−|z|}))`;
/// - `Mse`: `mean((a − y)²)`.
pub(crate) fn activate_output_with_loss<F: Real>(
    activation: Activation,
    loss: Loss,
    mut z: ArrayViewMut2<'_, F>,
    y: ArrayView2<'_, F>,
) -> F {
    match loss {
        Loss::CrossEntropy => {
            // The softmax and the loss share each row's log-sum-exp.
            let mut total = F::zero();
            for (mut row, y_row) in z.rows_mut().into_iter().zip(y.rows()) {
                let lse = log_sum_exp(row.view());
                total = total + lse * y_row.sum() - row.dot(&y_row);
                row.mapv_inplace(|v| (v - lse).exp());
            }
            total / count(z.nrows())
        }
        Loss::BinaryCrossEntropy => {
            let total = Zip::from(&z).and(y).fold(F::zero(), |sum, &z, &y| {
                sum + z.max(F::zero()) - z * y + (-z.abs()).exp().ln_1p()
            });
            activate_in_place(z.view_mut(), activation, F::zero());
            total / count(z.len())
        }
        Loss::Mse => {
            activate_in_place(z.view_mut(), activation, F::zero());
            let total = Zip::from(&z)
                .and(y)
                .fold(F::zero(), |sum, &a, &y| sum + (a - y) * (a - y));
            total / count(z.len())
        }
    }
}

/// Turns the output activations `a: (batch, out)` into `δ = ∂L/∂z` in place, for targets
/// `y: (batch, out)`, `B` rows and `N` elements:
/// - `CrossEntropy` (softmax): `δ = (a·Σ_j y_j − y)/B`;
/// - `BinaryCrossEntropy` (sigmoid): `δ = (a − y)/N`;
/// - `Mse`: with `g = ∂L/∂a = 2(a − y)/N`, `δ = g ⊙ g′(a)`, or for a softmax output the
///   Jacobian-vector product `δ = a ⊙ (g − Σ_j g_j a_j)` row-wise.
pub(crate) fn output_delta_in_place<F: Real>(
    activation: Activation,
    loss: Loss,
    mut a: ArrayViewMut2<'_, F>,
    y: ArrayView2<'_, F>,
) {
    let rows: F = count(a.nrows());
    let elements: F = count(a.len());
    let two = F::one() + F::one();
    match loss {
        Loss::CrossEntropy => {
            for (mut row, y_row) in a.rows_mut().into_iter().zip(y.rows()) {
                let y_sum = y_row.sum();
                Zip::from(&mut row)
                    .and(&y_row)
                    .for_each(|d, &y| *d = (*d * y_sum - y) / rows);
            }
        }
        Loss::BinaryCrossEntropy => Zip::from(&mut a)
            .and(y)
            .for_each(|d, &y| *d = (*d - y) / elements),
        Loss::Mse if activation == Activation::Softmax => {
            for (mut row, y_row) in a.rows_mut().into_iter().zip(y.rows()) {
                let g_dot_a = Zip::from(&row)
                    .and(&y_row)
                    .fold(F::zero(), |sum, &a, &y| sum + two * (a - y) / elements * a);
                Zip::from(&mut row).and(&y_row).for_each(|d, &y| {
                    let a = *d;
                    *d = a * (two * (a - y) / elements - g_dot_a);
                });
            }
        }
        Loss::Mse => Zip::from(&mut a).and(y).for_each(|d, &y| {
            let a = *d;
            *d = two * (a - y) / elements * activation.derivative(a, F::zero());
        }),
    }
}

/// `values ← values ⊙ mask`: dropout's factors (`1/(1 − p)` or 0) applied to a batch.
fn apply_mask<F: Real>(values: &mut Array2<F>, mask: &Array2<F>) {
    Zip::from(values).and(mask).for_each(|v, &m| *v = *v * m);
}

/// `(dW, db) = (δᵀ · input, Σ_rows δ)`. δ: `(batch, out)`, input: `(batch, in)`.
fn layer_gradients<F: Real>(
    delta: ArrayView2<'_, F>,
    input: ArrayView2<'_, F>,
) -> LayerGradients<F> {
    (delta.t().dot(&input), delta.sum_axis(Axis(0)))
}

/// `δ_prev = (δ · W) ⊙ g′`, g′ from what the previous layer kept (`a_prev`, or `z_prev` for GELU
/// and SiLU: [`Activation::derivative`]), written over that buffer (it is not needed after this).
/// δ: `(batch, out)`, W: `(out, in)`, kept: `(batch, in)`.
fn backpropagate<F: Real>(
    delta: ArrayView2<'_, F>,
    weight: ArrayView2<'_, F>,
    mut kept: Array2<F>,
    activation_prev: Activation,
    leaky_slope: F,
) -> Array2<F> {
    let propagated = delta.dot(&weight);
    Zip::from(&mut kept)
        .and(&propagated)
        .for_each(|d, &p| *d = p * activation_prev.derivative(*d, leaky_slope));
    kept
}

// ---- the passes -------------------------------------------------------------------------------

/// A model the passes can run: at least one layer, shapes that chain, the loss's output
/// activation (checked by [`Mlp::validate`] before one is built).
struct Network<'a, F> {
    layers: Vec<LayerView<'a, F>>,
    loss: Loss,
    /// [`Mlp::leaky_slope`].
    leaky_slope: F,
}

impl<'a> Network<'a, f32> {
    /// Views of a validated `mlp`'s layers (no copy).
    fn of(mlp: &'a Mlp) -> Result<Self> {
        mlp.validate()?;
        let layers = mlp
            .layers
            .iter()
            .map(|l| LayerView {
                weight: l.weight.view(),
                bias: l.bias.view(),
                activation: l.activation,
            })
            .collect();
        Ok(Network {
            layers,
            loss: mlp.loss,
            leaky_slope: mlp.leaky_slope,
        })
    }
}

/// One layer's parameters widened to f64: `(weight, bias, activation)`.
type Layer64 = (Array2<f64>, Array1<f64>, Activation);

/// `mlp`'s parameters in f64 (the caller has validated it).
fn widen(mlp: &Mlp) -> Vec<Layer64> {
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

impl<'a> Network<'a, f64> {
    /// Views of f64 parameters made by [`widen`] from a validated model with `loss` and
    /// `leaky_slope`.
    fn of_f64(layers: &'a [Layer64], loss: Loss, leaky_slope: f32) -> Self {
        let layers = layers
            .iter()
            .map(|(weight, bias, activation)| LayerView {
                weight: weight.view(),
                bias: bias.view(),
                activation: *activation,
            })
            .collect();
        Network {
            layers,
            loss,
            leaky_slope: f64::from(leaky_slope),
        }
    }
}

impl<'a, F: Real> Network<'a, F> {
    /// The output layer (a network has at least one layer).
    fn output(&self) -> &LayerView<'a, F> {
        &self.layers[self.layers.len() - 1]
    }

    /// The output layer's logits `z: (batch, out)` for `x: (batch, in)`, keeping one hidden
    /// activation alive at a time, with dropout `masks` if given. Appends `z > 0` for every input
    /// of a ReLU or leaky ReLU ([`Activation::has_kink`]) to `relu_signs` if given.
    fn logits(
        &self,
        x: ArrayView2<'_, F>,
        masks: Option<&Masks<F>>,
        mut relu_signs: Option<&mut Vec<bool>>,
    ) -> Array2<F> {
        let mut record = |z: &Array2<F>, activation: Activation| {
            if let Some(signs) = relu_signs.as_mut()
                && activation.has_kink()
            {
                signs.extend(z.iter().map(|&v| v > F::zero()));
            }
        };
        let last = self.layers.len() - 1;
        let dropped_x = masks.and_then(|m| m.input.as_ref()).map(|m| &x * m);
        let x = dropped_x.as_ref().map_or(x, |d| d.view());
        let mut hidden: Option<Array2<F>> = None;
        for (l, layer) in self.layers[..last].iter().enumerate() {
            let mut z = affine(hidden.as_ref().map_or(x, |a| a.view()), layer);
            record(&z, layer.activation);
            activate_in_place(z.view_mut(), layer.activation, self.leaky_slope);
            if let Some(mask) = masks.and_then(|m| m.hidden(l)) {
                apply_mask(&mut z, mask);
            }
            hidden = Some(z);
        }
        let z = affine(hidden.as_ref().map_or(x, |a| a.view()), self.output());
        record(&z, self.output().activation);
        z
    }

    /// The output activations `(batch, out)`.
    fn forward(&self, x: ArrayView2<'_, F>) -> Array2<F> {
        let mut a = self.logits(x, None, None);
        activate_in_place(a.view_mut(), self.output().activation, self.leaky_slope);
        a
    }

    /// The mean loss, with dropout `masks` if given. Appends `z > 0` for every ReLU or leaky ReLU
    /// input to `relu_signs` if given.
    fn loss(
        &self,
        x: ArrayView2<'_, F>,
        y: ArrayView2<'_, F>,
        masks: Option<&Masks<F>>,
        relu_signs: Option<&mut Vec<bool>>,
    ) -> F {
        let mut z = self.logits(x, masks, relu_signs);
        activate_output_with_loss(self.output().activation, self.loss, z.view_mut(), y)
    }

    /// The mean loss and every layer's `(dW, db)`, with dropout `masks` if given; records every
    /// intermediate in `trace` if given.
    fn loss_and_gradients(
        &self,
        x: ArrayView2<'_, F>,
        y: ArrayView2<'_, F>,
        masks: Option<&Masks<F>>,
        mut trace: Option<&mut Trace<F>>,
    ) -> (F, Vec<LayerGradients<F>>) {
        let last = self.layers.len() - 1;
        let dropped_x = masks.and_then(|m| m.input.as_ref()).map(|m| &x * m);
        let x = dropped_x.as_ref().map_or(x, |d| d.view());
        // Forward, keeping a_0 … a_{L−2} as the next layer reads them (dropped), and what
        // backward takes g′ from where that differs: z of GELU and SiLU layers, the undropped
        // activations of the other layers with dropout.
        let mut hidden: Vec<Array2<F>> = Vec::with_capacity(last);
        let mut derivative_sources: Vec<Option<Array2<F>>> = Vec::with_capacity(last);
        for (l, layer) in self.layers[..last].iter().enumerate() {
            let input = if l == 0 { x } else { hidden[l - 1].view() };
            let mut z = affine(input, layer);
            if let Some(trace) = trace.as_mut() {
                trace.preactivations.push(z.clone());
            }
            let kept_z = layer.activation.keeps_preactivation().then(|| z.clone());
            activate_in_place(z.view_mut(), layer.activation, self.leaky_slope);
            let mask = masks.and_then(|m| m.hidden(l));
            derivative_sources.push(kept_z.or_else(|| mask.map(|_| z.clone())));
            if let Some(mask) = mask {
                apply_mask(&mut z, mask);
            }
            if let Some(trace) = trace.as_mut() {
                trace.activations.push(z.clone());
            }
            hidden.push(z);
        }
        let output = self.output();
        let mut delta = affine(hidden.last().map_or(x, |a| a.view()), output);
        if let Some(trace) = trace.as_mut() {
            trace.preactivations.push(delta.clone());
        }
        let value = activate_output_with_loss(output.activation, self.loss, delta.view_mut(), y);
        if let Some(trace) = trace.as_mut() {
            trace.activations.push(delta.clone());
            trace.loss = value;
        }
        output_delta_in_place(output.activation, self.loss, delta.view_mut(), y);

        // Backward, from the output layer; W_l is read before any update.
        let mut gradients = Vec::with_capacity(self.layers.len());
        for l in (0..=last).rev() {
            if let Some(trace) = trace.as_mut() {
                trace.deltas.push(delta.clone());
            }
            let input = if l == 0 { x } else { hidden[l - 1].view() };
            gradients.push(layer_gradients(delta.view(), input));
            // `hidden` holds a_0 … a_{l−1}: a_{l−1} is needed for the last time here.
            if let Some(a_prev) = hidden.pop() {
                let (weight, activation_prev) =
                    (self.layers[l].weight, self.layers[l - 1].activation);
                let kept = derivative_sources.pop().flatten().unwrap_or(a_prev);
                delta = backpropagate(
                    delta.view(),
                    weight,
                    kept,
                    activation_prev,
                    self.leaky_slope,
                );
                if let Some(mask) = masks.and_then(|m| m.hidden(l - 1)) {
                    apply_mask(&mut delta, mask);
                }
            }
        }
        gradients.reverse();
        if let Some(trace) = trace {
            trace.deltas.reverse();
            trace.gradients = gradients.clone();
        }
        (value, gradients)
    }
}

// ---- the public entries -----------------------------------------------------------------------

impl Mlp {
    /// The output activations `(batch, out)` for `x: (batch, in)` (probabilities for a softmax
    /// output).
    pub fn forward(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>> {
        let network = Network::of(self)?;
        check_batch(self.inputs(), self.outputs(), x, None)?;
        Ok(network.forward(x))
    }

    /// The mean loss on `x: (batch, in)` with targets `y: (batch, out)`.
    pub fn loss(&self, x: ArrayView2<'_, f32>, y: ArrayView2<'_, f32>) -> Result<f32> {
        let network = Network::of(self)?;
        check_batch(self.inputs(), self.outputs(), x, Some(y))?;
        Ok(network.loss(x, y, None, None))
    }

    /// The output activations and the mean loss on `x: (batch, in)` with targets
    /// `y: (batch, out)`, from one forward pass.
    pub fn forward_and_loss(
        &self,
        x: ArrayView2<'_, f32>,
        y: ArrayView2<'_, f32>,
    ) -> Result<(Array2<f32>, f32)> {
        let network = Network::of(self)?;
        check_batch(self.inputs(), self.outputs(), x, Some(y))?;
        let mut outputs = network.logits(x, None, None);
        let loss = activate_output_with_loss(
            network.output().activation,
            self.loss,
            outputs.view_mut(),
            y,
        );
        Ok((outputs, loss))
    }

    /// The mean loss and the gradient of every layer on `x: (batch, in)`, `y: (batch, out)`.
    pub fn loss_and_gradients(
        &self,
        x: ArrayView2<'_, f32>,
        y: ArrayView2<'_, f32>,
    ) -> Result<(f32, Gradients)> {
        let network = Network::of(self)?;
        check_batch(self.inputs(), self.outputs(), x, Some(y))?;
        let (value, gradients) = network.loss_and_gradients(x, y, None, None);
        let layers = gradients
            .into_iter()
            .map(|(dweight, dbias)| DenseGradients { dweight, dbias })
            .collect();
        Ok((value, Gradients { layers }))
    }

    /// [`Mlp::loss_and_gradients`] with dropout: `x` and each hidden activation multiplied by
    /// their `masks` (one training step's, from [`crate::dropout::Dropout::masks`]).
    pub fn loss_and_gradients_with_dropout(
        &self,
        x: ArrayView2<'_, f32>,
        y: ArrayView2<'_, f32>,
        masks: &DropoutMasks,
    ) -> Result<(f32, Gradients)> {
        let network = Network::of(self)?;
        check_batch(self.inputs(), self.outputs(), x, Some(y))?;
        check_masks(self, masks, x.nrows())?;
        let (value, gradients) = network.loss_and_gradients(x, y, Some(&Masks::of(masks)), None);
        let layers = gradients
            .into_iter()
            .map(|(dweight, dbias)| DenseGradients { dweight, dbias })
            .collect();
        Ok((value, Gradients { layers }))
    }

    /// [`Mlp::loss_and_gradients`] with every intermediate (`z`, `a`, `δ` of each layer) kept,
    /// for explanations and tests.
    pub fn trace(&self, x: ArrayView2<'_, f32>, y: ArrayView2<'_, f32>) -> Result<Trace<f32>> {
        let network = Network::of(self)?;
        check_batch(self.inputs(), self.outputs(), x, Some(y))?;
        let mut trace = Trace {
            preactivations: Vec::with_capacity(self.layers.len()),
            activations: Vec::with_capacity(self.layers.len()),
            loss: 0.0,
            deltas: Vec::with_capacity(self.layers.len()),
            gradients: Vec::new(),
        };
        network.loss_and_gradients(x, y, None, Some(&mut trace));
        Ok(trace)
    }

    /// Plain SGD: `W ← W − lr·dW`, `b ← b − lr·db`. Errors if the learning rate is not a finite
    /// number > 0 or the gradients do not have the model's shapes.
    pub fn apply_sgd(&mut self, grads: &Gradients, learning_rate: f32) -> Result<()> {
        OptimizerConfig::sgd(learning_rate).validate()?;
        self.validate()?;
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
        for (i, (layer, grad)) in self.layers.iter().zip(&grads.layers).enumerate() {
            if grad.dweight.dim() != layer.weight.dim() {
                return Err(Error::shape(
                    format!("layer {i} dweight"),
                    grad.dweight.shape(),
                    format!("{:?} (the layer's weight)", layer.weight.shape()),
                ));
            }
            if grad.dbias.len() != layer.bias.len() {
                return Err(Error::shape(
                    format!("layer {i} dbias"),
                    grad.dbias.shape(),
                    format!("{:?} (the layer's bias)", layer.bias.shape()),
                ));
            }
        }
        self.sgd_update(grads, learning_rate);
        Ok(())
    }

    /// One plain SGD step on `x: (batch, in)`, `y: (batch, out)`; returns the loss before the step.
    pub fn train_step(
        &mut self,
        x: ArrayView2<'_, f32>,
        y: ArrayView2<'_, f32>,
        learning_rate: f32,
    ) -> Result<f32> {
        OptimizerConfig::sgd(learning_rate).validate()?;
        let (value, grads) = self.loss_and_gradients(x, y)?;
        // The gradients have the model's shapes by construction.
        self.sgd_update(&grads, learning_rate);
        Ok(value)
    }

    /// `W ← W − lr·dW`, `b ← b − lr·db` for gradients of matching shapes.
    fn sgd_update(&mut self, grads: &Gradients, learning_rate: f32) {
        for (layer, grad) in self.layers.iter_mut().zip(&grads.layers) {
            layer.weight.scaled_add(-learning_rate, &grad.dweight);
            layer.bias.scaled_add(-learning_rate, &grad.dbias);
        }
    }
}

/// Cross-entropy's targets with label smoothing ε (`nn.CrossEntropyLoss(label_smoothing=ε)`):
/// `(1 − ε)·y + ε/K` for `y: (batch, K)`. Training on these is training with smoothing.
pub fn smooth_labels(y: ArrayView2<'_, f32>, epsilon: f32) -> Array2<f32> {
    let mut smoothed = y.as_standard_layout().into_owned();
    let targets = smoothed
        .as_slice_mut()
        .expect("a new array is in standard layout");
    smooth_labels_in_place(targets, y.ncols(), epsilon);
    smoothed
}

/// [`smooth_labels`] over row-major targets of `classes` columns, in place.
pub fn smooth_labels_in_place(y: &mut [f32], classes: usize, epsilon: f32) {
    let uniform = epsilon / classes as f32;
    y.iter_mut()
        .for_each(|v| *v = (1.0 - epsilon) * *v + uniform);
}

/// The mean loss of `mlp` on `x: (batch, in)`, `y: (batch, out)` with all arithmetic in f64 (the
/// parameters and data widened from f32).
pub fn loss_f64(mlp: &Mlp, x: ArrayView2<'_, f32>, y: ArrayView2<'_, f32>) -> Result<f64> {
    mlp.validate()?;
    check_batch(mlp.inputs(), mlp.outputs(), x, Some(y))?;
    let layers = widen(mlp);
    let network = Network::of_f64(&layers, mlp.loss, mlp.leaky_slope);
    Ok(network.loss(
        x.mapv(f64::from).view(),
        y.mapv(f64::from).view(),
        None,
        None,
    ))
}

/// [`Mlp::loss_and_gradients`] with all arithmetic in f64: the loss and every layer's `(dW, db)`.
pub fn loss_and_gradients_f64(
    mlp: &Mlp,
    x: ArrayView2<'_, f32>,
    y: ArrayView2<'_, f32>,
) -> Result<(f64, Vec<LayerGradients<f64>>)> {
    mlp.validate()?;
    check_batch(mlp.inputs(), mlp.outputs(), x, Some(y))?;
    let layers = widen(mlp);
    let network = Network::of_f64(&layers, mlp.loss, mlp.leaky_slope);
    let (x, y) = (x.mapv(f64::from), y.mapv(f64::from));
    Ok(network.loss_and_gradients(x.view(), y.view(), None, None))
}
