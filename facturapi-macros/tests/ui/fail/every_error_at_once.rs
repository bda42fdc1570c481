use stand_in::Client; use facturapi_macros::endpoint;

// Three mistakes, three errors, one build; the fallback signature keeps `caller` type-checking.
#[endpoint(GET "/x/{id}", class = slow, keys = [root])]
fn every_error_at_once(client: &Client) -> u32;

fn caller(client: &Client) -> u32 {
    every_error_at_once(client)
}

fn main() {
    let _ = caller;
}

/// Stand-ins for the SDK's types: the attribute is rejected before any of them is used.
#[allow(dead_code)]
mod stand_in {
    pub struct Client;
    pub type Result<T> = std::result::Result<T, ()>;
    pub struct Created<T>(pub T);
    pub struct Multipart;
    pub trait AsClient {
        fn as_client(&self) -> &Client;
    }
}
