#[allow(clippy::needless_question_mark)]
pub async fn create(
    &self,
    body: &models::InvoiceCreateInput,
) -> Result<Created<MaybePending<models::Invoice, models::Invoice>>> {
    static __OP: ::facturapi_sdk::__private::OperationInfo = ::facturapi_sdk::__private::OperationInfo {
        operation_id: "createInvoice",
        class: ::facturapi_sdk::__private::Class::Create,
        method: ::facturapi_sdk::__private::Method::POST,
        path_template: "/invoices",
        keys: &[],
        retry: ::facturapi_sdk::__private::Resend::Keyed,
    };
    let __client = ::facturapi_sdk::__private::AsClient::as_client(&self);
    let __path = ::facturapi_sdk::__private::PathBuilder::new(&__OP)
        .literal("/invoices")
        .finish();
    #[allow(unused_mut)]
    let mut __query = ::facturapi_sdk::__private::Query::new(&__OP);
    let __request = ::facturapi_sdk::__private::Request {
        path: __path,
        query: __query,
        body: ::facturapi_sdk::__private::Body::json(&__OP, &body)?,
    };
    let __response = ::facturapi_sdk::__private::send(__client, &__OP, __request).await?;
    let __idempotency_key = __response
        .idempotency_key()
        .map(::std::borrow::ToOwned::to_owned);
    ::core::result::Result::Ok(
        ::facturapi_sdk::__private::decode::created(
            __idempotency_key,
            ::facturapi_sdk::__private::decode::maybe_pending::<
                models::Invoice,
                models::Invoice,
            >(__response)
                .await?,
        ),
    )
}
