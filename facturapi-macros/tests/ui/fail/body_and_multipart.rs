use facturapi_sdk::{Client, Multipart, Result, endpoint};

#[endpoint(PUT "/x", class = write, body = body, multipart = form)]
async fn body_and_multipart(client: &Client, body: &serde_json::Value, form: Multipart) -> Result<()>;

fn main() {}
