//! Tolerance rules: what the models typify generates become, so that every response the live
//! API sends decodes, today and after the API grows. The spec is narrower than the API and
//! lags it (FACTS: "models narrower than the API"); each rule names the defect it answers.
//!
//! - **T1 open enums**: a string enum gains `Other(String)`, which keeps any value the spec
//!   does not list, byte for byte; its serde, `Display`, `FromStr` and `From<&str>` impls are
//!   ours. Exception: the tag enums of a tagged union's struct variants stay closed: the
//!   union dispatches on the tag, and an unknown tag becomes the union's `Unknown` (T4).
//! - **T2 absent, null and empty collections**: an optional array or map is an `Option`, so
//!   that `null` reads as `None` and an explicit empty one (`taxes: []`, "this product has no
//!   taxes") is sent as `[]` rather than dropped.
//! - **T3 date-times**: every `date-time` is the project's `DateTime`, which reads RFC 3339
//!   with an offset, local date-times without one (a stamp date is the issuer's local time)
//!   and bare dates, and writes back what it read.
//! - **T4 tagged unions**: an untagged union whose variants each carry a distinct tag
//!   (`type`, `status`) is decided by the tag, not by trying variants in order (which reports
//!   "did not match any variant" and can pick the wrong one); an unknown tag is kept whole in
//!   an `Unknown(serde_json::Value)` variant.
//! - **T5 docs**: every model and field gets a short doc written from schema facts.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use syn::{Attribute, Fields, Item, ItemEnum, Type};

/// What the rules changed, for codegen's report and the closing counts.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// Enums made open (T1).
    pub(crate) open_enums: usize,
    /// Tag enums kept closed (T1's exception).
    pub(crate) closed_tag_enums: Vec<String>,
    /// Collections that read `null` and keep `[]` (T2).
    pub(crate) optional_collections: usize,
    /// Unions decided by their tag (T4).
    pub(crate) tagged_unions: Vec<String>,
    /// Fields documented (T5).
    pub(crate) documented_fields: usize,
}

fn parse_item(source: &str) -> Item {
    syn::parse_str(source)
        .unwrap_or_else(|e| panic!("tolerance rule emits bad code ({e}): {source}"))
}

fn parse_attrs(source: &str) -> Vec<Attribute> {
    match parse_item(&format!("{source} struct __X;")) {
        Item::Struct(s) => s.attrs,
        _ => unreachable!(),
    }
}

fn tokens(t: &impl quote::ToTokens) -> String {
    t.to_token_stream().to_string()
}

/// `#[serde(rename = "x")]` of an item, if any.
fn serde_rename(attrs: &[Attribute]) -> Option<String> {
    let mut rename = None;
    for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
        let _ = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("rename") {
                let value: syn::LitStr = meta.value()?.parse()?;
                rename = Some(value.value());
            } else if meta.input.peek(syn::Token![=]) {
                let _: syn::Expr = meta.value()?.parse()?;
            }
            Ok(())
        });
    }
    rename
}

fn is_untagged(attrs: &[Attribute]) -> bool {
    attrs
        .iter()
        .any(|a| a.path().is_ident("serde") && tokens(&a.meta).contains("untagged"))
}

/// The last path segment's name of a type, looking through `Option<…>`.
fn type_name(ty: &Type) -> Option<String> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident == "Option"
        && let syn::PathArguments::AngleBracketed(args) = &last.arguments
        && let Some(syn::GenericArgument::Type(inner)) = args.args.first()
    {
        return type_name(inner);
    }
    Some(last.ident.to_string())
}

/// Unit-only enums: name → (variant, wire value).
fn string_enums(items: &[Item]) -> BTreeMap<String, Vec<(String, String)>> {
    items
        .iter()
        .filter_map(|item| match item {
            Item::Enum(e)
                if !e.variants.is_empty()
                    && e.variants.iter().all(|v| matches!(v.fields, Fields::Unit)) =>
            {
                let variants = e
                    .variants
                    .iter()
                    .map(|v| {
                        let wire = serde_rename(&v.attrs).unwrap_or_else(|| v.ident.to_string());
                        (v.ident.to_string(), wire)
                    })
                    .collect();
                Some((e.ident.to_string(), variants))
            }
            _ => None,
        })
        .collect()
}

