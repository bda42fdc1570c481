//! The rate-limit benchmark: how close each way of calling a rate-limited API gets to the
//! most the server allows, and how many 429s it costs.
//!
//! `cargo bench -p facturapi-sdk --bench rate_limits` (about 15 minutes per seed here;
//! `-- --quick`: under 3 minutes) runs every scenario against the sandbox with its limits hidden from the
//! clients, with five strategies side by side: each against its own sandbox (same limits,
//! same seed), at the same time, each client on its own thread (its own single-threaded
//! runtime) so that its CPU time can be read.
//!
//! - **SDK adaptive** and **SDK static**: this crate, learning the limits (its default) or
//!   with static limits set to the hidden ones at the start of the run, as a caller who
//!   knows them would type them in (each class paced at the hidden rate, with the hidden
//!   cap, or the policy's `max_concurrency` where there is none).
//! - **docs recipe**: a fixed pool of workers; on a 429, sleep `Retry-After` + U(0, 250 ms),
//!   at most 5 retries; nothing else is retried.
//! - **reqwest-retry**: reqwest-middleware with reqwest-retry's exponential backoff (its
//!   defaults, 5 retries), the off-the-shelf choice in Rust.
//! - **oracle**: knows the hidden limits as they change; paces at 0.99 × the rate with the true
//!   concurrency cap, and sends into a token bucket only when its model of it (fed with its
//!   actual send times) holds a token.
//!
//! A full run prints the table and writes it to `BENCHMARKS.md` at the workspace root, with
//! `facturapi-sdk/benches/limit_change.svg` and `limit_steps.svg` (goodput and 429s per
//! second in the scenarios whose limits change) and, with several seeds,
//! `efficiency_per_run.svg`; `--quick` and `--only` runs only print (the report and its
//! plots always come from one run). The targets are checked on the worst run
//! of each scenario. Client and server share this machine's cores.
//! `--only <names>` runs the scenarios whose name contains one of the comma-separated
//! names (`--only "small burst,limit steps"`); `--seed <n>` changes the sandboxes' seed
//! (service times, faults) and the open-loop arrivals (default 7); `--seeds <n>` runs
//! everything once per seed from it and adds a table of the worst and the median of each
//! scenario (what a user meets is the worst run, not one run); `BENCH_TRACE=1` prints the
//! learner's cuts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use facturapi_sdk::sandbox::{ClassLimits, Sandbox, SandboxConfig, ServiceTime};
use facturapi_sdk::{Class, ClassPolicy, Client, Error, models};
use serde_json::json;

#[path = "../tests/support/redis.rs"]
mod redis_server;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Strategy {
    Adaptive,
    /// SDK adaptive with its limits shared through Redis (the fleet scenarios).
    Shared,
    Static,
    Recipe,
    ReqwestRetry,
    Oracle,
}

const STRATEGIES: [Strategy; 5] = [
    Strategy::Adaptive,
    Strategy::Static,
    Strategy::Recipe,
    Strategy::ReqwestRetry,
    Strategy::Oracle,
];

/// The fleet scenarios: several processes on one key, their limits shared through Redis,
/// each learning alone, and the oracle (last: the yardstick).
const FLEET: [Strategy; 3] = [Strategy::Shared, Strategy::Adaptive, Strategy::Oracle];

/// The Redis the shared strategy uses (started by `main` when a fleet scenario runs).
static REDIS_URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();

impl Strategy {
    fn name(self) -> &'static str {
        match self {
            Strategy::Adaptive => "SDK adaptive",
            Strategy::Shared => "SDK shared",
            Strategy::Static => "SDK static",
            Strategy::Recipe => "docs recipe",
            Strategy::ReqwestRetry => "reqwest-retry",
            Strategy::Oracle => "oracle",
        }
    }
}

/// What one job does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    /// `POST /invoices` with an `external_id` and an idempotency key.
    Create,
    /// `GET /customers/{id}`.
    Detail,
    /// `GET /customers?limit=10`.
    List,
}

