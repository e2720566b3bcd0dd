//! The fast engine's matrix products: row-major f32 slices handed to faer, whose kernels pick
//! the widest SIMD the CPU has at run time (AVX-512, AVX2/FMA, NEON, wasm's simd128).

use faer::{Accum, MatMut, MatRef, Par};

/// Products of at least this many multiply-adds are split over the cores; smaller ones run on
/// one thread, where waking the others costs more than they save (measured in BENCHMARKS.md).
#[cfg(not(target_arch = "wasm32"))]
const PARALLEL_MULTIPLY_ADDS: usize = 1 << 24;

/// `(rows, cols)` row-major `values` as a matrix.
pub(super) fn matrix(values: &[f32], (rows, cols): (usize, usize)) -> MatRef<'_, f32> {
    MatRef::from_row_major_slice(&values[..rows * cols], rows, cols)
}

/// `out ← lhs · rhs`, or `out ← out + lhs · rhs` when `accumulate`; `out` is `(rows, cols)`
/// row-major.
pub(super) fn product(
    out: &mut [f32],
    (rows, cols): (usize, usize),
    lhs: MatRef<'_, f32>,
    rhs: MatRef<'_, f32>,
    accumulate: bool,
) {
    let out = MatMut::from_row_major_slice_mut(&mut out[..rows * cols], rows, cols);
    let accum = match accumulate {
        true => Accum::Add,
        false => Accum::Replace,
    };
    faer::linalg::matmul::matmul(
        out,
        accum,
        lhs,
        rhs,
        1.0,
        parallelism(rows * cols * lhs.ncols()),
    );
}

/// One thread below [`PARALLEL_MULTIPLY_ADDS`] (and always on wasm32), every core above.
fn parallelism(multiply_adds: usize) -> Par {
    #[cfg(not(target_arch = "wasm32"))]
    if multiply_adds >= PARALLEL_MULTIPLY_ADDS {
        return Par::rayon(0);
    }
    #[cfg(target_arch = "wasm32")]
    let _ = multiply_adds;
    Par::Seq
}

/// Clears the upper halves of the vector registers, which faer's AVX-512 kernels and glibc's
/// `memset` and `memcpy` leave dirty: until then every SSE instruction (the crate's element-wise
/// loops and libm's `expf`) stalls on a state transition. Called before each element-wise pass.
pub(super) fn clear_upper_registers() {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: `vzeroupper` exists wherever AVX does, and no vector value is live across it.
        unsafe { std::arch::asm!("vzeroupper", options(nomem, nostack, preserves_flags)) };
    }
}
