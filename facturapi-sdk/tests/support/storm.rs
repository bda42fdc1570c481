//! A fault storm: `n` keyed invoice creations through the sandbox with every fault turned
//! up (5xx, connections dropped after the commit, stalls past the attempt timeout, bodies
//! cut short, `409 idempotency_key_in_use`, and 429 storms: a second client on the same key
//! with static limits sends a third of the jobs unpaced, and the limit halves mid-run).
//! The caller resends each failure with the same idempotency key (what the errors tell it
//! to do) until it succeeds; the sandbox's ledger then says whether anything was lost or
//! created twice. Shared by `tests/fault_storm.rs` (small, in CI) and
//! `examples/fault_storm.rs` (10,000).

use std::collections::BTreeMap;
use std::time::Duration;

use facturapi_sdk::sandbox::{ClassLimits, Faults, Sandbox, SandboxConfig, ServiceTime};
use facturapi_sdk::{Class, Client, Error, models};
use futures_util::StreamExt as _;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use serde_json::json;

/// What a storm came to.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) jobs: usize,
    pub(crate) created: usize,
    pub(crate) duplicated: u64,
    pub(crate) lost: usize,
    pub(crate) wall: Duration,
    pub(crate) requests: u64,
    pub(crate) rate_limited: u64,
    pub(crate) faults: String,
    /// Errors the caller saw, by kind (each was resent with the same key).
    pub(crate) errors: BTreeMap<&'static str, u64>,
    /// Of those, errors that carried a response and its log id / all that carried a response.
    pub(crate) with_log_id: (u64, u64),
    /// Errors that said the request may have been processed.
    pub(crate) may_have_been_processed: u64,
    /// Attempts the SDK made, by answer (`error`: no answer), from its own metrics.
    pub(crate) attempts: BTreeMap<String, u64>,
}

fn kind(error: &Error) -> &'static str {
    match error {
        Error::Api(e) if e.status == 409 => "409 in use",
        Error::Api(e) if e.status >= 500 => "5xx",
        Error::Api(_) => "other api",
        Error::RateLimited { .. } => "rate limited",
        Error::Timeout { .. } => "timeout",
        Error::Transport { .. } => "transport",
        Error::Decode { .. } => "decode",
        _ => "other",
    }
}

