//! The one send path every endpoint method goes through: key check, idempotency key, class
//! gate and permit, the HTTP exchange, classification, retries, tracing and metrics.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER, USER_AGENT};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::client::{AsClient, Client, auth_header};
use crate::error::{ApiError, ErrorCode, ErrorDetail, Result};
use crate::governor::{Permit, full_jitter};
use crate::request::{Body, OperationInfo, Request, Retry};
use crate::{Error, Source};

/// Header Facturapi puts on every response.
pub const LOG_ID_HEADER: &str = "x-facturapi-log-id";

/// A successful (2xx) response, not yet decoded. Holds the class permit until dropped, so
/// that reading the body still counts against the class's concurrency.
#[derive(Debug)]
pub struct Response {
    op: &'static OperationInfo,
    status: StatusCode,
    log_id: Option<String>,
    idempotency_key: Option<String>,
    inner: reqwest::Response,
    _permit: Option<Permit>,
}

/// `Retry-After` as a wait: delta-seconds or an HTTP-date; junk, negative or past values
/// are absent; values above `cap` are clamped to it.
pub fn parse_retry_after(value: &str, now: SystemTime, cap: Duration) -> Option<Duration> {
    let value = value.trim();
    let wait = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        Duration::from_secs(value.parse::<u64>().unwrap_or(u64::MAX))
    } else {
        httpdate::parse_http_date(value)
            .ok()?
            .duration_since(now)
            .ok()?
    };
    Some(wait.min(cap))
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Puts a fresh UUID in an empty or missing `idempotency_key` of a JSON object body, and
/// returns the key the body carries.
fn ensure_idempotency_key(body: &mut Body) -> Option<String> {
    let Body::Json(Value::Object(map)) = body else {
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

fn body_key(body: &Body) -> Option<String> {
    match body {
        Body::Json(Value::Object(map)) => map
            .get("idempotency_key")
            .and_then(Value::as_str)
            .map(str::to_owned),
        _ => None,
    }
}

/// The first characters of a body, for error messages.
fn snippet(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]);
    text.into_owned()
}

#[derive(serde::Deserialize)]
struct ErrorBody {
    message: Option<String>,
    code: Option<String>,
    path: Option<String>,
    location: Option<String>,
    #[serde(default)]
    errors: Vec<ErrorDetailBody>,
}

#[derive(serde::Deserialize)]
struct ErrorDetailBody {
    message: Option<String>,
    code: Option<String>,
    location: Option<String>,
    path: Option<String>,
    source: Option<String>,
}

/// Builds the typed API error of a non-2xx response (its body may be anything).
fn api_error(
    op: &'static OperationInfo,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    idempotency_key: Option<String>,
    cap: Duration,
) -> Error {
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let retry_after = header_str(headers, RETRY_AFTER.as_str())
        .and_then(|v| parse_retry_after(&v, SystemTime::now(), cap));
    let (message, code, path, location, errors) = match parsed {
        Some(b) => (
            b.message.unwrap_or_default(),
            b.code.map_or_else(
                || ErrorCode::Unknown(String::new()),
                |c| ErrorCode::from(c.as_str()),
            ),
            b.path,
            b.location,
            b.errors
                .into_iter()
                .map(|d| ErrorDetail {
                    message: d.message.unwrap_or_default(),
                    code: d.code,
                    location: d.location,
                    path: d.path,
                    source: d.source.as_deref().map(Source::from),
                })
                .collect(),
        ),
        None => (
            snippet(body),
            ErrorCode::Unknown(String::new()),
            None,
            None,
            Vec::new(),
        ),
    };
    Error::Api(Box::new(ApiError {
        operation_id: op.operation_id,
        status: status.as_u16(),
        code,
        message,
        path,
        location,
        errors,
        log_id: header_str(headers, LOG_ID_HEADER),
        retry_after,
        idempotency_key,
    }))
}

