//! `.npz` archives as numpy's `np.savez` and `np.savez_compressed` write them: a zip of `.npy`
//! arrays, here `x` (features) and `y` (targets).
//!
//! A `.npy` array is the magic `\x93NUMPY`, a version byte pair (1, 2 or 3), the header's
//! length (`u16` for version 1, `u32` after), and a header that is a Python dict literal with
//! `descr` (the dtype, e.g. `<f4`, `>f8`, `|u1`), `fortran_order` and `shape`; the data follows.
//! Each array is read straight into its final buffer in 1 MiB chunks, converting as it goes
//! (float64 to f32), so a large archive is never held in memory beside its copy. Every size is
//! checked against the archive entry's stated size before anything is allocated.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use ndarray::Array2;
use zip::ZipArchive;

use super::dataset::Features;
use super::files::{RawTargets, data_error};
use crate::error::{Error, Result};

/// The `.npy` magic string.
const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// The largest header accepted (numpy writes under 1 KiB; version 2 could claim 4 GiB).
const MAX_HEADER_BYTES: usize = 1 << 20;

/// Bytes read from an archive entry at a time.
const CHUNK_BYTES: usize = 1 << 20;

/// A parsed `.npy` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpyHeader {
    /// The dtype as numpy writes it, e.g. `<f4`.
    pub descr: String,
    /// Whether the data is column-major.
    pub fortran_order: bool,
    /// The dimensions, outermost first.
    pub shape: Vec<usize>,
}

/// The element types accepted: integers and float32/float64.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scalar {
    Int(usize),
    UInt(usize),
    Float(usize),
}

/// A supported dtype: its element type and byte order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Dtype {
    scalar: Scalar,
    big_endian: bool,
}

impl Dtype {
    fn size(self) -> usize {
        match self.scalar {
            Scalar::Int(n) | Scalar::UInt(n) | Scalar::Float(n) => n,
        }
    }
}

/// What an npz holds: the features, the targets before the task is decided, and the image shape
/// of `(N, H, W)` byte features.
pub(crate) struct NpzContent {
    pub features: Features,
    pub targets: RawTargets,
    pub image_shape: Option<(usize, usize)>,
}

/// The zip archive at `path`.
fn open_archive(path: &Path) -> Result<Archive> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    ZipArchive::new(BufReader::new(file)).map_err(|e| {
        data_error(
            path,
            format!("is not a readable .npz (zip) archive, truncated or corrupt? ({e})"),
        )
    })
}

/// Reads `x` and `y` from the archive at `path`.
pub(crate) fn read_npz(path: &Path) -> Result<NpzContent> {
    let mut archive = open_archive(path)?;
    let y = read_targets(&mut archive, path)?;
    let (features, image_shape) = read_features(&mut archive, path, Some(y.len()))?;
    Ok(NpzContent {
        features,
        targets: y,
        image_shape,
    })
}

/// Reads only `x` from the archive at `path` (samples to predict need no `y`).
pub(crate) fn read_npz_features(path: &Path) -> Result<(Features, Option<(usize, usize)>)> {
    let mut archive = open_archive(path)?;
    read_features(&mut archive, path, None)
}

type Archive = ZipArchive<BufReader<File>>;

/// `y`: integers of shape `(N,)` or `(N, 1)` as class labels, anything else of integers or
/// floats as `(N, K)` values.
fn read_targets(archive: &mut Archive, path: &Path) -> Result<RawTargets> {
    let mut entry = open_entry(archive, path, "y")?;
    let available = entry.size();
    let (header, dtype, header_len) = read_header(&mut entry, path, "y")?;
    let (n, k) = match header.shape[..] {
        [n] => (n, 1),
        [n, k] => (n, k),
        _ => {
            return Err(data_error(
                path,
                format!(
                    "array y has shape {}; targets must be (N,) or (N, K)",
                    shape_text(&header.shape)
                ),
            ));
        }
    };
    check_size(
        &header,
        dtype,
        available.saturating_sub(header_len),
        path,
        "y",
    )?;
    if matches!(dtype.scalar, Scalar::Float(_)) || k != 1 {
        let values = read_array(&mut entry, &header, dtype, path, "y", float_decoder(dtype))?;
        let values = Array2::from_shape_vec((n, k), values)
            .map_err(|e| data_error(path, format!("array y: {e}")))?;
        return Ok(RawTargets::Floats(values));
    }
    let labels = read_array(&mut entry, &header, dtype, path, "y", int_decoder(dtype))?;
    Ok(RawTargets::Integers(labels))
}

