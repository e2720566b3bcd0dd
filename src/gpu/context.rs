//! [`Gpu`]: the adapter, the device and queue, and every compiled pipeline, built once.
//!
//! Adapter choice ([`AdapterChoice`]) prefers a hardware GPU and falls back to a software one
//! (Mesa's lavapipe, WARP, SwiftShader). The device is opened with the adapter's own limits, not
//! wgpu's conservative defaults, so that large layers fit. Pipelines are compiled on first use and
//! cached for the life of the context; a network asks for all of its pipelines when it is built,
//! so none is compiled during training.
//!
//! wgpu reports most failures asynchronously. Creation goes through error scopes
//! (`Gpu::checked`) so that a failure becomes an [`Error`] naming the operation; anything that
//! escapes a scope is kept and reported by the next read-back instead of panicking.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::gpu::kernels::{KernelConfig, Shader};

/// How long a read-back waits for the GPU before giving up with an error.
pub const READBACK_TIMEOUT: Duration = Duration::from_secs(120);

/// Which adapter [`Gpu::new`] opens.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum AdapterChoice {
    /// A hardware GPU if there is one (discrete before integrated), else a software adapter.
    #[default]
    Auto,
    /// Only a software (CPU-based) adapter, such as Mesa's lavapipe.
    Software,
    /// The first adapter whose name contains this text (case-insensitive).
    Name(String),
}

impl FromStr for AdapterChoice {
    type Err = std::convert::Infallible;

    /// `auto`, `software`, or any other text as a name to match.
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "auto" => AdapterChoice::Auto,
            "software" | "cpu" => AdapterChoice::Software,
            _ => AdapterChoice::Name(s.to_string()),
        })
    }
}

impl fmt::Display for AdapterChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdapterChoice::Auto => f.write_str("auto"),
            AdapterChoice::Software => f.write_str("software"),
            AdapterChoice::Name(name) => f.write_str(name),
        }
    }
}

/// What to do when no adapter exists at all.
const INSTALL_HINT: &str = "no GPU adapter was found. Install a GPU driver, or a software Vulkan \
driver to run on the CPU: on Debian/Ubuntu `sudo apt-get install mesa-vulkan-drivers` (Mesa's \
lavapipe), on Fedora `sudo dnf install mesa-vulkan-drivers`; on Windows the WARP adapter of DX12 \
is built in";

/// The bindings of a kernel's bind group, in binding order. Binding 0 is always the kernel's
/// uniform parameter block; the rest are storage buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Access {
    /// `var<storage, read>`.
    Read,
    /// `var<storage, read_write>`.
    ReadWrite,
}

/// A compute pipeline to build: a shader's entry point, its override constants and the access of
/// each storage binding after the uniform at binding 0.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PipelineSpec {
    pub shader: Shader,
    pub entry_point: &'static str,
    pub constants: Vec<(&'static str, f64)>,
    pub storage: &'static [Access],
}

impl PipelineSpec {
    fn cache_key(&self) -> String {
        let constants: Vec<String> = self
            .constants
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!(
            "{:?}:{}:{}",
            self.shader,
            self.entry_point,
            constants.join(",")
        )
    }

    fn label(&self) -> String {
        let constants: Vec<String> = self
            .constants
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!(
            "{}.{}[{}]",
            self.shader.stem(),
            self.entry_point,
            constants.join(",")
        )
    }
}

/// The GPU context. Cheap to clone: clones share the device and the pipeline cache.
#[derive(Clone)]
pub struct Gpu {
    inner: Arc<GpuInner>,
}

struct GpuInner {
    adapter_info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    device: wgpu::Device,
    queue: wgpu::Queue,
    config: KernelConfig,
    modules: Mutex<HashMap<Shader, wgpu::ShaderModule>>,
    layouts: Mutex<HashMap<Vec<Access>, (wgpu::BindGroupLayout, wgpu::PipelineLayout)>>,
    pipelines: Mutex<HashMap<String, wgpu::ComputePipeline>>,
    /// The first error that escaped every error scope, or the reason the device was lost.
    fault: Arc<Mutex<Option<String>>>,
}

