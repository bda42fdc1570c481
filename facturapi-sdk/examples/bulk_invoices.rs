//! The main job: create many invoices, each exactly once, as fast as the API allows, on top of
//! `facturapi_sdk::bulk`. Flags: `--count N`, `--workers N` (items worked on at once),
//! `--seed N`, `--static`, `--input FILE.jsonl` (one invoice body per line, each with its
//! `external_id`), `--journal PATH` and `--resume`; see the README.
//!
//! Without `FACTURAPI_KEY` it runs against the embedded sandbox (hidden limits, service times,
//! light faults) and reads lost and duplicated counts from the sandbox's ledger. With it, the
//! target is `FACTURAPI_BASE_URL` (default: the real API) and the default count is 10. Without
//! `--input` it invoices one customer and one product, found or created once (or
//! `FACTURAPI_CUSTOMER_ID` / `FACTURAPI_PRODUCT_ID`).

use std::io::BufRead as _;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

use facturapi_sdk::bulk::{Bulk, FileJournal, ItemResult, Reuse, progress_bar};
use facturapi_sdk::sandbox::{Sandbox, SandboxConfig};
use facturapi_sdk::{Class, Client, models};
use futures_util::StreamExt as _;
use serde_json::{Value, json};

type Item = (String, models::InvoiceCreateInput);
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The flags (see the module docs). Seven flags do not justify an argument-parser dependency.
struct Args(Vec<String>);

impl Args {
    fn read() -> Result<Self, BoxError> {
        const FLAGS: &str = "--count --workers --seed --static --input --journal --resume";
        let args: Vec<String> = std::env::args().skip(1).collect();
        let known = |a: &String| !a.starts_with('-') || FLAGS.split(' ').any(|f| f == a);
        match args.iter().find(|a| !known(a)) {
            Some(unknown) => Err(format!("unknown flag {unknown}; flags: {FLAGS}").into()),
            None => Ok(Self(args)),
        }
    }
    fn has(&self, flag: &str) -> bool {
        self.0.iter().any(|a| a == flag)
    }
    fn value(&self, flag: &str) -> Option<&str> {
        let at = self.0.iter().position(|a| a == flag)?;
        self.0.get(at + 1).map(String::as_str)
    }
    fn number(&self, flag: &str) -> Result<Option<usize>, BoxError> {
        Ok(self.value(flag).map(str::parse).transpose()?)
    }
}

/// Input lines that did not read as an invoice with an `external_id`; each is a problem.
static SKIPPED: AtomicUsize = AtomicUsize::new(0);

/// One JSON invoice body per line, with its `external_id`; read as the run asks for items.
fn read_input(path: &str) -> Result<impl Iterator<Item = Item> + Send + 'static, BoxError> {
    let lines = std::io::BufReader::new(std::fs::File::open(path)?).lines();
    Ok(lines.enumerate().filter_map(|(n, line)| {
        let parsed = line.map_err(BoxError::from).and_then(|line| {
            let body: Value = serde_json::from_str(&line)?;
            let id: String = serde_json::from_value(body["external_id"].clone())?;
            Ok((id, serde_json::from_value(body)?))
        });
        let skip = |e| eprintln!("input line {}: skipped: {e}", n + 1);
        parsed
            .map_err(skip)
            .inspect_err(|_| _ = SKIPPED.fetch_add(1, Relaxed))
            .ok()
    }))
}

