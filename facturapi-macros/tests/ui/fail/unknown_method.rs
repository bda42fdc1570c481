use facturapi_sdk::{Client, Result, endpoint};

#[endpoint(FETCH "/x", class = detail_read)]
async fn unknown_method(client: &Client) -> Result<()>;

fn main() {}
