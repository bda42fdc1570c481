//! Per-request CPU cost of an SDK call next to a raw reqwest call, same loopback server, no
//! limits hit: `cargo bench -p facturapi-sdk --bench overhead`.
//!
//! Both clients run on one current-thread runtime, so the client side of every request
//! (reqwest, hyper, the SDK's governor, span and decoding) is on this thread; its CPU time is
//! read from `/proc/thread-self/schedstat`. The server runs on another thread and is not counted.
//! Rounds alternate between the two strategies so drift affects both alike. Both send the
//! same headers with a 60 s request timeout (the SDK's default) and decode the same model.

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use facturapi_sdk::{Client, models};

const BODY: &str = r#"{"id":"58e93bd8e86eb318b0197456","created_at":"2024-01-01T00:00:00.000Z","livemode":false,"legal_name":"Dunder Mifflin","tax_id":"ABC101010111","tax_system":"601","email":"email@example.com","address":{"zip":"85900","country":"MEX"}}"#;

/// A keep-alive HTTP/1.1 server that answers every request with `BODY`. Hand-written so the
/// server side is as cheap and as identical as possible for both strategies.
fn serve(listener: TcpListener) {
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-facturapi-log-id: bench\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    for stream in listener.incoming().flatten() {
        let response = response.clone();
        std::thread::spawn(move || {
            let mut stream = stream;
            let _ = stream.set_nodelay(true);
            let mut buffer = vec![0u8; 8192];
            let mut pending = Vec::new();
            loop {
                let n = match stream.read(&mut buffer) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                pending.extend_from_slice(&buffer[..n]);
                // GET requests carry no body: one response per header block.
                while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                    pending.drain(..end + 4);
                    if stream.write_all(response.as_bytes()).is_err() {
                        return;
                    }
                }
            }
        });
    }
}

/// CPU time of the calling thread, from Linux's `/proc/thread-self/schedstat` (nanoseconds
/// on CPU): std has no thread CPU clock, and the workspace forbids `unsafe` for `libc`.
fn thread_cpu() -> Duration {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat")
        .expect("this benchmark needs Linux's /proc/thread-self/schedstat");
    let nanos: u64 = text
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("schedstat format");
    Duration::from_nanos(nanos)
}

struct Totals {
    cpu: Duration,
    wall: Duration,
    requests: u32,
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (rounds, per_round) = if quick { (6, 500) } else { (30, 2_000) };
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || serve(listener));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        // The SDK client first: building it installs the rustls crypto provider reqwest needs.
        let sdk = Client::builder().api_key("sk_test_bench").base_url(&base).build().expect("client");
        // The same per-request timeout as the SDK's default: a production baseline.
        let raw = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("raw client");
        let url = format!("{base}/customers/58e93bd8e86eb318b0197456");
        let mut totals = [Totals { cpu: Duration::ZERO, wall: Duration::ZERO, requests: 0 }, Totals { cpu: Duration::ZERO, wall: Duration::ZERO, requests: 0 }];
        let mut ratios = Vec::new();

        // Warm both connection pools and code paths.
        for _ in 0..1_000 {
            raw_call(&raw, &url).await;
            sdk.customers().retrieve("58e93bd8e86eb318b0197456").await.expect("sdk call");
        }
        for round in 0..rounds {
            let mut cpu = [Duration::ZERO; 2];
            // Alternate which goes first, so drift within a round favours neither.
            for strategy in [round % 2, 1 - round % 2] {
                let (cpu0, wall0) = (thread_cpu(), Instant::now());
                for _ in 0..per_round {
                    if strategy == 0 {
                        raw_call(&raw, &url).await;
                    } else {
                        sdk.customers().retrieve("58e93bd8e86eb318b0197456").await.expect("sdk call");
                    }
                }
                cpu[strategy] = thread_cpu() - cpu0;
                let t = &mut totals[strategy];
                t.cpu += cpu[strategy];
                t.wall += wall0.elapsed();
                t.requests += per_round;
            }
            ratios.push(cpu[1].as_secs_f64() / cpu[0].as_secs_f64());
        }
        ratios.sort_by(f64::total_cmp);
        let median = ratios[ratios.len() / 2];
        let per = |t: &Totals, d: Duration| d.as_secs_f64() * 1e6 / f64::from(t.requests);
        println!("client-side cost per request, {} requests each in {rounds} paired rounds, GET /customers/{{id}} decoded into models::Customer", totals[0].requests);
        println!("| strategy | CPU µs/request | wall µs/request |");
        println!("| --- | ---: | ---: |");
        for (name, t) in [("raw reqwest + serde_json", &totals[0]), ("facturapi-sdk retrieve()", &totals[1])] {
            println!("| {name} | {:.1} | {:.1} |", per(t, t.cpu), per(t, t.wall));
        }
        println!(
            "SDK / raw CPU: median of paired rounds {median:.3} ({:+.1} %), range {:.3}..{:.3}; target <= +5 %",
            (median - 1.0) * 100.0,
            ratios[0],
            ratios[ratios.len() - 1]
        );
    });
}

async fn raw_call(client: &reqwest::Client, url: &str) -> models::Customer {
    let response = client
        .get(url)
        .header(reqwest::header::AUTHORIZATION, "Bearer sk_test_bench")
        .header(reqwest::header::USER_AGENT, "bench")
        .send()
        .await
        .expect("raw call");
    let bytes = response.bytes().await.expect("raw body");
    serde_json::from_slice(&bytes).expect("raw decode")
}
