//! The named normalization rules of `cargo xtask import-spec`.
//!
//! Each rule fixes one measured defect of the upstream OpenAPI file (see `spec/README.md`)
//! and records every place it changed, as a JSON pointer, in the [`Report`]. Rules run in
//! the order of [`RULES`]; each is a pure function of the document, so importing twice gives
//! identical bytes.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::yaml::Loaded;

/// Places changed, per rule, in rule order.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) changes: Vec<(&'static str, Vec<String>)>,
}

impl Report {
    pub(crate) fn render(&self) -> String {
        let mut out = String::from("import-spec rule report (rule: places changed)\n");
        for (rule, places) in &self.changes {
            out.push_str(&format!("  {rule:<32} {:>4}\n", places.len()));
            for place in places.iter().take(6) {
                out.push_str(&format!("      {place}\n"));
            }
            if places.len() > 6 {
                out.push_str(&format!("      … and {} more\n", places.len() - 6));
            }
        }
        out
    }
}

/// What rules may read besides the document.
#[derive(Debug, Default)]
pub(crate) struct Ctx {
    /// Source text of plain scalars that resolved to numbers (see `yaml::Loaded`).
    pub(crate) raw_numbers: BTreeMap<String, String>,
    /// The upstream cURL samples (see `samples`).
    pub(crate) samples: Vec<Value>,
}

type Rule = fn(&mut Value, &Ctx, &mut Vec<String>);

/// Every rule, in the order it runs, with what it fixes.
pub(crate) const RULES: &[(&str, &str, Rule)] = &[
    (
        "drop-code-samples",
        "x-codeSamples carry upstream code; the facts go to spec/samples.json",
        drop_code_samples,
    ),
    (
        "drop-prose",
        "descriptions, summaries and display-only extensions are upstream prose",
        drop_prose,
    ),
    (
        "openapi-version-3.0",
        "progenitor/openapiv3 accept only OpenAPI 3.0.*",
        openapi_version,
    ),
    (
        "derive-operation-ids",
        "operations without operationId get one derived from method + path",
        derive_operation_ids,
    ),
    (
        "null-type-3.0",
        "3.1 `type: \"null\"` becomes a 3.0 nullable null-only enum",
        null_type,
    ),
    (
        "const-to-enum",
        "3.1 `const` becomes a one-value `enum`",
        const_to_enum,
    ),
    (
        "exclusive-minimum-3.0",
        "3.1 numeric exclusiveMinimum becomes 3.0 minimum + boolean",
        exclusive_minimum,
    ),
    (
        "zero-padded-enum-strings",
        "string enums written as bare numbers (01) get their text back (\"01\")",
        zero_padded_enums,
    ),
    (
        "invalid-defaults",
        "prose `default` values that violate their own schema are removed",
        invalid_defaults,
    ),
    (
        "dedupe-deepobject-params",
        "explicit `date[gte]` params beside a deepObject `date` param",
        dedupe_deep_object,
    ),
    (
        "discriminator-variants",
        "discriminator mappings become oneOf variants with a typed tag",
        discriminator_variants,
    ),
    (
        "required-with-default",
        "a required property with a server default is optional for the client",
        required_with_default,
    ),
    (
        "required-undeclared",
        "`required` names of properties no part of the schema declares",
        required_undeclared,
    ),
    (
        "partial-update-bodies",
        "PUT bodies that reuse a full schema become partial (nothing required)",
        partial_update_bodies,
    ),
    (
        "hoist-inline-bodies",
        "inline body/response schemas and enum parameters become named components",
        hoist_inline_bodies,
    ),
    (
        "sample-fields",
        "fields the upstream samples send but the schema lacks or types differently",
        sample_fields,
    ),
    (
        "webhook-events",
        "x-webhooks payloads become named events and one `WebhookEvent` union",
        webhook_events,
    ),
    (
        "api-shapes",
        "where the API sends another shape than the spec (official SDK types, recorded responses)",
        api_shapes,
    ),
];

/// Runs every rule on `loaded` and returns the normalized document and the report.
pub(crate) fn normalize(loaded: Loaded, samples: Vec<Value>) -> (Value, Report) {
    let Loaded {
        mut value,
        raw_numbers,
    } = loaded;
    let ctx = Ctx {
        raw_numbers,
        samples,
    };
    let mut report = Report::default();
    for (name, _, rule) in RULES {
        let mut places = Vec::new();
        rule(&mut value, &ctx, &mut places);
        report.changes.push((name, places));
    }
    (value, report)
}

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

fn esc(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Keys whose values are data, never OpenAPI objects or schemas.
const DATA_KEYS: &[&str] = &[
    "example",
    "examples",
    "default",
    "enum",
    "const",
    "x-codeSamples",
];

/// Calls `f(pointer, schema)` on every schema object of the document, parents before children.
fn for_each_schema(doc: &mut Value, f: &mut dyn FnMut(&str, &mut Map<String, Value>)) {
    fn schema(ptr: &str, value: &mut Value, f: &mut dyn FnMut(&str, &mut Map<String, Value>)) {
        let Value::Object(map) = value else { return };
        f(ptr, map);
        for (key, child) in map.iter_mut() {
            let here = format!("{ptr}/{}", esc(key));
            match key.as_str() {
                "properties" | "patternProperties" => {
                    if let Value::Object(props) = child {
                        for (name, prop) in props.iter_mut() {
                            schema(&format!("{here}/{}", esc(name)), prop, f);
                        }
                    }
                }
                "items" | "not" | "additionalProperties" => schema(&here, child, f),
                "allOf" | "oneOf" | "anyOf" => {
                    if let Value::Array(items) = child {
                        for (i, item) in items.iter_mut().enumerate() {
                            schema(&format!("{here}/{i}"), item, f);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    fn doc_node(ptr: &str, value: &mut Value, f: &mut dyn FnMut(&str, &mut Map<String, Value>)) {
        match value {
            Value::Object(map) => {
                for (key, child) in map.iter_mut() {
                    let here = format!("{ptr}/{}", esc(key));
                    if DATA_KEYS.contains(&key.as_str()) {
                        continue;
                    }
                    if key == "schema" || ptr == "/components/schemas" {
                        schema(&here, child, f);
                    } else {
                        doc_node(&here, child, f);
                    }
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    doc_node(&format!("{ptr}/{i}"), item, f);
                }
            }
            _ => {}
        }
    }
    doc_node("", doc, f);
}

/// Removes every schema `default` (codegen's view only; the spec file keeps them as facts).
pub(crate) fn strip_schema_defaults(doc: &mut Value) {
    for_each_schema(doc, &mut |_, schema| {
        schema.remove("default");
    });
}

/// Removes `format: <format>` from every schema (codegen's view only).
pub(crate) fn strip_schema_format(doc: &mut Value, format: &str) {
    for_each_schema(doc, &mut |_, schema| {
        if schema.get("format").and_then(Value::as_str) == Some(format) {
            schema.remove("format");
        }
    });
}

/// `(pointer, method, path, operation)`.
type OperationVisitor<'a> = dyn FnMut(&str, &str, &str, &mut Map<String, Value>) + 'a;

/// Calls `f(pointer, method, path, operation)` on every operation.
fn for_each_operation(doc: &mut Value, f: &mut OperationVisitor<'_>) {
    let Some(Value::Object(paths)) = doc.get_mut("paths") else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Value::Object(item) = item else { continue };
        for (method, op) in item.iter_mut() {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            if let Value::Object(op) = op {
                let ptr = format!("/paths/{}/{method}", esc(path));
                f(&ptr, method, path, op);
            }
        }
    }
}

fn drop_code_samples(doc: &mut Value, _: &Ctx, places: &mut Vec<String>) {
    for_each_operation(doc, &mut |ptr, _, _, op| {
        if op.remove("x-codeSamples").is_some() {
            places.push(format!("{ptr}/x-codeSamples"));
        }
    });
}

/// Keys of OpenAPI objects (outside schemas' `properties`) that hold prose or presentation.
const PROSE_KEYS: &[&str] = &[
    "description",
    "summary",
    "externalDocs",
    "x-tagGroups",
    "x-logo",
    "x-displayName",
    "x-enum-descriptions",
];

fn drop_prose(doc: &mut Value, _: &Ctx, places: &mut Vec<String>) {
    // Schemas first: there `properties` keys are field names (a field may be called
    // `description`), so only keyword positions are touched.
    for_each_schema(doc, &mut |ptr, schema| {
        for key in PROSE_KEYS {
            if schema.remove(*key).is_some() {
                places.push(format!("{ptr}/{key}"));
            }
        }
    });
    fn walk(ptr: &str, value: &mut Value, places: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for key in PROSE_KEYS {
                    if map.remove(*key).is_some() {
                        places.push(format!("{ptr}/{key}"));
                    }
                }
                for (key, child) in map.iter_mut() {
                    // Schemas were handled above; data is left alone.
                    if key == "schema"
                        || ptr == "/components/schemas"
                        || DATA_KEYS.contains(&key.as_str())
                    {
                        continue;
                    }
                    walk(&format!("{ptr}/{}", esc(key)), child, places);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    walk(&format!("{ptr}/{i}"), item, places);
                }
            }
            _ => {}
        }
    }
    walk("", doc, places);
}

fn openapi_version(doc: &mut Value, _: &Ctx, places: &mut Vec<String>) {
    if let Some(version) = doc.get_mut("openapi")
        && version.as_str().is_some_and(|v| !v.starts_with("3.0."))
    {
        *version = json!("3.0.3");
        places.push("/openapi".to_owned());
    }
}

/// `GET /catalogs/cartaporte/3.1/air-transport-codes` → `getCatalogsCartaporte31AirTransportCodes`;
/// a `{param}` segment becomes `By` + its name.
pub(crate) fn derived_operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_ascii_lowercase();
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        let (prefix, word) = match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(param) => ("By", param),
            None => ("", segment),
        };
        id.push_str(prefix);
        for part in word
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|p| !p.is_empty())
        {
            let mut chars = part.chars();
            if let Some(first) = chars.next() {
                id.push(first.to_ascii_uppercase());
                id.push_str(chars.as_str());
            }
        }
    }
    id
}

