//! What a bulk run's journal costs per item, and a bulk run's memory as its input grows:
//! `cargo bench -p facturapi-sdk --bench bulk` (`-- --quick` for a smaller run).
//!
//! The server is a hand-written loopback HTTP/1.1 server that answers every creation at once
//! with a small invoice and stores nothing, so what is measured is the client side: the SDK's
//! send path, the bulk engine and the journal. Each journal strategy runs the same items
//! several times, the strategies interleaved, and the table gives the median and the worst.
//! Memory is the process's resident set (`/proc/self/statm`), sampled every 20 ms while a run
//! of 10,000, 100,000 and 1,000,000 items (from a lazy iterator) goes through.

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use facturapi_sdk::bulk::{
    Bulk, Durability, Entry, FileJournal, ItemState, Journal as _, MemoryJournal,
};
use facturapi_sdk::{Client, models};
use futures_util::StreamExt as _;

/// Answers each request (headers, then `content-length` bytes of body) with an invoice whose
/// id is a counter. Hand-written so the server costs next to nothing and keeps no state.
fn serve(listener: TcpListener) {
    let counter = Arc::new(AtomicU64::new(0));
    for stream in listener.incoming().flatten() {
        let counter = counter.clone();
        std::thread::spawn(move || {
            let mut stream = stream;
            let _ = stream.set_nodelay(true);
            let mut buffer = vec![0u8; 16384];
            let mut pending = Vec::new();
            loop {
                // One complete request in `pending`?
                if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&pending[..end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if pending.len() >= end + 4 + length {
                        pending.drain(..end + 4 + length);
                        let n = counter.fetch_add(1, Ordering::Relaxed);
                        let body = format!(r#"{{"id":"inv_{n:020}","status":"valid"}}"#);
                        let response = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-facturapi-log-id: b\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if stream.write_all(response.as_bytes()).is_err() {
                            return;
                        }
                        continue;
                    }
                }
                match stream.read(&mut buffer) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => pending.extend_from_slice(&buffer[..n]),
                }
            }
        });
    }
}

fn body() -> models::InvoiceCreateInput {
    serde_json::from_value(serde_json::json!({
        "customer": "58e93bd8e86eb318b0197456", "payment_form": "03",
        "items": [{"product": "58e93bd8e86eb318b0197457", "quantity": 2}],
    }))
    .expect("an invoice body")
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Strategy {
    NoJournal,
    Memory,
    FileOs,
    FileSync,
}

impl Strategy {
    fn name(self) -> &'static str {
        match self {
            Strategy::NoJournal => "no journal",
            Strategy::Memory => "MemoryJournal",
            Strategy::FileOs => "FileJournal, not synced (Durability::Os)",
            Strategy::FileSync => "FileJournal, synced (Durability::Sync, default)",
        }
    }
}

struct Bench {
    client: Client,
    dir: std::path::PathBuf,
}

impl Bench {
    /// Runs `count` items and returns the wall time.
    async fn run(&self, strategy: Strategy, count: usize, tag: &str) -> Duration {
        let path = self.dir.join(format!("{tag}.journal"));
        let _ = std::fs::remove_file(&path);
        let template = body();
        let tag = tag.to_owned();
        let items = (0..count).map(move |i| (format!("{tag}-{i:07}"), template.clone()));
        let bulk = Bulk::invoices(&self.client).organization("bench");
        let bulk = match strategy {
            Strategy::NoJournal => bulk,
            Strategy::Memory => bulk.journal(MemoryJournal::new()),
            Strategy::FileOs => {
                bulk.journal(FileJournal::open_with(&path, Durability::Os).unwrap())
            }
            Strategy::FileSync => bulk.journal(FileJournal::open(&path).unwrap()),
        };
        let started = Instant::now();
        let mut run = bulk.run_iter(items).await.expect("the run starts");
        let mut created = 0;
        while let Some(outcome) = run.next().await {
            if matches!(
                outcome.expect("journal").result,
                facturapi_sdk::bulk::ItemResult::Created { .. }
            ) {
                created += 1;
            }
        }
        assert_eq!(created, count, "every item created");
        let elapsed = started.elapsed();
        let _ = std::fs::remove_file(&path);
        elapsed
    }
}

