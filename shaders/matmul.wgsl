// matmul.wgsl — C[m, n] = op(A) · op(B), with an optional fused epilogue.
//
// op(A) is A [m, k] or, transposed, A stored as [k, m]; likewise op(B) is B [k, n] or, transposed,
// B stored as [n, k]. The three products backprop needs are then
// index variants of one kernel and no transpose is ever copied:
//   forward   z  = a_prev · Wᵀ         (B transposed)  epilogue: + bias, then g
//   backward  δp = δ · W               (plain)         epilogue: ⊙ g'(a_prev)
//   gradient  dW = δᵀ · a_prev         (A transposed)
//
// Two strategies here (MatmulStrategy in src/gpu/kernels/config.rs; KernelConfig picks per
// adapter), and a third, matmul_shuffled, in matmul_shuffled.wgsl for devices with subgroups:
//   matmul_tiled     shared-memory tiles of vec4s with the next slice prefetched, the tile
//                    chosen per product; what GPUs get. A product with too few tiles to fill
//                    a GPU splits k over workgroups, and matmul_sum_parts adds the parts.
//   matmul_register  register blocks read straight from memory, no barrier; for CPU adapters,
//                    where a barrier costs a context switch of every invocation.
// Each gives each invocation a register block of C. matmul_register's block (MM_BLOCK_M ×
// MM_BLOCK_N) and workgroup (MM_WG_X × MM_WG_Y) are pipeline-overridable, so that each product
// gets the tile its shape wants (MatmulTile in src/gpu/kernels/matmul/tile.rs); loops over them have
// constant bounds once the pipeline is created and unroll. matmul_tiled's shape comes from the
// TL_* constants.

const EPILOGUE_NONE: u32 = 0u;
const EPILOGUE_BIAS_ACTIVATION: u32 = 1u;   // c = g(c + bias[col])
const EPILOGUE_TIMES_DERIVATIVE: u32 = 2u;  // c = c * g'(aux[row, col]), aux = a, or z for GELU/SiLU

override MM_WG_X: u32 = 8u;
override MM_WG_Y: u32 = 8u;
override MM_BLOCK_M: u32 = 4u;
override MM_BLOCK_N: u32 = 4u;

// The register arrays are sized for the largest block; a smaller one uses a prefix of them.
// Arrays declared any larger keep the accumulators in memory even for a small block, and blocks
// smaller than the arrays lose too, so CPU adapters use 16×16 (see BENCHMARKS.md).
const MM_MAX_BLOCK: u32 = 16u;

// The register kernels store their block STORE_ROWS rows at a time, in a loop that is not
// unrolled, and move the rows below up after each pass: lavapipe turns a store to a lane-varying
// address into one scalar store per lane, so the 256 stores of a 16×16 or 32×8 block, unrolled,
// would take most of its pipeline compile, while moving the registers costs nothing beside the
// k loop (see BENCHMARKS.md).
const STORE_ROWS: u32 = 2u;

// The block of C one workgroup computes: TILE_M rows by TILE_N columns.
override TILE_M: u32 = MM_WG_Y * MM_BLOCK_M;
override TILE_N: u32 = MM_WG_X * MM_BLOCK_N;

// The layout and the epilogue are run-time parameters, not pipeline constants: then one
// pipeline per tile serves every product of a network, so a CPU adapter, slow to compile each
// 16×16-block pipeline, compiles few of them (see BENCHMARKS.md).
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
    // Split over k (matmul_tiled only; MatmulSplit on the host): workgroup z sums depths
    // [z · k_chunk, (z + 1) · k_chunk) into part z of the parts (bound at `c`), and
    // matmul_sum_parts adds the k_parts parts and applies the epilogue. Not split: k_chunk = k,
    // k_parts = 1, split = 0.
    k_chunk: u32,
    k_parts: u32,
    split: u32,
    // Leaky ReLU's negative slope, for an epilogue with that activation.
    leaky_slope: f32,
}

