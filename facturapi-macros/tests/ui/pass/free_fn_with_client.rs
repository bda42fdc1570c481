use facturapi_sdk::{Client, Result, endpoint, models};

/// An endpoint the spec lacks, as a free function taking the client.
#[endpoint(GET "/invoices/{invoice_id}/events", class = detail_read, keys = [test, live])]
pub async fn invoice_events(client: &Client, invoice_id: &str) -> Result<serde_json::Value>;

#[endpoint(GET "/invoices/{invoice_id}", class = detail_read, operation_id = "getInvoiceAgain")]
async fn fetch(client: Client, invoice_id: String) -> Result<models::Invoice>;

fn main() {
    let _ = invoice_events;
    let _ = fetch;
}
