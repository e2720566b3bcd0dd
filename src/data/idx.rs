//! IDX files, the format of MNIST and Fashion-MNIST, raw or gzip-compressed.
//!
//! An IDX file is a 4-byte magic (`0, 0, type, dimensions`), one big-endian `u32` per dimension,
//! then the data. Only unsigned bytes (type `0x08`) occur in these data sets and only they are
//! accepted. Every check happens before the data is allocated: a header that claims more than the
//! file can hold, or more than [`MAX_IDX_BYTES`], is refused from the header alone, so a
//! truncated download or a gzip bomb ends in an error naming the file, not in an allocation.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use crate::error::{Error, Result};

/// The largest data section accepted: 1 GiB, twenty times MNIST's training images.
pub const MAX_IDX_BYTES: u64 = 1 << 30;

/// The IDX type code for unsigned bytes.
const TYPE_U8: u8 = 0x08;

/// The gzip magic number.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// An IDX array of unsigned bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    /// The dimensions, outermost first (`[count, rows, cols]` for images, `[count]` for labels).
    pub dims: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<u8>,
}

fn data_error(path: &Path, why: impl Into<String>) -> Error {
    Error::Data {
        path: path.display().to_string(),
        why: why.into(),
    }
}

/// An IDX file opened for its content: decompressed when it is gzip (told by its magic number,
/// not its name).
pub(crate) struct IdxContent {
    /// The content, decompressed.
    pub reader: Box<dyn Read>,
    /// Whether the file is gzip.
    pub gzip: bool,
    /// The content's size as the file states it: its length, or the gzip trailer's uncompressed
    /// size modulo 2³² (exact for anything under 4 GiB); `None` for a gzip file too short to
    /// have a trailer.
    pub size: Option<u64>,
}

/// Opens `path` for its IDX content.
pub(crate) fn open_content(path: &Path) -> std::io::Result<IdxContent> {
    let mut file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut magic = [0u8; 2];
    let gzip = file_len >= 2 && {
        file.read_exact(&mut magic)?;
        file.seek(SeekFrom::Start(0))?;
        magic == GZIP_MAGIC
    };
    if !gzip {
        return Ok(IdxContent {
            reader: Box::new(BufReader::new(file)),
            gzip,
            size: Some(file_len),
        });
    }
    let size = gzip_stated_size(file_len, || {
        let mut trailer = [0u8; 4];
        file.seek(SeekFrom::End(-4))?;
        file.read_exact(&mut trailer)?;
        file.seek(SeekFrom::Start(0))?;
        Ok(trailer)
    })?;
    Ok(IdxContent {
        reader: Box::new(flate2::read::GzDecoder::new(BufReader::new(file))),
        gzip,
        size,
    })
}

/// The gzip trailer's statement of the content's size, modulo 2³² (exact under 4 GiB), from a
/// gzip stream's last four bytes; `None` for a stream too short to have one.
fn gzip_stated_size(
    len: u64,
    last_four: impl FnOnce() -> std::io::Result<[u8; 4]>,
) -> std::io::Result<Option<u64>> {
    if len < 18 {
        return Ok(None);
    }
    Ok(Some(u64::from(u32::from_le_bytes(last_four()?))))
}

/// Parses an IDX file's bytes, decompressing them if they are gzip (told by the magic number);
/// `path` names the file in errors (for files already in memory, such as a browser's).
pub fn parse_bytes(bytes: &[u8], path: &Path) -> Result<IdxArray> {
    if !bytes.starts_with(&GZIP_MAGIC) {
        return parse_idx(bytes, path, Some(bytes.len() as u64));
    }
    let size = gzip_stated_size(bytes.len() as u64, || {
        Ok(bytes[bytes.len() - 4..].try_into().unwrap_or_default())
    })
    .map_err(|e| Error::io(path, e))?;
    parse_idx(flate2::read::GzDecoder::new(bytes), path, size)
}

