//! The fast f32 CPU engine: the reference's forward and backward passes ([`crate::reference`],
//! the same equations layer for layer) on faer's matrix products, with every intermediate in a
//! [`Workspace`] allocated once, so that a training step allocates nothing. Its results agree
//! with the reference's to f32 rounding (`tests/fast_cpu.rs`).
//!
//! What is fused, so that each value is written once per step:
//! - a hidden layer's bias is added by the pass that applies its activation, which reads `z`
//!   anyway; the output layer's is the product's starting value: `z = b + a_{l−1}·Wᵀ`;
//! - the pass that applies a hidden activation also stores `g′(z) ⊙ m` (the derivative times the
//!   dropout factor) and applies the factor, so that backward multiplies once:
//!   `δ_{l−1} = (δ_l · W_l) ⊙ (g′ ⊙ m)`;
//! - `δ_l` is written over `a_l`'s buffer once `dW_{l+1}` has read it;
//! - with plain SGD ([`Workspace::sgd_step`]) the update is the weight product's epilogue,
//!   `W_l ← W_l − lr·δ_lᵀ·a_{l−1}` accumulated into the weights, and no gradient is written.
//!
//! The output layer is narrow (its width is the number of classes), so it reuses the
//! reference's loss and `δ` code as is.

mod matmul;

/// How reports name the fast engine where they name an adapter.
pub const NAME: &str = "cpu (faer)";

use ndarray::{ArrayView2, ArrayViewMut2};

use crate::dropout::{Dropout, DropoutMasks, write_dropout_mask};
use crate::error::{Error, Result};
use crate::model::{Activation, Dense, DenseGradients, Gradients, Mlp, check_batch};
use crate::reference::{activate_output_with_loss, output_delta_in_place};
use crate::rng::philox_key;
use matmul::{clear_upper_registers, matrix, product, threads};

/// Every buffer one forward and backward pass needs, for batches of up to `capacity` rows of a
/// model of layer widths `widths`.
#[derive(Clone, Debug)]
pub struct Workspace {
    /// `[inputs, hidden…, outputs]`.
    widths: Vec<usize>,
    /// The most rows a batch may have.
    capacity: usize,
    /// The batch's inputs `(rows, inputs)`, multiplied by their dropout factors in training.
    x: Vec<f32>,
    /// The batch's targets `(rows, outputs)`.
    y: Vec<f32>,
    /// Per layer `(rows, out_l)`: `z_l`, then `a_l` (dropped), then `δ_l`.
    values: Vec<Vec<f32>>,
    /// Per hidden layer `(rows, out_l)`: `g′(z_l) ⊙ m_l`, stored by the forward pass.
    derivatives: Vec<Vec<f32>>,
    /// Per hidden layer `(rows, out_l)`: `δ_l` in [`Workspace::sgd_step`], whose update of
    /// `W_{l+1}` still reads `a_l`; empty until the first such step.
    deltas: Vec<Vec<f32>>,
    /// `Σ_rows δ_l` of the layer [`Workspace::sgd_step`] is updating, as wide as the widest layer.
    bias_sums: Vec<f32>,
    /// Dropout factors per site (the input, then each hidden layer), `(rows, width)`; empty until
    /// a step with dropout at that site.
    masks: Vec<Vec<f32>>,
    /// Whether each site's factors apply to the next step with dropout.
    masked: Vec<bool>,
}

impl Workspace {
    /// The buffers for `mlp` (validated) and batches of up to `capacity` rows.
    pub fn new(mlp: &Mlp, capacity: usize) -> Result<Self> {
        mlp.validate()?;
        let widths = mlp.sizes();
        let capacity = capacity.max(1);
        let buffer = |width: usize| vec![0.0f32; capacity * width];
        let hidden = &widths[1..widths.len() - 1];
        Ok(Workspace {
            x: buffer(widths[0]),
            y: buffer(widths[widths.len() - 1]),
            values: widths[1..].iter().map(|&w| buffer(w)).collect(),
            derivatives: hidden.iter().map(|&w| buffer(w)).collect(),
            deltas: vec![Vec::new(); hidden.len()],
            bias_sums: vec![0.0; widths[1..].iter().copied().max().unwrap_or(0)],
            masks: vec![Vec::new(); widths.len() - 1],
            masked: vec![false; widths.len() - 1],
            widths,
            capacity,
        })
    }

