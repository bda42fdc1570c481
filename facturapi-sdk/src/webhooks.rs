//! Webhook signature verification.
//!
//! Facturapi signs each webhook delivery with `Facturapi-Signature`: the lower-case hex
//! HMAC-SHA256 of the raw request body, keyed with the webhook's secret. Verify the raw bytes
//! you received, before parsing them.

use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "Facturapi-Signature";

/// Why a delivery was rejected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The header is not 64 hex characters.
    #[error("malformed Facturapi-Signature header")]
    MalformedSignature,
    /// The signature does not match the body and secret: a tampered body or a wrong secret.
    #[error("signature mismatch: the body was altered or the secret is wrong")]
    SignatureMismatch,
    /// The secret is empty.
    #[error("empty webhook secret")]
    EmptySecret,
    /// The body is authentic but is not a valid event.
    #[error("invalid event body: {0}")]
    InvalidEvent(#[source] serde_json::Error),
}

/// The signature Facturapi would send for `raw_body` under `secret` (lower-case hex).
pub fn sign(secret: &str, raw_body: &[u8]) -> String {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(raw_body);
    hex::encode(mac.finalize().into_bytes())
}

/// Checks `signature_header` against `raw_body` in constant time.
pub fn verify(secret: &str, raw_body: &[u8], signature_header: &str) -> Result<(), WebhookError> {
    if secret.is_empty() {
        return Err(WebhookError::EmptySecret);
    }
    let given = signature_header.trim();
    let given = hex::decode(given)
        .ok()
        .filter(|b| b.len() == 32)
        .ok_or(WebhookError::MalformedSignature)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(raw_body);
    let expected = mac.finalize().into_bytes();
    if bool::from(expected.as_slice().ct_eq(&given)) {
        Ok(())
    } else {
        Err(WebhookError::SignatureMismatch)
    }
}

/// Verifies the delivery, then parses it as `T` (e.g. [`crate::models::WebhookEvent`]).
pub fn verify_signature<T: DeserializeOwned>(
    secret: &str,
    raw_body: &[u8],
    signature_header: &str,
) -> Result<T, WebhookError> {
    verify(secret, raw_body, signature_header)?;
    serde_json::from_slice(raw_body).map_err(WebhookError::InvalidEvent)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231 test case 2 (HMAC-SHA256).
    #[test]
    fn rfc_4231_vector() {
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn deliveries_parse_into_the_typed_event() {
        use crate::models::WebhookEvent;
        let body = br#"{"id":"evt_1","created_at":"2024-01-01T00:00:00Z","livemode":false,"organization":"org_1","type":"receipt.self_invoice_complete","data":{"type":"receipt","object":{"id":"r1","created_at":"2024-01-01T00:00:00Z","livemode":false}}}"#;
        let event = verify_signature("whsec", body, &sign("whsec", body)).unwrap();
        assert!(
            matches!(event, WebhookEvent::SelfInvoiceCompletedEvent(_)),
            "{event:?}"
        );
        let body = br#"{"id":"evt_2","created_at":"2024-01-01T00:00:00Z","livemode":true,"type":"invoice.status_updated","data":{"type":"invoice","object":{"id":"i1","created_at":"2024-01-01T00:00:00Z","livemode":true}}}"#;
        let event = verify_signature("whsec", body, &sign("whsec", body)).unwrap();
        assert!(
            matches!(event, WebhookEvent::InvoiceStatusUpdatedEvent(_)),
            "{event:?}"
        );
    }

    #[test]
    fn distinct_errors() {
        let body = br#"{"id":"evt_1","type":"invoice.status_updated","livemode":false}"#;
        let good = sign("whsec", body);
        assert!(verify("whsec", body, &good).is_ok());
        assert!(
            verify("whsec", body, &good.to_uppercase()).is_ok(),
            "hex case does not matter"
        );
        assert!(matches!(
            verify("other", body, &good),
            Err(WebhookError::SignatureMismatch)
        ));
        let mut tampered = body.to_vec();
        tampered[10] ^= 1;
        assert!(matches!(
            verify("whsec", &tampered, &good),
            Err(WebhookError::SignatureMismatch)
        ));
        assert!(matches!(
            verify("whsec", body, "zz"),
            Err(WebhookError::MalformedSignature)
        ));
        assert!(matches!(
            verify("whsec", body, &good[..62]),
            Err(WebhookError::MalformedSignature)
        ));
        assert!(matches!(
            verify("", body, &good),
            Err(WebhookError::EmptySecret)
        ));
        let parsed: serde_json::Value = verify_signature("whsec", body, &good).unwrap();
        assert_eq!(parsed["type"], "invoice.status_updated");
        assert!(matches!(
            verify_signature::<serde_json::Value>(
                "whsec",
                b"not json",
                &sign("whsec", b"not json")
            ),
            Err(WebhookError::InvalidEvent(_))
        ));
    }
}
