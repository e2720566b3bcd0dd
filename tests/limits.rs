//! Models and data sets larger than the device allows are refused before anything is allocated,
//! with an error naming what did not fit, its size and the adapter's limit; what fits still
//! trains. The adapter's limits are lowered to make the test small.
//!
//! Kernels are chosen within the limits the device was opened with: under WebGPU's limits the
//! shared-memory matmul takes only the tiles whose workgroup arrays fit, a kernel forced onto a
//! device that cannot run it is refused naming the limit or feature, and what does fit matches
//! ndarray.

mod common;

use common::{assert_close, one_hot, random_matrix};
use wgpu_mlp::data::synthetic;
use wgpu_mlp::gpu::kernels::matmul::{Epilogue, Matmul, MatmulOperands, MatmulShape, MatmulTile};
use wgpu_mlp::gpu::kernels::{Dispatch, MatmulStrategy};
use wgpu_mlp::optim::{Optimizer, OptimizerConfig, OptimizerState};
use wgpu_mlp::train::{CpuTrainer, GpuTrainer, TrainConfig, Trainer};
use wgpu_mlp::{Activation, Error, FeatureMask, Gpu, GpuMlp, GpuOptions, LimitsPreset, Loss, Mlp};

const ONE_MIB: u64 = 1 << 20;

fn small_gpu() -> Gpu {
    Gpu::with_limits(common::adapter_choice(), |limits| {
        limits.max_storage_buffer_binding_size = ONE_MIB
    })
    .unwrap()
}

#[test]
fn a_layer_over_the_binding_limit_is_refused_by_name() {
    let gpu = small_gpu();
    let mlp = Mlp::new(
        &[784, 1024, 10],
        Activation::Relu,
        Activation::Softmax,
        Loss::CrossEntropy,
        1,
    )
    .unwrap();
    let error = GpuMlp::new(&gpu, &mlp).unwrap_err();
    assert!(
        matches!(
            error,
            Error::DeviceLimit {
                needed: 3_211_264,
                limit: 1_048_576,
                ..
            }
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("layer 0 weight [1024, 784]"), "{message}");
    assert!(
        message.contains("max_storage_buffer_binding_size"),
        "{message}"
    );
    assert!(message.contains(&gpu.adapter_info().name), "{message}");
}

#[test]
fn a_batch_capacity_over_the_limit_is_refused_and_a_smaller_one_trains() {
    let gpu = small_gpu();
    let mlp = Mlp::new(
        &[784, 64, 10],
        Activation::Relu,
        Activation::Softmax,
        Loss::CrossEntropy,
        1,
    )
    .unwrap();
    // 512 rows × 784 inputs × 4 bytes = 1.6 MB of batch input.
    let error = GpuMlp::with_batch_capacity(&gpu, &mlp, 512)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("batch.x") && error.contains("1605632 bytes"),
        "{error}"
    );
    let mut net = GpuMlp::with_batch_capacity(&gpu, &mlp, 64).unwrap();
    let (x, y) = (random_matrix(64, 784, 1), one_hot(64, 10, 2));
    net.train_step(x.view(), y.view(), 0.1).unwrap();
    assert!(net.last_loss().unwrap().is_finite());
}

#[test]
fn a_data_set_over_the_binding_limit_is_split_and_trains_as_on_a_larger_device() {
    // 2,000 images of 784 bytes are 1,568,000 bytes: two chunks under a 1 MiB binding.
    let mlp = Mlp::new(
        &[784, 16, 10],
        Activation::Relu,
        Activation::Softmax,
        Loss::CrossEntropy,
        1,
    )
    .unwrap();
    let (train, test) = synthetic::generate(2000, 10, 1);
    let config = TrainConfig {
        optimizer: OptimizerConfig::sgd(0.1),
        batch_size: 32,
        seed: 1,
        regularization: Default::default(),
    };
    let trained = |gpu: &Gpu| {
        let mut trainer = GpuTrainer::new(gpu, &mlp, &train, Some(&test), config.clone()).unwrap();
        let report = trainer.train_epoch(&mut |_| {}).unwrap();
        assert!(report.train_loss.is_finite());
        trainer.to_mlp().unwrap()
    };
    let split = trained(&small_gpu());
    assert_ne!(split, mlp, "the epoch changed nothing");
    assert_eq!(split, trained(&common::gpu()));
}

