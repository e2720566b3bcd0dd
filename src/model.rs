//! The host-side model: [`Mlp`], its [`Dense`] layers, their [`Activation`]s and the [`Loss`].
//!
//! Conventions follow PyTorch so that numbers and weights are comparable: a batch is
//! `x: (batch, in)` row-major, a layer holds `weight: (out, in)` and `bias: (out)`, and
//! `z = x · weightᵀ + bias`, `a = g(z)`. The CPU math lives in [`crate::reference`]; the GPU
//! math in [`crate::gpu`]. This module only describes and checks the model.

use ndarray::{Array1, Array2, ArrayView2};
use num_traits::Float;

use crate::error::{Error, Result};
use crate::rng::Rng;

mod size;

pub use size::TRAINING_BYTES_PER_PARAMETER;

/// The nonlinearity `g` applied after a layer's affine map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Activation {
    /// `g(z) = z`.
    Identity,
    /// `g(z) = 1 / (1 + e^{-z})`.
    Sigmoid,
    /// `g(z) = max(z, 0)`.
    Relu,
    /// `g(z) = tanh(z)`.
    Tanh,
    /// Row-wise `g(z)_j = e^{z_j} / Σ_k e^{z_k}`; only allowed on the output layer.
    Softmax,
}

impl Activation {
    /// Every activation, in a fixed order (useful for tests and the command line).
    pub const ALL: [Activation; 5] = [
        Activation::Identity,
        Activation::Sigmoid,
        Activation::Relu,
        Activation::Tanh,
        Activation::Softmax,
    ];

    /// The lower-case name used in files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Identity => "identity",
            Activation::Sigmoid => "sigmoid",
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
            Activation::Softmax => "softmax",
        }
    }

    /// Parses [`Activation::name`].
    pub fn from_name(name: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name).ok_or_else(|| {
            Error::invalid("activation", format!("unknown activation {name:?}; expected one of identity, sigmoid, relu, tanh, softmax"))
        })
    }

    /// The code that selects this activation in the WGSL kernels (`ACT_*` in the shaders).
    pub(crate) fn wgsl_code(self) -> u32 {
        match self {
            Activation::Identity => 0,
            Activation::Sigmoid => 1,
            Activation::Relu => 2,
            Activation::Tanh => 3,
            Activation::Softmax => 4,
        }
    }

    /// `g(z)` for the element-wise activations. Softmax is row-wise and handled by the caller.
    pub fn apply<F: Float>(self, z: F) -> F {
        match self {
            Activation::Identity | Activation::Softmax => z,
            Activation::Sigmoid => F::one() / (F::one() + (-z).exp()),
            Activation::Relu => z.max(F::zero()),
            Activation::Tanh => z.tanh(),
        }
    }

    /// `g′(z)` written in terms of the output `a = g(z)`, which is what both paths keep in memory.
    /// (ReLU′ at 0 is taken as 0, as PyTorch does.) Softmax's Jacobian is not diagonal; the caller
    /// handles it.
    pub fn derivative_from_output<F: Float>(self, a: F) -> F {
        match self {
            Activation::Identity | Activation::Softmax => F::one(),
            Activation::Sigmoid => a * (F::one() - a),
            Activation::Relu => {
                if a > F::zero() {
                    F::one()
                } else {
                    F::zero()
                }
            }
            Activation::Tanh => F::one() - a * a,
        }
    }
}

/// The training objective, reduced by the mean as PyTorch's default `reduction='mean'` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Loss {
    /// Mean over batch × outputs of `(a − y)²` (`nn.MSELoss`).
    Mse,
    /// Mean over the batch of `−Σ_j y_j log softmax(z)_j`; needs a softmax output layer
    /// (`nn.CrossEntropyLoss` with probability targets).
    CrossEntropy,
    /// Mean over batch × outputs of `−(y log a + (1−y) log(1−a))`; needs a sigmoid output layer
    /// (`nn.BCEWithLogitsLoss`, computed from the logits for stability).
    BinaryCrossEntropy,
}

