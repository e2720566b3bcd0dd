//! `wgpu-mlp adapters`: every adapter wgpu sees, its key limits, and the one `auto` picks.

use anyhow::Result;

use wgpu_mlp::gpu::context::{available_adapters, describe_adapter};
use wgpu_mlp::{AdapterChoice, Gpu};

pub fn run() -> Result<()> {
    let adapters = available_adapters();
    if adapters.is_empty() {
        // The same message Gpu::new gives.
        Gpu::new(AdapterChoice::Auto)?;
    }
    for adapter in adapters {
        let info = adapter.get_info();
        let limits = adapter.limits();
        println!("{}", describe_adapter(&info));
        println!("    driver: {} {}", info.driver, info.driver_info);
        println!(
            "    max_storage_buffer_binding_size: {} MiB, max_buffer_size: {} MiB, max_compute_workgroup_size_x: {}, max_compute_invocations_per_workgroup: {}",
            limits.max_storage_buffer_binding_size >> 20,
            limits.max_buffer_size >> 20,
            limits.max_compute_workgroup_size_x,
            limits.max_compute_invocations_per_workgroup
        );
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
