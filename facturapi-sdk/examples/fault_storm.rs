//! The fault storm at full size: 10,000 keyed invoice creations (`--count N`, `--seed N`)
//! through the embedded sandbox with 5xx, drops after commit, stalls, bodies cut short,
//! 409 in use and 429 storms (a second, unpaced client on the same key sends a third of
//! them); prints what the ledger and the caller saw.
//!
//! `cargo run --release -p facturapi-sdk --example fault_storm`

#[path = "../tests/support/storm.rs"]
mod storm;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut count = 10_000;
    let mut seed = 1;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().and_then(|v| v.parse().ok());
        match (arg.as_str(), value) {
            ("--count", Some(n)) => count = n as usize,
            ("--seed", Some(n)) => seed = n,
            _ => {
                eprintln!("usage: fault_storm [--count N] [--seed N]");
                std::process::exit(2);
            }
        }
    }
    let report = storm::run(count, seed).await;
    println!("{report}");
    if report.lost != 0 || report.duplicated != 0 {
        std::process::exit(1);
    }
}
