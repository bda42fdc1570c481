//! `cargo xtask import-spec [PATH]`: the only command that reads the upstream file.

use std::path::Path;

use serde_json::Value;

/// Default location of the upstream spec, relative to the workspace root.
pub const DEFAULT_UPSTREAM: &str = "../shared/upstream/facturapi-openapi-v2.en.yaml";

/// What an import produces, before it is written.
#[derive(Debug)]
pub struct Imported {
    /// `spec/facturapi.openapi.yaml`.
    pub spec_yaml: String,
    /// `spec/samples.json`.
    pub samples_json: String,
    /// The rule report.
    pub report: String,
    /// Number of samples, of samples with a JSON body, and with a multipart form.
    pub sample_counts: (usize, usize, usize),
}

/// Normalizes the upstream text.
pub fn import(upstream_text: &str) -> Result<Imported, String> {
    let loaded = crate::yaml::load(upstream_text)?;
    let samples = crate::samples::extract(&loaded.value)?;
    let (mut spec, report) = crate::rules::normalize(loaded, samples.clone());
    if let Value::Object(map) = &mut spec {
        map.insert(
            "x-facturapi-rs".into(),
            serde_json::json!({ "normalized-by": "cargo xtask import-spec", "rules": crate::rules::RULES.iter().map(|(n, _, _)| *n).collect::<Vec<_>>() }),
        );
    }
    let with_body = samples.iter().filter(|s| s.get("body").is_some()).count();
    let with_form = samples.iter().filter(|s| s.get("form").is_some()).count();
    let header = "# Normalized by `cargo xtask import-spec` from Facturapi's OpenAPI file (Apache-2.0):\n# facts only, no prose or code samples. Regenerate; do not edit.\n";
    Ok(Imported {
        spec_yaml: format!("{header}{}", crate::yaml::dump(&spec)?),
        samples_json: format!(
            "{}\n",
            serde_json::to_string_pretty(&samples).map_err(|e| e.to_string())?
        ),
        report: report.render(),
        sample_counts: (samples.len(), with_body, with_form),
    })
}

/// Reads `upstream` and the errors page beside it (`docs-errors.mdx`), writes
/// `spec/facturapi.openapi.yaml`, `spec/samples.json` and `spec/error_codes.json` under `root`.
pub fn run(root: &Path, upstream: &Path) -> Result<Imported, String> {
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    let write =
        |p: &str, text: &str| std::fs::write(root.join(p), text).map_err(|e| format!("{p}: {e}"));
    let imported = import(&read(upstream)?)?;
    let errors_page = upstream.with_file_name("docs-errors.mdx");
    let codes = crate::error_codes::extract(&read(&errors_page)?)?;
    let codes_json = serde_json::to_string_pretty(&codes).map_err(|e| e.to_string())?;
    write("spec/facturapi.openapi.yaml", &imported.spec_yaml)?;
    write("spec/samples.json", &imported.samples_json)?;
    write("spec/error_codes.json", &format!("{codes_json}\n"))?;
    println!(
        "error codes: {} root codes, {} validation subcodes from {}",
        codes.root.len(),
        codes.detail.len(),
        errors_page.display()
    );
    Ok(imported)
}
