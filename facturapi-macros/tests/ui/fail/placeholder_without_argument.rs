use facturapi_sdk::{Client, Result, endpoint};

#[endpoint(GET "/invoices/{invoice_id}", class = detail_read)]
async fn placeholder_without_argument(client: &Client, id: &str) -> Result<()>;

fn main() {}
