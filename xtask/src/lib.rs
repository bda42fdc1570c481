//! Project automation for facturapi-rs, run as `cargo xtask <command>`.
//!
//! - `import-spec [PATH]`: upstream OpenAPI file → `spec/facturapi.openapi.yaml` (facts only,
//!   normalized by the named rules of `rules`) and `spec/samples.json`; the errors page beside
//!   it → `spec/error_codes.json`.
//! - `codegen [--check]`: `spec/` → `spec/endpoints.toml` and `facturapi-sdk/src/generated/`.
//! - `classes`: the operation-class table.
//! - `bench-overhead`: SDK vs raw reqwest CPU cost per request, in instructions (callgrind).
//! - `public-api [--check]`: the SDK's public API, listed in `facturapi-sdk/public-api.txt`.
//!
//! It is a library too, so that its tests and the workspace's contract tests share the
//! spec readers.

pub mod bench;
pub mod codegen;
pub mod endpoints;
pub mod error_codes;
mod fixtures;
pub mod import;
mod names;
pub mod public_api;
mod resources;
mod rules;
mod samples;
mod tolerant;
pub mod yaml;

use std::path::PathBuf;

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}
