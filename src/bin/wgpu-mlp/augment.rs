//! The deformation options `train` takes (`--augment`, its ranges and `--image-shape`), and
//! `wgpu-mlp augment`, which shows what they do:
//! a PNG grid of training images beside their deformations for an epoch, and the same as arrays.

use std::io::Cursor;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;

use wgpu_mlp::augment::{Affine, Augmentation, Elastic, deform, parse_image_shape};
use wgpu_mlp::data::Dataset;
use wgpu_mlp::data::npz::write_f32_npz;
use wgpu_mlp::files::{check_can_write, write_atomically};
use wgpu_mlp::gpu::kernels::augment::deform_images;
use wgpu_mlp::run::{Source, apply_image_shape, prepare};

use crate::common::{DEFAULT_SEED, open_gpu};
use crate::dataset::DataArgs;

/// The deformation options.
#[derive(Args, Debug, Clone, Default)]
pub struct AugmentArgs {
    /// Deform every training image anew each epoch, on the GPU (or with --cpu, the same images
    /// on the CPU): affine, elastic or affine,elastic. Validation and test images never are.
    #[arg(long, value_name = "KINDS")]
    pub augment: Option<String>,
    /// With --augment affine: rotation, uniform in ±DEG [default: 10].
    #[arg(long, value_name = "DEG")]
    pub rotate: Option<f32>,
    /// With --augment affine: scale, uniform in 1 ± FRACTION, x and y drawn independently
    /// [default: 0.12].
    #[arg(long, value_name = "FRACTION")]
    pub scale: Option<f32>,
    /// With --augment affine: horizontal shear, uniform in ±DEG [default: 0].
    #[arg(long, value_name = "DEG")]
    pub shear: Option<f32>,
    /// With --augment affine: shift, uniform in ±PIXELS, x and y drawn independently
    /// [default: 0].
    #[arg(long, value_name = "PIXELS")]
    pub shift: Option<f32>,
    /// With --augment elastic: the smoothing Gaussian's σ in pixels [default: 6].
    #[arg(long, value_name = "S")]
    pub elastic_sigma: Option<f32>,
    /// With --augment elastic: the displacement scale α in pixels [default: 34].
    #[arg(long, value_name = "A")]
    pub elastic_alpha: Option<f32>,
    /// The height and width of images given as flat features (CSV or NPZ of shape [n, H·W]);
    /// IDX files and NPZ arrays of shape [n, H, W] carry their own.
    #[arg(long, value_name = "H,W", value_parser = parse_shape)]
    pub image_shape: Option<(usize, usize)>,
}

fn parse_shape(text: &str) -> Result<(usize, usize), String> {
    parse_image_shape(text).map_err(|e| e.to_string())
}

impl AugmentArgs {
    /// The deformations the options ask for (`default_kinds` when `--augment` is not given;
    /// `None`: none asked for), checked.
    pub fn augmentation(&self, default_kinds: Option<&str>) -> Result<Option<Augmentation>> {
        let Some(kinds) = self.augment.as_deref().or(default_kinds) else {
            let given = [
                ("--rotate", self.rotate),
                ("--scale", self.scale),
                ("--shear", self.shear),
                ("--shift", self.shift),
                ("--elastic-sigma", self.elastic_sigma),
                ("--elastic-alpha", self.elastic_alpha),
            ];
            if let Some((option, _)) = given.iter().find(|(_, value)| value.is_some()) {
                bail!(
                    "{option} shapes a deformation: add --augment affine, elastic or affine,elastic"
                );
            }
            return Ok(None);
        };
        let mut augmentation = Augmentation::from_kinds(kinds)?;
        match augmentation.affine.as_mut() {
            Some(affine) => {
                let Affine {
                    rotate_degrees,
                    scale,
                    shear_degrees,
                    shift_pixels,
                } = affine;
                *rotate_degrees = self.rotate.unwrap_or(*rotate_degrees);
                *scale = self.scale.unwrap_or(*scale);
                *shear_degrees = self.shear.unwrap_or(*shear_degrees);
                *shift_pixels = self.shift.unwrap_or(*shift_pixels);
            }
            None if self
                .rotate
                .or(self.scale)
                .or(self.shear)
                .or(self.shift)
                .is_some() =>
            {
                bail!(
                    "--rotate, --scale, --shear and --shift shape the affine map: add it to --augment"
                );
            }
            None => {}
        }
        match augmentation.elastic.as_mut() {
            Some(Elastic { sigma, alpha }) => {
                *sigma = self.elastic_sigma.unwrap_or(*sigma);
                *alpha = self.elastic_alpha.unwrap_or(*alpha);
            }
            None if self.elastic_sigma.or(self.elastic_alpha).is_some() => {
                bail!(
                    "--elastic-sigma and --elastic-alpha shape the elastic distortion: add it to --augment"
                );
            }
            None => {}
        }
        augmentation.validate()?;
        Ok(Some(augmentation))
    }
}

