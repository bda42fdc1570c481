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
///
/// Secrets echoed by the server (the client's key, any `sk_…` key, `Bearer`/`Basic`
/// credentials) are redacted from every text field.
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
    /// Human message (Spanish today; never branch on it). For a body that is not a Facturapi
    /// error (a proxy's page, other JSON), its text. `Display` shows at most
    /// [`MESSAGE_DISPLAY_CHARS`] characters of it.
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
    /// Whether this call may have been processed: by this attempt (a 5xx, a 409
    /// `idempotency_key_in_use`) or by an earlier attempt of the same call that timed out or
    /// lost its connection. See [`Error::may_have_been_processed`].
    pub may_have_been_processed: bool,
    /// The response body as text, at most [`ERROR_BODY_LIMIT`] bytes (a body read only in part,
    /// because it was larger or too slow, keeps what was read).
    pub body: String,
}

/// Bytes of a 2xx body kept on an [`Error::Decode`].
pub const DECODE_BODY_LIMIT: usize = 1024 * 1024;

/// A 2xx body that does not match its model: see [`Error::Decode`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
#[error("{operation_id}: the request was processed (HTTP {status}) but its body does not decode at `{path}`: {source}{}; body starts {:?}{}", id.as_deref().map(|id| format!("; the document's id is {id}")).unwrap_or_default(), shorten(body), log_suffix(.log_id.as_deref()))]
pub struct DecodeError {
    /// The operation.
    pub operation_id: &'static str,
    /// HTTP status (2xx).
    pub status: u16,
    /// The response's log id.
    pub log_id: Option<String>,
    /// The JSON path of the value that failed (`items[0].product.taxes[1].rate`; `.` for the
    /// body itself).
    pub path: String,
    /// The body as text, at most [`DECODE_BODY_LIMIT`] bytes, secrets redacted.
    pub body: String,
    /// The body's top-level `id`, when it is a JSON object with one: the document exists.
    pub id: Option<String>,
    /// The idempotency key the request carried.
    pub idempotency_key: Option<String>,
    /// The parse error.
    #[source]
    pub source: serde_json::Error,
}

/// Characters of an error message shown by `Display`; the whole (bounded) text is on the error.
pub const MESSAGE_DISPLAY_CHARS: usize = 300;

/// Bytes of an error body kept on an [`ApiError`].
pub const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// Why [`Error::RateLimited`] gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RateLimitedBecause {
    /// The next attempt would have started after the class deadline.
    Deadline,
    /// The server asked to wait longer than the policy's `retry_after_cap` (this one).
    RetryAfterAboveCap(Duration),
}

