//! The SDK's error type. Every variant says which operation failed and whether the request
//! may have reached the server (and so may have been processed).

use std::time::Duration;

use crate::KeyKind;
pub use crate::generated::error_codes::{DetailCode, ErrorCode};

/// Result alias of the SDK.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where an error detail comes from (`errors[].source`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// Facturapi's own validation.
    Facturapi,
    /// SAT (the tax authority).
    Sat,
    /// The PAC (stamping provider).
    Pac,
    /// Anything else the server sent.
    Other(String),
}

impl From<&str> for Source {
    fn from(s: &str) -> Self {
        match s {
            "facturapi" => Source::Facturapi,
            "sat" => Source::Sat,
            "pac" => Source::Pac,
            other => Source::Other(other.to_owned()),
        }
    }
}

/// One entry of an error body's `errors[]`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ErrorDetail {
    /// Human message (Spanish today; never branch on it).
    pub message: String,
    /// Subcode: a [`DetailCode`] when `source` is Facturapi, else the external system's code.
    pub code: Option<String>,
    /// `body`, `query`, `params` or `files`.
    pub location: Option<String>,
    /// Path of the field, e.g. `customer.email`.
    pub path: Option<String>,
    /// Who reported it.
    pub source: Option<Source>,
}

impl ErrorDetail {
    /// The subcode as a [`DetailCode`], when Facturapi is the source.
    pub fn detail_code(&self) -> Option<DetailCode> {
        match (&self.source, &self.code) {
            (Some(Source::Facturapi) | None, Some(code)) => Some(DetailCode::from(code.as_str())),
            _ => None,
        }
    }
}

/// An error answered by the API (a non-2xx status with, usually, a Facturapi error body).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ApiError {
    /// The operation that failed.
    pub operation_id: &'static str,
    /// HTTP status.
    pub status: u16,
    /// Root code (`code`); [`ErrorCode::Unknown`] for codes this version does not know, or
    /// `unknown` when the body had none.
    pub code: ErrorCode,
    /// Human message (Spanish today; never branch on it).
    pub message: String,
    /// Path of the field the error is about.
    pub path: Option<String>,
    /// Location of the data the error is about.
    pub location: Option<String>,
    /// Details.
    pub errors: Vec<ErrorDetail>,
    /// `X-Facturapi-Log-Id` of the response.
    pub log_id: Option<String>,
    /// `Retry-After` of the response, when valid.
    pub retry_after: Option<Duration>,
    /// The idempotency key the request carried, if any.
    pub idempotency_key: Option<String>,
}

