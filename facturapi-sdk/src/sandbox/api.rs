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
use crate::governor::{Class, Operation};

/// Response fixtures generated from the spec by `cargo xtask codegen`.
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
        ledger.max_in_flight = self.limits.max_in_flight();
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

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    None,
    ServerError(u16),
    Stall,
    DropAfterCommit,
    Malformed,
    KeyInUse,
}

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

fn rate_limited(state: &State, class: Class, wait: Duration) -> Response {
    *lock(&state.ledger).rate_limited.entry(class).or_default() += 1;
    let mut response = error(429, "rate_limit_exceeded", "Too many requests, retry later");
    // Whole seconds, rounded up, at least one: what a server with a one-second clock says.
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    let value = match state.config.retry_after {
        RetryAfter::Seconds => Some(seconds.to_string()),
        RetryAfter::HttpDate => Some(httpdate::fmt_http_date(
            SystemTime::now() + Duration::from_secs(seconds),
        )),
        RetryAfter::Absent => None,
    };
    if let Some(value) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

fn server_error(status: u16) -> Response {
    if status == 500 {
        return error(500, "internal_error", "Unexpected error");
    }
    // A gateway in front of the API answers with its own page, not a Facturapi body.
    let mut r = Response::new(Body::from(format!(
        "<html><body><h1>{status}</h1></body></html>"
    )));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    r
}

fn draw_fault(state: &State) -> Fault {
    let f = state.config.faults;
    let mut rng = lock(&state.rng);
    let mut u = rng.f64();
    for (p, fault) in [
        (
            f.server_error,
            Fault::ServerError([500, 502, 503][rng.usize(..3)]),
        ),
        (f.stall, Fault::Stall),
        (f.drop_after_commit, Fault::DropAfterCommit),
        (f.malformed_json, Fault::Malformed),
        (f.key_in_use, Fault::KeyInUse),
    ] {
        if u < p {
            return fault;
        }
        u -= p;
    }
    Fault::None
}

/// Log-normal: `median · e^(σ·z)`, z standard normal by Box–Muller (fastrand has no
/// distributions, and two lines do not justify another dependency).
fn service_time(state: &State, class: Class) -> Duration {
    let st = &state.config.service_time;
    let Some((median, sigma)) = st.per_class.get(&class).copied() else {
        return Duration::ZERO;
    };
    if st.scale <= 0.0 {
        return Duration::ZERO;
    }
    let mut rng = lock(&state.rng);
    let (u1, u2) = (1.0 - rng.f64(), rng.f64());
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    median.mul_f64((sigma * z).exp() * st.scale)
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

const CUSTOMERS: &str = "customers";
const PRODUCTS: &str = "products";
const INVOICES: &str = "invoices";
const RECEIPTS: &str = "receipts";
const RETENTIONS: &str = "retentions";
const WEBHOOKS: &str = "webhooks";

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string().to_uppercase()
}

fn pdf(id: &str) -> Vec<u8> {
    format!("%PDF-1.4\n% facturapi-rs sandbox document {id}\n%%EOF\n").into_bytes()
}

fn xml(doc: &Value) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<cfdi:Comprobante xmlns:cfdi=\"http://www.sat.gob.mx/cfd/4\" Version=\"4.0\" Folio=\"{}\" Total=\"{}\"/>\n",
        text(doc.get("folio_number")).unwrap_or_default(),
        text(doc.get("total")).unwrap_or_default()
    )
    .into_bytes()
}

/// An empty ZIP archive: only the end-of-central-directory record.
fn zip() -> Vec<u8> {
    let mut z = vec![0x50, 0x4b, 0x05, 0x06];
    z.resize(22, 0);
    z
}

fn download(format: &str, doc: &Value, id: &str) -> Outcome {
    match format {
        "pdf" => Ok(Reply::Binary("application/pdf", pdf(id))),
        "xml" => Ok(Reply::Binary("application/xml", xml(doc))),
        "zip" => Ok(Reply::Binary("application/zip", zip())),
        other => Err(err(
            400,
            "invalid_request",
            format!("Unknown format {other:?}: use pdf, xml or zip"),
        )),
    }
}

