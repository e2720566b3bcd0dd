//! [`MatmulTile`]: the block of `C` one workgroup computes, chosen per product shape and
//! strategy, checked against what each kernel's arrays hold and what it asks of the device
//! ([`MatmulTile::needs`]), and passed to the pipeline as override constants.

use std::fmt;

use crate::error::{Error, Result};
use crate::gpu::kernels::matmul::{MatmulShape, MatmulSplit, STORAGE};
use crate::gpu::kernels::{Dispatch, KernelNeeds, MatmulStrategy};

/// The block of `C` one workgroup computes: `wg_x × wg_y` invocations, each accumulating a
/// `block_m × block_n` register block whose rows are `wg_y` apart and columns `wg_x` apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MatmulTile {
    /// Invocations along the columns of `C` (a CPU adapter's SIMD lanes).
    pub wg_x: u32,
    /// Invocations along the rows of `C`.
    pub wg_y: u32,
    /// Rows of `C` per invocation, at most [`MatmulTile::MAX_BLOCK`].
    pub block_m: u32,
    /// Columns of `C` per invocation, at most [`MatmulTile::MAX_BLOCK`].
    pub block_n: u32,
}

impl MatmulTile {
    /// The largest block the register-blocked kernel's arrays hold (`MM_MAX_BLOCK` in matmul.wgsl).
    pub const MAX_BLOCK: u32 = 16;

    /// The most rows per invocation of the shuffled kernel (`MS_MAX_ROWS` in
    /// matmul_shuffled.wgsl).
    pub const MAX_SHUFFLED_ROWS: u32 = 32;

    /// The most columns per invocation of the shuffled kernel (`MS_MAX_COLS`).
    pub const MAX_SHUFFLED_COLS: u32 = 8;

    /// The largest tile side of the vec4 shared-memory kernel: 16 invocations with two groups
    /// of 4 each.
    pub const MAX_SHARED_TILE: u32 = 128;

    /// The depth of the vec4 shared-memory kernel's slices (`TL_TILE_K` in matmul.wgsl).
    pub const SHARED_TILE_K: u32 = 16;

    /// The tiles of [`MatmulStrategy::Tiled`], largest first: 16×16 or fewer invocations,
    /// each with 4×4 elements in one or two groups per side (`block_m`, `block_n` of 4 or 8).
    pub const SHARED_TILES: [MatmulTile; 7] = [
        MatmulTile::shared(16, 16, 8, 8),
        MatmulTile::shared(16, 16, 8, 4),
        MatmulTile::shared(16, 16, 4, 8),
        MatmulTile::shared(16, 16, 4, 4),
        MatmulTile::shared(16, 8, 4, 4),
        MatmulTile::shared(8, 16, 4, 4),
        MatmulTile::shared(8, 8, 4, 4),
    ];

    const fn shared(wg_x: u32, wg_y: u32, block_m: u32, block_n: u32) -> MatmulTile {
        MatmulTile {
            wg_x,
            wg_y,
            block_m,
            block_n,
        }
    }

    /// Rows of `C` per workgroup.
    pub fn rows(self) -> u32 {
        self.wg_y * self.block_m
    }

    /// Columns of `C` per workgroup.
    pub fn cols(self) -> u32 {
        self.wg_x * self.block_n
    }

    pub(super) fn workgroups(self, shape: MatmulShape) -> usize {
        shape.m.div_ceil(self.rows() as usize) * shape.n.div_ceil(self.cols() as usize)
    }

