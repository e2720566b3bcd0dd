//! How much memory a model of given layer sizes needs, checked before any of it is allocated.
//!
//! The rule: training keeps four `f32` copies of every parameter in host memory (the weights,
//! their gradients and Adam's two moments), so a model needs parameters × 4 bytes × 4
//! ([`TRAINING_BYTES_PER_PARAMETER`]). A parameter count that overflows, or a need above the
//! memory the system reports available (`MemAvailable` in `/proc/meminfo`, where it exists), is
//! an [`Error::Model`] naming the largest layer and the sizes, so that a mistyped `--layers`
//! gives a message instead of an allocation abort. Where the system reports nothing the check is
//! skipped, and the weights are still allocated fallibly ([`try_filled`]).

use crate::error::{Error, Result};

/// Host bytes training needs per parameter: 4 (`f32`) for each of the weight, its gradient and
/// Adam's two moments.
pub const TRAINING_BYTES_PER_PARAMETER: u64 = 16;

/// The largest layer of a model, by weight elements.
struct Largest {
    index: usize,
    outputs: usize,
    inputs: usize,
    elements: usize,
}

/// Checks that a model with layer sizes `sizes` can be counted and fits in `available` bytes of
/// host memory (unchecked when `None`). Sizes that cannot form a model (fewer than two, a zero)
/// pass: [`Mlp::validate`](super::Mlp::validate) names those.
pub(crate) fn check_sizes(sizes: &[usize], available: Option<u64>) -> Result<()> {
    let mut parameters: usize = 0;
    let mut largest: Option<Largest> = None;
    for (index, pair) in sizes.windows(2).enumerate() {
        let (inputs, outputs) = (pair[0], pair[1]);
        let elements = outputs.checked_mul(inputs).ok_or_else(|| {
            Error::Model(format!(
                "layer {index} weight [{outputs}, {inputs}] has more elements than this machine \
                 can address (at most {})",
                usize::MAX
            ))
        })?;
        parameters = parameters
            .checked_add(elements)
            .and_then(|p| p.checked_add(outputs))
            .ok_or_else(|| too_many(sizes))?;
        if largest.as_ref().is_none_or(|l| elements > l.elements) {
            largest = Some(Largest {
                index,
                outputs,
                inputs,
                elements,
            });
        }
    }
    let (Some(largest), Some(available)) = (largest, available) else {
        return Ok(());
    };
    let needed = (parameters as u64)
        .checked_mul(TRAINING_BYTES_PER_PARAMETER)
        .ok_or_else(|| too_many(sizes))?;
    if needed <= available {
        return Ok(());
    }
    Err(Error::Model(format!(
        "layer {} weight [{}, {}] needs {}, and training the model's {parameters} parameters \
         needs {} ({TRAINING_BYTES_PER_PARAMETER} bytes each for weights, gradients and two Adam \
         moments), more than the {} of memory available",
        largest.index,
        largest.outputs,
        largest.inputs,
        human_bytes((largest.elements as u64).saturating_mul(4)),
        human_bytes(needed),
        human_bytes(available),
    )))
}

/// The error for a parameter count that overflows.
fn too_many(sizes: &[usize]) -> Error {
    Error::Model(format!(
        "layer sizes {sizes:?} have more parameters than this machine can address"
    ))
}

/// The memory the system reports available to a new allocation, in bytes: `MemAvailable` from
/// `/proc/meminfo`, or `None` where there is no such file or line (and in a browser, which has
/// no files and bounds a page's memory itself).
pub(crate) fn available_memory() -> Option<u64> {
    if cfg!(target_arch = "wasm32") {
        return None;
    }
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_mem_available(&meminfo)
}

/// `MemAvailable:  123456 kB` → bytes.
fn parse_mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let mut words = line["MemAvailable:".len()..].split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    let unit = match words.next() {
        Some("kB") => 1024,
        None => 1,
        Some(_) => return None,
    };
    value.checked_mul(unit)
}

/// `bytes` in decimal units with one decimal, e.g. `313.6 GB`.
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["kB", "MB", "GB", "TB", "PB", "EB"];
    if bytes < 1000 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 999.95 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `len` values from `value`, allocated fallibly: a failed allocation is an [`Error::Model`]
