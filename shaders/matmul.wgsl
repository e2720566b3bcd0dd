// matmul.wgsl — C[m, n] = op(A) · op(B), with an optional fused epilogue.
//
// op(A) is A [m, k] or, transposed, A stored as [k, m]; likewise op(B) is B [k, n] or, transposed,
// B stored as [n, k]. The three products backprop needs are then
// index variants of one kernel and no transpose is ever copied:
//   forward   z  = a_prev · Wᵀ         (B transposed)  epilogue: + bias, then g
//   backward  δp = δ · W               (plain)         epilogue: ⊙ g'(a_prev)
//   gradient  dW = δᵀ · a_prev         (A transposed)
//
// Two strategies, picked per adapter by KernelConfig (src/gpu/kernels/mod.rs):
//   matmul_tiled     shared-memory tiles and barriers; for GPUs.
//   matmul_register  register blocks read straight from memory, no barrier; for CPU adapters,
//                    where a barrier costs a context switch of every invocation.
// Both give each invocation a register block of C. matmul_register's block (MM_BLOCK_M ×
// MM_BLOCK_N) and workgroup (MM_WG_X × MM_WG_Y) are pipeline-overridable, so that each product
// gets the tile its shape wants (MatmulTile in src/gpu/kernels/matmul.rs); loops over them have
// constant bounds once the pipeline is created and unroll. matmul_tiled's shape is fixed below.
// MM_TILE_K comes from the generated header.

const EPILOGUE_NONE: u32 = 0u;
const EPILOGUE_BIAS_ACTIVATION: u32 = 1u;   // c = g(c + bias[col])
const EPILOGUE_TIMES_DERIVATIVE: u32 = 2u;  // c = c * g'(aux[row, col])

override MM_WG_X: u32 = 8u;
override MM_WG_Y: u32 = 8u;
override MM_BLOCK_M: u32 = 4u;
override MM_BLOCK_N: u32 = 4u;

// The register arrays are sized for the largest block; a smaller one uses a prefix of them.
// (Measured: arrays declared any larger keep the accumulators in memory even for a small block,
// at a sixth of the speed; blocks smaller than the arrays lose too, so CPU adapters use 16×16.)
const MM_MAX_BLOCK: u32 = 16u;

// The block of C one workgroup computes: TILE_M rows by TILE_N columns.
override TILE_M: u32 = MM_WG_Y * MM_BLOCK_M;
override TILE_N: u32 = MM_WG_X * MM_BLOCK_N;

// The layout and the epilogue are run-time parameters, not pipeline constants: then one
// pipeline per tile serves every product of a network, and a CPU adapter, which spends 0.7 s of
// compile on each 16×16-block pipeline, starts in a fraction of the time.
struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    // MM_BLOCK_M × MM_BLOCK_N, at run time so that matmul_register's epilogue loop is not
    // unrolled (see there).
    block_elements: u32,
    // op(A)[row, i] = a[row · a_row_stride + i · a_k_stride]: (k, 1), or (1, m) transposed.
    a_row_stride: u32,
    a_k_stride: u32,
    // op(B)[i, col] = b[i · b_k_stride + col · b_col_stride]: (n, 1), or (1, k) transposed.
    b_k_stride: u32,
    b_col_stride: u32,
    epilogue: u32,
    activation: u32,
    transpose_a: u32,
    transpose_b: u32,
}

@group(0) @binding(0) var<uniform> params: MatmulParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> aux: array<f32>;
@group(0) @binding(5) var<storage, read_write> c: array<f32>;

// op(A)[row, i], for row < m and i < k.
fn load_a(row: u32, i: u32) -> f32 {
    return a[row * params.a_row_stride + i * params.a_k_stride];
}

// op(B)[i, col], for i < k and col < n.
fn load_b(i: u32, col: u32) -> f32 {
    return b[i * params.b_k_stride + col * params.b_col_stride];
}

