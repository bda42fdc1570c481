//! Contract tests: `spec/endpoints.toml`, `spec/samples.json` and the generated models agree
//! with the normalized spec. They read only the project's own `spec/` folder.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use xtask::endpoints::{Class, Endpoint, EndpointsFile};

fn root_file(path: &str) -> String {
    std::fs::read_to_string(xtask::workspace_root().join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn endpoints() -> Vec<Endpoint> {
    let text = root_file("spec/endpoints.toml");
    toml::from_str::<EndpointsFile>(&text)
        .expect("spec/endpoints.toml parses")
        .endpoint
}

fn spec() -> Value {
    xtask::yaml::load(&root_file("spec/facturapi.openapi.yaml"))
        .expect("spec parses")
        .value
}

fn samples() -> Vec<Value> {
    serde_json::from_str(&root_file("spec/samples.json")).expect("spec/samples.json parses")
}

#[test]
fn there_are_110_endpoints_each_with_one_class_and_a_unique_operation_id() {
    let endpoints = endpoints();
    assert_eq!(endpoints.len(), 110);
    let spec = spec();
    let mut spec_ids = BTreeSet::new();
    for (_, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                assert!(
                    spec_ids.insert(op["operationId"].as_str().unwrap().to_owned()),
                    "duplicate id in spec"
                );
            }
        }
    }
    let ids: Vec<&str> = endpoints.iter().map(|e| e.operation_id.as_str()).collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "an operation id appears twice");
    assert_eq!(
        unique,
        spec_ids.iter().map(String::as_str).collect(),
        "endpoints and spec operations differ"
    );
    assert_eq!(
        endpoints.iter().filter(|e| e.operation_id_derived).count(),
        15,
        "the 15 operations upstream left unnamed"
    );
    for class in Class::ALL {
        assert!(
            endpoints.iter().any(|e| e.class == class),
            "no endpoint in class {class}"
        );
    }
}

#[test]
fn method_names_are_unique_per_resource_and_snake_case() {
    let mut seen = BTreeSet::new();
    for e in endpoints() {
        assert!(
            e.name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{}",
            e.name
        );
        assert!(
            seen.insert((e.resource.clone(), e.name.clone())),
            "{}.{} twice",
            e.resource,
            e.name
        );
    }
}

/// Literal segments outrank `{param}` segments, left to right, as in a router.
fn rank(template: &str) -> Vec<bool> {
    template.split('/').map(|s| !s.starts_with('{')).collect()
}

fn matches(template: &str, path: &str) -> bool {
    let t: Vec<&str> = template.split('/').collect();
    let p: Vec<&str> = path.split('/').collect();
    t.len() == p.len()
        && t.iter().zip(&p).all(|(t, p)| {
            if t.starts_with('{') {
                !p.is_empty()
            } else {
                t == p
            }
        })
}

#[test]
fn every_sample_resolves_to_exactly_its_endpoint() {
    let endpoints = endpoints();
    let samples = samples();
    assert_eq!(samples.len(), 109);
    for sample in &samples {
        let method = sample["method"].as_str().unwrap();
        let full = sample["path"].as_str().unwrap();
        let path = full.split('?').next().unwrap();
        let candidates: Vec<&Endpoint> = endpoints
            .iter()
            .filter(|e| e.method == method && matches(&e.path, path))
            .collect();
        let best = candidates
            .iter()
            .map(|e| rank(&e.path))
            .max()
            .unwrap_or_else(|| panic!("{method} {full} matches no endpoint"));
        let winners: Vec<&&Endpoint> = candidates
            .iter()
            .filter(|e| rank(&e.path) == best)
            .collect();
        assert_eq!(
            winners.len(),
            1,
            "{method} {full} is ambiguous: {winners:?}"
        );
        assert_eq!(
            winners[0].operation_id,
            sample["operation_id"].as_str().unwrap(),
            "{method} {full}"
        );
        // Query keys of the sample are declared parameters (deepObject members by their base name).
        if let Some(query) = full.split_once('?').map(|(_, q)| q) {
            for pair in query.split('&') {
                let key = pair.split('=').next().unwrap();
                let base = key.split('[').next().unwrap();
                assert!(
                    winners[0].query_params.iter().any(|p| p.name == base),
                    "{method} {full}: undeclared query key {key}"
                );
            }
        }
    }
}