    /// The most rows a batch may have.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether a batch of [`Workspace::capacity`] rows splits a product over the cores.
    pub fn splits_over_cores(&self) -> bool {
        let multiply_adds = |pair: &[usize]| self.capacity * pair[0] * pair[1];
        self.widths
            .windows(2)
            .any(|pair| threads(multiply_adds(pair)) > 1)
    }

    /// The input and target rows of a batch of `rows` (at most [`Workspace::capacity`]), for the
    /// caller to fill: `(rows, inputs)` and `(rows, outputs)`, row-major.
    pub fn batch_mut(&mut self, rows: usize) -> (&mut [f32], &mut [f32]) {
        let (inputs, outputs) = (self.widths[0], self.widths[self.widths.len() - 1]);
        (&mut self.x[..rows * inputs], &mut self.y[..rows * outputs])
    }

    /// Draws training step `step`'s dropout factors for a batch of `rows`, by
    /// [`crate::dropout`]'s rule (the reference's and the GPU's masks), for the next
    /// [`Workspace::loss_and_gradients`] with `dropout`.
    pub fn draw_masks(&mut self, dropout: &Dropout, seed: u64, step: u64, rows: usize) {
        let key = philox_key(seed);
        for site in 0..self.masks.len() {
            let p = match site {
                0 => dropout.input,
                _ => dropout.hidden_rate(site - 1),
            };
            self.masked[site] = p > 0.0;
            if p > 0.0 {
                let units = rows * self.widths[site];
                write_dropout_mask(key, step, site, p, &mut self.mask_mut(site)[..units]);
            }
        }
    }

    /// Takes a step's dropout factors as given (one `(rows, width)` matrix per dropped site).
    pub fn set_masks(&mut self, masks: &DropoutMasks, rows: usize) -> Result<()> {
        if masks.hidden.len() >= self.masks.len() {
            return Err(Error::invalid(
                "dropout masks",
                format!(
                    "{} hidden masks for {} hidden layers",
                    masks.hidden.len(),
                    self.masks.len() - 1
                ),
            ));
        }
        self.masked.fill(false);
        let sites = std::iter::once(&masks.input).chain(&masks.hidden);
        for (site, mask) in sites.enumerate() {
            let Some(mask) = mask else { continue };
            let width = self.widths[site];
            if mask.dim() != (rows, width) {
                return Err(Error::shape(
                    format!("dropout mask of site {site}"),
                    mask.shape(),
                    format!("[{rows}, {width}]"),
                ));
            }
            self.masked[site] = true;
            let buffer = self.mask_mut(site);
            buffer
                .iter_mut()
                .zip(mask.iter())
                .for_each(|(o, &m)| *o = m);
        }
        Ok(())
    }

    /// Site `site`'s factors, allocated at the first step that drops there.
    fn mask_mut(&mut self, site: usize) -> &mut [f32] {
        let mask = &mut self.masks[site];
        mask.resize(self.capacity * self.widths[site], 0.0);
        mask
    }

    /// The output activations of the last [`Workspace::forward_and_loss`], `(rows, outputs)`.
    pub fn outputs(&self, rows: usize) -> &[f32] {
        let last = self.values.len() - 1;
        &self.values[last][..rows * self.widths[last + 1]]
    }

    /// The batch's targets, `(rows, outputs)` (smoothed, if the caller smoothed them).
    pub fn targets(&self, rows: usize) -> &[f32] {
        &self.y[..rows * self.widths[self.widths.len() - 1]]
    }

    /// The mean loss of `mlp` on the batch's first `rows`, leaving the output activations in
    /// [`Workspace::outputs`]. `mlp` must have the shapes the workspace was made for, with
    /// standard-layout parameters (as [`Mlp::new`] and the model files give them).
    pub fn forward_and_loss(&mut self, mlp: &Mlp, rows: usize) -> f32 {
        self.forward(mlp, rows, None);
        let loss = self.output_loss(mlp, rows);
        clear_upper_registers();
        loss
    }

