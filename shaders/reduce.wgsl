// reduce.wgsl — sums: the column sums of a matrix (a layer's bias gradient) and a full sum
// (the batch loss).

struct ReduceParams {
    rows: u32,
    cols: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: ReduceParams;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;

// output[c] = Σ_r input[r, c]. One invocation per column walking down the rows: neighbouring
// invocations read neighbouring words, and there is no barrier (which CPU adapters pay dearly for).
@compute @workgroup_size(WORKGROUP_SIZE)
fn column_sum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let col = flat_index(gid, groups);
    if col >= params.cols {
        return;
    }
    var total = 0.0;
    for (var r = 0u; r < params.rows; r++) {
        total += input[r * params.cols + col];
    }
    output[col] = total;
}

var<workgroup> partial: array<f32, WORKGROUP_SIZE>;

// output[0] = Σ input[0 .. rows·cols]. One workgroup: each invocation sums a strided share, then
// a tree in workgroup memory. Deterministic: the same input always gives the same bits.
@compute @workgroup_size(WORKGROUP_SIZE)
fn sum(@builtin(local_invocation_index) local: u32) {
    let len = params.rows * params.cols;
    var total = 0.0;
    for (var i = local; i < len; i += WORKGROUP_SIZE) {
        total += input[i];
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
