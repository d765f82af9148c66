//! Key files (`--key-file`): the appliances' shared HMAC key as the
//! contract writes it, 64 hex digits ([`depmig_control::hexkey`]).

use depmig_control::{parse_key, Key, KeyError};

/// The key as written to xenstore and key files: 64 lower-case hex digits.
pub use depmig_control::to_hex;

/// Reads a key file's contents: 64 hex digits, white space around them allowed.
pub fn parse_key_file(data: &[u8]) -> Result<Key, KeyError> {
    let text = std::str::from_utf8(data).map_err(|_| KeyError::NotHex)?;
    parse_key(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use depmig_control::KEY_LEN as KEY_BYTES;

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
