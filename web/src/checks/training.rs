//! Checks of whole steps: the forward pass, each optimizer's updates, and the GPU trainer
//! against the CPU trainer on the synthetic set.

use wgpu_mlp::data::synthetic;
use wgpu_mlp::gradcheck::Tolerance;
use wgpu_mlp::optim::{Optimizer, OptimizerConfig, OptimizerState};
use wgpu_mlp::train::{CpuTrainer, GpuTrainer, Split, TrainConfig, Trainer};
use wgpu_mlp::{Activation, Error, Gpu, GpuMlp, Loss, Mlp};

use super::{Check, closeness, random_matrix, targets};

/// Losses and weights after several steps: f32 rounding differs between the sides and the steps
/// carry it forward (Adam's normalisation amplifies it), as `tests/training.rs` allows.
const STEPS: Tolerance = Tolerance {
    atol: 1e-4,
    rtol: 1e-3,
};

/// The worse of two `(ratio, where)`.
fn worse(a: (f32, String), b: (f32, String)) -> (f32, String) {
    if b.0 > a.0 || (b.0.is_nan() && !a.0.is_nan()) {
        b
    } else {
        a
    }
}

/// The outputs of a network with a softmax and a ReLU hidden layer, across the tile boundary.
pub(crate) async fn forward_check(gpu: &Gpu) -> Result<Check, Error> {
    let mlp = Mlp::new(
        &[65, 63, 10],
        Activation::Relu,
        Activation::Softmax,
        Loss::CrossEntropy,
        7,
    )?;
    let mut net = GpuMlp::new(gpu, &mlp)?;
    let mut worst = (0.0, String::new());
    for batch in [1, 65] {
        let x = random_matrix(batch, 65, batch as u64);
        let want = mlp.forward(x.view())?;
        let got = net.forward_async(x.view()).await?;
        let (ratio, at) = closeness(
            got.as_slice().unwrap_or(&[]),
            want.as_standard_layout().as_slice().unwrap_or(&[]),
            Tolerance::GPU_VS_CPU,
        );
        worst = worse(worst, (ratio, format!("batch {batch}, {at}")));
    }
    Ok(Check {
        name: "forward pass (relu, softmax)".into(),
        worst: worst.0,
        detail: worst.1,
    })
}

/// Five steps of each optimizer, with weight decay, against the CPU reference's updates.
pub(crate) async fn optimizer_checks(gpu: &Gpu) -> Result<Vec<Check>, Error> {
    let mut checks = Vec::new();
    for (optimizer, learning_rate) in [
        (Optimizer::Sgd, 0.3),
        (Optimizer::MOMENTUM, 0.05),
        (Optimizer::ADAM, 0.002),
    ] {
        let config = OptimizerConfig {
            optimizer,
            learning_rate,
            weight_decay: 1e-4,
        };
        let (ratio, detail) = optimizer_case(gpu, config).await?;
        checks.push(Check {
            name: format!("optimizer steps: {}", optimizer.name()),
            worst: ratio,
            detail,
        });
    }
    Ok(checks)
}

/// Trains a small network five steps on both sides by `config`; the worst of losses and weights.
async fn optimizer_case(gpu: &Gpu, config: OptimizerConfig) -> Result<(f32, String), Error> {
    let mlp = Mlp::new(
        &[13, 17, 5],
        Activation::Tanh,
        Activation::Softmax,
        Loss::CrossEntropy,
        3,
    )?;
    let (x, y) = (
        random_matrix(7, 13, 1),
        targets(Loss::CrossEntropy, 7, 5, 2),
    );
    let mut cpu = mlp.clone();
    let mut state = OptimizerState::new(&cpu);
    let mut net = GpuMlp::new(gpu, &mlp)?;
    net.set_optimizer(config)?;
    let (mut cpu_losses, mut gpu_losses) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let (loss, gradients) = cpu.loss_and_gradients(x.view(), y.view())?;
        state.apply(&config, &mut cpu, &gradients)?;
        cpu_losses.push(loss);
        net.train_step(x.view(), y.view(), config.learning_rate)?;
        gpu_losses.push(net.last_loss_async().await?);
    }
    let (ratio, at) = closeness(&gpu_losses, &cpu_losses, STEPS);
    let mut worst = (ratio, format!("losses, {at}"));
    let trained = net.to_mlp_async().await?;
    for (l, (g, c)) in trained.layers.iter().zip(&cpu.layers).enumerate() {
        let (g_weight, c_weight) = (g.weight.as_standard_layout(), c.weight.as_standard_layout());
        let weight = closeness(
            g_weight.as_slice().unwrap_or(&[]),
            c_weight.as_slice().unwrap_or(&[]),
            STEPS,
        );
        let bias = closeness(&g.bias.to_vec(), &c.bias.to_vec(), STEPS);
        worst = worse(worst, (weight.0, format!("layer {l} weight, {}", weight.1)));
        worst = worse(worst, (bias.0, format!("layer {l} bias, {}", bias.1)));
    }
    Ok(worst)
}

/// `GpuTrainer` against `CpuTrainer` on 301 synthetic samples (nine batches of 32 and one of
/// 13), two epochs with momentum and weight decay: the epoch losses, the test loss and the
/// weights.
pub(crate) async fn trainer_check(gpu: &Gpu) -> Result<Check, Error> {
    let (train, test) = synthetic::generate(301, 97, 3);
    let mlp = Mlp::new(
        &[784, 33, 10],
        Activation::Relu,
        Activation::Softmax,
        Loss::CrossEntropy,
        4,
    )?;
    let config = TrainConfig {
        optimizer: OptimizerConfig {
            optimizer: Optimizer::MOMENTUM,
            learning_rate: 0.05,
            weight_decay: 1e-4,
        },
        batch_size: 32,
        seed: 9,
        regularization: Default::default(),
    };
    let mut on_gpu = GpuTrainer::new(gpu, &mlp, &train, Some(&test), config.clone())?;
    let mut on_cpu = CpuTrainer::new(&mlp, &train, Some(&test), config.clone())?;
    let mut worst = (0.0, String::new());
    for epoch in 1..=2 {
        let g = on_gpu.train_epoch_async(&mut |_| {}).await?;
        let c = on_cpu.train_epoch(&mut |_| {})?;
        let (ratio, at) = closeness(&[g.train_loss], &[c.train_loss], STEPS);
        worst = worse(worst, (ratio, format!("epoch {epoch} loss, {at}")));
    }
    let (g, c) = (
        on_gpu.evaluate_async(Split::Test).await?,
        on_cpu.evaluate(Split::Test)?,
    );
    let (ratio, at) = closeness(&[g.loss], &[c.loss], STEPS);
    worst = worse(worst, (ratio, format!("test loss, {at}")));
    let (gm, cm) = (on_gpu.network().to_mlp_async().await?, on_cpu.to_mlp()?);
    for (l, (a, b)) in gm.layers.iter().zip(&cm.layers).enumerate() {
        let (a, b) = (a.weight.as_standard_layout(), b.weight.as_standard_layout());
        let (ratio, at) = closeness(
            a.as_slice().unwrap_or(&[]),
            b.as_slice().unwrap_or(&[]),
            STEPS,
        );
        worst = worse(worst, (ratio, format!("layer {l} weight, {at}")));
    }
    Ok(Check {
        name: "training: GpuTrainer vs CpuTrainer (synthetic, momentum)".into(),
        worst: worst.0,
        detail: format!(
            "{}; test accuracy {:.3} vs {:.3}",
            worst.1,
            g.accuracy().unwrap_or(f64::NAN),
            c.accuracy().unwrap_or(f64::NAN)
        ),
    })
}
