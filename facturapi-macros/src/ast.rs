//! The checked form of an endpoint, which `expand` turns into code.

use syn::{Ident, LitStr, Type};

use crate::parse::Item;

pub(crate) enum Segment {
    Literal(String),
    Param(Ident),
}

pub(crate) enum ClientSource {
    SelfRef,
    Arg(Ident),
}

pub(crate) enum BodyKind {
    Json(Ident),
    Multipart(Ident),
}

pub(crate) enum QueryStyle {
    Form { explode: bool },
    DeepObject,
}

pub(crate) struct QueryArg {
    pub(crate) ident: Ident,
    pub(crate) wire_name: String,
    pub(crate) style: QueryStyle,
}

/// How the response body is decoded, from the return type.
pub(crate) enum Decode {
    Empty,
    Bytes,
    OptionalBytes,
    Stream,
    MaybePending(Box<Type>, Box<Type>),
    Json(Box<Type>),
}

pub(crate) struct Endpoint {
    /// `GET`, `POST`, …
    pub(crate) method: Ident,
    pub(crate) path_template: LitStr,
    pub(crate) segments: Vec<Segment>,
    /// `DetailRead`, …
    pub(crate) class: Ident,
    pub(crate) operation_id: String,
    /// `Test`, `Live`, `User`.
    pub(crate) keys: Vec<Ident>,
    pub(crate) client: ClientSource,
    pub(crate) body: Option<BodyKind>,
    pub(crate) query_struct: Option<Ident>,
    pub(crate) query_args: Vec<QueryArg>,
    /// The resend rule: `Idempotent`, `Keyed` or `NotAfterSend`.
    pub(crate) retry: Ident,
    /// With `idempotency_key` (rule `Keyed`), the `T` of `Created<T>` is decoded with `decode`.
    pub(crate) created: bool,
    pub(crate) decode: Decode,
    /// The item with `#[query]` attributes removed.
    pub(crate) item: Item,
}
