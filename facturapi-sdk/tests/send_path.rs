//! The send path against a local HTTP server (wiremock): encoding, auth, classes, 429s,
//! retries, idempotency keys, errors and secrets.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use facturapi_sdk::resources::customers::ListCustomersQuery;
use facturapi_sdk::resources::invoices::{
    CreateInvoiceQuery, ListInvoicesQuery, StampDraftInvoiceQuery,
};
use facturapi_sdk::{
    Class, ClassPolicy, Client, Error, ErrorCode, KeyKind, MaybePending, Multipart, models,
};
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const KEY: &str = "sk_test_SECRETSECRETSECRET42";

fn customer(id: &str) -> Value {
    json!({"id": id, "created_at": "2024-01-01T00:00:00.000Z", "livemode": false})
}

/// Small delays so retry tests are quick; the rest stays default.
fn fast(class: Class) -> ClassPolicy {
    ClassPolicy::default_for(class).with_backoff(
        Duration::from_millis(20),
        Duration::from_millis(80),
        2.0,
    )
}

fn client(server: &MockServer) -> Client {
    let mut builder = Client::builder().api_key(KEY).base_url(server.uri());
    for class in Class::ALL {
        builder = builder.class_policy(class, fast(class));
    }
    builder.build().unwrap()
}

/// Answers from a script of responses (the last repeats) and records each arrival.
#[derive(Clone)]
struct Script {
    responses: Arc<Vec<ResponseTemplate>>,
    arrivals: Arc<Mutex<Vec<(Instant, Request)>>>,
}

impl Script {
    fn new(responses: Vec<ResponseTemplate>) -> Self {
        Self {
            responses: Arc::new(responses),
            arrivals: Arc::default(),
        }
    }

    fn arrivals(&self) -> Vec<(Instant, Request)> {
        self.arrivals.lock().unwrap().clone()
    }
}

impl Respond for Script {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut arrivals = self.arrivals.lock().unwrap();
        let n = arrivals.len();
        arrivals.push((Instant::now(), request.clone()));
        self.responses[n.min(self.responses.len() - 1)].clone()
    }
}

fn ok_json(value: Value) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(value)
        .insert_header("x-facturapi-log-id", "log-ok")
}

fn rate_limited(retry_after: Option<&str>) -> ResponseTemplate {
    let template = ResponseTemplate::new(429)
        .set_body_json(json!({"ok": false, "message": "Demasiadas solicitudes", "status": 429, "code": "rate_limit_exceeded"}))
        .insert_header("x-facturapi-log-id", "log-429");
    match retry_after {
        Some(value) => template.insert_header("retry-after", value),
        None => template,
    }
}

