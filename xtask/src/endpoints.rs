//! From the normalized spec and `spec/overrides.toml` to the class-tagged endpoint
//! definitions of `spec/endpoints.toml`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::names::snake;

/// The five operation classes of Facturapi's rate-limit contract.
///
/// The SDK has its own `facturapi_sdk::Class`; xtask does not depend on the SDK because it
/// generates the SDK's sources, and must build even when those are broken or stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// GET of one resource or one of its files.
    DetailRead,
    /// GET of a collection, a search or a catalog lookup.
    ListRead,
    /// POST that creates a resource.
    Create,
    /// PUT, DELETE or an action that changes a resource.
    Write,
    /// Stamping, SAT cancellation, global/to-invoice, uploads, ZIP requests, e-mail, previews.
    HeavyWrite,
}

impl Class {
    /// Every class, in table order.
    pub const ALL: [Class; 5] = [
        Class::DetailRead,
        Class::ListRead,
        Class::Create,
        Class::Write,
        Class::HeavyWrite,
    ];
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Class::DetailRead => "detail_read",
            Class::ListRead => "list_read",
            Class::Create => "create",
            Class::Write => "write",
            Class::HeavyWrite => "heavy_write",
        })
    }
}

/// `spec/overrides.toml`: the hand-kept exceptions, each with its reason.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    /// Spec tag → resource handle.
    pub resources: BTreeMap<String, ResourceRule>,
    /// Class exceptions.
    #[serde(default)]
    pub class: Vec<ClassOverride>,
    /// Method-name exceptions.
    #[serde(default)]
    pub name: Vec<NameOverride>,
    /// Resend-rule exceptions.
    #[serde(default)]
    pub resend: Vec<ResendOverride>,
}

/// When the SDK may send an operation again after an attempt that may have reached the
/// server (a timeout, a dropped connection, a 5xx). A 429 and a connection that never opened
/// are always resent: nothing was processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resend {
    /// Repeating it changes nothing more than the first time.
    Idempotent,
    /// A creation whose JSON body carries an `idempotency_key` (the SDK fills one in).
    Keyed,
    /// Repeating it may act twice: never resent once it may have been sent.
    NotAfterSend,
}

impl fmt::Display for Resend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Resend::Idempotent => "idempotent",
            Resend::Keyed => "keyed",
            Resend::NotAfterSend => "not_after_send",
        })
    }
}

/// One resend-rule exception.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResendOverride {
    /// The operation.
    pub operation_id: String,
    /// Its rule.
    pub rule: Resend,
    /// Why the default rule is wrong for it.
    pub reason: String,
}

/// How a spec tag maps to a resource handle.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceRule {
    /// The handle's name, e.g. `invoices`.
    pub resource: String,
    /// Words dropped from operation ids to form method names (`createInvoice` → `create`).
    #[serde(default)]
    pub strip: Vec<String>,
}

/// One class exception.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassOverride {
    /// The operation.
    pub operation_id: String,
    /// Its class.
    pub class: Class,
    /// Why the default rule is wrong for it.
    pub reason: String,
}

/// One method-name exception.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameOverride {
    /// The operation.
    pub operation_id: String,
    /// Its method name.
    pub name: String,
    /// Why the default name is wrong for it.
    pub reason: String,
}

/// `spec/endpoints.toml`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointsFile {
    /// One per operation, in spec order.
    pub endpoint: Vec<Endpoint>,
}

/// One operation, as the SDK sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// The spec's operationId (or the derived one).
    pub operation_id: String,
    /// True when the upstream spec had no operationId and it was derived from method + path.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub operation_id_derived: bool,
    /// HTTP method, upper case.
    pub method: String,
    /// Path template relative to the server, e.g. `/invoices/{invoice_id}`.
    pub path: String,
    /// Operation class.
    pub class: Class,
    /// True when `class` comes from an override rather than the default rule.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub class_overridden: bool,
    /// Resource handle the method hangs on.
    pub resource: String,
    /// Method name, unique per resource.
    pub name: String,
    /// Key kinds the spec accepts (`test`, `live`, `user`); empty when it declares none.
    pub keys: Vec<String>,
    /// When the operation may be resent after it may have reached the server.
    pub resend: Resend,
    /// True when `resend` comes from an override rather than the default rule.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resend_overridden: bool,
    /// Path parameters, in template order.
    #[serde(default)]
    pub path_params: Vec<Param>,
    /// Query parameters, in spec order.
    #[serde(default)]
    pub query_params: Vec<Param>,
    /// Request body.
    pub body: Body,
    /// Success responses, by status.
    pub responses: Vec<Response>,
}

