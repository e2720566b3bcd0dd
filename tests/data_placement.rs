//! The GPU trainer's three data placements — one resident buffer, resident chunks when the set
//! exceeds one storage binding, and streamed from the host — train to the same weights bit for
//! bit, for byte features with classes and for float features with regression targets; and the
//! GPU's evaluation of each task agrees with the CPU reference's.

mod common;

use std::sync::Arc;

use wgpu_mlp::data::{Dataset, Features, Targets};
use wgpu_mlp::ndarray::{Array1, Array2};
use wgpu_mlp::rng::Rng;
use wgpu_mlp::train::{
    CpuTrainer, DataPlacement, Evaluation, GpuTrainer, Split, TrainConfig, Trainer, evaluate_cpu,
};
use wgpu_mlp::{Activation, Gpu, Loss, Mlp, Optimizer, OptimizerConfig};

/// 150 samples of 13 byte features (13 is no multiple of 4: rows straddle words) in 4 classes.
fn byte_classes(count: usize, seed: u64) -> Dataset {
    let mut rng = Rng::new(seed);
    let x = Array2::from_shape_simple_fn((count, 13), || rng.below(256) as u8);
    let labels = Array1::from_shape_fn(count, |i| (i % 4) as u32);
    Dataset::classification(x, labels, Some(4)).unwrap()
}

/// `count` samples of 6 float features and 2 targets that depend on them.
fn float_regression(count: usize, seed: u64) -> Dataset {
    let mut rng = Rng::new(seed);
    let x = Array2::from_shape_simple_fn((count, 6), || rng.uniform(-2.0, 2.0) as f32);
    let y = Array2::from_shape_fn((count, 2), |(i, c)| {
        let row = x.row(i);
        match c {
            0 => row[0] * 0.5 - row[3] + 0.1,
            _ => (row[1] * row[2]).tanh(),
        }
    });
    Dataset::regression(x, y).unwrap()
}

fn config() -> TrainConfig {
    TrainConfig {
        optimizer: OptimizerConfig {
            optimizer: Optimizer::ADAM,
            ..OptimizerConfig::sgd(0.01)
        },
        batch_size: 16,
        seed: 5,
        regularization: Default::default(),
    }
}

/// A GPU whose storage bindings hold `bytes` at most, so that data sets split into chunks.
fn gpu_with_binding(bytes: u64) -> Gpu {
    Gpu::with_limits(common::adapter_choice(), |limits| {
        limits.max_storage_buffer_binding_size = bytes;
    })
    .unwrap_or_else(|e| panic!("GPU tests need an adapter: {e}"))
}

/// Trains 3 epochs (the last batch of each smaller) and evaluates on the test set.
fn train(
    gpu: &Gpu,
    mlp: &Mlp,
    (train, test): (&Dataset, &Dataset),
    placement: DataPlacement,
) -> (Mlp, Evaluation) {
    let (train, test) = (Arc::new(train.clone()), Arc::new(test.clone()));
    let mut trainer =
        GpuTrainer::with_placement(gpu, mlp, train, Some(test), config(), placement).unwrap();
    for _ in 0..3 {
        trainer.train_epoch(&mut |_| {}).unwrap();
    }
    let evaluation = trainer.evaluate(Split::Test).unwrap();
    (trainer.to_mlp().unwrap(), evaluation)
}

fn assert_same_training(mlp: &Mlp, sets: (&Dataset, &Dataset), chunk_binding: u64) {
    let gpu = common::gpu();
    let (resident, resident_eval) = train(&gpu, mlp, sets, DataPlacement::Resident);
    let small = gpu_with_binding(chunk_binding);
    let (split, split_eval) = train(&small, mlp, sets, DataPlacement::Resident);
    let (streamed, streamed_eval) = train(&gpu, mlp, sets, DataPlacement::Streamed);
    assert_ne!(&resident, mlp, "training changed nothing");
    assert_eq!(split, resident, "chunked data trained differently");
    assert_eq!(streamed, resident, "streamed data trained differently");
    assert_eq!(split_eval, resident_eval);
    assert_eq!(streamed_eval, resident_eval);
}

#[test]
fn byte_classes_train_identically_resident_in_chunks_and_streamed() {
    let (train_set, test_set) = (byte_classes(300, 1), byte_classes(87, 2));
    let mlp = Mlp::new(
        &[13, 9, 4],
        Activation::Tanh,
        Activation::Softmax,
        Loss::CrossEntropy,
        3,
    )
    .unwrap();
    // 13 bytes a sample: a 2 KiB binding holds 157 samples, so 300 samples make 2 chunks (and
    // their order, 1,200 bytes, fits one binding).
    assert_same_training(&mlp, (&train_set, &test_set), 2048);
}

#[test]
fn float_regression_trains_identically_resident_in_chunks_and_streamed() {
    let (train_set, test_set) = (float_regression(300, 3), float_regression(37, 4));
    let mlp = Mlp::new(
        &[6, 10, 2],
        Activation::Tanh,
        Activation::Identity,
        Loss::Mse,
        3,
    )
    .unwrap();
    // 24 bytes a sample: 85 samples to a 2 KiB binding, 4 chunks.
    assert_same_training(&mlp, (&train_set, &test_set), 2048);
}

