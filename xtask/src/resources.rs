//! Renders `facturapi-sdk/src/generated/<resource>.rs`: one `#[endpoint]`-annotated method per
//! operation of `spec/endpoints.toml`, on a resource handle, written in exactly the syntax a
//! user writes for a custom endpoint; plus the query-parameter structs, the page envelopes
//! and a compile-only test that calls every method.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::endpoints::{Endpoint, Resend, declares};
use crate::names::{pascal, snake};

const KEYWORDS: &[&str] = &[
    "async", "type", "use", "ref", "match", "move", "self", "in", "for", "loop", "where", "impl",
    "fn",
];

fn field_ident(name: &str) -> String {
    let ident = snake(name);
    if KEYWORDS.contains(&ident.as_str()) {
        format!("r#{ident}")
    } else {
        ident
    }
}

/// A Rust type of `endpoints.toml` with model names qualified.
fn qualified(ty: &str) -> String {
    if let Some(inner) = ty.strip_prefix("Vec<").and_then(|t| t.strip_suffix('>')) {
        return format!("Vec<{}>", qualified(inner));
    }
    match ty {
        "String" | "i64" | "f64" | "bool" => ty.to_owned(),
        model => format!("models::{model}"),
    }
}

fn param_type(ty: &str) -> String {
    match ty {
        "String" => "&str".to_owned(),
        other => qualified(other),
    }
}

/// The item type of a `{page, total_pages, total_results, data: [Item]}` envelope.
fn envelope_item(spec: &Value, type_name: &str) -> Option<String> {
    let schema = spec.pointer(&format!("/components/schemas/{type_name}"))?;
    if !declares(spec, schema, "total_pages", 0) {
        return None;
    }
    fn data_items(spec: &Value, schema: &Value, depth: usize) -> Option<String> {
        if depth > 12 {
            return None;
        }
        if let Some(target) = schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| spec.pointer(&r[1..]))
        {
            return data_items(spec, target, depth + 1);
        }
        if let Some(items) = schema.pointer("/properties/data/items") {
            return items
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
                .map(str::to_owned);
        }
        schema
            .get("allOf")
            .and_then(Value::as_array)?
            .iter()
            .find_map(|p| data_items(spec, p, depth + 1))
    }
    data_items(spec, schema, 0)
}

struct Method {
    /// The annotated method source.
    source: String,
    /// Its arguments in the contract dispatcher, read from `args` by parameter name.
    args: String,
}

fn query_struct_name(e: &Endpoint) -> String {
    format!("{}Query", pascal(&e.operation_id))
}

