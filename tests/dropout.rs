//! Inverted dropout (`torch.nn.Dropout(p)`): during training each unit is zeroed with
//! probability p and every kept unit is scaled by 1/(1 − p); evaluation is untouched. Checked
//! against that formula written anew here in f64, against finite differences with the mask held
//! fixed, the mask's keep rate against a binomial bound, the GPU's mask and training steps
//! against the CPU reference's, and evaluation without any mask.

mod common;

use common::{assert_all_close, cpu_and_gpu_agree, gpu, one_hot, random_matrix};
use wgpu_mlp::data::synthetic;
use wgpu_mlp::dropout::{DROPOUT_STREAM, Dropout, DropoutMasks, dropout_mask};
use wgpu_mlp::gpu::kernels::Dispatch;
use wgpu_mlp::gpu::kernels::dropout::{DropoutKernel, DropoutSite};
use wgpu_mlp::ndarray::Array2;
use wgpu_mlp::optim::{Optimizer, OptimizerConfig};
use wgpu_mlp::reference::finite_difference_check_with_dropout;
use wgpu_mlp::rng::{philox_key, philox4x32_10};
use wgpu_mlp::train::{CpuTrainer, GpuTrainer, Regularization, Split, TrainConfig, Trainer};
use wgpu_mlp::{Activation, Dense, Fusion, GpuMlp, Loss, Mlp};

/// The keep factors of a mask: 0 or 1/(1 − p) in f32, as the rule states.
fn check_factors(mask: &Array2<f32>, p: f32) {
    let kept = (1.0 / (1.0 - f64::from(p))) as f32;
    for &m in mask {
        assert!(m == 0.0 || m == kept, "factor {m} is neither 0 nor {kept}");
    }
}

#[test]
fn the_keep_rate_is_one_minus_p_within_a_binomial_bound() {
    let key = philox_key(0x5eed);
    for p in [0.1f32, 0.5, 0.8] {
        for (step, site) in [(0u64, 0usize), (7, 1), (123_456, 3)] {
            let mask = dropout_mask(key, step, site, 300, 400, p);
            check_factors(&mask, p);
            let n = mask.len() as f64;
            let kept = mask.iter().filter(|&&m| m > 0.0).count() as f64;
            let q = 1.0 - f64::from(p);
            // Six standard deviations of Binomial(n, q): a false alarm about once in 10⁹.
            let bound = 6.0 * (n * q * (1.0 - q)).sqrt();
            assert!(
                (kept - n * q).abs() <= bound,
                "p {p} step {step} site {site}: {kept} kept of {n}, expected {} ± {bound}",
                n * q
            );
        }
    }
}

#[test]
fn masks_of_other_steps_sites_and_seeds_are_independent() {
    // Two independent masks at p = 0.5 agree on a unit with probability 1/2.
    let p = 0.5;
    let base = dropout_mask(philox_key(1), 3, 1, 100, 100, p);
    let others = [
        dropout_mask(philox_key(1), 4, 1, 100, 100, p),
        dropout_mask(philox_key(1), 3, 2, 100, 100, p),
        dropout_mask(philox_key(2), 3, 1, 100, 100, p),
    ];
    for other in others {
        let n = base.len() as f64;
        let agree = base.iter().zip(&other).filter(|(a, b)| a == b).count() as f64;
        assert!(
            (agree - n / 2.0).abs() <= 6.0 * (n / 4.0).sqrt(),
            "{agree} of {n} units agree"
        );
    }
}

#[test]
fn a_unit_is_kept_when_its_philox_uniform_is_at_least_p() {
    // The counter layout the module documents: [row·width + column, site, step, DROPOUT_STREAM].
    let (seed, step, site, rows, width, p) = (0xfeed_beef_u64 << 20, 41u64, 2usize, 5, 13, 0.3f32);
    let mask = dropout_mask(philox_key(seed), step, site, rows, width, p);
    let key = [seed as u32, (seed >> 32) as u32];
    for r in 0..rows {
        for c in 0..width {
            let counter = [
                (r * width + c) as u32,
                site as u32,
                step as u32,
                DROPOUT_STREAM,
            ];
            let word = philox4x32_10(counter, key)[0];
            let uniform = f64::from(word >> 8) / 16_777_216.0;
            let kept = uniform >= f64::from(p);
            assert_eq!(mask[[r, c]] > 0.0, kept, "unit ({r}, {c})");
        }
    }
}

