//! What a generated (or custom) endpoint method hands to the send path: the operation's
//! description, the encoded path and query, and the body.

use bytes::Bytes;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;
use serde_json::Value;

use crate::client::KeyKind;
use crate::error::{Error, Result};
use crate::limits::Class;

/// When an operation may be sent again after an attempt that may have reached the server (a
/// timeout, a dropped connection, a body cut short, a 5xx). A 429 and a connection that never
/// opened are resent whatever the rule: nothing was processed. Each operation has its own
/// rule (`spec/endpoints.toml`, exceptions in `spec/overrides.toml`), not one per HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resend {
    /// Repeating it changes nothing more than the first time (most GET, PUT and DELETE).
    Idempotent,
    /// A creation whose JSON body carries an `idempotency_key` (filled in when empty and kept
    /// across attempts): a resend returns the document the first attempt made.
    Keyed,
    /// Repeating it may act twice (most POST actions; a PUT that mints a new secret): never
    /// sent again once an attempt may have reached the server.
    NotAfterSend,
}

impl Resend {
    /// `idempotent`, `keyed` or `not_after_send`, as in `spec/endpoints.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Resend::Idempotent => "idempotent",
            Resend::Keyed => "keyed",
            Resend::NotAfterSend => "not_after_send",
        }
    }
}

/// The static description of an operation.
#[derive(Debug)]
pub struct OperationInfo {
    /// The spec's operationId (or your own name for a custom endpoint).
    pub operation_id: &'static str,
    /// Its class.
    pub class: Class,
    /// HTTP method.
    pub method: reqwest::Method,
    /// Path template, e.g. `/invoices/{invoice_id}`.
    pub path_template: &'static str,
    /// Key kinds that may call it; empty means any.
    pub keys: &'static [KeyKind],
    /// Its resend rule.
    pub retry: Resend,
}

/// Path segments are encoded so that a value can never change the route: everything but
/// unreserved characters is percent-encoded (`/`, `?`, `#`, `%`, spaces…).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Builds a path from a template's literal parts and encoded parameters.
#[derive(Debug)]
pub struct PathBuilder {
    operation_id: &'static str,
    path: String,
}

impl PathBuilder {
    /// An empty path for `op`.
    pub fn new(op: &OperationInfo) -> Self {
        Self {
            operation_id: op.operation_id,
            path: String::with_capacity(op.path_template.len() + 24),
        }
    }

    /// Appends a literal part of the template.
    pub fn literal(mut self, text: &str) -> Self {
        self.path.push_str(text);
        self
    }

    /// Appends one encoded path parameter. Empty, `.` and `..` values are refused: they
    /// would address another resource even when encoded.
    pub fn param(mut self, name: &str, value: impl std::fmt::Display) -> Result<Self> {
        let value = value.to_string();
        let value = value.as_str();
        if value.is_empty() || value == "." || value == ".." {
            return Err(Error::InvalidInput {
                operation_id: self.operation_id,
                message: format!("path parameter `{name}` cannot be {value:?}"),
            });
        }
        self.path.extend(utf8_percent_encode(value, SEGMENT));
        Ok(self)
    }

    /// The path.
    pub fn finish(self) -> String {
        self.path
    }
}

