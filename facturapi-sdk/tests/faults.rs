//! The fault matrix: the send path against a hostile server of our own, written on raw TCP so
//! that every byte is ours (resets, redirects, drips, junk and repeated headers, bodies cut
//! short or endless). One test per promise, each asserting the outcome and what
//! `may_have_been_processed()` says.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use facturapi_sdk::sandbox::{ClassLimits, Sandbox, SandboxConfig};
use facturapi_sdk::{Class, ClassPolicy, Client, Error, RateLimitedBecause, models};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

const KEY: &str = "sk_test_HOSTILE0123456789";

/// What the server does with one connection, after reading its request.
#[derive(Clone)]
enum Act {
    /// Writes these bytes, then closes.
    Send(Vec<u8>),
    /// Closes without answering (a reset after the request may have been processed).
    Drop,
    /// Writes these bytes, then keeps the connection open and silent.
    SendThenStall(Vec<u8>),
    /// Answers 401 with the request's own head in the body (a server echoing credentials).
    Echo,
    /// A 200 of `size` zero bytes, with `Content-Length` or chunked.
    Huge { size: usize, announced: bool },
}

/// One request as the server read it.
#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    head: String,
}

struct Hostile {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Hostile {
    /// Serves `acts` in order, one per connection (the last repeats); with `connections`,
    /// stops listening after that many (later connections are refused).
    async fn start(acts: Vec<Act>, connections: Option<usize>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            let mut n = 0;
            while let Ok((socket, _)) = listener.accept().await {
                let act = acts[n.min(acts.len() - 1)].clone();
                n += 1;
                tokio::spawn(serve(socket, act, log.clone()));
                if connections == Some(n) {
                    break; // drops the listener: the port refuses from now on
                }
            }
        });
        Hostile { url, seen }
    }

    fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Time between the first two requests.
    fn gap(&self) -> Duration {
        let seen = self.requests();
        seen[1].at - seen[0].at
    }
}

async fn read_request(socket: &mut TcpStream) -> Option<String> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buffer.len() < head_end + length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    Some(head)
}

async fn serve(mut socket: TcpStream, act: Act, log: Arc<Mutex<Vec<Seen>>>) {
    let Some(head) = read_request(&mut socket).await else {
        return;
    };
    log.lock().unwrap().push(Seen {
        at: Instant::now(),
        head: head.clone(),
    });
    match act {
        Act::Send(bytes) => {
            let _ = socket.write_all(&bytes).await;
        }
        Act::Drop => {}
        Act::SendThenStall(bytes) => {
            let _ = socket.write_all(&bytes).await;
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        Act::Echo => {
            let body = json!({"message": format!("unauthorized request: {head}"), "code": "unauthorized", "status": 401}).to_string();
            let _ = socket.write_all(&http(401, &[], &body)).await;
        }
        Act::Huge { size, announced } => {
            let head = if announced {
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {size}\r\nconnection: close\r\n\r\n"
                )
            } else {
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_owned()
            };
            if socket.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let block = vec![b'0'; 64 * 1024];
            let mut sent = 0;
            while sent < size {
                let n = block.len().min(size - sent);
                let piece = if announced {
                    block[..n].to_vec()
                } else {
                    [format!("{n:x}\r\n").as_bytes(), &block[..n], b"\r\n"].concat()
                };
                if socket.write_all(&piece).await.is_err() {
                    return; // the client stopped reading: what we want to see
                }
                sent += n;
            }
            if !announced {
                let _ = socket.write_all(b"0\r\n\r\n").await;
            }
        }
    }
}

/// A whole HTTP/1.1 response; `headers` may repeat a name.
fn http(status: u16, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} Hostile\r\nx-facturapi-log-id: log-{status}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(body);
    out.into_bytes()
}

fn json_ok(body: serde_json::Value) -> Act {
    Act::Send(http(
        200,
        &[("content-type", "application/json")],
        &body.to_string(),
    ))
}

