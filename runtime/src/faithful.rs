//! Whether a value survives JSON unchanged: a serde walk that writes nothing and stops at the
//! first part JSON would drop, change or refuse (NaN and infinities, which `serde_json` writes
//! as `null`; integers beyond 64 bits, which JSON readers here hold as lossy floats; map keys
//! that are not strings, numbers, booleans or unit enum variants).
//!
//! This module owns that rule and its messages, with the path to the offending part. It does
//! not serialize anything: `value.rs` asks it before a value leaves the process or is recorded.

use std::fmt::{self, Display};

use serde::ser::{self, Serialize};

/// Why a value cannot travel as JSON faithfully, and where in it.
#[derive(Debug)]
pub(crate) struct Unfaithful {
    /// Path segments, innermost first (pushed on the way out).
    path: Vec<String>,
    what: String,
}

impl Display for Unfaithful {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.what)
        } else {
            let path: String = self.path.iter().rev().map(String::as_str).collect();
            write!(f, "at `{path}`: {}", self.what)
        }
    }
}

impl std::error::Error for Unfaithful {}

impl ser::Error for Unfaithful {
    fn custom<T: Display>(msg: T) -> Self {
        Unfaithful {
            path: Vec::new(),
            what: format!("its `Serialize` implementation failed: {msg}"),
        }
    }
}

impl Unfaithful {
    fn new(what: impl Into<String>) -> Self {
        Unfaithful {
            path: Vec::new(),
            what: what.into(),
        }
    }
    fn within(mut self, segment: impl FnOnce() -> String) -> Self {
        self.path.push(segment());
        self
    }
}

/// Checks that `v` reads back from JSON as it is.
pub(crate) fn check<T: Serialize + ?Sized>(v: &T) -> Result<(), Unfaithful> {
    v.serialize(Probe)
}

fn non_finite(v: f64) -> Unfaithful {
    let name = if v.is_nan() {
        "NaN"
    } else if v > 0.0 {
        "infinity"
    } else {
        "-infinity"
    };
    Unfaithful::new(format!(
        "{name} has no JSON form (it would read back as null): use an Option (None where there is no number) or keep the value finite"
    ))
}

fn too_wide(v: impl Display) -> Unfaithful {
    Unfaithful::new(format!(
        "the integer {v} does not fit in 64 bits, the widest JSON number that reads back exactly: keep it in an i64/u64 or send it as a string"
    ))
}

fn bad_key(what: &str) -> Unfaithful {
    Unfaithful::new(format!(
        "a map key is {what}, and JSON object keys are strings: use a string, number or unit-enum key, or a Vec of (key, value) pairs"
    ))
}

/// The value walker.
struct Probe;

/// A compound value's walker: counts elements for the path.
struct Compound {
    index: usize,
    /// The current map entry's key, for the path.
    key: Option<String>,
}

impl Compound {
    fn new() -> Self {
        Compound {
            index: 0,
            key: None,
        }
    }
    fn element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Unfaithful> {
        let i = self.index;
        self.index += 1;
        v.serialize(Probe)
            .map_err(|e| e.within(|| format!("[{i}]")))
    }
}

type R = Result<(), Unfaithful>;

impl ser::Serializer for Probe {
    type Ok = ();
    type Error = Unfaithful;
    type SerializeSeq = Compound;
    type SerializeTuple = Compound;
    type SerializeTupleStruct = Compound;
    type SerializeTupleVariant = Compound;
    type SerializeMap = Compound;
    type SerializeStruct = Compound;
    type SerializeStructVariant = Compound;

