//! Training on the GPU follows the CPU reference step for step.

mod common;

use common::{assert_close, assert_close2, gpu, one_hot, random_matrix, targets01};
use wgpu_mlp::ndarray::s;
use wgpu_mlp::{Activation, Fusion, GpuMlp, Loss, Mlp};

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
        )
        .unwrap(),
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
        )
        .unwrap(),
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
        )
        .unwrap(),
        7,
        0.3,
        false,
    );
}

#[test]
fn unfused_kernels_compute_exactly_what_the_fused_ones_do() {
    // The same f32 operations in the same order, only split over more passes: the results must
    // be identical, through odd-sized batches (which reshape every dispatch) too.
    let gpu = gpu();
    for (mlp, batch) in [
        (
            Mlp::new(
                &[13, 20, 17, 4],
                Activation::Relu,
                Activation::Softmax,
                Loss::CrossEntropy,
                4,
            )
            .unwrap(),
            19,
        ),
        (
            Mlp::new(
                &[9, 12, 3],
                Activation::Sigmoid,
                Activation::Sigmoid,
                Loss::Mse,
                5,
            )
            .unwrap(),
            8,
        ),
        (
            Mlp::new(
                &[6, 7, 5, 2],
                Activation::Tanh,
                Activation::Identity,
                Loss::Mse,
                6,
            )
            .unwrap(),
            5,
        ),
    ] {
        let what = format!("{:?}", mlp.sizes());
        let x = random_matrix(batch, mlp.inputs(), 3);
        let y = if mlp.loss == Loss::CrossEntropy {
            one_hot(batch, mlp.outputs(), 4)
        } else {
            targets01(batch, mlp.outputs(), 4)
        };
        let mut fused = GpuMlp::new(&gpu, &mlp).unwrap();
        let mut unfused = GpuMlp::new(&gpu, &mlp).unwrap();
        unfused.set_fusion(Fusion::Unfused).unwrap();
        assert_eq!(unfused.fusion(), Fusion::Unfused);
        let (fused_loss, fused_gradients) = fused.loss_and_gradients(x.view(), y.view()).unwrap();
        let (unfused_loss, unfused_gradients) =
            unfused.loss_and_gradients(x.view(), y.view()).unwrap();
        assert_eq!(fused_loss, unfused_loss, "{what}: loss");
        assert_eq!(fused_gradients, unfused_gradients, "{what}: gradients");
        // And both are right.
        let (cpu_loss, _) = mlp.loss_and_gradients(x.view(), y.view()).unwrap();
        assert_close(
            &format!("{what}: loss"),
            &[fused_loss],
            &[cpu_loss],
            1e-6,
            1e-5,
        );
        for step in 0..6 {
            let rows = if step % 3 == 1 { batch / 2 + 1 } else { batch };
            let (x, y) = (x.slice(s![..rows, ..]), y.slice(s![..rows, ..]));
            fused.train_step(x, y, 0.2).unwrap();
            unfused.train_step(x, y, 0.2).unwrap();
            assert_eq!(
                fused.last_loss().unwrap(),
                unfused.last_loss().unwrap(),
                "{what}: loss of step {step}"
            );
        }
        assert_eq!(
            fused.to_mlp().unwrap(),
            unfused.to_mlp().unwrap(),
            "{what}: weights"
        );
        // Back to fused: the scratch buffers go, the weights stay.
        unfused.set_fusion(Fusion::Fused).unwrap();
        assert_eq!(
            fused.to_mlp().unwrap(),
            unfused.to_mlp().unwrap(),
            "{what}: weights"
        );
    }
}

mod trainers {
    use super::common::{assert_close, assert_close2, gpu};
    use wgpu_mlp::data::synthetic;
    use wgpu_mlp::optim::{Optimizer, OptimizerConfig};
    use wgpu_mlp::train::{CpuTrainer, GpuTrainer, Split, TrainConfig, Trainer};
    use wgpu_mlp::{Activation, Loss, Mlp};

    /// After 30 steps of an adaptive optimizer the two sides drift apart by a few f32 ulps per
    /// step; Adam's normalisation amplifies tiny gradients, hence the looser bound.
    const TRAINER_ATOL: f32 = 1e-4;
    const TRAINER_RTOL: f32 = 1e-3;

