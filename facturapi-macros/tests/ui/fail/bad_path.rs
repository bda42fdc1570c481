use facturapi_sdk::{Client, Result, endpoint};

#[endpoint(GET "invoices?x=1", class = detail_read)]
async fn bad_path(client: &Client) -> Result<()>;

fn main() {}
