//! Image deformations: the CPU's affine map and elastic field against formulas written anew here
//! in f64 (a rotation matrix, a tent-kernel bilinear sample, a direct 2-D Gaussian convolution),
//! the GPU's deformed images against the CPU's, both trainers training on them, a resumed
//! augmented run equal to an uninterrupted one, and bad input refused with the option named.

mod common;

use std::sync::Arc;

use wgpu_mlp::augment::{Affine, Augmentation, Elastic, deform, elastic_field, parse_image_shape};
use wgpu_mlp::data::Dataset;
use wgpu_mlp::error::Error;
use wgpu_mlp::gpu::kernels::augment::deform_images;
use wgpu_mlp::ndarray::{Array1, Array2};
use wgpu_mlp::rng::{Rng, philox_key, philox4x32_10};
use wgpu_mlp::train::{CpuTrainer, DataPlacement, GpuTrainer, TrainConfig, Trainer};
use wgpu_mlp::{Activation, Gpu, Loss, Mlp, Optimizer, OptimizerConfig};

const SEED: u64 = 1234;

/// Philox's stream words for the affine draws and the elastic field, as documented in
/// `src/augment/mod.rs`.
const AFFINE_STREAM: u32 = 0x6166_6669;
const ELASTIC_STREAM: u32 = 0x656c_6173;

/// A uniform in [−1, 1) from 32 random bits, in f64: the top 24 bits over 2²³, minus 1.
fn signed(bits: u32) -> f64 {
    f64::from(bits >> 8) / f64::from(1u32 << 23) - 1.0
}

/// A smooth test image with a bright blob off centre, values in [0, 1].
fn test_image((height, width): (usize, usize)) -> Vec<f32> {
    (0..height * width)
        .map(|p| {
            let (r, c) = ((p / width) as f64, (p % width) as f64);
            let blob = (-((r - 0.3 * height as f64).powi(2) + (c - 0.6 * width as f64).powi(2))
                / 6.0)
                .exp();
            (0.7 * blob + 0.3 * (c / width as f64)) as f32
        })
        .collect()
}

/// Bilinear sampling as a tent kernel: Σ over the pixels of max(0, 1 − |x − i|)·max(0, 1 − |y −
/// j|)·image[j, i], every pixel outside the image 0.
fn tent_sample(image: &[f32], (height, width): (usize, usize), x: f64, y: f64) -> f64 {
    let mut sum = 0.0;
    for j in 0..height {
        for i in 0..width {
            let weight =
                (1.0 - (x - i as f64).abs()).max(0.0) * (1.0 - (y - j as f64).abs()).max(0.0);
            sum += weight * f64::from(image[j * width + i]);
        }
    }
    sum
}

fn assert_close(what: &str, got: &[f32], want: &[f64], atol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (f64::from(g) - w).abs() <= atol,
            "{what}: element {i} is {g}, expected {w} (atol {atol})"
        );
    }
}

#[test]
fn a_rotation_moves_pixels_as_a_rotation_matrix_and_a_tent_kernel_say() {
    let shape = (9, 11);
    let image = test_image(shape);
    let augmentation = Augmentation {
        affine: Some(Affine {
            rotate_degrees: 30.0,
            scale: 0.0,
            shear_degrees: 0.0,
            shift_pixels: 0.0,
        }),
        elastic: None,
    };
    for (epoch, sample) in [(1u32, 0u32), (2, 5), (7, 123)] {
        let got = deform(&augmentation, SEED, (epoch, sample), shape, &image);
        let bits = philox4x32_10([0, sample, epoch, AFFINE_STREAM], philox_key(SEED));
        let theta = signed(bits[0]) * 30f64.to_radians();
        let (cx, cy) = (5.0, 4.0);
        let want: Vec<f64> = (0..99)
            .map(|p| {
                let (u, v) = ((p % 11) as f64 - cx, (p / 11) as f64 - cy);
                let x = cx + theta.cos() * u - theta.sin() * v;
                let y = cy + theta.sin() * u + theta.cos() * v;
                tent_sample(&image, shape, x, y)
            })
            .collect();
        assert_close("rotated image", &got, &want, 2e-5);
        assert!(theta.abs() > 0.01, "the draw should rotate");
    }
}

