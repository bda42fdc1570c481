//! `cargo xtask`: see the crate docs of the `xtask` library.

use std::path::PathBuf;
use std::process::ExitCode;

use xtask::{codegen, endpoints, import, workspace_root};

const USAGE: &str = "usage: cargo xtask <command>
  import-spec [PATH]   normalize the upstream OpenAPI file (default: ../shared/upstream/facturapi-openapi-v2.en.yaml)
  codegen [--check]    regenerate spec/endpoints.toml and facturapi-sdk/src/generated/ (--check: fail if stale)
  classes              print the operation-class table
  bench-overhead       SDK vs raw reqwest instructions per request (needs valgrind)";

fn main() -> ExitCode {
    // Three commands and one flag: a hand-rolled match keeps clap out of every build.
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
