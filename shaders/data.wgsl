// data.wgsl — batches gathered on the GPU from a data set kept there.
//
// Features are bytes (pixels, scaled by 1/255 here) or f32; WGSL has no u8, so four bytes share a
// u32 (little endian, as the host packs them), and f32 features and targets are stored as their
// bits. Targets are a u32 class label per sample (y is its one-hot row) or `outputs` f32 values.
// `order` is the epoch's shuffled permutation, written once per epoch; `counters[1]` is the
// position of the current batch in it, moved on the GPU by optim.wgsl's `advance`, so a step
// needs nothing from the host.
//
// A data set larger than one binding is split by samples into chunks, a features and a targets
// buffer each; each chunk's gather writes the rows of x and y whose samples it holds and leaves
// the others, so the chunks' gathers together write all of both.

// Features are f32 bits (else bytes, four to a word).
override FLOAT_FEATURES: bool = false;
// Targets are f32 bits, `outputs` per sample (else one u32 class label per sample).
override VALUE_TARGETS: bool = false;

struct GatherParams {
    rows: u32,
    inputs: u32,
    outputs: u32,
    // The samples `features` and `targets` hold: [first_sample, first_sample + samples).
    first_sample: u32,
    samples: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: GatherParams;
@group(0) @binding(1) var<storage, read> features: array<u32>;
@group(0) @binding(2) var<storage, read> targets: array<u32>;
@group(0) @binding(3) var<storage, read> order: array<u32>;
@group(0) @binding(4) var<storage, read_write> counters: array<u32>;
@group(0) @binding(5) var<storage, read_write> x: array<f32>;
@group(0) @binding(6) var<storage, read_write> y: array<f32>;

// Feature `i` of the chunk (counted from its first sample's first feature), as the model sees it.
fn feature(i: u32) -> f32 {
    if FLOAT_FEATURES {
        return bitcast<f32>(features[i]);
    }
    return f32((features[i / 4u] >> (8u * (i % 4u))) & 0xffu) / 255.0;
}

// The chunk-relative index of `sample`, or `params.samples` if the chunk does not hold it.
fn local_sample(sample: u32) -> u32 {
    let local = sample - params.first_sample;
    return select(params.samples, local, sample >= params.first_sample && local < params.samples);
}

// x[r, c] = features[order[cursor + r]][c] and y[r] = target(order[cursor + r]), for the
// samples this chunk holds. Invocation i writes elements 4i … 4i+3 of x and element i of y. With
// byte features and whole words per row (inputs a multiple of 4, as MNIST's 784) its four pixels
// are one word of one sample: one load of `order` and one of `features` for four pixels, where a
// CPU adapter pays dearly for each load.
@compute @workgroup_size(WORKGROUP_SIZE)
fn gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    gather_features_of(i);
    gather_targets_of(i);
}

// gather in two passes of four storage buffers each, for a device that allows no more.
@compute @workgroup_size(WORKGROUP_SIZE)
fn gather_features(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    gather_features_of(flat_index(gid, groups));
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn gather_targets(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    gather_targets_of(flat_index(gid, groups));
}

// Elements 4i … 4i+3 of x.
fn gather_features_of(i: u32) {
    let cursor = counters[1];
    let x_len = params.rows * params.inputs;
    let first = 4u * i;
    if first < x_len {
        if !FLOAT_FEATURES && params.inputs % 4u == 0u {
            let local = local_sample(order[cursor + first / params.inputs]);
            if local < params.samples {
                let word = features[(local * params.inputs + first % params.inputs) / 4u];
                for (var j = 0u; j < 4u; j++) {
                    x[first + j] = f32((word >> (8u * j)) & 0xffu) / 255.0;
                }
            }
        } else {
            for (var e = first; e < min(first + 4u, x_len); e++) {
                let local = local_sample(order[cursor + e / params.inputs]);
                if local < params.samples {
                    x[e] = feature(local * params.inputs + e % params.inputs);
                }
            }
        }
    }
}

// Element i of y.
fn gather_targets_of(i: u32) {
    let cursor = counters[1];
    if i < params.rows * params.outputs {
        let column = i % params.outputs;
        let local = local_sample(order[cursor + i / params.outputs]);
        if local < params.samples {
            if VALUE_TARGETS {
                y[i] = bitcast<f32>(targets[local * params.outputs + column]);
            } else {
                y[i] = select(0.0, 1.0, targets[local] == column);
            }
        }
    }
}

// Once per batch when nothing else advances the cursor (evaluation): move past the batch.
@compute @workgroup_size(1)
fn advance_cursor() {
    counters[1] += params.rows;
}
