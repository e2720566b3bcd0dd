//! Every kernel against ndarray, at sizes that are and are not multiples of the workgroup tile.

mod common;

use common::{assert_close, gpu, random_matrix};
use wgpu_mlp::Activation;
use wgpu_mlp::gpu::kernels::matmul::{Epilogue, Matmul, MatmulShape};
use wgpu_mlp::gpu::kernels::{Dispatch, MatmulStrategy};
use wgpu_mlp::ndarray::{Array1, Array2};

/// Sizes the issue names: 1, around the 64-wide tile, and not multiples of anything.
const SIZES: [usize; 8] = [1, 3, 7, 63, 64, 65, 257, 1000];

/// Matmul tolerance: f32 sums of up to 1000 products of values in [-1, 1).
const MATMUL_ATOL: f32 = 1e-4;
const MATMUL_RTOL: f32 = 1e-4;

fn run_matmul(variant: Matmul, m: usize, n: usize, k: usize, seed: u64) {
    let gpu = gpu();
    let a_stored = if variant.transpose_a {
        random_matrix(k, m, seed)
    } else {
        random_matrix(m, k, seed)
    };
    let b_stored = if variant.transpose_b {
        random_matrix(n, k, seed + 1)
    } else {
        random_matrix(k, n, seed + 1)
    };
    let bias = Array1::from_iter((0..n).map(|i| (i as f32 * 0.37).sin()));
    let aux = random_matrix(m, n, seed + 2).mapv(|v| v * 0.5 + 0.5);

    let op_a = if variant.transpose_a {
        a_stored.t().to_owned()
    } else {
        a_stored.clone()
    };
    let op_b = if variant.transpose_b {
        b_stored.t().to_owned()
    } else {
        b_stored.clone()
    };
    let product = op_a.dot(&op_b);
    let want: Array2<f32> = match variant.epilogue {
        Epilogue::None => product,
        Epilogue::BiasActivation(act) => (product + &bias).mapv(|z| act.apply(z)),
        Epilogue::TimesDerivative(act) => product * aux.mapv(|a| act.derivative_from_output(a)),
    };

    let upload = |label: &str, values: &[f32]| gpu.storage_buffer_with(label, values).unwrap();
    let a = upload("a", a_stored.as_standard_layout().as_slice().unwrap());
    let b = upload("b", b_stored.as_standard_layout().as_slice().unwrap());
    let bias_buffer = upload("bias", bias.as_slice().unwrap());
    let aux_buffer = upload("aux", aux.as_slice().unwrap());
    let c = gpu.storage_buffer("c", m * n).unwrap();
    let dispatch = variant
        .bind(
            &gpu,
            "matmul test",
            MatmulShape { m, n, k },
            &a,
            &b,
            &bias_buffer,
            &aux_buffer,
            &c,
        )
        .unwrap();
    Dispatch::run_all(&gpu, &[&dispatch]).unwrap();
    let got = gpu.read_f32(&c, m * n).unwrap();
    assert_close(
        &format!("{variant:?} m={m} n={n} k={k}"),
        &got,
        want.as_standard_layout().as_slice().unwrap(),
        MATMUL_ATOL,
        MATMUL_RTOL,
    );
}

fn all_layouts(strategy: MatmulStrategy) {
    for variant in [Matmul::NN, Matmul::NT, Matmul::TN] {
        let variant = variant.with_strategy(strategy);
        for (i, &size) in SIZES.iter().enumerate() {
            // Square at every size, and non-square shapes pairing each size with its neighbours.
            let other = SIZES[(i + 3) % SIZES.len()].min(300);
            let small = SIZES[(i + 5) % SIZES.len()].min(70);
            run_matmul(variant, size, size.min(300), size.min(257), i as u64);
            run_matmul(variant, size.min(300), other, small, 100 + i as u64);
            run_matmul(variant, small, size.min(300), other, 200 + i as u64);
        }
    }
}

#[test]
fn matmul_register_blocked_matches_ndarray_in_every_layout() {
    all_layouts(MatmulStrategy::RegisterBlocked);
}

#[test]
fn matmul_tiled_matches_ndarray_in_every_layout() {
    all_layouts(MatmulStrategy::Tiled);
}

#[test]
fn matmul_large_square_1000() {
    for strategy in [MatmulStrategy::RegisterBlocked, MatmulStrategy::Tiled] {
        run_matmul(Matmul::NN.with_strategy(strategy), 1000, 1000, 1000, 9);
    }
}

#[test]
fn matmul_fused_epilogues_match_ndarray() {
    for strategy in [MatmulStrategy::RegisterBlocked, MatmulStrategy::Tiled] {
        for act in [
            Activation::Identity,
            Activation::Sigmoid,
            Activation::Relu,
            Activation::Tanh,
        ] {
            run_matmul(
                Matmul::NT
                    .with_epilogue(Epilogue::BiasActivation(act))
                    .with_strategy(strategy),
                65,
                33,
                70,
                1,
            );
            run_matmul(
                Matmul::NN
                    .with_epilogue(Epilogue::TimesDerivative(act))
                    .with_strategy(strategy),
                7,
                130,
                65,
                2,
            );
        }
    }
}
