use facturapi_sdk::{Client, Result, endpoint};

#[endpoint(GET "/x", class = detail_read, body = body)]
async fn body_on_get(client: &Client, body: &serde_json::Value) -> Result<()>;

fn main() {}
