use facturapi_sdk::{Client, Result, endpoint};

#[endpoint(GET "/x", class = detail_read)]
async fn has_body(client: &Client) -> Result<()> {
    Ok(())
}

fn main() {}
