//! The CPU reference against central finite differences in f64, against the losses written out
//! the textbook way, against a published worked example, on extreme logits and on bad input.

mod bad_input;
#[path = "../common/mod.rs"]
mod common;
mod published;

use common::{assert_close, assert_close2, one_hot, random_matrix, targets01, worked_example};
use wgpu_mlp::ndarray::{Array1, Array2, ArrayView2, Axis, array};
use wgpu_mlp::reference::{self, Trace};
use wgpu_mlp::{Activation, Dense, DenseGradients, Error, Gradients, Loss, Mlp};

/// Central-difference step in f64: truncation error ~h²·L‴, rounding ~1e-16·L/h.
const FD_STEP: f64 = 1e-6;
/// The analytic f64 gradient against finite differences.
const FD_ATOL: f64 = 1e-8;
const FD_RTOL: f64 = 1e-6;
/// Every ReLU input of a gradient-check case is at least this far from the kink at 0 (a thousand
/// steps), and the check also asserts that no finite difference crossed it.
const RELU_MARGIN: f64 = 1e3 * FD_STEP;
/// The f32 path against the f64 one.
const F32_ATOL: f32 = 1e-6;
const F32_RTOL: f32 = 1e-4;
/// The library's f64 loss against the textbook formulas below (both f64, different algebra).
const TEXTBOOK_RTOL: f64 = 1e-12;

/// The targets a case is trained on.
#[derive(Clone, Copy, Debug)]
enum Targets {
    /// One 1 per row.
    OneHot,
    /// Uniform in (0, 1): rows do not sum to 1, which cross-entropy's `δ = (a·Σy − y)/B` handles.
    Soft,
}

/// Every output activation each loss allows, with the targets it is checked on.
const OUTPUTS: [(Activation, Loss, Targets); 8] = [
    (Activation::Identity, Loss::Mse, Targets::Soft),
    (Activation::Sigmoid, Loss::Mse, Targets::Soft),
    (Activation::Relu, Loss::Mse, Targets::Soft),
    (Activation::Tanh, Loss::Mse, Targets::Soft),
    (Activation::Softmax, Loss::Mse, Targets::Soft),
    (Activation::Softmax, Loss::CrossEntropy, Targets::OneHot),
    (Activation::Softmax, Loss::CrossEntropy, Targets::Soft),
    (Activation::Sigmoid, Loss::BinaryCrossEntropy, Targets::Soft),
];

const HIDDEN: [Activation; 7] = [
    Activation::Identity,
    Activation::Sigmoid,
    Activation::Relu,
    Activation::Tanh,
    Activation::Gelu,
    Activation::Silu,
    Activation::LeakyRelu,
];

/// The models' leaky ReLU slope: `nn.LeakyReLU`'s default, as `Mlp::new` gives, in f32 as the
/// model holds it.
const LEAKY_SLOPE: f64 = 0.01f32 as f64;

/// erf(x) = (2/√π)·e^{−x²}·Σ_n (2x²)ⁿ·x/(1·3·…·(2n+1)) (Abramowitz & Stegun 7.1.6), a series of
/// positive terms that loses nothing to cancellation; beyond |x| = 6, erf is ±1 to f64 precision.
fn series_erf(x: f64) -> f64 {
    if x.abs() > 6.0 {
        return x.signum();
    }
    let (mut term, mut sum, mut n) = (x, 0.0f64, 0.0);
    while term.abs() > 1e-17 * sum.abs() {
        sum += term;
        n += 1.0;
        term *= 2.0 * x * x / (2.0 * n + 1.0);
    }
    2.0 / std::f64::consts::PI.sqrt() * (-x * x).exp() * sum
}

#[test]
fn the_series_erf_matches_tabulated_values() {
    // Abramowitz & Stegun table 7.1.
    for (x, erf) in [
        (0.0, 0.0),
        (0.5, 0.520_499_877_8),
        (1.0, 0.842_700_792_9),
        (2.0, 0.995_322_265_0),
    ] {
        assert!(
            (series_erf(x) - erf).abs() < 1e-10,
            "erf({x}) = {}",
            series_erf(x)
        );
        assert!((series_erf(-x) + erf).abs() < 1e-10);
    }
}

