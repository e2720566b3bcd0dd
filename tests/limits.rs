//! Models and data sets larger than the device allows are refused before anything is allocated,
//! with an error naming what did not fit, its size and the adapter's limit; what fits still
//! trains. The adapter's limits are lowered to make the test small.

mod common;

use common::{one_hot, random_matrix};
use wgpu_mlp::data::synthetic;
use wgpu_mlp::optim::OptimizerConfig;
use wgpu_mlp::train::{GpuTrainer, TrainConfig};
use wgpu_mlp::{Activation, Error, Gpu, GpuMlp, Loss, Mlp};

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
fn a_data_set_over_the_limit_is_refused_by_name() {
    let gpu = small_gpu();
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
    };
    let error = GpuTrainer::new(&gpu, &mlp, &train, Some(&test), config)
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("the training set's 2000 images") && error.contains("1568000 bytes"),
        "{error}"
    );
}
