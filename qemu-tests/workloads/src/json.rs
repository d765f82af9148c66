//! A minimal JSON writer for the rig's reports (objects keep insertion order).

/// A JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true`/`false`.
    Bool(bool),
    /// An unsigned integer.
    U(u64),
    /// A float (non-finite values are written as `null`).
    F(f64),
    /// A string.
    S(String),
    /// An array.
    A(Vec<Json>),
    /// An object, in insertion order.
    O(Vec<(String, Json)>),
}

impl Json {
    /// An empty object.
    pub fn obj() -> Self {
        Json::O(Vec::new())
    }

    /// Appends `key: value` to an object (no-op on other values).
    pub fn set(&mut self, key: &str, value: Json) -> &mut Self {
        if let Json::O(v) = self {
            v.push((key.to_string(), value));
        }
        self
    }

    /// `Some(u)` as `U`, `None` as `Null`.
    pub fn opt_u(v: Option<u64>) -> Json {
        v.map_or(Json::Null, Json::U)
    }

    /// Serialises with two-space indentation.
    pub fn pretty(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, 0);
        out.push('\n');
        out
    }

    fn write(&self, out: &mut String, ind: usize) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::U(u) => out.push_str(&u.to_string()),
            Json::F(f) if f.is_finite() => out.push_str(&format!("{f:.3}")),
            Json::F(_) => out.push_str("null"),
            Json::S(s) => write_str(out, s),
            Json::A(v) if v.iter().all(|x| !matches!(x, Json::A(_) | Json::O(_))) => {
                out.push('[');
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    x.write(out, ind);
                }
                out.push(']');
            }
            Json::A(v) => {
                out.push('[');
                for (i, x) in v.iter().enumerate() {
                    out.push_str(if i > 0 { ",\n" } else { "\n" });
                    out.push_str(&" ".repeat(ind + 2));
                    x.write(out, ind + 2);
                }
                out.push('\n');
                out.push_str(&" ".repeat(ind));
                out.push(']');
            }
            Json::O(v) => {
                if v.is_empty() {
                    out.push_str("{}");
                    return;
                }
                out.push('{');
                for (i, (k, x)) in v.iter().enumerate() {
                    out.push_str(if i > 0 { ",\n" } else { "\n" });
                    out.push_str(&" ".repeat(ind + 2));
                    write_str(out, k);
                    out.push_str(": ");
                    x.write(out, ind + 2);
                }
                out.push('\n');
                out.push_str(&" ".repeat(ind));
                out.push('}');
            }
        }
    }
}

fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_nested_values() {
        let mut o = Json::obj();
        o.set("a", Json::U(1))
            .set("s", Json::S("x\"\n\u{1}".into()));
        o.set("l", Json::A(vec![Json::U(1), Json::Null, Json::F(0.5)]));
        let mut inner = Json::obj();
        inner.set("b", Json::Bool(true));
        o.set("o", Json::A(vec![inner]))
            .set("nan", Json::F(f64::NAN));
        assert_eq!(
            o.pretty(),
            "{\n  \"a\": 1,\n  \"s\": \"x\\\"\\n\\u0001\",\n  \"l\": [1, null, 0.500],\n  \"o\": [\n    {\n      \"b\": true\n    }\n  ],\n  \"nan\": null\n}\n"
        );
    }
}
