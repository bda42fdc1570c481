//! A bulk run killed with SIGKILL at random points and resumed each time creates every
//! invoice exactly once: the sandbox's own ledger counts them.
//!
//! This binary is its own child: with `FACTURAPI_BULK_CHILD` set it runs one bulk job on a
//! journal and exits; without, it is the parent, which owns the sandbox, starts children,
//! kills them, and reads the ledger. (`harness = false`: the child is not a test.)
//!
//! `BULK_CRASH_RUNS=20 BULK_CRASH_COUNT=1000 cargo test --release --test bulk_crash` repeats
//! each scenario; the default is the CI size.

use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use facturapi_sdk::bulk::{Bulk, FileJournal, ItemResult, ItemState, Journal as _, Reuse};
use facturapi_sdk::sandbox::{ClassLimits, Faults, Sandbox, SandboxConfig};
use facturapi_sdk::{Class, Client, models};
use futures_util::StreamExt as _;
use serde_json::json;

const CHILD: &str = "FACTURAPI_BULK_CHILD";

fn main() -> ExitCode {
    if let Ok(spec) = std::env::var(CHILD) {
        return child(&spec);
    }
    let runs = env_number("BULK_CRASH_RUNS", 1);
    let count = env_number("BULK_CRASH_COUNT", 200);
    let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let mut failures = 0;
    for run in 0..runs {
        // Both scenarios at once, each with its own sandbox, journal and children.
        let seeds = [Scenario::Light, Scenario::Faulty]
            .map(|scenario| (scenario, 0xC0FFEE + run as u64 * 7919 + scenario as u64));
        let reports = rt.block_on(futures_util::future::join_all(
            seeds.map(|(scenario, seed)| parent(scenario, seed, count)),
        ));
        for ((scenario, seed), report) in seeds.into_iter().zip(reports) {
            match report {
                Ok(report) => println!("{report}"),
                Err(e) => {
                    failures += 1;
                    eprintln!("FAILED {scenario:?} run {run} (seed {seed}): {e}");
                }
            }
        }
    }
    if failures > 0 {
        eprintln!("bulk_crash: {failures} run(s) failed");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Debug, Clone, Copy)]
enum Scenario {
    /// The realistic profile (hidden limits, light faults), creation limit raised to 60/s.
    Light,
    /// Faults turned up: resets after commit, 5xx, 409 in use, cut-short bodies, and 429
    /// storms from a small burst.
    Faulty,
}

impl Scenario {
    fn config(self, seed: u64) -> SandboxConfig {
        let config = SandboxConfig::realistic().seed(seed);
        match self {
            Scenario::Light => {
                config.limit(Class::Create, ClassLimits::rate(60.0, 10.0).concurrent(8))
            }
            Scenario::Faulty => config
                .limit(Class::Create, ClassLimits::rate(60.0, 2.0).concurrent(6))
                .faults(Faults {
                    server_error: 0.05,
                    stall: 0.005,
                    stall_for: Duration::from_secs(3),
                    drop_after_commit: 0.05,
                    malformed_json: 0.03,
                    key_in_use: 0.05,
                }),
        }
    }
}