/// `x`: `(N, D)` or `(N, H, W)` of bytes (kept as bytes, `(H, W)` the image shape) or of
/// integers or floats (as f32), with `N` equal to `samples`, the length of `y`, if given.
fn read_features(
    archive: &mut Archive,
    path: &Path,
    samples: Option<usize>,
) -> Result<(Features, Option<(usize, usize)>)> {
    let mut entry = open_entry(archive, path, "x")?;
    let available = entry.size();
    let (header, dtype, header_len) = read_header(&mut entry, path, "x")?;
    let (n, width, image_shape) = match header.shape[..] {
        [n, d] => (n, d, None),
        [n, h, w] => (n, h * w, Some((h, w))),
        _ => {
            return Err(data_error(
                path,
                format!(
                    "array x has shape {}; features must be (N, D) or (N, H, W)",
                    shape_text(&header.shape)
                ),
            ));
        }
    };
    if let Some(samples) = samples
        && n != samples
    {
        return Err(data_error(
            path,
            format!("array x has {n} samples but array y has {samples}; their lengths must agree"),
        ));
    }
    check_size(
        &header,
        dtype,
        available.saturating_sub(header_len),
        path,
        "x",
    )?;
    let shape_error = |e: ndarray::ShapeError| data_error(path, format!("array x: {e}"));
    if dtype.scalar == Scalar::UInt(1) {
        let bytes = read_array(&mut entry, &header, dtype, path, "x", |b| b[0])?;
        let x = Array2::from_shape_vec((n, width), bytes).map_err(shape_error)?;
        return Ok((Features::Bytes(x), image_shape));
    }
    let floats = read_array(&mut entry, &header, dtype, path, "x", float_decoder(dtype))?;
    let x = Array2::from_shape_vec((n, width), floats).map_err(shape_error)?;
    Ok((Features::Floats(x), None))
}

fn open_entry<'a>(
    archive: &'a mut Archive,
    path: &Path,
    name: &str,
) -> Result<zip::read::ZipFile<'a, BufReader<File>>> {
    let file_name = format!("{name}.npy");
    if archive.index_for_name(&file_name).is_none() {
        let arrays: Vec<String> = archive
            .file_names_raw()
            .map(|n| {
                let n = String::from_utf8_lossy(n);
                n.strip_suffix(".npy").unwrap_or(&n).to_string()
            })
            .collect();
        return Err(data_error(
            path,
            format!(
                "has no array `{name}` (it holds: {}); save features as x and targets as y: np.savez(path, x=..., y=...)",
                arrays.join(", ")
            ),
        ));
    }
    archive
        .by_name(&file_name)
        .map_err(|e| data_error(path, format!("array {name} cannot be read: {e}")))
}

/// Checks the data's size as the header states it against the `available` bytes the archive
/// entry holds after the header, so that nothing is allocated for a header that claims too much.
fn check_size(
    header: &NpyHeader,
    dtype: Dtype,
    available: u64,
    path: &Path,
    name: &str,
) -> Result<()> {
    if let Some(d) = header.shape.iter().position(|&d| d == 0) {
        return Err(data_error(
            path,
            format!(
                "array {name} has shape {}: dimension {d} is zero-length, so there is no data",
                shape_text(&header.shape)
            ),
        ));
    }
    let bytes = header
        .shape
        .iter()
        .try_fold(dtype.size() as u64, |acc, &d| acc.checked_mul(d as u64));
    match bytes {
        Some(bytes) if bytes == available => Ok(()),
        Some(bytes) if bytes < available => Err(data_error(
            path,
            format!(
                "array {name} has {} bytes past the {bytes} bytes of data its header declares (shape {} of {})",
                available - bytes,
                shape_text(&header.shape),
                header.descr
            ),
        )),
        _ => Err(data_error(
            path,
            format!(
                "array {name} is truncated: its header says shape {} of {}, more than the {available} bytes of data its archive entry holds",
                shape_text(&header.shape),
                header.descr
            ),
        )),
    }
}

