//! Label smoothing and gradient-norm clipping against PyTorch's documented formulas, written
//! anew here in f64, on the CPU trainer and on the GPU trainer; and the two trainers against each
//! other over whole epochs with every regularization and AdamW at once. (AdamW's update is
//! checked step by step in `tests/optimizers.rs`.)
//!
//! **The one-step model** is one softmax layer trained by cross-entropy with SGD on a single
//! batch holding the whole set, so an epoch is one step. For targets y (one-hot) and K classes,
//! `nn.CrossEntropyLoss(label_smoothing=ε)` uses y' = (1 − ε)·y + ε/K, so with p = softmax(z)
//! the mean loss is `L = −(1/B)·Σ_r Σ_j y'_rj·ln p_rj` and, as Σ_j y'_rj = 1,
//! `∂L/∂z = (p − y')/B`, `dW = δᵀ·x`, `db = Σ_rows δ`. `clip_grad_norm_(max_norm)` then scales
//! every gradient by `min(1, max_norm/(‖g‖ + 1e-6))` with ‖g‖ the L2 norm of dW and db together,
//! and SGD takes `p ← p − lr·g`.

mod common;

use common::{assert_all_close, cpu_and_gpu_agree, flat_parameters as flat, gpu, random_matrix};
use wgpu_mlp::data::synthetic;
use wgpu_mlp::ndarray::{Array1, Array2};
use wgpu_mlp::optim::{Optimizer, OptimizerConfig, clip_grad_norm};
use wgpu_mlp::train::{CpuTrainer, GpuTrainer, Regularization, TrainConfig, Trainer};
use wgpu_mlp::{Activation, Dataset, Dense, DenseGradients, Gradients, Loss, Mlp};

const INPUTS: usize = 6;
const CLASSES: usize = 4;
const ROWS: usize = 10;
const LEARNING_RATE: f64 = 0.5;

/// One softmax layer with cross-entropy, weights and biases in [−1, 1).
fn softmax_layer() -> Mlp {
    Mlp {
        layers: vec![Dense {
            weight: random_matrix(CLASSES, INPUTS, 3),
            bias: random_matrix(1, CLASSES, 4).row(0).to_owned(),
            activation: Activation::Softmax,
        }],
        loss: Loss::CrossEntropy,
        leaky_slope: wgpu_mlp::DEFAULT_LEAKY_SLOPE,
    }
}

/// `ROWS` samples of `INPUTS` features in [−1, 1) and labels `r·3 mod CLASSES`.
fn samples() -> (Array2<f32>, Array1<u32>) {
    let x = random_matrix(ROWS, INPUTS, 5);
    let labels = Array1::from_iter((0..ROWS).map(|r| (r * 3 % CLASSES) as u32));
    (x, labels)
}

/// The loss and the gradient (dW row-major, then db) of [`softmax_layer`] on [`samples`] with
/// smoothing ε, in f64, from the module doc's formulas.
fn smoothed_cross_entropy_f64(mlp: &Mlp, epsilon: f64) -> (f64, Vec<f64>) {
    let (x, labels) = samples();
    let layer = &mlp.layers[0];
    let rows = ROWS as f64;
    let (mut loss, mut dw, mut db) = (
        0.0,
        Array2::<f64>::zeros((CLASSES, INPUTS)),
        Array1::<f64>::zeros(CLASSES),
    );
    for r in 0..ROWS {
        let z: Vec<f64> = (0..CLASSES)
            .map(|j| {
                f64::from(layer.bias[j])
                    + (0..INPUTS)
                        .map(|i| f64::from(layer.weight[[j, i]]) * f64::from(x[[r, i]]))
                        .sum::<f64>()
            })
            .collect();
        let total: f64 = z.iter().map(|v| v.exp()).sum();
        for j in 0..CLASSES {
            let p = z[j].exp() / total;
            let one_hot = if labels[r] as usize == j { 1.0 } else { 0.0 };
            let target = (1.0 - epsilon) * one_hot + epsilon / CLASSES as f64;
            loss -= target * p.ln() / rows;
            let delta = (p - target) / rows;
            db[j] += delta;
            for i in 0..INPUTS {
                dw[[j, i]] += delta * f64::from(x[[r, i]]);
            }
        }
    }
    (loss, dw.iter().chain(db.iter()).copied().collect())
}

