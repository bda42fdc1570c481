//! Your own endpoint with the SDK's protection: `cargo run -p facturapi-sdk --example custom_endpoint`.
//!
//! `#[endpoint]` turns a bodiless `async fn` signature into a call through the SDK's send
//! path, in the class you name: the class's concurrency limit and backoff, `Retry-After`,
//! typed errors and tracing, shared with the generated methods. Without `FACTURAPI_KEY` this
//! example answers the call with a local stand-in that rate-limits the first request; with
//! `FACTURAPI_KEY=sk_test_…` it calls the real API's `GET /organizations/me`.

use std::time::Instant;

use facturapi_sdk::{AsClient, Class, Client, Result, endpoint};
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A thin wrapper of yours around the client.
struct MyApi {
    client: Client,
}

impl AsClient for MyApi {
    fn as_client(&self) -> &Client {
        &self.client
    }
}

impl MyApi {
    /// The key's organization, read as raw JSON (say, for a field newer than the spec).
    #[endpoint(GET "/organizations/me", class = detail_read, operation_id = "myOrganization", keys = [test, live])]
    async fn organization(&self) -> Result<serde_json::Value>;
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let (client, _server) = match std::env::var("FACTURAPI_KEY") {
        Ok(_) => (Client::from_env()?, None),
        Err(_) => {
            let server = MockServer::start().await;
            // The first call is rate limited for one second, then answered.
            Mock::given(path("/organizations/me"))
                .respond_with(
                    ResponseTemplate::new(429)
                        .insert_header("retry-after", "1")
                        .set_body_json(serde_json::json!({"code": "rate_limit_exceeded"})),
                )
                .up_to_n_times(1)
                .mount(&server)
                .await;
            Mock::given(path("/organizations/me"))
                .respond_with(
                    ResponseTemplate::new(200)
                        .insert_header("x-facturapi-log-id", "local-1")
                        .set_body_json(
                            serde_json::json!({"id": "org_local", "legal_name": "Local stand-in"}),
                        ),
                )
                .mount(&server)
                .await;
            println!(
                "no FACTURAPI_KEY: using a local stand-in at {}",
                server.uri()
            );
            (
                Client::builder()
                    .api_key("sk_test_local")
                    .base_url(server.uri())
                    .build()?,
                Some(server),
            )
        }
    };
    let api = MyApi { client };
    let started = Instant::now();
    let organization = api.organization().await?;
    println!(
        "organization {} in {:?} (a 429 was waited out and resent)",
        organization["id"],
        started.elapsed()
    );
    println!(
        "detail_read concurrency limit: {}",
        api.client.concurrency(Class::DetailRead)
    );
    Ok(())
}