// Four storage buffers, the fewest a device may allow per stage (WebGPU's compatibility mode,
// wgpu's downlevel limits): the epilogue reads one operand, the bias or the kept activations, so
// the two share a binding; a split product writes its parts where C would go, and
// matmul_sum_parts reads them back through `a` (Matmul::bind binds each pass accordingly).
@group(0) @binding(0) var<uniform> params: MatmulParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;  // matmul_sum_parts: [k_parts][m][n]
@group(0) @binding(2) var<storage, read> b: array<f32>;
// The bias [n] (EPILOGUE_BIAS_ACTIVATION) or aux [m][n] (EPILOGUE_TIMES_DERIVATIVE).
@group(0) @binding(3) var<storage, read> epilogue_operand: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>; // split: [k_parts][m][n]

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
        result = activate(params.activation, value + epilogue_operand[col], params.leaky_slope);
    } else if params.epilogue == EPILOGUE_TIMES_DERIVATIVE {
        let kept = epilogue_operand[index];
        result = value * activation_derivative(params.activation, kept, params.leaky_slope);
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
    // The block goes out raw (see STORE_ROWS), and the epilogue then rewrites it in place in a
    // loop whose bound comes at run time: unrolled 256 times, inlined activations and
    // lane-by-lane loads of bias and aux would dominate lavapipe's compile of each pipeline,
    // and the extra pass over the block is nothing beside the k loop. (Indexing a copy of the
    // accumulators instead compiles to a 256-way branch tree, slower still.)
    for (var q = 0u; q < MM_BLOCK_M; q += STORE_ROWS) {
        for (var r = 0u; r < STORE_ROWS; r++) {
            for (var s = 0u; s < MM_BLOCK_N; s++) {
                let row = row0 + (q + r) * MM_WG_Y;
                let col = col0 + s * MM_WG_X;
                if q + r < MM_BLOCK_M && row < params.m && col < params.n {
                    c[row * params.n + col] = acc[r][s];
                }
            }
        }
        for (var r = 0u; r < MM_MAX_BLOCK - STORE_ROWS; r++) {
            acc[r] = acc[r + STORE_ROWS];
        }
    }
    epilogue_in_place(row0, col0, MM_WG_Y);
}

// The epilogue over a register block already stored raw: rows `row_step` apart from row0,
// columns MM_WG_X apart from col0. Shared by matmul_register and matmul_shuffled.
fn epilogue_in_place(row0: u32, col0: u32, row_step: u32) {
    if params.epilogue == EPILOGUE_NONE {
        return;
    }
    for (var e = 0u; e < params.block_elements; e++) {
        let row = row0 + (e / MM_BLOCK_N) * row_step;
        let col = col0 + (e % MM_BLOCK_N) * MM_WG_X;
        if row < params.m && col < params.n {
            store_c(row, col, c[row * params.n + col]);
        }
    }
}

// ---- shared-memory tiles of vec4s, shaped per product ----------------------------------------
//
// A workgroup of TL_WG_X × TL_WG_Y invocations computes a TL_TILE_M × TL_TILE_N block of C,
// walking k in slices of TL_TILE_K. Each invocation owns TL_GROUPS_M × TL_GROUPS_N (1 or 2 each)
// blocks of 4×4 elements: rows 4·ty … 4·ty+3 of each 4·TL_WG_Y-row band, columns 4·tx … 4·tx+3
// of each 4·TL_WG_X-column band. A step of k then reads one vec4 of the A slice and one of the B
// slice per block side from workgroup memory, neighbouring invocations reading neighbouring
// vec4s, and does 16 FMAs per block. While the invocations multiply one slice, the loads of the
// next are in flight into registers.
//
// Everything an invocation holds is a named variable, never an array indexed in a loop: a GPU
// compiler that does not unroll such a loop keeps the array in (slow, off-chip) local memory.
// The 2-group code is skipped by a branch on a pipeline constant, which the compiler removes.
//
// Each invocation moves (TL_TILE_K · TL_GROUPS_M / TL_WG_X) vec4s of A and (TL_TILE_K ·
// TL_GROUPS_N / TL_WG_Y) of B per slice, which MatmulTile::check holds to one or two.
//
// What each tile reaches, against the alternatives, is in BENCHMARKS.md.

override TL_WG_X: u32 = 16u;
override TL_WG_Y: u32 = 16u;
override TL_GROUPS_M: u32 = 2u;
override TL_GROUPS_N: u32 = 2u;
const TL_TILE_K: u32 = 16u;
// vec4s per row of a slice.
override TL_QUADS_M: u32 = TL_WG_Y * TL_GROUPS_M;
override TL_QUADS_N: u32 = TL_WG_X * TL_GROUPS_N;
override TL_THREADS: u32 = TL_WG_X * TL_WG_Y;
override TL_LOADS_A: u32 = TL_TILE_K * TL_QUADS_M / TL_THREADS;
override TL_LOADS_B: u32 = TL_TILE_K * TL_QUADS_N / TL_THREADS;
// One vec4 of padding per row, so that the slices of a k-contiguous operand, stored a k-row at
// a time by neighbouring invocations, fall in different banks.
override TL_ROW_A: u32 = TL_QUADS_M + 1u;
override TL_ROW_B: u32 = TL_QUADS_N + 1u;

