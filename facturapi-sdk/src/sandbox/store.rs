//! In-memory documents of the sandbox, and the JSON helpers that shape them.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

/// `test`, `live` or `user`: resources are isolated per environment, as in Facturapi.
pub(crate) type Env = &'static str;

/// An idempotency key's state.
#[derive(Debug, Clone)]
pub(crate) enum Idempotency {
    /// A request with this key is being processed.
    InUse,
    /// The key made this document.
    Done(String),
}

#[derive(Debug, Default)]
pub(crate) struct Store {
    seq: u64,
    docs: HashMap<(Env, &'static str), BTreeMap<String, Value>>,
    pub(crate) keys: HashMap<(Env, &'static str, String), Idempotency>,
    folios: HashMap<(Env, &'static str), u64>,
}

impl Store {
    /// A new 24-hex-digit id (the form Facturapi ids take); ids sort by creation.
    pub(crate) fn new_id(&mut self) -> String {
        self.seq += 1;
        format!("5a4d{:020x}", self.seq)
    }

    pub(crate) fn next_folio(&mut self, env: Env, coll: &'static str) -> u64 {
        let folio = self.folios.entry((env, coll)).or_insert(0);
        *folio += 1;
        *folio
    }

    pub(crate) fn get(&self, env: Env, coll: &'static str, id: &str) -> Option<&Value> {
        self.docs.get(&(env, coll))?.get(id)
    }

    pub(crate) fn get_mut(&mut self, env: Env, coll: &'static str, id: &str) -> Option<&mut Value> {
        self.docs.get_mut(&(env, coll))?.get_mut(id)
    }

    pub(crate) fn insert(&mut self, env: Env, coll: &'static str, id: String, doc: Value) {
        self.docs.entry((env, coll)).or_default().insert(id, doc);
    }

    pub(crate) fn remove(&mut self, env: Env, coll: &'static str, id: &str) -> Option<Value> {
        self.docs.get_mut(&(env, coll))?.remove(id)
    }

    /// Newest first, as Facturapi lists.
    pub(crate) fn all(&self, env: Env, coll: &'static str) -> impl Iterator<Item = &Value> {
        self.docs
            .get(&(env, coll))
            .into_iter()
            .flat_map(|docs| docs.values().rev())
    }
}

/// Writes the fields of `input` onto `template` where they fit its shape: objects field by
/// field, arrays element by element (each element shaped like the template's first), scalars
/// only over a scalar of the same JSON type. Fields the template does not have are dropped,
/// so what comes out has the response model's shape whatever the request carried.
pub(crate) fn overlay(template: &mut Value, input: &Value) {
    match (template, input) {
        (_, Value::Null) => {}
        (Value::Object(t), Value::Object(i)) => {
            for (key, value) in i {
                if let Some(slot) = t.get_mut(key) {
                    overlay(slot, value);
                }
            }
        }
        (Value::Array(t), Value::Array(items)) => {
            let proto = t.first().cloned();
            *t = items
                .iter()
                .filter_map(|item| match &proto {
                    Some(p) => {
                        let mut e = p.clone();
                        overlay(&mut e, item);
                        Some(e)
                    }
                    None => None,
                })
                .collect();
        }
        (slot @ Value::String(_), v @ Value::String(_))
        | (slot @ Value::Bool(_), v @ Value::Bool(_)) => {
            *slot = v.clone();
        }
        (slot @ Value::Number(_), Value::Number(n)) => {
            // Typed clients write whole numbers of f64 fields as `2.0`; keep the template's
            // integer form where the value is whole.
            let whole = n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9e15);
            *slot = match whole {
                Some(f) if slot.is_i64() || slot.is_u64() => Value::from(f as i64),
                _ => Value::Number(n.clone()),
            };
        }
        _ => {}
    }
}

/// A field as text, for query filters (`folio_number=12` matches the number 12).
pub(crate) fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn overlay_keeps_the_template_shape() {
        let mut t = json!({"a": "x", "n": 1, "f": 1.5, "o": {"b": true}, "list": [{"q": 1, "r": "s"}], "keep": "k"});
        overlay(
            &mut t,
            &json!({"a": "y", "n": 2.5, "f": 3, "o": {"b": false, "extra": 1}, "list": [{"q": 2}, {"q": 3}], "keep": null, "unknown": 1, "a2": 5}),
        );
        assert_eq!(
            t,
            json!({"a": "y", "n": 2.5, "f": 3, "o": {"b": false}, "list": [{"q": 2, "r": "s"}, {"q": 3, "r": "s"}], "keep": "k"})
        );
    }

    #[test]
    fn ids_are_24_hex_digits_in_creation_order() {
        let mut s = Store::default();
        let a = s.new_id();
        let b = s.new_id();
        assert_eq!(a.len(), 24);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(a < b);
    }
}
