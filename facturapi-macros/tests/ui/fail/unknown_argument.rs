use facturapi_sdk::{Client, Result, endpoint};

#[endpoint(GET "/x", class = detail_read, retries = 5)]
async fn unknown_argument(client: &Client) -> Result<()>;

fn main() {}
