// activation.wgsl — activations as kernels of their own: element-wise g and its backward pass,
// and row-wise softmax with its Jacobian-vector product. The training step fuses these into the
// matmul epilogues and the output-layer kernel; these are the unfused building blocks, kept for
// layouts that need them and as the baseline the fused kernels are measured against.
//
// The element-wise kernels run one invocation per element, the softmax kernels one per row
// (rows are batch rows and a row is short, e.g. 10 classes), each over a grid that
// KernelConfig::grid_1d may have folded into two dimensions. No kernel uses workgroup memory.

override ACTIVATION: u32 = ACT_IDENTITY;

// The layout of MatrixParams (src/gpu/kernels/mod.rs); its scalar is leaky ReLU's slope.
struct ActivationParams {
    rows: u32,
    cols: u32,
    leaky_slope: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: ActivationParams;
// forward: z → a.   backward: a (z for GELU and SiLU), da → dz.
@group(0) @binding(1) var<storage, read> first: array<f32>;
@group(0) @binding(2) var<storage, read> second: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// a = g(z), element-wise; `first` = z.
@compute @workgroup_size(WORKGROUP_SIZE)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i < params.rows * params.cols {
        out[i] = activate(ACTIVATION, first[i], params.leaky_slope);
    }
}

// dz = da ⊙ g′, element-wise; `first` = a (z for GELU and SiLU), `second` = da.
@compute @workgroup_size(WORKGROUP_SIZE)
fn backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i < params.rows * params.cols {
        out[i] = second[i] * activation_derivative(ACTIVATION, first[i], params.leaky_slope);
    }
}

// a = softmax(z) row-wise, stabilised by the row maximum; one invocation per row.
@compute @workgroup_size(WORKGROUP_SIZE)
fn softmax_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let row = flat_index(gid, groups);
    if row >= params.rows {
        return;
    }
    let base = row * params.cols;
    var row_max = first[base];
    for (var j = 1u; j < params.cols; j++) {
        row_max = max(row_max, first[base + j]);
    }
    var total = 0.0;
    for (var j = 0u; j < params.cols; j++) {
        let e = exp(first[base + j] - row_max);
        out[base + j] = e;
        total += e;
    }
    for (var j = 0u; j < params.cols; j++) {
        out[base + j] /= total;
    }
}

// dz = a ⊙ (da − Σ_j da_j a_j) row-wise, softmax's Jacobian-vector product; `first` = a,
// `second` = da.
@compute @workgroup_size(WORKGROUP_SIZE)
fn softmax_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let row = flat_index(gid, groups);
    if row >= params.rows {
        return;
    }
    let base = row * params.cols;
    var dot = 0.0;
    for (var j = 0u; j < params.cols; j++) {
        dot += second[base + j] * first[base + j];
    }
    for (var j = 0u; j < params.cols; j++) {
        out[base + j] = first[base + j] * (second[base + j] - dot);
    }
}
