//! Reading YAML as the API server reads a request strictly: a mapping key given
//! twice is an error (not "last one wins"), a document is at most the API server's
//! request size, and flow nesting deeper than the YAML parser allows is refused before
//! parsing (libyaml takes minutes on 100,000 nested brackets).
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// The API server's limit on a request body (one object): 3 MiB.
pub const MAX_DOCUMENT_BYTES: usize = 3 * 1024 * 1024;

/// The YAML parser's own nesting limit; deeper flow nesting is refused up front.
pub const MAX_DEPTH: usize = 128;

/// Where the text nests brackets too deeply: (line, column), 1-based.
pub fn too_deep(text: &str) -> Option<(usize, usize)> {
    let (mut depth, mut line, mut col) = (0usize, 1usize, 0usize);
    let mut quote: Option<char> = None;
    let mut comment = false;
    let mut prev = '\n';
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        col += 1;
        if c == '\n' {
            line += 1;
            col = 0;
            comment = false;
            prev = c;
            continue;
        }
        match (quote, comment) {
            (_, true) => {}
            (Some('"'), _) if c == '\\' => {
                chars.next();
                col += 1;
            }
            (Some(q), _) if c == q => quote = None,
            (Some(_), _) => {}
            (None, _) => match c {
                '#' if prev.is_whitespace() => comment = true,
                '"' | '\'' if !prev.is_alphanumeric() => quote = Some(c),
                '[' | '{' => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Some((line, col));
                    }
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
        prev = c;
    }
    None
}

/// Deserializes one document into JSON, refusing duplicate mapping keys.
pub fn value<'de, D: Deserializer<'de>>(de: D) -> Result<Value, D::Error> {
    Strict.deserialize(de)
}

struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        de.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        Strict.deserialize(de)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Strict)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(k) = map.next_key_seed(Key)? {
            if out.contains_key(&k) {
                return Err(de::Error::custom(format!(
                    "mapping key {k:?} already defined"
                )));
            }
            let v = map.next_value_seed(Strict)?;
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

/// A mapping key as JSON has it: scalars as their text.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = String;
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<String, D::Error> {
        match Strict.deserialize(de)? {
            Value::String(s) => Ok(s),
            Value::Null => Ok("null".into()),
            v @ (Value::Bool(_) | Value::Number(_)) => Ok(v.to_string()),
            _ => Err(de::Error::custom("a mapping key must be a scalar")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize as _;

    fn parse(text: &str) -> Result<Value, String> {
        let de = serde_yaml_ng::Deserializer::from_str(text);
        value(de).map_err(|e| e.to_string())
    }

    #[test]
    fn a_key_given_twice_is_an_error_with_its_place() {
        let e = parse("metadata:\n  name: a\n  name: b\n").unwrap_err();
        assert!(e.contains("mapping key \"name\" already defined"), "{e}");
        // As yaml.v3 words it for kubectl: where the key was first defined.
        assert!(e.contains("already defined at line 2"), "{e}");
    }

    #[test]
    fn the_same_key_in_different_mappings_is_fine() {
        let v = parse("a: {x: 1}\nb: {x: 2}\nc: [1, 'two', true, null, 2.5]\n").unwrap();
        let want =
            serde_json::json!({"a": {"x": 1}, "b": {"x": 2}, "c": [1, "two", true, null, 2.5]});
        assert_eq!(v, want);
        let plain = serde_json::Value::deserialize(serde_yaml_ng::Deserializer::from_str(
            "a: {x: 1}\nb: {x: 2}\nc: [1, 'two', true, null, 2.5]\n",
        ))
        .unwrap();
        assert_eq!(v, plain);
    }

    #[test]
    fn deep_flow_nesting_is_found_before_parsing() {
        let deep = format!("x: {}{}\n", "[".repeat(200), "]".repeat(200));
        assert_eq!(too_deep(&deep), Some((1, 3 + MAX_DEPTH + 1)));
        let ok = format!("x: {}{}\n", "[".repeat(20), "]".repeat(20));
        assert_eq!(too_deep(&ok), None);
        // Brackets in strings and comments do not count.
        let quoted = format!(
            "x: \"{}\" # {}\ny: '{}'\n",
            "[".repeat(300),
            "{".repeat(300),
            "[".repeat(300)
        );
        assert_eq!(too_deep(&quoted), None);
    }
}
