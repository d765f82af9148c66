//! A small strict JSON reader and writer for migration reports.
//!
//! Reports come from an appliance through xenstore, so they are hostile
//! input: the parser bounds nesting depth and input size, accepts exactly
//! RFC 8259 JSON, and never panics. Objects keep their key order so a report
//! written back out reads like the one that came in; numbers keep their
//! original text so no figure is rounded on the way through.

use std::fmt;

/// Deepest nesting of arrays and objects the parser accepts.
pub const MAX_DEPTH: usize = 64;
/// Largest input the parser accepts, in bytes.
pub const MAX_INPUT: usize = 4 << 20;

/// A JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`
    Null,
    /// `true` or `false`
    Bool(bool),
    /// A number, kept as its (validated) source text.
    Num(String),
    /// A string.
    Str(String),
    /// An array.
    Arr(Vec<Value>),
    /// An object, keys in their original order.
    Obj(Vec<(String, Value)>),
}

/// Why a text is not acceptable JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonError {
    /// The input is larger than [`MAX_INPUT`].
    TooLarge,
    /// Arrays and objects are nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// The input ended in the middle of a value.
    UnexpectedEnd,
    /// An unexpected byte at this offset.
    Unexpected(usize),
    /// A malformed number starting at this offset.
    BadNumber(usize),
    /// A malformed string escape at this offset.
    BadEscape(usize),
    /// An unescaped control character inside a string at this offset.
    ControlChar(usize),
    /// Something other than white space follows the value at this offset.
    Trailing(usize),
    /// An object repeats a key.
    DuplicateKey(String),
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonError::TooLarge => write!(f, "larger than {MAX_INPUT} bytes"),
            JsonError::TooDeep => write!(f, "nested deeper than {MAX_DEPTH} levels"),
            JsonError::UnexpectedEnd => write!(f, "ends in the middle of a value"),
            JsonError::Unexpected(at) => write!(f, "unexpected character at byte {at}"),
            JsonError::BadNumber(at) => write!(f, "malformed number at byte {at}"),
            JsonError::BadEscape(at) => write!(f, "malformed escape at byte {at}"),
            JsonError::ControlChar(at) => write!(f, "control character in a string at byte {at}"),
            JsonError::Trailing(at) => write!(f, "text after the value at byte {at}"),
            JsonError::DuplicateKey(k) => write!(f, "duplicate key \"{k}\""),
        }
    }
}

impl std::error::Error for JsonError {}