impl fmt::Debug for Gpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gpu")
            .field("adapter", &self.inner.adapter_info.name)
            .finish_non_exhaustive()
    }
}

/// One line per adapter: name, backend and device type.
pub fn describe_adapter(info: &wgpu::AdapterInfo) -> String {
    format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type)
}

fn instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

/// Every adapter wgpu can see, in the order it reports them.
pub fn available_adapters() -> Vec<wgpu::Adapter> {
    pollster::block_on(instance().enumerate_adapters(wgpu::Backends::all()))
}

/// Hardware first: discrete, integrated, virtual, other, then software.
fn preference(device_type: wgpu::DeviceType) -> u8 {
    match device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

/// Backends in the order we trust them for compute, used to break ties between two adapters of
/// the same type (the same GPU is often visible through Vulkan and GL at once).
fn backend_rank(backend: wgpu::Backend) -> u8 {
    match backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        _ => 1,
    }
}

fn choose_adapter(choice: &AdapterChoice) -> Result<wgpu::Adapter> {
    let mut adapters = available_adapters();
    // The GL backend has no compute shaders on many drivers; never pick it when another exists.
    adapters.sort_by_key(|a| {
        let info = a.get_info();
        (preference(info.device_type), backend_rank(info.backend))
    });
    if adapters.is_empty() {
        return Err(Error::NoAdapter(INSTALL_HINT.to_string()));
    }
    let names = || {
        adapters
            .iter()
            .map(|a| describe_adapter(&a.get_info()))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let found = match choice {
        AdapterChoice::Auto => adapters.first(),
        AdapterChoice::Software => adapters
            .iter()
            .find(|a| a.get_info().device_type == wgpu::DeviceType::Cpu),
        AdapterChoice::Name(name) => {
            let needle = name.to_lowercase();
            adapters
                .iter()
                .find(|a| a.get_info().name.to_lowercase().contains(&needle))
        }
    };
    match found {
        Some(adapter) => Ok(adapter.clone()),
        None => Err(Error::NoAdapter(match choice {
            AdapterChoice::Software => format!(
                "no software adapter was found (available: {}). Install Mesa's lavapipe: `sudo apt-get install mesa-vulkan-drivers`",
                names()
            ),
            _ => format!(
                "no adapter matches {choice:?}; available adapters: {}",
                names()
            ),
        })),
    }
}

impl Gpu {
    /// Opens a device on the adapter `choice` selects, with that adapter's own limits.
    pub fn new(choice: AdapterChoice) -> Result<Gpu> {
        Self::with_limits(choice, |_| {})
    }

    /// [`Gpu::new`] with the adapter's limits lowered by `adjust` (to test how models that do
    /// not fit are handled, or to stay within a budget). Raising a limit above the adapter's
    /// makes opening the device fail.
    pub fn with_limits(
        choice: AdapterChoice,
        adjust: impl FnOnce(&mut wgpu::Limits),
    ) -> Result<Gpu> {
        Self::open(choice, adjust, |_| {})
    }

    /// [`Gpu::new`] with the kernel shapes [`KernelConfig::for_adapter`] chose changed by
    /// `adjust`: to run the kernels one kind of adapter gets on another, e.g. the shared-memory
    /// matmul GPUs get on a CPU adapter in CI, or to measure an alternative.
    pub fn with_kernel_config(
        choice: AdapterChoice,
        adjust: impl FnOnce(&mut KernelConfig),
    ) -> Result<Gpu> {
        Self::open(choice, |_| {}, adjust)
    }

    fn open(
        choice: AdapterChoice,
        adjust_limits: impl FnOnce(&mut wgpu::Limits),
        adjust_config: impl FnOnce(&mut KernelConfig),
    ) -> Result<Gpu> {
        let adapter = choose_adapter(&choice)?;
        let adapter_info = adapter.get_info();
        let mut limits = adapter.limits();
        adjust_limits(&mut limits);
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("wgpu-mlp device"),
            // Timestamps cost nothing unless `--profile` writes them; subgroups serve the
            // shuffled matmul (KernelConfig::for_adapter).
            required_features: adapter.features()
                & (wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SUBGROUP),
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|source| Error::RequestDevice {
            adapter: adapter_info.name.clone(),
            source,
        })?;

        let fault = Arc::new(Mutex::new(None::<String>));
        let uncaptured = fault.clone();
        device.on_uncaptured_error(Arc::new(move |error: wgpu::Error| {
            let mut slot = uncaptured.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert_with(|| error.to_string());
        }));
        let lost = fault.clone();
        device.set_device_lost_callback(move |reason, message| {
            let mut slot = lost.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert_with(|| format!("device lost ({reason:?}): {message}"));
        });

        let mut config = KernelConfig::for_adapter(&adapter_info, &limits, device.features());
        adjust_config(&mut config);
        Ok(Gpu {
            inner: Arc::new(GpuInner {
                adapter_info,
                limits,
                device,
                queue,
                config,
                modules: Mutex::default(),
                layouts: Mutex::default(),
                pipelines: Mutex::default(),
                fault,
            }),
        })
    }

    /// Whether the device can time passes with timestamp queries (`--profile`).
    pub fn has_timestamps(&self) -> bool {
        self.inner
            .device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// The adapter's name, backend, type and driver.
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.inner.adapter_info
    }

    /// `name (backend, type)`, for logs and reports.
    pub fn adapter_description(&self) -> String {
        describe_adapter(&self.inner.adapter_info)
    }

    /// The limits the device was opened with (the adapter's own).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.inner.limits
    }

    /// The wgpu device.
    pub fn device(&self) -> &wgpu::Device {
        &self.inner.device
    }

    /// The wgpu queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.inner.queue
    }

    /// Kernel shapes chosen for this adapter.
    pub fn config(&self) -> &KernelConfig {
        &self.inner.config
    }

    /// Runs `create` inside validation and out-of-memory error scopes, turning anything wgpu
    /// reports into an [`Error::Gpu`] that names `during`.
    pub(crate) fn checked<T>(
        &self,
        during: &str,
        create: impl FnOnce(&wgpu::Device) -> T,
    ) -> Result<T> {
        self.check_fault()?;
        let device = &self.inner.device;
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let value = create(device);
        let validation_error = pollster::block_on(validation.pop());
        let oom_error = pollster::block_on(oom.pop());
        match validation_error.or(oom_error) {
            None => Ok(value),
            Some(error) => Err(Error::Gpu {
                during: during.to_string(),
                message: error.to_string(),
            }),
        }
    }

    /// An error for the first fault that escaped the error scopes or for a lost device, if any.
    pub(crate) fn check_fault(&self) -> Result<()> {
        let fault = self.inner.fault.lock().unwrap_or_else(|p| p.into_inner());
        match fault.as_ref() {
            None => Ok(()),
            Some(message) if message.starts_with("device lost") => {
                Err(Error::DeviceLost(message.clone()))
            }
            Some(message) => Err(Error::Gpu {
                during: "an earlier GPU operation".into(),
                message: message.clone(),
            }),
        }
    }

    /// Checks that a storage buffer of `bytes` fits the device's binding and buffer limits.
    pub(crate) fn check_storage_size(&self, what: &str, bytes: u64) -> Result<()> {
        let limits = &self.inner.limits;
        let checks = [
            (
                limits.max_storage_buffer_binding_size,
                "max_storage_buffer_binding_size",
            ),
            (limits.max_buffer_size, "max_buffer_size"),
        ];
        for (limit, limit_name) in checks {
            if bytes > limit {
                return Err(Error::DeviceLimit {
                    what: what.to_string(),
                    needed: bytes,
                    limit,
                    limit_name,
                    adapter: self.inner.adapter_info.name.clone(),
                });
            }
        }
        Ok(())
    }

    /// A zero-filled storage buffer of `len` f32 values (at least one, as wgpu refuses empty
    /// bindings), usable as a copy source and destination.
    pub fn storage_buffer(&self, label: &str, len: usize) -> Result<wgpu::Buffer> {
        let bytes = (len.max(1) * 4) as u64;
        self.check_storage_size(label, bytes)?;
        self.checked(&format!("creating buffer {label}"), |device| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })
    }

    /// A storage buffer holding `data` (f32 or u32 words).
    pub fn storage_buffer_with<T: bytemuck::Pod>(
        &self,
        label: &str,
        data: &[T],
    ) -> Result<wgpu::Buffer> {
        let buffer = self.storage_buffer(label, std::mem::size_of_val(data) / 4)?;
        self.inner
            .queue
            .write_buffer(&buffer, 0, bytemuck::cast_slice(data));
        Ok(buffer)
    }

    /// A uniform buffer holding `params`, rewritable with `queue.write_buffer`.
    pub(crate) fn uniform_buffer<T: bytemuck::Pod>(
        &self,
        label: &str,
        params: &T,
    ) -> Result<wgpu::Buffer> {
        let buffer = self.checked(&format!("creating buffer {label}"), |device| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: std::mem::size_of::<T>().next_multiple_of(16) as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })?;
        self.inner
            .queue
            .write_buffer(&buffer, 0, bytemuck::bytes_of(params));
        Ok(buffer)
    }

    /// A mappable buffer of `bytes` to copy results into for reading on the host.
    pub(crate) fn staging_buffer(&self, label: &str, bytes: u64) -> Result<wgpu::Buffer> {
        self.checked(&format!("creating buffer {label}"), |device| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes.max(4),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })
    }

    fn module(&self, shader: Shader) -> Result<wgpu::ShaderModule> {
        let mut modules = self.inner.modules.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(module) = modules.get(&shader) {
            return Ok(module.clone());
        }
        let source = shader.source(&self.inner.config);
        let module = self.checked(
            &format!("compiling shaders/{}.wgsl", shader.stem()),
            |device| {
                let descriptor = wgpu::ShaderModuleDescriptor {
                    label: Some(shader.stem()),
                    source: wgpu::ShaderSource::Wgsl(source.into()),
                };
                if shader.guards_its_indices() && !self.inner.config.bounds_checks {
                    // SAFETY: the kernels clamp every load into their operands and guard every
                    // store, parts of a split product included (see matmul.wgsl), and the host
                    // sizes each buffer for the shape it binds (`Matmul::bind` checks the shape
                    // and the parts), so the checks wgpu would insert can never fire. Without
                    // them the matmul runs 12–23% faster on an H200 (W2 17%) and twice as fast
                    // on lavapipe (`KernelConfig::bounds_checks` puts them back).
                    unsafe {
                        device.create_shader_module_trusted(
                            descriptor,
                            wgpu::ShaderRuntimeChecks::unchecked(),
                        )
                    }
                } else {
                    device.create_shader_module(descriptor)
                }
            },
        )?;
        modules.insert(shader, module.clone());
        Ok(module)
    }

    /// The bind group layout for a uniform at binding 0 followed by `storage` bindings, and the
    /// pipeline layout around it; one of each per distinct binding list.
    pub(crate) fn layouts(
        &self,
        storage: &[Access],
    ) -> Result<(wgpu::BindGroupLayout, wgpu::PipelineLayout)> {
        let mut layouts = self.inner.layouts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pair) = layouts.get(storage) {
            return Ok(pair.clone());
        }
        let compute = wgpu::ShaderStages::COMPUTE;
        let mut entries = vec![wgpu::BindGroupLayoutEntry {
            binding: 0,
            visibility: compute,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        }];
        for (i, access) in storage.iter().enumerate() {
            entries.push(wgpu::BindGroupLayoutEntry {
                binding: i as u32 + 1,
                visibility: compute,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage {
                        read_only: *access == Access::Read,
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            });
        }
        let name: String = storage
            .iter()
            .map(|a| if *a == Access::Read { 'r' } else { 'w' })
            .collect();
        let pair = self.checked("creating a bind group layout", |device| {
            let bind_group_layout =
                device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                    label: Some(&format!("bindings u{name}")),
                    entries: &entries,
                });
            let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(&format!("pipeline layout u{name}")),
                bind_group_layouts: &[Some(&bind_group_layout)],
                immediate_size: 0,
            });
            (bind_group_layout, pipeline_layout)
        })?;
        layouts.insert(storage.to_vec(), pair.clone());
        Ok(pair)
    }

    /// Creates the pipelines of `specs` that are not cached yet, on a thread each. A GPU driver
    /// compiles a pipeline when it is created, and a matmul tile is one of the slower ones to
    /// compile, so a network that binds several tiles waits for the slowest instead of their
    /// sum. (wgpu's error scopes are per thread, so each creation is checked on its own.)
    pub(crate) fn prepare_pipelines(&self, specs: &[PipelineSpec]) -> Result<()> {
        let missing: HashMap<String, &PipelineSpec> = {
            let cached = self
                .inner
                .pipelines
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            specs
                .iter()
                .map(|spec| (spec.cache_key(), spec))
                .filter(|(key, _)| !cached.contains_key(key))
                .collect()
        };
        // Modules and layouts first, once each, so that the threads only create pipelines.
        for spec in missing.values() {
            self.module(spec.shader)?;
            self.layouts(spec.storage)?;
        }
        std::thread::scope(|scope| {
            let threads: Vec<_> = missing
                .values()
                .map(|spec| scope.spawn(move || self.pipeline(spec).map(drop)))
                .collect();
            threads.into_iter().try_for_each(|thread| {
                thread
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
        })
    }

    /// The pipeline for `spec`, compiled on first request and cached.
    pub(crate) fn pipeline(&self, spec: &PipelineSpec) -> Result<wgpu::ComputePipeline> {
        let key = spec.cache_key();
        if let Some(pipeline) = self
            .inner
            .pipelines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(pipeline.clone());
        }
        let module = self.module(spec.shader)?;
        let (_, layout) = self.layouts(spec.storage)?;
        let label = spec.label();
        let pipeline = self.checked(&format!("creating pipeline {label}"), |device| {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&label),
                layout: Some(&layout),
                module: &module,
                entry_point: Some(spec.entry_point),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &spec.constants,
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            })
        })?;
        self.inner
            .pipelines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, pipeline.clone());
        Ok(pipeline)
    }

    /// Copies `len` 4-byte values (f32 or u32) from each source buffer into `staging` (which must
    /// be large enough for all of them, back to back), submits `encoder` with the copies appended,
    /// waits at most [`READBACK_TIMEOUT`], and returns the values of each source.
    pub(crate) fn read_back<T: bytemuck::Pod>(
        &self,
        what: &str,
        mut encoder: wgpu::CommandEncoder,
        staging: &wgpu::Buffer,
        sources: &[(&wgpu::Buffer, usize)],
    ) -> Result<Vec<Vec<T>>> {
        const { assert!(std::mem::size_of::<T>() == 4) };
        let mut offset = 0u64;
        for (buffer, len) in sources {
            let bytes = (*len * 4) as u64;
            encoder.copy_buffer_to_buffer(buffer, 0, staging, offset, bytes);
            offset += bytes;
        }
        if offset > staging.size() {
            return Err(Error::Readback {
                what: what.into(),
                why: format!(
                    "staging buffer holds {} bytes, {offset} needed",
                    staging.size()
                ),
            });
        }
        let submission = self.inner.queue.submit([encoder.finish()]);
        let slice = staging.slice(..offset.max(4));
        let (sender, receiver) = futures_intrusive::channel::shared::oneshot_channel();
        slice.map_async(wgpu::MapMode::Read, move |result| {
            let _ = sender.send(result);
        });
        let readback_error = |why: String| Error::Readback {
            what: what.into(),
            why,
        };
        self.inner
            .device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(submission),
                timeout: Some(READBACK_TIMEOUT),
            })
            .map_err(|e| readback_error(e.to_string()))?;
        self.check_fault()?;
        match pollster::block_on(receiver.receive()) {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(readback_error(e.to_string())),
            None => return Err(readback_error("the map callback never ran".into())),
        }
        let values = {
            let view = slice
                .get_mapped_range()
                .map_err(|e| readback_error(e.to_string()))?;
            let all: &[T] = bytemuck::cast_slice(&view);
            let mut start = 0;
            sources
                .iter()
                .map(|(_, len)| {
                    let part = all[start..start + len].to_vec();
                    start += len;
                    part
                })
                .collect()
        };
        staging.unmap();
        Ok(values)
    }

    /// Reads the first `len` f32 values of `buffer` through a temporary staging buffer. For tests,
    /// tools and one-off downloads; the training loop uses its own reusable staging buffer.
    pub fn read_f32(&self, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
        let label = "read_f32.staging";
        let staging = self.staging_buffer(label, (len * 4) as u64)?;
        let mut values = self.read_back(label, self.encoder(label), &staging, &[(buffer, len)])?;
        Ok(values.pop().unwrap_or_default())
    }

    /// Submits `encoder` and waits for the GPU to finish it (for tests and benchmarks).
    pub fn submit_and_wait(&self, encoder: wgpu::CommandEncoder) -> Result<()> {
        let submission = self.inner.queue.submit([encoder.finish()]);
        self.inner
            .device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(submission),
                timeout: Some(READBACK_TIMEOUT),
            })
            .map_err(|e| Error::Readback {
                what: "submission".into(),
                why: e.to_string(),
            })?;
        self.check_fault()
    }

    /// A labelled command encoder.
    pub fn encoder(&self, label: &str) -> wgpu::CommandEncoder {
        self.inner
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad_buffer(device: &wgpu::Device) -> wgpu::Buffer {
        // MAP_READ may only be combined with COPY_DST: a validation error.
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("invalid on purpose"),
            size: 16,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        })
    }

    #[test]
    fn wgpu_errors_become_errors_naming_the_operation_not_panics() {
        let gpu = Gpu::new(AdapterChoice::Auto).unwrap();
        let error = gpu
            .checked("creating a test buffer", bad_buffer)
            .unwrap_err();
        assert!(
            matches!(&error, Error::Gpu { during, .. } if during == "creating a test buffer"),
            "{error:?}"
        );

        // An error outside any scope is kept, and the next operation reports it.
        let _ = bad_buffer(gpu.device());
        let error = gpu
            .submit_and_wait(gpu.encoder("after the fault"))
            .unwrap_err();
        assert!(error.to_string().contains("invalid on purpose"), "{error}");
    }

    #[test]
    fn pipelines_prepared_in_parallel_are_cached_once_and_failures_are_errors() {
        let gpu = Gpu::new(AdapterChoice::Auto).unwrap();
        let matmul = |entry_point, block: f64| PipelineSpec {
            shader: Shader::Matmul,
            entry_point,
            constants: vec![("MM_BLOCK_M", block)],
            storage: crate::gpu::kernels::matmul::STORAGE,
        };
        let cached = |gpu: &Gpu| gpu.inner.pipelines.lock().unwrap().len();
        // Two distinct pipelines, one of them asked for twice.
        let specs = [
            matmul("matmul_register", 2.0),
            matmul("matmul_register", 4.0),
            matmul("matmul_register", 2.0),
        ];
        gpu.prepare_pipelines(&specs).unwrap();
        assert_eq!(cached(&gpu), 2);
        // Prepared pipelines are the ones later asked for: nothing new is created.
        gpu.pipeline(&specs[1]).unwrap();
        assert_eq!(cached(&gpu), 2);

        // A pipeline that cannot be created is an error naming it, whichever thread made it.
        let error = gpu
            .prepare_pipelines(&[
                matmul("matmul_register", 8.0),
                matmul("no_such_entry_point", 8.0),
            ])
            .unwrap_err();
        assert!(error.to_string().contains("no_such_entry_point"), "{error}");
    }
}