fn store_c(row: u32, col: u32, value: f32) {
    let index = row * params.n + col;
    var result = value;
    if params.epilogue == EPILOGUE_BIAS_ACTIVATION {
        result = activate(params.activation, value + bias[col]);
    } else if params.epilogue == EPILOGUE_TIMES_DERIVATIVE {
        result = value * activation_derivative(params.activation, aux[index]);
    }
    c[index] = result;
}

// ---- register-blocked, barrier-free ----
//
// A workgroup computes a TILE_M × TILE_N block of C; invocation (x, y) owns rows y + r·MM_WG_Y
// and columns x + s·MM_WG_X of it, so that neighbouring invocations (the SIMD lanes of a CPU
// adapter) touch neighbouring columns. Out-of-range rows and columns are clamped
// for loading, so the inner loop has no branch, and skipped when storing. On a CPU adapter the
// larger the block the better the per-invocation overhead is amortised (see KernelConfig).

@compute @workgroup_size(MM_WG_X, MM_WG_Y)
fn matmul_register(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(local_invocation_id) local: vec3<u32>,
) {
    // With one row of invocations, the rows come from the workgroup id alone, and the compiler
    // can see that every lane loads the same element of A.
    var row0 = group.y * TILE_M;
    if MM_WG_Y > 1u {
        row0 += local.y;
    }
    let col0 = group.x * TILE_N + local.x;
    if row0 >= params.m || col0 >= params.n {
        return;
    }
    var rows: array<u32, MM_MAX_BLOCK>;
    var cols: array<u32, MM_MAX_BLOCK>;
    for (var r = 0u; r < MM_BLOCK_M; r++) {
        rows[r] = min(row0 + r * MM_WG_Y, params.m - 1u);
    }
    for (var s = 0u; s < MM_BLOCK_N; s++) {
        cols[s] = min(col0 + s * MM_WG_X, params.n - 1u);
    }
    var acc: array<array<f32, MM_MAX_BLOCK>, MM_MAX_BLOCK>;
    var a_reg: array<f32, MM_MAX_BLOCK>;
    var b_reg: array<f32, MM_MAX_BLOCK>;
    for (var i = 0u; i < params.k; i++) {
        for (var r = 0u; r < MM_BLOCK_M; r++) {
            a_reg[r] = load_a(rows[r], i);
        }
        for (var s = 0u; s < MM_BLOCK_N; s++) {
            b_reg[s] = load_b(i, cols[s]);
        }
        for (var r = 0u; r < MM_BLOCK_M; r++) {
            for (var s = 0u; s < MM_BLOCK_N; s++) {
                acc[r][s] = fma(a_reg[r], b_reg[s], acc[r][s]);
            }
        }
    }
    // The block goes out raw, and the epilogue then rewrites it in place in a loop whose bound
    // comes at run time. Unrolled 256 times, inlined activations and lane-by-lane loads of bias
    // and aux cost lavapipe 2 s of compile per pipeline; the extra pass over the block is
    // nothing beside the k loop. (Indexing a copy of the accumulators instead compiles to a
    // 256-way branch tree: slower still.)
    for (var r = 0u; r < MM_BLOCK_M; r++) {
        for (var s = 0u; s < MM_BLOCK_N; s++) {
            let row = row0 + r * MM_WG_Y;
            let col = col0 + s * MM_WG_X;
            if row < params.m && col < params.n {
                c[row * params.n + col] = acc[r][s];
            }
        }
    }
    if params.epilogue != EPILOGUE_NONE {
        for (var e = 0u; e < params.block_elements; e++) {
            let row = row0 + (e / MM_BLOCK_N) * MM_WG_Y;
            let col = col0 + (e % MM_BLOCK_N) * MM_WG_X;
            if row < params.m && col < params.n {
                store_c(row, col, c[row * params.n + col]);
            }
        }
    }
}