    /// The mean loss of `mlp` on the batch's first `rows`, and every layer's gradients written
    /// into `grads` (shaped like `mlp`, standard layout); with `dropout`, the factors of the last
    /// [`Workspace::draw_masks`] or [`Workspace::set_masks`] apply.
    pub fn loss_and_gradients(
        &mut self,
        mlp: &Mlp,
        rows: usize,
        dropout: bool,
        grads: &mut Gradients,
    ) -> f32 {
        let loss = self.training_loss(mlp, rows, dropout);
        self.gradients(mlp, rows, grads);
        loss
    }

    /// A training step's forward pass: the mean loss of `mlp` on the batch's first `rows` (with
    /// the last drawn or set dropout factors where `dropout`), and the output layer's `δ`, from
    /// which the next [`Workspace::gradients`] or [`Workspace::sgd_step`] on the same `mlp` and
    /// `rows` goes backward. The caller checks the loss in between, before any weight changes.
    pub fn training_loss(&mut self, mlp: &Mlp, rows: usize, dropout: bool) -> f32 {
        self.forward(mlp, rows, Some(dropout));
        let loss = self.output_loss(mlp, rows);
        let last = mlp.layers.len() - 1;
        let output = &mlp.layers[last];
        let width = self.widths[last + 1];
        output_delta_in_place(
            output.activation,
            mlp.loss,
            rows_of(&mut self.values[last], rows, width),
            rows_view(&self.y, rows, width),
        );
        loss
    }

    /// The backward pass of the last [`Workspace::training_loss`]: every layer's gradients
    /// written into `grads` (shaped like `mlp`, standard layout).
    pub fn gradients(&mut self, mlp: &Mlp, rows: usize, grads: &mut Gradients) {
        self.backward(mlp, rows, grads);
        // The caller's optimizer and gather are SSE loops too.
        clear_upper_registers();
    }

    /// The backward pass of the last [`Workspace::training_loss`] with plain SGD's update
    /// ([`crate::optim::Optimizer::Sgd`] at `learning_rate`, L2 `weight_decay`) written straight
    /// into `mlp`'s parameters: `W_l ← (1 − lr·wd)·W_l − lr·δ_lᵀ·a_{l−1}` as the weight
    /// product's epilogue and `b_l ← b_l − lr·(Σ_rows δ_l + wd·b_l)`, the optimizer's update up
    /// to f32 rounding, with no gradient written. `mlp` is the model of that forward pass, with
    /// standard-layout parameters.
    pub fn sgd_step(&mut self, mlp: &mut Mlp, rows: usize, learning_rate: f32, weight_decay: f32) {
        for (delta, &width) in self.deltas.iter_mut().zip(&self.widths[1..]) {
            delta.resize(self.capacity * width, 0.0);
        }
        let last = mlp.layers.len() - 1;
        for (l, layer) in mlp.layers.iter_mut().enumerate().rev() {
            let (outputs, inputs) = layer.weight.dim();
            let (below, here) = self.deltas.split_at_mut(l);
            let delta = match l == last {
                true => &self.values[last][..rows * outputs],
                false => &here[0][..rows * outputs],
            };
            let input = match l {
                0 => &self.x,
                _ => &self.values[l - 1],
            };
            let bias_sums = &mut self.bias_sums[..outputs];
            column_sums(delta, bias_sums);
            let bias = standard_mut(layer.bias.as_slice_mut());
            for (b, &db) in bias.iter_mut().zip(&*bias_sums) {
                *b -= learning_rate * (db + weight_decay * *b);
            }
            if l > 0 {
                // δ_{l−1} reads the old W_l, into a buffer of its own: the update reads a_{l−1}.
                propagate(&mut below[l - 1], delta, layer, &self.derivatives[l - 1]);
            }
            let weight = standard_mut(layer.weight.as_slice_mut());
            if weight_decay > 0.0 {
                clear_upper_registers();
                let shrink = 1.0 - learning_rate * weight_decay;
                weight.iter_mut().for_each(|w| *w *= shrink);
            }
            product(
                weight,
                (outputs, inputs),
                matrix(delta, (rows, outputs)).transpose(),
                matrix(input, (rows, inputs)),
                true,
                -learning_rate,
            );
        }
        // The caller's gather is an SSE loop too.
        clear_upper_registers();
    }

