//! YAML in and out, as `serde_json::Value`.
//!
//! Hand-written on top of `yaml-rust2`'s event parser (not its `YamlLoader`) for one
//! reason: the upstream spec writes zero-padded SAT codes as plain scalars (`- 01`),
//! which every YAML 1.2 loader resolves to the integer 1. The `zero-padded-enum-strings`
//! rule needs the source text to restore `"01"`, so this loader records the raw text of
//! every plain scalar whose resolved number would print differently.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};
use yaml_rust2::{Yaml, YamlEmitter};

/// A parsed document plus the source text of plain scalars that lost information when
/// resolved (keyed by JSON pointer, e.g. `/components/schemas/X/enum/0` → `01`).
#[derive(Debug, Default)]
pub struct Loaded {
    pub value: Value,
    pub raw_numbers: BTreeMap<String, String>,
}

enum Frame {
    Seq(Vec<Value>, usize),
    Map(Map<String, Value>, Option<String>, usize),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    done: Option<Value>,
    anchors: BTreeMap<usize, Value>,
    raw_numbers: BTreeMap<String, String>,
    error: Option<String>,
}

fn escape_pointer(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

impl Builder {
    /// JSON pointer of the node about to be inserted.
    fn pointer(&self) -> String {
        let mut out = String::new();
        for frame in &self.stack {
            match frame {
                Frame::Seq(items, _) => {
                    let _ = write!(out, "/{}", items.len());
                }
                Frame::Map(_, Some(key), _) => {
                    let _ = write!(out, "/{}", escape_pointer(key));
                }
                Frame::Map(_, None, _) => {}
            }
        }
        out
    }

    fn push_value(&mut self, value: Value, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, value.clone());
        }
        match self.stack.last_mut() {
            None => self.done = Some(value),
            Some(Frame::Seq(items, _)) => items.push(value),
            Some(Frame::Map(map, key, _)) => match key.take() {
                Some(k) => {
                    map.insert(k, value);
                }
                None => match value {
                    Value::String(s) => *key = Some(s),
                    Value::Number(n) => *key = Some(n.to_string()),
                    Value::Bool(b) => *key = Some(b.to_string()),
                    other => self.error = Some(format!("unsupported mapping key {other}")),
                },
            },
        }
    }

    fn expecting_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map(_, None, _)))
    }
}

/// YAML 1.2 core-schema resolution of a plain scalar.
fn resolve_plain(raw: &str) -> Value {
    match Yaml::from_str(raw) {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(b),
        Yaml::Integer(i) => Value::Number(i.into()),
        Yaml::Real(r) => r
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map_or_else(|| Value::String(raw.to_owned()), Value::Number),
        _ => Value::String(raw.to_owned()),
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, _mark: Marker) {
        match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                let key_position = self.expecting_key();
                let value = if style == TScalarStyle::Plain && !key_position {
                    let value = resolve_plain(&text);
                    if let Value::Number(n) = &value
                        && n.to_string() != text
                    {
                        let pointer = self.pointer();
                        self.raw_numbers.insert(pointer, text);
                    }
                    value
                } else {
                    Value::String(text)
                };
                self.push_value(value, anchor);
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Seq(Vec::new(), anchor)),
            Event::MappingStart(anchor, _) => {
                self.stack.push(Frame::Map(Map::new(), None, anchor));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (value, anchor) = match self.stack.pop() {
                    Some(Frame::Seq(items, anchor)) => (Value::Array(items), anchor),
                    Some(Frame::Map(map, _, anchor)) => (Value::Object(map), anchor),
                    None => return,
                };
                self.push_value(value, anchor);
            }
            Event::Alias(id) => {
                let value = self.anchors.get(&id).cloned().unwrap_or(Value::Null);
                self.push_value(value, 0);
            }
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

/// Parses one YAML document.
pub fn load(text: &str) -> Result<Loaded, String> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser
        .load(&mut builder, false)
        .map_err(|e| format!("YAML syntax error: {e}"))?;
    if let Some(error) = builder.error {
        return Err(error);
    }
    Ok(Loaded {
        value: builder.done.unwrap_or(Value::Null),
        raw_numbers: builder.raw_numbers,
    })
}

fn to_yaml(value: &Value) -> Yaml {
    match value {
        Value::Null => Yaml::Null,
        Value::Bool(b) => Yaml::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Yaml::Integer(i),
            None => Yaml::Real(n.to_string()),
        },
        Value::String(s) => Yaml::String(s.clone()),
        Value::Array(items) => Yaml::Array(items.iter().map(to_yaml).collect()),
        Value::Object(map) => Yaml::Hash(
            map.iter()
                .map(|(k, v)| (Yaml::String(k.clone()), to_yaml(v)))
                .collect(),
        ),
    }
}

/// Writes a document as block YAML; keys keep their order, so output is deterministic.
pub fn dump(value: &Value) -> Result<String, String> {
    let mut out = String::new();
    YamlEmitter::new(&mut out)
        .dump(&to_yaml(value))
        .map_err(|e| format!("YAML emit error: {e:?}"))?;
    out.push('\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_raw_text_of_zero_padded_numbers() {
        let loaded = load("a:\n  enum:\n    - 01\n    - 10\n    - '02'\n").unwrap();
        assert_eq!(loaded.value["a"]["enum"][0], 1);
        assert_eq!(loaded.value["a"]["enum"][2], "02");
        assert_eq!(
            loaded.raw_numbers.get("/a/enum/0").map(String::as_str),
            Some("01")
        );
        assert!(!loaded.raw_numbers.contains_key("/a/enum/1"));
    }

    #[test]
    fn no_yaml_1_1_timestamps_or_octals() {
        let loaded = load("d: 2021-13-45\nb: yes\n").unwrap();
        assert_eq!(loaded.value["d"], "2021-13-45");
        assert_eq!(loaded.value["b"], "yes");
    }

    #[test]
    fn dump_round_trips_and_quotes_numeric_strings() {
        let value = serde_json::json!({"z": ["01", 1, 1.5, true, null, "yes"], "a": {"b": "x: y"}});
        let text = dump(&value).unwrap();
        assert_eq!(load(&text).unwrap().value, value);
        assert!(
            text.find("z:").unwrap() < text.find("a:").unwrap(),
            "key order kept"
        );
    }
}
