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
//! In a browser (wasm32, WebGPU) nothing may block: the device is opened with
//! [`Gpu::new_async`], results come back through futures (`Gpu::read_back_async`,
//! [`Gpu::submit_and_wait_async`]), and the blocking forms are not compiled. An error a scope
//! catches there arrives after its call has returned, so it is reported, naming the same
//! operation, by the next check instead (see `Gpu::checked`).

//!
//! This file opens the device and reports its faults; `adapter` chooses the adapter (and
//! `browser` describes a browser's), `pipelines` compiles and caches pipelines, `buffers`
//! creates buffers and reads them back, and `options` reads the limits, features and matmul
//! kernel asked for.

mod adapter;
#[cfg(target_arch = "wasm32")]
mod browser;
mod buffers;
mod options;
mod pipelines;

#[cfg(not(target_arch = "wasm32"))]
pub use adapter::available_adapters;
pub use adapter::{AdapterChoice, describe_adapter, ways_to_choose};
pub use options::{FeatureMask, GpuOptions, LimitsPreset, compat_limits};
pub(crate) use pipelines::{Access, PipelineSpec, bound_count};

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
    /// The first fault: an error that escaped every error scope (or, in a browser, one a scope
    /// caught after its call returned), or the reason the device was lost.
    fault: Arc<Mutex<Option<Fault>>>,
}

/// A failure wgpu reported outside the call that caused it, kept for [`Gpu::check_fault`].
#[derive(Debug)]
enum Fault {
    /// Caught by no error scope.
    Uncaptured(String),
    /// Caught by the scopes of [`Gpu::checked`] for the operation named first, after it returned.
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    Scoped(String, String),
    /// The device was lost.
    Lost(String),
}

impl Fault {
    /// Keeps `fault` in `slot` unless an earlier one is there.
    fn record(slot: &Mutex<Option<Fault>>, fault: Fault) {
        let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert(fault);
    }
}

