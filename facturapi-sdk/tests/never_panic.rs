//! Property tests: whatever bytes arrive (a hostile server, a forged webhook), the parsers
//! answer with a typed result and never panic.

use facturapi_sdk::models::WebhookEvent;
use facturapi_sdk::webhooks::verify_signature;
use proptest::prelude::*;
use serde_json::Value;

/// The names of every JSON response model, from the sandbox fixtures (one body per model).
fn response_models() -> Vec<String> {
    let fixtures: Value =
        serde_json::from_str(include_str!("../src/generated/sandbox_fixtures.json")).unwrap();
    fixtures["types"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,16}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 40, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("id".to_owned()),
                    Just("type".to_owned()),
                    Just("status".to_owned()),
                    Just("data".to_owned()),
                    "[a-z_]{1,10}".prop_map(String::from),
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Every response model decodes arbitrary JSON to `Ok` or `Err`, never a panic.
    #[test]
    fn every_response_decoder(value in json_value()) {
        let models = response_models();
        prop_assert!(models.len() > 50);
        for name in &models {
            let decoded = facturapi_sdk::__contract::round_trip_body(name, value.clone());
            prop_assert!(decoded.is_some(), "{} is a known model", name);
        }
    }

    /// Arbitrary bytes as a body: not JSON is an error, not a panic.
    #[test]
    fn every_response_decoder_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(value) = serde_json::from_slice::<Value>(&bytes) {
            for name in response_models() {
                let _ = facturapi_sdk::__contract::round_trip_body(&name, value.clone());
            }
        }
    }

    /// Any signature header and body: a typed `WebhookError`, never a panic, never `Ok`
    /// without the right signature.
    #[test]
    fn webhook_signature_header(header in "\\PC{0,80}", body in proptest::collection::vec(any::<u8>(), 0..200), secret in "\\PC{0,20}") {
        let verified = verify_signature::<WebhookEvent>(&secret, &body, &header);
        prop_assert!(verified.is_err());
    }
}
