//! `generated/sandbox_fixtures.json`: one body of the right shape per JSON request and
//! response model, and the required top-level fields of each JSON request body, for the
//! sandbox (responses) and its tests (requests).
//!
//! The spec has property examples but no whole-object examples, so bodies are synthesised from
//! the schemas: an example where the property has one of the right type, else the first enum
//! value, else a value built from the type and format. Every property is filled, so a client
//! that reads an optional field finds it. The contract tests check that every body here
//! deserializes into its model.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::endpoints::Endpoint;

/// How deep optional properties are followed through `$ref`s before they are left out.
const MAX_DEPTH: usize = 8;

/// Renders the fixtures file (pretty JSON, keys sorted, so the output is deterministic).
pub(crate) fn render(endpoints: &[Endpoint], spec: &Value) -> Result<String, String> {
    let mut types = Map::new();
    let mut operations = Map::new();
    for e in endpoints {
        let mut op = Map::new();
        let first = e
            .responses
            .first()
            .ok_or_else(|| format!("{}: no success response", e.operation_id))?;
        op.insert("status".into(), json!(first.status));
        let statuses: Vec<u16> = e.responses.iter().map(|r| r.status).collect();
        op.insert("statuses".into(), json!(statuses));
        op.insert("kind".into(), json!(first.kind));
        if let Some(ty) = &first.ty {
            op.insert("type".into(), json!(ty));
        }
        if let Some(ct) = &first.content_type {
            op.insert("content_type".into(), json!(ct));
        }
        for ty in e.responses.iter().filter_map(|r| r.ty.as_ref()) {
            if !types.contains_key(ty) {
                let schema = json!({ "$ref": format!("#/components/schemas/{ty}") });
                types.insert(ty.clone(), Synth::new(spec).value(&schema, 0));
            }
        }
        if let (Some(ty), "json") = (&e.body.ty, e.body.kind.as_str()) {
            let schema = json!({ "$ref": format!("#/components/schemas/{ty}") });
            if !types.contains_key(ty) {
                // Request bodies carry only what the schema requires: the smallest valid body,
                // which tests extend as they need.
                let mut synth = Synth::new(spec);
                synth.required_only = true;
                types.insert(ty.clone(), synth.value(&schema, 0));
            }
            op.insert("body_type".into(), json!(ty));
            op.insert("required".into(), json!(required_fields(spec, &schema)));
        }
        let required_query: Vec<&str> = e
            .query_params
            .iter()
            .filter(|q| q.required)
            .map(|q| q.name.as_str())
            .collect();
        if !required_query.is_empty() {
            op.insert("required_query".into(), json!(required_query));
        }
        operations.insert(e.operation_id.clone(), Value::Object(op));
    }
    let file = json!({
        "operations": operations,
        "types": types,
    });
    let body = serde_json::to_string_pretty(&file).map_err(|e| e.to_string())?;
    // JSON has no comments: the marker is the first member, on the first line.
    let marker = serde_json::to_string(crate::codegen::HEADER).map_err(|e| e.to_string())?;
    Ok(format!(
        "{{\"@generated\": {marker},\n{}\n",
        body.strip_prefix("{\n").unwrap_or(&body)
    ))
}

fn resolve<'a>(spec: &'a Value, node: &'a Value) -> &'a Value {
    let mut node = node;
    // A chain of refs is short in this spec; the bound guards against a cycle.
    for _ in 0..16 {
        match node
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix('#'))
            .and_then(|p| spec.pointer(p))
        {
            Some(next) => node = next,
            None => break,
        }
    }
    node
}

/// Required top-level properties of a body schema. For a `oneOf` (the invoice kinds), the
/// properties every variant requires.
fn required_fields(spec: &Value, schema: &Value) -> Vec<String> {
    let schema = resolve(spec, schema);
    let mut own: Vec<String> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    for part in schema
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        own.extend(required_fields(spec, part));
    }
    if let Some(variants) = schema
        .get("oneOf")
        .or_else(|| schema.get("anyOf"))
        .and_then(Value::as_array)
    {
        let sets: Vec<Vec<String>> = variants.iter().map(|v| required_fields(spec, v)).collect();
        if let Some((first, rest)) = sets.split_first() {
            own.extend(
                first
                    .iter()
                    .filter(|f| rest.iter().all(|s| s.contains(f)))
                    .cloned(),
            );
        }
    }
    own.sort();
    own.dedup();
    own
}

struct Synth<'a> {
    spec: &'a Value,
    /// Component names being expanded, to stop at cycles.
    stack: Vec<String>,
    /// Leave out optional properties.
    required_only: bool,
}

impl<'a> Synth<'a> {
    fn new(spec: &'a Value) -> Self {
        Self {
            spec,
            stack: Vec::new(),
            required_only: false,
        }
    }

    fn value(&mut self, schema: &Value, depth: usize) -> Value {
        self.shaped(schema, depth, &[])
    }

