//! Limits shared by every process of one organization, through Redis (feature `redis`).
//!
//! Facturapi limits the key, not the process: replicas, workers and cron jobs on one key
//! spend one budget. With [`SharedLimits`] every process admits each request through three
//! Lua scripts that run atomically on Redis, per (key digest, class):
//!
//! - **admit** (`admit.lua`): a lease, so the fleet as a whole holds at most the learned cap
//!   in flight (leases expire after [`LEASE_TTL`] unless their process renews them: a crashed
//!   process's leases stop counting within seconds), and a pacing slot on one GCRA schedule
//!   at the fleet's learned rate (the next free send time, on Redis's clock), booked at most
//!   [`HORIZON`] (or one slot) ahead: the others ask again as the schedule nears them, so a
//!   rate that grows is not held back by slots booked at the old one. The cap starts at the
//!   policy's `concurrency` and doubles each second while requests wait for it, until its
//!   first cut; after that it grows back by one after a hold that doubles with each cut.
//! - **release** (`release.lua`): the lease ends; a success is counted, so the accepted rate
//!   a cut reads is the fleet's.
//! - **refuse** (`refuse.lua`): a 429 is one congestion event for the fleet. Each admission
//!   carries the epoch of the last cut; a 429 of a request admitted before it is that cut's
//!   aftermath, so processes refused together make one cut, not one each. The rules follow
//!   the local learner's ([`crate::adaptive`]): the rate is cut to a share of the accepted
//!   rate (the first cut reads it over a quarter second at least, later ones over a second
//!   or since the cut, and never from before a second with nothing admitted: idle time is
//!   not a low rate), slow start ×2 then ×1.25 per second while the limit is being found,
//!   then a cubic back to a plateau below the last cut and probes beyond it; while cuts find
//!   the same limit, `k` grows with the time it has held (by [`constants::PATIENCE`] per
//!   second). A cut starts the schedule again two slots after it: the server that refused
//!   has no credit left, and a slot's worth absorbs the few milliseconds by which the
//!   processes' sends miss their slots. Growth time runs only while requests wait for the
//!   schedule, so an idle fleet does not grow.
//!   The cap is cut to the most served at once lately when requests above it are refused at
//!   two moments apart.
//!
//! **Degraded mode.** Each Redis call is bounded by [`REDIS_TIMEOUT`]. A call that fails or
//! times out sends the process to its local limits (the per-process learner) for
//! [`RETRY_REDIS`]; it logs the change, counts it in `facturapi_fleet_degraded_total`,
//! and after that one request asks Redis again while the others keep to the local limits
//! until it has the answer: a Redis that does not answer holds up one request a second, by
//! [`REDIS_TIMEOUT`]. Redis never fails a call. With
//! [`SharedLimits::fleet_size`], the local limits start at this process's share of the
//! fleet's, as last seen.
//!
//! **What stays in Redis.** A class's learned state (one hash: rate, cap, growth, counts)
//! has no expiry: a fleet deployed again on the same key and salt starts paced at the rate
//! and cap the last one learned, not with a burst of 429s to find them again; a limit that
//! fell meanwhile is cut by its first 429s. Leases end with their requests (or expire), and
//! the successes it counts are trimmed to the last 10 s as requests finish. Deleting the keys
//! (or changing the salt) starts the learning over.
//!
//! **The key never goes to Redis**: keys are named by an HMAC-SHA-256 of the API key (and
//! the base URL) under a salt ([`SharedLimits::salt`]), truncated to 128 bits.
//!
//! **TLS**: a `rediss://` URL speaks TLS (rustls), verified against the system's roots or
//! [`SharedLimits::root_certificate`]; a server that fails verification is a Redis that does
//! not answer (degraded mode).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::time::Instant;

use crate::adaptive::constants;
use crate::limits::Class;

/// Longest a call waits for Redis before going on without it.
pub(crate) const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
/// After a failed Redis call, the process keeps to its local limits this long before it
/// tries Redis again.
pub(crate) const RETRY_REDIS: Duration = Duration::from_secs(1);
/// A lease lives this long unless its process renews it.
pub(crate) const LEASE_TTL: Duration = Duration::from_secs(10);
/// How often a process renews the leases it holds.
const RENEW_EVERY: Duration = Duration::from_secs(3);
/// How long a request waits before asking again when the fleet's cap is full.
const FULL_POLL: Duration = Duration::from_millis(5);
/// How far ahead a slot on the fleet's schedule is booked at most (or one slot, if longer).
const HORIZON: Duration = Duration::from_millis(50);

