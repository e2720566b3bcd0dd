//! [`Gpu`]: the adapter, the device and queue, and every compiled pipeline, built once.
//!
//! Adapter choice ([`AdapterChoice`]) prefers a hardware GPU and falls back to a software one
//! (Mesa's lavapipe, WARP, SwiftShader). The device is opened with the adapter's own limits, not
//! wgpu's conservative defaults, so that large layers fit, unless [`GpuOptions`] (or the
//! environment) asks for WebGPU's or the downlevel limits, to run as a weaker device would. Pipelines are compiled on first use and
//! cached for the life of the context; a network asks for all of its pipelines when it is built,
//! so none is compiled during training.
//!
//! wgpu reports most failures asynchronously. Creation goes through error scopes
//! (`Gpu::checked`) so that a failure becomes an [`Error`] naming the operation; anything that
//! escapes a scope is kept and reported by the next read-back instead of panicking.

//!
//! This file opens the device and reports its faults; [`adapter`] chooses the adapter,
//! [`pipelines`] compiles and caches pipelines, [`buffers`] creates buffers and reads them
//! back, and [`options`] reads the limits, features and matmul kernel asked for.

mod adapter;
mod buffers;
mod options;
mod pipelines;

pub use adapter::{AdapterChoice, available_adapters, describe_adapter, ways_to_choose};
pub use options::{FeatureMask, GpuOptions, LimitsPreset};
pub(crate) use pipelines::{Access, PipelineSpec};

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::gpu::kernels::{KernelConfig, Shader};
use adapter::choose_adapter;

/// How long a read-back waits for the GPU before giving up with an error.
pub const READBACK_TIMEOUT: Duration = Duration::from_secs(120);

/// The GPU context. Cheap to clone: clones share the device and the pipeline cache.
#[derive(Clone)]
pub struct Gpu {
    inner: Arc<GpuInner>,
}

struct GpuInner {
    adapter_info: wgpu::AdapterInfo,
    options: GpuOptions,
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

impl Gpu {
    /// Opens a device on the adapter `choice` selects, with the limits, features and matmul
    /// kernel the environment asks for ([`GpuOptions::from_env`]: the adapter's own limits, all
    /// its features and its kernel unless `WGPU_MLP_LIMITS`, `WGPU_MLP_FEATURES` or
    /// `WGPU_MLP_MATMUL` say otherwise).
    pub fn new(choice: AdapterChoice) -> Result<Gpu> {
        Self::with_options(choice, GpuOptions::from_env()?)
    }

    /// Opens a device on the adapter `choice` selects as `options` say, whatever the
    /// environment: e.g. WebGPU's limits without subgroups, to run as a browser's device would.
    pub fn with_options(choice: AdapterChoice, options: GpuOptions) -> Result<Gpu> {
        Self::open(choice, options, |_| {}, |_| {})
    }

    /// [`Gpu::new`] with the limits lowered by `adjust` (to test how models that do not fit are
    /// handled, or to stay within a budget). Raising a limit above the adapter's makes opening
    /// the device fail.
    pub fn with_limits(
        choice: AdapterChoice,
        adjust: impl FnOnce(&mut wgpu::Limits),
    ) -> Result<Gpu> {
        Self::open(choice, GpuOptions::from_env()?, adjust, |_| {})
    }

    /// [`Gpu::new`] with the kernel shapes [`KernelConfig::for_adapter`] chose changed by
    /// `adjust`: to run the kernels one kind of adapter gets on another, e.g. the shared-memory
    /// matmul GPUs get on a CPU adapter in CI, or to measure an alternative.
    pub fn with_kernel_config(
        choice: AdapterChoice,
        adjust: impl FnOnce(&mut KernelConfig),
    ) -> Result<Gpu> {
        Self::open(choice, GpuOptions::from_env()?, |_| {}, adjust)
    }

    fn open(
        choice: AdapterChoice,
        options: GpuOptions,
        adjust_limits: impl FnOnce(&mut wgpu::Limits),
        adjust_config: impl FnOnce(&mut KernelConfig),
    ) -> Result<Gpu> {
        let adapter = choose_adapter(&choice)?;
        let adapter_info = adapter.get_info();
        let mut limits = options.limits.limits(&adapter.limits());
        adjust_limits(&mut limits);
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("wgpu-mlp device"),
            // Timestamps cost nothing unless `--profile` writes them; subgroups serve the
            // shuffled matmul (KernelConfig::for_adapter).
            required_features: options.features.features(adapter.features()),
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
        if let Some(strategy) = options.matmul {
            config.check_strategy(strategy)?;
            config.matmul = strategy;
        }
        adjust_config(&mut config);
        Ok(Gpu {
            inner: Arc::new(GpuInner {
                adapter_info,
                options,
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

    /// The limits the device was opened with: the adapter's own unless [`GpuOptions::limits`]
    /// or an adjustment lowered them.
    pub fn limits(&self) -> &wgpu::Limits {
        &self.inner.limits
    }

    /// The options the device was opened with.
    pub fn options(&self) -> &GpuOptions {
        &self.inner.options
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
}
