//! The fault storm at CI size: keyed creations with every fault turned up end with every
//! invoice created exactly once, and every error the caller saw typed, with its log id when
//! the server answered. `cargo run --release -p facturapi-sdk --example fault_storm` runs
//! the full 10,000.

#[path = "support/storm.rs"]
mod storm;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_storm_loses_and_duplicates_nothing() {
    let report = storm::run(300, 11).await;
    println!("{report}");
    assert_eq!((report.lost, report.duplicated), (0, 0), "{report}");
    assert_eq!(report.with_log_id.0, report.with_log_id.1, "{report}");
    assert!(report.rate_limited > 0, "a 429 storm: {report}");
    assert!(
        !report.errors.is_empty(),
        "faults reached the caller: {report}"
    );
}
