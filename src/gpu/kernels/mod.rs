//! One Rust file per WGSL file, with the same stem: each wraps its shader's entry points as
//! [`Dispatch`]es, built once and recorded many times.
//!
//! The shaders are embedded at compile time through the one table in `Shader::source`; each
//! is prefixed with `shaders/common.wgsl`, which holds the activation functions every family
//! shares. Workgroup sizes and tile shapes are WGSL `override` constants set from
//! [`KernelConfig`] (`config.rs`, the one file here without a shader), so they are written in
//! one place only.

pub mod activation;
pub mod augment;
mod config;
pub mod data;
pub mod dropout;
pub mod elementwise;
pub mod loss;
pub mod matmul;
pub mod metrics;
pub mod optim;
pub mod reduce;
#[cfg(test)]
mod translation;
pub mod transpose;

pub use config::{KernelConfig, KernelNeeds, MatmulStrategy};

use crate::error::{Error, Result};
use crate::gpu::context::{Access, Gpu, PipelineSpec};

/// The WGSL files in `shaders/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Shader {
    Activation,
    Augment,
    Data,
    Dropout,
    Elementwise,
    Loss,
    Matmul,
    Metrics,
    Optim,
    Reduce,
    Transpose,
}

const COMMON: &str = include_str!("../../../shaders/common.wgsl");
const RANDOM: &str = include_str!("../../../shaders/random.wgsl");

impl Shader {
    /// The file stem in `shaders/`.
    pub(crate) fn stem(self) -> &'static str {
        match self {
            Shader::Activation => "activation",
            Shader::Augment => "augment",
            Shader::Data => "data",
            Shader::Dropout => "dropout",
            Shader::Elementwise => "elementwise",
            Shader::Loss => "loss",
            Shader::Matmul => "matmul",
            Shader::Metrics => "metrics",
            Shader::Optim => "optim",
            Shader::Reduce => "reduce",
            Shader::Transpose => "transpose",
        }
    }

    /// Whether every index the kernel uses is clamped or guarded in the shader itself, so that
    /// its module may be compiled without wgpu's runtime bounds checks.
    pub(crate) fn guards_its_indices(self) -> bool {
        self == Shader::Matmul
    }

    /// The full WGSL source: the constants of `config`, `common.wgsl`, `random.wgsl`, then the
    /// family's own file.
    pub(crate) fn source(self, config: &KernelConfig) -> String {
        let own = match self {
            Shader::Activation => include_str!("../../../shaders/activation.wgsl"),
            Shader::Augment => include_str!("../../../shaders/augment.wgsl"),
            Shader::Data => include_str!("../../../shaders/data.wgsl"),
            Shader::Dropout => include_str!("../../../shaders/dropout.wgsl"),
            Shader::Elementwise => include_str!("../../../shaders/elementwise.wgsl"),
            Shader::Loss => include_str!("../../../shaders/loss.wgsl"),
            Shader::Matmul => include_str!("../../../shaders/matmul.wgsl"),
            Shader::Metrics => include_str!("../../../shaders/metrics.wgsl"),
            Shader::Optim => include_str!("../../../shaders/optim.wgsl"),
            Shader::Reduce => include_str!("../../../shaders/reduce.wgsl"),
            Shader::Transpose => include_str!("../../../shaders/transpose.wgsl"),
        };
        // The shuffled matmul uses subgroup operations, which naga refuses on a device
        // without them, so it joins its family's module only where it can run.
        let extra = match self {
            Shader::Matmul if config.subgroups => {
                include_str!("../../../shaders/matmul_shuffled.wgsl")
            }
            _ => "",
        };
        // Naga (native) knows subgroup operations without a directive and refuses `enable
        // subgroups;`; a browser's compiler requires it, before any declaration.
        let enable = if cfg!(target_arch = "wasm32") && !extra.is_empty() {
            "enable subgroups;\n"
        } else {
            ""
        };
        format!(
            "{enable}{}\n{COMMON}\n{RANDOM}\n{own}\n{extra}",
            config.wgsl_header()
        )
    }
}

/// Where dispatches are recorded: straight into a compute pass, or, for `--profile`, each into a
/// pass of its own between two timestamps (`crate::gpu::profile`). The training step is written
/// once against this trait, so the profiled step is the very step that trains.
pub trait Recorder {
    /// Records `dispatch`.
    fn record(&mut self, dispatch: &Dispatch);
}

impl Recorder for wgpu::ComputePass<'_> {
    fn record(&mut self, dispatch: &Dispatch) {
        dispatch.record_into(self);
    }
}

