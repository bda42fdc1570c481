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

/// Reads `upstream`, writes `spec/facturapi.openapi.yaml` and `spec/samples.json` under `root`.
pub fn run(root: &Path, upstream: &Path) -> Result<Imported, String> {
    let text =
        std::fs::read_to_string(upstream).map_err(|e| format!("{}: {e}", upstream.display()))?;
    let imported = import(&text)?;
    std::fs::write(
        root.join("spec/facturapi.openapi.yaml"),
        &imported.spec_yaml,
    )
    .map_err(|e| e.to_string())?;
    std::fs::write(root.join("spec/samples.json"), &imported.samples_json)
        .map_err(|e| e.to_string())?;
    Ok(imported)
}
