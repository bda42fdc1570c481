//! `cargo xtask bench-overhead`: the SDK's per-request CPU cost next to raw reqwest, counted
//! in instructions by callgrind, so the figure is repeatable on a shared, noisy machine (the
//! time-based table of `cargo bench -p facturapi-sdk --bench overhead` varies by ±30 % per
//! round here).

use std::path::Path;
use std::process::Command;

/// Requests per strategy in the benchmark's `--quick` mode (1,000 warm-up + 6 × 500).
const QUICK_REQUESTS: f64 = 4_000.0;

fn run(command: &mut Command) -> Result<String, String> {
    let output = command.output().map_err(|e| format!("{command:?}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{command:?} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Inclusive instruction count of the first function whose name contains `needle`.
fn inclusive(annotated: &str, needle: &str) -> Result<f64, String> {
    let line = annotated
        .lines()
        .find(|l| l.contains(needle))
        .ok_or_else(|| format!("{needle} not in the profile"))?;
    let number: String = line
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    number
        .parse()
        .map_err(|_| format!("cannot read the count of {needle}"))
}

/// Builds the benchmark, profiles its quick mode under callgrind, prints the table.
pub fn overhead(root: &Path) -> Result<(), String> {
    let messages = run(Command::new("cargo").current_dir(root).args([
        "bench",
        "-p",
        "facturapi-sdk",
        "--bench",
        "overhead",
        "--no-run",
        "--message-format=json",
    ]))?;
    let executable = messages
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["target"]["name"] == "overhead")
        .find_map(|m| m["executable"].as_str().map(str::to_owned))
        .ok_or("no overhead benchmark executable in cargo's output")?;
    let profile = root.join("target/callgrind.overhead.out");
    run(Command::new("valgrind").args([
        "--tool=callgrind",
        &format!("--callgrind-out-file={}", profile.display()),
        &executable,
        "--quick",
    ]))
    .map_err(|e| format!("{e}\n(valgrind is needed: apt-get install valgrind)"))?;
    let annotated = run(Command::new("callgrind_annotate")
        .args(["--inclusive=yes", &profile.display().to_string()]))?;
    let sdk = inclusive(&annotated, "Customers::retrieve::{{closure}}")? / QUICK_REQUESTS;
    let raw = inclusive(&annotated, "overhead::raw_call::{{closure}}")? / QUICK_REQUESTS;
    println!(
        "instructions per request (callgrind, {QUICK_REQUESTS} requests each, GET /customers/{{id}} into models::Customer)"
    );
    println!("| strategy | instructions/request |");
    println!("| --- | ---: |");
    println!("| raw reqwest + serde_json | {raw:.0} |");
    println!("| facturapi-sdk retrieve() | {sdk:.0} |");
    println!(
        "SDK / raw: {:.3} ({:+.1} %); target <= +5 %",
        sdk / raw,
        (sdk / raw - 1.0) * 100.0
    );
    Ok(())
}
