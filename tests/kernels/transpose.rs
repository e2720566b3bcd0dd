//! `shaders/transpose.wgsl`: an exact transpose at every listed shape.

use crate::common::{assert_close, gpu, random_matrix};
use crate::{run_and_read, shapes, upload};
use wgpu_mlp::gpu::kernels::transpose::Transpose;

#[test]
fn transpose_matches_ndarray() {
    let gpu = gpu();
    for (rows, cols) in shapes() {
        let m = random_matrix(rows, cols, 6);
        let out = gpu.storage_buffer("out", rows * cols).unwrap();
        let dispatch =
            Transpose::bind(&gpu, "transpose test", rows, cols, &upload(&m), &out).unwrap();
        let want = m.t().as_standard_layout().to_owned();
        assert_close(
            &format!("transpose {rows}x{cols}"),
            &run_and_read(&gpu, &dispatch, &out, rows * cols),
            want.as_slice().unwrap(),
            0.0,
            0.0,
        );
    }
}