fn derive_operation_ids(doc: &mut Value, _: &Ctx, places: &mut Vec<String>) {
    for_each_operation(doc, &mut |ptr, method, path, op| {
        if !op.contains_key("operationId") {
            op.insert(
                "operationId".into(),
                json!(derived_operation_id(method, path)),
            );
            op.insert("x-operation-id-derived".into(), json!(true));
            places.push(format!("{ptr}/operationId"));
        }
    });
}

fn null_type(doc: &mut Value, _: &Ctx, places: &mut Vec<String>) {
    for_each_schema(doc, &mut |ptr, schema| {
        if schema.get("type").and_then(Value::as_str) == Some("null") {
            schema.remove("type");
            schema.insert("nullable".into(), json!(true));
            schema.insert("enum".into(), json!([null]));
            places.push(format!("{ptr}/type"));
        }
    });
}

fn const_to_enum(doc: &mut Value, _: &Ctx, places: &mut Vec<String>) {
    for_each_schema(doc, &mut |ptr, schema| {
        if let Some(value) = schema.remove("const") {
            schema.insert("enum".into(), Value::Array(vec![value]));
            places.push(format!("{ptr}/const"));
        }
    });
}

fn exclusive_minimum(doc: &mut Value, _: &Ctx, places: &mut Vec<String>) {
    for_each_schema(doc, &mut |ptr, schema| {
        for (exclusive, bound) in [
            ("exclusiveMinimum", "minimum"),
            ("exclusiveMaximum", "maximum"),
        ] {
            if let Some(limit) = schema.get(exclusive).filter(|v| v.is_number()).cloned() {
                schema.insert(bound.into(), limit);
                schema.insert(exclusive.into(), json!(true));
                places.push(format!("{ptr}/{exclusive}"));
            }
        }
    });
}

fn zero_padded_enums(doc: &mut Value, ctx: &Ctx, places: &mut Vec<String>) {
    for_each_schema(doc, &mut |ptr, schema| {
        if schema.get("type").and_then(Value::as_str) != Some("string") {
            return;
        }
        for key in ["enum", "default", "example"] {
            let values: Vec<(String, &mut Value)> = match schema.get_mut(key) {
                Some(Value::Array(items)) if key == "enum" => items
                    .iter_mut()
                    .enumerate()
                    .map(|(i, v)| (format!("{ptr}/{key}/{i}"), v))
                    .collect(),
                Some(v) if key != "enum" => vec![(format!("{ptr}/{key}"), v)],
                _ => continue,
            };
            for (here, value) in values {
                if value.is_number() {
                    // The source text when it differs from the number (`01`), else the number.
                    let text = ctx
                        .raw_numbers
                        .get(&here)
                        .cloned()
                        .unwrap_or_else(|| value.to_string());
                    *value = Value::String(text);
                    places.push(here);
                }
            }
        }
    });
}

/// Whether `value` is an instance of the JSON type `ty`.
fn has_type(value: &Value, ty: &str) -> bool {
    match ty {
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => value.as_i64().is_some() || value.as_u64().is_some(),
        "boolean" => value.is_boolean(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => true,
    }
}

fn invalid_defaults(doc: &mut Value, _: &Ctx, places: &mut Vec<String>) {
    for_each_schema(doc, &mut |ptr, schema| {
        let Some(default) = schema.get("default") else {
            return;
        };
        let type_ok = schema
            .get("type")
            .and_then(Value::as_str)
            .is_none_or(|ty| has_type(default, ty));
        let enum_ok = match schema.get("enum") {
            Some(Value::Array(allowed)) => allowed.contains(default),
            _ => true,
        };
        let format_ok = match schema.get("format").and_then(Value::as_str) {
            // `"now"` is prose for "the request time", not a date-time.
            Some("date-time" | "date") => default
                .as_str()
                .is_some_and(|s| s.starts_with(|c: char| c.is_ascii_digit())),
            _ => true,
        };
        if !(type_ok && enum_ok && format_ok) {
            schema.remove("default");
            places.push(format!("{ptr}/default"));
        }
    });
}

fn dedupe_deep_object(doc: &mut Value, _: &Ctx, places: &mut Vec<String>) {
    let components = doc.get("components").cloned().unwrap_or(Value::Null);
    let resolve = |p: &Value| -> Value {
        match p.get("$ref").and_then(Value::as_str) {
            Some(r) => lookup(&components, r).cloned().unwrap_or(Value::Null),
            None => p.clone(),
        }
    };
    for_each_operation(doc, &mut |ptr, _, _, op| {
        let Some(Value::Array(params)) = op.get_mut("parameters") else {
            return;
        };
        let deep: BTreeSet<String> = params
            .iter()
            .map(&resolve)
            .filter(|p| p.get("style").and_then(Value::as_str) == Some("deepObject"))
            .filter_map(|p| p.get("name").and_then(Value::as_str).map(str::to_owned))
            .collect();
        let mut i = 0;
        params.retain(|p| {
            let name = resolve(p)
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let keep = !deep.iter().any(|d| name.starts_with(&format!("{d}[")));
            if !keep {
                places.push(format!("{ptr}/parameters/{i}"));
            }
            i += 1;
            keep
        });
    });
}

/// Resolves a local `#/components/...` reference against the `components` object.
fn lookup<'a>(components: &'a Value, reference: &str) -> Option<&'a Value> {
    let rest = reference.strip_prefix("#/components/")?;
    rest.split('/').try_fold(components, |node, token| {
        node.get(token.replace("~1", "/").replace("~0", "~"))
    })
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// Properties a schema declares, following `allOf` and local references.
fn declared_property<'a>(
    schemas: &'a Map<String, Value>,
    schema: &'a Value,
    prop: &str,
    depth: usize,
) -> Option<&'a Value> {
    if depth > 16 {
        return None;
    }
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let target = schemas.get(r.strip_prefix("#/components/schemas/")?)?;
        return declared_property(schemas, target, prop, depth + 1);
    }
    if let Some(p) = schema.get("properties").and_then(|p| p.get(prop)) {
        return Some(p);
    }
    schema
        .get("allOf")
        .and_then(Value::as_array)
        .and_then(|parts| {
            parts
                .iter()
                .find_map(|part| declared_property(schemas, part, prop, depth + 1))
        })
}