#[tokio::test]
async fn every_class_sends_method_path_query_body_and_auth() {
    let server = MockServer::start().await;
    let bearer = format!("Bearer {KEY}");
    let ua = format!("facturapi-rs/{}", env!("CARGO_PKG_VERSION"));
    // detail_read
    Mock::given(method("GET"))
        .and(path("/customers/c1"))
        .and(header("authorization", bearer.as_str()))
        .and(header("user-agent", ua.as_str()))
        .respond_with(ok_json(customer("c1")))
        .expect(1)
        .mount(&server)
        .await;
    // list_read, with a deepObject date filter and a comma-free exploded list
    Mock::given(method("GET"))
        .and(path("/invoices"))
        .and(query_param("q", "Dunder Mifflin"))
        .and(query_param("date[gte]", "2024-01-01T00:00:00Z"))
        .and(query_param("page", "2"))
        .and(header("authorization", bearer.as_str()))
        .respond_with(ok_json(
            json!({"page": 2, "total_pages": 2, "total_results": 0, "data": []}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    // create
    Mock::given(method("POST"))
        .and(path("/customers"))
        .and(query_param("createEditLink", "true"))
        .and(body_partial_json(
            json!({"legal_name": "Dunder Mifflin", "tax_id": "ABC101010111"}),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(customer("c2")))
        .expect(1)
        .mount(&server)
        .await;
    // write
    Mock::given(method("PUT"))
        .and(path("/customers/c2"))
        .and(body_partial_json(json!({"email": "a@b.mx"})))
        .respond_with(ok_json(customer("c2")))
        .expect(1)
        .mount(&server)
        .await;
    // heavy_write
    Mock::given(method("POST"))
        .and(path("/invoices/i1/stamp"))
        .respond_with(ok_json(
            json!({"id": "i1", "created_at": "2024-01-01T00:00:00Z", "livemode": false}),
        ))
        .expect(1)
        .mount(&server)
        .await;

    let client = client(&server);
    assert_eq!(client.customers().retrieve("c1").await.unwrap().id, "c1");

    let query = ListInvoicesQuery::default()
        .q("Dunder Mifflin")
        .date(models::DateRange {
            gte: Some("2024-01-01T00:00:00Z".parse().unwrap()),
            ..Default::default()
        })
        .page(2);
    assert_eq!(client.invoices().list(&query).await.unwrap().page, Some(2));

    let body: models::CustomerCreateInput = serde_json::from_value(json!({
        "legal_name": "Dunder Mifflin", "tax_id": "ABC101010111", "tax_system": "601", "address": {"zip": "85900"}
    }))
    .unwrap();
    let query =
        facturapi_sdk::resources::customers::CreateCustomerQuery::default().create_edit_link(true);
    assert_eq!(
        client.customers().create(&body, &query).await.unwrap().id,
        "c2"
    );

    let edit: models::CustomerEditBody =
        serde_json::from_value(json!({"email": "a@b.mx"})).unwrap();
    client
        .customers()
        .update("c2", &edit, &Default::default())
        .await
        .unwrap();

    client
        .invoices()
        .stamp_draft("i1", &StampDraftInvoiceQuery::default())
        .await
        .unwrap();
    server.verify().await;
}

#[tokio::test]
async fn path_parameters_are_encoded_and_dot_segments_refused() {
    let server = MockServer::start().await;
    let script = Script::new(vec![ok_json(customer("x"))]);
    Mock::given(method("GET"))
        .respond_with(script.clone())
        .mount(&server)
        .await;
    let client = client(&server);
    client.customers().retrieve("a/b?c=d#e").await.unwrap();
    client.customers().retrieve("../invoices").await.unwrap();
    let seen: Vec<String> = script
        .arrivals()
        .iter()
        .map(|(_, r)| r.url.path().to_owned())
        .collect();
    assert_eq!(
        seen,
        ["/customers/a%2Fb%3Fc%3Dd%23e", "/customers/..%2Finvoices"]
    );
    assert!(
        script
            .arrivals()
            .iter()
            .all(|(_, r)| r.url.query().is_none())
    );
    for bad in ["..", ".", ""] {
        let error = client.customers().retrieve(bad).await.unwrap_err();
        assert!(
            matches!(error, Error::InvalidInput { .. }),
            "{bad:?}: {error}"
        );
    }
    assert_eq!(script.arrivals().len(), 2, "refused ids send nothing");
}

async fn wait_after_429(retry_after: Option<String>) -> Duration {
    let server = MockServer::start().await;
    let script = Script::new(vec![
        rate_limited(retry_after.as_deref()),
        ok_json(customer("c")),
    ]);
    Mock::given(method("GET"))
        .respond_with(script.clone())
        .mount(&server)
        .await;
    client(&server).customers().retrieve("c").await.unwrap();
    let arrivals = script.arrivals();
    assert_eq!(arrivals.len(), 2, "a 429 is always resent");
    arrivals[1].0 - arrivals[0].0
}

#[tokio::test]
async fn retry_after_in_seconds_and_as_http_date_is_honoured() {
    assert!(wait_after_429(Some("1".into())).await >= Duration::from_secs(1));
    let date = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(3));
    // HTTP-dates have one-second resolution: at least two seconds remain.
    assert!(wait_after_429(Some(date)).await >= Duration::from_secs(2) - Duration::from_millis(50));
}

#[tokio::test]
async fn junk_or_absent_retry_after_falls_back_to_the_class_backoff() {
    for retry_after in [Some("soon".to_owned()), Some("-5".to_owned()), None] {
        let wait = wait_after_429(retry_after.clone()).await;
        // Backoff of the test policy: at most 20 ms before jitter; well under a second.
        assert!(
            wait < Duration::from_millis(900),
            "{retry_after:?}: {wait:?}"
        );
    }
}

#[tokio::test]
async fn a_429_pauses_its_whole_class_but_not_the_others() {
    let server = MockServer::start().await;
    let first = Script::new(vec![rate_limited(Some("1")), ok_json(customer("a"))]);
    let second = Script::new(vec![ok_json(customer("b"))]);
    let lists = Script::new(vec![ok_json(
        json!({"page": 1, "total_pages": 1, "total_results": 0, "data": []}),
    )]);
    Mock::given(path("/customers/a"))
        .respond_with(first.clone())
        .mount(&server)
        .await;
    Mock::given(path("/customers/b"))
        .respond_with(second.clone())
        .mount(&server)
        .await;
    Mock::given(path("/customers"))
        .respond_with(lists.clone())
        .mount(&server)
        .await;
    let client = client(&server);

    let a = tokio::spawn({
        let client = client.clone();
        async move { client.customers().retrieve("a").await }
    });
    while client.paused_until(Class::DetailRead).is_none() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let paused_at = Instant::now();
    assert!(client.paused_until(Class::ListRead).is_none());
    let no_filter = ListCustomersQuery::default();
    let (b, list) = tokio::join!(
        client.customers().retrieve("b"),
        client.customers().list(&no_filter)
    );
    b.unwrap();
    list.unwrap();
    a.await.unwrap().unwrap();

    let b_at = second.arrivals()[0].0;
    let list_at = lists.arrivals()[0].0;
    assert!(
        b_at >= first.arrivals()[0].0 + Duration::from_millis(950),
        "the other detail read waited for the pause"
    );
    assert!(
        list_at < paused_at + Duration::from_millis(500),
        "a list read was not paused"
    );
}

#[tokio::test]
async fn in_static_mode_a_429_holds_one_slot_and_the_class_goes_on() {
    let server = MockServer::start().await;
    let first = Script::new(vec![rate_limited(Some("1")), ok_json(customer("a"))]);
    let others = Script::new(vec![ok_json(customer("b"))]);
    Mock::given(path("/customers/a"))
        .respond_with(first.clone())
        .mount(&server)
        .await;
    Mock::given(path("/customers/b"))
        .respond_with(others.clone())
        .mount(&server)
        .await;
    let mut builder = Client::builder()
        .api_key(KEY)
        .base_url(server.uri())
        .static_limits();
    for class in Class::ALL {
        builder = builder.class_policy(class, fast(class).with_concurrency(2));
    }
    let client = builder.build().unwrap();

    let a = tokio::spawn({
        let client = client.clone();
        async move { client.customers().retrieve("a").await }
    });
    while first.arrivals().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        client.paused_until(Class::DetailRead).is_none(),
        "no class pause"
    );
    // `a` waits out its Retry-After holding one of the two permits: the other serves the rest
    // of the class, one at a time.
    let started = Instant::now();
    for _ in 0..3 {
        client.customers().retrieve("b").await.unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_millis(700),
        "the class went on during a's Retry-After"
    );
    a.await.unwrap().unwrap();
    let arrivals = first.arrivals();
    assert!(
        arrivals[1].0 - arrivals[0].0 >= Duration::from_secs(1),
        "a honoured its Retry-After"
    );
}

#[tokio::test]
async fn the_server_never_sees_more_concurrent_requests_of_a_class_than_its_permits() {
    let server = MockServer::start().await;
    let script = Script::new(vec![
        ok_json(customer("c")).set_delay(Duration::from_millis(300)),
    ]);
    Mock::given(method("GET"))
        .respond_with(script.clone())
        .mount(&server)
        .await;
    let client = Client::builder()
        .api_key(KEY)
        .base_url(server.uri())
        .class_policy(
            Class::DetailRead,
            // Adaptive mode grows the permits while callers wait, up to the policy's most:
            // three at most here.
            ClassPolicy::default_for(Class::DetailRead)
                .with_concurrency(3)
                .with_max_concurrency(3),
        )
        .build()
        .unwrap();
    let calls = (0..12).map(|i| {
        let client = client.clone();
        async move { client.customers().retrieve(&format!("c{i}")).await }
    });
    for result in futures_util::future::join_all(calls).await {
        result.unwrap();
    }
    // Each permit is held for the 300 ms the server takes, so no 250 ms window sees a 4th arrival.
    let times: Vec<Instant> = script.arrivals().iter().map(|(t, _)| *t).collect();
    assert_eq!(times.len(), 12);
    for t in &times {
        let window = times
            .iter()
            .filter(|u| **u >= *t && **u < *t + Duration::from_millis(250))
            .count();
        assert!(window <= 3, "{window} arrivals within 250 ms");
    }
    // Resizable at runtime.
    client.set_concurrency(Class::DetailRead, 5);
    assert_eq!(client.concurrency(Class::DetailRead), 5);
    client.set_concurrency(Class::DetailRead, 1);
    assert_eq!(client.concurrency(Class::DetailRead), 1);
}

/// A product: `createProduct` is `not_after_send` (no idempotency key, no lookup by value).
fn product_body() -> models::ProductCreateBody {
    serde_json::from_value(
        json!({"description": "Ukelele", "product_key": "60131324", "price": 345.6}),
    )
    .unwrap()
}

fn invoice_body() -> models::InvoiceCreateInput {
    serde_json::from_value(json!({
        "customer": "c1",
        "items": [{"product": "p1", "quantity": 1}],
        "payment_form": "03",
        "external_id": "order-1"
    }))
    .unwrap()
}

#[tokio::test]
async fn the_idempotency_key_is_filled_once_and_kept_across_retries() {
    let server = MockServer::start().await;
    let invoice = json!({"id": "i1", "created_at": "2024-01-01T00:00:00Z", "livemode": false, "status": "valid"});
    let script = Script::new(vec![
        ResponseTemplate::new(503),
        ResponseTemplate::new(502),
        ok_json(invoice),
    ]);
    Mock::given(method("POST"))
        .and(path("/invoices"))
        .respond_with(script.clone())
        .mount(&server)
        .await;
    let created = client(&server)
        .invoices()
        .create(&invoice_body(), &CreateInvoiceQuery::default())
        .await
        .unwrap();
    let keys: Vec<String> = script
        .arrivals()
        .iter()
        .map(|(_, r)| {
            serde_json::from_slice::<Value>(&r.body).unwrap()["idempotency_key"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(keys.len(), 3);
    assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
    assert_eq!(created.idempotency_key, keys[0]);
    assert!(uuid::Uuid::parse_str(&keys[0]).is_ok());
    assert!(matches!(created.value, MaybePending::Done(_)));
}

#[tokio::test]
async fn a_202_is_a_pending_invoice_not_an_error() {
    let server = MockServer::start().await;
    let pending = json!({"id": "i1", "created_at": "2024-01-01T00:00:00Z", "livemode": false, "status": "pending"});
    Mock::given(method("POST"))
        .and(path("/invoices"))
        .and(body_partial_json(json!({"idempotency_key": "mine"})))
        .respond_with(ResponseTemplate::new(202).set_body_json(pending))
        .mount(&server)
        .await;
    let mut body = serde_json::to_value(invoice_body()).unwrap();
    body["idempotency_key"] = json!("mine");
    let body: models::InvoiceCreateInput = serde_json::from_value(body).unwrap();
    let created = client(&server)
        .invoices()
        .create(&body, &CreateInvoiceQuery::default())
        .await
        .unwrap();
    assert_eq!(created.idempotency_key, "mine", "the caller's key is kept");
    match created.value {
        MaybePending::Pending(invoice) => assert_eq!(invoice.id, "i1"),
        other => panic!("expected pending, got {other:?}"),
    }
}

#[tokio::test]
async fn a_post_without_a_key_is_not_retried_after_a_5xx() {
    let server = MockServer::start().await;
    let script = Script::new(vec![
        ResponseTemplate::new(503).insert_header("x-facturapi-log-id", "log-503"),
    ]);
    Mock::given(method("POST"))
        .respond_with(script.clone())
        .mount(&server)
        .await;
    let error = client(&server)
        .products()
        .create(&product_body())
        .await
        .unwrap_err();
    assert_eq!(script.arrivals().len(), 1);
    assert_eq!(error.status(), Some(503));
    assert!(error.may_have_been_processed());
    assert_eq!(error.log_id(), Some("log-503"));
}

/// A server that reads each request and closes the connection without answering.
async fn dropping_server() -> (String, Arc<Mutex<usize>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let connections = Arc::new(Mutex::new(0));
    let seen = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            *seen.lock().unwrap() += 1;
            let mut buffer = [0u8; 4096];
            let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut buffer).await;
            drop(socket);
        }
    });
    (address, connections)
}

#[tokio::test]
async fn a_dropped_connection_is_retried_only_when_safe() {
    let (address, connections) = dropping_server().await;
    let client = Client::builder()
        .api_key(KEY)
        .base_url(&address)
        .class_policy(Class::Create, fast(Class::Create))
        .class_policy(
            Class::DetailRead,
            fast(Class::DetailRead).with_max_retries(2),
        )
        .build()
        .unwrap();
    let error = client.products().create(&product_body()).await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::Transport {
                may_have_been_processed: true,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("may have been processed"));
    assert_eq!(
        *connections.lock().unwrap(),
        1,
        "an unkeyed POST is not resent"
    );

    *connections.lock().unwrap() = 0;
    let error = client.customers().retrieve("c").await.unwrap_err();
    assert!(
        matches!(error, Error::Transport { attempts: 3, .. }),
        "{error}"
    );
    assert_eq!(
        *connections.lock().unwrap(),
        3,
        "a GET is resent up to its retry budget"
    );

    *connections.lock().unwrap() = 0;
    let error = client
        .invoices()
        .create(&invoice_body(), &Default::default())
        .await
        .unwrap_err();
    assert_eq!(
        *connections.lock().unwrap(),
        4,
        "a keyed create is resent (default budget 3)"
    );
    assert!(
        error.idempotency_key().is_some(),
        "the key is reported for a later resend"
    );
}

#[tokio::test]
async fn api_errors_are_parsed_with_their_log_id() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(400)
                .insert_header("x-facturapi-log-id", "log-400")
                .set_body_json(json!({
                    "ok": false, "message": "El campo \"customer.email\" es requerido.", "status": 400,
                    "code": "invalid_request", "location": "body", "path": "customer.email",
                    "errors": [{"message": "requerido", "code": "required", "source": "facturapi", "location": "body", "path": "customer.email"},
                               {"message": "x", "code": "CFDI40145", "source": "sat"}]
                })),
        )
        .mount(&server)
        .await;
    let error = client(&server).customers().retrieve("c").await.unwrap_err();
    let Error::Api(api) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(api.status, 400);
    assert_eq!(api.code, ErrorCode::InvalidRequest);
    assert_eq!(api.path.as_deref(), Some("customer.email"));
    assert_eq!(api.location.as_deref(), Some("body"));
    assert_eq!(api.log_id.as_deref(), Some("log-400"));
    assert_eq!(api.errors.len(), 2);
    assert_eq!(
        api.errors[0].detail_code(),
        Some(facturapi_sdk::DetailCode::Required)
    );
    assert_eq!(api.errors[1].source, Some(facturapi_sdk::Source::Sat));
    assert_eq!(api.errors[1].detail_code(), None);
    assert!(!error.may_have_been_processed());
    assert!(error.to_string().contains("log-400"));
}