#[test]
fn the_gpu_draws_the_cpu_mask_bit_for_bit() {
    let gpu = gpu();
    let (rows, cols, site, step, p) = (37, 29, 2, 5u32, 0.4f32);
    let key = philox_key(99);
    let values = random_matrix(rows, cols, 8);
    let site_spec = DropoutSite { site, p, key };
    for kernel in [DropoutKernel::InPlace, DropoutKernel::Keeping] {
        let buffer = gpu
            .storage_buffer_with("values", values.as_slice().unwrap())
            .unwrap();
        let counters = gpu.storage_buffer_with("counters", &[step, 0]).unwrap();
        let undropped = gpu.storage_buffer("undropped", rows * cols).unwrap();
        let dispatch = kernel
            .bind(
                &gpu,
                "dropout test",
                site_spec,
                (rows, cols),
                &buffer,
                &counters,
                &undropped,
            )
            .unwrap();
        Dispatch::run_all(&gpu, &[&dispatch]).unwrap();
        let dropped = gpu.read_f32(&buffer, rows * cols).unwrap();
        let mask = dropout_mask(key, u64::from(step), site, rows, cols, p);
        let expected = &values * &mask;
        assert_eq!(
            dropped,
            expected.iter().copied().collect::<Vec<_>>(),
            "{kernel:?}"
        );
        if kernel == DropoutKernel::Keeping {
            let kept = gpu.read_f32(&undropped, rows * cols).unwrap();
            assert_eq!(kept, values.iter().copied().collect::<Vec<_>>());
        }
    }
}

/// A 5-4-3 network: tanh hidden layer, identity output, MSE.
fn tanh_net() -> Mlp {
    Mlp {
        layers: vec![
            Dense {
                weight: random_matrix(4, 5, 1),
                bias: random_matrix(1, 4, 2).row(0).to_owned(),
                activation: Activation::Tanh,
            },
            Dense {
                weight: random_matrix(3, 4, 3),
                bias: random_matrix(1, 3, 4).row(0).to_owned(),
                activation: Activation::Identity,
            },
        ],
        loss: Loss::Mse,
        leaky_slope: wgpu_mlp::DEFAULT_LEAKY_SLOPE,
    }
}

#[test]
fn the_loss_with_dropout_is_pytorchs_inverted_dropout_formula() {
    // nn.Sequential(nn.Dropout(pi), nn.Linear(5, 4), nn.Tanh(), nn.Dropout(ph), nn.Linear(4, 3))
    // with MSELoss, its masks given: written out here in f64.
    let mlp = tanh_net();
    let (rows, pi, ph) = (6, 0.25f32, 0.5f32);
    let x = random_matrix(rows, 5, 5);
    let y = random_matrix(rows, 3, 6);
    let dropout = Dropout {
        input: pi,
        hidden: vec![ph],
    };
    let masks = dropout.masks(3, 17, rows, &mlp.sizes());
    let (mi, mh) = (
        masks.input.clone().unwrap(),
        masks.hidden[0].clone().unwrap(),
    );
    // The factors themselves: Bernoulli(1 − p) / (1 − p).
    check_factors(&mi, pi);
    check_factors(&mh, ph);
    let (l0, l1) = (&mlp.layers[0], &mlp.layers[1]);
    let mut expected = 0.0f64;
    for r in 0..rows {
        let xd: Vec<f64> = (0..5)
            .map(|i| {
                let keep = if mi[[r, i]] > 0.0 { 1.0 } else { 0.0 };
                f64::from(x[[r, i]]) * keep / (1.0 - f64::from(pi))
            })
            .collect();
        let h: Vec<f64> = (0..4)
            .map(|j| {
                let z: f64 = (0..5)
                    .map(|i| f64::from(l0.weight[[j, i]]) * xd[i])
                    .sum::<f64>()
                    + f64::from(l0.bias[j]);
                let keep = if mh[[r, j]] > 0.0 { 1.0 } else { 0.0 };
                z.tanh() * keep / (1.0 - f64::from(ph))
            })
            .collect();
        for k in 0..3 {
            let out: f64 = (0..4)
                .map(|j| f64::from(l1.weight[[k, j]]) * h[j])
                .sum::<f64>()
                + f64::from(l1.bias[k]);
            expected += (out - f64::from(y[[r, k]])).powi(2);
        }
    }
    expected /= (rows * 3) as f64;
    let (loss, _) = mlp
        .loss_and_gradients_with_dropout(x.view(), y.view(), &masks)
        .unwrap();
    assert!(
        (f64::from(loss) - expected).abs() <= 1e-5 * expected.abs().max(1.0),
        "loss {loss}, formula {expected}"
    );
    // And the masks matter: without them the loss is another.
    let plain = mlp.loss(x.view(), y.view()).unwrap();
    assert!((plain - loss).abs() > 1e-3, "plain {plain}, dropped {loss}");
}

