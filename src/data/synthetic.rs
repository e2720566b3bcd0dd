//! A built-in synthetic data set shaped like MNIST (28×28 grey images, ten classes), so that the
//! trainer runs on a fresh machine with nothing downloaded.
//!
//! Each class is a "glyph" of three or four strokes drawn from the seed. A sample is its class's
//! glyph with every stroke end jittered by up to 1.5 pixels, the whole glyph shifted by up to two
//! pixels, a random stroke width and brightness, and pixel noise: learnable, but not by a lookup.

use crate::data::Dataset;
use crate::rng::Rng;

/// Image side in pixels.
pub const SIDE: usize = 28;
/// Number of classes.
pub const CLASSES: usize = 10;

type Stroke = [(f32, f32); 2];

fn glyphs(rng: &mut Rng) -> Vec<Vec<Stroke>> {
    (0..CLASSES)
        .map(|_| {
            let strokes = 3 + rng.below(2) as usize;
            let mut point = || (rng.uniform(5.0, 22.0) as f32, rng.uniform(5.0, 22.0) as f32);
            (0..strokes).map(|_| [point(), point()]).collect()
        })
        .collect()
}

/// Distance from `p` to the segment `a`–`b`.
fn distance_to_segment(p: (f32, f32), [a, b]: Stroke) -> f32 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let length2 = dx * dx + dy * dy;
    let t = if length2 > 0.0 {
        (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / length2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (cx, cy) = (a.0 + t * dx, a.1 + t * dy);
    ((p.0 - cx).powi(2) + (p.1 - cy).powi(2)).sqrt()
}

fn render(strokes: &[Stroke], rng: &mut Rng, out: &mut [u8]) {
    let (shift_x, shift_y) = (rng.uniform(-2.0, 2.0) as f32, rng.uniform(-2.0, 2.0) as f32);
    let mut jitter = || rng.uniform(-1.5, 1.5) as f32;
    let strokes: Vec<Stroke> = strokes
        .iter()
        .map(|[a, b]| {
            [
                (a.0 + shift_x + jitter(), a.1 + shift_y + jitter()),
                (b.0 + shift_x + jitter(), b.1 + shift_y + jitter()),
            ]
        })
        .collect();
    let width = rng.uniform(0.8, 1.8) as f32;
    let brightness = rng.uniform(0.6, 1.0) as f32;
    for (i, pixel) in out.iter_mut().enumerate() {
        let p = ((i % SIDE) as f32, (i / SIDE) as f32);
        let nearest = strokes
            .iter()
            .map(|&s| distance_to_segment(p, s))
            .fold(f32::INFINITY, f32::min);
        // Full intensity inside the stroke, fading over one pixel at its edge.
        let ink = (width + 1.0 - nearest).clamp(0.0, 1.0) * brightness;
        let noise = rng.uniform(0.0, 0.15) as f32;
        *pixel = ((ink + noise).min(1.0) * 255.0).round() as u8;
    }
}

fn sample_set(glyphs: &[Vec<Stroke>], count: usize, rng: &mut Rng) -> Dataset {
    let mut images = vec![0u8; count * SIDE * SIDE];
    let mut labels = Vec::with_capacity(count);
    for (i, image) in images.chunks_mut(SIDE * SIDE).enumerate() {
        // Classes in turn, so every prefix of the set is balanced.
        let label = i % CLASSES;
        render(&glyphs[label], rng, image);
        labels.push(label as u32);
    }
    Dataset::images(images, (SIDE, SIDE), labels, CLASSES)
        .expect("the pixels are count images of SIDE × SIDE")
}

/// A training set of `train` and a test set of `test` samples; the glyphs and every sample are
/// fixed by `seed`. Each set has a stream of its own, so the test set does not depend on the size
/// of the training set.
pub fn generate(train: usize, test: usize, seed: u64) -> (Dataset, Dataset) {
    let glyphs = glyphs(&mut Rng::new(seed));
    let train_set = sample_set(&glyphs, train, &mut Rng::new(seed ^ 0x7261_696e));
    let test_set = sample_set(&glyphs, test, &mut Rng::new(seed ^ 0x7465_7374));
    (train_set, test_set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let (a, _) = generate(50, 10, 1);
        let (b, _) = generate(50, 10, 1);
        let (c, _) = generate(50, 10, 2);
        assert_eq!(a, b);
        assert_ne!(a.features, c.features);
        a.validate("synthetic").unwrap();
    }

    #[test]
    fn the_test_set_does_not_depend_on_the_training_set_size() {
        assert_eq!(generate(10, 30, 5).1, generate(200, 30, 5).1);
    }

    #[test]
    fn classes_are_balanced_and_images_have_ink() {
        let (train, test) = generate(1000, 100, 3);
        let (labels, _) = train.targets.classes().unwrap();
        for class in 0..CLASSES as u32 {
            assert_eq!(labels.iter().filter(|&&l| l == class).count(), 100);
        }
        assert_eq!(test.len(), 100);
        let pixels = train.features.bytes().unwrap();
        let bright = pixels.iter().filter(|&&p| p > 128).count() as f64 / pixels.len() as f64;
        assert!(
            (0.03..0.5).contains(&bright),
            "fraction of bright pixels {bright}"
        );
    }
}
