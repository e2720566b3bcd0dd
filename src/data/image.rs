//! Images for `predict`: PNG or PGM of any size, to MNIST's convention (28×28, white on black,
//! values in [0, 1]).
//!
//! Colour is reduced to luminance and alpha composited onto white; the image is resampled to the
//! target size by area averaging; and since most photographed or drawn digits are dark on light,
//! an image whose mean is above one half is inverted so that the strokes come out bright, as in
//! MNIST.

use std::path::Path;

use crate::error::{Error, Result};

fn image_error(path: &Path, why: impl Into<String>) -> Error {
    Error::Data {
        path: path.display().to_string(),
        why: why.into(),
    }
}

/// Grey values in [0, 1], row-major, with their width and height.
struct Grey {
    width: usize,
    height: usize,
    values: Vec<f32>,
}

fn decode_png(bytes: &[u8], path: &Path) -> Result<Grey> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder
        .read_info()
        .map_err(|e| image_error(path, format!("is not a readable PNG: {e}")))?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| image_error(path, "is too large"))?;
    let mut buffer = vec![0u8; size];
    let frame = reader
        .next_frame(&mut buffer)
        .map_err(|e| image_error(path, format!("is not a readable PNG: {e}")))?;
    let channels = frame.color_type.samples();
    let (width, height) = (frame.width as usize, frame.height as usize);
    let values = buffer[..frame.buffer_size()]
        .chunks_exact(channels)
        .map(|px| {
            let f = |v: u8| f32::from(v) / 255.0;
            let (grey, alpha) = match channels {
                1 => (f(px[0]), 1.0),
                2 => (f(px[0]), f(px[1])),
                3 => (0.299 * f(px[0]) + 0.587 * f(px[1]) + 0.114 * f(px[2]), 1.0),
                _ => (
                    0.299 * f(px[0]) + 0.587 * f(px[1]) + 0.114 * f(px[2]),
                    f(px[3]),
                ),
            };
            grey * alpha + (1.0 - alpha)
        })
        .collect();
    Ok(Grey {
        width,
        height,
        values,
    })
}

/// The three numbers of a PGM header (width, height, maximum), skipping comments, and where the
/// whitespace after the last one is.
fn pgm_header(bytes: &[u8], path: &Path) -> Result<([usize; 3], usize)> {
    let mut tokens = Vec::new();
    let mut i = 2;
    while tokens.len() < 3 {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < bytes.len() && bytes[i] == b'#' {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let start = i;
        while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if start == i {
            return Err(image_error(path, "is a truncated PGM header"));
        }
        let token = std::str::from_utf8(&bytes[start..i])
            .ok()
            .and_then(|t| t.parse::<usize>().ok());
        tokens.push(
            token.ok_or_else(|| image_error(path, "has a PGM header that is not three numbers"))?,
        );
    }
    Ok(([tokens[0], tokens[1], tokens[2]], i))
}

/// PGM, binary (P5) or plain (P2), 8 or 16 bits.
fn decode_pgm(bytes: &[u8], path: &Path) -> Result<Grey> {
    let binary = bytes.starts_with(b"P5");
    let (tokens, i) = pgm_header(bytes, path)?;
    let (width, height, max) = (tokens[0], tokens[1], tokens[2]);
    if width == 0
        || height == 0
        || max == 0
        || max > 65535
        || width.saturating_mul(height) > 1 << 28
    {
        return Err(image_error(
            path,
            format!("has an unusable PGM size {width}×{height}, maximum {max}"),
        ));
    }
    let count = width * height;
    let values: Vec<f32> = if binary {
        let data = &bytes[(i + 1).min(bytes.len())..];
        let per = if max > 255 { 2 } else { 1 };
        if data.len() < count * per {
            return Err(image_error(
                path,
                format!(
                    "holds {} bytes of pixels; {width}×{height} needs {}",
                    data.len(),
                    count * per
                ),
            ));
        }
        (0..count)
            .map(|p| if per == 2 { u16::from_be_bytes([data[2 * p], data[2 * p + 1]]) as f32 } else { f32::from(data[p]) } / max as f32)
            .collect()
    } else {
        let text = std::str::from_utf8(&bytes[i..])
            .map_err(|_| image_error(path, "is a plain PGM with non-text pixels"))?;
        let values: Vec<f32> = text
            .split_ascii_whitespace()
            .take(count)
            .filter_map(|t| t.parse::<f32>().ok())
            .map(|v| v / max as f32)
            .collect();
        if values.len() < count {
            return Err(image_error(
                path,
                format!(
                    "holds {} pixels; {width}×{height} needs {count}",
                    values.len()
                ),
            ));
        }
        values
    };
    Ok(Grey {
        width,
        height,
        values,
    })
}

/// Averages the source pixels each target pixel covers.
fn resample(image: &Grey, width: usize, height: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; width * height];
    let (sx, sy) = (
        image.width as f64 / width as f64,
        image.height as f64 / height as f64,
    );
    for (ty, row) in out.chunks_mut(width).enumerate() {
        for (tx, value) in row.iter_mut().enumerate() {
            let (x0, x1) = (
                (tx as f64 * sx) as usize,
                (((tx + 1) as f64 * sx).ceil() as usize).min(image.width),
            );
            let (y0, y1) = (
                (ty as f64 * sy) as usize,
                (((ty + 1) as f64 * sy).ceil() as usize).min(image.height),
            );
            let (x1, y1) = (x1.max(x0 + 1), y1.max(y0 + 1));
            let mut total = 0.0;
            for y in y0..y1 {
                for x in x0..x1 {
                    total += image.values[y * image.width + x];
                }
            }
            *value = total / ((x1 - x0) * (y1 - y0)) as f32;
        }
    }
    out
}