impl Ctx<'_> {
    fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.state.store)
    }

    fn param(&self, i: usize) -> &str {
        self.params.get(i).map_or("", String::as_str)
    }

    fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn fixture(&self) -> &OpFixture {
        static EMPTY: OpFixture = OpFixture {
            status: 200,
            kind: String::new(),
            ty: None,
            content_type: None,
            body_type: None,
            required: Vec::new(),
            required_query: Vec::new(),
        };
        self.state.ops.get(self.op.operation_id).unwrap_or(&EMPTY)
    }

    fn not_found(&self, coll: &str) -> ApiErr {
        let code = match coll {
            CUSTOMERS => "customer_not_found",
            PRODUCTS => "product_not_found",
            INVOICES => "invoice_not_found",
            RECEIPTS => "receipt_not_found",
            RETENTIONS => "retention_not_found",
            WEBHOOKS => "webhook_not_found",
            _ => "not_found",
        };
        err(
            404,
            code,
            format!("No {coll} document with id {:?}", self.param(0)),
        )
    }

    fn get(&self, coll: &'static str) -> Result<Value, ApiErr> {
        self.store()
            .get(self.env, coll, self.param(0))
            .cloned()
            .ok_or_else(|| self.not_found(coll))
    }

    /// Checks required query parameters, then parses and validates the body; `Ok(None)` for
    /// operations without a JSON body.
    fn body(&self, raw: &Bytes) -> Result<Option<Value>, ApiErr> {
        let fixture = self.fixture();
        let missing: Vec<Value> = fixture
            .required_query
            .iter()
            .filter(|name| self.query(name).is_none_or(str::is_empty))
            .map(|name| {
                json!({
                    "message": format!("{name} is required"),
                    "code": "required",
                    "location": "query",
                    "path": name,
                    "source": "facturapi",
                })
            })
            .collect();
        if !missing.is_empty() {
            let mut e = err(400, "invalid_request", "The request has invalid parameters");
            e.errors = missing;
            return Err(e);
        }
        if fixture.body_type.is_none() {
            return Ok(None);
        }
        let body: Value = if raw.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            serde_json::from_slice(raw).map_err(|e| {
                err(
                    400,
                    "invalid_json",
                    format!("The body is not valid JSON: {e}"),
                )
            })?
        };
        if !body.is_object() {
            return Err(err(
                400,
                "invalid_request",
                "The body must be a JSON object",
            ));
        }
        let missing: Vec<Value> = fixture
            .required
            .iter()
            .filter(|f| body.get(f.as_str()).is_none_or(Value::is_null))
            .map(|f| {
                json!({
                    "message": format!("{f} is required"),
                    "code": "required",
                    "location": "body",
                    "path": f,
                    "source": "facturapi",
                })
            })
            .collect();
        if !missing.is_empty() {
            let mut e = err(400, "invalid_request", "The request has invalid fields");
            e.errors = missing;
            return Err(e);
        }
        Ok(Some(body))
    }

    /// Runs the operation: body checks, idempotency reservation, service time, the work.
    /// Returns the outcome and whether state was committed.
    async fn run(&self, raw: &Bytes, service: Duration) -> (Outcome, bool) {
        let body = match self.body(raw) {
            Ok(body) => body,
            Err(e) => return (Err(e), false),
        };
        let keyed_coll = match self.op.operation_id {
            "createInvoice" => Some(INVOICES),
            "createReceipt" => Some(RECEIPTS),
            "createRetention" => Some(RETENTIONS),
            _ => None,
        };
        let mut reservation = Reservation {
            state: self.state.clone(),
            key: None,
        };
        if let Some(coll) = keyed_coll
            && let Some(key) = body
                .as_ref()
                .and_then(|b| b.get("idempotency_key"))
                .and_then(Value::as_str)
        {
            match self.reserve(coll, key) {
                Ok(slot) => reservation.key = Some(slot),
                Err(Ok(doc)) => {
                    tokio::time::sleep(service).await;
                    lock(&self.state.ledger).idempotent_replays += 1;
                    let status = if doc["status"] == "pending" { 202 } else { 200 };
                    return (Ok(Reply::Json(status, doc)), false);
                }
                Err(Err(e)) => return (Err(e), false),
            }
        }
        tokio::time::sleep(service).await;
        let outcome = self.work(body.unwrap_or(Value::Null));
        let committed = outcome.is_ok() && self.op.method != "GET";
        if let (Some(_), Ok(Reply::Json(_, doc))) = (keyed_coll, &outcome) {
            let id = doc["id"].as_str().unwrap_or_default().to_owned();
            if let Some(key) = reservation.key.take() {
                self.store().keys.insert(key, Idempotency::Done(id));
            }
            let mut ledger = lock(&self.state.ledger);
            ledger.documents_created += 1;
            if let Some(external) = doc.get("external_id").and_then(Value::as_str) {
                let count = ledger
                    .created_by_external_id
                    .entry(external.to_owned())
                    .or_default();
                *count += 1;
                if *count > 1 {
                    ledger.duplicates += 1;
                }
            }
        }
        (outcome, committed)
    }

    /// Marks an idempotency key as in use; or the document it already made; or 409 while
    /// another request holds it.
    #[allow(clippy::type_complexity, reason = "private, one caller")]
    fn reserve(
        &self,
        coll: &'static str,
        key: &str,
    ) -> Result<(Env, &'static str, String), Result<Value, ApiErr>> {
        let slot = (self.env, coll, key.to_owned());
        let mut store = self.store();
        match store.keys.get(&slot).cloned() {
            Some(Idempotency::Done(id)) => Err(store
                .get(self.env, coll, &id)
                .cloned()
                .ok_or_else(|| self.not_found(coll))),
            Some(Idempotency::InUse) => Err(Err(err(
                409,
                "idempotency_key_in_use",
                "Another request with this idempotency_key is in progress",
            ))),
            None => {
                store.keys.insert(slot.clone(), Idempotency::InUse);
                Ok(slot)
            }
        }
    }

    fn work(&self, body: Value) -> Outcome {
        match self.op.operation_id {
            "createCustomer" => self.create_unique(CUSTOMERS, "tax_id", body),
            "listCustomers" => self.list(CUSTOMERS, &[], 50),
            "getCustomer" => self.get(CUSTOMERS).map(ok),
            "editCustomer" => self.update(CUSTOMERS, body, |_| Ok(())),
            "deleteCustomer" => self.delete(CUSTOMERS),
            "sendEditLinkByEmail" | "validateCustomerTaxInfo" => {
                self.get(CUSTOMERS).and_then(|_| self.canned())
            }

            "createProduct" => self.create(PRODUCTS, body).map(ok),
            "listProducts" => self.list(PRODUCTS, &[("sku", "/sku")], 50),
            "getProduct" => self.get(PRODUCTS).map(ok),
            "editProduct" => self.update(PRODUCTS, body, |_| Ok(())),
            "deleteProduct" => self.delete(PRODUCTS),

            "createInvoice" => self.create_invoice(body),
            "listInvoices" => self.list(
                INVOICES,
                &[
                    ("customer", "/customer/id"),
                    ("type", "/type"),
                    ("payment_method", "/payment_method"),
                    ("folio_number", "/folio_number"),
                    ("series", "/series"),
                    ("external_id", "/external_id"),
                    ("cancellation_status", "/cancellation_status"),
                    ("uuid", "/uuid"),
                ],
                100,
            ),
            "getInvoice" => self.get(INVOICES).map(ok),
            "updateDraftInvoice" => self.update(INVOICES, body, |doc| {
                if doc["status"] == "draft" {
                    Ok(())
                } else {
                    Err(err(
                        400,
                        "invoice_not_draft",
                        "Only draft invoices can be edited",
                    ))
                }
            }),
            "cancelInvoice" => self.cancel(INVOICES),
            "copyToDraftInvoice" => self.copy_to_draft(INVOICES),
            "stampDraftInvoice" => self.stamp(INVOICES),
            "downloadInvoice" => {
                let doc = self.get(INVOICES)?;
                if doc["status"] == "draft" {
                    return Err(err(400, "invoice_not_stamped", "A draft has no files yet"));
                }
                download(self.param(1), &doc, self.param(0))
            }
            "downloadCancellationReceiptXml" => {
                let doc = self.get(INVOICES)?;
                if doc["status"] != "canceled" {
                    return Err(err(
                        400,
                        "invoice_cancellation_receipt_unavailable",
                        "The invoice has not been canceled",
                    ));
                }
                download(self.param(1), &doc, self.param(0))
            }
            "sendInvoiceByEmail" => self.send_email(INVOICES),
            "updateInvoiceStatus" => self.get(INVOICES).map(ok),

            "createReceipt" => self.create_receipt(body),
            "listReceipts" => self.list(
                RECEIPTS,
                &[
                    ("customer", "/customer"),
                    ("payment_form", "/payment_form"),
                    ("invoice", "/invoice"),
                ],
                50,
            ),
            "getReceipt" => self.get(RECEIPTS).map(ok),
            "assignReceiptCustomer" => self.update(RECEIPTS, body, |_| Ok(())),
            "cancelReceipt" => self.set_status(RECEIPTS, "open", "canceled"),
            "downloadReceiptPdf" => self
                .get(RECEIPTS)
                .map(|_| Reply::Binary("application/pdf", pdf(self.param(0)))),
            "sendReceiptByEmail" => self.send_email(RECEIPTS),
            "invoiceReceipt" => self.invoice_receipt(body),

            "createRetention" => self.create_retention(body),
            "listRetentions" => self.list(
                RETENTIONS,
                &[("customer", "/customer/id"), ("status", "/status")],
                50,
            ),
            "getRetention" => self.get(RETENTIONS).map(ok),
            "updateDraftRetention" => self.update(RETENTIONS, body, |doc| {
                if doc["status"] == "draft" {
                    Ok(())
                } else {
                    Err(err(
                        400,
                        "invalid_operation",
                        "Only draft retentions can be edited",
                    ))
                }
            }),
            "cancelRetention" => self.cancel(RETENTIONS),
            "copyToDraftRetention" => self.copy_to_draft(RETENTIONS),
            "stampDraftRetention" => self.stamp(RETENTIONS),
            "downloadRetention" => {
                let doc = self.get(RETENTIONS)?;
                download(self.param(1), &doc, self.param(0))
            }
            "sendRetentionByEmail" => self.send_email(RETENTIONS),

            "createWebhook" => self.create_unique(WEBHOOKS, "url", body),
            "listWebhooks" => self.list(WEBHOOKS, &[], 50),
            "getWebhook" => self.get(WEBHOOKS).map(ok),
            "editWebhook" => self.update(WEBHOOKS, body, |_| Ok(())),
            "deleteWebhook" => self.delete(WEBHOOKS),

            _ => self.canned(),
        }
    }

    /// The fixture response of this operation.
    fn canned(&self) -> Outcome {
        let f = self.fixture();
        Ok(match f.kind.as_str() {
            "json" => {
                let mut body = self.state.template(f.ty.as_deref().unwrap_or_default());
                if let Some(ok) = body.get_mut("ok") {
                    *ok = json!(true);
                }
                if self.op.method == "GET"
                    && self.params.len() == 1
                    && let Some(id) = body.get_mut("id")
                {
                    *id = json!(self.param(0));
                }
                Reply::Json(f.status, body)
            }
            "binary" => match f.content_type.as_deref() {
                Some("application/zip") => Reply::Binary("application/zip", zip()),
                _ => Reply::Binary("application/pdf", pdf(self.op.operation_id)),
            },
            _ => Reply::Empty(f.status),
        })
    }

    /// A document of the operation's response model, filled from the body.
    fn new_doc(&self, body: &Value) -> (String, Value) {
        let ty = self.fixture().ty.clone().unwrap_or_default();
        let mut doc = self.state.template(&ty);
        overlay(&mut doc, body);
        let id = self.store().new_id();
        let map = doc
            .as_object_mut()
            .expect("models of documents are objects");
        map.insert("id".into(), json!(id));
        map.insert("created_at".into(), json!(now_rfc3339()));
        map.insert("livemode".into(), json!(self.env == "live"));
        for field in ["canceled_at", "external_id", "idempotency_key"] {
            if body.get(field).is_none_or(Value::is_null) {
                map.remove(field);
            }
        }
        (id, doc)
    }

    fn create(&self, coll: &'static str, body: Value) -> Result<Value, ApiErr> {
        let (id, doc) = self.new_doc(&body);
        self.store().insert(self.env, coll, id, doc.clone());
        Ok(doc)
    }

    /// Customers (by `tax_id`) and webhooks (by `url`): an existing one is answered with 200,
    /// a new one with 201.
    fn create_unique(&self, coll: &'static str, field: &str, body: Value) -> Outcome {
        let wanted = body.get(field).cloned();
        if let Some(existing) = self
            .store()
            .all(self.env, coll)
            .find(|d| wanted.is_some() && d.get(field) == wanted.as_ref())
        {
            return Ok(Reply::Json(200, existing.clone()));
        }
        self.create(coll, body).map(|d| Reply::Json(201, d))
    }

    /// Replaces `customer` and item `product` ids by the stored documents.
    fn resolve_refs(&self, body: &mut Value, customer_as_object: bool) -> Result<(), ApiErr> {
        let store = self.store();
        if let Some(id) = body
            .get("customer")
            .and_then(Value::as_str)
            .map(str::to_owned)
        {
            let customer = store
                .get(self.env, CUSTOMERS, &id)
                .ok_or_else(|| err(400, "customer_not_found", format!("No customer {id:?}")))?;
            if customer_as_object {
                body["customer"] = customer.clone();
            }
        }
        if let Some(items) = body.get_mut("items").and_then(Value::as_array_mut) {
            for item in items {
                if let Some(id) = item
                    .get("product")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                {
                    let product = store.get(self.env, PRODUCTS, &id).ok_or_else(|| {
                        err(400, "product_not_found", format!("No product {id:?}"))
                    })?;
                    item["product"] = product.clone();
                }
            }
        }
        Ok(())
    }

    fn total(doc: &Value) -> f64 {
        let sum: f64 = doc["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| {
                i["quantity"].as_f64().unwrap_or(1.0)
                    * i["product"]["price"].as_f64().unwrap_or(0.0)
            })
            .sum();
        (sum * 100.0).round() / 100.0
    }

    fn create_invoice(&self, mut body: Value) -> Outcome {
        if body.get("customer").is_none_or(Value::is_null) {
            let mut e = err(400, "invalid_request", "customer is required");
            e.errors = vec![
                json!({"message": "customer is required", "code": "required", "location": "body", "path": "customer", "source": "facturapi"}),
            ];
            return Err(e);
        }
        self.resolve_refs(&mut body, true)?;
        let draft = body["status"] == "draft";
        let pending = !draft && self.query("async") == Some("true");
        let (id, mut doc) = self.new_doc(&body);
        let folio = self.store().next_folio(self.env, INVOICES);
        doc["folio_number"] = json!(folio);
        doc["total"] = json!(Self::total(&doc));
        doc["cancellation_status"] = json!("none");
        doc["status"] = json!(if draft {
            "draft"
        } else if pending {
            "pending"
        } else {
            "valid"
        });
        doc["uuid"] = json!(if draft || pending {
            String::new()
        } else {
            new_uuid()
        });
        if body.get("date").is_none_or(Value::is_null) {
            doc["date"] = doc["created_at"].clone();
        }
        self.store().insert(self.env, INVOICES, id, doc.clone());
        Ok(Reply::Json(if pending { 202 } else { 200 }, doc))
    }

    fn create_receipt(&self, mut body: Value) -> Outcome {
        self.resolve_refs(&mut body, false)?;
        let (id, mut doc) = self.new_doc(&body);
        let folio = self.store().next_folio(self.env, RECEIPTS);
        doc["folio_number"] = json!(folio);
        doc["total"] = json!(Self::total(&doc));
        doc["status"] = json!("open");
        doc["key"] = json!(&id[16..]);
        for field in ["invoice", "customer"] {
            if body.get(field).is_none_or(Value::is_null)
                && let Some(map) = doc.as_object_mut()
            {
                map.remove(field);
            }
        }
        if body.get("date").is_none_or(Value::is_null) {
            doc["date"] = doc["created_at"].clone();
        }
        self.store().insert(self.env, RECEIPTS, id, doc.clone());
        Ok(Reply::Json(200, doc))
    }

    fn create_retention(&self, mut body: Value) -> Outcome {
        self.resolve_refs(&mut body, true)?;
        let draft = body["status"] == "draft";
        let (id, mut doc) = self.new_doc(&body);
        doc["status"] = json!(if draft { "draft" } else { "valid" });
        doc["uuid"] = json!(if draft { String::new() } else { new_uuid() });
        self.store().insert(self.env, RETENTIONS, id, doc.clone());
        Ok(Reply::Json(200, doc))
    }

    fn invoice_receipt(&self, mut body: Value) -> Outcome {
        let receipt = self.get(RECEIPTS)?;
        if receipt["status"] != "open" {
            return Err(err(400, "receipt_not_open", "The receipt is not open"));
        }
        self.resolve_refs(&mut body, true)?;
        body["items"] = receipt["items"].clone();
        let ty = self.fixture().ty.clone().unwrap_or_default();
        let mut doc = self.state.template(&ty);
        overlay(&mut doc, &body);
        let mut store = self.store();
        let id = store.new_id();
        doc["id"] = json!(id);
        doc["created_at"] = json!(now_rfc3339());
        doc["livemode"] = json!(self.env == "live");
        doc["status"] = json!("valid");
        doc["uuid"] = json!(new_uuid());
        doc["folio_number"] = json!(store.next_folio(self.env, INVOICES));
        doc["total"] = json!(Self::total(&doc));
        store.insert(self.env, INVOICES, id.clone(), doc.clone());
        if let Some(r) = store.get_mut(self.env, RECEIPTS, self.param(0)) {
            r["status"] = json!("invoiced_to_customer");
            r["invoice"] = json!(id);
        }
        Ok(Reply::Json(200, doc))
    }

    fn update(
        &self,
        coll: &'static str,
        body: Value,
        allowed: impl Fn(&Value) -> Result<(), ApiErr>,
    ) -> Outcome {
        let mut body = body;
        self.resolve_refs(&mut body, coll != RECEIPTS)?;
        let mut store = self.store();
        let doc = store
            .get_mut(self.env, coll, self.param(0))
            .ok_or_else(|| self.not_found(coll))?;
        allowed(doc)?;
        for field in ["id", "created_at", "livemode", "status", "uuid"] {
            if let Some(map) = body.as_object_mut() {
                map.remove(field);
            }
        }
        overlay(doc, &body);
        Ok(ok(doc.clone()))
    }

    fn delete(&self, coll: &'static str) -> Outcome {
        self.store()
            .remove(self.env, coll, self.param(0))
            .map(ok)
            .ok_or_else(|| self.not_found(coll))
    }

    fn set_status(&self, coll: &'static str, from: &str, to: &str) -> Outcome {
        let mut store = self.store();
        let doc = store
            .get_mut(self.env, coll, self.param(0))
            .ok_or_else(|| self.not_found(coll))?;
        if doc["status"] == from {
            doc["status"] = json!(to);
        } else if doc["status"] != to {
            return Err(err(
                400,
                "invalid_operation",
                format!("A {} document cannot become {to}", doc["status"]),
            ));
        }
        Ok(ok(doc.clone()))
    }

    fn cancel(&self, coll: &'static str) -> Outcome {
        let mut store = self.store();
        let doc = store
            .get_mut(self.env, coll, self.param(0))
            .ok_or_else(|| self.not_found(coll))?;
        match doc["status"].as_str() {
            Some("canceled") => {}
            Some("valid") => {
                doc["status"] = json!("canceled");
                if doc.get("cancellation_status").is_some() {
                    doc["cancellation_status"] = json!("accepted");
                }
                if let Some(map) = doc.as_object_mut() {
                    map.insert("canceled_at".into(), json!(now_rfc3339()));
                }
            }
            _ => {
                let code = if coll == INVOICES {
                    "invoice_not_cancelable"
                } else {
                    "retention_not_cancelable"
                };
                return Err(err(400, code, "Only valid documents can be canceled"));
            }
        }
        Ok(ok(doc.clone()))
    }

    fn copy_to_draft(&self, coll: &'static str) -> Outcome {
        let mut doc = self.get(coll)?;
        let mut store = self.store();
        let id = store.new_id();
        doc["id"] = json!(id);
        doc["created_at"] = json!(now_rfc3339());
        doc["status"] = json!("draft");
        doc["uuid"] = json!("");
        if let Some(map) = doc.as_object_mut() {
            for field in ["external_id", "idempotency_key", "canceled_at"] {
                map.remove(field);
            }
            if map.contains_key("cancellation_status") {
                map.insert("cancellation_status".into(), json!("none"));
            }
        }
        store.insert(self.env, coll, id, doc.clone());
        Ok(ok(doc))
    }

    fn stamp(&self, coll: &'static str) -> Outcome {
        let mut store = self.store();
        let folio = store.next_folio(self.env, coll);
        let doc = store
            .get_mut(self.env, coll, self.param(0))
            .ok_or_else(|| self.not_found(coll))?;
        if doc["status"] != "draft" {
            let code = if coll == INVOICES {
                "invoice_already_stamped"
            } else {
                "invalid_operation"
            };
            return Err(err(400, code, "Only drafts can be stamped"));
        }
        doc["status"] = json!("valid");
        doc["uuid"] = json!(new_uuid());
        if doc.get("folio_number").is_some() {
            doc["folio_number"] = json!(folio);
        }
        Ok(ok(doc.clone()))
    }

    fn send_email(&self, coll: &'static str) -> Outcome {
        let doc = self.get(coll)?;
        if doc["status"] == "draft" {
            return Err(err(400, "invalid_operation", "Drafts cannot be sent"));
        }
        self.canned()
    }

    /// Lists with Facturapi's envelope, `page`/`limit`, `q`, `date[…]` and field filters.
    fn list(&self, coll: &'static str, fields: &[(&str, &str)], default_limit: u64) -> Outcome {
        let number = |name: &str, default: u64, max: u64| -> Result<u64, ApiErr> {
            match self.query(name) {
                None => Ok(default),
                Some(v) => match v.parse::<u64>() {
                    Ok(n) if (1..=max).contains(&n) => Ok(n),
                    Ok(n) if name == "page" && n > max => Err(err(
                        400,
                        "page_too_large",
                        "page must be at most 30: narrow the query with date filters",
                    )),
                    _ => {
                        let mut e =
                            err(400, "invalid_request", format!("{name} must be 1..={max}"));
                        e.errors = vec![
                            json!({"message": format!("{name} must be 1..={max}"), "code": "invalid_value", "location": "query", "path": name, "source": "facturapi"}),
                        ];
                        Err(e)
                    }
                },
            }
        };
        let page = number("page", 1, 30)?;
        let limit = number("limit", default_limit, 100)?;
        let mut bounds = Vec::new();
        for (name, value) in &self.query {
            let op = match name.as_str() {
                "date[gt]" => "gt",
                "date[gte]" => "gte",
                "date[lt]" => "lt",
                "date[lte]" => "lte",
                _ => continue,
            };
            let at = parse_date(value).ok_or_else(|| {
                err(
                    400,
                    "invalid_date",
                    format!("{name}={value:?} is not an ISO-8601 date"),
                )
            })?;
            bounds.push((op, at));
        }
        let q = self.query("q").map(str::to_lowercase);
        let store = self.store();
        let matching: Vec<&Value> = store
            .all(self.env, coll)
            .filter(|doc| {
                fields
                    .iter()
                    .all(|(param, pointer)| match self.query(param) {
                        None => true,
                        // Lists like `cancellation_status=none,accepted` match any of their values.
                        Some(wanted) => text(doc.pointer(pointer))
                            .is_some_and(|have| wanted.split(',').any(|w| w == have)),
                    })
            })
            .filter(|doc| {
                let q = match &q {
                    None => return true,
                    Some(q) => q,
                };
                [
                    "/legal_name",
                    "/tax_id",
                    "/description",
                    "/external_id",
                    "/sku",
                    "/email",
                    "/url",
                    "/customer/legal_name",
                    "/customer/tax_id",
                ]
                .iter()
                .filter_map(|p| doc.pointer(p).and_then(Value::as_str))
                .any(|s| s.to_lowercase().contains(q.as_str()))
            })
            .filter(|doc| {
                if bounds.is_empty() {
                    return true;
                }
                let at = doc
                    .get("date")
                    .or_else(|| doc.get("created_at"))
                    .and_then(Value::as_str)
                    .and_then(parse_date);
                let Some(at) = at else { return false };
                bounds.iter().all(|(op, bound)| match *op {
                    "gt" => at > *bound,
                    "gte" => at >= *bound,
                    "lt" => at < *bound,
                    _ => at <= *bound,
                })
            })
            .collect();
        let total = matching.len() as u64;
        let data: Vec<Value> = matching
            .into_iter()
            .skip(((page - 1) * limit) as usize)
            .take(limit as usize)
            .cloned()
            .collect();
        Ok(ok(json!({
            "page": page,
            "total_pages": total.div_ceil(limit),
            "total_results": total,
            "data": data,
        })))
    }
}

fn ok(doc: Value) -> Reply {
    Reply::Json(200, doc)
}

/// RFC 3339, or a bare date (midnight UTC).
fn parse_date(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&chrono::Utc));
    }
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    Some(d.and_hms_opt(0, 0, 0)?.and_utc())
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

    #[test]
    fn dates_parse_as_rfc3339_or_bare_dates() {
        assert_eq!(
            parse_date("2026-01-02").unwrap(),
            parse_date("2026-01-02T00:00:00Z").unwrap()
        );
        assert!(parse_date("yesterday").is_none());
    }
}