/// The test adapter opened as `limits` and `features` say, with `matmul` forced.
fn gpu_as(
    limits: LimitsPreset,
    features: FeatureMask,
    matmul: Option<MatmulStrategy>,
) -> wgpu_mlp::Result<Gpu> {
    let options = GpuOptions {
        limits,
        features,
        matmul,
    };
    Gpu::with_options(common::adapter_choice(), options)
}

/// `A · B` for a 70×90×50 product with `variant` on `gpu`, against ndarray; the bind error if
/// the device refuses it.
fn product_matches_ndarray(gpu: &Gpu, variant: Matmul) -> wgpu_mlp::Result<()> {
    let (m, n, k) = (70, 90, 50);
    let (a, b) = (random_matrix(m, k, 1), random_matrix(k, n, 2));
    let a_buffer = gpu.storage_buffer_with("a", a.as_slice().unwrap())?;
    let b_buffer = gpu.storage_buffer_with("b", b.as_slice().unwrap())?;
    let c = gpu.storage_buffer("c", m * n)?;
    let operands = MatmulOperands {
        a: &a_buffer,
        b: &b_buffer,
        c: &c,
    };
    let shape = MatmulShape { m, n, k };
    let dispatch = variant.bind(gpu, "limits test", shape, operands, Epilogue::None)?;
    Dispatch::run_all(gpu, &[&dispatch])?;
    let got = gpu.read_f32(&c, m * n)?;
    let want = a.dot(&b);
    assert_close(
        &format!("{variant:?}"),
        &got,
        want.as_slice().unwrap(),
        1e-4,
        1e-4,
    );
    Ok(())
}

#[test]
fn under_webgpu_limits_only_the_shared_tiles_that_fit_are_chosen_and_the_rest_are_refused() {
    let gpu = gpu_as(
        LimitsPreset::WebGpu,
        FeatureMask::None,
        Some(MatmulStrategy::Tiled),
    )
    .unwrap();
    let storage = gpu.limits().max_compute_workgroup_storage_size;
    assert!(storage <= 16_384, "{storage}");
    assert_eq!(gpu.config().matmul, MatmulStrategy::Tiled);
    // The 128×128 tile's two slices are 16 rows of 33 vec4s each, 16,896 bytes; every smaller
    // tile declares arrays for its own size, within WebGPU's 16,384.
    let largest = MatmulTile::SHARED_TILES[0];
    assert_eq!(largest.workgroup_storage(MatmulStrategy::Tiled), 16_896);
    let fitting: Vec<MatmulTile> = MatmulTile::SHARED_TILES
        .into_iter()
        .filter(|tile| tile.workgroup_storage(MatmulStrategy::Tiled) <= storage)
        .collect();
    assert_eq!(gpu.config().shared_tiles, fitting);
    assert!(
        !fitting.contains(&largest) && fitting.len() == 6,
        "{fitting:?}"
    );
    for tile in fitting {
        product_matches_ndarray(&gpu, Matmul::NN.with_tile(tile)).unwrap();
    }
    // Chosen by shape: what the largest tile would take goes to the largest that fits.
    let big = MatmulShape {
        m: 4096,
        n: 4096,
        k: 256,
    };
    assert_eq!(
        gpu.config().tile_for(MatmulStrategy::Tiled, big),
        MatmulTile::SHARED_TILES[1]
    );
    product_matches_ndarray(&gpu, Matmul::NN).unwrap();
    let error = product_matches_ndarray(&gpu, Matmul::NN.with_tile(largest)).unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, Error::Unsupported { .. }), "{error:?}");
    assert!(
        message.contains("16896 bytes of workgroup storage")
            && message.contains(&format!(
                "allows {storage} (max_compute_workgroup_storage_size)"
            )),
        "{message}"
    );
    // The register-blocked kernel needs no workgroup storage and runs too.
    product_matches_ndarray(
        &gpu,
        Matmul::NN.with_strategy(MatmulStrategy::RegisterBlocked),
    )
    .unwrap();
}