fn variant_title(value: &str) -> String {
    crate::names::pascal(value)
}

/// Rewrites `{discriminator, properties…}` into `oneOf` variants. A variant whose target
/// declares the tag property pins it to its value(s) (required, unless the value is the
/// property's default); a target without the property is an untagged fallback, tried
/// last. When the mapping names the schema itself, or other schemas extend it through
/// `allOf`, its own shape moves to `<Name>Base` and those references follow it.
fn discriminator_variants(doc: &mut Value, _: &Ctx, places: &mut Vec<String>) {
    let Some(Value::Object(schemas)) = doc.pointer("/components/schemas").cloned() else {
        return;
    };
    // Locate discriminators: (pointer, owning component).
    let mut found = Vec::new();
    for_each_schema(doc, &mut |ptr, schema| {
        if schema.contains_key("discriminator") {
            found.push(ptr.to_owned());
        }
    });
    let bases: BTreeSet<String> = found
        .iter()
        .filter_map(|p| p.strip_prefix("/components/schemas/"))
        .filter(|name| !name.contains('/'))
        .map(str::to_owned)
        .collect();
    // Subtypes extend a discriminated base through allOf: point them at the base shape.
    let mut needs_base = BTreeSet::new();
    for_each_schema(doc, &mut |_, schema| {
        if let Some(Value::Array(parts)) = schema.get_mut("allOf") {
            for part in parts {
                if let Some(name) = part
                    .get("$ref")
                    .and_then(Value::as_str)
                    .and_then(|r| r.strip_prefix("#/components/schemas/"))
                    && bases.contains(name)
                {
                    needs_base.insert(name.to_owned());
                    *part = schema_ref(&format!("{name}Base"));
                }
            }
        }
    });
    for ptr in found {
        let Some(Value::Object(node)) = doc.pointer_mut(&ptr) else {
            continue;
        };
        let Some(discriminator) = node.remove("discriminator") else {
            continue;
        };
        let owner = ptr
            .strip_prefix("/components/schemas/")
            .filter(|n| !n.contains('/'))
            .map(str::to_owned);
        let prop = discriminator
            .get("propertyName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let mapping_values: Vec<String> = discriminator
            .get("mapping")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(v, _)| v.clone())
            .collect();
        // Group values by target, keeping first-seen order.
        let mut targets: Vec<(String, Vec<String>)> = Vec::new();
        for (value, target) in discriminator
            .get("mapping")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let name = target
                .as_str()
                .and_then(|t| t.strip_prefix("#/components/schemas/"))
                .unwrap_or_default()
                .to_owned();
            match targets.iter_mut().find(|(t, _)| *t == name) {
                Some((_, values)) => values.push(value.clone()),
                None => targets.push((name, vec![value.clone()])),
            }
        }
        // Variant titles carry the owner's name, so generated types read `IncomeDraft`,
        // not a bare `Draft` shared by five kinds.
        let owner_title = node
            .get("title")
            .and_then(Value::as_str)
            .map(crate::names::pascal)
            .or_else(|| owner.clone())
            .unwrap_or_default();
        let self_mapped = owner
            .as_ref()
            .is_some_and(|o| targets.iter().any(|(t, _)| t == o));
        let keep_base = owner
            .as_ref()
            .is_some_and(|o| needs_base.contains(o) || self_mapped);
        let original = std::mem::take(node);
        let rest: Map<String, Value> = original
            .iter()
            .filter(|(k, _)| *k == "title")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut tagged_required = Vec::new();
        let mut tagged_optional = Vec::new();
        let mut untagged = Vec::new();
        // A mapping need not list every value: a stamped invoice is `valid`, though the
        // mapping names only `pending` and `draft`. Values a target declares for the tag
        // that no mapping entry claims go to the first target declaring them.
        let mut claimed: BTreeSet<String> = targets
            .iter()
            .flat_map(|(_, v)| v.iter().cloned())
            .collect();
        for (target, values) in targets {
            // A self-mapping points at the shape that moves to `<Name>Base`.
            let target_schema = schemas.get(&target).cloned().unwrap_or(Value::Null);
            let target_name = match &owner {
                Some(o) if *o == target => format!("{target}Base"),
                _ => target,
            };
            let declared = declared_property(&schemas, &target_schema, &prop, 0).cloned();
            let title = format!(
                "{owner_title}{}",
                values.iter().map(|v| variant_title(v)).collect::<String>()
            );
            let mut values = values;
            let declared_values = declared
                .as_ref()
                .and_then(|d| d.get("enum"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if declared_values
                .iter()
                .any(|v| v.as_str().is_some_and(|v| values.iter().any(|m| m == v)))
            {
                for value in declared_values.iter().filter_map(Value::as_str) {
                    if claimed.insert(value.to_owned()) {
                        values.push(value.to_owned());
                    }
                }
            }
            match declared {
                None => {
                    untagged.push(json!({ "title": title, "allOf": [schema_ref(&target_name)] }))
                }
                Some(decl) => {
                    let optional = decl
                        .get("default")
                        .and_then(Value::as_str)
                        .is_some_and(|d| values.iter().any(|v| v == d));
                    let mut tag = json!({ "type": "object", "properties": { prop.clone(): { "type": "string", "enum": values } } });
                    if !optional {
                        tag["required"] = json!([prop.clone()]);
                    }
                    let variant =
                        json!({ "title": title, "allOf": [schema_ref(&target_name), tag] });
                    if optional {
                        tagged_optional.push(variant)
                    } else {
                        tagged_required.push(variant)
                    }
                }
            }
        }
        let variants: Vec<Value> = tagged_required
            .into_iter()
            .chain(tagged_optional)
            .chain(untagged)
            .collect();
        places.push(format!("{ptr}/discriminator"));
        let mut replacement = rest;
        replacement.insert("oneOf".into(), Value::Array(variants));
        *node = replacement;
        if keep_base && let Some(owner) = owner {
            let mut base = original;
            base.remove("title");
            // The mapping is authoritative for the tag's values: upstream copy-pastes list
            // `nomina` as a value of the payment complement's `type`, which makes the `pago`
            // variant unsatisfiable.
            if let Some(Value::Array(values)) = base
                .get_mut("properties")
                .and_then(|p| p.get_mut(&prop))
                .and_then(|p| p.get_mut("enum"))
            {
                let all: Vec<Value> = mapping_values.iter().map(|v| json!(v)).collect();
                if *values != all {
                    *values = all;
                    places.push(format!(
                        "/components/schemas/{owner}Base/properties/{prop}/enum"
                    ));
                }
            }
            if let Some(Value::Object(all)) = doc.pointer_mut("/components/schemas") {
                all.insert(format!("{owner}Base"), Value::Object(base));
            }
        }
    }
}

/// Gives every inline request-body and response schema of an operation a component name
/// (`<OperationId>Body`, `<OperationId>Response<status>`), so that the model generator
/// names them and `spec/endpoints.toml` can refer to them.
fn hoist_inline_bodies(doc: &mut Value, _: &Ctx, places: &mut Vec<String>) {
    let mut hoisted: Vec<(String, Value)> = Vec::new();
    let mut hoist =
        |ptr: String, name: String, schema: &mut Value, hoisted: &mut Vec<(String, Value)>| {
            let inline =
                schema.get("$ref").is_none() && schema.as_object().is_some_and(|m| !m.is_empty());
            let json_like = !matches!(schema.get("format").and_then(Value::as_str), Some("binary"));
            if inline && json_like {
                let taken = std::mem::replace(schema, schema_ref(&name));
                hoisted.push((name, taken));
                places.push(ptr);
            }
        };
    let mut request_bodies = Vec::new();
    for_each_operation(doc, &mut |ptr, _, _, op| {
        let base = crate::names::pascal(
            op.get("operationId")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        );
        if let Some(Value::Object(content)) =
            op.get_mut("requestBody").and_then(|b| b.get_mut("content"))
        {
            for (media, body) in content.iter_mut() {
                if let Some(schema) = body.get_mut("schema") {
                    hoist(
                        format!("{ptr}/requestBody/content/{}/schema", esc(media)),
                        format!("{base}Body"),
                        schema,
                        &mut hoisted,
                    );
                }
            }
        }
        if let Some(r) = op
            .get("requestBody")
            .and_then(|b| b.get("$ref"))
            .and_then(Value::as_str)
        {
            request_bodies.push((r.to_owned(), base.clone()));
        }
        if let Some(Value::Array(params)) = op.get_mut("parameters") {
            for (i, param) in params.iter_mut().enumerate() {
                let name = format!(
                    "{base}{}",
                    crate::names::pascal(
                        param
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                    )
                );
                let Some(schema) = param.get_mut("schema") else {
                    continue;
                };
                let here = format!("{ptr}/parameters/{i}/schema");
                if schema.get("enum").is_some() {
                    hoist(here, name, schema, &mut hoisted);
                } else if let Some(items) = schema
                    .get_mut("items")
                    .filter(|items| items.get("enum").is_some())
                {
                    hoist(
                        format!("{here}/items"),
                        format!("{name}Item"),
                        items,
                        &mut hoisted,
                    );
                }
            }
        }
        if let Some(Value::Object(responses)) = op.get_mut("responses") {
            for (status, response) in responses.iter_mut() {
                if !status.starts_with('2') {
                    continue;
                }
                if let Some(Value::Object(content)) = response.get_mut("content") {
                    for (media, body) in content.iter_mut() {
                        if let Some(schema) = body.get_mut("schema") {
                            let name = format!("{base}Response{status}");
                            hoist(
                                format!("{ptr}/responses/{status}/content/{}/schema", esc(media)),
                                name,
                                schema,
                                &mut hoisted,
                            );
                        }
                    }
                }
            }
        }
    });
    // Shared request bodies under components/requestBodies are named after themselves.
    if let Some(Value::Object(bodies)) = doc.pointer_mut("/components/requestBodies") {
        for (name, body) in bodies.iter_mut() {
            if let Some(Value::Object(content)) = body.get_mut("content") {
                for (media, media_body) in content.iter_mut() {
                    if let Some(schema) = media_body.get_mut("schema") {
                        hoist(
                            format!(
                                "/components/requestBodies/{name}/content/{}/schema",
                                esc(media)
                            ),
                            format!("{name}Body"),
                            schema,
                            &mut hoisted,
                        );
                    }
                }
            }
        }
    }
    if let Some(Value::Object(schemas)) = doc.pointer_mut("/components/schemas") {
        for (name, schema) in hoisted {
            schemas.insert(name, schema);
        }
    }
}

fn required_with_default(doc: &mut Value, _: &Ctx, places: &mut Vec<String>) {
    let schemas = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for_each_schema(doc, &mut |ptr, schema| {
        // The property may be declared beside `required` or in an `allOf` part.
        let whole = Value::Object(schema.clone());
        let defaulted: BTreeSet<String> = schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|name| {
                declared_property(&schemas, &whole, name, 0)
                    .is_some_and(|p| p.get("default").is_some())
            })
            .map(str::to_owned)
            .collect();
        if let Some(Value::Array(required)) = schema.get_mut("required") {
            required.retain(|r| {
                let keep = !r.as_str().is_some_and(|r| defaulted.contains(r));
                if !keep {
                    places.push(format!("{ptr}/required/{}", r.as_str().unwrap_or_default()));
                }
                keep
            });
            if required.is_empty() {
                schema.remove("required");
            }
        }
    });
}

