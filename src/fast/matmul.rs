//! The fast engine's matrix products: row-major f32 slices handed to faer, whose kernels pick
//! the widest SIMD the CPU has at run time (AVX-512, AVX2/FMA, NEON, wasm's simd128).

use faer::{Accum, MatMut, MatRef, Par};

/// Products of at least this many multiply-adds are split over the cores; smaller ones run on
/// one thread, where waking the others costs more than they save (measured in BENCHMARKS.md).
#[cfg(not(target_arch = "wasm32"))]
const PARALLEL_MULTIPLY_ADDS: usize = 1 << 24;

/// The output's columns are split between threads at multiples of this many: whole 64-byte
/// cache lines of a row-major output, and whole AVX-512 vectors.
#[cfg(not(target_arch = "wasm32"))]
const SPLIT_COLUMNS: usize = 16;

/// `(rows, cols)` row-major `values` as a matrix.
pub(super) fn matrix(values: &[f32], (rows, cols): (usize, usize)) -> MatRef<'_, f32> {
    MatRef::from_row_major_slice(&values[..rows * cols], rows, cols)
}

/// `out ← alpha · lhs · rhs`, or `out ← out + alpha · lhs · rhs` when `accumulate`; `out` is
/// `(rows, cols)` row-major.
pub(super) fn product(
    out: &mut [f32],
    (rows, cols): (usize, usize),
    lhs: MatRef<'_, f32>,
    rhs: MatRef<'_, f32>,
    accumulate: bool,
    alpha: f32,
) {
    let out = MatMut::from_row_major_slice_mut(&mut out[..rows * cols], rows, cols);
    let accum = match accumulate {
        true => Accum::Add,
        false => Accum::Replace,
    };
    let threads = threads(rows * cols * lhs.ncols());
    split_columns(out, accum, lhs, rhs, alpha, threads);
}

/// `out ← (out +) alpha · lhs · rhs` over `threads` threads, each taking a block of the output's
/// columns and the same columns of `rhs` (the weight-shaped operand of every product the engine
/// takes) as a single-threaded product: the threads share nothing they write and meet once, at
/// the end, where faer's own split of one product meets at every block (measured in
/// BENCHMARKS.md).
fn split_columns(
    out: MatMut<'_, f32>,
    accum: Accum,
    lhs: MatRef<'_, f32>,
    rhs: MatRef<'_, f32>,
    alpha: f32,
    threads: usize,
) {
    #[cfg(not(target_arch = "wasm32"))]
    if threads > 1 && out.ncols() >= 2 * SPLIT_COLUMNS {
        let first = threads / 2;
        let at = (out.ncols() * first / threads)
            .next_multiple_of(SPLIT_COLUMNS)
            .min(out.ncols());
        let (out_left, out_right) = out.split_at_col_mut(at);
        let (rhs_left, rhs_right) = rhs.split_at_col(at);
        rayon::join(
            || split_columns(out_left, accum, lhs, rhs_left, alpha, first),
            || split_columns(out_right, accum, lhs, rhs_right, alpha, threads - first),
        );
        return;
    }
    #[cfg(target_arch = "wasm32")]
    let _ = threads;
    faer::linalg::matmul::matmul(out, accum, lhs, rhs, alpha, Par::Seq);
}

/// One thread below [`PARALLEL_MULTIPLY_ADDS`] (and always on wasm32), every core above.
pub(super) fn threads(multiply_adds: usize) -> usize {
    #[cfg(not(target_arch = "wasm32"))]
    if multiply_adds >= PARALLEL_MULTIPLY_ADDS {
        return rayon::current_num_threads();
    }
    #[cfg(target_arch = "wasm32")]
    let _ = multiply_adds;
    1
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