/// Reads an IDX file, decompressing it if it is gzip.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let content = open_content(path).map_err(|e| Error::io(path, e))?;
    let named_gz = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    if named_gz && !content.gzip {
        return Err(data_error(
            path,
            "is named .gz but is not gzip-compressed (wrong file, or an error page saved in its place?)",
        ));
    }
    // The stated size is a cheap early check against the header's claims.
    parse_idx(content.reader, path, content.size)
}

/// Parses IDX from `reader`. `available`, when known, is the number of bytes the stream holds;
/// a header that claims more is refused before anything is allocated.
pub fn parse_idx(mut reader: impl Read, path: &Path, available: Option<u64>) -> Result<IdxArray> {
    let dims = read_header(&mut reader, path)?;
    let rank = dims.len();
    let header_len = 4 + 4 * rank as u64;
    let data_len = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64));
    let data_len = match data_len {
        Some(len) if len <= MAX_IDX_BYTES => len,
        _ => {
            return Err(data_error(
                path,
                format!(
                    "header claims dimensions {dims:?}, more than the {MAX_IDX_BYTES}-byte limit; refusing to read it"
                ),
            ));
        }
    };
    if let Some(available) = available {
        // For gzip, `available` is the trailer's size modulo 2³²: only trust it to refuse.
        if header_len + data_len > available && header_len + data_len < (1 << 32) {
            return Err(data_error(
                path,
                format!(
                    "header claims dimensions {dims:?} ({data_len} bytes of data) but the file holds only {} bytes after the header (truncated?)",
                    available.saturating_sub(header_len)
                ),
            ));
        }
    }
    let mut data = Vec::new();
    let read = reader
        .by_ref()
        .take(data_len)
        .read_to_end(&mut data)
        .map_err(|e| data_error(path, format!("cannot be read: {e}")))?;
    if (read as u64) < data_len {
        return Err(data_error(
            path,
            format!(
                "is truncated: header claims dimensions {dims:?} ({data_len} bytes of data) but only {read} follow"
            ),
        ));
    }
    let mut extra = [0u8; 1];
    if reader
        .read(&mut extra)
        .map_err(|e| data_error(path, format!("cannot be read: {e}")))?
        > 0
    {
        return Err(data_error(
            path,
            format!("has data past the {data_len} bytes its header {dims:?} declares"),
        ));
    }
    Ok(IdxArray { dims, data })
}

/// The IDX header: the magic number (unsigned bytes, 1 to 4 dimensions) and the dimensions.
fn read_header(reader: &mut impl Read, path: &Path) -> Result<Vec<usize>> {
    let mut magic = [0u8; 4];
    read_header_bytes(reader, &mut magic, path, "the 4-byte magic number")?;
    if magic[0] != 0 || magic[1] != 0 {
        return Err(data_error(
            path,
            format!(
                "is not an IDX file: magic number {magic:02x?} does not start with two zero bytes"
            ),
        ));
    }
    if magic[2] != TYPE_U8 {
        return Err(data_error(
            path,
            format!(
                "has IDX element type 0x{:02x}; only unsigned bytes (0x08) are supported",
                magic[2]
            ),
        ));
    }
    let rank = magic[3] as usize;
    if !(1..=4).contains(&rank) {
        return Err(data_error(
            path,
            format!("declares {rank} dimensions; expected 1 (labels) or 3 (images)"),
        ));
    }
    let mut dims = Vec::with_capacity(rank);
    for d in 0..rank {
        let mut word = [0u8; 4];
        read_header_bytes(
            reader,
            &mut word,
            path,
            &format!("dimension {d} of the header"),
        )?;
        dims.push(u32::from_be_bytes(word) as usize);
    }
    Ok(dims)
}

fn read_header_bytes(
    reader: &mut impl Read,
    buffer: &mut [u8],
    path: &Path,
    what: &str,
) -> Result<()> {
    reader.read_exact(buffer).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => {
            data_error(path, format!("is too short: it ends before {what}"))
        }
        _ => data_error(path, format!("cannot be read: {e}")),
    })
}

