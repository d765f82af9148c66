//! The fields' readers of the report's types, named in their
//! `deserialize_with` attributes.
//!
//! A leaf (a string, a number, a flag) is read by its own type's
//! `Deserialize`, and any error becomes the field's [`FieldError`]: a
//! reader checks the text's syntax before it reads the fields (dom0's
//! does), so what fails here is the value's type. Arrays and objects are
//! read through visitors that take their own JSON type and refuse every
//! other with the field's message, so an error inside them (an element's,
//! a member's) keeps its own message and path.

use core::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};

use super::*;

/// `T`, any error of reading it replaced with `why`.
fn leaf<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
    why: FieldError,
) -> Result<T, D::Error> {
    T::deserialize(d).map_err(|_| D::Error::custom(why))
}

pub(super) fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    leaf(d, FieldError::NotString)
}

pub(super) fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    leaf(d, FieldError::NotText)
}

pub(super) fn count<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    leaf(d, FieldError::NotCount)
}

pub(super) fn opt_count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    leaf(d, FieldError::NotOptCount)
}

pub(super) fn opt_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    leaf(d, FieldError::NotOptInt)
}

pub(super) fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    leaf(d, FieldError::NotFlag)
}

/// A number that is neither negative nor out of `f64`'s range (1e400
/// is refused here, as the number it is not).
pub(super) fn figure<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Number>, D::Error> {
    let n: Option<Number> = leaf(d, FieldError::NotFigure)?;
    match n {
        Some(n) if !n.as_f64().is_some_and(|x| x.is_finite() && x >= 0.0) => {
            Err(D::Error::custom(FieldError::NotFigure))
        }
        n => Ok(n),
    }
}

pub(super) fn counts<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
    let v = d.deserialize_any(Counts { nullable: false })?;
    v.ok_or_else(|| D::Error::custom(FieldError::NotCounts))
}

pub(super) fn opt_counts<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u64>>, D::Error> {
    d.deserialize_any(Counts { nullable: true })
}

/// An array of at most [`MAX_LISTED_FRAMES`] strings, or null. serde
/// reserves no more than a bounded capacity from the length hint, and the
/// report's text is bounded by its reader.
pub(super) fn opt_texts<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    let v: Option<Vec<String>> = leaf(d, FieldError::NotOptTexts)?;
    match v {
        Some(v) if v.len() > MAX_LISTED_FRAMES => Err(D::Error::custom(FieldError::NotOptTexts)),
        v => Ok(v),
    }
}

pub(super) fn object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    d.deserialize_any(Object {
        nullable: true,
        t: PhantomData,
    })
}

pub(super) fn rounds<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<RoundFigures>, D::Error> {
    d.deserialize_any(Objects(PhantomData))
}

/// Refuses, with the visitor's `why()`, every JSON type the visitor does
/// not take (null and arrays are each visitor's own).
macro_rules! refuse_scalars {
    () => {
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Err(E::custom(self.why()))
        }
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Err(E::custom(self.why()))
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Err(E::custom(self.why()))
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Err(E::custom(self.why()))
        }
        fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Err(E::custom(self.why()))
        }
    };
}

/// An array of at most [`MAX_ROUNDS`] non-negative integers (or null,
/// when `nullable`).
struct Counts {
    nullable: bool,
}

impl Counts {
    fn why(&self) -> FieldError {
        if self.nullable {
            FieldError::NotOptCounts
        } else {
            FieldError::NotCounts
        }
    }
}

impl<'de> Visitor<'de> for Counts {
    type Value = Option<Vec<u64>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of non-negative integers")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        if self.nullable {
            Ok(None)
        } else {
            Err(E::custom(self.why()))
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // No capacity from the length hint: the array is hostile input.
        let mut out = Vec::new();
        while let Some(n) = seq
            .next_element::<u64>()
            .map_err(|_| A::Error::custom(FieldError::NotCount))?
        {
            if out.len() as u64 >= MAX_ROUNDS {
                return Err(A::Error::custom(FieldError::TooLong));
            }
            out.push(n);
        }
        Ok(Some(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(A::Error::custom(self.why()))
    }

    refuse_scalars!();
}

/// An object read as `T` (or null, when `nullable`).
struct Object<T> {
    nullable: bool,
    t: PhantomData<T>,
}

impl<T> Object<T> {
    fn why(&self) -> FieldError {
        FieldError::NotObject
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for Object<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        if self.nullable {
            Ok(None)
        } else {
            Err(E::custom(self.why()))
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(Some)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(A::Error::custom(self.why()))
    }

    refuse_scalars!();
}

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for Object<T> {
    type Value = Option<T>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

/// An array of at most [`MAX_ROUNDS`] objects, each read as `T`.
struct Objects<T>(PhantomData<T>);

impl<T> Objects<T> {
    fn why(&self) -> FieldError {
        FieldError::NotObjects
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for Objects<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of objects")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Err(E::custom(self.why()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        let each = || Object {
            nullable: false,
            t: PhantomData,
        };
        while let Some(item) = seq.next_element_seed(each())? {
            if out.len() as u64 >= MAX_ROUNDS {
                return Err(A::Error::custom(FieldError::TooLong));
            }
            // Not nullable: null was refused, so there is a value.
            out.extend(item);
        }
        Ok(out)
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(A::Error::custom(self.why()))
    }

    refuse_scalars!();
}