/// The status as a metrics label; common ones are static so counting allocates nothing.
fn status_label(status: StatusCode) -> metrics::SharedString {
    let label: &'static str = match status.as_u16() {
        200 => "200",
        201 => "201",
        202 => "202",
        204 => "204",
        400 => "400",
        401 => "401",
        404 => "404",
        409 => "409",
        429 => "429",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        _ => return metrics::SharedString::from(status.as_u16().to_string()),
    };
    metrics::SharedString::const_str(label)
}

/// Sends `request` for `op` with the client's class policy; returns the 2xx response.
pub async fn send(
    target: &impl AsClient,
    op: &'static OperationInfo,
    mut request: Request,
) -> Result<Response> {
    let client: &Client = target.as_client();
    let key_kind = client.key_kind();
    if !op.keys.is_empty() && !op.keys.contains(&key_kind) {
        return Err(Error::KeyKindNotAccepted {
            operation_id: op.operation_id,
            key_kind,
            accepted: op.keys,
        });
    }
    let idempotency_key = match op.retry {
        Retry::IdempotencyKey => ensure_idempotency_key(&mut request.body),
        _ => body_key(&request.body),
    };
    let span = tracing::info_span!(
        "facturapi.request",
        operation_id = op.operation_id,
        class = op.class.as_str(),
        method = %op.method,
        attempt = tracing::field::Empty,
        status = tracing::field::Empty,
        log_id = tracing::field::Empty,
        elapsed_ms = tracing::field::Empty,
    );
    send_loop(client, op, request, idempotency_key)
        .instrument(span)
        .await
}