/// Images: `(count, rows, cols, pixels)` from a three-dimensional IDX file.
pub fn read_images(path: &Path) -> Result<(usize, usize, usize, Vec<u8>)> {
    images_of(read_idx(path)?, path)
}

/// Images: `(count, rows, cols, pixels)` from a three-dimensional IDX array read from `path`.
pub fn images_of(array: IdxArray, path: &Path) -> Result<(usize, usize, usize, Vec<u8>)> {
    match array.dims[..] {
        [count, rows, cols] if count > 0 && rows > 0 && cols > 0 => {
            Ok((count, rows, cols, array.data))
        }
        _ => Err(data_error(
            path,
            format!(
                "has dimensions {:?}; an image file has three, all non-zero: [count, rows, cols]",
                array.dims
            ),
        )),
    }
}

/// Labels from a one-dimensional IDX file.
pub fn read_labels(path: &Path) -> Result<Vec<u8>> {
    labels_of(read_idx(path)?, path)
}

/// Labels from a one-dimensional IDX array read from `path`.
pub fn labels_of(array: IdxArray, path: &Path) -> Result<Vec<u8>> {
    match array.dims[..] {
        [count] if count > 0 => Ok(array.data),
        _ => Err(data_error(
            path,
            format!(
                "has dimensions {:?}; a label file has one, non-zero: [count]",
                array.dims
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0, 0, TYPE_U8, dims.len() as u8];
        for d in dims {
            bytes.extend(d.to_be_bytes());
        }
        bytes.extend(data);
        bytes
    }

    fn parse(bytes: &[u8]) -> Result<IdxArray> {
        parse_idx(bytes, Path::new("test.idx"), Some(bytes.len() as u64))
    }

    #[test]
    fn parses_images_and_labels() {
        let array = parse(&idx(&[2, 2, 3], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])).unwrap();
        assert_eq!(array.dims, vec![2, 2, 3]);
        assert_eq!(array.data[11], 12);
        assert_eq!(parse(&idx(&[3], &[7, 8, 9])).unwrap().data, vec![7, 8, 9]);
    }

    #[test]
    fn every_truncation_is_an_error_never_a_panic() {
        let bytes = idx(&[2, 2, 2], &[1, 2, 3, 4, 5, 6, 7, 8]);
        for cut in 0..bytes.len() {
            let error = parse(&bytes[..cut]).unwrap_err().to_string();
            assert!(
                error.contains("test.idx")
                    && (error.contains("short")
                        || error.contains("truncated")
                        || error.contains("holds only")),
                "{cut}: {error}"
            );
        }
    }

    #[test]
    fn refuses_bad_magic_type_rank_and_oversized_headers() {
        let bad_magic = parse(&[1, 0, 8, 1, 0, 0, 0, 1, 5]).unwrap_err().to_string();
        assert!(bad_magic.contains("not an IDX file"), "{bad_magic}");
        let bad_type = parse(&[0, 0, 0x0d, 1, 0, 0, 0, 1, 5])
            .unwrap_err()
            .to_string();
        assert!(bad_type.contains("element type 0x0d"), "{bad_type}");
        let bad_rank = parse(&[0, 0, 8, 0]).unwrap_err().to_string();
        assert!(bad_rank.contains("0 dimensions"), "{bad_rank}");
        // A header that claims 4 GiB × 4 GiB is refused from the header, with nothing allocated.
        let bomb = parse_idx(
            &idx(&[u32::MAX, u32::MAX, 1], &[])[..],
            Path::new("bomb.idx"),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(bomb.contains("limit"), "{bomb}");
        let extra = parse(&idx(&[2], &[1, 2, 3])).unwrap_err().to_string();
        assert!(extra.contains("past the 2 bytes"), "{extra}");
    }
}
