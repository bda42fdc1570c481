use facturapi_sdk::send::{ByteStream, Created, MaybePending};
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
async fn create(client: &Client, body: &serde_json::Value) -> Result<Created<MaybePending<serde_json::Value, serde_json::Value>>>;

#[endpoint(PUT "/things/{id}/logo", class = heavy_write, multipart = form)]
async fn logo(client: &Client, id: &str, form: Multipart) -> Result<()>;

fn main() {
    let _ = (search, pdf, zip, preview, create, logo);
}
