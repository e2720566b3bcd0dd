// metrics.wgsl — what an evaluation pass accumulates on the GPU, batch after batch: the number
// of correct predictions, the confusion matrix and the summed loss.

struct MetricsParams {
    rows: u32,
    classes: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: MetricsParams;
// The output activations and one-hot targets of the batch, (rows, classes).
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
// The batch's mean loss (loss.wgsl + reduce.wgsl), one value.
@group(0) @binding(3) var<storage, read> batch_loss: array<f32>;
// [0]: correct predictions; [1 + truth·classes + predicted]: the confusion matrix.
@group(0) @binding(4) var<storage, read_write> counts: array<atomic<u32>>;
// [0]: Σ over batches of mean loss · rows; then, for regression, Σ (a − y)² of each output.
@group(0) @binding(5) var<storage, read_write> loss_total: array<f32>;

// One invocation per row: the predicted class is the argmax of a, the true one that of y
// (the first on ties, as torch.argmax does).
@compute @workgroup_size(WORKGROUP_SIZE)
fn accuracy(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let row = flat_index(gid, groups);
    if row >= params.rows {
        return;
    }
    let base = row * params.classes;
    var predicted = 0u;
    var truth = 0u;
    for (var j = 1u; j < params.classes; j++) {
        if a[base + j] > a[base + predicted] {
            predicted = j;
        }
        if y[base + j] > y[base + truth] {
            truth = j;
        }
    }
    if predicted == truth {
        atomicAdd(&counts[0], 1u);
    }
    atomicAdd(&counts[1u + truth * params.classes + predicted], 1u);
}

// One invocation per output column c (regression): add the batch's Σ (a − y)² of the column to
// loss_total[1 + c]. The batch's sum is formed first, so the running total takes one rounding
// per batch.
@compute @workgroup_size(WORKGROUP_SIZE)
fn squared_error(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let column = flat_index(gid, groups);
    if column >= params.classes {
        return;
    }
    var sum = 0.0;
    for (var r = 0u; r < params.rows; r++) {
        let d = a[r * params.classes + column] - y[r * params.classes + column];
        sum += d * d;
    }
    loss_total[1u + column] += sum;
}

// One invocation, after the batch: add its loss, weighted by its rows.
@compute @workgroup_size(1)
fn accumulate_loss() {
    loss_total[0] += batch_loss[0] * f32(params.rows);
}

// One invocation, after each training step: counts[0] counts the steps, counts[1] keeps the
// first (1-based) whose loss is not finite, or 0. Tested on the bits, since WGSL lets a compiler
// assume that floats are finite.
@compute @workgroup_size(1)
fn watch_loss() {
    let step = atomicAdd(&counts[0], 1u) + 1u;
    let exponent = bitcast<u32>(batch_loss[0]) & 0x7f800000u;
    if exponent == 0x7f800000u && atomicLoad(&counts[1]) == 0u {
        atomicStore(&counts[1], step);
    }
}
