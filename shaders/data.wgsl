// data.wgsl — batches gathered on the GPU from a data set kept there as bytes, and the metrics
// of an evaluation pass.
//
// Images and labels are u8 in the files; WGSL has no u8, so four bytes share a u32 (little
// endian, as the host packs them). `order` is the epoch's shuffled permutation, written once per
// epoch; `counters[1]` is the position of the current batch in it, moved on the GPU by
// optim.wgsl's `advance`, so a step needs nothing from the host.

struct GatherParams {
    rows: u32,
    inputs: u32,
    classes: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: GatherParams;
@group(0) @binding(1) var<storage, read> images: array<u32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read> order: array<u32>;
@group(0) @binding(4) var<storage, read_write> counters: array<u32>;
@group(0) @binding(5) var<storage, read_write> x: array<f32>;
@group(0) @binding(6) var<storage, read_write> y: array<f32>;

fn image_byte(i: u32) -> u32 {
    return (images[i / 4u] >> (8u * (i % 4u))) & 0xffu;
}

fn label_byte(i: u32) -> u32 {
    return (labels[i / 4u] >> (8u * (i % 4u))) & 0xffu;
}

// x[r, c] = image[order[cursor + r]][c] / 255 and y[r] = one_hot(label[order[cursor + r]]).
// Invocation i writes elements 4i … 4i+3 of x and element i of y. With whole words per row
// (inputs a multiple of 4, as MNIST's 784) its four pixels are one word of one sample: one load
// of `order` and one of `images` for four pixels, where a CPU adapter pays dearly for each load.
@compute @workgroup_size(WORKGROUP_SIZE)
fn gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = flat_index(gid, groups);
    let cursor = counters[1];
    let x_len = params.rows * params.inputs;
    let first = 4u * i;
    if first < x_len {
        if params.inputs % 4u == 0u {
            let sample = order[cursor + first / params.inputs];
            let word = images[(sample * params.inputs + first % params.inputs) / 4u];
            for (var j = 0u; j < 4u; j++) {
                x[first + j] = f32((word >> (8u * j)) & 0xffu) / 255.0;
            }
        } else {
            for (var e = first; e < min(first + 4u, x_len); e++) {
                let sample = order[cursor + e / params.inputs];
                x[e] = f32(image_byte(sample * params.inputs + e % params.inputs)) / 255.0;
            }
        }
    }
    if i < params.rows * params.classes {
        let r = i / params.classes;
        let sample = order[cursor + r];
        y[i] = select(0.0, 1.0, label_byte(sample) == i % params.classes);
    }
}

// Once per batch when nothing else advances the cursor (evaluation): move past the batch.
@compute @workgroup_size(1)
fn advance_cursor() {
    counters[1] += params.rows;
}
