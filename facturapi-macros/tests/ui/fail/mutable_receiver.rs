use facturapi_sdk::{AsClient, Client, Result, endpoint};

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
