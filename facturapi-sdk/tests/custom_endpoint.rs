//! A user's own endpoints, written outside the crate with the same `#[endpoint]` attribute,
//! share the client's class limits, backoff and typed errors with the generated methods.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use facturapi_sdk::{AsClient, Class, ClassPolicy, Client, Error, Result, endpoint, models};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// An API wrapper of the user's, e.g. for an endpoint newer than the spec.
struct Audit {
    client: Client,
}

impl AsClient for Audit {
    fn as_client(&self) -> &Client {
        &self.client
    }
}

#[derive(Debug, serde::Deserialize, PartialEq)]
struct AuditLog {
    invoice: String,
    events: Vec<String>,
}

impl Audit {
    #[endpoint(GET "/invoices/{invoice_id}/audit", class = detail_read, keys = [test, live])]
    async fn log(&self, invoice_id: &str, #[query] limit: Option<u32>) -> Result<AuditLog>;
}

/// And a free function.
#[endpoint(POST "/invoices/{invoice_id}/notes", class = write, body = note)]
async fn add_note(client: &Client, invoice_id: &str, note: &serde_json::Value) -> Result<()>;

#[derive(Clone, Default)]
struct Arrivals(Arc<Mutex<Vec<(Instant, String)>>>);

struct Answer {
    arrivals: Arrivals,
    template: ResponseTemplate,
    first: Option<ResponseTemplate>,
}

impl Respond for Answer {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut arrivals = self.arrivals.0.lock().unwrap();
        arrivals.push((Instant::now(), request.url.path().to_owned()));
        match (
            &self.first,
            arrivals
                .iter()
                .filter(|(_, p)| *p == request.url.path())
                .count(),
        ) {
            (Some(first), 1) => first.clone(),
            _ => self.template.clone(),
        }
    }
}

#[tokio::test]
async fn custom_and_generated_methods_share_the_class_semaphore() {
    let server = MockServer::start().await;
    let arrivals = Arrivals::default();
    let slow = |body: serde_json::Value| {
        ResponseTemplate::new(200)
            .set_body_json(body)
            .set_delay(Duration::from_millis(300))
    };
    Mock::given(path("/invoices/i1/audit"))
        .respond_with(Answer {
            arrivals: arrivals.clone(),
            template: slow(json!({"invoice": "i1", "events": ["created"]})),
            first: None,
        })
        .mount(&server)
        .await;
    Mock::given(path("/customers/c1"))
        .respond_with(Answer {
            arrivals: arrivals.clone(),
            template: slow(
                json!({"id": "c1", "created_at": "2024-01-01T00:00:00Z", "livemode": false}),
            ),
            first: None,
        })
        .mount(&server)
        .await;
    let client = Client::builder()
        .api_key("sk_test_custom")
        .base_url(server.uri())
        .class_policy(
            Class::DetailRead,
            ClassPolicy::default_for(Class::DetailRead).with_concurrency(1),
        )
        .build()
        .unwrap();
    let audit = Audit {
        client: client.clone(),
    };
    let (log, customer) =
        tokio::join!(audit.log("i1", Some(10)), client.customers().retrieve("c1"));
    assert_eq!(
        log.unwrap(),
        AuditLog {
            invoice: "i1".into(),
            events: vec!["created".into()]
        }
    );
    let customer: models::Customer = customer.unwrap();
    assert_eq!(customer.id, "c1");
    let times = arrivals.0.lock().unwrap().clone();
    assert_eq!(times.len(), 2);
    let gap = if times[0].0 < times[1].0 {
        times[1].0 - times[0].0
    } else {
        times[0].0 - times[1].0
    };
    assert!(
        gap >= Duration::from_millis(290),
        "one permit: the second call waited for the first ({gap:?})"
    );
}

#[tokio::test]
async fn a_429_on_a_custom_endpoint_pauses_the_class_for_everyone_and_is_retried() {
    let server = MockServer::start().await;
    let arrivals = Arrivals::default();
    let limited = ResponseTemplate::new(429)
        .insert_header("retry-after", "1")
        .set_body_json(json!({"code": "rate_limit_exceeded"}));
    Mock::given(method("POST"))
        .and(path("/invoices/i1/notes"))
        .respond_with(Answer {
            arrivals: arrivals.clone(),
            template: ResponseTemplate::new(204),
            first: Some(limited),
        })
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/products/p1"))
        .respond_with(Answer {
            arrivals: arrivals.clone(),
            template: ResponseTemplate::new(200).set_body_json(json!({"id": "p1", "created_at": "2024-01-01T00:00:00Z", "livemode": false, "description": "d", "price": 1.0, "product_key": "01010101"})),
            first: None,
        })
        .mount(&server)
        .await;
    let client = Client::builder()
        .api_key("sk_test_custom")
        .base_url(server.uri())
        .build()
        .unwrap();
    let note = tokio::spawn({
        let client = client.clone();
        async move { add_note(&client, "i1", &json!({"text": "paid"})).await }
    });
    while client.paused_until(Class::Write).is_none() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // A generated write (DELETE /products/{id}) waits for the pause the custom call caused.
    client.products().delete("p1").await.unwrap();
    note.await.unwrap().unwrap();
    let times = arrivals.0.lock().unwrap().clone();
    let first_429 = times[0].0;
    let delete_at = times.iter().find(|(_, p)| p == "/products/p1").unwrap().0;
    assert!(
        delete_at >= first_429 + Duration::from_millis(950),
        "the class was paused for Retry-After"
    );
    assert_eq!(
        times
            .iter()
            .filter(|(_, p)| p == "/invoices/i1/notes")
            .count(),
        2,
        "the 429 was resent"
    );
}

#[tokio::test]
async fn custom_endpoints_get_typed_errors_and_the_key_check() {
    let server = MockServer::start().await;
    Mock::given(path("/invoices/i1/audit"))
        .respond_with(
            ResponseTemplate::new(404)
                .insert_header("x-facturapi-log-id", "log-404")
                .set_body_json(json!({"code": "not_found", "message": "No existe"})),
        )
        .mount(&server)
        .await;
    let audit = Audit {
        client: Client::builder()
            .api_key("sk_test_custom")
            .base_url(server.uri())
            .build()
            .unwrap(),
    };
    let error = audit.log("i1", None).await.unwrap_err();
    assert_eq!(error.code(), Some(&facturapi_sdk::ErrorCode::NotFound));
    assert_eq!(error.log_id(), Some("log-404"));

    let user = Audit {
        client: Client::builder()
            .api_key("sk_user_custom")
            .base_url(server.uri())
            .allow_insecure_http()
            .build()
            .unwrap(),
    };
    assert!(matches!(
        user.log("i1", None).await,
        Err(Error::KeyKindNotAccepted { .. })
    ));
}
