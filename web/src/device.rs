//! `Gpu`: the browser's WebGPU adapter and device, opened once and shared by sessions and checks.

use serde_json::json;
use wasm_bindgen::prelude::*;
use wgpu_mlp::AdapterChoice;

use crate::js;

/// The browser's WebGPU device (see `Gpu.request` in `web/API.md`).
#[wasm_bindgen]
pub struct Gpu {
    pub(crate) gpu: wgpu_mlp::Gpu,
}

#[wasm_bindgen]
impl Gpu {
    /// Opens the browser's adapter and device with the adapter's own limits; rejects with an
    /// `Error` saying this browser has no WebGPU, and how to enable it, where it has none.
    pub async fn request() -> Result<Gpu, JsError> {
        let gpu = wgpu_mlp::Gpu::new_async(AdapterChoice::Auto)
            .await
            .map_err(js::error)?;
        Ok(Gpu { gpu })
    }

    /// The adapter's name, backend, vendor, architecture, type, key limits and features.
    pub fn info(&self) -> Result<JsValue, JsError> {
        js::object(&info(&self.gpu))
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
