// augment.wgsl — a gathered batch of images deformed in place: a random affine map and an
// elastic distortion per sample, drawn from Philox keyed by the seed with the counter
// [index within the sample, sample, epoch, stream] (src/augment/mod.rs states the whole rule;
// src/augment/deform.rs is the same computation on the CPU, step for step).
//
// One workgroup per image. The elastic field is drawn into workgroup memory, smoothed there
// separably (rows into `image`, then columns back), and the source image is then loaded into
// `image`, so that every invocation reads the undeformed image while the batch row is rewritten.
// `samples[cursor + row]` is the row's index in the training set (the epoch's order, or a streamed
// slab's sample ids), with the cursor in `counters[1]`, as the gather reads it.

// Pixels per image.
override PIXELS: u32 = 784u;
// PIXELS with the elastic distortion, else 1 (no field is stored).
override FIELD_PIXELS: u32 = 1u;
override AFFINE: bool = false;
override ELASTIC: bool = false;

const AFFINE_STREAM: u32 = 0x61666669u;
const ELASTIC_STREAM: u32 = 0x656c6173u;

struct AugmentParams {
    rows: u32,
    height: u32,
    width: u32,
    // The Gaussian's last tap: gaussian[0 ..= radius].
    radius: u32,
    key: vec2<u32>,
    // 1-based, written once per epoch.
    epoch: u32,
    _pad0: u32,
    rotate_radians: f32,
    scale: f32,
    shear_radians: f32,
    shift_pixels: f32,
    alpha: f32,
    _pad1: f32,
    _pad2: f32,
    _pad3: f32,
}

@group(0) @binding(0) var<uniform> params: AugmentParams;
@group(0) @binding(1) var<storage, read> samples: array<u32>;
@group(0) @binding(2) var<storage, read> counters: array<u32>;
@group(0) @binding(3) var<storage, read> gaussian: array<f32>;
@group(0) @binding(4) var<storage, read_write> x: array<f32>;

var<workgroup> image: array<f32, PIXELS>;
var<workgroup> field_x: array<f32, FIELD_PIXELS>;
var<workgroup> field_y: array<f32, FIELD_PIXELS>;

// image[r, c] = Σ g[|k − c|]·field[r, k] over the row's columns within the radius, ascending k.
fn smooth_rows(lane: u32, of_y: bool) {
    let width = params.width;
    for (var p = lane; p < PIXELS; p += WORKGROUP_SIZE) {
        let row_start = p - p % width;
        let column = p % width;
        let first = select(0u, column - params.radius, column > params.radius);
        let last = min(column + params.radius, width - 1u);
        var sum = 0.0;
        for (var k = first; k <= last; k++) {
            let tap = gaussian[max(k, column) - min(k, column)];
            sum += tap * select(field_x[row_start + k], field_y[row_start + k], of_y);
        }
        image[p] = sum;
    }
}

// field[r, c] = α·Σ g[|k − r|]·image[k, c] over the column's rows within the radius, ascending k.
fn smooth_columns(lane: u32, of_y: bool) {
    let width = params.width;
    for (var p = lane; p < PIXELS; p += WORKGROUP_SIZE) {
        let row = p / width;
        let column = p % width;
        let first = select(0u, row - params.radius, row > params.radius);
        let last = min(row + params.radius, params.height - 1u);
        var sum = 0.0;
        for (var k = first; k <= last; k++) {
            sum += gaussian[max(k, row) - min(k, row)] * image[k * width + column];
        }
        if of_y {
            field_y[p] = sum * params.alpha;
        } else {
            field_x[p] = sum * params.alpha;
        }
    }
}

// image at (column, row) = (px, py), 0 outside.
fn pixel(px: f32, py: f32) -> f32 {
    let inside = px >= 0.0 && py >= 0.0 && px < f32(params.width) && py < f32(params.height);
    if !inside {
        return 0.0;
    }
    return image[u32(py) * params.width + u32(px)];
}

// The bilinear sample of `image` at (px, py), pixels outside it 0.
fn bilinear(px_in: f32, py_in: f32) -> f32 {
    // Clamped so that the corners stay small integers; beyond one pixel outside all are 0.
    let px = clamp(px_in, -2.0, f32(params.width) + 1.0);
    let py = clamp(py_in, -2.0, f32(params.height) + 1.0);
    let x0 = floor(px);
    let y0 = floor(py);
    let fx = px - x0;
    let fy = py - y0;
    let top = (1.0 - fx) * pixel(x0, y0) + fx * pixel(x0 + 1.0, y0);
    let bottom = (1.0 - fx) * pixel(x0, y0 + 1.0) + fx * pixel(x0 + 1.0, y0 + 1.0);
    return (1.0 - fy) * top + fy * bottom;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn deform(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let row = group.x + group.y * groups.x;
    if row >= params.rows {
        return;
    }
    let sample = samples[counters[1] + row];
    let epoch = params.epoch;

    // M = R(θ)·H(φ)·diag(sx, sy) and the shift t (the identity without the affine map).
    var m = vec4<f32>(1.0, 0.0, 0.0, 1.0);
    var shift = vec2<f32>(0.0, 0.0);
    if AFFINE {
        let a = philox4x32_10(vec4<u32>(0u, sample, epoch, AFFINE_STREAM), params.key);
        let b = philox4x32_10(vec4<u32>(1u, sample, epoch, AFFINE_STREAM), params.key);
        let theta = signed_uniform(a.x) * params.rotate_radians;
        let sx = 1.0 + signed_uniform(a.y) * params.scale;
        let sy = 1.0 + signed_uniform(a.z) * params.scale;
        let tan_shear = tan(signed_uniform(a.w) * params.shear_radians);
        let s = sin(theta);
        let c = cos(theta);
        m = vec4<f32>(c * sx, (c * tan_shear - s) * sy, s * sx, (s * tan_shear + c) * sy);
        shift = vec2<f32>(
            signed_uniform(b.x) * params.shift_pixels,
            signed_uniform(b.y) * params.shift_pixels,
        );
    }

    if ELASTIC {
        for (var p = lane; p < PIXELS; p += WORKGROUP_SIZE) {
            let r = philox4x32_10(vec4<u32>(p, sample, epoch, ELASTIC_STREAM), params.key);
            field_x[p] = signed_uniform(r.x);
            field_y[p] = signed_uniform(r.y);
        }
        workgroupBarrier();
        smooth_rows(lane, false);
        workgroupBarrier();
        smooth_columns(lane, false);
        workgroupBarrier();
        smooth_rows(lane, true);
        workgroupBarrier();
        smooth_columns(lane, true);
        workgroupBarrier();
    }

    let base = row * PIXELS;
    for (var p = lane; p < PIXELS; p += WORKGROUP_SIZE) {
        image[p] = x[base + p];
    }
    workgroupBarrier();

    let cx = (f32(params.width) - 1.0) * 0.5;
    let cy = (f32(params.height) - 1.0) * 0.5;
    for (var p = lane; p < PIXELS; p += WORKGROUP_SIZE) {
        let u = f32(p % params.width) - cx;
        let v = f32(p / params.width) - cy;
        var px = cx + (m.x * u + m.y * v) + shift.x;
        var py = cy + (m.z * u + m.w * v) + shift.y;
        if ELASTIC {
            px += field_x[p];
            py += field_y[p];
        }
        x[base + p] = bilinear(px, py);
    }
}