/// Equal JSON, where two strings that are the same RFC 3339 instant count as equal
/// (`…00.000Z` and `…00Z`): dates are typed as `chrono::DateTime<Utc>`.
fn equivalent(a: &Value, b: &Value, at: &str, diffs: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for key in x.keys().chain(y.keys()).collect::<BTreeSet<_>>() {
                match (x.get(key), y.get(key)) {
                    (Some(l), Some(r)) => equivalent(l, r, &format!("{at}/{key}"), diffs),
                    (Some(_), None) => diffs.push(format!("{at}/{key} lost")),
                    (None, Some(_)) => diffs.push(format!("{at}/{key} added")),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (l, r)) in x.iter().zip(y).enumerate() {
                equivalent(l, r, &format!("{at}/{i}"), diffs);
            }
        }
        (Value::String(x), Value::String(y)) if x != y => {
            let instant = |s: &str| chrono::DateTime::parse_from_rfc3339(s).ok();
            if instant(x).is_none() || instant(x) != instant(y) {
                diffs.push(format!("{at}: {x:?} became {y:?}"));
            }
        }
        (Value::Number(x), Value::Number(y)) if x.as_f64() == y.as_f64() => {}
        (x, y) if x != y => diffs.push(format!("{at}: {x} became {y}")),
        _ => {}
    }
}

/// Upstream samples that contradict the spec on a point where the spec is right. Each must
/// keep failing with this message, so a spec or sample change shows up here.
const INVALID_SAMPLES: &[(&str, &str, &str)] = &[(
    "createRetention",
    "no variant of RetentionInput reads it",
    "its imp_retenidos item omits tipo_pago_ret, which the spec requires (as does SAT's Retenciones 2.0 schema)",
)];

