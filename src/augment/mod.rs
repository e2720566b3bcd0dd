//! Image deformations for training: a random affine map and an elastic distortion (Simard,
//! Steinkraus & Platt, ICDAR 2003), drawn anew for every training sample in every epoch.
//!
//! The GPU deforms each batch right after gathering it (`shaders/augment.wgsl`); [`deform`] is
//! the same computation on the CPU, which the CPU trainer trains on and the tests compare with.
//! Both draw from Philox4x32-10 keyed by `philox_key(seed)` with the counter
//! `[index within the sample, sample, epoch, stream]`: the sample is its index in the training
//! set, the epoch is 1-based, and the stream is [`AFFINE_STREAM`] (index 0: rotation, x scale,
//! y scale, shear; index 1: x and y shift) or [`ELASTIC_STREAM`] (index `i`: the raw x and y
//! displacements of pixel `2i`, row-major, in words 0 and 1, and of pixel `2i + 1` in words 2
//! and 3), so no two draws share a counter and a resumed run draws what an uninterrupted one
//! would.
//!
//! The output pixel at `p = (column, row)` samples the source image bilinearly at
//! `c + M·(p − c) + t + α·d(p)`, where `c` is the image centre, `M = R(θ)·H(φ)·diag(sx, sy)`
//! (rotation by θ, horizontal shear by φ, scales sx and sy), `t` the shift and `d` the elastic
//! field; a source pixel outside the image is 0. The field is uniform in [−1, 1] per pixel,
//! smoothed by a normalised Gaussian of σ truncated at `round(4σ)` pixels (scipy's
//! `gaussian_filter` default) with zeros outside the image, rows first and then columns.

mod deform;

pub use deform::{
    AffineDraw, DeformScratch, deform, deform_in_place, elastic_field, gaussian_kernel,
};

use crate::error::{Error, Result};

/// Philox's stream word for the affine draws.
pub const AFFINE_STREAM: u32 = 0x6166_6669; // "affi"
/// Philox's stream word for the elastic field.
pub const ELASTIC_STREAM: u32 = 0x656c_6173; // "elas"

/// The Gaussian is truncated at this many σ (scipy's `gaussian_filter(truncate=4.0)`).
pub const TRUNCATE_SIGMAS: f64 = 4.0;

/// A random affine map per sample, each number drawn uniformly in ±its range.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Affine {
    /// Rotation range in degrees.
    pub rotate_degrees: f32,
    /// Scale range as a fraction (x and y drawn independently): 0.12 scales by 0.88 to 1.12.
    pub scale: f32,
    /// Horizontal shear range in degrees.
    pub shear_degrees: f32,
    /// Shift range in pixels (x and y drawn independently).
    pub shift_pixels: f32,
}

impl Default for Affine {
    /// The papers' rotation (±10°) and scale (±12%); no shear or shift (see the README).
    fn default() -> Self {
        Affine {
            rotate_degrees: 10.0,
            scale: 0.12,
            shear_degrees: 0.0,
            shift_pixels: 0.0,
        }
    }
}

/// An elastic distortion: a random displacement field smoothed by a Gaussian of `sigma` pixels,
/// scaled by `alpha` pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Elastic {
    /// Standard deviation of the smoothing Gaussian, in pixels.
    pub sigma: f32,
    /// Scale of the smoothed field, in pixels.
    pub alpha: f32,
}

impl Default for Elastic {
    /// Simard et al.'s σ 6 and α 34.
    fn default() -> Self {
        Elastic {
            sigma: 6.0,
            alpha: 34.0,
        }
    }
}

/// Which deformations a run trains with, and their ranges.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Augmentation {
    /// The affine map, if any.
    pub affine: Option<Affine>,
    /// The elastic distortion, if any.
    pub elastic: Option<Elastic>,
}

/// Model-file metadata keys, besides [`KINDS_KEY`] and [`IMAGE_SHAPE_KEY`].
const NUMBER_KEYS: [&str; 6] = [
    "rotate",
    "scale",
    "shear",
    "shift",
    "elastic_sigma",
    "elastic_alpha",
];
/// The metadata key of the kinds (`affine`, `elastic`, `affine,elastic`).
pub const KINDS_KEY: &str = "augment";
/// The metadata key of the image shape the deformations assume (`H,W`).
pub const IMAGE_SHAPE_KEY: &str = "image_shape";

impl Augmentation {
    /// `affine`, `elastic` or `affine,elastic` (their defaults), as `--augment` takes it.
    pub fn from_kinds(kinds: &str) -> Result<Augmentation> {
        let mut augmentation = Augmentation::default();
        for kind in kinds.split(',').map(str::trim) {
            match kind {
                "affine" if augmentation.affine.is_none() => {
                    augmentation.affine = Some(Affine::default())
                }
                "elastic" if augmentation.elastic.is_none() => {
                    augmentation.elastic = Some(Elastic::default())
                }
                _ => {
                    return Err(Error::invalid(
                        "augment",
                        format!(
                            "{kinds:?} (give affine, elastic or affine,elastic, each at most once)"
                        ),
                    ));
                }
            }
        }
        Ok(augmentation)
    }

    /// Whether nothing is deformed.
    pub fn is_empty(&self) -> bool {
        self.affine.is_none() && self.elastic.is_none()
    }

    /// `affine`, `elastic` or `affine,elastic` (empty when nothing is deformed).
    pub fn kinds(&self) -> String {
        let mut kinds = Vec::new();
        kinds.extend(self.affine.map(|_| "affine"));
        kinds.extend(self.elastic.map(|_| "elastic"));
        kinds.join(",")
    }

