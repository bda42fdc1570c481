use stand_in::Created;
use stand_in::{Client, Result}; use facturapi_macros::endpoint;

#[endpoint(POST "/x", class = create, body = body)]
async fn created_without_idempotency_key(client: &Client, body: &serde_json::Value) -> Result<Created<serde_json::Value>>;

fn main() {}

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