fn required_undeclared(doc: &mut Value, _: &Ctx, places: &mut Vec<String>) {
    // Conservative: a name is dropped only when no schema of the document declares a
    // property of that name, since a `required` in one `allOf` part may name a property of
    // a sibling part or of a schema that extends this one.
    let mut declared_anywhere = BTreeSet::new();
    for_each_schema(doc, &mut |_, schema| {
        if let Some(Value::Object(props)) = schema.get("properties") {
            declared_anywhere.extend(props.keys().cloned());
        }
    });
    for_each_schema(doc, &mut |ptr, schema| {
        if let Some(Value::Array(required)) = schema.get_mut("required") {
            required.retain(|r| {
                let name = r.as_str().unwrap_or_default();
                let keep = declared_anywhere.contains(name);
                if !keep {
                    places.push(format!("{ptr}/required/{name}"));
                }
                keep
            });
        }
    });
}

fn webhook_events(doc: &mut Value, _: &Ctx, places: &mut Vec<String>) {
    let mut events = Vec::new();
    if let Some(Value::Object(hooks)) = doc.get_mut("x-webhooks") {
        for (name, item) in hooks.iter_mut() {
            let Some(schema) =
                item.pointer_mut("/post/requestBody/content/application~1json/schema")
            else {
                continue;
            };
            if schema.get("$ref").is_some() {
                continue;
            }
            let component = format!("{}Event", crate::names::pascal(name));
            events.push((
                component.clone(),
                std::mem::replace(schema, schema_ref(&component)),
            ));
            places.push(format!(
                "/x-webhooks/{}/post/requestBody/content/application~1json/schema",
                esc(name)
            ));
        }
    }
    if events.is_empty() {
        return;
    }
    if let Some(Value::Object(schemas)) = doc.pointer_mut("/components/schemas") {
        let union: Vec<Value> = events.iter().map(|(name, _)| schema_ref(name)).collect();
        for (name, schema) in events {
            schemas.insert(name, schema);
        }
        schemas.insert("WebhookEvent".into(), json!({ "oneOf": union }));
        places.push("/components/schemas/WebhookEvent".to_owned());
    }
}