/// Resident set size in bytes, from `/proc/self/statm` (pages × 4 KiB).
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn median_and_worst(samples: &mut [f64]) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    (samples[samples.len() / 2], samples[samples.len() - 1])
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let addr = listener.local_addr().expect("its address");
    std::thread::spawn(move || serve(listener));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let client = Client::builder()
            .api_key("sk_test_bench000000000000000000")
            .base_url(format!("http://{addr}/v2"))
            .build()
            .expect("a client");
        let dir = std::env::temp_dir().join(format!("bulk-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let bench = Bench { client, dir };

        // Warm up: connections open, the creation class's concurrency grown to its ceiling.
        bench.run(Strategy::NoJournal, 20_000, "warm").await;

        let (items, rounds) = if quick { (5_000, 3) } else { (20_000, 5) };
        let strategies = [
            Strategy::NoJournal,
            Strategy::Memory,
            Strategy::FileOs,
            Strategy::FileSync,
        ];
        let mut per_item: Vec<Vec<f64>> = vec![Vec::new(); strategies.len()];
        for round in 0..rounds {
            for (s, strategy) in strategies.iter().enumerate() {
                let took = bench.run(*strategy, items, &format!("r{round}s{s}")).await;
                per_item[s].push(took.as_secs_f64() * 1e6 / items as f64);
            }
        }
        println!("Journal cost per item: {items} invoices per run, {rounds} runs each, interleaved");
        println!("| strategy | µs per item, median | worst | median vs no journal |");
        println!("| --- | ---: | ---: | ---: |");
        let (base, _) = median_and_worst(&mut per_item[0].clone());
        for (s, strategy) in strategies.iter().enumerate() {
            let (median, worst) = median_and_worst(&mut per_item[s]);
            println!(
                "| {} | {median:.1} | {worst:.1} | {:.2}× (+{:.1} µs) |",
                strategy.name(),
                median / base,
                median - base
            );
        }

        // The journal alone: one writer waiting for each record (the latency of a durable
        // record), and 64 writers at once (what group commit makes of them).
        println!();
        println!("The journal alone: time per record");
        println!("| durability | 1 writer, each record awaited | 64 writers at once |");
        println!("| --- | ---: | ---: |");
        let records = if quick { 2_000 } else { 10_000 };
        for durability in [Durability::Os, Durability::Sync] {
            let path = bench.dir.join("alone.journal");
            let _ = std::fs::remove_file(&path);
            let journal = Arc::new(FileJournal::open_with(&path, durability).unwrap());
            let entry = |i: usize| Entry::Item {
                external_id: format!("alone-{i:07}"),
                state: ItemState::Sent,
            };
            let started = Instant::now();
            for i in 0..records {
                journal.record(&entry(i)).await.unwrap();
            }
            let one = started.elapsed().as_secs_f64() * 1e6 / records as f64;
            let started = Instant::now();
            let writers: Vec<_> = (0..64)
                .map(|w| {
                    let journal = journal.clone();
                    tokio::spawn(async move {
                        for i in (w..records).step_by(64) {
                            journal.record(&entry(i)).await.unwrap();
                        }
                    })
                })
                .collect();
            for writer in writers {
                writer.await.unwrap();
            }
            let many = started.elapsed().as_secs_f64() * 1e6 / records as f64;
            println!("| {durability:?} | {one:.1} µs | {many:.1} µs |");
        }

        // Memory: the resident set while ever larger inputs go through.
        let sizes: &[usize] = if quick {
            &[10_000, 100_000]
        } else {
            &[10_000, 100_000, 1_000_000]
        };
        println!();
        println!("Memory of a bulk run (FileJournal, not synced) as the input grows");
        println!("| items | wall time | items/s | peak resident set during the run | growth over the idle process |");
        println!("| ---: | ---: | ---: | ---: | ---: |");
        let idle = rss();
        for &count in sizes {
            let peak = Arc::new(AtomicU64::new(0));
            let stop = Arc::new(AtomicBool::new(false));
            let sampler = {
                let (peak, stop) = (peak.clone(), stop.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        peak.fetch_max(rss(), Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                })
            };
            let took = bench.run(Strategy::FileOs, count, &format!("mem{count}")).await;
            stop.store(true, Ordering::Relaxed);
            let _ = sampler.await;
            let peak = peak.load(Ordering::Relaxed);
            println!(
                "| {count} | {:.1} s | {:.0} | {:.1} MiB | {:+.1} MiB |",
                took.as_secs_f64(),
                count as f64 / took.as_secs_f64(),
                peak as f64 / 1048576.0,
                (peak as f64 - idle as f64) / 1048576.0
            );
        }
        let _ = std::fs::remove_dir_all(&bench.dir);
    });
}
