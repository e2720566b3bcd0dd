//! What the kernels should compute, written here from the definitions and in f64, so that a
//! mistake shared by the library's CPU formulas and the shaders cannot pass unnoticed.

use wgpu_mlp::Activation;
use wgpu_mlp::ndarray::{Array2, Axis};

/// The leaky ReLU slope the kernels are bound with here: `nn.LeakyReLU`'s default.
pub const LEAKY_SLOPE: f32 = 0.01;

/// `σ(z) = 1/(1 + e^−z)` in f64.
fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// `Φ(z) = ½(1 + erf(z/√2))` in f64, erf from libm (not the library's approximation).
fn normal_cdf(z: f64) -> f64 {
    0.5 * (1.0 + libm::erf(z / std::f64::consts::SQRT_2))
}

/// `g(z)` for an element-wise activation: identity `z`, sigmoid `1/(1 + e^−z)`, ReLU
/// `max(z, 0)`, tanh `(e^{2z} − 1)/(e^{2z} + 1)`, GELU `z·Φ(z)`, SiLU `z·σ(z)`, leaky ReLU `z` or
/// `LEAKY_SLOPE·z`. Softmax is row-wise: see [`softmax_rows`].
pub fn activate(activation: Activation, z: f32) -> f32 {
    activate_with_slope(activation, z, LEAKY_SLOPE)
}

/// [`activate`] with leaky ReLU's slope `slope`.
pub fn activate_with_slope(activation: Activation, z: f32, slope: f32) -> f32 {
    let z = f64::from(z);
    let a = match activation {
        Activation::Identity => z,
        Activation::Sigmoid => sigmoid(z),
        Activation::Gelu => z * normal_cdf(z),
        Activation::Silu => z * sigmoid(z),
        Activation::LeakyRelu => {
            if z > 0.0 {
                z
            } else {
                f64::from(slope) * z
            }
        }
        Activation::Relu => {
            if z > 0.0 {
                z
            } else {
                0.0
            }
        }
        // e^{2z} overflows f64 only past z ≈ 355, where tanh is 1 to every bit of f32.
        Activation::Tanh => match (2.0 * z).exp() {
            e if e.is_infinite() => 1.0,
            e => (e - 1.0) / (e + 1.0),
        },
        Activation::Softmax => panic!("softmax is row-wise; use softmax_rows"),
    };
    flush_subnormal(a as f32)
}

/// `value`, or 0 if it is subnormal: f32 arithmetic on a GPU may flush subnormal results to zero
/// (WGSL allows it), as the sigmoid of z below about −87 is.
fn flush_subnormal(value: f32) -> f32 {
    if value.is_subnormal() { 0.0 } else { value }
}

/// `g′(z)` from what a layer keeps for backward, the output `a = g(z)` or, for GELU and SiLU,
/// `z`: identity 1, sigmoid `a(1 − a)`, tanh `1 − a²`, ReLU 1 where `a > 0` and 0 elsewhere
/// (ReLU′(0) = 0, as in PyTorch), leaky ReLU 1 or `LEAKY_SLOPE`, GELU `Φ(z) + z·e^{−z²/2}/√(2π)`,
/// SiLU `σ(z)(1 + z(1 − σ(z)))`. Softmax's Jacobian is not diagonal: see [`softmax_backward`].
pub fn derivative_from_kept(activation: Activation, kept: f32) -> f32 {
    derivative_from_kept_with_slope(activation, kept, LEAKY_SLOPE)
}

/// [`derivative_from_kept`] with leaky ReLU's slope `slope`.
pub fn derivative_from_kept_with_slope(activation: Activation, kept: f32, slope: f32) -> f32 {
    let a = f64::from(kept);
    let z = a;
    let derivative = match activation {
        Activation::Identity => 1.0,
        Activation::Sigmoid => a * (1.0 - a),
        Activation::Tanh => 1.0 - a * a,
        Activation::Gelu => {
            normal_cdf(z) + z * (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt()
        }
        Activation::Silu => sigmoid(z) * (1.0 + z * (1.0 - sigmoid(z))),
        Activation::LeakyRelu => {
            if a > 0.0 {
                1.0
            } else {
                f64::from(slope)
            }
        }
        Activation::Relu => {
            if a > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        Activation::Softmax => panic!("softmax's Jacobian is not diagonal; use softmax_backward"),
    };
    derivative as f32
}

/// Softmax of each row, `e^{z_j − max} / Σ_k e^{z_k − max}`.
pub fn softmax_rows(z: &Array2<f32>) -> Array2<f32> {
    let mut a = z.clone();
    for mut row in a.rows_mut() {
        let max = row.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        row.mapv_inplace(|v| (v - max).exp());
        let total = row.sum();
        row.mapv_inplace(|v| v / total);
    }
    a
}

/// The gradient through softmax, `a ⊙ (da − Σ_j da_j a_j)` row-wise.
pub fn softmax_backward(a: &Array2<f32>, da: &Array2<f32>) -> Array2<f32> {
    let dot = (da * a).sum_axis(Axis(1)).insert_axis(Axis(1));
    a * &(da - &dot)
}

#[test]
fn the_expected_activations_agree_with_values_known_by_hand() {
    let close = |got: f32, want: f32| assert!((got - want).abs() < 1e-7, "{got} vs {want}");
    close(activate(Activation::Sigmoid, 0.0), 0.5);
    close(activate(Activation::Sigmoid, 2.0), 0.880_797_1);
    assert_eq!(
        activate(Activation::Sigmoid, -95.0),
        0.0,
        "flushed, as a GPU may"
    );
    close(activate(Activation::Tanh, 0.5), 0.462_117_16);
    close(activate(Activation::Tanh, -400.0), -1.0);
    close(activate(Activation::Relu, -3.0), 0.0);
    close(activate(Activation::Identity, -3.0), -3.0);
    close(derivative_from_kept(Activation::Sigmoid, 0.25), 0.1875);
    close(derivative_from_kept(Activation::Tanh, 0.5), 0.75);
    close(derivative_from_kept(Activation::Relu, 0.0), 0.0);
    close(derivative_from_kept(Activation::Relu, 0.1), 1.0);
    close(derivative_from_kept(Activation::Identity, 7.0), 1.0);
    // GELU(1) = Φ(1) = 0.841 344 746 (normal tables), GELU′(0) = ½; SiLU(1) = σ(1) = 0.731 058 58,
    // SiLU′(0) = ½; leaky ReLU with the default slope.
    close(activate(Activation::Gelu, 1.0), 0.841_344_7);
    close(activate(Activation::Gelu, -1.0), -0.158_655_25);
    close(derivative_from_kept(Activation::Gelu, 0.0), 0.5);
    close(activate(Activation::Silu, 1.0), 0.731_058_6);
    close(derivative_from_kept(Activation::Silu, 0.0), 0.5);
    close(activate(Activation::LeakyRelu, -3.0), -0.03);
    close(derivative_from_kept(Activation::LeakyRelu, -0.03), 0.01);
    close(derivative_from_kept(Activation::LeakyRelu, 2.0), 1.0);
}
