//! How commands report an evaluation: the loss with accuracy for classification, or RMSE (in the
//! targets' own units) and R² for regression, as a line of text or as JSON fields.

use serde_json::json;

use wgpu_mlp::train::Evaluation;

use crate::dataset::Preparation;

/// The scores of `evaluation` under `prefix` (`val_`, `test_`): accuracy, or RMSE (in the
/// targets' own units) and R².
pub fn scores_json(
    prefix: &str,
    evaluation: &Evaluation,
    preparation: &Preparation,
) -> serde_json::Map<String, serde_json::Value> {
    let mut map = serde_json::Map::new();
    map.insert(format!("{prefix}loss"), json!(evaluation.loss));
    match evaluation.accuracy() {
        Some(accuracy) => {
            map.insert(format!("{prefix}accuracy"), json!(accuracy));
        }
        None => {
            let rmse = evaluation.rmse(preparation.target_scale());
            map.insert(format!("{prefix}rmse"), json!(rmse));
            map.insert(format!("{prefix}r2"), json!(evaluation.r2()));
        }
    }
    map
}

/// `name loss 0.12345  name accuracy 97.10%`, or RMSE and R² for regression.
pub fn scores_text(name: &str, evaluation: &Evaluation, preparation: &Preparation) -> String {
    match evaluation.accuracy() {
        Some(accuracy) => format!(
            "{name} loss {:.5}  {name} accuracy {:6.2}%",
            evaluation.loss,
            accuracy * 100.0
        ),
        None => format!(
            "{name} loss {:.5}  {name} RMSE {:.5}  {name} R² {:.4}",
            evaluation.loss,
            evaluation
                .rmse(preparation.target_scale())
                .unwrap_or(f64::NAN),
            evaluation.r2().unwrap_or(f64::NAN)
        ),
    }
}