    /// The tile for `shape` with `strategy`.
    ///
    /// [`MatmulStrategy::Tiled`] takes the largest of [`MatmulTile::SHARED_TILES`] that gives
    /// [`MIN_GPU_WORKGROUPS`](super::MIN_GPU_WORKGROUPS) workgroups, alone or with k split into
    /// parts at least [`MatmulSplit::LONG_PART`] deep ([`MatmulSplit::for_shape`]); failing
    /// that, the smallest:
    /// a big tile reuses each operand load more, but a product of a few big tiles leaves most of
    /// a GPU's cores idle, and a big tile split over k beats unsplit tiles small enough to fill
    /// the GPU alone (see BENCHMARKS.md).
    ///
    /// A CPU adapter (lavapipe) runs the 8 invocations along x as the lanes of one SIMD
    /// register and loads storage buffers lane by lane, each load costing many vector FMAs; so
    /// each invocation takes the largest block (16×16: 8 FMAs per value loaded) and a workgroup
    /// is one row of 8 invocations, 16×128 of `C`, which keeps small products spread over every
    /// core. Narrow products (the 10 classes of an output layer) get narrower blocks rather than
    /// compute columns that are thrown away (and with the shuffled kernel 16 rows, which compile
    /// faster).
    ///
    /// [`MatmulStrategy::Shuffled`] loads A once per 8 depths instead of once per depth, so its
    /// blocks trade columns for rows: 32×8 takes 12 loads per depth for 256 FMAs where 16×16
    /// takes 32.
    ///
    /// `tools/tile_probe.rs` compares the alternatives; see BENCHMARKS.md.
    ///
    /// This is the choice on a device that runs every tile; [`KernelConfig::tile_for`] makes it
    /// among the tiles the device's limits allow.
    ///
    /// [`KernelConfig::tile_for`]: crate::gpu::kernels::KernelConfig::tile_for
    pub fn for_shape(strategy: MatmulStrategy, shape: MatmulShape) -> Self {
        if strategy == MatmulStrategy::Tiled {
            return Self::shared_for_shape(&Self::SHARED_TILES, shape);
        }
        const LANES: u32 = 8;
        let (block_m, max_block_n) = match strategy {
            MatmulStrategy::Shuffled => (Self::MAX_SHUFFLED_ROWS, Self::MAX_SHUFFLED_COLS),
            _ => (Self::MAX_BLOCK, Self::MAX_BLOCK),
        };
        let columns_per_lane = shape.n.div_ceil(LANES as usize).min(max_block_n as usize);
        let block_n = (columns_per_lane as u32).next_power_of_two();
        // A narrow product is a sliver of a step's work but a pipeline of its own, compiled in
        // the first step, so it takes the 16-row block that compiles faster (see BENCHMARKS.md).
        let block_m = if strategy == MatmulStrategy::Shuffled && block_n <= 2 {
            block_m / 2
        } else {
            block_m
        };
        MatmulTile {
            wg_x: LANES,
            wg_y: 1,
            block_m,
            block_n,
        }
    }

    /// [`MatmulTile::for_shape`]'s shared-memory choice among `tiles`, largest first; the
    /// smallest of [`MatmulTile::SHARED_TILES`] when `tiles` is empty (which binding refuses).
    pub(crate) fn shared_for_shape(tiles: &[MatmulTile], shape: MatmulShape) -> MatmulTile {
        let smallest = Self::SHARED_TILES[Self::SHARED_TILES.len() - 1];
        tiles
            .iter()
            .copied()
            .find(|tile| {
                let parts = MatmulSplit::parts_wanted(*tile, shape);
                parts == 1 || parts <= shape.k / MatmulSplit::LONG_PART
            })
            .unwrap_or_else(|| tiles.last().copied().unwrap_or(smallest))
    }

    /// Bytes of workgroup storage `strategy`'s kernel declares for this tile: the shared-memory
    /// kernel's two slices, `SHARED_TILE_K` rows of vec4s with a vec4 of padding each (`quads_a`
    /// and `quads_b` in matmul.wgsl); the others use none.
    pub fn workgroup_storage(self, strategy: MatmulStrategy) -> u32 {
        if strategy != MatmulStrategy::Tiled {
            return 0;
        }
        let vec4 = 16;
        let row = |side: u32| (side / 4 + 1) * vec4;
        Self::SHARED_TILE_K * (row(self.rows()) + row(self.cols()))
    }

    /// What `strategy`'s kernel asks of the device with this tile.
    pub fn needs(self, strategy: MatmulStrategy) -> KernelNeeds {
        KernelNeeds {
            workgroup_size: [self.wg_x, self.wg_y, 1],
            workgroup_storage: self.workgroup_storage(strategy),
            storage_buffers: STORAGE.len() as u32,
        }
    }

