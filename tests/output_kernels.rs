//! The output-layer kernel (activation, loss and δ in one pass) against formulas written out
//! here in f64, and the optimizer updates against the CPU optimizer and a closed form.

mod common;

use common::{assert_close, gpu, one_hot, random_matrix, targets01};
use wgpu_mlp::gpu::kernels::Dispatch;
use wgpu_mlp::gpu::kernels::loss::{OutputLayer, OutputMode};
use wgpu_mlp::gpu::kernels::optim::{Advance, MomentLayout, Update, UpdateBuffers, counters_len};
use wgpu_mlp::ndarray::Array2;
use wgpu_mlp::optim::{Optimizer, OptimizerConfig, OptimizerState};
use wgpu_mlp::{Activation, Dense, DenseGradients, Gradients, Loss, Mlp};

const ATOL: f32 = 1e-6;
const RTOL: f32 = 1e-4;

/// The expected (a, row losses, δ) for logits `z` and targets `y`, in f64.
fn expected(
    activation: Activation,
    loss: Loss,
    z: &Array2<f32>,
    y: &Array2<f32>,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (rows, cols) = z.dim();
    let (n, e) = (rows as f64, (rows * cols) as f64);
    let (mut a_all, mut loss_all, mut delta_all) = (vec![], vec![], vec![]);
    for r in 0..rows {
        let zr: Vec<f64> = z.row(r).iter().map(|&v| v as f64).collect();
        let yr: Vec<f64> = y.row(r).iter().map(|&v| v as f64).collect();
        let max = zr.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + zr.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        let a: Vec<f64> = zr
            .iter()
            .map(|&v| match activation {
                Activation::Softmax => (v - lse).exp(),
                Activation::Sigmoid => 1.0 / (1.0 + (-v).exp()),
                Activation::Relu => v.max(0.0),
                Activation::Tanh => v.tanh(),
                Activation::Identity => v,
                Activation::Gelu | Activation::Silu | Activation::LeakyRelu => {
                    unreachable!("hidden layers only")
                }
            })
            .collect();
        let (row_loss, delta): (f64, Vec<f64>) = match loss {
            Loss::CrossEntropy => {
                let ys: f64 = yr.iter().sum();
                let l = lse * ys - yr.iter().zip(&zr).map(|(y, z)| y * z).sum::<f64>();
                (
                    l / n,
                    a.iter().zip(&yr).map(|(a, y)| (a * ys - y) / n).collect(),
                )
            }
            Loss::BinaryCrossEntropy => {
                let l: f64 = zr
                    .iter()
                    .zip(&yr)
                    .map(|(z, y)| z.max(0.0) - z * y + (1.0 + (-z.abs()).exp()).ln())
                    .sum();
                (l / e, a.iter().zip(&yr).map(|(a, y)| (a - y) / e).collect())
            }
            Loss::Mse => {
                let l: f64 = a.iter().zip(&yr).map(|(a, y)| (a - y) * (a - y)).sum();
                let g: Vec<f64> = a.iter().zip(&yr).map(|(a, y)| 2.0 * (a - y) / e).collect();
                let delta = if activation == Activation::Softmax {
                    let ga: f64 = g.iter().zip(&a).map(|(g, a)| g * a).sum();
                    a.iter().zip(&g).map(|(a, g)| a * (g - ga)).collect()
                } else {
                    a.iter()
                        .zip(&zr)
                        .zip(&g)
                        .map(|((a, z), g)| {
                            let derivative = match activation {
                                Activation::Sigmoid => a * (1.0 - a),
                                Activation::Relu => f64::from(u8::from(*z > 0.0)),
                                Activation::Tanh => 1.0 - a * a,
                                _ => 1.0,
                            };
                            g * derivative
                        })
                        .collect()
                };
                (l / e, delta)
            }
        };
        a_all.extend(a.iter().map(|&v| v as f32));
        loss_all.push(row_loss as f32);
        delta_all.extend(delta.iter().map(|&v| v as f32));
    }
    (a_all, loss_all, delta_all)
}