fn customer_ok() -> Act {
    json_ok(json!({"id": "c1", "created_at": "2024-01-01T00:00:00.000Z", "livemode": false}))
}

fn too_many(retry_after: &[&str]) -> Act {
    let headers: Vec<(&str, &str)> = retry_after.iter().map(|v| ("retry-after", *v)).collect();
    Act::Send(http(
        429,
        &headers,
        r#"{"ok":false,"status":429,"code":"rate_limit_exceeded","message":"Demasiadas solicitudes"}"#,
    ))
}

fn key_in_use() -> Act {
    Act::Send(http(
        409,
        &[],
        r#"{"ok":false,"status":409,"code":"idempotency_key_in_use","message":"La llave ya está en uso"}"#,
    ))
}

/// Fast delays; the deadline and retry budget as given.
fn policy(class: Class, deadline: Duration, retries: usize) -> ClassPolicy {
    ClassPolicy::default_for(class)
        .with_backoff(Duration::from_millis(20), Duration::from_millis(80), 2.0)
        .with_deadline(deadline)
        .with_max_retries(retries)
}

fn client(url: &str, deadline: Duration, retries: usize) -> Client {
    let mut builder = Client::builder()
        .api_key(KEY)
        .base_url(url)
        .timeout(Duration::from_secs(30));
    for class in Class::ALL {
        builder = builder.class_policy(class, policy(class, deadline, retries));
    }
    builder.build().unwrap()
}

fn invoice_body() -> models::InvoiceCreateInput {
    serde_json::from_value(json!({
        "customer": "c1",
        "items": [{"product": "p1", "quantity": 1}],
        "payment_form": "03",
        "idempotency_key": "inv-key-1"
    }))
    .unwrap()
}

async fn create_invoice(client: &Client) -> Result<(), Error> {
    client
        .invoices()
        .create(&invoice_body(), &Default::default())
        .await
        .map(|_| ())
}

// 1. Once an attempt may have reached the server, every later error of the call says so.

#[tokio::test]
async fn a_drop_then_409_in_use_still_says_it_may_have_been_processed() {
    let server = Hostile::start(vec![Act::Drop, key_in_use()], None).await;
    let error = create_invoice(&client(&server.url, Duration::from_secs(10), 3))
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(409), "{error}");
    assert!(error.may_have_been_processed(), "{error}");
    assert_eq!(error.idempotency_key(), Some("inv-key-1"));
    assert_eq!(
        server.requests().len(),
        4,
        "the keyed create used its budget"
    );
}

#[tokio::test]
async fn a_drop_then_429s_until_the_deadline_still_says_it_may_have_been_processed() {
    let server = Hostile::start(vec![Act::Drop, too_many(&["0.2"])], None).await;
    let error = create_invoice(&client(&server.url, Duration::from_millis(1200), 3))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::RateLimited {
                because: RateLimitedBecause::Deadline,
                may_have_been_processed: true,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("may have been processed"));
}

