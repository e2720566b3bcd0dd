// common.wgsl — prepended to every shader in this folder (see src/gpu/kernels/mod.rs), after a
// header of `const`s generated from the adapter's KernelConfig (WORKGROUP_SIZE, MM_*).
//
// Activation codes match `Activation::wgsl_code` in src/model.rs.

const ACT_IDENTITY: u32 = 0u;
const ACT_SIGMOID: u32 = 1u;
const ACT_RELU: u32 = 2u;
const ACT_TANH: u32 = 3u;
const ACT_SOFTMAX: u32 = 4u;

// 1 / (1 + e^-z) without overflow: exp only ever sees a non-positive argument.
fn sigmoid(z: f32) -> f32 {
    let e = exp(-abs(z));
    let s = 1.0 / (1.0 + e);
    return select(e * s, s, z >= 0.0);
}

// tanh written out, because some drivers' built-in returns NaN for large |z|.
fn stable_tanh(z: f32) -> f32 {
    let e = exp(-2.0 * abs(z));
    return sign(z) * (1.0 - e) / (1.0 + e);
}

// g(z) for the element-wise activations; softmax is row-wise and has its own kernels.
fn activate(act: u32, z: f32) -> f32 {
    switch act {
        case ACT_SIGMOID: { return sigmoid(z); }
        case ACT_RELU: { return max(z, 0.0); }
        case ACT_TANH: { return stable_tanh(z); }
        default: { return z; }
    }
}

// g'(z) written in terms of a = g(z); ReLU'(0) = 0 as in PyTorch.
fn activation_derivative(act: u32, a: f32) -> f32 {
    switch act {
        case ACT_SIGMOID: { return a * (1.0 - a); }
        case ACT_RELU: { return select(0.0, 1.0, a > 0.0); }
        case ACT_TANH: { return 1.0 - a * a; }
        default: { return 1.0; }
    }
}

// The flat index of a thread in a one-dimensional kernel whose grid may have been folded into
// two dimensions (KernelConfig::grid_1d).
fn flat_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * WORKGROUP_SIZE;
}