fn check(activation: Activation, loss: Loss, rows: usize, cols: usize, scale: f32) {
    let gpu = gpu();
    let z = random_matrix(rows, cols, rows as u64) * scale;
    let y = if loss == Loss::CrossEntropy {
        one_hot(rows, cols, 3)
    } else {
        targets01(rows, cols, 3)
    };
    let upload = |label: &str, m: &Array2<f32>| {
        gpu.storage_buffer_with(label, m.as_slice().unwrap())
            .unwrap()
    };
    let (zb, yb) = (upload("z", &z), upload("y", &y));
    let a = gpu.storage_buffer("a", rows * cols).unwrap();
    let delta = gpu.storage_buffer("delta", rows * cols).unwrap();
    let row_loss = gpu.storage_buffer("row_loss", rows).unwrap();
    let kernel = OutputLayer {
        activation,
        loss,
        mode: OutputMode::Loss,
        label_smoothing: 0.0,
    };
    let dispatch = kernel
        .bind(
            &gpu,
            "output test",
            rows,
            cols,
            &zb,
            &yb,
            &a,
            &delta,
            &row_loss,
        )
        .unwrap();
    Dispatch::run_all(&gpu, &[&dispatch]).unwrap();
    let (want_a, want_loss, want_delta) = expected(activation, loss, &z, &y);
    let what = format!("{activation:?} {loss:?} {rows}x{cols} scale {scale}");
    assert_close(
        &format!("{what}: a"),
        &gpu.read_f32(&a, rows * cols).unwrap(),
        &want_a,
        ATOL,
        RTOL,
    );
    assert_close(
        &format!("{what}: row loss"),
        &gpu.read_f32(&row_loss, rows).unwrap(),
        &want_loss,
        ATOL,
        RTOL,
    );
    assert_close(
        &format!("{what}: delta"),
        &gpu.read_f32(&delta, rows * cols).unwrap(),
        &want_delta,
        ATOL,
        RTOL,
    );
}

#[test]
fn output_kernel_matches_formulas_for_every_loss_and_output() {
    let mut pairs: Vec<(Activation, Loss)> = Activation::ALL
        .iter()
        .filter(|a| !a.is_hidden_only())
        .map(|&a| (a, Loss::Mse))
        .collect();
    pairs.push((Activation::Softmax, Loss::CrossEntropy));
    pairs.push((Activation::Sigmoid, Loss::BinaryCrossEntropy));
    for (activation, loss) in pairs {
        for (rows, cols) in [(1, 1), (3, 10), (7, 1), (257, 3), (65, 1000)] {
            check(activation, loss, rows, cols, 3.0);
        }
    }
}

#[test]
fn output_kernel_is_stable_for_large_logits() {
    // exp(±100) overflows f32; the log-sum-exp and logit forms must not.
    check(Activation::Softmax, Loss::CrossEntropy, 5, 10, 100.0);
    check(Activation::Sigmoid, Loss::BinaryCrossEntropy, 5, 10, 100.0);
    check(Activation::Tanh, Loss::Mse, 5, 10, 100.0);
}