/// The API's own shapes where the spec is narrower (facts from the official SDKs' type
/// definitions and recorded responses; see FACTS.md):
/// - `parts` of a line item is an array of parts, not one object;
/// - a webhook's `enabled_events` is an array of event names (or `*`), not one string;
/// - `folio_number` comes as a number or as a string (`"914"`);
/// - an invoice's `complements` holds every complement kind the API issues (a payment
///   invoice's `pago`, carta porte, comercio exterior, leyendas fiscales), not only nómina
///   and custom: the kinds the spec lists in its other complement unions become one union;
/// - the `pago` complement is `{type: "pago", data: [payment, …]}` (the spec derives it from
///   the nómina one, which no `pago` value can match);
/// - an invoice carries `use`, `payment_method`, `export`, `organization`, `issuer_type`,
///   `cfdi_version`, `global` and `cancellation`; its customer a `tax_system` and a `zip`;
///   its stamp a `complement_string`; its lines `customs_keys` and `property_tax_account`;
///   a related document its `uuid`.
fn api_shapes(doc: &mut Value, _: &Ctx, places: &mut Vec<String>) {
    let is_ref_to = |v: &Value, name: &str| {
        v.get("$ref").and_then(Value::as_str) == Some(&format!("#/components/schemas/{name}"))
    };
    for_each_schema(doc, &mut |ptr, schema| {
        let Some(Value::Object(props)) = schema.get_mut("properties") else {
            return;
        };
        for (name, prop) in props.iter_mut() {
            let here = format!("{ptr}/properties/{}", esc(name));
            match name.as_str() {
                "parts"
                    if is_ref_to(prop, "Parts") || prop.get("type") == Some(&json!("object")) =>
                {
                    let one = std::mem::take(prop);
                    *prop = json!({"type": "array", "items": one});
                    places.push(here);
                }
                "enabled_events" if prop.get("type") == Some(&json!("string")) => {
                    let one = std::mem::take(prop);
                    *prop = json!({"type": "array", "items": one});
                    places.push(here);
                }
                "folio_number" if prop.get("type") == Some(&json!("integer")) => {
                    let mut number = std::mem::take(prop);
                    if let Value::Object(n) = &mut number {
                        n.remove("example");
                    }
                    *prop = json!({"oneOf": [number, {"type": "string"}]});
                    places.push(here);
                }
                _ => {}
            }
        }
    });
    let Some(Value::Object(schemas)) = doc.pointer_mut("/components/schemas") else {
        return;
    };
    // The pago complement: the spec builds it from the nómina/custom base (whose `type`
    // excludes `pago`, so no value can match) and nómina data. A payment invoice's
    // complement is `{type: "pago", data: [payment, …]}`, each payment shaped like the
    // payment input, every field optional in a response.
    let pago_from_nomina = schemas.get("PagoComplementProperties").is_some_and(|p| {
        p.to_string()
            .contains("NominaOrCustomComplementPropertiesBase")
    });
    if pago_from_nomina && let Some(payment) = schemas.get("PaymentInput").cloned() {
        fn optional_everywhere(v: &mut Value) {
            match v {
                Value::Object(map) => {
                    map.remove("required");
                    map.remove("title");
                    map.values_mut().for_each(optional_everywhere);
                }
                Value::Array(items) => items.iter_mut().for_each(optional_everywhere),
                _ => {}
            }
        }
        let mut data = payment;
        optional_everywhere(&mut data);
        schemas.insert("PagoComplementData".into(), data);
        schemas.insert(
            "PagoComplementProperties".into(),
            json!({
                "type": "object",
                "properties": {
                    "type": {"type": "string", "enum": ["pago"]},
                    "data": {"type": "array", "items": schema_ref("PagoComplementData")}
                }
            }),
        );
        places.push("/components/schemas/PagoComplementProperties".into());
        places.push("/components/schemas/PagoComplementData".into());
    }
    // Fields the API sends that the spec's response models lack (the official Node SDK's
    // type definitions list them): added, never replacing a declared one.
    let added: [(&str, &[&str], Value); 13] = [
        ("InvoiceProperties", &["use"], json!({"type": "string"})),
        (
            "InvoiceProperties",
            &["payment_method"],
            json!({"type": "string"}),
        ),
        ("InvoiceProperties", &["export"], json!({"type": "string"})),
        (
            "InvoiceProperties",
            &["organization"],
            json!({"type": "string"}),
        ),
        (
            "InvoiceProperties",
            &["issuer_type"],
            json!({"type": "string", "enum": ["issuing", "receiving"]}),
        ),
        (
            "InvoiceProperties",
            &["cfdi_version"],
            json!({"type": "number"}),
        ),
        (
            "InvoiceProperties",
            &["global"],
            json!({"type": "object", "properties": {"periodicity": {"type": "string", "enum": ["day", "week", "fortnight", "month", "two_months"]}, "months": {"type": "string"}, "year": {"type": "integer"}}}),
        ),
        (
            "InvoiceProperties",
            &["cancellation"],
            json!({"type": "object", "properties": {"requested_at": {"type": "string", "format": "date-time"}, "status": {"type": "string", "enum": ["none", "pending", "accepted", "rejected", "expired", "verifying"]}, "last_checked": {"type": "string", "format": "date-time"}, "motive": {"type": "string"}, "substitutionUUID": {"type": "string"}}}),
        ),
        ("CustomerInfo", &["tax_system"], json!({"type": "string"})),
        (
            "CustomerInfo",
            &["address", "zip"],
            json!({"type": "string"}),
        ),
        ("Stamp", &["complement_string"], json!({"type": "string"})),
        (
            "LineItem",
            &["customs_keys"],
            json!({"type": "array", "items": {"type": "string"}}),
        ),
        (
            "LineItem",
            &["property_tax_account"],
            json!({"type": "array", "items": {"type": "string"}}),
        ),
    ];
    for (host, path, schema) in added {
        let (last, parents) = path.split_last().expect("a property path");
        let parent: String = parents.iter().map(|p| format!("/properties/{p}")).collect();
        if let Some(Value::Object(props)) = schemas
            .get_mut(host)
            .and_then(|n| n.pointer_mut(&format!("{parent}/properties")))
            && !props.contains_key(*last)
        {
            props.insert((*last).to_owned(), schema);
            places.push(format!(
                "/components/schemas/{host}{parent}/properties/{last}"
            ));
        }
    }
    if let Some(Value::Object(props)) = schemas
        .get_mut("RelatedDocument")
        .and_then(|r| r.get_mut("properties"))
        && !props.contains_key("uuid")
    {
        props.insert("uuid".into(), json!({"type": "string"}));
        places.push("/components/schemas/RelatedDocument/properties/uuid".into());
    }
    // Every complement kind in one union, for the complements a response carries.
    let mut kinds: Vec<Value> = Vec::new();
    let mut titles = BTreeSet::new();
    for union in [
        "NominaOrCustomComplementProperties",
        "PagoOrCustomComplementProperties",
        "CartaPorteOrCustomComplementProperties",
    ] {
        for variant in schemas
            .get(union)
            .and_then(|u| u.get("oneOf"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let title = variant
                .get("title")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if titles.insert(title.to_owned()) {
                kinds.push(variant.clone());
            }
        }
    }
    if kinds.is_empty() {
        return;
    }
    schemas.insert(
        "AnyComplementProperties".into(),
        json!({"title": "Complement", "oneOf": kinds}),
    );
    places.push("/components/schemas/AnyComplementProperties".into());
    for host in ["InvoiceProperties", "InvoiceDraftProperties"] {
        if let Some(items) = schemas
            .get_mut(host)
            .and_then(|h| h.pointer_mut("/properties/complements/items"))
            && is_ref_to(items, "NominaOrCustomComplementProperties")
        {
            *items = schema_ref("AnyComplementProperties");
            places.push(format!(
                "/components/schemas/{host}/properties/complements/items"
            ));
        }
    }
}

/// A copy of `schema` with `required` dropped at its top level, following `$ref` and `allOf`
/// (nested objects keep their own rules).
fn partial_copy(components: &Value, schema: &Value, depth: usize) -> Value {
    if depth > 16 {
        return schema.clone();
    }
    if let Some(target) = schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| lookup(components, r))
    {
        return partial_copy(components, target, depth + 1);
    }
    let mut copy = schema.clone();
    if let Value::Object(map) = &mut copy {
        map.remove("required");
        if let Some(Value::Array(parts)) = map.get_mut("allOf") {
            for part in parts.iter_mut() {
                *part = partial_copy(components, part, depth + 1);
            }
        }
    }
    copy
}

