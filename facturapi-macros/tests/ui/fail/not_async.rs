use facturapi_sdk::{Client, Result, endpoint};

#[endpoint(GET "/x", class = detail_read)]
fn not_async(client: &Client) -> Result<()>;

fn main() {}
