use stand_in::{Client, Result}; use facturapi_macros::endpoint;

#[endpoint(GET "/x", class = detail_read, body = body)]
async fn body_on_get(client: &Client, body: &serde_json::Value) -> Result<()>;

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
