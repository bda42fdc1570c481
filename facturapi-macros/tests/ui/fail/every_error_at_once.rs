use facturapi_sdk::{Client, endpoint};

// Three mistakes, three errors, one build; the fallback signature keeps `caller` type-checking.
#[endpoint(GET "/x/{id}", class = slow, keys = [root])]
fn every_error_at_once(client: &Client) -> u32;

fn caller(client: &Client) -> u32 {
    every_error_at_once(client)
}

fn main() {
    let _ = caller;
}