#[tokio::test]
async fn a_drop_then_a_refused_connection_still_says_it_may_have_been_processed() {
    // One connection, dropped after reading the request; then the port refuses.
    let server = Hostile::start(vec![Act::Drop], Some(1)).await;
    let error = create_invoice(&client(&server.url, Duration::from_secs(10), 3))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Transport {
                may_have_been_processed: true,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(server.requests().len(), 1);
}

// 2. No redirects: nothing is sent to, or returned from, another origin.

#[tokio::test]
async fn redirects_are_errors_and_nothing_goes_to_the_other_origin() {
    let elsewhere = Hostile::start(vec![customer_ok()], None).await;
    for status in [301, 302, 303, 307, 308] {
        let location = format!("{}/invoices", elsewhere.url);
        let server = Hostile::start(
            vec![Act::Send(http(status, &[("location", &location)], ""))],
            None,
        )
        .await;
        let client = client(&server.url, Duration::from_secs(5), 3);
        let error = create_invoice(&client).await.unwrap_err();
        assert!(
            matches!(&error, Error::Redirect { status: s, location: Some(l), may_have_been_processed: true, .. } if *s == status && *l == location),
            "{status}: {error:?}"
        );
        assert_eq!(
            error.idempotency_key(),
            Some("inv-key-1"),
            "resend with the key"
        );
        let error = client.customers().retrieve("c1").await.unwrap_err();
        assert!(matches!(error, Error::Redirect { .. }), "{error:?}");
        assert_eq!(server.requests().len(), 2, "no resend of a redirect");
    }
    assert!(
        elsewhere.requests().is_empty(),
        "{:?}",
        elsewhere.requests()
    );

    // A caller's own HTTP client that follows redirects: the foreign answer is refused.
    let server = Hostile::start(
        vec![Act::Send(http(
            302,
            &[("location", &format!("{}/customers/c1", elsewhere.url))],
            "",
        ))],
        None,
    )
    .await;
    let following = Client::builder()
        .api_key(KEY)
        .base_url(&server.url)
        .http_client(reqwest::Client::new())
        .build()
        .unwrap();
    let error = following.customers().retrieve("c1").await.unwrap_err();
    assert!(
        matches!(&error, Error::Redirect { status: 200, .. }),
        "{error:?}"
    );
}

// 3. The deadline bounds the whole call, attempts in flight and body reads included.

#[tokio::test]
async fn the_deadline_bounds_a_call_whose_server_never_answers() {
    for act in [
        Act::SendThenStall(Vec::new()),
        Act::SendThenStall(b"HTTP/1.1 200 OK\r\ncontent-length: 500\r\n\r\n{\"id\":".to_vec()),
    ] {
        let server = Hostile::start(vec![act], None).await;
        let client = client(&server.url, Duration::from_secs(1), 3); // attempt timeout: 30 s
        let start = Instant::now();
        let error = client.customers().retrieve("c1").await.unwrap_err();
        let took = start.elapsed();
        assert!(matches!(error, Error::Timeout { .. }), "{error:?}");
        assert!(
            took < Duration::from_millis(1_500),
            "a 1 s deadline took {took:?}"
        );
    }
}

// 4. Retry-After: above the cap, fractional, several, zero, on a 503.

#[tokio::test]
async fn a_retry_after_above_the_cap_fails_at_once_with_the_servers_value() {
    let server = Hostile::start(vec![too_many(&["86400"])], None).await;
    let start = Instant::now();
    let error = create_invoice(&client(&server.url, Duration::from_secs(120), 3))
        .await
        .unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(1));
    let Error::RateLimited {
        retry_after,
        because,
        may_have_been_processed,
        ..
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!(*retry_after, Some(Duration::from_secs(86_400)));
    assert_eq!(
        *because,
        RateLimitedBecause::RetryAfterAboveCap(Duration::from_secs(120))
    );
    assert!(!may_have_been_processed);
    let text = error.to_string();
    assert!(
        text.contains("longer than retry_after_cap") && !text.contains("deadline"),
        "{text}"
    );
}

/// The wait between a 429 carrying these `Retry-After` headers and the resend.
async fn wait_after_429(retry_after: &[&str]) -> Duration {
    let server = Hostile::start(vec![too_many(retry_after), customer_ok()], None).await;
    client(&server.url, Duration::from_secs(10), 3)
        .customers()
        .retrieve("c1")
        .await
        .unwrap();
    server.gap()
}

#[tokio::test]
async fn fractional_and_repeated_retry_after_headers_are_honoured() {
    let fractional = wait_after_429(&["0.6"]).await;
    assert!(fractional >= Duration::from_millis(600), "{fractional:?}");
    // Of several Retry-After headers, the longest wins.
    let several = wait_after_429(&["0.1", "0.7", "junk"]).await;
    assert!(several >= Duration::from_millis(700), "{several:?}");
}

#[tokio::test]
async fn retry_after_zero_is_floored_at_the_class_backoff() {
    let server = Hostile::start(vec![too_many(&["0"])], None).await;
    let client = Client::builder()
        .api_key(KEY)
        .base_url(&server.url)
        .static_limits()
        .class_policy(
            Class::DetailRead,
            ClassPolicy::default_for(Class::DetailRead)
                .with_backoff(Duration::from_millis(250), Duration::from_secs(1), 2.0)
                .with_deadline(Duration::from_secs(1)),
        )
        .build()
        .unwrap();
    let error = client.customers().retrieve("c1").await.unwrap_err();
    assert!(matches!(error, Error::RateLimited { .. }), "{error:?}");
    let sent = server.requests().len();
    assert!(
        (2..=5).contains(&sent),
        "at most one request per 250 ms: {sent} in 1 s"
    );
}

#[tokio::test]
async fn a_503_retry_after_is_honoured_for_a_safe_request() {
    let unavailable = Act::Send(http(503, &[("retry-after", "0.6")], "<html>down</html>"));
    let server = Hostile::start(vec![unavailable, customer_ok()], None).await;
    client(&server.url, Duration::from_secs(10), 3)
        .customers()
        .retrieve("c1")
        .await
        .unwrap();
    assert!(
        server.gap() >= Duration::from_millis(600),
        "{:?}",
        server.gap()
    );
}

// 5. Reading a 2xx body can fail: retried when safe, counted, typed.

fn cut_short() -> Act {
    Act::Send(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\nx-facturapi-log-id: log-200\r\nconnection: close\r\n\r\n{\"id\":\"c1\"".to_vec())
}

#[tokio::test]
async fn a_body_cut_short_is_resent_when_safe_and_counted() {
    let server = Hostile::start(vec![cut_short(), cut_short(), customer_ok()], None).await;
    let customer = client(&server.url, Duration::from_secs(10), 3)
        .customers()
        .retrieve("c1")
        .await
        .unwrap();
    assert_eq!(customer.id, "c1");
    assert_eq!(server.requests().len(), 3);

    let server = Hostile::start(vec![cut_short()], None).await;
    let error = client(&server.url, Duration::from_secs(10), 2)
        .customers()
        .retrieve("c1")
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Transport {
                attempts: 3,
                may_have_been_processed: true,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(error.log_id(), Some("log-200"), "{error:?}");
}

#[tokio::test]
async fn a_body_that_stops_arriving_is_a_timeout() {
    let stalled =
        Act::SendThenStall(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"id\":".to_vec());
    let server = Hostile::start(vec![stalled], None).await;
    let client = Client::builder()
        .api_key(KEY)
        .base_url(&server.url)
        .timeout(Duration::from_millis(300))
        .class_policy(
            Class::DetailRead,
            policy(Class::DetailRead, Duration::from_secs(10), 1),
        )
        .build()
        .unwrap();
    let error = client.customers().retrieve("c1").await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::Timeout {
                attempts: 2,
                may_have_been_processed: true,
                ..
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_500_is_resent_for_a_get_and_for_a_keyed_creation_but_not_for_an_unsafe_post() {
    let error_500 = Act::Send(http(500, &[], r#"{"message":"boom","code":"internal"}"#));
    let server = Hostile::start(vec![error_500.clone(), customer_ok()], None).await;
    client(&server.url, Duration::from_secs(10), 3)
        .customers()
        .retrieve("c1")
        .await
        .unwrap();
    assert_eq!(server.requests().len(), 2);

    let invoice = json_ok(json!({"id": "i1"}));
    let server = Hostile::start(vec![error_500.clone(), invoice], None).await;
    let _ = create_invoice(&client(&server.url, Duration::from_secs(10), 3)).await;
    assert_eq!(server.requests().len(), 2, "resent with its key");
    assert!(server.requests()[1].head.starts_with("POST /invoices"));

    let server = Hostile::start(vec![error_500], None).await;
    let error = client(&server.url, Duration::from_secs(10), 3)
        .invoices()
        .send_by_email("i1", &Default::default())
        .await
        .unwrap_err();
    assert!(error.may_have_been_processed());
    assert_eq!(server.requests().len(), 1, "an e-mail is not sent twice");
}

// 6. Bounded memory and bounded messages.

#[tokio::test]
async fn a_huge_body_is_refused_without_reading_it_whole() {
    for announced in [true, false] {
        let server = Hostile::start(
            vec![Act::Huge {
                size: 200 * 1024 * 1024,
                announced,
            }],
            None,
        )
        .await;
        let client = Client::builder()
            .api_key(KEY)
            .base_url(&server.url)
            .max_body_size(1024 * 1024)
            .build()
            .unwrap();
        let start = Instant::now();
        let error = client.customers().retrieve("c1").await.unwrap_err();
        assert!(
            matches!(
                error,
                Error::BodyTooLarge {
                    status: 200,
                    limit: 1_048_576,
                    may_have_been_processed: true,
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}

#[tokio::test]
async fn a_ten_megabyte_error_message_is_bounded_on_the_error_and_in_display() {
    let message = "x".repeat(10 * 1024 * 1024);
    let body = json!({"message": message, "code": "validation_error", "status": 400}).to_string();
    let server = Hostile::start(vec![Act::Send(http(400, &[], &body))], None).await;
    let error = client(&server.url, Duration::from_secs(10), 3)
        .customers()
        .retrieve("c1")
        .await
        .unwrap_err();
    let Error::Api(api) = &error else {
        panic!("{error:?}")
    };
    assert!(api.body.len() <= facturapi_sdk::error::ERROR_BODY_LIMIT);
    assert!(
        error.to_string().len() < 1_000,
        "{} bytes",
        error.to_string().len()
    );
}

// 7. Error bodies in a foreign shape keep their text.

#[tokio::test]
async fn foreign_and_dripping_error_bodies_keep_their_text() {
    let proxy = Act::Send(http(
        400,
        &[("content-type", "application/json")],
        r#"{"error":"request blocked by the gateway","id":"gw-7"}"#,
    ));
    let server = Hostile::start(vec![proxy], None).await;
    let error = client(&server.url, Duration::from_secs(10), 3)
        .customers()
        .retrieve("c1")
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("request blocked by the gateway"),
        "{error}"
    );

    let dripping = Act::SendThenStall(
        b"HTTP/1.1 400 Bad Request\r\ncontent-length: 300\r\nx-facturapi-log-id: log-drip\r\n\r\n{\"message\":\"slow validation".to_vec(),
    );
    let server = Hostile::start(vec![dripping], None).await;
    let client = Client::builder()
        .api_key(KEY)
        .base_url(&server.url)
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let error = client.customers().retrieve("c1").await.unwrap_err();
    assert_eq!(error.status(), Some(400), "{error:?}");
    assert!(error.to_string().contains("slow validation"), "{error}");
    assert_eq!(error.log_id(), Some("log-drip"));
}

// 8. Key hygiene.

#[tokio::test]
async fn an_echoed_key_never_reaches_an_error() {
    let server = Hostile::start(vec![Act::Echo], None).await;
    let error = client(&server.url, Duration::from_secs(10), 3)
        .customers()
        .retrieve("c1")
        .await
        .unwrap_err();
    let shown = format!("{error} {error:?}");
    assert!(shown.contains("[redacted]"), "{shown}");
    assert!(!shown.contains("HOSTILE0123456789"), "{shown}");
}

#[test]
fn live_keys_need_https_and_keys_are_visible_ascii() {
    let over_http = Client::builder()
        .api_key("sk_live_abc")
        .base_url("http://127.0.0.1:9")
        .build();
    assert!(
        matches!(&over_http, Err(Error::InvalidInput { message, .. }) if message.contains("unencrypted")),
        "{over_http:?}"
    );
    for key in ["sk_user_abc", "sk_live_abc"] {
        assert!(
            Client::builder()
                .api_key(key)
                .base_url("http://127.0.0.1:9")
                .allow_insecure_http()
                .build()
                .is_ok()
        );
    }
    assert!(
        Client::builder()
            .api_key("sk_test_abc")
            .base_url("http://127.0.0.1:9")
            .build()
            .is_ok(),
        "a test key over a local http sandbox is fine"
    );
    for key in ["sk_test_clé", "sk_test_a b", "sk_test_tab\there"] {
        let error = Client::builder().api_key(key).build().unwrap_err();
        assert!(
            error.to_string().contains("visible ASCII"),
            "{key:?}: {error}"
        );
    }
}

// 9. Resend rules per operation, not per HTTP method.

#[tokio::test]
async fn renewing_a_live_key_is_never_resent_after_a_drop() {
    let server = Hostile::start(vec![Act::Drop], None).await;
    let error = client_user(&server.url)
        .organizations()
        .renew_live_api_key("o1")
        .await
        .unwrap_err();
    assert!(error.may_have_been_processed(), "{error:?}");
    assert_eq!(server.requests().len(), 1, "a PUT that mints a secret");
    // An idempotent PUT is resent.
    let server = Hostile::start(vec![Act::Drop, customer_ok()], None).await;
    client_user(&server.url)
        .organizations()
        .update_domain(
            "o1",
            &serde_json::from_value(json!({"domain": "acme"})).unwrap(),
        )
        .await
        .ok();
    assert_eq!(server.requests().len(), 2);
}

fn client_user(url: &str) -> Client {
    Client::builder()
        .api_key("sk_user_HOSTILE")
        .base_url(url)
        .allow_insecure_http()
        .class_policy(
            Class::Write,
            policy(Class::Write, Duration::from_secs(10), 3),
        )
        .build()
        .unwrap()
}

/// Every operation's resend rule, pinned: a change shows in review as a diff of
/// `tests/snapshots/resend_rules.txt` (`EXPECTORATE=overwrite` to accept it).
#[test]
fn the_resend_rule_of_each_of_the_110_operations() {
    let mut table = String::new();
    for op in facturapi_sdk::operations() {
        table.push_str(&format!(
            "{:<15} {:<7} {:<62} {}\n",
            op.resend.as_str(),
            op.method,
            op.path,
            op.operation_id
        ));
    }
    assert_eq!(facturapi_sdk::operations().len(), 110);
    expectorate::assert_contents("tests/snapshots/resend_rules.txt", &table);
}

// 10. Adaptive mode under a pure rate limit keeps its concurrency, and has a ceiling.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_bucket_refusing_a_burst_of_reads_does_not_cut_concurrency() {
    let config = SandboxConfig::default().limit(Class::DetailRead, ClassLimits::rate(10.0, 2.0));
    let sandbox = Sandbox::start(config).await.unwrap();
    let client = Client::builder()
        .api_key(sandbox.test_key())
        .base_url(sandbox.base_url())
        .build()
        .unwrap();
    let customer = client
        .customers()
        .create(
            &serde_json::from_value(json!({"legal_name": "Cliente", "tax_id": "XAXX010101000", "tax_system": "601", "address": {"zip": "86500"}})).unwrap(),
            &Default::default(),
        )
        .await
        .unwrap()
        .id
        .clone();
    for _round in 0..3 {
        let reads = (0..8).map(|_| client.customers().retrieve(&customer));
        for read in futures_util::future::join_all(reads).await {
            read.unwrap();
        }
    }
    let learned = client.learned(Class::DetailRead);
    assert!(learned.rate_limited > 0, "the bucket refused: {learned:?}");
    assert_eq!(
        (learned.concurrency, learned.concurrency_cuts),
        (8, 0),
        "{learned:?}"
    );
    sandbox.shutdown().await;
}

#[test]
fn adaptive_growth_has_a_ceiling_per_class() {
    for class in Class::ALL {
        let policy = ClassPolicy::default_for(class);
        assert!(
            policy.max_concurrency >= policy.concurrency && policy.max_concurrency <= 64,
            "{class}: {policy:?}"
        );
    }
    assert_eq!(
        ClassPolicy::default_for(Class::Create)
            .with_max_concurrency(2)
            .max_concurrency,
        4,
        "never below the starting concurrency"
    );
}
