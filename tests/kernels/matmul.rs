//! `shaders/matmul.wgsl` and `matmul_shuffled.wgsl`: every kernel, layout, tile, epilogue and
//! split over k against ndarray.

use crate::common::{self, assert_close, gpu, random_matrix};
use crate::expected::{LEAKY_SLOPE, activate, derivative_from_kept};
use crate::{SIZES, run_and_read, upload_to};
use wgpu_mlp::gpu::kernels::matmul::{
    Epilogue, Matmul, MatmulOperands, MatmulShape, MatmulSplit, MatmulTile,
};
use wgpu_mlp::gpu::kernels::{Dispatch, MatmulStrategy};
use wgpu_mlp::ndarray::{Array1, Array2};
use wgpu_mlp::{Activation, Gpu};

/// Matmul tolerance: f32 sums of up to 1000 products of values in [-1, 1).
const MATMUL_ATOL: f32 = 1e-4;
const MATMUL_RTOL: f32 = 1e-4;

/// An epilogue to test, without the buffer it reads: [`run_product`] makes that.
#[derive(Clone, Copy, Debug)]
pub enum EpilogueCase {
    None,
    BiasActivation(Activation),
    TimesDerivative(Activation),
}

pub fn run_matmul(variant: Matmul, m: usize, n: usize, k: usize, seed: u64) {
    run_product(
        &gpu(),
        variant,
        EpilogueCase::None,
        MatmulShape { m, n, k },
        seed,
    );
}

/// Binds `variant` with `epilogue` for `shape` on random operands from `seed`, runs it, and
/// compares `C` with the product and epilogue computed by ndarray and [`crate::expected`].
pub fn run_product(
    gpu: &Gpu,
    variant: Matmul,
    epilogue: EpilogueCase,
    shape: MatmulShape,
    seed: u64,
) {
    let MatmulShape { m, n, k } = shape;
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
    // What a layer keeps for backward (its outputs, or z for GELU and SiLU) in (0, 1), where
    // every derivative is away from its kinks.
    let activations = random_matrix(m, n, seed + 2).mapv(|v| v * 0.5 + 0.5);

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
    let want: Array2<f32> = match epilogue {
        EpilogueCase::None => product,
        EpilogueCase::BiasActivation(act) => (product + &bias).mapv(|z| activate(act, z)),
        EpilogueCase::TimesDerivative(act) => {
            product * activations.mapv(|kept| derivative_from_kept(act, kept))
        }
    };

    let upload = |label: &str, values: &[f32]| gpu.storage_buffer_with(label, values).unwrap();
    let a = upload("a", a_stored.as_standard_layout().as_slice().unwrap());
    let b = upload("b", b_stored.as_standard_layout().as_slice().unwrap());
    let bias_buffer = upload("bias", bias.as_slice().unwrap());
    let activations_buffer = upload("activations", activations.as_slice().unwrap());
    let c = gpu.storage_buffer("c", m * n).unwrap();
    let bound_epilogue = match epilogue {
        EpilogueCase::None => Epilogue::None,
        EpilogueCase::BiasActivation(activation) => Epilogue::BiasActivation {
            bias: &bias_buffer,
            activation,
            leaky_slope: LEAKY_SLOPE,
        },
        EpilogueCase::TimesDerivative(activation) => Epilogue::TimesDerivative {
            activations: &activations_buffer,
            activation,
            leaky_slope: LEAKY_SLOPE,
        },
    };
    let operands = MatmulOperands {
        a: &a,
        b: &b,
        c: &c,
    };
    let dispatch = variant
        .bind(gpu, "matmul test", shape, operands, bound_epilogue)
        .unwrap();
    Dispatch::run_all(gpu, &[&dispatch]).unwrap();
    let got = gpu.read_f32(&c, m * n).unwrap();
    assert_close(
        &format!("{variant:?} {epilogue:?} m={m} n={n} k={k}"),
        &got,
        want.as_standard_layout().as_slice().unwrap(),
        MATMUL_ATOL,
        MATMUL_RTOL,
    );
}

/// Every matmul kernel: the ones CPU adapters get and the one GPUs get.
pub const STRATEGIES: [MatmulStrategy; 3] = [
    MatmulStrategy::RegisterBlocked,
    MatmulStrategy::Shuffled,
    MatmulStrategy::Tiled,
];

/// Whether `gpu` runs `variant`'s kernel with its tile, or with the tiles it chooses.
/// Where the device cannot (the shuffled kernel without subgroups, a tile over its limits, as
/// under `WGPU_MLP_FEATURES=none` or `WGPU_MLP_LIMITS=webgpu`), asserts that binding it is
/// refused with an error naming the missing feature or the limit, and says no.
pub fn runs(gpu: &Gpu, variant: Matmul) -> bool {
    let config = gpu.config();
    let strategy = variant.strategy.unwrap_or(config.matmul);
    let tile_fits = |tile: MatmulTile| {
        config
            .check_needs(String::new, tile.needs(strategy))
            .is_ok()
    };
    let runnable = config.check_strategy(strategy).is_ok() && variant.tile.is_none_or(tile_fits);
    if runnable {
        return true;
    }
    let operand = gpu.storage_buffer("operand", 64).unwrap();
    let c = gpu.storage_buffer("c", 64).unwrap();
    let operands = MatmulOperands {
        a: &operand,
        b: &operand,
        c: &c,
    };
    let shape = MatmulShape { m: 8, n: 8, k: 8 };
    let error = variant
        .bind(gpu, "refused", shape, operands, Epilogue::None)
        .unwrap_err()
        .to_string();
    let names_why = error.contains("wgpu's SUBGROUP feature") || error.contains("(max_");
    assert!(
        error.contains("cannot run on this device") && names_why,
        "{variant:?}: {error}"
    );
    false
}

