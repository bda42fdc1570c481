//! Parsing: the attribute's arguments and the annotated signature, as written (no checks
//! beyond syntax; those are in `valid`).

use proc_macro2::{Span, TokenStream};
use syn::parse::{Parse, ParseStream, Parser as _};
use syn::punctuated::Punctuated;
use syn::{Attribute, Block, Ident, LitStr, Signature, Token, Visibility, bracketed};

/// One `key = value` (or bare flag) of the attribute.
pub(crate) enum Arg {
    Class(Ident, Ident),
    OperationId(Ident, LitStr),
    Keys(Ident, Vec<Ident>),
    Body(Ident, Ident),
    Multipart(Ident, Ident),
    Query(Ident, Ident),
    IdempotencyKey(Ident),
    Retry(Ident, Ident),
    Unknown(Ident),
}

impl Arg {
    pub(crate) fn key(&self) -> &Ident {
        match self {
            Arg::Class(k, _)
            | Arg::OperationId(k, _)
            | Arg::Keys(k, _)
            | Arg::Body(k, _)
            | Arg::Multipart(k, _)
            | Arg::Query(k, _)
            | Arg::Retry(k, _) => k,
            Arg::IdempotencyKey(k) | Arg::Unknown(k) => k,
        }
    }
}

/// `#[endpoint(METHOD "/path", args…)]`.
pub(crate) struct Attr {
    pub(crate) method: Ident,
    pub(crate) path: LitStr,
    pub(crate) args: Vec<Arg>,
}

impl Parse for Attr {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.is_empty() {
            return Err(syn::Error::new(
                Span::call_site(),
                "expected `#[endpoint(METHOD \"/path\", class = …)]`",
            ));
        }
        let method: Ident = input.parse()?;
        let path: LitStr = input.parse()?;
        let mut args = Vec::new();
        while !input.is_empty() {
            input.parse::<Token![,]>()?;
            if input.is_empty() {
                break;
            }
            let key: Ident = input.parse()?;
            let arg = match key.to_string().as_str() {
                "idempotency_key" => Arg::IdempotencyKey(key),
                name => {
                    input.parse::<Token![=]>()?;
                    match name {
                        "class" => Arg::Class(key, input.parse()?),
                        "operation_id" => Arg::OperationId(key, input.parse()?),
                        "keys" => {
                            let content;
                            bracketed!(content in input);
                            let list = Punctuated::<Ident, Token![,]>::parse_terminated(&content)?;
                            Arg::Keys(key, list.into_iter().collect())
                        }
                        "body" => Arg::Body(key, input.parse()?),
                        "multipart" => Arg::Multipart(key, input.parse()?),
                        "query" => Arg::Query(key, input.parse()?),
                        "retry" => Arg::Retry(key, input.parse()?),
                        _ => {
                            // Skip the value so later arguments still parse.
                            let _: TokenStream = input.step(|cursor| {
                                let mut rest = *cursor;
                                let mut skipped = TokenStream::new();
                                while let Some((tt, next)) = rest.token_tree() {
                                    if matches!(&tt, proc_macro2::TokenTree::Punct(p) if p.as_char() == ',') {
                                        break;
                                    }
                                    skipped.extend([tt]);
                                    rest = next;
                                }
                                Ok((skipped, rest))
                            })?;
                            Arg::Unknown(key)
                        }
                    }
                }
            };
            args.push(arg);
        }
        Ok(Attr { method, path, args })
    }
}

/// The annotated item: a function signature, ideally without a body.
pub(crate) struct Item {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) sig: Signature,
    pub(crate) body: Option<Block>,
}

impl Parse for Item {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        let sig: Signature = input.parse()?;
        let body = if input.peek(Token![;]) {
            input.parse::<Token![;]>()?;
            None
        } else {
            Some(input.parse()?)
        };
        Ok(Item {
            attrs,
            vis,
            sig,
            body,
        })
    }
}

pub(crate) fn attr(tokens: TokenStream) -> syn::Result<Attr> {
    Attr::parse.parse2(tokens)
}

pub(crate) fn item(tokens: TokenStream) -> syn::Result<Item> {
    Item::parse.parse2(tokens)
}
