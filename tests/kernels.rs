//! Every kernel against ndarray, at sizes that are and are not multiples of the workgroup tile.

mod common;

use common::{assert_close, gpu, random_matrix};
use wgpu_mlp::Activation;
use wgpu_mlp::gpu::kernels::matmul::{Epilogue, Matmul, MatmulShape, MatmulSplit, MatmulTile};
use wgpu_mlp::gpu::kernels::{Dispatch, MatmulStrategy};
use wgpu_mlp::ndarray::{Array1, Array2};

/// Sizes the issue names: 1, around the 64-wide tile, and not multiples of anything.
const SIZES: [usize; 8] = [1, 3, 7, 63, 64, 65, 257, 1000];

/// Matmul tolerance: f32 sums of up to 1000 products of values in [-1, 1).
const MATMUL_ATOL: f32 = 1e-4;
const MATMUL_RTOL: f32 = 1e-4;

fn run_matmul(variant: Matmul, m: usize, n: usize, k: usize, seed: u64) {
    run_matmul_on(&gpu(), variant, m, n, k, seed);
}

fn run_matmul_on(gpu: &wgpu_mlp::Gpu, variant: Matmul, m: usize, n: usize, k: usize, seed: u64) {
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
            gpu,
            "matmul test",
            MatmulShape { m, n, k },
            &a,
            &b,
            &bias_buffer,
            &aux_buffer,
            &c,
        )
        .unwrap();
    Dispatch::run_all(gpu, &[&dispatch]).unwrap();
    let got = gpu.read_f32(&c, m * n).unwrap();
    assert_close(
        &format!("{variant:?} m={m} n={n} k={k}"),
        &got,
        want.as_standard_layout().as_slice().unwrap(),
        MATMUL_ATOL,
        MATMUL_RTOL,
    );
}

/// Every matmul kernel: the ones CPU adapters get and the one GPUs get.
const STRATEGIES: [MatmulStrategy; 3] = [
    MatmulStrategy::RegisterBlocked,
    MatmulStrategy::Shuffled,
    MatmulStrategy::Tiled,
];

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
fn matmul_shuffled_matches_ndarray_in_every_layout() {
    all_layouts(MatmulStrategy::Shuffled);
}

#[test]
fn matmul_tiled_matches_ndarray_in_every_layout() {
    all_layouts(MatmulStrategy::Tiled);
}

#[test]
fn matmul_every_tile_shape_matches_ndarray() {
    // The tile is chosen per shape; every tile the shader accepts must give the same product,
    // including rectangular blocks, several rows of invocations, and blocks larger than C.
    let tiles = [
        (1, 1, 1, 1),
        (8, 1, 16, 16),
        (8, 1, 16, 2),
        (8, 2, 8, 16),
        (8, 4, 3, 5),
        (4, 8, 16, 1),
        (16, 16, 4, 4),
    ];
    let register = tiles.map(|(wg_x, wg_y, block_m, block_n)| MatmulTile {
        wg_x,
        wg_y,
        block_m,
        block_n,
    });
    // One row of invocations: as many as a subgroup, half, twice, or one alone.
    let shuffled = [
        (8, 32, 8),
        (8, 32, 2),
        (8, 5, 3),
        (4, 7, 8),
        (16, 32, 8),
        (1, 3, 1),
    ]
    .map(|(wg_x, block_m, block_n)| MatmulTile {
        wg_x,
        wg_y: 1,
        block_m,
        block_n,
    });
    for (strategy, tiles) in [
        (MatmulStrategy::RegisterBlocked, &register[..]),
        (MatmulStrategy::Shuffled, &shuffled[..]),
        (MatmulStrategy::Tiled, &MatmulTile::SHARED_TILES[..]),
    ] {
        for &tile in tiles {
            for variant in [Matmul::NN, Matmul::NT, Matmul::TN] {
                // Smaller than a tile, ragged edges, and several tiles with a k remainder.
                for (m, n, k) in [(1, 1, 1), (10, 37, 65), (65, 10, 7), (130, 131, 37)] {
                    run_matmul(variant.with_strategy(strategy).with_tile(tile), m, n, k, 21);
                }
            }
        }
    }
}