    /// `inherited`: names an enclosing `allOf` requires, which its parts must fill.
    fn shaped(&mut self, schema: &Value, depth: usize, inherited: &[String]) -> Value {
        if let Some(name) = schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.rsplit('/').next())
        {
            let target = resolve(self.spec, schema);
            self.stack.push(name.to_owned());
            let v = self.shaped(target, depth + 1, inherited);
            self.stack.pop();
            return v;
        }
        if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
            let mut required = inherited.to_vec();
            required.extend(required_fields(self.spec, schema));
            let mut merged = Map::new();
            let mut other = None;
            for part in parts {
                match self.shaped(part, depth, &required) {
                    Value::Object(m) => merged.extend(m),
                    v => other = Some(v),
                }
            }
            let props = self.object(schema, depth, &required);
            merged.extend(props);
            return match other {
                Some(v) if merged.is_empty() => v,
                _ => Value::Object(merged),
            };
        }
        if let Some(variants) = schema
            .get("oneOf")
            .or_else(|| schema.get("anyOf"))
            .and_then(Value::as_array)
        {
            // The first variant that is not `null`; for the invoice kinds that is Income.
            let chosen = variants.iter().find(|v| {
                resolve(self.spec, v).get("type").and_then(Value::as_str) != Some("null")
            });
            if let Some(v) = chosen {
                return self.shaped(v, depth, inherited);
            }
        }
        if let Some(first) = schema
            .get("enum")
            .and_then(Value::as_array)
            .and_then(|e| e.first())
        {
            let values = schema.get("enum").and_then(Value::as_array);
            return match schema.get("example") {
                Some(example) if values.is_some_and(|v| v.contains(example)) => example.clone(),
                _ => first.clone(),
            };
        }
        let ty = schema.get("type").and_then(Value::as_str).unwrap_or(
            if schema.get("properties").is_some() {
                "object"
            } else {
                "string"
            },
        );
        let example = schema.get("example");
        match ty {
            "object" => Value::Object(self.object(schema, depth, inherited)),
            "array" => {
                let items = schema.get("items").cloned().unwrap_or(json!({}));
                json!([self.value(&items, depth + 1)])
            }
            "integer" => match example {
                Some(e) if e.is_i64() || e.is_u64() => e.clone(),
                _ => json!(number_in_range(schema).round() as i64),
            },
            "number" => match example {
                Some(e) if e.is_number() => e.clone(),
                _ => json!(number_in_range(schema)),
            },
            "boolean" => match example {
                Some(e) if e.is_boolean() => e.clone(),
                _ => json!(false),
            },
            _ => match example {
                Some(Value::String(s)) => json!(s),
                _ => json!(string_for(schema)),
            },
        }
    }

    fn object(&mut self, schema: &Value, depth: usize, inherited: &[String]) -> Map<String, Value> {
        let mut required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        required.extend(inherited.iter().map(String::as_str));
        let mut out = Map::new();
        let Some(props) = schema.get("properties").and_then(Value::as_object) else {
            return out;
        };
        let props: BTreeMap<&String, &Value> = props.iter().collect();
        for (name, prop) in props {
            let is_required = required.contains(&name.as_str());
            let cyclic = prop
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.rsplit('/').next())
                .is_some_and(|n| self.stack.iter().any(|s| s == n));
            if !is_required && (self.required_only || cyclic || depth > MAX_DEPTH) {
                continue;
            }
            out.insert(name.clone(), self.value(prop, depth + 1));
        }
        out
    }
}

fn number_in_range(schema: &Value) -> f64 {
    let min = schema.get("minimum").and_then(Value::as_f64);
    let max = schema.get("maximum").and_then(Value::as_f64);
    match (min, max) {
        (Some(lo), _) if lo >= 1.0 => lo,
        (_, Some(hi)) if hi < 1.0 => hi,
        _ => 1.0,
    }
}

fn string_for(schema: &Value) -> String {
    let format = schema.get("format").and_then(Value::as_str).unwrap_or("");
    let pattern = schema.get("pattern").and_then(Value::as_str).unwrap_or("");
    let s = match (format, pattern) {
        (_, "^[a-fA-F0-9]{24}$") => "5f0c1a2b3c4d5e6f7a8b9c0d".to_owned(),
        (_, p) if p.starts_with("^[a-z][a-z0-9-_]") => "sandbox-org".to_owned(),
        ("date-time", _) => "2026-01-15T18:30:00.000Z".to_owned(),
        ("date", _) => "2026-01-15".to_owned(),
        ("email", _) => "facturacion@example.com".to_owned(),
        ("uri" | "url", _) => "https://example.com/".to_owned(),
        ("uuid", _) => "3F2504E0-4F89-11D3-9A0C-0305E82C3301".to_owned(),
        _ => "sandbox".to_owned(),
    };
    let min = schema.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
    let max = schema
        .get("maxLength")
        .and_then(Value::as_u64)
        .map_or(usize::MAX, |m| m as usize);
    let mut s = s;
    while s.len() < min {
        s.push('x');
    }
    s.truncate(max.max(1));
    s
}