/// One kernel invocation with its buffers bound: a pipeline, a bind group made once, the uniform
/// parameter block (rewritten only when a shape changes) and the workgroup counts.
#[derive(Debug)]
pub struct Dispatch {
    label: String,
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    params: wgpu::Buffer,
    /// The parameter block as last written, for kernels whose reshape keeps part of it.
    params_written: Vec<u8>,
    workgroups: [u32; 3],
    /// Sizes in bytes of the storage buffers, in binding order (then the follow-up's), for
    /// kernels that check shapes against them.
    buffer_sizes: Vec<u64>,
    /// The pipeline's override constants, for kernels whose grid depends on them.
    constants: Vec<(&'static str, f64)>,
    /// A second kernel run right after this one with the same parameters: the sum of a
    /// matmul's parts when it is split over k.
    follow_up: Option<FollowUp>,
}

/// The second kernel of a [`Dispatch`].
#[derive(Debug)]
struct FollowUp {
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    /// Its own parameter block, if it does not share the first kernel's.
    params: Option<wgpu::Buffer>,
    workgroups: [u32; 3],
}

impl Dispatch {
    /// Binds `params` (binding 0) and `buffers` (bindings 1…, matching `spec.storage`; those at
    /// [`Access::Unused`] bindings are left out) to the pipeline `spec` describes.
    pub(crate) fn new<P: bytemuck::Pod>(
        gpu: &Gpu,
        label: &str,
        spec: &PipelineSpec,
        params: &P,
        buffers: &[&wgpu::Buffer],
        workgroups: [u32; 3],
    ) -> Result<Dispatch> {
        let pipeline = gpu.pipeline(spec)?;
        let params_buffer = gpu.uniform_buffer(&format!("{label}.params"), params)?;
        let bind_group = Self::bind_group(gpu, label, spec, &params_buffer, buffers)?;
        Ok(Dispatch {
            label: label.to_string(),
            pipeline,
            bind_group,
            params: params_buffer,
            params_written: bytemuck::bytes_of(params).to_vec(),
            workgroups,
            buffer_sizes: buffers.iter().map(|b| b.size()).collect(),
            constants: spec.constants.clone(),
            follow_up: None,
        })
    }

