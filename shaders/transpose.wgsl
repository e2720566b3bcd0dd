// transpose.wgsl — out (cols, rows) = input (rows, cols)ᵀ.
//
// Backprop never needs a transposed copy (matmul.wgsl reads either operand transposed); this
// kernel is for layouts that really need one. One invocation per output element over a grid that
// KernelConfig::grid_1d may have folded into two dimensions, so consecutive invocations write
// consecutive words and reads are strided by `cols`. No workgroup-memory tiles: a CPU adapter
// would pay for their barriers more than it gains, and this copy is never on the training path.

// The layout of MatrixParams (src/gpu/kernels/mod.rs); its scalar is unused here.
struct TransposeParams {
    rows: u32,
    cols: u32,
    _alpha: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: TransposeParams;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn transpose(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i >= params.rows * params.cols {
        return;
    }
    // i indexes out: (c, r) with c < cols, r < rows.
    let c = i / params.rows;
    let r = i % params.rows;
    out[i] = input[r * params.cols + c];
}
