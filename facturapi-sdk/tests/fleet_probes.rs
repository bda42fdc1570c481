//! The fleet's probes of a limit that holds, through a real `redis-server` (see
//! `support/redis.rs`): the shared learner waits longer between probes the longer the limit
//! has held, within the probe budget, and averages its readings of that limit
//! (`adaptive.rs`: `K_MIN`, `PATIENCE`, `PROBE_BUDGET`, `PROBE_TIME`, `READINGS`, whose
//! values this test restates): the fleet's wait grows by `PATIENCE` per second held, where a
//! process's own learner takes the longest wait at once when its limit has held.

use std::time::Duration;

use facturapi_sdk::sandbox::{ClassLimits, Sandbox, SandboxConfig, ServiceTime};
use facturapi_sdk::{Class, Client, SharedLimits};
use tokio::time::Instant;

#[path = "support/redis.rs"]
mod redis_server;

const K_MIN_US: f64 = 4e6;
const K_MAX_US: f64 = 24e6;
const PATIENCE: f64 = 0.25;
const PROBE_BUDGET: f64 = 0.0025;
const PROBE_TIME: f64 = 1.0;
const READINGS: f64 = 4.0;

/// A field of the class's state hash, as a number.
fn field(url: &str, key: &str, name: &str) -> f64 {
    let answer = redis_server::command(url, &["HGET", key, name]).unwrap_or_else(|e| panic!("{e}"));
    answer
        .first()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{key} has no number in {name}: {answer:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_probes_a_limit_that_holds_less_often_and_averages_its_readings() {
    let redis = redis_server::RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
    let config = SandboxConfig::default()
        .seed(5)
        .limit(Class::ListRead, ClassLimits::rate(20.0, 5.0))
        .service_time(ServiceTime::uniform(Duration::from_millis(40), 0.3));
    let sandbox = Sandbox::start(config).await.expect("a sandbox");
    let client = Client::builder()
        .api_key(sandbox.test_key())
        .base_url(sandbox.base_url())
        .shared_limits(SharedLimits::redis(redis.url()).salt("probe test"))
        .build()
        .expect("a client");
    // Eight callers list as fast as they can for 24 s: a 20/s limit that never moves.
    let end = Instant::now() + Duration::from_secs(24);
    let callers = (0..8).map(|_| {
        let client = client.clone();
        tokio::spawn(async move {
            while Instant::now() < end {
                client
                    .customers()
                    .list(&Default::default())
                    .await
                    .expect("a list call succeeds, 429s or not");
            }
        })
    });
    for caller in callers.collect::<Vec<_>>() {
        caller.await.expect("a caller");
    }
    let learned = client.learned(Class::ListRead);
    assert!(learned.shared, "the run used the fleet's limits");
    let url = redis.url();
    let keys = redis_server::command(&url, &["KEYS", "facturapi:*list_read*:state"])
        .unwrap_or_else(|e| panic!("{e}"));
    let [key] = keys.as_slice() else {
        panic!("one state hash for the class: {keys:?}")
    };
    let (w, k, readings) = (
        field(&url, key, "w"),
        field(&url, key, "k"),
        field(&url, key, "readings"),
    );
    let (cut, w_since) = (field(&url, key, "cut"), field(&url, key, "w_since"));
    // The limit held: several cuts found it, and their readings were averaged.
    assert!(
        (2.0..=READINGS).contains(&readings),
        "cuts at the same limit: {readings} (rate cuts {})",
        learned.rate_cuts
    );
    assert!((17.0..=23.0).contains(&w), "W, the readings' mean: {w}");
    // k grew with the time the limit held, within the budget at its rate.
    let longest = ((1.0 / (PROBE_BUDGET * w) - PROBE_TIME) * 1e6).clamp(K_MIN_US, K_MAX_US);
    let expected = (K_MIN_US + PATIENCE * (cut - w_since)).min(longest);
    assert!(
        (k - expected).abs() < 1.0,
        "k {k} µs, expected {expected} µs (held {} s, longest {longest} µs)",
        (cut - w_since) / 1e6
    );
    assert!(
        k > K_MIN_US,
        "a limit that held is probed later than one that moved: {k}"
    );
    sandbox.shutdown().await;
}