/// The tag of one union variant: the wire name of its tag field and the values the tag enum
/// allows; `None` when it has no tag field. A newtype variant over a struct reads the
/// struct's tag field; over another tagged union, every tag of that union.
fn variant_tag(
    variant: &syn::Variant,
    field: &str,
    structs: &BTreeMap<String, &syn::ItemStruct>,
    unions: &BTreeMap<String, &ItemEnum>,
    enums: &BTreeMap<String, Vec<(String, String)>>,
) -> Option<(String, Vec<String>)> {
    let fields: Vec<&syn::Field> = match &variant.fields {
        Fields::Named(named) => named.named.iter().collect(),
        Fields::Unnamed(unnamed) if unnamed.unnamed.len() == 1 => {
            let inner = type_name(&unnamed.unnamed[0].ty)?;
            if let Some(union) = unions.get(&inner) {
                // The tags every variant of the inner union accepts: a draft's edit schema
                // may list every kind, its complete sibling only its own.
                let mut wire = None;
                let mut values: Option<BTreeSet<String>> = None;
                for v in &union.variants {
                    let (w, vs) = variant_tag(v, field, structs, unions, enums)?;
                    if wire.get_or_insert_with(|| w.clone()) != &w {
                        return None;
                    }
                    let vs: BTreeSet<String> = vs.into_iter().collect();
                    values = Some(match values {
                        None => vs,
                        Some(all) => all.intersection(&vs).cloned().collect(),
                    });
                }
                return Some((wire?, values?.into_iter().collect()));
            }
            structs.get(&inner)?.fields.iter().collect()
        }
        _ => return None,
    };
    fields.into_iter().find_map(|f| {
        let wire = serde_rename(&f.attrs).or_else(|| f.ident.as_ref().map(ToString::to_string))?;
        if wire != field {
            return None;
        }
        let values = enums.get(&type_name(&f.ty)?)?;
        Some((wire, values.iter().map(|(_, w)| w.clone()).collect()))
    })
}

/// A union decided by its tag.
struct Tagged {
    field: String,
    /// Variant → its tag values (empty: the variant chosen when the tag is absent).
    variants: Vec<(syn::Variant, Vec<String>)>,
}

fn tagged_unions(
    items: &[Item],
    enums: &BTreeMap<String, Vec<(String, String)>>,
) -> BTreeMap<String, Tagged> {
    let structs: BTreeMap<String, &syn::ItemStruct> = items
        .iter()
        .filter_map(|i| match i {
            Item::Struct(s) => Some((s.ident.to_string(), s)),
            _ => None,
        })
        .collect();
    let unions: BTreeMap<String, &ItemEnum> = items
        .iter()
        .filter_map(|i| match i {
            Item::Enum(e) if is_untagged(&e.attrs) => Some((e.ident.to_string(), e)),
            _ => None,
        })
        .collect();
    let mut out = BTreeMap::new();
    for item in items {
        let Item::Enum(e) = item else { continue };
        if !is_untagged(&e.attrs) || e.variants.len() < 2 {
            continue;
        }
        // The tag: `type` if it tells the variants apart, else `status`.
        for tag in ["type", "status"] {
            let mut variants = Vec::new();
            let mut seen = BTreeSet::new();
            let mut untagged_variants = 0;
            let mut ok = true;
            for v in &e.variants {
                match variant_tag(v, tag, &structs, &unions, enums) {
                    Some((_, values)) => {
                        if values.is_empty() || values.iter().any(|w| !seen.insert(w.clone())) {
                            ok = false;
                        }
                        variants.push((v.clone(), values));
                    }
                    None => {
                        untagged_variants += 1;
                        variants.push((v.clone(), Vec::new()));
                    }
                }
            }
            if ok && untagged_variants <= 1 && untagged_variants < e.variants.len() {
                out.insert(
                    e.ident.to_string(),
                    Tagged {
                        field: tag.to_owned(),
                        variants,
                    },
                );
                break;
            }
        }
    }
    out
}
/// The enums that tag a struct variant of a tagged union: kept closed.
fn closed_tag_enums(tagged: &BTreeMap<String, Tagged>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for union in tagged.values() {
        for (v, values) in &union.variants {
            if let Fields::Named(named) = &v.fields
                && !values.is_empty()
            {
                for f in &named.named {
                    let wire = serde_rename(&f.attrs)
                        .or_else(|| f.ident.as_ref().map(ToString::to_string));
                    if wire.as_deref() == Some(union.field.as_str())
                        && let Some(t) = type_name(&f.ty)
                    {
                        out.insert(t);
                    }
                }
            }
        }
    }
    out
}