/// The customer and product every generated invoice uses: stored ids, or found or created.
async fn ids(client: &Client) -> Result<(String, String), BoxError> {
    let (reuse, stored) = (Reuse::new(client), |name| {
        std::env::var(name)
            .ok()
            .filter(|id: &String| !id.is_empty())
    });
    let customer = json!({"legal_name": "PUBLICO EN GENERAL", "tax_id": "XAXX010101000",
                          "tax_system": "616", "address": {"zip": "86500"}});
    let product = json!({"description": "Servicio de prueba facturapi-rs", "price": 100.0,
                         "product_key": "81112100", "sku": "facturapi-rs-bulk"});
    let customer = match stored("FACTURAPI_CUSTOMER_ID") {
        Some(id) => id,
        None => reuse.customer(&serde_json::from_value(customer)?).await?,
    };
    let product = match stored("FACTURAPI_PRODUCT_ID") {
        Some(id) => id,
        None => reuse.product(&serde_json::from_value(product)?).await?,
    };
    Ok((customer, product))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::read()?;
    let seed = args.number("--seed")?.unwrap_or(1);
    let real = std::env::var("FACTURAPI_KEY").is_ok_and(|k| !k.is_empty());
    let (sandbox, client) = if real {
        (None, Client::from_env()?)
    } else {
        let sandbox = Sandbox::start(SandboxConfig::realistic().seed(seed as u64)).await?;
        // A timeout shorter than the sandbox's 3 s stalls, so they surface as timeouts.
        let mut builder = Client::builder()
            .api_key(sandbox.test_key())
            .base_url(sandbox.base_url())
            .timeout(std::time::Duration::from_secs(2));
        if args.has("--static") {
            builder = builder.static_limits();
        }
        (Some(sandbox), builder.build()?)
    };
    let mut bulk = Bulk::invoices(&client).window(args.number("--workers")?.unwrap_or(64));
    if let Some(path) = args.value("--journal") {
        let exists = std::fs::metadata(path).is_ok_and(|m| m.len() > 0);
        if exists != args.has("--resume") {
            return Err(match exists {
                true => format!("{path} holds a run: pass --resume to continue it"),
                false => format!("--resume: {path} holds no run"),
            }
            .into());
        }
        bulk = bulk.journal(FileJournal::open(path)?);
    }
    let count = args
        .number("--count")?
        .unwrap_or(if real { 10 } else { 1000 });
    let items: Box<dyn Iterator<Item = Item> + Send> = match args.value("--input") {
        Some(path) => Box::new(read_input(path)?),
        None => {
            let (customer, product) = ids(&client).await?;
            bulk = bulk.total(count as u64);
            Box::new((0..count).map(move |i| {
                let body = json!({"customer": customer, "payment_form": "03",
                                  "items": [{"product": product, "quantity": 1 + i % 3}]});
                let body = serde_json::from_value(body).expect("a valid invoice body");
                (format!("bulk-s{}-{i:05}", seed), body)
            }))
        }
    };
    let target = match &sandbox {
        Some(s) => format!("the embedded sandbox at {}", s.base_url()),
        None => format!("{} (FACTURAPI_KEY)", client.base_url()),
    };
    let started = Instant::now();
    let mut run = bulk.run_iter(items).await?;
    let bar = progress_bar(&run.progress());
    let mut problems = 0;
    while let Some(outcome) = run.next().await {
        let outcome = outcome?;
        if let ItemResult::Failed { error } | ItemResult::Unknown { error } = &outcome.result {
            problems += 1;
            bar.println(format!("{}: {error}", outcome.external_id));
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let s = run.progress().snapshot();
    let learned = client.learned(Class::Create);

    println!("\nfacturapi-rs bulk job: summary\n  target                {target}");
    let (done, rate) = (s.created + s.skipped, s.created as f64 / elapsed);
    let (created, skipped, failed, unknown) = (s.created, s.skipped, s.failed, s.unknown);
    println!(
        "  invoices              {created} created · {skipped} skipped (journal) · {failed} failed · {unknown} unknown"
    );
    if let Some(ledger) = sandbox.as_ref().map(Sandbox::ledger) {
        let lost = done.saturating_sub(ledger.created_by_external_id.len() as u64);
        let (dup, replays, f) = (ledger.duplicates, ledger.idempotent_replays, ledger.faults);
        println!(
            "  lost · duplicated     {lost} · {dup}   (sandbox ledger; {replays} resends answered by their key)"
        );
        println!(
            "  faults injected       {} 5xx · {} stalls · {} dropped after commit · {} malformed",
            f.server_errors, f.stalls, f.dropped_after_commit, f.malformed_json
        );
    }
    let hidden = sandbox.and_then(|sb| sb.current_limits(Class::Create));
    let share = hidden
        .and_then(|h| h.token_bucket)
        .map_or(String::new(), |(r, _)| {
            format!(" ({:.0} % of the hidden {r:.0}/s)", 100.0 * rate / r)
        });
    println!("  wall time · goodput   {elapsed:.1} s · {rate:.1} invoices/s{share}");
    println!("  429s received         {}", s.rate_limited);
    let paced = learned
        .rate
        .map_or("not paced".into(), |r| format!("{r:.1}/s"));
    let cap = hidden
        .and_then(|h| h.concurrency)
        .map_or(String::new(), |c| format!(" (hidden cap {c})"));
    println!(
        "  learned create limit  {paced} · {} at once{cap} · {} rate cuts · {} concurrency cuts",
        learned.concurrency, learned.rate_cuts, learned.concurrency_cuts
    );
    match problems + SKIPPED.load(Relaxed) {
        0 => Ok(()),
        n => Err(format!("{n} invoices not created: --resume settles them").into()),
    }
}