#[test]
fn matmul_refuses_a_block_larger_than_the_shader_holds() {
    let gpu = gpu();
    let buffer = gpu.storage_buffer("operand", 64).unwrap();
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
            .bind(
                &gpu,
                "too big",
                shape,
                &buffer,
                &buffer,
                &buffer,
                &buffer,
                &gpu.storage_buffer("c", 64).unwrap(),
            )
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("matmul tile") && error.contains("blocks 1 to 16"),
            "{error}"
        );
    }
    let c = gpu.storage_buffer("c", 64).unwrap();
    let tiled = Matmul::NN
        .with_strategy(MatmulStrategy::Tiled)
        .with_tile(MatmulTile {
            wg_x: 8,
            wg_y: 8,
            block_m: 16,
            block_n: 4,
        });
    let error = tiled
        .bind(
            &gpu, "too big", shape, &buffer, &buffer, &buffer, &buffer, &c,
        )
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
            .bind(
                &gpu, "too big", shape, &buffer, &buffer, &buffer, &buffer, &c,
            )
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
    let error = Matmul::NN
        .with_strategy(MatmulStrategy::Shuffled)
        .bind(
            &gpu,
            "no subgroups",
            MatmulShape { m: 8, n: 8, k: 1 },
            &buffer,
            &buffer,
            &buffer,
            &buffer,
            &buffer,
        )
        .unwrap_err()
        .to_string();
    assert!(error.contains("needs subgroup operations"), "{error}");
    // The other kernels still run there.
    run_matmul_on(
        &gpu,
        Matmul::NT.with_strategy(MatmulStrategy::RegisterBlocked),
        9,
        10,
        11,
        5,
    );
}

#[test]
fn matmul_large_square_1000() {
    for strategy in STRATEGIES {
        run_matmul(Matmul::NN.with_strategy(strategy), 1000, 1000, 1000, 9);
    }
}