/// Parses one JSON value (surrounding white space allowed).
pub fn parse(text: &str) -> Result<Value, JsonError> {
    if text.len() > MAX_INPUT {
        return Err(JsonError::TooLarge);
    }
    let mut p = Parser {
        b: text.as_bytes(),
        i: 0,
    };
    p.ws();
    let v = p.value(0)?;
    p.ws();
    if p.i != p.b.len() {
        return Err(JsonError::Trailing(p.i));
    }
    Ok(v)
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), JsonError> {
        match self.peek() {
            Some(x) if x == c => {
                self.i += 1;
                Ok(())
            }
            Some(_) => Err(JsonError::Unexpected(self.i)),
            None => Err(JsonError::UnexpectedEnd),
        }
    }

    fn literal(&mut self, word: &[u8], v: Value) -> Result<Value, JsonError> {
        match self.b.get(self.i..self.i + word.len()) {
            Some(s) if s == word => {
                self.i += word.len();
                Ok(v)
            }
            Some(_) => Err(JsonError::Unexpected(self.i)),
            None => Err(JsonError::UnexpectedEnd),
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, JsonError> {
        match self.peek() {
            None => Err(JsonError::UnexpectedEnd),
            Some(b'n') => self.literal(b"null", Value::Null),
            Some(b't') => self.literal(b"true", Value::Bool(true)),
            Some(b'f') => self.literal(b"false", Value::Bool(false)),
            Some(b'"') => self.string().map(Value::Str),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'[') => {
                if depth >= MAX_DEPTH {
                    return Err(JsonError::TooDeep);
                }
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.peek() == Some(b']') {
                    self.i += 1;
                    return Ok(Value::Arr(items));
                }
                loop {
                    self.ws();
                    items.push(self.value(depth + 1)?);
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Value::Arr(items));
                        }
                        Some(_) => return Err(JsonError::Unexpected(self.i)),
                        None => return Err(JsonError::UnexpectedEnd),
                    }
                }
            }
            Some(b'{') => {
                if depth >= MAX_DEPTH {
                    return Err(JsonError::TooDeep);
                }
                self.i += 1;
                let mut fields: Vec<(String, Value)> = Vec::new();
                self.ws();
                if self.peek() == Some(b'}') {
                    self.i += 1;
                    return Ok(Value::Obj(fields));
                }
                loop {
                    self.ws();
                    if self.peek() != Some(b'"') {
                        return Err(match self.peek() {
                            None => JsonError::UnexpectedEnd,
                            Some(_) => JsonError::Unexpected(self.i),
                        });
                    }
                    let key = self.string()?;
                    self.ws();
                    self.expect(b':')?;
                    self.ws();
                    let v = self.value(depth + 1)?;
                    if fields.iter().any(|(k, _)| *k == key) {
                        return Err(JsonError::DuplicateKey(key));
                    }
                    fields.push((key, v));
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Value::Obj(fields));
                        }
                        Some(_) => return Err(JsonError::Unexpected(self.i)),
                        None => return Err(JsonError::UnexpectedEnd),
                    }
                }
            }
            Some(_) => Err(JsonError::Unexpected(self.i)),
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Result<Value, JsonError> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(JsonError::BadNumber(start)),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return Err(JsonError::BadNumber(start));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if self.digits() == 0 {
                return Err(JsonError::BadNumber(start));
            }
        }
        let text = self
            .b
            .get(start..self.i)
            .ok_or(JsonError::BadNumber(start))?;
        // The bytes are ASCII digits and signs, so this cannot fail; map it anyway.
        let s = std::str::from_utf8(text).map_err(|_| JsonError::BadNumber(start))?;
        Ok(Value::Num(s.to_string()))
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let at = self.i;
        let s = self
            .b
            .get(self.i..self.i + 4)
            .ok_or(JsonError::UnexpectedEnd)?;
        let s = std::str::from_utf8(s).map_err(|_| JsonError::BadEscape(at))?;
        if !s.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(JsonError::BadEscape(at));
        }
        self.i += 4;
        u32::from_str_radix(s, 16).map_err(|_| JsonError::BadEscape(at))
    }

    fn string(&mut self) -> Result<String, JsonError> {
        self.expect(b'"')?;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let at = self.i;
            let c = self.peek().ok_or(JsonError::UnexpectedEnd)?;
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let e = self.peek().ok_or(JsonError::UnexpectedEnd)?;
                    self.i += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            let cp = if (0xD800..0xDC00).contains(&hi) {
                                // A high surrogate must be followed by a low one.
                                if self.b.get(self.i..self.i + 2) != Some(b"\\u") {
                                    return Err(JsonError::BadEscape(at));
                                }
                                self.i += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(JsonError::BadEscape(at));
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                hi
                            };
                            char::from_u32(cp).ok_or(JsonError::BadEscape(at))?
                        }
                        _ => return Err(JsonError::BadEscape(at)),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                0..=0x1f => return Err(JsonError::ControlChar(at)),
                _ => out.push(c),
            }
        }
        // The input was a &str and escapes add whole characters, so the bytes
        // are UTF-8; map the impossible error rather than unwrap.
        String::from_utf8(out).map_err(|_| JsonError::Unexpected(self.i))
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

/// Writes `s` as a JSON string literal.
fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

impl fmt::Display for Value {
    /// Compact JSON text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        write_value(&mut out, self);
        f.write_str(&out)
    }
}

fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Num(n) => out.push_str(n),
        Value::Str(s) => write_str(out, s),
        Value::Arr(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Obj(fields) => {
            out.push('{');
            for (i, (k, item)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(out, k);
                out.push(':');
                write_value(out, item);
            }
            out.push('}');
        }
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
        // Numbers keep their text.
        assert!(v.to_string().contains("-2.5e3"));
    }

    #[test]
    fn rejects_malformed_input_with_a_reason() {
        let cases: &[(&str, JsonError)] = &[
            ("", JsonError::UnexpectedEnd),
            ("{", JsonError::UnexpectedEnd),
            ("[1,]", JsonError::Unexpected(3)),
            ("{\"a\":1,}", JsonError::Unexpected(7)),
            ("01", JsonError::Trailing(1)),
            ("1.", JsonError::BadNumber(0)),
            ("-", JsonError::BadNumber(0)),
            ("1e", JsonError::BadNumber(0)),
            ("\"\\x\"", JsonError::BadEscape(1)),
            ("\"\\ud800x\"", JsonError::BadEscape(1)),
            ("\"a\nb\"", JsonError::ControlChar(2)),
            ("{\"a\":1,\"a\":2}", JsonError::DuplicateKey("a".into())),
            ("nul", JsonError::UnexpectedEnd),
            ("nulx", JsonError::Unexpected(0)),
            ("1 2", JsonError::Trailing(2)),
            ("{1:2}", JsonError::Unexpected(1)),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text).as_ref().err(), Some(want), "input {text:?}");
        }
    }

    #[test]
    fn bounds_depth_and_size() {
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert_eq!(parse(&deep), Err(JsonError::TooDeep));
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
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
}