fn open_enum(e: &ItemEnum, variants: &[(String, String)]) -> Vec<Item> {
    let name = e.ident.to_string();
    let values: Vec<String> = variants.iter().map(|(_, w)| format!("`{w}`")).collect();
    let mut decl = format!(
        "/// `{name}`: one of {}, or any other value the API sends, kept as [`{name}::Other`].\n#[derive(Clone, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]\npub enum {name} {{\n",
        values.join(", ")
    );
    for (variant, wire) in variants {
        decl.push_str(&format!("    /// `{wire}`.\n    {variant},\n"));
    }
    decl.push_str("    /// A value this version does not list, as the API sent it.\n    Other(::std::string::String),\n}\n");
    let as_str: String = variants
        .iter()
        .map(|(v, w)| format!("Self::{v} => {w:?},"))
        .collect();
    let from: String = variants
        .iter()
        .map(|(v, w)| format!("{w:?} => Self::{v},"))
        .collect();
    let mut items = vec![parse_item(&decl)];
    for source in [
        format!(
            "impl {name} {{ /// The value as the API writes it.\n pub fn as_str(&self) -> &str {{ match self {{ {as_str} Self::Other(value) => value }} }} }}"
        ),
        format!(
            "impl ::std::fmt::Display for {name} {{ fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {{ f.write_str(self.as_str()) }} }}"
        ),
        format!(
            "impl ::std::convert::From<&str> for {name} {{ fn from(value: &str) -> Self {{ match value {{ {from} other => Self::Other(other.to_owned()) }} }} }}"
        ),
        format!(
            "impl ::std::convert::From<::std::string::String> for {name} {{ fn from(value: ::std::string::String) -> Self {{ match Self::from(value.as_str()) {{ Self::Other(_) => Self::Other(value), known => known }} }} }}"
        ),
        format!(
            "impl ::std::str::FromStr for {name} {{ type Err = ::std::convert::Infallible; fn from_str(value: &str) -> ::std::result::Result<Self, Self::Err> {{ Ok(Self::from(value)) }} }}"
        ),
        format!(
            "impl ::serde::Serialize for {name} {{ fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> ::std::result::Result<S::Ok, S::Error> {{ serializer.serialize_str(self.as_str()) }} }}"
        ),
        format!(
            "impl<'de> ::serde::Deserialize<'de> for {name} {{ fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> ::std::result::Result<Self, D::Error> {{ ::std::string::String::deserialize(deserializer).map(Self::from) }} }}"
        ),
    ] {
        items.push(parse_item(&source));
    }
    items
}

/// The impls typify wrote for an enum that T1 replaces.
fn replaced_impl(item: &Item, opened: &BTreeSet<String>) -> bool {
    let Item::Impl(imp) = item else { return false };
    let Some(self_name) = type_name(&imp.self_ty) else {
        return false;
    };
    if !opened.contains(&self_name) {
        return false;
    }
    match &imp.trait_ {
        Some((path, _)) => {
            let t = tokens(path);
            t.contains("Display") || t.contains("FromStr") || t.contains("TryFrom")
        }
        None => false,
    }
}

