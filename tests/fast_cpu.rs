//! The fast CPU engine (`wgpu_mlp::fast`) and the trainer built on it against the ndarray
//! reference: losses, gradients, outputs and weights after several steps, within f32 rounding,
//! for every activation, loss, optimizer and regularizer; batches of 1, odd sizes and widths
//! across faer's blocking and the size where products go parallel.

mod common;

use common::{assert_close, assert_close2, one_hot, random_matrix, targets01};
use wgpu_mlp::dropout::Dropout;
use wgpu_mlp::fast;
use wgpu_mlp::ndarray::Array2;
use wgpu_mlp::{Activation, Gradients, Init, Loss, Mlp};

/// `|fast − reference| ≤ atol + rtol·|reference|`: both are f32 and only the order of the sums
/// differs.
const ATOL: f32 = 2e-6;
const RTOL: f32 = 1e-3;

/// The (output activation, loss) pairs a model may use.
fn output_and_loss_pairs() -> Vec<(Activation, Loss)> {
    let mut pairs: Vec<(Activation, Loss)> = output_activations().map(|a| (a, Loss::Mse)).collect();
    pairs.push((Activation::Softmax, Loss::CrossEntropy));
    pairs.push((Activation::Sigmoid, Loss::BinaryCrossEntropy));
    pairs
}

/// The activations a hidden layer may have.
fn hidden_activations() -> Vec<Activation> {
    Activation::ALL
        .into_iter()
        .filter(|&a| a != Activation::Softmax)
        .collect()
}

/// The activations an output layer may have.
fn output_activations() -> impl Iterator<Item = Activation> {
    Activation::ALL.into_iter().filter(|a| !a.is_hidden_only())
}

fn targets_for(loss: Loss, rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    match loss {
        Loss::CrossEntropy => one_hot(rows, cols, seed),
        Loss::BinaryCrossEntropy | Loss::Mse => targets01(rows, cols, seed),
    }
}

fn assert_gradients_close(what: &str, got: &Gradients, want: &Gradients) {
    assert_eq!(got.layers.len(), want.layers.len(), "{what}: layers");
    for (l, (g, w)) in got.layers.iter().zip(&want.layers).enumerate() {
        assert_close2(
            &format!("{what}: layer {l} dW"),
            g.dweight.view(),
            w.dweight.view(),
            ATOL,
            RTOL,
        );
        let (g, w) = (g.dbias.to_vec(), w.dbias.to_vec());
        assert_close(&format!("{what}: layer {l} db"), &g, &w, ATOL, RTOL);
    }
}

/// A ReLU classifier of layer widths `sizes`, its weights drawn from `seed`.
fn relu_softmax(sizes: &[usize], seed: u64) -> Mlp {
    Mlp::new(
        sizes,
        Activation::Relu,
        Activation::Softmax,
        Loss::CrossEntropy,
        seed,
    )
    .unwrap()
}

/// `mlp` with its biases drawn at random (a new model's are zero, which would hide a product or
/// an activation pass that drops them).
fn with_random_biases(mlp: &Mlp, seed: u64) -> Mlp {
    let mut mlp = mlp.clone();
    for (l, layer) in mlp.layers.iter_mut().enumerate() {
        layer.bias = random_matrix(1, layer.bias.len(), seed + 100 + l as u64)
            .row(0)
            .to_owned();
    }
    mlp
}

/// Loss and gradients of the fast engine and of the reference on one batch, with `mlp`'s biases
/// drawn at random.
fn compare(mlp: &Mlp, rows: usize, seed: u64, what: &str) {
    let mlp = &with_random_biases(mlp, seed);
    let x = random_matrix(rows, mlp.inputs(), seed);
    let y = targets_for(mlp.loss, rows, mlp.outputs(), seed + 1);
    let (want_loss, want) = mlp.loss_and_gradients(x.view(), y.view()).unwrap();
    let (loss, got) = fast::loss_and_gradients(mlp, x.view(), y.view(), None).unwrap();
    assert_close(&format!("{what}: loss"), &[loss], &[want_loss], ATOL, RTOL);
    assert_gradients_close(what, &got, &want);
    let (want_outputs, want_loss) = mlp.forward_and_loss(x.view(), y.view()).unwrap();
    let (outputs, loss) = fast::forward_and_loss(mlp, x.view(), y.view()).unwrap();
    assert_close(
        &format!("{what}: eval loss"),
        &[loss],
        &[want_loss],
        ATOL,
        RTOL,
    );
    assert_close2(
        &format!("{what}: outputs"),
        outputs.view(),
        want_outputs.view(),
        ATOL,
        RTOL,
    );
}

