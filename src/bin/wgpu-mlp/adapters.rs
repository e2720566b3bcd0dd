//! `wgpu-mlp adapters`: every adapter wgpu sees, its key limits, what to type to choose it, and
//! the one `auto` picks with the limits in force (`WGPU_MLP_LIMITS`, `WGPU_MLP_FEATURES`) and the
//! matmul tiles they allow.

use anyhow::Result;

use wgpu_mlp::gpu::context::{available_adapters, describe_adapter, ways_to_choose};
use wgpu_mlp::gpu::kernels::MatmulStrategy;
use wgpu_mlp::{AdapterChoice, Gpu, GpuOptions, LimitsPreset};

use crate::common::out;

pub fn run() -> Result<()> {
    let adapters = available_adapters();
    if adapters.is_empty() {
        // The same message Gpu::new gives.
        Gpu::new(AdapterChoice::Auto)?;
    }
    let infos: Vec<_> = adapters.iter().map(wgpu::Adapter::get_info).collect();
    for (index, (adapter, info)) in adapters.iter().zip(&infos).enumerate() {
        let limits = adapter.limits();
        out!("{}", describe_adapter(info))?;
        out!("    driver: {} {}", info.driver, info.driver_info)?;
        out!(
            "    max_storage_buffer_binding_size: {} MiB, max_buffer_size: {} MiB, max_compute_workgroup_size_x: {}, max_compute_invocations_per_workgroup: {}",
            limits.max_storage_buffer_binding_size >> 20,
            limits.max_buffer_size >> 20,
            limits.max_compute_workgroup_size_x,
            limits.max_compute_invocations_per_workgroup
        )?;
        let ways = ways_to_choose(&infos, index);
        if !ways.is_empty() {
            let typed: Vec<String> = ways
                .iter()
                .map(|w| format!("--adapter {}", shell_word(w)))
                .collect();
            out!("    choose with: {}", typed.join(" or "))?;
        }
    }
    let gpu = Gpu::new(AdapterChoice::Auto)?;
    out!(
        "--adapter auto uses: {} (kernels: {:?} matmul{})",
        gpu.adapter_description(),
        gpu.config().matmul,
        if gpu.config().bounds_checks {
            ", wgpu's bounds checks on (WGPU_MLP_BOUNDS_CHECKS=1)"
        } else {
            ""
        }
    )?;
    print_kernels(&gpu)?;
    print_presets(&gpu)?;
    Ok(())
}

/// What each `WGPU_MLP_LIMITS` preset gets on the adapter `auto` picks (`gpu`, whose features
/// and forced matmul it keeps): its matmul, workgroup size, and the kernels it runs in their
/// four-storage-buffer forms.
fn print_presets(gpu: &Gpu) -> Result<()> {
    let presets = [
        ("adapter", LimitsPreset::Adapter),
        ("webgpu", LimitsPreset::WebGpu),
        ("compat", LimitsPreset::Compat),
        ("downlevel", LimitsPreset::Downlevel),
    ];
    out!("    kernels under each WGPU_MLP_LIMITS:")?;
    for (name, limits) in presets {
        let options = GpuOptions {
            limits,
            ..*gpu.options()
        };
        let line = match Gpu::with_options(AdapterChoice::Auto, options) {
            Ok(preset) => {
                let config = preset.config();
                let narrow = config.narrow_kernels();
                format!(
                    "{:?} matmul ({} tiles), {} invocations per 1-D workgroup, {}",
                    config.matmul,
                    config.tiles(config.matmul).len(),
                    config.workgroup_size,
                    if narrow.is_empty() {
                        "every kernel in one pass".to_string()
                    } else {
                        narrow.join(", ")
                    }
                )
            }
            Err(error) => error.to_string(),
        };
        out!("      {name}: {line}")?;
    }
    Ok(())
}

/// `text` as one shell word: quoted when it holds anything but letters, digits and `-_.@`.
fn shell_word(text: &str) -> String {
    let plain = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c));
    if plain {
        text.to_string()
    } else {
        format!("\"{}\"", text.replace('"', "\\\""))
    }
}

/// The limits the device was opened with and the tiles each matmul kernel can take within them.
fn print_kernels(gpu: &Gpu) -> Result<()> {
    let (options, limits) = (gpu.options(), gpu.limits());
    out!(
        "    limits in force: {:?}, features: {:?}: max_compute_workgroup_storage_size: {} B, max_compute_invocations_per_workgroup: {}, max_compute_workgroup_size: {}×{}×{}, max_storage_buffers_per_shader_stage: {}, max_bind_groups: {}, max_storage_buffer_binding_size: {} MiB, max_compute_workgroups_per_dimension: {}, subgroups: {}",
        options.limits,
        options.features,
        limits.max_compute_workgroup_storage_size,
        limits.max_compute_invocations_per_workgroup,
        limits.max_compute_workgroup_size_x,
        limits.max_compute_workgroup_size_y,
        limits.max_compute_workgroup_size_z,
        limits.max_storage_buffers_per_shader_stage,
        limits.max_bind_groups,
        limits.max_storage_buffer_binding_size >> 20,
        limits.max_compute_workgroups_per_dimension,
        gpu.config().subgroups,
    )?;
    let strategies = [
        MatmulStrategy::Tiled,
        MatmulStrategy::RegisterBlocked,
        MatmulStrategy::Shuffled,
    ];
    for strategy in strategies {
        match gpu.config().check_strategy(strategy) {
            Ok(()) => {
                let tiles: Vec<String> = gpu
                    .config()
                    .tiles(strategy)
                    .iter()
                    .map(|tile| tile.to_string())
                    .collect();
                out!("    {strategy:?} matmul tiles: {}", tiles.join(", "))?;
            }
            Err(refusal) => out!("    {strategy:?} matmul: {refusal}")?,
        }
    }
    Ok(())
}