    /// Every layer's `a_l` (the output layer's `z`). In training (`Some(dropout)`), also
    /// `g′ ⊙ m` for backward, with the drawn factors applied where `dropout`.
    fn forward(&mut self, mlp: &Mlp, rows: usize, training: Option<bool>) {
        let dropped = |site: usize| training == Some(true) && self.masked[site];
        if dropped(0) {
            let units = rows * self.widths[0];
            multiply(&mut self.x[..units], &self.masks[0][..units]);
        }
        let last = mlp.layers.len() - 1;
        for (l, layer) in mlp.layers.iter().enumerate() {
            let (before, after) = self.values.split_at_mut(l);
            let input = match l {
                0 => &self.x,
                _ => &before[l - 1],
            };
            let z = &mut after[0][..rows * layer.outputs()];
            // A hidden layer's bias is added with its activation, the output layer's here.
            affine(z, input, layer, rows, l == last);
            if l < last {
                let mask = dropped(l + 1).then(|| &self.masks[l + 1][..z.len()]);
                let derivative = training.map(|_| &mut self.derivatives[l][..z.len()]);
                let (activation, bias) = (layer.activation, standard(layer.bias.as_slice()));
                activate_hidden(activation, mlp.leaky_slope, bias, z, derivative, mask);
            }
        }
    }

    /// Turns the output logits into activations and returns the mean loss against the targets.
    fn output_loss(&mut self, mlp: &Mlp, rows: usize) -> f32 {
        clear_upper_registers();
        let last = mlp.layers.len() - 1;
        let width = self.widths[last + 1];
        activate_output_with_loss(
            mlp.layers[last].activation,
            mlp.loss,
            rows_of(&mut self.values[last], rows, width),
            rows_view(&self.y, rows, width),
        )
    }

    /// From the output layer's `δ`: each layer's `(dW, db)`, and `δ` of the layer below.
    fn backward(&mut self, mlp: &Mlp, rows: usize, grads: &mut Gradients) {
        for (l, layer) in mlp.layers.iter().enumerate().rev() {
            let (outputs, inputs) = layer.weight.dim();
            let (before, after) = self.values.split_at_mut(l);
            let delta = &after[0][..rows * outputs];
            let input = match l {
                0 => &self.x,
                _ => &before[l - 1],
            };
            let DenseGradients { dweight, dbias } = &mut grads.layers[l];
            product(
                standard_mut(dweight.as_slice_mut()),
                (outputs, inputs),
                matrix(delta, (rows, outputs)).transpose(),
                matrix(input, (rows, inputs)),
                false,
                1.0,
            );
            column_sums(delta, standard_mut(dbias.as_slice_mut()));
            if l > 0 {
                // Over a_{l−1}, which dW_l has just read.
                propagate(&mut before[l - 1], delta, layer, &self.derivatives[l - 1]);
            }
        }
    }
}

/// `sums ← Σ_rows delta`, the bias gradient, over `delta`'s rows of `sums.len()` values.
fn column_sums(delta: &[f32], sums: &mut [f32]) {
    sums.fill(0.0);
    clear_upper_registers();
    for row in delta.chunks_exact(sums.len()) {
        sums.iter_mut().zip(row).for_each(|(sum, &d)| *sum += d);
    }
}

/// `δ_{l−1} = (δ_l · W_l) ⊙ (g′ ⊙ m)` into `below`, for the rows of `delta`, with `layer` the
/// l-th and `derivative` the buffer of the layer below's `g′ ⊙ m`.
fn propagate(below: &mut [f32], delta: &[f32], layer: &Dense, derivative: &[f32]) {
    let (outputs, inputs) = layer.weight.dim();
    let rows = delta.len() / outputs;
    let below = &mut below[..rows * inputs];
    product(
        below,
        (rows, inputs),
        matrix(delta, (rows, outputs)),
        matrix(standard(layer.weight.as_slice()), (outputs, inputs)),
        false,
        1.0,
    );
    multiply(below, &derivative[..rows * inputs]);
}

