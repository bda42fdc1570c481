//! Expansion snapshots: what `#[endpoint]` writes for representative signatures, kept in
//! `tests/expand/*.expanded.rs` (regenerate with `EXPECTORATE=overwrite cargo test -p facturapi-macros`).

use std::str::FromStr as _;

use proc_macro2::TokenStream;

fn expand(args: &str, item: &str) -> String {
    let tokens = crate::expand::endpoint(
        TokenStream::from_str(args).unwrap(),
        TokenStream::from_str(item).unwrap(),
    );
    let file: syn::File = syn::parse2(tokens).expect("the expansion parses as items");
    prettyplease::unparse(&file)
}

fn snapshot(name: &str, args: &str, item: &str) {
    let expanded = expand(args, item);
    expectorate::assert_contents(format!("tests/expand/{name}.expanded.rs"), &expanded);
}

#[test]
fn detail_read_with_a_path_parameter() {
    snapshot(
        "detail_read",
        r#"GET "/invoices/{invoice_id}", class = detail_read, operation_id = "getInvoice", keys = [test, live]"#,
        "pub async fn retrieve(self, invoice_id: &str) -> Result<models::Invoice>;",
    );
}

#[test]
fn list_with_query_struct_and_query_args() {
    snapshot(
        "list_read",
        r#"GET "/invoices", class = list_read, query = query"#,
        r#"pub async fn list(client: &Client, query: &ListInvoicesQuery, #[query(name = "type")] kind: &str, #[query(explode = false)] tags: &[&str], #[query(deep_object)] date: Option<Range>) -> Result<models::InvoiceSearchResult>;"#,
    );
}

#[test]
fn create_with_an_idempotency_key_and_a_pending_answer() {
    snapshot(
        "create_idempotent",
        r#"POST "/invoices", class = create, operation_id = "createInvoice", body = body, idempotency_key"#,
        "pub async fn create(&self, body: &models::InvoiceCreateInput) -> Result<Created<MaybePending<models::Invoice, models::Invoice>>>;",
    );
}

#[test]
fn a_put_that_must_not_be_resent() {
    snapshot(
        "not_after_send",
        r#"PUT "/organizations/{organization_id}/apikeys/live", class = write, operation_id = "renewLiveApiKey", retry = not_after_send"#,
        "pub async fn renew_live_api_key(self, organization_id: &str) -> Result<String>;",
    );
}

#[test]
fn heavy_write_multipart_and_binary_downloads() {
    snapshot(
        "multipart",
        r#"PUT "/organizations/{organization_id}/logo", class = heavy_write, multipart = form"#,
        "pub async fn upload_logo(self, organization_id: &str, form: &Multipart) -> Result<()>;",
    );
    snapshot(
        "download",
        r#"GET "/invoices/{invoice_id}/{format}", class = detail_read"#,
        "pub async fn download(self, invoice_id: &str, format: models::DownloadInvoiceFormat) -> Result<Bytes>;",
    );
}

#[test]
fn errors_come_with_the_fallback_signature() {
    let expanded = crate::expand::endpoint(
        TokenStream::from_str(r#"GET "/x/{id}", class = slow"#).unwrap(),
        TokenStream::from_str("fn broken(client: &Client) -> u32;").unwrap(),
    )
    .to_string();
    assert!(expanded.contains("compile_error"), "{expanded}");
    assert_eq!(
        expanded.matches("compile_error").count(),
        4,
        "not async, unknown class, placeholder, return type: {expanded}"
    );
    assert!(
        expanded.contains("fn broken (client : & Client) -> u32"),
        "the signature is kept: {expanded}"
    );
    assert!(
        expanded.contains("unreachable"),
        "with a placeholder body: {expanded}"
    );
}