/// Reads and checks the `.npy` header of array `name`: the header, its dtype and the bytes read.
fn read_header(reader: &mut impl Read, path: &Path, name: &str) -> Result<(NpyHeader, Dtype, u64)> {
    let error = |why: String| data_error(path, format!("array {name}: {why}"));
    let mut preamble = [0u8; 8];
    reader
        .read_exact(&mut preamble)
        .map_err(|e| error(format!("cannot read the .npy preamble ({e})")))?;
    if &preamble[..6] != MAGIC {
        return Err(error("is not a .npy array (no \\x93NUMPY magic)".into()));
    }
    let major = preamble[6];
    let (length, length_bytes) = match major {
        1 => {
            let mut word = [0u8; 2];
            reader
                .read_exact(&mut word)
                .map_err(|e| error(format!("short header ({e})")))?;
            (u16::from_le_bytes(word) as usize, 2)
        }
        2 | 3 => {
            let mut word = [0u8; 4];
            reader
                .read_exact(&mut word)
                .map_err(|e| error(format!("short header ({e})")))?;
            (u32::from_le_bytes(word) as usize, 4)
        }
        _ => return Err(error(format!(".npy version {major} is not 1, 2 or 3"))),
    };
    if length > MAX_HEADER_BYTES {
        return Err(error(format!("header of {length} bytes is too long")));
    }
    let mut text = vec![0u8; length];
    reader
        .read_exact(&mut text)
        .map_err(|e| error(format!("truncated header ({e})")))?;
    let header = parse_header(&text).map_err(|why| error(format!("bad header: {why}")))?;
    let dtype = parse_descr(&header.descr).map_err(|why| {
        error(format!(
            "dtype {} ({why}) is not supported; x must be uint8, float32 or float64 (or integers), y integers or float32/float64",
            header.descr
        ))
    })?;
    Ok((header, dtype, (8 + length_bytes + length) as u64))
}

/// Reads as many bytes as are left, up to `buffer`'s length: the count read (short only at the
/// end of the stream).
fn fill(reader: &mut impl Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Reads the data of array `name` into a row-major buffer of `T`, decoding each element with
/// `decode`; Fortran-ordered data is scattered into row-major places as it arrives.
fn read_array<T: Copy + Default>(
    reader: &mut impl Read,
    header: &NpyHeader,
    dtype: Dtype,
    path: &Path,
    name: &str,
    decode: fn(&[u8]) -> T,
) -> Result<Vec<T>> {
    let count: usize = header.shape.iter().product();
    let size = dtype.size();
    let mut out: Vec<T> = Vec::new();
    out.try_reserve_exact(count).map_err(|_| {
        data_error(
            path,
            format!(
                "array {name} of shape {} needs more memory than is available",
                shape_text(&header.shape)
            ),
        )
    })?;
    let mut order = header
        .fortran_order
        .then(|| FortranOrder::new(&header.shape));
    if order.is_some() {
        out.resize(count, T::default());
    }
    let mut chunk = vec![0u8; CHUNK_BYTES.min(count * size)];
    let mut done = 0;
    while done < count {
        let want = ((count - done) * size).min(chunk.len());
        let got = fill(reader, &mut chunk[..want])
            .map_err(|e| data_error(path, format!("array {name} cannot be read: {e}")))?;
        if got < want {
            return Err(data_error(
                path,
                format!(
                    "array {name} is truncated: shape {} needs {} bytes of data but only {} follow the header",
                    shape_text(&header.shape),
                    count * size,
                    done * size + got
                ),
            ));
        }
        let elements = chunk[..want].chunks_exact(size).map(decode);
        match order.as_mut() {
            None => out.extend(elements),
            Some(order) => elements.for_each(|v| out[order.next_offset()] = v),
        }
        done += want / size;
    }
    Ok(out)
}

/// Walks a column-major array's elements in storage order, giving each one's row-major offset.
struct FortranOrder {
    shape: Vec<usize>,
    strides: Vec<usize>,
    index: Vec<usize>,
    offset: usize,
    started: bool,
}

impl FortranOrder {
    fn new(shape: &[usize]) -> FortranOrder {
        let mut strides = vec![1; shape.len()];
        for d in (0..shape.len().saturating_sub(1)).rev() {
            strides[d] = strides[d + 1] * shape[d + 1];
        }
        FortranOrder {
            shape: shape.to_vec(),
            strides,
            index: vec![0; shape.len()],
            offset: 0,
            started: false,
        }
    }

    /// The row-major offset of the next element in storage order (first dimension fastest).
    fn next_offset(&mut self) -> usize {
        if !self.started {
            self.started = true;
            return 0;
        }
        for d in 0..self.shape.len() {
            self.index[d] += 1;
            self.offset += self.strides[d];
            if self.index[d] < self.shape[d] {
                break;
            }
            self.offset -= self.shape[d] * self.strides[d];
            self.index[d] = 0;
        }
        self.offset
    }
}

fn word<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut word = [0u8; N];
    word.copy_from_slice(&bytes[..N]);
    word
}