async fn send_loop(
    client: &Client,
    op: &'static OperationInfo,
    request: Request,
    idempotency_key: Option<String>,
) -> Result<Response> {
    let inner = &client.inner;
    let governor = &inner.governor;
    let policy = governor.policy(op.class);
    let class = op.class.as_str();
    let start = Instant::now();
    let deadline = start + policy.deadline;
    // Built on first use: most calls never retry.
    let mut schedule = None;
    let mut schedule_429 = None;
    let mut retries = 0usize;
    let mut attempts = 0u32;
    let mut last_429: Option<(Option<Duration>, Option<String>)> = None;
    let mut url = inner.base_url.clone();
    url.set_path(&format!(
        "{}{}",
        inner.base_url.path().trim_end_matches('/'),
        request.path
    ));
    if !request.query.pairs.is_empty() {
        url.query_pairs_mut()
            .extend_pairs(request.query.pairs.iter());
    }
    let span = tracing::Span::current();
    // Adaptive mode: a request that got a 429 keeps its permit (its place at the head of the
    // class) while it waits out its Retry-After, unless a concurrency cut left no room for it.
    let mut held: Option<(Permit, Instant)> = None;
    let rate_limited = |attempts: u32, last: Option<(Option<Duration>, Option<String>)>| {
        let (retry_after, log_id) = last.unwrap_or_default();
        Error::RateLimited {
            operation_id: op.operation_id,
            attempts,
            waited: start.elapsed(),
            retry_after,
            log_id,
            idempotency_key: idempotency_key.clone(),
        }
    };

    loop {
        let waited = match held.take() {
            Some((permit, until)) => {
                tokio::time::timeout_at(deadline, governor.resume(op.class, permit, until)).await
            }
            None => match governor.try_acquire(op.class) {
                Some(permit) => Ok(permit),
                None => tokio::time::timeout_at(deadline, governor.acquire(op.class)).await,
            },
        };
        let mut permit = match waited {
            Ok(permit) => permit,
            Err(_) if last_429.is_some() => return Err(rate_limited(attempts, last_429)),
            Err(_) => {
                return Err(Error::Timeout {
                    operation_id: op.operation_id,
                    attempts,
                    may_have_been_sent: attempts > 0,
                    idempotency_key: idempotency_key.clone(),
                });
            }
        };
        attempts += 1;
        span.record("attempt", attempts);
        let mut builder = inner.http.request(op.method.clone(), url.clone());
        if !inner.headers.is_empty() {
            builder = builder.headers(inner.headers.clone());
        }
        builder = builder
            .header(USER_AGENT, inner.user_agent.clone())
            .timeout(inner.timeout);
        let (name, value) = auth_header(client);
        builder = builder.header(name, value);
        builder = match &request.body {
            Body::None => builder,
            Body::Json(value) => builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(value).unwrap_or_default()),
            Body::Multipart(form) => builder.multipart(form.to_form()),
        };
        let sent_at = Instant::now();
        let outcome = builder.send().await;
        let elapsed = sent_at.elapsed();
        span.record("elapsed_ms", start.elapsed().as_millis() as u64);

        let error = match outcome {
            Ok(response) => {
                let status = response.status();
                let log_id = header_str(response.headers(), LOG_ID_HEADER);
                span.record("status", status.as_u16());
                if let Some(id) = &log_id {
                    span.record("log_id", id.as_str());
                }
                metrics::counter!("facturapi_requests_total", "class" => class, "status" => status_label(status)).increment(1);
                metrics::histogram!("facturapi_request_duration_seconds", "class" => class)
                    .record(elapsed.as_secs_f64());

                if status.is_success() {
                    governor.on_success(op.class, &permit);
                    return Ok(Response {
                        op,
                        status,
                        log_id,
                        idempotency_key,
                        inner: response,
                        _permit: Some(permit),
                    });
                }
                if status == StatusCode::TOO_MANY_REQUESTS {
                    // Not processed: always safe to resend, and never spends the retry budget.
                    permit.idle();
                    let retry_after = header_str(response.headers(), RETRY_AFTER.as_str())
                        .and_then(|v| {
                            parse_retry_after(&v, SystemTime::now(), policy.retry_after_cap)
                        });
                    let backoff = full_jitter(
                        schedule_429
                            .get_or_insert_with(|| policy.schedule())
                            .next()
                            .unwrap_or(policy.max_delay),
                    );
                    // Floor at Retry-After, plus a little jitter so paused callers do not all
                    // wake at once (in adaptive mode pacing spreads them: less jitter).
                    let most = if governor.adaptive(op.class) {
                        Duration::from_millis(50)
                    } else {
                        Duration::from_millis(250)
                    };
                    let wait = retry_after.map_or(backoff, |ra| ra + backoff.min(ra / 4 + most));
                    metrics::counter!("facturapi_rate_limited_total", "class" => class)
                        .increment(1);
                    tracing::warn!(
                        ?retry_after,
                        ?wait,
                        log_id = log_id.as_deref(),
                        "rate limited; resending after Retry-After"
                    );
                    last_429 = Some((retry_after, log_id));
                    let until = Instant::now() + wait;
                    if until > deadline {
                        return Err(rate_limited(attempts, last_429));
                    }
                    let pause_class =
                        governor.on_rate_limited(op.class, sent_at, &mut permit, until);
                    if pause_class {
                        governor.pause(op.class, until);
                    }
                    if !governor.adaptive(op.class) {
                        drop(permit);
                    } else if permit.level() <= governor.concurrency(op.class) {
                        held = Some((permit, until));
                    } else {
                        // A concurrency cut left no room for it: back to the queue, after its
                        // own Retry-After.
                        drop(permit);
                        tokio::time::sleep_until(until).await;
                    }
                    continue;
                }
                let headers = response.headers().clone();
                let body = response.bytes().await.unwrap_or_default();
                drop(permit);
                let error = api_error(
                    op,
                    status,
                    &headers,
                    &body,
                    idempotency_key.clone(),
                    policy.retry_after_cap,
                );
                // 409 idempotency_key_in_use: an earlier attempt with this key (one whose
                // response was lost) is still being processed. This attempt did nothing; a
                // later one gets that attempt's document.
                let key_in_use = idempotency_key.is_some()
                    && matches!(&error, Error::Api(e) if e.code == crate::ErrorCode::IdempotencyKeyInUse);
                let retryable = key_in_use
                    || (matches!(status.as_u16(), 502..=504) && op.retry != Retry::NotAfterSend);
                if !retryable {
                    return Err(error);
                }
                error
            }
            Err(e) => {
                drop(permit);
                let may_have_been_sent = !e.is_connect();
                let error = if e.is_timeout() {
                    Error::Timeout {
                        operation_id: op.operation_id,
                        attempts,
                        may_have_been_sent,
                        idempotency_key: idempotency_key.clone(),
                    }
                } else {
                    Error::Transport {
                        operation_id: op.operation_id,
                        attempts,
                        may_have_been_sent,
                        idempotency_key: idempotency_key.clone(),
                        source: e.without_url(),
                    }
                };
                // Never sent (the connection did not open): always safe; otherwise only
                // idempotent or keyed requests are resent.
                let safe = !may_have_been_sent || op.retry != Retry::NotAfterSend;
                metrics::counter!("facturapi_requests_total", "class" => class, "status" => "error").increment(1);
                if !safe {
                    return Err(error);
                }
                error
            }
        };
        // A retryable failure (5xx gateway error, timeout, transport) of a safe request.
        retries += 1;
        let delay = full_jitter(
            schedule
                .get_or_insert_with(|| policy.schedule())
                .next()
                .unwrap_or(policy.max_delay),
        );
        if retries > policy.max_retries || Instant::now() + delay > deadline {
            return Err(error);
        }
        metrics::counter!("facturapi_retries_total", "class" => class).increment(1);
        tracing::info!(%error, ?delay, "retrying");
        tokio::time::sleep(delay).await;
    }
}

