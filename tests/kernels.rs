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

// ---- activation, elementwise, reduce, transpose -------------------------------------------------

use wgpu_mlp::gpu::kernels::KernelConfig;
use wgpu_mlp::gpu::kernels::activation::ActivationKernel;
use wgpu_mlp::gpu::kernels::elementwise::Elementwise;
use wgpu_mlp::gpu::kernels::reduce::{ColumnSum, Sum};
use wgpu_mlp::gpu::kernels::transpose::Transpose;

/// Element-wise results differ from ndarray only by the last bit of exp/tanh.
const ELEMENTWISE_ATOL: f32 = 1e-6;
const ELEMENTWISE_RTOL: f32 = 1e-5;

/// (rows, cols) pairs: every listed size as rows and as columns, against a non-square partner.
fn shapes() -> Vec<(usize, usize)> {
    let mut shapes = Vec::new();
    for (i, &size) in SIZES.iter().enumerate() {
        shapes.push((size, SIZES[(i + 3) % SIZES.len()]));
        shapes.push((SIZES[(i + 5) % SIZES.len()].min(257), size));
    }
    shapes
}

fn upload(values: &Array2<f32>) -> wgpu::Buffer {
    gpu()
        .storage_buffer_with(
            "test input",
            values.as_standard_layout().as_slice().unwrap(),
        )
        .unwrap()
}

fn softmax_rows(z: &Array2<f32>) -> Array2<f32> {
    let mut a = z.clone();
    for mut row in a.rows_mut() {
        let max = row.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        row.mapv_inplace(|v| (v - max).exp());
        let total = row.sum();
        row.mapv_inplace(|v| v / total);
    }
    a
}

fn run_activation(kernel: ActivationKernel, first: &Array2<f32>, second: &Array2<f32>) -> Vec<f32> {
    let gpu = gpu();
    let (rows, cols) = first.dim();
    let out = gpu.storage_buffer("out", rows * cols).unwrap();
    let dispatch = kernel
        .bind(
            &gpu,
            "activation test",
            rows,
            cols,
            &upload(first),
            &upload(second),
            &out,
        )
        .unwrap();
    Dispatch::run_all(&gpu, &[&dispatch]).unwrap();
    gpu.read_f32(&out, rows * cols).unwrap()
}

#[test]
fn activation_forward_and_backward_match_ndarray() {
    for (rows, cols) in shapes() {
        let z = random_matrix(rows, cols, (rows * cols) as u64) * 4.0;
        let da = random_matrix(rows, cols, 7);
        for act in Activation::ALL {
            let what = format!("{act:?} {rows}x{cols}");
            let a = if act == Activation::Softmax {
                softmax_rows(&z)
            } else {
                z.mapv(|v| act.apply(v))
            };
            let got = run_activation(ActivationKernel::Forward(act), &z, &z);
            assert_close(
                &format!("{what} forward"),
                &got,
                a.as_slice().unwrap(),
                ELEMENTWISE_ATOL,
                ELEMENTWISE_RTOL,
            );

            let dz = if act == Activation::Softmax {
                let dot = (&da * &a)
                    .sum_axis(wgpu_mlp::ndarray::Axis(1))
                    .insert_axis(wgpu_mlp::ndarray::Axis(1));
                &a * &(&da - &dot)
            } else {
                &da * &a.mapv(|v| act.derivative_from_output(v))
            };
            let got = run_activation(ActivationKernel::Backward(act), &a, &da);
            assert_close(
                &format!("{what} backward"),
                &got,
                dz.as_slice().unwrap(),
                ELEMENTWISE_ATOL,
                ELEMENTWISE_RTOL,
            );
        }
    }
}

#[test]
fn softmax_of_large_logits_is_finite_and_exact() {
    let z = random_matrix(5, 10, 3) * 100.0;
    let got = run_activation(ActivationKernel::Forward(Activation::Softmax), &z, &z);
    assert!(got.iter().all(|v| v.is_finite()));
    assert_close(
        "softmax ±100",
        &got,
        softmax_rows(&z).as_slice().unwrap(),
        ELEMENTWISE_ATOL,
        ELEMENTWISE_RTOL,
    );
    // Sigmoid and tanh saturate instead of overflowing.
    for act in [Activation::Sigmoid, Activation::Tanh] {
        let got = run_activation(ActivationKernel::Forward(act), &z, &z);
        assert_close(
            &format!("{act:?} ±100"),
            &got,
            z.mapv(|v| act.apply(v)).as_slice().unwrap(),
            0.0,
            ELEMENTWISE_RTOL,
        );
    }
}

#[test]
fn elementwise_kernels_match_ndarray() {
    let gpu = gpu();
    for (rows, cols) in shapes() {
        let a = random_matrix(rows, cols, 1);
        let b = random_matrix(rows, cols, 2);
        let bias = random_matrix(1, cols, 3);
        let cases = [
            (Elementwise::Hadamard, &b, &a * &b),
            (Elementwise::BiasAdd, &bias, &a + &bias),
            (Elementwise::Axpy(-0.75), &b, &a * -0.75 + &b),
        ];
        for (op, second, want) in cases {
            let out = gpu.storage_buffer("out", rows * cols).unwrap();
            let dispatch = op
                .bind(
                    &gpu,
                    "elementwise test",
                    rows,
                    cols,
                    &upload(&a),
                    &upload(second),
                    &out,
                )
                .unwrap();
            Dispatch::run_all(&gpu, &[&dispatch]).unwrap();
            let got = gpu.read_f32(&out, rows * cols).unwrap();
            assert_close(
                &format!("{op:?} {rows}x{cols}"),
                &got,
                want.as_slice().unwrap(),
                ELEMENTWISE_ATOL,
                ELEMENTWISE_RTOL,
            );
        }
    }
}

