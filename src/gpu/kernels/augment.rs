//! `shaders/augment.wgsl`: a gathered batch of images deformed in place, one workgroup per
//! image (see [`crate::augment`] for what is drawn and how).
//!
//! Shapes: `samples: (≥ cursor + rows)` training-set indices; `counters: (2)` whose `[1]` is the
//! cursor; `gaussian: (longest side + 4)` the smoothing kernel from its centre, zero past its
//! radius; `x: (rows, height·width)`.

use bytemuck::{Pod, Zeroable};

use crate::augment::{Augmentation, gaussian_kernel};
use crate::error::{Error, Result};
use crate::gpu::context::{Access, Gpu, PipelineSpec};
use crate::gpu::kernels::{Dispatch, KernelNeeds, Shader};
use crate::rng::philox_key;

/// Bindings after the uniform: samples, counters, gaussian, x.
const STORAGE: &[Access] = &[Access::Read, Access::Read, Access::Read, Access::ReadWrite];

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct AugmentParams {
    rows: u32,
    height: u32,
    width: u32,
    _pad_shape: u32,
    key: [u32; 2],
    epoch: u32,
    _pad0: u32,
    rotate_radians: f32,
    scale: f32,
    shear_radians: f32,
    shift_pixels: f32,
    alpha: f32,
    _pad1: [f32; 3],
}

/// The buffers a deformation reads and writes.
#[derive(Clone, Copy, Debug)]
pub struct DeformBuffers<'a> {
    /// Each batch row's index in the training set, from the cursor on.
    pub samples: &'a wgpu::Buffer,
    /// `[steps, cursor]`.
    pub counters: &'a wgpu::Buffer,
    /// `(rows, height·width)`: the gathered images, deformed in place.
    pub x: &'a wgpu::Buffer,
}

/// `x ← deform(x)`, each row by its sample's draws for the epoch.
#[derive(Clone, Copy, Debug)]
pub struct Deform;

impl Deform {
    /// Bytes of workgroup memory the kernel needs for images of `pixels`: two floats a pixel
    /// (the image, or the field smoothed along rows), and with the elastic distortion two more
    /// (the field).
    pub fn workgroup_bytes(pixels: usize, elastic: bool) -> u64 {
        8 * if elastic {
            2 * pixels as u64
        } else {
            pixels as u64 + 1
        }
    }

    /// Binds the deformation of batches of `rows` images of `(height, width)` by a run seeded
    /// with `seed`, for 1-based `epoch` (see [`Deform::set_epoch`]). An
    /// [`Error::Unsupported`] naming the limit when the images do not fit the device's
    /// workgroup memory.
    pub fn bind(
        gpu: &Gpu,
        label: &str,
        buffers: &DeformBuffers<'_>,
        (augmentation, seed): (&Augmentation, u64),
        (rows, (height, width)): (usize, (usize, usize)),
        epoch: u32,
    ) -> Result<Dispatch> {
        augmentation.validate()?;
        let pixels = height * width;
        if augmentation.is_empty() || rows == 0 || pixels == 0 || u32::try_from(pixels).is_err() {
            return Err(Error::invalid(
                "deformation",
                format!(
                    "{rows} rows of {height}×{width} pixels with {:?}",
                    augmentation.kinds()
                ),
            ));
        }
        let config = gpu.config();
        let elastic = augmentation.elastic.is_some();
        let storage = Self::workgroup_bytes(pixels, elastic);
        let needs = KernelNeeds {
            workgroup_size: [config.workgroup_size, 1, 1],
            workgroup_storage: u32::try_from(storage).unwrap_or(u32::MAX),
            storage_buffers: STORAGE.len() as u32,
        };
        config.check_needs(
            || format!("the deformation of {height}×{width} images ({storage} bytes of workgroup memory)"),
            needs,
        )?;
        let flag = |on: bool| f64::from(u8::from(on));
        let spec = PipelineSpec {
            shader: Shader::Augment,
            entry_point: "deform",
            constants: vec![
                ("PIXELS", pixels as f64),
                ("FIELD_PIXELS", if elastic { pixels as f64 } else { 1.0 }),
                ("AFFINE", flag(augmentation.affine.is_some())),
                ("ELASTIC", flag(elastic)),
            ],
            storage: STORAGE,
        };
        let mut gaussian = match augmentation.elastic {
            Some(e) => gaussian_kernel(e.sigma, height.max(width)),
            None => vec![0.0],
        };
        // Zeros past the radius, up to the longest side and a block of four beyond (the shader
        // runs every loop over whole rows and columns, four sums at a time).
        gaussian.resize(height.max(width) + 4, 0.0);
        let gaussian_buffer = gpu.storage_buffer_with(&format!("{label}.gaussian"), &gaussian)?;
        let affine = augmentation.affine.unwrap_or_default();
        let params = AugmentParams {
            rows: rows as u32,
            height: height as u32,
            width: width as u32,
            _pad_shape: 0,
            key: philox_key(seed),
            epoch,
            _pad0: 0,
            rotate_radians: affine.rotate_degrees.to_radians(),
            scale: affine.scale,
            shear_radians: affine.shear_degrees.to_radians(),
            shift_pixels: affine.shift_pixels,
            alpha: augmentation.elastic.map_or(0.0, |e| e.alpha),
            _pad1: [0.0; 3],
        };
        let DeformBuffers {
            samples,
            counters,
            x,
        } = *buffers;
        let groups = config.grid_1d(rows, 1);
        let buffers = [samples, counters, &gaussian_buffer, x];
        Dispatch::new(gpu, label, &spec, &params, &buffers, groups)
    }

