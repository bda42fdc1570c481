//! Checks: every rule of the attribute, each error spanned on the user's token, all of them
//! reported together.

use std::collections::BTreeSet;

use quote::ToTokens as _;
use syn::{FnArg, GenericArgument, Ident, Pat, PathArguments, ReturnType, Type};

use crate::ast::{BodyKind, ClientSource, Decode, Endpoint, QueryArg, QueryStyle, Segment};
use crate::parse::{Arg, Attr, Item};

const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];
const CLASSES: &[(&str, &str)] = &[
    ("detail_read", "DetailRead"),
    ("list_read", "ListRead"),
    ("create", "Create"),
    ("write", "Write"),
    ("heavy_write", "HeavyWrite"),
];
const KEYS: &[(&str, &str)] = &[("test", "Test"), ("live", "Live"), ("user", "User")];
/// `retry = …`: when a request that may have reached the server is sent again. A keyed
/// creation (`Keyed`) is declared with `idempotency_key`, which also fills the key in.
const RETRY: &[(&str, &str)] = &[
    ("idempotent", "Idempotent"),
    ("not_after_send", "NotAfterSend"),
];

/// Collects errors so that one build reports them all.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn at(&mut self, span: impl syn::spanned::Spanned, message: impl std::fmt::Display) {
        self.push(syn::Error::new(span.span(), message));
    }

    pub(crate) fn finish(self) -> Option<syn::Error> {
        self.0
    }
}

/// The last path segment of a type and its generic arguments.
fn last_segment(ty: &Type) -> Option<(&Ident, Vec<&Type>)> {
    let Type::Path(path) = ty else { return None };
    let segment = path.path.segments.last()?;
    let args = match &segment.arguments {
        PathArguments::AngleBracketed(a) => a
            .args
            .iter()
            .filter_map(|g| match g {
                GenericArgument::Type(t) => Some(t),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    Some((&segment.ident, args))
}

fn decode_of(ty: &Type) -> Decode {
    if let Type::Tuple(t) = ty
        && t.elems.is_empty()
    {
        return Decode::Empty;
    }
    match last_segment(ty) {
        Some((name, _)) if name == "Bytes" => Decode::Bytes,
        Some((name, _)) if name == "ByteStream" => Decode::Stream,
        Some((name, args))
            if name == "Option"
                && args.len() == 1
                && last_segment(args[0]).is_some_and(|(n, _)| n == "Bytes") =>
        {
            Decode::OptionalBytes
        }
        Some((name, args)) if name == "MaybePending" && args.len() == 2 => {
            Decode::MaybePending(Box::new(args[0].clone()), Box::new(args[1].clone()))
        }
        _ => Decode::Json(Box::new(ty.clone())),
    }
}

fn path_segments(template: &str) -> Result<Vec<(bool, String)>, String> {
    if !template.starts_with('/') {
        return Err("the path must start with `/`".into());
    }
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').ok_or("unclosed `{` in the path")? + open;
        if open > 0 {
            out.push((false, rest[..open].to_owned()));
        }
        let name = &rest[open + 1..close];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("`{{{name}}}` is not a valid placeholder"));
        }
        out.push((true, name.to_owned()));
        rest = &rest[close + 1..];
    }
    if rest.contains('}') {
        return Err("unmatched `}` in the path".into());
    }
    if !rest.is_empty() {
        out.push((false, rest.to_owned()));
    }
    if template.contains('?') || template.contains('#') {
        return Err(
            "the path template cannot hold a query or fragment: use query parameters".into(),
        );
    }
    Ok(out)
}

fn wire_name(ident: &Ident) -> String {
    let s = ident.to_string();
    s.strip_prefix("r#").map(str::to_owned).unwrap_or(s)
}

/// Reads `#[query]`, `#[query(name = "…")]`, `#[query(explode = false)]`, `#[query(deep_object)]`.
fn query_attr(attr: &syn::Attribute, ident: &Ident, errors: &mut Errors) -> QueryArg {
    let mut arg = QueryArg {
        ident: ident.clone(),
        wire_name: wire_name(ident),
        style: QueryStyle::Form { explode: true },
    };
    if matches!(attr.meta, syn::Meta::Path(_)) {
        return arg;
    }
    let result = attr.parse_nested_meta(|meta| {
        if meta.path.is_ident("name") {
            arg.wire_name = meta.value()?.parse::<syn::LitStr>()?.value();
        } else if meta.path.is_ident("explode") {
            let explode = meta.value()?.parse::<syn::LitBool>()?.value;
            arg.style = QueryStyle::Form { explode };
        } else if meta.path.is_ident("deep_object") {
            arg.style = QueryStyle::DeepObject;
        } else {
            return Err(meta.error("expected `name = \"…\"`, `explode = bool` or `deep_object`"));
        }
        Ok(())
    });
    if let Err(e) = result {
        errors.push(e);
    }
    arg
}

