//! The `#[endpoint]` attribute of `facturapi-sdk`.
//!
//! It turns a bodiless `async fn` signature into a call through the SDK's one send path:
//! the class gate and semaphore, the class backoff, `Retry-After`, safe retries, typed
//! errors, tracing and metrics. The SDK's 110 generated methods use it, written exactly as
//! you would write your own; use it as `facturapi_sdk::endpoint` (its docs carry a compiled
//! example), in the form
//! `#[endpoint(GET "/invoices/{invoice_id}", class = detail_read, keys = [test, live])]` on
//! `async fn fetch_invoice(client: &Client, invoice_id: &str) -> Result<models::Invoice>;`.
//!
//! Arguments, after the method and path template:
//! - `class = detail_read | list_read | create | write | heavy_write` (required);
//! - `operation_id = "…"` (default: the function name);
//! - `keys = [test, live, user]`: key kinds that may call it (default: any);
//! - `body = arg`: send `arg` as JSON; `multipart = arg`: send a `Multipart` form;
//! - `query = arg`: `arg` implements `QueryParams`; single values use `#[query]` on the
//!   argument (`#[query(name = "async")]`, `#[query(explode = false)]`, `#[query(deep_object)]`);
//! - `idempotency_key`: the JSON body carries an `idempotency_key` (filled with a UUID when
//!   empty) and may be resent after a timeout or a 5xx; the return type is `Result<Created<T>>`;
//! - `retry = idempotent | not_after_send`: whether a request that may have reached the server
//!   (a timeout, a dropped connection, a 5xx, a body cut short) may be sent again. Default:
//!   `idempotent` for GET, PUT and DELETE, `not_after_send` otherwise. Say `not_after_send` for
//!   a PUT that acts anew each time (e.g. mints a secret), `idempotent` for a POST that
//!   changes nothing. A 429 and a connection that never opened are resent whatever the rule.
//!
//! Every `{placeholder}` of the path needs an argument of that name (`impl AsRef<str>`,
//! percent-encoded). The client comes from `&self` (a type implementing `AsClient`) or an
//! argument named `client`. The return type picks the decoding: `Result<()>`, `Result<Bytes>`,
//! `Result<Option<Bytes>>` (204 → `None`), `Result<ByteStream>`, `Result<MaybePending<T, P>>`
//! (202 → `Pending`), `Result<Created<T>>`, or `Result<T>` for JSON.

mod ast;
mod expand;
mod parse;
mod valid;

use proc_macro::TokenStream;

/// Turns an `async fn` signature into a rate-limit-aware Facturapi call. See the crate docs.
#[proc_macro_attribute]
pub fn endpoint(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::endpoint(args.into(), item.into()).into()
}

#[cfg(test)]
mod tests;