/// `wgpu-mlp augment`: what the deformation options do to the training images.
#[derive(Args, Debug)]
pub struct AugmentCommandArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub options: AugmentArgs,
    /// Training images to show, the first N.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub count: usize,
    /// Deformations of each image.
    #[arg(long, value_name = "K", default_value_t = 8)]
    pub copies: usize,
    /// The 1-based epoch whose deformations to show; the copies are those of epochs E, E + 1, …
    #[arg(long, value_name = "E", default_value_t = 1)]
    pub epoch: u32,
    /// The run's seed [default: 42, as train's].
    #[arg(long)]
    pub seed: Option<u64>,
    /// The grid (PNG): each row one training image, then its K deformations.
    #[arg(long, value_name = "FILE")]
    pub output: PathBuf,
    /// Also write the images as arrays: original [N, H, W] and deformed [N, K, H, W], float32.
    #[arg(long, value_name = "FILE")]
    pub npz: Option<PathBuf>,
    /// Deform with the CPU reference instead of the GPU.
    #[arg(long)]
    pub cpu: bool,
    /// Adapter: auto, software, a backend (vulkan, metal, dx12, gl), NAME@BACKEND, or part of an
    /// adapter's name.
    #[arg(long, default_value = "auto")]
    pub adapter: String,
}

pub fn run(args: AugmentCommandArgs) -> Result<()> {
    check_can_write(&args.output).with_context(|| format!("--output {}", args.output.display()))?;
    if let Some(path) = &args.npz {
        check_can_write(path).with_context(|| format!("--npz {}", path.display()))?;
    }
    if args.count == 0 || args.copies == 0 || args.epoch == 0 {
        bail!("--count, --copies and --epoch must each be at least 1");
    }
    let augmentation = args
        .options
        .augmentation(Some("affine,elastic"))?
        .expect("a default kind is given");
    let seed = args.seed.unwrap_or(DEFAULT_SEED);
    let data = args.data.data()?;
    let source = Source::of(&data, None)?;
    let mut notes = Vec::new();
    let data = prepare(data, &args.data.options(), (source, seed), None, &mut notes);
    for note in notes {
        eprintln!("{note}");
    }
    let mut data = data?;
    apply_image_shape(args.options.image_shape, &mut data)?;
    augmentation.check_image_shape(data.train.image_shape, "the training set")?;
    let shape = data.train.image_shape.unwrap_or_default();
    let (original, deformed) = deformations(&args, &augmentation, seed, &data.train, shape)?;
    let count = original.len() / (shape.0 * shape.1);
    let grid = grid_png(&original, &deformed, (count, args.copies), shape)?;
    write_atomically(&args.output, &grid)?;
    if let Some(path) = &args.npz {
        let (h, w) = shape;
        let bytes = write_f32_npz(&[
            ("original", &[count, h, w], &original),
            ("deformed", &[count, args.copies, h, w], &deformed),
        ])?;
        write_atomically(path, &bytes)?;
    }
    eprintln!(
        "{count} training images of {}×{} with {} deformations each ({}, epochs {}–{}, seed {seed}): {}",
        shape.0,
        shape.1,
        args.copies,
        augmentation.kinds(),
        args.epoch,
        u64::from(args.epoch) + args.copies as u64 - 1,
        args.output.display()
    );
    Ok(())
}

