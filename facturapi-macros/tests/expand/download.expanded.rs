#[allow(clippy::needless_question_mark)]
pub async fn download(
    self,
    invoice_id: &str,
    format: models::DownloadInvoiceFormat,
) -> Result<Bytes> {
    static __OP: ::facturapi_sdk::__private::OperationInfo = ::facturapi_sdk::__private::OperationInfo {
        operation_id: "download",
        class: ::facturapi_sdk::__private::Class::DetailRead,
        method: ::facturapi_sdk::__private::Method::GET,
        path_template: "/invoices/{invoice_id}/{format}",
        keys: &[],
        retry: ::facturapi_sdk::__private::Resend::Idempotent,
    };
    let __client = ::facturapi_sdk::__private::AsClient::as_client(&self);
    let __path = ::facturapi_sdk::__private::PathBuilder::new(&__OP)
        .literal("/invoices/")
        .param("invoice_id", &invoice_id)?
        .literal("/")
        .param("format", &format)?
        .finish();
    #[allow(unused_mut)]
    let mut __query = ::facturapi_sdk::__private::Query::new(&__OP);
    let __request = ::facturapi_sdk::__private::Request {
        path: __path,
        query: __query,
        body: ::facturapi_sdk::__private::Body::None,
    };
    let __response = ::facturapi_sdk::__private::send(__client, &__OP, __request).await?;
    ::core::result::Result::Ok(
        ::facturapi_sdk::__private::decode::bytes(__response).await?,
    )
}