#[test]
fn a_kernel_the_device_cannot_run_is_refused_naming_the_feature_or_the_limit() {
    // Without subgroups, forcing the shuffled kernel fails when the device is opened...
    let error = gpu_as(
        LimitsPreset::WebGpu,
        FeatureMask::None,
        Some(MatmulStrategy::Shuffled),
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("the Shuffled matmul cannot run on this device")
            && error.contains("wgpu's SUBGROUP feature"),
        "{error}"
    );
    // ... and asking for it by product when it binds.
    let gpu = gpu_as(LimitsPreset::WebGpu, FeatureMask::None, None).unwrap();
    assert!(!gpu.config().subgroups);
    assert_ne!(gpu.config().matmul, MatmulStrategy::Shuffled);
    let shuffled = Matmul::NN.with_strategy(MatmulStrategy::Shuffled);
    let error = product_matches_ndarray(&gpu, shuffled)
        .unwrap_err()
        .to_string();
    assert!(error.contains("wgpu's SUBGROUP feature"), "{error}");

    // A tile with more invocations than the device allows, in a kernel that would hold it.
    let gpu = Gpu::with_limits(common::adapter_choice(), |limits| {
        limits.max_compute_invocations_per_workgroup = 64;
        limits.max_compute_workgroup_size_x = 64;
        limits.max_compute_workgroup_size_y = 64;
    })
    .unwrap();
    assert!(
        gpu.config()
            .shared_tiles
            .iter()
            .all(|t| t.wg_x * t.wg_y <= 64)
    );
    assert_eq!(gpu.config().shared_tiles, [MatmulTile::SHARED_TILES[6]]);
    assert!(gpu.config().workgroup_size <= 64);
    let wide = Matmul::NN
        .with_strategy(MatmulStrategy::Tiled)
        .with_tile(MatmulTile::SHARED_TILES[4]);
    let error = product_matches_ndarray(&gpu, wide).unwrap_err().to_string();
    assert!(
        error.contains("128 invocations per workgroup")
            && error.contains("(max_compute_invocations_per_workgroup)"),
        "{error}"
    );
    product_matches_ndarray(&gpu, Matmul::NN.with_strategy(MatmulStrategy::Tiled)).unwrap();
}

/// The strategies a device opened with `limits` can run, each forced in turn.
fn strategies_under(limits: LimitsPreset) -> Vec<MatmulStrategy> {
    let gpu = gpu_as(limits, FeatureMask::All, None).unwrap();
    [
        MatmulStrategy::Tiled,
        MatmulStrategy::RegisterBlocked,
        MatmulStrategy::Shuffled,
    ]
    .into_iter()
    .filter(|&strategy| gpu.config().check_strategy(strategy).is_ok())
    .collect()
}

/// One epoch of Adam with gradient clipping through the GPU trainer (the gather, the output
/// kernel, the clipping and the update all run), and its model and loss.
fn adam_epoch(gpu: &Gpu, mlp: &Mlp) -> (Mlp, f32) {
    let (train, test) = synthetic::generate(100, 20, 5);
    let mut trainer = GpuTrainer::new(gpu, mlp, &train, Some(&test), clipped_adam()).unwrap();
    let report = trainer.train_epoch(&mut |_| {}).unwrap();
    (trainer.to_mlp().unwrap(), report.train_loss)
}

fn clipped_adam() -> TrainConfig {
    TrainConfig {
        optimizer: OptimizerConfig {
            optimizer: wgpu_mlp::optim::Optimizer::ADAM,
            learning_rate: 0.01,
            weight_decay: 1e-3,
        },
        batch_size: 16,
        seed: 3,
        regularization: wgpu_mlp::train::Regularization {
            clip_norm: Some(0.5),
            ..Default::default()
        },
    }
}