    /// The bind group of `params_buffer` (binding 0) and `buffers` for the pipeline `spec`
    /// describes.
    fn bind_group(
        gpu: &Gpu,
        label: &str,
        spec: &PipelineSpec,
        params_buffer: &wgpu::Buffer,
        buffers: &[&wgpu::Buffer],
    ) -> Result<wgpu::BindGroup> {
        if buffers.len() != spec.storage.len() {
            return Err(Error::invalid(
                label,
                format!(
                    "{} buffers bound to a kernel with {} storage bindings",
                    buffers.len(),
                    spec.storage.len()
                ),
            ));
        }
        // A buffer written by a dispatch must not be bound again in it: wgpu would accept the
        // bind group and fail the whole submission later, leaving the device in error.
        for (i, (first, first_access)) in buffers.iter().zip(spec.storage).enumerate() {
            for (j, (second, second_access)) in
                buffers.iter().zip(spec.storage).enumerate().skip(i + 1)
            {
                let written =
                    *first_access == Access::ReadWrite || *second_access == Access::ReadWrite;
                let bound = *first_access != Access::Unused && *second_access != Access::Unused;
                if first == second && written && bound {
                    return Err(Error::invalid(
                        label,
                        format!(
                            "one buffer is bound both as an output and as another operand (bindings {} and {})",
                            i + 1,
                            j + 1
                        ),
                    ));
                }
            }
        }
        let (bind_group_layout, _) = gpu.layouts(spec.storage)?;
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: params_buffer.as_entire_binding(),
        }];
        entries.extend(
            buffers
                .iter()
                .enumerate()
                .filter(|(i, _)| spec.storage[*i] != Access::Unused)
                .map(|(i, buffer)| wgpu::BindGroupEntry {
                    binding: i as u32 + 1,
                    resource: buffer.as_entire_binding(),
                }),
        );
        gpu.checked(&format!("binding {label}"), |device| {
            device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(label),
                layout: &bind_group_layout,
                entries: &entries,
            })
        })
    }

    /// Adds a kernel that runs right after this one with the same parameter block and
    /// `buffers` (matching `spec.storage`).
    pub(crate) fn then(
        mut self,
        gpu: &Gpu,
        spec: &PipelineSpec,
        buffers: &[&wgpu::Buffer],
        workgroups: [u32; 3],
    ) -> Result<Dispatch> {
        let label = format!("{}.then", self.label);
        let bind_group = Self::bind_group(gpu, &label, spec, &self.params, buffers)?;
        self.buffer_sizes.extend(buffers.iter().map(|b| b.size()));
        self.follow_up = Some(FollowUp {
            pipeline: gpu.pipeline(spec)?,
            bind_group,
            params: None,
            workgroups,
        });
        Ok(self)
    }

    /// [`Dispatch::then`] with a parameter block of its own.
    pub(crate) fn then_with<P: bytemuck::Pod>(
        mut self,
        gpu: &Gpu,
        spec: &PipelineSpec,
        params: &P,
        buffers: &[&wgpu::Buffer],
        workgroups: [u32; 3],
    ) -> Result<Dispatch> {
        let label = format!("{}.then", self.label);
        let params_buffer = gpu.uniform_buffer(&format!("{label}.params"), params)?;
        let bind_group = Self::bind_group(gpu, &label, spec, &params_buffer, buffers)?;
        self.buffer_sizes.extend(buffers.iter().map(|b| b.size()));
        self.follow_up = Some(FollowUp {
            pipeline: gpu.pipeline(spec)?,
            bind_group,
            params: Some(params_buffer),
            workgroups,
        });
        Ok(self)
    }

    /// Whether a second kernel follows this one ([`Dispatch::then`]).
    pub(crate) fn has_follow_up(&self) -> bool {
        self.follow_up.is_some()
    }

    /// Rewrites the parameter block and workgroup counts (when the batch size changes).
    pub(crate) fn update<P: bytemuck::Pod>(&mut self, gpu: &Gpu, params: &P, workgroups: [u32; 3]) {
        let bytes = bytemuck::bytes_of(params);
        gpu.queue().write_buffer(&self.params, 0, bytes);
        self.params_written.clear();
        self.params_written.extend_from_slice(bytes);
        self.workgroups = workgroups;
    }

    /// The parameter block as last written, if it is a `P`.
    pub(crate) fn params<P: bytemuck::Pod>(&self) -> Option<P> {
        bytemuck::try_pod_read_unaligned(&self.params_written).ok()
    }

    /// Rewrites the parameter block and workgroup counts of the kernel added by
    /// [`Dispatch::then_with`].
    pub(crate) fn update_follow_up_params<P: bytemuck::Pod>(
        &mut self,
        gpu: &Gpu,
        params: &P,
        workgroups: [u32; 3],
    ) {
        if let Some(follow_up) = &mut self.follow_up {
            if let Some(buffer) = &follow_up.params {
                gpu.queue()
                    .write_buffer(buffer, 0, bytemuck::bytes_of(params));
            }
            follow_up.workgroups = workgroups;
        }
    }

    /// Rewrites the workgroup counts of the kernel added by [`Dispatch::then`].
    pub(crate) fn update_follow_up(&mut self, workgroups: [u32; 3]) {
        if let Some(follow_up) = &mut self.follow_up {
            follow_up.workgroups = workgroups;
        }
    }

    /// Records the dispatch into `recorder`: a compute pass, or a profiler that times it.
    pub fn record<R: Recorder + ?Sized>(&self, recorder: &mut R) {
        recorder.record(self);
    }

    /// Records the dispatch into `pass`.
    pub(crate) fn record_into(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        let [x, y, z] = self.workgroups;
        pass.dispatch_workgroups(x, y, z);
        if let Some(follow_up) = &self.follow_up {
            // wgpu puts a barrier between the two: the second reads what the first wrote.
            pass.set_pipeline(&follow_up.pipeline);
            pass.set_bind_group(0, &follow_up.bind_group, &[]);
            let [x, y, z] = follow_up.workgroups;
            pass.dispatch_workgroups(x, y, z);
        }
    }

    /// Sizes in bytes of the bound storage buffers, in binding order.
    pub(crate) fn buffer_sizes(&self) -> &[u64] {
        &self.buffer_sizes
    }

    /// The value the pipeline gives the override constant `name`, if it sets one.
    pub(crate) fn constant(&self, name: &str) -> Option<f64> {
        self.constants
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| *value)
    }

    /// The label given at creation.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Records `dispatches` in one compute pass, submits and waits (for tests and benchmarks).
    /// Blocks: the native form of [`Dispatch::run_all_async`].
    #[cfg(not(target_arch = "wasm32"))]
    pub fn run_all(gpu: &Gpu, dispatches: &[&Dispatch]) -> Result<()> {
        gpu.submit_and_wait(Self::encode_all(gpu, dispatches))
    }

    /// [`Dispatch::run_all`] as a future.
    pub async fn run_all_async(gpu: &Gpu, dispatches: &[&Dispatch]) -> Result<()> {
        gpu.submit_and_wait_async(Self::encode_all(gpu, dispatches))
            .await
    }

    /// An encoder with `dispatches` recorded in one compute pass.
    fn encode_all(gpu: &Gpu, dispatches: &[&Dispatch]) -> wgpu::CommandEncoder {
        let mut encoder = gpu.encoder("kernel run");
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("kernel run"),
                timestamp_writes: None,
            });
            for dispatch in dispatches {
                dispatch.record(&mut pass);
            }
        }
        encoder
    }
}