#[test]
fn every_activation_and_loss_matches_the_reference() {
    for hidden in hidden_activations() {
        for (output, loss) in output_and_loss_pairs() {
            let mlp = Mlp::new(&[7, 13, 9, 5], hidden, output, loss, 3).unwrap();
            for rows in [1, 6, 17] {
                let what = format!(
                    "{} hidden, {} output, {}",
                    hidden.name(),
                    output.name(),
                    loss.name()
                );
                compare(
                    &mlp,
                    rows,
                    10 + rows as u64,
                    &format!("{what}, batch {rows}"),
                );
            }
        }
    }
}

#[test]
fn a_leaky_slope_of_its_own_matches_the_reference() {
    let mlp = Mlp::with_init_and_leaky_slope(
        &[6, 11, 4],
        Activation::LeakyRelu,
        Activation::Softmax,
        Loss::CrossEntropy,
        Init::Auto,
        0.2,
        8,
    )
    .unwrap();
    compare(&mlp, 13, 90, "leaky-relu, slope 0.2");
}

#[test]
fn depths_one_to_four_match_the_reference() {
    for sizes in [&[5, 3][..], &[5, 8, 3], &[5, 8, 6, 3], &[5, 8, 6, 4, 3]] {
        let mlp = Mlp::new(
            sizes,
            Activation::Tanh,
            Activation::Softmax,
            Loss::CrossEntropy,
            5,
        )
        .unwrap();
        compare(&mlp, 9, 40, &format!("sizes {sizes:?}"));
    }
}

/// Widths and batches across faer's register and cache blocks (multiples of 16 and 48 and one
/// either side), and products above the size (2²⁴ multiply-adds) at which the output's columns
/// are split over the cores: forward, dW and δ products, split into blocks of unequal and odd
/// widths.
#[test]
fn sizes_across_the_blocking_match_the_reference() {
    for (sizes, rows) in [
        (vec![31, 33, 47, 10], 15),
        (vec![64, 65, 129, 10], 49),
        (vec![97, 255, 257, 11], 63),
        (vec![784, 300, 10], 130),
        (vec![785, 40, 10], 600),
        (vec![300, 257, 263, 10], 260),
        // 4.4 MB of weights between the hidden layers: products in five blocks of columns.
        (vec![40, 1100, 1000, 10], 17),
    ] {
        let mlp = relu_softmax(&sizes, 9);
        // A seed at which no pre-activation lies within rounding of ReLU's kink: at 70, one of
        // 784-300-10's is −2.7e-7, which two orders of the same sum round to either side.
        compare(&mlp, rows, 71, &format!("sizes {sizes:?}, batch {rows}"));
    }
}

#[test]
fn dropout_masks_match_the_reference() {
    let mlp = Mlp::new(
        &[12, 20, 16, 4],
        Activation::Relu,
        Activation::Softmax,
        Loss::CrossEntropy,
        2,
    )
    .unwrap();
    let dropout = Dropout {
        input: 0.2,
        hidden: vec![0.5, 0.3],
    };
    for (rows, step) in [(1, 0), (11, 7)] {
        let masks = dropout.masks(17, step, rows, &mlp.sizes());
        let x = random_matrix(rows, 12, step + 3);
        let y = one_hot(rows, 4, step + 4);
        let (want_loss, want) = mlp
            .loss_and_gradients_with_dropout(x.view(), y.view(), &masks)
            .unwrap();
        let (loss, got) = fast::loss_and_gradients(&mlp, x.view(), y.view(), Some(&masks)).unwrap();
        let what = format!("dropout, batch {rows}");
        assert_close(&format!("{what}: loss"), &[loss], &[want_loss], ATOL, RTOL);
        assert_gradients_close(&what, &got, &want);
        // The workspace's own draw is the same mask as the reference's.
        let mut workspace = fast::Workspace::new(&mlp, rows).unwrap();
        let (xs, ys) = workspace.batch_mut(rows);
        xs.copy_from_slice(x.as_slice().unwrap());
        ys.copy_from_slice(y.as_slice().unwrap());
        workspace.draw_masks(&dropout, 17, step, rows);
        let mut drawn = fast::zero_gradients(&mlp);
        let loss = workspace.loss_and_gradients(&mlp, rows, true, &mut drawn);
        assert_close(
            &format!("{what}: drawn loss"),
            &[loss],
            &[want_loss],
            ATOL,
            RTOL,
        );
        assert_gradients_close(&format!("{what}, drawn"), &drawn, &want);
    }
}