/// Everything that can go wrong with a call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The API answered with an error status.
    #[error("{operation}: HTTP {status} {code}: {message}{log}", operation = .0.operation_id, status = .0.status, code = .0.code, message = .0.message, log = log_suffix(.0.log_id.as_deref()))]
    Api(Box<ApiError>),

    /// Still rate limited (429) when the class deadline passed. The server processed none of
    /// the attempts: resending later is safe.
    #[error("{operation_id}: rate limited for {waited:?} over {attempts} attempts; deadline reached{}", log_suffix(.log_id.as_deref()))]
    RateLimited {
        /// The operation.
        operation_id: &'static str,
        /// Attempts made.
        attempts: u32,
        /// Time spent.
        waited: Duration,
        /// The last `Retry-After`.
        retry_after: Option<Duration>,
        /// The last response's log id.
        log_id: Option<String>,
        /// The idempotency key the request carried, if any.
        idempotency_key: Option<String>,
    },

    /// No response in time.
    #[error("{operation_id}: timed out after {attempts} attempt(s){}", if *.may_have_been_sent { "; the request may have been processed" } else { "" })]
    Timeout {
        /// The operation.
        operation_id: &'static str,
        /// Attempts made.
        attempts: u32,
        /// Whether the last attempt may have reached the server (and been processed).
        may_have_been_sent: bool,
        /// The idempotency key the request carried, if any: resend with it to be safe.
        idempotency_key: Option<String>,
    },

    /// The connection failed or dropped.
    #[error("{operation_id}: transport error after {attempts} attempt(s){}: {source}", if *.may_have_been_sent { " (the request may have been processed)" } else { "" })]
    Transport {
        /// The operation.
        operation_id: &'static str,
        /// Attempts made.
        attempts: u32,
        /// Whether the last attempt may have reached the server (and been processed).
        may_have_been_sent: bool,
        /// The idempotency key the request carried, if any: resend with it to be safe.
        idempotency_key: Option<String>,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },

    /// A 2xx body that does not match its model.
    #[error("{operation_id}: cannot decode the HTTP {status} body ({source}); body starts {snippet:?}{}", log_suffix(.log_id.as_deref()))]
    Decode {
        /// The operation.
        operation_id: &'static str,
        /// HTTP status.
        status: u16,
        /// The response's log id.
        log_id: Option<String>,
        /// The first bytes of the body.
        snippet: String,
        /// The idempotency key the request carried: the document may exist, so resend
        /// with this key to get it rather than a second one.
        idempotency_key: Option<String>,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },

    /// The call was refused before anything was sent.
    #[error("{operation_id}: invalid input: {message}")]
    InvalidInput {
        /// The operation (or `"client"` for builder errors).
        operation_id: &'static str,
        /// What is wrong.
        message: String,
    },

    /// The client's key kind cannot call this operation (refused before sending).
    #[error("{operation_id}: a {key_kind} key cannot call this operation (accepted: {accepted:?})")]
    KeyKindNotAccepted {
        /// The operation.
        operation_id: &'static str,
        /// The client's key kind.
        key_kind: KeyKind,
        /// The key kinds the operation accepts.
        accepted: &'static [KeyKind],
    },

    /// `list_all` reached the API's page cap (30 pages) with results left: narrow the query
    /// (e.g. a `date` range) to read the rest.
    #[error(
        "{operation_id}: stopped at the API's page cap ({pages} pages, {fetched} of {total_results} results): narrow the query, e.g. with a date range"
    )]
    PageCap {
        /// The operation.
        operation_id: &'static str,
        /// Pages read.
        pages: i64,
        /// Items yielded.
        fetched: u64,
        /// Results the API reported.
        total_results: i64,
    },
}

fn log_suffix(log_id: Option<&str>) -> String {
    log_id
        .map(|id| format!(" [log id {id}]"))
        .unwrap_or_default()
}

impl Error {
    /// `X-Facturapi-Log-Id` of the response behind the error, when there was one.
    pub fn log_id(&self) -> Option<&str> {
        match self {
            Error::Api(e) => e.log_id.as_deref(),
            Error::RateLimited { log_id, .. } | Error::Decode { log_id, .. } => log_id.as_deref(),
            _ => None,
        }
    }

    /// The root code, for API errors.
    pub fn code(&self) -> Option<&ErrorCode> {
        match self {
            Error::Api(e) => Some(&e.code),
            _ => None,
        }
    }

    /// HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api(e) => Some(e.status),
            Error::Decode { status, .. } => Some(*status),
            Error::RateLimited { .. } => Some(429),
            _ => None,
        }
    }

    /// The idempotency key the request carried: resend with the same key to be safe.
    pub fn idempotency_key(&self) -> Option<&str> {
        match self {
            Error::Api(e) => e.idempotency_key.as_deref(),
            Error::RateLimited {
                idempotency_key, ..
            }
            | Error::Timeout {
                idempotency_key, ..
            }
            | Error::Transport {
                idempotency_key, ..
            }
            | Error::Decode {
                idempotency_key, ..
            } => idempotency_key.as_deref(),
            _ => None,
        }
    }

    /// Whether the server may have processed the request. `false` means it certainly did
    /// not (refused before sending, a 429, a connection that never opened); `true` for
    /// success-status decode errors, 5xx answers and timeouts or drops after sending.
    pub fn may_have_been_processed(&self) -> bool {
        match self {
            Error::Api(e) => e.status >= 500,
            Error::Timeout {
                may_have_been_sent, ..
            }
            | Error::Transport {
                may_have_been_sent, ..
            } => *may_have_been_sent,
            Error::Decode { .. } => true,
            Error::RateLimited { .. }
            | Error::InvalidInput { .. }
            | Error::KeyKindNotAccepted { .. }
            | Error::PageCap { .. } => false,
        }
    }
}
