//! [`KernelConfig`]: which matmul kernel and which workgroup sizes suit an adapter, chosen once
//! when the device is opened.

#[cfg(doc)]
use crate::gpu::kernels::matmul::MatmulTile;

/// How matrix products are computed on this adapter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatmulStrategy {
    /// Shared-memory tiles of vec4s with workgroup barriers and the next slice prefetched into
    /// registers, the tile chosen per product from [`MatmulTile::SHARED_TILES`]: what
    /// discrete and integrated GPUs get.
    Tiled,
    /// Each thread accumulates a register block straight from global memory, with no barrier:
    /// what CPU-based software adapters (lavapipe, WARP) want.
    RegisterBlocked,
    /// [`MatmulStrategy::RegisterBlocked`] with A loaded once per subgroup-size depths and passed
    /// between the lanes by subgroup shuffles, in taller blocks: what CPU adapters with subgroup
    /// operations get. Needs [`KernelConfig::subgroups`].
    Shuffled,
}

/// Kernel shapes for one adapter.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelConfig {
    /// The matmul kernel; its tile is chosen per product shape
    /// ([`MatmulTile::for_shape`]).
    pub matmul: MatmulStrategy,
    /// Threads per workgroup of the one-dimensional (element-wise) kernels.
    pub workgroup_size: u32,
    /// Whether column sums (bias gradients) split each column's rows over a workgroup, with a
    /// barrier: what GPUs want. CPU adapters run one invocation per column instead.
    pub split_column_sums: bool,
    /// Whether wgpu's run-time bounds checks stay in the kernels that guard their own indices
    /// (the matmul, built with `create_shader_module_trusted` otherwise): off, unless the
    /// environment sets `WGPU_MLP_BOUNDS_CHECKS=1`, to debug a kernel or to measure what the
    /// checks cost.
    pub bounds_checks: bool,
    /// Largest workgroup count per dispatch dimension.
    pub max_workgroups_per_dimension: u32,
    /// Whether the device runs subgroup operations (wgpu's `SUBGROUP` feature), which
    /// [`MatmulStrategy::Shuffled`] needs.
    pub subgroups: bool,
}

impl KernelConfig {
    /// The shapes that suit `info`'s kind of adapter, within `limits`, on a device with
    /// `features`.
    pub fn for_adapter(
        info: &wgpu::AdapterInfo,
        limits: &wgpu::Limits,
        features: wgpu::Features,
    ) -> KernelConfig {
        // A CPU adapter (lavapipe) runs 8 invocations as the lanes of one SIMD register and
        // pays for a barrier with a context switch of every invocation: it wants register
        // blocks and no shared memory, and shuffles where it has them. GPUs want shared-memory
        // tiles.
        let subgroups = features.contains(wgpu::Features::SUBGROUP);
        let matmul = match info.device_type {
            wgpu::DeviceType::Cpu if subgroups => MatmulStrategy::Shuffled,
            wgpu::DeviceType::Cpu => MatmulStrategy::RegisterBlocked,
            _ => MatmulStrategy::Tiled,
        };
        // A power of two (reduce.wgsl's tree needs one) within the adapter's limits.
        let max_threads = limits
            .max_compute_invocations_per_workgroup
            .min(limits.max_compute_workgroup_size_x);
        let workgroup_size = 1 << 256u32.min(max_threads.max(1)).ilog2();
        KernelConfig {
            matmul,
            workgroup_size,
            split_column_sums: matmul == MatmulStrategy::Tiled && max_threads >= 256,
            bounds_checks: std::env::var_os("WGPU_MLP_BOUNDS_CHECKS").is_some_and(|v| v == "1"),
            max_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
            subgroups,
        }
    }

    /// The WGSL `const` header every shader starts with: the one place these numbers are written.
    pub(crate) fn wgsl_header(&self) -> String {
        format!(
            "// Generated from KernelConfig (src/gpu/kernels/config.rs).\n\
             const WORKGROUP_SIZE: u32 = {}u;\n",
            self.workgroup_size
        )
    }

    /// Workgroup counts to cover `items` threads with `threads_per_group` each, folding into a
    /// second dimension past the per-dimension limit. Kernels recover the flat index as
    /// `gid.x + gid.y * num_workgroups.x * WORKGROUP_SIZE`. Two dimensions always suffice: kernels
    /// index with `u32`, so `items < 2³²`, and adapters allow at least 65,535² workgroups.
    pub fn grid_1d(&self, items: usize, threads_per_group: u32) -> [u32; 3] {
        let groups = items.div_ceil(threads_per_group as usize).max(1);
        let max = self.max_workgroups_per_dimension as usize;
        if groups <= max {
            [groups as u32, 1, 1]
        } else {
            let y = groups.div_ceil(max);
            [groups.div_ceil(y) as u32, y as u32, 1]
        }
    }
}