    /// Whether `strategy`'s kernel can run this tile.
    pub(crate) fn check(self, strategy: MatmulStrategy) -> Result<()> {
        if strategy == MatmulStrategy::Tiled {
            // Each invocation carries one or two vec4s of each operand per slice (see
            // matmul.wgsl), and the workgroup arrays hold tiles up to MAX_SHARED_TILE.
            let loads_ok = |groups: u32, side: u32| {
                side > 0 && (Self::SHARED_TILE_K * groups).is_multiple_of(side) && {
                    let loads = Self::SHARED_TILE_K * groups / side;
                    loads == 1 || loads == 2
                }
            };
            let fits = [self.block_m, self.block_n]
                .iter()
                .all(|b| [4, 8].contains(b))
                && self.wg_x * self.wg_y <= 256
                && self.rows() <= Self::MAX_SHARED_TILE
                && self.cols() <= Self::MAX_SHARED_TILE
                && loads_ok(self.block_m / 4, self.wg_x)
                && loads_ok(self.block_n / 4, self.wg_y);
            if !fits {
                return Err(Error::invalid(
                    "matmul tile",
                    format!(
                        "{self:?}: the vec4 shared-memory kernel takes blocks of 4 or 8, at most 256 \
                         invocations, tiles of at most {0}×{0}, and one or two vec4 loads per \
                         invocation of each operand's {1}-deep slice",
                        Self::MAX_SHARED_TILE,
                        Self::SHARED_TILE_K,
                    ),
                ));
            }
            return Ok(());
        }
        if strategy == MatmulStrategy::Shuffled {
            let fits = self.wg_x.is_power_of_two()
                && self.wg_y == 1
                && (1..=Self::MAX_SHUFFLED_ROWS).contains(&self.block_m)
                && (1..=Self::MAX_SHUFFLED_COLS).contains(&self.block_n);
            if !fits {
                return Err(Error::invalid(
                    "matmul tile",
                    format!(
                        "{self:?}: the shuffled kernel takes one row of a power of two of \
                         invocations, each with at most {} rows and {} columns",
                        Self::MAX_SHUFFLED_ROWS,
                        Self::MAX_SHUFFLED_COLS,
                    ),
                ));
            }
            return Ok(());
        }
        let block_ok = |b: u32| (1..=Self::MAX_BLOCK).contains(&b);
        if self.wg_x == 0 || self.wg_y == 0 || !block_ok(self.block_m) || !block_ok(self.block_n) {
            return Err(Error::invalid(
                "matmul tile",
                format!(
                    "{self:?}: workgroup sides must be at least 1 and blocks 1 to {}",
                    Self::MAX_BLOCK
                ),
            ));
        }
        Ok(())
    }

    /// The pipeline constants that give `strategy`'s kernel this tile.
    pub(crate) fn constants(self, strategy: MatmulStrategy) -> Vec<(&'static str, f64)> {
        let names = Self::constant_names(strategy);
        let values = match strategy {
            MatmulStrategy::Tiled => [self.wg_x, self.wg_y, self.block_m / 4, self.block_n / 4],
            MatmulStrategy::RegisterBlocked | MatmulStrategy::Shuffled => {
                [self.wg_x, self.wg_y, self.block_m, self.block_n]
            }
        };
        names.into_iter().zip(values.map(f64::from)).collect()
    }

    fn constant_names(strategy: MatmulStrategy) -> [&'static str; 4] {
        match strategy {
            MatmulStrategy::Tiled => ["TL_WG_X", "TL_WG_Y", "TL_GROUPS_M", "TL_GROUPS_N"],
            MatmulStrategy::RegisterBlocked | MatmulStrategy::Shuffled => {
                ["MM_WG_X", "MM_WG_Y", "MM_BLOCK_M", "MM_BLOCK_N"]
            }
        }
    }

    /// The tile a dispatch of `strategy`'s kernel was bound with.
    pub(super) fn of_dispatch(strategy: MatmulStrategy, dispatch: &Dispatch) -> Result<MatmulTile> {
        let names = Self::constant_names(strategy);
        let mut values = [0; 4];
        for (value, name) in values.iter_mut().zip(names) {
            *value = dispatch.constant(name).map(|v| v as u32).ok_or_else(|| {
                Error::invalid(
                    "matmul reshape",
                    format!("{} is not a {strategy:?} matmul dispatch", dispatch.label()),
                )
            })?;
        }
        let [wg_x, wg_y, block_m, block_n] = values;
        Ok(match strategy {
            MatmulStrategy::Tiled => MatmulTile::shared(wg_x, wg_y, block_m * 4, block_n * 4),
            MatmulStrategy::RegisterBlocked | MatmulStrategy::Shuffled => MatmulTile {
                wg_x,
                wg_y,
                block_m,
                block_n,
            },
        })
    }
}