/// A path or query parameter.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Param {
    /// Wire name.
    pub name: String,
    /// Rust type: `String`, `i64`, `f64`, `bool`, a model name, or `Vec<…>` of one.
    #[serde(rename = "type")]
    pub ty: String,
    /// `simple`, `form` or `deepObject`.
    pub style: String,
    /// Whether arrays/objects explode.
    pub explode: bool,
    /// Whether the parameter must be sent.
    pub required: bool,
}

/// A request body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Body {
    /// `none`, `json` or `multipart`.
    pub kind: String,
    /// Model type of the body.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub ty: Option<String>,
    /// Whether the body is required.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
}

/// A success response.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// `json`, `binary` or `empty`.
    pub kind: String,
    /// Model type for `json`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub ty: Option<String>,
    /// Content type for `binary`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

fn ref_name(schema: &Value) -> Option<&str> {
    schema
        .get("$ref")?
        .as_str()?
        .strip_prefix("#/components/schemas/")
}

fn resolve<'a>(spec: &'a Value, node: &'a Value) -> &'a Value {
    match node
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix('#'))
    {
        Some(pointer) => spec.pointer(pointer).unwrap_or(node),
        None => node,
    }
}

fn rust_type(schema: &Value) -> Result<String, String> {
    if let Some(name) = ref_name(schema) {
        return Ok(name.to_owned());
    }
    Ok(match schema.get("type").and_then(Value::as_str) {
        Some("string") | None => "String".to_owned(),
        Some("integer") => "i64".to_owned(),
        Some("number") => "f64".to_owned(),
        Some("boolean") => "bool".to_owned(),
        Some("array") => format!(
            "Vec<{}>",
            rust_type(schema.get("items").unwrap_or(&Value::Null))?
        ),
        Some(other) => return Err(format!("unsupported parameter schema type {other}")),
    })
}

/// Default resend rule: a creation whose body declares `idempotency_key` is keyed; GET, PUT
/// and DELETE are idempotent; anything else is not resent once it may have been sent.
/// Overrides hold the exceptions (a PUT that mints a new secret, a POST that finds an
/// existing resource).
fn default_resend(spec: &Value, method: &str, class: Class, body: &Body) -> Resend {
    let keyed = class == Class::Create
        && method == "POST"
        && body.kind == "json"
        && body
            .ty
            .as_ref()
            .and_then(|t| spec.pointer(&format!("/components/schemas/{t}")))
            .is_some_and(|s| declares(spec, s, "idempotency_key", 0));
    match method {
        _ if keyed => Resend::Keyed,
        "GET" | "PUT" | "DELETE" => Resend::Idempotent,
        _ => Resend::NotAfterSend,
    }
}

/// Whether `schema` (through `$ref`, `allOf`, `oneOf`, `anyOf`) declares property `prop`.
pub fn declares(spec: &Value, schema: &Value, prop: &str, depth: usize) -> bool {
    if depth > 12 {
        return false;
    }
    if let Some(target) = schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| spec.pointer(&r[1..]))
    {
        return declares(spec, target, prop, depth + 1);
    }
    if schema.get("properties").and_then(|p| p.get(prop)).is_some() {
        return true;
    }
    ["allOf", "oneOf", "anyOf"].iter().any(|k| {
        schema
            .get(*k)
            .and_then(Value::as_array)
            .is_some_and(|parts| parts.iter().any(|p| declares(spec, p, prop, depth + 1)))
    })
}

/// Default class from method and path; overrides hold the exceptions.
pub fn default_class(method: &str, path: &str, binary_response: bool) -> Class {
    let last = path.rsplit('/').next().unwrap_or_default();
    match method {
        "GET" if last.starts_with('{') || binary_response => Class::DetailRead,
        "GET" => Class::ListRead,
        "POST" => Class::Create,
        _ => Class::Write,
    }
}

