// common.wgsl — prepended to every shader in this folder (see src/gpu/kernels/mod.rs), after a
// header of `const`s generated from the adapter's KernelConfig (WORKGROUP_SIZE, MM_*).
//
// Activation codes match `Activation::wgsl_code` in src/model.rs.

const ACT_IDENTITY: u32 = 0u;
const ACT_SIGMOID: u32 = 1u;
const ACT_RELU: u32 = 2u;
const ACT_TANH: u32 = 3u;
const ACT_SOFTMAX: u32 = 4u;
const ACT_GELU: u32 = 5u;
const ACT_SILU: u32 = 6u;
const ACT_LEAKY_RELU: u32 = 7u;

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

// erf by Abramowitz & Stegun 7.1.26 (within 1.5e-7; WGSL has none), the same formula in the same
// order as `erf` in src/model.rs.
fn erf(x: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.3275911 * abs(x));
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741
        + t * (-1.453152027 + t * 1.061405429))));
    let magnitude = 1.0 - poly * exp(-x * x);
    return select(magnitude, -magnitude, x < 0.0);
}

// Φ(z), the standard normal distribution function.
fn normal_cdf(z: f32) -> f32 {
    return 0.5 * (1.0 + erf(z * 0.70710678118654752));
}

// g(z) for the element-wise activations, `leaky_slope` being leaky ReLU's; softmax is row-wise
// and has its own kernels.
fn activate(act: u32, z: f32, leaky_slope: f32) -> f32 {
    switch act {
        case ACT_SIGMOID: { return sigmoid(z); }
        case ACT_RELU: { return max(z, 0.0); }
        case ACT_TANH: { return stable_tanh(z); }
        case ACT_GELU: { return z * normal_cdf(z); }
        case ACT_SILU: { return z * sigmoid(z); }
        case ACT_LEAKY_RELU: { return select(leaky_slope * z, z, z > 0.0); }
        default: { return z; }
    }
}

// g'(z) from what a layer keeps for backward: z for GELU and SiLU, whose g' cannot be written in
// terms of a = g(z), and a for the others (Activation::keeps_preactivation). ReLU'(0) = 0 and
// leaky ReLU'(0) = slope as in PyTorch; a > 0 ⇔ z > 0 since the slope is ≥ 0.
fn activation_derivative(act: u32, kept: f32, leaky_slope: f32) -> f32 {
    switch act {
        case ACT_SIGMOID: { return kept * (1.0 - kept); }
        case ACT_RELU: { return select(0.0, 1.0, kept > 0.0); }
        case ACT_TANH: { return 1.0 - kept * kept; }
        // Φ(z) + z·φ(z).
        case ACT_GELU: {
            return normal_cdf(kept) + kept * exp(-0.5 * kept * kept) * 0.39894228040143268;
        }
        case ACT_SILU: {
            let s = sigmoid(kept);
            return s * (1.0 + kept * (1.0 - s));
        }
        case ACT_LEAKY_RELU: { return select(leaky_slope, 1.0, kept > 0.0); }
        default: { return 1.0; }
    }
}

// The flat index of a thread in a one-dimensional kernel whose grid may have been folded into
// two dimensions (KernelConfig::grid_1d).
fn flat_index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * WORKGROUP_SIZE;
}
