// optim.wgsl — parameter updates, one dispatch per layer covering its weight and its bias, and
// the step counter they read.
//
// Invocation i < weight_len updates weight[i]; the next bias_len invocations update the bias, so
// a layer's whole update is one dispatch. The optimizer state (velocity, or Adam's two moments)
// is laid out the same way, weight entries first, then bias entries: the first moment in
// `moments` and the second in `second_moments`. Semantics are PyTorch's (`torch.optim.SGD` with
// momentum, dampening 0; `torch.optim.Adam`), with L2 weight decay added to the gradient:
// g = dp + weight_decay·p; `torch.optim.AdamW` instead shrinks p by (1 − lr·weight_decay) before
// Adam's update from g = dp. The rule is the pipeline constant RULE (codes as `Rule` in
// src/gpu/kernels/optim.rs), so each pipeline holds one rule's code only.
//
// A device that binds four storage buffers per stage gets `update_tensor`: one tensor (the weight
// or the bias, bound where the weight goes) per dispatch, two dispatches per layer, with
// `moment_base` the tensor's first slot. Both moments then share `moments` (the second from slot
// `second_moment`), which halves the largest layer Adam trains under a binding-size limit: the
// price of staying within four bindings.
//
// Gradient clipping (`torch.nn.utils.clip_grad_norm_`) runs between the backward pass and the
// updates without a read-back: `square_sum` once per layer writes Σ dW² + Σ db² to
// counters[3 + layer], `clip_scale` turns their total into min(1, max_norm/(‖g‖ + 1e-6)) in
// counters[2], and every update multiplies dp by that scale when max_norm > 0. The counters
// buffer is u32 words, so the clipping slots hold f32 bits: one buffer for the step count and
// the scale keeps `update_tensor` at four storage buffers.

const RULE_SGD: u32 = 0u;
const RULE_MOMENTUM: u32 = 1u;
const RULE_ADAM: u32 = 2u;
const RULE_ADAMW: u32 = 3u;

override RULE: u32 = RULE_SGD;

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
    // `update_tensor`: the tensor's first slot in each moment (0 for a weight, weight_len for
    // its layer's bias).
    moment_base: u32,
    // `update_tensor`: where the second moment starts in `moments` (the layer's weight_len +
    // bias_len).
    second_moment: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: OptimParams;
@group(0) @binding(1) var<storage, read_write> weight: array<f32>;
@group(0) @binding(2) var<storage, read> dweight: array<f32>;
@group(0) @binding(3) var<storage, read_write> bias: array<f32>;
@group(0) @binding(4) var<storage, read> dbias: array<f32>;
// The first moment; under `update_tensor` both, one after the other.
@group(0) @binding(5) var<storage, read_write> moments: array<f32>;
// The second moment, under `update`.
@group(0) @binding(6) var<storage, read_write> second_moments: array<f32>;
// [0]: steps taken, this one included (Adam's t); [1]: the data cursor; [2]: the gradients'
// scale this step (f32 bits); [3 + l]: layer l's sum of squared gradients (f32 bits).
@group(0) @binding(7) var<storage, read_write> counters: array<u32>;

// dp as the backward pass left it.
fn raw_gradient(i: u32) -> f32 {
    if i < params.weight_len {
        return dweight[i];
    }
    return dbias[i - params.weight_len];
}