impl Op {
    fn class(self) -> Class {
        match self {
            Op::Create => Class::Create,
            Op::Detail => Class::DetailRead,
            Op::List => Class::ListRead,
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Load {
    /// `workers` callers per operation, each starting its next job when the last ends.
    Closed { workers: usize },
    /// `jobs` jobs shared by `workers` workers; the run ends when all are done.
    Backlog { jobs: usize, workers: usize },
    /// Poisson arrivals at `fraction` of capacity, each its own task; then a drain.
    Open { fraction: f64 },
}

struct Scenario {
    name: &'static str,
    config: SandboxConfig,
    /// Operations run at once, with the capacity the hidden limits give each (per second).
    ops: Vec<(Op, f64)>,
    load: Load,
    duration: Duration,
    /// Scheduled limit changes: (offset from the start of the run, factor of the base limits).
    changes: Vec<(Duration, f64)>,
    /// Clients on the one key, each with its own learned limits (the SDK strategies; the
    /// others hold no state between calls); worker `w` calls through client `w % processes`.
    processes: usize,
    /// The strategies run side by side, the oracle last.
    strategies: &'static [Strategy],
}

/// The seed of the sandboxes and of the open-loop arrivals (`--seed`).
static SEED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(7);

/// Time between starting the sandbox and starting the run: the seed documents are created
/// (a second per document refused by a burst of one) and the limiters refill.
const SETTLE: Duration = Duration::from_secs(3);

fn scenarios(quick: bool) -> Vec<Scenario> {
    let d = |full: u64, quick_s: u64| Duration::from_secs(if quick { quick_s } else { full });
    let closed = d(40, 8);
    let service = |ms: u64, sigma: f64| ServiceTime::uniform(Duration::from_millis(ms), sigma);
    let seed = SEED.load(std::sync::atomic::Ordering::Relaxed);
    let base = || SandboxConfig::default().seed(seed);
    // Invoices created by `workers` callers for `duration` under hidden creation limits whose
    // capacity is `rate` per second (service times of 60 ms ± 30 %).
    let creates = |name, limits: ClassLimits, rate: f64, workers, duration| Scenario {
        name,
        config: base()
            .limit(Class::Create, limits)
            .service_time(service(60, 0.3)),
        ops: vec![(Op::Create, rate)],
        load: Load::Closed { workers },
        duration,
        changes: vec![],
        processes: 1,
        strategies: &STRATEGIES,
    };
    let mut list = vec![
        creates("rate-bound", ClassLimits::rate(20.0, 5.0), 20.0, 32, closed),
        // A token bucket with no burst to speak of: every request beyond the rate is refused,
        // and `Retry-After` rounds the refill (50 ms) up to a whole second.
        creates(
            "small burst",
            ClassLimits::rate(20.0, 1.0),
            20.0,
            32,
            closed,
        ),
        // Few workers, below the hidden cap: the caller's own concurrency nearly binds, so a
        // wait the SDK adds is time no other request uses.
        creates(
            "few workers",
            ClassLimits::rate(20.0, 5.0).concurrent(8),
            20.0,
            2,
            closed,
        ),
        Scenario {
            name: "concurrency-bound",
            config: base()
                .limit(Class::DetailRead, ClassLimits::concurrency_only(4))
                .service_time(service(200, 0.1)),
            ops: vec![(Op::Detail, 4.0 / 0.2)],
            load: Load::Closed { workers: 32 },
            duration: closed,
            changes: vec![],
            processes: 1,
            strategies: &STRATEGIES,
        },
        Scenario {
            name: "fixed window",
            config: base()
                .limit(
                    Class::ListRead,
                    ClassLimits::window(10, Duration::from_secs(1)),
                )
                .service_time(service(40, 0.3)),
            ops: vec![(Op::List, 10.0)],
            load: Load::Closed { workers: 16 },
            duration: closed,
            changes: vec![],
            processes: 1,
            strategies: &STRATEGIES,
        },
    ];
    let change = d(75, 21);
    list.push(Scenario {
        changes: vec![(change / 3, 0.5), (change * 2 / 3, 0.75)],
        ..creates(
            "limit change",
            ClassLimits::rate(30.0, 10.0),
            30.0,
            32,
            change,
        )
    });
    list.push(Scenario {
        name: "mixed classes",
        config: base()
            .limit(Class::Create, ClassLimits::rate(20.0, 5.0).concurrent(8))
            .limit(
                Class::DetailRead,
                ClassLimits::rate(40.0, 10.0).concurrent(8),
            )
            .limit(Class::ListRead, ClassLimits::rate(10.0, 5.0).concurrent(4))
            .service_time(service(60, 0.3)),
        ops: vec![(Op::Create, 20.0), (Op::Detail, 40.0), (Op::List, 10.0)],
        load: Load::Closed { workers: 16 },
        duration: closed,
        changes: vec![],
        processes: 1,
        strategies: &STRATEGIES,
    });
    list.push(Scenario {
        name: "backlog + faults",
        config: base()
            .limit(Class::Create, ClassLimits::rate(100.0, 20.0).concurrent(32))
            .service_time(service(80, 0.5))
            .faults(SandboxConfig::realistic().faults),
        ops: vec![(Op::Create, 100.0)],
        load: Load::Backlog {
            jobs: if quick { 600 } else { 5_000 },
            workers: 50,
        },
        duration: d(150, 30),
        changes: vec![],
        processes: 1,
        strategies: &STRATEGIES,
    });
    // Limits that move several times, down and up.
    let steps = d(100, 25);
    list.push(Scenario {
        changes: vec![
            (steps / 5, 0.5),
            (steps * 2 / 5, 1.0),
            (steps * 3 / 5, 0.6),
            (steps * 4 / 5, 1.2),
        ],
        ..creates(
            "limit steps",
            ClassLimits::rate(30.0, 10.0),
            30.0,
            32,
            steps,
        )
    });
    // Several processes on one key, each learning alone (the 32 workers split among them):
    // the limit is the key's, so each one's 429s come from the others' traffic too.
    for (name, processes) in [("2 processes", 2), ("4 processes", 4)] {
        list.push(Scenario {
            processes,
            ..creates(name, ClassLimits::rate(20.0, 5.0), 20.0, 32, closed)
        });
    }
    // A fleet on one key: 32 workers split among 1, 4 or 16 processes, whose limits are
    // shared through Redis or learned by each alone.
    for (name, processes) in [
        ("fleet, 1 process", 1),
        ("fleet, 4 processes", 4),
        ("fleet, 16 processes", 16),
    ] {
        list.push(Scenario {
            processes,
            strategies: &FLEET,
            ..creates(
                name,
                ClassLimits::rate(20.0, 5.0).concurrent(8),
                20.0,
                32,
                closed,
            )
        });
    }
    for fraction in [0.5, 0.9, 1.5] {
        list.push(Scenario {
            name: match fraction {
                0.5 => "open loop 50 %",
                0.9 => "open loop 90 %",
                _ => "open loop 150 %",
            },
            config: base()
                .limit(Class::Create, ClassLimits::rate(20.0, 10.0))
                .service_time(service(20, 0.0)),
            ops: vec![(Op::Create, 20.0)],
            load: Load::Open { fraction },
            duration: d(30, 8),
            changes: vec![],
            processes: 1,
            strategies: &STRATEGIES,
        });
    }
    list
}

/// What one strategy did in one scenario.
#[derive(Debug, Default, Clone)]
struct Outcome {
    /// Seconds from the start of the run to each success, with its latency (job start to
    /// success).
    successes: Vec<(f64, Duration)>,
    failed_jobs: Vec<usize>,
    /// The run's end (the last job's end for a backlog).
    elapsed: f64,
    cpu: Duration,
    /// Per-second samples of the ledger: (requests, 429s), cumulative.
    samples: Vec<(u64, u64)>,
    requests: u64,
    rate_limited: u64,
    lost: u64,
    duplicated: u64,
    learned: Vec<String>,
}

/// The seeded documents and the addresses a strategy needs.
#[derive(Clone)]
struct Target {
    base_url: String,
    key: String,
    customer: String,
    product: String,
    sandbox: Arc<Sandbox>,
}

fn invoice_json(t: &Target, i: usize) -> serde_json::Value {
    let id = format!("job-{i:06}");
    json!({
        "customer": t.customer,
        "items": [{"product": t.product, "quantity": 1}],
        "payment_form": "03",
        "external_id": id,
        "idempotency_key": id,
    })
}

fn raw_request(http: &reqwest::Client, t: &Target, op: Op, i: usize) -> reqwest::Request {
    let base = &t.base_url;
    let builder = match op {
        Op::Create => http
            .post(format!("{base}/invoices"))
            .header("content-type", "application/json")
            .body(invoice_json(t, i).to_string()),
        Op::Detail => http.get(format!("{base}/customers/{}", t.customer)),
        Op::List => http.get(format!("{base}/customers?limit=10")),
    };
    builder
        .bearer_auth(&t.key)
        .build()
        .expect("a valid request")
}

fn retry_after(response: &reqwest::Response) -> Duration {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::from_secs(1), Duration::from_secs)
}

/// The oracle's knowledge: pacing at 0.99 × the rate in force, and the true cap; and under
/// a token bucket, a model of the server's bucket (0.99 × its rate, its burst) fed with the
/// oracle's actual send times, so a timer that fires late delays the next send rather than
/// sending it into a bucket not yet refilled (which a bucket of one refuses).
struct Oracle {
    next: Mutex<BTreeMap<Class, Pace>>,
    caps: BTreeMap<Class, Arc<tokio::sync::Semaphore>>,
}

/// The oracle's pacing of one class.
#[derive(Clone, Copy)]
struct Pace {
    /// The next slot.
    tat: Instant,
    /// Tokens in the modelled bucket, as of `refilled`.
    tokens: f64,
    refilled: Instant,
}

impl Oracle {
    fn new(t: &Target) -> Self {
        let caps = Class::ALL
            .iter()
            .map(|c| {
                let cap = t
                    .sandbox
                    .current_limits(*c)
                    .and_then(|l| l.concurrency)
                    .unwrap_or(1_000);
                (*c, Arc::new(tokio::sync::Semaphore::new(cap as usize)))
            })
            .collect();
        Oracle {
            next: Mutex::new(BTreeMap::new()),
            caps,
        }
    }

    /// The rate allowed now, if the class has one.
    fn rate(t: &Target, class: Class) -> Option<f64> {
        let limits = t.sandbox.current_limits(class)?;
        let bucket = limits.token_bucket.map(|(r, _)| r);
        let window = limits
            .fixed_window
            .map(|(n, w)| f64::from(n) / w.as_secs_f64());
        match (bucket, window) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    async fn slot(&self, t: &Target, class: Class) {
        let Some(rate) = Self::rate(t, class) else {
            return;
        };
        let gap = Duration::from_secs_f64(1.0 / (0.99 * rate));
        let mut at = {
            let mut next = self.next.lock().expect("lock");
            let now = Instant::now();
            let pace = next.entry(class).or_insert(Pace {
                tat: now,
                tokens: 1.0,
                refilled: now,
            });
            let slot = pace.tat.max(now);
            pace.tat = slot + gap;
            slot
        };
        loop {
            tokio::time::sleep_until(at.into()).await;
            let Some((rate, burst)) = t.sandbox.current_limits(class).and_then(|l| l.token_bucket)
            else {
                return;
            };
            let rate = 0.99 * rate;
            let mut next = self.next.lock().expect("lock");
            let pace = next.get_mut(&class).expect("booked");
            let now = Instant::now();
            let refill = now.saturating_duration_since(pace.refilled).as_secs_f64() * rate;
            pace.tokens = (pace.tokens + refill).min(burst);
            pace.refilled = now;
            if pace.tokens >= 1.0 {
                pace.tokens -= 1.0;
                return;
            }
            at = now + Duration::from_secs_f64((1.0 - pace.tokens) / rate);
        }
    }
}

enum Runner {
    /// One client per process.
    Sdk(Vec<Client>),
    Recipe(reqwest::Client),
    Retry(reqwest_middleware::ClientWithMiddleware, reqwest::Client),
    Oracle(reqwest::Client, Oracle),
}

/// A failure after which the SDK's caller resends the same job: it is keyed or a read.
fn resendable(e: &Error) -> bool {
    match e {
        Error::Api(api) => api.status >= 500 || api.status == 409 || api.status == 429,
        Error::Timeout { .. }
        | Error::Transport { .. }
        | Error::Decode { .. }
        | Error::RateLimited { .. } => true,
        _ => false,
    }
}

async fn sdk_call(client: &Client, t: &Target, op: Op, i: usize) -> Result<(), Error> {
    match op {
        Op::Create => {
            let body: models::InvoiceCreateInput =
                serde_json::from_value(invoice_json(t, i)).expect("invoice body");
            client
                .invoices()
                .create(&body, &Default::default())
                .await
                .map(drop)
        }
        Op::Detail => client.customers().retrieve(&t.customer).await.map(drop),
        Op::List => {
            let query =
                facturapi_sdk::resources::customers::ListCustomersQuery::default().limit(10);
            client.customers().list(&query).await.map(drop)
        }
    }
}

/// One job of worker `w`; `true` when it succeeded.
async fn job(runner: &Runner, t: &Target, op: Op, i: usize, w: usize) -> bool {
    match runner {
        Runner::Sdk(clients) => {
            let client = &clients[w % clients.len()];
            // What a caller of the SDK does with an ambiguous failure of a keyed create or
            // a read: send the same request again, a few times.
            for _ in 0..6 {
                match sdk_call(client, t, op, i).await {
                    Ok(()) => return true,
                    Err(e) if resendable(&e) => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(_) => return false,
                }
            }
            false
        }
        Runner::Recipe(http) => {
            for _ in 0..=5 {
                match http.execute(raw_request(http, t, op, i)).await {
                    Ok(r) if r.status() == 429 => {
                        let wait = retry_after(&r) + Duration::from_millis(fastrand::u64(0..=250));
                        tokio::time::sleep(wait).await;
                    }
                    Ok(r) => return r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => return false,
                }
            }
            false
        }
        Runner::Retry(client, http) => match client.execute(raw_request(http, t, op, i)).await {
            Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
            Err(_) => false,
        },
        Runner::Oracle(http, oracle) => {
            let class = op.class();
            let _permit = oracle.caps[&class].acquire().await.expect("open");
            for attempt in 0..8 {
                oracle.slot(t, class).await;
                match http.execute(raw_request(http, t, op, i)).await {
                    Ok(r) if r.status() == 429 => tokio::time::sleep(retry_after(&r)).await,
                    Ok(r) if r.status().is_success() => {
                        if r.bytes().await.is_ok() {
                            return true;
                        }
                    }
                    Ok(r) if r.status().is_server_error() => {}
                    Ok(_) => return false,
                    Err(_) => {}
                }
                // Keyed creates and reads are safe to resend.
                tokio::time::sleep(Duration::from_millis(50 << attempt.min(4))).await;
            }
            false
        }
    }
}

fn runner(strategy: Strategy, t: &Target, processes: usize) -> Runner {
    let timeout = Duration::from_secs(2);
    let http = || {
        reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .expect("http client")
    };
    match strategy {
        Strategy::Adaptive | Strategy::Static | Strategy::Shared => {
            // One salt per run: each run starts with nothing learned in Redis.
            let salt = uuid::Uuid::new_v4().to_string();
            let client = || {
                // Each client learns alone, as each process of a fleet does until they share
                // their limits.
                let builder = Client::builder()
                    .api_key(&t.key)
                    .base_url(&t.base_url)
                    .timeout(timeout)
                    .own_limits();
                let builder = match strategy {
                    Strategy::Static => Class::ALL.iter().fold(builder.static_limits(), |b, &c| {
                        let policy = ClassPolicy::default_for(c);
                        let cap = t
                            .sandbox
                            .current_limits(c)
                            .and_then(|l| l.concurrency)
                            .map_or(policy.max_concurrency, |n| n as usize);
                        let policy = policy.with_concurrency(cap);
                        let policy = match Oracle::rate(t, c) {
                            Some(rate) => policy.with_rate(rate),
                            None => policy,
                        };
                        b.class_policy(c, policy)
                    }),
                    Strategy::Shared => builder.shared_limits(
                        facturapi_sdk::SharedLimits::redis(
                            REDIS_URL.get().expect("main starts a Redis for the fleet"),
                        )
                        .salt(&salt),
                    ),
                    _ => builder,
                };
                builder.build().expect("client")
            };
            Runner::Sdk((0..processes.max(1)).map(|_| client()).collect())
        }
        Strategy::Recipe => Runner::Recipe(http()),
        Strategy::ReqwestRetry => {
            use reqwest_retry::{RetryTransientMiddleware, policies::ExponentialBackoff};
            let policy = ExponentialBackoff::builder().build_with_max_retries(5);
            let client = reqwest_middleware::ClientBuilder::new(http())
                .with(RetryTransientMiddleware::new_with_policy(policy))
                .build();
            Runner::Retry(client, http())
        }
        Strategy::Oracle => Runner::Oracle(http(), Oracle::new(t)),
    }
}

/// Runs one strategy's load; returns the successes, the failures and the run's length.
async fn drive(runner: Arc<Runner>, t: Target, scenario: &Scenario, start: Instant) -> Outcome {
    let successes = Arc::new(Mutex::new(Vec::new()));
    let failed = Arc::new(Mutex::new(Vec::new()));
    let record = {
        let (successes, failed) = (successes.clone(), failed.clone());
        move |ok: bool, began: Instant, i: usize| {
            if ok {
                successes
                    .lock()
                    .expect("lock")
                    .push((start.elapsed().as_secs_f64(), began.elapsed()));
            } else {
                failed.lock().expect("lock").push(i);
            }
        }
    };
    let end = start + scenario.duration;
    let mut tasks = tokio::task::JoinSet::new();
    let next_job = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    match scenario.load {
        Load::Closed { workers } => {
            for (op, _) in &scenario.ops {
                for w in 0..workers {
                    let (runner, t, record, next_job, op) = (
                        runner.clone(),
                        t.clone(),
                        record.clone(),
                        next_job.clone(),
                        *op,
                    );
                    tasks.spawn(async move {
                        while Instant::now() < end {
                            let i = next_job.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let began = Instant::now();
                            let ok = job(&runner, &t, op, i, w).await;
                            record(ok, began, i);
                        }
                    });
                }
            }
        }
        Load::Backlog { jobs, workers } => {
            let op = scenario.ops[0].0;
            for w in 0..workers {
                let (runner, t, record, next_job) =
                    (runner.clone(), t.clone(), record.clone(), next_job.clone());
                tasks.spawn(async move {
                    loop {
                        let i = next_job.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= jobs || Instant::now() > end {
                            break;
                        }
                        let began = Instant::now();
                        let ok = job(&runner, &t, op, i, w).await;
                        record(ok, began, i);
                    }
                });
            }
        }
        Load::Open { fraction } => {
            let (op, capacity) = scenario.ops[0];
            let rate = fraction * capacity;
            // The same arrival times for every strategy.
            let mut rng =
                fastrand::Rng::with_seed(SEED.load(std::sync::atomic::Ordering::Relaxed) + 4);
            let mut at = start;
            let mut i = 0;
            loop {
                at += Duration::from_secs_f64(-(1.0 - rng.f64()).ln() / rate);
                if at >= end {
                    break;
                }
                let (runner, t, record) = (runner.clone(), t.clone(), record.clone());
                tasks.spawn(async move {
                    tokio::time::sleep_until(at.into()).await;
                    let began = Instant::now();
                    let ok = job(&runner, &t, op, i, i).await;
                    record(ok, began, i);
                });
                i += 1;
            }
        }
    }
    // Closed loops stop at the end (what is in flight then is left out); open loops get
    // half the duration again to drain; a backlog runs until done or the duration.
    let cutoff = match scenario.load {
        Load::Open { .. } => end + scenario.duration / 2,
        _ => end,
    };
    let _ = tokio::time::timeout_at(cutoff.into(), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
    let elapsed = match scenario.load {
        Load::Closed { .. } => scenario.duration.as_secs_f64(),
        _ => start.elapsed().as_secs_f64(),
    };
    let successes = std::mem::take(&mut *successes.lock().expect("lock"));
    let failed = std::mem::take(&mut *failed.lock().expect("lock"));
    Outcome {
        successes,
        failed_jobs: failed,
        elapsed,
        ..Outcome::default()
    }
}

/// Creates the customer and product the jobs use.
async fn seed(sandbox: Arc<Sandbox>) -> Target {
    let http = reqwest::Client::new();
    // Creates one document, waiting out the 429s of a small hidden burst (the seeding shares
    // the creation class's limits with the run).
    let create = |path: &'static str, body: serde_json::Value| {
        let (http, sandbox) = (http.clone(), sandbox.clone());
        async move {
            for _ in 0..20 {
                let response = http
                    .post(format!("{}/{path}", sandbox.base_url()))
                    .bearer_auth(sandbox.test_key())
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await
                    .expect("the sandbox answers");
                if response.status().is_success() {
                    let v: serde_json::Value =
                        serde_json::from_slice(&response.bytes().await.expect("a body"))
                            .expect("json");
                    return v["id"].as_str().expect("an id").to_owned();
                }
                tokio::time::sleep(Duration::from_millis(1100)).await;
            }
            panic!("seeding {path}: still refused after 20 attempts")
        }
    };
    let customer = create(
        "customers",
        json!({"legal_name": "PUBLICO EN GENERAL", "tax_id": "XAXX010101000",
               "tax_system": "616", "address": {"zip": "86500"}}),
    )
    .await;
    let product = create(
        "products",
        json!({"description": "Servicio", "price": 100.0, "product_key": "81112100"}),
    )
    .await;
    Target {
        base_url: sandbox.base_url().to_owned(),
        key: sandbox.test_key().to_owned(),
        customer,
        product,
        sandbox,
    }
}

/// Runs every strategy of one scenario at once.
fn run_scenario(main: &tokio::runtime::Runtime, scenario: &Arc<Scenario>) -> Vec<Outcome> {
    let born = Instant::now();
    let start = born + SETTLE;
    // Every sandbox is seeded at once: one after the other, a burst of one took a second
    // each, and the last strategies started seconds late with their limit changes shifted.
    let targets: Vec<Target> = main.block_on(async {
        let mut sandboxes = Vec::new();
        for _ in scenario.strategies {
            let mut config = scenario.config.clone();
            for (at, factor) in &scenario.changes {
                config = config.change_limits(SETTLE + *at, *factor);
            }
            sandboxes.push(Arc::new(Sandbox::start(config).await.expect("bind")));
        }
        futures_util::future::join_all(sandboxes.into_iter().map(seed)).await
    });
    // The limiters refill for a second before the run. A stall fault in the seeding pushes the
    // start back; the limit changes, scheduled from the sandboxes' start, cannot move with it,
    // and their scenarios have no faults.
    let start = start.max(Instant::now() + Duration::from_secs(1));
    assert!(
        scenario.changes.is_empty() || start == born + SETTLE,
        "seeding took longer than {SETTLE:?}: the limit changes would come early"
    );
    // The ledger, once a second, for 429s over time.
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let samplers: Vec<_> = targets
        .iter()
        .map(|t| {
            let (sandbox, done) = (t.sandbox.clone(), done.clone());
            main.spawn(async move {
                tokio::time::sleep_until(start.into()).await;
                let mut samples = Vec::new();
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    tick.tick().await;
                    let ledger = sandbox.ledger();
                    samples.push((ledger.total_requests(), ledger.total_rate_limited()));
                }
                samples
            })
        })
        .collect();
    let threads: Vec<_> = scenario
        .strategies
        .iter()
        .zip(&targets)
        .map(|(strategy, t)| {
            let (strategy, t, scenario) = (*strategy, t.clone(), scenario.clone());
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                let cpu = cpu_time::ThreadTime::now();
                let runner = Arc::new(runner(strategy, &t, scenario.processes));
                let mut outcome = runtime.block_on(async {
                    tokio::time::sleep_until(start.into()).await;
                    drive(runner.clone(), t.clone(), &scenario, start).await
                });
                if let Runner::Sdk(clients) = &*runner {
                    // The first process's view.
                    let client = &clients[0];
                    for (op, _) in &scenario.ops {
                        let l = client.learned(op.class());
                        outcome.learned.push(format!(
                            "{}: {} at once, {}",
                            op.class(),
                            l.concurrency,
                            l.rate.map_or("not paced".into(), |r| format!("{r:.1}/s"))
                        ));
                    }
                }
                drop(runner);
                outcome.cpu = cpu.elapsed();
                outcome
            })
        })
        .collect();
    let mut outcomes: Vec<Outcome> = threads
        .into_iter()
        .map(|h| h.join().expect("strategy thread"))
        .collect();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    for ((outcome, t), sampler) in outcomes.iter_mut().zip(&targets).zip(samplers) {
        let ledger = t.sandbox.ledger();
        // Two seed creates precede the run.
        outcome.requests = ledger.total_requests().saturating_sub(2);
        outcome.rate_limited = ledger.total_rate_limited();
        outcome.duplicated = ledger.duplicates;
        // A failed create whose document exists anyway was not lost (its response was).
        let creates = scenario.ops.iter().all(|(op, _)| *op == Op::Create);
        outcome.lost = outcome
            .failed_jobs
            .iter()
            .filter(|i| {
                !creates
                    || !ledger
                        .created_by_external_id
                        .contains_key(&format!("job-{i:06}"))
            })
            .count() as u64;
        outcome.samples = main.block_on(sampler).expect("sampler");
    }
    drop(targets);
    outcomes
}

