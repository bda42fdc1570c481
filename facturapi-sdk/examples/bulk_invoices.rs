//! The main job: create many invoices, each exactly once, as fast as the API allows.
//!
//! ```text
//! cargo run --release --example bulk_invoices                 # embedded sandbox, 1,000 invoices
//! cargo run --release --example bulk_invoices -- --count 200  # fewer
//! FACTURAPI_KEY=sk_test_… cargo run --release --example bulk_invoices   # real API, 10 invoices
//! ```
//!
//! Without `FACTURAPI_KEY` it starts the embedded sandbox with hidden per-class limits, service
//! times and a little fault injection (5xx, stalls, malformed bodies, connections dropped after
//! the invoice was committed). It follows Facturapi's advice: the customer and products are
//! created once (the product found by SKU after an ambiguous failure) and their ids reused (or
//! taken from `FACTURAPI_CUSTOMER_ID` /
//! `FACTURAPI_PRODUCT_ID`), writes go through the SDK's per-class queues at controlled
//! concurrency, and every invoice carries an `external_id` and an idempotency key derived from
//! it, so a failure that may have been processed is resent without risk of a duplicate.
//! Detail and list reads run alongside. At the end it prints a summary; in the sandbox the
//! lost and duplicated counts come from the sandbox's own ledger.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable as _};
use facturapi_sdk::resources::invoices::ListInvoicesQuery;
use facturapi_sdk::resources::products::ListProductsQuery as ProductsQuery;
use facturapi_sdk::sandbox::{Sandbox, SandboxConfig};
use facturapi_sdk::{Class, Client, Error, MaybePending, models};
use futures_util::StreamExt as _;
use indicatif::{ProgressBar, ProgressStyle};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use serde_json::json;

/// Command-line options. Four flags do not justify an argument-parser dependency.
struct Args {
    count: Option<usize>,
    workers: usize,
    seed: u64,
    static_limits: bool,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        count: None,
        workers: 32,
        seed: 1,
        static_limits: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| format!("{name} needs a number"))
        };
        match flag.as_str() {
            "--count" => args.count = Some(value("--count")? as usize),
            "--workers" => args.workers = value("--workers")?.max(1) as usize,
            "--seed" => args.seed = value("--seed")?,
            "--static" => args.static_limits = true,
            "-h" | "--help" => {
                return Err(
                    "usage: bulk_invoices [--count N] [--workers N] [--seed N] [--static]".into(),
                );
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(args)
}

/// Time from first send to success, per class.
#[derive(Default)]
struct Latencies(Mutex<BTreeMap<Class, Vec<Duration>>>);

impl Latencies {
    fn record(&self, class: Class, d: Duration) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(class)
            .or_default()
            .push(d);
    }
}

/// Failures after which resending the same request is safe *for these calls*: the invoice
/// create carries an idempotency key, customer creation is idempotent by tax id, and reads
/// are reads. The SDK already resent what it could prove safe; this covers what only the
/// caller knows (a 5xx after its retry budget). A body that does not decode is not resent:
/// the server processed the call, and the error carries the created id.
fn resendable(e: &Error) -> bool {
    match e {
        Error::Api(api) => api.status >= 500 || api.status == 409 || api.status == 429,
        Error::Timeout { .. } | Error::Transport { .. } => true,
        Error::RateLimited { .. } => true,
        _ => false,
    }
}

fn policy() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_max_times(12)
        .with_jitter()
}

/// The SDK's counters, read through the `metrics` facade. A snapshot drains the recorder,
/// so totals are kept here.
struct Counters {
    snapshotter: Snapshotter,
    totals: Mutex<BTreeMap<String, u64>>,
}

impl Counters {
    fn get(&self, name: &str) -> u64 {
        let mut totals = self.totals.lock().unwrap_or_else(|e| e.into_inner());
        for (key, .., value) in self.snapshotter.snapshot().into_vec() {
            if let DebugValue::Counter(n) = value {
                *totals.entry(key.key().name().to_owned()).or_default() += n;
            }
        }
        totals.get(name).copied().unwrap_or(0)
    }
}