#[test]
fn column_sums_and_full_sum_match_ndarray() {
    let gpu = gpu();
    for (rows, cols) in shapes().into_iter().chain([(1000, 10), (1, 1)]) {
        let m = random_matrix(rows, cols, 4);
        let out = gpu.storage_buffer("out", cols).unwrap();
        let dispatch =
            ColumnSum::bind(&gpu, "column sum test", rows, cols, &upload(&m), &out).unwrap();
        Dispatch::run_all(&gpu, &[&dispatch]).unwrap();
        let want = m.sum_axis(wgpu_mlp::ndarray::Axis(0));
        assert_close(
            &format!("column sums {rows}x{cols}"),
            &gpu.read_f32(&out, cols).unwrap(),
            want.as_slice().unwrap(),
            1e-4,
            1e-5,
        );
    }
    for len in [1, 7, 255, 256, 257, 300_001] {
        let v = random_matrix(1, len, 5);
        let out = gpu.storage_buffer("out", 1).unwrap();
        let dispatch = Sum::bind(&gpu, "sum test", len, &upload(&v), &out).unwrap();
        Dispatch::run_all(&gpu, &[&dispatch]).unwrap();
        let want: f64 = v.iter().map(|&x| x as f64).sum();
        // f32 partial sums of up to 300,000 terms in [-1, 1): a few ulps per partial sum.
        assert_close(
            &format!("sum of {len}"),
            &gpu.read_f32(&out, 1).unwrap(),
            &[want as f32],
            1e-3,
            1e-5,
        );
    }
}

#[test]
fn transpose_matches_ndarray() {
    let gpu = gpu();
    for (rows, cols) in shapes() {
        let m = random_matrix(rows, cols, 6);
        let out = gpu.storage_buffer("out", rows * cols).unwrap();
        let dispatch =
            Transpose::bind(&gpu, "transpose test", rows, cols, &upload(&m), &out).unwrap();
        Dispatch::run_all(&gpu, &[&dispatch]).unwrap();
        let want = m.t().as_standard_layout().to_owned();
        assert_close(
            &format!("transpose {rows}x{cols}"),
            &gpu.read_f32(&out, rows * cols).unwrap(),
            want.as_slice().unwrap(),
            0.0,
            0.0,
        );
    }
}

#[test]
fn grids_past_the_per_dimension_limit_fold_into_two_dimensions() {
    let gpu = gpu();
    let config = KernelConfig {
        max_workgroups_per_dimension: 100,
        ..gpu.config().clone()
    };
    for items in [1, 99 * 256, 100 * 256, 100 * 256 + 1, 9999 * 256 + 3] {
        let [x, y, z] = config.grid_1d(items, 256);
        assert!(x <= 100 && y <= 100 && z == 1, "{items}: grid {x}×{y}");
        assert!(
            (x * y) as usize * 256 >= items,
            "{items}: grid {x}×{y} covers too few"
        );
    }
    // And on the device: more elements than one dimension of workgroups can cover.
    let limit =
        gpu.config().max_workgroups_per_dimension as usize * gpu.config().workgroup_size as usize;
    let (rows, cols) = (limit / 1000 + 7, 1000);
    assert!(rows * cols > limit);
    let a = Array2::from_shape_fn((rows, cols), |(r, c)| (r % 13) as f32 + c as f32 * 1e-3);
    let b = Array2::from_shape_fn((rows, cols), |(r, c)| ((r + c) % 5) as f32);
    let out = gpu.storage_buffer("out", rows * cols).unwrap();
    let dispatch = Elementwise::Hadamard
        .bind(
            &gpu,
            "folded hadamard",
            rows,
            cols,
            &upload(&a),
            &upload(&b),
            &out,
        )
        .unwrap();
    Dispatch::run_all(&gpu, &[&dispatch]).unwrap();
    let want = &a * &b;
    assert_close(
        "folded hadamard",
        &gpu.read_f32(&out, rows * cols).unwrap(),
        want.as_slice().unwrap(),
        0.0,
        1e-7,
    );
}

#[test]
fn matmul_refuses_operands_smaller_than_the_shape() {
    // The matmul module runs without wgpu's bounds checks, so the host must refuse this.
    let gpu = gpu();
    let small = gpu.storage_buffer("small", 10).unwrap();
    let big = gpu.storage_buffer("big", 100).unwrap();
    let shape = MatmulShape { m: 5, n: 5, k: 4 };
    let error = Matmul::NN
        .bind(&gpu, "too small", shape, &small, &big, &big, &big, &big)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("a holds 40 bytes but m=5, n=5, k=4 needs 80"),
        "{error}"
    );
    let mut fits = Matmul::NN
        .bind(&gpu, "fits", shape, &big, &big, &big, &big, &big)
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
