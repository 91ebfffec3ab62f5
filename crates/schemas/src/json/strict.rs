//! JSON documents parsed as `serde_json` parses them, but refusing an object that names a key
//! twice: `serde_json::Value` keeps the last, so `{"user_id": "a", "user_id": "b"}` would be an
//! event of `b` to whoever reads the body after us (a proxy, a log, a WAF) and of `a` to
//! another. A request means one thing or is refused.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Parses one JSON document from `bytes`, refusing duplicate keys (the error says which key,
/// at which line and column) and trailing characters.
pub fn from_slice(bytes: &[u8]) -> serde_json::Result<Value> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = Strict::deserialize(&mut deserializer)?.0;
    deserializer.end()?;
    Ok(value)
}

/// [`from_slice`] of a string.
pub fn from_str(text: &str) -> serde_json::Result<Value> {
    from_slice(text.as_bytes())
}

/// A [`Value`] whose objects have distinct keys.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Strict, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Strict::deserialize(deserializer).map(|strict| strict.0)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(Strict(value)) = seq.next_element()? {
            values.push(value);
        }
        Ok(Value::Array(values))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "duplicate key {key:?} in an object"
                )));
            }
            let Strict(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_what_serde_json_parses() {
        for text in [
            r#"{"a": 1, "b": [true, null, -2, 3.5, "x"], "c": {"d": {}}}"#,
            r#"[{"user_id": "u", "item_id": "i"}, []]"#,
            "18446744073709551615",
            r#""\u00e9""#,
        ] {
            assert_eq!(
                from_str(text).unwrap(),
                serde_json::from_str::<Value>(text).unwrap(),
                "{text}"
            );
        }
    }

    #[test]
    fn refuses_a_key_named_twice_at_any_depth_and_says_where() {
        let error = from_str(r#"{"user_id": "a", "user_id": "b"}"#).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with(r#"duplicate key "user_id" in an object at line 1 column 2"#),
            "{error}"
        );
        let nested = from_str("[{\"a\": 1},\n {\"p\": {\"x\": 1, \"x\": 2}}]").unwrap_err();
        assert!(nested.to_string().contains(r#""x""#), "{nested}");
        assert!(nested.to_string().contains("line 2"), "{nested}");
        // The same key in sibling objects is no duplicate.
        assert_eq!(
            from_str(r#"[{"a": 1}, {"a": 2}]"#).unwrap(),
            json!([{"a": 1}, {"a": 2}])
        );
    }

    #[test]
    fn refuses_trailing_characters() {
        assert!(from_str(r#"{"a": 1} x"#).is_err());
    }
}
