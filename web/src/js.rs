//! Crossing into JavaScript: plain objects from JSON, errors with the library's text, integers
//! from JS numbers.

use wasm_bindgen::{JsError, JsValue};

/// A plain JS object (or array) with the content of `value`.
pub fn object(value: &serde_json::Value) -> Result<JsValue, JsError> {
    js_sys::JSON::parse(&value.to_string()).map_err(|_| JsError::new("internal: invalid JSON"))
}

/// A JS `Error` whose message is `error`'s text, as native prints it.
pub fn error(error: impl std::fmt::Display) -> JsError {
    JsError::new(&error.to_string())
}

/// `value`, a JS number, as a non-negative integer, or an error naming `what`.
pub fn whole(value: f64, what: &str) -> Result<u64, wgpu_mlp::Error> {
    if value.is_finite() && value >= 0.0 && value.fract() == 0.0 && value <= 2f64.powi(53) {
        Ok(value as u64)
    } else {
        Err(wgpu_mlp::Error::Invalid {
            what: what.into(),
            why: format!("{value} (must be a whole number, 0 or more)"),
        })
    }
}