/// The loss in f64 as a textbook writes it (softmax `e^z/Σe^z`, `−Σ y log a`,
/// `−(y log a + (1−y) log(1−a))`; fine for the moderate logits of these tests), and the smallest
/// |z| of any ReLU layer (infinite if there is none).
fn textbook_loss(mlp: &Mlp, x: ArrayView2<f32>, y: ArrayView2<f32>) -> (f64, f64) {
    let mut a = x.mapv(f64::from);
    let mut closest_kink = f64::INFINITY;
    for layer in &mlp.layers {
        let mut z = a.dot(&layer.weight.mapv(f64::from).t()) + layer.bias.mapv(f64::from);
        if matches!(layer.activation, Activation::Relu | Activation::LeakyRelu) {
            closest_kink = z.iter().fold(closest_kink, |m, v| m.min(v.abs()));
        }
        if layer.activation == Activation::Softmax {
            for mut row in z.rows_mut() {
                row.mapv_inplace(f64::exp);
                let total = row.sum();
                row /= total;
            }
        } else {
            z.mapv_inplace(|v| textbook_activation(layer.activation, v));
        }
        a = z;
    }
    let y = y.mapv(f64::from);
    let loss = match mlp.loss {
        Loss::Mse => (&a - &y).mapv(|d| d * d).mean(),
        Loss::CrossEntropy => (-(&y * &a.ln()).sum_axis(Axis(1))).mean(),
        Loss::BinaryCrossEntropy => (-(&y * &a.ln() + (1.0 - &y) * (1.0 - &a).ln())).mean(),
    };
    (loss.expect("a non-empty batch"), closest_kink)
}

/// g(z) for the element-wise activations as a textbook writes them, independently of
/// [`Activation::apply`]: σ(z) = 1/(1 + e^−z), tanh z = (e^z − e^−z)/(e^z + e^−z) (fine for
/// |z| < 700), ReLU z = z for z > 0 else 0, GELU z·½(1 + erf(z/√2)) (PyTorch's exact form),
/// SiLU z·σ(z), leaky ReLU z for z > 0 else 0.01·z.
fn textbook_activation(activation: Activation, z: f64) -> f64 {
    match activation {
        Activation::Identity => z,
        Activation::Gelu => z * 0.5 * (1.0 + series_erf(z / 2f64.sqrt())),
        Activation::Silu => z / (1.0 + (-z).exp()),
        Activation::LeakyRelu => {
            if z > 0.0 {
                z
            } else {
                LEAKY_SLOPE * z
            }
        }
        Activation::Sigmoid => 1.0 / (1.0 + (-z).exp()),
        Activation::Tanh => (z.exp() - (-z).exp()) / (z.exp() + (-z).exp()),
        Activation::Relu => {
            if z > 0.0 {
                z
            } else {
                0.0
            }
        }
        Activation::Softmax => unreachable!("softmax is row-wise"),
    }
}

