//! Training curves as a self-contained SVG: loss (training and test) and test accuracy per epoch.

use std::fmt::Write;

/// One epoch's numbers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochPoint {
    /// 1-based.
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f32,
    /// Test loss.
    pub test_loss: f32,
    /// Test accuracy in [0, 1].
    pub test_accuracy: f64,
}

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 360.0;
const MARGIN: f64 = 50.0;
const PANEL: f64 = (WIDTH - 3.0 * MARGIN) / 2.0;

/// A polyline of `(x, y)` data points scaled into the panel whose left edge is `left`.
fn polyline(
    points: &[(f64, f64)],
    left: f64,
    x_max: f64,
    (y_min, y_max): (f64, f64),
    color: &str,
) -> String {
    let span = (y_max - y_min).max(1e-12);
    let coordinates: Vec<String> = points
        .iter()
        .map(|&(x, y)| {
            let px = left + (x - 1.0) / (x_max - 1.0).max(1.0) * PANEL;
            let py = HEIGHT - MARGIN - (y - y_min) / span * (HEIGHT - 2.0 * MARGIN);
            format!("{px:.1},{py:.1}")
        })
        .collect();
    format!(
        r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
        coordinates.join(" ")
    )
}

fn axes(svg: &mut String, left: f64, title: &str, (y_min, y_max): (f64, f64), epochs: usize) {
    let bottom = HEIGHT - MARGIN;
    let _ = write!(
        svg,
        r##"<rect x="{left}" y="{MARGIN}" width="{PANEL}" height="{}" fill="none" stroke="#888"/><text x="{}" y="{}" text-anchor="middle" font-size="15">{title}</text><text x="{}" y="{}" text-anchor="end" font-size="11">{y_max:.4}</text><text x="{}" y="{bottom}" text-anchor="end" font-size="11">{y_min:.4}</text><text x="{left}" y="{}" font-size="11">epoch 1</text><text x="{}" y="{}" text-anchor="end" font-size="11">epoch {epochs}</text>"##,
        HEIGHT - 2.0 * MARGIN,
        left + PANEL / 2.0,
        MARGIN - 12.0,
        left - 4.0,
        MARGIN + 10.0,
        left - 4.0,
        bottom + 16.0,
        left + PANEL,
        bottom + 16.0
    );
}

fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo.is_finite() {
        (lo, if hi > lo { hi } else { lo + 1.0 })
    } else {
        (0.0, 1.0)
    }
}

/// The SVG document for `history` (which may be empty).
pub fn training_curves_svg(history: &[EpochPoint]) -> String {
    let epochs = history.len().max(1);
    let x_max = epochs as f64;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>"#
    );
    let loss_range = range(
        history
            .iter()
            .flat_map(|p| [f64::from(p.train_loss), f64::from(p.test_loss)]),
    );
    let accuracy_range = range(history.iter().map(|p| p.test_accuracy * 100.0));
    axes(
        &mut svg,
        MARGIN,
        "loss (blue: train, orange: test)",
        loss_range,
        epochs,
    );
    axes(
        &mut svg,
        2.0 * MARGIN + PANEL,
        "test accuracy %",
        accuracy_range,
        epochs,
    );
    let train: Vec<(f64, f64)> = history
        .iter()
        .map(|p| (p.epoch as f64, f64::from(p.train_loss)))
        .collect();
    let test: Vec<(f64, f64)> = history
        .iter()
        .map(|p| (p.epoch as f64, f64::from(p.test_loss)))
        .collect();
    let accuracy: Vec<(f64, f64)> = history
        .iter()
        .map(|p| (p.epoch as f64, p.test_accuracy * 100.0))
        .collect();
    svg.push_str(&polyline(&train, MARGIN, x_max, loss_range, "#1f77b4"));
    svg.push_str(&polyline(&test, MARGIN, x_max, loss_range, "#ff7f0e"));
    svg.push_str(&polyline(
        &accuracy,
        2.0 * MARGIN + PANEL,
        x_max,
        accuracy_range,
        "#2ca02c",
    ));
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_one_point_per_epoch_in_each_curve() {
        let history: Vec<EpochPoint> = (1..=3)
            .map(|e| EpochPoint {
                epoch: e,
                train_loss: 1.0 / e as f32,
                test_loss: 1.2 / e as f32,
                test_accuracy: 0.8 + 0.05 * e as f64,
            })
            .collect();
        let svg = training_curves_svg(&history);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 3);
        let first = svg
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(first.split(' ').count(), 3);
        assert!(training_curves_svg(&[]).contains("</svg>"));
    }
}