#[test]
fn the_gradient_with_the_mask_held_fixed_matches_finite_differences() {
    for (hidden, loss, output) in [
        (Activation::Tanh, Loss::Mse, Activation::Identity),
        (Activation::Sigmoid, Loss::CrossEntropy, Activation::Softmax),
    ] {
        let mlp = Mlp::new(&[6, 5, 4, 3], hidden, output, loss, 9).unwrap();
        let rows = 7;
        let x = random_matrix(rows, 6, 10);
        let y = one_hot(rows, 3, 11);
        let dropout = Dropout {
            input: 0.2,
            hidden: vec![0.5, 0.3],
        };
        let masks = dropout.masks(4, 2, rows, &mlp.sizes());
        let checks =
            finite_difference_check_with_dropout(&mlp, x.view(), y.view(), &masks, 1e-6, 1000)
                .unwrap();
        assert_eq!(checks.len(), 5 * 7 + 4 * 6 + 3 * 5);
        for check in &checks {
            assert!(
                (check.finite_difference - check.analytic).abs() <= 1e-7,
                "{hidden:?}: {} finite difference {}, analytic {}",
                check.parameter,
                check.finite_difference,
                check.analytic
            );
        }
        // A dropped input column gives its weights no gradient in that row: the mask reaches dW.
        let (_, grads) = mlp
            .loss_and_gradients_with_dropout(x.view(), y.view(), &masks)
            .unwrap();
        let (_, plain) = mlp.loss_and_gradients(x.view(), y.view()).unwrap();
        assert_ne!(grads.layers[0].dweight, plain.layers[0].dweight);
    }
}

#[test]
fn gpu_gradients_with_dropout_equal_the_cpu_references_with_the_same_masks() {
    let gpu = gpu();
    // Sigmoid hidden units: g′ of the dropped activation would differ from g′ of the kept one.
    let mlp = Mlp::new(
        &[9, 8, 7, 4],
        Activation::Sigmoid,
        Activation::Softmax,
        Loss::CrossEntropy,
        2,
    )
    .unwrap();
    let rows = 11;
    let x = random_matrix(rows, 9, 12);
    let y = one_hot(rows, 4, 13);
    let dropout = Dropout {
        input: 0.3,
        hidden: vec![0.5, 0.25],
    };
    let seed = 77;
    let mut net = GpuMlp::new(&gpu, &mlp).unwrap();
    net.set_dropout_seed(seed).unwrap();
    net.set_regularization(Regularization {
        dropout: dropout.clone(),
        ..Default::default()
    })
    .unwrap();
    // A fresh network has taken no step: its masks are step 0's.
    let masks = dropout.masks(seed, 0, rows, &mlp.sizes());
    let (cpu_loss, cpu_grads) = mlp
        .loss_and_gradients_with_dropout(x.view(), y.view(), &masks)
        .unwrap();
    // The fused step, and the unfused one whose activation and ⊙g′ run as kernels of their own.
    for fusion in [Fusion::Fused, Fusion::Unfused] {
        net.set_fusion(fusion).unwrap();
        let (gpu_loss, gpu_grads) = net.loss_and_gradients(x.view(), y.view()).unwrap();
        assert!(
            (gpu_loss - cpu_loss).abs() <= 1e-5,
            "{fusion:?}: gpu {gpu_loss}, cpu {cpu_loss}"
        );
        for (l, (g, c)) in gpu_grads.layers.iter().zip(&cpu_grads.layers).enumerate() {
            let what = format!("{fusion:?} layer {l}");
            let (gw, cw) = (wide(&g.dweight), wide(&c.dweight));
            assert_all_close(&format!("{what} dweight"), &gw, &cw, 1e-5, 1e-3);
            let (gb, cb) = (&g.dbias, &c.dbias);
            let (gb, cb): (Vec<f64>, Vec<f64>) = (
                gb.iter().map(|&v| f64::from(v)).collect(),
                cb.iter().map(|&v| f64::from(v)).collect(),
            );
            assert_all_close(&format!("{what} dbias"), &gb, &cb, 1e-5, 1e-3);
        }
    }
    // Evaluation never drops: the GPU's forward pass equals the plain reference.
    let forward = net.forward(x.view()).unwrap();
    let plain = mlp.forward(x.view()).unwrap();
    assert_all_close("forward", &wide(&forward), &wide(&plain), 1e-5, 1e-4);
}

/// `values` widened to f64.
fn wide(values: &Array2<f32>) -> Vec<f64> {
    values.iter().map(|&v| f64::from(v)).collect()
}

fn dropout_config() -> TrainConfig {
    TrainConfig {
        optimizer: OptimizerConfig {
            optimizer: Optimizer::ADAM,
            learning_rate: 0.003,
            weight_decay: 0.0,
        },
        batch_size: 16,
        seed: 5,
        regularization: Regularization {
            dropout: Dropout {
                input: 0.2,
                hidden: vec![0.5, 0.3],
            },
            ..Default::default()
        },
    }
}

