//! The output-layer kernel (activation, loss and δ in one pass) and the SGD update, against
//! formulas written out here with ndarray in f64.

mod common;

use common::{assert_close, gpu, one_hot, random_matrix, targets01};
use wgpu_mlp::gpu::kernels::Dispatch;
use wgpu_mlp::gpu::kernels::loss::{OutputLayer, OutputMode};
use wgpu_mlp::gpu::kernels::optim::Sgd;
use wgpu_mlp::ndarray::Array2;
use wgpu_mlp::{Activation, Loss};

const ATOL: f32 = 1e-6;
const RTOL: f32 = 1e-4;

/// The expected (a, row losses, δ) for logits `z` and targets `y`, in f64.
fn expected(activation: Activation, loss: Loss, z: &Array2<f32>, y: &Array2<f32>) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
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
            })
            .collect();
        let (row_loss, delta): (f64, Vec<f64>) = match loss {
            Loss::CrossEntropy => {
                let ys: f64 = yr.iter().sum();
                let l = lse * ys - yr.iter().zip(&zr).map(|(y, z)| y * z).sum::<f64>();
                (l / n, a.iter().zip(&yr).map(|(a, y)| (a * ys - y) / n).collect())
            }
            Loss::BinaryCrossEntropy => {
                let l: f64 = zr.iter().zip(&yr).map(|(z, y)| z.max(0.0) - z * y + (1.0 + (-z.abs()).exp()).ln()).sum();
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
    let y = if loss == Loss::CrossEntropy { one_hot(rows, cols, 3) } else { targets01(rows, cols, 3) };
    let upload = |label: &str, m: &Array2<f32>| gpu.storage_buffer_with(label, m.as_slice().unwrap()).unwrap();
    let (zb, yb) = (upload("z", &z), upload("y", &y));
    let a = gpu.storage_buffer("a", rows * cols).unwrap();
    let delta = gpu.storage_buffer("delta", rows * cols).unwrap();
    let row_loss = gpu.storage_buffer("row_loss", rows).unwrap();
    let kernel = OutputLayer { activation, loss, mode: OutputMode::Loss };
    let dispatch = kernel.bind(&gpu, "output test", rows, cols, &zb, &yb, &a, &delta, &row_loss).unwrap();
    Dispatch::run_all(&gpu, &[&dispatch]).unwrap();
    let (want_a, want_loss, want_delta) = expected(activation, loss, &z, &y);
    let what = format!("{activation:?} {loss:?} {rows}x{cols} scale {scale}");
    assert_close(&format!("{what}: a"), &gpu.read_f32(&a, rows * cols).unwrap(), &want_a, ATOL, RTOL);
    assert_close(&format!("{what}: row loss"), &gpu.read_f32(&row_loss, rows).unwrap(), &want_loss, ATOL, RTOL);
    assert_close(&format!("{what}: delta"), &gpu.read_f32(&delta, rows * cols).unwrap(), &want_delta, ATOL, RTOL);
}

#[test]
fn output_kernel_matches_formulas_for_every_loss_and_output() {
    let mut pairs: Vec<(Activation, Loss)> = Activation::ALL.iter().map(|&a| (a, Loss::Mse)).collect();
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

#[test]
fn sgd_updates_weight_and_bias_in_one_dispatch() {
    let gpu = gpu();
    for (rows, cols) in [(1, 1), (10, 784), (257, 65)] {
        let w = random_matrix(rows, cols, 1);
        let dw = random_matrix(rows, cols, 2);
        let b = random_matrix(1, rows, 3);
        let db = random_matrix(1, rows, 4);
        let lr = 0.37f32;
        let upload = |label: &str, m: &Array2<f32>| gpu.storage_buffer_with(label, m.as_slice().unwrap()).unwrap();
        let (wb, dwb, bb, dbb) = (upload("w", &w), upload("dw", &dw), upload("b", &b), upload("db", &db));
        let dispatch = Sgd::bind(&gpu, "sgd test", lr, &wb, &dwb, rows * cols, &bb, &dbb, rows).unwrap();
        Dispatch::run_all(&gpu, &[&dispatch]).unwrap();
        let want_w = &w - &(&dw * lr);
        let want_b = &b - &(&db * lr);
        assert_close("weight", &gpu.read_f32(&wb, rows * cols).unwrap(), want_w.as_slice().unwrap(), 1e-7, 1e-6);
        assert_close("bias", &gpu.read_f32(&bb, rows).unwrap(), want_b.as_slice().unwrap(), 1e-7, 1e-6);
    }
}
