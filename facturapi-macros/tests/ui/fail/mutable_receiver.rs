use stand_in::{AsClient, Client, Result}; use facturapi_macros::endpoint;

struct Api(Client);

impl AsClient for Api {
    fn as_client(&self) -> &Client {
        &self.0
    }
}

impl Api {
    #[endpoint(GET "/x", class = detail_read)]
    async fn mutable_receiver(&mut self) -> Result<()>;
}

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