#[test]
fn scale_shear_and_shift_follow_the_documented_map() {
    let shape = (8, 8);
    let image = test_image(shape);
    let affine = Affine {
        rotate_degrees: 15.0,
        scale: 0.2,
        shear_degrees: 20.0,
        shift_pixels: 2.0,
    };
    let augmentation = Augmentation {
        affine: Some(affine),
        elastic: None,
    };
    let (epoch, sample) = (3u32, 17u32);
    let got = deform(&augmentation, SEED, (epoch, sample), shape, &image);
    let key = philox_key(SEED);
    let a = philox4x32_10([0, sample, epoch, AFFINE_STREAM], key);
    let b = philox4x32_10([1, sample, epoch, AFFINE_STREAM], key);
    let theta = signed(a[0]) * 15f64.to_radians();
    let (sx, sy) = (1.0 + signed(a[1]) * 0.2, 1.0 + signed(a[2]) * 0.2);
    let shear = signed(a[3]) * 20f64.to_radians();
    let (tx, ty) = (signed(b[0]) * 2.0, signed(b[1]) * 2.0);
    // R(θ)·H(φ)·diag(sx, sy), multiplied out as three matrices.
    let rotation = [[theta.cos(), -theta.sin()], [theta.sin(), theta.cos()]];
    let shearing = [[1.0, shear.tan()], [0.0, 1.0]];
    let scaling = [[sx, 0.0], [0.0, sy]];
    let product = |p: [[f64; 2]; 2], q: [[f64; 2]; 2]| {
        let mut r = [[0.0; 2]; 2];
        for i in 0..2 {
            for j in 0..2 {
                r[i][j] = p[i][0] * q[0][j] + p[i][1] * q[1][j];
            }
        }
        r
    };
    let m = product(product(rotation, shearing), scaling);
    let c = 3.5;
    let want: Vec<f64> = (0..64)
        .map(|p| {
            let (u, v) = ((p % 8) as f64 - c, (p / 8) as f64 - c);
            let x = c + m[0][0] * u + m[0][1] * v + tx;
            let y = c + m[1][0] * u + m[1][1] * v + ty;
            tent_sample(&image, shape, x, y)
        })
        .collect();
    assert_close("affine image", &got, &want, 2e-5);
}

/// The elastic field in f64: raw displacements from Philox, convolved directly in 2-D with
/// exp(−(dx² + dy²)/2σ²) over the taps within round(4σ) of each axis, normalised by the square
/// of the 1-D kernel's sum, zero outside the image (scipy's `gaussian_filter(mode="constant")`).
fn direct_field(
    sigma: f64,
    alpha: f64,
    (epoch, sample): (u32, u32),
    shape: (usize, usize),
) -> [Vec<f64>; 2] {
    let (height, width) = shape;
    let key = philox_key(SEED);
    // Pixel p's displacements are words 0 and 1 (p even) or 2 and 3 (p odd) of draw p / 2.
    let raw: Vec<[f64; 2]> = (0..height * width)
        .map(|p| {
            let r = philox4x32_10([(p / 2) as u32, sample, epoch, ELASTIC_STREAM], key);
            let first = 2 * (p % 2);
            [signed(r[first]), signed(r[first + 1])]
        })
        .collect();
    let radius = (4.0 * sigma + 0.5).floor() as i64;
    let norm: f64 = (-radius..=radius)
        .map(|k| (-(k * k) as f64 / (2.0 * sigma * sigma)).exp())
        .sum();
    let mut out = [vec![0.0; height * width], vec![0.0; height * width]];
    for r in 0..height as i64 {
        for c in 0..width as i64 {
            for (axis, field) in out.iter_mut().enumerate() {
                let mut sum = 0.0;
                for j in 0..height as i64 {
                    for i in 0..width as i64 {
                        let (dr, dc) = (j - r, i - c);
                        if dr.abs() <= radius && dc.abs() <= radius {
                            let w = (-((dr * dr + dc * dc) as f64) / (2.0 * sigma * sigma)).exp();
                            sum += w * raw[(j * width as i64 + i) as usize][axis];
                        }
                    }
                }
                field[(r * width as i64 + c) as usize] = alpha * sum / (norm * norm);
            }
        }
    }
    out
}

