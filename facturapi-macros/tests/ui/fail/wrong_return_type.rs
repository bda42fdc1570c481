use facturapi_sdk::{Client, endpoint};

#[endpoint(GET "/x", class = detail_read)]
async fn wrong_return_type(client: &Client) -> serde_json::Value;

fn main() {}
