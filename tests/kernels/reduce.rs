//! `shaders/reduce.wgsl`: column sums (both kernels) and the full sum of a buffer.

use crate::common::{self, assert_close, gpu, random_matrix};
use crate::{COLUMN_SUM_ATOL, COLUMN_SUM_RTOL, run_and_read, shapes, upload, upload_to};
use wgpu_mlp::gpu::kernels::reduce::{ColumnSum, Sum};
use wgpu_mlp::ndarray::Axis;

/// The full sum's error against an f64 sum, as a fraction of Σ|x| (the scale of any summation's
/// rounding error; the sum itself may cancel to near zero): 8 units of 2⁻²⁴, the last of which
/// the final rounding to f32 alone may take. The kernel's longest chain of f32 additions is
/// 64 + n/16,384 + 8 terms, and rounding errors of random data grow like its square root; on
/// lavapipe 4M positive values come within 2e-8 (8e-8 without the blocks of 64).
const SUM_ATOL_PER_ABS_SUM: f64 = 5e-7;

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