/// g′(z) written in terms of z, from the derivatives of [`textbook_activation`]'s formulas:
/// σ′(z) = e^−z/(1 + e^−z)², tanh′(z) = 4/(e^z + e^−z)², ReLU′(z) = 1 for z > 0 else 0 (PyTorch's
/// choice at 0), GELU′(z) = Φ(z) + z·e^{−z²/2}/√(2π), SiLU′(z) = (1 + e^−z + z·e^−z)/(1 + e^−z)²,
/// leaky ReLU′(z) = 1 for z > 0 else 0.01.
fn textbook_derivative(activation: Activation, z: f64) -> f64 {
    match activation {
        Activation::Identity => 1.0,
        Activation::Gelu => {
            0.5 * (1.0 + series_erf(z / 2f64.sqrt()))
                + z * (-z * z / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt()
        }
        Activation::Silu => (1.0 + (-z).exp() + z * (-z).exp()) / (1.0 + (-z).exp()).powi(2),
        Activation::LeakyRelu => {
            if z > 0.0 {
                1.0
            } else {
                LEAKY_SLOPE
            }
        }
        Activation::Sigmoid => (-z).exp() / (1.0 + (-z).exp()).powi(2),
        Activation::Tanh => 4.0 / (z.exp() + (-z).exp()).powi(2),
        Activation::Relu => {
            if z > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        Activation::Softmax => unreachable!("softmax is row-wise"),
    }
}

#[test]
fn activations_and_their_derivatives_match_formulas_written_out_here() {
    let zs: Vec<f64> = (-40..=40).map(|i| f64::from(i) * 0.15).collect();
    for activation in HIDDEN {
        for &z in &zs {
            let what = format!("{activation:?} at {z}");
            let want = textbook_activation(activation, z);
            let a = activation.apply(z, LEAKY_SLOPE);
            assert!(
                (a - want).abs() <= 1e-14 * (1.0 + want.abs()),
                "{what}: g {a} vs {want}"
            );
            let slope = textbook_derivative(activation, z);
            // g′ from what the layer keeps: z for GELU and SiLU, a for the others.
            let keeps_z = activation.keeps_preactivation();
            let derivative = activation.derivative(if keeps_z { z } else { a }, LEAKY_SLOPE);
            assert!(
                (derivative - slope).abs() <= 1e-12,
                "{what}: g′ {derivative} vs {slope}"
            );
            // The closed-form derivative against a central difference of the formula, away from
            // the kink of ReLU and leaky ReLU.
            if !activation.has_kink() || z.abs() > 1e-3 {
                let h = 1e-5;
                let central = (textbook_activation(activation, z + h)
                    - textbook_activation(activation, z - h))
                    / (2.0 * h);
                assert!(
                    (central - slope).abs() <= 1e-8,
                    "{what}: {central} vs {slope}"
                );
            }
            // In f32 as the model runs it.
            let a32 = activation.apply(z as f32, LEAKY_SLOPE as f32);
            assert!((f64::from(a32) - want).abs() <= 1e-6, "{what}: f32 g {a32}");
            let kept32 = if keeps_z { z as f32 } else { a32 };
            let d32 = activation.derivative(kept32, LEAKY_SLOPE as f32);
            assert!(
                (f64::from(d32) - slope).abs() <= 1e-6,
                "{what}: f32 g′ {d32}"
            );
        }
    }
    // ReLU′ at exactly 0 is 0, as in PyTorch.
    assert_eq!(
        Activation::Relu.derivative(Activation::Relu.apply(0.0f64, 0.0), 0.0),
        0.0
    );
    // Leaky ReLU′ at exactly 0 is the slope, as in PyTorch.
    let leaky = Activation::LeakyRelu;
    assert_eq!(leaky.derivative(leaky.apply(0.0f64, 0.2), 0.2), 0.2);
}

/// A seeded network with random biases (so that they matter in the forward pass) and a batch
/// whose ReLU inputs all keep [`RELU_MARGIN`] from 0: the first of 100 seeds that does.
fn kink_free_case(
    sizes: &[usize],
    hidden: Activation,
    output: Activation,
    loss: Loss,
    batch: usize,
    case: u64,
) -> (Mlp, Array2<f32>) {
    (0..100u64)
        .map(|attempt| {
            let seed = case * 1000 + attempt;
            let mut mlp = Mlp::new(sizes, hidden, output, loss, seed).unwrap();
            for (l, layer) in mlp.layers.iter_mut().enumerate() {
                let bias = random_matrix(1, layer.outputs(), seed * 10 + l as u64);
                layer.bias = bias.row(0).mapv(|b| 0.5 * b);
            }
            let x = random_matrix(batch, sizes[0], seed + 7);
            (mlp, x)
        })
        .find(|(mlp, x)| {
            let y = Array2::zeros((x.nrows(), mlp.outputs()));
            textbook_loss(mlp, x.view(), y.view()).1 > RELU_MARGIN
        })
        .expect("one of 100 seeds keeps every ReLU input away from 0")
}

/// The worst differences one gradient check saw.
#[derive(Default)]
struct Worst {
    fd_abs: f64,
    /// The largest share of its tolerance any difference used.
    fd_share: f64,
    f32_abs: f32,
    parameters: usize,
}

/// Checks one case every way: finite differences against the analytic f64 gradient, the f64 loss
/// against the textbook one, the f32 loss and gradients against the f64 ones, and the trace
/// against the plain pass.
fn check_case(mlp: &Mlp, x: ArrayView2<f32>, y: ArrayView2<f32>, what: &str, worst: &mut Worst) {
    let checks = reference::finite_difference_check(mlp, x, y, FD_STEP, usize::MAX).unwrap();
    assert_eq!(
        checks.len(),
        mlp.parameter_count(),
        "{what}: every parameter"
    );
    for check in &checks {
        let (fd, exact) = (check.finite_difference, check.analytic);
        assert!(
            !check.crosses_relu_kink,
            "{what}: {}: the finite difference crosses a ReLU kink",
            check.parameter
        );
        let error = (fd - exact).abs();
        assert!(
            error <= FD_ATOL + FD_RTOL * exact.abs(),
            "{what}: {}: finite difference {fd:e}, analytic {exact:e}, diff {error:e}",
            check.parameter
        );
        worst.fd_abs = worst.fd_abs.max(error);
        worst.fd_share = worst
            .fd_share
            .max(error / (FD_ATOL + FD_RTOL * exact.abs()));
    }
    worst.parameters += checks.len();

    let (loss64, analytic) = reference::loss_and_gradients_f64(mlp, x, y).unwrap();
    assert_eq!(reference::loss_f64(mlp, x, y).unwrap(), loss64);
    let (textbook, _) = textbook_loss(mlp, x, y);
    assert!(
        (loss64 - textbook).abs() <= TEXTBOOK_RTOL * textbook.abs(),
        "{what}: loss {loss64} but the textbook formula gives {textbook}"
    );

    let (loss32, grads32) = mlp.loss_and_gradients(x, y).unwrap();
    assert_close(
        &format!("{what}: f32 loss"),
        &[loss32],
        &[loss64 as f32],
        F32_ATOL,
        F32_RTOL,
    );
    for (l, (g32, (dw, db))) in grads32.layers.iter().zip(&analytic).enumerate() {
        let dw = dw.mapv(|v| v as f32);
        let db = db.mapv(|v| v as f32);
        let worst_dw = assert_close2(
            &format!("{what}: f32 layer {l} dweight"),
            g32.dweight.view(),
            dw.view(),
            F32_ATOL,
            F32_RTOL,
        );
        let worst_db = assert_close(
            &format!("{what}: f32 layer {l} dbias"),
            &g32.dbias.to_vec(),
            &db.to_vec(),
            F32_ATOL,
            F32_RTOL,
        );
        worst.f32_abs = worst.f32_abs.max(worst_dw).max(worst_db);
    }

    // The trace runs the same code: identical numbers, and its output is `forward`'s.
    let trace = mlp.trace(x, y).unwrap();
    assert_eq!(trace.loss, loss32, "{what}: trace loss");
    assert_eq!(mlp.loss(x, y).unwrap(), loss32, "{what}: loss()");
    for (l, (traced, grads)) in trace.gradients.iter().zip(&grads32.layers).enumerate() {
        assert_eq!(traced.0, grads.dweight, "{what}: trace layer {l} dweight");
        assert_eq!(traced.1, grads.dbias, "{what}: trace layer {l} dbias");
    }
    assert_eq!(
        trace.activations.last(),
        Some(&mlp.forward(x).unwrap()),
        "{what}: trace output vs forward"
    );
}

#[test]
fn analytic_gradients_match_finite_differences_for_every_activation_loss_and_depth() {
    let widths = [5, 7, 6, 4, 3];
    let mut worst = Worst::default();
    let mut case = 0u64;
    for depth in 1..=4 {
        // A one-layer network has no hidden activation.
        let hiddens = if depth == 1 {
            &HIDDEN[..1]
        } else {
            &HIDDEN[..]
        };
        for &hidden in hiddens {
            for (output, loss, targets) in OUTPUTS {
                for batch in [1, 3, 7] {
                    let sizes = &widths[..=depth];
                    let (mlp, x) = kink_free_case(sizes, hidden, output, loss, batch, case);
                    let y = match targets {
                        Targets::OneHot => one_hot(batch, widths[depth], case),
                        Targets::Soft => targets01(batch, widths[depth], case),
                    };
                    let what = format!(
                        "{sizes:?} {hidden:?}→{output:?} {loss:?} {targets:?} batch {batch}"
                    );
                    check_case(&mlp, x.view(), y.view(), &what, &mut worst);
                    case += 1;
                }
            }
        }
    }
    eprintln!(
        "{case} networks, {} parameters: worst |finite difference − analytic| {:.3e} \
         ({:.1}% of its tolerance); worst |f32 − f64| gradient {:.3e}",
        worst.parameters,
        worst.fd_abs,
        100.0 * worst.fd_share,
        worst.f32_abs
    );
}
