//! Keeps secrets out of errors: whatever a server (or a proxy in front of it) echoes back
//! in a body or a message passes through [`redact`] before it reaches an error, and so
//! `Display`, logs and tracing.
//!
//! Hand-written rather than with `regex`: three fixed patterns do not justify a regex engine
//! in every user's build.

/// What replaces a secret.
pub(crate) const REDACTED: &str = "[redacted]";

/// `text` with `key` (the client's own secret), any Facturapi secret key (`sk_test_…`,
/// `sk_live_…`, `sk_user_…`) and the credential of any `Bearer …` or `Basic …` replaced.
pub(crate) fn redact(text: &str, key: &str) -> String {
    let text = if key.is_empty() {
        text.to_owned()
    } else {
        text.replace(key, REDACTED)
    };
    let text = redact_after(&text, &["sk_test_", "sk_live_", "sk_user_"], true);
    redact_after(&text, &["bearer ", "basic "], false)
}

/// Replaces the token that follows each (ASCII case-insensitive) `prefix`; the prefix is
/// kept when `drop_prefix` is false.
fn redact_after(text: &str, prefixes: &[&str], drop_prefix: bool) -> String {
    let lower = text.to_ascii_lowercase();
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let found = prefixes
            .iter()
            .find(|p| lower.as_bytes()[i..].starts_with(p.as_bytes()));
        let Some(prefix) = found else {
            i += 1;
            continue;
        };
        let token_start = i + prefix.len();
        let token_end = bytes[token_start..]
            .iter()
            .position(|b| !is_token_byte(*b))
            .map_or(bytes.len(), |n| token_start + n);
        if token_end == token_start || &text[token_start..token_end] == REDACTED {
            i = token_start;
            continue;
        }
        let keep_until = if drop_prefix { i } else { token_start };
        out.push_str(&text[copied..keep_until]);
        out.push_str(REDACTED);
        copied = token_end;
        i = token_end;
    }
    out.push_str(&text[copied..]);
    out
}

/// Bytes of a key or a base64/base64url/token68 credential.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'~' | b'+' | b'/' | b'=')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_replaced_and_the_rest_kept() {
        let key = "sk_test_Abc123";
        assert_eq!(
            redact("no secret here: façade", key),
            "no secret here: façade"
        );
        assert_eq!(
            redact("{\"auth\":\"Bearer sk_test_Abc123\"}", key),
            "{\"auth\":\"Bearer [redacted]\"}"
        );
        assert_eq!(redact("key sk_live_Zz9-x_ end", key), "key [redacted] end");
        assert_eq!(
            redact("authorization: BASIC dXNlcjpwYXNz==, next", key),
            "authorization: BASIC [redacted], next"
        );
        assert_eq!(redact("echo sk_test_Abc123!", key), "echo [redacted]!");
        assert_eq!(redact("a bearer", key), "a bearer", "no token after it");
        assert_eq!(redact("ünïcödé sk_user_x", ""), "ünïcödé [redacted]");
    }
}

#[cfg(test)]
mod never_panics {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any text around an echoed key: no panic, and the key never survives.
        #[test]
        fn redaction(before in "\\PC{0,30}", after in "\\PC{0,30}", key in "sk_(test|live|user)_[A-Za-z0-9]{4,20}") {
            let text = format!("{before}{key}{after}");
            let out = redact(&text, &key);
            prop_assert!(!out.contains(&key), "{}", out);
            let _ = redact(&before, "");
        }
    }
}