/// One line of the table.
#[derive(Debug, Clone)]
struct Row {
    scenario: &'static str,
    strategy: Strategy,
    goodput: f64,
    efficiency: f64,
    steady_429: f64,
    all_429: f64,
    p50: f64,
    p95: f64,
    p99: f64,
    lost: u64,
    duplicated: u64,
    cpu_us: f64,
    reconverge: String,
    learned: String,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Successes per one-second bucket.
fn per_second(o: &Outcome, seconds: usize) -> Vec<f64> {
    let mut buckets = vec![0.0; seconds];
    for (t, _) in &o.successes {
        if let Some(b) = buckets.get_mut(*t as usize) {
            *b += 1.0;
        }
    }
    buckets
}

/// 429s per one-second bucket, from the ledger samples (taken at whole seconds).
fn rate_limited_per_second(o: &Outcome, seconds: usize) -> Vec<f64> {
    (0..seconds)
        .map(|s| match (o.samples.get(s), o.samples.get(s + 1)) {
            (Some(a), Some(b)) => b.1.saturating_sub(a.1) as f64,
            _ => 0.0,
        })
        .collect()
}

/// Each second of a run: the successes and 429s of SDK adaptive, and the oracle's successes.
fn timeline_of(scenario: &Scenario, outcomes: &[Outcome]) -> String {
    let seconds = scenario.duration.as_secs() as usize;
    let adaptive = &outcomes[0];
    let oracle = outcomes.last().expect("the oracle runs last");
    let (good, limited) = (
        per_second(adaptive, seconds),
        rate_limited_per_second(adaptive, seconds),
    );
    let best = per_second(oracle, seconds);
    let mut out = format!(
        "{}: second, SDK adaptive successes / 429s, oracle successes\n",
        scenario.name
    );
    for s in 0..seconds {
        let _ = writeln!(
            out,
            "{s:>4} {:>5} / {:<4} {:>5}",
            good[s], limited[s], best[s]
        );
    }
    out
}

/// Seconds after each limit change until three seconds in a row run at ≥ 95 % of the new
/// capacity on average, with at most one 429 each.
fn reconvergence(o: &Outcome, scenario: &Scenario) -> String {
    let seconds = scenario.duration.as_secs() as usize;
    let good = per_second(o, seconds);
    let limited = rate_limited_per_second(o, seconds);
    let capacity = scenario.ops[0].1;
    let times: Vec<String> = scenario
        .changes
        .iter()
        .map(|(at, factor)| {
            let from = at.as_secs() as usize;
            (from..seconds.saturating_sub(2))
                .find(|s| {
                    (*s..s + 3).map(|k| good[k]).sum::<f64>() >= 3.0 * 0.95 * capacity * factor
                        && (*s..s + 3).all(|k| limited[k] <= 1.0)
                })
                .map_or("never".into(), |s| format!("{} s", s - from))
        })
        .collect();
    times.join(" / ")
}

fn rows(scenario: &Scenario, outcomes: &[Outcome]) -> Vec<Row> {
    let duration = scenario.duration.as_secs_f64();
    let warm = duration / 4.0;
    let goodput = |o: &Outcome| match scenario.load {
        Load::Backlog { .. } => o.successes.len() as f64 / o.elapsed.max(1e-9),
        _ => {
            o.successes
                .iter()
                .filter(|(t, _)| *t >= warm && *t < duration)
                .count() as f64
                / (duration - warm)
        }
    };
    let oracle = goodput(outcomes.last().expect("the oracle runs last"));
    scenario
        .strategies
        .iter()
        .zip(outcomes)
        .map(|(strategy, o)| {
            let mut latencies: Vec<f64> = o
                .successes
                .iter()
                .map(|(_, l)| l.as_secs_f64() * 1e3)
                .collect();
            latencies.sort_by(f64::total_cmp);
            let w = (warm.ceil() as usize).min(o.samples.len().saturating_sub(1));
            let (first, last) = (
                o.samples.get(w).copied().unwrap_or_default(),
                o.samples.last().copied().unwrap_or_default(),
            );
            let steady_requests = last.0.saturating_sub(first.0).max(1) as f64;
            Row {
                scenario: scenario.name,
                strategy: *strategy,
                goodput: goodput(o),
                efficiency: goodput(o) / oracle,
                steady_429: last.1.saturating_sub(first.1) as f64 / steady_requests,
                all_429: o.rate_limited as f64 / o.requests.max(1) as f64,
                p50: percentile(&latencies, 0.50),
                p95: percentile(&latencies, 0.95),
                p99: percentile(&latencies, 0.99),
                lost: o.lost,
                duplicated: o.duplicated,
                cpu_us: o.cpu.as_secs_f64() * 1e6 / o.requests.max(1) as f64,
                reconverge: if scenario.changes.is_empty() {
                    String::new()
                } else {
                    reconvergence(o, scenario)
                },
                learned: o.learned.join("; "),
            }
        })
        .collect()
}

fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| scenario | strategy | goodput/s | efficiency | 429 steady | 429 all | p50 ms | p95 ms | p99 ms | lost | dup | CPU µs/req | re-converge, s after each change |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} | {:.2} | {:.1} % | {:.1} % | {:.0} | {:.0} | {:.0} | {} | {} | {:.0} | {} |",
            r.scenario,
            r.strategy.name(),
            r.goodput,
            r.efficiency,
            r.steady_429 * 100.0,
            r.all_429 * 100.0,
            r.p50,
            r.p95,
            r.p99,
            r.lost,
            r.duplicated,
            r.cpu_us,
            r.reconverge
        );
    }
    out
}