macro_rules! decoder {
    ($dtype:expr, $out:ty, $($scalar:pat => $t:ty),* $(,)?) => {
        match ($dtype.scalar, $dtype.big_endian) {
            $(
                ($scalar, false) => |b: &[u8]| <$t>::from_le_bytes(word(b)) as $out,
                ($scalar, true) => |b: &[u8]| <$t>::from_be_bytes(word(b)) as $out,
            )*
            _ => unreachable!("parse_descr accepts only these sizes"),
        }
    };
}

/// Decodes one element of `dtype` as f32 (float64 rounds to nearest).
fn float_decoder(dtype: Dtype) -> fn(&[u8]) -> f32 {
    decoder!(dtype, f32,
        Scalar::Float(4) => f32, Scalar::Float(8) => f64,
        Scalar::Int(1) => i8, Scalar::Int(2) => i16, Scalar::Int(4) => i32, Scalar::Int(8) => i64,
        Scalar::UInt(1) => u8, Scalar::UInt(2) => u16, Scalar::UInt(4) => u32, Scalar::UInt(8) => u64,
    )
}

/// Decodes one integer element of `dtype` as i64 (uint64 above `i64::MAX` saturates).
fn int_decoder(dtype: Dtype) -> fn(&[u8]) -> i64 {
    match (dtype.scalar, dtype.big_endian) {
        (Scalar::UInt(8), false) => {
            |b| i64::try_from(u64::from_le_bytes(word(b))).unwrap_or(i64::MAX)
        }
        (Scalar::UInt(8), true) => {
            |b| i64::try_from(u64::from_be_bytes(word(b))).unwrap_or(i64::MAX)
        }
        _ => decoder!(dtype, i64,
            Scalar::Int(1) => i8, Scalar::Int(2) => i16, Scalar::Int(4) => i32, Scalar::Int(8) => i64,
            Scalar::UInt(1) => u8, Scalar::UInt(2) => u16, Scalar::UInt(4) => u32,
        ),
    }
}

/// The dtype `descr` names, or why it is refused.
fn parse_descr(descr: &str) -> std::result::Result<Dtype, String> {
    let mut chars = descr.chars();
    let big_endian = match chars.next() {
        Some('<' | '|') => false,
        Some('=') => cfg!(target_endian = "big"),
        Some('>') => true,
        _ => return Err("no byte-order mark".into()),
    };
    let kind = chars.next().ok_or("no type code")?;
    let size: Option<usize> = chars.as_str().parse().ok();
    let scalar = match (kind, size) {
        ('i', Some(n @ (1 | 2 | 4 | 8))) => Scalar::Int(n),
        ('u', Some(n @ (1 | 2 | 4 | 8))) => Scalar::UInt(n),
        ('f', Some(n @ (4 | 8))) => Scalar::Float(n),
        ('i' | 'u' | 'f', Some(n)) => return Err(format!("{}-bit numbers", 8 * n)),
        ('b', _) => return Err("bool".into()),
        ('c', _) => return Err("complex".into()),
        ('O', _) => return Err("Python objects".into()),
        ('S' | 'a', _) => return Err("byte strings".into()),
        ('U', _) => return Err("unicode strings".into()),
        ('M' | 'm', _) => return Err("dates or times".into()),
        ('V', _) => return Err("raw records".into()),
        _ => return Err("unknown type".into()),
    };
    Ok(Dtype { scalar, big_endian })
}

/// `(3, 4)` as numpy writes shapes.
fn shape_text(shape: &[usize]) -> String {
    match shape {
        [d] => format!("({d},)"),
        _ => {
            let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
            format!("({})", dims.join(", "))
        }
    }
}

/// A Python literal as `.npy` headers use them.
#[derive(Clone, Debug, PartialEq)]
enum Literal {
    Str(String),
    Bool(bool),
    Int(u64),
    None,
    Seq(Vec<Literal>),
    Dict(Vec<(Literal, Literal)>),
}