/// `z ← input · Wᵀ` for `rows` rows, or `z ← b + input · Wᵀ` with the bias as the product's
/// starting value where `with_bias`.
fn affine(z: &mut [f32], input: &[f32], layer: &Dense, rows: usize, with_bias: bool) {
    let (outputs, inputs) = layer.weight.dim();
    if with_bias {
        let bias = standard(layer.bias.as_slice());
        z.chunks_exact_mut(outputs)
            .for_each(|row| row.copy_from_slice(bias));
    }
    product(
        z,
        (rows, outputs),
        matrix(input, (rows, inputs)),
        matrix(standard(layer.weight.as_slice()), (outputs, inputs)).transpose(),
        with_bias,
        1.0,
    );
}

/// `a = g(z + b)` in place over a hidden layer's product `z` without its bias `bias` (with leaky
/// ReLU's `leaky_slope`); in training also `derivative = g′ ⊙ m`, g′ from `z + b` or `a` as
/// [`Activation::derivative`] takes it, and then `a ← a ⊙ m` with the dropout factors `mask`, if
/// any.
fn activate_hidden(
    activation: Activation,
    leaky_slope: f32,
    bias: &[f32],
    z: &mut [f32],
    derivative: Option<&mut [f32]>,
    mask: Option<&[f32]>,
) {
    clear_upper_registers();
    let run = |activation| fused_activation(activation, leaky_slope, bias, z, derivative, mask);
    // One arm per activation, so that each loop is compiled for a known activation.
    match activation {
        Activation::Relu => run(Activation::Relu),
        Activation::Sigmoid => run(Activation::Sigmoid),
        Activation::Tanh => run(Activation::Tanh),
        Activation::Gelu => run(Activation::Gelu),
        Activation::Silu => run(Activation::Silu),
        Activation::LeakyRelu => run(Activation::LeakyRelu),
        other => run(other),
    }
}

/// [`activate_hidden`]'s loops, inlined where the activation is a constant; each row of `z`
/// takes the bias in the same pass.
#[inline(always)]
fn fused_activation(
    activation: Activation,
    leaky_slope: f32,
    bias: &[f32],
    z: &mut [f32],
    derivative: Option<&mut [f32]>,
    mask: Option<&[f32]>,
) {
    let from_z = activation.keeps_preactivation();
    let derivative_of =
        |z: f32, a: f32| activation.derivative(if from_z { z } else { a }, leaky_slope);
    let width = bias.len();
    let z_rows = z.chunks_exact_mut(width);
    match (derivative, mask) {
        (None, _) => {
            for row in z_rows {
                for (v, &b) in row.iter_mut().zip(bias) {
                    *v = activation.apply(*v + b, leaky_slope);
                }
            }
        }
        (Some(derivative), None) => {
            for (row, d_row) in z_rows.zip(derivative.chunks_exact_mut(width)) {
                for ((v, d), &b) in row.iter_mut().zip(d_row).zip(bias) {
                    let z = *v + b;
                    let a = activation.apply(z, leaky_slope);
                    *d = derivative_of(z, a);
                    *v = a;
                }
            }
        }
        (Some(derivative), Some(mask)) => {
            let rows = z_rows.zip(derivative.chunks_exact_mut(width));
            for ((row, d_row), m_row) in rows.zip(mask.chunks_exact(width)) {
                for (((v, d), &b), &m) in row.iter_mut().zip(d_row).zip(bias).zip(m_row) {
                    let z = *v + b;
                    let a = activation.apply(z, leaky_slope);
                    *d = derivative_of(z, a) * m;
                    *v = a * m;
                }
            }
        }
    }
}

/// `values ← values ⊙ factors`.
fn multiply(values: &mut [f32], factors: &[f32]) {
    clear_upper_registers();
    values.iter_mut().zip(factors).for_each(|(v, &f)| *v *= f);
}

