//! The deformations on the CPU, written step for step as `shaders/augment.wgsl` computes them
//! (same draws, same f32 operations in the same order), so both make the same images within f32
//! rounding.

use super::{AFFINE_STREAM, Augmentation, ELASTIC_STREAM, Elastic, TRUNCATE_SIGMAS};
use crate::rng::{philox_key, philox4x32_10, signed_uniform};

/// One sample's affine map in an epoch: output pixel `p` samples `c + M·(p − c) + t`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AffineDraw {
    /// `M`, row-major: `[m00, m01, m10, m11]`.
    pub matrix: [f32; 4],
    /// `t`, in pixels: `[x, y]`.
    pub shift: [f32; 2],
}

impl AffineDraw {
    /// The identity map.
    pub const IDENTITY: AffineDraw = AffineDraw {
        matrix: [1.0, 0.0, 0.0, 1.0],
        shift: [0.0, 0.0],
    };

    /// The map of `sample` in 1-based `epoch` (the identity without an affine deformation).
    pub fn draw(augmentation: &Augmentation, seed: u64, epoch: u32, sample: u32) -> AffineDraw {
        let Some(affine) = augmentation.affine else {
            return AffineDraw::IDENTITY;
        };
        let key = philox_key(seed);
        let a = philox4x32_10([0, sample, epoch, AFFINE_STREAM], key);
        let b = philox4x32_10([1, sample, epoch, AFFINE_STREAM], key);
        let theta = signed_uniform(a[0]) * affine.rotate_degrees.to_radians();
        let sx = 1.0 + signed_uniform(a[1]) * affine.scale;
        let sy = 1.0 + signed_uniform(a[2]) * affine.scale;
        let tan_shear = (signed_uniform(a[3]) * affine.shear_degrees.to_radians()).tan();
        let (sin, cos) = theta.sin_cos();
        AffineDraw {
            matrix: [
                cos * sx,
                (cos * tan_shear - sin) * sy,
                sin * sx,
                (sin * tan_shear + cos) * sy,
            ],
            shift: [
                signed_uniform(b[0]) * affine.shift_pixels,
                signed_uniform(b[1]) * affine.shift_pixels,
            ],
        }
    }
}

/// The buffers [`deform_in_place`] needs, kept between images so that deforming a batch
/// allocates nothing after its first image.
#[derive(Clone, Debug, Default)]
pub struct DeformScratch {
    /// The image being deformed, copied before its pixels are overwritten.
    source: Vec<f32>,
    /// The elastic field's x and y displacements, one per pixel.
    dx: Vec<f32>,
    dy: Vec<f32>,
    /// A field smoothed along the rows only.
    rows_done: Vec<f32>,
    /// The Gaussian ([`gaussian_kernel`]).
    gaussian: Vec<f32>,
}

/// The normalised Gaussian of `sigma` from its centre outwards, `g[0..=radius]`, radius
/// `round(4σ)` but no more than `longest_side − 1` (farther taps never land in the image; the
/// normalisation still counts them, as scipy's does).
pub fn gaussian_kernel(sigma: f32, longest_side: usize) -> Vec<f32> {
    let mut gaussian = Vec::new();
    write_gaussian_kernel(sigma, longest_side, &mut gaussian);
    gaussian
}

/// [`gaussian_kernel`] written over `gaussian`.
fn write_gaussian_kernel(sigma: f32, longest_side: usize, gaussian: &mut Vec<f32>) {
    let sigma = f64::from(sigma);
    let radius = (TRUNCATE_SIGMAS * sigma + 0.5) as usize;
    let weight = |k: usize| (-0.5 * (k as f64 / sigma).powi(2)).exp();
    let total: f64 = weight(0) + 2.0 * (1..=radius).map(weight).sum::<f64>();
    gaussian.clear();
    gaussian.extend(
        (0..=radius.min(longest_side.saturating_sub(1))).map(|k| (weight(k) / total) as f32),
    );
}

/// The smoothed elastic field of `sample` in `epoch`, scaled by α: `(dx, dy)`, one value per
/// pixel, row-major.
pub fn elastic_field(
    elastic: &Elastic,
    seed: u64,
    (epoch, sample): (u32, u32),
    (height, width): (usize, usize),
) -> (Vec<f32>, Vec<f32>) {
    let mut scratch = DeformScratch::default();
    write_elastic_field(
        elastic,
        seed,
        (epoch, sample),
        (height, width),
        &mut scratch,
    );
    (scratch.dx, scratch.dy)
}

/// [`elastic_field`] written into `scratch.dx` and `scratch.dy`.
fn write_elastic_field(
    elastic: &Elastic,
    seed: u64,
    (epoch, sample): (u32, u32),
    (height, width): (usize, usize),
    scratch: &mut DeformScratch,
) {
    let key = philox_key(seed);
    let pixels = height * width;
    let DeformScratch {
        dx,
        dy,
        rows_done,
        gaussian,
        ..
    } = scratch;
    for field in [&mut *dx, &mut *dy, &mut *rows_done] {
        field.resize(pixels, 0.0);
    }
    // A draw per pair of pixels: words 0 and 1 displace pixel 2i, words 2 and 3 pixel 2i + 1.
    for i in 0..pixels.div_ceil(2) {
        let r = philox4x32_10([i as u32, sample, epoch, ELASTIC_STREAM], key);
        dx[2 * i] = signed_uniform(r[0]);
        dy[2 * i] = signed_uniform(r[1]);
        if 2 * i + 1 < pixels {
            dx[2 * i + 1] = signed_uniform(r[2]);
            dy[2 * i + 1] = signed_uniform(r[3]);
        }
    }
    write_gaussian_kernel(elastic.sigma, height.max(width), gaussian);
    for field in [dx, dy] {
        smooth_rows(field, rows_done, gaussian, width);
        smooth_columns(rows_done, field, gaussian, (height, width));
        field.iter_mut().for_each(|d| *d *= elastic.alpha);
    }
}