/// The slot `device`'s uncaptured errors and loss are kept in.
fn watch_faults(device: &wgpu::Device) -> Arc<Mutex<Option<Fault>>> {
    let fault = Arc::new(Mutex::new(None::<Fault>));
    let uncaptured = fault.clone();
    device.on_uncaptured_error(Arc::new(move |error: wgpu::Error| {
        Fault::record(&uncaptured, Fault::Uncaptured(error.to_string()));
    }));
    let lost = fault.clone();
    device.set_device_lost_callback(move |reason, message| {
        let message = format!("device lost ({reason:?}): {message}");
        Fault::record(&lost, Fault::Lost(message));
    });
    fault
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
    /// `WGPU_MLP_MATMUL` say otherwise). Blocks: the native form of [`Gpu::new_async`].
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new(choice: AdapterChoice) -> Result<Gpu> {
        Self::with_options(choice, GpuOptions::from_env()?)
    }

    /// Opens a device on the adapter `choice` selects as `options` say, whatever the
    /// environment: e.g. WebGPU's limits without subgroups, to run as a browser's device would.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn with_options(choice: AdapterChoice, options: GpuOptions) -> Result<Gpu> {
        pollster::block_on(Self::with_options_async(choice, options))
    }

    /// [`Gpu::new`] with the limits lowered by `adjust` (to test how models that do not fit are
    /// handled, or to stay within a budget). Raising a limit above the adapter's makes opening
    /// the device fail.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn with_limits(
        choice: AdapterChoice,
        adjust: impl FnOnce(&mut wgpu::Limits),
    ) -> Result<Gpu> {
        Self::with_options_and_limits(choice, GpuOptions::from_env()?, adjust)
    }

    /// [`Gpu::with_options`] with the preset's limits then changed by `adjust`: e.g. a small
    /// binding size under each preset, whatever the environment asks for.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn with_options_and_limits(
        choice: AdapterChoice,
        options: GpuOptions,
        adjust: impl FnOnce(&mut wgpu::Limits),
    ) -> Result<Gpu> {
        pollster::block_on(Self::open(choice, options, adjust, |_| {}))
    }

    /// [`Gpu::new`] with the kernel shapes [`KernelConfig::for_adapter`] chose changed by
    /// `adjust`: to run the kernels one kind of adapter gets on another, e.g. the shared-memory
    /// matmul GPUs get on a CPU adapter in CI, or to measure an alternative.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn with_kernel_config(
        choice: AdapterChoice,
        adjust: impl FnOnce(&mut KernelConfig),
    ) -> Result<Gpu> {
        let options = GpuOptions::from_env()?;
        pollster::block_on(Self::open(choice, options, |_| {}, adjust))
    }

    /// [`Gpu::new`] as a future: how a browser opens its device, since WebGPU hands out adapters
    /// and devices only asynchronously. There `choice` is checked against the one adapter the
    /// browser offers, and the environment is empty (the defaults apply).
    pub async fn new_async(choice: AdapterChoice) -> Result<Gpu> {
        Self::with_options_async(choice, GpuOptions::from_env()?).await
    }

    /// [`Gpu::with_options`] as a future.
    pub async fn with_options_async(choice: AdapterChoice, options: GpuOptions) -> Result<Gpu> {
        Self::open(choice, options, |_| {}, |_| {}).await
    }

    // In a browser wgpu's objects are neither Send nor Sync and everything runs on the page's
    // one thread; the Arc only shares the context between clones, as natively.
    #[cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]
    async fn open(
        choice: AdapterChoice,
        options: GpuOptions,
        adjust_limits: impl FnOnce(&mut wgpu::Limits),
        adjust_config: impl FnOnce(&mut KernelConfig),
    ) -> Result<Gpu> {
        let (adapter, adapter_info) = choose_adapter(&choice).await?;
        let mut limits = options.limits.limits(&adapter.limits());
        adjust_limits(&mut limits);
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("wgpu-mlp device"),
                // Timestamps cost nothing unless `--profile` writes them; subgroups serve the
                // shuffled matmul (KernelConfig::for_adapter).
                required_features: options.features.features(adapter.features()),
                required_limits: limits.clone(),
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|source| Error::RequestDevice {
                adapter: adapter_info.name.clone(),
                source,
            })?;
        let fault = watch_faults(&device);
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
    ///
    /// Natively the scopes are popped at once and a failure is this call's error. In a browser
    /// nothing may block, so the scopes are popped without waiting: a failure is kept, under
    /// the same `during`, and the next [`Gpu::check_fault`] (every creation through here, every
    /// submission of a step and every read-back) returns it as the same [`Error::Gpu`].
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
        let (validation, oom) = (validation.pop(), oom.pop());
        #[cfg(not(target_arch = "wasm32"))]
        {
            let error = pollster::block_on(validation).or(pollster::block_on(oom));
            match error {
                None => Ok(value),
                Some(error) => Err(Error::Gpu {
                    during: during.to_string(),
                    message: error.to_string(),
                }),
            }
        }
        #[cfg(target_arch = "wasm32")]
        {
            let (fault, during) = (self.inner.fault.clone(), during.to_string());
            wasm_bindgen_futures::spawn_local(async move {
                if let Some(error) = validation.await.or(oom.await) {
                    Fault::record(&fault, Fault::Scoped(during, error.to_string()));
                }
            });
            Ok(value)
        }
    }

    /// An error for the first fault that escaped the error scopes (or, in a browser, was caught
    /// by one after its call returned) or for a lost device, if any.
    pub(crate) fn check_fault(&self) -> Result<()> {
        let fault = self.inner.fault.lock().unwrap_or_else(|p| p.into_inner());
        match fault.as_ref() {
            None => Ok(()),
            Some(Fault::Lost(message)) => Err(Error::DeviceLost(message.clone())),
            Some(Fault::Scoped(during, message)) => Err(Error::Gpu {
                during: during.clone(),
                message: message.clone(),
            }),
            Some(Fault::Uncaptured(message)) => Err(Error::Gpu {
                during: "an earlier GPU operation".into(),
                message: message.clone(),
            }),
        }
    }

    /// Submits `encoder` and waits for the GPU to finish it (for tests and benchmarks). Blocks:
    /// the native form of [`Gpu::submit_and_wait_async`].
    #[cfg(not(target_arch = "wasm32"))]
    pub fn submit_and_wait(&self, encoder: wgpu::CommandEncoder) -> Result<()> {
        let submission = self.inner.queue.submit([encoder.finish()]);
        self.wait_for(submission)
    }

    /// [`Gpu::submit_and_wait`] as a future: natively ready when returned, in a browser ready
    /// when the queue has finished everything submitted so far.
    pub async fn submit_and_wait_async(&self, encoder: wgpu::CommandEncoder) -> Result<()> {
        let submission = self.inner.queue.submit([encoder.finish()]);
        #[cfg(not(target_arch = "wasm32"))]
        self.wait_for(submission)?;
        #[cfg(target_arch = "wasm32")]
        {
            let _ = submission;
            self.work_done().await;
        }
        self.check_fault()
    }

    /// Blocks until `submission` has finished, at most [`READBACK_TIMEOUT`], then reports any
    /// fault.
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn wait_for(&self, submission: wgpu::SubmissionIndex) -> Result<()> {
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

    /// A future ready when the queue has finished everything submitted before this call: how a
    /// browser waits, since it polls the device itself and nothing there may block.
    #[cfg(target_arch = "wasm32")]
    pub(crate) fn work_done(&self) -> impl std::future::Future<Output = ()> + use<> {
        let (sender, receiver) = futures_intrusive::channel::shared::oneshot_channel();
        self.inner.queue.on_submitted_work_done(move || {
            let _ = sender.send(());
        });
        async move {
            let _ = receiver.receive().await;
        }
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