// The clipping factor when clipping is on, else 1.
fn gradient_scale() -> f32 {
    if params.max_norm > 0.0 {
        return bitcast<f32>(counters[2]);
    }
    return 1.0;
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

// A parameter's optimizer state: velocity or Adam's first moment m, and Adam's second moment v.
struct State {
    m: f32,
    v: f32,
}

// A parameter and its state after one step.
struct Stepped {
    p: f32,
    state: State,
}

// Whether RULE keeps a first moment (velocity or Adam's m).
fn keeps_first() -> bool {
    return RULE != RULE_SGD;
}

// Whether RULE keeps a second moment (Adam's v).
fn keeps_second() -> bool {
    return RULE == RULE_ADAM || RULE == RULE_ADAMW;
}

// Parameter p with gradient dp and state `state` after one step of RULE:
//   SGD       p ← p − lr·g
//   momentum  v ← μ·v + g; p ← p − lr·v
//   Adam      m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²; p ← p − lr·m̂/(√v̂ + ε), with the bias
//             corrections m̂ = m/c₁, v̂ = v/c₂, cₖ = 1−βₖᵗ for the step number t kept on the GPU
//   AdamW     p ← p·(1 − lr·λ), then Adam's step from g = dp
// with g = dp·scale + weight_decay·p (clipped, L2-decayed) except for AdamW.
fn stepped(p_in: f32, dp: f32, state: State) -> Stepped {
    let clipped = dp * gradient_scale();
    if RULE == RULE_SGD {
        return Stepped(p_in - params.learning_rate * (clipped + params.weight_decay * p_in), state);
    }
    if RULE == RULE_MOMENTUM {
        let v = params.beta1 * state.m + clipped + params.weight_decay * p_in;
        return Stepped(p_in - params.learning_rate * v, State(v, state.v));
    }
    var p = p_in;
    var g = clipped + params.weight_decay * p;
    if RULE == RULE_ADAMW {
        p = p_in * (1.0 - params.learning_rate * params.weight_decay);
        g = clipped;
    }
    let t = f32(counters[0]);
    let m = params.beta1 * state.m + (1.0 - params.beta1) * g;
    let v = params.beta2 * state.v + (1.0 - params.beta2) * g * g;
    // PyTorch's order, as the CPU computes it: lr/c₁ · m / (√v/√c₂ + ε).
    let step_size = params.learning_rate / one_minus_power(params.log_beta1, t);
    let inverse_root_c2 = 1.0 / sqrt(one_minus_power(params.log_beta2, t));
    return Stepped(p - step_size * m / (sqrt(v) * inverse_root_c2 + params.epsilon), State(m, v));
}

// Parameter i of a layer, the weight's then the bias's.
fn parameter(i: u32) -> f32 {
    if i < params.weight_len {
        return weight[i];
    }
    return bias[i - params.weight_len];
}

fn set_parameter(i: u32, value: f32) {
    if i < params.weight_len {
        weight[i] = value;
    } else {
        bias[i - params.weight_len] = value;
    }
}

// A layer's weight and bias, one invocation per parameter, each moment in its own buffer.
@compute @workgroup_size(WORKGROUP_SIZE)
fn update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i >= params.weight_len + params.bias_len {
        return;
    }
    var state = State(0.0, 0.0);
    if keeps_first() {
        state.m = moments[i];
    }
    if keeps_second() {
        state.v = second_moments[i];
    }
    let next = stepped(parameter(i), raw_gradient(i), state);
    set_parameter(i, next.p);
    if keeps_first() {
        moments[i] = next.state.m;
    }
    if keeps_second() {
        second_moments[i] = next.state.v;
    }
}

// One tensor of weight_len parameters, bound at `weight` and `dweight`, both moments in
// `moments`.
@compute @workgroup_size(WORKGROUP_SIZE)
fn update_tensor(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i >= params.weight_len {
        return;
    }
    let first = params.moment_base + i;
    let second = params.second_moment + first;
    var state = State(0.0, 0.0);
    if keeps_first() {
        state.m = moments[first];
    }
    if keeps_second() {
        state.v = moments[second];
    }
    let next = stepped(weight[i], dweight[i], state);
    weight[i] = next.p;
    if keeps_first() {
        moments[first] = next.state.m;
    }
    if keeps_second() {
        moments[second] = next.state.v;
    }
}

var<workgroup> squares: array<f32, WORKGROUP_SIZE>;

// counters[3 + layer] = Σ dW² + Σ db² of one layer. One workgroup: invocation t sums elements t,
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
        counters[3u + params.layer] = bitcast<u32>(squares[0]);
    }
}

// counters[2] = min(1, max_norm/(‖g‖ + 1e-6)) with ‖g‖² the sum of the params.layer layers' slots.
@compute @workgroup_size(1)
fn clip_scale() {
    var total = 0.0;
    for (var l = 0u; l < params.layer; l++) {
        total += bitcast<f32>(counters[3u + l]);
    }
    counters[2] = bitcast<u32>(min(1.0, params.max_norm / (sqrt(total) + 1e-6)));
}

// Once per step, before the updates: count the step and move the data cursor past its batch.
@compute @workgroup_size(1)
fn advance() {
    counters[0] += 1u;
    counters[1] += params.rows;
}