#[test]
fn bad_masks_are_refused() {
    let mlp = Mlp::new(
        &[4, 3, 2],
        Activation::Relu,
        Activation::Softmax,
        Loss::CrossEntropy,
        1,
    )
    .unwrap();
    let x = random_matrix(2, 4, 1);
    let y = one_hot(2, 2, 2);
    let masks = Dropout {
        input: 0.5,
        hidden: vec![],
    }
    .masks(1, 0, 3, &mlp.sizes());
    let error = fast::loss_and_gradients(&mlp, x.view(), y.view(), Some(&masks))
        .unwrap_err()
        .to_string();
    assert!(error.contains("dropout mask of site 0"), "{error}");
    let error = fast::loss_and_gradients(&mlp, x.view(), random_matrix(2, 3, 3).view(), None)
        .unwrap_err()
        .to_string();
    assert!(error.contains('3'), "{error}");
}

// ---- the trainer: the fast engine against the reference over whole epochs ----------------------

use common::{assert_all_close, flat_parameters};
use wgpu_mlp::Dataset;
use wgpu_mlp::augment::{Affine, Augmentation, Elastic};
use wgpu_mlp::optim::{Optimizer, OptimizerConfig};
use wgpu_mlp::train::{CpuTrainer, Regularization, Scores, Split, TrainConfig, Trainer};

/// `len` random 8×8 images of 3 classes.
fn images(len: usize, seed: u64) -> Dataset {
    let pixels = random_matrix(len, 64, seed).mapv(|v| ((v + 1.0) * 127.0) as u8);
    let labels = (0..len).map(|i| (i * 7 % 3) as u32).collect();
    Dataset::images(pixels.into_raw_vec_and_offset().0, (8, 8), labels, 3).unwrap()
}

fn config(optimizer: Optimizer, learning_rate: f32, batch_size: usize) -> TrainConfig {
    TrainConfig {
        optimizer: OptimizerConfig {
            optimizer,
            learning_rate,
            weight_decay: optimizer.default_weight_decay(1e-3),
        },
        batch_size,
        seed: 11,
        regularization: Regularization::default(),
    }
}

/// Trains `mlp` for `epochs` on the fast engine and on the reference and asserts that every
/// epoch's loss, the test evaluation and the final parameters agree; returns the fast trainer's
/// parameters.
fn trainers_agree(
    mlp: &Mlp,
    (train, test): (&Dataset, &Dataset),
    config: &TrainConfig,
    augmentation: Option<&Augmentation>,
    epochs: usize,
    what: &str,
) -> Vec<f64> {
    let mut fast = CpuTrainer::new(mlp, train, Some(test), config.clone()).unwrap();
    let mut reference = CpuTrainer::reference(mlp, train, Some(test), config.clone()).unwrap();
    if let Some(augmentation) = augmentation {
        fast.set_augmentation(augmentation).unwrap();
        reference.set_augmentation(augmentation).unwrap();
    }
    for epoch in 1..=epochs {
        let f = fast.train_epoch(&mut |_| {}).unwrap().train_loss;
        let r = reference.train_epoch(&mut |_| {}).unwrap().train_loss;
        assert!(
            (f - r).abs() <= 1e-4 + 1e-3 * r.abs(),
            "{what}, epoch {epoch}: fast {f}, reference {r}"
        );
    }
    let (f, r) = (fast.to_mlp().unwrap(), reference.to_mlp().unwrap());
    let (f, r) = (flat_parameters(&f), flat_parameters(&r));
    assert_all_close(&format!("{what}: parameters"), &f, &r, 1e-4, 1e-3);
    let (fe, re) = (
        fast.evaluate(Split::Test).unwrap(),
        reference.evaluate(Split::Test).unwrap(),
    );
    assert_close(
        &format!("{what}: test loss"),
        &[fe.loss],
        &[re.loss],
        1e-4,
        1e-3,
    );
    assert_eq!(fe.samples, re.samples, "{what}: evaluated samples");
    f
}