// Sized for the tile in use, not the largest, so that every tile that fits the device's
// max_compute_workgroup_storage_size can run (MatmulTile::workgroup_storage mirrors this).
var<workgroup> quads_a: array<vec4<f32>, TL_TILE_K * TL_ROW_A>; // [kk][row / 4]
var<workgroup> quads_b: array<vec4<f32>, TL_TILE_K * TL_ROW_B>; // [kk][col / 4]

// Where the vec4 `e` of a slice goes: (kk, quad). Numbered along the operand's memory layout, so
// that neighbouring invocations load neighbouring words: k fastest when the operand is
// contiguous along k, the quad fastest otherwise.
fn slice_slot(e: u32, k_contiguous: bool, quads: u32) -> vec2<u32> {
    if k_contiguous {
        return vec2(e % TL_TILE_K, e / TL_TILE_K);
    }
    return vec2(e / quads, e % quads);
}

// Rows 4·quad … 4·quad+3 of op(A) at depth i, zero past the edges.
fn load_a4(row0: u32, i: u32) -> vec4<f32> {
    var v = vec4(0.0);
    if i < params.k {
        if row0 < params.m { v.x = load_a(row0, i); }
        if row0 + 1u < params.m { v.y = load_a(row0 + 1u, i); }
        if row0 + 2u < params.m { v.z = load_a(row0 + 2u, i); }
        if row0 + 3u < params.m { v.w = load_a(row0 + 3u, i); }
    }
    return v;
}

// Columns col0 … col0+3 of op(B) at depth i, zero past the edges.
fn load_b4(i: u32, col0: u32) -> vec4<f32> {
    var v = vec4(0.0);
    if i < params.k {
        if col0 < params.n { v.x = load_b(i, col0); }
        if col0 + 1u < params.n { v.y = load_b(i, col0 + 1u); }
        if col0 + 2u < params.n { v.z = load_b(i, col0 + 2u); }
        if col0 + 3u < params.n { v.w = load_b(i, col0 + 3u); }
    }
    return v;
}

// Vec4 `e` of op(A)'s slice starting at depth k0 (see slice_slot).
fn fetch_a(e: u32, k0: u32, row_base: u32) -> vec4<f32> {
    let at = slice_slot(e, params.transpose_a == 0u, TL_QUADS_M);
    return load_a4(row_base + 4u * at.y, k0 + at.x);
}

fn fetch_b(e: u32, k0: u32, col_base: u32) -> vec4<f32> {
    let at = slice_slot(e, params.transpose_b != 0u, TL_QUADS_N);
    return load_b4(k0 + at.x, col_base + 4u * at.y);
}

fn put_a(e: u32, value: vec4<f32>) {
    let at = slice_slot(e, params.transpose_a == 0u, TL_QUADS_M);
    quads_a[at.x * TL_ROW_A + at.y] = value;
}

fn put_b(e: u32, value: vec4<f32>) {
    let at = slice_slot(e, params.transpose_b != 0u, TL_QUADS_N);
    quads_b[at.x * TL_ROW_B + at.y] = value;
}

// acc + a ⊗ b, with row r of the 4×4 block in column r of the matrix.
fn outer_fma(a: vec4<f32>, b: vec4<f32>, acc: mat4x4<f32>) -> mat4x4<f32> {
    return mat4x4(
        fma(vec4(a.x), b, acc[0]),
        fma(vec4(a.y), b, acc[1]),
        fma(vec4(a.z), b, acc[2]),
        fma(vec4(a.w), b, acc[3]),
    );
}

// C[row, col], or with a split product the raw sum into its part (bound at `c`).
fn store_result(part: u32, row: u32, col: u32, value: f32) {
    if params.split != 0u {
        c[(part * params.m + row) * params.n + col] = value;
    } else {
        store_c(row, col, value);
    }
}

fn store_row(part: u32, row: u32, col0: u32, values: vec4<f32>) {
    if row < params.m {
        if col0 < params.n { store_result(part, row, col0, values.x); }
        if col0 + 1u < params.n { store_result(part, row, col0 + 1u, values.y); }
        if col0 + 2u < params.n { store_result(part, row, col0 + 2u, values.z); }
        if col0 + 3u < params.n { store_result(part, row, col0 + 3u, values.w); }
    }
}

fn store_block(part: u32, row0: u32, col0: u32, acc: mat4x4<f32>) {
    store_row(part, row0, col0, acc[0]);
    store_row(part, row0 + 1u, col0, acc[1]);
    store_row(part, row0 + 2u, col0, acc[2]);
    store_row(part, row0 + 3u, col0, acc[3]);
}