/// The first `rows` of a `(capacity, width)` buffer as a matrix view.
fn rows_of(buffer: &mut [f32], rows: usize, width: usize) -> ArrayViewMut2<'_, f32> {
    ArrayViewMut2::from_shape((rows, width), &mut buffer[..rows * width])
        .expect("a buffer holds `capacity` rows of its width")
}

/// [`rows_of`], read-only.
fn rows_view(buffer: &[f32], rows: usize, width: usize) -> ArrayView2<'_, f32> {
    ArrayView2::from_shape((rows, width), &buffer[..rows * width])
        .expect("a buffer holds `capacity` rows of its width")
}

/// A parameter's values: the engine keeps them in standard layout ([`standard_layout`]).
fn standard(values: Option<&[f32]>) -> &[f32] {
    values.expect("the fast engine's parameters are in standard layout")
}

/// [`standard`], writable.
fn standard_mut(values: Option<&mut [f32]>) -> &mut [f32] {
    values.expect("the fast engine's parameters and gradients are in standard layout")
}

/// `mlp` with every parameter in standard (row-major, contiguous) layout, as the engine reads it.
pub fn standard_layout(mlp: &Mlp) -> Mlp {
    let mut mlp = mlp.clone();
    for layer in &mut mlp.layers {
        if !layer.weight.is_standard_layout() {
            layer.weight = layer.weight.as_standard_layout().into_owned();
        }
        if !layer.bias.is_standard_layout() {
            layer.bias = layer.bias.as_standard_layout().into_owned();
        }
    }
    mlp
}

/// Zero gradients shaped like `mlp`, in standard layout.
pub fn zero_gradients(mlp: &Mlp) -> Gradients {
    Gradients {
        layers: mlp
            .layers
            .iter()
            .map(|l| DenseGradients {
                dweight: ndarray::Array2::zeros(l.weight.dim()),
                dbias: ndarray::Array1::zeros(l.bias.len()),
            })
            .collect(),
    }
}

/// [`Mlp::loss_and_gradients`] (with dropout `masks`, if given) on the fast engine, for one
/// batch: the workspace is made for it and dropped. Training keeps one [`Workspace`] instead.
pub fn loss_and_gradients(
    mlp: &Mlp,
    x: ArrayView2<'_, f32>,
    y: ArrayView2<'_, f32>,
    masks: Option<&DropoutMasks>,
) -> Result<(f32, Gradients)> {
    check_batch(mlp.inputs(), mlp.outputs(), x, Some(y))?;
    let mlp = standard_layout(mlp);
    let rows = x.nrows();
    let mut workspace = Workspace::new(&mlp, rows)?;
    fill(&mut workspace, x, y, rows);
    if let Some(masks) = masks {
        workspace.set_masks(masks, rows)?;
    }
    let mut grads = zero_gradients(&mlp);
    let loss = workspace.loss_and_gradients(&mlp, rows, masks.is_some(), &mut grads);
    Ok((loss, grads))
}

/// [`Mlp::forward_and_loss`] on the fast engine: the output activations and the mean loss.
pub fn forward_and_loss(
    mlp: &Mlp,
    x: ArrayView2<'_, f32>,
    y: ArrayView2<'_, f32>,
) -> Result<(ndarray::Array2<f32>, f32)> {
    check_batch(mlp.inputs(), mlp.outputs(), x, Some(y))?;
    let mlp = standard_layout(mlp);
    let rows = x.nrows();
    let mut workspace = Workspace::new(&mlp, rows)?;
    fill(&mut workspace, x, y, rows);
    let loss = workspace.forward_and_loss(&mlp, rows);
    let outputs = rows_view(workspace.outputs(rows), rows, mlp.outputs()).to_owned();
    Ok((outputs, loss))
}

/// Copies a batch into `workspace`.
fn fill(workspace: &mut Workspace, x: ArrayView2<'_, f32>, y: ArrayView2<'_, f32>, rows: usize) {
    let (x_rows, y_rows) = workspace.batch_mut(rows);
    x_rows.iter_mut().zip(x.iter()).for_each(|(o, &v)| *o = v);
    y_rows.iter_mut().zip(y.iter()).for_each(|(o, &v)| *o = v);
}