#[test]
fn evaluation_in_large_batches_scores_every_sample_as_the_reference_does() {
    // The fast trainer evaluates 1,024 samples at a time whatever its batch of 8: 2,100 test
    // samples are two full evaluation batches and a short one of 52.
    let (train, test) = (images(16, 5), images(2100, 6));
    let mlp = Mlp::new(
        &[64, 24, 3],
        Activation::Tanh,
        Activation::Softmax,
        Loss::CrossEntropy,
        7,
    )
    .unwrap();
    let config = config(Optimizer::ADAM, 0.01, 8);
    let mut fast = CpuTrainer::new(&mlp, &train, Some(&test), config.clone()).unwrap();
    let mut reference = CpuTrainer::reference(&mlp, &train, Some(&test), config).unwrap();
    fast.train_epoch(&mut |_| {}).unwrap();
    reference.train_epoch(&mut |_| {}).unwrap();
    let (f, r) = (
        fast.evaluate(Split::Test).unwrap(),
        reference.evaluate(Split::Test).unwrap(),
    );
    assert_close("test loss", &[f.loss], &[r.loss], 1e-5, 1e-4);
    let (Scores::Classification { confusion: f, .. }, Scores::Classification { confusion: r, .. }) =
        (f.scores, r.scores)
    else {
        panic!("a classification set is scored as one");
    };
    assert_eq!(f.sum(), 2100, "samples counted");
    assert_eq!(f, r, "confusion matrices");
}

/// 64-24-12-3 with ReLU, and 45 training and 20 test images for it.
fn relu_classifier() -> (Mlp, Dataset, Dataset) {
    let mlp = relu_softmax(&[64, 24, 12, 3], 4);
    (mlp, images(45, 1), images(20, 2))
}

#[test]
fn every_optimizer_trains_as_the_reference_does() {
    let (mlp, train, test) = relu_classifier();
    for (optimizer, learning_rate) in [
        (Optimizer::Sgd, 0.1),
        (Optimizer::MOMENTUM, 0.05),
        (Optimizer::ADAM, 0.01),
        (Optimizer::ADAMW, 0.01),
    ] {
        // 45 samples in batches of 8: five full steps and an odd one of 5 each epoch.
        let config = config(optimizer, learning_rate, 8);
        trainers_agree(&mlp, (&train, &test), &config, None, 3, optimizer.name());
    }
}

#[test]
fn a_model_split_over_the_cores_trains_as_the_reference_does() {
    // Batches of 512 through 2,048 hidden units: 512·64·2048 multiply-adds a product (above the
    // 2²⁴ from which products are split over the cores, so each step runs on a pool worker) and
    // 64·2048 = 2¹⁷ first-layer weights (from which Adam gives each core a share); 600 samples,
    // a full batch and one of 88, for two epochs. Plain SGD, with weight decay and dropout,
    // writes its update from the split weight products.
    let (train, test) = (images(600, 7), images(30, 8));
    let mlp = relu_softmax(&[64, 2048, 3], 6);
    let sgd = TrainConfig {
        optimizer: OptimizerConfig {
            optimizer: Optimizer::Sgd,
            learning_rate: 0.05,
            weight_decay: 0.05,
        },
        regularization: Regularization {
            dropout: Dropout {
                input: 0.1,
                hidden: vec![0.5],
            },
            ..Default::default()
        },
        ..config(Optimizer::Sgd, 0.05, 512)
    };
    for config in [config(Optimizer::ADAM, 1e-3, 512), sgd] {
        let what = format!("{} split over the cores", config.optimizer.optimizer.name());
        trainers_agree(&mlp, (&train, &test), &config, None, 2, &what);
    }
}

