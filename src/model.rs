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
    /// `g(z) = z·Φ(z) = ½·z·(1 + erf(z/√2))`, the exact GELU of PyTorch's default `nn.GELU()`,
    /// hidden layers only.
    Gelu,
    /// `g(z) = z·σ(z)` (`nn.SiLU`); hidden layers only.
    Silu,
    /// `g(z) = z` for `z > 0`, `slope·z` otherwise (`nn.LeakyReLU`), with the model's
    /// [`Mlp::leaky_slope`]; hidden layers only.
    LeakyRelu,
}

impl Activation {
    /// Every activation, in a fixed order (useful for tests and the command line).
    pub const ALL: [Activation; 8] = [
        Activation::Identity,
        Activation::Sigmoid,
        Activation::Relu,
        Activation::Tanh,
        Activation::Softmax,
        Activation::Gelu,
        Activation::Silu,
        Activation::LeakyRelu,
    ];

    /// The lower-case name used in files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Identity => "identity",
            Activation::Sigmoid => "sigmoid",
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
            Activation::Softmax => "softmax",
            Activation::Gelu => "gelu",
            Activation::Silu => "silu",
            Activation::LeakyRelu => "leaky-relu",
        }
    }

    /// Parses [`Activation::name`].
    pub fn from_name(name: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name).ok_or_else(|| {
            Error::invalid("activation", format!("unknown activation {name:?}; expected one of identity, sigmoid, relu, tanh, softmax, gelu, silu, leaky-relu"))
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
            Activation::Gelu => 5,
            Activation::Silu => 6,
            Activation::LeakyRelu => 7,
        }
    }

    /// Whether only hidden layers may use it: the output kernel and the loss take g′ from the
    /// output `a`, which GELU and SiLU cannot, and the output layer has no use for the others.
    pub fn is_hidden_only(self) -> bool {
        matches!(
            self,
            Activation::Gelu | Activation::Silu | Activation::LeakyRelu
        )
    }

    /// Whether backward takes g′ from the pre-activation `z` rather than from the output `a`:
    /// GELU′ and SiLU′ cannot be written in terms of `a` (neither g is invertible), so their layers
    /// keep `z` for backward.
    pub fn keeps_preactivation(self) -> bool {
        matches!(self, Activation::Gelu | Activation::Silu)
    }

    /// Whether g′ jumps at `z = 0` (ReLU and leaky ReLU), where finite differences do not
    /// estimate the derivative.
    pub fn has_kink(self) -> bool {
        matches!(self, Activation::Relu | Activation::LeakyRelu)
    }

    /// `g(z)` for the element-wise activations, `leaky_slope` being the model's
    /// [`Mlp::leaky_slope`]. Softmax is row-wise and handled by the caller.
    pub fn apply<F: Float>(self, z: F, leaky_slope: F) -> F {
        let half = F::from(0.5).unwrap();
        match self {
            Activation::Identity | Activation::Softmax => z,
            Activation::Sigmoid => sigmoid(z),
            Activation::Relu => z.max(F::zero()),
            Activation::Tanh => z.tanh(),
            Activation::Gelu => half * z * (F::one() + erf(z * F::from(FRAC_1_SQRT_2).unwrap())),
            Activation::Silu => z * sigmoid(z),
            Activation::LeakyRelu => {
                if z > F::zero() {
                    z
                } else {
                    leaky_slope * z
                }
            }
        }
    }

    /// `g′(z)` from what a layer keeps for backward: the pre-activation `z` where
    /// [`Activation::keeps_preactivation`], else the output `a = g(z)`, both paths keeping only
    /// that one in memory. ReLU′(0) = 0 and leaky ReLU′(0) = slope, as PyTorch has them; leaky
    /// ReLU′ from `a` is right because `a > 0 ⇔ z > 0` for a slope ≥ 0 ([`Mlp::validate`]).
    /// Softmax's Jacobian is not diagonal; the caller handles it.
    pub fn derivative<F: Float>(self, kept: F, leaky_slope: F) -> F {
        let positive = |a: F| if a > F::zero() { F::one() } else { F::zero() };
        match self {
            Activation::Identity | Activation::Softmax => F::one(),
            Activation::Sigmoid => kept * (F::one() - kept),
            Activation::Relu => positive(kept),
            Activation::Tanh => F::one() - kept * kept,
            // Φ(z) + z·φ(z), φ the standard normal density.
            Activation::Gelu => {
                let z = kept;
                let half = F::from(0.5).unwrap();
                let cdf = half * (F::one() + erf(z * F::from(FRAC_1_SQRT_2).unwrap()));
                let density = (-half * z * z).exp() * F::from(FRAC_1_SQRT_2PI).unwrap();
                cdf + z * density
            }
            // σ(z)·(1 + z·(1 − σ(z))).
            Activation::Silu => {
                let s = sigmoid(kept);
                s * (F::one() + kept * (F::one() - s))
            }
            Activation::LeakyRelu => {
                if kept > F::zero() {
                    F::one()
                } else {
                    leaky_slope
                }
            }
        }
    }
}

