//! `shaders/data.wgsl`: a batch gathered on the GPU from a data set stored there as bytes.
//!
//! Shapes: `images: (count·inputs)` bytes and `labels: (count)` bytes, packed four to a `u32`;
//! `order: (count)` sample indices; `counters: (2)` whose `[1]` is the batch's position in
//! `order`; `x: (rows, inputs)`, `y: (rows, classes)` one-hot.

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::context::{Access, Gpu, PipelineSpec};
use crate::gpu::kernels::{Dispatch, Shader};

/// Bindings after the uniform: images, labels, order, counters, x, y.
const STORAGE: &[Access] = &[
    Access::Read,
    Access::Read,
    Access::Read,
    Access::ReadWrite,
    Access::ReadWrite,
    Access::ReadWrite,
];

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct GatherParams {
    rows: u32,
    inputs: u32,
    classes: u32,
    _pad: u32,
}

/// The buffers a gather reads and writes.
#[derive(Clone, Copy, Debug)]
pub struct GatherBuffers<'a> {
    /// Packed image bytes.
    pub images: &'a wgpu::Buffer,
    /// Packed label bytes.
    pub labels: &'a wgpu::Buffer,
    /// The epoch's sample order.
    pub order: &'a wgpu::Buffer,
    /// `[steps, cursor]`.
    pub counters: &'a wgpu::Buffer,
    /// `(rows, inputs)`.
    pub x: &'a wgpu::Buffer,
    /// `(rows, classes)`.
    pub y: &'a wgpu::Buffer,
}

/// `x, y ← images, labels` at `order[cursor ..][.. rows]`.
#[derive(Clone, Copy, Debug)]
pub struct Gather;

impl Gather {
    fn layout(
        gpu: &Gpu,
        rows: usize,
        inputs: usize,
        classes: usize,
    ) -> Result<(GatherParams, [u32; 3])> {
        // An invocation per four elements of x, and per element of y (data.wgsl).
        let items = (rows * inputs).div_ceil(4).max(rows * classes);
        let too_big = u32::try_from(rows * inputs.max(classes)).is_err();
        if rows == 0 || inputs == 0 || classes == 0 || too_big {
            return Err(Error::invalid(
                "gather shape",
                format!("rows={rows}, inputs={inputs}, classes={classes}"),
            ));
        }
        let config = gpu.config();
        let params = GatherParams {
            rows: rows as u32,
            inputs: inputs as u32,
            classes: classes as u32,
            _pad: 0,
        };
        Ok((params, config.grid_1d(items, config.workgroup_size)))
    }

    fn bind_entry(
        gpu: &Gpu,
        label: &str,
        entry_point: &'static str,
        buffers: &GatherBuffers<'_>,
        params: &GatherParams,
        groups: [u32; 3],
    ) -> Result<Dispatch> {
        let spec = PipelineSpec {
            shader: Shader::Data,
            entry_point,
            constants: vec![],
            storage: STORAGE,
        };
        let GatherBuffers {
            images,
            labels,
            order,
            counters,
            x,
            y,
        } = *buffers;
        Dispatch::new(
            gpu,
            label,
            &spec,
            params,
            &[images, labels, order, counters, x, y],
            groups,
        )
    }

    /// Binds a gather of `rows` samples of `inputs` bytes and labels below `classes`.
    pub fn bind(
        gpu: &Gpu,
        label: &str,
        buffers: &GatherBuffers<'_>,
        rows: usize,
        inputs: usize,
        classes: usize,
    ) -> Result<Dispatch> {
        let (params, groups) = Self::layout(gpu, rows, inputs, classes)?;
        Self::bind_entry(gpu, label, "gather", buffers, &params, groups)
    }

    /// Binds the cursor advance that evaluation records after each batch (training moves the
    /// cursor with the step counter instead).
    pub fn bind_advance_cursor(
        gpu: &Gpu,
        label: &str,
        buffers: &GatherBuffers<'_>,
        rows: usize,
        inputs: usize,
        classes: usize,
    ) -> Result<Dispatch> {
        let (params, _) = Self::layout(gpu, rows, inputs, classes)?;
        Self::bind_entry(gpu, label, "advance_cursor", buffers, &params, [1, 1, 1])
    }

    /// Changes the rows per batch of a gather (`single_invocation: false`) or of a cursor
    /// advance (`true`).
    pub fn reshape(
        gpu: &Gpu,
        dispatch: &mut Dispatch,
        rows: usize,
        inputs: usize,
        classes: usize,
        single_invocation: bool,
    ) -> Result<()> {
        let (params, groups) = Self::layout(gpu, rows, inputs, classes)?;
        dispatch.update(
            gpu,
            &params,
            if single_invocation { [1, 1, 1] } else { groups },
        );
        Ok(())
    }
}

/// Packs bytes four to a little-endian `u32`, as `data.wgsl` unpacks them.
pub fn pack_bytes(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks(4)
        .map(|chunk| {
            let mut word = [0u8; 4];
            word[..chunk.len()].copy_from_slice(chunk);
            u32::from_le_bytes(word)
        })
        .collect()
}
