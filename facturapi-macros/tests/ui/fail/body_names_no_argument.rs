use facturapi_sdk::{Client, Result, endpoint};

#[endpoint(POST "/x", class = create, body = payload)]
async fn body_names_no_argument(client: &Client, body: &serde_json::Value) -> Result<()>;

fn main() {}