    /// Checks every range: an error naming the option and the allowed values.
    pub fn validate(&self) -> Result<()> {
        let check = |option: &str, value: f32, ok: bool, allowed: &str| {
            if value.is_finite() && ok {
                Ok(())
            } else {
                Err(Error::invalid(
                    option,
                    format!("{value} (must be {allowed})"),
                ))
            }
        };
        if let Some(a) = self.affine {
            let r = a.rotate_degrees;
            check(
                "--rotate",
                r,
                (0.0..=180.0).contains(&r),
                "0 to 180 degrees",
            )?;
            check(
                "--scale",
                a.scale,
                (0.0..1.0).contains(&a.scale),
                "at least 0 and below 1",
            )?;
            let s = a.shear_degrees;
            check(
                "--shear",
                s,
                (0.0..60.0).contains(&s),
                "at least 0 and below 60 degrees",
            )?;
            check(
                "--shift",
                a.shift_pixels,
                a.shift_pixels >= 0.0,
                "at least 0 pixels",
            )?;
        }
        if let Some(e) = self.elastic {
            // Beyond 1000 pixels the kernel's radius alone would exceed any image.
            let sigma_ok = e.sigma > 0.0 && e.sigma <= 1000.0;
            check(
                "--elastic-sigma",
                e.sigma,
                sigma_ok,
                "above 0 and at most 1000 pixels",
            )?;
            check(
                "--elastic-alpha",
                e.alpha,
                e.alpha >= 0.0,
                "at least 0 pixels",
            )?;
        }
        Ok(())
    }

    /// Checks that images of `shape` can be deformed: an image shape at all (`what` names the
    /// data and the option that gives one), at least one pixel.
    pub fn check_image_shape(&self, shape: Option<(usize, usize)>, what: &str) -> Result<()> {
        match shape {
            Some((height, width)) if height > 0 && width > 0 => Ok(()),
            Some((height, width)) => Err(Error::invalid(
                "--image-shape",
                format!("{height},{width} has no pixels"),
            )),
            None => Err(Error::invalid(
                "--augment",
                format!(
                    "{what} has no image shape (IDX images and NPZ arrays of shape [n, H, W] carry \
                     one; give flat features theirs with --image-shape H,W)"
                ),
            )),
        }
    }

    /// The metadata a model file records: the kinds, every number (those of a kind not used
    /// left out) and the image shape.
    pub fn metadata(&self, (height, width): (usize, usize)) -> Vec<(&'static str, String)> {
        let mut entries = vec![
            (KINDS_KEY, self.kinds()),
            (IMAGE_SHAPE_KEY, format!("{height},{width}")),
        ];
        if let Some(a) = self.affine {
            let numbers = [a.rotate_degrees, a.scale, a.shear_degrees, a.shift_pixels];
            entries.extend(
                NUMBER_KEYS[..4]
                    .iter()
                    .zip(numbers)
                    .map(|(&k, v)| (k, v.to_string())),
            );
        }
        if let Some(e) = self.elastic {
            let numbers = [e.sigma, e.alpha];
            entries.extend(
                NUMBER_KEYS[4..]
                    .iter()
                    .zip(numbers)
                    .map(|(&k, v)| (k, v.to_string())),
            );
        }
        entries
    }

    /// What [`Augmentation::metadata`] recorded, read back through `get` (`None`: no
    /// augmentation recorded); an error naming the key for a value that does not parse.
    pub fn from_metadata<'a>(
        get: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<Option<(Augmentation, (usize, usize))>> {
        let Some(kinds) = get(KINDS_KEY).filter(|k| !k.is_empty()) else {
            return Ok(None);
        };
        let mut augmentation = Augmentation::from_kinds(kinds)?;
        let number = |key: &str| -> Result<f32> {
            let text = get(key).ok_or_else(|| {
                Error::invalid("model metadata", format!("{key} is missing beside augment"))
            })?;
            text.parse()
                .map_err(|_| Error::invalid("model metadata", format!("{key} {text:?}")))
        };
        if let Some(a) = augmentation.affine.as_mut() {
            *a = Affine {
                rotate_degrees: number("rotate")?,
                scale: number("scale")?,
                shear_degrees: number("shear")?,
                shift_pixels: number("shift")?,
            };
        }
        if let Some(e) = augmentation.elastic.as_mut() {
            *e = Elastic {
                sigma: number("elastic_sigma")?,
                alpha: number("elastic_alpha")?,
            };
        }
        augmentation.validate()?;
        let shape_text = get(IMAGE_SHAPE_KEY).unwrap_or("");
        let shape = parse_image_shape(shape_text)
            .map_err(|_| Error::invalid("model metadata", format!("image_shape {shape_text:?}")))?;
        Ok(Some((augmentation, shape)))
    }
}

/// `H,W` (as `--image-shape` takes it): two positive integers.
pub fn parse_image_shape(text: &str) -> Result<(usize, usize)> {
    let bad = || {
        Error::invalid(
            "--image-shape",
            format!("{text:?} (give the height and width in pixels, as 28,28)"),
        )
    };
    let (height, width) = text.split_once(',').ok_or_else(bad)?;
    let height: usize = height.trim().parse().map_err(|_| bad())?;
    let width: usize = width.trim().parse().map_err(|_| bad())?;
    if height == 0 || width == 0 {
        return Err(bad());
    }
    Ok((height, width))
}
