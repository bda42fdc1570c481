//! A local Facturapi for tests, examples and benchmarks (feature `sandbox`).
//!
//! It answers every operation of the spec on `127.0.0.1`, keeps customers, products,
//! invoices, receipts, retentions and webhooks in memory, and behaves like the real API
//! where a client's correctness depends on it:
//!
//! - **hidden limits** per (identity, [`Class`]): a token bucket, a fixed window and a
//!   concurrency cap, each optional, answered with `429`, code `rate_limit_exceeded` and a
//!   `Retry-After` in seconds, as an HTTP-date or absent ([`RetryAfter`]); the limits can
//!   change on a schedule ([`LimitChange`]);
//! - an `X-Facturapi-Log-Id` on every response, a service time per class ([`ServiceTime`]);
//! - **faults** ([`Faults`]): 500/502/503, stalls, malformed JSON, 409 key in use, and a connection dropped
//!   after a write was committed (the case that makes naive clients create duplicates);
//! - a [`Ledger`] of what it accepted: documents per `external_id` and idempotency key,
//!   duplicates, requests and 429s per class, the highest concurrency seen.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> facturapi_sdk::Result<()> {
//! use facturapi_sdk::Client;
//! use facturapi_sdk::sandbox::{Sandbox, SandboxConfig};
//!
//! let sandbox = Sandbox::start(SandboxConfig::default()).await.expect("bind 127.0.0.1");
//! let client = Client::builder()
//!     .api_key(sandbox.test_key())
//!     .base_url(sandbox.base_url())
//!     .build()?;
//! let page = client.customers().list(&Default::default()).await?;
//! assert_eq!(page.total_results, Some(0));
//! sandbox.shutdown().await;
//! # Ok(()) }
//! ```

mod api;
mod limits;
mod store;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::limits::Class;

/// What the sandbox does; [`SandboxConfig::default`] is a well-behaved API: no limits, no
/// faults, no service time, and one key of each kind.
#[derive(Clone)]
#[non_exhaustive]
pub struct SandboxConfig {
    /// Accepted keys (`sk_test_…`, `sk_live_…`, `sk_user_…`); any other key gets `401`.
    pub keys: Vec<String>,
    /// Hidden limits per class; a class without an entry is unlimited.
    pub limits: BTreeMap<Class, ClassLimits>,
    /// How `Retry-After` is written on a `429`.
    pub retry_after: RetryAfter,
    /// Changes to every limit over time, measured from [`Sandbox::start`].
    pub schedule: Vec<LimitChange>,
    /// Time spent on each request, per class.
    pub service_time: ServiceTime,
    /// Fault injection rates.
    pub faults: Faults,
    /// Seed for service times and faults.
    pub seed: u64,
    /// Port on 127.0.0.1 (0 picks a free one).
    pub port: u16,
}

/// Keys are shown by kind only, as everywhere in this crate.
impl std::fmt::Debug for SandboxConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<&str> = self
            .keys
            .iter()
            .map(|k| crate::client::KeyKind::of(k).map_or("invalid", |kind| kind.as_str()))
            .collect();
        f.debug_struct("SandboxConfig")
            .field("keys", &keys)
            .field("limits", &self.limits)
            .field("retry_after", &self.retry_after)
            .field("schedule", &self.schedule)
            .field("service_time", &self.service_time)
            .field("faults", &self.faults)
            .field("seed", &self.seed)
            .field("port", &self.port)
            .finish()
    }
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            keys: vec![
                "sk_test_sandbox0000000000000000".to_owned(),
                "sk_live_sandbox0000000000000000".to_owned(),
                "sk_user_sandbox0000000000000000".to_owned(),
            ],
            limits: BTreeMap::new(),
            retry_after: RetryAfter::Seconds,
            schedule: Vec::new(),
            service_time: ServiceTime::zero(),
            faults: Faults::none(),
            seed: 0x5eed,
            port: 0,
        }
    }
}

impl SandboxConfig {
    /// Sets the hidden limits of one class.
    pub fn limit(mut self, class: Class, limits: ClassLimits) -> Self {
        self.limits.insert(class, limits);
        self
    }

    /// Sets how `Retry-After` is written.
    pub fn retry_after(mut self, mode: RetryAfter) -> Self {
        self.retry_after = mode;
        self
    }

    /// Adds a scheduled change of every limit.
    pub fn change_limits(mut self, at: Duration, factor: f64) -> Self {
        self.schedule.push(LimitChange { at, factor });
        self
    }

    /// Sets the service times.
    pub fn service_time(mut self, service_time: ServiceTime) -> Self {
        self.service_time = service_time;
        self
    }

