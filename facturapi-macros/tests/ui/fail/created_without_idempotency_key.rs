use facturapi_sdk::send::Created;
use facturapi_sdk::{Client, Result, endpoint};

#[endpoint(POST "/x", class = create, body = body)]
async fn created_without_idempotency_key(client: &Client, body: &serde_json::Value) -> Result<Created<serde_json::Value>>;

fn main() {}
