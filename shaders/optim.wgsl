// optim.wgsl — parameter updates, one dispatch per layer covering its weight and its bias, and
// the step counter they read.
//
// Invocation i < weight_len updates weight[i]; the next bias_len invocations update the bias, so
// a layer's whole update is one dispatch. The optimizer state (velocity, or Adam's two moments)
// is laid out the same way: weight entries first, then bias entries. Semantics are PyTorch's
// (`torch.optim.SGD` with momentum, dampening 0; `torch.optim.Adam`), with L2 weight decay added
// to the gradient: g = dp + weight_decay·p; `torch.optim.AdamW` instead shrinks p by
// (1 − lr·weight_decay) before Adam's update from g = dp.
//
// Gradient clipping (`torch.nn.utils.clip_grad_norm_`) runs between the backward pass and the
// updates without a read-back: `square_sum` once per layer writes Σ dW² + Σ db² to
// clip[1 + layer], `clip_scale` turns their total into min(1, max_norm/(‖g‖ + 1e-6)) in clip[0],
// and every update multiplies dp by clip[0] when max_norm > 0.

struct OptimParams {
    weight_len: u32,
    bias_len: u32,
    learning_rate: f32,
    weight_decay: f32,
    // Momentum's μ, or Adam's β₁.
    beta1: f32,
    beta2: f32,
    epsilon: f32,
    // Rows per step, by which `advance` moves the data cursor.
    rows: u32,
    // ln β₁ and ln β₂ (computed in f64 on the host), for Adam's bias corrections.
    log_beta1: f32,
    log_beta2: f32,
    // The clipping threshold, 0 for none.
    max_norm: f32,
    // `square_sum`: the layer whose slot it writes; `clip_scale`: the number of layers.
    layer: u32,
}

@group(0) @binding(0) var<uniform> params: OptimParams;
@group(0) @binding(1) var<storage, read_write> weight: array<f32>;
@group(0) @binding(2) var<storage, read> dweight: array<f32>;
@group(0) @binding(3) var<storage, read_write> bias: array<f32>;
@group(0) @binding(4) var<storage, read> dbias: array<f32>;
@group(0) @binding(5) var<storage, read_write> moment1: array<f32>;
@group(0) @binding(6) var<storage, read_write> moment2: array<f32>;
// counters[0]: steps taken, this one included (Adam's t); counters[1]: the data cursor.
@group(0) @binding(7) var<storage, read_write> counters: array<u32>;
// clip[0]: the gradients' scale this step; clip[1 + l]: layer l's sum of squared gradients.
@group(0) @binding(8) var<storage, read_write> clip: array<f32>;

fn load_parameter(i: u32) -> f32 {
    if i < params.weight_len {
        return weight[i];
    }
    return bias[i - params.weight_len];
}

fn store_parameter(i: u32, value: f32) {
    if i < params.weight_len {
        weight[i] = value;
    } else {
        bias[i - params.weight_len] = value;
    }
}

// dp as the backward pass left it.
fn raw_gradient(i: u32) -> f32 {
    if i < params.weight_len {
        return dweight[i];
    }
    return dbias[i - params.weight_len];
}

// dp, scaled by the clipping factor when clipping is on.
fn clipped_gradient(i: u32) -> f32 {
    let g = raw_gradient(i);
    if params.max_norm > 0.0 {
        return g * clip[0];
    }
    return g;
}

// g = dp + weight_decay·p.
fn gradient(i: u32, p: f32) -> f32 {
    return clipped_gradient(i) + params.weight_decay * p;
}

// Plain SGD: p ← p − lr·g.
@compute @workgroup_size(WORKGROUP_SIZE)
fn sgd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i >= params.weight_len + params.bias_len {
        return;
    }
    let p = load_parameter(i);
    store_parameter(i, p - params.learning_rate * gradient(i, p));
}

// SGD with momentum: v ← μ·v + g; p ← p − lr·v.
@compute @workgroup_size(WORKGROUP_SIZE)
fn momentum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i >= params.weight_len + params.bias_len {
        return;
    }
    let p = load_parameter(i);
    let v = params.beta1 * moment1[i] + gradient(i, p);
    moment1[i] = v;
    store_parameter(i, p - params.learning_rate * v);
}