pub(crate) async fn run(n: usize, seed: u64) -> Report {
    // The SDK's own counters, through the metrics facade.
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().expect("one recorder per process");
    let config = SandboxConfig::default()
        .limit(Class::Create, ClassLimits::rate(150.0, 10.0).concurrent(12))
        // The limit halves at 3 s: a 429 storm for a client tuned to the old one.
        .change_limits(Duration::from_secs(3), 0.5)
        .service_time(ServiceTime::uniform(Duration::from_millis(40), 0.6))
        .faults(Faults {
            server_error: 0.03,
            stall: 0.01,
            stall_for: Duration::from_millis(1_500),
            drop_after_commit: 0.03,
            malformed_json: 0.02,
            key_in_use: 0.02,
        })
        .seed(seed);
    let sandbox = Sandbox::start(config).await.unwrap();
    // Setup is not under test: it is resent plainly until it works.
    let setup = Client::builder()
        .api_key(sandbox.test_key())
        .base_url(sandbox.base_url())
        .build()
        .unwrap();
    let customer_body: models::CustomerCreateInput = serde_json::from_value(json!({"legal_name": "Cliente", "tax_id": "XAXX010101000", "tax_system": "601", "address": {"zip": "86500"}})).unwrap();
    let customer = loop {
        if let Ok(c) = setup
            .customers()
            .create(&customer_body, &Default::default())
            .await
        {
            break c.id.clone();
        }
    };
    let client = |limits: fn(facturapi_sdk::ClientBuilder) -> facturapi_sdk::ClientBuilder| {
        limits(
            Client::builder()
                .api_key(sandbox.test_key())
                .base_url(sandbox.base_url())
                // Shorter than a stall: a stalled creation is a timeout, resent with its key.
                .timeout(Duration::from_millis(1_000)),
        )
        .build()
        .unwrap()
    };
    // Two processes on one key: one learns the limits, the other sends at a fixed 16 in
    // flight, unpaced, and makes the storms both of them meet.
    let adaptive = client(|b| b);
    let unpaced = client(|b| {
        b.static_limits().class_policy(
            Class::Create,
            facturapi_sdk::ClassPolicy::default_for(Class::Create).with_concurrency(16),
        )
    });
    let start = tokio::time::Instant::now();
    let jobs = futures_util::stream::iter(0..n).map(|i| {
        let client = if i % 3 == 0 { unpaced.clone() } else { adaptive.clone() };
        let customer = customer.clone();
        async move {
            let body: models::InvoiceCreateInput = serde_json::from_value(json!({
                "customer": customer,
                "items": [{"product": {"description": "Ukelele", "product_key": "60131324", "price": 10.0}, "quantity": 1}],
                "payment_form": "03",
                "external_id": format!("storm-{i}"),
                "idempotency_key": format!("storm-key-{i}"),
            }))
            .unwrap();
            let mut errors = Vec::new();
            for _ in 0..50 {
                match client.invoices().create(&body, &Default::default()).await {
                    Ok(created) => {
                        assert_eq!(created.idempotency_key, format!("storm-key-{i}"));
                        return (true, errors);
                    }
                    Err(e) => {
                        assert_eq!(e.idempotency_key(), Some(format!("storm-key-{i}").as_str()), "{e:?}");
                        errors.push(e);
                    }
                }
            }
            (false, errors)
        }
    });
    let results: Vec<(bool, Vec<Error>)> = jobs.buffer_unordered(48).collect().await;
    let wall = start.elapsed();
    let ledger = sandbox.ledger();
    let mut report = Report {
        jobs: n,
        created: ledger.created_by_external_id.len(),
        duplicated: ledger.duplicates
            + ledger
                .created_by_external_id
                .values()
                .map(|c| u64::from(c.saturating_sub(1)))
                .sum::<u64>(),
        lost: n - ledger.created_by_external_id.len(),
        wall,
        requests: ledger.requests.get(&Class::Create).copied().unwrap_or(0),
        rate_limited: ledger
            .rate_limited
            .get(&Class::Create)
            .copied()
            .unwrap_or(0),
        faults: format!(
            "{} 5xx · {} stalls · {} dropped after commit · {} cut short · {} 409 in use",
            ledger.faults.server_errors,
            ledger.faults.stalls,
            ledger.faults.dropped_after_commit,
            ledger.faults.malformed_json,
            ledger.faults.key_in_use
        ),
        ..Report::default()
    };
    for (done, errors) in &results {
        assert!(done, "a job gave up after 50 calls: {errors:?}");
        for e in errors {
            *report.errors.entry(kind(e)).or_default() += 1;
            if e.status().is_some() {
                report.with_log_id.1 += 1;
                report.with_log_id.0 += u64::from(e.log_id().is_some());
            }
            report.may_have_been_processed += u64::from(e.may_have_been_processed());
        }
    }
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        if let DebugValue::Counter(count) = value
            && key.key().name() == "facturapi_requests_total"
        {
            let status = key
                .key()
                .labels()
                .find(|l| l.key() == "status")
                .map_or_else(String::new, |l| l.value().to_owned());
            *report.attempts.entry(status).or_default() += count;
        }
    }
    sandbox.shutdown().await;
    report
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "  keyed creations       {}", self.jobs)?;
        writeln!(f, "  created               {}", self.created)?;
        writeln!(
            f,
            "  lost                  {}   (sandbox ledger)",
            self.lost
        )?;
        writeln!(
            f,
            "  duplicated            {}   (sandbox ledger)",
            self.duplicated
        )?;
        writeln!(
            f,
            "  wall time             {:.1} s",
            self.wall.as_secs_f64()
        )?;
        writeln!(
            f,
            "  create requests       {} ({} answered 429)",
            self.requests, self.rate_limited
        )?;
        writeln!(f, "  faults injected       {}", self.faults)?;
        let attempts: Vec<String> = self
            .attempts
            .iter()
            .map(|(k, v)| format!("{v}× {k}"))
            .collect();
        writeln!(f, "  SDK attempts          {}", attempts.join(" · "))?;
        let errors: Vec<String> = self
            .errors
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        writeln!(f, "  errors to the caller  {}", errors.join(" · "))?;
        writeln!(
            f,
            "  with a log id         {} of {} errors that had a response",
            self.with_log_id.0, self.with_log_id.1
        )?;
        write!(
            f,
            "  said may be processed {}",
            self.may_have_been_processed
        )
    }
}
