//! `cargo xtask`: see the crate docs of the `xtask` library.

use std::path::PathBuf;
use std::process::ExitCode;

use std::collections::BTreeSet;

use xtask::{codegen, endpoints, import, public_api, workspace_root};

const USAGE: &str = "usage: cargo xtask <command>
  import-spec [PATH]   normalize the upstream OpenAPI file (default: ../shared/upstream/facturapi-openapi-v2.en.yaml)
  codegen [--check]    regenerate spec/endpoints.toml and facturapi-sdk/src/generated/ (--check: fail if stale)
  classes              print the operation-class table
  bench-overhead       SDK vs raw reqwest instructions per request (needs valgrind)
  public-api [--check] list the SDK's public API in facturapi-sdk/public-api.txt (--check: fail if it differs)";

fn main() -> ExitCode {
    // A few commands and one flag: a hand-rolled match keeps clap out of every build.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["import-spec"] => import_spec(&root, root.join(import::DEFAULT_UPSTREAM)),
        ["import-spec", path] => import_spec(&root, PathBuf::from(path)),
        ["codegen"] => codegen::render(&root).and_then(|out| {
            codegen::write(&root, &out)?;
            println!(
                "codegen: wrote {} files ({} endpoints)",
                out.files.len(),
                out.endpoints.len()
            );
            println!("{}", out.tolerance);
            Ok(())
        }),
        ["codegen", "--check"] => codegen::render(&root).and_then(|out| {
            let problems = codegen::stale(&root, &out);
            if problems.is_empty() {
                println!(
                    "codegen --check: {} generated files are fresh",
                    out.files.len()
                );
                Ok(())
            } else {
                Err(format!(
                    "generated code is out of date; run `cargo xtask codegen`:\n  {}",
                    problems.join("\n  ")
                ))
            }
        }),
        ["bench-overhead"] => xtask::bench::overhead(&root),
        ["public-api"] => public_api::render(&root).and_then(|listing| {
            std::fs::write(root.join(public_api::LISTING), &listing)
                .map_err(|e| format!("{}: {e}", public_api::LISTING))?;
            println!(
                "public-api: wrote {} ({} lines)",
                public_api::LISTING,
                listing.lines().count()
            );
            Ok(())
        }),
        ["public-api", "--check"] => public_api::render(&root).and_then(|listing| {
            let path = root.join(public_api::LISTING);
            let current = std::fs::read_to_string(&path).unwrap_or_default();
            if current == listing {
                println!(
                    "public-api --check: {} matches the API",
                    public_api::LISTING
                );
                return Ok(());
            }
            let (old, new): (BTreeSet<&str>, BTreeSet<&str>) =
                (current.lines().collect(), listing.lines().collect());
            let mut diff: Vec<String> = new.difference(&old).map(|l| format!("+ {l}")).collect();
            diff.extend(old.difference(&new).map(|l| format!("- {l}")));
            Err(format!(
                "the public API changed; review it and run `cargo xtask public-api`:\n  {}",
                diff.join("\n  ")
            ))
        }),
        ["classes"] => {
            codegen::render(&root).map(|out| print!("{}", endpoints::class_table(&out.endpoints)))
        }
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn import_spec(root: &std::path::Path, upstream: PathBuf) -> Result<(), String> {
    let imported = import::run(root, &upstream)?;
    print!("{}", imported.report);
    println!(
        "wrote spec/facturapi.openapi.yaml and spec/samples.json ({} samples: {} with a JSON body, {} multipart)",
        imported.sample_counts.0, imported.sample_counts.1, imported.sample_counts.2
    );
    Ok(())
}