/// Query parameters, encoded as the spec's styles say.
#[derive(Debug, Default, Clone)]
pub struct Query {
    pub(crate) pairs: Vec<(String, String)>,
    operation_id: &'static str,
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Query {
    /// An empty query for `op`.
    pub fn new(op: &OperationInfo) -> Self {
        Self {
            pairs: Vec::new(),
            operation_id: op.operation_id,
        }
    }

    fn to_value<T: Serialize + ?Sized>(&self, name: &str, value: &T) -> Result<Value> {
        serde_json::to_value(value).map_err(|e| Error::InvalidInput {
            operation_id: self.operation_id,
            message: format!("query parameter `{name}` cannot be encoded: {e}"),
        })
    }

    fn unsupported(&self, name: &str, what: &str) -> Error {
        Error::InvalidInput {
            operation_id: self.operation_id,
            message: format!("query parameter `{name}`: {what}"),
        }
    }

    /// `style: form`: `name=value`; `None` is omitted; a list repeats the name (`explode`)
    /// or joins its values with commas.
    pub fn form<T: Serialize + ?Sized>(
        &mut self,
        name: &str,
        value: &T,
        explode: bool,
    ) -> Result<()> {
        match self.to_value(name, value)? {
            Value::Null => {}
            Value::Array(items) => {
                let values = items
                    .iter()
                    .map(|item| {
                        scalar(item)
                            .ok_or_else(|| self.unsupported(name, "list items must be scalars"))
                    })
                    .collect::<Result<Vec<_>>>()?;
                if explode {
                    self.pairs
                        .extend(values.into_iter().map(|v| (name.to_owned(), v)));
                } else if !values.is_empty() {
                    self.pairs.push((name.to_owned(), values.join(",")));
                }
            }
            Value::Object(_) => return Err(self.unsupported(name, "objects need style deepObject")),
            other => self
                .pairs
                .extend(scalar(&other).map(|v| (name.to_owned(), v))),
        }
        Ok(())
    }

    /// `style: deepObject`: `name[key]=value` for each set member (`date[gte]=…`).
    pub fn deep_object<T: Serialize + ?Sized>(&mut self, name: &str, value: &T) -> Result<()> {
        match self.to_value(name, value)? {
            Value::Null => Ok(()),
            Value::Object(members) => {
                for (key, member) in members {
                    if member.is_null() {
                        continue;
                    }
                    let text = scalar(&member).ok_or_else(|| {
                        self.unsupported(name, "deepObject members must be scalars")
                    })?;
                    self.pairs.push((format!("{name}[{key}]"), text));
                }
                Ok(())
            }
            _ => Err(self.unsupported(name, "deepObject values must be objects")),
        }
    }

    /// The encoded pairs, in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }
}

/// A set of query parameters that encodes itself (the generated `…Query` structs).
pub trait QueryParams {
    /// Appends the set members to `query`.
    fn write_query(&self, query: &mut Query) -> Result<()>;
}

impl<T: QueryParams + ?Sized> QueryParams for &T {
    fn write_query(&self, query: &mut Query) -> Result<()> {
        (**self).write_query(query)
    }
}

/// A multipart/form-data body: the organization certificate, FIEL and logo uploads.
#[derive(Debug, Clone, Default)]
pub struct Multipart {
    pub(crate) parts: Vec<Part>,
}

#[derive(Debug, Clone)]
pub(crate) struct Part {
    pub(crate) name: String,
    pub(crate) content: Bytes,
    pub(crate) file_name: Option<String>,
}

impl Multipart {
    /// An empty form.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a text field (e.g. the certificate `password`).
    pub fn text(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.parts.push(Part {
            name: name.into(),
            content: Bytes::from(value.into()),
            file_name: None,
        });
        self
    }

    /// Adds a file field from bytes.
    pub fn bytes(
        mut self,
        name: impl Into<String>,
        file_name: impl Into<String>,
        content: impl Into<Bytes>,
    ) -> Self {
        self.parts.push(Part {
            name: name.into(),
            content: content.into(),
            file_name: Some(file_name.into()),
        });
        self
    }

    /// Adds a file field read from `path`.
    pub async fn file(
        self,
        name: impl Into<String>,
        path: impl AsRef<std::path::Path>,
    ) -> Result<Self> {
        let path = path.as_ref();
        let content = tokio::fs::read(path)
            .await
            .map_err(|e| Error::InvalidInput {
                operation_id: "multipart",
                message: format!("cannot read {}: {e}", path.display()),
            })?;
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "file".into());
        Ok(self.bytes(name, file_name, content))
    }

    /// Names of the fields, in order.
    pub fn field_names(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().map(|p| p.name.as_str())
    }

    /// A fresh reqwest form (a form is consumed by sending, and retries resend it).
    pub(crate) fn to_form(&self) -> reqwest::multipart::Form {
        self.parts
            .iter()
            .fold(reqwest::multipart::Form::new(), |form, part| {
                let body =
                    reqwest::multipart::Part::stream(reqwest::Body::from(part.content.clone()));
                let body = match &part.file_name {
                    Some(file_name) => body.file_name(file_name.clone()),
                    None => body,
                };
                form.part(part.name.clone(), body)
            })
    }
}

/// A request body.
#[derive(Debug, Clone)]
pub enum Body {
    /// No body.
    None,
    /// A JSON value (kept as a value so the idempotency key can be filled in once).
    Json(Value),
    /// A multipart form.
    Multipart(Multipart),
}