#[test]
fn every_regularizer_and_deformation_trains_as_the_reference_does() {
    let (train, test) = (images(33, 3), images(10, 4));
    let mlp = Mlp::new(
        &[64, 20, 16, 3],
        Activation::Tanh,
        Activation::Softmax,
        Loss::CrossEntropy,
        5,
    )
    .unwrap();
    let plain = config(Optimizer::MOMENTUM, 0.05, 7);
    let with = |regularization: Regularization| TrainConfig {
        regularization,
        ..plain.clone()
    };
    let cases = [
        (
            "label smoothing",
            with(Regularization {
                label_smoothing: 0.1,
                ..Default::default()
            }),
        ),
        (
            "clipping",
            with(Regularization {
                clip_norm: Some(0.05),
                ..Default::default()
            }),
        ),
        (
            "dropout",
            with(Regularization {
                dropout: Dropout {
                    input: 0.2,
                    hidden: vec![0.5, 0.25],
                },
                ..Default::default()
            }),
        ),
    ];
    let unregularized = trainers_agree(&mlp, (&train, &test), &plain, None, 2, "plain");
    for (what, config) in &cases {
        let got = trainers_agree(&mlp, (&train, &test), config, None, 2, what);
        assert_ne!(got, unregularized, "{what} changed nothing");
    }
    let deformations = Augmentation {
        affine: Some(Affine {
            shift_pixels: 1.0,
            shear_degrees: 5.0,
            ..Affine::default()
        }),
        elastic: Some(Elastic {
            sigma: 2.0,
            alpha: 4.0,
        }),
    };
    let got = trainers_agree(
        &mlp,
        (&train, &test),
        &plain,
        Some(&deformations),
        2,
        "deformed",
    );
    assert_ne!(got, unregularized, "the deformations changed nothing");
}

#[test]
fn every_loss_and_activation_trains_as_the_reference_does() {
    let (train, test) = (images(21, 5), images(9, 6));
    for hidden in hidden_activations() {
        for (output, loss) in output_and_loss_pairs() {
            let (train, test) = match loss {
                // Regression and multi-label targets: the images' first three pixels.
                Loss::Mse | Loss::BinaryCrossEntropy => (regression(&train), regression(&test)),
                Loss::CrossEntropy => (train.clone(), test.clone()),
            };
            let mlp = Mlp::new(&[64, 10, 3], hidden, output, loss, 6).unwrap();
            let what = format!(
                "{} hidden, {} output, {}",
                hidden.name(),
                output.name(),
                loss.name()
            );
            let config = config(Optimizer::ADAM, 0.01, 4);
            trainers_agree(&mlp, (&train, &test), &config, None, 2, &what);
        }
    }
}

/// `set` with targets in [0, 1]: its first three features.
fn regression(set: &Dataset) -> Dataset {
    let rows = set.len();
    let indices: Vec<usize> = (0..rows).collect();
    let (x, _) = set.batch(&indices);
    let y = x.slice(wgpu_mlp::ndarray::s![.., 0..3]).to_owned();
    Dataset::regression(x, y).unwrap()
}

// ---- plain SGD, its update written by the backward pass -----------------------------------------

use wgpu_mlp::ndarray::s;
use wgpu_mlp::run::DataOptions;
use wgpu_mlp::{Device, Error, Resume, Run, TrainSpec};