#[tokio::test]
async fn unknown_codes_and_non_json_error_bodies_stay_typed() {
    let server = MockServer::start().await;
    Mock::given(path("/customers/a"))
        .respond_with(
            ResponseTemplate::new(409)
                .set_body_json(json!({"code": "brand_new_code", "message": "m"})),
        )
        .mount(&server)
        .await;
    Mock::given(path("/customers/b"))
        .respond_with(ResponseTemplate::new(500).set_body_string("<html>oops</html>"))
        .mount(&server)
        .await;
    let client = client(&server);
    let error = client.customers().retrieve("a").await.unwrap_err();
    assert_eq!(
        error.code(),
        Some(&ErrorCode::Unknown("brand_new_code".into()))
    );
    let error = client.customers().retrieve("b").await.unwrap_err();
    let Error::Api(api) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(
        (api.status, api.message.as_str()),
        (500, "<html>oops</html>")
    );
}

#[tokio::test]
async fn a_malformed_success_body_is_a_decode_error_with_the_body() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-facturapi-log-id", "log-bad")
                .set_body_string("{\"id\": 42,"),
        )
        .mount(&server)
        .await;
    let error = client(&server).customers().retrieve("c").await.unwrap_err();
    let Error::Decode(decode) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(
        (
            decode.body.as_str(),
            decode.log_id.as_deref(),
            decode.status
        ),
        ("{\"id\": 42,", Some("log-bad"), 200)
    );
    assert!(error.was_processed());
}

