//! The documented error codes: extracted from the upstream errors page by `import-spec` into
//! `spec/error_codes.json` (codes and families only, no descriptions), rendered by `codegen`
//! into the SDK's `ErrorCode` and `DetailCode` enums.

use serde::{Deserialize, Serialize};

use crate::names::pascal;

/// Default location of the upstream errors page, relative to the workspace root.
pub const DEFAULT_UPSTREAM_ERRORS: &str = "../shared/upstream/docs-errors.mdx";

/// `spec/error_codes.json`.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorCodes {
    /// Root codes (`code`), with the family heading they are listed under.
    pub root: Vec<Code>,
    /// Input-validation detail subcodes (`errors[].code` with `source: facturapi`).
    pub detail: Vec<Code>,
}

/// One documented code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Code {
    /// Wire value, e.g. `rate_limit_exceeded`.
    pub code: String,
    /// Family heading, e.g. `RequestErrorCode`.
    pub family: String,
}

/// Reads the code tables of the errors page: each `### Family` heading under the root-codes
/// section, then the input-validation table of the detail section.
pub fn extract(page: &str) -> Result<ErrorCodes, String> {
    let mut out = ErrorCodes::default();
    let mut section = "";
    let mut family = String::new();
    for line in page.lines() {
        if let Some(h2) = line.strip_prefix("## ") {
            section = if h2.starts_with("Root error codes") {
                "root"
            } else if h2.starts_with("Detail subcodes") {
                "detail"
            } else {
                ""
            };
            continue;
        }
        if let Some(h3) = line.strip_prefix("### ") {
            family = h3.trim().to_owned();
            continue;
        }
        let Some(code) = line
            .strip_prefix("| `")
            .and_then(|rest| rest.split('`').next())
        else {
            continue;
        };
        let entry = Code {
            code: code.to_owned(),
            family: family.clone(),
        };
        match section {
            "root" => out.root.push(entry),
            "detail" if family == "Input validation" => out.detail.push(entry),
            _ => {}
        }
    }
    if out.root.is_empty() || out.detail.is_empty() {
        return Err("no error-code tables found in the errors page".into());
    }
    Ok(out)
}

fn render_enum(out: &mut String, name: &str, doc: &str, codes: &[Code]) {
    let mut seen = std::collections::BTreeSet::new();
    let codes: Vec<&Code> = codes
        .iter()
        .filter(|c| seen.insert(c.code.clone()))
        .collect();
    out.push_str(&format!("/// {doc}\n///\n/// Unknown values are kept in [`{name}::Unknown`]: Facturapi adds codes over time.\n"));
    out.push_str("#[derive(Debug, Clone, PartialEq, Eq, Hash)]\n#[non_exhaustive]\n");
    out.push_str(&format!("pub enum {name} {{\n"));
    for c in &codes {
        out.push_str(&format!(
            "    /// `{}` ({}).\n    {},\n",
            c.code,
            c.family,
            pascal(&c.code)
        ));
    }
    out.push_str(
        "    /// A code this version of the SDK does not know.\n    Unknown(String),\n}\n\n",
    );
    out.push_str(&format!("impl {name} {{\n    /// Every documented code.\n    pub const ALL: &'static [{name}] = &[\n"));
    for c in &codes {
        out.push_str(&format!("        {name}::{},\n", pascal(&c.code)));
    }
    out.push_str("    ];\n\n    /// The wire value.\n    pub fn as_str(&self) -> &str {\n        match self {\n");
    for c in &codes {
        out.push_str(&format!(
            "            {name}::{} => \"{}\",\n",
            pascal(&c.code),
            c.code
        ));
    }
    out.push_str(&format!(
        "            {name}::Unknown(code) => code,\n        }}\n    }}\n\n"
    ));
    out.push_str("    /// The family heading the code is documented under (`None` for unknown codes).\n    pub fn family(&self) -> Option<&'static str> {\n        Some(match self {\n");
    for c in &codes {
        out.push_str(&format!(
            "            {name}::{} => \"{}\",\n",
            pascal(&c.code),
            c.family
        ));
    }
    out.push_str(&format!(
        "            {name}::Unknown(_) => return None,\n        }})\n    }}\n}}\n\n"
    ));
    out.push_str(&format!(
        "impl From<&str> for {name} {{\n    fn from(code: &str) -> Self {{\n        match code {{\n"
    ));
    for c in &codes {
        out.push_str(&format!(
            "            \"{}\" => {name}::{},\n",
            c.code,
            pascal(&c.code)
        ));
    }
    out.push_str(&format!(
        "            other => {name}::Unknown(other.to_owned()),\n        }}\n    }}\n}}\n\n"
    ));
    out.push_str(&format!(
        "impl std::fmt::Display for {name} {{\n    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {{\n        f.write_str(self.as_str())\n    }}\n}}\n\n"
    ));
}

/// The source of `generated/error_codes.rs` (before rustfmt).
pub fn render(codes: &ErrorCodes) -> String {
    let mut out = String::from("//! Documented error codes, from `spec/error_codes.json`.\n\n");
    render_enum(
        &mut out,
        "ErrorCode",
        "A root error code (`code` of an error body).",
        &codes.root,
    );
    render_enum(
        &mut out,
        "DetailCode",
        "An input-validation subcode (`errors[].code` when `source` is `facturapi`).",
        &codes.detail,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "## Error object\n| `ok` | `boolean` | x |\n## Root error codes (`code`)\n### CommonErrorCode\n| Code | Description |\n| --- | --- |\n| `conflict` | x |\n### RequestErrorCode\n| `rate_limit_exceeded` | x |\n## Detail subcodes (`errors[].code`)\n### Input validation\n| `required` | x |\n### External codes\n| `CFDI40145` | x |\n";

    #[test]
    fn extracts_root_and_validation_codes_only() {
        let codes = extract(PAGE).unwrap();
        assert_eq!(
            codes
                .root
                .iter()
                .map(|c| c.code.as_str())
                .collect::<Vec<_>>(),
            ["conflict", "rate_limit_exceeded"]
        );
        assert_eq!(codes.root[1].family, "RequestErrorCode");
        assert_eq!(
            codes
                .detail
                .iter()
                .map(|c| c.code.as_str())
                .collect::<Vec<_>>(),
            ["required"]
        );
    }

    #[test]
    fn a_page_without_tables_is_an_error() {
        assert!(extract("# nothing here").is_err());
    }
}
