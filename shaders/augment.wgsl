// augment.wgsl — a gathered batch of images deformed in place: a random affine map and an
// elastic distortion per sample, drawn from Philox keyed by the seed with the counter
// [index within the sample, sample, epoch, stream] (src/augment/mod.rs states the whole rule;
// src/augment/deform.rs is the same computation on the CPU, step for step).
//
// One workgroup per image. The elastic field (x and y displacements side by side, smoothed
// together) is drawn into workgroup memory and smoothed there separably, rows into `scratch` and
// then columns back; the source image is then loaded into `scratch`, so that every invocation
// reads the undeformed image while the batch row is rewritten.
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
    _pad_shape: u32,
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

// The displacements (x, y) of each pixel: raw, then smoothed and scaled by α.
var<workgroup> field: array<vec2<f32>, FIELD_PIXELS>;
// The field smoothed along rows; then the source image, in `.x`.
var<workgroup> scratch: array<vec2<f32>, PIXELS>;

// Each invocation smooths a block of BLOCK outputs along a row (then a column), so that each
// value it loads serves BLOCK sums. Every loop runs over the whole row or column: `gaussian` is
// zero past the radius (and BLOCK entries further), which keeps the loops the same for every
// invocation and adds exact zeros only.
const BLOCK: u32 = 4u;

// The four sums of a block, each over ascending k.
struct Sums {
    s0: vec2<f32>,
    s1: vec2<f32>,
    s2: vec2<f32>,
    s3: vec2<f32>,
}

// Adds value·g[|k − (first + j)|] to sum j of `sums`.
fn accumulate(sums: ptr<function, Sums>, value: vec2<f32>, k: u32, first: u32) {
    (*sums).s0 += gaussian[max(k, first) - min(k, first)] * value;
    (*sums).s1 += gaussian[max(k, first + 1u) - min(k, first + 1u)] * value;
    (*sums).s2 += gaussian[max(k, first + 2u) - min(k, first + 2u)] * value;
    (*sums).s3 += gaussian[max(k, first + 3u) - min(k, first + 3u)] * value;
}

fn sum_of(sums: Sums, j: u32) -> vec2<f32> {
    switch j {
        case 0u: { return sums.s0; }
        case 1u: { return sums.s1; }
        case 2u: { return sums.s2; }
        default: { return sums.s3; }
    }
}

// scratch[r, c] = Σ g[|k − c|]·field[r, k] over the row, ascending k.
fn smooth_rows(lane: u32) {
    let width = params.width;
    let blocks_per_row = (width + BLOCK - 1u) / BLOCK;
    for (var b = lane; b < params.height * blocks_per_row; b += WORKGROUP_SIZE) {
        let row_start = (b / blocks_per_row) * width;
        let first = (b % blocks_per_row) * BLOCK;
        var sums = Sums(vec2<f32>(0.0), vec2<f32>(0.0), vec2<f32>(0.0), vec2<f32>(0.0));
        for (var k = 0u; k < width; k++) {
            accumulate(&sums, field[row_start + k], k, first);
        }
        for (var j = 0u; j < min(BLOCK, width - first); j++) {
            scratch[row_start + first + j] = sum_of(sums, j);
        }
    }
}

// field[r, c] = α·Σ g[|k − r|]·scratch[k, c] over the column, ascending k.
fn smooth_columns(lane: u32) {
    let width = params.width;
    let height = params.height;
    let block_rows = (height + BLOCK - 1u) / BLOCK;
    for (var b = lane; b < block_rows * width; b += WORKGROUP_SIZE) {
        let column = b % width;
        let first = (b / width) * BLOCK;
        var sums = Sums(vec2<f32>(0.0), vec2<f32>(0.0), vec2<f32>(0.0), vec2<f32>(0.0));
        for (var k = 0u; k < height; k++) {
            accumulate(&sums, scratch[k * width + column], k, first);
        }
        for (var j = 0u; j < min(BLOCK, height - first); j++) {
            field[(first + j) * width + column] = sum_of(sums, j) * params.alpha;
        }
    }
}

// The source image at (column, row) = (px, py), 0 outside.
fn pixel(px: f32, py: f32) -> f32 {
    let inside = px >= 0.0 && py >= 0.0 && px < f32(params.width) && py < f32(params.height);
    if !inside {
        return 0.0;
    }
    return scratch[u32(py) * params.width + u32(px)].x;
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
        // A draw per pair of pixels: words 0 and 1 displace pixel 2i, words 2 and 3 pixel 2i + 1.
        for (var i = lane; 2u * i < PIXELS; i += WORKGROUP_SIZE) {
            let r = philox4x32_10(vec4<u32>(i, sample, epoch, ELASTIC_STREAM), params.key);
            field[2u * i] = vec2<f32>(signed_uniform(r.x), signed_uniform(r.y));
            if 2u * i + 1u < PIXELS {
                field[2u * i + 1u] = vec2<f32>(signed_uniform(r.z), signed_uniform(r.w));
            }
        }
        workgroupBarrier();
        smooth_rows(lane);
        workgroupBarrier();
        smooth_columns(lane);
        workgroupBarrier();
    }

    let base = row * PIXELS;
    for (var p = lane; p < PIXELS; p += WORKGROUP_SIZE) {
        scratch[p].x = x[base + p];
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
            px += field[p].x;
            py += field[p].y;
        }
        x[base + p] = bilinear(px, py);
    }
}