/// Loads a PNG or PGM image as `width × height` values in [0, 1], bright strokes on dark.
pub fn load_image(path: &Path, width: usize, height: usize) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path).map_err(|source| Error::io(path, source))?;
    let grey = if bytes.starts_with(&[0x89, b'P', b'N', b'G']) {
        decode_png(&bytes, path)?
    } else if bytes.starts_with(b"P5") || bytes.starts_with(b"P2") {
        decode_pgm(&bytes, path)?
    } else {
        return Err(image_error(path, "is neither a PNG nor a PGM image"));
    };
    let mut values = resample(&grey, width, height);
    let mean = values.iter().sum::<f32>() / values.len() as f32;
    if mean > 0.5 {
        values.iter_mut().for_each(|v| *v = 1.0 - *v);
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgm_is_resampled_and_dark_on_light_is_inverted() {
        // 4×4 white image with a black 2×2 square top-left, downsampled to 2×2.
        let mut pgm = b"P2\n# comment\n4 4\n255\n".to_vec();
        for y in 0..4 {
            for x in 0..4 {
                pgm.extend(format!("{} ", if x < 2 && y < 2 { 0 } else { 255 }).as_bytes());
            }
        }
        let path = std::env::temp_dir().join(format!("wgpu-mlp-test-{}.pgm", std::process::id()));
        std::fs::write(&path, &pgm).unwrap();
        let values = load_image(&path, 2, 2).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(values, vec![1.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn unknown_and_truncated_files_are_errors() {
        let path =
            std::env::temp_dir().join(format!("wgpu-mlp-test-bad-{}.png", std::process::id()));
        std::fs::write(&path, b"GIF89a").unwrap();
        assert!(
            load_image(&path, 28, 28)
                .unwrap_err()
                .to_string()
                .contains("neither a PNG nor a PGM")
        );
        std::fs::write(&path, b"P5\n28 28\n255\n\x00\x01").unwrap();
        assert!(
            load_image(&path, 28, 28)
                .unwrap_err()
                .to_string()
                .contains("needs 784")
        );
        std::fs::remove_file(&path).unwrap();
    }
}
