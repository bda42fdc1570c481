//! Typed, rate-limit-aware async SDK for the Facturapi API, generated from its OpenAPI spec.
#![deny(missing_docs)]

mod generated;

/// Request and response models, generated from `spec/facturapi.openapi.yaml`.
pub use generated::models;

#[doc(hidden)]
pub use generated::contract as __contract;
