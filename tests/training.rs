//! Training on the GPU follows the CPU reference step for step.

mod common;

use common::{assert_close, assert_close2, gpu, one_hot, random_matrix, targets01};
use wgpu_mlp::ndarray::s;
use wgpu_mlp::{Activation, GpuMlp, Loss, Mlp};

/// Losses and weights after 20 steps: the GPU and CPU differ only by f32 rounding, which SGD
/// carries forward, so the tolerance is looser than for a single gradient.
const TRAINING_ATOL: f32 = 1e-5;
const TRAINING_RTOL: f32 = 1e-3;
const STEPS: usize = 20;

fn train_both(mlp: Mlp, batch: usize, learning_rate: f32, cross_entropy_targets: bool) {
    let gpu = gpu();
    let inputs = mlp.inputs();
    let outputs = mlp.outputs();
    let mut cpu = mlp.clone();
    let mut net = GpuMlp::new(&gpu, &mlp).unwrap();
    let mut gpu_losses = Vec::new();
    let mut cpu_losses = Vec::new();
    // One fixed batch, learnable by memorising, and now and then an odd-sized slice of it.
    let x = random_matrix(batch, inputs, 1);
    let y = if cross_entropy_targets {
        one_hot(batch, outputs, 2)
    } else {
        targets01(batch, outputs, 2)
    };
    for step in 0..STEPS {
        let rows = if step % 5 == 3 { batch / 2 + 1 } else { batch };
        let (x, y) = (x.slice(s![..rows, ..]), y.slice(s![..rows, ..]));
        cpu_losses.push(cpu.train_step(x, y, learning_rate).unwrap());
        net.train_step(x, y, learning_rate).unwrap();
        gpu_losses.push(net.last_loss().unwrap());
    }
    let what = format!("{:?} {:?}", mlp.sizes(), mlp.loss);
    assert_close(
        &format!("{what}: losses"),
        &gpu_losses,
        &cpu_losses,
        TRAINING_ATOL,
        TRAINING_RTOL,
    );
    assert!(
        cpu_losses[STEPS - 1] < cpu_losses[0],
        "{what}: training did not reduce the loss: {cpu_losses:?}"
    );
    let trained = net.to_mlp().unwrap();
    for (l, (g, c)) in trained.layers.iter().zip(&cpu.layers).enumerate() {
        assert_close2(
            &format!("{what}: layer {l} weight"),
            g.weight.view(),
            c.weight.view(),
            TRAINING_ATOL,
            TRAINING_RTOL,
        );
        assert_close(
            &format!("{what}: layer {l} bias"),
            &g.bias.to_vec(),
            &c.bias.to_vec(),
            TRAINING_ATOL,
            TRAINING_RTOL,
        );
    }
}

#[test]
fn twenty_sgd_steps_match_cpu_sigmoid_mse() {
    train_both(
        Mlp::new(
            &[30, 24, 10],
            Activation::Sigmoid,
            Activation::Sigmoid,
            Loss::Mse,
            1,
        ),
        16,
        0.5,
        false,
    );
}

#[test]
fn twenty_sgd_steps_match_cpu_relu_softmax_cross_entropy() {
    train_both(
        Mlp::new(
            &[30, 65, 33, 10],
            Activation::Relu,
            Activation::Softmax,
            Loss::CrossEntropy,
            2,
        ),
        33,
        0.1,
        true,
    );
}

#[test]
fn twenty_sgd_steps_match_cpu_tanh_binary_cross_entropy() {
    train_both(
        Mlp::new(
            &[12, 9, 5],
            Activation::Tanh,
            Activation::Sigmoid,
            Loss::BinaryCrossEntropy,
            3,
        ),
        7,
        0.3,
        false,
    );
}