#[tokio::test]
async fn the_deadline_turns_endless_429s_into_rate_limited() {
    let server = MockServer::start().await;
    let script = Script::new(vec![rate_limited(Some("1"))]);
    Mock::given(method("GET"))
        .respond_with(script.clone())
        .mount(&server)
        .await;
    let client = Client::builder()
        .api_key(KEY)
        .base_url(server.uri())
        .class_policy(
            Class::DetailRead,
            fast(Class::DetailRead)
                .with_deadline(Duration::from_millis(2500))
                .with_max_retries(0),
        )
        .build()
        .unwrap();
    let error = client.customers().retrieve("c").await.unwrap_err();
    let Error::RateLimited {
        attempts,
        retry_after,
        log_id,
        ..
    } = &error
    else {
        panic!("{error:?}")
    };
    assert!(
        *attempts >= 2,
        "429s do not spend the retry budget (0 here): {attempts}"
    );
    assert_eq!(*retry_after, Some(Duration::from_secs(1)));
    assert_eq!(log_id.as_deref(), Some("log-429"));
    assert!(!error.may_have_been_processed());
}

#[tokio::test]
async fn a_key_that_cannot_call_the_operation_is_refused_before_sending() {
    let server = MockServer::start().await;
    let script = Script::new(vec![ok_json(json!({}))]);
    Mock::given(method("POST"))
        .respond_with(script.clone())
        .mount(&server)
        .await;
    let body: models::OrganizationCreateInput =
        serde_json::from_value(json!({"name": "Skynet"})).unwrap();
    let error = client(&server)
        .organizations()
        .create(&body)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::KeyKindNotAccepted {
                key_kind: KeyKind::Test,
                ..
            }
        ),
        "{error}"
    );
    assert!(script.arrivals().is_empty());
}

