//! The models against bodies written from independent facts (`tests/corpus/`, see its README),
//! not from the spec they come from; a decode failure that keeps what the caller needs; the
//! raw twin of a call.

use facturapi_sdk::models::{self, AnyComplementProperties, WebhookEvent};
use facturapi_sdk::{Client, Error, Moment};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

struct Case {
    name: String,
    model: String,
    body: Value,
}

fn corpus(file: &str) -> Vec<Case> {
    let text = std::fs::read_to_string(format!(
        "{}/tests/corpus/{file}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let cases: Vec<Value> = serde_json::from_str(&text).unwrap();
    cases
        .into_iter()
        .map(|c| Case {
            name: c["name"].as_str().unwrap().to_owned(),
            model: c["model"].as_str().unwrap().to_owned(),
            body: c["body"].clone(),
        })
        .collect()
}

/// `value` without its nulls (an absent and a `null` optional field read alike).
/// Decodes `body` as `model` and writes it back: the contract hook for body models, serde for
/// webhook events (which arrive at your endpoint, not as an API answer).
fn round_trip(model: &str, body: Value) -> Option<Result<Value, serde_json::Error>> {
    if model == "WebhookEvent" {
        return Some(
            serde_json::from_value::<WebhookEvent>(body).and_then(|e| serde_json::to_value(&e)),
        );
    }
    facturapi_sdk::__contract::round_trip_body(model, body)
}

fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// Every leaf `written` has is the leaf `read` had at the same path (numbers compared as
/// numbers). Fields the model does not declare are dropped on the way, not changed.
fn leaves_kept(written: &Value, read: &Value, at: &str, diffs: &mut Vec<String>) {
    match (written, read) {
        (Value::Object(w), Value::Object(r)) => {
            for (k, v) in w {
                match r.get(k) {
                    Some(rv) => leaves_kept(v, rv, &format!("{at}.{k}"), diffs),
                    None => diffs.push(format!("{at}.{k}: written but not read")),
                }
            }
        }
        (Value::Array(w), Value::Array(r)) if w.len() == r.len() => {
            for (i, (wv, rv)) in w.iter().zip(r).enumerate() {
                leaves_kept(wv, rv, &format!("{at}[{i}]"), diffs);
            }
        }
        (Value::Number(w), Value::Number(r)) if w.as_f64() == r.as_f64() => {}
        (w, r) if w == r => {}
        (w, r) => diffs.push(format!("{at}: read {r}, written {w}")),
    }
}

fn dropped_fields(written: &Value, read: &Value, at: &str, out: &mut Vec<String>) {
    if let (Value::Object(w), Value::Object(r)) = (written, read) {
        for (k, rv) in r {
            match w.get(k) {
                None => out.push(format!("{at}.{k}")),
                Some(wv) => dropped_fields(wv, rv, &format!("{at}.{k}"), out),
            }
        }
    }
    if let (Value::Array(w), Value::Array(r)) = (written, read) {
        for (i, (wv, rv)) in w.iter().zip(r).enumerate() {
            dropped_fields(wv, rv, &format!("{at}[{i}]"), out);
        }
    }
}

#[test]
fn every_real_world_response_decodes_and_writes_back_what_it_read() {
    let cases = corpus("responses.json");
    let mut failures = Vec::new();
    let mut dropped = Vec::new();
    for case in &cases {
        let read = without_nulls(&case.body);
        match round_trip(&case.model, case.body.clone()) {
            None => failures.push(format!("{}: no model {}", case.name, case.model)),
            Some(Err(e)) => failures.push(format!("{} ({}): {e}", case.name, case.model)),
            Some(Ok(written)) => {
                let written = without_nulls(&written);
                let mut diffs = Vec::new();
                leaves_kept(&written, &read, "", &mut diffs);
                if !diffs.is_empty() {
                    failures.push(format!("{}: {}", case.name, diffs.join("; ")));
                }
                let mut fields = Vec::new();
                dropped_fields(&written, &read, "", &mut fields);
                dropped.extend(fields.into_iter().map(|f| format!("{}: {f}", case.name)));
            }
        }
    }
    let mut names: Vec<&str> = dropped
        .iter()
        .filter_map(|d| d.split_once(": ").map(|(_, p)| p))
        .collect();
    names.sort_unstable();
    names.dedup();
    println!(
        "{} responses decode; {} fields the models do not declare were dropped ({})",
        cases.len(),
        dropped.len(),
        names.join(", ")
    );
    assert!(cases.len() >= 20, "{}", cases.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        dropped.is_empty(),
        "fields the API sends that no model keeps: {dropped:?}"
    );
}

#[test]
fn every_real_world_request_round_trips_to_the_same_json() {
    let cases = corpus("requests.json");
    let mut failures = Vec::new();
    for case in &cases {
        match round_trip(&case.model, case.body.clone()) {
            None => failures.push(format!("{}: no model {}", case.name, case.model)),
            Some(Err(e)) => failures.push(format!("{} ({}): {e}", case.name, case.model)),
            Some(Ok(written)) => {
                let (w, r) = (without_nulls(&written), without_nulls(&case.body));
                let mut diffs = Vec::new();
                leaves_kept(&w, &r, "", &mut diffs);
                dropped_fields(&w, &r, "", &mut diffs);
                if !diffs.is_empty() {
                    failures.push(format!("{}: {}", case.name, diffs.join("; ")));
                }
            }
        }
    }
    println!("{} requests round-trip", cases.len());
    assert!(cases.len() >= 30, "{}", cases.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn response(name: &str) -> Value {
    corpus("responses.json")
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no case {name}"))
        .body
}

#[test]
fn the_shapes_the_spec_gets_wrong_read_as_the_api_sends_them() {
    let invoice: models::Invoice = serde_json::from_value(response("stamped ingreso")).unwrap();
    let json = serde_json::to_value(&invoice).unwrap();
    // A stamp date in the issuer's local time, without a zone: read and written as it came.
    assert_eq!(json["stamp"]["date"], "2024-04-08T08:22:11");
    assert_eq!(json["type"], "I");

    let payment: models::Invoice = serde_json::from_value(response("payment invoice")).unwrap();
    let complements = serde_json::to_value(&payment).unwrap()["complements"].clone();
    let pago: Vec<AnyComplementProperties> = serde_json::from_value(complements).unwrap();
    assert!(
        matches!(pago[0], AnyComplementProperties::Pago { .. }),
        "{pago:?}"
    );

    let parts = serde_json::to_value(
        serde_json::from_value::<models::Invoice>(response("ingreso with folio as text and parts"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(parts["items"][0]["parts"].as_array().unwrap().len(), 2);
    assert_eq!(parts["folio_number"], "914");

    let webhook: models::Webhook = serde_json::from_value(response("webhook")).unwrap();
    assert_eq!(
        serde_json::to_value(&webhook).unwrap()["enabled_events"][2],
        "*"
    );

    // Values the spec does not list are kept, byte for byte.
    let future = serde_json::to_value(
        serde_json::from_value::<models::Invoice>(response("a status the spec does not list"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (&future["status"], &future["cancellation_status"]),
        (&json!("in_review"), &json!("awaiting_customer"))
    );
    let event: WebhookEvent =
        serde_json::from_value(response("event of a type this version does not know")).unwrap();
    assert!(matches!(event, WebhookEvent::Unknown(_)), "{event:?}");
    assert_eq!(
        serde_json::to_value(&event).unwrap(),
        response("event of a type this version does not know")
    );
}

#[test]
fn request_dates_and_empty_lists_are_sent_as_written() {
    let body: models::InvoiceCreateInput = serde_json::from_value(json!({
        "customer": "c", "payment_form": "03", "date": "2024-03-15T10:30:00.000",
        "items": [{"quantity": 1, "product": {"description": "Libro", "product_key": "55101500", "price": 200, "taxes": []}}]
    }))
    .unwrap();
    let sent = serde_json::to_value(&body).unwrap();
    assert_eq!(sent["date"], "2024-03-15T10:30:00.000");
    assert_eq!(
        sent["items"][0]["product"]["taxes"],
        json!([]),
        "no taxes is not the same as unset"
    );
    let date: facturapi_sdk::DateTime = "2024-03-15".parse().unwrap();
    assert!(matches!(date.moment(), Moment::Date(_)));
    let draft: models::RetentionInput =
        serde_json::from_value(json!({"status": "draft", "customer": "c"})).unwrap();
    assert_eq!(serde_json::to_value(&draft).unwrap()["status"], "draft");
}

/// A creation whose answer the model cannot read: the error keeps the created id, the field
/// path and the body; it says the request was processed; nothing is resent.
#[tokio::test]
async fn a_create_whose_answer_does_not_decode_returns_the_id_and_the_path() {
    let server = MockServer::start().await;
    let broken = json!({"id": "inv_created_1", "livemode": false, "items": [{"quantity": "two"}]});
    Mock::given(method("POST"))
        .and(path("/invoices"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(&broken)
                .insert_header("x-facturapi-log-id", "log-d"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let client = Client::builder()
        .api_key("sk_test_decode")
        .base_url(server.uri())
        .build()
        .unwrap();
    let body: models::InvoiceCreateInput = serde_json::from_value(json!({
        "customer": "c", "payment_form": "03", "items": [{"quantity": 1, "product": "p"}]
    }))
    .unwrap();
    let error = client
        .invoices()
        .create(&body, &Default::default())
        .await
        .unwrap_err();
    let Error::Decode(decode) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(decode.path, "items[0].quantity");
    assert_eq!(decode.id.as_deref(), Some("inv_created_1"));
    assert!(decode.body.contains("\"two\""));
    assert_eq!(error.created_id(), Some("inv_created_1"));
    assert!(error.was_processed() && error.may_have_been_processed());
    assert!(error.idempotency_key().is_some());
    let shown = error.to_string();
    assert!(
        shown.contains("was processed") && shown.contains("inv_created_1"),
        "{shown}"
    );
}

/// The raw twin: same operation, same class and key rules, JSON in and out.
#[tokio::test]
async fn the_raw_twin_returns_json_with_the_same_protection() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/invoices/inv%2F1"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": "inv/1", "items": [{"quantity": "two"}]})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/invoices"))
        .respond_with(|request: &wiremock::Request| {
            let body: Value = serde_json::from_slice(&request.body).unwrap();
            ResponseTemplate::new(200).set_body_json(json!({"id": "new", "echo": body}))
        })
        .expect(1)
        .mount(&server)
        .await;
    let client = Client::builder()
        .api_key("sk_test_raw")
        .base_url(server.uri())
        .build()
        .unwrap();
    let invoice = client
        .raw("getInvoice")
        .unwrap()
        .path_param("invoice_id", "inv/1")
        .json()
        .await
        .unwrap();
    assert_eq!(
        invoice["items"][0]["quantity"], "two",
        "what the model refuses"
    );

    let created = client
        .raw("createInvoice")
        .unwrap()
        .body(&json!({"customer": "c", "items": []}))
        .send()
        .await
        .unwrap();
    let key = created.idempotency_key.clone().expect("a keyed creation");
    let echoed: Value = serde_json::from_slice(&created.body).unwrap();
    assert_eq!(echoed["echo"]["idempotency_key"], key.as_str());

    assert!(matches!(
        client.raw("noSuchOperation"),
        Err(Error::InvalidInput { .. })
    ));
    let missing = client.raw("getInvoice").unwrap().json().await.unwrap_err();
    assert!(missing.to_string().contains("invoice_id"), "{missing}");
    let user_only = Client::builder()
        .api_key("sk_test_raw")
        .base_url(server.uri())
        .build()
        .unwrap()
        .raw("createOrganization")
        .unwrap()
        .body(&json!({"name": "x"}))
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(user_only, Error::KeyKindNotAccepted { .. }),
        "{user_only:?}"
    );
}