/// The header dict's `descr`, `fortran_order` and `shape`.
fn parse_header(text: &[u8]) -> std::result::Result<NpyHeader, String> {
    let text = std::str::from_utf8(text).map_err(|_| "not UTF-8".to_string())?;
    let mut parser = LiteralParser { text, at: 0 };
    let Literal::Dict(entries) = parser.value()? else {
        return Err("not a dict".into());
    };
    let get = |key: &str| {
        entries
            .iter()
            .find(|(k, _)| *k == Literal::Str(key.into()))
            .map(|(_, v)| v)
            .ok_or(format!("no '{key}'"))
    };
    let descr = match get("descr")? {
        Literal::Str(descr) => descr.clone(),
        _ => "structured".into(),
    };
    let Literal::Bool(fortran_order) = *get("fortran_order")? else {
        return Err("'fortran_order' is not True or False".into());
    };
    let Literal::Seq(dims) = get("shape")? else {
        return Err("'shape' is not a tuple".into());
    };
    let shape = dims
        .iter()
        .map(|d| match d {
            Literal::Int(d) => usize::try_from(*d).map_err(|_| format!("dimension {d} too large")),
            _ => Err("'shape' holds a non-integer".into()),
        })
        .collect::<std::result::Result<Vec<_>, String>>()?;
    Ok(NpyHeader {
        descr,
        fortran_order,
        shape,
    })
}

/// A recursive-descent parser for the Python literals of `.npy` headers.
struct LiteralParser<'a> {
    text: &'a str,
    at: usize,
}

impl LiteralParser<'_> {
    fn rest(&self) -> &str {
        &self.text[self.at..]
    }

    fn skip_space(&mut self) {
        let rest = self.rest();
        self.at += rest.len() - rest.trim_start().len();
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_space();
        let found = self.rest().starts_with(token);
        if found {
            self.at += token.len();
        }
        found
    }

    fn value(&mut self) -> std::result::Result<Literal, String> {
        self.skip_space();
        for (word, literal) in [
            ("True", Literal::Bool(true)),
            ("False", Literal::Bool(false)),
            ("None", Literal::None),
        ] {
            if self.eat(word) {
                return Ok(literal);
            }
        }
        let rest = self.rest();
        match rest.chars().next() {
            Some(quote @ ('\'' | '"')) => {
                let end = rest[1..].find(quote).ok_or("unterminated string")?;
                let text = rest[1..=end].to_string();
                self.at += end + 2;
                Ok(Literal::Str(text))
            }
            Some('0'..='9') => {
                let digits =
                    rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
                let number = rest[..digits].parse().map_err(|_| "integer too large")?;
                self.at += digits;
                self.eat("L");
                Ok(Literal::Int(number))
            }
            Some('(') => self.sequence(")").map(Literal::Seq),
            Some('[') => self.sequence("]").map(Literal::Seq),
            Some('{') => self.dict(),
            _ => Err(format!("unexpected text at byte {}", self.at)),
        }
    }

    /// Items up to `close`, after the opening bracket, a trailing comma allowed.
    fn sequence(&mut self, close: &str) -> std::result::Result<Vec<Literal>, String> {
        self.at += 1;
        let mut items = Vec::new();
        while !self.eat(close) {
            items.push(self.value()?);
            if !self.eat(",") && !self.rest().trim_start().starts_with(close) {
                return Err(format!("expected ',' or '{close}' at byte {}", self.at));
            }
        }
        Ok(items)
    }

    fn dict(&mut self) -> std::result::Result<Literal, String> {
        self.at += 1;
        let mut entries = Vec::new();
        while !self.eat("}") {
            let key = self.value()?;
            if !self.eat(":") {
                return Err(format!("expected ':' at byte {}", self.at));
            }
            entries.push((key, self.value()?));
            if !self.eat(",") && !self.rest().trim_start().starts_with('}') {
                return Err(format!("expected ',' or '}}' at byte {}", self.at));
            }
        }
        Ok(Literal::Dict(entries))
    }
}

