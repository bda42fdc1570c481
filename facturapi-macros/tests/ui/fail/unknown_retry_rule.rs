use facturapi_sdk::{Client, Result, endpoint};

#[endpoint(PUT "/keys/{id}", class = write, retry = once)]
async fn renew(client: &Client, id: &str) -> Result<()>;

fn main() {}