/// Default method name: the operation id minus the resource's words, `get` → `retrieve`,
/// `edit` → `update`; derived ids of catalog lookups become `search_<last segment>`.
pub fn default_name(operation_id: &str, derived: bool, path: &str, strip: &[String]) -> String {
    if derived {
        let last = path
            .rsplit('/')
            .find(|s| !s.starts_with('{'))
            .unwrap_or_default();
        return format!("search_{}", snake(last));
    }
    let words: Vec<String> = snake(operation_id).split('_').map(str::to_owned).collect();
    let mut kept: Vec<String> = words
        .iter()
        .enumerate()
        .filter(|(i, w)| *i == 0 || !strip.contains(w))
        .map(|(_, w)| w.clone())
        .collect();
    match kept[0].as_str() {
        "get" => kept[0] = "retrieve".to_owned(),
        "edit" => kept[0] = "update".to_owned(),
        _ => {}
    }
    kept.join("_")
}

/// Builds every endpoint of `spec` (the normalized document).
pub fn build(spec: &Value, overrides: &Overrides) -> Result<Vec<Endpoint>, String> {
    let mut endpoints = Vec::new();
    let paths = spec
        .get("paths")
        .and_then(Value::as_object)
        .ok_or("spec has no paths")?;
    for (path, item) in paths {
        for (method, op) in item.as_object().into_iter().flatten() {
            let method = method.to_ascii_uppercase();
            if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
                continue;
            }
            endpoints.push(endpoint(spec, overrides, &method, path, op)?);
        }
    }
    apply_overrides(spec, &mut endpoints, overrides)?;
    let mut seen = BTreeSet::new();
    for e in &endpoints {
        if !seen.insert((e.resource.clone(), e.name.clone())) {
            return Err(format!(
                "two operations are named {}.{}: add a [[name]] override",
                e.resource, e.name
            ));
        }
    }
    Ok(endpoints)
}

