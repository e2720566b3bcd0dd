//! The wasm module of the browser page: wgpu-mlp's GPU trainer, checks and model files behind a
//! small JavaScript API, documented in `web/API.md` (the contract with the page).
//!
//! Every class and function here is a thin layer over the library: values cross to JavaScript as
//! plain objects (built as JSON and parsed, [`js::object`]), and every failure is a JS `Error`
//! whose message is the library's error text, the same as the native CLI prints
//! ([`js::error`]). Nothing blocks: whatever reads from the GPU returns a promise.
//!
//! The crate is empty except on wasm32; `scripts/build-web.sh` builds it.

#![cfg(target_arch = "wasm32")]

mod checks;
mod data;
mod device;
mod js;
mod session;
mod settings;

pub use checks::{bench, gradcheck, run_checks};
pub use data::Data;
pub use device::Gpu;
pub use session::Session;
