//! The one send path every endpoint method goes through: key check, idempotency key, class
//! gate and permit, the HTTP exchange (bounded in time and size), the retry decision
//! (`classify.rs`), tracing and metrics.
//!
//! Time: each attempt (sending, headers and the whole body) is bounded by the client's
//! `timeout`, and the whole call (every attempt, every wait) by the class policy's
//! `deadline`. Size: a 2xx body is read up to the client's `max_body_size`, an error body up
//! to [`ERROR_BODY_LIMIT`]. A streamed download is handed over after its headers and then
//! bounded by an idle timeout per chunk.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, USER_AGENT};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::classify::{self, Action, GiveUp, History, Limits, Outcome};
use crate::client::{AsClient, Client, auth_header};
use crate::error::{
    ApiError, DECODE_BODY_LIMIT, ERROR_BODY_LIMIT, ErrorCode, ErrorDetail, RateLimitedBecause,
    Result,
};
use crate::governor::{After429, Permit, full_jitter};
use crate::redact::redact;
use crate::request::{Body, OperationInfo, Request, Resend};
use crate::{Error, Source};

/// Header Facturapi puts on every response.
pub const LOG_ID_HEADER: &str = "x-facturapi-log-id";

/// A successful (2xx) response: its body read whole, or (from [`send_streaming`]) ready to
/// stream, holding the class permit until the stream is dropped.
#[derive(Debug)]
pub struct Response {
    op: &'static OperationInfo,
    status: StatusCode,
    log_id: Option<String>,
    idempotency_key: Option<String>,
    body: Bytes,
    stream: Option<Streaming>,
}

#[derive(Debug)]
struct Streaming {
    inner: reqwest::Response,
    permit: Permit,
    idle: Duration,
    max_body_size: usize,
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The JSON path of the value of `bytes` that `T` fails on (`.` for the body itself). A
/// tagged union decodes its variant on its own and names the inner path in its message
/// (`… at `items[0].quantity`: …`): the two are joined.
fn failing_path<T: DeserializeOwned>(bytes: &[u8]) -> String {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let Err(e) = serde_path_to_error::deserialize::<_, T>(&mut deserializer) else {
        return ".".to_owned(); // trailing characters after a whole value
    };
    let outer = e.path().to_string();
    let message = e.into_inner().to_string();
    let inner = message
        .split_once(" at `")
        .and_then(|(_, rest)| rest.split_once("`:"))
        .map(|(path, _)| path);
    match inner {
        Some(inner) if outer == "." => inner.to_owned(),
        Some(inner) => format!("{outer}.{inner}"),
        None => outer,
    }
}

/// The `id` of a JSON object cut short, when it is the object's first member (as Facturapi
/// writes its documents): `{"id":"abc",…`. Hand-written: a body cut short is not JSON.
fn leading_id(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(&bytes[..bytes.len().min(256)])
        .or_else(|e| std::str::from_utf8(&bytes[..e.valid_up_to()]))
        .ok()?;
    let rest = text.trim_start().strip_prefix('{')?.trim_start();
    let rest = rest
        .strip_prefix("\"id\"")?
        .trim_start()
        .strip_prefix(':')?;
    let rest = rest.trim_start().strip_prefix('"')?;
    let (id, _) = rest.split_once('"')?;
    (!id.is_empty() && !id.contains('\\')).then(|| id.to_owned())
}

/// Reads a Facturapi error body leniently: any JSON object with a `message` or a `code`.
/// Anything else (a proxy's HTML or JSON, text, a body cut short) is kept as text.
fn parse_error_body(
    text: &str,
    status: StatusCode,
) -> (
    String,
    ErrorCode,
    Option<String>,
    Option<String>,
    Vec<ErrorDetail>,
) {
    let string = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    let parsed = serde_json::from_str::<Value>(text).ok().filter(|v| {
        v.get("message").is_some_and(Value::is_string)
            || v.get("code").is_some_and(Value::is_string)
    });
    match parsed {
        Some(v) => (
            string(&v, "message").unwrap_or_default(),
            string(&v, "code").map_or_else(
                || ErrorCode::Unknown(String::new()),
                |c| ErrorCode::from(c.as_str()),
            ),
            string(&v, "path"),
            string(&v, "location"),
            v.get("errors")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|d| ErrorDetail {
                    message: string(d, "message").unwrap_or_default(),
                    code: string(d, "code"),
                    location: string(d, "location"),
                    path: string(d, "path"),
                    source: string(d, "source").as_deref().map(Source::from),
                })
                .collect(),
        ),
        None => {
            let trimmed = text.trim();
            let message = if trimmed.is_empty() {
                status.canonical_reason().unwrap_or("no body").to_owned()
            } else {
                trimmed.to_owned()
            };
            (
                message,
                ErrorCode::Unknown(String::new()),
                None,
                None,
                Vec::new(),
            )
        }
    }
}