#[test]
fn the_elastic_field_is_a_direct_two_dimensional_gaussian_convolution() {
    for (sigma, alpha, shape) in [
        (1.5f32, 3.0f32, (9, 7)),
        (6.0, 34.0, (12, 10)),
        (0.8, 2.0, (5, 13)),
    ] {
        let key = (2, 41);
        let (dx, dy) = elastic_field(&Elastic { sigma, alpha }, SEED, key, shape);
        let [want_x, want_y] = direct_field(f64::from(sigma), f64::from(alpha), key, shape);
        let atol = 1e-6 * f64::from(alpha);
        assert_close("elastic dx", &dx, &want_x, atol);
        assert_close("elastic dy", &dy, &want_y, atol);
        assert!(
            dx.iter().any(|d| d.abs() > 1e-3 * alpha),
            "the field should move pixels"
        );
    }
}

#[test]
fn an_elastic_image_samples_each_pixel_at_its_displaced_position() {
    let shape = (10, 9);
    let image = test_image(shape);
    let elastic = Elastic {
        sigma: 2.0,
        alpha: 8.0,
    };
    let augmentation = Augmentation {
        affine: None,
        elastic: Some(elastic),
    };
    let got = deform(&augmentation, SEED, (4, 9), shape, &image);
    let [fx, fy] = direct_field(2.0, 8.0, (4, 9), shape);
    let want: Vec<f64> = (0..90)
        .map(|p| {
            let (x, y) = ((p % 9) as f64 + fx[p], (p / 9) as f64 + fy[p]);
            tent_sample(&image, shape, x, y)
        })
        .collect();
    assert_close("elastic image", &got, &want, 1e-4);
}

#[test]
fn draws_differ_by_sample_and_epoch_and_repeat_for_the_same_ones() {
    let shape = (28, 28);
    let image = test_image(shape);
    let both = Augmentation::from_kinds("affine,elastic").unwrap();
    let a = deform(&both, SEED, (1, 3), shape, &image);
    assert_eq!(a, deform(&both, SEED, (1, 3), shape, &image));
    assert_ne!(a, deform(&both, SEED, (2, 3), shape, &image));
    assert_ne!(a, deform(&both, SEED, (1, 4), shape, &image));
    assert_ne!(a, deform(&both, SEED + 1, (1, 3), shape, &image));
}

