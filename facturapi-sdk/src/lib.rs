//! Typed, rate-limit-aware async SDK for the Facturapi API (Mexican e-invoicing, CFDI 4.0),
//! generated from Facturapi's OpenAPI spec.
//!
//! Every operation belongs to one of the five operation classes Facturapi limits separately
//! ([`Class`]); each class has its own concurrency limit and retry policy ([`ClassPolicy`]).
//! Each class learns the server's hidden rate and concurrency limits from its 429s (or keeps
//! fixed ones). A 429 is resent after its `Retry-After` (the server did not process it); a
//! failure that may have been processed is resent only when the operation's [`Resend`] rule
//! says that cannot act twice; every error says whether the call may have been processed.
//!
//! ```no_run
//! use facturapi_sdk::resources::invoices::{CreateInvoiceQuery, ListInvoicesQuery};
//! use facturapi_sdk::{Client, MaybePending, models};
//! use futures_util::StreamExt as _;
//!
//! # async fn run(body: models::InvoiceCreateInput) -> facturapi_sdk::Result<()> {
//! let client = Client::from_env()?; // FACTURAPI_KEY=sk_test_… (sk_live_…, sk_user_…)
//! let customer = client.customers().retrieve("58e93bd8e86eb318b0197456").await?;
//!
//! let created = client.invoices().create(&body, &CreateInvoiceQuery::default()).await?;
//! println!("idempotency key {}", created.idempotency_key); // filled in when the body had none
//! match created.value {
//!     MaybePending::Done(invoice) => println!("stamped: {invoice:?}"),
//!     MaybePending::Pending(invoice) => println!("{} pending: do not create it again", invoice.id),
//! }
//!
//! let query = ListInvoicesQuery::default().q("Dunder");
//! let mut all = std::pin::pin!(client.invoices().list_all(query));
//! while let Some(invoice) = all.next().await {
//!     let invoice = invoice?; // Error::PageCap after the API's 30-page cap: narrow the date range
//!     println!("{}", invoice.id);
//! }
//! # let _ = customer; Ok(()) }
//! ```
//!
//! Where things are: [`client`] (configuration and keys), [`limits`] (classes, policies,
//! learned limits), [`error`] (every failure, and whether the call may have been processed),
//! [`raw`] (the raw twin of every operation), [`pagination`], [`webhooks`], [`DateTime`]
//! (every model date), [`bulk`] (many creations, each once, resumable after a crash),
//! [`models`] and [`resources`] (generated from `spec/`), the [`endpoint`] attribute for your
//! own endpoints, and `sandbox` (cargo feature `sandbox`: a local Facturapi with hidden
//! limits and faults, for tests).
#![deny(missing_docs)]

// Lets `#[endpoint]` expansions (which name `::facturapi_sdk`) work inside this crate too.
extern crate self as facturapi_sdk;

mod adaptive;
pub mod bulk;
mod classify;
pub mod client;
mod datetime;
pub mod error;
#[cfg(feature = "redis")]
mod fleet;
mod generated;
mod governor;
pub mod limits;
pub mod pagination;
pub mod raw;
mod redact;
mod request;
#[cfg(feature = "sandbox")]
pub mod sandbox;
mod send;
pub mod webhooks;

pub use client::{ApiKey, AsClient, Client, ClientBuilder, KeyKind};
pub use datetime::{DateTime, DateTimeError, Moment};
pub use error::{
    ApiError, DecodeError, DetailCode, Error, ErrorCode, ErrorDetail, RateLimitedBecause, Result,
    Source,
};
#[cfg(feature = "redis")]
pub use fleet::SharedLimits;
pub use limits::{Class, ClassPolicy, Learned, Operation, operations};
pub use raw::{RawCall, RawResponse};
pub use request::{Multipart, QueryParams, Resend};
pub use send::{ByteStream, Created, LOG_ID_HEADER, MaybePending};

/// Request and response models, generated from `spec/facturapi.openapi.yaml`.
pub use generated::models;

/// Resource handles (`client.invoices()`, …) and their query parameter sets, generated from
/// `spec/endpoints.toml`.
pub use generated::resources;

/// Turns an `async fn` signature into a rate-limit-aware call, protected like the SDK's own
/// methods:
///
/// ```no_run
/// use facturapi_sdk::{Client, Result, endpoint, models};
///
/// #[endpoint(GET "/invoices/{invoice_id}", class = detail_read, keys = [test, live])]
/// async fn fetch_invoice(client: &Client, invoice_id: &str) -> Result<models::Invoice>;
/// # fn main() {}
/// ```
pub use facturapi_macros::endpoint;

/// Round-trip hooks for the project's own contract tests (internal `contract` feature).
#[cfg(feature = "contract")]
#[doc(hidden)]
pub use generated::contract as __contract;

/// What `#[endpoint]` expansions use. Not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::client::{AsClient, Client, KeyKind};
    pub use crate::error::{Error, Result};
    pub use crate::limits::Class;
    pub use crate::request::{
        Body, Multipart, OperationInfo, PathBuilder, Query, QueryParams, Request, Resend,
    };
    pub use crate::send::{
        ByteStream, Created, MaybePending, Response, decode, send, send_streaming,
    };
    pub use bytes::Bytes;
    pub use reqwest::Method;
}