impl Response {
    /// HTTP status.
    pub fn status(&self) -> u16 {
        self.status.as_u16()
    }

    /// `X-Facturapi-Log-Id`.
    pub fn log_id(&self) -> Option<&str> {
        self.log_id.as_deref()
    }

    /// The idempotency key the request carried.
    pub fn idempotency_key(&self) -> Option<&str> {
        self.idempotency_key.as_deref()
    }

    /// The whole body.
    pub async fn bytes(self) -> Result<Bytes> {
        let op = self.op;
        let key = self.idempotency_key.clone();
        self.inner.bytes().await.map_err(|e| Error::Transport {
            operation_id: op.operation_id,
            attempts: 1,
            may_have_been_sent: true,
            idempotency_key: key,
            source: e.without_url(),
        })
    }

    /// The body as JSON of type `T`.
    pub async fn json<T: DeserializeOwned>(self) -> Result<T> {
        let (op, status, log_id) = (self.op, self.status.as_u16(), self.log_id.clone());
        let idempotency_key = self.idempotency_key.clone();
        let bytes = self.bytes().await?;
        serde_json::from_slice(&bytes).map_err(|source| Error::Decode {
            operation_id: op.operation_id,
            status,
            log_id,
            snippet: snippet(&bytes),
            idempotency_key,
            source,
        })
    }

    /// The body as a stream of chunks (the class permit is held until the stream is dropped).
    pub fn stream(self) -> ByteStream {
        use futures_util::StreamExt as _;
        let Response {
            op,
            idempotency_key,
            inner,
            _permit,
            ..
        } = self;
        let stream = inner.bytes_stream().map(move |chunk| {
            let _held = &_permit;
            chunk.map_err(|e| Error::Transport {
                operation_id: op.operation_id,
                attempts: 1,
                may_have_been_sent: true,
                idempotency_key: idempotency_key.clone(),
                source: e.without_url(),
            })
        });
        ByteStream {
            inner: Box::pin(stream),
        }
    }
}

