#[allow(clippy::needless_question_mark)]
pub async fn list(
    client: &Client,
    query: &ListInvoicesQuery,
    kind: &str,
    tags: &[&str],
    date: Option<Range>,
) -> Result<models::InvoiceSearchResult> {
    static __OP: ::facturapi_sdk::__private::OperationInfo = ::facturapi_sdk::__private::OperationInfo {
        operation_id: "list",
        class: ::facturapi_sdk::__private::Class::ListRead,
        method: ::facturapi_sdk::__private::Method::GET,
        path_template: "/invoices",
        keys: &[],
        retry: ::facturapi_sdk::__private::Resend::Idempotent,
    };
    let __client = ::facturapi_sdk::__private::AsClient::as_client(&client);
    let __path = ::facturapi_sdk::__private::PathBuilder::new(&__OP)
        .literal("/invoices")
        .finish();
    #[allow(unused_mut)]
    let mut __query = ::facturapi_sdk::__private::Query::new(&__OP);
    ::facturapi_sdk::__private::QueryParams::write_query(&query, &mut __query)?;
    __query.form("type", &kind, true)?;
    __query.form("tags", &tags, false)?;
    __query.deep_object("date", &date)?;
    let __request = ::facturapi_sdk::__private::Request {
        path: __path,
        query: __query,
        body: ::facturapi_sdk::__private::Body::None,
    };
    let __response = ::facturapi_sdk::__private::send(__client, &__OP, __request).await?;
    ::core::result::Result::Ok(
        ::facturapi_sdk::__private::decode::json::<
            models::InvoiceSearchResult,
        >(__response)
            .await?,
    )
}