pub(crate) fn check(attr: Attr, mut item: Item) -> Result<Endpoint, Box<(syn::Error, Item)>> {
    let mut errors = Errors::default();

    // The function.
    if item.sig.asyncness.is_none() {
        errors.at(item.sig.fn_token, "#[endpoint] functions must be `async`");
    }
    if let Some(body) = &item.body {
        errors.at(
            body.brace_token.span.join(),
            "#[endpoint] writes the body: end the signature with `;`",
        );
    }

    // Method and path.
    let method_name = attr.method.to_string();
    if !METHODS.contains(&method_name.as_str()) {
        errors.at(
            &attr.method,
            format!(
                "unknown HTTP method `{method_name}`: expected one of {}",
                METHODS.join(", ")
            ),
        );
    }
    let template = attr.path.value();
    let raw_segments = path_segments(&template).unwrap_or_else(|message| {
        errors.at(&attr.path, message);
        Vec::new()
    });

    // Attribute arguments: each at most once.
    let mut seen = BTreeSet::new();
    let (mut class, mut operation_id, mut keys, mut body, mut query_struct, mut idempotency_key) =
        (None, None, Vec::new(), None, None, None);
    let mut multipart = None;
    let mut retry: Option<(Ident, Ident)> = None;
    for arg in &attr.args {
        let key = arg.key().to_string();
        if !seen.insert(key.clone()) {
            errors.at(arg.key(), format!("`{key}` is given twice"));
            continue;
        }
        match arg {
            Arg::Class(_, value) => match CLASSES.iter().find(|(name, _)| value == name) {
                Some((_, variant)) => class = Some(Ident::new(variant, value.span())),
                None => errors.at(value, format!("unknown class `{value}`: expected one of {}", CLASSES.iter().map(|c| c.0).collect::<Vec<_>>().join(", "))),
            },
            Arg::OperationId(_, value) => operation_id = Some(value.value()),
            Arg::Keys(_, list) => {
                let mut kinds = BTreeSet::new();
                for kind in list {
                    match KEYS.iter().find(|(name, _)| kind == name) {
                        Some((name, variant)) if kinds.insert(*name) => keys.push(Ident::new(variant, kind.span())),
                        Some(_) => errors.at(kind, format!("key kind `{kind}` is listed twice")),
                        None => errors.at(kind, format!("unknown key kind `{kind}`: expected test, live or user")),
                    }
                }
            }
            Arg::Body(key, value) => body = Some((key.clone(), value.clone())),
            Arg::Multipart(key, value) => multipart = Some((key.clone(), value.clone())),
            Arg::Query(_, value) => query_struct = Some(value.clone()),
            Arg::IdempotencyKey(key) => idempotency_key = Some(key.clone()),
            Arg::Retry(key, value) => match RETRY.iter().find(|(name, _)| value == name) {
                Some((_, variant)) => retry = Some((key.clone(), Ident::new(variant, value.span()))),
                None => errors.at(value, format!("unknown retry rule `{value}`: expected {} (a keyed creation says `idempotency_key` instead)", RETRY.iter().map(|r| r.0).collect::<Vec<_>>().join(" or "))),
            },
            Arg::Unknown(key) => errors.at(key, format!("unknown argument `{key}`: expected class, operation_id, keys, body, multipart, query, retry or idempotency_key")),
        }
    }
    if class.is_none() && !attr.args.iter().any(|a| matches!(a, Arg::Class(..))) {
        errors.at(
            &attr.path,
            "missing `class = …` (detail_read, list_read, create, write or heavy_write)",
        );
    }
    if let (Some((_, _)), Some((key, _))) = (&body, &multipart) {
        errors.at(key, "a request has either `body` or `multipart`, not both");
    }
    for (key, _) in body.iter().chain(multipart.iter()) {
        if matches!(method_name.as_str(), "GET" | "DELETE") {
            errors.at(key, format!("a {method_name} request cannot carry a body"));
        }
    }
    if let (Some(_), Some((key, _))) = (&idempotency_key, &retry) {
        errors.at(
            key,
            "`idempotency_key` already sets the retry rule (resent with the same key): remove `retry`",
        );
    }
    if let Some(key) = &idempotency_key
        && body.is_none()
    {
        errors.at(
            key,
            "`idempotency_key` needs a JSON `body` to carry the key",
        );
    }

    // Arguments: the client, path parameters, body, query.
    let placeholders: Vec<&String> = raw_segments
        .iter()
        .filter(|(p, _)| *p)
        .map(|(_, n)| n)
        .collect();
    let mut client = None;
    let mut query_args = Vec::new();
    let mut used = BTreeSet::new();
    for (i, input) in item.sig.inputs.iter_mut().enumerate() {
        if let FnArg::Receiver(r) = input {
            let ok = match &r.kind {
                syn::ReceiverKind::Reference(_, _, None) => true,
                syn::ReceiverKind::Value => r.mutability.is_none(),
                _ => false,
            };
            if !ok {
                errors.at(
                    &*r,
                    "use `&self` or `self`: the method only reads its client",
                );
            }
            client = Some(ClientSource::SelfRef);
            continue;
        }
        let FnArg::Typed(typed) = input else { continue };
        let Pat::Ident(pat) = &*typed.pat else {
            errors.at(&typed.pat, "#[endpoint] arguments must be plain names");
            continue;
        };
        let ident = pat.ident.clone();
        let name = wire_name(&ident);
        let mut query_attrs = Vec::new();
        typed.attrs.retain(|a| {
            let is_query = a.path().is_ident("query");
            if is_query {
                query_attrs.push(a.clone());
            }
            !is_query
        });
        if let Some(a) = query_attrs.first() {
            query_args.push(query_attr(a, &ident, &mut errors));
            used.insert(name.clone());
            continue;
        }
        if name == "client" && i == 0 && client.is_none() {
            client = Some(ClientSource::Arg(ident));
            used.insert(name);
            continue;
        }
        let is_body = body.as_ref().is_some_and(|(_, v)| *v == ident)
            || multipart.as_ref().is_some_and(|(_, v)| *v == ident);
        let is_query = query_struct.as_ref().is_some_and(|v| *v == ident);
        if placeholders.iter().any(|p| **p == name) || is_body || is_query {
            used.insert(name);
            continue;
        }
        errors.at(&ident, format!("argument `{name}` is not used: name a path placeholder `{{{name}}}`, or mark it `#[query]`, or pass it as `body = {name}` / `query = {name}`"));
    }
    for placeholder in &placeholders {
        if !used.contains(*placeholder) {
            errors.at(
                &attr.path,
                format!("path placeholder `{{{placeholder}}}` has no argument of that name"),
            );
        }
    }
    for (what, value) in [
        ("body", body.as_ref().map(|b| &b.1)),
        ("multipart", multipart.as_ref().map(|b| &b.1)),
        ("query", query_struct.as_ref()),
    ] {
        if let Some(value) = value
            && !used.contains(&wire_name(value))
        {
            errors.at(
                value,
                format!("`{what} = {value}` names no argument of the function"),
            );
        }
    }
    if client.is_none() {
        errors.at(&item.sig.ident, "no client: take `&self` or `self` (a type implementing `AsClient`) or a first argument named `client`");
    }

    // Return type: Result<T>.
    let mut decode = Decode::Empty;
    let mut created = false;
    match &item.sig.output {
        ReturnType::Type(_, ty) => match last_segment(ty) {
            Some((name, args)) if name == "Result" && !args.is_empty() => {
                let inner = args[0];
                match last_segment(inner) {
                    Some((name, args)) if name == "Created" && args.len() == 1 => {
                        created = true;
                        decode = decode_of(args[0]);
                        if idempotency_key.is_none() {
                            errors.at(inner, "`Created<T>` reports an idempotency key: add `idempotency_key` to the attribute");
                        }
                    }
                    _ => {
                        decode = decode_of(inner);
                        if let Some(key) = &idempotency_key {
                            let shown = inner
                                .to_token_stream()
                                .to_string()
                                .replace(" :: ", "::")
                                .replace(" <", "<")
                                .replace("< ", "<")
                                .replace(" >", ">");
                            errors.at(key, format!("with `idempotency_key` the return type is `Result<Created<{shown}>>`"));
                        }
                    }
                }
            }
            _ => errors.at(
                ty,
                "#[endpoint] functions return `Result<T>` (facturapi_sdk::Result)",
            ),
        },
        ReturnType::Default => errors.at(
            &item.sig,
            "#[endpoint] functions return `Result<T>` (facturapi_sdk::Result)",
        ),
    }

    if let Some(error) = errors.finish() {
        return Err(Box::new((error, item)));
    }
    let segments = raw_segments
        .into_iter()
        .map(|(param, text)| {
            if param {
                Segment::Param(Ident::new(&text, attr.path.span()))
            } else {
                Segment::Literal(text)
            }
        })
        .collect();
    Ok(Endpoint {
        method: attr.method,
        path_template: attr.path,
        segments,
        class: class.unwrap_or_else(|| Ident::new("DetailRead", proc_macro2::Span::call_site())),
        operation_id: operation_id.unwrap_or_else(|| item.sig.ident.to_string()),
        keys,
        client: client.unwrap_or(ClientSource::SelfRef),
        body: body
            .map(|(_, v)| BodyKind::Json(v))
            .or(multipart.map(|(_, v)| BodyKind::Multipart(v))),
        query_struct,
        query_args,
        retry: if idempotency_key.is_some() {
            Ident::new("Keyed", proc_macro2::Span::call_site())
        } else {
            retry.map(|(_, rule)| rule).unwrap_or_else(|| {
                // Without `retry`, the rule follows the method: GET, PUT and DELETE repeat
                // without acting twice; anything else is not resent once it may have been sent.
                let rule = if matches!(method_name.as_str(), "GET" | "PUT" | "DELETE") {
                    "Idempotent"
                } else {
                    "NotAfterSend"
                };
                Ident::new(rule, proc_macro2::Span::call_site())
            })
        },
        created,
        decode,
        item,
    })
}