impl fmt::Display for MatmulTile {
    /// `rows×cols (wg_x×wg_y invocations of block_m×block_n)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}×{} ({}×{} invocations of {}×{})",
            self.rows(),
            self.cols(),
            self.wg_x,
            self.wg_y,
            self.block_m,
            self.block_n
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::kernels::KernelConfig;

    fn config(device_type: wgpu::DeviceType) -> KernelConfig {
        config_with(device_type, wgpu::Features::empty())
    }

    fn config_with(device_type: wgpu::DeviceType, features: wgpu::Features) -> KernelConfig {
        let info = wgpu::AdapterInfo {
            device_type,
            ..wgpu::AdapterInfo::new(wgpu::DeviceType::Other, wgpu::Backend::Vulkan)
        };
        KernelConfig::for_adapter(&info, &wgpu::Limits::default(), features)
    }

    #[test]
    fn gpus_get_shared_memory_tiles_and_cpu_adapters_one_row_of_big_blocks() {
        let gpu = config(wgpu::DeviceType::DiscreteGpu);
        assert_eq!(gpu.matmul, MatmulStrategy::Tiled);
        let shape = MatmulShape {
            m: 256,
            n: 1024,
            k: 784,
        };

        // 256×1024 over k = 784 fills 128 workgroups with 128×64 tiles and k in 4 parts. With a
        // short k, 1024×1024 fills them with 128×64 tiles alone, 1024×784 only with 64×64
        // ones, 4096² with the largest; a product too small for any gets the smallest.
        let tiled = MatmulStrategy::Tiled;
        let tile = |m, n| MatmulTile::for_shape(tiled, MatmulShape { m, n, k: 256 });
        assert_eq!(
            MatmulTile::for_shape(tiled, shape),
            MatmulTile::shared(16, 16, 8, 4)
        );
        assert_eq!(tile(1024, 784), MatmulTile::shared(16, 16, 4, 4));
        assert_eq!(tile(1024, 1024), MatmulTile::shared(16, 16, 8, 4));
        assert_eq!(tile(4096, 4096), MatmulTile::SHARED_TILES[0]);
        assert_eq!(tile(256, 10), MatmulTile::shared(8, 8, 4, 4));
        for tile in MatmulTile::SHARED_TILES {
            assert!(tile.check(tiled).is_ok(), "{tile:?}");
        }

        // CPU adapters: one row of 8 invocations with the largest block their kernel holds,
        // taller and narrower for the shuffled kernel they get where they have subgroups.
        for (features, strategy, block_m, block_n) in [
            (
                wgpu::Features::empty(),
                MatmulStrategy::RegisterBlocked,
                16,
                16,
            ),
            (wgpu::Features::SUBGROUP, MatmulStrategy::Shuffled, 32, 8),
        ] {
            let cpu = config_with(wgpu::DeviceType::Cpu, features);
            assert_eq!(cpu.matmul, strategy);
            assert_eq!(cpu.subgroups, features.contains(wgpu::Features::SUBGROUP));
            assert!(!cpu.split_column_sums);
            let tile = |n| MatmulTile::for_shape(strategy, MatmulShape { m: 64, n, k: 9 });
            let wide = MatmulTile {
                wg_x: 8,
                wg_y: 1,
                block_m,
                block_n,
            };
            assert_eq!(tile(1024), wide);
            // Narrow outputs get narrow blocks instead of columns computed and thrown away, and
            // 16 rows: the register kernel's usual, half the shuffled kernel's (half the compile).
            assert_eq!((tile(10).block_n, tile(10).block_m), (2, 16));
            assert_eq!((tile(1).block_n, tile(1).block_m), (1, 16));
            assert_eq!((tile(32).block_n, tile(32).block_m), (4, block_m));
            assert_eq!(tile(100).block_n, block_n);
            for n in [1, 7, 10, 65, 1000] {
                let t = tile(n);
                assert!(t.check(strategy).is_ok(), "{t:?}");
                assert!(t.cols() >= (n as u32).min(wide.cols()), "{t:?} for n={n}");
            }
        }
        // GPUs keep their shared-memory tiles whatever they have.
        let gpu = config_with(wgpu::DeviceType::IntegratedGpu, wgpu::Features::SUBGROUP);
        assert_eq!(gpu.matmul, MatmulStrategy::Tiled);
        // The plain register kernel's 16×16 blocks are too wide for the shuffled kernel's arrays.
        let register = MatmulTile::for_shape(MatmulStrategy::RegisterBlocked, shape);
        assert!(register.check(MatmulStrategy::Shuffled).is_err());
    }

