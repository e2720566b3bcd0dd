//! `shaders/data.wgsl`: a batch gathered on the GPU from a data set stored there as bytes.
//!
//! Shapes: `features: (samples·inputs)` of one chunk, bytes packed four to a `u32` or f32;
//! `targets: (samples)` u32 labels or `(samples·outputs)` f32 of the same chunk; `order: (count)` sample indices;
//! `counters: (2)` whose `[1]` is the batch's position in `order`; `x: (rows, inputs)`,
//! `y: (rows, outputs)`.

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::context::{Access, Gpu, PipelineSpec};
use crate::gpu::kernels::{Dispatch, Shader};

use Access::{Read, ReadWrite, Unused};

/// Bindings after the uniform: features, targets, order, counters, x, y.
pub(crate) const STORAGE: &[Access] = &[Read, Read, Read, ReadWrite, ReadWrite, ReadWrite];

/// `gather_features`' (features, order, counters, x) and `gather_targets`' (targets, order,
/// counters, y): `gather` in two passes, for a device that binds four storage buffers.
const FEATURES_STORAGE: &[Access] = &[Read, Unused, Read, ReadWrite, ReadWrite, Unused];
const TARGETS_STORAGE: &[Access] = &[Unused, Read, Read, ReadWrite, Unused, ReadWrite];

/// `advance_cursor`'s: counters.
const CURSOR_STORAGE: &[Access] = &[Unused, Unused, Unused, ReadWrite, Unused, Unused];

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct GatherParams {
    rows: u32,
    inputs: u32,
    outputs: u32,
    first_sample: u32,
    samples: u32,
    _pad: [u32; 3],
}

/// The buffers a gather reads and writes.
#[derive(Clone, Copy, Debug)]
pub struct GatherBuffers<'a> {
    /// One chunk of the features: bytes packed four to a word, or f32.
    pub features: &'a wgpu::Buffer,
    /// The same chunk's class labels (u32) or target values (f32).
    pub targets: &'a wgpu::Buffer,
    /// The epoch's sample order.
    pub order: &'a wgpu::Buffer,
    /// `[steps, cursor]`.
    pub counters: &'a wgpu::Buffer,
    /// `(rows, inputs)`.
    pub x: &'a wgpu::Buffer,
    /// `(rows, outputs)`.
    pub y: &'a wgpu::Buffer,
}

/// What a gather reads and writes per batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GatherShape {
    /// Samples per batch.
    pub rows: usize,
    /// Features per sample.
    pub inputs: usize,
    /// Classes, or target values per sample.
    pub outputs: usize,
    /// Features are f32 (else bytes, scaled by 1/255).
    pub float_features: bool,
    /// Targets are f32 values (else class labels, one-hot encoded).
    pub value_targets: bool,
}

/// The samples one chunk's features and targets buffers hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkSpan {
    /// The first sample the buffers hold.
    pub first_sample: usize,
    /// How many samples they hold.
    pub samples: usize,
}

/// `x, y ← features, targets` at `order[cursor ..][.. rows]`.
#[derive(Clone, Copy, Debug)]
pub struct Gather;

impl Gather {
    fn layout(
        gpu: &Gpu,
        shape: &GatherShape,
        span: &ChunkSpan,
    ) -> Result<(GatherParams, [u32; 3])> {
        let GatherShape {
            rows,
            inputs,
            outputs,
            ..
        } = *shape;
        // An invocation per four elements of x, and per element of y (data.wgsl).
        let items = (rows * inputs).div_ceil(4).max(rows * outputs);
        let too_big = u32::try_from(rows * inputs.max(outputs)).is_err()
            || u32::try_from(span.first_sample + span.samples).is_err();
        if rows == 0 || inputs == 0 || outputs == 0 || too_big {
            return Err(Error::invalid(
                "gather shape",
                format!("rows={rows}, inputs={inputs}, outputs={outputs}, {span:?}"),
            ));
        }
        let config = gpu.config();
        let params = GatherParams {
            rows: rows as u32,
            inputs: inputs as u32,
            outputs: outputs as u32,
            first_sample: span.first_sample as u32,
            samples: span.samples as u32,
            _pad: [0; 3],
        };
        Ok((params, config.grid_1d(items, config.workgroup_size)))
    }