/// The parameter block of the kernels that work on one `(rows, cols)` matrix (activation,
/// elementwise, reduce, transpose): the shape and one scalar.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct MatrixParams {
    rows: u32,
    cols: u32,
    alpha: f32,
    _pad: u32,
}

impl MatrixParams {
    /// Checks that `rows × cols` is non-empty and indexable with `u32`.
    pub(crate) fn new(what: &str, rows: usize, cols: usize, alpha: f32) -> Result<Self> {
        if rows == 0 || cols == 0 || u32::try_from(rows.saturating_mul(cols)).is_err() {
            return Err(Error::invalid(
                what,
                format!(
                    "rows={rows}, cols={cols}: each must be at least 1 and rows·cols below 2³²"
                ),
            ));
        }
        Ok(MatrixParams {
            rows: rows as u32,
            cols: cols as u32,
            alpha,
            _pad: 0,
        })
    }
}

/// The workgroups of a one-dimensional kernel over `items` invocations
/// ([`KernelConfig::grid_1d`]), refused when the adapter cannot dispatch them even folded into
/// two dimensions, or when the last flat index of the folded grid would not fit in `u32` (an
/// index that wrapped would pass the shader's bounds check and touch an element twice).
pub(crate) fn grid_1d_checked(gpu: &Gpu, what: &str, items: usize) -> Result<[u32; 3]> {
    grid_checked(gpu, what, items, gpu.config().workgroup_size)
}

/// [`grid_1d_checked`] for a kernel that covers `items_per_group` items per workgroup instead
/// of `WORKGROUP_SIZE`.
pub(crate) fn grid_checked(
    gpu: &Gpu,
    what: &str,
    items: usize,
    items_per_group: u32,
) -> Result<[u32; 3]> {
    let config = gpu.config();
    let max = config.max_workgroups_per_dimension;
    let refuse = |why: String| Err(Error::invalid(what, why));
    if max == 0 {
        return refuse("the adapter allows no compute workgroups".into());
    }
    let groups = config.grid_1d(items, items_per_group);
    let [x, y, _] = groups;
    if x > max || y > max {
        return refuse(format!(
            "{items} invocations need {x}×{y} workgroups of {items_per_group}; the adapter \
             allows {max} per dimension"
        ));
    }
    let invocations = u64::from(x) * u64::from(y) * u64::from(items_per_group);
    if invocations > 1 << 32 {
        return refuse(format!(
            "{items} invocations need a grid of {invocations}, past 32-bit indexing"
        ));
    }
    Ok(groups)
}

/// Refuses an operand buffer of `bytes` that holds fewer than `values` f32 values. wgpu's bounds
/// checks would keep a short buffer from being overrun, but the result would be silently wrong.
pub(crate) fn check_operand(what: &str, operand: &str, bytes: u64, values: usize) -> Result<()> {
    let needed = values as u64 * 4;
    if bytes < needed {
        return Err(Error::invalid(
            what,
            format!("{operand} holds {bytes} bytes but the shape needs {needed}"),
        ));
    }
    Ok(())
}

/// The sizes of the `N` storage buffers bound to `dispatch`, or an error naming the kernel whose
/// `bind` should have made it.
pub(crate) fn bound_sizes<const N: usize>(dispatch: &Dispatch, kernel: &str) -> Result<[u64; N]> {
    dispatch.buffer_sizes().try_into().map_err(|_| {
        Error::invalid(
            format!("{kernel} reshape"),
            format!(
                "dispatch {} was not bound by {kernel}::bind",
                dispatch.label()
            ),
        )
    })
}

/// Storage access lists shared by several kernels.
pub(crate) mod bindings {
    use super::Access::{Read, ReadWrite};
    use crate::gpu::context::Access;

    /// `in → out`.
    pub const UNARY: &[Access] = &[Read, ReadWrite];
    /// `a, b → out`.
    pub const BINARY: &[Access] = &[Read, Read, ReadWrite];
}
