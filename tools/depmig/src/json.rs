//! A JSON value as `depmig` looks into one: a report's fields by name
//! (`report.get("cli")`), a comparison's figures, and what the tests check
//! of the files written. serde_json reads and writes the text (strict RFC
//! 8259, nesting bounded at 128 levels); this is only the tree.
//!
//! Typed data goes through serde directly ([`crate::report`],
//! `depmig_control::report`); this tree is kept for reading a value whose
//! shape is not known ahead and for numbers written as formatted: a
//! [`Value::Num`] is written verbatim, so a figure the command computed or
//! read reads the same in the Markdown and the JSON.

use std::fmt;

use serde::ser::{Error as _, SerializeMap, Serializer};
use serde::Serialize;
use serde_json::value::RawValue;

/// Largest input the readers accept, in bytes.
pub const MAX_INPUT: usize = 4 << 20;

/// Why a text is not acceptable JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonError {
    /// larger than [`MAX_INPUT`] bytes
    TooLarge,
    /// serde_json's reason, with its line and column
    Malformed(String),
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonError::TooLarge => write!(f, "larger than {MAX_INPUT} bytes"),
            JsonError::Malformed(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for JsonError {}

/// A JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`
    Null,
    /// `true` or `false`
    Bool(bool),
    /// A number, as its JSON text.
    Num(String),
    /// A string.
    Str(String),
    /// An array.
    Arr(Vec<Value>),
    /// An object, entries in order (those read in: serde_json's, by key).
    Obj(Vec<(String, Value)>),
}

/// Parses one JSON value (surrounding white space allowed).
pub fn parse(text: &str) -> Result<Value, JsonError> {
    if text.len() > MAX_INPUT {
        return Err(JsonError::TooLarge);
    }
    serde_json::from_str::<serde_json::Value>(text)
        .map(Value::from)
        .map_err(|e| JsonError::Malformed(e.to_string()))
}

impl From<serde_json::Value> for Value {
    fn from(v: serde_json::Value) -> Self {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => Value::Num(n.to_string()),
            serde_json::Value::String(s) => Value::Str(s),
            serde_json::Value::Array(items) => {
                Value::Arr(items.into_iter().map(Value::from).collect())
            }
            serde_json::Value::Object(fields) => Value::Obj(
                fields
                    .into_iter()
                    .map(|(k, v)| (k, Value::from(v)))
                    .collect(),
            ),
        }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Num(text) => {
                // Verbatim, once serde_json agrees it is a number.
                let raw = text
                    .parse::<serde_json::Number>()
                    .ok()
                    .and_then(|_| RawValue::from_string(text.clone()).ok())
                    .ok_or_else(|| S::Error::custom(format!("{text:?} is not a JSON number")))?;
                raw.serialize(s)
            }
            Value::Str(text) => s.serialize_str(text),
            Value::Arr(items) => s.collect_seq(items),
            Value::Obj(fields) => {
                let mut m = s.serialize_map(Some(fields.len()))?;
                for (k, v) in fields {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
        }
    }
}

impl fmt::Display for Value {
    /// Compact JSON text; nothing if serde_json refuses the value (a
    /// [`Value::Num`] that is no number), which every reader refuses in
    /// turn.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&serde_json::to_string(self).unwrap_or_default())
    }
}

impl Value {
    /// The value of `key` in an object; `None` for a missing key or a non-object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Obj(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The number as an unsigned integer, if it is one that fits.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Num(s) => s.parse().ok(),
            _ => None,
        }
    }

    /// The number as a float, if this is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Num(s) => s.parse().ok(),
            _ => None,
        }
    }

    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The items, if this is an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Arr(items) => Some(items),
            _ => None,
        }
    }

    /// Sets `key` in an object (replacing an existing value in place, or
    /// appending); does nothing to a non-object.
    pub fn set(&mut self, key: &str, v: Value) {
        if let Value::Obj(fields) = self {
            if let Some(slot) = fields.iter_mut().find(|(k, _)| k == key) {
                slot.1 = v;
            } else {
                fields.push((key.to_string(), v));
            }
        }
    }

    /// An unsigned integer value.
    pub fn uint(n: u64) -> Value {
        Value::Num(n.to_string())
    }

    /// A string value.
    pub fn str(s: &str) -> Value {
        Value::Str(s.to_string())
    }

    /// `n` as a number, or `null` when absent.
    pub fn opt_uint(n: Option<u64>) -> Value {
        n.map_or(Value::Null, Value::uint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_report_like_object_and_writes_it_back() {
        let text = r#" {"schema":"depmig-migration-report/1","rounds":2,"x":[1,-2.5e3,0.25],
            "n":null,"t":true,"f":false,"s":"a\"b\\c\u00e9\ud83d\ude00\n"} "#;
        let v = parse(text).unwrap();
        assert_eq!(v.get("rounds").and_then(Value::as_u64), Some(2));
        assert_eq!(
            v.get("x").and_then(Value::as_array).map(<[Value]>::len),
            Some(3)
        );
        assert_eq!(
            v.get("s").and_then(Value::as_str),
            Some("a\"b\\c\u{e9}\u{1f600}\n")
        );
        let again = parse(&v.to_string()).unwrap();
        assert_eq!(again, v);
        // Numbers are written as their text says.
        assert_eq!(
            Value::Arr(vec![
                Value::Num("0.00009251977610214184".into()),
                Value::uint(7)
            ])
            .to_string(),
            "[0.00009251977610214184,7]"
        );
    }

    #[test]
    fn rejects_malformed_input_with_a_reason() {
        for text in [
            "",
            "{",
            "[1,]",
            "{\"a\":1,}",
            "01",
            "1.",
            "-",
            "1e",
            "\"\\x\"",
            "\"\\ud800x\"",
            "\"a\nb\"",
            "nul",
            "nulx",
            "1 2",
            "{1:2}",
        ] {
            match parse(text) {
                Err(JsonError::Malformed(why)) => assert!(why.contains("line"), "{text:?}: {why}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn bounds_depth_and_size() {
        let deep = "[".repeat(129) + &"]".repeat(129);
        assert!(matches!(parse(&deep), Err(JsonError::Malformed(_))));
        let ok = "[".repeat(64) + &"]".repeat(64);
        assert!(parse(&ok).is_ok());
        let big = " ".repeat(MAX_INPUT + 1);
        assert_eq!(parse(&big), Err(JsonError::TooLarge));
    }

    #[test]
    fn never_panics_on_truncations_of_a_valid_text() {
        let text = r#"{"a":[1,2,{"b":"c\u0041"}],"d":-0.5E+2,"e":"\ud83d\ude00"}"#;
        for end in 0..text.len() {
            if let Some(prefix) = text.get(..end) {
                assert!(parse(prefix).is_err(), "prefix {prefix:?} accepted");
            }
        }
        assert!(parse(text).is_ok());
    }

    #[test]
    fn set_replaces_in_place_and_appends() {
        let mut v = parse(r#"{"a":1,"b":2}"#).unwrap();
        v.set("a", Value::str("x"));
        v.set("c", Value::Null);
        assert_eq!(v.to_string(), r#"{"a":"x","b":2,"c":null}"#);
    }

    #[test]
    fn a_num_that_is_no_number_writes_nothing() {
        assert_eq!(Value::Num("[1]".into()).to_string(), "");
        assert_eq!(Value::Num("1e400".into()).to_string(), "");
    }
}