/// The first images of `train` and their deformations, copy k from epoch `epoch + k`: on the
/// GPU, or the CPU with `--cpu`.
fn deformations(
    args: &AugmentCommandArgs,
    augmentation: &Augmentation,
    seed: u64,
    train: &Dataset,
    shape: (usize, usize),
) -> Result<(Vec<f32>, Vec<f32>)> {
    let count = args.count.min(train.len());
    let indices: Vec<usize> = (0..count).collect();
    let (x, _) = train.batch(&indices);
    let original = x.into_raw_vec_and_offset().0;
    let pixels = shape.0 * shape.1;
    let samples: Vec<u32> = (0..count as u32).collect();
    let gpu = if args.cpu {
        None
    } else {
        Some(open_gpu(&args.adapter)?)
    };
    let mut deformed = vec![0f32; count * args.copies * pixels];
    for copy in 0..args.copies {
        let epoch = u32::try_from(u64::from(args.epoch) + copy as u64)
            .context("--epoch plus --copies is past 2³²")?;
        let images = match &gpu {
            Some(gpu) => deform_images(
                gpu,
                (augmentation, seed),
                (epoch, &samples),
                shape,
                &original,
            )?,
            None => (0..count)
                .flat_map(|i| {
                    let image = &original[i * pixels..(i + 1) * pixels];
                    deform(augmentation, seed, (epoch, i as u32), shape, image)
                })
                .collect(),
        };
        for (i, image) in images.chunks(pixels).enumerate() {
            let at = (i * args.copies + copy) * pixels;
            deformed[at..at + pixels].copy_from_slice(image);
        }
    }
    Ok((original, deformed))
}

/// A grayscale PNG: one row of cells per image, its original then its copies, a 2-pixel gap
/// between cells. Values in [0, 1] map to black–white; data with values outside it (standardized
/// features) is scaled from its smallest to its largest value.
fn grid_png(
    original: &[f32],
    deformed: &[f32],
    (count, copies): (usize, usize),
    (height, width): (usize, usize),
) -> Result<Vec<u8>> {
    const GAP: usize = 2;
    let (cell_h, cell_w) = (height + GAP, width + GAP);
    let (grid_h, grid_w) = (count * cell_h + GAP, (copies + 1) * cell_w + GAP);
    let all = original.iter().chain(deformed);
    let (low, high) = all.fold((0f32, 1f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let gray =
        |v: f32| (((v - low) / (high - low).max(1e-12)).clamp(0.0, 1.0) * 255.0).round() as u8;
    // The gaps are a mid gray, so that black image borders show.
    let mut pixels = vec![128u8; grid_h * grid_w];
    let pixel_count = height * width;
    for i in 0..count {
        for cell in 0..=copies {
            let image = match cell {
                0 => &original[i * pixel_count..(i + 1) * pixel_count],
                k => {
                    let at = (i * copies + k - 1) * pixel_count;
                    &deformed[at..at + pixel_count]
                }
            };
            let (top, left) = (GAP + i * cell_h, GAP + cell * cell_w);
            for (p, &v) in image.iter().enumerate() {
                pixels[(top + p / width) * grid_w + left + p % width] = gray(v);
            }
        }
    }
    let mut bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(Cursor::new(&mut bytes), grid_w as u32, grid_h as u32);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().context("encoding the grid")?;
        writer
            .write_image_data(&pixels)
            .context("encoding the grid")?;
    }
    Ok(bytes)
}
