//! The CPU reference against central finite differences in f64, against the losses written out
//! the textbook way, against a published worked example, on extreme logits and on bad input.

mod common;

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

const HIDDEN: [Activation; 4] = [
    Activation::Identity,
    Activation::Sigmoid,
    Activation::Relu,
    Activation::Tanh,
];

/// The loss in f64 as a textbook writes it (softmax `e^z/Σe^z`, `−Σ y log a`,
/// `−(y log a + (1−y) log(1−a))`; fine for the moderate logits of these tests), and the smallest
/// |z| of any ReLU layer (infinite if there is none).
fn textbook_loss(mlp: &Mlp, x: ArrayView2<f32>, y: ArrayView2<f32>) -> (f64, f64) {
    let mut a = x.mapv(f64::from);
    let mut closest_kink = f64::INFINITY;
    for layer in &mlp.layers {
        let mut z = a.dot(&layer.weight.mapv(f64::from).t()) + layer.bias.mapv(f64::from);
        if layer.activation == Activation::Relu {
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
/// |z| < 700), ReLU z = z for z > 0 else 0.
fn textbook_activation(activation: Activation, z: f64) -> f64 {
    match activation {
        Activation::Identity => z,
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
/// choice at 0).
fn textbook_derivative(activation: Activation, z: f64) -> f64 {
    match activation {
        Activation::Identity => 1.0,
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
            let a = activation.apply(z);
            assert!(
                (a - want).abs() <= 1e-14 * (1.0 + want.abs()),
                "{what}: g {a} vs {want}"
            );
            let slope = textbook_derivative(activation, z);
            let derivative = activation.derivative_from_output(a);
            assert!(
                (derivative - slope).abs() <= 1e-12,
                "{what}: g′ {derivative} vs {slope}"
            );
            // The closed-form derivative against a central difference of the formula, away from
            // ReLU's kink.
            if activation != Activation::Relu || z.abs() > 1e-3 {
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
            let a32 = activation.apply(z as f32);
            assert!((f64::from(a32) - want).abs() <= 1e-6, "{what}: f32 g {a32}");
            let d32 = activation.derivative_from_output(a32);
            assert!(
                (f64::from(d32) - slope).abs() <= 1e-6,
                "{what}: f32 g′ {d32}"
            );
        }
    }
    // ReLU′ at exactly 0 is 0, as in PyTorch.
    assert_eq!(
        Activation::Relu.derivative_from_output(Activation::Relu.apply(0.0f64)),
        0.0
    );
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

/// Intermediate values printed in Matt Mazur, "A Step by Step Backpropagation Example" (2015),
/// <https://mattmazur.com/2015/03/17/a-step-by-step-backpropagation-example/>; the loss, the
/// weight gradients and the updated weights are in `common::worked_example`.
#[allow(clippy::excessive_precision)]
mod mazur {
    /// net_h1.
    pub const NET_H1: f32 = 0.3775;
    /// out_h1, out_h2.
    pub const OUT_H: [f32; 2] = [0.593269992, 0.596884378];
    /// net_o1.
    pub const NET_O1: f32 = 1.105905967;
    /// out_o1, out_o2.
    pub const OUT_O: [f32; 2] = [0.75136507, 0.772928465];
    /// E_o1, E_o2: ½(target − out)² each; E_total is their sum.
    pub const ERRORS: [f32; 2] = [0.274811083, 0.023560026];
    /// δ_o1 = ∂E_total/∂net_o1 = 0.74136507 × 0.186815602.
    pub const DELTA_O1: f32 = 0.138498562;
    /// ∂E_total/∂out_h1 and ∂out_h1/∂net_h1: their product is δ_h1 = ∂E_total/∂net_h1.
    pub const DE_DOUT_H1: f32 = 0.036350306;
    pub const DOUT_DNET_H1: f32 = 0.241300709;
}

#[test]
fn cpu_reproduces_the_published_worked_example() {
    // The article's nine digits, and f32's own rounding of values near 1.
    let atol = worked_example::PUBLISHED_ATOL;
    const F32_ROUNDING: f32 = 2.0 * f32::EPSILON;
    let (mut mlp, x, y) = worked_example::network();

    let trace: Trace<f32> = mlp.trace(x.view(), y.view()).unwrap();
    let close = |what: &str, got: &[f32], want: &[f32]| {
        assert_close(what, got, want, atol, F32_ROUNDING);
    };
    close(
        "net_h1",
        &[trace.preactivations[0][[0, 0]]],
        &[mazur::NET_H1],
    );
    close("out_h", &flat(&trace.activations[0]), &mazur::OUT_H);
    close(
        "net_o1",
        &[trace.preactivations[1][[0, 0]]],
        &[mazur::NET_O1],
    );
    close("out_o", &flat(&trace.activations[1]), &mazur::OUT_O);
    close("E_total", &[trace.loss], &[worked_example::LOSS]);
    close(
        "E_o1 + E_o2",
        &[trace.loss],
        &[mazur::ERRORS[0] + mazur::ERRORS[1]],
    );
    close("δ_o1", &[trace.deltas[1][[0, 0]]], &[mazur::DELTA_O1]);
    close(
        "δ_h1",
        &[trace.deltas[0][[0, 0]]],
        &[mazur::DE_DOUT_H1 * mazur::DOUT_DNET_H1],
    );

    let (loss, grads) = mlp.loss_and_gradients(x.view(), y.view()).unwrap();
    close("loss", &[loss], &[worked_example::LOSS]);
    close(
        "output dweight (∂E/∂w5 … ∂E/∂w8)",
        &flat(&grads.layers[1].dweight),
        &worked_example::DWEIGHT_OUTPUT,
    );
    close(
        "hidden dweight (∂E/∂w1 … ∂E/∂w4)",
        &flat(&grads.layers[0].dweight),
        &worked_example::DWEIGHT_HIDDEN,
    );
    // With one sample, db = δ.
    close(
        "output dbias[0]",
        &[grads.layers[1].dbias[0]],
        &[mazur::DELTA_O1],
    );

    assert_eq!(mlp.train_step(x.view(), y.view(), 0.5).unwrap(), loss);
    close(
        "updated w5 … w8",
        &flat(&mlp.layers[1].weight),
        &worked_example::UPDATED_OUTPUT,
    );
    close(
        "updated w1 … w4",
        &flat(&mlp.layers[0].weight),
        &worked_example::UPDATED_HIDDEN,
    );
    // Mazur keeps the biases; we move them too, by lr·δ (derived from his δ_o1).
    close(
        "updated output bias[0]",
        &[mlp.layers[1].bias[0]],
        &[0.60 - 0.5 * mazur::DELTA_O1],
    );
}

/// A matrix's elements in row-major order.
fn flat(matrix: &Array2<f32>) -> Vec<f32> {
    matrix.iter().copied().collect()
}

/// A one-layer network `z = x · Wᵀ` with the given weight `(out, in)` and activation.
fn linear(weight: Array2<f32>, activation: Activation, loss: Loss) -> Mlp {
    let outputs = weight.nrows();
    Mlp {
        layers: vec![Dense {
            weight,
            bias: Array1::zeros(outputs),
            activation,
        }],
        loss,
    }
}

#[test]
fn losses_are_exact_for_logits_that_overflow_a_naive_formula() {
    // Softmax cross-entropy with logits ±1000: e^1000 overflows, lse(z) = 1000 does not.
    let mlp = linear(
        array![[1000.0], [-1000.0]],
        Activation::Softmax,
        Loss::CrossEntropy,
    );
    let (x, y) = (array![[1.0f32]], array![[0.0f32, 1.0]]);
    assert_eq!(mlp.forward(x.view()).unwrap(), array![[1.0f32, 0.0]]);
    let (loss, grads) = mlp.loss_and_gradients(x.view(), y.view()).unwrap();
    assert_eq!(loss, 2000.0, "lse(z) − z_1 = 1000 − (−1000)");
    assert_eq!(
        grads.layers[0].dweight,
        array![[1.0f32], [-1.0]],
        "δ = a − y"
    );

    // Binary cross-entropy with logits ±200: σ(−200) is 0 in f32, so log σ would be −∞.
    let mlp = linear(
        array![[200.0]],
        Activation::Sigmoid,
        Loss::BinaryCrossEntropy,
    );
    let (x, y) = (array![[1.0f32], [-1.0]], array![[0.0f32], [1.0]]);
    let (loss, grads) = mlp.loss_and_gradients(x.view(), y.view()).unwrap();
    assert_eq!(
        loss, 200.0,
        "max(z, 0) − z·y + ln(1 + e^−|z|) = 200 for both rows"
    );
    // δ = (a − y)/2 = [0.5, −0.5]; dW = δᵀx = 0.5·1 + (−0.5)·(−1).
    assert_eq!(grads.layers[0].dweight, array![[1.0f32]]);

    // Softmax rows sum to 1 and stay finite for large logits of either sign.
    let mlp = linear(
        random_matrix(4, 3, 9).mapv(|w| 300.0 * w),
        Activation::Softmax,
        Loss::CrossEntropy,
    );
    let probabilities = mlp.forward(random_matrix(5, 3, 10).view()).unwrap();
    for row in probabilities.rows() {
        assert!(row.iter().all(|p| p.is_finite() && *p >= 0.0));
        assert!((row.sum() - 1.0).abs() <= 4.0 * f32::EPSILON, "{row}");
    }
}

#[test]
fn bad_input_is_an_error_naming_what_did_not_fit() {
    let mut mlp = Mlp::new(
        &[4, 5, 3],
        Activation::Relu,
        Activation::Softmax,
        Loss::CrossEntropy,
        1,
    )
    .unwrap();
    let x = random_matrix(2, 4, 1);
    let y = one_hot(2, 3, 1);
    let message = |e: Error| e.to_string();

    let wrong_columns = random_matrix(2, 5, 1);
    assert!(message(mlp.loss(wrong_columns.view(), y.view()).unwrap_err()).contains("x is [2, 5]"));
    assert!(message(mlp.forward(wrong_columns.view()).unwrap_err()).contains("x is [2, 5]"));
    assert!(
        message(mlp.loss(x.view(), one_hot(3, 3, 1).view()).unwrap_err()).contains("y is [3, 3]")
    );
    assert!(
        message(mlp.loss(x.view(), one_hot(2, 4, 1).view()).unwrap_err()).contains("y is [2, 4]")
    );
    assert!(message(mlp.forward(Array2::zeros((0, 4)).view()).unwrap_err()).contains("batch ≥ 1"));

    let mut nan = x.clone();
    nan[[0, 3]] = f32::NAN;
    let error = message(mlp.loss_and_gradients(nan.view(), y.view()).unwrap_err());
    assert!(
        error.contains("invalid x") && error.contains("[0, 3] is NaN"),
        "{error}"
    );
    let mut infinite = y.clone();
    infinite[[1, 2]] = f32::INFINITY;
    let error = message(mlp.trace(x.view(), infinite.view()).unwrap_err());
    assert!(
        error.contains("invalid y") && error.contains("[1, 2] is inf"),
        "{error}"
    );

    let before = mlp.clone();
    for lr in [0.0, -0.5, f32::NAN, f32::INFINITY] {
        let error = message(mlp.train_step(x.view(), y.view(), lr).unwrap_err());
        assert!(error.contains("learning rate"), "{error}");
    }
    assert_eq!(mlp, before, "a refused step changes nothing");

    let (_, grads) = mlp.loss_and_gradients(x.view(), y.view()).unwrap();
    let error = message(mlp.apply_sgd(&grads, f32::NAN).unwrap_err());
    assert!(error.contains("learning rate"), "{error}");
    let one_layer = Gradients {
        layers: grads.layers[..1].to_vec(),
    };
    let error = message(mlp.apply_sgd(&one_layer, 0.1).unwrap_err());
    assert!(
        error.contains("1 layers of gradients for a 2-layer model"),
        "{error}"
    );
    let mut wrong_weight = grads.clone();
    wrong_weight.layers[1] = DenseGradients {
        dweight: Array2::zeros((3, 4)),
        dbias: Array1::zeros(3),
    };
    let error = message(mlp.apply_sgd(&wrong_weight, 0.1).unwrap_err());
    assert!(error.contains("layer 1 dweight is [3, 4]"), "{error}");
    let mut wrong_bias = grads.clone();
    wrong_bias.layers[0].dbias = Array1::zeros(4);
    let error = message(mlp.apply_sgd(&wrong_bias, 0.1).unwrap_err());
    assert!(error.contains("layer 0 dbias is [4]"), "{error}");
    assert_eq!(mlp, before, "refused updates change nothing");

    let no_layers = Mlp {
        layers: vec![],
        loss: Loss::Mse,
    };
    assert!(message(no_layers.forward(x.view()).unwrap_err()).contains("no layers"));
    assert!(
        message(reference::loss_f64(&no_layers, x.view(), y.view()).unwrap_err())
            .contains("no layers")
    );

    let mut wrong_output = mlp.clone();
    wrong_output.layers[1].activation = Activation::Sigmoid;
    let error = message(wrong_output.loss(x.view(), y.view()).unwrap_err());
    assert!(
        error.contains("cross-entropy needs a softmax output"),
        "{error}"
    );
    let mut hidden_softmax = Mlp::new(
        &[4, 5, 3],
        Activation::Softmax,
        Activation::Identity,
        Loss::Mse,
        1,
    )
    .unwrap();
    let error = message(
        hidden_softmax
            .train_step(x.view(), y.view(), 0.1)
            .unwrap_err(),
    );
    assert!(
        error.contains("only supported on the output layer"),
        "{error}"
    );
    let mut nan_weight = mlp.clone();
    nan_weight.layers[0].weight[[1, 1]] = f32::NAN;
    let error = message(
        nan_weight
            .loss_and_gradients(x.view(), y.view())
            .unwrap_err(),
    );
    assert!(error.contains("layer 0 has a NaN"), "{error}");

    for step in [0.0, -1e-6, f64::NAN] {
        let error = reference::finite_difference_check(&mlp, x.view(), y.view(), step, 1);
        assert!(message(error.unwrap_err()).contains("finite-difference step"));
    }
    let error = reference::loss_and_gradients_f64(&mlp, nan.view(), y.view()).unwrap_err();
    assert!(message(error).contains("[0, 3] is NaN"));
}

#[test]
fn sgd_on_the_cpu_reduces_the_loss_and_reports_the_loss_before_the_step() {
    const LEARNING_RATE: f32 = 0.5;
    let mut mlp = Mlp::new(
        &[6, 8, 3],
        Activation::Tanh,
        Activation::Softmax,
        Loss::CrossEntropy,
        4,
    )
    .unwrap();
    let x = random_matrix(9, 6, 5);
    let y = one_hot(9, 3, 6);
    let first = mlp.loss(x.view(), y.view()).unwrap();
    for step in 0..20 {
        let before = mlp.loss(x.view(), y.view()).unwrap();
        // The step is exactly W − lr·dW, b − lr·db with the gradients before it.
        let mut expected = mlp.clone();
        let (_, grads) = expected.loss_and_gradients(x.view(), y.view()).unwrap();
        expected.apply_sgd(&grads, LEARNING_RATE).unwrap();
        assert_eq!(
            mlp.train_step(x.view(), y.view(), LEARNING_RATE).unwrap(),
            before,
            "step {step}"
        );
        assert_eq!(mlp, expected, "step {step}");
    }
    let last = mlp.loss(x.view(), y.view()).unwrap();
    assert!(last < 0.5 * first, "loss {first} → {last} after 20 steps");
}

#[test]
fn apply_sgd_moves_every_parameter_by_the_learning_rate_times_its_gradient() {
    let mut mlp = Mlp::new(
        &[3, 4, 2],
        Activation::Sigmoid,
        Activation::Identity,
        Loss::Mse,
        8,
    )
    .unwrap();
    let before = mlp.clone();
    let grads = Gradients {
        layers: mlp
            .layers
            .iter()
            .enumerate()
            .map(|(l, layer)| DenseGradients {
                dweight: random_matrix(layer.outputs(), layer.inputs(), 20 + l as u64),
                dbias: random_matrix(1, layer.outputs(), 30 + l as u64)
                    .row(0)
                    .to_owned(),
            })
            .collect(),
    };
    mlp.apply_sgd(&grads, 0.25).unwrap();
    for (l, ((after, old), grad)) in mlp
        .layers
        .iter()
        .zip(&before.layers)
        .zip(&grads.layers)
        .enumerate()
    {
        let want_weight = &old.weight - &(0.25 * &grad.dweight);
        let want_bias = &old.bias - &(0.25 * &grad.dbias);
        assert_close2(
            &format!("layer {l} weight"),
            after.weight.view(),
            want_weight.view(),
            0.0,
            f32::EPSILON,
        );
        assert_close(
            &format!("layer {l} bias"),
            &after.bias.to_vec(),
            &want_bias.to_vec(),
            0.0,
            f32::EPSILON,
        );
    }
}