// 1 − βᵗ = −expm1(t·ln β) without the cancellation of 1 − pow(β, t) in f32, which costs Adam's
// first steps (1 − 0.999³ ≈ 0.003) four significant digits.
fn one_minus_power(log_beta: f32, t: f32) -> f32 {
    let x = t * log_beta;
    if abs(x) < 0.1 {
        return -x * (1.0 + x / 2.0 * (1.0 + x / 3.0 * (1.0 + x / 4.0 * (1.0 + x / 5.0))));
    }
    return 1.0 - exp(x);
}

// Adam's step from gradient g for parameter i (already decayed to p): m ← β₁m + (1−β₁)g;
// v ← β₂v + (1−β₂)g²; p ← p − lr·m̂/(√v̂ + ε), with the bias corrections m̂ = m/(1−β₁ᵗ),
// v̂ = v/(1−β₂ᵗ) for the step number t kept on the GPU.
fn adam_step(i: u32, p: f32, g: f32) {
    let t = f32(counters[0]);
    let m = params.beta1 * moment1[i] + (1.0 - params.beta1) * g;
    let v = params.beta2 * moment2[i] + (1.0 - params.beta2) * g * g;
    moment1[i] = m;
    moment2[i] = v;
    let m_hat = m / one_minus_power(params.log_beta1, t);
    let v_hat = v / one_minus_power(params.log_beta2, t);
    store_parameter(i, p - params.learning_rate * m_hat / (sqrt(v_hat) + params.epsilon));
}

// Adam with L2 decay in the gradient.
@compute @workgroup_size(WORKGROUP_SIZE)
fn adam(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i >= params.weight_len + params.bias_len {
        return;
    }
    let p = load_parameter(i);
    adam_step(i, p, gradient(i, p));
}

// AdamW: p ← p·(1 − lr·λ), then Adam's step from the gradient alone.
@compute @workgroup_size(WORKGROUP_SIZE)
fn adamw(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i >= params.weight_len + params.bias_len {
        return;
    }
    let p = load_parameter(i) * (1.0 - params.learning_rate * params.weight_decay);
    adam_step(i, p, clipped_gradient(i));
}

var<workgroup> squares: array<f32, WORKGROUP_SIZE>;

// clip[1 + layer] = Σ dW² + Σ db² of one layer. One workgroup: invocation t sums elements t,
// t + W, … in blocks (so rounding grows slowly), then the W partials meet in a tree, in a fixed
// order, so the norm is deterministic.
@compute @workgroup_size(WORKGROUP_SIZE)
fn square_sum(@builtin(local_invocation_index) local: u32) {
    let len = params.weight_len + params.bias_len;
    var total = 0.0;
    var i = local;
    while i < len {
        var block = 0.0;
        for (var k = 0u; k < 64u && i < len; k++) {
            let g = raw_gradient(i);
            block += g * g;
            i += WORKGROUP_SIZE;
        }
        total += block;
    }
    squares[local] = total;
    workgroupBarrier();
    for (var stride = WORKGROUP_SIZE / 2u; stride > 0u; stride /= 2u) {
        if local < stride {
            squares[local] += squares[local + stride];
        }
        workgroupBarrier();
    }
    if local == 0u {
        clip[1u + params.layer] = squares[0];
    }
}

// clip[0] = min(1, max_norm/(‖g‖ + 1e-6)) with ‖g‖² the sum of the params.layer layers' slots.
@compute @workgroup_size(1)
fn clip_scale() {
    var total = 0.0;
    for (var l = 0u; l < params.layer; l++) {
        total += clip[1u + l];
    }
    clip[0] = min(1.0, params.max_norm / (sqrt(total) + 1e-6));
}

// Once per step, before the updates: count the step and move the data cursor past its batch.
@compute @workgroup_size(1)
fn advance() {
    counters[0] += 1u;
    counters[1] += params.rows;
}