fn partial_update_bodies(doc: &mut Value, _: &Ctx, places: &mut Vec<String>) {
    let components = doc.get("components").cloned().unwrap_or(Value::Null);
    let mut partial_bodies = BTreeSet::new();
    for_each_operation(doc, &mut |_, method, _, op| {
        if method == "put"
            && let Some(r) = op
                .get("requestBody")
                .and_then(|b| b.get("$ref"))
                .and_then(Value::as_str)
        {
            partial_bodies.insert(r.to_owned());
        }
    });
    for reference in partial_bodies {
        let Some(name) = reference.strip_prefix("#/components/requestBodies/") else {
            continue;
        };
        let ptr = format!("/components/requestBodies/{name}/content/application~1json/schema");
        let Some(schema) = doc.pointer_mut(&ptr) else {
            continue;
        };
        // Only the `allOf: [$ref]` wrappers reuse a full (create/response) schema.
        let wraps_one_ref = schema
            .get("allOf")
            .and_then(Value::as_array)
            .is_some_and(|parts| parts.len() == 1 && parts[0].get("$ref").is_some());
        if wraps_one_ref {
            *schema = partial_copy(&components, schema, 0);
            places.push(ptr);
        }
    }
}

/// JSON type of a sample value, as a schema.
fn inferred_schema(value: &Value) -> Value {
    match value {
        Value::String(_) => json!({"type": "string"}),
        Value::Number(n) if n.is_i64() || n.is_u64() => json!({"type": "integer"}),
        Value::Number(_) => json!({"type": "number"}),
        Value::Bool(_) => json!({"type": "boolean"}),
        Value::Array(items) => {
            json!({"type": "array", "items": items.first().map_or(json!({}), inferred_schema)})
        }
        Value::Object(_) | Value::Null => json!({"type": "object"}),
    }
}

fn json_type_fits(ty: &str, value: &Value) -> bool {
    ty == "number" && value.is_number() || has_type(value, ty)
}

/// Pointer of the schema that declares `key` for an object described by `ptr` (following
/// `$ref` and `allOf`, not `oneOf`/`anyOf`, where the sample does not say which branch).
fn find_property(doc: &Value, ptr: &str, key: &str, depth: usize) -> Option<String> {
    let schema = doc.pointer(ptr)?;
    if depth > 16 {
        return None;
    }
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        return find_property(doc, &r[1..], key, depth + 1);
    }
    if schema.get("properties").and_then(|p| p.get(key)).is_some() {
        return Some(format!("{ptr}/properties/{}", esc(key)));
    }
    let parts = schema
        .get("allOf")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    (0..parts).find_map(|i| find_property(doc, &format!("{ptr}/allOf/{i}"), key, depth + 1))
}

/// Pointer of the schema that should receive a new property for the object at `ptr`.
fn property_host(doc: &Value, ptr: &str, depth: usize) -> Option<String> {
    let schema = doc.pointer(ptr)?;
    if depth > 16 || schema.get("oneOf").is_some() || schema.get("anyOf").is_some() {
        return None;
    }
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        return property_host(doc, &r[1..], depth + 1);
    }
    if schema.get("properties").is_some() {
        return Some(ptr.to_owned());
    }
    let parts = schema
        .get("allOf")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    (0..parts).find_map(|i| property_host(doc, &format!("{ptr}/allOf/{i}"), depth + 1))
}

fn fit_sample(doc: &mut Value, ptr: &str, value: &Value, places: &mut Vec<String>, depth: usize) {
    if depth > 32 {
        return;
    }
    let Some(schema) = doc.pointer(ptr).cloned() else {
        return;
    };
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        return fit_sample(doc, &r[1..], value, places, depth + 1);
    }
    match value {
        Value::Object(fields) => {
            for (key, field) in fields {
                match find_property(doc, ptr, key, 0) {
                    Some(prop_ptr) => {
                        let declared = doc
                            .pointer(&prop_ptr)
                            .and_then(|p| p.get("type"))
                            .and_then(Value::as_str)
                            .map(str::to_owned);
                        match declared {
                            Some(ty) if !json_type_fits(&ty, field) => {
                                if let Some(prop) = doc.pointer_mut(&prop_ptr) {
                                    let old = prop.take();
                                    *prop = json!({ "oneOf": [old, inferred_schema(field)] });
                                    places.push(prop_ptr);
                                }
                            }
                            _ => fit_sample(doc, &prop_ptr, field, places, depth + 1),
                        }
                    }
                    None => {
                        let Some(host) = property_host(doc, ptr, 0) else {
                            continue;
                        };
                        if let Some(Value::Object(props)) =
                            doc.pointer_mut(&format!("{host}/properties"))
                        {
                            props.insert(key.clone(), inferred_schema(field));
                            places.push(format!("{host}/properties/{}", esc(key)));
                        }
                    }
                }
            }
        }
        Value::Array(items) if schema.get("items").is_some() => {
            for item in items {
                fit_sample(doc, &format!("{ptr}/items"), item, places, depth + 1);
            }
        }
        _ => {}
    }
}

