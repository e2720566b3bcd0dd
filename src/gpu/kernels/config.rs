//! [`KernelConfig`]: which matmul kernel, which tiles and which workgroup sizes suit an adapter
//! within the limits and features the device was opened with, chosen once when it is opened.

use crate::error::{Error, Result};
use crate::gpu::context::{Access, bound_count};
use crate::gpu::kernels::matmul::{MatmulShape, MatmulTile};

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
    /// The limits the device was opened with, which every kernel is checked against before its
    /// pipeline is built ([`KernelConfig::check_needs`]).
    pub limits: wgpu::Limits,
    /// The tiles of [`MatmulStrategy::Tiled`] that fit [`KernelConfig::limits`], largest first:
    /// the ones [`KernelConfig::tile_for`] chooses among.
    pub shared_tiles: Vec<MatmulTile>,
}

/// What one kernel asks of the device, checked against its limits before its pipeline is built,
/// so that a kernel that cannot fit is an error naming the limit rather than a failed pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelNeeds {
    /// Invocations per workgroup along x, y and z.
    pub workgroup_size: [u32; 3],
    /// Bytes of workgroup (shared) memory.
    pub workgroup_storage: u32,
    /// Storage buffers bound, all in bind group 0 (the only group any kernel uses).
    pub storage_buffers: u32,
}

/// What `column_sum_split` in reduce.wgsl asks of a device whose one-dimensional workgroups hold
/// `workgroup_size` invocations: 32 columns by `SPLIT_ROWS` = min(8, workgroup_size / 32) rows
/// of invocations sharing a float each.
fn split_column_sums_needs(workgroup_size: u32) -> KernelNeeds {
    let rows = (workgroup_size / 32).min(8);
    KernelNeeds {
        workgroup_size: [32, rows, 1],
        workgroup_storage: 32 * rows * 4,
        storage_buffers: 1,
    }
}

