use stand_in::{Client, Result}; use facturapi_macros::endpoint;

#[endpoint(GET "invoices?x=1", class = detail_read)]
async fn bad_path(client: &Client) -> Result<()>;

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