fn sample_fields(doc: &mut Value, ctx: &Ctx, places: &mut Vec<String>) {
    let mut bodies: BTreeMap<String, String> = BTreeMap::new();
    for_each_operation(doc, &mut |ptr, _, _, op| {
        let id = op
            .get("operationId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        match op
            .get("requestBody")
            .and_then(|b| b.get("$ref"))
            .and_then(Value::as_str)
        {
            Some(r) => bodies.insert(id, format!("{}/content/application~1json/schema", &r[1..])),
            None => bodies.insert(
                id,
                format!("{ptr}/requestBody/content/application~1json/schema"),
            ),
        };
    });
    for sample in &ctx.samples {
        let (Some(id), Some(body)) = (
            sample.get("operation_id").and_then(Value::as_str),
            sample.get("body"),
        ) else {
            continue;
        };
        let Some(ptr) = bodies.get(id).cloned() else {
            continue;
        };
        fit_sample(doc, &ptr, body, places, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::load;

    fn run(rule: Rule, yaml: &str) -> (Value, Vec<String>) {
        run_with(rule, yaml, Vec::new())
    }

    fn run_with(rule: Rule, yaml: &str, samples: Vec<Value>) -> (Value, Vec<String>) {
        let loaded = load(yaml).unwrap();
        let mut value = loaded.value;
        let ctx = Ctx {
            raw_numbers: loaded.raw_numbers,
            samples,
        };
        let mut places = Vec::new();
        rule(&mut value, &ctx, &mut places);
        (value, places)
    }

    #[test]
    fn webhook_payloads_become_named_events_and_a_union() {
        let yaml = "components: {schemas: {}}\nx-webhooks:\n  Invoice status updated:\n    post: {requestBody: {content: {application/json: {schema: {properties: {type: {type: string, enum: [invoice.status_updated]}}}}}}}\n";
        let (v, places) = run(webhook_events, yaml);
        assert_eq!(places.len(), 2);
        assert!(
            v.pointer("/components/schemas/InvoiceStatusUpdatedEvent/properties/type")
                .is_some()
        );
        assert_eq!(
            v.pointer("/components/schemas/WebhookEvent/oneOf/0/$ref")
                .unwrap(),
            "#/components/schemas/InvoiceStatusUpdatedEvent"
        );
    }

    #[test]
    fn required_names_nothing_declares_are_dropped() {
        let yaml = "components:\n  schemas:\n    R:\n      allOf:\n        - {required: [relationship, related]}\n        - {properties: {relationship: {type: string}, documents: {type: array}}}\n";
        let (v, places) = run(required_undeclared, yaml);
        assert_eq!(
            v.pointer("/components/schemas/R/allOf/0/required").unwrap(),
            &json!(["relationship"])
        );
        assert_eq!(places, ["/components/schemas/R/allOf/0/required/related"]);
    }

    #[test]
    fn required_properties_with_a_default_become_optional() {
        let yaml = "components:\n  schemas:\n    P:\n      required: [a, b]\n      properties:\n        a: {type: string}\n        b: {type: string, default: H87}\n";
        let (v, places) = run(required_with_default, yaml);
        assert_eq!(
            v.pointer("/components/schemas/P/required").unwrap(),
            &json!(["a"])
        );
        assert_eq!(places, ["/components/schemas/P/required/b"]);
    }

    #[test]
    fn put_bodies_wrapping_a_full_schema_become_partial() {
        let yaml = "components:\n  schemas:\n    P:\n      allOf:\n        - {$ref: '#/components/schemas/Q'}\n        - {required: [a], properties: {a: {type: string}}}\n    Q: {required: [b], properties: {b: {type: string}}}\n  requestBodies:\n    Edit: {content: {application/json: {schema: {allOf: [{$ref: '#/components/schemas/P'}]}}}}\n    Create: {content: {application/json: {schema: {allOf: [{$ref: '#/components/schemas/P'}]}}}}\npaths:\n  /p/{id}:\n    put: {requestBody: {$ref: '#/components/requestBodies/Edit'}}\n  /p:\n    post: {requestBody: {$ref: '#/components/requestBodies/Create'}}\n";
        let (v, places) = run(partial_update_bodies, yaml);
        assert_eq!(places.len(), 1);
        let edit = v
            .pointer("/components/requestBodies/Edit/content/application~1json/schema")
            .unwrap();
        assert!(!edit.to_string().contains("required"), "{edit}");
        assert!(
            edit.to_string().contains("\"b\""),
            "properties kept: {edit}"
        );
        assert!(
            v.pointer("/components/schemas/Q/required").is_some(),
            "the shared schema is untouched"
        );
        assert!(
            v.pointer(
                "/components/requestBodies/Create/content/application~1json/schema/allOf/0/$ref"
            )
            .is_some()
        );
    }

    #[test]
    fn sample_fields_are_declared_and_conflicting_types_widened() {
        let yaml = "components:\n  schemas:\n    In:\n      allOf:\n        - {$ref: '#/components/schemas/Base'}\n    Base:\n      properties:\n        payload: {type: object}\n        address: {properties: {zip: {type: string}}}\n  requestBodies:\n    B: {content: {application/json: {schema: {$ref: '#/components/schemas/In'}}}}\npaths:\n  /x:\n    post: {operationId: op, requestBody: {$ref: '#/components/requestBodies/B'}}\n";
        let sample = json!({"operation_id": "op", "body": {"payload": "text", "address": {"zip": "1", "country": "MX"}, "extra": 2}});
        let (v, places) = run_with(sample_fields, yaml, vec![sample]);
        let base = v.pointer("/components/schemas/Base/properties").unwrap();
        assert_eq!(
            base["payload"],
            json!({"oneOf": [{"type": "object"}, {"type": "string"}]})
        );
        assert_eq!(
            base["address"]["properties"]["country"],
            json!({"type": "string"})
        );
        assert_eq!(base["extra"], json!({"type": "integer"}));
        assert_eq!(places.len(), 3);
    }

    #[test]
    fn every_rule_has_a_unique_name() {
        let names: BTreeSet<_> = RULES.iter().map(|(n, _, _)| *n).collect();
        assert_eq!(names.len(), RULES.len());
    }

    #[test]
    fn openapi_version_is_lowered() {
        let (v, places) = run(openapi_version, "openapi: \"3.1.0\"\n");
        assert_eq!(v["openapi"], "3.0.3");
        assert_eq!(places, ["/openapi"]);
    }

    #[test]
    fn code_samples_are_dropped() {
        let (v, places) = run(
            drop_code_samples,
            "paths:\n  /a:\n    get:\n      x-codeSamples: [{lang: Bash, source: curl}]\n",
        );
        assert!(v.pointer("/paths/~1a/get/x-codeSamples").is_none());
        assert_eq!(places.len(), 1);
    }

    #[test]
    fn prose_is_dropped_but_a_field_named_description_stays() {
        let yaml = "info: {title: T, description: prose}\ncomponents:\n  schemas:\n    P:\n      description: prose\n      properties:\n        description: {type: string, description: prose, example: 'a description: kept'}\n";
        let (v, places) = run(drop_prose, yaml);
        assert!(v.pointer("/info/description").is_none());
        assert!(v.pointer("/components/schemas/P/description").is_none());
        assert_eq!(
            v.pointer("/components/schemas/P/properties/description/type")
                .unwrap(),
            "string"
        );
        assert!(
            v.pointer("/components/schemas/P/properties/description/description")
                .is_none()
        );
        assert_eq!(
            v.pointer("/components/schemas/P/properties/description/example")
                .unwrap(),
            "a description: kept"
        );
        assert_eq!(places.len(), 3);
    }

    #[test]
    fn operation_ids_are_derived_from_method_and_path() {
        assert_eq!(
            derived_operation_id("get", "/catalogs/cartaporte/3.1/air-transport-codes"),
            "getCatalogsCartaporte31AirTransportCodes"
        );
        assert_eq!(
            derived_operation_id("get", "/tools/tax_id_validation"),
            "getToolsTaxIdValidation"
        );
        assert_eq!(derived_operation_id("delete", "/a/{a_id}"), "deleteAByAId");
        let (v, places) = run(
            derive_operation_ids,
            "paths:\n  /check:\n    get: {}\n  /x:\n    get: {operationId: keep}\n",
        );
        assert_eq!(
            v.pointer("/paths/~1check/get/operationId").unwrap(),
            "getCheck"
        );
        assert_eq!(
            v.pointer("/paths/~1check/get/x-operation-id-derived")
                .unwrap(),
            true
        );
        assert_eq!(v.pointer("/paths/~1x/get/operationId").unwrap(), "keep");
        assert_eq!(places.len(), 1);
    }

    #[test]
    fn null_type_const_and_exclusive_minimum_become_3_0() {
        let yaml = "components:\n  schemas:\n    A:\n      not: {properties: {c: {type: \"null\"}}}\n      properties:\n        l: {type: boolean, const: true}\n        n: {type: number, exclusiveMinimum: 0}\n";
        let (v, p1) = run(null_type, yaml);
        assert_eq!(
            v.pointer("/components/schemas/A/not/properties/c").unwrap(),
            &json!({"nullable": true, "enum": [null]})
        );
        let (v, p2) = run(const_to_enum, yaml);
        assert_eq!(
            v.pointer("/components/schemas/A/properties/l/enum")
                .unwrap(),
            &json!([true])
        );
        let (v, p3) = run(exclusive_minimum, yaml);
        assert_eq!(
            v.pointer("/components/schemas/A/properties/n").unwrap(),
            &json!({"type": "number", "exclusiveMinimum": true, "minimum": 0})
        );
        assert_eq!((p1.len(), p2.len(), p3.len()), (1, 1, 1));
    }

    #[test]
    fn zero_padded_enum_values_get_their_text_back() {
        let yaml = "components:\n  schemas:\n    T:\n      type: string\n      enum:\n        - 01\n        - 02\n        - '03'\n    N:\n      type: integer\n      enum: [01]\n";
        let (v, places) = run(zero_padded_enums, yaml);
        assert_eq!(
            v.pointer("/components/schemas/T/enum").unwrap(),
            &json!(["01", "02", "03"])
        );
        assert_eq!(
            v.pointer("/components/schemas/N/enum").unwrap(),
            &json!([1]),
            "integer enums are numbers"
        );
        assert_eq!(places.len(), 2);
    }

    #[test]
    fn defaults_that_violate_their_schema_are_removed() {
        let yaml = "components:\n  schemas:\n    A:\n      properties:\n        base: {type: number, default: 100% of subtotal}\n        rate: {type: number, default: 1}\n        folio: {type: integer, default: autoincremental}\n        e: {type: string, enum: [a], default: b}\n        d: {type: string, format: date-time, default: now}\n        ok: {type: string, default: MXN}\n";
        let (v, places) = run(invalid_defaults, yaml);
        let props = v.pointer("/components/schemas/A/properties").unwrap();
        assert!(props["base"].get("default").is_none());
        assert!(props["folio"].get("default").is_none());
        assert!(props["e"].get("default").is_none());
        assert!(props["d"].get("default").is_none());
        assert_eq!(props["rate"]["default"], 1);
        assert_eq!(props["ok"]["default"], "MXN");
        assert_eq!(places.len(), 4);
    }

    #[test]
    fn explicit_deep_object_members_are_deduplicated() {
        let yaml = "components:\n  parameters:\n    D: {in: query, name: date, style: deepObject, schema: {type: object}}\npaths:\n  /r:\n    get:\n      parameters:\n        - {in: query, name: q}\n        - {in: query, name: 'date[gte]'}\n        - $ref: '#/components/parameters/D'\n";
        let (v, places) = run(dedupe_deep_object, yaml);
        let params = v
            .pointer("/paths/~1r/get/parameters")
            .unwrap()
            .as_array()
            .unwrap();
        assert_eq!(params.len(), 2);
        assert_eq!(places, ["/paths/~1r/get/parameters/1"]);
    }

    #[test]
    fn discriminators_become_tagged_variants() {
        let yaml = r##"
components:
  schemas:
    Tax:
      type: object
      discriminator:
        propertyName: type
        mapping: {IVA: "#/components/schemas/Tax", IEPS: "#/components/schemas/Ieps"}
      properties:
        type: {type: string, default: IVA}
        rate: {type: number}
    Ieps:
      allOf:
        - $ref: "#/components/schemas/Tax"
        - properties: {mode: {type: string}}
    Untyped:
      type: object
      discriminator:
        propertyName: status
        mapping: {pending: "#/components/schemas/Full", draft: "#/components/schemas/Draft"}
    Full: {properties: {a: {type: string}}}
    Draft: {properties: {status: {type: string, enum: [draft]}}}
"##;
        let (v, places) = run(discriminator_variants, yaml);
        assert_eq!(places.len(), 2);
        let tax = &v.pointer("/components/schemas/Tax/oneOf").unwrap();
        // IEPS is pinned and required; IVA (the default) is pinned but optional, tried after.
        assert_eq!(tax[0]["title"], "TaxIeps");
        assert_eq!(tax[0]["allOf"][1]["required"], json!(["type"]));
        assert_eq!(tax[1]["allOf"][0]["$ref"], "#/components/schemas/TaxBase");
        assert!(tax[1]["allOf"][1].get("required").is_none());
        assert_eq!(
            v.pointer("/components/schemas/Ieps/allOf/0/$ref").unwrap(),
            "#/components/schemas/TaxBase"
        );
        assert!(
            v.pointer("/components/schemas/TaxBase/properties/rate")
                .is_some()
        );
        // Values the target declares but no mapping entry names join that target's variant.
        let yaml2 = r##"
components:
  schemas:
    Created:
      type: object
      discriminator:
        propertyName: status
        mapping: {pending: "#/components/schemas/Inv", draft: "#/components/schemas/Draft"}
    Inv: {properties: {status: {type: string, enum: [pending, valid, draft]}}}
    Draft: {properties: {status: {type: string, enum: [valid, draft]}}}
"##;
        let (v2, _) = run(discriminator_variants, yaml2);
        let created = v2.pointer("/components/schemas/Created/oneOf").unwrap();
        assert_eq!(
            created[0]["allOf"][1]["properties"]["status"]["enum"],
            json!(["pending", "valid"])
        );
        assert_eq!(
            created[1]["allOf"][1]["properties"]["status"]["enum"],
            json!(["draft"])
        );
        // Full lacks `status`: an untagged fallback after the pinned draft.
        let untyped = v.pointer("/components/schemas/Untyped/oneOf").unwrap();
        assert_eq!(
            untyped[0]["allOf"][1]["properties"]["status"]["enum"],
            json!(["draft"])
        );
        assert_eq!(
            untyped[1]["allOf"],
            json!([{"$ref": "#/components/schemas/Full"}])
        );
    }

    #[test]
    fn inline_bodies_are_hoisted_to_named_components() {
        let yaml = "paths:\n  /a:\n    post:\n      operationId: sendThing\n      requestBody: {content: {application/json: {schema: {type: object}}}}\n      responses:\n        '200': {content: {application/json: {schema: {type: object}}}}\n        '201': {content: {application/pdf: {schema: {type: string, format: binary}}}}\ncomponents: {schemas: {}}\n";
        let (v, places) = run(hoist_inline_bodies, yaml);
        assert_eq!(places.len(), 2);
        assert_eq!(
            v.pointer("/paths/~1a/post/requestBody/content/application~1json/schema/$ref")
                .unwrap(),
            "#/components/schemas/SendThingBody"
        );
        assert!(
            v.pointer("/components/schemas/SendThingResponse200")
                .is_some()
        );
        assert_eq!(
            v.pointer("/paths/~1a/post/responses/201/content/application~1pdf/schema/format")
                .unwrap(),
            "binary"
        );
    }
}