    fn bind_entry(
        gpu: &Gpu,
        label: &str,
        entry_point: &'static str,
        (buffers, shape): (&GatherBuffers<'_>, &GatherShape),
        params: &GatherParams,
        groups: [u32; 3],
    ) -> Result<Dispatch> {
        let flag = |on: bool| f64::from(u8::from(on));
        let spec = |entry_point, storage| PipelineSpec {
            shader: Shader::Data,
            entry_point,
            constants: vec![
                ("FLOAT_FEATURES", flag(shape.float_features)),
                ("VALUE_TARGETS", flag(shape.value_targets)),
            ],
            storage,
        };
        let GatherBuffers {
            features,
            targets,
            order,
            counters,
            x,
            y,
        } = *buffers;
        let buffers = [features, targets, order, counters, x, y];
        if entry_point == "advance_cursor" {
            let spec = PipelineSpec {
                constants: vec![],
                ..spec(entry_point, CURSOR_STORAGE)
            };
            return Dispatch::new(gpu, label, &spec, params, &buffers, groups);
        }
        if gpu.config().binds(STORAGE) {
            let spec = spec(entry_point, STORAGE);
            return Dispatch::new(gpu, label, &spec, params, &buffers, groups);
        }
        let features_pass = spec("gather_features", FEATURES_STORAGE);
        let targets_pass = spec("gather_targets", TARGETS_STORAGE);
        Dispatch::new(gpu, label, &features_pass, params, &buffers, groups)?.then(
            gpu,
            &targets_pass,
            &buffers,
            groups,
        )
    }

    /// Binds a gather of `shape.rows` samples from the chunk of features `span` describes.
    pub fn bind(
        gpu: &Gpu,
        label: &str,
        buffers: &GatherBuffers<'_>,
        shape: &GatherShape,
        span: &ChunkSpan,
    ) -> Result<Dispatch> {
        let (params, groups) = Self::layout(gpu, shape, span)?;
        Self::bind_entry(gpu, label, "gather", (buffers, shape), &params, groups)
    }

    /// Binds the cursor advance that evaluation records after each batch (training moves the
    /// cursor with the step counter instead).
    pub fn bind_advance_cursor(
        gpu: &Gpu,
        label: &str,
        buffers: &GatherBuffers<'_>,
        shape: &GatherShape,
    ) -> Result<Dispatch> {
        let span = ChunkSpan {
            first_sample: 0,
            samples: 1,
        };
        let (params, _) = Self::layout(gpu, shape, &span)?;
        let entry = "advance_cursor";
        Self::bind_entry(gpu, label, entry, (buffers, shape), &params, [1, 1, 1])
    }

    /// Changes the rows per batch of a gather (`single_invocation: false`) or of a cursor
    /// advance (`true`); everything else it was bound with stays.
    pub fn reshape(
        gpu: &Gpu,
        dispatch: &mut Dispatch,
        rows: usize,
        single_invocation: bool,
    ) -> Result<()> {
        let old: GatherParams = dispatch
            .params()
            .ok_or_else(|| Error::invalid("gather", "reshaping a dispatch that is no gather"))?;
        let shape = GatherShape {
            rows,
            inputs: old.inputs as usize,
            outputs: old.outputs as usize,
            float_features: false,
            value_targets: false,
        };
        let span = ChunkSpan {
            first_sample: old.first_sample as usize,
            samples: old.samples as usize,
        };
        let (params, groups) = Self::layout(gpu, &shape, &span)?;
        dispatch.update(
            gpu,
            &params,
            if single_invocation { [1, 1, 1] } else { groups },
        );
        dispatch.update_follow_up(groups);
        Ok(())
    }
}