#[test]
fn auto_streams_a_set_of_more_than_resident_chunks_and_trains_the_same() {
    // 64 float features are 256 bytes a sample: a 1 KiB binding holds 4, so 40 samples make 10
    // chunks, more than RESIDENT_CHUNKS, and are streamed, one step of 4 samples to a slab.
    let mut rng = Rng::new(13);
    let x = Array2::from_shape_simple_fn((40, 64), || rng.uniform(-1.0, 1.0) as f32);
    let y = Array2::from_shape_fn((40, 1), |(i, _)| x.row(i).sum() / 8.0);
    let train_set = Dataset::regression(x, y).unwrap();
    let test_set = train_set.take(12);
    let mlp = Mlp::new(
        &[64, 1],
        Activation::Identity,
        Activation::Identity,
        Loss::Mse,
        3,
    )
    .unwrap();
    let config = TrainConfig {
        batch_size: 4,
        ..config()
    };
    let run = |gpu: &Gpu, placement| {
        let (train, test) = (Arc::new(train_set.clone()), Arc::new(test_set.clone()));
        let mut trainer =
            GpuTrainer::with_placement(gpu, &mlp, train, Some(test), config.clone(), placement)
                .unwrap();
        trainer.train_epoch(&mut |_| {}).unwrap();
        trainer.train_epoch(&mut |_| {}).unwrap();
        (
            trainer.to_mlp().unwrap(),
            trainer.evaluate(Split::Test).unwrap(),
        )
    };
    let auto = run(&gpu_with_binding(1024), DataPlacement::Auto);
    let resident = run(&common::gpu(), DataPlacement::Resident);
    assert_ne!(auto.0, mlp);
    assert_eq!(auto, resident);
}

#[test]
fn regression_scores_on_the_gpu_match_the_cpu_reference_and_closed_forms() {
    let (train_set, test_set) = (float_regression(120, 7), float_regression(41, 8));
    let mlp = Mlp::new(
        &[6, 8, 2],
        Activation::Tanh,
        Activation::Identity,
        Loss::Mse,
        9,
    )
    .unwrap();
    let mut trainer =
        GpuTrainer::new(&common::gpu(), &mlp, &train_set, Some(&test_set), config()).unwrap();
    trainer.train_epoch(&mut |_| {}).unwrap();
    let gpu = trainer.evaluate(Split::Test).unwrap();
    let trained = trainer.to_mlp().unwrap();
    let cpu = evaluate_cpu(&trained, &test_set, 16).unwrap();
    // Closed forms, written out here: per output, SSE = Σ (ŷ − y)² and SST = Σ (y − ȳ)².
    let outputs = trained.forward(test_set_x(&test_set).view()).unwrap();
    let Targets::Values(targets) = &test_set.targets else {
        unreachable!("a regression set")
    };
    let (mut sse, mut sst) = ([0.0f64; 2], [0.0f64; 2]);
    for c in 0..2 {
        let mean: f64 = (0..41).map(|i| f64::from(targets[[i, c]])).sum::<f64>() / 41.0;
        for i in 0..41 {
            sse[c] += f64::from(outputs[[i, c]] - targets[[i, c]]).powi(2);
            sst[c] += (f64::from(targets[[i, c]]) - mean).powi(2);
        }
    }
    let r2 = ((1.0 - sse[0] / sst[0]) + (1.0 - sse[1] / sst[1])) / 2.0;
    let rmse = ((sse[0] + sse[1]) / 82.0).sqrt();
    for (what, evaluation) in [("gpu", &gpu), ("cpu", &cpu)] {
        let (got_rmse, got_r2) = (evaluation.rmse(None).unwrap(), evaluation.r2().unwrap());
        assert!(
            (got_rmse - rmse).abs() < 1e-5 * rmse,
            "{what} rmse {got_rmse} vs {rmse}"
        );
        assert!((got_r2 - r2).abs() < 1e-5, "{what} r2 {got_r2} vs {r2}");
        // MSE loss is the mean over every output of every sample.
        let loss = f64::from(evaluation.loss);
        assert!(
            (loss - rmse * rmse).abs() < 1e-5 * loss,
            "{what} loss {loss}"
        );
    }
    // In the targets' own units, with standard deviations 2 and 3.
    let scaled = (4.0 * sse[0] + 9.0 * sse[1]) / 82.0;
    let got = gpu.rmse(Some(&[2.0, 3.0])).unwrap();
    assert!((got - scaled.sqrt()).abs() < 1e-5 * got, "{got}");
    assert!(gpu.accuracy().is_none() && gpu.confusion().is_none());
}

#[test]
fn validation_is_evaluated_on_its_own_set_on_both_trainers() {
    let all = byte_classes(200, 11);
    let (train_set, validation) = all.split_validation(0.25, 3).unwrap();
    let test_set = byte_classes(30, 12);
    let mlp = Mlp::new(
        &[13, 6, 4],
        Activation::Relu,
        Activation::Softmax,
        Loss::CrossEntropy,
        4,
    )
    .unwrap();
    let gpu = common::gpu();
    let mut on_gpu = GpuTrainer::new(&gpu, &mlp, &train_set, Some(&test_set), config()).unwrap();
    on_gpu.set_validation(Arc::new(validation.clone())).unwrap();
    let mut on_cpu = CpuTrainer::new(&mlp, &train_set, Some(&test_set), config()).unwrap();
    on_cpu.set_validation(&validation).unwrap();
    let (g, c) = (
        on_gpu.evaluate(Split::Validation).unwrap(),
        on_cpu.evaluate(Split::Validation).unwrap(),
    );
    assert_eq!(g.samples, 50);
    assert_eq!(g.confusion().unwrap().sum(), 50);
    assert_eq!(g.confusion(), c.confusion());
    assert!((g.loss - c.loss).abs() < 1e-5, "{} vs {}", g.loss, c.loss);
    let test = on_gpu.evaluate(Split::Test).unwrap();
    assert_eq!(test.samples, 30);
}

fn test_set_x(set: &Dataset) -> Array2<f32> {
    match &set.features {
        Features::Floats(x) => x.clone(),
        Features::Bytes(x) => x.mapv(|b| f32::from(b) / 255.0),
    }
}