#[test]
fn under_downlevel_and_compat_limits_every_strategy_trains_as_the_cpu_reference_does() {
    let mlp = Mlp::new(
        &[784, 12, 10],
        Activation::Relu,
        Activation::Softmax,
        Loss::CrossEntropy,
        2,
    )
    .unwrap();
    // The independent reference: the CPU trainer, on the same batches.
    let (train, test) = synthetic::generate(100, 20, 5);
    let mut on_cpu = CpuTrainer::new(&mlp, &train, Some(&test), clipped_adam()).unwrap();
    let cpu_loss = on_cpu.train_epoch(&mut |_| {}).unwrap().train_loss;
    let cpu_model = on_cpu.to_mlp().unwrap();
    // Compatibility mode also on a GLES 3.1 device that allows 4 storage buffers (wgpu's GL
    // backend reports the fragment stage's): both narrow limits at once.
    for (limits, storage_cap) in [
        (LimitsPreset::Downlevel, None),
        (LimitsPreset::Compat, None),
        (LimitsPreset::Compat, Some(4)),
    ] {
        let strategies = strategies_under(limits);
        assert!(
            strategies.contains(&MatmulStrategy::Tiled)
                && strategies.contains(&MatmulStrategy::RegisterBlocked),
            "{limits:?}: {strategies:?}"
        );
        for strategy in strategies {
            let what = format!("{limits:?} (storage buffers {storage_cap:?}) {strategy:?}");
            let options = GpuOptions {
                limits,
                features: FeatureMask::All,
                matmul: Some(strategy),
            };
            let gpu = Gpu::with_options_and_limits(common::adapter_choice(), options, |bound| {
                if let Some(cap) = storage_cap {
                    bound.max_storage_buffers_per_shader_stage = cap;
                }
            })
            .unwrap();
            // Compatibility mode lowers the invocations and keeps compute's 8 storage buffers.
            let storage = storage_cap.unwrap_or(match limits {
                LimitsPreset::Compat => 8,
                _ => 4,
            });
            let bound = gpu.limits();
            assert_eq!(
                bound.max_storage_buffers_per_shader_stage, storage,
                "{what}"
            );
            if limits == LimitsPreset::Compat {
                assert!(gpu.config().workgroup_size <= 128, "{what}");
                assert!(
                    gpu.config()
                        .shared_tiles
                        .iter()
                        .all(|t| t.wg_x * t.wg_y <= 128),
                    "{what}"
                );
            }
            let (model, loss) = adam_epoch(&gpu, &mlp);
            assert_close(&format!("{what}: loss"), &[loss], &[cpu_loss], 1e-4, 1e-3);
            for (l, (got, want)) in model.layers.iter().zip(&cpu_model.layers).enumerate() {
                assert_close(
                    &format!("{what}: layer {l} weight"),
                    got.weight.as_slice().unwrap(),
                    want.weight.as_slice().unwrap(),
                    1e-4,
                    1e-3,
                );
                assert_close(
                    &format!("{what}: layer {l} bias"),
                    got.bias.as_slice().unwrap(),
                    want.bias.as_slice().unwrap(),
                    1e-4,
                    1e-3,
                );
            }
        }
    }
}

#[test]
fn a_kernel_binding_more_storage_buffers_than_the_device_allows_is_refused_by_name() {
    // Every kernel binds at most four storage buffers per pipeline; a device that allows three
    // cannot run the matmul.
    let refused = |error: Error| {
        assert!(matches!(error, Error::Unsupported { .. }), "{error:?}");
        let message = error.to_string();
        assert!(
            message.contains("needs 4 storage buffers per shader stage")
                && message.contains("allows 3 (max_storage_buffers_per_shader_stage)"),
            "{message}"
        );
    };
    let opened = Gpu::with_limits(common::adapter_choice(), |limits| {
        limits.max_storage_buffers_per_shader_stage = 3
    });
    // A matmul forced by WGPU_MLP_MATMUL is refused as the device opens; else each product is.
    let gpu = match opened {
        Ok(gpu) => gpu,
        Err(error) => return refused(error),
    };
    refused(product_matches_ndarray(&gpu, Matmul::NN).unwrap_err());
    let mlp = Mlp::new(
        &[4, 8, 3],
        Activation::Relu,
        Activation::Softmax,
        Loss::CrossEntropy,
        1,
    )
    .unwrap();
    refused(GpuMlp::new(&gpu, &mlp).unwrap_err());
}

/// A 16 KiB binding: layer 0 of [`moment_sized`] has 90·40 + 90 = 3,690 parameters, so one of
/// its Adam moments (14,760 bytes) fits and both together (29,520 bytes) do not.
const MOMENT_BINDING: u64 = 16 << 10;

fn moment_sized() -> Mlp {
    Mlp::new(
        &[40, 90, 3],
        Activation::Relu,
        Activation::Identity,
        Loss::Mse,
        4,
    )
    .unwrap()
}