async fn parent(scenario: Scenario, seed: u64, count: usize) -> Result<String, String> {
    let started = Instant::now();
    let sandbox = Sandbox::start(scenario.config(seed))
        .await
        .map_err(|e| e.to_string())?;
    let client = Client::builder()
        .api_key(sandbox.test_key())
        .base_url(sandbox.base_url())
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| e.to_string())?;
    let reuse = Reuse::new(&client);
    let customer: models::CustomerCreateInput = serde_json::from_value(json!({
        "legal_name": "PUBLICO EN GENERAL", "tax_id": "XAXX010101000",
        "tax_system": "616", "address": {"zip": "86500"},
    }))
    .map_err(|e| e.to_string())?;
    let product: models::ProductCreateBody = serde_json::from_value(json!({
        "description": "Servicio", "price": 100.0, "product_key": "81112100", "sku": "crash-test",
    }))
    .map_err(|e| e.to_string())?;
    let customer = reuse.customer(&customer).await.map_err(|e| e.to_string())?;
    let product = reuse.product(&product).await.map_err(|e| e.to_string())?;

    let dir = std::env::temp_dir().join(format!("bulk-crash-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let journal = dir.join("run.journal");
    let spec = json!({
        "base_url": sandbox.base_url(), "key": sandbox.test_key(), "journal": journal,
        "count": count, "customer": customer, "product": product,
    })
    .to_string();

    // Kill the child at random points; each restart resumes the same journal.
    let mut rng = fastrand::Rng::with_seed(seed);
    let (mut kills, mut starts) = (0, 0);
    for _ in 0..4 {
        let mut child = spawn(&spec)?;
        starts += 1;
        tokio::time::sleep(Duration::from_millis(rng.u64(200..2500))).await;
        if child.try_wait().map_err(|e| e.to_string())?.is_some() {
            break; // it finished before the kill
        }
        child.kill().map_err(|e| e.to_string())?; // SIGKILL
        child.wait().map_err(|e| e.to_string())?;
        kills += 1;
    }
    // Then resume until a run ends with every item settled.
    let mut settled = false;
    for _ in 0..6 {
        starts += 1;
        let status = tokio::task::spawn_blocking({
            let spec = spec.clone();
            move || spawn(&spec).and_then(|mut c| c.wait().map_err(|e| e.to_string()))
        })
        .await
        .map_err(|e| e.to_string())??;
        if status.success() {
            settled = true;
            break;
        }
    }
    if !settled {
        return Err("six resumed runs did not settle every item".into());
    }

    let ledger = sandbox.ledger();
    let (mut lost, mut duplicated) = (0, 0);
    for i in 0..count {
        match ledger.created_by_external_id.get(&external_id(i)).copied() {
            None | Some(0) => lost += 1,
            Some(1) => {}
            Some(n) => duplicated += n - 1,
        }
    }
    let recorded = journal_states(&journal).await?;
    let in_journal = (0..count)
        .filter(|i| {
            matches!(
                recorded.get(&external_id(*i)),
                Some(ItemState::Created { .. })
            )
        })
        .count();
    let faults = ledger.faults;
    sandbox.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    let report = format!(
        "{scenario:?} seed {seed}: {count} invoices, {kills} SIGKILLs, {starts} starts, \
         {lost} lost, {duplicated} duplicated, {in_journal} created in the journal, \
         {} replays, {} 429s, faults {} 5xx / {} dropped after commit / {} malformed / {} 409, {:.1} s",
        ledger.idempotent_replays,
        ledger.total_rate_limited(),
        faults.server_errors,
        faults.dropped_after_commit,
        faults.malformed_json,
        faults.key_in_use,
        started.elapsed().as_secs_f64()
    );
    if lost > 0 || duplicated > 0 || in_journal != count {
        return Err(report);
    }
    Ok(report)
}

async fn journal_states(
    path: &Path,
) -> Result<std::collections::HashMap<String, ItemState>, String> {
    let journal = FileJournal::open(path).map_err(|e| e.to_string())?;
    Ok(journal.load().await.map_err(|e| e.to_string())?.items)
}

fn spawn(spec: &str) -> Result<std::process::Child, String> {
    Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .env(CHILD, spec)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| e.to_string())
}

fn external_id(i: usize) -> String {
    format!("crash-{i:05}")
}

/// One bulk run on the journal; exits 0 when every item is created (or was).
fn child(spec: &str) -> ExitCode {
    let spec: serde_json::Value = serde_json::from_str(spec).expect("the parent's spec");
    let text = |k: &str| spec[k].as_str().expect("a text field").to_owned();
    let count = spec["count"].as_u64().expect("count") as usize;
    let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
    rt.block_on(async move {
        let client = Client::builder()
            .api_key(text("key"))
            .base_url(text("base_url"))
            .timeout(Duration::from_secs(2))
            .build()
            .expect("a client");
        let journal = FileJournal::open(text("journal")).expect("the journal");
        let (customer, product) = (text("customer"), text("product"));
        let items = (0..count).map(move |i| {
            let body: models::InvoiceCreateInput = serde_json::from_value(json!({
                "customer": customer, "payment_form": "03",
                "items": [{"product": product, "quantity": 1 + i % 3}],
            }))
            .expect("an invoice body");
            (external_id(i), body)
        });
        let mut run = Bulk::invoices(&client)
            .organization("crash-test-org")
            .journal(journal)
            .run_iter(items)
            .await
            .expect("the run starts");
        let mut unsettled = 0;
        while let Some(outcome) = run.next().await {
            match outcome.expect("the journal is writable").result {
                ItemResult::Created { .. } | ItemResult::Skipped { .. } => {}
                ItemResult::Failed { error } | ItemResult::Unknown { error } => {
                    eprintln!("child: unsettled: {error}");
                    unsettled += 1;
                }
                _ => unsettled += 1,
            }
        }
        if unsettled == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(2)
        }
    })
}