/// The typed API error of a non-2xx response; `body` may be anything (it is bounded by the
/// reader, and every text taken from it is redacted).
fn api_error(
    cx: &CallContext<'_>,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    may_have_been_processed: bool,
) -> Error {
    let text = redact(&String::from_utf8_lossy(body), cx.secret);
    let (message, code, path, location, errors) = parse_error_body(&text, status);
    Error::Api(Box::new(ApiError {
        operation_id: cx.op.operation_id,
        status: status.as_u16(),
        code,
        message,
        path,
        location,
        errors,
        log_id: header_str(headers, LOG_ID_HEADER),
        retry_after: classify::retry_after(headers, SystemTime::now()),
        idempotency_key: cx.idempotency_key.clone(),
        may_have_been_processed,
        body: text,
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

/// Sends `request` for `op` with the client's class policy; returns the 2xx response with its
/// body read whole.
pub async fn send(
    target: &impl AsClient,
    op: &'static OperationInfo,
    request: Request,
) -> Result<Response> {
    call(target.as_client(), op, request, false).await
}

/// Like [`send`], but the 2xx body is left to stream ([`Response::stream`]).
pub async fn send_streaming(
    target: &impl AsClient,
    op: &'static OperationInfo,
    request: Request,
) -> Result<Response> {
    call(target.as_client(), op, request, true).await
}

async fn call(
    client: &Client,
    op: &'static OperationInfo,
    mut request: Request,
    stream: bool,
) -> Result<Response> {
    let key_kind = client.key_kind();
    if !op.keys.is_empty() && !op.keys.contains(&key_kind) {
        return Err(Error::KeyKindNotAccepted {
            operation_id: op.operation_id,
            key_kind,
            accepted: op.keys,
        });
    }
    let idempotency_key = match op.retry {
        Resend::Keyed => request.body.ensure_idempotency_key(),
        _ => request.body.idempotency_key(),
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
    send_loop(client, op, request, idempotency_key, stream)
        .instrument(span)
        .await
}

/// What every error of one call carries.
struct CallContext<'a> {
    op: &'static OperationInfo,
    secret: &'a str,
    idempotency_key: Option<String>,
    start: Instant,
}

/// What one attempt saw, kept outside its future so that a timeout does not lose it: the
/// status and headers once they arrived, and the body bytes read so far.
#[derive(Default)]
struct Seen {
    status: Option<StatusCode>,
    headers: HeaderMap,
    url: Option<reqwest::Url>,
    body: Vec<u8>,
    response: Option<reqwest::Response>,
}

enum ExchangeError {
    Send(reqwest::Error),
    Body(reqwest::Error),
    TooLarge,
}

/// One HTTP exchange: sends, then reads the body (a 2xx up to `max_body`, an error body up to
/// [`ERROR_BODY_LIMIT`], keeping whatever part of it arrives); a streamed 2xx stops at the
/// headers.
async fn exchange(
    builder: reqwest::RequestBuilder,
    stream: bool,
    max_body: usize,
    seen: &mut Seen,
) -> std::result::Result<(), ExchangeError> {
    let mut response = builder.send().await.map_err(ExchangeError::Send)?;
    let status = response.status();
    seen.status = Some(status);
    seen.headers = response.headers().clone();
    seen.url = Some(response.url().clone());
    let success = status.is_success();
    if success && stream {
        seen.response = Some(response);
        return Ok(());
    }
    let limit = if success { max_body } else { ERROR_BODY_LIMIT };
    let announced = response.content_length().unwrap_or(0);
    if success && announced > limit as u64 {
        return Err(ExchangeError::TooLarge);
    }
    seen.body.reserve(announced.min(limit as u64) as usize);
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = limit - seen.body.len();
                if chunk.len() > room {
                    if success {
                        return Err(ExchangeError::TooLarge);
                    }
                    // An error body: its beginning is what matters.
                    seen.body.extend_from_slice(&chunk[..room]);
                    return Ok(());
                }
                seen.body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(()),
            Err(e) if success => return Err(ExchangeError::Body(e)),
            // An error body cut short: its status is the answer; keep what came.
            Err(_) => return Ok(()),
        }
    }
}

/// What one attempt came to: the outcome the classifier reads, and the error the call ends
/// with if it gives up here (`None` for a 2xx).
fn classify_attempt(
    cx: &CallContext<'_>,
    client: &Client,
    attempts: u32,
    processed_before: bool,
    exchanged: std::result::Result<
        std::result::Result<(), ExchangeError>,
        tokio::time::error::Elapsed,
    >,
    seen: &Seen,
) -> (Outcome, Option<Error>) {
    let op = cx.op;
    let log_id = header_str(&seen.headers, LOG_ID_HEADER);
    let processed = |outcome: Outcome| processed_before || outcome.may_have_been_processed();
    let timeout = |outcome: Outcome| {
        (
            outcome,
            Some(Error::Timeout {
                operation_id: op.operation_id,
                attempts,
                may_have_been_processed: processed(outcome),
                idempotency_key: cx.idempotency_key.clone(),
                log_id: log_id.clone(),
            }),
        )
    };
    let transport = |outcome: Outcome, source: reqwest::Error| {
        (
            outcome,
            Some(Error::Transport {
                operation_id: op.operation_id,
                attempts,
                may_have_been_processed: processed(outcome),
                log_id: log_id.clone(),
                idempotency_key: cx.idempotency_key.clone(),
                source: source.without_url(),
            }),
        )
    };
    let answered = match exchanged {
        // Out of time. An error status that arrived is still the answer (with the part of
        // its body that came); otherwise the request may have been processed.
        Err(_) => match seen.status {
            Some(status) if !status.is_success() => Ok(()),
            _ => return timeout(Outcome::Lost),
        },
        Ok(Err(ExchangeError::Send(e))) => {
            let outcome = if e.is_connect() {
                Outcome::NotConnected
            } else {
                Outcome::Lost
            };
            if e.is_timeout() {
                return timeout(outcome);
            }
            return transport(outcome, e);
        }
        // A 2xx whose body failed: processed, and not whole.
        Ok(Err(ExchangeError::Body(e))) => {
            return if e.is_timeout() {
                timeout(Outcome::Lost)
            } else {
                transport(Outcome::Lost, e)
            };
        }
        Ok(Err(ExchangeError::TooLarge)) => Err(()),
        Ok(Ok(())) => Ok(()),
    };
    let status = seen.status.unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if answered.is_err() {
        let outcome = Outcome::Final {
            may_have_been_processed: status.is_success(),
        };
        let error = Error::BodyTooLarge {
            operation_id: op.operation_id,
            status: status.as_u16(),
            limit: if status.is_success() {
                client.inner.max_body_size
            } else {
                ERROR_BODY_LIMIT
            },
            log_id,
            idempotency_key: cx.idempotency_key.clone(),
            may_have_been_processed: processed(outcome),
        };
        return (outcome, Some(error));
    }
    // A response from another origin: a supplied HTTP client followed a redirect.
    let foreign = seen
        .url
        .as_ref()
        .is_some_and(|url| url.origin() != client.inner.base_url.origin());
    if status.is_redirection() || foreign {
        let outcome = Outcome::Final {
            may_have_been_processed: true,
        };
        let location = if foreign {
            seen.url.as_ref().map(|u| {
                let mut u = u.clone();
                u.set_query(None);
                u.to_string()
            })
        } else {
            header_str(&seen.headers, LOCATION.as_str())
        };
        let error = Error::Redirect {
            operation_id: op.operation_id,
            status: status.as_u16(),
            location: location.map(|l| redact(&l, cx.secret)),
            log_id,
            idempotency_key: cx.idempotency_key.clone(),
            may_have_been_processed: processed(outcome),
        };
        return (outcome, Some(error));
    }
    if status.is_success() {
        return (Outcome::Success, None);
    }
    let retry_after = classify::retry_after(&seen.headers, SystemTime::now());
    let outcome = match status.as_u16() {
        429 => Outcome::RateLimited { retry_after },
        500 | 502..=504 => Outcome::ServerError { retry_after },
        _ => Outcome::Final {
            may_have_been_processed: false,
        },
    };
    let mut error = api_error(cx, status, &seen.headers, &seen.body, processed(outcome));
    // 409 idempotency_key_in_use: an earlier attempt with this key (one whose response was
    // lost) is still being processed. This attempt did nothing; a later one gets that
    // attempt's document.
    if cx.idempotency_key.is_some()
        && matches!(&error, Error::Api(e) if e.code == ErrorCode::IdempotencyKeyInUse)
    {
        if let Error::Api(e) = &mut error {
            e.may_have_been_processed = true;
        }
        return (Outcome::KeyInUse, Some(error));
    }
    (outcome, Some(error))
}

async fn send_loop(
    client: &Client,
    op: &'static OperationInfo,
    request: Request,
    idempotency_key: Option<String>,
    stream: bool,
) -> Result<Response> {
    let inner = &client.inner;
    let governor = &inner.governor;
    let policy = governor.policy(op.class);
    let class = op.class.as_str();
    let cx = CallContext {
        op,
        secret: inner.key.secret(),
        idempotency_key,
        start: Instant::now(),
    };
    let deadline = cx.start + policy.deadline;
    // Built on first use: most calls never retry.
    let mut schedule = None;
    let mut schedule_429 = None;
    let mut history = History::default();
    let mut attempts = 0u32;
    // Sticky: once any attempt may have reached the server, every later error says so.
    let mut processed = false;
    // The last 429, for the error if the call ends waiting for the class.
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
    // Serialized once: every attempt sends the same bytes (and the same idempotency key).
    let json = match &request.body {
        Body::Json(value) => Some(Bytes::from(serde_json::to_vec(value).map_err(|e| {
            Error::InvalidInput {
                operation_id: op.operation_id,
                message: format!("the body cannot be serialized: {e}"),
            }
        })?)),
        _ => None,
    };
    let span = tracing::Span::current();
    let rate_limited = |attempts: u32,
                        last: Option<(Option<Duration>, Option<String>)>,
                        because: RateLimitedBecause,
                        processed: bool| {
        let (retry_after, log_id) = last.unwrap_or_default();
        Error::RateLimited {
            operation_id: op.operation_id,
            attempts,
            waited: cx.start.elapsed(),
            retry_after,
            because,
            log_id,
            idempotency_key: cx.idempotency_key.clone(),
            may_have_been_processed: processed,
        }
    };
    // Adaptive mode: a request that got a 429 may keep its permit (its place at the head of
    // the class) while it waits out its Retry-After.
    let mut held: Option<(Permit, Instant)> = None;
    // The error of the last failed attempt, for a call that runs out of time waiting.
    let mut last_error: Option<Error> = None;

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
            Ok(permit) if Instant::now() < deadline => permit,
            _ if last_429.is_some() => {
                return Err(rate_limited(
                    attempts,
                    last_429,
                    RateLimitedBecause::Deadline,
                    processed,
                ));
            }
            _ => {
                return Err(last_error.unwrap_or(Error::Timeout {
                    operation_id: op.operation_id,
                    attempts,
                    may_have_been_processed: processed,
                    idempotency_key: cx.idempotency_key.clone(),
                    log_id: None,
                }));
            }
        };
        attempts += 1;
        span.record("attempt", attempts);
        let mut builder = inner.http.request(op.method.clone(), url.clone());
        if !inner.headers.is_empty() {
            builder = builder.headers(inner.headers.clone());
        }
        builder = builder.header(USER_AGENT, inner.user_agent.clone());
        let (name, value) = auth_header(client);
        builder = builder.header(name, value);
        builder = match (&request.body, &json) {
            (Body::Json(_), Some(bytes)) => builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes.clone()),
            (Body::Multipart(form), _) => builder.multipart(form.to_form()),
            _ => builder,
        };
        let sent_at = Instant::now();
        let mut seen = Seen::default();
        let exchanged = tokio::time::timeout_at(
            (sent_at + inner.timeout).min(deadline),
            exchange(builder, stream, inner.max_body_size, &mut seen),
        )
        .await;
        let elapsed = sent_at.elapsed();
        span.record("elapsed_ms", cx.start.elapsed().as_millis() as u64);
        let (outcome, error) = classify_attempt(&cx, client, attempts, processed, exchanged, &seen);
        processed |= outcome.may_have_been_processed();
        let log_id = header_str(&seen.headers, LOG_ID_HEADER);
        match seen.status {
            Some(status) => {
                span.record("status", status.as_u16());
                metrics::counter!("facturapi_requests_total", "class" => class, "status" => status_label(status)).increment(1);
            }
            None => {
                metrics::counter!("facturapi_requests_total", "class" => class, "status" => "error").increment(1);
            }
        }
        if let Some(id) = &log_id {
            span.record("log_id", id.as_str());
        }
        metrics::histogram!("facturapi_request_duration_seconds", "class" => class)
            .record(elapsed.as_secs_f64());

        let backoff = match outcome {
            Outcome::Success | Outcome::Final { .. } => Duration::ZERO,
            Outcome::RateLimited { .. } => full_jitter(
                schedule_429
                    .get_or_insert_with(|| policy.schedule())
                    .next()
                    .unwrap_or(policy.max_delay),
            ),
            _ => full_jitter(
                schedule
                    .get_or_insert_with(|| policy.schedule())
                    .next()
                    .unwrap_or(policy.max_delay),
            ),
        };
        let limits = Limits {
            max_retries: policy.max_retries,
            retry_after_cap: policy.retry_after_cap,
            min_delay: policy.min_delay,
            backoff,
            jitter: fastrand::f64(),
            remaining: deadline.saturating_duration_since(Instant::now()),
        };
        let action = classify::decide(op.retry, outcome, history, limits);
        // Any answer but a 429 went past the server's limiter and used its share of the
        // limit: the learner counts it as accepted, error or not (else the rate it reads runs
        // short of the limit by the server's error rate, and it paces that far under).
        if seen
            .status
            .is_some_and(|status| status != StatusCode::TOO_MANY_REQUESTS)
        {
            governor.on_accepted(op.class, &mut permit);
        }
        if let Outcome::RateLimited { retry_after } = outcome {
            metrics::counter!("facturapi_rate_limited_total", "class" => class).increment(1);
            last_429 = Some((retry_after, log_id.clone()));
        }
        match action {
            Action::Return => {
                let stream = seen.response.take().map(|inner_response| Streaming {
                    inner: inner_response,
                    permit,
                    idle: inner.stream_idle_timeout,
                    max_body_size: inner.max_body_size,
                });
                return Ok(Response {
                    op,
                    status: seen.status.unwrap_or(StatusCode::OK),
                    log_id,
                    idempotency_key: cx.idempotency_key,
                    body: Bytes::from(std::mem::take(&mut seen.body)),
                    stream,
                });
            }
            Action::Resend {
                after,
                spends_budget,
            } => {
                let until = Instant::now() + after;
                if let Outcome::RateLimited { retry_after } = outcome {
                    tracing::warn!(
                        ?retry_after,
                        wait = ?after,
                        log_id = log_id.as_deref(),
                        "rate limited; resending after Retry-After"
                    );
                    match governor.on_429(op.class, sent_at, permit, until) {
                        After429::Hold(permit) => held = Some((permit, until)),
                        After429::Released => tokio::time::sleep_until(until).await,
                    }
                } else {
                    drop(permit);
                    if spends_budget {
                        history.retries += 1;
                        metrics::counter!("facturapi_retries_total", "class" => class).increment(1);
                    }
                    if let Some(error) = &error {
                        tracing::info!(%error, delay = ?after, "retrying");
                    }
                    tokio::time::sleep_until(until).await;
                }
                last_error = error;
            }
            Action::GiveUp(why) => {
                if let Outcome::RateLimited { .. } = outcome {
                    // Its permit goes back; the class learns from the 429 all the same.
                    let _ = governor.on_429(op.class, sent_at, permit, Instant::now());
                    let because = match why {
                        GiveUp::RetryAfterAboveCap(_) => {
                            RateLimitedBecause::RetryAfterAboveCap(policy.retry_after_cap)
                        }
                        _ => RateLimitedBecause::Deadline,
                    };
                    return Err(rate_limited(attempts, last_429, because, processed));
                }
                drop(permit);
                let error = error.unwrap_or(Error::Timeout {
                    operation_id: op.operation_id,
                    attempts,
                    may_have_been_processed: processed,
                    idempotency_key: cx.idempotency_key.clone(),
                    log_id,
                });
                return Err(error);
            }
        }
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

    /// The whole body (a streamed one is read up to the client's `max_body_size`).
    pub async fn bytes(self) -> Result<Bytes> {
        if self.stream.is_none() {
            return Ok(self.body);
        }
        use futures_util::StreamExt as _;
        let limit = self.stream.as_ref().map_or(usize::MAX, |s| s.max_body_size);
        let (op, status, log_id, key) = (
            self.op,
            self.status.as_u16(),
            self.log_id.clone(),
            self.idempotency_key.clone(),
        );
        let mut chunks = self.stream();
        let mut body = Vec::new();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk?;
            if body.len() + chunk.len() > limit {
                return Err(Error::BodyTooLarge {
                    operation_id: op.operation_id,
                    status,
                    limit,
                    log_id,
                    idempotency_key: key,
                    may_have_been_processed: true,
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(body))
    }

    /// The body as JSON of type `T`. A body that does not decode is [`Error::Decode`] with
    /// the failing field's path, the (bounded) body and the document's `id` when it has one.
    pub async fn json<T: DeserializeOwned>(self) -> Result<T> {
        let (op, status, log_id) = (self.op, self.status.as_u16(), self.log_id.clone());
        let idempotency_key = self.idempotency_key.clone();
        let bytes = self.bytes().await?;
        // The common case pays nothing for path tracking: only a failure decodes again,
        // through serde_path_to_error, to name the failing field.
        let source = match serde_json::from_slice::<T>(&bytes) {
            Ok(value) => return Ok(value),
            Err(source) => source,
        };
        let path = failing_path::<T>(&bytes);
        let id = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_owned))
            .or_else(|| leading_id(&bytes));
        let shown = &bytes[..bytes.len().min(DECODE_BODY_LIMIT)];
        Err(Error::Decode(Box::new(crate::error::DecodeError {
            operation_id: op.operation_id,
            status,
            log_id,
            path,
            // Redacted with the generic patterns: the response does not know the key.
            body: redact(&String::from_utf8_lossy(shown), ""),
            id,
            idempotency_key,
            source,
        })))
    }

    /// The body as a stream of chunks (the class permit is held until the stream is dropped);
    /// a chunk that takes longer than the client's `stream_idle_timeout` ends it with
    /// [`Error::Timeout`].
    pub fn stream(self) -> ByteStream {
        let Response {
            op,
            idempotency_key,
            log_id,
            body,
            stream,
            ..
        } = self;
        let Some(streaming) = stream else {
            let once = futures_util::stream::once(async move { Ok(body) });
            return ByteStream {
                inner: Box::pin(once),
            };
        };
        let state = Some(streaming);
        let chunks = futures_util::stream::unfold(state, move |state| {
            let idempotency_key = idempotency_key.clone();
            let log_id = log_id.clone();
            async move {
                let mut streaming = state?;
                let error =
                    match tokio::time::timeout(streaming.idle, streaming.inner.chunk()).await {
                        Ok(Ok(Some(chunk))) => return Some((Ok(chunk), Some(streaming))),
                        Ok(Ok(None)) => return None,
                        Ok(Err(e)) => Error::Transport {
                            operation_id: op.operation_id,
                            attempts: 1,
                            may_have_been_processed: true,
                            log_id,
                            idempotency_key,
                            source: e.without_url(),
                        },
                        Err(_) => Error::Timeout {
                            operation_id: op.operation_id,
                            attempts: 1,
                            may_have_been_processed: true,
                            idempotency_key,
                            log_id,
                        },
                    };
                drop(streaming.permit);
                Some((Err(error), None))
            }
        });
        ByteStream {
            inner: Box::pin(chunks),
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
    fn foreign_error_bodies_keep_their_text() {
        let (message, code, ..) = parse_error_body(
            "{\"error\":\"upstream\",\"detail\":\"bad\"}",
            StatusCode::BAD_REQUEST,
        );
        assert_eq!(message, "{\"error\":\"upstream\",\"detail\":\"bad\"}");
        assert_eq!(code, ErrorCode::Unknown(String::new()));
        let (message, ..) = parse_error_body("  ", StatusCode::BAD_GATEWAY);
        assert_eq!(message, "Bad Gateway");
        let (message, code, path, _, errors) = parse_error_body(
            "{\"message\":\"m\",\"code\":\"not_found\",\"path\":\"p\",\"errors\":[{\"message\":1}]}",
            StatusCode::NOT_FOUND,
        );
        assert_eq!((message.as_str(), path.as_deref()), ("m", Some("p")));
        assert_ne!(code, ErrorCode::Unknown(String::new()));
        assert_eq!(
            errors.len(),
            1,
            "a detail of an odd shape is kept, its fields empty"
        );
    }

    #[test]
    fn the_id_of_a_body_cut_short() {
        assert_eq!(
            leading_id(b" { \"id\" : \"inv_1\", \"items\": [{\"qua").as_deref(),
            Some("inv_1")
        );
        assert_eq!(leading_id(b"{\"livemode\": false, \"id\": \"x\""), None);
        assert_eq!(leading_id(b"{\"id\": \"cut"), None);
        assert_eq!(leading_id(b""), None);
    }

    proptest::proptest! {
        /// Whatever a server sends as an error body (bytes, JSON of any shape): a typed error
        /// with a message, and no panic.
        #[test]
        fn error_body_parser(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300), code in 100u16..600) {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
            let text = String::from_utf8_lossy(&bytes);
            let (message, ..) = parse_error_body(&text, status);
            proptest::prop_assert!(!message.is_empty() || !text.trim().is_empty() || status.canonical_reason().is_none());
        }

        #[test]
        fn error_body_parser_on_json(value in json_value()) {
            let _ = parse_error_body(&value.to_string(), StatusCode::BAD_REQUEST);
        }
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "\\PC{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("message".to_owned()),
                        Just("code".to_owned()),
                        Just("errors".to_owned()),
                        "[a-z]{1,6}".prop_map(String::from)
                    ],
                    inner,
                    0..5
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