    fn config(optimizer: Optimizer, learning_rate: f32) -> TrainConfig {
        TrainConfig {
            optimizer: OptimizerConfig {
                optimizer,
                learning_rate,
                weight_decay: 1e-4,
            },
            batch_size: 32,
            seed: 9,
            regularization: Default::default(),
        }
    }

    /// Trains both sides `epochs` epochs, checking after each that their mean losses agree.
    fn train_both(on_gpu: &mut GpuTrainer, on_cpu: &mut CpuTrainer, epochs: usize, what: &str) {
        for _ in 0..epochs {
            let (g, c) = (
                on_gpu.train_epoch(&mut |_| {}).unwrap(),
                on_cpu.train_epoch(&mut |_| {}).unwrap(),
            );
            assert_close(
                &format!("{what} epoch {} loss", g.epoch),
                &[g.train_loss],
                &[c.train_loss],
                TRAINER_ATOL,
                TRAINER_RTOL,
            );
        }
    }

    #[test]
    fn gpu_trainer_follows_the_cpu_trainer_with_every_optimizer() {
        // 301 samples: nine full batches of 32 and a last one of 13.
        let (train, test) = synthetic::generate(301, 97, 3);
        for (optimizer, learning_rate) in [
            (Optimizer::Sgd, 0.3),
            (Optimizer::MOMENTUM, 0.05),
            (Optimizer::ADAM, 0.002),
        ] {
            let mlp = Mlp::new(
                &[784, 33, 10],
                Activation::Relu,
                Activation::Softmax,
                Loss::CrossEntropy,
                4,
            )
            .unwrap();
            let config = config(optimizer, learning_rate);
            let mut on_gpu =
                GpuTrainer::new(&gpu(), &mlp, &train, Some(&test), config.clone()).unwrap();
            let mut on_cpu = CpuTrainer::new(&mlp, &train, Some(&test), config).unwrap();
            train_both(&mut on_gpu, &mut on_cpu, 3, &format!("{optimizer:?}"));
            let (g, c) = (
                on_gpu.evaluate(Split::Test).unwrap(),
                on_cpu.evaluate(Split::Test).unwrap(),
            );
            assert_close(
                &format!("{optimizer:?} test loss"),
                &[g.loss],
                &[c.loss],
                TRAINER_ATOL,
                TRAINER_RTOL,
            );
            assert!(
                (g.accuracy().unwrap() - c.accuracy().unwrap()).abs() <= 2.0 / 97.0,
                "{optimizer:?}: accuracy {} vs {}",
                g.accuracy().unwrap(),
                c.accuracy().unwrap()
            );
            assert_eq!(g.confusion().unwrap().sum(), 97);
            let (gm, cm) = (on_gpu.to_mlp().unwrap(), on_cpu.to_mlp().unwrap());
            for (l, (a, b)) in gm.layers.iter().zip(&cm.layers).enumerate() {
                assert_close2(
                    &format!("{optimizer:?} layer {l} weight"),
                    a.weight.view(),
                    b.weight.view(),
                    TRAINER_ATOL,
                    TRAINER_RTOL,
                );
            }
        }
    }

    #[test]
    fn images_whose_rows_are_not_whole_words_are_gathered_byte_by_byte() {
        // 5×5 = 25 pixels: the GPU gather's four-pixel words straddle samples, so it takes its
        // per-byte path (MNIST's 784 takes the per-word one, tested above).
        let mut rng = wgpu_mlp::rng::Rng::new(17);
        let dataset = |count: usize, rng: &mut wgpu_mlp::rng::Rng| {
            let pixels = (0..count * 25).map(|_| rng.below(256) as u8).collect();
            let labels = (0..count).map(|i| (i % 3) as u32).collect();
            wgpu_mlp::data::Dataset::images(pixels, (5, 5), labels, 3).unwrap()
        };
        let (train, test) = (dataset(45, &mut rng), dataset(11, &mut rng));
        let mlp = Mlp::new(
            &[25, 7, 3],
            Activation::Tanh,
            Activation::Softmax,
            Loss::CrossEntropy,
            6,
        )
        .unwrap();
        let config = TrainConfig {
            batch_size: 9,
            ..config(Optimizer::Sgd, 0.2)
        };
        let mut on_gpu =
            GpuTrainer::new(&gpu(), &mlp, &train, Some(&test), config.clone()).unwrap();
        let mut on_cpu = CpuTrainer::new(&mlp, &train, Some(&test), config).unwrap();
        train_both(&mut on_gpu, &mut on_cpu, 2, "25 inputs");
        let (g, c) = (
            on_gpu.evaluate(Split::Test).unwrap(),
            on_cpu.evaluate(Split::Test).unwrap(),
        );
        assert_close(
            "test loss",
            &[g.loss],
            &[c.loss],
            TRAINER_ATOL,
            TRAINER_RTOL,
        );
        let (gm, cm) = (on_gpu.to_mlp().unwrap(), on_cpu.to_mlp().unwrap());
        assert_close2(
            "first layer",
            gm.layers[0].weight.view(),
            cm.layers[0].weight.view(),
            TRAINER_ATOL,
            TRAINER_RTOL,
        );
    }