@compute @workgroup_size(TL_WG_X, TL_WG_Y)
fn matmul_tiled(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(local_invocation_id) local: vec3<u32>,
) {
    let row_base = group.y * 4u * TL_QUADS_M;
    let col_base = group.x * 4u * TL_QUADS_N;
    let thread = local.y * TL_WG_X + local.x;
    let two_a = TL_LOADS_A > 1u;
    let two_b = TL_LOADS_B > 1u;
    let e1 = thread + TL_THREADS;
    // The depths this workgroup sums: all of k, or its part of a split product. A part starts
    // on a multiple of TL_TILE_K (the host makes k_chunk one), so only the last slice of k is
    // ragged and `load_a4`/`load_b4`'s test against k is the only bound needed.
    let part = group.z;
    let k_begin = part * params.k_chunk;
    let k_end = min(k_begin + params.k_chunk, params.k);

    var acc00 = mat4x4<f32>();
    var acc01 = mat4x4<f32>();
    var acc10 = mat4x4<f32>();
    var acc11 = mat4x4<f32>();

    // The first slice's loads.
    var next_a0 = fetch_a(thread, k_begin, row_base);
    var next_a1 = vec4(0.0);
    if two_a { next_a1 = fetch_a(e1, k_begin, row_base); }
    var next_b0 = fetch_b(thread, k_begin, col_base);
    var next_b1 = vec4(0.0);
    if two_b { next_b1 = fetch_b(e1, k_begin, col_base); }

    for (var k0 = k_begin; k0 < k_end; k0 += TL_TILE_K) {
        put_a(thread, next_a0);
        if two_a { put_a(e1, next_a1); }
        put_b(thread, next_b0);
        if two_b { put_b(e1, next_b1); }
        workgroupBarrier();

        // The next slice's loads, in flight while this one is multiplied.
        let k_next = k0 + TL_TILE_K;
        if k_next < k_end {
            next_a0 = fetch_a(thread, k_next, row_base);
            if two_a { next_a1 = fetch_a(e1, k_next, row_base); }
            next_b0 = fetch_b(thread, k_next, col_base);
            if two_b { next_b1 = fetch_b(e1, k_next, col_base); }
        }

        for (var kk = 0u; kk < TL_TILE_K; kk++) {
            let a0 = quads_a[kk * TL_ROW_A + local.y];
            let b0 = quads_b[kk * TL_ROW_B + local.x];
            acc00 = outer_fma(a0, b0, acc00);
            if TL_GROUPS_N > 1u {
                let b1 = quads_b[kk * TL_ROW_B + TL_WG_X + local.x];
                acc01 = outer_fma(a0, b1, acc01);
                if TL_GROUPS_M > 1u {
                    let a1 = quads_a[kk * TL_ROW_A + TL_WG_Y + local.y];
                    acc10 = outer_fma(a1, b0, acc10);
                    acc11 = outer_fma(a1, b1, acc11);
                }
            } else if TL_GROUPS_M > 1u {
                let a1 = quads_a[kk * TL_ROW_A + TL_WG_Y + local.y];
                acc10 = outer_fma(a1, b0, acc10);
            }
        }
        workgroupBarrier();
    }

    let row0 = row_base + 4u * local.y;
    let col0 = col_base + 4u * local.x;
    store_block(part, row0, col0, acc00);
    if TL_GROUPS_N > 1u {
        store_block(part, row0, col0 + 4u * TL_WG_X, acc01);
    }
    if TL_GROUPS_M > 1u {
        store_block(part, row0 + 4u * TL_WG_Y, col0, acc10);
        if TL_GROUPS_N > 1u {
            store_block(part, row0 + 4u * TL_WG_Y, col0 + 4u * TL_WG_X, acc11);
        }
    }
}

// ---- the sum of a split product's parts ------------------------------------------------------
//
// A product with few output tiles and a long k (an output layer's 10 columns over 1024 inputs)
// would leave most of a GPU idle; matmul_tiled then sums parts of k in separate workgroups, and
// this kernel adds the parts (bound at `a`) in a fixed order (so the result is deterministic)
// and applies the epilogue. One invocation per element of C.

@compute @workgroup_size(WORKGROUP_SIZE)
fn matmul_sum_parts(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let index = flat_index(gid, groups);
    let size = params.m * params.n;
    if index >= size {
        return;
    }
    var sum = 0.0;
    for (var part = 0u; part < params.k_parts; part++) {
        sum += a[part * size + index];
    }
    store_c(index / params.n, index % params.n, sum);
}