impl Loss {
    /// Every loss, in a fixed order.
    pub const ALL: [Loss; 3] = [Loss::Mse, Loss::CrossEntropy, Loss::BinaryCrossEntropy];

    /// The name used in files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Loss::Mse => "mse",
            Loss::CrossEntropy => "cross-entropy",
            Loss::BinaryCrossEntropy => "binary-cross-entropy",
        }
    }

    /// Parses [`Loss::name`].
    pub fn from_name(name: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|l| l.name() == name).ok_or_else(|| {
            Error::invalid("loss", format!("unknown loss {name:?}; expected one of mse, cross-entropy, binary-cross-entropy"))
        })
    }

    /// The output activation this loss requires, if it requires one.
    pub fn required_output(self) -> Option<Activation> {
        match self {
            Loss::Mse => None,
            Loss::CrossEntropy => Some(Activation::Softmax),
            Loss::BinaryCrossEntropy => Some(Activation::Sigmoid),
        }
    }

    /// The code that selects this loss in `shaders/loss.wgsl` (`LOSS_*`).
    pub(crate) fn wgsl_code(self) -> u32 {
        match self {
            Loss::Mse => 0,
            Loss::CrossEntropy => 1,
            Loss::BinaryCrossEntropy => 2,
        }
    }
}

/// How initial weights are drawn: uniformly in `±limit`, biases zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Init {
    /// He for ReLU layers, Xavier for the others.
    Auto,
    /// Xavier/Glorot: `limit = √(6/(in+out))`, suited to sigmoid and tanh.
    Xavier,
    /// He/Kaiming: `limit = √(6/in)`, suited to ReLU.
    He,
}

impl Init {
    /// The half-width of the uniform distribution for a layer.
    pub fn limit(self, inputs: usize, outputs: usize, activation: Activation) -> f64 {
        let he = match self {
            Init::Auto => activation == Activation::Relu,
            Init::Xavier => false,
            Init::He => true,
        };
        if he {
            (6.0 / (inputs as f64).max(1.0)).sqrt()
        } else {
            // In f64: two sizes that each fit a usize may not fit one as a sum.
            (6.0 / (inputs as f64 + outputs as f64).max(1.0)).sqrt()
        }
    }

    /// `auto`, `xavier` or `he`.
    pub fn name(self) -> &'static str {
        match self {
            Init::Auto => "auto",
            Init::Xavier => "xavier",
            Init::He => "he",
        }
    }
}

/// One fully connected layer: `a = g(x · weightᵀ + bias)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Dense {
    /// `(out, in)`, as `torch.nn.Linear.weight`.
    pub weight: Array2<f32>,
    /// `(out)`.
    pub bias: Array1<f32>,
    /// The nonlinearity applied to `z`.
    pub activation: Activation,
}

impl Dense {
    /// Number of inputs.
    pub fn inputs(&self) -> usize {
        self.weight.ncols()
    }

    /// Number of outputs.
    pub fn outputs(&self) -> usize {
        self.weight.nrows()
    }
}

/// A multi-layer perceptron: dense layers applied in order, and the loss it is trained on.
#[derive(Clone, Debug, PartialEq)]
pub struct Mlp {
    /// The layers, input side first.
    pub layers: Vec<Dense>,
    /// The training objective.
    pub loss: Loss,
}

/// The gradient of the loss with respect to one layer's parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct DenseGradients {
    /// `∂L/∂weight`, `(out, in)`.
    pub dweight: Array2<f32>,
    /// `∂L/∂bias`, `(out)`.
    pub dbias: Array1<f32>,
}

/// The gradients of every layer, in the order of [`Mlp::layers`].
#[derive(Clone, Debug, PartialEq)]
pub struct Gradients {
    /// One entry per layer.
    pub layers: Vec<DenseGradients>,
}

