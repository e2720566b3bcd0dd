//! The fast engine's matrix products: row-major f32 slices handed to faer, whose kernels pick
//! the widest SIMD the CPU has at run time (AVX-512, AVX2/FMA, NEON, wasm's simd128).

use faer::{Accum, MatMut, MatRef, Par};

/// Products of at least this many multiply-adds are split over the cores; smaller ones run on
/// one thread, where waking the others costs more than they save (measured in BENCHMARKS.md).
#[cfg(not(target_arch = "wasm32"))]
const PARALLEL_MULTIPLY_ADDS: usize = 1 << 22;

/// The output's columns are split between threads at multiples of this many: whole 64-byte
/// cache lines of a row-major output, and whole AVX-512 vectors.
#[cfg(not(target_arch = "wasm32"))]
const SPLIT_COLUMNS: usize = 16;

/// A split product's blocks take at most this many bytes of the split operand each (the weights,
/// in the forward and δ products), so that a block's share stays in half of a core's L2 cache (2 MiB on the Xeon measured, 1 – 2
/// MiB on current x86 cores): a W2 layer's 4 MiB of weights goes in four blocks, which the
/// threads take as they come free (measured in BENCHMARKS.md).
#[cfg(not(target_arch = "wasm32"))]
const BLOCK_BYTES: usize = 1 << 20;

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
    split_columns(
        out,
        accum,
        lhs,
        rhs,
        alpha,
        blocks(rows * cols * lhs.ncols(), rhs),
    );
}

/// How many column blocks a product of `multiply_adds` with the split operand `rhs` takes: one
/// below [`PARALLEL_MULTIPLY_ADDS`] (and always on wasm32), else one per core, or more where the
/// cores' shares of `rhs` would outgrow [`BLOCK_BYTES`].
fn blocks(multiply_adds: usize, rhs: MatRef<'_, f32>) -> usize {
    let threads = threads(multiply_adds);
    #[cfg(not(target_arch = "wasm32"))]
    if threads > 1 {
        let bytes = rhs.nrows() * rhs.ncols() * size_of::<f32>();
        return threads.max(bytes.div_ceil(BLOCK_BYTES));
    }
    #[cfg(target_arch = "wasm32")]
    let _ = rhs;
    threads
}

/// `out ← (out +) alpha · lhs · rhs` in `blocks` blocks of the output's columns, each with the
/// same columns of `rhs` (the weights in the forward and δ products), run as single-threaded
/// products by whichever core is free: the cores share nothing they write and meet once, at the
/// end, where faer's own split of one product meets at every block (measured in BENCHMARKS.md).
fn split_columns(
    out: MatMut<'_, f32>,
    accum: Accum,
    lhs: MatRef<'_, f32>,
    rhs: MatRef<'_, f32>,
    alpha: f32,
    blocks: usize,
) {
    #[cfg(not(target_arch = "wasm32"))]
    if blocks > 1 && out.ncols() >= 2 * SPLIT_COLUMNS {
        let first = blocks / 2;
        let at = (out.ncols() * first / blocks)
            .next_multiple_of(SPLIT_COLUMNS)
            .min(out.ncols());
        let (out_left, out_right) = out.split_at_col_mut(at);
        let (rhs_left, rhs_right) = rhs.split_at_col(at);
        rayon::join(
            || split_columns(out_left, accum, lhs, rhs_left, alpha, first),
            || split_columns(out_right, accum, lhs, rhs_right, alpha, blocks - first),
        );
        return;
    }
    #[cfg(target_arch = "wasm32")]
    let _ = blocks;
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
