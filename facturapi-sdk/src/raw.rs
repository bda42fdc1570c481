//! The raw twin of every operation: the same class protection, retries, idempotency key and
//! typed errors as the typed method, but the answer is JSON (or bytes), not a model. For when
//! a model is narrower than what the API sent ([`Error::Decode`]) and you cannot wait for a
//! new version.
//!
//! ```no_run
//! # async fn run(client: facturapi_sdk::Client) -> facturapi_sdk::Result<()> {
//! let invoice: serde_json::Value = client
//!     .raw("getInvoice")?
//!     .path_param("invoice_id", "5f1c…")
//!     .json()
//!     .await?;
//! # let _ = invoice; Ok(()) }
//! ```

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use crate::Client;
use crate::error::{Error, Result};
use crate::request::{Body, OperationInfo, PathBuilder, Query, Request};
use crate::send::Response;

/// One raw call being built: [`Client::raw`].
#[derive(Debug)]
#[must_use = "a raw call does nothing until it is sent"]
pub struct RawCall<'a> {
    client: &'a Client,
    op: &'static OperationInfo,
    params: Vec<(String, String)>,
    query: Query,
    body: Body,
    error: Option<Error>,
}

/// The answer of a raw call: the status, log id, idempotency key and the whole body.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RawResponse {
    /// HTTP status (2xx).
    pub status: u16,
    /// `X-Facturapi-Log-Id`.
    pub log_id: Option<String>,
    /// The idempotency key the request carried (filled in for keyed creations).
    pub idempotency_key: Option<String>,
    /// The body.
    pub body: Bytes,
}

impl Client {
    /// The raw twin of the operation `operation_id` (see [`crate::operations`]): same class,
    /// resend rule, key check and errors as its typed method, with JSON in and out.
    pub fn raw(&self, operation_id: &str) -> Result<RawCall<'_>> {
        let op = crate::generated::operations::OPERATION_INFOS
            .iter()
            .find(|op| op.operation_id == operation_id)
            .ok_or_else(|| Error::InvalidInput {
                operation_id: "raw",
                message: format!("no operation {operation_id:?} in the spec"),
            })?;
        Ok(RawCall {
            client: self,
            op,
            params: Vec::new(),
            query: Query::new(op),
            body: Body::None,
            error: None,
        })
    }
}

impl RawCall<'_> {
    /// Sets the path parameter `name` (`invoice_id` for `/invoices/{invoice_id}`).
    pub fn path_param(mut self, name: &str, value: impl std::fmt::Display) -> Self {
        self.params.push((name.to_owned(), value.to_string()));
        self
    }

    /// Adds a query parameter (form style; a list is repeated; an object is sent as
    /// `name[key]=value`, as the `date` filter is).
    pub fn query<T: Serialize + ?Sized>(mut self, name: &str, value: &T) -> Self {
        let result = match serde_json::to_value(value) {
            Ok(Value::Object(_)) => self.query.deep_object(name, value),
            Ok(_) => self.query.form(name, value, true),
            Err(e) => Err(Error::InvalidInput {
                operation_id: self.op.operation_id,
                message: format!("query parameter `{name}`: {e}"),
            }),
        };
        if let Err(e) = result {
            self.error.get_or_insert(e);
        }
        self
    }

    /// Sends `body` as the JSON body. For a keyed creation, an `idempotency_key` is filled in
    /// when the body has none, as the typed method does.
    pub fn body<T: Serialize + ?Sized>(mut self, body: &T) -> Self {
        match Body::json(self.op, body) {
            Ok(body) => self.body = body,
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
        self
    }

    /// Sends the call; the answer's body whole.
    pub async fn send(self) -> Result<RawResponse> {
        let response = self.send_inner().await?;
        let (status, log_id) = (response.status(), response.log_id().map(str::to_owned));
        let idempotency_key = response.idempotency_key().map(str::to_owned);
        let body = response.bytes().await?;
        Ok(RawResponse {
            status,
            log_id,
            idempotency_key,
            body,
        })
    }

    /// Sends the call; the answer as JSON (`null` for an empty body).
    pub async fn json(self) -> Result<Value> {
        let response = self.send_inner().await?;
        if response.status() == 204 {
            return Ok(Value::Null);
        }
        response.json().await
    }

    async fn send_inner(self) -> Result<Response> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let op = self.op;
        let path = build_path(op, &self.params)?;
        let request = Request {
            path,
            query: self.query,
            body: self.body,
        };
        crate::send::send(self.client, op, request).await
    }
}

/// The template's literal parts and the encoded parameters, each used exactly once.
fn build_path(op: &'static OperationInfo, params: &[(String, String)]) -> Result<String> {
    let invalid = |message: String| Error::InvalidInput {
        operation_id: op.operation_id,
        message,
    };
    let mut builder = PathBuilder::new(op);
    let mut rest = op.path_template;
    let mut used = 0;
    while let Some(start) = rest.find('{') {
        let end = rest[start..]
            .find('}')
            .map(|e| start + e)
            .ok_or_else(|| invalid("malformed path template".into()))?;
        builder = builder.literal(&rest[..start]);
        let name = &rest[start + 1..end];
        let (_, value) = params
            .iter()
            .find(|(n, _)| n == name)
            .ok_or_else(|| invalid(format!("missing path parameter `{name}`")))?;
        builder = builder.param(name, value)?;
        used += 1;
        rest = &rest[end + 1..];
    }
    builder = builder.literal(rest);
    if used != params.len() {
        let unknown: Vec<&str> = params
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| !op.path_template.contains(&format!("{{{n}}}")))
            .collect();
        return Err(invalid(format!(
            "path parameters not in {}: {unknown:?}",
            op.path_template
        )));
    }
    Ok(builder.finish())
}