/// The targets of the adaptive governor, read off the rows (the worst run of each scenario
/// when there are several).
fn verdicts(rows: &[Row]) -> String {
    let find = |scenario: &str, strategy: Strategy| {
        rows.iter()
            .find(|r| r.scenario == scenario && r.strategy == strategy)
    };
    let mut out = String::new();
    let a = Strategy::Adaptive;
    for (scenario, target) in [
        ("rate-bound", 0.97),
        ("concurrency-bound", 0.97),
        ("fixed window", 0.97),
        ("few workers", 0.97),
        ("backlog + faults", 0.97),
        ("limit change", 0.93),
        ("limit steps", 0.93),
    ] {
        if let Some(r) = find(scenario, a) {
            let _ = writeln!(
                out,
                "- efficiency, {scenario}: {:.2} (target ≥ {target:.2}: {})",
                r.efficiency,
                if r.efficiency >= target {
                    "met"
                } else {
                    "missed"
                }
            );
        }
    }
    // Several processes on one key are the shared limits' job; each learning alone is
    // reported apart.
    let processes = |name: &str| {
        scenarios(true)
            .iter()
            .find(|s| s.name == name)
            .map_or(1, |s| s.processes)
    };
    let adaptive: Vec<&Row> = rows.iter().filter(|r| r.strategy == a).collect();
    if !adaptive.is_empty() {
        let (one, alone): (Vec<&Row>, Vec<&Row>) =
            adaptive.iter().partition(|r| processes(r.scenario) == 1);
        for (label, rows, (steady_target, all_target)) in [
            (
                "worst scenario of one process",
                &one,
                (" (target ≤ 0.5 %)", " (target ≤ 2 %)"),
            ),
            (
                "several processes on one key each learning alone (no shared limits), worst",
                &alone,
                ("", ""),
            ),
        ] {
            if rows.is_empty() {
                continue;
            }
            let steady = rows.iter().map(|r| r.steady_429).fold(0.0, f64::max);
            let all = rows.iter().map(|r| r.all_429).fold(0.0, f64::max);
            let _ = writeln!(
                out,
                "- 429 ratio, {label}: {:.1} % steady{steady_target}, {:.1} % whole run{all_target}",
                steady * 100.0,
                all * 100.0,
            );
        }
        let mean = |s: Strategy| {
            let v: Vec<f64> = rows
                .iter()
                .filter(|r| r.strategy == s)
                .map(|r| r.all_429)
                .collect();
            v.iter().sum::<f64>() / v.len().max(1) as f64
        };
        for other in [Strategy::Recipe, Strategy::ReqwestRetry] {
            if !rows.iter().any(|r| r.strategy == other) {
                continue; // not run (`--only`)
            }
            let _ = writeln!(
                out,
                "- mean 429 ratio, {} ÷ SDK adaptive: {:.1}× (target ≥ 10×)",
                other.name(),
                mean(other) / mean(a).max(1e-9)
            );
        }
    }
    // Static mode with the hidden limits typed in is at or above them wherever they never
    // rise past their starting point.
    let never_rises = |name: &str| {
        scenarios(true)
            .iter()
            .find(|s| s.name == name)
            .is_some_and(|s| s.changes.iter().all(|&(_, factor)| factor <= 1.0))
    };
    if let Some(worst) = rows
        .iter()
        .filter(|r| r.strategy == Strategy::Static && never_rises(r.scenario))
        .min_by(|x, y| x.efficiency.total_cmp(&y.efficiency))
    {
        let _ = writeln!(
            out,
            "- efficiency, SDK static with the hidden limits typed in, worst scenario where they never rise ({}): {:.2} (target ≥ 0.90: {})",
            worst.scenario,
            worst.efficiency,
            if worst.efficiency >= 0.9 {
                "met"
            } else {
                "missed"
            }
        );
    }
    for fleet in ["fleet, 4 processes", "fleet, 16 processes"] {
        if let (Some(shared), Some(alone)) = (
            find(fleet, Strategy::Shared),
            find(fleet, Strategy::Adaptive),
        ) {
            let _ = writeln!(
                out,
                "- {fleet}: shared {:.2} of the oracle with {:.1} % 429s (target ≥ 0.93, ≤ 1 %); each learning alone {:.2} with {:.1} %",
                shared.efficiency,
                shared.all_429 * 100.0,
                alone.efficiency,
                alone.all_429 * 100.0
            );
        }
    }
    let sdk = |s: Strategy| rows.iter().filter(move |r| r.strategy == s);
    for s in [Strategy::Adaptive, Strategy::Shared, Strategy::Static] {
        let lost: u64 = sdk(s).map(|r| r.lost).sum();
        let dup: u64 = sdk(s).map(|r| r.duplicated).sum();
        let _ = writeln!(
            out,
            "- {}: {lost} lost, {dup} duplicated over every scenario (target 0 / 0)",
            s.name()
        );
    }
    if let (Some(adaptive), Some(raw)) = (
        find("open loop 50 %", a),
        find("open loop 50 %", Strategy::Recipe),
    ) {
        let _ = writeln!(
            out,
            "- at 50 % load: SDK adaptive p99 {:.1} ms vs the recipe's (no governor) {:.1} ms: {:+.1} ms (target ≤ 1 ms), 429s {:.1} %",
            adaptive.p99,
            raw.p99,
            adaptive.p99 - raw.p99,
            adaptive.all_429 * 100.0
        );
    }
    out
}

