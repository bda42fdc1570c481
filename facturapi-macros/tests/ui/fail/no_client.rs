use facturapi_sdk::{Result, endpoint};

#[endpoint(GET "/x/{id}", class = detail_read)]
async fn no_client(id: &str) -> Result<()>;

fn main() {}
