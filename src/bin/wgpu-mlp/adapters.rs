//! `wgpu-mlp adapters`: every adapter wgpu sees, its key limits, what to type to choose it, and
//! the one `auto` picks.

use anyhow::Result;

use wgpu_mlp::gpu::context::{available_adapters, describe_adapter, ways_to_choose};
use wgpu_mlp::{AdapterChoice, Gpu};

pub fn run() -> Result<()> {
    let adapters = available_adapters();
    if adapters.is_empty() {
        // The same message Gpu::new gives.
        Gpu::new(AdapterChoice::Auto)?;
    }
    let infos: Vec<_> = adapters.iter().map(wgpu::Adapter::get_info).collect();
    for (index, (adapter, info)) in adapters.iter().zip(&infos).enumerate() {
        let limits = adapter.limits();
        println!("{}", describe_adapter(info));
        println!("    driver: {} {}", info.driver, info.driver_info);
        println!(
            "    max_storage_buffer_binding_size: {} MiB, max_buffer_size: {} MiB, max_compute_workgroup_size_x: {}, max_compute_invocations_per_workgroup: {}",
            limits.max_storage_buffer_binding_size >> 20,
            limits.max_buffer_size >> 20,
            limits.max_compute_workgroup_size_x,
            limits.max_compute_invocations_per_workgroup
        );
        let ways = ways_to_choose(&infos, index);
        if !ways.is_empty() {
            let typed: Vec<String> = ways
                .iter()
                .map(|w| format!("--adapter {}", shell_word(w)))
                .collect();
            println!("    choose with: {}", typed.join(" or "));
        }
    }
    let gpu = Gpu::new(AdapterChoice::Auto)?;
    println!(
        "--adapter auto uses: {} (kernels: {:?} matmul{})",
        gpu.adapter_description(),
        gpu.config().matmul,
        if gpu.config().bounds_checks {
            ", wgpu's bounds checks on (WGPU_MLP_BOUNDS_CHECKS=1)"
        } else {
            ""
        }
    );
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