    /// Sets the fault rates.
    pub fn faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// Sets the seed of service times and faults.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the port (0: any free port).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// A realistic profile: the limits, service times and light faults the README's bulk
    /// job runs against. Clients are not told these numbers; they have to find them.
    pub fn realistic() -> Self {
        Self::default()
            .limit(
                Class::DetailRead,
                ClassLimits::rate(50.0, 20.0).concurrent(16),
            )
            .limit(Class::ListRead, ClassLimits::rate(10.0, 5.0).concurrent(4))
            .limit(Class::Create, ClassLimits::rate(30.0, 10.0).concurrent(8))
            .limit(Class::Write, ClassLimits::rate(20.0, 10.0).concurrent(8))
            .limit(Class::HeavyWrite, ClassLimits::rate(5.0, 2.0).concurrent(3))
            .service_time(ServiceTime::realistic())
            .faults(Faults {
                server_error: 0.01,
                stall: 0.002,
                stall_for: Duration::from_secs(3),
                drop_after_commit: 0.01,
                malformed_json: 0.005,
                key_in_use: 0.0,
            })
    }
}

/// The hidden limits of one class, per identity. Every limit set must admit a request.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct ClassLimits {
    /// Token bucket: `(rate per second, burst)`.
    pub token_bucket: Option<(f64, f64)>,
    /// Fixed window: `(requests, window length)`.
    pub fixed_window: Option<(u32, Duration)>,
    /// Requests in progress at once.
    pub concurrency: Option<u32>,
}

impl ClassLimits {
    /// A token bucket of `per_second` with room for `burst` requests.
    pub fn rate(per_second: f64, burst: f64) -> Self {
        Self {
            token_bucket: Some((per_second, burst.max(1.0))),
            ..Self::default()
        }
    }

    /// At most `requests` per fixed `window`.
    pub fn window(requests: u32, window: Duration) -> Self {
        Self {
            fixed_window: Some((requests, window)),
            ..Self::default()
        }
    }

    /// Only a concurrency cap.
    pub fn concurrency_only(max: u32) -> Self {
        Self::default().concurrent(max)
    }

    /// Adds a concurrency cap.
    pub fn concurrent(mut self, max: u32) -> Self {
        self.concurrency = Some(max.max(1));
        self
    }
}

/// How a `429` carries `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// Whole seconds (at least 1), as Facturapi documents.
    Seconds,
    /// An HTTP-date (RFC 9110 allows it).
    HttpDate,
    /// No header at all.
    Absent,
}

/// From `at` after start, every limit is the configured one times `factor` (the latest
/// change that has passed wins).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LimitChange {
    /// Time from start.
    pub at: Duration,
    /// Multiplier of rates, bursts, window sizes and concurrency caps.
    pub factor: f64,
}

/// Service time per class: log-normal with a median and a shape, times `scale`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ServiceTime {
    /// `(median, sigma)` per class; a class without an entry answers at once.
    pub per_class: BTreeMap<Class, (Duration, f64)>,
    /// Multiplies every sampled time (0 turns service time off).
    pub scale: f64,
}

impl ServiceTime {
    /// No service time.
    pub fn zero() -> Self {
        Self {
            per_class: BTreeMap::new(),
            scale: 0.0,
        }
    }

    /// Reads ~20 ms, creates ~150 ms, writes ~80 ms, heavy writes ~600 ms (medians).
    pub fn realistic() -> Self {
        let ms = Duration::from_millis;
        Self {
            per_class: BTreeMap::from([
                (Class::DetailRead, (ms(20), 0.4)),
                (Class::ListRead, (ms(35), 0.4)),
                (Class::Create, (ms(150), 0.35)),
                (Class::Write, (ms(80), 0.35)),
                (Class::HeavyWrite, (ms(600), 0.3)),
            ]),
            scale: 1.0,
        }
    }

    /// The same for every class: `median` with shape `sigma`.
    pub fn uniform(median: Duration, sigma: f64) -> Self {
        Self {
            per_class: Class::ALL.iter().map(|c| (*c, (median, sigma))).collect(),
            scale: 1.0,
        }
    }

    /// Scales every time (0.5 halves them).
    pub fn scaled(mut self, scale: f64) -> Self {
        self.scale = scale;
        self
    }
}

/// Fault injection: each is the probability per request that passed the limits. Build it
/// as `Faults { drop_after_commit: 0.05, ..Faults::none() }`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Faults {
    /// 500, 502 or 503 before anything is done (502/503 with a non-JSON body, as a gateway).
    pub server_error: f64,
    /// The response is held back for `stall_for` after the work is done.
    pub stall: f64,
    /// How long a stall lasts.
    pub stall_for: Duration,
    /// For writes: the work is committed, then the connection is closed without a response.
    pub drop_after_commit: f64,
    /// A JSON response body is cut short after the work is done.
    pub malformed_json: f64,
    /// A creation carrying an `idempotency_key` answers `409 idempotency_key_in_use` before
    /// doing anything, as while an earlier attempt with the key is still in progress.
    pub key_in_use: f64,
}

impl Faults {
    /// No faults.
    pub fn none() -> Self {
        Self {
            server_error: 0.0,
            stall: 0.0,
            stall_for: Duration::from_secs(30),
            drop_after_commit: 0.0,
            malformed_json: 0.0,
            key_in_use: 0.0,
        }
    }
}