/// Why `limits` cannot run a kernel with `needs`, naming the wgpu limit; `None` if it can.
fn unmet(limits: &wgpu::Limits, needs: KernelNeeds) -> Option<String> {
    let [x, y, z] = needs.workgroup_size;
    let checks: [(&str, &str, u64, u64); 8] = [
        (
            "invocations per workgroup",
            "max_compute_invocations_per_workgroup",
            u64::from(x) * u64::from(y) * u64::from(z),
            limits.max_compute_invocations_per_workgroup.into(),
        ),
        (
            "invocations along x",
            "max_compute_workgroup_size_x",
            x.into(),
            limits.max_compute_workgroup_size_x.into(),
        ),
        (
            "invocations along y",
            "max_compute_workgroup_size_y",
            y.into(),
            limits.max_compute_workgroup_size_y.into(),
        ),
        (
            "invocations along z",
            "max_compute_workgroup_size_z",
            z.into(),
            limits.max_compute_workgroup_size_z.into(),
        ),
        (
            "bytes of workgroup storage",
            "max_compute_workgroup_storage_size",
            needs.workgroup_storage.into(),
            limits.max_compute_workgroup_storage_size.into(),
        ),
        (
            "storage buffers per shader stage",
            "max_storage_buffers_per_shader_stage",
            needs.storage_buffers.into(),
            limits.max_storage_buffers_per_shader_stage.into(),
        ),
        (
            "bind groups",
            "max_bind_groups",
            1,
            limits.max_bind_groups.into(),
        ),
        (
            "bindings per bind group",
            "max_bindings_per_bind_group",
            // The uniform parameter block at binding 0, then the storage buffers.
            u64::from(needs.storage_buffers) + 1,
            limits.max_bindings_per_bind_group.into(),
        ),
    ];
    checks
        .into_iter()
        .find(|&(_, _, need, limit)| need > limit)
        .map(|(what, name, need, limit)| {
            format!("it needs {need} {what}, and the device allows {limit} ({name})")
        })
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
        // A GPU whose limits leave no shared-memory tile gets the register kernel, which needs
        // no workgroup storage. Every matmul binds the same buffers, so the binding limits
        // decide no choice here; binding a product reports them.
        let subgroups = features.contains(wgpu::Features::SUBGROUP);
        let shared_tiles: Vec<MatmulTile> = MatmulTile::SHARED_TILES
            .into_iter()
            .filter(|tile| {
                let needs = KernelNeeds {
                    storage_buffers: 0,
                    ..tile.needs(MatmulStrategy::Tiled)
                };
                unmet(limits, needs).is_none()
            })
            .collect();
        let matmul = match info.device_type {
            wgpu::DeviceType::Cpu if subgroups => MatmulStrategy::Shuffled,
            wgpu::DeviceType::Cpu => MatmulStrategy::RegisterBlocked,
            _ if shared_tiles.is_empty() => MatmulStrategy::RegisterBlocked,
            _ => MatmulStrategy::Tiled,
        };
        // A power of two (reduce.wgsl's tree needs one, and a float of workgroup storage per
        // invocation) within the device's limits.
        let max_threads = limits
            .max_compute_invocations_per_workgroup
            .min(limits.max_compute_workgroup_size_x)
            .min(limits.max_compute_workgroup_storage_size / 4);
        let workgroup_size = 1 << 256u32.min(max_threads.max(1)).ilog2();
        KernelConfig {
            matmul,
            workgroup_size,
            // At least two rows of 32 invocations, or the split gains nothing.
            split_column_sums: matmul == MatmulStrategy::Tiled
                && workgroup_size >= 64
                && unmet(limits, split_column_sums_needs(workgroup_size)).is_none(),
            bounds_checks: std::env::var_os("WGPU_MLP_BOUNDS_CHECKS").is_some_and(|v| v == "1"),
            max_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
            subgroups,
            limits: limits.clone(),
            shared_tiles,
        }
    }

    /// Whether the device can run a kernel with `needs`: an [`Error::Unsupported`] naming
    /// `kernel` and the limit it exceeds if not.
    pub fn check_needs(&self, kernel: impl FnOnce() -> String, needs: KernelNeeds) -> Result<()> {
        match unmet(&self.limits, needs) {
            None => Ok(()),
            Some(why) => Err(Error::Unsupported {
                kernel: kernel(),
                why,
            }),
        }
    }

    /// Whether the device's layouts hold the storage buffers of `storage` (the wider form of a
    /// kernel that has a narrower one for devices that allow fewer).
    pub(crate) fn binds(&self, storage: &[Access]) -> bool {
        bound_count(storage) <= self.limits.max_storage_buffers_per_shader_stage
    }

    /// The kernels this device runs in their narrow forms, because its layouts hold fewer
    /// storage buffers than their one-pass forms bind: none on most devices; on those that bind
    /// four, the output loss and the gather in two passes and the update one tensor at a time.
    pub fn narrow_kernels(&self) -> Vec<&'static str> {
        use crate::gpu::kernels::{data, loss, optim};
        [
            (loss::STORAGE, "output loss in two passes"),
            (data::STORAGE, "gather in two passes"),
            (optim::STORAGE, "update per tensor"),
        ]
        .into_iter()
        .filter(|(storage, _)| !self.binds(storage))
        .map(|(_, form)| form)
        .collect()
    }

    /// Whether the device can run `strategy`'s matmul with at least one tile: the shuffled
    /// kernel needs subgroups, the shared-memory one a tile within the limits.
    pub fn check_strategy(&self, strategy: MatmulStrategy) -> Result<()> {
        let kernel = || format!("the {strategy:?} matmul");
        if strategy == MatmulStrategy::Shuffled && !self.subgroups {
            return Err(Error::Unsupported {
                kernel: kernel(),
                why: "it needs subgroup operations (wgpu's SUBGROUP feature), which this device \
                      does not have"
                    .into(),
            });
        }
        let smallest = self.tiles(strategy).pop().unwrap_or_else(|| {
            let tiles = MatmulTile::SHARED_TILES;
            tiles[tiles.len() - 1]
        });
        self.check_needs(kernel, smallest.needs(strategy))
    }

    /// The tile `strategy`'s matmul takes for `shape` on this device: [`MatmulTile::for_shape`]'s
    /// rule, among the shared-memory tiles that fit ([`KernelConfig::shared_tiles`]).
    pub fn tile_for(&self, strategy: MatmulStrategy, shape: MatmulShape) -> MatmulTile {
        match strategy {
            MatmulStrategy::Tiled => MatmulTile::shared_for_shape(&self.shared_tiles, shape),
            _ => MatmulTile::for_shape(strategy, shape),
        }
    }

    /// Every tile [`KernelConfig::tile_for`] can choose for `strategy` on this device, largest
    /// first: empty where none fits.
    pub fn tiles(&self, strategy: MatmulStrategy) -> Vec<MatmulTile> {
        if strategy == MatmulStrategy::Tiled {
            return self.shared_tiles.clone();
        }
        // One row of lanes with the widest block, then narrower ones for narrower products.
        let mut tiles: Vec<MatmulTile> = [1024, 64, 32, 16, 9, 1]
            .map(|n| MatmulTile::for_shape(strategy, MatmulShape { m: 1, n, k: 1 }))
            .into_iter()
            .filter(|tile| unmet(&self.limits, tile.needs(strategy)).is_none())
            .collect();
        tiles.dedup();
        tiles
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
