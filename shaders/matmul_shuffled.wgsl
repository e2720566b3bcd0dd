// matmul_shuffled.wgsl — matmul_register with A passed around the subgroup.
//
// Appended to matmul.wgsl (its parameters, bindings, load_a, load_b and epilogue_in_place) only
// for a device with subgroup operations: naga refuses a module that uses them on any other.
//
// In matmul_register every lane of a workgroup row loads the same element of A, once per depth:
// on lavapipe that is as dear as a lane-varying load (each costs many vector FMAs), and it is
// half of the loads of a 16×16 block. Here lane j of a subgroup loads depth i0 + j of each
// row, and subgroupShuffle then hands depth i0 + t to every lane in turn: one load per row per
// subgroup-size depths. With A that cheap, blocks are tall: 32 rows by at most 8 columns take
// 12 loads per depth for 256 FMAs, against 32 for matmul_register's 16×16 (BENCHMARKS.md).
//
// Every invocation of a subgroup must share its rows, so workgroups are one row of invocations
// (MM_WG_Y = 1), and none may leave early: the shuffles need every lane. MM_WG_X is a power of
// two, as subgroup sizes are, so a workgroup is whole subgroups or (on a GPU whose subgroups
// are wider than it) lanes 0 … MM_WG_X - 1 of one. The tile's constants are matmul_register's.

// The register arrays, sized for the largest block (see MM_MAX_BLOCK for why exactly).
const MS_MAX_ROWS: u32 = 32u;
const MS_MAX_COLS: u32 = 8u;

@compute @workgroup_size(MM_WG_X, MM_WG_Y)
fn matmul_shuffled(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(local_invocation_id) local: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
    @builtin(subgroup_size) subgroup_size: u32,
) {
    let lanes = min(subgroup_size, MM_WG_X);
    let row0 = group.y * TILE_M;
    let col0 = group.x * TILE_N + local.x;
    // Out-of-range rows and columns are clamped for loading and skipped when storing.
    var rows: array<u32, MS_MAX_ROWS>;
    var cols: array<u32, MS_MAX_COLS>;
    for (var r = 0u; r < MM_BLOCK_M; r++) {
        rows[r] = min(row0 + r, params.m - 1u);
    }
    for (var s = 0u; s < MM_BLOCK_N; s++) {
        cols[s] = min(col0 + s * MM_WG_X, params.n - 1u);
    }
    var acc: array<array<f32, MS_MAX_COLS>, MS_MAX_ROWS>;
    var a_own: array<f32, MS_MAX_ROWS>;
    var a_reg: array<f32, MS_MAX_ROWS>;
    var b_reg: array<f32, MS_MAX_COLS>;
    for (var i0 = 0u; i0 < params.k; i0 += lanes) {
        // This lane's depth; past the end of k it is never shuffled out.
        let own = min(i0 + lane, params.k - 1u);
        for (var r = 0u; r < MM_BLOCK_M; r++) {
            a_own[r] = load_a(rows[r], own);
        }
        let depth = min(lanes, params.k - i0);
        for (var t = 0u; t < depth; t++) {
            for (var r = 0u; r < MM_BLOCK_M; r++) {
                a_reg[r] = subgroupShuffle(a_own[r], t);
            }
            for (var s = 0u; s < MM_BLOCK_N; s++) {
                b_reg[s] = load_b(i0 + t, cols[s]);
            }
            for (var r = 0u; r < MM_BLOCK_M; r++) {
                for (var s = 0u; s < MM_BLOCK_N; s++) {
                    acc[r][s] = fma(a_reg[r], b_reg[s], acc[r][s]);
                }
            }
        }
    }
    // Out raw, STORE_ROWS rows at a time, then the epilogue in place, as in matmul_register
    // (and for the same reasons).
    for (var q = 0u; q < MM_BLOCK_M; q += STORE_ROWS) {
        for (var r = 0u; r < STORE_ROWS; r++) {
            for (var s = 0u; s < MM_BLOCK_N; s++) {
                let row = row0 + q + r;
                let col = col0 + s * MM_WG_X;
                if q + r < MM_BLOCK_M && row < params.m && col < params.n {
                    c[row * params.n + col] = acc[r][s];
                }
            }
        }
        for (var r = 0u; r < MS_MAX_ROWS - STORE_ROWS; r++) {
            acc[r] = acc[r + STORE_ROWS];
        }
    }
    epilogue_in_place(row0, col0, 1u);
}