const PRODUCT_SKU: &str = "facturapi-rs-bulk";

/// A product create carries no idempotency key, so a failure that may have been processed
/// (a 5xx, a dropped connection) is not simply resent: look the product up by its SKU first,
/// and create it only when it is not there.
async fn find_or_create_product(
    client: &Client,
    body: &models::ProductCreateBody,
) -> Result<String, Error> {
    let query = ProductsQuery {
        sku: Some(PRODUCT_SKU.to_owned()),
        ..Default::default()
    };
    let mut attempt = 0;
    loop {
        let found = (|| client.products().list(&query))
            .retry(policy())
            .sleep(tokio::time::sleep)
            .when(resendable)
            .await?;
        if let Some(product) = found.data.as_deref().and_then(<[_]>::first) {
            return Ok(product.id.clone());
        }
        match client.products().create(body).await {
            Ok(product) => return Ok(product.id),
            Err(e) if attempt < 10 && (e.may_have_been_processed() || resendable(&e)) => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100 << attempt.min(5))).await;
            }
            Err(e) => return Err(e),
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = args()?;
    let recorder = DebuggingRecorder::new();
    let counters = Counters {
        snapshotter: recorder.snapshotter(),
        totals: Mutex::default(),
    };
    recorder.install()?;

    let key = std::env::var("FACTURAPI_KEY")
        .ok()
        .filter(|k| !k.is_empty());
    let (sandbox, client, count) = match &key {
        Some(key) => (
            None,
            Client::builder().api_key(key).build()?,
            args.count.unwrap_or(10),
        ),
        None => {
            let sandbox = Sandbox::start(SandboxConfig::realistic().seed(args.seed)).await?;
            let mut builder = Client::builder()
                .api_key(sandbox.test_key())
                .base_url(sandbox.base_url())
                // Shorter than the sandbox's 3 s stalls, so they surface as timeouts.
                .timeout(Duration::from_secs(2));
            if args.static_limits {
                builder = builder.static_limits();
            }
            let client = builder.build()?;
            (Some(sandbox), client, args.count.unwrap_or(1000))
        }
    };
    let target = match &sandbox {
        Some(s) => format!("the embedded sandbox at {}", s.base_url()),
        None => "the Facturapi API (FACTURAPI_KEY)".to_owned(),
    };
    println!(
        "Creating {count} invoices against {target}, {} workers.",
        args.workers
    );

    // Reuse stored ids, as Facturapi advises: one customer and one product for the whole job.
    let latencies = Arc::new(Latencies::default());
    let customer = match std::env::var("FACTURAPI_CUSTOMER_ID") {
        Ok(id) if !id.is_empty() => id,
        _ => {
            let body: models::CustomerCreateInput = serde_json::from_value(json!({
                "legal_name": "PUBLICO EN GENERAL",
                "tax_id": "XAXX010101000",
                "tax_system": "616",
                "address": {"zip": "86500"},
            }))?;
            let query = Default::default();
            let created = (|| client.customers().create(&body, &query))
                .retry(policy())
                .sleep(tokio::time::sleep)
                .when(resendable)
                .await?;
            created.id.clone()
        }
    };
    let product = match std::env::var("FACTURAPI_PRODUCT_ID") {
        Ok(id) if !id.is_empty() => id,
        _ => {
            let body: models::ProductCreateBody = serde_json::from_value(json!({
                "description": "Servicio de prueba facturapi-rs",
                "price": 100.0,
                "product_key": "81112100",
                "sku": PRODUCT_SKU,
            }))?;
            find_or_create_product(&client, &body).await?
        }
    };

    // Keys unique to this run, so a second run creates new invoices rather than replaying.
    let run = if sandbox.is_some() {
        format!("s{}", args.seed)
    } else {
        uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
    };
    let bar = ProgressBar::new(count as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} invoices · {per_sec} · {msg}",
        )?
        .progress_chars("=> "),
    );
    let resends = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let decode_failures = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let jobs = futures_util::stream::iter(0..count).map(|i| {
        let (client, latencies, resends, decode_failures, bar) = (
            client.clone(),
            latencies.clone(),
            resends.clone(),
            decode_failures.clone(),
            bar.clone(),
        );
        let (customer, product, run) = (customer.clone(), product.clone(), run.clone());
        let counters = &counters;
        async move {
            let external_id = format!("bulk-{run}-{i:05}");
            let body: models::InvoiceCreateInput = serde_json::from_value(json!({
                "customer": customer,
                "items": [{"product": product, "quantity": 1 + (i % 3)}],
                "payment_form": "03",
                "external_id": external_id,
                "idempotency_key": external_id,
            }))
            .map_err(|e| e.to_string())?;
            let query = Default::default();
            let t = Instant::now();
            let created = (|| client.invoices().create(&body, &query))
                .retry(policy())
                .sleep(tokio::time::sleep)
                .when(resendable)
                .notify(|_, _| {
                    resends.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                })
                .await;
            latencies.record(Class::Create, t.elapsed());
            let id = match created {
                Ok(created) => match created.value {
                    MaybePending::Done(invoice) => serde_json::to_value(&invoice)?["id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    MaybePending::Pending(invoice) => serde_json::to_value(&invoice)?["id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                },
                // Created, certainly; its body did not read. The error has the id.
                Err(e) if e.was_processed() => {
                    decode_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    e.created_id().unwrap_or_default().to_owned()
                }
                Err(e) => return Err(format!("{external_id}: {e}").into()),
            };
            // Reads alongside the writes: a detail read of every fourth invoice, a list
            // every twenty-fifth.
            if i % 4 == 0 {
                let t = Instant::now();
                if (|| client.invoices().retrieve(&id))
                    .retry(policy())
                    .sleep(tokio::time::sleep)
                    .when(resendable)
                    .await
                    .is_ok()
                {
                    latencies.record(Class::DetailRead, t.elapsed());
                }
            }
            if i % 25 == 0 {
                let t = Instant::now();
                let query = ListInvoicesQuery {
                    limit: Some(10),
                    ..Default::default()
                };
                if (|| client.invoices().list(&query))
                    .retry(policy())
                    .sleep(tokio::time::sleep)
                    .when(resendable)
                    .await
                    .is_ok()
                {
                    latencies.record(Class::ListRead, t.elapsed());
                }
            }
            bar.inc(1);
            if i % 20 == 0 {
                bar.set_message(format!(
                    "429s {} · SDK retries {}",
                    counters.get("facturapi_rate_limited_total"),
                    counters.get("facturapi_retries_total")
                ));
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(external_id)
        }
    });
    let results: Vec<_> = jobs.buffer_unordered(args.workers).collect().await;
    let elapsed = started.elapsed();
    bar.finish_and_clear();

    let failed: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| e.to_string()))
        .collect();
    let created = results.len() - failed.len();
    let rate_limited = counters.get("facturapi_rate_limited_total");
    let requests = counters.get("facturapi_requests_total");
    let sdk_retries = counters.get("facturapi_retries_total");
    let goodput = created as f64 / elapsed.as_secs_f64();

    // Lost and duplicated: from the sandbox's ledger, or by asking the API per external_id.
    let (lost, duplicated, source) = match &sandbox {
        Some(s) => {
            let ledger = s.ledger();
            let ours: Vec<u32> = (0..count)
                .map(|i| {
                    ledger
                        .created_by_external_id
                        .get(&format!("bulk-{run}-{i:05}"))
                        .copied()
                        .unwrap_or(0)
                })
                .collect();
            let lost = ours.iter().filter(|c| **c == 0).count();
            let dup: u32 = ours.iter().map(|c| c.saturating_sub(1)).sum();
            (lost, dup as usize, "sandbox ledger")
        }
        None => {
            let (mut lost, mut dup) = (0, 0);
            for i in 0..count {
                let query = ListInvoicesQuery {
                    external_id: Some(format!("bulk-{run}-{i:05}")),
                    ..Default::default()
                };
                let found = (|| client.invoices().list(&query))
                    .retry(policy())
                    .sleep(tokio::time::sleep)
                    .when(resendable)
                    .await?;
                match found.total_results.unwrap_or(0) {
                    0 => lost += 1,
                    1 => {}
                    n => dup += n as usize - 1,
                }
            }
            (lost, dup, "listed by external_id")
        }
    };

    println!();
    println!("facturapi-rs bulk job: summary");
    println!("  target                {target}");
    println!("  invoices created      {created} / {count}");
    println!("  lost                  {lost}   ({source})");
    println!("  duplicated            {duplicated}   ({source})");
    println!("  wall time             {:.1} s", elapsed.as_secs_f64());
    print!("  goodput               {goodput:.1} invoices/s");
    if let Some(s) = &sandbox
        && let Some(limits) = s.current_limits(Class::Create)
    {
        let rate = limits.token_bucket.map_or(f64::INFINITY, |(r, _)| r);
        println!(
            "   (hidden create limit {rate:.0}/s: {:.0} % of it)",
            100.0 * goodput / rate
        );
    } else {
        println!();
    }
    println!(
        "  429s received         {rate_limited}   ({:.2} % of {requests} requests)",
        100.0 * rate_limited as f64 / requests.max(1) as f64
    );
    println!(
        "  SDK retries           {sdk_retries}   (5xx, timeouts, drops: resent with the same key)"
    );
    println!(
        "  job-level resends     {}   (failures that may have been processed, resent with the same key)",
        resends.load(std::sync::atomic::Ordering::Relaxed)
    );
    println!(
        "  created, body unread  {}   (2xx bodies cut short: created, id from the error, not resent)",
        decode_failures.load(std::sync::atomic::Ordering::Relaxed)
    );
    if let Some(s) = &sandbox {
        let f = s.ledger().faults;
        println!(
            "  faults injected       {} 5xx · {} stalls · {} dropped after commit · {} malformed",
            f.server_errors, f.stalls, f.dropped_after_commit, f.malformed_json
        );
    }
    for class in [Class::Create, Class::DetailRead, Class::ListRead] {
        let l = client.learned(class);
        let hidden = sandbox
            .as_ref()
            .and_then(|s| s.current_limits(class))
            .map(|h| {
                format!(
                    "   (hidden: {:.0}/s, {} at once)",
                    h.token_bucket.map_or(f64::INFINITY, |(r, _)| r),
                    h.concurrency.map_or("any".to_owned(), |c| c.to_string())
                )
            })
            .unwrap_or_default();
        println!(
            "  limits {:<14} {} · {} at once · {} rate cuts · {} concurrency cuts{hidden}",
            class.as_str(),
            l.rate
                .map_or("not paced".to_owned(), |r| format!("{r:.1}/s")),
            l.concurrency,
            l.rate_cuts,
            l.concurrency_cuts
        );
    }
    println!("  latency (first send to success)");
    println!("    class            calls      p50      p95      p99");
    let mut by_class = std::mem::take(&mut *latencies.0.lock().unwrap_or_else(|e| e.into_inner()));
    for (class, samples) in by_class.iter_mut() {
        samples.sort();
        println!(
            "    {:<14} {:>7} {:>8} {:>8} {:>8}",
            class.as_str(),
            samples.len(),
            ms(percentile(samples, 50.0)),
            ms(percentile(samples, 95.0)),
            ms(percentile(samples, 99.0))
        );
    }
    for f in failed.iter().take(5) {
        println!("  failed: {f}");
    }
    if let Some(s) = sandbox {
        s.shutdown().await;
    }
    if lost > 0 || duplicated > 0 || !failed.is_empty() {
        return Err(format!(
            "{lost} lost, {duplicated} duplicated, {} failed",
            failed.len()
        )
        .into());
    }
    Ok(())
}
