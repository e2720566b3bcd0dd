// reduce.wgsl — sums: the column sums of a matrix (a layer's bias gradient) and a full sum
// (the batch loss). Both are deterministic: the same input always gives the same bits.

// The layout of MatrixParams (src/gpu/kernels/mod.rs); its scalar is unused here. The full sum
// reads rows·cols values.
struct ReduceParams {
    rows: u32,
    cols: u32,
    _alpha: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: ReduceParams;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;

// Terms summed into a partial before it joins the running total: the rounding error then grows
// with count/SUM_BLOCK + SUM_BLOCK rather than with count, which matters for long sums.
const SUM_BLOCK: u32 = 64u;

// Σ_k input[start + k·stride] for k < count, in blocks of SUM_BLOCK. Counting terms instead of
// comparing an index against the length keeps every index below start + count·stride, so none
// can wrap.
fn strided_sum(start: u32, stride: u32, count: u32) -> f32 {
    var total = 0.0;
    var k = 0u;
    while k < count {
        let end = k + min(SUM_BLOCK, count - k);
        var block = 0.0;
        for (; k < end; k++) {
            block += input[start + k * stride];
        }
        total += block;
    }
    return total;
}

// output[c] = Σ_r input[r, c]. One invocation per column walking down the rows: neighbouring
// invocations read neighbouring words, and there is no barrier (which CPU adapters pay dearly for).
@compute @workgroup_size(WORKGROUP_SIZE)
fn column_sum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let col = flat_index(gid, groups);
    if col < params.cols {
        output[col] = strided_sum(col, params.cols, params.rows);
    }
}

// The same sums for GPUs, where one invocation per column leaves most of the cores idle (a
// 256×1024 bias gradient is 1,024 invocations walking 256 rows each): a workgroup takes
// SPLIT_COLS columns, and its SPLIT_ROWS rows of invocations each sum every SPLIT_ROWS-th row of
// them; the SPLIT_ROWS partial sums then meet in a fixed order, so the result stays
// deterministic. SPLIT_ROWS is 8, or 4 where a workgroup holds 128 invocations (WebGPU's
// compatibility mode); KernelConfig::split_column_sums mirrors the rule.
const SPLIT_COLS: u32 = 32u;
const SPLIT_ROWS: u32 = max(1u, min(8u, WORKGROUP_SIZE / SPLIT_COLS));

var<workgroup> column_partial: array<array<f32, SPLIT_COLS>, SPLIT_ROWS>;

@compute @workgroup_size(SPLIT_COLS, SPLIT_ROWS)
fn column_sum_split(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) local: vec3<u32>,
) {
    let col = (group.x + group.y * groups.x) * SPLIT_COLS + local.x;
    var total = 0.0;
    if col < params.cols && local.y < params.rows {
        let count = (params.rows - local.y - 1u) / SPLIT_ROWS + 1u;
        total = strided_sum(local.y * params.cols + col, SPLIT_ROWS * params.cols, count);
    }
    column_partial[local.y][local.x] = total;
    workgroupBarrier();
    if local.y == 0u && col < params.cols {
        var sum = column_partial[0][local.x];
        for (var r = 1u; r < SPLIT_ROWS; r++) {
            sum += column_partial[r][local.x];
        }
        output[col] = sum;
    }
}

var<workgroup> partial: array<f32, WORKGROUP_SIZE>;

// output[0] = Σ input[0 .. rows·cols]. One workgroup: invocation t sums elements t, t + W, t + 2W,
// … (W = WORKGROUP_SIZE, so that neighbouring invocations read neighbouring words), then the W
// partial sums meet in a tree in workgroup memory (W is a power of two; see KernelConfig).
@compute @workgroup_size(WORKGROUP_SIZE)
fn sum(@builtin(local_invocation_index) local: u32) {
    let len = params.rows * params.cols;
    var total = 0.0;
    if local < len {
        total = strided_sum(local, WORKGROUP_SIZE, (len - local - 1u) / WORKGROUP_SIZE + 1u);
    }
    partial[local] = total;
    workgroupBarrier();
    for (var stride = WORKGROUP_SIZE / 2u; stride > 0u; stride /= 2u) {
        if local < stride {
            partial[local] += partial[local + stride];
        }
        workgroupBarrier();
    }
    if local == 0u {
        output[0] = partial[0];
    }
}