/// An `.npz` archive (stored, as `np.savez` writes it) of float32 `arrays`, each
/// `(name, shape, values)` in C order, as `.npy` format 1.0.
pub fn write_f32_npz(arrays: &[(&str, &[usize], &[f32])]) -> Result<Vec<u8>> {
    use std::io::Write;
    let mut archive = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let failed = |e: &dyn std::fmt::Display| Error::invalid("npz", format!("writing it: {e}"));
    for &(name, shape, values) in arrays {
        if shape.iter().product::<usize>() != values.len() {
            return Err(Error::invalid(
                "npz",
                format!("{name}: {} values for shape {shape:?}", values.len()),
            ));
        }
        let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
        let shape = match dims.len() {
            1 => format!("({},)", dims[0]),
            _ => format!("({})", dims.join(", ")),
        };
        // numpy pads the header with spaces so that the data starts at a multiple of 64 bytes.
        let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
        while !(MAGIC.len() + 4 + header.len() + 1).is_multiple_of(64) {
            header.push(' ');
        }
        header.push('\n');
        archive
            .start_file(format!("{name}.npy"), options)
            .map_err(|e| failed(&e))?;
        let mut bytes = MAGIC.to_vec();
        bytes.extend([1, 0]);
        bytes.extend((header.len() as u16).to_le_bytes());
        bytes.extend(header.as_bytes());
        bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        archive.write_all(&bytes).map_err(|e| failed(&e))?;
    }
    Ok(archive.finish().map_err(|e| failed(&e))?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numpy_headers_of_every_version() {
        let header =
            parse_header(b"{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }   \n")
                .unwrap();
        assert_eq!(header.descr, "<f8");
        assert!(!header.fortran_order);
        assert_eq!(header.shape, vec![3, 4]);
        let old = parse_header(b"{'descr': '>i4', 'fortran_order': True, 'shape': (5L,)}").unwrap();
        assert_eq!((old.fortran_order, old.shape), (true, vec![5]));
        let structured =
            parse_header(b"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,)}")
                .unwrap();
        assert!(parse_descr(&structured.descr).is_err());
        assert!(parse_header(b"{'descr': '<f8', 'shape': (3,)}").is_err());
        assert!(parse_header(b"{'descr': '<f8', 'fortran_order': False, 'shape': (3,").is_err());
    }

    #[test]
    fn decodes_both_byte_orders() {
        let big = parse_descr(">f8").unwrap();
        assert_eq!(float_decoder(big)(&1.5f64.to_be_bytes()), 1.5);
        let little = parse_descr("<i2").unwrap();
        assert_eq!(int_decoder(little)(&(-3i16).to_le_bytes()), -3);
        assert_eq!(parse_descr("|b1").unwrap_err(), "bool");
        assert_eq!(parse_descr("<U5").unwrap_err(), "unicode strings");
    }

    #[test]
    fn arrays_larger_than_a_chunk_are_read_across_chunk_boundaries() {
        // 210,000 big-endian f64 (1.7 MB, two chunks), column-major: element (i, j) is stored
        // at j * rows + i and holds its row-major offset i * cols + j.
        let (rows, cols) = (700, 300);
        let header = NpyHeader {
            descr: ">f8".into(),
            fortran_order: true,
            shape: vec![rows, cols],
        };
        let dtype = parse_descr(&header.descr).unwrap();
        let mut bytes = Vec::new();
        for j in 0..cols {
            for i in 0..rows {
                bytes.extend(((i * cols + j) as f64).to_be_bytes());
            }
        }
        let path = Path::new("big.npz");
        let read = |data: &[u8]| {
            read_array(
                &mut &data[..],
                &header,
                dtype,
                path,
                "x",
                float_decoder(dtype),
            )
        };
        let values = read(&bytes).unwrap();
        assert_eq!(values.len(), rows * cols);
        assert!(values.iter().enumerate().all(|(k, &v)| v == k as f32));
        let short = read(&bytes[..bytes.len() - 8]).unwrap_err().to_string();
        assert!(
            short.contains("truncated") && short.contains("1679992"),
            "{short}"
        );
    }

    #[test]
    fn fortran_order_visits_row_major_offsets_column_by_column() {
        let mut order = FortranOrder::new(&[2, 3]);
        let offsets: Vec<usize> = (0..6).map(|_| order.next_offset()).collect();
        assert_eq!(offsets, vec![0, 3, 1, 4, 2, 5]);
        let mut cube = FortranOrder::new(&[2, 2, 2]);
        let offsets: Vec<usize> = (0..8).map(|_| cube.next_offset()).collect();
        assert_eq!(offsets, vec![0, 4, 2, 6, 1, 5, 3, 7]);
    }
}
