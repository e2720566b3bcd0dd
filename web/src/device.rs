//! `Gpu`: the browser's WebGPU adapter and device, opened once and shared by sessions and checks.

use serde_json::json;
use wasm_bindgen::prelude::*;
use wgpu_mlp::{AdapterChoice, GpuOptions, LimitsPreset};

use crate::js;

/// The browser's WebGPU device (see `Gpu.request` in `web/API.md`).
#[wasm_bindgen]
pub struct Gpu {
    pub(crate) gpu: wgpu_mlp::Gpu,
}

#[wasm_bindgen]
impl Gpu {
    /// Opens the browser's adapter and device with the adapter's own limits, or those the page's
    /// address asks for (`?limits=compat|downlevel|webgpu`, to run the page as such a device
    /// would); rejects with an `Error` saying this browser has no WebGPU, and how to enable it,
    /// where it has none, or naming the parameter where its value is none of those.
    pub async fn request() -> Result<Gpu, JsError> {
        let options = GpuOptions {
            limits: limits_from_address()?,
            ..GpuOptions::default()
        };
        let gpu = wgpu_mlp::Gpu::with_options_async(AdapterChoice::Auto, options)
            .await
            .map_err(js::error)?;
        Ok(Gpu { gpu })
    }

    /// The adapter's name, backend, vendor, architecture, type, key limits and features.
    pub fn info(&self) -> Result<JsValue, JsError> {
        js::object(&info(&self.gpu))
    }
}

/// The `limits` parameter of the page's address (`location.search`): the adapter's own limits
/// where there is none.
fn limits_from_address() -> Result<LimitsPreset, JsError> {
    let search = js_sys::Reflect::get(&js_sys::global(), &"location".into())
        .and_then(|location| js_sys::Reflect::get(&location, &"search".into()))
        .ok()
        .and_then(|search| search.as_string())
        .unwrap_or_default();
    let value = search
        .trim_start_matches('?')
        .split('&')
        .find_map(|pair| pair.strip_prefix("limits="));
    match value {
        None | Some("" | "adapter") => Ok(LimitsPreset::Adapter),
        Some("webgpu") => Ok(LimitsPreset::WebGpu),
        Some("compat") => Ok(LimitsPreset::Compat),
        Some("downlevel") => Ok(LimitsPreset::Downlevel),
        Some(other) => Err(JsError::new(&format!(
            "the address's limits={other}: expected adapter, webgpu, compat or downlevel"
        ))),
    }
}

/// What [`Gpu::info`] returns.
fn info(gpu: &wgpu_mlp::Gpu) -> serde_json::Value {
    let adapter = gpu.adapter_info();
    let limits = gpu.limits();
    let features: Vec<String> = gpu
        .device()
        .features()
        .iter_names()
        .map(|(name, _)| name.to_lowercase())
        .collect();
    json!({
        "name": adapter.name,
        "backend": format!("{:?}", adapter.backend),
        // A browser's Gpu keeps GPUAdapterInfo's vendor and architecture in these two fields.
        "vendor": adapter.driver,
        "architecture": adapter.driver_info,
        "deviceType": format!("{:?}", adapter.device_type),
        "isCpu": adapter.device_type == wgpu_mlp::wgpu::DeviceType::Cpu,
        "description": gpu.adapter_description(),
        "matmul": format!("{:?}", gpu.config().matmul),
        "limitsPreset": format!("{:?}", gpu.options().limits),
        "limits": {
            "maxStorageBufferBindingSize": limits.max_storage_buffer_binding_size,
            "maxBufferSize": limits.max_buffer_size,
            "maxComputeInvocationsPerWorkgroup": limits.max_compute_invocations_per_workgroup,
            "maxComputeWorkgroupSizeX": limits.max_compute_workgroup_size_x,
            "maxStorageBuffersPerShaderStage": limits.max_storage_buffers_per_shader_stage,
            "maxComputeWorkgroupStorageSize": limits.max_compute_workgroup_storage_size,
        },
        "features": features,
    })
}
