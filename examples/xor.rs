//! XOR on the GPU: the smallest problem a linear model cannot solve.
//!
//! `cargo run --release --example xor`

use wgpu_mlp::ndarray::array;
use wgpu_mlp::{Activation, AdapterChoice, Gpu, GpuMlp, Loss, Mlp};

fn main() -> wgpu_mlp::Result<()> {
    let x = array![[0.0f32, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]];
    let y = array![[0.0f32], [1.0], [1.0], [0.0]];
    let mlp = Mlp::new(
        &[2, 8, 1],
        Activation::Tanh,
        Activation::Sigmoid,
        Loss::BinaryCrossEntropy,
        7,
    )?;

    let gpu = Gpu::new(AdapterChoice::Auto)?;
    println!("adapter: {}", gpu.adapter_description());
    let mut net = GpuMlp::new(&gpu, &mlp)?;
    for step in 0..=2000 {
        net.train_step(x.view(), y.view(), 0.5)?;
        if step % 250 == 0 {
            println!("step {step:>4}  loss {:.6}", net.last_loss()?);
        }
    }
    let outputs = net.forward(x.view())?;
    for (input, output) in x.rows().into_iter().zip(outputs.rows()) {
        println!("{} xor {} → {:.4}", input[0], input[1], output[0]);
    }
    Ok(())
}
