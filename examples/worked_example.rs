//! Matt Mazur's "A Step by Step Backpropagation Example" (2015), every number of the forward and
//! backward pass, on the CPU reference and on the GPU, beside the published values.
//!
//! `cargo run --release --example worked_example`

use wgpu_mlp::ndarray::{Array1, Array2, array};
use wgpu_mlp::reference::{self, layer_views};
use wgpu_mlp::{Activation, AdapterChoice, Dense, Gpu, GpuMlp, Loss, Mlp};

fn main() -> wgpu_mlp::Result<()> {
    let layer = |w: [[f32; 2]; 2], b: f32| Dense {
        weight: Array2::from(w.to_vec()),
        bias: Array1::from_elem(2, b),
        activation: Activation::Sigmoid,
    };
    let mut mlp = Mlp {
        layers: vec![
            layer([[0.15, 0.20], [0.25, 0.30]], 0.35),
            layer([[0.40, 0.45], [0.50, 0.55]], 0.60),
        ],
        loss: Loss::Mse,
    };
    let x = array![[0.05f32, 0.10]];
    let y = array![[0.01f32, 0.99]];

    println!("network 2-2-2, sigmoid, MSE (mean over the 2 outputs = Mazur's ½Σ(target − out)²)");
    println!("inputs {x}, targets {y}\n");

    let (activations, _) = reference::forward_trace(&layer_views(&mlp), x.view());
    println!("forward");
    println!(
        "  out_h = {}   (published: 0.593269992, 0.596884378)",
        activations[0]
    );
    println!(
        "  out_o = {}   (published: 0.75136507, 0.772928465)",
        activations[1]
    );

    let (loss, grads) = mlp.loss_and_gradients(x.view(), y.view())?;
    println!("  E_total = {loss:.9}   (published: 0.298371109)\n");
    println!("backward");
    println!("  dW output = {}", grads.layers[1].dweight);
    println!("    (published ∂E/∂w5..w8: 0.082167041, 0.082667628, -0.022602540, -0.022740242)");
    println!("  db output = {}", grads.layers[1].dbias);
    println!("  dW hidden = {}", grads.layers[0].dweight);
    println!("    (published ∂E/∂w1..w4: 0.000438568, 0.000877135, 0.000497713, 0.000995425)");
    println!("  db hidden = {}\n", grads.layers[0].dbias);

    let gpu = Gpu::new(AdapterChoice::Auto)?;
    let mut net = GpuMlp::new(&gpu, &mlp)?;
    let (gpu_loss, gpu_grads) = net.loss_and_gradients(x.view(), y.view())?;
    let worst = gpu_grads
        .layers
        .iter()
        .zip(&grads.layers)
        .flat_map(|(g, c)| {
            g.dweight
                .iter()
                .zip(c.dweight.iter())
                .chain(g.dbias.iter().zip(c.dbias.iter()))
        })
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    println!(
        "on the GPU ({}): E_total = {gpu_loss:.9}, worst |gpu − cpu| gradient difference {worst:e}\n",
        gpu.adapter_description()
    );

    mlp.train_step(x.view(), y.view(), 0.5)?;
    net.train_step(x.view(), y.view(), 0.5)?;
    let trained = net.to_mlp()?;
    println!("after one SGD step, learning rate 0.5");
    println!(
        "  W output = {}   GPU {}",
        mlp.layers[1].weight, trained.layers[1].weight
    );
    println!("    (published w5..w8: 0.35891648, 0.408666186, 0.511301270, 0.561370121)");
    println!(
        "  W hidden = {}   GPU {}",
        mlp.layers[0].weight, trained.layers[0].weight
    );
    println!("    (published w1..w4: 0.149780716, 0.19956143, 0.24975114, 0.29950229)");
    println!("  (Mazur leaves the biases alone; PyTorch, and we, update them too.)");
    Ok(())
}