/// `to[r, c] = Σ g[|k − c|]·from[r, k]` over the row's columns `k` within the radius, in
/// ascending `k`: taken offset by offset over whole rows, so that the loop runs over contiguous
/// pixels, each sum still in ascending `k`.
fn smooth_rows(from: &[f32], to: &mut [f32], gaussian: &[f32], width: usize) {
    let radius = gaussian.len() - 1;
    to.fill(0.0);
    for (from, to) in from.chunks_exact(width).zip(to.chunks_exact_mut(width)) {
        for offset in -(radius as isize)..=radius as isize {
            let g = gaussian[offset.unsigned_abs()];
            // Columns c with 0 ≤ c + offset < width.
            let first = (-offset).max(0) as usize;
            let end = (width as isize - offset).min(width as isize).max(0) as usize;
            if first >= end {
                continue;
            }
            let source = &from[(first as isize + offset) as usize..][..end - first];
            for (out, &value) in to[first..end].iter_mut().zip(source) {
                *out += g * value;
            }
        }
    }
}

/// `to[r, c] = Σ g[|k − r|]·from[k, c]` over the column's rows `k` within the radius, in
/// ascending `k`: row by row, so that the loop runs over contiguous pixels.
fn smooth_columns(from: &[f32], to: &mut [f32], gaussian: &[f32], (height, width): (usize, usize)) {
    let radius = gaussian.len() - 1;
    for (row, out) in to.chunks_exact_mut(width).enumerate() {
        out.fill(0.0);
        for k in row.saturating_sub(radius)..=(row + radius).min(height - 1) {
            let g = gaussian[k.abs_diff(row)];
            for (o, &value) in out.iter_mut().zip(&from[k * width..][..width]) {
                *o += g * value;
            }
        }
    }
}

/// The bilinear sample of `image` at `(x, y)` (column, row), pixels outside it 0.
fn bilinear(image: &[f32], (height, width): (usize, usize), x: f32, y: f32) -> f32 {
    // Clamped so that the corners stay small integers; beyond one pixel outside all are 0.
    let x = x.clamp(-2.0, width as f32 + 1.0);
    let y = y.clamp(-2.0, height as f32 + 1.0);
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let pixel = |column: f32, row: f32| {
        let inside = column >= 0.0 && row >= 0.0 && column < width as f32 && row < height as f32;
        if inside {
            image[row as usize * width + column as usize]
        } else {
            0.0
        }
    };
    let top = (1.0 - fx) * pixel(x0, y0) + fx * pixel(x0 + 1.0, y0);
    let bottom = (1.0 - fx) * pixel(x0, y0 + 1.0) + fx * pixel(x0 + 1.0, y0 + 1.0);
    (1.0 - fy) * top + fy * bottom
}

/// `image` (row-major, `shape`) as sample `sample` of the training set is deformed in 1-based
/// `epoch` by a run seeded with `seed`.
pub fn deform(
    augmentation: &Augmentation,
    seed: u64,
    (epoch, sample): (u32, u32),
    shape: (usize, usize),
    image: &[f32],
) -> Vec<f32> {
    let mut pixels = image.to_vec();
    let mut scratch = DeformScratch::default();
    deform_in_place(
        augmentation,
        seed,
        (epoch, sample),
        shape,
        &mut pixels,
        &mut scratch,
    );
    pixels
}

/// [`deform`] over the image's own pixels, with buffers from `scratch`.
pub fn deform_in_place(
    augmentation: &Augmentation,
    seed: u64,
    (epoch, sample): (u32, u32),
    shape: (usize, usize),
    pixels: &mut [f32],
    scratch: &mut DeformScratch,
) {
    let (height, width) = shape;
    let draw = AffineDraw::draw(augmentation, seed, epoch, sample);
    let elastic = augmentation.elastic;
    if let Some(elastic) = &elastic {
        write_elastic_field(elastic, seed, (epoch, sample), shape, scratch);
    }
    scratch.source.clear();
    scratch.source.extend_from_slice(pixels);
    let [m00, m01, m10, m11] = draw.matrix;
    let (cx, cy) = ((width as f32 - 1.0) * 0.5, (height as f32 - 1.0) * 0.5);
    for (p, out) in pixels[..height * width].iter_mut().enumerate() {
        let u = (p % width) as f32 - cx;
        let v = (p / width) as f32 - cy;
        let mut x = cx + (m00 * u + m01 * v) + draw.shift[0];
        let mut y = cy + (m10 * u + m11 * v) + draw.shift[1];
        if elastic.is_some() {
            x += scratch.dx[p];
            y += scratch.dy[p];
        }
        *out = bilinear(&scratch.source, shape, x, y);
    }
}