/// Runs `steps` GPU updates of one layer with constant gradients and the same on the CPU.
fn check_update(config: OptimizerConfig, rows: usize, cols: usize, steps: usize) {
    let gpu = gpu();
    let mut mlp = Mlp {
        layers: vec![Dense {
            weight: random_matrix(rows, cols, 1),
            bias: random_matrix(1, rows, 3).row(0).to_owned(),
            activation: Activation::Identity,
        }],
        loss: Loss::Mse,
        leaky_slope: wgpu_mlp::DEFAULT_LEAKY_SLOPE,
    };
    let grads = Gradients {
        layers: vec![DenseGradients {
            dweight: random_matrix(rows, cols, 2),
            dbias: random_matrix(1, rows, 4).row(0).to_owned(),
        }],
    };
    let upload = |label: &str, values: &[f32]| gpu.storage_buffer_with(label, values).unwrap();
    let layer = &mlp.layers[0];
    let (w, b) = (
        upload("w", layer.weight.as_slice().unwrap()),
        upload("b", layer.bias.as_slice().unwrap()),
    );
    let (dw, db) = (
        upload("dw", grads.layers[0].dweight.as_slice().unwrap()),
        upload("db", grads.layers[0].dbias.as_slice().unwrap()),
    );
    // Room for Adam's two moments wherever the device's update keeps them.
    let [first, second] = MomentLayout::of(&gpu).lengths(2, rows * cols + rows);
    let moments = gpu.storage_buffer("moments", first).unwrap();
    let second_moments = gpu.storage_buffer("second_moments", second).unwrap();
    let counters = gpu.storage_buffer("counters", counters_len(1)).unwrap();
    let buffers = UpdateBuffers {
        weight: &w,
        dweight: &dw,
        bias: &b,
        dbias: &db,
        moments: &moments,
        second_moments: &second_moments,
        counters: &counters,
    };
    let update = Update {
        config,
        clip_norm: None,
    }
    .bind(&gpu, "update test", &buffers, rows * cols, rows)
    .unwrap();
    let advance = Advance::bind(&gpu, "advance test", &buffers, 5).unwrap();
    let mut state = OptimizerState::new(&mlp);
    for _ in 0..steps {
        Dispatch::run_all(&gpu, &[&advance, &update]).unwrap();
        state.apply(&config, &mut mlp, &grads).unwrap();
    }
    let what = format!("{config:?} {rows}x{cols}");
    let layer = &mlp.layers[0];
    assert_close(
        &format!("{what}: weight"),
        &gpu.read_f32(&w, rows * cols).unwrap(),
        layer.weight.as_slice().unwrap(),
        1e-6,
        1e-5,
    );
    assert_close(
        &format!("{what}: bias"),
        &gpu.read_f32(&b, rows).unwrap(),
        layer.bias.as_slice().unwrap(),
        1e-6,
        1e-5,
    );
    let counted: Vec<u32> = bytemuck::cast_slice(&gpu.read_f32(&counters, 2).unwrap()).to_vec();
    assert_eq!(
        counted,
        vec![steps as u32, 5 * steps as u32],
        "{what}: counters"
    );
}

#[test]
fn every_optimizer_matches_the_cpu_update() {
    for optimizer in [
        Optimizer::Sgd,
        Optimizer::MOMENTUM,
        Optimizer::ADAM,
        Optimizer::ADAMW,
    ] {
        for weight_decay in [0.0, 0.01] {
            let config = OptimizerConfig {
                optimizer,
                learning_rate: 0.05,
                weight_decay,
            };
            for (rows, cols) in [(1, 1), (10, 784), (257, 65)] {
                check_update(config, rows, cols, 3);
            }
        }
    }
}

#[test]
fn first_adam_step_moves_each_parameter_by_the_learning_rate() {
    // With m̂ = g and v̂ = g² after one step, Adam moves every parameter by lr·g/(|g| + ε) ≈ ±lr:
    // a closed form independent of both implementations.
    let mut mlp = Mlp::new(
        &[3, 2],
        Activation::Identity,
        Activation::Identity,
        Loss::Mse,
        1,
    )
    .unwrap();
    let before = mlp.clone();
    let grads = Gradients {
        layers: vec![DenseGradients {
            dweight: random_matrix(2, 3, 9),
            dbias: random_matrix(1, 2, 8).row(0).to_owned(),
        }],
    };
    let config = OptimizerConfig {
        optimizer: Optimizer::ADAM,
        learning_rate: 0.01,
        weight_decay: 0.0,
    };
    OptimizerState::new(&mlp)
        .apply(&config, &mut mlp, &grads)
        .unwrap();
    let moved = &before.layers[0].weight - &mlp.layers[0].weight;
    let want = grads.layers[0].dweight.mapv(|g| 0.01 * g.signum());
    assert_close(
        "first Adam step",
        moved.as_slice().unwrap(),
        want.as_slice().unwrap(),
        1e-6,
        1e-4,
    );
    check_update(config, 2, 3, 1);
}