/// Everything that can go wrong with a call.
///
/// Every variant says whether the call may have been processed
/// ([`Error::may_have_been_processed`]): once any attempt of a call may have reached the
/// server, every later error of the call says so, whatever its own last attempt did.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The API answered with an error status.
    #[error("{operation}: HTTP {status} {code}: {message}{log}{processed}", operation = .0.operation_id, status = .0.status, code = .0.code, message = shorten(&.0.message), log = log_suffix(.0.log_id.as_deref()), processed = processed_suffix(.0.may_have_been_processed))]
    Api(Box<ApiError>),

    /// Still rate limited (429): the next attempt would have passed the class deadline, or the
    /// server asked to wait longer than the policy's `retry_after_cap`. The 429s were not
    /// processed; `may_have_been_processed` says whether an earlier attempt of the call (a
    /// timeout, a dropped connection) may have been.
    #[error("{operation_id}: rate limited for {waited:?} over {attempts} attempts; {}{}{}", because_text(*.because, *.retry_after), log_suffix(.log_id.as_deref()), processed_suffix(*.may_have_been_processed))]
    RateLimited {
        /// The operation.
        operation_id: &'static str,
        /// Attempts made.
        attempts: u32,
        /// Time spent.
        waited: Duration,
        /// The last `Retry-After`, as the server sent it (not capped).
        retry_after: Option<Duration>,
        /// Why it gave up.
        because: RateLimitedBecause,
        /// The last response's log id.
        log_id: Option<String>,
        /// The idempotency key the request carried, if any.
        idempotency_key: Option<String>,
        /// Whether an earlier attempt of the call may have been processed.
        may_have_been_processed: bool,
    },

    /// No whole response in time: the per-attempt timeout (headers and body) or the call's
    /// deadline passed, or a stream stayed idle too long.
    #[error("{operation_id}: timed out after {attempts} attempt(s){}", processed_suffix(*.may_have_been_processed))]
    Timeout {
        /// The operation.
        operation_id: &'static str,
        /// Attempts made.
        attempts: u32,
        /// Whether any attempt of the call may have reached the server (and been processed).
        may_have_been_processed: bool,
        /// The idempotency key the request carried, if any: resend with it to be safe.
        idempotency_key: Option<String>,
        /// The log id of the last response whose headers arrived, if any.
        log_id: Option<String>,
    },

    /// The connection failed or dropped, or a body was cut short.
    #[error("{operation_id}: transport error after {attempts} attempt(s){}: {source}", processed_suffix(*.may_have_been_processed))]
    Transport {
        /// The operation.
        operation_id: &'static str,
        /// Attempts made.
        attempts: u32,
        /// Whether any attempt of the call may have reached the server (and been processed).
        may_have_been_processed: bool,
        /// The log id of the last response whose headers arrived, if any.
        log_id: Option<String>,
        /// The idempotency key the request carried, if any: resend with it to be safe.
        idempotency_key: Option<String>,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },

    /// A 2xx body that does not match its model. The server processed the request (it
    /// answered 2xx): a created document exists, and [`Error::created_id`] gives its `id`
    /// when the body has one. Do not resend to find out; read it with the raw call
    /// ([`Client::raw`](crate::Client::raw)) or by its id.
    #[error(transparent)]
    Decode(Box<DecodeError>),

    /// The server answered with a redirect (the API never redirects: a proxy or a wrong base
    /// URL), or a caller-supplied HTTP client followed one to another origin. Nothing is sent
    /// to, or returned from, another origin.
    #[error("{operation_id}: HTTP {status} redirect to {} refused: the API does not redirect{}{}", .location.as_deref().unwrap_or("(no Location)"), log_suffix(.log_id.as_deref()), processed_suffix(*.may_have_been_processed))]
    Redirect {
        /// The operation.
        operation_id: &'static str,
        /// HTTP status (3xx; or the final status when a supplied client followed it).
        status: u16,
        /// The `Location` header, or the URL a supplied client ended at.
        location: Option<String>,
        /// The response's log id.
        log_id: Option<String>,
        /// The idempotency key the request carried, if any.
        idempotency_key: Option<String>,
        /// Whether the call may have been processed (whoever answered may have acted on it).
        may_have_been_processed: bool,
    },

    /// A response body larger than the client's `max_body_size`: not read.
    #[error("{operation_id}: the HTTP {status} body is larger than {limit} bytes{}{}", log_suffix(.log_id.as_deref()), processed_suffix(*.may_have_been_processed))]
    BodyTooLarge {
        /// The operation.
        operation_id: &'static str,
        /// HTTP status.
        status: u16,
        /// The limit.
        limit: usize,
        /// The response's log id.
        log_id: Option<String>,
        /// The idempotency key the request carried, if any.
        idempotency_key: Option<String>,
        /// True for a 2xx: the request was processed.
        may_have_been_processed: bool,
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

fn processed_suffix(processed: bool) -> &'static str {
    if processed {
        " (the request may have been processed)"
    } else {
        ""
    }
}