    fn serialize_bool(self, _: bool) -> R {
        Ok(())
    }
    fn serialize_i8(self, _: i8) -> R {
        Ok(())
    }
    fn serialize_i16(self, _: i16) -> R {
        Ok(())
    }
    fn serialize_i32(self, _: i32) -> R {
        Ok(())
    }
    fn serialize_i64(self, _: i64) -> R {
        Ok(())
    }
    fn serialize_i128(self, v: i128) -> R {
        if i64::try_from(v).is_ok() || u64::try_from(v).is_ok() {
            Ok(())
        } else {
            Err(too_wide(v))
        }
    }
    fn serialize_u8(self, _: u8) -> R {
        Ok(())
    }
    fn serialize_u16(self, _: u16) -> R {
        Ok(())
    }
    fn serialize_u32(self, _: u32) -> R {
        Ok(())
    }
    fn serialize_u64(self, _: u64) -> R {
        Ok(())
    }
    fn serialize_u128(self, v: u128) -> R {
        if u64::try_from(v).is_ok() {
            Ok(())
        } else {
            Err(too_wide(v))
        }
    }
    fn serialize_f32(self, v: f32) -> R {
        self.serialize_f64(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> R {
        if v.is_finite() {
            Ok(())
        } else {
            Err(non_finite(v))
        }
    }
    fn serialize_char(self, _: char) -> R {
        Ok(())
    }
    fn serialize_str(self, _: &str) -> R {
        Ok(())
    }
    fn serialize_bytes(self, _: &[u8]) -> R {
        Ok(())
    }
    fn serialize_none(self) -> R {
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> R {
        v.serialize(Probe)
    }
    fn serialize_unit(self) -> R {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> R {
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> R {
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> R {
        v.serialize(Probe)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        v: &T,
    ) -> R {
        v.serialize(Probe)
            .map_err(|e| e.within(|| format!("::{variant}")))
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Compound, Unfaithful> {
        Ok(Compound::new())
    }
    fn serialize_tuple(self, _: usize) -> Result<Compound, Unfaithful> {
        Ok(Compound::new())
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Compound, Unfaithful> {
        Ok(Compound::new())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound, Unfaithful> {
        Ok(Compound {
            index: 0,
            key: Some(variant.to_string()),
        })
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Compound, Unfaithful> {
        Ok(Compound::new())
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Compound, Unfaithful> {
        Ok(Compound::new())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound, Unfaithful> {
        Ok(Compound {
            index: 0,
            key: Some(variant.to_string()),
        })
    }
}

impl ser::SerializeSeq for Compound {
    type Ok = ();
    type Error = Unfaithful;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> R {
        self.element(v)
    }
    fn end(self) -> R {
        Ok(())
    }
}

impl ser::SerializeTuple for Compound {
    type Ok = ();
    type Error = Unfaithful;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> R {
        self.element(v)
    }
    fn end(self) -> R {
        Ok(())
    }
}

impl ser::SerializeTupleStruct for Compound {
    type Ok = ();
    type Error = Unfaithful;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> R {
        self.element(v)
    }
    fn end(self) -> R {
        Ok(())
    }
}

impl ser::SerializeTupleVariant for Compound {
    type Ok = ();
    type Error = Unfaithful;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> R {
        let variant = self.key.clone();
        self.element(v)
            .map_err(|e| e.within(|| format!("::{}", variant.unwrap_or_default())))
    }
    fn end(self) -> R {
        Ok(())
    }
}

impl ser::SerializeStruct for Compound {
    type Ok = ();
    type Error = Unfaithful;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, name: &'static str, v: &T) -> R {
        v.serialize(Probe)
            .map_err(|e| e.within(|| format!(".{name}")))
    }
    fn end(self) -> R {
        Ok(())
    }
}

impl ser::SerializeStructVariant for Compound {
    type Ok = ();
    type Error = Unfaithful;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, name: &'static str, v: &T) -> R {
        let variant = self.key.as_deref().unwrap_or_default();
        v.serialize(Probe)
            .map_err(|e| e.within(|| format!("::{variant}.{name}")))
    }
    fn end(self) -> R {
        Ok(())
    }
}

impl ser::SerializeMap for Compound {
    type Ok = ();
    type Error = Unfaithful;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> R {
        let i = self.index;
        self.index += 1;
        match k.serialize(KeyProbe) {
            Ok(text) => {
                self.key = Some(text);
                Ok(())
            }
            Err(e) => Err(e.within(|| format!("{{key {i}}}"))),
        }
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> R {
        let key = self.key.take();
        v.serialize(Probe).map_err(|e| {
            e.within(|| match key {
                Some(k) => format!("[{k:?}]"),
                None => "[?]".to_string(),
            })
        })
    }
    fn end(self) -> R {
        Ok(())
    }
}

/// A map key's walker: accepts what `serde_json` writes as an object key and reads back
/// (strings, chars, booleans, integers, finite floats, unit variants, newtypes of those) and
/// returns the key's text for paths.
struct KeyProbe;

type K = Result<String, Unfaithful>;

/// Key kinds that are never valid; their compound walkers are never used.
enum NoKey {}

macro_rules! no_key_compound {
    ($($t:ident $m:ident),*) => {$(
        impl ser::$t for NoKey {
            type Ok = String;
            type Error = Unfaithful;
            fn $m<T: Serialize + ?Sized>(&mut self, _: &T) -> Result<(), Unfaithful> {
                match *self {}
            }
            fn end(self) -> K {
                match self {}
            }
        }
    )*};
}
no_key_compound!(
    SerializeSeq serialize_element,
    SerializeTuple serialize_element,
    SerializeTupleStruct serialize_field,
    SerializeTupleVariant serialize_field
);

impl ser::SerializeMap for NoKey {
    type Ok = String;
    type Error = Unfaithful;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, _: &T) -> Result<(), Unfaithful> {
        match *self {}
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, _: &T) -> Result<(), Unfaithful> {
        match *self {}
    }
    fn end(self) -> K {
        match self {}
    }
}

impl ser::SerializeStruct for NoKey {
    type Ok = String;
    type Error = Unfaithful;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        _: &'static str,
        _: &T,
    ) -> Result<(), Unfaithful> {
        match *self {}
    }
    fn end(self) -> K {
        match self {}
    }
}

impl ser::SerializeStructVariant for NoKey {
    type Ok = String;
    type Error = Unfaithful;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        _: &'static str,
        _: &T,
    ) -> Result<(), Unfaithful> {
        match *self {}
    }
    fn end(self) -> K {
        match self {}
    }
}

impl ser::Serializer for KeyProbe {
    type Ok = String;
    type Error = Unfaithful;
    type SerializeSeq = NoKey;
    type SerializeTuple = NoKey;
    type SerializeTupleStruct = NoKey;
    type SerializeTupleVariant = NoKey;
    type SerializeMap = NoKey;
    type SerializeStruct = NoKey;
    type SerializeStructVariant = NoKey;

    fn serialize_bool(self, v: bool) -> K {
        Ok(v.to_string())
    }
    fn serialize_i8(self, v: i8) -> K {
        Ok(v.to_string())
    }
    fn serialize_i16(self, v: i16) -> K {
        Ok(v.to_string())
    }
    fn serialize_i32(self, v: i32) -> K {
        Ok(v.to_string())
    }
    fn serialize_i64(self, v: i64) -> K {
        Ok(v.to_string())
    }
    fn serialize_i128(self, v: i128) -> K {
        Ok(v.to_string())
    }
    fn serialize_u8(self, v: u8) -> K {
        Ok(v.to_string())
    }
    fn serialize_u16(self, v: u16) -> K {
        Ok(v.to_string())
    }
    fn serialize_u32(self, v: u32) -> K {
        Ok(v.to_string())
    }
    fn serialize_u64(self, v: u64) -> K {
        Ok(v.to_string())
    }
    fn serialize_u128(self, v: u128) -> K {
        Ok(v.to_string())
    }
    fn serialize_f32(self, v: f32) -> K {
        self.serialize_f64(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> K {
        if v.is_finite() {
            Ok(v.to_string())
        } else {
            Err(non_finite(v))
        }
    }
    fn serialize_char(self, v: char) -> K {
        Ok(v.to_string())
    }
    fn serialize_str(self, v: &str) -> K {
        Ok(v.to_string())
    }
    fn serialize_bytes(self, _: &[u8]) -> K {
        Err(bad_key("a byte string"))
    }
    fn serialize_none(self) -> K {
        Err(bad_key("an Option (None)"))
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> K {
        Err(bad_key("an Option (Some)"))
    }
    fn serialize_unit(self) -> K {
        Err(bad_key("()"))
    }
    fn serialize_unit_struct(self, name: &'static str) -> K {
        Err(bad_key(&format!("the unit struct `{name}`")))
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> K {
        Ok(variant.to_string())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> K {
        v.serialize(KeyProbe)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        _: u32,
        variant: &'static str,
        _: &T,
    ) -> K {
        Err(bad_key(&format!(
            "the enum variant `{name}::{variant}(..)`"
        )))
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<NoKey, Unfaithful> {
        Err(bad_key("a sequence"))
    }
    fn serialize_tuple(self, _: usize) -> Result<NoKey, Unfaithful> {
        Err(bad_key("a tuple"))
    }
    fn serialize_tuple_struct(self, name: &'static str, _: usize) -> Result<NoKey, Unfaithful> {
        Err(bad_key(&format!("the tuple struct `{name}`")))
    }
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<NoKey, Unfaithful> {
        Err(bad_key(&format!(
            "the enum variant `{name}::{variant}(..)`"
        )))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<NoKey, Unfaithful> {
        Err(bad_key("a map"))
    }
    fn serialize_struct(self, name: &'static str, _: usize) -> Result<NoKey, Unfaithful> {
        Err(bad_key(&format!("the struct `{name}`")))
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<NoKey, Unfaithful> {
        Err(bad_key(&format!(
            "the enum variant `{name}::{variant} {{..}}`"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashMap};

    #[derive(serde::Serialize)]
    struct Fit {
        name: String,
        weights: Vec<f64>,
    }

    #[derive(serde::Serialize)]
    enum Shape {
        Circle { r: f32 },
    }

    #[test]
    fn plain_values_pass_and_awkward_ones_name_their_place() {
        check(&(
            1u64,
            u64::MAX,
            -0.0f64,
            "x".repeat(10),
            i128::from(i64::MIN),
        ))
        .unwrap();
        let keys: HashMap<i32, bool> = [(1, true)].into();
        check(&keys).unwrap();

        let e = check(&Fit {
            name: "a".into(),
            weights: vec![1.0, f64::NAN],
        })
        .unwrap_err();
        assert_eq!(e.to_string().split(':').next().unwrap(), "at `.weights[1]`");
        assert!(e.to_string().contains("NaN has no JSON form"), "{e}");

        let e = check(&vec![Shape::Circle { r: f32::INFINITY }]).unwrap_err();
        assert!(
            e.to_string().starts_with("at `[0]::Circle.r`: infinity"),
            "{e}"
        );

        let grid: HashMap<(i32, i32), i32> = [((0, 1), 2)].into();
        let e = check(&grid).unwrap_err();
        assert!(e.to_string().contains("a map key is a tuple"), "{e}");
        assert!(e.to_string().contains("Vec of (key, value) pairs"), "{e}");

        let nested: BTreeMap<String, Vec<f64>> =
            [("b".to_string(), vec![f64::NEG_INFINITY])].into();
        let e = check(&nested).unwrap_err();
        assert!(
            e.to_string().starts_with("at `[\"b\"][0]`: -infinity"),
            "{e}"
        );

        let e = check(&(u128::MAX,)).unwrap_err();
        assert!(e.to_string().contains("does not fit in 64 bits"), "{e}");
    }
}
