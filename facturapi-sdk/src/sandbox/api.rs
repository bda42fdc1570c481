//! The sandbox's request pipeline (auth → limits → faults → body → work → faults) and the
//! behaviour of each operation: stateful for customers, products, invoices, receipts,
//! retentions and webhooks; a body of the right shape from the fixtures for the rest.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{MethodFilter, MethodRouter};
use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::limits::Limits;
use super::store::{Env, Idempotency, Store, overlay, text};
use super::{Connection, Ledger, RetryAfter, SandboxConfig};
use crate::client::KeyKind;
use crate::limits::{Class, Operation};

/// Response fixtures generated from the spec by `cargo xtask codegen`.
mod emulate;
mod faults;
mod filters;

use emulate::*;
use faults::*;

const FIXTURES: &str = include_str!("../generated/sandbox_fixtures.json");
/// Larger bodies get `413 payload_too_large`.
const MAX_BODY: usize = 8 * 1024 * 1024;

#[derive(Debug, Default)]
struct OpFixture {
    status: u16,
    kind: String,
    ty: Option<String>,
    content_type: Option<String>,
    body_type: Option<String>,
    required: Vec<String>,
    required_query: Vec<String>,
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) config: SandboxConfig,
    pub(crate) limits: Arc<Limits>,
    store: Mutex<Store>,
    ledger: Mutex<Ledger>,
    rng: Mutex<fastrand::Rng>,
    ops: HashMap<&'static str, OpFixture>,
    types: Map<String, Value>,
    log_seq: AtomicU64,
    log_prefix: u64,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicked handler leaves data that is still consistent enough for a test double.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl State {
    pub(crate) fn new(config: SandboxConfig) -> Self {
        let file: Value = serde_json::from_str(FIXTURES).expect("generated fixtures are JSON");
        let mut ops = HashMap::new();
        for op in crate::operations() {
            let f = &file["operations"][op.operation_id];
            let string = |k: &str| f.get(k).and_then(Value::as_str).map(str::to_owned);
            ops.insert(
                op.operation_id,
                OpFixture {
                    status: f["status"].as_u64().unwrap_or(200) as u16,
                    kind: string("kind").unwrap_or_default(),
                    ty: string("type"),
                    content_type: string("content_type"),
                    body_type: string("body_type"),
                    required: strings(&f["required"]),
                    required_query: strings(&f["required_query"]),
                },
            );
        }
        let types = file["types"].as_object().cloned().unwrap_or_default();
        Self {
            limits: Arc::new(Limits::new(config.limits.clone(), config.schedule.clone())),
            rng: Mutex::new(fastrand::Rng::with_seed(config.seed)),
            log_prefix: fastrand::u64(..),
            config,
            store: Mutex::new(Store::default()),
            ledger: Mutex::new(Ledger::default()),
            ops,
            types,
            log_seq: AtomicU64::new(0),
        }
    }

    pub(crate) fn ledger(&self) -> Ledger {
        let mut ledger = lock(&self.ledger).clone();
        (ledger.max_in_flight, ledger.over_cap) = self.limits.in_flight_counts();
        ledger
    }

    fn template(&self, ty: &str) -> Value {
        self.types.get(ty).cloned().unwrap_or_else(|| json!({}))
    }
}

/// The axum router: one route per spec path, under `/v2`.
pub(crate) fn router(state: Arc<State>) -> Router {
    let mut by_path: BTreeMap<String, MethodRouter> = BTreeMap::new();
    for op in crate::operations() {
        let filter = match op.method {
            "GET" => MethodFilter::GET,
            "POST" => MethodFilter::POST,
            "PUT" => MethodFilter::PUT,
            "DELETE" => MethodFilter::DELETE,
            _ => MethodFilter::PATCH,
        };
        let st = state.clone();
        let handler = move |request: Request| {
            let st = st.clone();
            async move { handle(st, op, request).await }
        };
        let path = route_path(op.path);
        let methods = by_path.remove(&path).unwrap_or_default();
        by_path.insert(path, methods.on(filter, handler));
    }
    let mut router = Router::new();
    for (path, methods) in by_path {
        router = router.route(&path, methods);
    }
    let st = state.clone();
    router
        .fallback(|| async { error(404, "not_found", "No such route in the Facturapi API") })
        .layer(axum::middleware::map_response(move |response: Response| {
            let st = st.clone();
            async move { stamp_log_id(&st, response) }
        }))
}

