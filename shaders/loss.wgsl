// loss.wgsl — the output layer: a = g(z), the loss of each row and δ = ∂L/∂z, in one pass.
//
// z is the output layer's pre-activation (the forward matmul writes it with a bias epilogue), so
// the losses that need it are computed from the logits, stably:
//   Mse                 mean over rows×cols of (a − y)²
//   CrossEntropy        mean over rows of lse(z)·Σy − Σ y·z                 (softmax output)
//   BinaryCrossEntropy  mean over rows×cols of max(z,0) − z·y + ln(1+e^−|z|)  (sigmoid output)
// and δ in its fused forms: CE (a·Σy − y)/rows; BCE (a − y)/(rows·cols); MSE g = 2(a − y)/(rows·cols)
// times g′(a), or for a softmax output the Jacobian-vector product a ⊙ (g − Σ g·a).
// Each invocation owns one row: rows are batch rows and output layers are narrow.
// Label smoothing (`nn.CrossEntropyLoss(label_smoothing=ε)`) replaces cross-entropy's targets by
// (1 − ε)·y + ε/cols; ε is a pipeline constant, so the unsmoothed kernel is unchanged.
//
// Loss codes match `Loss::wgsl_code` in src/model.rs.

const LOSS_MSE: u32 = 0u;
const LOSS_CROSS_ENTROPY: u32 = 1u;
const LOSS_BINARY_CROSS_ENTROPY: u32 = 2u;

override LOSS: u32 = LOSS_MSE;
override ACTIVATION: u32 = ACT_IDENTITY;
override LABEL_SMOOTHING: f32 = 0.0;
// The output layer never is leaky ReLU (Activation::is_hidden_only), so it needs no slope.
const OUTPUT_LEAKY_SLOPE: f32 = 0.0;

struct OutputParams {
    rows: u32,
    cols: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: OutputParams;
@group(0) @binding(1) var<storage, read> z: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> a: array<f32>;
@group(0) @binding(4) var<storage, read_write> delta: array<f32>;
@group(0) @binding(5) var<storage, read_write> row_loss: array<f32>;

// The log-sum-exp of one row of z.
fn log_sum_exp(base: u32) -> f32 {
    let cols = params.cols;
    var row_max = z[base];
    for (var j = 1u; j < cols; j++) {
        row_max = max(row_max, z[base + j]);
    }
    var total = 0.0;
    for (var j = 0u; j < cols; j++) {
        total += exp(z[base + j] - row_max);
    }
    return row_max + log(total);
}

// Writes a = g(z) for one row and returns the row's log-sum-exp (0 unless softmax).
fn activate_row(base: u32) -> f32 {
    let cols = params.cols;
    if ACTIVATION == ACT_SOFTMAX {
        let lse = log_sum_exp(base);
        for (var j = 0u; j < cols; j++) {
            a[base + j] = exp(z[base + j] - lse);
        }
        return lse;
    }
    for (var j = 0u; j < cols; j++) {
        a[base + j] = activate(ACTIVATION, z[base + j], OUTPUT_LEAKY_SLOPE);
    }
    return 0.0;
}

// Cross-entropy's target for element `index` of a row of `cols`: (1 − ε)·y + ε/cols.
fn smoothed_target(index: u32, cols: u32) -> f32 {
    if LABEL_SMOOTHING == 0.0 {
        return y[index];
    }
    return (1.0 - LABEL_SMOOTHING) * y[index] + LABEL_SMOOTHING / f32(cols);
}

// Inference: the output activations only.
@compute @workgroup_size(WORKGROUP_SIZE)
fn output_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let row = flat_index(gid, groups);
    if row >= params.rows {
        return;
    }
    activate_row(row * params.cols);
}

// The row's share of the mean loss, from z (and its log-sum-exp `lse`) or from a.
fn loss_of_row(base: u32, lse: f32) -> f32 {
    let cols = params.cols;
    let rows_f = f32(params.rows);
    let elements_f = rows_f * f32(cols);
    var loss = 0.0;
    if LOSS == LOSS_CROSS_ENTROPY {
        var y_sum = 0.0;
        var yz = 0.0;
        for (var j = 0u; j < cols; j++) {
            let truth = smoothed_target(base + j, cols);
            y_sum += truth;
            yz += truth * z[base + j];
        }
        return (lse * y_sum - yz) / rows_f;
    } else if LOSS == LOSS_BINARY_CROSS_ENTROPY {
        for (var j = 0u; j < cols; j++) {
            let logit = z[base + j];
            loss += max(logit, 0.0) - logit * y[base + j] + log(1.0 + exp(-abs(logit)));
        }
    } else {
        for (var j = 0u; j < cols; j++) {
            let diff = a[base + j] - y[base + j];
            loss += diff * diff;
        }
    }
    return loss / elements_f;
}

// δ = ∂L/∂z of one row, from a (already written) and y.
fn write_delta(base: u32) {
    let cols = params.cols;
    let rows_f = f32(params.rows);
    let elements_f = rows_f * f32(cols);
    if LOSS == LOSS_CROSS_ENTROPY {
        var y_sum = 0.0;
        for (var j = 0u; j < cols; j++) {
            y_sum += smoothed_target(base + j, cols);
        }
        for (var j = 0u; j < cols; j++) {
            delta[base + j] = (a[base + j] * y_sum - smoothed_target(base + j, cols)) / rows_f;
        }
    } else if LOSS == LOSS_BINARY_CROSS_ENTROPY {
        for (var j = 0u; j < cols; j++) {
            delta[base + j] = (a[base + j] - y[base + j]) / elements_f;
        }
    } else {
        // Mse: g = ∂L/∂a, then back through the activation.
        var ga = 0.0; // Σ g·a, for softmax
        for (var j = 0u; j < cols; j++) {
            ga += 2.0 * (a[base + j] - y[base + j]) / elements_f * a[base + j];
        }
        for (var j = 0u; j < cols; j++) {
            let out = a[base + j];
            let g = 2.0 * (out - y[base + j]) / elements_f;
            if ACTIVATION == ACT_SOFTMAX {
                delta[base + j] = out * (g - ga);
            } else {
                delta[base + j] = g * activation_derivative(ACTIVATION, out, OUTPUT_LEAKY_SLOPE);
            }
        }
    }
}

// Training: activations, the row's share of the mean loss, and δ.
@compute @workgroup_size(WORKGROUP_SIZE)
fn output_loss(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let row = flat_index(gid, groups);
    if row >= params.rows {
        return;
    }
    let base = row * params.cols;
    let lse = activate_row(base);
    row_loss[row] = loss_of_row(base, lse);
    write_delta(base);
}

// output_loss in two passes of four storage buffers each, for a device that allows no more:
// activations and δ, then (reading the activations back) the losses.
@compute @workgroup_size(WORKGROUP_SIZE)
fn output_delta(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let row = flat_index(gid, groups);
    if row >= params.rows {
        return;
    }
    let base = row * params.cols;
    activate_row(base);
    write_delta(base);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn output_row_loss(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let row = flat_index(gid, groups);
    if row >= params.rows {
        return;
    }
    let base = row * params.cols;
    var lse = 0.0;
    if ACTIVATION == ACT_SOFTMAX && LOSS == LOSS_CROSS_ENTROPY {
        lse = log_sum_exp(base);
    }
    row_loss[row] = loss_of_row(base, lse);
}
