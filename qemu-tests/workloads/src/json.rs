//! How the rig's reports are written: their types derive `Serialize` and
//! serde_json's pretty printer writes them (two-space indent, one key per
//! line, nested objects two spaces deeper), with two layouts it has no
//! option for, kept as the rig's shell scripts read them:
//!
//! - a list of numbers stays on one line, `[1, 2, 3]`, where serde_json puts
//!   each element on a line of its own (`jlist` in
//!   `qemu-tests/guest/rig-guest.sh` and `baseline_check_strict` in
//!   `qemu-tests/baseline/baseline.sh` read the list with one `sed`
//!   expression);
//! - a float has three decimals, `12.300`, where serde_json writes the
//!   shortest text that reads back, `12.3`: every float of a report has the
//!   same precision, whatever its value.
//!
//! Both are serde_json's raw values: text checked as JSON, then written as
//! it is. Only serde_json's serializer knows them; the reports are written
//! with nothing else. A `serde_json::ser::Formatter` could lay these out in
//! the printer itself, but serde_json only offers it with its `std`
//! feature, which this workspace must not enable: a whole-workspace build
//! would unify it into the no_std appliance's serde_json.

use serde::ser::Error as _;
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

/// The text of a report: `value` pretty-printed, ending in a newline.
pub fn pretty<T: Serialize>(value: &T) -> Result<String, serde_json::Error> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    Ok(text)
}

/// Writes `items` on one line, `[1, 2, 3]`; for
/// `#[serde(serialize_with = "json::one_line")]`.
pub fn one_line<S: Serializer>(items: &[u64], s: S) -> Result<S::Ok, S::Error> {
    let mut text = String::from("[");
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            text.push_str(", ");
        }
        text.push_str(&serde_json::to_string(x).map_err(S::Error::custom)?);
    }
    text.push(']');
    raw(text, s)
}

/// Writes `v` with three decimals, `null` when it is not finite; for
/// `#[serde(serialize_with = "json::three_decimals")]`.
pub fn three_decimals<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_finite() {
        raw(format!("{v:.3}"), s)
    } else {
        s.serialize_unit()
    }
}

/// Writes `text`, checked as JSON, as it is.
fn raw<S: Serializer>(text: String, s: S) -> Result<S::Ok, S::Error> {
    RawValue::from_string(text)
        .map_err(S::Error::custom)?
        .serialize(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Inner {
        b: bool,
    }

    #[derive(Serialize)]
    struct Sample {
        a: u64,
        s: String,
        #[serde(serialize_with = "one_line")]
        l: Vec<u64>,
        #[serde(serialize_with = "one_line")]
        none: Vec<u64>,
        o: Vec<Inner>,
        #[serde(serialize_with = "three_decimals")]
        f: f64,
        #[serde(serialize_with = "three_decimals")]
        nan: f64,
        #[serde(serialize_with = "three_decimals")]
        inf: f64,
        empty: Vec<Inner>,
        n: Option<u64>,
    }

    #[test]
    fn writes_the_rig_layout() {
        let v = Sample {
            a: 1,
            s: "x\"\\\n\u{1}é".into(),
            l: vec![1, 20, 300],
            none: vec![],
            o: vec![Inner { b: true }],
            f: 0.5,
            nan: f64::NAN,
            inf: f64::NEG_INFINITY,
            empty: vec![],
            n: None,
        };
        assert_eq!(
            pretty(&v).unwrap(),
            "{\n  \"a\": 1,\n  \"s\": \"x\\\"\\\\\\n\\u0001é\",\n  \"l\": [1, 20, 300],\n  \"none\": [],\n  \"o\": [\n    {\n      \"b\": true\n    }\n  ],\n  \"f\": 0.500,\n  \"nan\": null,\n  \"inf\": null,\n  \"empty\": [],\n  \"n\": null\n}\n"
        );
    }

    #[test]
    fn control_characters_take_json_short_escapes() {
        assert_eq!(
            pretty(&"\u{8}\t\n\u{c}\r\u{1f}").unwrap(),
            "\"\\b\\t\\n\\f\\r\\u001f\"\n"
        );
    }

    #[test]
    fn three_decimals_round_as_format_does() {
        #[derive(Serialize)]
        struct F(#[serde(serialize_with = "three_decimals")] f64);
        for x in [0.0, -0.0, 1.0005, 2.0015, 1234.5678, -2.71, 1e300, 1e-9] {
            assert_eq!(pretty(&F(x)).unwrap(), format!("{x:.3}\n"));
        }
    }
}