#[test]
fn every_sample_body_round_trips_through_its_request_type() {
    let by_id: BTreeMap<String, Endpoint> = endpoints()
        .into_iter()
        .map(|e| (e.operation_id.clone(), e))
        .collect();
    let mut checked = 0;
    let mut failures = Vec::new();
    for sample in samples() {
        let Some(body) = sample.get("body") else {
            continue;
        };
        let id = sample["operation_id"].as_str().unwrap();
        let endpoint = &by_id[id];
        assert_eq!(endpoint.body.kind, "json", "{id}: sample has a JSON body");
        let ty = endpoint.body.ty.as_deref().unwrap();
        match facturapi_sdk::__contract::round_trip_body(ty, body.clone()) {
            None => failures.push(format!("{id}: no round-trip hook for {ty}")),
            Some(Err(e))
                if INVALID_SAMPLES
                    .iter()
                    .any(|(i, msg, _)| *i == id && e.to_string().contains(msg)) => {}
            Some(Err(e)) => failures.push(format!("{id}: {ty} rejects the sample: {e}")),
            Some(Ok(_)) if INVALID_SAMPLES.iter().any(|(i, _, _)| *i == id) => {
                failures.push(format!(
                    "{id}: listed in INVALID_SAMPLES but now accepted: remove it"
                ));
            }
            Some(Ok(back)) => {
                let mut diffs = Vec::new();
                equivalent(body, &back, "", &mut diffs);
                if !diffs.is_empty() {
                    failures.push(format!("{id} ({ty}): {}", diffs.join("; ")));
                }
            }
        }
        checked += 1;
    }
    assert_eq!(checked, 37);
    assert!(
        failures.is_empty(),
        "{} sample bodies do not round-trip:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn multipart_samples_name_the_fields_of_their_body_schema() {
    let by_id: BTreeMap<String, Endpoint> = endpoints()
        .into_iter()
        .map(|e| (e.operation_id.clone(), e))
        .collect();
    let spec = spec();
    let mut checked = 0;
    for sample in samples() {
        let Some(form) = sample.get("form").and_then(Value::as_array) else {
            continue;
        };
        let endpoint = &by_id[sample["operation_id"].as_str().unwrap()];
        assert_eq!(endpoint.body.kind, "multipart");
        let schema = &spec["components"]["schemas"][endpoint.body.ty.as_deref().unwrap()];
        for field in form {
            assert!(
                schema["properties"].get(field.as_str().unwrap()).is_some(),
                "{field} not in {schema}"
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 3);
}

/// Every `enum` list of string values in the spec.
fn spec_string_enums(value: &Value, out: &mut BTreeSet<Vec<String>>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(values)) = map.get("enum")
                && !values.is_empty()
                && values.iter().all(Value::is_string)
            {
                let mut set: Vec<String> = values
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect();
                set.sort();
                out.insert(set);
            }
            for (key, child) in map {
                if key != "enum" && key != "example" && key != "default" {
                    spec_string_enums(child, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| spec_string_enums(i, out)),
        _ => {}
    }
}

#[test]
fn every_enum_round_trips_its_values() {
    let generated = facturapi_sdk::__contract::enum_values();
    let mut generated_sets = BTreeSet::new();
    let mut failures = Vec::new();
    for (name, values) in &generated {
        let mut set = Vec::new();
        for value in values {
            match value {
                Ok(v) => set.push(v.clone()),
                Err(e) => failures.push(format!("{name}: {e}")),
            }
        }
        set.sort();
        generated_sets.insert(set);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The components left out of the models are parts of others (their values live on in
    // the types that merge them, e.g. as a tagged union's tags).
    let mut components = spec()["components"].clone();
    for name in facturapi_sdk::__contract::LEFT_OUT {
        if let Some(schemas) = components["schemas"].as_object_mut() {
            schemas.remove(*name);
        }
    }
    let mut spec_sets = BTreeSet::new();
    spec_string_enums(&components, &mut spec_sets);
    let missing: Vec<_> = spec_sets
        .iter()
        .filter(|s| s.len() > 1 && !generated_sets.contains(*s))
        .collect();
    assert!(
        missing.is_empty(),
        "spec enums without a generated enum of exactly those values: {missing:?}"
    );
    // The zero-padded SAT codes came back as strings.
    assert!(generated_sets.contains(&vec![
        "01".to_owned(),
        "02".to_owned(),
        "03".to_owned(),
        "04".to_owned()
    ]));
}

#[test]
fn invoice_create_input_is_a_typed_enum_of_its_five_kinds() {
    use facturapi_sdk::models::InvoiceCreateInput;
    let income = serde_json::json!({
        "customer": "58e93bd8e86eb318b0197456",
        "items": [{"product": "58e93bd8e86eb318b0197457", "quantity": 1}],
        "payment_form": "03"
    });
    let parsed: InvoiceCreateInput = serde_json::from_value(income).unwrap();
    assert!(
        matches!(parsed, InvoiceCreateInput::Income(_)),
        "{parsed:?}"
    );
    let payment = serde_json::json!({
        "type": "P",
        "customer": "58e93bd8e86eb318b0197456",
        "complements": [{"type": "pago", "data": [{"payment_form": "28", "related_documents": [{"uuid": "39c85a3f-275b-4341-b259-e8971d9f8a94", "amount": 100, "installment": 1, "last_balance": 100, "taxes": [{"base": 100, "type": "IVA", "rate": 0.16}]}]}]}]
    });
    let parsed: InvoiceCreateInput = serde_json::from_value(payment).unwrap();
    assert!(
        matches!(parsed, InvoiceCreateInput::Payment(_)),
        "{parsed:?}"
    );
    let egress = serde_json::json!({
        "type": "E",
        "customer": "58e93bd8e86eb318b0197456",
        "payment_form": "03",
        "items": [{"product": "58e93bd8e86eb318b0197457", "quantity": 1}],
        "related_documents": [{"relationship": "01", "documents": ["39c85a3f-275b-4341-b259-e8971d9f8a94"]}]
    });
    let parsed: InvoiceCreateInput = serde_json::from_value(egress).unwrap();
    assert!(
        matches!(parsed, InvoiceCreateInput::Egress(_)),
        "{parsed:?}"
    );
    let draft = serde_json::json!({"status": "draft", "customer": "58e93bd8e86eb318b0197456"});
    let parsed: InvoiceCreateInput = serde_json::from_value(draft.clone()).unwrap();
    assert_eq!(
        serde_json::to_value(&parsed).unwrap(),
        draft,
        "a draft keeps exactly what was sent"
    );
}

#[test]
fn the_sdk_operation_catalog_matches_endpoints_toml() {
    let endpoints = endpoints();
    let catalog = facturapi_sdk::operations();
    assert_eq!(catalog.len(), endpoints.len());
    for (op, e) in catalog.iter().zip(&endpoints) {
        assert_eq!(
            (op.operation_id, op.method, op.path),
            (e.operation_id.as_str(), e.method.as_str(), e.path.as_str())
        );
        assert_eq!(op.class.as_str(), e.class.to_string(), "{}", e.operation_id);
        assert_eq!(
            (op.resource, op.method_name),
            (e.resource.as_str(), e.name.as_str())
        );
        let keys: Vec<&str> = op.keys.iter().map(|k| k.as_str()).collect();
        assert_eq!(keys, e.keys, "{}", e.operation_id);
        assert_eq!(
            facturapi_sdk::Class::of_operation(op.operation_id),
            Some(op.class)
        );
    }
    assert_eq!(facturapi_sdk::Class::of_operation("noSuchOperation"), None);
}

#[test]
fn every_sandbox_fixture_round_trips_through_its_model() {
    let fixtures: Value = serde_json::from_str(&root_file(
        "facturapi-sdk/src/generated/sandbox_fixtures.json",
    ))
    .unwrap();
    let types = fixtures["types"].as_object().unwrap();
    let mut failures = Vec::new();
    for e in endpoints() {
        let json_body = e.body.ty.as_ref().filter(|_| e.body.kind == "json");
        for ty in e
            .responses
            .iter()
            .filter_map(|r| r.ty.as_ref())
            .chain(json_body)
        {
            let Some(body) = types.get(ty) else {
                failures.push(format!("{}: no fixture for {ty}", e.operation_id));
                continue;
            };
            match facturapi_sdk::__contract::round_trip_body(ty, body.clone()) {
                None => failures.push(format!("{ty}: no round-trip hook")),
                Some(Err(err)) => failures.push(format!("{ty}: rejects its fixture: {err}")),
                Some(Ok(back)) => {
                    let mut diffs = Vec::new();
                    equivalent(body, &back, "", &mut diffs);
                    if !diffs.is_empty() {
                        failures.push(format!("{ty}: {}", diffs.join("; ")));
                    }
                }
            }
        }
        let op = &fixtures["operations"][&e.operation_id];
        assert_eq!(
            op["status"].as_u64(),
            e.responses.first().map(|r| u64::from(r.status)),
            "{}",
            e.operation_id
        );
    }
    failures.sort();
    failures.dedup();
    assert!(
        failures.is_empty(),
        "{} fixtures do not round-trip:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The schema `value` is an instance of, with `$ref` followed and `allOf` merged: its
/// properties and which of them are required. `None` for a union or a non-object.
fn object_schema(
    spec: &Value,
    schema: &Value,
    depth: usize,
) -> Option<(serde_json::Map<String, Value>, BTreeSet<String>)> {
    if depth > 20 {
        return None;
    }
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        return object_schema(spec, spec.pointer(&r[1..])?, depth + 1);
    }
    if schema.get("oneOf").is_some() || schema.get("anyOf").is_some() {
        return None;
    }
    let mut props = serde_json::Map::new();
    let mut required = BTreeSet::new();
    for part in schema
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (p, r) = object_schema(spec, part, depth + 1)?;
        props.extend(p);
        required.extend(r);
    }
    if let Some(p) = schema.get("properties").and_then(Value::as_object) {
        props.extend(p.clone());
    }
    required.extend(
        schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned),
    );
    (!props.is_empty()).then_some((props, required))
}

fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => spec.pointer(&r[1..]).map_or(schema, |s| resolve(spec, s)),
        None => schema,
    }
}

/// One change the API may make tomorrow, at `path` of a body.
#[derive(Debug)]
enum Mutation {
    /// A string enum gets a value the spec does not list; it must be written back as read.
    NewEnumValue(Vec<String>),
    /// An optional field comes as `null`.
    Null(Vec<String>),
    /// An object gains a field.
    NewField(Vec<String>),
}

/// Every mutation of `value` (an instance of `schema`) this test knows how to make.
fn mutations(
    spec: &Value,
    schema: &Value,
    value: &Value,
    path: &mut Vec<String>,
    out: &mut Vec<Mutation>,
) {
    let schema = resolve(spec, schema);
    match value {
        Value::Object(map) => {
            out.push(Mutation::NewField(path.clone()));
            let Some((props, required)) = object_schema(spec, schema, 0) else {
                return;
            };
            for (key, child) in map {
                let Some(prop) = props.get(key) else { continue };
                path.push(key.clone());
                if !required.contains(key) && !child.is_null() {
                    out.push(Mutation::Null(path.clone()));
                }
                mutations(spec, prop, child, path, out);
                path.pop();
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    path.push(i.to_string());
                    mutations(spec, item_schema, item, path, out);
                    path.pop();
                }
            }
        }
        Value::String(_) if schema.get("enum").is_some() => {
            out.push(Mutation::NewEnumValue(path.clone()));
        }
        _ => {}
    }
}

fn at_mut<'a>(value: &'a mut Value, path: &[String]) -> &'a mut Value {
    path.iter().fold(value, |v, key| match v {
        Value::Array(items) => &mut items[key.parse::<usize>().unwrap()],
        other => &mut other[key.as_str()],
    })
}

