// dropout.wgsl — inverted dropout on a (rows, cols) matrix, in place: each unit is multiplied by
// 1/(1 − p) when kept and by 0 when dropped (src/dropout.rs states the rule and the CPU side).
//
// Unit i = row·cols + column of dropout site `site` at training step `step` is kept when
// unit_uniform(philox4x32_10([i, site, step, DROPOUT_STREAM], key).x) ≥ p, where `step` is
// counters[0], the steps taken before this one: the kernels run before the step's `advance`, so
// the forward pass and the backward pass of a step regenerate the same mask.
//
// `dropout_keeping` (a hidden layer's activation) first copies the undropped value, from which
// backward takes g′; `dropout_in_place` (the input x, and δ in backward) keeps nothing.
//
// Binding order: `values` and `counters` before `undropped`, so that `dropout_in_place` binds a
// prefix of the layout and never sees `undropped`.

const DROPOUT_STREAM: u32 = 0x64726f70u;

struct DropoutParams {
    rows: u32,
    cols: u32,
    site: u32,
    p: f32,
    // 1/(1 − p), rounded to f32 on the host as the CPU reference rounds it.
    scale: f32,
    _pad: u32,
    key: vec2<u32>,
}

@group(0) @binding(0) var<uniform> params: DropoutParams;
@group(0) @binding(1) var<storage, read_write> values: array<f32>;
// counters[0]: training steps taken before this one.
@group(0) @binding(2) var<storage, read> counters: array<u32>;
@group(0) @binding(3) var<storage, read_write> undropped: array<f32>;

// The factor unit i is multiplied by this step.
fn dropout_factor(i: u32) -> f32 {
    let bits = philox4x32_10(vec4<u32>(i, params.site, counters[0], DROPOUT_STREAM), params.key);
    return select(0.0, params.scale, unit_uniform(bits.x) >= params.p);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn dropout_in_place(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i < params.rows * params.cols {
        values[i] *= dropout_factor(i);
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn dropout_keeping(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i < params.rows * params.cols {
        let value = values[i];
        undropped[i] = value;
        values[i] = value * dropout_factor(i);
    }
}
