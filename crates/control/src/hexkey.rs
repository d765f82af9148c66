//! The appliances' shared HMAC key: 32 bytes, written to xenstore (`key`)
//! and to key files as 64 hex digits, lower-case.

use alloc::string::String;
use core::fmt::{self, Write};

/// Key length in bytes.
pub const KEY_LEN: usize = 32;

/// The shared key.
pub type Key = [u8; KEY_LEN];

/// Text that does not hold a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyError {
    /// Not 64 hex digits after trimming white space (the length found, in
    /// characters).
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

impl core::error::Error for KeyError {}

impl From<KeyError> for crate::ControlError {
    fn from(_: KeyError) -> Self {
        crate::ControlError::BadKey
    }
}

/// The key as 64 lower-case hex digits.
pub fn to_hex(key: &Key) -> String {
    let mut s = String::with_capacity(2 * KEY_LEN);
    for b in key {
        // Writing to a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Reads a key: 64 hex digits of either case, white space around them
/// allowed (nothing else: no sign, no prefix).
pub fn parse_key(s: &str) -> Result<Key, KeyError> {
    let text = s.trim();
    if text.len() != 2 * KEY_LEN {
        return Err(KeyError::Length(text.chars().count()));
    }
    let mut key = [0u8; KEY_LEN];
    for (k, pair) in key.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
        let mut byte = 0u32;
        for &c in pair {
            // Only ASCII hex digits (no sign): a byte of a multi-byte
            // character is none.
            let digit = char::from(c).to_digit(16).ok_or(KeyError::NotHex)?;
            byte = byte << 4 | digit;
        }
        *k = u8::try_from(byte).map_err(|_| KeyError::NotHex)?;
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ControlError;
    use proptest::prelude::*;

    #[test]
    fn keys_are_written_in_lower_case_and_read_in_either() {
        assert_eq!(to_hex(&[0xab; KEY_LEN]), "ab".repeat(32));
        let k: Key = core::array::from_fn(|i| (i * 8) as u8);
        assert_eq!(&to_hex(&k)[..8], "00081018");
        assert_eq!(parse_key(&to_hex(&k).to_uppercase()), Ok(k));
        assert_eq!(parse_key(&format!("\t{}  \n", to_hex(&k))), Ok(k));
    }

    #[test]
    fn control_values() {
        // Moved from depmig-migrate's `parse_key` (its one error, `BadKey`,
        // is what every refusal below maps to).
        let k = parse_key(&"0f".repeat(32)).unwrap();
        assert_eq!(k, [0x0f; 32]);
        assert_eq!(parse_key(&"0F".repeat(32)), Ok([0x0f; 32]));
        assert_eq!(parse_key(&"0f".repeat(31)), Err(KeyError::Length(62)));
        assert_eq!(parse_key(&"0g".repeat(32)), Err(KeyError::NotHex));
        for bad in ["0f".repeat(31), "0g".repeat(32)] {
            assert_eq!(
                parse_key(&bad).map_err(ControlError::from),
                Err(ControlError::BadKey)
            );
        }
    }

    #[test]
    fn rejects_non_keys() {
        // As the dom0 command's key files (tools/depmig/src/key.rs).
        assert_eq!(parse_key("abcd"), Err(KeyError::Length(4)));
        assert_eq!(parse_key(&"g".repeat(64)), Err(KeyError::NotHex));
        // A sign would pass `u8::from_str_radix` alone.
        assert_eq!(
            parse_key(&format!("+{}", "0".repeat(63))),
            Err(KeyError::NotHex)
        );
        // Multi-byte characters do not split a pair.
        let mut s = "é".repeat(32);
        s.truncate(64);
        assert_eq!(parse_key(&s), Err(KeyError::NotHex));
        assert_eq!(parse_key(&"é".repeat(64)), Err(KeyError::Length(64)));
    }

    proptest! {
        #[test]
        fn every_key_round_trips(k in any::<[u8; KEY_LEN]>()) {
            prop_assert_eq!(parse_key(&to_hex(&k)), Ok(k));
        }

        #[test]
        fn no_text_makes_it_panic(s in "\\PC{0,80}") {
            let _ = parse_key(&s);
        }
    }
}
