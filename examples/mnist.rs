//! MNIST through the library API: data on the GPU, Adam, evaluation and a saved model.
//!
//! `cargo run --release --example mnist -- [DATA_DIR] [EPOCHS]`
//! (default folder: ../shared/data/mnist, else the usual search path; default 3 epochs)

use std::path::PathBuf;

use wgpu_mlp::checkpoint::{self, CheckpointInfo};
use wgpu_mlp::data::{self, DatasetKind};
use wgpu_mlp::optim::{Optimizer, OptimizerConfig};
use wgpu_mlp::train::{GpuTrainer, Split, TrainConfig, Trainer};
use wgpu_mlp::{Activation, AdapterChoice, Gpu, Loss, Mlp};

fn main() -> wgpu_mlp::Result<()> {
    let mut args = std::env::args().skip(1);
    let explicit = args
        .next()
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from("../shared/data/mnist")).filter(|p| p.is_dir()));
    let epochs: usize = args.next().and_then(|e| e.parse().ok()).unwrap_or(3);
    let dir = data::find_data_dir(DatasetKind::Mnist, explicit.as_deref())?;
    let (train, test) = data::load(&dir)?;
    println!(
        "MNIST from {}: {} training, {} test images",
        dir.display(),
        train.len(),
        test.len()
    );

    let mlp = Mlp::new(
        &[784, 256, 10],
        Activation::Relu,
        Activation::Softmax,
        Loss::CrossEntropy,
        1,
    )?;
    let config = TrainConfig {
        optimizer: OptimizerConfig {
            optimizer: Optimizer::ADAM,
            learning_rate: 1e-3,
            weight_decay: 0.0,
        },
        batch_size: 128,
        seed: 1,
        regularization: Default::default(),
    };
    let gpu = Gpu::new(AdapterChoice::Auto)?;
    println!("adapter: {}", gpu.adapter_description());
    let mut trainer = GpuTrainer::new(&gpu, &mlp, &train, Some(&test), config)?;
    for _ in 0..epochs {
        let report = trainer.train_epoch(&mut |_| {})?;
        let evaluation = trainer.evaluate(Split::Test)?;
        println!(
            "epoch {}: train loss {:.4}, test accuracy {:.2}%, {:.0} samples/s",
            report.epoch,
            report.train_loss,
            evaluation.accuracy().unwrap_or(0.0) * 100.0,
            report.samples_per_second()
        );
    }
    let path = std::env::temp_dir().join("wgpu-mlp-mnist-example.safetensors");
    checkpoint::save(
        &path,
        &trainer.to_mlp()?,
        &CheckpointInfo {
            epochs,
            ..Default::default()
        },
    )?;
    println!("saved {}", path.display());
    Ok(())
}
