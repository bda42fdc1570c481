use facturapi_sdk::{Client, Result, endpoint};

#[endpoint(GET "/x")]
async fn missing_class(client: &Client) -> Result<()>;

fn main() {}
