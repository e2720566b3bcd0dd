// optim.wgsl — parameter updates, one dispatch per layer covering its weight and its bias.
//
// Invocation i < weight_len updates weight[i]; the next bias_len invocations update the bias, so
// a layer's whole update is one dispatch.

struct SgdParams {
    weight_len: u32,
    bias_len: u32,
    learning_rate: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: SgdParams;
@group(0) @binding(1) var<storage, read_write> weight: array<f32>;
@group(0) @binding(2) var<storage, read> dweight: array<f32>;
@group(0) @binding(3) var<storage, read_write> bias: array<f32>;
@group(0) @binding(4) var<storage, read> dbias: array<f32>;

// Plain SGD: p ← p − lr·dp.
@compute @workgroup_size(WORKGROUP_SIZE)
fn sgd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    if i < params.weight_len {
        weight[i] -= params.learning_rate * dweight[i];
    } else if i < params.weight_len + params.bias_len {
        let j = i - params.weight_len;
        bias[j] -= params.learning_rate * dbias[j];
    }
}