/// Parameters are named by position: the spec names the same position differently on
/// sibling paths (`{invoice_id}`, `{id}`), which the router refuses; values are read back by
/// position from the template.
fn route_path(template: &str) -> String {
    let segments: Vec<String> = template
        .split('/')
        .enumerate()
        .map(|(i, s)| {
            if s.starts_with('{') {
                format!("{{p{i}}}")
            } else {
                s.to_owned()
            }
        })
        .collect();
    format!("/v2{}", segments.join("/"))
}

fn path_params(template: &str, path: &str) -> Vec<String> {
    let path = path.strip_prefix("/v2").unwrap_or(path);
    template
        .split('/')
        .zip(path.split('/'))
        .filter(|(t, _)| t.starts_with('{'))
        .map(|(_, v)| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect()
}

fn stamp_log_id(state: &State, mut response: Response) -> Response {
    let n = state.log_seq.fetch_add(1, Ordering::Relaxed);
    let id = format!("{:016x}{n:08x}", state.log_prefix);
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-facturapi-log-id", value);
    }
    response
}

/// A Facturapi error body.
#[derive(Debug)]
struct ApiErr {
    status: u16,
    code: &'static str,
    message: String,
    errors: Vec<Value>,
}

fn err(status: u16, code: &'static str, message: impl Into<String>) -> ApiErr {
    ApiErr {
        status,
        code,
        message: message.into(),
        errors: Vec::new(),
    }
}

fn error(status: u16, code: &'static str, message: &str) -> Response {
    err(status, code, message).into_response()
}

impl ApiErr {
    fn into_response(self) -> Response {
        let mut body = json!({
            "ok": false,
            "status": self.status,
            "code": self.code,
            "message": self.message,
        });
        if !self.errors.is_empty() {
            body["errors"] = Value::Array(self.errors);
        }
        json_response(self.status, &body)
    }
}

fn json_response(status: u16, body: &Value) -> Response {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

/// What an operation produced.
#[derive(Debug)]
enum Reply {
    Json(u16, Value),
    Binary(&'static str, Vec<u8>),
    Empty(u16),
}

type Outcome = Result<Reply, ApiErr>;

struct Identity {
    key: String,
    env: Env,
}

async fn handle(state: Arc<State>, op: &'static Operation, request: Request) -> Response {
    let connection = request.extensions().get::<Connection>().cloned();
    *lock(&state.ledger).requests.entry(op.class).or_default() += 1;
    let (parts, body) = request.into_parts();
    let identity = match authenticate(&state, op, &parts.headers, connection.as_ref()) {
        Ok(identity) => identity,
        Err(e) => return e.into_response(),
    };
    let in_flight = match state.limits.admit(&identity.key, op.class) {
        Ok(in_flight) => in_flight,
        Err(wait) => return rate_limited(&state, op.class, wait),
    };
    let fault = draw_fault(&state);
    if let Fault::ServerError(status) = fault {
        lock(&state.ledger).faults.server_errors += 1;
        return server_error(status);
    }
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(body) => body,
        Err(_) => return error(413, "payload_too_large", "The request body is too large"),
    };
    if fault == Fault::KeyInUse
        && op.method == "POST"
        && serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|b| b.get("idempotency_key").cloned())
            .is_some_and(|k| k.as_str().is_some_and(|k| !k.is_empty()))
    {
        lock(&state.ledger).faults.key_in_use += 1;
        return error(
            409,
            "idempotency_key_in_use",
            "Another request with this idempotency_key is in progress",
        );
    }
    let service = service_time(&state, op.class);
    let ctx = Ctx {
        state: &state,
        op,
        env: identity.env,
        params: path_params(op.path, parts.uri.path()),
        query: parts
            .uri
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default(),
    };
    let (outcome, committed) = ctx.run(&body, service).await;
    drop(in_flight);
    let mut response = match outcome {
        Ok(Reply::Json(status, body)) => json_response(status, &body),
        Ok(Reply::Binary(content_type, bytes)) => {
            let mut r = Response::new(Body::from(bytes));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            r
        }
        Ok(Reply::Empty(status)) => {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::NO_CONTENT);
            r
        }
        Err(e) => e.into_response(),
    };
    match fault {
        Fault::DropAfterCommit if committed => {
            lock(&state.ledger).faults.dropped_after_commit += 1;
            if let Some(c) = connection {
                c.kill.notify_one();
                // The connection task drops this future with the socket.
                std::future::pending::<()>().await;
            }
        }
        Fault::Stall => {
            lock(&state.ledger).faults.stalls += 1;
            tokio::time::sleep(state.config.faults.stall_for).await;
        }
        Fault::Malformed if is_json(&response) => {
            lock(&state.ledger).faults.malformed_json += 1;
            let bytes = axum::body::to_bytes(std::mem::take(response.body_mut()), MAX_BODY)
                .await
                .unwrap_or_default();
            let cut = bytes.slice(..bytes.len() / 2);
            *response.body_mut() = Body::from(cut);
        }
        _ => {}
    }
    response
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