/// What the sandbox accepted and refused, read with [`Sandbox::ledger`].
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Ledger {
    /// Invoices, receipts and retentions created (replays of an idempotency key excluded).
    pub documents_created: u64,
    /// Documents created per `external_id` (only those that carried one).
    pub created_by_external_id: BTreeMap<String, u32>,
    /// Documents created beyond the first for the same `external_id`.
    pub duplicates: u64,
    /// Creations answered with the document an idempotency key already made.
    pub idempotent_replays: u64,
    /// Requests per class (all of them, 429s included).
    pub requests: BTreeMap<Class, u64>,
    /// `429`s sent per class.
    pub rate_limited: BTreeMap<Class, u64>,
    /// The most requests of one class in progress at once, across identities.
    pub max_in_flight: BTreeMap<Class, u32>,
    /// `429`s per class for a full concurrency cap: requests that arrived while their
    /// identity already had as many in progress as its cap allows (sent over the cap).
    pub over_cap: BTreeMap<Class, u64>,
    /// Faults injected.
    pub faults: FaultCounts,
}

impl Ledger {
    /// All requests.
    pub fn total_requests(&self) -> u64 {
        self.requests.values().sum()
    }

    /// All 429s.
    pub fn total_rate_limited(&self) -> u64 {
        self.rate_limited.values().sum()
    }
}

/// Faults injected, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FaultCounts {
    /// 500/502/503 answers.
    pub server_errors: u64,
    /// Stalled responses.
    pub stalls: u64,
    /// Connections closed after a committed write.
    pub dropped_after_commit: u64,
    /// Truncated JSON bodies.
    pub malformed_json: u64,
    /// `409 idempotency_key_in_use` answers.
    pub key_in_use: u64,
}

/// A running sandbox. Dropping it stops it too; [`Sandbox::shutdown`] also waits.
pub struct Sandbox {
    addr: SocketAddr,
    base_url: String,
    state: Arc<api::State>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Sandbox {
    /// Binds `127.0.0.1:<port>` and starts serving. Needs a Tokio runtime.
    pub async fn start(config: SandboxConfig) -> std::io::Result<Sandbox> {
        let listener = TcpListener::bind(("127.0.0.1", config.port)).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(api::State::new(config));
        let router = api::router(state.clone());
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(serve(listener, router, stopped));
        Ok(Sandbox {
            addr,
            base_url: format!("http://{addr}/v2"),
            state,
            stop,
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:<port>/v2`, for [`ClientBuilder::base_url`](crate::ClientBuilder::base_url).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The first configured key of a kind (`sk_test_…`, …).
    pub fn key(&self, kind: crate::KeyKind) -> Option<&str> {
        self.state
            .config
            .keys
            .iter()
            .find(|k| crate::client::KeyKind::of(k) == Some(kind))
            .map(String::as_str)
    }

    /// The first configured test key.
    ///
    /// # Panics
    /// When the configuration has no `sk_test_` key.
    pub fn test_key(&self) -> &str {
        self.key(crate::KeyKind::Test)
            .expect("the sandbox configuration has an sk_test_ key")
    }

    /// A snapshot of the ledger.
    pub fn ledger(&self) -> Ledger {
        self.state.ledger()
    }

    /// The limits in force now for a class (after scheduled changes), as the oracle of a
    /// benchmark would know them.
    pub fn current_limits(&self, class: Class) -> Option<ClassLimits> {
        self.state.limits.current(class)
    }

    /// Stops accepting, closes open connections and waits for the server task.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// The address and configuration; the documents it holds are left out.
impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("base_url", &self.base_url)
            .field("config", &self.state.config)
            .finish_non_exhaustive()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Per connection: the handler can ask for the connection to be closed with no response.
#[derive(Debug, Clone)]
pub(crate) struct Connection {
    pub(crate) peer: SocketAddr,
    pub(crate) kill: Arc<Notify>,
}

/// The accept loop. axum's own `serve` cannot close one connection on request, which the
/// drop-after-commit fault needs, so connections are served by hyper here.
async fn serve(listener: TcpListener, router: axum::Router, mut stopped: watch::Receiver<bool>) {
    use tower_service::Service as _;
    loop {
        let (stream, peer) = tokio::select! {
            _ = stopped.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                // Out of descriptors and the like: try again rather than end the sandbox.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let kill = Arc::new(Notify::new());
            let connection = Connection {
                peer,
                kill: kill.clone(),
            };
            let service = hyper::service::service_fn(move |mut request| {
                request.extensions_mut().insert(connection.clone());
                router.clone().call(request)
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            // Dropping `conn` closes the socket, with whatever request was in progress.
            tokio::select! {
                _ = conn => {}
                _ = kill.notified() => {}
                _ = stopped.changed() => {}
            }
        });
    }
}
