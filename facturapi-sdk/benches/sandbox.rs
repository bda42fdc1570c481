//! Sandbox throughput: is the sandbox ever the bottleneck of a test or a benchmark?
//!
//! `cargo bench -p facturapi-sdk --bench sandbox` runs the sandbox with no limits, no service
//! time and no faults on 127.0.0.1 and loads it from the same process, side by side:
//! a plain keep-alive reqwest client and the SDK, for a detail read, a list read and a
//! create, at several client concurrencies. It prints requests per second; client and server
//! share this machine's cores, so the figures are a floor for the sandbox alone.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use facturapi_sdk::sandbox::{Sandbox, SandboxConfig};
use facturapi_sdk::{Class, ClassPolicy, Client, models};
use serde_json::json;

const ROUND: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug)]
enum Op {
    Detail,
    List,
    Create,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Detail => "GET /customers/{id}",
            Op::List => "GET /customers",
            Op::Create => "POST /products",
        }
    }
}

async fn raw_call(http: &reqwest::Client, sandbox: &Sandbox, op: Op, customer: &str) -> bool {
    let base = sandbox.base_url();
    let request = match op {
        Op::Detail => http.get(format!("{base}/customers/{customer}")),
        Op::List => http.get(format!("{base}/customers?limit=10")),
        Op::Create => http
            .post(format!("{base}/products"))
            .header("content-type", "application/json")
            .body(r#"{"description":"Ukelele","price":10.5,"product_key":"60131324"}"#),
    };
    match request.bearer_auth(sandbox.test_key()).send().await {
        Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
        Err(_) => false,
    }
}

async fn sdk_call(
    client: &Client,
    op: Op,
    customer: &str,
    product: &models::ProductCreateBody,
) -> bool {
    match op {
        Op::Detail => client.customers().retrieve(customer).await.is_ok(),
        Op::List => {
            let query =
                facturapi_sdk::resources::customers::ListCustomersQuery::default().limit(10);
            client.customers().list(&query).await.is_ok()
        }
        Op::Create => client.products().create(product).await.is_ok(),
    }
}

/// Runs `workers` loops for one round; returns successful requests per second.
async fn round<F, Fut>(workers: usize, call: F) -> (f64, u64)
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + ROUND;
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (call, ok, failed) = (call.clone(), ok.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                if call().await {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let secs = start.elapsed().as_secs_f64();
    (
        ok.load(Ordering::Relaxed) as f64 / secs,
        failed.load(Ordering::Relaxed),
    )
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let sandbox = Arc::new(Sandbox::start(SandboxConfig::default()).await.expect("bind"));
        // The SDK with its class limits lifted, so that it measures the sandbox and the send
        // path rather than the default concurrency caps.
        let mut builder = Client::builder()
            .api_key(sandbox.test_key())
            .base_url(sandbox.base_url());
        for class in Class::ALL {
            builder = builder.class_policy(class, ClassPolicy::default_for(class).with_concurrency(64));
        }
        let client = builder.build().expect("client");
        let http = reqwest::Client::new();
        let customer: models::CustomerCreateInput = serde_json::from_value(json!({
            "legal_name": "Bench", "tax_id": "XAXX010101000", "tax_system": "616", "address": {"zip": "86500"}
        }))
        .expect("body");
        let customer = client
            .customers()
            .create(&customer, &Default::default())
            .await
            .expect("customer")
            .id
            .clone();
        let product: models::ProductCreateBody = serde_json::from_value(
            json!({"description": "Ukelele", "price": 10.5, "product_key": "60131324"}),
        )
        .expect("body");
        for _ in 0..20 {
            sdk_call(&client, Op::List, &customer, &product).await;
        }

        println!("sandbox throughput on 127.0.0.1 (limits off, service time 0, faults off); {} s per row", ROUND.as_secs());
        println!("{:<22} {:>8} {:>12} {:>12} {:>10}", "operation", "workers", "raw req/s", "SDK req/s", "SDK/raw");
        let mut lowest = f64::INFINITY;
        for op in [Op::Detail, Op::List, Op::Create] {
            for workers in [1, 8, 32] {
                let (raw, raw_failed) = {
                    let (http, sandbox, customer) = (http.clone(), sandbox.clone(), customer.clone());
                    round(workers, move || {
                        let (http, sandbox, customer) = (http.clone(), sandbox.clone(), customer.clone());
                        async move { raw_call(&http, &sandbox, op, &customer).await }
                    })
                    .await
                };
                let (sdk, sdk_failed) = {
                    let (client, customer, product) = (client.clone(), customer.clone(), product.clone());
                    round(workers, move || {
                        let (client, customer, product) = (client.clone(), customer.clone(), product.clone());
                        async move { sdk_call(&client, op, &customer, &product).await }
                    })
                    .await
                };
                assert_eq!(raw_failed + sdk_failed, 0, "{} failed requests", raw_failed + sdk_failed);
                if workers > 1 {
                    lowest = lowest.min(raw.max(sdk));
                }
                println!(
                    "{:<22} {:>8} {:>12.0} {:>12.0} {:>10.2}",
                    op.name(),
                    workers,
                    raw,
                    sdk,
                    sdk / raw
                );
            }
        }
        println!("lowest concurrent rate: {lowest:.0} req/s (target: at least 2,000)");
    });
}