/// naming `what` and its size rather than an abort.
pub(crate) fn try_filled(
    len: usize,
    what: impl FnOnce() -> String,
    value: impl FnMut() -> f32,
) -> Result<Vec<f32>> {
    let mut values = Vec::new();
    if let Err(error) = values.try_reserve_exact(len) {
        return Err(Error::Model(format!(
            "{} needs {}, which could not be allocated ({error})",
            what(),
            human_bytes((len as u64).saturating_mul(4))
        )));
    }
    values.extend(std::iter::repeat_with(value).take(len));
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GB: u64 = 1_000_000_000;

    #[test]
    fn a_model_larger_than_the_memory_available_is_refused_naming_its_largest_layer() {
        let error = check_sizes(&[784, 100_000_000, 10], Some(22_100_000_000))
            .unwrap_err()
            .to_string();
        // 784·10⁸ + 10⁸ + 10·10⁸ + 10 = 79,500,000,010 parameters, 16 bytes each.
        for part in [
            "layer 0 weight [100000000, 784] needs 313.6 GB",
            "79500000010 parameters needs 1.3 TB",
            "more than the 22.1 GB of memory available",
        ] {
            assert!(error.contains(part), "{part:?} not in {error}");
        }
        // (784·100 + 100 + 100·10 + 10) parameters · 16 bytes = 1,272,160 bytes.
        check_sizes(&[784, 100, 10], Some(1_272_160)).unwrap();
        assert!(check_sizes(&[784, 100, 10], Some(1_272_159)).is_err());
        check_sizes(&[784, 100_000_000, 10], None).unwrap();
    }

    #[test]
    fn counts_that_overflow_are_refused_whatever_the_memory() {
        let error = check_sizes(&[usize::MAX, 2], None).unwrap_err().to_string();
        assert!(
            error.contains(&format!("layer 0 weight [2, {}]", usize::MAX)),
            "{error}"
        );
        // The weight fits in a usize; adding its bias does not.
        let error = check_sizes(&[usize::MAX, 1], None).unwrap_err().to_string();
        assert!(
            error.contains("more parameters than this machine can address"),
            "{error}"
        );
        // The count fits; its bytes do not.
        let error = check_sizes(&[1 << 40, 1 << 21], Some(u64::MAX))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("more parameters than this machine"),
            "{error}"
        );
    }

    #[test]
    fn sizes_that_cannot_form_a_model_are_left_to_validate() {
        check_sizes(&[], Some(0)).unwrap();
        check_sizes(&[5], Some(0)).unwrap();
        check_sizes(&[0, 3], Some(GB)).unwrap();
        check_sizes(&[3, 0, 2], Some(GB)).unwrap();
    }

    #[test]
    fn mem_available_is_read_in_kilobytes_and_anything_else_is_none() {
        let meminfo = "MemTotal:       32000000 kB\nMemFree:  1 kB\nMemAvailable:   21582032 kB\n";
        assert_eq!(parse_mem_available(meminfo), Some(21_582_032 * 1024));
        assert_eq!(parse_mem_available("MemTotal: 5 kB\n"), None);
        assert_eq!(parse_mem_available("MemAvailable: lots kB\n"), None);
        assert_eq!(parse_mem_available("MemAvailable: 5 MB\n"), None);
    }

    #[test]
    fn byte_counts_read_in_decimal_units() {
        assert_eq!(human_bytes(999), "999 bytes");
        assert_eq!(human_bytes(313_600_000_000), "313.6 GB");
        assert_eq!(human_bytes(22 * GB + 100_000_000), "22.1 GB");
        assert_eq!(human_bytes(999_960_000), "1.0 GB");
        assert_eq!(human_bytes(u64::MAX), "18.4 EB");
    }

    #[test]
    fn a_failed_allocation_is_an_error_naming_what_and_its_size() {
        let error = try_filled(usize::MAX / 2, || "layer 3 weight".into(), || 0.0)
            .unwrap_err()
            .to_string();
        assert!(error.contains("layer 3 weight needs"), "{error}");
        assert_eq!(try_filled(3, String::new, || 1.5).unwrap(), [1.5; 3]);
    }
}