fn authenticate(
    state: &State,
    op: &Operation,
    headers: &HeaderMap,
    connection: Option<&Connection>,
) -> Result<Identity, ApiErr> {
    let key = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(key) = key.filter(|k| !k.is_empty()) else {
        if op.keys.is_empty() {
            // Without credentials the limits apply per IP.
            let ip = connection.map_or_else(|| "unknown".to_owned(), |c| c.peer.ip().to_string());
            return Ok(Identity {
                key: format!("ip:{ip}"),
                env: "test",
            });
        }
        return Err(err(
            401,
            "missing_credentials",
            "Send your API key as a Bearer token",
        ));
    };
    if !state.config.keys.iter().any(|k| k == key) {
        return Err(err(401, "api_key_invalid", "The API key is not valid"));
    }
    let kind =
        KeyKind::of(key).ok_or_else(|| err(401, "api_key_invalid", "The API key is not valid"))?;
    if !op.keys.is_empty() && !op.keys.contains(&kind) {
        return Err(err(
            401,
            "api_key_not_allowed",
            format!("This operation does not accept {} keys", kind.as_str()),
        ));
    }
    // Limits are kept per identity; the key itself is not kept, so that no Debug output of
    // the sandbox's state shows it.
    let mut hasher = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(key, &mut hasher);
    Ok(Identity {
        key: format!("key#{:016x}", std::hash::Hasher::finish(&hasher)),
        env: kind.as_str(),
    })
}

/// One request, once it is admitted.
struct Ctx<'a> {
    state: &'a Arc<State>,
    op: &'static Operation,
    env: Env,
    params: Vec<String>,
    query: Vec<(String, String)>,
}

/// Holds an idempotency key as in use; frees it if the request ends before committing.
struct Reservation {
    state: Arc<State>,
    key: Option<(Env, &'static str, String)>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let mut store = lock(&self.state.store);
            if matches!(store.keys.get(&key), Some(Idempotency::InUse)) {
                store.keys.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_name_parameters_by_position() {
        assert_eq!(
            route_path("/invoices/{invoice_id}/cancellation_receipt/{format}"),
            "/v2/invoices/{p2}/cancellation_receipt/{p4}"
        );
        assert_eq!(
            path_params("/invoices/{invoice_id}/{format}", "/v2/invoices/a%2Fb/pdf"),
            vec!["a/b", "pdf"]
        );
    }
}
