//! The browser's adapter (wasm32 only): WebGPU offers one adapter, on request, and tells wgpu
//! little about it (a description, often empty, and whether it is a "fallback" adapter). The
//! browser's own `GPUAdapterInfo` names its vendor and architecture, which tell a software
//! adapter (Chromium's SwiftShader, Mesa's lavapipe) from a GPU, so that it gets the kernels CPU
//! adapters get ([`KernelConfig::for_adapter`](crate::gpu::kernels::KernelConfig::for_adapter)).
//!
//! The [`wgpu::AdapterInfo`] a browser's [`Gpu`](super::Gpu) reports is wgpu's, completed:
//! `device_type` is `Cpu` for a software adapter; `driver` holds the browser's `vendor` and
//! `driver_info` its `architecture` (wgpu has no driver to name there); `name` is the
//! description, or `vendor architecture` when the browser gives none.

use js_sys::Reflect;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use crate::error::{Error, Result};

/// Why there is no adapter, and what to do about it.
pub const NO_WEBGPU: &str = "this browser has no WebGPU (navigator.gpu is missing). Use a \
browser that has it: Chrome or Edge 113 or later, Firefox 141 or later on Windows, Safari 26 or \
later; in Chromium on Linux start it with --enable-unsafe-webgpu (and --enable-features=Vulkan), \
or enable chrome://flags/#enable-unsafe-webgpu; the page must be served over https or from \
localhost";

/// Why WebGPU gave no adapter although the browser has the API.
const NO_ADAPTER: &str = "this browser has no WebGPU adapter (navigator.gpu.requestAdapter() \
gave none): WebGPU is blocked or unsupported on this GPU. In Chrome see chrome://gpu; on Linux \
start Chromium with --enable-unsafe-webgpu (and --enable-features=Vulkan) or enable \
chrome://flags/#enable-unsafe-webgpu";

/// Words in a browser's adapter info that mark a software adapter running on the CPU.
const SOFTWARE_ADAPTERS: [&str; 4] = ["swiftshader", "llvmpipe", "lavapipe", "warp"];

/// The browser's adapter and what it is.
pub(super) async fn request_adapter() -> Result<(wgpu::Adapter, wgpu::AdapterInfo)> {
    let gpu = navigator_gpu().ok_or_else(|| Error::NoAdapter(NO_WEBGPU.into()))?;
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: wgpu::Backends::BROWSER_WEBGPU,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    let adapter = instance
        .request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        })
        .await
        .map_err(|_| Error::NoAdapter(NO_ADAPTER.into()))?;
    let info = complete(adapter.get_info(), &browser_info(&gpu).await);
    Ok((adapter, info))
}

/// `navigator.gpu`, where there is one (on the page or in a worker).
fn navigator_gpu() -> Option<JsValue> {
    let navigator = Reflect::get(&js_sys::global(), &"navigator".into()).ok()?;
    let gpu = Reflect::get(&navigator, &"gpu".into()).ok()?;
    (!gpu.is_undefined() && !gpu.is_null()).then_some(gpu)
}

/// What the browser says of the adapter it offers.
#[derive(Debug, Default)]
struct BrowserInfo {
    vendor: String,
    architecture: String,
    description: String,
    fallback: bool,
}

/// The browser's `GPUAdapterInfo` of the adapter `gpu.requestAdapter` gives with the options
/// wgpu asked with; empty where it gives none.
async fn browser_info(gpu: &JsValue) -> BrowserInfo {
    let options = js_sys::Object::new();
    let _ = Reflect::set(
        &options,
        &"powerPreference".into(),
        &"high-performance".into(),
    );
    let request = Reflect::get(gpu, &"requestAdapter".into())
        .ok()
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
        .and_then(|f| f.call1(gpu, &options).ok())
        .and_then(|p| p.dyn_into::<js_sys::Promise>().ok());
    let Some(request) = request else {
        return BrowserInfo::default();
    };
    let Ok(adapter) = JsFuture::from(request).await else {
        return BrowserInfo::default();
    };
    let info = Reflect::get(&adapter, &"info".into()).unwrap_or(JsValue::UNDEFINED);
    let text = |key: &str| {
        Reflect::get(&info, &key.into())
            .ok()
            .and_then(|v| v.as_string())
            .unwrap_or_default()
    };
    // `isFallbackAdapter` moved from the adapter to its info; either says so.
    let flag = |object: &JsValue| {
        Reflect::get(object, &"isFallbackAdapter".into())
            .ok()
            .and_then(|v| v.as_bool())
            .unwrap_or(false)
    };
    BrowserInfo {
        vendor: text("vendor"),
        architecture: text("architecture"),
        description: text("description"),
        fallback: flag(&info) || flag(&adapter),
    }
}

/// wgpu's `info` completed from the browser's (see the module's documentation).
fn complete(mut info: wgpu::AdapterInfo, browser: &BrowserInfo) -> wgpu::AdapterInfo {
    let words = format!(
        "{} {} {} {}",
        browser.vendor, browser.architecture, browser.description, info.name
    )
    .to_lowercase();
    if browser.fallback || SOFTWARE_ADAPTERS.iter().any(|w| words.contains(w)) {
        info.device_type = wgpu::DeviceType::Cpu;
    }
    if info.name.trim().is_empty() {
        info.name = match browser.description.trim() {
            "" => format!("{} {}", browser.vendor, browser.architecture)
                .trim()
                .to_string(),
            description => description.to_string(),
        };
    }
    if info.name.is_empty() {
        info.name = "WebGPU adapter".into();
    }
    info.driver = browser.vendor.clone();
    info.driver_info = browser.architecture.clone();
    info
}