#[test]
fn matmul_fused_epilogues_match_ndarray() {
    for strategy in STRATEGIES {
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

#[test]
fn matmul_split_over_k_matches_ndarray_with_every_layout_and_epilogue() {
    // Few output tiles and a long k: an output layer's forward product, its weight gradient,
    // and a part count that leaves a short last part.
    let shapes = [(256, 10, 1024), (10, 37, 1000), (65, 10, 200)];
    for (m, n, k) in shapes {
        let shape = MatmulShape { m, n, k };
        let tile = MatmulTile::for_shape(MatmulStrategy::Tiled, shape);
        let split = MatmulSplit::for_shape(MatmulStrategy::Tiled, tile, shape);
        assert!(
            split.is_some_and(|s| s.parts >= 2),
            "{shape:?} is not split"
        );
    }
    let epilogues = [
        Epilogue::None,
        Epilogue::BiasActivation(Activation::Sigmoid),
        Epilogue::TimesDerivative(Activation::Relu),
    ];
    for variant in [Matmul::NN, Matmul::NT, Matmul::TN] {
        for epilogue in epilogues {
            for (i, (m, n, k)) in shapes.into_iter().enumerate() {
                let variant = variant
                    .with_strategy(MatmulStrategy::Tiled)
                    .with_epilogue(epilogue);
                run_matmul(variant, m, n, k, 30 + i as u64);
            }
        }
    }
}

#[test]
fn a_split_matmul_reshaped_stays_split_within_its_parts_buffer() {
    let gpu = gpu();
    let variant = Matmul::NT.with_strategy(MatmulStrategy::Tiled);
    let (m, n, k) = (256, 10, 1024);
    let a = random_matrix(m, k, 40);
    let b = random_matrix(n, k, 41);
    let (a_buffer, b_buffer) = (upload_to(&gpu, &a), upload_to(&gpu, &b));
    let c = gpu.storage_buffer("c", m * n).unwrap();
    let mut dispatch = variant
        .bind(
            &gpu,
            "split",
            MatmulShape { m, n, k },
            &a_buffer,
            &b_buffer,
            &a_buffer,
            &a_buffer,
            &c,
        )
        .unwrap();
    // A smaller batch (more parts wanted than bound), a shorter k (fewer), and a k too short
    // to split (one part).
    for (rows, depth) in [(100, 1024), (256, 300), (37, 40)] {
        variant
            .reshape(
                &gpu,
                &mut dispatch,
                MatmulShape {
                    m: rows,
                    n,
                    k: depth,
                },
            )
            .unwrap();
        // The operands are the stored ones, read with the new shape's strides.
        let a_view = Array2::from_shape_vec(
            (rows, depth),
            a.as_slice().unwrap()[..rows * depth].to_vec(),
        )
        .unwrap();
        let b_view =
            Array2::from_shape_vec((n, depth), b.as_slice().unwrap()[..n * depth].to_vec())
                .unwrap();
        assert_close(
            &format!("split matmul reshaped to m={rows} k={depth}"),
            &run_and_read(&gpu, &dispatch, &c, rows * n),
            a_view.dot(&b_view.t()).as_slice().unwrap(),
            MATMUL_ATOL,
            MATMUL_RTOL,
        );
    }
}

#[test]
fn matmul_gives_the_same_bits_with_wgpus_bounds_checks_on() {
    // The matmul module is trusted to guard its own indices (no wgpu checks); the checked
    // build of the same kernels must agree bit for bit, ragged edges and split products included.
    let checked = common::gpu_with(|config| config.bounds_checks = true);
    let unchecked = common::gpu_with(|config| config.bounds_checks = false);
    for strategy in STRATEGIES {
        for (m, n, k) in [(65, 33, 70), (10, 37, 1000)] {
            let a = random_matrix(m, k, 50);
            let b = random_matrix(n, k, 51);
            let run = |gpu: &Gpu| {
                let (a, b) = (upload_to(gpu, &a), upload_to(gpu, &b));
                let c = gpu.storage_buffer("c", m * n).unwrap();
                let dispatch = Matmul::NT
                    .with_strategy(strategy)
                    .bind(gpu, "checks", MatmulShape { m, n, k }, &a, &b, &a, &a, &c)
                    .unwrap();
                run_and_read(gpu, &dispatch, &c, m * n)
            };
            let unchecked_product = run(&unchecked);
            assert_close(
                &format!("{strategy:?} {m}×{n}×{k}"),
                &unchecked_product,
                a.dot(&b.t()).as_slice().unwrap(),
                MATMUL_ATOL,
                MATMUL_RTOL,
            );
            assert_eq!(run(&checked), unchecked_product, "{strategy:?} {m}×{n}×{k}");
        }
    }
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
    let out = gpu.storage_buffer("out", 100).unwrap();
    let mut fits = Matmul::NN
        .bind(&gpu, "fits", shape, &big, &big, &big, &big, &out)
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

// ---- activation, elementwise, reduce, transpose -------------------------------------------------

use wgpu_mlp::gpu::kernels::KernelConfig;
use wgpu_mlp::gpu::kernels::activation::ActivationKernel;
use wgpu_mlp::gpu::kernels::elementwise::{Elementwise, Update};
use wgpu_mlp::gpu::kernels::reduce::{ColumnSum, Sum};
use wgpu_mlp::gpu::kernels::transpose::Transpose;
use wgpu_mlp::ndarray::Axis;
use wgpu_mlp::{AdapterChoice, Error, Gpu};

/// Element-wise results differ from ndarray only in the last bits of exp and tanh.
const ELEMENTWISE_ATOL: f32 = 1e-6;
const ELEMENTWISE_RTOL: f32 = 1e-5;
/// Column sums of up to 1000 values in [-1, 1), added in blocks rather than ndarray's order.
const COLUMN_SUM_ATOL: f32 = 1e-4;
const COLUMN_SUM_RTOL: f32 = 1e-5;
/// The full sum's error against an f64 sum, as a fraction of Σ|x| (the scale of any summation's
/// rounding error; the sum itself may cancel to near zero): 8 units of 2⁻²⁴, the last of which
/// the final rounding to f32 alone may take. The kernel's longest chain of f32 additions is
/// 64 + n/16,384 + 8 terms, and rounding errors of random data grow like its square root; on
/// lavapipe 4M positive values come within 2e-8 (8e-8 without the blocks of 64).
const SUM_ATOL_PER_ABS_SUM: f64 = 5e-7;
/// Probabilities of one softmax row add up to 1 within a few units of f32 rounding per term.
const SOFTMAX_ROW_SUM_ATOL_PER_COL: f32 = 2e-7;

/// (rows, cols) pairs: every listed size as rows and as columns, against a non-square partner.
fn shapes() -> Vec<(usize, usize)> {
    let mut shapes = Vec::new();
    for (i, &size) in SIZES.iter().enumerate() {
        shapes.push((size, SIZES[(i + 3) % SIZES.len()]));
        shapes.push((SIZES[(i + 5) % SIZES.len()].min(257), size));
    }
    shapes
}

fn upload_to(gpu: &Gpu, values: &Array2<f32>) -> wgpu::Buffer {
    gpu.storage_buffer_with(
        "test input",
        values.as_standard_layout().as_slice().unwrap(),
    )
    .unwrap()
}

fn upload(values: &Array2<f32>) -> wgpu::Buffer {
    upload_to(&gpu(), values)
}

/// A buffer of `capacity` values whose first ones are `values` (to test reshaping down).
fn upload_with_capacity(values: &Array2<f32>, capacity: usize) -> wgpu::Buffer {
    let gpu = gpu();
    let buffer = gpu.storage_buffer("test input", capacity).unwrap();
    let data = values.as_standard_layout();
    gpu.queue()
        .write_buffer(&buffer, 0, bytemuck::cast_slice(data.as_slice().unwrap()));
    buffer
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

fn assert_all_finite(what: &str, values: &[f32]) {
    let first = values.iter().position(|v| !v.is_finite());
    assert!(
        first.is_none(),
        "{what}: {} of {} values are not finite, the first at {first:?}",
        values.iter().filter(|v| !v.is_finite()).count(),
        values.len()
    );
}

/// `a ⊙ (da − Σ_j da_j a_j)` row-wise.
fn softmax_backward(a: &Array2<f32>, da: &Array2<f32>) -> Array2<f32> {
    let dot = (da * a).sum_axis(Axis(1)).insert_axis(Axis(1));
    a * &(da - &dot)
}

/// Runs `dispatch` on `gpu` and reads back `len` values of `out`.
fn run_and_read(gpu: &Gpu, dispatch: &Dispatch, out: &wgpu::Buffer, len: usize) -> Vec<f32> {
    Dispatch::run_all(gpu, &[dispatch]).unwrap();
    gpu.read_f32(out, len).unwrap()
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
    run_and_read(&gpu, &dispatch, &out, rows * cols)
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
                softmax_backward(&a, &da)
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
fn softmax_is_finite_and_exact_for_large_logits_and_any_row_length() {
    for (rows, cols) in [(5, 10), (3, 1), (2, 1000), (257, 3)] {
        let what = format!("softmax ±100 {rows}x{cols}");
        let mut z = random_matrix(rows, cols, 3) * 100.0;
        // The extremes in one row: −100 everywhere but the last column, +100 there, so that a
        // maximum taken over less than the whole row would overflow exp.
        z.row_mut(0).fill(-100.0);
        z[[0, cols - 1]] = 100.0;
        let got = run_activation(ActivationKernel::Forward(Activation::Softmax), &z, &z);
        assert_all_finite(&what, &got);
        let want = softmax_rows(&z);
        assert_close(
            &what,
            &got,
            want.as_slice().unwrap(),
            ELEMENTWISE_ATOL,
            ELEMENTWISE_RTOL,
        );
        let a = Array2::from_shape_vec((rows, cols), got).unwrap();
        let row_sums = a.sum_axis(Axis(1));
        assert_close(
            &format!("{what} row sums"),
            row_sums.as_slice().unwrap(),
            &vec![1.0; rows],
            SOFTMAX_ROW_SUM_ATOL_PER_COL * cols as f32,
            0.0,
        );

        let da = random_matrix(rows, cols, 11);
        let got = run_activation(ActivationKernel::Backward(Activation::Softmax), &a, &da);
        assert_all_finite(&format!("{what} backward"), &got);
        assert_close(
            &format!("{what} backward"),
            &got,
            softmax_backward(&a, &da).as_slice().unwrap(),
            ELEMENTWISE_ATOL,
            ELEMENTWISE_RTOL,
        );
    }
    // Sigmoid and tanh saturate instead of overflowing.
    let z = random_matrix(5, 10, 3) * 100.0;
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
fn elementwise_kernels_and_updates_match_ndarray() {
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
            assert_close(
                &format!("{op:?} {rows}x{cols}"),
                &run_and_read(&gpu, &dispatch, &out, rows * cols),
                want.as_slice().unwrap(),
                ELEMENTWISE_ATOL,
                ELEMENTWISE_RTOL,
            );
        }
        // y starts as b.
        let updates = [
            (Update::Axpy(0.5), &b + &(&a * 0.5)),
            (Update::Scale(-3.0), &a * -3.0),
        ];
        for (update, want) in updates {
            let y = upload(&b);
            let dispatch = update
                .bind(&gpu, "update test", rows, cols, &upload(&a), &y)
                .unwrap();
            assert_close(
                &format!("{update:?} {rows}x{cols}"),
                &run_and_read(&gpu, &dispatch, &y, rows * cols),
                want.as_slice().unwrap(),
                ELEMENTWISE_ATOL,
                ELEMENTWISE_RTOL,
            );
        }
    }
}

#[test]
fn column_sums_match_ndarray() {
    // Both kernels: one invocation per column (CPU adapters) and rows split over a workgroup
    // (GPUs), whichever this adapter picks by itself.
    for split in [true, false] {
        let gpu = common::gpu_with(|config| config.split_column_sums = split);
        for (rows, cols) in
            shapes()
                .into_iter()
                .chain([(1000, 10), (1000, 1000), (1, 1), (7, 33), (9, 65)])
        {
            let m = random_matrix(rows, cols, 4);
            let out = gpu.storage_buffer("out", cols).unwrap();
            let input = upload_to(&gpu, &m);
            let dispatch =
                ColumnSum::bind(&gpu, "column sum test", rows, cols, &input, &out).unwrap();
            assert_close(
                &format!("column sums {rows}x{cols}, split {split}"),
                &run_and_read(&gpu, &dispatch, &out, cols),
                m.sum_axis(Axis(0)).as_slice().unwrap(),
                COLUMN_SUM_ATOL,
                COLUMN_SUM_RTOL,
            );
        }
    }
}

#[test]
fn full_sum_of_millions_matches_f64_and_is_deterministic() {
    let gpu = gpu();
    for len in [1, 7, 255, 256, 257, 300_001, 4_194_311] {
        let signed = random_matrix(1, len, 5);
        // All positive: nothing cancels, so every rounding error adds up.
        let positive = signed.mapv(f32::abs);
        for (data, v) in [("signed", signed), ("positive", positive)] {
            let what = format!("sum of {len} {data}");
            let out = gpu.storage_buffer("out", 1).unwrap();
            let dispatch = Sum::bind(&gpu, "sum test", len, &upload(&v), &out).unwrap();
            let got = run_and_read(&gpu, &dispatch, &out, 1)[0];
            let exact: f64 = v.iter().map(|&x| f64::from(x)).sum();
            let abs_sum: f64 = v.iter().map(|&x| f64::from(x).abs()).sum();
            let error = (f64::from(got) - exact).abs();
            assert!(
                error <= SUM_ATOL_PER_ABS_SUM * abs_sum,
                "{what}: got {got}, exact {exact}, error {error:e} = {:e}·Σ|x|",
                error / abs_sum
            );
            let again = run_and_read(&gpu, &dispatch, &out, 1)[0];
            assert_eq!(got.to_bits(), again.to_bits(), "{what}, twice");
        }
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
        let want = m.t().as_standard_layout().to_owned();
        assert_close(
            &format!("transpose {rows}x{cols}"),
            &run_and_read(&gpu, &dispatch, &out, rows * cols),
            want.as_slice().unwrap(),
            0.0,
            0.0,
        );
    }
}

#[test]
fn reshape_points_a_dispatch_at_a_smaller_shape_and_refuses_a_larger_one() {
    let gpu = gpu();
    let capacity = (65, 70);
    let (rows, cols) = (7, 63);
    let len = capacity.0 * capacity.1;
    let m = random_matrix(rows, cols, 8);
    let input = upload_with_capacity(&m, len);
    let out = gpu.storage_buffer("out", len).unwrap();
    let too_big = |error: Error| {
        let message = error.to_string();
        assert!(
            matches!(error, Error::Invalid { .. }) && message.contains("holds"),
            "{message}"
        );
    };

    let mut column_sum =
        ColumnSum::bind(&gpu, "column sum", capacity.0, capacity.1, &input, &out).unwrap();
    ColumnSum::reshape(&gpu, &mut column_sum, rows, cols).unwrap();
    assert_close(
        "column sums reshaped",
        &run_and_read(&gpu, &column_sum, &out, cols),
        m.sum_axis(Axis(0)).as_slice().unwrap(),
        COLUMN_SUM_ATOL,
        COLUMN_SUM_RTOL,
    );
    too_big(ColumnSum::reshape(&gpu, &mut column_sum, capacity.0 + 1, capacity.1).unwrap_err());

    let mut sum = Sum::bind(&gpu, "sum", len, &input, &out).unwrap();
    Sum::reshape(&gpu, &mut sum, rows * cols).unwrap();
    assert_close(
        "sum reshaped",
        &run_and_read(&gpu, &sum, &out, 1),
        &[m.sum()],
        COLUMN_SUM_ATOL,
        COLUMN_SUM_RTOL,
    );
    too_big(Sum::reshape(&gpu, &mut sum, len + 1).unwrap_err());

    let mut transpose =
        Transpose::bind(&gpu, "transpose", capacity.0, capacity.1, &input, &out).unwrap();
    Transpose::reshape(&gpu, &mut transpose, rows, cols).unwrap();
    assert_close(
        "transpose reshaped",
        &run_and_read(&gpu, &transpose, &out, rows * cols),
        m.t().as_standard_layout().as_slice().unwrap(),
        0.0,
        0.0,
    );
    too_big(Transpose::reshape(&gpu, &mut transpose, capacity.0, capacity.1 + 1).unwrap_err());

    let softmax = ActivationKernel::Forward(Activation::Softmax);
    let mut activation = softmax
        .bind(
            &gpu, "softmax", capacity.0, capacity.1, &input, &input, &out,
        )
        .unwrap();
    softmax.reshape(&gpu, &mut activation, rows, cols).unwrap();
    assert_close(
        "softmax reshaped",
        &run_and_read(&gpu, &activation, &out, rows * cols),
        softmax_rows(&m).as_slice().unwrap(),
        ELEMENTWISE_ATOL,
        ELEMENTWISE_RTOL,
    );
    too_big(
        softmax
            .reshape(&gpu, &mut activation, len + 1, 1)
            .unwrap_err(),
    );

    // A new alpha as well as a new shape.
    let y = upload_with_capacity(&m, len);
    let mut update = Update::Axpy(1.0)
        .bind(&gpu, "axpy", capacity.0, capacity.1, &input, &y)
        .unwrap();
    Update::Axpy(2.0)
        .reshape(&gpu, &mut update, rows, cols)
        .unwrap();
    assert_close(
        "axpy reshaped",
        &run_and_read(&gpu, &update, &y, rows * cols),
        (&m * 3.0).as_slice().unwrap(),
        ELEMENTWISE_ATOL,
        ELEMENTWISE_RTOL,
    );
    too_big(
        Update::Axpy(2.0)
            .reshape(&gpu, &mut update, capacity.0 + 1, capacity.1)
            .unwrap_err(),
    );

    // A dispatch of another kernel is refused rather than misread.
    let error = Elementwise::Hadamard
        .reshape(&gpu, &mut update, rows, cols)
        .unwrap_err();
    assert!(error.to_string().contains("not bound by"), "{error}");
}

#[test]
fn zero_sizes_short_buffers_and_aliased_outputs_are_refused_before_running() {
    let gpu = gpu();
    let ten = gpu.storage_buffer("ten", 10).unwrap();
    let other = gpu.storage_buffer("other ten", 10).unwrap();
    let out = gpu.storage_buffer("out ten", 10).unwrap();
    let three = gpu.storage_buffer("three", 3).unwrap();
    let refused = |result: Result<Dispatch, Error>, needle: &str| match result {
        Err(error @ Error::Invalid { .. }) => {
            assert!(error.to_string().contains(needle), "{needle}: {error}")
        }
        other => panic!("{needle}: expected Error::Invalid, got {other:?}"),
    };
    let softmax = Activation::Softmax;

    // Empty shapes, and shapes past 32-bit indexing.
    for (rows, cols) in [(0, 5), (5, 0), (0, 0), (1 << 16, 1 << 16)] {
        let why = if rows * cols == 0 {
            "at least 1"
        } else {
            "below 2³²"
        };
        refused(
            Elementwise::Hadamard.bind(&gpu, "t", rows, cols, &ten, &other, &out),
            why,
        );
        refused(
            Update::Axpy(1.0).bind(&gpu, "t", rows, cols, &ten, &out),
            why,
        );
        refused(
            ActivationKernel::Forward(Activation::Relu)
                .bind(&gpu, "t", rows, cols, &ten, &other, &out),
            why,
        );
        refused(
            ActivationKernel::Backward(softmax).bind(&gpu, "t", rows, cols, &ten, &other, &out),
            why,
        );
        refused(ColumnSum::bind(&gpu, "t", rows, cols, &ten, &out), why);
        refused(Transpose::bind(&gpu, "t", rows, cols, &ten, &out), why);
    }
    refused(Sum::bind(&gpu, "t", 0, &ten, &out), "at least 1");

    // Buffers shorter than the shape: 3×4 = 12 values (48 bytes) in buffers of 10 or 3.
    refused(
        Elementwise::Hadamard.bind(&gpu, "t", 3, 4, &ten, &other, &out),
        "first holds 40 bytes but the shape needs 48",
    );
    refused(
        Elementwise::BiasAdd.bind(&gpu, "t", 2, 5, &ten, &three, &out),
        "second holds 12 bytes but the shape needs 20",
    );
    assert!(
        Elementwise::BiasAdd
            .bind(&gpu, "t", 3, 3, &ten, &three, &out)
            .is_ok(),
        "a bias of cols values is enough"
    );
    refused(
        Update::Scale(2.0).bind(&gpu, "t", 2, 5, &ten, &three),
        "y holds 12 bytes but the shape needs 40",
    );
    refused(
        ActivationKernel::Backward(Activation::Sigmoid).bind(&gpu, "t", 2, 5, &ten, &three, &out),
        "second holds 12 bytes",
    );
    assert!(
        ActivationKernel::Forward(softmax)
            .bind(&gpu, "t", 2, 5, &ten, &three, &out)
            .is_ok(),
        "forward never reads second"
    );
    refused(
        ColumnSum::bind(&gpu, "t", 2, 5, &ten, &three),
        "output holds 12 bytes but the shape needs 20",
    );
    refused(Sum::bind(&gpu, "t", 11, &ten, &out), "input holds 40 bytes");
    refused(Transpose::bind(&gpu, "t", 1, 11, &ten, &out), "input holds");

    // One buffer as an input and the output: wgpu would fail only at submission, for good.
    refused(
        Elementwise::Axpy(1.0).bind(&gpu, "t", 2, 5, &ten, &out, &out),
        "bound both as an output and as another operand",
    );
    refused(
        ActivationKernel::Forward(softmax).bind(&gpu, "t", 2, 5, &ten, &ten, &ten),
        "bound both as an output and as another operand",
    );
    refused(
        Update::Axpy(1.0).bind(&gpu, "t", 2, 5, &ten, &ten),
        "bound both as an output and as another operand",
    );
    refused(
        ColumnSum::bind(&gpu, "t", 2, 5, &ten, &ten),
        "bound both as an output and as another operand",
    );
    refused(
        Sum::bind(&gpu, "t", 10, &ten, &ten),
        "bound both as an output and as another operand",
    );
    refused(
        Transpose::bind(&gpu, "t", 2, 5, &ten, &ten),
        "bound both as an output and as another operand",
    );

    // And the context still works.
    let dispatch = Update::Scale(2.0)
        .bind(&gpu, "after refusals", 2, 5, &ten, &out)
        .unwrap();
    assert_eq!(run_and_read(&gpu, &dispatch, &out, 10), vec![0.0; 10]);
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
    let want = &a * &b;
    assert_close(
        "folded hadamard",
        &run_and_read(&gpu, &dispatch, &out, rows * cols),
        want.as_slice().unwrap(),
        0.0,
        1e-7,
    );
}

/// Workgroups per dimension on [`few_workgroups_gpu`]: small enough that a few thousand
/// invocations need a folded grid.
const FEW_WORKGROUPS: u32 = 8;

/// The test adapter again, opened with at most [`FEW_WORKGROUPS`] workgroups per dimension.
fn few_workgroups_gpu() -> Gpu {
    let name = gpu().adapter_info().name.clone();
    Gpu::with_limits(AdapterChoice::Name(name), |limits| {
        limits.max_compute_workgroups_per_dimension = FEW_WORKGROUPS
    })
    .unwrap()
}

#[test]
fn every_one_dimensional_kernel_folds_its_grid_and_refuses_one_past_the_fold() {
    let gpu = few_workgroups_gpu();
    assert_eq!(gpu.config().max_workgroups_per_dimension, FEW_WORKGROUPS);
    let per_row = (FEW_WORKGROUPS * gpu.config().workgroup_size) as usize;
    // More invocations than one row of workgroups holds, fewer than the folded square.
    let (rows, cols) = (per_row + 37, 3);
    let m = random_matrix(rows, cols, 9);
    let n = random_matrix(rows, cols, 10);
    let (input, second) = (upload_to(&gpu, &m), upload_to(&gpu, &n));
    let out = gpu.storage_buffer("out", rows * cols).unwrap();

    let hadamard = Elementwise::Hadamard
        .bind(&gpu, "folded", rows, cols, &input, &second, &out)
        .unwrap();
    assert_close(
        "folded hadamard",
        &run_and_read(&gpu, &hadamard, &out, rows * cols),
        (&m * &n).as_slice().unwrap(),
        0.0,
        0.0,
    );
    // Softmax runs one invocation per row: `rows` alone needs the fold.
    let softmax = ActivationKernel::Forward(Activation::Softmax)
        .bind(&gpu, "folded", rows, cols, &input, &second, &out)
        .unwrap();
    assert_close(
        "folded softmax",
        &run_and_read(&gpu, &softmax, &out, rows * cols),
        softmax_rows(&m).as_slice().unwrap(),
        ELEMENTWISE_ATOL,
        ELEMENTWISE_RTOL,
    );
    let transpose = Transpose::bind(&gpu, "folded", rows, cols, &input, &out).unwrap();
    assert_close(
        "folded transpose",
        &run_and_read(&gpu, &transpose, &out, rows * cols),
        m.t().as_standard_layout().as_slice().unwrap(),
        0.0,
        0.0,
    );
    // Column sums size their grid by columns, and the split kernel GPUs get sums fewer columns
    // per workgroup: a matrix wider than one row of its workgroups needs the fold, with either.
    let split = common::gpu_with(|config| {
        config.split_column_sums = !gpu.config().split_column_sums;
        config.max_workgroups_per_dimension = FEW_WORKGROUPS;
    });
    for gpu in [&gpu, &split] {
        let wide_cols = (FEW_WORKGROUPS * ColumnSum::columns_per_workgroup(gpu)) as usize + 37;
        let wide = random_matrix(cols, wide_cols, 11);
        let (wide_input, sums) = (
            upload_to(gpu, &wide),
            gpu.storage_buffer("sums", wide_cols).unwrap(),
        );
        let column_sum =
            ColumnSum::bind(gpu, "folded", cols, wide_cols, &wide_input, &sums).unwrap();
        assert_close(
            "folded column sums",
            &run_and_read(gpu, &column_sum, &sums, wide_cols),
            wide.sum_axis(Axis(0)).as_slice().unwrap(),
            COLUMN_SUM_ATOL,
            COLUMN_SUM_RTOL,
        );
    }

    // Past FEW_WORKGROUPS² workgroups even the fold cannot cover: refused, not truncated.
    let past = per_row * FEW_WORKGROUPS as usize + 1;
    let big = gpu.storage_buffer("big", past).unwrap();
    let big_out = gpu.storage_buffer("big out", past).unwrap();
    let error = Update::Scale(1.0)
        .bind(&gpu, "past the fold", past, 1, &big, &big_out)
        .unwrap_err();
    assert!(
        matches!(error, Error::Invalid { .. }) && error.to_string().contains("per dimension"),
        "{error}"
    );
}

#[test]
fn a_matmul_writing_one_of_its_operands_is_refused_and_the_device_stays_usable() {
    let gpu = gpu();
    let buffer = gpu.storage_buffer("shared", 64).unwrap();
    let other = gpu.storage_buffer("other", 64).unwrap();
    let shape = MatmulShape { m: 4, n: 4, k: 4 };
    let error = Matmul::NN
        .bind(
            &gpu, "aliased", shape, &buffer, &other, &other, &other, &buffer,
        )
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("bound both as an output and as another operand"),
        "{error}"
    );
    // Reading the same buffer twice is fine, and the device took no harm.
    let fine = Matmul::NN
        .bind(&gpu, "fine", shape, &other, &other, &other, &other, &buffer)
        .unwrap();
    Dispatch::run_all(&gpu, &[&fine]).unwrap();
}