/// Where the processes of one organization share their learned limits: a Redis server
/// (feature `redis`). Give it to [`ClientBuilder::shared_limits`](crate::ClientBuilder::shared_limits)
/// in every process that uses the key.
#[derive(Clone)]
pub struct SharedLimits {
    url: String,
    salt: String,
    fleet_size: Option<usize>,
    root_certificate: Option<Vec<u8>>,
}

impl SharedLimits {
    /// Shares through the Redis server at `url`: `redis://host:port/db`, or
    /// `rediss://host:port/db` for TLS (verified against the system's root certificates,
    /// or the one given to [`SharedLimits::root_certificate`]); with a user and password in
    /// the URL if the server wants them.
    pub fn redis(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            salt: "facturapi-rs shared limits".to_owned(),
            fleet_size: None,
            root_certificate: None,
        }
    }

    /// Verifies a `rediss://` server against this certificate authority (PEM, one
    /// certificate or more) instead of the system's roots: a Redis behind a private CA.
    /// [`ClientBuilder::build`](crate::ClientBuilder::build) refuses it with a `redis://`
    /// URL, or when the PEM holds no certificate.
    pub fn root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificate = Some(pem.into());
        self
    }

    /// How many processes share the key. While Redis does not answer, each process then
    /// starts its own limits at its share of the fleet's, as last seen (the rate and the cap
    /// divided by `processes`), instead of unpaced at the policy's concurrency. Without it,
    /// each process learns its share again from 429s.
    pub fn fleet_size(mut self, processes: usize) -> Self {
        self.fleet_size = Some(processes.max(1));
        self
    }

    /// The salt of the key digest that names the Redis keys (default: a fixed string). Every
    /// process of a fleet must use the same salt; a secret salt keeps whoever reads Redis
    /// from testing guesses of the API key against the names.
    pub fn salt(mut self, salt: impl Into<String>) -> Self {
        self.salt = salt.into();
        self
    }

    /// The URL without its password, for logs and `Debug`.
    fn redacted_url(&self) -> String {
        match reqwest::Url::parse(&self.url) {
            Ok(mut url) => {
                if url.password().is_some() {
                    let _ = url.set_password(Some("redacted"));
                }
                url.to_string()
            }
            Err(_) => "(invalid URL)".to_owned(),
        }
    }
}

impl fmt::Debug for SharedLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedLimits")
            .field("url", &self.redacted_url())
            .field("salt", &"redacted")
            .field("fleet_size", &self.fleet_size)
            .field("root_certificate", &self.root_certificate.is_some())
            .finish()
    }
}

/// A request's place in the fleet: its lease, and what the fleet knew when it was admitted.
/// Dropped unused (its call gave up while it waited for its slot), it is released.
pub(crate) struct Lease {
    id: String,
    class: Class,
    epoch: u64,
    /// Leases of the fleet held at its admission, itself included.
    pub(crate) level: u32,
    fleet: Option<Arc<Fleet>>,
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("class", &self.class)
            .field("epoch", &self.epoch)
            .field("level", &self.level)
            .finish_non_exhaustive()
    }
}

impl Lease {
    /// The request ended (`served`: it succeeded).
    pub(crate) fn release(mut self, served: bool) {
        if let Some(fleet) = self.fleet.take() {
            fleet.release(&self, served);
        }
    }

    /// The request got a 429 and waits `retry_after`.
    pub(crate) fn refused(mut self, retry_after: Duration, ceiling: usize) {
        if let Some(fleet) = self.fleet.take() {
            fleet.refused(&self, retry_after, ceiling);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(fleet) = self.fleet.take() {
            fleet.release(self, false);
        }
    }
}

/// What the fleet answered to an admission.
#[derive(Debug)]
pub(crate) enum Admit {
    /// Admitted: send after `wait` (its pacing slot).
    Go { wait: Duration, lease: Lease },
    /// Not now (the fleet's cap is full, or the fleet is paused): ask again after this.
    Later(Duration),
}

/// What the fleet knows of one class, as last seen by this process.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Seen {
    pub(crate) rate: Option<f64>,
    pub(crate) cap: usize,
    /// The fleet's cuts so far.
    pub(crate) rate_cuts: u64,
    pub(crate) cap_cuts: u64,
}

