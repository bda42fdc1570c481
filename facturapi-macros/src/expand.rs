//! Code generation: the body of the endpoint function. Generated code reaches the runtime
//! only through `::facturapi_sdk::__private`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::ast::{BodyKind, ClientSource, Decode, Endpoint, QueryStyle, Segment};
use crate::parse::Item;

pub(crate) fn endpoint(args: TokenStream, item: TokenStream) -> TokenStream {
    let item = match crate::parse::item(item.clone()) {
        Ok(item) => item,
        // Not even a signature: give the tokens back beside the error.
        Err(error) => {
            let error = error.to_compile_error();
            return quote!(#error #item);
        }
    };
    let attr = match crate::parse::attr(args) {
        Ok(attr) => attr,
        Err(error) => return fallback(&item, error),
    };
    match crate::valid::check(attr, item) {
        Ok(endpoint) => expand(&endpoint),
        Err(failed) => fallback(&failed.1, failed.0),
    }
}

/// The signature with a placeholder body beside the errors, so that callers still type-check
/// and IDEs keep completing while the attribute is being fixed.
fn fallback(item: &Item, error: syn::Error) -> TokenStream {
    let Item {
        attrs, vis, sig, ..
    } = item;
    let error = error.to_compile_error();
    quote! {
        #error
        #(#attrs)*
        #[allow(unused_variables, clippy::unused_async)]
        #vis #sig {
            ::core::unreachable!("#[endpoint] failed to expand")
        }
    }
}

fn expand(e: &Endpoint) -> TokenStream {
    let private = quote!(::facturapi_sdk::__private);
    let Item {
        attrs, vis, sig, ..
    } = &e.item;
    let method = &e.method;
    let template = &e.path_template;
    let class = &e.class;
    let operation_id = &e.operation_id;
    let keys = &e.keys;
    let retry = &e.retry;

    let client = match &e.client {
        ClientSource::SelfRef => quote!(#private::AsClient::as_client(&self)),
        ClientSource::Arg(ident) => quote!(#private::AsClient::as_client(&#ident)),
    };

    let path = e.segments.iter().map(|segment| match segment {
        Segment::Literal(text) => quote!(.literal(#text)),
        Segment::Param(ident) => {
            let name = ident.to_string();
            quote!(.param(#name, &#ident)?)
        }
    });

    let mut query = Vec::new();
    if let Some(q) = &e.query_struct {
        query.push(quote!(#private::QueryParams::write_query(&#q, &mut __query)?;));
    }
    for arg in &e.query_args {
        let ident = &arg.ident;
        let name = &arg.wire_name;
        query.push(match arg.style {
            QueryStyle::Form { explode } => quote!(__query.form(#name, &#ident, #explode)?;),
            QueryStyle::DeepObject => quote!(__query.deep_object(#name, &#ident)?;),
        });
    }

    let body = match &e.body {
        None => quote!(#private::Body::None),
        Some(BodyKind::Json(ident)) => quote!(#private::Body::json(&__OP, &#ident)?),
        Some(BodyKind::Multipart(ident)) => quote!(#private::Body::multipart(&#ident)),
    };

    let decode = match &e.decode {
        Decode::Empty => quote!(#private::decode::empty(__response).await),
        Decode::Bytes => quote!(#private::decode::bytes(__response).await),
        Decode::OptionalBytes => quote!(#private::decode::optional_bytes(__response).await),
        Decode::Stream => quote!(#private::decode::stream(__response).await),
        Decode::MaybePending(t, p) => {
            quote!(#private::decode::maybe_pending::<#t, #p>(__response).await)
        }
        Decode::Json(t) => quote!(#private::decode::json::<#t>(__response).await),
    };
    // A stream is handed over after the headers; everything else is read whole inside the
    // send path, so a body cut short is retried like any other failed attempt.
    let send = if matches!(e.decode, Decode::Stream) {
        quote!(send_streaming)
    } else {
        quote!(send)
    };
    let result = if e.created {
        let key = format_ident!("__idempotency_key");
        quote! {
            let #key = __response.idempotency_key().map(::std::borrow::ToOwned::to_owned);
            ::core::result::Result::Ok(#private::decode::created(#key, #decode?))
        }
    } else {
        quote!(::core::result::Result::Ok(#decode?))
    };

    quote! {
        #(#attrs)*
        // `Ok(…?)` converts the SDK error into the function's own error type when it differs.
        #[allow(clippy::needless_question_mark)]
        #vis #sig {
            static __OP: #private::OperationInfo = #private::OperationInfo {
                operation_id: #operation_id,
                class: #private::Class::#class,
                method: #private::Method::#method,
                path_template: #template,
                keys: &[#(#private::KeyKind::#keys),*],
                retry: #private::Resend::#retry,
            };
            let __client = #client;
            let __path = #private::PathBuilder::new(&__OP) #(#path)* .finish();
            #[allow(unused_mut)]
            let mut __query = #private::Query::new(&__OP);
            #(#query)*
            let __request = #private::Request { path: __path, query: __query, body: #body };
            let __response = #private::#send(__client, &__OP, __request).await?;
            #result
        }
    }
}
