//! Matt Mazur's "A Step by Step Backpropagation Example" (2015) on the CPU reference: every number
//! of the forward and backward pass and of one SGD step, beside the values the article prints.
//! <https://mattmazur.com/2015/03/17/a-step-by-step-backpropagation-example/>
//!
//! `cargo run --release --example worked_example`
//!
//! The article's error `E_total = Σ ½(target − out)²` over two outputs equals PyTorch's mean MSE,
//! so its derivatives are ours: `δ = ∂E/∂net`, `∂E/∂w = δ · input`.

use wgpu_mlp::ndarray::{Array1, Array2, ArrayView2, Axis, array, s};
use wgpu_mlp::{Activation, Dense, Loss, Mlp};

/// The published values, by label (nine significant digits as printed).
#[allow(clippy::excessive_precision)]
mod published {
    pub const NET_H1: f64 = 0.3775;
    pub const OUT_H: [f64; 2] = [0.593269992, 0.596884378];
    pub const NET_O1: f64 = 1.105905967;
    pub const OUT_O: [f64; 2] = [0.75136507, 0.772928465];
    pub const E_TOTAL: f64 = 0.298371109;
    pub const DELTA_O1: f64 = 0.138498562;
    pub const DW_OUTPUT: [f64; 4] = [0.082167041, 0.082667628, -0.022602540, -0.022740242];
    pub const DW_HIDDEN: [f64; 4] = [0.000438568, 0.000877135, 0.000497713, 0.000995425];
    pub const W_OUTPUT_AFTER: [f64; 4] = [0.35891648, 0.408666186, 0.511301270, 0.561370121];
    pub const W_HIDDEN_AFTER: [f64; 4] = [0.149780716, 0.19956143, 0.24975114, 0.29950229];
}

/// Prints a labelled matrix and, if there are any, the published values and the largest
/// difference (in f64: the f32 values against the article's nine digits).
fn show(label: &str, values: ArrayView2<f32>, published: &[f64]) {
    let numbers: Vec<String> = values.iter().map(|v| format!("{v:.9}")).collect();
    print!("  {label:<22} [{}]", numbers.join(", "));
    if published.is_empty() {
        println!();
        return;
    }
    let worst = values
        .iter()
        .zip(published)
        .map(|(&v, p)| (f64::from(v) - p).abs())
        .fold(0.0f64, f64::max);
    let printed: Vec<String> = published.iter().map(|p| p.to_string()).collect();
    println!(
        "   published [{}]   |diff| ≤ {worst:.1e}",
        printed.join(", ")
    );
}

fn main() -> wgpu_mlp::Result<()> {
    let layer = |weight: [[f32; 2]; 2], bias: f32| Dense {
        weight: Array2::from(weight.to_vec()),
        bias: Array1::from_elem(2, bias),
        activation: Activation::Sigmoid,
    };
    let mut mlp = Mlp {
        layers: vec![
            layer([[0.15, 0.20], [0.25, 0.30]], 0.35), // w1 w2 / w3 w4, b1
            layer([[0.40, 0.45], [0.50, 0.55]], 0.60), // w5 w6 / w7 w8, b2
        ],
        loss: Loss::Mse,
        leaky_slope: wgpu_mlp::DEFAULT_LEAKY_SLOPE,
    };
    let x = array![[0.05f32, 0.10]];
    let y = array![[0.01f32, 0.99]];
    const LEARNING_RATE: f32 = 0.5;

    println!(
        "Mazur's 2-2-2 sigmoid network, mean MSE over the 2 outputs (= his ½Σ(target − out)²)"
    );
    show("inputs x", x.view(), &[]);
    show("targets y", y.view(), &[]);

    let trace = mlp.trace(x.view(), y.view())?;
    let [hidden, output] = [0, 1];
    println!("\nforward: z = a_prev · Wᵀ + b, a = sigmoid(z)");
    show("z hidden (net_h)", trace.preactivations[hidden].view(), &[]);
    show(
        "  net_h1",
        trace.preactivations[hidden].slice(s![.., ..1]),
        &[published::NET_H1],
    );
    show(
        "a hidden (out_h)",
        trace.activations[hidden].view(),
        &published::OUT_H,
    );
    show("z output (net_o)", trace.preactivations[output].view(), &[]);
    show(
        "  net_o1",
        trace.preactivations[output].slice(s![.., ..1]),
        &[published::NET_O1],
    );
    show(
        "a output (out_o)",
        trace.activations[output].view(),
        &published::OUT_O,
    );
    show(
        "loss (E_total)",
        array![[trace.loss]].view(),
        &[published::E_TOTAL],
    );

    println!(
        "\nbackward: δ = ∂E/∂z, dW = δᵀ · a_prev, db = Σ_rows δ, δ_prev = (δ · W) ⊙ a_prev(1 − a_prev)"
    );
    show("δ output", trace.deltas[output].view(), &[]);
    show(
        "  δ_o1",
        trace.deltas[output].slice(s![.., ..1]),
        &[published::DELTA_O1],
    );
    show(
        "dW output (w5..w8)",
        trace.gradients[output].0.view(),
        &published::DW_OUTPUT,
    );
    show(
        "db output",
        trace.gradients[output].1.view().insert_axis(Axis(0)),
        &[],
    );
    show("δ hidden", trace.deltas[hidden].view(), &[]);
    show(
        "dW hidden (w1..w4)",
        trace.gradients[hidden].0.view(),
        &published::DW_HIDDEN,
    );
    show(
        "db hidden",
        trace.gradients[hidden].1.view().insert_axis(Axis(0)),
        &[],
    );

    let loss_before = mlp.train_step(x.view(), y.view(), LEARNING_RATE)?;
    println!("\none SGD step, learning rate {LEARNING_RATE}: W ← W − lr·dW, b ← b − lr·db");
    show(
        "W output (w5..w8)",
        mlp.layers[output].weight.view(),
        &published::W_OUTPUT_AFTER,
    );
    show(
        "b output",
        mlp.layers[output].bias.view().insert_axis(Axis(0)),
        &[],
    );
    show(
        "W hidden (w1..w4)",
        mlp.layers[hidden].weight.view(),
        &published::W_HIDDEN_AFTER,
    );
    show(
        "b hidden",
        mlp.layers[hidden].bias.view().insert_axis(Axis(0)),
        &[],
    );
    println!("  (Mazur leaves the biases alone; PyTorch, and this library, update them too.)");
    let loss_after = mlp.loss(x.view(), y.view())?;
    println!("\nloss {loss_before:.9} → {loss_after:.9} after the step");
    Ok(())
}