/// Goodput and 429s per second of every strategy in the limit-change scenario.
fn plot(path: &std::path::Path, scenario: &Scenario, outcomes: &[Outcome]) -> Result<(), String> {
    use plotters::prelude::*;
    let seconds = scenario.duration.as_secs() as usize;
    let colors = [
        RGBColor(0, 114, 178),
        RGBColor(230, 159, 0),
        RGBColor(204, 121, 167),
        RGBColor(0, 158, 115),
        RGBColor(0, 0, 0),
    ];
    let root = SVGBackend::new(path, (960, 720)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let panels = root.split_evenly((2, 1));
    let series: [(&str, Vec<Vec<f64>>); 2] = [
        (
            "goodput (successes per second)",
            outcomes.iter().map(|o| per_second(o, seconds)).collect(),
        ),
        (
            "429s per second",
            outcomes
                .iter()
                .map(|o| rate_limited_per_second(o, seconds))
                .collect(),
        ),
    ];
    for (panel, (title, lines)) in panels.iter().zip(series) {
        let top = lines.iter().flatten().copied().fold(1.0, f64::max) * 1.1;
        let mut chart = ChartBuilder::on(panel)
            .caption(format!("{} — {title}", scenario.name), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(44)
            .build_cartesian_2d(0f64..seconds as f64, 0f64..top)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("seconds")
            .draw()
            .map_err(|e| e.to_string())?;
        for ((strategy, line), color) in STRATEGIES.iter().zip(&lines).zip(colors) {
            chart
                .draw_series(LineSeries::new(
                    line.iter().enumerate().map(|(s, v)| (s as f64 + 0.5, *v)),
                    color.stroke_width(2),
                ))
                .map_err(|e| e.to_string())?
                .label(strategy.name())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}

/// The efficiency of every run of the two SDK modes, one column per scenario: the spread of
/// each column is the variance a user meets.
fn plot_runs(path: &std::path::Path, per_seed: &[(u64, Vec<Row>)]) -> Result<(), String> {
    use plotters::prelude::*;
    let mut names: Vec<&'static str> = Vec::new();
    for row in per_seed.iter().flat_map(|(_, rows)| rows) {
        if !names.contains(&row.scenario) {
            names.push(row.scenario);
        }
    }
    let root = SVGBackend::new(path, (1200, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let top = per_seed
        .iter()
        .flat_map(|(_, rows)| rows)
        .map(|r| r.efficiency)
        .fold(1.1, f64::max);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "efficiency of each run (goodput ÷ the oracle's), one dot per seed",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(60)
        .y_label_area_size(44)
        .build_cartesian_2d(-0.5f64..names.len() as f64 - 0.5, 0f64..top)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_labels(names.len())
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 0.01 && i >= 0.0 {
                names.get(i as usize).copied().unwrap_or("").to_owned()
            } else {
                String::new()
            }
        })
        .disable_x_mesh()
        .draw()
        .map_err(|e| e.to_string())?;
    for (strategy, color, offset) in [
        (Strategy::Adaptive, RGBColor(0, 114, 178), -0.12),
        (Strategy::Shared, RGBColor(0, 158, 115), 0.0),
        (Strategy::Static, RGBColor(230, 159, 0), 0.12),
    ] {
        let dots: Vec<(f64, f64)> = per_seed
            .iter()
            .flat_map(|(_, rows)| rows)
            .filter(|r| r.strategy == strategy)
            .filter_map(|r| {
                let x = names.iter().position(|n| *n == r.scenario)? as f64 + offset;
                Some((x, r.efficiency))
            })
            .collect();
        chart
            .draw_series(
                dots.into_iter()
                    .map(move |p| Circle::new(p, 4, color.filled())),
            )
            .map_err(|e| e.to_string())?
            .label(strategy.name())
            .legend(move |(x, y)| Circle::new((x + 8, y), 4, color.filled()));
    }
    chart
        .draw_series(LineSeries::new(
            [(-0.5, 1.0), (names.len() as f64 - 0.5, 1.0)],
            BLACK.mix(0.4),
        ))
        .map_err(|e| e.to_string())?;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

/// Each scenario and strategy's worst run across seeds: the lowest efficiency, the highest
/// 429 ratios, and every loss and duplicate.
fn worst_rows(per_seed: &[(u64, Vec<Row>)]) -> Vec<Row> {
    let mut worst: Vec<Row> = Vec::new();
    for row in per_seed.iter().flat_map(|(_, rows)| rows) {
        match worst
            .iter_mut()
            .find(|w| w.scenario == row.scenario && w.strategy == row.strategy)
        {
            None => worst.push(row.clone()),
            Some(w) => {
                let (steady, all) = (w.steady_429.max(row.steady_429), w.all_429.max(row.all_429));
                let (lost, duplicated) = (w.lost + row.lost, w.duplicated + row.duplicated);
                if row.efficiency < w.efficiency {
                    *w = row.clone();
                }
                (w.steady_429, w.all_429, w.lost, w.duplicated) = (steady, all, lost, duplicated);
            }
        }
    }
    worst
}

/// Worst and median of each scenario and strategy across seeds (the oracle left out: it is
/// the yardstick).
fn variance_table(per_seed: &[(u64, Vec<Row>)]) -> String {
    let mut groups: BTreeMap<(usize, Strategy), (&'static str, Vec<&Row>)> = BTreeMap::new();
    let mut order: Vec<&'static str> = Vec::new();
    for (_, rows) in per_seed {
        for row in rows.iter().filter(|r| r.strategy != Strategy::Oracle) {
            let at = match order.iter().position(|n| *n == row.scenario) {
                Some(at) => at,
                None => {
                    order.push(row.scenario);
                    order.len() - 1
                }
            };
            groups
                .entry((at, row.strategy))
                .or_insert((row.scenario, Vec::new()))
                .1
                .push(row);
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut out = String::from(
        "| scenario | strategy | runs | efficiency worst | median | each run | 429s whole run worst | median | steady-state worst | lost / duplicated |\n\
         | --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |\n",
    );
    for ((_, strategy), (scenario, rows)) in &groups {
        let eff: Vec<f64> = rows.iter().map(|r| r.efficiency).collect();
        let all: Vec<f64> = rows.iter().map(|r| r.all_429).collect();
        let worst_eff = eff.iter().copied().fold(f64::INFINITY, f64::min);
        let worst_all = all.iter().copied().fold(0.0, f64::max);
        let worst_steady = rows.iter().map(|r| r.steady_429).fold(0.0, f64::max);
        let each: Vec<String> = eff.iter().map(|e| format!("{e:.2}")).collect();
        let lost: u64 = rows.iter().map(|r| r.lost).sum();
        let dup: u64 = rows.iter().map(|r| r.duplicated).sum();
        let _ = writeln!(
            out,
            "| {scenario} | {} | {} | {worst_eff:.2} | {:.2} | {} | {:.1} % | {:.1} % | {:.1} % | {lost} / {dup} |",
            strategy.name(),
            rows.len(),
            median(eff.clone()),
            each.join(" "),
            100.0 * worst_all,
            100.0 * median(all),
            100.0 * worst_steady,
        );
    }
    out
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores ({cpu}), {}", std::env::consts::OS)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    if std::env::var_os("BENCH_TRACE").is_some() {
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(std::io::stderr)
            .init();
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let main = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let began = Instant::now();
    // `--only <names>`: the scenarios whose name contains one of these, comma-separated
    // (while tuning).
    let args: Vec<String> = std::env::args().collect();
    let only: Option<Vec<String>> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|names| names.split(',').map(|n| n.trim().to_owned()).collect());
    let chosen = |name: &str| {
        only.as_ref()
            .is_none_or(|names| names.iter().any(|n| name.contains(n.as_str())))
    };
    if let Some(seed) = args
        .iter()
        .position(|a| a == "--seed")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
    {
        SEED.store(seed, std::sync::atomic::Ordering::Relaxed);
    }
    // `--seeds <n>`: the whole run once per seed (the given one and the next n − 1), then the
    // worst and the median of each scenario across them.
    let seeds: u64 = args
        .iter()
        .position(|a| a == "--seeds")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1);
    let first_seed = SEED.load(std::sync::atomic::Ordering::Relaxed);
    // `--timeline`: each second of each run, SDK adaptive beside the oracle (while tuning).
    let timeline = args.iter().any(|a| a == "--timeline");
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    // Only a full run writes BENCHMARKS.md and the plots: a partial one never leaves a plot
    // that disagrees with the report beside it.
    let writes_report = !quick && only.is_none();
    // A Redis for the shared strategy, stopped when the run ends.
    let wants_redis = scenarios(quick)
        .iter()
        .any(|s| s.strategies.contains(&Strategy::Shared) && chosen(s.name));
    let _redis = wants_redis.then(|| {
        let (url, server) = redis_server::shared_or_own()
            .unwrap_or_else(|e| panic!("the fleet scenarios need Redis: {e}"));
        REDIS_URL.set(url).expect("set once");
        server
    });
    let mut all = Vec::new();
    let mut learned = String::new();
    let mut per_seed: Vec<(u64, Vec<Row>)> = Vec::new();
    for seed in first_seed..first_seed + seeds {
        SEED.store(seed, std::sync::atomic::Ordering::Relaxed);
        if seeds > 1 {
            eprintln!("seed {seed}");
        }
        let mut this_seed = Vec::new();
        for scenario in scenarios(quick) {
            if !chosen(scenario.name) {
                continue;
            }
            let scenario = Arc::new(scenario);
            eprintln!("{} ({} s)…", scenario.name, scenario.duration.as_secs());
            let outcomes = run_scenario(&main, &scenario);
            let rows = rows(&scenario, &outcomes);
            print!("{}", table(&rows));
            if timeline {
                print!("{}", timeline_of(&scenario, &outcomes));
            }
            for r in rows.iter().filter(|r| !r.learned.is_empty()) {
                let _ = writeln!(
                    learned,
                    "- {}, {}, seed {seed}: {}",
                    r.scenario,
                    r.strategy.name(),
                    r.learned
                );
            }
            if writes_report && !scenario.changes.is_empty() && seed == first_seed {
                let path =
                    manifest.join(format!("benches/{}.svg", scenario.name.replace(' ', "_")));
                if let Err(e) = plot(&path, &scenario, &outcomes) {
                    eprintln!("plot: {e}");
                }
            }
            this_seed.extend(rows);
        }
        per_seed.push((seed, this_seed));
    }
    let variance = variance_table(&per_seed);
    if seeds > 1 {
        println!(
            "\nAcross seeds {first_seed}..={}:\n{variance}",
            first_seed + seeds - 1
        );
    }
    // The verdicts are of the worst runs; the table below is the first seed's run.
    let verdicts = verdicts(&worst_rows(&per_seed));
    if writes_report && seeds > 1 {
        let path = manifest.join("benches/efficiency_per_run.svg");
        if let Err(e) = plot_runs(&path, &per_seed) {
            eprintln!("plot: {e}");
        }
    }
    all.extend(per_seed.swap_remove(0).1);
    let elapsed = began.elapsed().as_secs_f64();
    println!("\n{}\n{verdicts}\nwhole run: {elapsed:.0} s", table(&all));
    if writes_report {
        let report = format!(
            "# Rate-limit benchmark\n\n\
             Generated by `cargo bench -p facturapi-sdk --bench rate_limits` on {date}, {machine}; \
             the whole run took {elapsed:.0} s. Do not edit: run the command again.\n\n\
             Each scenario runs five strategies at once (the fleet scenarios three: SDK shared, \
             whose processes share their limits through a real Redis; SDK adaptive, each \
             process learning alone; the oracle), each against its own sandbox with the \
             same hidden limits and seed (see the comments in `facturapi-sdk/benches/rate_limits.rs`). \
             Efficiency is goodput ÷ the oracle's goodput, after the first quarter of the run \
             (for the backlog: jobs ÷ time to finish them). 429 ratios are the sandbox's own \
             counts ÷ all attempts. Latency runs from a job's start to its success. \
             CPU is the client thread's CPU time per attempt.\n\n\
             ## Against the targets (SDK adaptive, worst run)\n\n{verdicts}\n\
             {across}\
             ## Every scenario (seed {first_seed})\n\n{}\n\
             ## Where the learned limits ended\n\n{learned}\n\
             ## Limit changes over time\n\n\
             ![goodput and 429s per second, limit change](facturapi-sdk/benches/limit_change.svg)\n\n\
             ![goodput and 429s per second, limit steps](facturapi-sdk/benches/limit_steps.svg)\n",
            table(&all),
            across = if seeds > 1 {
                format!(
                    "## Across seeds {first_seed} to {}: worst and median\n\n{variance}\n\
                     ![efficiency of each run](facturapi-sdk/benches/efficiency_per_run.svg)\n\n",
                    first_seed + seeds - 1
                )
            } else {
                String::new()
            },
            date = chrono::Utc::now().format("%Y-%m-%d"),
            machine = machine(),
        );
        let path = manifest.join("../BENCHMARKS.md");
        std::fs::write(&path, report).expect("write BENCHMARKS.md");
        eprintln!("wrote {}", path.display());
    }
}