/// The Lua scripts, loaded once per connection (by digest, then by source if Redis lacks it).
struct Scripts {
    admit: redis::Script,
    release: redis::Script,
    refuse: redis::Script,
}

/// One process's side of the shared limits.
pub(crate) struct Fleet {
    client: redis::Client,
    conn: tokio::sync::OnceCell<ConnectionManager>,
    /// `facturapi:{<digest>`: the rest of each key names the class.
    prefix: String,
    process: String,
    next_id: AtomicU64,
    /// Set while the process keeps to its local limits: Redis is not asked before then
    /// (see [`Fleet::ask`]).
    down_until: Mutex<Option<Instant>>,
    degraded: AtomicBool,
    /// Leases held by this process, renewed every [`RENEW_EVERY`].
    live: Mutex<HashMap<String, Class>>,
    renewing: AtomicBool,
    seen: Mutex<[Seen; 5]>,
    scripts: Scripts,
    url: String,
    fleet_size: Option<usize>,
    /// Times Redis stopped answering (each starts degraded mode once).
    outages: AtomicU64,
}

impl fmt::Debug for Fleet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fleet")
            .field("url", &self.url)
            .field("degraded", &self.degraded.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Fleet {
    /// The fleet side of `secret`'s limits at `base_url` (the URL names the API, so a sandbox
    /// and production never share). Fails only on a malformed Redis URL or root certificate:
    /// the connection is made on first use.
    pub(crate) fn new(config: &SharedLimits, secret: &str, base_url: &str) -> Result<Self, String> {
        use hmac::Mac as _;
        // The redis crate's TLS takes the process's default crypto provider.
        crate::client::install_crypto_provider();
        let client = match &config.root_certificate {
            None => redis::Client::open(config.url.as_str())
                .map_err(|e| format!("invalid Redis URL {}: {e}", config.redacted_url()))?,
            Some(pem) => {
                use rustls::pki_types::{CertificateDer, pem::PemObject as _};
                if CertificateDer::pem_slice_iter(pem).next().is_none() {
                    return Err("the Redis root certificate holds no PEM certificate".to_owned());
                }
                let certificates = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                };
                redis::Client::build_with_tls(config.url.as_str(), certificates).map_err(|e| {
                    format!(
                        "cannot use the Redis root certificate with {}: {e}",
                        config.redacted_url()
                    )
                })?
            }
        };
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(config.salt.as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(secret.as_bytes());
        mac.update(b"\n");
        mac.update(base_url.as_bytes());
        let digest = mac.finalize().into_bytes();
        Ok(Self {
            client,
            conn: tokio::sync::OnceCell::new(),
            prefix: format!("facturapi:{{{}", hex::encode(&digest[..16])),
            process: uuid::Uuid::new_v4().simple().to_string()[..12].to_owned(),
            next_id: AtomicU64::new(0),
            down_until: Mutex::new(None),
            degraded: AtomicBool::new(false),
            live: Mutex::new(HashMap::new()),
            renewing: AtomicBool::new(false),
            seen: Mutex::new([Seen::default(); 5]),
            scripts: Scripts {
                admit: redis::Script::new(include_str!("admit.lua")),
                release: redis::Script::new(include_str!("release.lua")),
                refuse: redis::Script::new(include_str!("refuse.lua")),
            },
            url: config.redacted_url(),
            fleet_size: config.fleet_size,
            outages: AtomicU64::new(0),
        })
    }

    /// What names this fleet in the process's registry: the server and the key prefix.
    pub(crate) fn scope(&self) -> String {
        format!("{} {}", self.url, self.prefix)
    }

    /// The Redis keys of `class`: state, leases, starts, successes (one hash tag, so a
    /// cluster keeps them on one node).
    fn keys(&self, class: Class) -> [String; 4] {
        let base = format!("{}:{}}}", self.prefix, class.as_str());
        [
            format!("{base}:state"),
            format!("{base}:leases"),
            format!("{base}:starts"),
            format!("{base}:ok"),
        ]
    }

    /// Whether Redis may be asked now: not in degraded mode, or its wait is over.
    pub(crate) fn available(&self) -> bool {
        self.down_until
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none_or(|until| Instant::now() >= until)
    }

    /// Whether this admission may ask Redis. In degraded mode, once [`RETRY_REDIS`] is
    /// over, one admission asks it again and the others keep to the local limits until it
    /// has the answer, which comes within [`REDIS_TIMEOUT`] (they wait twice that, in case
    /// that admission is dropped first or its timer fires late): a Redis that does not
    /// answer holds up one call a second, not every call that starts then.
    fn ask(&self) -> bool {
        let mut down = self.down_until.lock().unwrap_or_else(|e| e.into_inner());
        match *down {
            None => true,
            Some(until) if Instant::now() < until => false,
            Some(_) => {
                *down = Some(Instant::now() + 2 * REDIS_TIMEOUT);
                true
            }
        }
    }

    /// Whether the last Redis call failed (the process runs on its local limits).
    pub(crate) fn degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    /// Outages so far, and the fleet size to divide the last-seen limits by in each.
    pub(crate) fn outages(&self) -> (u64, Option<usize>) {
        (self.outages.load(Ordering::Relaxed), self.fleet_size)
    }

    pub(crate) fn seen(&self, class: Class) -> Seen {
        self.seen
            .lock()
            .map(|s| s[class.index()])
            .unwrap_or_default()
    }

    fn failed(&self, error: &str) {
        *self.down_until.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(Instant::now() + RETRY_REDIS);
        if !self.degraded.swap(true, Ordering::Relaxed) {
            self.outages.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(redis = %self.url, error, "shared limits unavailable; using this process's own limits");
            metrics::counter!("facturapi_fleet_degraded_total").increment(1);
            metrics::gauge!("facturapi_fleet_degraded").set(1.0);
        }
    }

    fn succeeded(&self) {
        // Only `failed` starts a wait, and it sets `degraded` too: outside degraded mode
        // (every admission's call) there is no wait to clear and no lock to take.
        if self.degraded.swap(false, Ordering::Relaxed) {
            *self.down_until.lock().unwrap_or_else(|e| e.into_inner()) = None;
            tracing::info!(redis = %self.url, "shared limits available again");
            metrics::gauge!("facturapi_fleet_degraded").set(0.0);
        }
    }

    /// Runs one script, bounded by [`REDIS_TIMEOUT`]; a failure starts degraded mode.
    async fn run<T: redis::FromRedisValue>(
        &self,
        invocation: redis::ScriptInvocation<'_>,
    ) -> Option<T> {
        let call = async {
            let conn = self
                .conn
                .get_or_try_init(|| async {
                    let config = redis::aio::ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(REDIS_TIMEOUT))
                        .set_response_timeout(Some(REDIS_TIMEOUT))
                        .set_number_of_retries(1);
                    ConnectionManager::new_with_config(self.client.clone(), config).await
                })
                .await?;
            let mut conn = conn.clone();
            invocation.invoke_async::<T>(&mut conn).await
        };
        match tokio::time::timeout(REDIS_TIMEOUT, call).await {
            Ok(Ok(value)) => {
                self.succeeded();
                Some(value)
            }
            Ok(Err(e)) => {
                self.failed(&e.to_string());
                None
            }
            Err(_) => {
                self.failed("timed out");
                None
            }
        }
    }

    /// Asks the fleet to admit a request of `class`; `None` when Redis is unavailable (the
    /// caller uses its local limits).
    pub(crate) async fn admit(
        self: &Arc<Self>,
        class: Class,
        initial: usize,
        ceiling: usize,
    ) -> Option<Admit> {
        if !self.ask() {
            return None;
        }
        self.start_renewing();
        let id = format!(
            "{}:{}",
            self.process,
            self.next_id.fetch_add(1, Ordering::Relaxed)
        );
        let keys = self.keys(class);
        let mut invocation = self.scripts.admit.prepare_invoke();
        for key in &keys {
            invocation.key(key);
        }
        invocation
            .arg(&id)
            .arg(micros(LEASE_TTL))
            .arg(ceiling)
            .arg(constants::K_MIN * 1e6)
            .arg(constants::MARGIN)
            .arg(constants::PROBE)
            .arg(micros(constants::HOLD))
            .arg(micros(HORIZON))
            .arg(initial);
        type Answer = (u8, i64, u64, String, u32, usize, u64, u64);
        let (admitted, wait, epoch, rate, level, cap, rate_cuts, cap_cuts): Answer =
            self.run(invocation).await?;
        let rate = rate.parse::<f64>().ok().filter(|r| *r > 0.0);
        if let Ok(mut seen) = self.seen.lock() {
            seen[class.index()] = Seen {
                rate,
                cap,
                rate_cuts,
                cap_cuts,
            };
        }
        if admitted == 0 {
            // Spread the waiters, so one slot does not wake them all at once.
            let wait = u64::try_from(wait).map_or(FULL_POLL, Duration::from_micros);
            return Some(Admit::Later(wait + crate::governor::full_jitter(HORIZON)));
        }
        if let Ok(mut live) = self.live.lock() {
            live.insert(id.clone(), class);
        }
        Some(Admit::Go {
            wait: Duration::from_micros(wait.max(0) as u64),
            lease: Lease {
                id,
                class,
                epoch,
                level,
                fleet: Some(self.clone()),
            },
        })
    }

    /// The request of `lease` ended (`served`: it succeeded). Runs in the background: a
    /// lease that cannot be released expires.
    fn release(self: &Arc<Self>, lease: &Lease, served: bool) {
        let args = [u64::from(served), micros(constants::LEVEL_WINDOW)];
        self.in_background(lease, |s| &s.release, args.map(|a| a.to_string()).into());
    }

    /// The request of `lease` got a 429 (`retry_after`: how long the server asked it to
    /// wait). Runs in the background; the next admissions see what it decided.
    fn refused(self: &Arc<Self>, lease: &Lease, retry_after: Duration, ceiling: usize) {
        let args = [
            lease.epoch.to_string(),
            micros(retry_after).to_string(),
            ceiling.to_string(),
            constants::BETA.to_string(),
            constants::FIRST_BETA.to_string(),
            micros(constants::WINDOW).to_string(),
            micros(constants::GRACE).to_string(),
            constants::MIN_SAMPLES.to_string(),
            micros(constants::HOLD).to_string(),
            micros(constants::MAX_HOLD).to_string(),
            micros(constants::MOMENT).to_string(),
            micros(constants::LEVEL_WINDOW).to_string(),
            (constants::K_MIN * 1e6).to_string(),
            (constants::K_MAX * 1e6).to_string(),
            constants::SAME_LIMIT.to_string(),
            constants::PATIENCE.to_string(),
            constants::PROBE_BUDGET.to_string(),
            constants::PROBE_TIME.to_string(),
            constants::READINGS.to_string(),
        ];
        self.in_background(lease, |s| &s.refuse, args.into());
    }

    /// Runs a script on the lease's keys with its id and `args`, in a task of its own (a
    /// permit ends in `Drop`, which cannot wait for Redis).
    fn in_background(
        self: &Arc<Self>,
        lease: &Lease,
        script: fn(&Scripts) -> &redis::Script,
        args: Vec<String>,
    ) {
        self.forget(lease);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (fleet, id, class) = (self.clone(), lease.id.clone(), lease.class);
        runtime.spawn(async move {
            let mut invocation = script(&fleet.scripts).prepare_invoke();
            for key in &fleet.keys(class) {
                invocation.key(key);
            }
            invocation.arg(&id).arg(&args);
            let decided: Option<Vec<i64>> = fleet.run(invocation).await;
            if let Some(&[what @ 1..=3, epoch]) = decided.as_deref() {
                let what = ["", "rate cut", "cap cut", "pause"][what as usize];
                tracing::debug!(class = class.as_str(), what, epoch, "shared limits");
            }
        });
    }

    fn forget(&self, lease: &Lease) {
        if let Ok(mut live) = self.live.lock() {
            live.remove(&lease.id);
        }
    }

    /// Renews this process's leases every [`RENEW_EVERY`] while the fleet is in use.
    fn start_renewing(self: &Arc<Self>) {
        if self.renewing.swap(true, Ordering::Relaxed) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.renewing.store(false, Ordering::Relaxed);
            return;
        };
        let fleet: Weak<Fleet> = Arc::downgrade(self);
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(RENEW_EVERY).await;
                let Some(fleet) = fleet.upgrade() else { return };
                let held: Vec<(String, Class)> = match fleet.live.lock() {
                    Ok(live) => live.iter().map(|(id, c)| (id.clone(), *c)).collect(),
                    Err(_) => continue,
                };
                if held.is_empty() || !fleet.available() {
                    continue;
                }
                let Some(conn) = fleet.conn.get() else {
                    continue;
                };
                let mut conn = conn.clone();
                let mut pipe = redis::pipe();
                // Redis's own clock: the expiry is set relative to its time by a script-free
                // pipeline, so the renewal reads TIME first.
                let Ok(Ok((secs, micros_part))) = tokio::time::timeout(
                    REDIS_TIMEOUT,
                    redis::cmd("TIME").query_async::<(u64, u64)>(&mut conn),
                )
                .await
                else {
                    continue;
                };
                let expiry = secs * 1_000_000 + micros_part + micros(LEASE_TTL);
                for (id, class) in &held {
                    pipe.cmd("ZADD")
                        .arg(&fleet.keys(*class)[1])
                        .arg("XX")
                        .arg(expiry)
                        .arg(id)
                        .ignore();
                }
                let _ =
                    tokio::time::timeout(REDIS_TIMEOUT, pipe.query_async::<()>(&mut conn)).await;
            }
        });
    }
}