fn endpoint(
    spec: &Value,
    overrides: &Overrides,
    method: &str,
    path: &str,
    op: &Value,
) -> Result<Endpoint, String> {
    let operation_id = op
        .get("operationId")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{method} {path}: no operationId"))?;
    let here = |msg: String| format!("{operation_id}: {msg}");
    let tag = op
        .get("tags")
        .and_then(|t| t.get(0))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let rule = overrides
        .resources
        .get(tag)
        .ok_or_else(|| here(format!("tag {tag:?} has no [resources] entry")))?;
    let derived = op
        .get("x-operation-id-derived")
        .and_then(Value::as_bool)
        .unwrap_or(false);

    let mut path_params = Vec::new();
    let mut query_params = Vec::new();
    for param in op
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let param = resolve(spec, param);
        let location = param.get("in").and_then(Value::as_str).unwrap_or_default();
        let name = param
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| here("parameter without name".into()))?;
        let style = param
            .get("style")
            .and_then(Value::as_str)
            .unwrap_or(if location == "path" { "simple" } else { "form" })
            .to_owned();
        let explode = param
            .get("explode")
            .and_then(Value::as_bool)
            .unwrap_or(style == "form");
        let schema = param.get("schema").unwrap_or(&Value::Null);
        let p = Param {
            name: name.to_owned(),
            ty: rust_type(schema).map_err(here)?,
            style,
            explode,
            required: param
                .get("required")
                .and_then(Value::as_bool)
                .unwrap_or(location == "path"),
        };
        match location {
            "path" => path_params.push(p),
            "query" => query_params.push(p),
            other => return Err(here(format!("unsupported parameter location {other}"))),
        }
    }
    // Path parameters in template order; every placeholder must be declared.
    let placeholders: Vec<&str> = path
        .split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .collect();
    let mut ordered = Vec::new();
    for ph in &placeholders {
        let idx = path_params
            .iter()
            .position(|p: &Param| p.name == *ph)
            .ok_or_else(|| here(format!("path placeholder {{{ph}}} is not declared")))?;
        ordered.push(path_params.remove(idx));
    }
    if let Some(extra) = path_params.first() {
        return Err(here(format!(
            "path parameter {} is not in the template",
            extra.name
        )));
    }

    let body = match op.get("requestBody") {
        None => Body {
            kind: "none".into(),
            ty: None,
            required: false,
        },
        Some(b) => {
            let b = resolve(spec, b);
            let (media, content) = b
                .get("content")
                .and_then(Value::as_object)
                .and_then(|c| c.iter().next())
                .ok_or_else(|| here("request body without content".into()))?;
            let kind = match media.as_str() {
                "application/json" => "json",
                "multipart/form-data" => "multipart",
                other => return Err(here(format!("unsupported request media type {other}"))),
            };
            let ty = content
                .get("schema")
                .and_then(ref_name)
                .ok_or_else(|| here("request body schema is not a named component".into()))?;
            Body {
                kind: kind.into(),
                ty: Some(ty.to_owned()),
                required: b.get("required").and_then(Value::as_bool).unwrap_or(false),
            }
        }
    };

    let mut responses = Vec::new();
    for (status, response) in op
        .get("responses")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if !status.starts_with('2') {
            continue;
        }
        let status: u16 = status
            .parse()
            .map_err(|_| here(format!("bad status {status}")))?;
        let response = resolve(spec, response);
        let content = response
            .get("content")
            .and_then(Value::as_object)
            .and_then(|c| c.iter().next());
        responses.push(match content {
            None => Response {
                status,
                kind: "empty".into(),
                ty: None,
                content_type: None,
            },
            Some((media, c)) if media == "application/json" => Response {
                status,
                kind: "json".into(),
                ty: Some(
                    c.get("schema")
                        .and_then(ref_name)
                        .ok_or_else(|| here("response schema is not a named component".into()))?
                        .to_owned(),
                ),
                content_type: None,
            },
            Some((media, _)) => Response {
                status,
                kind: "binary".into(),
                ty: None,
                content_type: Some(media.clone()),
            },
        });
    }
    responses.sort_by_key(|r| r.status);
    let binary = responses.iter().any(|r| r.kind == "binary");

    let mut keys: Vec<String> = op
        .get("security")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .flat_map(|req| req.keys())
        .map(|scheme| match scheme.as_str() {
            "SecretTestKey" => Ok("test".to_owned()),
            "SecretLiveKey" => Ok("live".to_owned()),
            "SecretUserKey" => Ok("user".to_owned()),
            other => Err(here(format!("unknown security scheme {other}"))),
        })
        .collect::<Result<_, _>>()?;
    keys.sort_by_key(|k| ["test", "live", "user"].iter().position(|x| x == k));
    keys.dedup();
    let class = default_class(method, path, binary);
    let resend = default_resend(spec, method, class, &body);

    Ok(Endpoint {
        operation_id: operation_id.to_owned(),
        operation_id_derived: derived,
        method: method.to_owned(),
        path: path.to_owned(),
        class,
        class_overridden: false,
        resource: rule.resource.clone(),
        name: default_name(operation_id, derived, path, &rule.strip),
        keys,
        resend,
        resend_overridden: false,
        path_params: ordered,
        query_params,
        body,
        responses,
    })
}