/// One [`fast::Workspace::sgd_step`] against the reference's gradients and `torch.optim.SGD`'s
/// documented update written anew, `p ← p − lr·(dp + wd·p)`: a batch of 1, an odd one, and one
/// whose products are split over the cores (512·64·2048 multiply-adds, above 2²⁴).
#[test]
fn a_fused_sgd_step_is_the_reference_gradients_update() {
    let learning_rate = 0.1;
    for (sizes, rows) in [
        (vec![7, 13, 9, 5], 1),
        (vec![7, 13, 9, 5], 17),
        (vec![64, 2048, 3], 512),
    ] {
        for weight_decay in [0.0, 0.05] {
            let what = format!("sizes {sizes:?}, batch {rows}, weight decay {weight_decay}");
            let mlp = relu_softmax(&sizes, 3);
            let mlp = with_random_biases(&mlp, rows as u64);
            let x = random_matrix(rows, mlp.inputs(), 20 + rows as u64);
            let y = one_hot(rows, mlp.outputs(), 21);
            let (want_loss, grads) = mlp.loss_and_gradients(x.view(), y.view()).unwrap();
            let sgd = |p: f32, dp: f32| p - learning_rate * (dp + weight_decay * p);

            let mut got = mlp.clone();
            let mut workspace = fast::Workspace::new(&mlp, rows).unwrap();
            let (xs, ys) = workspace.batch_mut(rows);
            xs.copy_from_slice(x.as_slice().unwrap());
            ys.copy_from_slice(y.as_slice().unwrap());
            let loss = workspace.training_loss(&mlp, rows, false);
            workspace.sgd_step(&mut got, rows, learning_rate, weight_decay);

            assert_close(&format!("{what}: loss"), &[loss], &[want_loss], ATOL, RTOL);
            for (l, (before, grad)) in mlp.layers.iter().zip(&grads.layers).enumerate() {
                let weight = before.weight.iter().zip(&grad.dweight);
                let want: Vec<f32> = weight.map(|(&p, &dp)| sgd(p, dp)).collect();
                let got_weight: Vec<f32> = got.layers[l].weight.iter().copied().collect();
                let what_weight = format!("{what}: layer {l} W");
                assert_close(&what_weight, &got_weight, &want, ATOL, RTOL);
                let bias = before.bias.iter().zip(&grad.dbias);
                let want: Vec<f32> = bias.map(|(&p, &dp)| sgd(p, dp)).collect();
                let got_bias = got.layers[l].bias.to_vec();
                assert_close(
                    &format!("{what}: layer {l} b"),
                    &got_bias,
                    &want,
                    ATOL,
                    RTOL,
                );
            }
        }
    }
}

#[test]
fn plain_sgd_updated_in_the_backward_pass_trains_as_the_reference_does() {
    let (mlp, train, test) = relu_classifier();
    let dropout = Regularization {
        dropout: Dropout {
            input: 0.2,
            hidden: vec![0.5, 0.25],
        },
        ..Default::default()
    };
    // 45 samples in batches of 1, and of 7 (six full steps and an odd one of 3), for 3 epochs.
    for batch_size in [1, 7] {
        let mut ends = Vec::new();
        for weight_decay in [0.0, 0.05] {
            for regularization in [Regularization::default(), dropout.clone()] {
                let what = format!(
                    "batch {batch_size}, weight decay {weight_decay}, dropout {}",
                    regularization.dropout.is_active()
                );
                let config = TrainConfig {
                    optimizer: OptimizerConfig {
                        optimizer: Optimizer::Sgd,
                        learning_rate: 0.1,
                        weight_decay,
                    },
                    batch_size,
                    seed: 11,
                    regularization,
                };
                ends.push(trainers_agree(
                    &mlp,
                    (&train, &test),
                    &config,
                    None,
                    3,
                    &what,
                ));
            }
        }
        for (i, a) in ends.iter().enumerate() {
            for b in &ends[i + 1..] {
                assert_ne!(
                    a, b,
                    "batch {batch_size}: weight decay or dropout changed nothing"
                );
            }
        }
    }
}

/// A plain SGD run on the fast engine, 100 synthetic samples in 7 steps an epoch (six batches
/// of 16 and one of 4), with weight decay and dropout (whose masks are keyed by the step count).
fn sgd_run(epochs: usize) -> TrainSpec {
    TrainSpec {
        data_options: DataOptions {
            train_size: Some(100),
            test_size: Some(20),
            validation: Some(0.0),
            ..DataOptions::default()
        },
        hidden_sizes: Some(vec![16]),
        optimizer: Some(Optimizer::Sgd),
        lr: Some(0.05),
        weight_decay: Some(0.01),
        dropout: Some(vec![0.3]),
        batch: Some(16),
        epochs: Some(epochs),
        seed: Some(5),
        device: Device::Cpu,
        ..TrainSpec::default()
    }
}

