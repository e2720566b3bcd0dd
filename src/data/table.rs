//! CSV files with a header row: one column is the target, every other column a float feature.
//!
//! Rows are streamed (the `csv` crate handles quoting), each field parsed as it is read. The
//! target column stays integer while every value in it is an integer literal (`3`, `-1`), so
//! that integer targets can be class labels; the first other number makes it a float column.
//! Errors give the 1-based line and the column's name.

use std::fs::File;
use std::path::Path;

use ndarray::Array2;

use super::files::{RawTargets, data_error};
use crate::error::{Error, Result};

/// A CSV file read into features and raw targets.
pub(crate) struct Table {
    /// One row per data row, the target column left out.
    pub features: Array2<f32>,
    /// The target column.
    pub targets: RawTargets,
    /// The 1-based line each data row starts on.
    pub lines: Vec<u64>,
    /// The target column's name.
    pub target_name: String,
}

/// The target column as it is read: integers while every value is one.
enum TargetColumn {
    Integers(Vec<i64>),
    Floats(Vec<f32>),
}

impl TargetColumn {
    /// Adds `text`, or says why it is not a number.
    fn push(&mut self, text: &str) -> std::result::Result<(), String> {
        if let TargetColumn::Integers(values) = self {
            if let Ok(value) = text.parse::<i64>() {
                values.push(value);
                return Ok(());
            }
            *self = TargetColumn::Floats(values.iter().map(|&v| v as f32).collect());
        }
        let value = parse_float(text)?;
        if let TargetColumn::Floats(values) = self {
            values.push(value);
        }
        Ok(())
    }
}

/// A finite f32 from a field, or why not.
fn parse_float(text: &str) -> std::result::Result<f32, String> {
    if text.is_empty() {
        return Err("is empty (a missing value?)".into());
    }
    match text.parse::<f32>() {
        Ok(value) if value.is_finite() => Ok(value),
        Ok(_) => Err(format!("`{text}` is not a finite number")),
        Err(_) => Err(format!("`{text}` is not a number")),
    }
}

/// How to find the target column.
#[derive(Clone, Copy, Debug)]
pub(crate) enum TargetColumnName<'a> {
    /// This one, or the last if `None`; an error if there is no such column.
    Required(Option<&'a str>),
    /// This one if the file has it; every column is a feature otherwise.
    IfPresent(Option<&'a str>),
}

/// Reads `path`: the header, then every row, the target from the column `target` names (with
/// [`TargetColumnName::IfPresent`] and no such column, `targets` is empty).
pub(crate) fn read_csv(path: &Path, target: TargetColumnName<'_>) -> Result<Table> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(file);
    let csv_error = |e: csv::Error| {
        let line = e.position().map(|p| format!("line {}: ", p.line()));
        data_error(path, format!("{}{e}", line.unwrap_or_default()))
    };
    let header: Vec<String> = reader
        .headers()
        .map_err(csv_error)?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let target_index = match target {
        TargetColumnName::Required(name) => Some(target_column(path, &header, name)?),
        TargetColumnName::IfPresent(name) => {
            name.and_then(|n| header.iter().position(|h| h == n.trim()))
        }
    };
    let width = header.len();
    let feature_width = width - usize::from(target_index.is_some());
    let mut features = Vec::new();
    let mut targets = TargetColumn::Integers(Vec::new());
    let mut lines = Vec::new();
    let mut record = csv::StringRecord::new();
    while reader.read_record(&mut record).map_err(csv_error)? {
        let line = record.position().map_or(0, |p| p.line());
        if record.len() != width {
            return Err(data_error(
                path,
                format!(
                    "line {line} has {} fields but the header names {width} columns",
                    record.len()
                ),
            ));
        }
        for (j, field) in record.iter().enumerate() {
            let field = field.trim();
            let parsed = if Some(j) == target_index {
                targets.push(field)
            } else {
                parse_float(field).map(|v| features.push(v))
            };
            parsed.map_err(|why| {
                data_error(path, format!("line {line}, column `{}`: {why}", header[j]))
            })?;
        }
        lines.push(line);
    }
    if lines.is_empty() {
        return Err(data_error(
            path,
            "has a header row but no data rows below it",
        ));
    }
    let features = Array2::from_shape_vec((lines.len(), feature_width), features)
        .map_err(|e| data_error(path, e.to_string()))?;
    let targets = match targets {
        TargetColumn::Integers(values) => RawTargets::Integers(values),
        TargetColumn::Floats(values) => RawTargets::Floats(
            Array2::from_shape_vec((values.len(), 1), values)
                .map_err(|e| data_error(path, e.to_string()))?,
        ),
    };
    Ok(Table {
        features,
        targets,
        lines,
        target_name: target_index.map_or_else(String::new, |i| header[i].clone()),
    })
}

/// The index of the target column, checking that at least one feature column remains.
fn target_column(path: &Path, header: &[String], target: Option<&str>) -> Result<usize> {
    if header.is_empty() || header.iter().all(String::is_empty) {
        return Err(data_error(
            path,
            "is empty: a header row naming the columns must come first",
        ));
    }
    let index = match target {
        None => header.len() - 1,
        Some(name) => header
            .iter()
            .position(|h| h == name.trim())
            .ok_or_else(|| {
                data_error(
                    path,
                    format!(
                        "has no column named `{name}`; its columns are: {}",
                        header.join(", ")
                    ),
                )
            })?,
    };
    if header.len() < 2 {
        return Err(data_error(
            path,
            format!(
                "has only the column `{}`; a feature column besides the target is needed",
                header[index]
            ),
        ));
    }
    Ok(index)
}
