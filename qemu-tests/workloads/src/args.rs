//! A small `--key value` command-line parser shared by the binaries.

use std::collections::BTreeMap;
use std::str::FromStr;

/// Parsed `--key value` options and positional words.
#[derive(Debug, Default)]
pub struct Args {
    opts: BTreeMap<String, String>,
    /// Words that are not options, in order.
    pub positional: Vec<String>,
}

/// A command-line mistake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgError {
    /// An option was given without a value.
    MissingValue(String),
    /// An option's value does not parse.
    BadValue(String),
    /// An option the command does not know.
    Unknown(String),
}

impl std::fmt::Display for ArgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArgError::MissingValue(k) => write!(f, "option --{k} needs a value"),
            ArgError::BadValue(k) => write!(f, "option --{k} has a bad value"),
            ArgError::Unknown(k) => write!(f, "unknown option --{k}"),
        }
    }
}

impl Args {
    /// Parses `args` (without the program name); every option takes a value
    /// (`--key value` or `--key=value`) and must be in `known`.
    pub fn parse<I: IntoIterator<Item = String>>(
        args: I,
        known: &[&str],
    ) -> Result<Self, ArgError> {
        let mut a = Args::default();
        let mut it = args.into_iter();
        while let Some(w) = it.next() {
            if let Some(k) = w.strip_prefix("--") {
                let (k, v) = match k.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => {
                        let v = it
                            .next()
                            .ok_or_else(|| ArgError::MissingValue(k.to_string()))?;
                        (k.to_string(), v)
                    }
                };
                if !known.contains(&k.as_str()) {
                    return Err(ArgError::Unknown(k));
                }
                a.opts.insert(k, v);
            } else {
                a.positional.push(w);
            }
        }
        Ok(a)
    }

    /// The raw value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.opts.get(key).map(String::as_str)
    }

    /// `key` parsed as `T`, or `default` when absent.
    pub fn num<T: FromStr>(&self, key: &str, default: T) -> Result<T, ArgError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| ArgError::BadValue(key.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn parses_options_and_words() {
        let a = Args::parse(v(&["serve", "--port", "80", "--mib=5"]), &["port", "mib"]).unwrap();
        assert_eq!(a.positional, v(&["serve"]));
        assert_eq!(a.num("port", 0u16), Ok(80));
        assert_eq!(a.num("mib", 0u64), Ok(5));
        assert_eq!(a.num("other", 7u8), Ok(7));
        assert_eq!(
            Args::parse(v(&["--port"]), &["port"]).unwrap_err(),
            ArgError::MissingValue("port".into())
        );
        assert_eq!(
            Args::parse(v(&["--x", "1"]), &["port"]).unwrap_err(),
            ArgError::Unknown("x".into())
        );
        let a = Args::parse(v(&["--port", "x"]), &["port"]).unwrap();
        assert_eq!(a.num("port", 0u16), Err(ArgError::BadValue("port".into())));
    }
}
