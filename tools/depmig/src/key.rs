//! The appliances' shared HMAC key: 32 bytes, written to xenstore as 64
//! lower-case hex digits.

use std::fmt;

/// Key length in bytes.
pub const KEY_BYTES: usize = 32;

/// A key file that does not hold a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// Not 64 hex digits after trimming white space (the length found).
    Length(usize),
    /// A character that is not a hex digit.
    NotHex,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Length(n) => write!(f, "expected 64 hex digits, found {n} characters"),
            KeyError::NotHex => write!(
                f,
                "expected 64 hex digits, found a character that is not one"
            ),
        }
    }
}

impl std::error::Error for KeyError {}

/// The key as 64 lower-case hex digits.
pub fn to_hex(key: &[u8; KEY_BYTES]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads a key file's contents: 64 hex digits, white space around them allowed.
pub fn parse_key_file(data: &[u8]) -> Result<[u8; KEY_BYTES], KeyError> {
    let text = std::str::from_utf8(data)
        .map_err(|_| KeyError::NotHex)?
        .trim();
    if text.len() != 2 * KEY_BYTES {
        return Err(KeyError::Length(text.chars().count()));
    }
    let mut key = [0u8; KEY_BYTES];
    for (i, slot) in key.iter_mut().enumerate() {
        let pair = text.get(2 * i..2 * i + 2).ok_or(KeyError::NotHex)?;
        if !pair.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(KeyError::NotHex);
        }
        *slot = u8::from_str_radix(pair, 16).map_err(|_| KeyError::NotHex)?;
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut k = [0u8; KEY_BYTES];
        for (i, b) in k.iter_mut().enumerate() {
            *b = (i * 37 + 5) as u8;
        }
        let hex = to_hex(&k);
        assert_eq!(hex.len(), 64);
        assert_eq!(parse_key_file(format!("  {hex}\n").as_bytes()), Ok(k));
        assert_eq!(parse_key_file(hex.to_uppercase().as_bytes()), Ok(k));
    }

    #[test]
    fn rejects_non_keys() {
        assert_eq!(parse_key_file(b"abcd"), Err(KeyError::Length(4)));
        assert_eq!(parse_key_file(&[b'g'; 64]), Err(KeyError::NotHex));
        assert_eq!(parse_key_file(&[0xff; 64]), Err(KeyError::NotHex));
        // A sign would pass from_str_radix alone.
        let mut plus = vec![b'0'; 64];
        plus[0] = b'+';
        assert_eq!(parse_key_file(&plus), Err(KeyError::NotHex));
        // Multi-byte characters do not split a pair.
        let mut s = "é".repeat(32);
        s.truncate(64);
        assert_eq!(parse_key_file(s.as_bytes()), Err(KeyError::NotHex));
    }
}