impl Body {
    /// A multipart body from a form or a reference to one.
    pub fn multipart<M: std::borrow::Borrow<Multipart>>(form: &M) -> Self {
        Body::Multipart(form.borrow().clone())
    }

    /// Serializes `value` as a JSON body.
    pub fn json<T: Serialize + ?Sized>(op: &OperationInfo, value: &T) -> Result<Self> {
        serde_json::to_value(value)
            .map(Body::Json)
            .map_err(|e| Error::InvalidInput {
                operation_id: op.operation_id,
                message: format!("the body cannot be serialized: {e}"),
            })
    }

    /// Puts a fresh UUID in an empty or missing `idempotency_key` of a JSON object body, and
    /// returns the key the body carries.
    pub(crate) fn ensure_idempotency_key(&mut self) -> Option<String> {
        let Body::Json(Value::Object(map)) = self else {
            return None;
        };
        match map.get("idempotency_key") {
            Some(Value::String(key)) if !key.is_empty() => Some(key.clone()),
            _ => {
                let key = uuid::Uuid::new_v4().to_string();
                map.insert("idempotency_key".into(), Value::String(key.clone()));
                Some(key)
            }
        }
    }

    /// The idempotency key a JSON object body carries, if any.
    pub(crate) fn idempotency_key(&self) -> Option<String> {
        match self {
            Body::Json(Value::Object(map)) => map
                .get("idempotency_key")
                .and_then(Value::as_str)
                .map(str::to_owned),
            _ => None,
        }
    }
}

/// One call, ready for the send path.
#[derive(Debug, Clone)]
pub struct Request {
    /// Encoded path, relative to the base URL.
    pub path: String,
    /// Query parameters.
    pub query: Query,
    /// Body.
    pub body: Body,
}

#[cfg(test)]
mod tests {
    #[test]
    fn idempotency_key_is_filled_once_and_kept() {
        let mut body = Body::Json(serde_json::json!({"customer": "c"}));
        let key = body.ensure_idempotency_key().unwrap();
        assert_eq!(body.ensure_idempotency_key().unwrap(), key);
        let mut own = Body::Json(serde_json::json!({"idempotency_key": "mine"}));
        assert_eq!(own.ensure_idempotency_key().as_deref(), Some("mine"));
        let mut empty = Body::Json(serde_json::json!({"idempotency_key": ""}));
        assert_ne!(empty.ensure_idempotency_key().as_deref(), Some(""));
        assert_eq!(own.idempotency_key().as_deref(), Some("mine"));
        assert_eq!(Body::None.idempotency_key(), None);
    }

    use super::*;

    const OP: OperationInfo = OperationInfo {
        operation_id: "test",
        class: Class::DetailRead,
        method: reqwest::Method::GET,
        path_template: "/x/{id}",
        keys: &[],
        retry: Resend::Idempotent,
    };

    #[test]
    fn path_parameters_cannot_change_the_route() {
        let path = |v: &str| {
            PathBuilder::new(&OP)
                .literal("/invoices/")
                .param("id", v)
                .map(PathBuilder::finish)
        };
        assert_eq!(path("abc123").unwrap(), "/invoices/abc123");
        assert_eq!(path("a/b?c#d").unwrap(), "/invoices/a%2Fb%3Fc%23d");
        assert_eq!(path("../customers").unwrap(), "/invoices/..%2Fcustomers");
        assert_eq!(path("a%2Fb c").unwrap(), "/invoices/a%252Fb%20c");
        for bad in ["", ".", ".."] {
            assert!(
                matches!(path(bad), Err(Error::InvalidInput { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn query_styles() {
        let mut q = Query::new(&OP);
        q.form("q", "Dunder Mifflin", true).unwrap();
        q.form("page", &Some(2), true).unwrap();
        q.form("limit", &None::<i64>, true).unwrap();
        q.form("invoice_types", &["I", "E"], false).unwrap();
        q.form("status", &["draft", "valid"], true).unwrap();
        q.deep_object(
            "date",
            &serde_json::json!({"gte": "2021-01-01", "lt": null}),
        )
        .unwrap();
        let pairs: Vec<(&str, &str)> = q
            .pairs()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("q", "Dunder Mifflin"),
                ("page", "2"),
                ("invoice_types", "I,E"),
                ("status", "draft"),
                ("status", "valid"),
                ("date[gte]", "2021-01-01")
            ]
        );
        assert!(q.form("date", &serde_json::json!({"a": 1}), true).is_err());
    }
}
