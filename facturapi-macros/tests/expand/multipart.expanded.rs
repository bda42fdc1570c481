#[allow(clippy::needless_question_mark)]
pub async fn upload_logo(self, organization_id: &str, form: &Multipart) -> Result<()> {
    static __OP: ::facturapi_sdk::__private::OperationInfo = ::facturapi_sdk::__private::OperationInfo {
        operation_id: "upload_logo",
        class: ::facturapi_sdk::__private::Class::HeavyWrite,
        method: ::facturapi_sdk::__private::Method::PUT,
        path_template: "/organizations/{organization_id}/logo",
        keys: &[],
        retry: ::facturapi_sdk::__private::Resend::Idempotent,
    };
    let __client = ::facturapi_sdk::__private::AsClient::as_client(&self);
    let __path = ::facturapi_sdk::__private::PathBuilder::new(&__OP)
        .literal("/organizations/")
        .param("organization_id", &organization_id)?
        .literal("/logo")
        .finish();
    #[allow(unused_mut)]
    let mut __query = ::facturapi_sdk::__private::Query::new(&__OP);
    let __request = ::facturapi_sdk::__private::Request {
        path: __path,
        query: __query,
        body: ::facturapi_sdk::__private::Body::multipart(&form),
    };
    let __response = ::facturapi_sdk::__private::send(__client, &__OP, __request).await?;
    ::core::result::Result::Ok(
        ::facturapi_sdk::__private::decode::empty(__response).await?,
    )
}