fn all_layouts(strategy: MatmulStrategy) {
    if !runs(&gpu(), Matmul::NN.with_strategy(strategy)) {
        return;
    }
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
            if !runs(&gpu(), Matmul::NN.with_strategy(strategy).with_tile(tile)) {
                continue;
            }
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
fn matmul_large_square_1000() {
    for strategy in STRATEGIES {
        if runs(&gpu(), Matmul::NN.with_strategy(strategy)) {
            run_matmul(Matmul::NN.with_strategy(strategy), 1000, 1000, 1000, 9);
        }
    }
}

#[test]
fn matmul_fused_epilogues_match_ndarray() {
    for strategy in STRATEGIES {
        if !runs(&gpu(), Matmul::NN.with_strategy(strategy)) {
            continue;
        }
        // Softmax, being row-wise, is never fused.
        for act in Activation::ALL
            .into_iter()
            .filter(|&a| a != Activation::Softmax)
        {
            // A forward product with bias and activation, a backward one with ⊙g′.
            let cases = [
                (
                    Matmul::NT,
                    EpilogueCase::BiasActivation(act),
                    (65, 33, 70),
                    1,
                ),
                (
                    Matmul::NN,
                    EpilogueCase::TimesDerivative(act),
                    (7, 130, 65),
                    2,
                ),
            ];
            for (variant, epilogue, (m, n, k), seed) in cases {
                let variant = variant.with_strategy(strategy);
                run_product(&gpu(), variant, epilogue, MatmulShape { m, n, k }, seed);
            }
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
        EpilogueCase::None,
        EpilogueCase::BiasActivation(Activation::Sigmoid),
        EpilogueCase::TimesDerivative(Activation::Relu),
    ];
    for variant in [Matmul::NN, Matmul::NT, Matmul::TN] {
        for epilogue in epilogues {
            for (i, (m, n, k)) in shapes.into_iter().enumerate() {
                let variant = variant.with_strategy(MatmulStrategy::Tiled);
                let shape = MatmulShape { m, n, k };
                run_product(&gpu(), variant, epilogue, shape, 30 + i as u64);
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
    let operands = MatmulOperands {
        a: &a_buffer,
        b: &b_buffer,
        c: &c,
    };
    let mut dispatch = variant
        .bind(
            &gpu,
            "split",
            MatmulShape { m, n, k },
            operands,
            Epilogue::None,
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
        if !runs(&unchecked, Matmul::NT.with_strategy(strategy)) {
            continue;
        }
        for (m, n, k) in [(65, 33, 70), (10, 37, 1000)] {
            let a = random_matrix(m, k, 50);
            let b = random_matrix(n, k, 51);
            let run = |gpu: &Gpu| {
                let (a, b) = (upload_to(gpu, &a), upload_to(gpu, &b));
                let c = gpu.storage_buffer("c", m * n).unwrap();
                let operands = MatmulOperands {
                    a: &a,
                    b: &b,
                    c: &c,
                };
                let shape = MatmulShape { m, n, k };
                let dispatch = Matmul::NT
                    .with_strategy(strategy)
                    .bind(gpu, "checks", shape, operands, Epilogue::None)
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
fn a_reshaped_matmul_keeps_the_epilogue_it_was_bound_with() {
    // A network binds each product once for the largest batch and reshapes it for a smaller
    // one: the bias and activation must still be applied, from the buffer bound at first.
    let gpu = gpu();
    for strategy in STRATEGIES {
        if !runs(&gpu, Matmul::NT.with_strategy(strategy)) {
            continue;
        }
        let (m, n, k) = (65, 33, 70);
        let x = random_matrix(m, k, 60);
        let w = random_matrix(n, k, 61);
        let bias = random_matrix(1, n, 62);
        let (x_buffer, w_buffer) = (upload_to(&gpu, &x), upload_to(&gpu, &w));
        let bias_buffer = upload_to(&gpu, &bias);
        let c = gpu.storage_buffer("c", m * n).unwrap();
        let variant = Matmul::NT.with_strategy(strategy);
        let operands = MatmulOperands {
            a: &x_buffer,
            b: &w_buffer,
            c: &c,
        };
        let epilogue = Epilogue::BiasActivation {
            bias: &bias_buffer,
            activation: Activation::Tanh,
            leaky_slope: 0.0,
        };
        let mut dispatch = variant
            .bind(
                &gpu,
                "reshaped epilogue",
                MatmulShape { m, n, k },
                operands,
                epilogue,
            )
            .unwrap();
        let rows = 20;
        variant
            .reshape(&gpu, &mut dispatch, MatmulShape { m: rows, n, k })
            .unwrap();
        let first_rows = x.slice(wgpu_mlp::ndarray::s![..rows, ..]);
        let want = (first_rows.dot(&w.t()) + &bias).mapv(|z| activate(Activation::Tanh, z));
        assert_close(
            &format!("{strategy:?} reshaped to {rows} rows"),
            &run_and_read(&gpu, &dispatch, &c, rows * n),
            want.as_slice().unwrap(),
            MATMUL_ATOL,
            MATMUL_RTOL,
        );
    }
}
