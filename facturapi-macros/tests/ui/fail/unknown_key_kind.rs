use facturapi_sdk::{Client, Result, endpoint};

#[endpoint(GET "/x", class = detail_read, keys = [test, admin, test])]
async fn unknown_key_kind(client: &Client) -> Result<()>;

fn main() {}
