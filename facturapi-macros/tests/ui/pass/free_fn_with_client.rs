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

/// A PUT that acts anew on each call: never resent once it may have reached the server.
#[endpoint(PUT "/organizations/{id}/apikeys/extra", class = write, retry = not_after_send)]
async fn mint_key(client: &Client, id: &str) -> Result<String>;

/// A POST that changes nothing: resent after a timeout or a 5xx.
#[endpoint(POST "/tools/check", class = detail_read, retry = idempotent)]
async fn check(client: &Client) -> Result<serde_json::Value>;

fn _uses() {
    let _ = mint_key;
    let _ = check;
}
