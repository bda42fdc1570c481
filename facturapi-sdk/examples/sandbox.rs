//! The sandbox on its own, for your tests in any language:
//!
//! ```text
//! cargo run -p facturapi-sdk --features sandbox --example sandbox -- --port 8080 [--realistic]
//! ```
//!
//! Prints its base URL and keys, then serves until interrupted, printing a line of its ledger
//! (documents created, external ids created more than once, idempotent replays) whenever it
//! changes. `--realistic` turns on the hidden limits, service times and light faults of
//! `SandboxConfig::realistic()`.

use facturapi_sdk::KeyKind;
use facturapi_sdk::sandbox::{Sandbox, SandboxConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Two flags do not justify an argument-parser dependency.
    let mut config = SandboxConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                let port = args
                    .next()
                    .and_then(|p| p.parse().ok())
                    .ok_or("--port needs a number")?;
                config = config.port(port);
            }
            "--realistic" => {
                let port = config.port;
                config = SandboxConfig::realistic().port(port);
            }
            other => {
                return Err(
                    format!("unknown argument {other:?}: use --port N, --realistic").into(),
                );
            }
        }
    }
    let sandbox = Sandbox::start(config).await?;
    println!("base URL   {}", sandbox.base_url());
    for kind in [KeyKind::Test, KeyKind::Live, KeyKind::User] {
        if let Some(key) = sandbox.key(kind) {
            println!("{:<10} {key}", format!("{} key", kind.as_str()));
        }
    }
    println!("serving until interrupted (Ctrl-C)");
    let mut shown = None;
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        let ledger = sandbox.ledger();
        let line = format!(
            "ledger: {} documents created · {} external ids created more than once · {} replays",
            ledger.documents_created, ledger.duplicates, ledger.idempotent_replays
        );
        if shown.as_ref() != Some(&line) {
            println!("{line}");
            shown = Some(line);
        }
    }
}