fn apply_overrides(
    spec: &Value,
    endpoints: &mut [Endpoint],
    overrides: &Overrides,
) -> Result<(), String> {
    for o in &overrides.class {
        let e = endpoints
            .iter_mut()
            .find(|e| e.operation_id == o.operation_id)
            .ok_or_else(|| format!("class override for unknown operation {}", o.operation_id))?;
        if e.class == o.class {
            return Err(format!(
                "class override for {} repeats the default ({}): remove it",
                o.operation_id, o.class
            ));
        }
        if o.reason.trim().is_empty() {
            return Err(format!(
                "class override for {} has no reason",
                o.operation_id
            ));
        }
        e.class = o.class;
        e.class_overridden = true;
    }
    for o in &overrides.name {
        let e = endpoints
            .iter_mut()
            .find(|e| e.operation_id == o.operation_id)
            .ok_or_else(|| format!("name override for unknown operation {}", o.operation_id))?;
        if e.name == o.name {
            return Err(format!(
                "name override for {} repeats the default ({}): remove it",
                o.operation_id, o.name
            ));
        }
        if o.reason.trim().is_empty() || snake(&o.name) != o.name {
            return Err(format!(
                "name override for {} needs a snake_case name and a reason",
                o.operation_id
            ));
        }
        e.name = o.name.clone();
    }
    // The default resend rule reads the final class (a preview POST is not a creation).
    for e in endpoints.iter_mut() {
        e.resend = default_resend(spec, &e.method, e.class, &e.body);
    }
    for o in &overrides.resend {
        let e = endpoints
            .iter_mut()
            .find(|e| e.operation_id == o.operation_id)
            .ok_or_else(|| format!("resend override for unknown operation {}", o.operation_id))?;
        if e.resend == o.rule {
            return Err(format!(
                "resend override for {} repeats the default ({}): remove it",
                o.operation_id, o.rule
            ));
        }
        if o.reason.trim().is_empty() {
            return Err(format!(
                "resend override for {} has no reason",
                o.operation_id
            ));
        }
        if (o.rule == Resend::Keyed) != (e.resend == Resend::Keyed) {
            return Err(format!(
                "resend override for {}: `keyed` comes from the body's idempotency_key, not an override",
                o.operation_id
            ));
        }
        e.resend = o.rule;
        e.resend_overridden = true;
    }
    Ok(())
}

/// The `cargo xtask classes` table.
pub fn class_table(endpoints: &[Endpoint]) -> String {
    let mut out = String::from("class         operations\n");
    for class in Class::ALL {
        let n = endpoints.iter().filter(|e| e.class == class).count();
        out.push_str(&format!("{:<13} {n:>4}\n", class.to_string()));
    }
    out.push_str(&format!("{:<13} {:>4}\n\n", "total", endpoints.len()));
    out.push_str(&format!(
        "{:<12} {:<7} {:<62} {:<42} {}\n",
        "class", "method", "path", "operation_id", "method name"
    ));
    let mut sorted: Vec<&Endpoint> = endpoints.iter().collect();
    sorted.sort_by(|a, b| (a.class, &a.path, &a.method).cmp(&(b.class, &b.path, &b.method)));
    for e in sorted {
        let marker = if e.class_overridden { "*" } else { " " };
        out.push_str(&format!(
            "{:<11}{marker} {:<7} {:<62} {:<42} {}.{}\n",
            e.class.to_string(),
            e.method,
            e.path,
            e.operation_id,
            e.resource,
            e.name
        ));
    }
    out.push_str("\n* class set by spec/overrides.toml (see its reason there)\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_classes() {
        assert_eq!(
            default_class("GET", "/invoices/{invoice_id}", false),
            Class::DetailRead
        );
        assert_eq!(default_class("GET", "/invoices", false), Class::ListRead);
        assert_eq!(
            default_class("GET", "/invoices/zip-requests/{id}/zip", true),
            Class::DetailRead
        );
        assert_eq!(default_class("POST", "/invoices", false), Class::Create);
        assert_eq!(
            default_class("PUT", "/invoices/{invoice_id}", false),
            Class::Write
        );
        assert_eq!(
            default_class("DELETE", "/products/{product_id}", false),
            Class::Write
        );
    }

    #[test]
    fn default_names() {
        let strip = ["invoice".to_owned(), "invoices".to_owned()];
        assert_eq!(
            default_name("createInvoice", false, "/invoices", &strip),
            "create"
        );
        assert_eq!(
            default_name("getInvoice", false, "/invoices/{id}", &strip),
            "retrieve"
        );
        assert_eq!(
            default_name("stampDraftInvoice", false, "/x", &strip),
            "stamp_draft"
        );
        assert_eq!(
            default_name("listInvoiceZipRequests", false, "/x", &strip),
            "list_zip_requests"
        );
        assert_eq!(
            default_name(
                "getCatalogsCartaporte31AirTransportCodes",
                true,
                "/catalogs/cartaporte/3.1/air-transport-codes",
                &[]
            ),
            "search_air_transport_codes"
        );
    }
}