fn micros(d: Duration) -> u64 {
    d.as_micros() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_neither_the_redis_password_nor_the_salt() {
        let shared = SharedLimits::redis("redis://fleet:hunter2@10.0.0.5:6379/0")
            .salt("pepper-of-the-fleet")
            .fleet_size(4);
        let shown = format!("{shared:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("pepper"),
            "{shown}"
        );
        assert!(
            shown.contains("10.0.0.5") && shown.contains("fleet_size: Some(4)"),
            "{shown}"
        );
    }

    #[test]
    fn a_bad_redis_url_is_a_typed_error_when_the_client_is_built() {
        for url in ["not a url", "http://10.0.0.5/"] {
            let built = crate::Client::builder()
                .api_key("sk_test_fleet")
                .shared_limits(SharedLimits::redis(url))
                .build();
            match built {
                Err(crate::Error::InvalidInput { message, .. }) => {
                    assert!(message.contains("Redis URL"), "{url}: {message}");
                }
                other => panic!("{url}: {other:?}"),
            }
        }
        // TLS is a valid scheme: the connection (and its verification) waits for first use.
        for url in ["rediss://10.0.0.5:6379/", "redis://10.0.0.5:6379/"] {
            let built = crate::Client::builder()
                .api_key("sk_test_fleet")
                .shared_limits(SharedLimits::redis(url))
                .build();
            assert!(built.is_ok(), "{url}: {built:?}");
        }
    }

    #[test]
    fn key_names_carry_a_salted_digest_of_the_key_and_never_the_key() {
        let secret = "sk_test_0123456789abcdef";
        let a = Fleet::new(
            &SharedLimits::redis("redis://127.0.0.1/"),
            secret,
            "https://x/v2",
        )
        .expect("a fleet");
        let b = Fleet::new(
            &SharedLimits::redis("redis://127.0.0.1/").salt("another"),
            secret,
            "https://x/v2",
        )
        .expect("a fleet");
        let names = a.keys(Class::Create);
        assert!(
            names.iter().all(|n| !n.contains("0123456789abcdef")),
            "{names:?}"
        );
        assert_ne!(
            a.keys(Class::Create),
            b.keys(Class::Create),
            "the salt changes the names"
        );
        assert_ne!(
            names[0],
            a.keys(Class::Write)[0],
            "one set of keys per class"
        );
    }
}