#[test]
fn a_fused_sgd_run_counts_its_steps_and_resumes_bit_for_bit() {
    let mut whole = Run::new(sgd_run(3)).unwrap();
    while !whole.is_done() {
        whole.train_epoch().unwrap();
    }
    assert_eq!(
        whole.optimizer_state().unwrap().steps,
        3 * 7,
        "steps counted"
    );

    let dir = common::scratch_dir("fast_cpu", "sgd_resume");
    let model = dir.join("model.safetensors");
    let mut first = Run::new(sgd_run(1)).unwrap();
    first.save_every_epoch(model.clone(), false);
    first.train_epoch().unwrap();
    assert_eq!(first.optimizer_state().unwrap().steps, 7, "steps counted");
    let mut resumed = Run::new(TrainSpec {
        resume: Some(Resume::File(model)),
        hidden_sizes: None,
        ..sgd_run(2)
    })
    .unwrap();
    while !resumed.is_done() {
        resumed.train_epoch().unwrap();
    }
    assert_eq!(resumed.optimizer_state().unwrap().steps, 3 * 7);
    assert_eq!(
        resumed.mlp().unwrap(),
        whole.mlp().unwrap(),
        "the resumed run's weights differ"
    );
}

/// The step of the first epoch (1-based) at which `trainer`, in the samples' order, diverges.
fn diverged_at(mut trainer: CpuTrainer<'_>) -> (usize, CpuTrainer<'_>) {
    trainer.set_shuffle(false);
    match trainer.train_epoch(&mut |_| {}) {
        Err(Error::Diverged { epoch, step, .. }) => {
            assert_eq!(epoch, 1);
            (step, trainer)
        }
        other => panic!("expected a divergence, got {other:?}"),
    }
}

/// A learning rate at which [`a_diverging_fused_sgd_run_keeps_the_weights_of_its_last_finite_step`]'s
/// loss overflows mid-epoch.
const DIVERGING_RATE: f32 = 30.0;

#[test]
fn a_diverging_fused_sgd_run_keeps_the_weights_of_its_last_finite_step() {
    // A linear regression by SGD far past the stable rate: the weights grow geometrically until
    // the loss overflows at some step k; the trainer stops there with the weights of step k − 1.
    let (x, _) = images(64, 9).batch(&(0..64).collect::<Vec<_>>());
    let y = x.slice(s![.., 0..3]).to_owned();
    let first = |n: usize| {
        let (x, y) = (x.slice(s![..n, ..]), y.slice(s![..n, ..]));
        Dataset::regression(x.to_owned(), y.to_owned()).unwrap()
    };
    let mlp = Mlp::new(
        &[64, 8, 3],
        Activation::Identity,
        Activation::Identity,
        Loss::Mse,
        2,
    )
    .unwrap();
    let config = TrainConfig {
        optimizer: OptimizerConfig::sgd(DIVERGING_RATE),
        batch_size: 4,
        seed: 11,
        regularization: Regularization::default(),
    };
    let train = first(64);
    let (step, mut fast) =
        diverged_at(CpuTrainer::new(&mlp, &train, None, config.clone()).unwrap());
    let reference = CpuTrainer::reference(&mlp, &train, None, config.clone()).unwrap();
    assert_eq!(
        diverged_at(reference).0,
        step,
        "the reference diverges elsewhere"
    );
    assert!(
        step > 2 && step < 16,
        "the loss must overflow mid-epoch, not at step {step}"
    );
    assert_eq!(fast.optimizer_state().unwrap().steps, step as u64 - 1);

    // The same run on the samples of the steps before k only.
    let finite = first(4 * (step - 1));
    let mut before = CpuTrainer::new(&mlp, &finite, None, config).unwrap();
    before.set_shuffle(false);
    before.train_epoch(&mut |_| {}).unwrap();
    let (got, want) = (fast.to_mlp().unwrap(), before.to_mlp().unwrap());
    assert!(flat_parameters(&got).iter().all(|p| p.is_finite()));
    assert_eq!(got, want, "the weights after the divergence");
}
