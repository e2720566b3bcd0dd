//! The CPU reference on a published worked example (Matt Mazur's 2-2-2 network) and on logits
//! that overflow a naive formula.

use super::*;

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
        leaky_slope: wgpu_mlp::DEFAULT_LEAKY_SLOPE,
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