/// `‖g‖₂`.
fn l2_norm(gradient: &[f64]) -> f64 {
    gradient.iter().map(|g| g * g).sum::<f64>().sqrt()
}

/// One SGD step (the whole set as one batch) under `regularization` on the CPU and on the GPU:
/// each side's epoch loss and weights.
fn one_step_both_sides(regularization: Regularization) -> [(&'static str, f32, Mlp); 2] {
    let mlp = softmax_layer();
    let (x, labels) = samples();
    let data = Dataset::classification(x, labels, Some(CLASSES)).unwrap();
    let config = TrainConfig {
        optimizer: OptimizerConfig::sgd(LEARNING_RATE as f32),
        batch_size: ROWS,
        seed: 1,
        regularization,
    };
    let mut on_cpu = CpuTrainer::new(&mlp, &data, None, config.clone()).unwrap();
    let mut on_gpu = GpuTrainer::new(&gpu(), &mlp, &data, None, config).unwrap();
    let cpu_loss = on_cpu.train_epoch(&mut |_| {}).unwrap().train_loss;
    let gpu_loss = on_gpu.train_epoch(&mut |_| {}).unwrap().train_loss;
    [
        ("cpu", cpu_loss, on_cpu.to_mlp().unwrap()),
        ("gpu", gpu_loss, on_gpu.to_mlp().unwrap()),
    ]
}

/// Checks both sides' step against the f64 step `p − lr·scale·g` with smoothing ε.
fn check_step(epsilon: f64, clip_norm: Option<f64>) {
    let mlp = softmax_layer();
    let (loss, gradient) = smoothed_cross_entropy_f64(&mlp, epsilon);
    let norm = l2_norm(&gradient);
    let scale = clip_norm.map_or(1.0, |max_norm| (max_norm / (norm + 1e-6)).min(1.0));
    let want: Vec<f64> = flat(&mlp)
        .iter()
        .zip(&gradient)
        .map(|(&p, &g)| p - LEARNING_RATE * scale * g)
        .collect();
    let regularization = Regularization {
        label_smoothing: epsilon as f32,
        clip_norm: clip_norm.map(|n| n as f32),
        ..Default::default()
    };
    for (side, got_loss, trained) in one_step_both_sides(regularization) {
        let what = format!("{side} ε {epsilon} clip {clip_norm:?} (norm {norm})");
        assert_all_close(
            &format!("{what}: loss"),
            &[f64::from(got_loss)],
            &[loss],
            1e-6,
            1e-5,
        );
        let got = flat(&trained);
        assert_all_close(&format!("{what}: parameters"), &got, &want, 1e-6, 1e-5);
    }
}

#[test]
fn label_smoothing_trains_on_the_smoothed_cross_entropy_and_its_gradient() {
    for epsilon in [0.0, 0.1, 0.3] {
        check_step(epsilon, None);
    }
}

#[test]
fn clipping_scales_the_whole_gradient_to_the_norm_and_leaves_smaller_norms_alone() {
    let norm = l2_norm(&smoothed_cross_entropy_f64(&softmax_layer(), 0.0).1);
    // A third of the norm clips; twice the norm does not.
    for max_norm in [norm / 3.0, 2.0 * norm] {
        check_step(0.0, Some(max_norm));
    }
    check_step(0.2, Some(norm / 5.0));
}

#[test]
fn clip_grad_norm_returns_the_norm_and_leaves_exactly_max_norm() {
    let layer = |rows, cols, seed| DenseGradients {
        dweight: random_matrix(rows, cols, seed),
        dbias: random_matrix(1, rows, seed + 1).row(0).to_owned(),
    };
    let grads = Gradients {
        layers: vec![layer(5, 3, 10), layer(2, 5, 20)],
    };
    let squares = |g: &Gradients| -> f64 {
        g.layers
            .iter()
            .flat_map(|l| l.dweight.iter().chain(l.dbias.iter()))
            .map(|&v| f64::from(v).powi(2))
            .sum()
    };
    let norm = squares(&grads).sqrt();
    let mut clipped = grads.clone();
    let reported = clip_grad_norm(&mut clipped, (norm / 4.0) as f32);
    assert!(
        (f64::from(reported) - norm).abs() <= 1e-6 * norm,
        "{reported} vs {norm}"
    );
    let after = squares(&clipped).sqrt();
    assert!(
        (after - norm / 4.0).abs() <= 1e-5 * norm,
        "norm after clipping {after}, wanted {}",
        norm / 4.0
    );
    // Every element by the same factor max_norm/(norm + 1e-6).
    let factor = (norm / 4.0) / (norm + 1e-6);
    let ratio =
        f64::from(clipped.layers[1].dweight[[1, 2]]) / f64::from(grads.layers[1].dweight[[1, 2]]);
    assert!((ratio - factor).abs() < 1e-6, "{ratio} vs {factor}");
    let mut unclipped = grads.clone();
    clip_grad_norm(&mut unclipped, (2.0 * norm) as f32);
    assert_eq!(unclipped, grads);
}

#[test]
fn gpu_trainer_follows_the_cpu_trainer_with_adamw_smoothing_and_clipping() {
    // 97 samples of the synthetic glyphs, batches of 16 (the last of 1), two epochs.
    let (train, _) = synthetic::generate(97, 1, 7);
    let mlp = Mlp::new(
        &[train.inputs(), 24, train.outputs()],
        Activation::Relu,
        Activation::Softmax,
        Loss::CrossEntropy,
        11,
    )
    .unwrap();
    let config = TrainConfig {
        optimizer: OptimizerConfig {
            optimizer: Optimizer::ADAMW,
            learning_rate: 0.003,
            weight_decay: 0.05,
        },
        batch_size: 16,
        seed: 3,
        regularization: Regularization {
            label_smoothing: 0.1,
            clip_norm: Some(0.5),
            ..Default::default()
        },
    };
    cpu_and_gpu_agree(&mlp, (&train, None), &config, 2);
}

#[test]
fn bad_settings_are_refused_by_both_trainers_naming_them() {
    let (train, _) = synthetic::generate(20, 1, 7);
    let mse = Mlp::new(
        &[train.inputs(), train.outputs()],
        Activation::Sigmoid,
        Activation::Sigmoid,
        Loss::Mse,
        1,
    )
    .unwrap();
    let with = |label_smoothing, clip_norm| TrainConfig {
        optimizer: OptimizerConfig::sgd(0.1),
        batch_size: 4,
        seed: 1,
        regularization: Regularization {
            label_smoothing,
            clip_norm,
            ..Default::default()
        },
    };
    for (config, needle) in [
        (with(0.1, None), "cross-entropy"),
        (with(1.0, None), "label smoothing"),
        (with(-0.1, None), "label smoothing"),
        (with(f32::NAN, None), "label smoothing"),
        (with(0.0, Some(0.0)), "clip norm"),
        (with(0.0, Some(f32::INFINITY)), "clip norm"),
    ] {
        let cpu = CpuTrainer::new(&mse, &train, None, config.clone())
            .err()
            .unwrap();
        let gpu = GpuTrainer::new(&gpu(), &mse, &train, None, config.clone())
            .err()
            .unwrap();
        for error in [cpu.to_string(), gpu.to_string()] {
            assert!(error.contains(needle), "{config:?}: {error}");
        }
    }
}
