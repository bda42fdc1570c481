//! Procedural macros for `facturapi-sdk`.
//!
//! This crate is the home of the `#[endpoint]` attribute that turns an annotated
//! `async fn` signature into a rate-limit-aware call. The attribute lands together
//! with the SDK runtime it expands into; until then the crate exports nothing, so
//! that the workspace layout is final and `facturapi-sdk` can already depend on it.
