use facturapi_sdk::{Client, Result, endpoint};

#[endpoint(GET "/x", class = detail_read, class = list_read)]
async fn duplicate_key(client: &Client) -> Result<()>;

fn main() {}