    fn params(dispatch: &Dispatch) -> Result<AugmentParams> {
        dispatch
            .params()
            .ok_or_else(|| Error::invalid("deformation", "a dispatch that is no deformation"))
    }

    /// Deforms for 1-based `epoch` from now on: the one write per epoch.
    pub fn set_epoch(gpu: &Gpu, dispatch: &mut Dispatch, epoch: u32) -> Result<()> {
        let params = AugmentParams {
            epoch,
            ..Self::params(dispatch)?
        };
        let groups = gpu.config().grid_1d(params.rows as usize, 1);
        dispatch.update(gpu, &params, groups);
        Ok(())
    }

    /// Deforms batches of `rows` from now on.
    pub fn reshape(gpu: &Gpu, dispatch: &mut Dispatch, rows: usize) -> Result<()> {
        let params = AugmentParams {
            rows: u32::try_from(rows)
                .map_err(|_| Error::invalid("deformation", format!("{rows} rows")))?,
            ..Self::params(dispatch)?
        };
        dispatch.update(gpu, &params, gpu.config().grid_1d(rows, 1));
        Ok(())
    }
}

/// `images` (`(n, height·width)` row-major, values as the model sees them) deformed on the GPU as
/// the training samples `samples[i]` of a run seeded with `seed` are in 1-based `epoch`: what
/// `wgpu-mlp augment` shows. Blocks until the GPU is done.
#[cfg(not(target_arch = "wasm32"))]
pub fn deform_images(
    gpu: &Gpu,
    (augmentation, seed): (&Augmentation, u64),
    (epoch, samples): (u32, &[u32]),
    shape: (usize, usize),
    images: &[f32],
) -> Result<Vec<f32>> {
    let pixels = shape.0 * shape.1;
    if samples.is_empty() || images.len() != samples.len() * pixels {
        return Err(Error::invalid(
            "deformation",
            format!(
                "{} values for {} images of {pixels} pixels",
                images.len(),
                samples.len()
            ),
        ));
    }
    let x = gpu.storage_buffer_with("augment.images", images)?;
    let samples_buffer = gpu.storage_buffer_with("augment.samples", samples)?;
    let counters = gpu.storage_buffer_with("augment.counters", &[0u32, 0])?;
    let buffers = DeformBuffers {
        samples: &samples_buffer,
        counters: &counters,
        x: &x,
    };
    let rows = (samples.len(), shape);
    let dispatch = Deform::bind(
        gpu,
        "augment.deform",
        &buffers,
        (augmentation, seed),
        rows,
        epoch,
    )?;
    Dispatch::run_all(gpu, &[&dispatch])?;
    gpu.read_f32(&x, images.len())
}
