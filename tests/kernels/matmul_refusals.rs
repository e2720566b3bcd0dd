//! The matmul's refusals: tiles its kernels cannot hold, the shuffled kernel without subgroups,
//! operands smaller than the shape, and an output bound as an operand; each an error, never a
//! wrong product or a lost device.

use crate::common::{self, gpu};
use crate::matmul::{EpilogueCase, run_product};
use wgpu_mlp::Activation;
use wgpu_mlp::gpu::kernels::matmul::{Epilogue, Matmul, MatmulOperands, MatmulShape, MatmulTile};
use wgpu_mlp::gpu::kernels::{Dispatch, MatmulStrategy};

#[test]
fn matmul_refuses_a_block_larger_than_the_shader_holds() {
    let gpu = gpu();
    let buffer = gpu.storage_buffer("operand", 64).unwrap();
    let c = gpu.storage_buffer("c", 64).unwrap();
    let operands = MatmulOperands {
        a: &buffer,
        b: &buffer,
        c: &c,
    };
    let shape = MatmulShape { m: 8, n: 8, k: 1 };
    for block in [0, MatmulTile::MAX_BLOCK + 1] {
        let tile = MatmulTile {
            wg_x: 8,
            wg_y: 1,
            block_m: block,
            block_n: 4,
        };
        let error = Matmul::NN
            .with_strategy(MatmulStrategy::RegisterBlocked)
            .with_tile(tile)
            .bind(&gpu, "too big", shape, operands, Epilogue::None)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("matmul tile") && error.contains("blocks 1 to 16"),
            "{error}"
        );
    }
    let tiled = Matmul::NN
        .with_strategy(MatmulStrategy::Tiled)
        .with_tile(MatmulTile {
            wg_x: 8,
            wg_y: 8,
            block_m: 16,
            block_n: 4,
        });
    let error = tiled
        .bind(&gpu, "too big", shape, operands, Epilogue::None)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("vec4 shared-memory kernel takes blocks of 4 or 8"),
        "{error}"
    );
    let shuffled = |tile| {
        Matmul::NN
            .with_strategy(MatmulStrategy::Shuffled)
            .with_tile(tile)
            .bind(&gpu, "too big", shape, operands, Epilogue::None)
            .unwrap_err()
            .to_string()
    };
    for (wg_x, wg_y, block_m, block_n) in [(8, 2, 4, 4), (6, 1, 4, 4), (8, 1, 33, 4), (8, 1, 4, 9)]
    {
        let error = shuffled(MatmulTile {
            wg_x,
            wg_y,
            block_m,
            block_n,
        });
        assert!(
            error.contains("the shuffled kernel takes one row of a power of two"),
            "{error}"
        );
    }
}

#[test]
fn the_shuffled_matmul_is_refused_without_subgroups() {
    // On a device without subgroup operations the kernel is not even in the module.
    let gpu = common::gpu_with(|config| config.subgroups = false);
    let buffer = gpu.storage_buffer("operand", 64).unwrap();
    let c = gpu.storage_buffer("c", 64).unwrap();
    let operands = MatmulOperands {
        a: &buffer,
        b: &buffer,
        c: &c,
    };
    let error = Matmul::NN
        .with_strategy(MatmulStrategy::Shuffled)
        .bind(
            &gpu,
            "no subgroups",
            MatmulShape { m: 8, n: 8, k: 1 },
            operands,
            Epilogue::None,
        )
        .unwrap_err()
        .to_string();
    assert!(error.contains("needs subgroup operations"), "{error}");
    // The other kernels still run there.
    run_product(
        &gpu,
        Matmul::NT.with_strategy(MatmulStrategy::RegisterBlocked),
        EpilogueCase::None,
        MatmulShape { m: 9, n: 10, k: 11 },
        5,
    );
}

#[test]
fn matmul_refuses_operands_smaller_than_the_shape() {
    // The matmul module runs without wgpu's bounds checks, so the host must refuse this.
    let gpu = gpu();
    let small = gpu.storage_buffer("small", 10).unwrap();
    let big = gpu.storage_buffer("big", 100).unwrap();
    let out = gpu.storage_buffer("out", 100).unwrap();
    let shape = MatmulShape { m: 5, n: 5, k: 4 };
    let operands = |a, b| MatmulOperands { a, b, c: &out };
    let refusal = |operands, epilogue| {
        Matmul::NN
            .bind(&gpu, "refused", shape, operands, epilogue)
            .unwrap_err()
            .to_string()
    };
    let error = refusal(operands(&small, &big), Epilogue::None);
    assert!(
        error.contains("a holds 40 bytes but m=5, n=5, k=4 needs 80"),
        "{error}"
    );
    // The epilogue's own buffer too: 5 activations for a 5×5 product.
    let five = gpu.storage_buffer("five", 5).unwrap();
    let times_derivative = Epilogue::TimesDerivative {
        activations: &five,
        activation: Activation::Sigmoid,
        leaky_slope: 0.0,
    };
    let error = refusal(operands(&big, &big), times_derivative);
    assert!(
        error.contains("activations holds 20 bytes but m=5, n=5, k=4 needs 100"),
        "{error}"
    );
    // Softmax is row-wise: no epilogue can apply it element by element.
    let softmax = Epilogue::BiasActivation {
        bias: &big,
        activation: Activation::Softmax,
        leaky_slope: 0.0,
    };
    let error = refusal(operands(&big, &big), softmax);
    assert!(error.contains("cannot be fused"), "{error}");
    let mut fits = Matmul::NN
        .bind(&gpu, "fits", shape, operands(&big, &big), Epilogue::None)
        .unwrap();
    let error = Matmul::NN
        .reshape(
            &gpu,
            &mut fits,
            MatmulShape {
                m: 11,
                n: 10,
                k: 10,
            },
        )
        .unwrap_err()
        .to_string();
    assert!(error.contains("needs"), "{error}");
}

#[test]
fn a_matmul_writing_one_of_its_operands_is_refused_and_the_device_stays_usable() {
    let gpu = gpu();
    let buffer = gpu.storage_buffer("shared", 64).unwrap();
    let other = gpu.storage_buffer("other", 64).unwrap();
    let shape = MatmulShape { m: 4, n: 4, k: 4 };
    let aliased = MatmulOperands {
        a: &buffer,
        b: &other,
        c: &buffer,
    };
    let error = Matmul::NN
        .bind(&gpu, "aliased", shape, aliased, Epilogue::None)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("bound both as an output and as another operand"),
        "{error}"
    );
    // Reading the same buffer twice is fine, and the device took no harm.
    let reads_twice = MatmulOperands {
        a: &other,
        b: &other,
        c: &buffer,
    };
    let fine = Matmul::NN
        .bind(&gpu, "fine", shape, reads_twice, Epilogue::None)
        .unwrap();
    Dispatch::run_all(&gpu, &[&fine]).unwrap();
}