#[test]
fn gpu_training_with_dropout_follows_the_cpu_trainer() {
    // 83 synthetic glyphs in batches of 16 (the last of 3), two epochs: every step's masks must
    // agree, the step counter running across epochs.
    let (train, test) = synthetic::generate(83, 40, 7);
    let mlp = Mlp::new(
        &[train.inputs(), 20, 12, train.outputs()],
        Activation::Relu,
        Activation::Softmax,
        Loss::CrossEntropy,
        11,
    )
    .unwrap();
    let config = dropout_config();
    let (mut on_cpu, mut on_gpu) = cpu_and_gpu_agree(&mlp, (&train, Some(&test)), &config, 2);
    let c = on_cpu.to_mlp().unwrap();
    // Evaluation is without dropout: both equal the plain reference's loss on the test set, and
    // evaluating twice gives the same.
    let plain = wgpu_mlp::train::evaluate_cpu(&c, &test, 16).unwrap().loss;
    let cpu_eval = on_cpu.evaluate(Split::Test).unwrap().loss;
    let gpu_eval = on_gpu.evaluate(Split::Test).unwrap().loss;
    assert_eq!(cpu_eval, plain);
    assert_eq!(on_gpu.evaluate(Split::Test).unwrap().loss, gpu_eval);
    assert!(
        (gpu_eval - plain).abs() <= 1e-4 * plain.max(1.0),
        "gpu {gpu_eval}, cpu {plain}"
    );
}

#[test]
fn a_gpu_run_resumed_with_its_optimizer_state_continues_the_masks() {
    // Two epochs at once, or one epoch, a new trainer from the saved weights and optimizer
    // state, and another: the step counter, and with it every mask, continues.
    let (train, _) = synthetic::generate(50, 1, 3);
    let mlp = Mlp::new(
        &[train.inputs(), 10, 8, train.outputs()],
        Activation::Relu,
        Activation::Softmax,
        Loss::CrossEntropy,
        4,
    )
    .unwrap();
    let config = dropout_config();
    let gpu = gpu();
    let mut whole = GpuTrainer::new(&gpu, &mlp, &train, None, config.clone()).unwrap();
    whole.train_epoch(&mut |_| {}).unwrap();
    whole.train_epoch(&mut |_| {}).unwrap();
    let mut first = GpuTrainer::new(&gpu, &mlp, &train, None, config.clone()).unwrap();
    first.train_epoch(&mut |_| {}).unwrap();
    let (halfway, state) = (first.to_mlp().unwrap(), first.optimizer_state().unwrap());
    let mut second = GpuTrainer::new(&gpu, &halfway, &train, None, config).unwrap();
    second.set_epochs_done(1);
    second.set_optimizer_state(&state).unwrap();
    second.train_epoch(&mut |_| {}).unwrap();
    assert_eq!(second.to_mlp().unwrap(), whole.to_mlp().unwrap());
}

#[test]
fn bad_dropout_settings_are_refused_by_both_trainers_naming_the_option() {
    let (train, _) = synthetic::generate(20, 1, 7);
    let mlp = Mlp::new(
        &[train.inputs(), 6, train.outputs()],
        Activation::Relu,
        Activation::Softmax,
        Loss::CrossEntropy,
        1,
    )
    .unwrap();
    let with = |input, hidden: Vec<f32>| TrainConfig {
        regularization: Regularization {
            dropout: Dropout { input, hidden },
            ..Default::default()
        },
        ..dropout_config()
    };
    for (config, needle) in [
        (with(0.0, vec![1.0]), "--dropout"),
        (with(0.0, vec![-0.1]), "--dropout"),
        (with(0.0, vec![f32::NAN]), "--dropout"),
        (
            with(0.0, vec![0.5, 0.5]),
            "2 values for a network with 1 hidden layers",
        ),
        (with(1.0, vec![]), "--input-dropout"),
        (with(-0.5, vec![]), "--input-dropout"),
    ] {
        let cpu = CpuTrainer::new(&mlp, &train, None, config.clone())
            .err()
            .unwrap();
        let gpu = GpuTrainer::new(&gpu(), &mlp, &train, None, config.clone())
            .err()
            .unwrap();
        for error in [cpu.to_string(), gpu.to_string()] {
            assert!(error.contains(needle), "{config:?}: {error}");
        }
    }
    // Masks that do not fit the batch are refused too.
    let x = random_matrix(3, train.inputs(), 1);
    let y = one_hot(3, train.outputs(), 2);
    let wrong = DropoutMasks {
        input: Some(Array2::ones((4, train.inputs()))),
        hidden: vec![],
    };
    let error = mlp
        .loss_and_gradients_with_dropout(x.view(), y.view(), &wrong)
        .unwrap_err();
    assert!(
        error.to_string().contains("dropout mask of the input"),
        "{error}"
    );
}
