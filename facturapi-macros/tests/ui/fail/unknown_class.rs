use facturapi_sdk::{Client, Result, endpoint};

#[endpoint(GET "/x", class = quick_read)]
async fn unknown_class(client: &Client) -> Result<()>;

fn main() {}
