//! [`MatmulSplit`]: a product split over its summed dimension, so that a product of few output
//! tiles still fills a large GPU.

use crate::gpu::kernels::MatmulStrategy;
use crate::gpu::kernels::matmul::{MatmulShape, MatmulTile};

/// The workgroups a GPU product should have before [`MatmulTile::for_shape`] takes a bigger
/// tile: about one per core (SM) of a large discrete GPU (an H100 or H200 has 132), since fewer,
/// bigger tiles leave cores idle (see BENCHMARKS.md).
pub const MIN_GPU_WORKGROUPS: usize = 128;

/// A product split over k (split-K): part `z` of `parts` sums depths `[z · chunk, (z + 1) ·
/// chunk)` in workgroups of its own, and a second kernel adds the parts and applies the
/// epilogue. An output layer's forward product (256×10 over k = 1024) is 8 workgroups of the
/// smallest tile, each walking all of k while the rest of a GPU idles; split 16 ways it is 128.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulSplit {
    /// Depths per part: a multiple of [`MatmulTile::SHARED_TILE_K`].
    pub chunk: u32,
    /// Parts: `k.div_ceil(chunk)`.
    pub parts: u32,
}

impl MatmulSplit {
    /// The shortest part worth a workgroup of its own: 4 slices, so that each part still
    /// overlaps its loads with its arithmetic.
    pub const MIN_CHUNK: usize = 4 * MatmulTile::SHARED_TILE_K as usize;

    /// The shortest part for which a bigger tile split over k beats a smaller unsplit one
    /// ([`MatmulTile::for_shape`]): 12 slices; over shorter parts the second kernel that adds
    /// them costs more than the bigger tile saves (see BENCHMARKS.md).
    pub const LONG_PART: usize = 12 * MatmulTile::SHARED_TILE_K as usize;

    /// The parts that bring `tile`'s grid for `shape` to [`MIN_GPU_WORKGROUPS`]; 1 if it
    /// gets there alone.
    pub(super) fn parts_wanted(tile: MatmulTile, shape: MatmulShape) -> usize {
        MIN_GPU_WORKGROUPS.div_ceil(tile.workgroups(shape))
    }

    /// How `strategy` splits `shape` with `tile`: only the shared-memory kernel splits, and
    /// only a product with fewer than [`MIN_GPU_WORKGROUPS`] tiles and room for two parts; it
    /// takes parts enough to reach that many workgroups, each at least [`Self::MIN_CHUNK`] deep.
    pub fn for_shape(
        strategy: MatmulStrategy,
        tile: MatmulTile,
        shape: MatmulShape,
    ) -> Option<MatmulSplit> {
        if strategy != MatmulStrategy::Tiled || tile.check(strategy).is_err() {
            return None;
        }
        let parts = Self::parts_wanted(tile, shape).min(shape.k / Self::MIN_CHUNK);
        if parts < 2 {
            return None;
        }
        Some(Self::with_parts(shape.k, parts))
    }

    /// At most `parts` parts of k, each a whole number of slices.
    pub(super) fn with_parts(k: usize, parts: usize) -> MatmulSplit {
        let slice = MatmulTile::SHARED_TILE_K as usize;
        let chunk = k.div_ceil(parts.max(1)).div_ceil(slice) * slice;
        MatmulSplit {
            chunk: chunk as u32,
            parts: k.div_ceil(chunk) as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_shared_memory_products_with_few_tiles_and_a_long_k_split() {
        let split = |m, n, k| {
            let shape = MatmulShape { m, n, k };
            let tile = MatmulTile::for_shape(MatmulStrategy::Tiled, shape);
            MatmulSplit::for_shape(MatmulStrategy::Tiled, tile, shape)
        };
        let parts = |chunk, parts| Some(MatmulSplit { chunk, parts });
        // W2's output layer: 8 tiles of 32×32 over k = 1024, 16 parts of 64 make 128 workgroups.
        assert_eq!(split(256, 10, 1024), parts(64, 16));
        // Its weight gradient (10×1024 over the batch): 32 tiles, 4 parts.
        assert_eq!(split(10, 1024, 256), parts(64, 4));
        // Parts round up to whole slices, so the last part is short: 1000 = 12·80 + 40.
        assert_eq!(split(10, 37, 1000), parts(80, 13));
        // W2's hidden layers: 128×64 tiles, k in parts of 208.
        assert_eq!(split(256, 1024, 784), parts(208, 4));
        assert_eq!(split(256, 784, 1024), parts(208, 5));
        // Enough tiles, or too short a k for two parts of 64, or a CPU adapter's kernel.
        assert_eq!(split(1024, 1024, 256), None);
        assert_eq!(split(256, 10, 127), None);
        let shape = MatmulShape {
            m: 256,
            n: 10,
            k: 1024,
        };
        let register = MatmulTile::for_shape(MatmulStrategy::RegisterBlocked, shape);
        assert_eq!(
            MatmulSplit::for_shape(MatmulStrategy::RegisterBlocked, register, shape),
            None
        );
    }
}