    #[test]
    fn tiles_are_chosen_within_the_limits_the_device_was_opened_with() {
        let info = wgpu::AdapterInfo {
            device_type: wgpu::DeviceType::DiscreteGpu,
            ..wgpu::AdapterInfo::new(wgpu::DeviceType::Other, wgpu::Backend::Vulkan)
        };
        let tiled = MatmulStrategy::Tiled;
        // Each tile's two slices: 16 rows of (side / 4 + 1) vec4s each.
        let bytes = MatmulTile::SHARED_TILES.map(|tile| tile.workgroup_storage(tiled));
        assert_eq!(bytes, [16_896, 12_800, 12_800, 8_704, 6_656, 6_656, 4_608]);
        let big = MatmulShape {
            m: 4096,
            n: 4096,
            k: 256,
        };
        let unlimited = wgpu::Limits {
            max_compute_workgroup_storage_size: 32_768,
            ..wgpu::Limits::default()
        };
        for (limits, largest) in [
            (unlimited, 0),
            (wgpu::Limits::default(), 1),
            (wgpu::Limits::downlevel_defaults(), 1),
        ] {
            let config = KernelConfig::for_adapter(&info, &limits, wgpu::Features::empty());
            assert_eq!(config.matmul, tiled);
            assert_eq!(config.shared_tiles, MatmulTile::SHARED_TILES[largest..]);
            assert_eq!(
                config.tile_for(tiled, big),
                MatmulTile::SHARED_TILES[largest]
            );
        }
        // A GPU whose workgroups hold no shared-memory tile gets the register kernel.
        let tiny = wgpu::Limits {
            max_compute_workgroup_storage_size: 4096,
            ..wgpu::Limits::default()
        };
        let config = KernelConfig::for_adapter(&info, &tiny, wgpu::Features::empty());
        assert!(config.shared_tiles.is_empty());
        assert_eq!(config.matmul, MatmulStrategy::RegisterBlocked);
        let error = config.check_strategy(tiled).unwrap_err().to_string();
        assert!(
            error.contains(
                "the Tiled matmul cannot run on this device: it needs 4608 bytes of \
                            workgroup storage, and the device allows 4096 \
                            (max_compute_workgroup_storage_size)"
            ),
            "{error}"
        );
        assert!(
            config
                .check_strategy(MatmulStrategy::RegisterBlocked)
                .is_ok()
        );
        let error = config
            .check_strategy(MatmulStrategy::Shuffled)
            .unwrap_err()
            .to_string();
        assert!(error.contains("wgpu's SUBGROUP feature"), "{error}");
    }

    #[test]
    fn the_shared_memory_kernel_refuses_tiles_its_arrays_cannot_hold() {
        let tiled = |tile: MatmulTile| tile.check(MatmulStrategy::Tiled);
        for bad in [
            MatmulTile::shared(16, 16, 16, 4), // blocks of 4 or 8 only
            MatmulTile::shared(32, 16, 4, 4),  // a 128-wide tile, but 512 invocations
            MatmulTile::shared(32, 8, 4, 8),   // 256 columns
            MatmulTile::shared(4, 4, 4, 4),    // 4 vec4 loads per invocation per slice
            MatmulTile::shared(3, 8, 4, 4),    // 3 invocations do not divide a slice row
        ] {
            let error = tiled(bad).unwrap_err().to_string();
            assert!(
                error.contains("vec4 shared-memory kernel takes"),
                "{bad:?}: {error}"
            );
        }
        // The register-blocked kernel takes any block up to its arrays.
        assert!(
            MatmulTile::shared(16, 16, 16, 4)
                .check(MatmulStrategy::RegisterBlocked)
                .is_ok()
        );
    }
}