/// `count` images of `shape` as floats in [0, 1], with their index as the label's source.
fn images(count: usize, shape: (usize, usize), seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let base = test_image(shape);
    (0..count)
        .flat_map(|_| {
            let gain = rng.uniform(0.5, 1.0) as f32;
            base.iter().map(move |&v| v * gain).collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn the_gpu_deforms_as_the_cpu_does() {
    let gpu = common::gpu();
    let kinds = ["affine", "elastic", "affine,elastic"];
    for (kinds, shape) in kinds.into_iter().zip([(28, 28), (12, 10), (28, 28)]) {
        let mut augmentation = Augmentation::from_kinds(kinds).unwrap();
        if let Some(affine) = augmentation.affine.as_mut() {
            affine.shear_degrees = 10.0;
            affine.shift_pixels = 1.5;
        }
        let pixels = shape.0 * shape.1;
        let samples = [0u32, 7, 7000, 3];
        let source = images(samples.len(), shape, 5);
        let got = deform_images(&gpu, (&augmentation, SEED), (3, &samples), shape, &source)
            .unwrap_or_else(|e| panic!("{kinds}: {e}"));
        let want: Vec<f64> = samples
            .iter()
            .enumerate()
            .flat_map(|(i, &sample)| {
                let image = &source[i * pixels..(i + 1) * pixels];
                deform(&augmentation, SEED, (3, sample), shape, image)
            })
            .map(f64::from)
            .collect();
        assert_close(kinds, &got, &want, 2e-4);
        assert_ne!(got, source, "{kinds}: nothing was deformed");
    }
}

#[test]
fn images_too_large_for_workgroup_memory_are_refused_naming_the_limit() {
    let gpu = Gpu::with_limits(common::adapter_choice(), |limits| {
        limits.max_compute_workgroup_storage_size = 8192;
    })
    .unwrap_or_else(|e| panic!("GPU tests need an adapter: {e}"));
    let elastic = Augmentation::from_kinds("elastic").unwrap();
    let shape = (28, 28);
    let source = images(1, shape, 1);
    let error = deform_images(&gpu, (&elastic, SEED), (1, &[0]), shape, &source).unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, Error::Unsupported { .. }), "{message}");
    assert!(
        message.contains("max_compute_workgroup_storage_size"),
        "{message}"
    );
    assert!(message.contains("28×28"), "{message}");
    // The affine map alone keeps only the image there (6,280 bytes), which fits.
    let affine = Augmentation::from_kinds("affine").unwrap();
    deform_images(&gpu, (&affine, SEED), (1, &[0]), shape, &source).unwrap();
}

/// 60 images of 8×8 bytes in 3 classes, with their image shape.
fn image_set(count: usize, seed: u64) -> Dataset {
    let mut rng = Rng::new(seed);
    let labels: Vec<u32> = (0..count).map(|i| (i % 3) as u32).collect();
    let pixels: Vec<u8> = labels
        .iter()
        .flat_map(|&label| {
            let noise: Vec<u8> = (0..64).map(|_| rng.below(40) as u8).collect();
            (0..64).map(move |p| {
                let stripe = (p % 8) / 3 == label as usize;
                noise[p] + if stripe { 200 } else { 0 }
            })
        })
        .collect();
    Dataset::images(pixels, (8, 8), labels, 3).unwrap()
}

fn config() -> TrainConfig {
    TrainConfig {
        optimizer: OptimizerConfig {
            optimizer: Optimizer::ADAM,
            ..OptimizerConfig::sgd(0.01)
        },
        batch_size: 8,
        seed: 9,
        regularization: Default::default(),
    }
}

fn mlp() -> Mlp {
    Mlp::new(
        &[64, 7, 3],
        Activation::Tanh,
        Activation::Softmax,
        Loss::CrossEntropy,
        4,
    )
    .unwrap()
}

fn augmentation() -> Augmentation {
    Augmentation {
        affine: Some(Affine {
            shear_degrees: 5.0,
            shift_pixels: 1.0,
            ..Affine::default()
        }),
        elastic: Some(Elastic {
            sigma: 2.0,
            alpha: 4.0,
        }),
    }
}

fn gpu_trained(gpu: &Gpu, set: &Dataset, placement: DataPlacement, epochs: usize) -> Mlp {
    let mut trainer = GpuTrainer::with_placement(
        gpu,
        &mlp(),
        Arc::new(set.clone()),
        None,
        config(),
        placement,
    )
    .unwrap();
    trainer.set_augmentation(&augmentation()).unwrap();
    for _ in 0..epochs {
        trainer.train_epoch(&mut |_| {}).unwrap();
    }
    trainer.to_mlp().unwrap()
}

#[test]
fn both_trainers_train_on_the_same_deformed_images_in_every_placement() {
    let gpu = common::gpu();
    let set = image_set(60, 2);
    let resident = gpu_trained(&gpu, &set, DataPlacement::Resident, 2);
    let streamed = gpu_trained(&gpu, &set, DataPlacement::Streamed, 2);
    assert_eq!(streamed, resident, "streamed data deformed differently");
    // 2 KiB bindings: 32 images of 64 bytes to a chunk, so 60 images make 2 (and a batch of 8
    // rows of 64 floats is 2 KiB).
    let small = Gpu::with_limits(common::adapter_choice(), |limits| {
        limits.max_storage_buffer_binding_size = 2048;
    })
    .unwrap();
    let chunked = gpu_trained(&small, &set, DataPlacement::Resident, 2);
    assert_eq!(chunked, resident, "chunked data deformed differently");

    let mut plain = GpuTrainer::new(&gpu, &mlp(), &set, None, config()).unwrap();
    for _ in 0..2 {
        plain.train_epoch(&mut |_| {}).unwrap();
    }
    let plain = plain.to_mlp().unwrap();

    let mut cpu = CpuTrainer::new(&mlp(), &set, None, config()).unwrap();
    cpu.set_augmentation(&augmentation()).unwrap();
    for _ in 0..2 {
        cpu.train_epoch(&mut |_| {}).unwrap();
    }
    let cpu = cpu.to_mlp().unwrap();
    // The GPU's augmented weights are the CPU's within rounding, and far from unaugmented ones.
    let distance = |a: &Mlp, b: &Mlp| -> f32 {
        a.layers
            .iter()
            .zip(&b.layers)
            .map(|(x, y)| (&x.weight - &y.weight).mapv(f32::abs).sum())
            .sum()
    };
    let (to_cpu, to_plain) = (distance(&resident, &cpu), distance(&resident, &plain));
    assert!(
        to_cpu * 50.0 < to_plain,
        "GPU–CPU {to_cpu}, augmented–plain {to_plain}"
    );
}

#[test]
fn a_resumed_augmented_run_equals_an_uninterrupted_one() {
    let gpu = common::gpu();
    let set = image_set(60, 3);
    let whole = gpu_trained(&gpu, &set, DataPlacement::Resident, 3);
    let mut first = GpuTrainer::new(&gpu, &mlp(), &set, None, config()).unwrap();
    first.set_augmentation(&augmentation()).unwrap();
    first.train_epoch(&mut |_| {}).unwrap();
    let (half, state) = (first.to_mlp().unwrap(), first.optimizer_state().unwrap());
    let mut second = GpuTrainer::new(&gpu, &half, &set, None, config()).unwrap();
    second.set_epochs_done(1);
    second.set_augmentation(&augmentation()).unwrap();
    second.set_optimizer_state(&state).unwrap();
    for _ in 0..2 {
        second.train_epoch(&mut |_| {}).unwrap();
    }
    assert_eq!(second.to_mlp().unwrap(), whole, "GPU");

    let cpu_run = |epochs: std::ops::Range<usize>, from: &Mlp, state| {
        let mut trainer = CpuTrainer::new(from, &set, None, config()).unwrap();
        trainer.set_epochs_done(epochs.start);
        trainer.set_augmentation(&augmentation()).unwrap();
        if let Some(state) = state {
            trainer.set_optimizer_state(&state).unwrap();
        }
        for _ in epochs {
            trainer.train_epoch(&mut |_| {}).unwrap();
        }
        (
            trainer.to_mlp().unwrap(),
            trainer.optimizer_state().unwrap(),
        )
    };
    let (whole, _) = cpu_run(0..3, &mlp(), None);
    let (half, state) = cpu_run(0..1, &mlp(), None);
    let (resumed, _) = cpu_run(1..3, &half, Some(state));
    assert_eq!(resumed, whole, "CPU");
}

#[test]
fn bad_input_is_refused_naming_the_option() {
    let flat = Dataset::classification(
        Array2::<f32>::zeros((4, 6)),
        Array1::from(vec![0, 1, 0, 1]),
        None,
    )
    .unwrap();
    let message = CpuTrainer::new(
        &Mlp::new(
            &[6, 2],
            Activation::Identity,
            Activation::Softmax,
            Loss::CrossEntropy,
            1,
        )
        .unwrap(),
        &flat,
        None,
        config(),
    )
    .unwrap()
    .set_augmentation(&augmentation())
    .unwrap_err()
    .to_string();
    assert!(
        message.contains("--augment") && message.contains("--image-shape"),
        "{message}"
    );

    let gpu = common::gpu();
    let mlp6 = Mlp::new(
        &[6, 2],
        Activation::Identity,
        Activation::Softmax,
        Loss::CrossEntropy,
        1,
    )
    .unwrap();
    let mut trainer = GpuTrainer::new(
        &gpu,
        &mlp6,
        &flat,
        None,
        TrainConfig {
            batch_size: 2,
            ..config()
        },
    )
    .unwrap();
    let message = trainer
        .set_augmentation(&augmentation())
        .unwrap_err()
        .to_string();
    assert!(message.contains("--augment"), "{message}");

    let bad = |affine: Affine, option: &str| {
        let augmentation = Augmentation {
            affine: Some(affine),
            elastic: None,
        };
        let message = augmentation.validate().unwrap_err().to_string();
        assert!(message.contains(option), "{option}: {message}");
    };
    let base = Affine::default();
    bad(
        Affine {
            rotate_degrees: -1.0,
            ..base
        },
        "--rotate",
    );
    bad(
        Affine {
            rotate_degrees: f32::NAN,
            ..base
        },
        "--rotate",
    );
    bad(Affine { scale: 1.0, ..base }, "--scale");
    bad(
        Affine {
            shear_degrees: 75.0,
            ..base
        },
        "--shear",
    );
    bad(
        Affine {
            shift_pixels: -2.0,
            ..base
        },
        "--shift",
    );
    for (elastic, option) in [
        (
            Elastic {
                sigma: 0.0,
                alpha: 34.0,
            },
            "--elastic-sigma",
        ),
        (
            Elastic {
                sigma: 6.0,
                alpha: f32::INFINITY,
            },
            "--elastic-alpha",
        ),
    ] {
        let augmentation = Augmentation {
            affine: None,
            elastic: Some(elastic),
        };
        let message = augmentation.validate().unwrap_err().to_string();
        assert!(message.contains(option), "{message}");
    }
    for kinds in ["", "affine,affine", "rotate", "affine;elastic"] {
        let message = Augmentation::from_kinds(kinds).unwrap_err().to_string();
        assert!(message.contains("augment"), "{kinds}: {message}");
    }
    for shape in ["28", "28,0", "a,b", "28,28,1", "-1,4"] {
        let message = parse_image_shape(shape).unwrap_err().to_string();
        assert!(message.contains("--image-shape"), "{shape}: {message}");
    }
    assert_eq!(parse_image_shape("4, 7").unwrap(), (4, 7));
}

#[test]
fn the_model_file_metadata_round_trips() {
    let augmentation = augmentation();
    let entries = augmentation.metadata((28, 28));
    let get = |key: &str| {
        entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    };
    let (back, shape) = Augmentation::from_metadata(get).unwrap().unwrap();
    assert_eq!((back, shape), (augmentation, (28, 28)));
    let affine_only = Augmentation::from_kinds("affine").unwrap();
    let entries = affine_only.metadata((5, 6));
    assert!(entries.iter().all(|(k, _)| !k.starts_with("elastic")));
    let none: Vec<(&str, String)> = Vec::new();
    let get = |key: &str| {
        none.iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(Augmentation::from_metadata(get).unwrap(), None);
}