impl Mlp {
    /// A seeded network with layer sizes `sizes` (`[inputs, hidden…, outputs]`), `hidden` on every
    /// hidden layer and `output` on the last, initialised by [`Init::Auto`]. The same seed always
    /// gives the same weights.
    ///
    /// Before allocating, the parameter count is computed without overflow and training's host
    /// memory, [`TRAINING_BYTES_PER_PARAMETER`] a parameter (weights, gradients and two Adam
    /// moments), is compared with the memory available; a model that cannot be counted or does
    /// not fit is an [`Error::Model`] naming its largest layer and the sizes. Other faults, such
    /// as fewer than two sizes or a size of 0, are left to [`Mlp::validate`], which every
    /// computation calls.
    pub fn new(
        sizes: &[usize],
        hidden: Activation,
        output: Activation,
        loss: Loss,
        seed: u64,
    ) -> Result<Mlp> {
        Self::with_init(sizes, hidden, output, loss, Init::Auto, seed)
    }

    /// [`Mlp::new`] with a chosen weight initialisation.
    pub fn with_init(
        sizes: &[usize],
        hidden: Activation,
        output: Activation,
        loss: Loss,
        init: Init,
        seed: u64,
    ) -> Result<Mlp> {
        size::check_sizes(sizes, size::available_memory())?;
        let mut rng = Rng::new(seed);
        let count = sizes.len().saturating_sub(1);
        let mut layers = Vec::with_capacity(count);
        for (i, pair) in sizes.windows(2).enumerate() {
            let (inputs, outputs) = (pair[0], pair[1]);
            let activation = if i + 1 == count { output } else { hidden };
            let limit = init.limit(inputs, outputs, activation);
            // Row-major, one draw per element: the order the weights of a seed have always had.
            let weight = size::try_filled(
                outputs * inputs,
                || format!("layer {i} weight [{outputs}, {inputs}]"),
                || rng.uniform(-limit, limit) as f32,
            )?;
            let bias = size::try_filled(outputs, || format!("layer {i} bias [{outputs}]"), || 0.0)?;
            let weight = Array2::from_shape_vec((outputs, inputs), weight).map_err(|e| {
                Error::Model(format!("layer {i} weight [{outputs}, {inputs}]: {e}"))
            })?;
            layers.push(Dense {
                weight,
                bias: Array1::from_vec(bias),
                activation,
            });
        }
        Ok(Mlp { layers, loss })
    }

    /// The layer sizes `[inputs, hidden…, outputs]`.
    pub fn sizes(&self) -> Vec<usize> {
        let mut sizes: Vec<usize> = self
            .layers
            .first()
            .map(|l| vec![l.inputs()])
            .unwrap_or_default();
        sizes.extend(self.layers.iter().map(Dense::outputs));
        sizes
    }

    /// Number of inputs of the first layer (0 for a model with no layers).
    pub fn inputs(&self) -> usize {
        self.layers.first().map_or(0, Dense::inputs)
    }

    /// Number of outputs of the last layer (0 for a model with no layers).
    pub fn outputs(&self) -> usize {
        self.layers.last().map_or(0, Dense::outputs)
    }

    /// Total number of trainable parameters.
    pub fn parameter_count(&self) -> usize {
        self.layers
            .iter()
            .map(|l| l.weight.len() + l.bias.len())
            .sum()
    }

    /// Checks that the model can be computed: at least one layer, no empty layer, sizes that
    /// chain, biases that match, softmax only on the output layer, an output activation the loss
    /// accepts, and finite parameters.
    pub fn validate(&self) -> Result<()> {
        if self.layers.is_empty() {
            return Err(Error::Model(
                "the model has no layers (give at least two sizes: inputs and outputs)".into(),
            ));
        }
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            let (outputs, inputs) = layer.weight.dim();
            if outputs == 0 || inputs == 0 {
                return Err(Error::Model(format!(
                    "layer {i} has weight shape [{outputs}, {inputs}]; every size must be at least 1"
                )));
            }
            if layer.bias.len() != outputs {
                return Err(Error::Model(format!(
                    "layer {i} has {} biases but its weight [{outputs}, {inputs}] has {outputs} outputs",
                    layer.bias.len()
                )));
            }
            if i > 0 && inputs != self.layers[i - 1].outputs() {
                return Err(Error::Model(format!(
                    "layer {i} takes {inputs} inputs but layer {} produces {}",
                    i - 1,
                    self.layers[i - 1].outputs()
                )));
            }
            if layer.activation == Activation::Softmax && i != last {
                return Err(Error::Model(format!(
                    "layer {i} uses softmax, which is only supported on the output layer"
                )));
            }
            if !all_finite(layer.weight.view()) || !all_finite(layer.bias.view()) {
                return Err(Error::Model(format!(
                    "layer {i} has a NaN or infinite weight or bias"
                )));
            }
        }
        let output = self.layers[last].activation;
        if let Some(required) = self.loss.required_output()
            && output != required
        {
            return Err(Error::Model(format!(
                "loss {} needs a {} output layer, but the output layer uses {}",
                self.loss.name(),
                required.name(),
                output.name()
            )));
        }
        Ok(())
    }
}

