// elementwise.wgsl — element-wise building blocks over a (rows, cols) matrix: the Hadamard
// product, the bias add, axpy out of place and in place, and scaling. The training step fuses
// the first two into the matmul epilogues; these are the unfused versions.
//
// One invocation per element over a grid that KernelConfig::grid_1d may have folded into two
// dimensions; `flat_index` recovers the element and the bounds check drops the overshoot.
//
// Binding order: `first` and `out` come before `second`, so that the two-operand kernels
// (scale, add_scaled) bind a prefix of the three-operand layout and never see `second`.

struct ElementwiseParams {
    rows: u32,
    cols: u32,
    alpha: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: ElementwiseParams;
@group(0) @binding(1) var<storage, read> first: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> second: array<f32>;

// out = first ⊙ second.
@compute @workgroup_size(WORKGROUP_SIZE)
fn hadamard(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i < params.rows * params.cols {
        out[i] = first[i] * second[i];
    }
}

// out[r, c] = first[r, c] + second[c]: a bias row added to every row.
@compute @workgroup_size(WORKGROUP_SIZE)
fn bias_add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i < params.rows * params.cols {
        out[i] = first[i] + second[i % params.cols];
    }
}

// out = alpha·first + second (BLAS axpy, written out of place).
@compute @workgroup_size(WORKGROUP_SIZE)
fn axpy(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i < params.rows * params.cols {
        out[i] = params.alpha * first[i] + second[i];
    }
}

// out = alpha·first.
@compute @workgroup_size(WORKGROUP_SIZE)
fn scale(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i < params.rows * params.cols {
        out[i] = params.alpha * first[i];
    }
}

// out ← out + alpha·first (BLAS axpy in place). Each element is read and written by exactly one
// invocation, which the host guarantees by refusing grids whose flat index could wrap.
@compute @workgroup_size(WORKGROUP_SIZE)
fn add_scaled(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i < params.rows * params.cols {
        out[i] += params.alpha * first[i];
    }
}
