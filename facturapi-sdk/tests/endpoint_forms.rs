//! What `#[endpoint]` accepts, compiled with the tests: free functions taking the client,
//! methods of your own `AsClient` types, every query form and every return shape. (The
//! macro's rejections are the compile-fail cases of `facturapi-macros/tests/ui`.)

mod free_fn_with_client {
    use facturapi_sdk::{Client, Result, endpoint, models};

    /// An endpoint the spec lacks, as a free function taking the client.
    #[endpoint(GET "/invoices/{invoice_id}/events", class = detail_read, keys = [test, live])]
    pub async fn invoice_events(client: &Client, invoice_id: &str) -> Result<serde_json::Value>;

    #[endpoint(GET "/invoices/{invoice_id}", class = detail_read, operation_id = "getInvoiceAgain")]
    async fn fetch(client: Client, invoice_id: String) -> Result<models::Invoice>;

    pub(crate) fn uses() {
        let _ = invoice_events;
        let _ = fetch;
    }

    /// A PUT that acts anew on each call: never resent once it may have reached the server.
    #[endpoint(PUT "/organizations/{id}/apikeys/extra", class = write, retry = not_after_send)]
    async fn mint_key(client: &Client, id: &str) -> Result<String>;

    /// A POST that changes nothing: resent after a timeout or a 5xx.
    #[endpoint(POST "/tools/check", class = detail_read, retry = idempotent)]
    async fn check(client: &Client) -> Result<serde_json::Value>;

    pub(crate) fn more_uses() {
        let _ = mint_key;
        let _ = check;
    }
}

mod impl_method {
    use facturapi_sdk::{AsClient, Client, Result, endpoint};

    /// Your own API wrapper, protected by the same class limits as the SDK's methods.
    struct Reports {
        client: Client,
    }

    impl AsClient for Reports {
        fn as_client(&self) -> &Client {
            &self.client
        }
    }

    #[derive(serde::Serialize)]
    struct ReportRequest {
        month: u8,
    }

    impl Reports {
        #[endpoint(POST "/reports", class = heavy_write, body = request)]
        pub async fn request(&self, request: &ReportRequest) -> Result<serde_json::Value>;

        #[endpoint(DELETE "/reports/{report_id}", class = write)]
        pub async fn delete(&self, report_id: &str) -> Result<()>;
    }

    pub(crate) fn uses() {
        let _ = Reports::request;
        let _ = Reports::delete;
        let _ = ReportRequest { month: 1 };
    }
}

mod query_and_returns {
    use facturapi_sdk::{ByteStream, Created, MaybePending};
    use facturapi_sdk::{Client, Multipart, Result, endpoint};

    #[derive(serde::Serialize)]
    struct Range {
        gte: Option<String>,
    }

    #[endpoint(GET "/things", class = list_read)]
    async fn search(
        client: &Client,
        #[query] q: &str,
        #[query(name = "type")] kind: Option<&str>,
        #[query(explode = false)] tags: &[&str],
        #[query(deep_object)] date: Option<Range>,
    ) -> Result<serde_json::Value>;

    #[endpoint(GET "/things/{id}/pdf", class = detail_read)]
    async fn pdf(client: &Client, id: &str) -> Result<bytes::Bytes>;

    #[endpoint(GET "/things/{id}/zip", class = detail_read)]
    async fn zip(client: &Client, id: &str) -> Result<ByteStream>;

    #[endpoint(POST "/things/preview", class = heavy_write, body = body)]
    async fn preview(client: &Client, body: &serde_json::Value) -> Result<Option<bytes::Bytes>>;

    #[endpoint(POST "/things", class = create, body = body, idempotency_key)]
    async fn create(
        client: &Client,
        body: &serde_json::Value,
    ) -> Result<Created<MaybePending<serde_json::Value, serde_json::Value>>>;

    #[endpoint(PUT "/things/{id}/logo", class = heavy_write, multipart = form)]
    async fn logo(client: &Client, id: &str, form: Multipart) -> Result<()>;

    pub(crate) fn uses() {
        let _ = (search, pdf, zip, preview, create, logo);
    }
}

#[test]
fn every_accepted_form_compiles() {
    free_fn_with_client::uses();
    free_fn_with_client::more_uses();
    impl_method::uses();
    query_and_returns::uses();
}