fn at<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| match v {
        Value::Array(items) => items.get(key.parse::<usize>().ok()?),
        other => other.get(key.as_str()),
    })
}

/// Forward compatibility, over every JSON response model: the sandbox fixture of each, with
/// (one at a time) a value no enum lists, a `null` in each optional field and a new field in
/// each object, must decode, and the new enum value must be written back as it came.
#[test]
fn every_response_model_reads_what_the_api_may_send_tomorrow() {
    let spec = spec();
    let fixtures: Value = serde_json::from_str(&root_file(
        "facturapi-sdk/src/generated/sandbox_fixtures.json",
    ))
    .unwrap();
    let models: BTreeSet<String> = endpoints()
        .iter()
        .flat_map(|e| e.responses.iter().filter_map(|r| r.ty.clone()))
        .collect();
    let mut failures = Vec::new();
    let (mut enum_values, mut nulls, mut new_fields) = (0, 0, 0);
    for model in &models {
        let body = &fixtures["types"][model];
        let schema = &spec["components"]["schemas"][model];
        let mut found = Vec::new();
        mutations(&spec, schema, body, &mut Vec::new(), &mut found);
        for mutation in found {
            let mut mutant = body.clone();
            let (path, value) = match &mutation {
                Mutation::NewEnumValue(path) => {
                    enum_values += 1;
                    (path, Value::from("zz_value_from_the_future"))
                }
                Mutation::Null(path) => {
                    nulls += 1;
                    (path, Value::Null)
                }
                Mutation::NewField(path) => {
                    new_fields += 1;
                    let object = at_mut(&mut mutant, path);
                    object["zz_field_from_the_future"] = serde_json::json!({"nested": [1, "two"]});
                    (path, object.clone())
                }
            };
            *at_mut(&mut mutant, path) = value;
            match facturapi_sdk::__contract::round_trip_body(model, mutant) {
                Some(Ok(back)) => {
                    if let Mutation::NewEnumValue(path) = &mutation
                        && at(&back, path) != Some(&Value::from("zz_value_from_the_future"))
                    {
                        failures.push(format!(
                            "{model} {mutation:?}: written back as {:?}",
                            at(&back, path)
                        ));
                    }
                }
                Some(Err(e)) => failures.push(format!("{model} {mutation:?}: {e}")),
                None => failures.push(format!("{model}: no round-trip hook")),
            }
        }
    }
    println!(
        "{} response models: {enum_values} new enum values, {nulls} nulls, {new_fields} new fields",
        models.len()
    );
    assert!(
        models.len() > 50 && enum_values > 50 && nulls > 200,
        "{enum_values} {nulls}"
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