fn render_method(
    e: &Endpoint,
    spec: &Value,
    name: &str,
    stream: bool,
    out_structs: &mut String,
    pages: &mut BTreeMap<String, String>,
) -> Method {
    let optional: Vec<_> = e.query_params.iter().filter(|p| !p.required).collect();
    let required: Vec<_> = e.query_params.iter().filter(|p| p.required).collect();
    let query_struct = query_struct_name(e);
    // By value: handles are `Copy`, so a call's future borrows the client, not a temporary handle.
    let mut args = vec!["self".to_owned()];
    let mut call_args = Vec::new();
    let read = |name: &str, ty: &str| {
        if ty == "String" {
            format!("&args.text(\"{name}\")")
        } else {
            format!("args.value(\"{name}\")")
        }
    };
    for p in &e.path_params {
        args.push(format!("{}: {}", field_ident(&p.name), param_type(&p.ty)));
        call_args.push(read(&p.name, &p.ty));
    }
    for p in &required {
        let attr = match (p.style.as_str(), p.explode) {
            ("deepObject", _) => "deep_object".to_owned(),
            (_, false) => "explode = false".to_owned(),
            _ => String::new(),
        };
        let ident = field_ident(&p.name);
        let mut parts = Vec::new();
        if ident.starts_with("r#") || ident != p.name {
            parts.push(format!("name = \"{}\"", p.name));
        }
        if !attr.is_empty() {
            parts.push(attr);
        }
        let attr = if parts.is_empty() {
            "#[query]".to_owned()
        } else {
            format!("#[query({})]", parts.join(", "))
        };
        args.push(format!("{attr} {ident}: {}", param_type(&p.ty)));
        call_args.push(read(&p.name, &p.ty));
    }
    // Creations only (a preview carries the same body type but creates nothing): the rule
    // is decided in `endpoints::default_resend`.
    let idempotent_create = e.resend == Resend::Keyed;
    let mut attr_args = vec![
        format!("class = {}", e.class),
        format!("operation_id = \"{}\"", e.operation_id),
    ];
    if !e.keys.is_empty() {
        attr_args.push(format!("keys = [{}]", e.keys.join(", ")));
    }
    match (e.body.kind.as_str(), &e.body.ty) {
        ("json", Some(ty)) => {
            args.push(format!("body: &models::{ty}"));
            call_args.push("&args.value(\"body\")".to_owned());
            attr_args.push("body = body".to_owned());
        }
        ("multipart", _) => {
            args.push("form: &Multipart".to_owned());
            call_args.push("&args.form()".to_owned());
            attr_args.push("multipart = form".to_owned());
        }
        _ => {}
    }
    if !optional.is_empty() {
        args.push(format!("query: &{query_struct}"));
        call_args.push("&Default::default()".to_owned());
        attr_args.push("query = query".to_owned());
    }
    if idempotent_create {
        attr_args.push("idempotency_key".to_owned());
    } else {
        attr_args.push(format!("retry = {}", e.resend));
    }

    // Response type.
    let json: Vec<&String> = e.responses.iter().filter_map(|r| r.ty.as_ref()).collect();
    let has_binary = e.responses.iter().any(|r| r.kind == "binary");
    let has_empty = e.responses.iter().any(|r| r.kind == "empty");
    let pending = e
        .responses
        .iter()
        .find(|r| r.status == 202)
        .and_then(|r| r.ty.clone());
    let mut output = if has_binary {
        match (stream, has_empty) {
            (true, _) => "ByteStream".to_owned(),
            (false, true) => "Option<Bytes>".to_owned(),
            (false, false) => "Bytes".to_owned(),
        }
    } else if let (Some(pending), Some(done)) = (
        &pending,
        e.responses
            .iter()
            .find(|r| r.status != 202)
            .and_then(|r| r.ty.clone()),
    ) {
        format!("MaybePending<models::{done}, models::{pending}>")
    } else if let Some(first) = json.first() {
        format!("models::{first}")
    } else {
        "()".to_owned()
    };
    if idempotent_create {
        output = format!("Created<{output}>");
    }

    let keys = if e.keys.is_empty() {
        "any".to_owned()
    } else {
        e.keys
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut doc = format!(
        "    /// `{} {}` · class `{}` · operation `{}` · keys: {keys}.\n",
        e.method, e.path, e.class, e.operation_id
    );
    if stream {
        doc.push_str("    ///\n    /// The file as a stream of chunks, for large downloads.\n");
    }
    if idempotent_create {
        doc.push_str("    ///\n    /// Carries an `idempotency_key` (a fresh UUID when `body` has none), kept across retries and\n    /// returned with the result, so a timeout or a 5xx is resent without creating a duplicate.\n");
    }
    if pending.is_some() {
        doc.push_str("    ///\n    /// A 202 answer is [`MaybePending::Pending`]: Facturapi finishes the document later; do not create it again.\n");
    }
    let source = format!(
        "{doc}    #[endpoint({} \"{}\", {})]\n    pub async fn {name}({}) -> Result<{output}>;\n",
        e.method,
        e.path,
        attr_args.join(", "),
        args.join(", ")
    );

    // Query struct (once, with the non-stream method).
    if !optional.is_empty() && !stream {
        let mut fields = String::new();
        let mut writes = String::new();
        let mut setters = String::new();
        for p in &optional {
            let ident = field_ident(&p.name);
            setters.push_str(&format!(
                "    /// Sets `{}`.\n    pub fn {ident}(mut self, value: impl Into<{ty}>) -> Self {{\n        self.{ident} = Some(value.into());\n        self\n    }}\n\n",
                p.name,
                ty = qualified(&p.ty)
            ));
            fields.push_str(&format!(
                "    /// `{}` ({} style{}).\n    pub {ident}: Option<{}>,\n",
                p.name,
                p.style,
                if p.explode { "" } else { ", not exploded" },
                qualified(&p.ty)
            ));
            writes.push_str(&match p.style.as_str() {
                "deepObject" => format!(
                    "        query.deep_object(\"{}\", &self.{ident})?;\n",
                    p.name
                ),
                _ => format!(
                    "        query.form(\"{}\", &self.{ident}, {})?;\n",
                    p.name, p.explode
                ),
            });
        }
        out_structs.push_str(&format!(
            "/// Optional query parameters of `{}` (operation `{}`): start from `default()` and set\n/// what you need (`{query_struct}::default().{first}(…)`); a parameter the API adds later\n/// is a new setter, not a breaking change.\n#[derive(Debug, Clone, Default, PartialEq)]\n#[non_exhaustive]\npub struct {query_struct} {{\n{fields}}}\n\nimpl {query_struct} {{\n{setters}}}\n\nimpl QueryParams for {query_struct} {{\n    fn write_query(&self, query: &mut Query) -> Result<()> {{\n{writes}        Ok(())\n    }}\n}}\n\n",
            e.path,
            e.operation_id,
            first = field_ident(&optional[0].name),
            setters = setters.trim_end_matches('\n').to_owned() + "\n"
        ));
        if optional.iter().any(|p| p.name == "page") {
            out_structs.push_str(&format!(
                "impl PagedQuery for {query_struct} {{\n    fn set_page(&mut self, page: i64) {{\n        self.page = Some(page);\n    }}\n\n    fn page(&self) -> i64 {{\n        self.page.unwrap_or(1)\n    }}\n}}\n\n"
            ));
        }
    }
    if let Some(first) = json.first()
        && let Some(item) = envelope_item(spec, first)
    {
        pages.insert((*first).clone(), item);
    }
    Method {
        source,
        args: call_args.join(", "),
    }
}

/// `generated/<resource>.rs` per resource, `generated/pages.rs`, `generated/calls.rs`.
pub(crate) fn render(endpoints: &[Endpoint], spec: &Value) -> BTreeMap<String, String> {
    let mut by_resource: BTreeMap<&str, Vec<&Endpoint>> = BTreeMap::new();
    for e in endpoints {
        by_resource.entry(e.resource.as_str()).or_default().push(e);
    }
    let mut files = BTreeMap::new();
    let mut pages = BTreeMap::new();
    let mut calls = String::new();
    for (resource, ops) in &by_resource {
        let handle = pascal(resource);
        let mut methods = String::new();
        let mut structs = String::new();
        let mut list_all = String::new();
        for e in ops {
            let m = render_method(e, spec, &e.name, false, &mut structs, &mut pages);
            methods.push_str(&m.source);
            methods.push('\n');
            calls.push_str(&format!(
                "        (\"{op}\", false) => client.{resource}().{name}({args}).await.map(drop),\n",
                op = e.operation_id,
                name = e.name,
                args = m.args
            ));
            if e.responses.iter().any(|r| r.kind == "binary") {
                let name = format!("{}_stream", e.name);
                let m = render_method(e, spec, &name, true, &mut structs, &mut pages);
                methods.push_str(&m.source);
                methods.push('\n');
                calls.push_str(&format!(
                    "        (\"{op}\", true) => drain(client.{resource}().{name}({args}).await).await,\n",
                    op = e.operation_id,
                    args = m.args
                ));
            }
            // list_all for enveloped lists without path parameters.
            let envelope = e
                .responses
                .iter()
                .find_map(|r| r.ty.as_ref())
                .and_then(|t| envelope_item(spec, t));
            let paged = e
                .query_params
                .iter()
                .any(|p| p.name == "page" && !p.required);
            if let (Some(item), true, true) = (
                envelope,
                paged,
                e.path_params.is_empty() && e.query_params.iter().all(|p| !p.required),
            ) {
                let list_all_name = format!("{}_all", e.name);
                list_all.push_str(&format!(
                    "    /// Every item of [`Self::{name}`], page after page, each page through the `{class}` class limits.\n    /// Yields [`Error::PageCap`](crate::Error::PageCap) after page 30 when results remain.\n    pub fn {list_all_name}(&self, query: {q}) -> impl Stream<Item = Result<models::{item}>> + 'a {{\n        let handle = *self;\n        pagination::list_all(\"{op}\", query, move |query| async move {{ handle.{name}(&query).await }})\n    }}\n\n",
                    name = e.name,
                    class = e.class,
                    q = query_struct_name(e),
                    op = e.operation_id,
                ));
            }
        }
        let source = format!(
            "//! `client.{resource}()`: {n} operations.\n\n\
             #![allow(unused_imports, reason = \"each resource uses a different subset\")]\n\n\
             use bytes::Bytes;\n\
             use futures_core::Stream;\n\n\
             use crate::pagination::{{self, PagedQuery}};\n\
             use crate::request::{{Multipart, Query, QueryParams}};\n\
             use crate::send::{{ByteStream, Created, MaybePending}};\n\
             use crate::{{AsClient, Client, Result, endpoint, models}};\n\n\
             /// The `{resource}` operations. Get it with [`Client::{resource}`].\n\
             #[derive(Debug, Clone, Copy)]\n\
             pub struct {handle}<'a> {{\n    client: &'a Client,\n}}\n\n\
             impl Client {{\n    /// The `{resource}` operations.\n    pub fn {resource}(&self) -> {handle}<'_> {{\n        {handle} {{ client: self }}\n    }}\n}}\n\n\
             impl AsClient for {handle}<'_> {{\n    fn as_client(&self) -> &Client {{\n        self.client\n    }}\n}}\n\n\
             impl<'a> {handle}<'a> {{\n{methods}{list_all}}}\n\n{structs}",
            n = ops.len(),
        );
        files.insert(format!("{resource}.rs"), source);
    }

    let mut pages_rs = String::from(
        "//! `Page` for every list envelope `{page, total_pages, total_results, data}`.\n\nuse crate::models;\nuse crate::pagination::Page;\n\n",
    );
    for (envelope, item) in &pages {
        pages_rs.push_str(&format!(
            "impl Page for models::{envelope} {{\n    type Item = models::{item};\n\n    fn page(&self) -> Option<i64> {{\n        self.page.into()\n    }}\n\n    fn total_pages(&self) -> Option<i64> {{\n        self.total_pages.into()\n    }}\n\n    fn total_results(&self) -> Option<i64> {{\n        self.total_results.into()\n    }}\n\n    fn into_items(self) -> Vec<models::{item}> {{\n        Option::<Vec<models::{item}>>::from(self.data).unwrap_or_default()\n    }}\n}}\n\n"
        ));
    }
    files.insert("pages.rs".to_owned(), pages_rs);

    files.insert(
        "calls.rs".to_owned(),
        format!(
            "//! Every generated method by operation id, for the contract tests: each operation is\n\
             //! called through its own SDK method.\n\n\
             use crate::{{ByteStream, Client, Result}};\n\n\
             use super::contract::CallArgs;\n\n\
             /// Reads a download to its end.\n\
             async fn drain(stream: Result<ByteStream>) -> Result<()> {{\n    let mut stream = stream?;\n    while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {{\n        chunk?;\n    }}\n    Ok(())\n}}\n\n\
             /// Calls the method of `operation_id` (its `_stream` twin when `stream`), its arguments\n\
             /// read from `args`; `None` when there is no such method.\n\
             pub async fn call(client: &Client, operation_id: &str, stream: bool, args: &CallArgs) -> Option<Result<()>> {{\n    Some(match (operation_id, stream) {{\n{calls}        _ => return None,\n    }})\n}}\n"
        ),
    );
    let mut catalog = String::from(
        "//! Every operation of the spec with its class, from `spec/endpoints.toml`.\n\nuse crate::client::KeyKind;\nuse crate::limits::{Class, Operation};\nuse crate::request::{OperationInfo, Resend};\n\n/// In spec order.\npub(crate) static OPERATIONS: &[Operation] = &[\n",
    );
    // One catalog row per operation for users (`Operation`) and one for raw calls
    // (`OperationInfo`, what the send path reads).
    let mut infos = String::new();
    for e in endpoints {
        let class = crate::names::pascal(&e.class.to_string());
        let resend = crate::names::pascal(&e.resend.to_string());
        let keys: Vec<String> = e
            .keys
            .iter()
            .map(|k| format!("KeyKind::{}", crate::names::pascal(k)))
            .collect();
        let keys = keys.join(", ");
        catalog.push_str(&format!(
            "    Operation {{ operation_id: \"{}\", method: \"{}\", path: \"{}\", class: Class::{class}, resource: \"{}\", method_name: \"{}\", keys: &[{keys}], resend: Resend::{resend} }},\n",
            e.operation_id, e.method, e.path, e.resource, e.name
        ));
        infos.push_str(&format!(
            "    OperationInfo {{ operation_id: \"{}\", class: Class::{class}, method: reqwest::Method::{}, path_template: \"{}\", keys: &[{keys}], retry: Resend::{resend} }},\n",
            e.operation_id, e.method, e.path
        ));
    }
    catalog.push_str("];\n\n/// What the send path needs of each operation, in spec order: raw calls.\npub(crate) static OPERATION_INFOS: &[OperationInfo] = &[\n");
    catalog.push_str(&infos);
    catalog.push_str("];\n");
    files.insert("operations.rs".to_owned(), catalog);
    let mut mod_list = String::new();
    for resource in by_resource.keys() {
        mod_list.push_str(&format!("pub mod {resource};\n"));
    }
    files.insert("resources_mod".to_owned(), mod_list);
    files
}
