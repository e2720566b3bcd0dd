//! Helpers shared by the integration tests: the GPU context, seeded data, and closeness checks
//! that report the worst difference and the first mismatches against a stated tolerance.
#![allow(dead_code)]

use std::sync::OnceLock;

use wgpu_mlp::ndarray::{Array2, ArrayView2};
use wgpu_mlp::rng::Rng;
use wgpu_mlp::{AdapterChoice, Gpu};

/// The GPU every test runs on: `WGPU_MLP_ADAPTER` (auto, software or a name) or auto. With no
/// adapter at all this fails the test, never skips it.
pub fn gpu() -> Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        let choice: AdapterChoice = std::env::var("WGPU_MLP_ADAPTER")
            .unwrap_or_else(|_| "auto".into())
            .parse()
            .unwrap();
        let gpu = Gpu::new(choice).unwrap_or_else(|e| panic!("GPU tests need an adapter: {e}"));
        eprintln!("tests run on adapter: {}", gpu.adapter_description());
        gpu
    })
    .clone()
}

/// A `(rows, cols)` matrix of uniform values in [-1, 1), fixed by `seed`.
pub fn random_matrix(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut rng = Rng::new(seed);
    Array2::from_shape_simple_fn((rows, cols), || rng.uniform(-1.0, 1.0) as f32)
}

/// One-hot rows: row r has a 1 in column (r·7 + seed) mod cols.
pub fn one_hot(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut rng = Rng::new(seed);
    let mut y = Array2::zeros((rows, cols));
    for r in 0..rows {
        y[[r, rng.below(cols as u64) as usize]] = 1.0;
    }
    y
}

/// Targets in (0, 1) for MSE and binary cross-entropy.
pub fn targets01(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut rng = Rng::new(seed);
    Array2::from_shape_simple_fn((rows, cols), || rng.uniform(0.05, 0.95) as f32)
}

/// `|got − want| ≤ atol + rtol·|want|` for every element; panics with the worst difference and the
/// first mismatches otherwise. Returns the worst absolute difference.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) -> f32 {
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: {} values, expected {}",
        got.len(),
        want.len()
    );
    let mut worst = 0.0f32;
    let mut mismatches = Vec::new();
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let diff = (g - w).abs();
        if !(diff <= atol + rtol * w.abs()) {
            mismatches.push(format!("[{i}] got {g} want {w} (diff {diff:e})"));
        }
        if diff > worst || diff.is_nan() {
            worst = diff;
        }
    }
    assert!(
        mismatches.is_empty(),
        "{what}: {} of {} values outside atol {atol:e} + rtol {rtol:e}; worst diff {worst:e}; first: {}",
        mismatches.len(),
        got.len(),
        mismatches
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    );
    worst
}

/// [`assert_close`] for matrices.
pub fn assert_close2(
    what: &str,
    got: ArrayView2<f32>,
    want: ArrayView2<f32>,
    atol: f32,
    rtol: f32,
) -> f32 {
    assert_eq!(got.dim(), want.dim(), "{what}: shape");
    let g: Vec<f32> = got.iter().copied().collect();
    let w: Vec<f32> = want.iter().copied().collect();
    assert_close(what, &g, &w, atol, rtol)
}