#[tokio::test]
async fn files_come_as_bytes_and_as_a_stream() {
    let server = MockServer::start().await;
    let pdf = vec![b'%'; 100_000];
    Mock::given(path("/invoices/i1/pdf"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(pdf.clone(), "application/pdf"))
        .mount(&server)
        .await;
    let client = client(&server);
    let bytes = client
        .invoices()
        .download("i1", models::DownloadInvoiceFormat::Pdf)
        .await
        .unwrap();
    assert_eq!(bytes.len(), pdf.len());
    let mut stream = client
        .invoices()
        .download_stream("i1", models::DownloadInvoiceFormat::Pdf)
        .await
        .unwrap();
    let mut total = 0;
    while let Some(chunk) = stream.next().await {
        total += chunk.unwrap().len();
    }
    assert_eq!(total, pdf.len());
}

#[tokio::test]
async fn multipart_uploads_send_every_field() {
    let server = MockServer::start().await;
    let script = Script::new(vec![ok_json(
        json!({"id": "o1", "created_at": "2024-01-01T00:00:00Z", "livemode": true}),
    )]);
    Mock::given(method("PUT"))
        .and(path("/organizations/o1/certificate"))
        .respond_with(script.clone())
        .mount(&server)
        .await;
    let dir = std::env::temp_dir().join(format!("facturapi-multipart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("csd.key"), b"KEYBYTES").unwrap();
    let form = Multipart::new()
        .bytes("cer", "csd.cer", b"CERBYTES".to_vec())
        .file("key", dir.join("csd.key"))
        .await
        .unwrap()
        .text("password", "12345678a");
    let live = Client::builder()
        .api_key("sk_live_abc")
        .base_url(server.uri())
        .allow_insecure_http()
        .build()
        .unwrap();
    live.organizations()
        .upload_certificate("o1", &form)
        .await
        .unwrap();
    let (_, request) = &script.arrivals()[0];
    let content_type = request
        .headers
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("multipart/form-data; boundary="),
        "{content_type}"
    );
    let body = String::from_utf8_lossy(&request.body);
    for needle in [
        "name=\"cer\"",
        "filename=\"csd.cer\"",
        "CERBYTES",
        "name=\"key\"",
        "KEYBYTES",
        "name=\"password\"",
        "12345678a",
    ] {
        assert!(body.contains(needle), "{needle} missing");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn list_all_walks_the_pages_and_stops_at_the_page_cap() {
    let server = MockServer::start().await;
    for page in 1..=31 {
        let data: Vec<Value> = (0..2).map(|i| customer(&format!("c{page}-{i}"))).collect();
        Mock::given(path("/customers"))
            .and(query_param("page", page.to_string()))
            .respond_with(ok_json(
                json!({"page": page, "total_pages": 40, "total_results": 80, "data": data}),
            ))
            .mount(&server)
            .await;
    }
    let client = client(&server);
    let items: Vec<_> = client
        .customers()
        .list_all(ListCustomersQuery::default())
        .collect()
        .await;
    assert_eq!(items.len(), 61, "60 items, then the cap error");
    assert!(items[..60].iter().all(Result::is_ok));
    assert!(
        matches!(
            items[60],
            Err(Error::PageCap {
                pages: 30,
                fetched: 60,
                total_results: 80,
                ..
            })
        ),
        "{:?}",
        items[60]
    );

    // A short list ends by itself.
    let server = MockServer::start().await;
    Mock::given(path("/customers"))
        .respond_with(ok_json(
            json!({"page": 1, "total_pages": 1, "total_results": 1, "data": [customer("only")]}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let items: Vec<_> = crate::client(&server)
        .customers()
        .list_all(Default::default())
        .collect()
        .await;
    assert_eq!(items.len(), 1);
}

#[tokio::test]
async fn the_key_never_shows_in_debug_display_or_tracing() {
    use tracing_subscriber::layer::SubscriberExt as _;

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL),
    );
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = MockServer::start().await;
    let script = Script::new(vec![
        rate_limited(Some("0")),
        ResponseTemplate::new(401)
            .set_body_json(json!({"code": "api_key_invalid", "message": "m"})),
    ]);
    Mock::given(method("GET"))
        .respond_with(script.clone())
        .mount(&server)
        .await;
    let client = client(&server);
    let error = client.customers().retrieve("c").await.unwrap_err();

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("facturapi.request")
            && logs.contains("getCustomer")
            && logs.contains("log-429"),
        "{logs}"
    );
    for text in [
        format!("{client:?}"),
        format!("{error}"),
        format!("{error:?}"),
        logs,
    ] {
        assert!(!text.contains("SECRETSECRET"), "the key leaked: {text}");
    }
    assert!(
        format!("{client:?}").contains("test"),
        "Debug still shows the key kind"
    );
}

#[tokio::test]
async fn builder_rejects_bad_keys_and_urls_and_auth_overrides() {
    assert!(matches!(
        Client::builder().api_key("pk_test_1").build(),
        Err(Error::InvalidInput { .. })
    ));
    assert!(matches!(
        Client::builder().api_key("sk_test_").build(),
        Err(Error::InvalidInput { .. })
    ));
    assert!(matches!(
        Client::builder().build(),
        Err(Error::InvalidInput { .. })
    ));
    assert!(matches!(
        Client::builder().api_key(KEY).base_url("not a url").build(),
        Err(Error::InvalidInput { .. })
    ));
    let error = Client::builder()
        .api_key("sk_live_TOP\nSECRET")
        .build()
        .map(|_| ())
        .unwrap_err();
    assert!(!format!("{error:?}{error}").contains("SECRET"));

    let server = MockServer::start().await;
    Mock::given(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(header("x-team", "billing"))
        .respond_with(ok_json(customer("c")))
        .expect(1)
        .mount(&server)
        .await;
    let client = Client::builder()
        .api_key(KEY)
        .base_url(server.uri())
        .default_header("x-team".parse().unwrap(), "billing".parse().unwrap())
        .default_header(
            reqwest::header::AUTHORIZATION,
            "Bearer sk_live_other".parse().unwrap(),
        )
        .build()
        .unwrap();
    assert_eq!(client.key_kind(), KeyKind::Test);
    client.customers().retrieve("c").await.unwrap();

    // An injected reqwest client is used as is (its own settings), with the SDK's headers.
    let server = MockServer::start().await;
    Mock::given(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(header("x-from-injected", "yes"))
        .respond_with(ok_json(customer("c")))
        .expect(1)
        .mount(&server)
        .await;
    let mut defaults = reqwest::header::HeaderMap::new();
    defaults.insert("x-from-injected", "yes".parse().unwrap());
    let http = reqwest::Client::builder()
        .default_headers(defaults)
        .build()
        .unwrap();
    let client = Client::builder()
        .api_key(KEY)
        .base_url(server.uri())
        .http_client(http)
        .build()
        .unwrap();
    client.customers().retrieve("c").await.unwrap();
}

#[tokio::test]
async fn a_connection_that_never_opened_is_retried_even_for_an_unkeyed_post() {
    // A port with nothing listening: every attempt is refused before anything is sent.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = Client::builder()
        .api_key(KEY)
        .base_url(&address)
        .class_policy(Class::Create, fast(Class::Create).with_max_retries(2))
        .build()
        .unwrap();
    let body: models::CustomerCreateInput = serde_json::from_value(
        json!({"legal_name": "D", "tax_id": "ABC101010111", "tax_system": "601", "address": {"zip": "85900"}}),
    )
    .unwrap();
    let error = client
        .customers()
        .create(&body, &Default::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Transport {
                attempts: 3,
                may_have_been_processed: false,
                ..
            }
        ),
        "{error}"
    );
    assert!(!error.may_have_been_processed());
}