#[test]
fn adam_trains_a_layer_whose_moment_fills_a_binding_unless_the_device_binds_four_buffers() {
    let mlp = moment_sized();
    let (x, y) = (random_matrix(8, 40, 6), random_matrix(8, 3, 7));
    let adam = OptimizerConfig {
        optimizer: Optimizer::ADAM,
        learning_rate: 0.01,
        weight_decay: 0.0,
    };
    // The reference: three steps of the CPU's Adam on the reference's gradients.
    let mut want = mlp.clone();
    let mut want_state = OptimizerState::new(&want);
    for _ in 0..3 {
        let (_, grads) = want.loss_and_gradients(x.view(), y.view()).unwrap();
        want_state.apply(&adam, &mut want, &grads).unwrap();
    }
    for limits in [
        LimitsPreset::Adapter,
        LimitsPreset::WebGpu,
        LimitsPreset::Downlevel,
        LimitsPreset::Compat,
    ] {
        let options = GpuOptions {
            limits,
            ..Default::default()
        };
        let gpu = Gpu::with_options_and_limits(common::adapter_choice(), options, |limits| {
            limits.max_storage_buffer_binding_size = MOMENT_BINDING
        })
        .unwrap();
        let mut net = GpuMlp::with_batch_capacity(&gpu, &mlp, 8).unwrap();
        let applied = net.set_optimizer(adam);
        if limits == LimitsPreset::Downlevel {
            // Four storage buffers per stage: both moments share one binding, which is too small.
            let error = applied.unwrap_err();
            assert!(
                matches!(
                    error,
                    Error::DeviceLimit {
                        needed: 29_520,
                        limit: MOMENT_BINDING,
                        limit_name: "max_storage_buffer_binding_size",
                        ..
                    }
                ),
                "{limits:?}: {error:?}"
            );
            let message = error.to_string();
            assert!(
                message.contains("layer 0 optimizer state (2 moments in one binding"),
                "{limits:?}: {message}"
            );
            continue;
        }
        applied.unwrap();
        for _ in 0..3 {
            net.train_step(x.view(), y.view(), adam.learning_rate)
                .unwrap();
        }
        let (got, got_state) = (net.to_mlp().unwrap(), net.optimizer_state().unwrap());
        assert_eq!(got_state.steps, 3, "{limits:?}");
        for (l, (layer, reference)) in got.layers.iter().zip(&want.layers).enumerate() {
            let what = format!("{limits:?} layer {l}");
            let (m, want_m) = (&got_state.moment1[l].0, &want_state.moment1[l].0);
            let (v, want_v) = (&got_state.moment2[l].0, &want_state.moment2[l].0);
            for (what, got, want) in [
                (format!("{what} weight"), &layer.weight, &reference.weight),
                (format!("{what} first moment"), m, want_m),
                (format!("{what} second moment"), v, want_v),
            ] {
                assert_close(
                    &what,
                    got.as_slice().unwrap(),
                    want.as_slice().unwrap(),
                    1e-5,
                    1e-4,
                );
            }
        }
    }
}

#[test]
fn an_optimizer_state_moves_between_separate_and_shared_moments_unchanged() {
    // Adapter limits keep each Adam moment in its own buffer, downlevel both in one: the state
    // one device saves loads on the other and reads back the same, and training goes on alike.
    let mlp = moment_sized();
    let (x, y) = (random_matrix(8, 40, 8), random_matrix(8, 3, 9));
    let adam = OptimizerConfig {
        optimizer: Optimizer::ADAMW,
        learning_rate: 0.01,
        weight_decay: 0.1,
    };
    let net_on = |limits, from: &Mlp| {
        let options = GpuOptions {
            limits,
            ..Default::default()
        };
        let gpu = Gpu::with_options(common::adapter_choice(), options).unwrap();
        let mut net = GpuMlp::with_batch_capacity(&gpu, from, 8).unwrap();
        net.set_optimizer(adam).unwrap();
        net
    };
    let (separate, shared) = (LimitsPreset::Adapter, LimitsPreset::Downlevel);
    for (from, to) in [(separate, shared), (shared, separate)] {
        let mut first = net_on(from, &mlp);
        for _ in 0..2 {
            first.train_step(x.view(), y.view(), 0.01).unwrap();
        }
        let state = first.optimizer_state().unwrap();
        let mut second = net_on(to, &first.to_mlp().unwrap());
        second.set_optimizer_state(&state).unwrap();
        let loaded = second.optimizer_state().unwrap();
        assert_eq!(loaded.steps, 2, "{from:?} → {to:?}");
        assert_eq!(loaded.moment1, state.moment1, "{from:?} → {to:?}");
        assert_eq!(loaded.moment2, state.moment2, "{from:?} → {to:?}");
        assert!(state.moment2[0].0.iter().any(|&v| v > 0.0), "{from:?}");
        first.train_step(x.view(), y.view(), 0.01).unwrap();
        second.train_step(x.view(), y.view(), 0.01).unwrap();
        let (a, b) = (first.to_mlp().unwrap(), second.to_mlp().unwrap());
        for (l, (a, b)) in a.layers.iter().zip(&b.layers).enumerate() {
            assert_close(
                &format!("{from:?} → {to:?}: layer {l} weight"),
                a.weight.as_slice().unwrap(),
                b.weight.as_slice().unwrap(),
                1e-6,
                1e-5,
            );
        }
    }
}