fn tagged_union(e: &mut ItemEnum, union: &Tagged) -> Vec<Item> {
    let name = e.ident.to_string();
    // Serialize stays derived (untagged writes each variant as itself); Deserialize is ours.
    for attr in &mut e.attrs {
        if attr.path().is_ident("derive") {
            let derives = tokens(&attr.meta)
                .replace(":: serde :: Deserialize ,", "")
                .replace(":: serde :: Deserialize", "");
            *attr = parse_attrs(&format!("#[{derives}]")).remove(0);
        }
    }
    let mut twins = Vec::new();
    let mut arms = String::new();
    // Without its tag, the object is tried against each variant in turn (the variant without
    // a tag field first), as an untagged union would: a request body may leave the tag out.
    let mut untagged_tries: Vec<String> = Vec::new();
    let current: Vec<syn::Variant> = e.variants.iter().cloned().collect();
    for (variant, (_, values)) in current.iter().zip(&union.variants) {
        let v = &variant.ident;
        let decode = match &variant.fields {
            Fields::Unnamed(unnamed) => format!(
                "decode::<{}, D::Error>(value, {:?}).map(Self::{v})",
                tokens(&unnamed.unnamed[0].ty),
                format!("{name}::{v}")
            ),
            Fields::Named(named) => {
                let twin = format!("__{name}{v}");
                let fields: Vec<String> = named
                    .named
                    .iter()
                    .map(|f| {
                        f.ident
                            .as_ref()
                            .map(ToString::to_string)
                            .unwrap_or_default()
                    })
                    .collect();
                let mut decl = format!(
                    "#[derive(::serde::Deserialize)]\n#[allow(non_camel_case_types, reason = \"private twin of a struct variant\")]\nstruct {twin} {{"
                );
                for f in &named.named {
                    decl.push_str(&tokens(f));
                    decl.push(',');
                }
                decl.push('}');
                twins.push(parse_item(&decl));
                format!(
                    "decode::<{twin}, D::Error>(value, {:?}).map(|t| Self::{v} {{ {} }})",
                    format!("{name}::{v}"),
                    fields
                        .iter()
                        .map(|f| format!("{f}: t.{f}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
            Fields::Unit => format!("Ok(Self::{v})"),
        };
        if values.is_empty() {
            untagged_tries.insert(0, decode.clone());
        } else {
            untagged_tries.push(decode.clone());
            let pattern: Vec<String> = values.iter().map(|w| format!("Some({w:?})")).collect();
            arms.push_str(&format!("{} => {decode},", pattern.join(" | ")));
        }
    }
    let mut absent = String::from(
        "None => { let mut errors: ::std::vec::Vec<::std::string::String> = ::std::vec::Vec::new();",
    );
    for attempt in &untagged_tries {
        absent.push_str(&format!(
            "match {{ let value = value.clone(); {attempt} }} {{ Ok(v) => return Ok(v), Err(e) => errors.push(::std::string::ToString::to_string(&e)) }}"
        ));
    }
    absent.push_str(&format!(
        "Err(<D::Error as ::serde::de::Error>::custom(format_args!(\"no `{}`, and no variant of {name} reads it: {{}}\", errors.join(\"; \")))) }}",
        union.field
    ));
    e.variants.push(
        match parse_item(&format!(
            "enum __X {{ /// A `{}` this version does not know: the whole object, as sent.\n Unknown(::serde_json::Value) }}",
            union.field
        )) {
            Item::Enum(x) => x.variants[0].clone(),
            _ => unreachable!(),
        },
    );
    let field = &union.field;
    let imp = format!(
        "impl<'de> ::serde::Deserialize<'de> for {name} {{
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> ::std::result::Result<Self, D::Error> {{
                let value = ::serde_json::Value::deserialize(deserializer)?;
                let tag = value.get({field:?}).and_then(::serde_json::Value::as_str).map(::std::borrow::ToOwned::to_owned);
                match tag.as_deref() {{
                    {arms}
                    {absent}
                    Some(_) => Ok(Self::Unknown(value)),
                }}
            }}
        }}"
    );
    let mut items = twins;
    items.push(parse_item(&imp));
    items
}

/// Applies T1, T2, T4 and T5 (T3 is applied on the printed source: see [`date_times`]).
/// `components` are the spec's component schema names (their structs' fields get a spec
/// path in their docs).
pub(crate) fn apply(file: &mut syn::File, components: &BTreeSet<String>) -> Report {
    let mut report = Report::default();
    let enums = string_enums(&file.items);
    let tagged = tagged_unions(&file.items, &enums);
    let closed = closed_tag_enums(&tagged);
    report.closed_tag_enums = closed.iter().cloned().collect();
    let opened: BTreeSet<String> = enums
        .keys()
        .filter(|name| !closed.contains(*name))
        .cloned()
        .collect();
    let mut out = Vec::with_capacity(file.items.len());
    for mut item in std::mem::take(&mut file.items) {
        if replaced_impl(&item, &opened) {
            continue;
        }
        match &mut item {
            Item::Enum(e) if opened.contains(&e.ident.to_string()) => {
                report.open_enums += 1;
                out.extend(open_enum(e, &enums[&e.ident.to_string()]));
                continue;
            }
            Item::Enum(e) => {
                for v in &mut e.variants {
                    if let Fields::Named(named) = &mut v.fields {
                        for f in &mut named.named {
                            report.optional_collections += usize::from(optional_collection(f));
                            document_field(f, None);
                            report.documented_fields += 1;
                        }
                    }
                }
                document_variants(e, tagged.get(&e.ident.to_string()));
                if let Some(union) = tagged.get(&e.ident.to_string()) {
                    report.tagged_unions.push(e.ident.to_string());
                    let extra = tagged_union(e, union);
                    out.push(item);
                    out.extend(extra);
                    continue;
                }
            }
            Item::Struct(s) => {
                let component = components
                    .contains(&s.ident.to_string())
                    .then(|| s.ident.to_string());
                for f in &mut s.fields {
                    report.optional_collections += usize::from(optional_collection(f));
                    if f.ident.is_some() {
                        document_field(f, component.as_deref());
                        report.documented_fields += 1;
                    }
                }
                document_struct(s, component.as_deref());
            }
            _ => {}
        }
        out.push(item);
    }
    // The helper every tagged union's Deserialize uses: keeps the failing field's path.
    out.push(parse_item(
        "fn decode<T: ::serde::de::DeserializeOwned, E: ::serde::de::Error>(value: ::serde_json::Value, what: &str) -> ::std::result::Result<T, E> {
            ::serde_path_to_error::deserialize(value).map_err(|e| E::custom(format_args!(\"{what} at `{}`: {}\", e.path(), e.inner())))
        }",
    ));
    file.items = out;
    report
}

/// A type as a reader says it: `list of text`, `optional integer`…
fn describe(ty: &str) -> String {
    let ty = ty.replace(' ', "");
    if let Some(inner) = ty
        .strip_prefix("::std::option::Option<")
        .and_then(|t| t.strip_suffix('>'))
    {
        return describe(inner);
    }
    if let Some(inner) = ty
        .strip_prefix("::std::vec::Vec<")
        .and_then(|t| t.strip_suffix('>'))
    {
        return format!("list of {}", describe(inner));
    }
    match ty.as_str() {
        "::std::string::String" => "text".into(),
        "f64" | "f32" => "number".into(),
        "i64" | "u64" | "i32" | "u32" => "integer".into(),
        "bool" => "boolean".into(),
        "crate::DateTime" | "::chrono::DateTime<::chrono::offset::Utc>" => "date-time".into(),
        "::serde_json::Value" => "any JSON".into(),
        t if t.starts_with("::serde_json::Map<") => "JSON object".into(),
        t if t.starts_with("::std::collections::HashMap<") => "map".into(),
        "::std::num::NonZeroU64" | "::std::num::NonZeroI64" => "positive integer".into(),
        // A model of this module: a link; anything else by name.
        t if t.contains("::") || t.contains('<') => format!("`{t}`"),
        t => format!("[`{t}`]"),
    }
}

/// T5: a field's doc from schema facts: wire name, type, whether it may be absent, and the
/// spec path for a component's own fields.
fn document_field(field: &mut syn::Field, component: Option<&str>) {
    let Some(ident) = &field.ident else { return };
    let wire = serde_rename(&field.attrs)
        .unwrap_or_else(|| ident.to_string().trim_start_matches("r#").to_owned());
    let ty = tokens(&field.ty).replace(' ', "");
    let optional = ty.starts_with("::std::option::Option<");
    let presence = if optional {
        "optional: absent or `null` reads as `None`"
    } else {
        "required"
    };
    let mut doc = format!("`{wire}`: {}; {presence}.", describe(&ty));
    if let Some(component) = component {
        doc.push_str(&format!(
            " Spec: `#/components/schemas/{component}/properties/{wire}`."
        ));
    }
    field
        .attrs
        .insert(0, parse_attrs(&format!("#[doc = {doc:?}]")).remove(0));
}

/// T5: a model's doc says how many fields it has, which are required, and where its schema
/// is (for a component).
fn document_struct(s: &mut syn::ItemStruct, component: Option<&str>) {
    let fields: Vec<&syn::Field> = s.fields.iter().collect();
    if fields.is_empty() {
        return;
    }
    let required: Vec<String> = fields
        .iter()
        .filter(|f| {
            !tokens(&f.ty)
                .replace(' ', "")
                .starts_with("::std::option::Option<")
        })
        .filter_map(|f| {
            serde_rename(&f.attrs).or_else(|| f.ident.as_ref().map(ToString::to_string))
        })
        .map(|w| format!("`{w}`"))
        .collect();
    let mut doc = format!(
        "{} field{}",
        fields.len(),
        if fields.len() == 1 { "" } else { "s" }
    );
    doc.push_str(&if required.is_empty() {
        ", all optional.".to_owned()
    } else {
        format!("; required: {}.", required.join(", "))
    });
    if let Some(component) = component {
        doc.push_str(&format!(" Spec: `#/components/schemas/{component}`."));
    }
    let at = s
        .attrs
        .iter()
        .rposition(|a| a.path().is_ident("doc"))
        .map_or(0, |i| i + 1);
    s.attrs.insert(at, parse_attrs("#[doc = \"\"]").remove(0));
    s.attrs
        .insert(at + 1, parse_attrs(&format!("#[doc = {doc:?}]")).remove(0));
}

/// T5: every variant of a union says what it holds and, for a tagged union, which tag
/// chooses it.
fn document_variants(e: &mut ItemEnum, union: Option<&Tagged>) {
    for (i, v) in e.variants.iter_mut().enumerate() {
        if v.attrs.iter().any(|a| a.path().is_ident("doc")) {
            continue;
        }
        let holds = match &v.fields {
            Fields::Unnamed(u) if u.unnamed.len() == 1 => {
                format!("A {}.", describe(&tokens(&u.unnamed[0].ty)))
            }
            _ => format!("The `{}` form.", v.ident),
        };
        let chosen = union
            .and_then(|u| u.variants.get(i).map(|(_, values)| (u, values)))
            .map(|(u, values)| {
                if values.is_empty() {
                    format!(" Tried when `{}` is absent.", u.field)
                } else {
                    let values: Vec<String> = values.iter().map(|w| format!("`{w}`")).collect();
                    format!(" Chosen when `{}` is {}.", u.field, values.join(" or "))
                }
            })
            .unwrap_or_default();
        v.attrs.insert(
            0,
            parse_attrs(&format!("#[doc = {:?}]", format!("{holds}{chosen}"))).remove(0),
        );
    }
}

/// T2: `#[serde(default, skip_serializing_if = "…::is_empty")] x: Vec<T>` (or a map) becomes
/// `Option<Vec<T>>`.
fn optional_collection(field: &mut syn::Field) -> bool {
    let mut changed = false;
    for attr in &mut field.attrs {
        if !attr.path().is_ident("serde") {
            continue;
        }
        let text = tokens(&attr.meta);
        if !text.contains("is_empty") {
            continue;
        }
        let mut parts: Vec<String> = Vec::new();
        let _ = attr.parse_nested_meta(|meta| {
            let key = tokens(&meta.path);
            if meta.input.peek(syn::Token![=]) {
                let value: syn::Expr = meta.value()?.parse()?;
                if key != "skip_serializing_if" {
                    parts.push(format!("{key} = {}", tokens(&value)));
                }
            } else if key != "default" {
                parts.push(key);
            }
            Ok(())
        });
        parts.push("default".into());
        parts.push("skip_serializing_if = \"::std::option::Option::is_none\"".into());
        *attr = parse_attrs(&format!("#[serde({})]", parts.join(", "))).remove(0);
        changed = true;
    }
    if changed {
        let ty = tokens(&field.ty);
        field.ty = syn::parse_str(&format!("::std::option::Option<{ty}>")).expect("a type");
    }
    changed
}

/// T3: every `date-time` is the project's `DateTime` (applied to the printed source: the
/// one type path typify prints for `format: date-time`).
pub(crate) fn date_times(source: &str) -> (String, usize) {
    const CHRONO: &str = "::chrono::DateTime<::chrono::offset::Utc>";
    let count = source.matches(CHRONO).count();
    (source.replace(CHRONO, "crate::DateTime"), count)
}

/// Components that are only parts of other schemas: named inside `allOf` lists and nowhere
/// else (typify merges each `allOf` into one type), or named nowhere and made of property
/// names alone (a list of required fields for an `allOf` to add). Their own types would be
/// public and unused. A component named nowhere with real properties (a webhook event, say)
/// is for users and stays.
pub(crate) fn all_of_only(spec: &Value) -> BTreeSet<String> {
    fn walk(
        value: &Value,
        in_all_of: bool,
        direct: &mut BTreeSet<String>,
        parts: &mut BTreeSet<String>,
    ) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref")
                    && let Some(name) = r.strip_prefix("#/components/schemas/")
                {
                    if in_all_of {
                        parts.insert(name.to_owned());
                    } else {
                        direct.insert(name.to_owned());
                    }
                }
                for (key, v) in map {
                    walk(v, key == "allOf", direct, parts);
                }
            }
            Value::Array(items) => {
                for v in items {
                    walk(v, in_all_of, direct, parts);
                }
            }
            _ => {}
        }
    }
    let (mut direct, mut parts) = (BTreeSet::new(), BTreeSet::new());
    walk(spec, false, &mut direct, &mut parts);
    let names_only = |schema: &Value| {
        let required = schema
            .get("required")
            .and_then(Value::as_array)
            .is_some_and(|r| !r.is_empty());
        let no_schemas = schema
            .get("properties")
            .and_then(Value::as_object)
            .is_none_or(|p| {
                p.values()
                    .all(|v| v.as_object().is_some_and(|o| o.is_empty()))
            });
        required && no_schemas
    };
    spec.pointer("/components/schemas")
        .and_then(Value::as_object)
        .map(|schemas| {
            schemas
                .iter()
                .filter(|(name, schema)| {
                    !direct.contains(*name) && (parts.contains(*name) || names_only(schema))
                })
                .map(|(name, _)| name.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Removes the types of `unused` components (and the types named after them, such as their
/// enums) that no other item mentions, with their impls; returns the names removed.
pub(crate) fn prune(file: &mut syn::File, unused: &BTreeSet<String>) -> Vec<String> {
    fn owner(item: &Item) -> Option<String> {
        match item {
            Item::Struct(s) => Some(s.ident.to_string()),
            Item::Enum(e) => Some(e.ident.to_string()),
            Item::Impl(i) => type_name(&i.self_ty),
            _ => None,
        }
    }
    fn mentions(text: &str, name: &str) -> bool {
        text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .any(|word| word == name)
    }
    // The code of an item without its string literals: docs name types they do not use.
    fn code(item: &Item) -> String {
        let text = tokens(item);
        let (mut out, mut in_string, mut escaped) = (String::new(), false, false);
        for c in text.chars() {
            match (in_string, escaped, c) {
                (true, true, _) => escaped = false,
                (true, false, '\\') => escaped = true,
                (_, false, '"') => in_string = !in_string,
                (false, _, c) => out.push(c),
                _ => {}
            }
        }
        out
    }
    let texts: Vec<(Option<String>, String)> = file
        .items
        .iter()
        .map(|item| (owner(item), code(item)))
        .collect();
    let mut removed: BTreeSet<String> = BTreeSet::new();
    loop {
        let candidates: Vec<String> = texts
            .iter()
            .filter_map(|(owner, _)| owner.clone())
            .filter(|name| {
                !removed.contains(name) && unused.iter().any(|u| name.starts_with(u.as_str()))
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let before = removed.len();
        for name in candidates {
            let used = texts.iter().any(|(owner, text)| {
                owner
                    .as_ref()
                    .is_none_or(|o| o != &name && !removed.contains(o))
                    && mentions(text, &name)
            });
            if !used {
                removed.insert(name);
            }
        }
        if removed.len() == before {
            break;
        }
    }
    file.items
        .retain(|item| owner(item).is_none_or(|name| !removed.contains(&name)));
    removed.into_iter().collect()
}