    #[test]
    fn profiled_steps_time_every_kernel_and_train_exactly_as_unprofiled_ones() {
        let gpu = gpu();
        assert!(
            gpu.has_timestamps(),
            "lavapipe and every GPU we target have timestamp queries; {} has not",
            gpu.adapter_description()
        );
        let (train, _) = synthetic::generate(160, 10, 5);
        let mlp = Mlp::new(
            &[784, 24, 16, 10],
            Activation::Relu,
            Activation::Softmax,
            Loss::CrossEntropy,
            8,
        )
        .unwrap();
        let run = |profile: usize| {
            let mut trainer =
                GpuTrainer::new(&gpu, &mlp, &train, None, config(Optimizer::Sgd, 0.1)).unwrap();
            if profile > 0 {
                trainer.profile_next_steps(profile).unwrap();
            }
            let report = trainer.train_epoch(&mut |_| {}).unwrap();
            (
                trainer.to_mlp().unwrap(),
                report.train_loss,
                trainer.profile(),
            )
        };
        let (plain, plain_loss, none) = run(0);
        assert!(none.is_none());
        let (profiled, profiled_loss, profile) = run(3);
        assert_eq!(plain, profiled, "profiling changed the training");
        assert_eq!(plain_loss, profiled_loss);
        let profile = profile.unwrap();
        assert_eq!(profile.steps, 3);
        let labels: Vec<&str> = profile.kernels.iter().map(|k| k.label.as_str()).collect();
        for layer in 0..3 {
            for what in ["forward", "dweight", "dbias", "sgd"] {
                let label = format!("layer{layer}.{what}");
                assert!(
                    labels.contains(&label.as_str()),
                    "{label} missing from {labels:?}"
                );
            }
        }
        for label in [
            "layer0.delta",
            "layer1.delta",
            "train.gather",
            "output.loss",
        ] {
            assert!(labels.contains(&label), "{label} missing from {labels:?}");
        }
        assert!(
            profile.kernels.iter().all(|k| k.calls_per_step == 1.0),
            "{profile}"
        );
        assert!(
            profile.gpu_per_step() > std::time::Duration::ZERO,
            "{profile}"
        );
        assert!(profile.to_string().contains("layer0.forward"));
    }

    #[test]
    fn same_seed_same_adapter_same_weights() {
        let (train, test) = synthetic::generate(200, 50, 1);
        let mlp = Mlp::new(
            &[784, 16, 10],
            Activation::Tanh,
            Activation::Sigmoid,
            Loss::Mse,
            2,
        )
        .unwrap();
        let run = || {
            let mut trainer = GpuTrainer::new(
                &gpu(),
                &mlp,
                &train,
                Some(&test),
                config(Optimizer::ADAM, 0.01),
            )
            .unwrap();
            trainer.train_epoch(&mut |_| {}).unwrap();
            trainer.train_epoch(&mut |_| {}).unwrap();
            (
                trainer.to_mlp().unwrap(),
                trainer.evaluate(Split::Test).unwrap(),
            )
        };
        let (first, first_eval) = run();
        let (second, second_eval) = run();
        assert_eq!(first, second, "two runs with one seed differ");
        assert_eq!(first_eval, second_eval);
    }
}