/// A file body as a stream of chunks, for large downloads.
pub struct ByteStream {
    inner: std::pin::Pin<Box<dyn futures_core::Stream<Item = Result<Bytes>> + Send>>,
}

impl std::fmt::Debug for ByteStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ByteStream")
    }
}

impl futures_core::Stream for ByteStream {
    type Item = Result<Bytes>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// The outcome of an operation that answers 200 with a finished result or 202 with a pending
/// one (`POST /invoices` when stamping is delayed: do not create it again).
#[derive(Debug, Clone, PartialEq)]
pub enum MaybePending<T, P> {
    /// 200/201: done.
    Done(T),
    /// 202: accepted; Facturapi finishes it later and reports it with a webhook event.
    Pending(P),
}

/// A created document and the idempotency key it was created with (filled in by the SDK
/// when the body had none): keep it to resend safely.
#[derive(Debug, Clone, PartialEq)]
pub struct Created<T> {
    /// The result.
    pub value: T,
    /// The `idempotency_key` the request carried.
    pub idempotency_key: String,
}

impl<T> std::ops::Deref for Created<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

/// Decoders the `#[endpoint]` expansion picks from the return type.
pub mod decode {
    use super::*;

    /// JSON of type `T`.
    pub async fn json<T: DeserializeOwned>(response: Response) -> Result<T> {
        response.json().await
    }

    /// Whole body as bytes.
    pub async fn bytes(response: Response) -> Result<Bytes> {
        response.bytes().await
    }

    /// Bytes, or `None` for 204 No Content.
    pub async fn optional_bytes(response: Response) -> Result<Option<Bytes>> {
        if response.status == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        response.bytes().await.map(Some)
    }

    /// A stream of chunks.
    pub async fn stream(response: Response) -> Result<ByteStream> {
        Ok(response.stream())
    }

    /// Nothing (the body is ignored).
    pub async fn empty(response: Response) -> Result<()> {
        drop(response);
        Ok(())
    }

    /// 202 → `Pending`, other 2xx → `Done`.
    pub async fn maybe_pending<T: DeserializeOwned, P: DeserializeOwned>(
        response: Response,
    ) -> Result<MaybePending<T, P>> {
        if response.status == StatusCode::ACCEPTED {
            response.json().await.map(MaybePending::Pending)
        } else {
            response.json().await.map(MaybePending::Done)
        }
    }

    /// Wraps a decoded value with the request's idempotency key.
    pub fn created<T>(idempotency_key: Option<String>, value: T) -> Created<T> {
        Created {
            value,
            idempotency_key: idempotency_key.unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let cap = Duration::from_secs(120);
        assert_eq!(
            parse_retry_after("3", now, cap),
            Some(Duration::from_secs(3))
        );
        assert_eq!(parse_retry_after(" 0 ", now, cap), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("99999999999999999999999", now, cap),
            Some(cap),
            "huge values clamp"
        );
        let date = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(
            parse_retry_after(&date, now, cap),
            Some(Duration::from_secs(7))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(7));
        assert_eq!(
            parse_retry_after(&past, now, cap),
            None,
            "a past date is absent"
        );
        for junk in ["", "-1", "1.5", "soon", "3 seconds"] {
            assert_eq!(parse_retry_after(junk, now, cap), None, "{junk:?}");
        }
    }

    #[test]
    fn idempotency_key_is_filled_once_and_kept() {
        let mut body = Body::Json(serde_json::json!({"customer": "c"}));
        let key = ensure_idempotency_key(&mut body).unwrap();
        assert_eq!(ensure_idempotency_key(&mut body).unwrap(), key);
        let mut own = Body::Json(serde_json::json!({"idempotency_key": "mine"}));
        assert_eq!(ensure_idempotency_key(&mut own).as_deref(), Some("mine"));
        let mut empty = Body::Json(serde_json::json!({"idempotency_key": ""}));
        assert_ne!(ensure_idempotency_key(&mut empty).as_deref(), Some(""));
    }
}