fn because_text(because: RateLimitedBecause, retry_after: Option<Duration>) -> String {
    match because {
        RateLimitedBecause::Deadline => "deadline reached".to_owned(),
        RateLimitedBecause::RetryAfterAboveCap(cap) => format!(
            "the server asked to wait {:?}, longer than retry_after_cap ({cap:?})",
            retry_after.unwrap_or_default()
        ),
    }
}

/// At most [`MESSAGE_DISPLAY_CHARS`] characters of `message`, for `Display`.
fn shorten(message: &str) -> std::borrow::Cow<'_, str> {
    match message.char_indices().nth(MESSAGE_DISPLAY_CHARS) {
        None => message.into(),
        Some((end, _)) => format!("{}… ({} bytes in all)", &message[..end], message.len()).into(),
    }
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
            Error::Decode(e) => e.log_id.as_deref(),
            Error::RateLimited { log_id, .. }
            | Error::Timeout { log_id, .. }
            | Error::Transport { log_id, .. }
            | Error::Redirect { log_id, .. }
            | Error::BodyTooLarge { log_id, .. } => log_id.as_deref(),
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
            Error::Decode(e) => Some(e.status),
            Error::Redirect { status, .. } | Error::BodyTooLarge { status, .. } => Some(*status),
            Error::RateLimited { .. } => Some(429),
            _ => None,
        }
    }

    /// The idempotency key the request carried: resend with the same key to be safe.
    pub fn idempotency_key(&self) -> Option<&str> {
        match self {
            Error::Api(e) => e.idempotency_key.as_deref(),
            Error::Decode(e) => e.idempotency_key.as_deref(),
            Error::RateLimited {
                idempotency_key, ..
            }
            | Error::Timeout {
                idempotency_key, ..
            }
            | Error::Transport {
                idempotency_key, ..
            }
            | Error::Redirect {
                idempotency_key, ..
            }
            | Error::BodyTooLarge {
                idempotency_key, ..
            } => idempotency_key.as_deref(),
            _ => None,
        }
    }

    /// Whether the server certainly processed the call: it answered 2xx, and the body could
    /// not be read into its model ([`Error::Decode`]) or was larger than allowed
    /// ([`Error::BodyTooLarge`] of a 2xx). Nothing needs resending to find out.
    pub fn was_processed(&self) -> bool {
        match self {
            Error::Decode(_) => true,
            Error::BodyTooLarge { status, .. } => (200..300).contains(status),
            _ => false,
        }
    }

    /// The `id` of the document a processed call created or returned, when its body could not
    /// be decoded ([`Error::Decode`]) but had one.
    pub fn created_id(&self) -> Option<&str> {
        match self {
            Error::Decode(e) => e.id.as_deref(),
            _ => None,
        }
    }

    /// Whether the server may have processed the call, by its last attempt or any earlier
    /// one. `false` means no attempt can have been processed (refused before sending, only
    /// 429s, connections that never opened, a 4xx to the first attempt that reached the
    /// server): creating the document again is safe. `true` when any attempt may have reached
    /// it (a timeout, a dropped connection, a body cut short, a 5xx, a 409
    /// `idempotency_key_in_use`, a redirect) and for a 2xx that could not be decoded: resend
    /// with [`Error::idempotency_key`], or look the document up, before creating it again.
    pub fn may_have_been_processed(&self) -> bool {
        match self {
            Error::Api(e) => e.may_have_been_processed,
            Error::Timeout {
                may_have_been_processed,
                ..
            }
            | Error::Transport {
                may_have_been_processed,
                ..
            }
            | Error::RateLimited {
                may_have_been_processed,
                ..
            }
            | Error::Redirect {
                may_have_been_processed,
                ..
            }
            | Error::BodyTooLarge {
                may_have_been_processed,
                ..
            } => *may_have_been_processed,
            Error::Decode(_) => true,
            Error::InvalidInput { .. }
            | Error::KeyKindNotAccepted { .. }
            | Error::PageCap { .. } => false,
        }
    }
}