// ---- shared-memory tiles ---------------------------------------------------------------------
//
// A workgroup of TILED_WG × TILED_WG invocations computes a TILED_TILE × TILED_TILE block of C,
// walking k in steps of MM_TILE_K. Invocation (tx, ty) owns rows ty + r·TILED_WG and columns
// tx + s·TILED_WG, so that neighbouring invocations read neighbouring shared-memory words and
// write neighbouring columns. The shape is fixed at compile time (MatmulTile::GPU on the host):
// sizing the shared arrays and loops by override constants ran this kernel 3× slower on
// lavapipe, and a GPU compiler deserves the same constants.

const TILED_WG: u32 = 16u;
const TILED_BLOCK: u32 = 4u;
const TILED_TILE: u32 = TILED_WG * TILED_BLOCK;
const THREADS: u32 = TILED_WG * TILED_WG;

var<workgroup> tile_a: array<f32, MM_TILE_K * TILED_TILE>; // [kk][row]
var<workgroup> tile_b: array<f32, MM_TILE_K * TILED_TILE>; // [kk][col]

@compute @workgroup_size(TILED_WG, TILED_WG)
fn matmul_tiled(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(local_invocation_id) local: vec3<u32>,
) {
    let row_base = group.y * TILED_TILE;
    let col_base = group.x * TILED_TILE;
    let thread = local.y * TILED_WG + local.x;
    var acc: array<array<f32, TILED_BLOCK>, TILED_BLOCK>;
    var a_reg: array<f32, TILED_BLOCK>;
    var b_reg: array<f32, TILED_BLOCK>;

    for (var k0 = 0u; k0 < params.k; k0 += MM_TILE_K) {
        // Cooperative loads; the index order follows the operand's memory layout so that
        // neighbouring invocations read neighbouring addresses.
        for (var e = thread; e < MM_TILE_K * TILED_TILE; e += THREADS) {
            var kk: u32;
            var r: u32;
            if params.transpose_a != 0u {
                kk = e / TILED_TILE;
                r = e % TILED_TILE;
            } else {
                kk = e % MM_TILE_K;
                r = e / MM_TILE_K;
            }
            let row = row_base + r;
            let i = k0 + kk;
            var value = 0.0;
            if row < params.m && i < params.k {
                value = load_a(row, i);
            }
            tile_a[kk * TILED_TILE + r] = value;
        }
        for (var e = thread; e < MM_TILE_K * TILED_TILE; e += THREADS) {
            var kk: u32;
            var s: u32;
            if params.transpose_b != 0u {
                kk = e % MM_TILE_K;
                s = e / MM_TILE_K;
            } else {
                kk = e / TILED_TILE;
                s = e % TILED_TILE;
            }
            let col = col_base + s;
            let i = k0 + kk;
            var value = 0.0;
            if col < params.n && i < params.k {
                value = load_b(i, col);
            }
            tile_b[kk * TILED_TILE + s] = value;
        }
        workgroupBarrier();

        for (var kk = 0u; kk < MM_TILE_K; kk++) {
            for (var r = 0u; r < TILED_BLOCK; r++) {
                a_reg[r] = tile_a[kk * TILED_TILE + local.y + r * TILED_WG];
            }
            for (var s = 0u; s < TILED_BLOCK; s++) {
                b_reg[s] = tile_b[kk * TILED_TILE + local.x + s * TILED_WG];
            }
            for (var r = 0u; r < TILED_BLOCK; r++) {
                for (var s = 0u; s < TILED_BLOCK; s++) {
                    acc[r][s] = fma(a_reg[r], b_reg[s], acc[r][s]);
                }
            }
        }
        workgroupBarrier();
    }

    for (var r = 0u; r < TILED_BLOCK; r++) {
        for (var s = 0u; s < TILED_BLOCK; s++) {
            let row = row_base + local.y + r * TILED_WG;
            let col = col_base + local.x + s * TILED_WG;
            if row < params.m && col < params.n {
                store_c(row, col, acc[r][s]);
            }
        }
    }
}
