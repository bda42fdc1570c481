use facturapi_sdk::{Client, Result, endpoint};

#[endpoint(POST "/x", class = create, body = body, idempotency_key)]
async fn idempotency_key_without_created(client: &Client, body: &serde_json::Value) -> Result<serde_json::Value>;

fn main() {}