/// Checks a batch `x: (batch, inputs)` and, if given, its targets `y: (batch, outputs)`: the
/// shapes, at least one row, and finite values.
pub(crate) fn check_batch(
    inputs: usize,
    outputs: usize,
    x: ArrayView2<'_, f32>,
    y: Option<ArrayView2<'_, f32>>,
) -> Result<()> {
    if x.ncols() != inputs {
        return Err(Error::shape("x", x.shape(), format!("[batch, {inputs}]")));
    }
    if x.nrows() == 0 {
        return Err(Error::shape(
            "x",
            x.shape(),
            format!("[batch ≥ 1, {inputs}]"),
        ));
    }
    check_finite("x", x)?;
    if let Some(y) = y {
        if y.dim() != (x.nrows(), outputs) {
            return Err(Error::shape(
                "y",
                y.shape(),
                format!(
                    "[{}, {outputs}] (one row of targets per row of x)",
                    x.nrows()
                ),
            ));
        }
        check_finite("y", y)?;
    }
    Ok(())
}

/// An error naming the first non-finite element of `array`, if any.
fn check_finite(what: &str, array: ArrayView2<'_, f32>) -> Result<()> {
    if all_finite(array) {
        return Ok(());
    }
    match array.indexed_iter().find(|(_, v)| !v.is_finite()) {
        None => Ok(()),
        Some(((r, c), v)) => Err(Error::invalid(
            what,
            format!("element [{r}, {c}] is {v} (inputs must be finite)"),
        )),
    }
}

/// Whether every element is finite. The trainers check the model and each batch every step, so
/// this is a fold without early exit, which the compiler vectorizes where a short-circuiting search
/// would not (BENCHMARKS.md, "the CPU reference").
fn all_finite<D: ndarray::Dimension>(array: ndarray::ArrayView<'_, f32, D>) -> bool {
    let fold = |values: &[f32]| values.iter().fold(true, |ok, v| ok & v.is_finite());
    match array.as_slice_memory_order() {
        Some(values) => fold(values),
        None => array.iter().all(|v| v.is_finite()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, Array2, s};

    #[test]
    fn every_non_finite_value_is_found_wherever_it_sits_and_however_the_array_is_laid_out() {
        let mut values = Array2::<f32>::from_shape_fn((7, 33), |(r, c)| (r * 33 + c) as f32);
        assert!(all_finite(values.view()));
        // Strided and transposed views take the fallback path; a slice of the last element too.
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            for at in [(0, 0), (3, 17), (6, 32)] {
                values[at] = bad;
                assert!(!all_finite(values.view()), "{bad} at {at:?}");
                assert!(!all_finite(values.t()), "{bad} at {at:?}, transposed");
                let every_other = values.slice(s![.., (at.1 % 2)..;2]);
                assert!(!all_finite(every_other), "{bad} at {at:?}, strided");
                let error = check_finite("x", values.view()).unwrap_err().to_string();
                assert!(
                    error.contains(&format!("[{}, {}] is {bad}", at.0, at.1)),
                    "{error}"
                );
                values[at] = 1.0;
            }
        }
        assert!(all_finite(Array1::<f32>::zeros(0).view()));
    }
}