/// `1/√2`.
const FRAC_1_SQRT_2: f64 = std::f64::consts::FRAC_1_SQRT_2;
/// `1/√(2π)`, the standard normal density at 0.
const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// `1 / (1 + e^{−z})`; for very negative `z` the exponential overflows to ∞ and σ to 0.
fn sigmoid<F: Float>(z: F) -> F {
    F::one() / (F::one() + (-z).exp())
}

/// The error function to f64 precision (libm's); the WGSL, which has no erf, approximates it
/// within 1.5·10⁻⁷ (Abramowitz & Stegun 7.1.26, `erf` in shaders/common.wgsl).
fn erf<F: Float>(x: F) -> F {
    let x = x.to_f64().unwrap_or(f64::NAN);
    F::from(libm::erf(x)).unwrap_or_else(F::nan)
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
    /// He for the ReLU family (ReLU, leaky ReLU, GELU, SiLU), Xavier for the others.
    Auto,
    /// Xavier/Glorot: `limit = √(6/(in+out))`, suited to sigmoid and tanh.
    Xavier,
    /// He/Kaiming, PyTorch's `kaiming_uniform_`: `limit = gain·√(3/in)` with gain
    /// `√(2/(1+slope²))` for leaky ReLU and √2 for the others (ReLU's, which GELU and SiLU,
    /// ReLU-like for large |z|, take too), i.e. `√(6/in)` for ReLU.
    He,
}

impl Init {
    /// The half-width of the uniform distribution for a layer; `leaky_slope` is the model's
    /// [`Mlp::leaky_slope`], which only leaky ReLU's gain reads.
    pub fn limit(
        self,
        inputs: usize,
        outputs: usize,
        activation: Activation,
        leaky_slope: f32,
    ) -> f64 {
        let he = match self {
            Init::Auto => matches!(
                activation,
                Activation::Relu | Activation::LeakyRelu | Activation::Gelu | Activation::Silu
            ),
            Init::Xavier => false,
            Init::He => true,
        };
        if he {
            let slope = f64::from(leaky_slope);
            let gain_squared = match activation {
                Activation::LeakyRelu => 2.0 / (1.0 + slope * slope),
                _ => 2.0,
            };
            (3.0 * gain_squared / (inputs as f64).max(1.0)).sqrt()
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
    /// The negative slope of every [`Activation::LeakyRelu`] layer (`nn.LeakyReLU`'s
    /// `negative_slope`), in `[0, 1)`; [`DEFAULT_LEAKY_SLOPE`] unless chosen.
    pub leaky_slope: f32,
}

/// Leaky ReLU's negative slope unless one is chosen: `nn.LeakyReLU`'s default.
pub const DEFAULT_LEAKY_SLOPE: f32 = 0.01;

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
        Self::with_init_and_leaky_slope(
            sizes,
            hidden,
            output,
            loss,
            init,
            DEFAULT_LEAKY_SLOPE,
            seed,
        )
    }

    /// [`Mlp::with_init`] with leaky ReLU's negative slope, which its He gain depends on; a slope
    /// outside `[0, 1)` is refused.
    pub fn with_init_and_leaky_slope(
        sizes: &[usize],
        hidden: Activation,
        output: Activation,
        loss: Loss,
        init: Init,
        leaky_slope: f32,
        seed: u64,
    ) -> Result<Mlp> {
        check_leaky_slope(leaky_slope)?;
        size::check_sizes(sizes, size::available_memory())?;
        let mut rng = Rng::new(seed);
        let count = sizes.len().saturating_sub(1);
        let mut layers = Vec::with_capacity(count);
        for (i, pair) in sizes.windows(2).enumerate() {
            let (inputs, outputs) = (pair[0], pair[1]);
            let activation = if i + 1 == count { output } else { hidden };
            let limit = init.limit(inputs, outputs, activation, leaky_slope);
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
        Ok(Mlp {
            layers,
            loss,
            leaky_slope,
        })
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
    /// chain, biases that match, softmax only on the output layer and GELU, SiLU and leaky ReLU
    /// only on hidden ones, an output activation the loss accepts, finite parameters and a leaky
    /// slope in `[0, 1)`.
    pub fn validate(&self) -> Result<()> {
        check_leaky_slope(self.leaky_slope)?;
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
            if layer.activation.is_hidden_only() && i == last {
                return Err(Error::Model(format!(
                    "the output layer uses {}, which is only supported on hidden layers \
                     (--output takes identity, sigmoid, relu, tanh or softmax)",
                    layer.activation.name()
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

/// Refuses a leaky ReLU slope outside `[0, 1)`: a negative one would make `a > 0 ⇔ z > 0`, from
/// which backward takes leaky ReLU′, false, and one ≥ 1 is no longer a leaky ReLU.
fn check_leaky_slope(slope: f32) -> Result<()> {
    if (0.0..1.0).contains(&slope) {
        Ok(())
    } else {
        Err(Error::invalid(
            "--leaky-slope",
            format!("{slope} (must be in [0, 1))"),
        ))
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
