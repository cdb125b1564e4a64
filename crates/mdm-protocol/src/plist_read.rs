//! Reading untrusted property lists: size, shape and typed key lookups with errors that name the
//! key.
//!
//! `plist::Value` is built iteratively but dropped, cloned and compared recursively, so a body of
//! a few hundred kilobytes of nested `<array>` tags overflows a thread's stack (tried: 100 000
//! levels abort a 2 MiB thread). Binary property lists can also share containers, so a tiny body
//! can expand exponentially. [`read_dictionary`] therefore walks the events once with a depth
//! and value budget (bounded recursion, nothing kept), and only then builds the `Value`.

use std::cell::Cell;
use std::fmt;
use std::io::Cursor;

use plist::{Dictionary, Value};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::error::ProtocolError;

/// The deepest nesting of arrays and dictionaries accepted. Real MDM documents stay under ten
/// levels (a `ProfileList` result: list → profile → payloads → payload → certificates).
pub const MAX_NESTING_DEPTH: usize = 64;

/// Parses `bytes` (XML or binary; never the ASCII format) into its top-level dictionary,
/// enforcing `limit` bytes, [`MAX_NESTING_DEPTH`], and at most one value per input byte.
pub(crate) fn read_dictionary(
    bytes: &[u8],
    what: &'static str,
    limit: usize,
) -> Result<Dictionary, ProtocolError> {
    if bytes.len() > limit {
        return Err(ProtocolError::TooLarge {
            what,
            size: bytes.len(),
            limit,
        });
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ProtocolError::Empty { what });
    }
    check_shape(bytes, what)?;
    let value = if is_binary(bytes) {
        Value::from_reader(Cursor::new(bytes))
    } else {
        Value::from_reader_xml(bytes)
    };
    let value = value.map_err(|e| ProtocolError::NotAPlist {
        what,
        reason: e.to_string(),
    })?;
    if contains_uid(&value) {
        // Only keyed archives use UIDs, and they cannot be written as XML: an upload holding
        // one could be accepted but never queued (found by fuzzing).
        return Err(ProtocolError::NotAPlist {
            what,
            reason: "it holds a UID value, which only keyed archives use, never MDM messages"
                .to_string(),
        });
    }
    match value {
        Value::Dictionary(dict) => Ok(dict),
        other => Err(ProtocolError::NotADictionary {
            what,
            found: kind(&other),
        }),
    }
}

/// Whether `value` holds a binary plist UID anywhere. Recursion is bounded: [`check_shape`]
/// has already refused anything nested deeper than [`MAX_NESTING_DEPTH`].
fn contains_uid(value: &Value) -> bool {
    match value {
        Value::Uid(_) => true,
        Value::Array(items) => items.iter().any(contains_uid),
        Value::Dictionary(dict) => dict.values().any(contains_uid),
        _ => false,
    }
}

/// Binary property lists start with `bplist`; everything else is read as XML (devices never
/// send the old ASCII format, and reading it would turn any stray text into a string).
fn is_binary(bytes: &[u8]) -> bool {
    bytes.starts_with(b"bplist")
}

/// Which budget ran out during [`check_shape`].
#[derive(Clone, Copy)]
enum Exceeded {
    Depth,
    Values,
}

thread_local! {
    /// Values the walk in progress on this thread may still visit. `plist::from_bytes` takes a
    /// type, not a seed, so the per-call budget travels through these two cells; both are set
    /// and read within one synchronous call to [`check_shape`].
    static VALUES_LEFT: Cell<usize> = const { Cell::new(0) };
    /// Which budget stopped the walk, if any.
    static EXCEEDED: Cell<Option<Exceeded>> = const { Cell::new(None) };
}

fn check_shape(bytes: &[u8], what: &'static str) -> Result<(), ProtocolError> {
    let values_limit = bytes.len().saturating_add(1);
    VALUES_LEFT.with(|c| c.set(values_limit));
    EXCEEDED.with(|c| c.set(None));
    let result = if is_binary(bytes) {
        plist::from_bytes::<Shape>(bytes)
    } else {
        plist::from_reader_xml::<_, Shape>(bytes)
    };
    match (EXCEEDED.with(Cell::take), result) {
        (Some(Exceeded::Depth), _) => Err(ProtocolError::TooDeep {
            what,
            limit: MAX_NESTING_DEPTH,
        }),
        (Some(Exceeded::Values), _) => Err(ProtocolError::TooManyValues {
            what,
            limit: values_limit,
        }),
        (None, Ok(Shape)) => Ok(()),
        (None, Err(e)) => Err(ProtocolError::NotAPlist {
            what,
            reason: e.to_string(),
        }),
    }
}

/// What the walk found; only its success matters.
struct Shape;

impl<'de> de::Deserialize<'de> for Shape {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Walk { depth: 0 }.deserialize(deserializer).map(|()| Shape)
    }
}

/// One level of the walk: counts the value, descends into containers with `depth + 1`.
struct Walk {
    depth: usize,
}

impl Walk {
    fn count<E: de::Error>(&self) -> Result<(), E> {
        let left = VALUES_LEFT.with(Cell::get);
        if left == 0 {
            EXCEEDED.with(|c| c.set(Some(Exceeded::Values)));
            return Err(E::custom("too many values"));
        }
        VALUES_LEFT.with(|c| c.set(left - 1));
        Ok(())
    }

    fn enter<E: de::Error>(&self) -> Result<usize, E> {
        self.count()?;
        if self.depth >= MAX_NESTING_DEPTH {
            EXCEEDED.with(|c| c.set(Some(Exceeded::Depth)));
            return Err(E::custom("nested too deep"));
        }
        Ok(self.depth + 1)
    }
}

impl<'de> DeserializeSeed<'de> for Walk {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a property list value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.count()
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.count()
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.count()
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.count()
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.count()
    }

    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<(), E> {
        self.count()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let depth = self.enter()?;
        while seq.next_element_seed(Walk { depth })?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let depth = self.enter()?;
        // Keys are walked too: the reader hands a container found where a key belongs to the
        // key's deserializer, and ignoring it would recurse without the depth budget (found
        // by fuzzing: `<dict>` repeated after a value overflowed the stack).
        while map.next_key_seed(Walk { depth })?.is_some() {
            map.next_value_seed(Walk { depth })?;
        }
        Ok(())
    }
}

/// "a string", "an array", … for error messages.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Array(_) => "an array",
        Value::Dictionary(_) => "a dictionary",
        Value::Boolean(_) => "a boolean",
        Value::Data(_) => "data",
        Value::Date(_) => "a date",
        Value::Real(_) => "a real number",
        Value::Integer(_) => "an integer",
        Value::String(_) => "a string",
        Value::Uid(_) => "a UID",
        _ => "an unknown kind of value",
    }
}

/// Typed lookups in one dictionary, with errors naming the document and the key.
pub(crate) struct Fields<'a> {
    dict: &'a Dictionary,
    what: &'static str,
    /// Prefix for nested keys (`"Command."`), empty at the top level.
    prefix: &'static str,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(dict: &'a Dictionary, what: &'static str) -> Self {
        Self {
            dict,
            what,
            prefix: "",
        }
    }

    pub(crate) fn nested(dict: &'a Dictionary, what: &'static str, prefix: &'static str) -> Self {
        Self { dict, what, prefix }
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn wrong_type(&self, key: &str, expected: &'static str, found: &Value) -> ProtocolError {
        ProtocolError::WrongType {
            what: self.what,
            key: self.key(key),
            expected,
            found: kind(found),
        }
    }

    pub(crate) fn missing(&self, key: &str) -> ProtocolError {
        ProtocolError::MissingKey {
            what: self.what,
            key: self.key(key),
        }
    }

    /// A string; an absent key and an empty string are both `None`. A NUL character is
    /// refused: no MDM value holds one, and PostgreSQL cannot store one in text (found by
    /// fuzzing: a `CommandUUID` with a NUL made the command channel answer 500).
    pub(crate) fn string(&self, key: &str) -> Result<Option<String>, ProtocolError> {
        match self.dict.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) if s.contains('\0') => Err(ProtocolError::InvalidValue {
                what: self.what,
                key: self.key(key),
                reason: "it contains a NUL character".into(),
            }),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.wrong_type(key, "a string", other)),
        }
    }

    /// A non-empty string.
    pub(crate) fn required_string(&self, key: &str) -> Result<String, ProtocolError> {
        self.string(key)?.ok_or_else(|| self.missing(key))
    }

    /// Data (`<data>`); absent is `None`.
    pub(crate) fn data(&self, key: &str) -> Result<Option<Vec<u8>>, ProtocolError> {
        match self.dict.get(key) {
            None => Ok(None),
            Some(Value::Data(d)) => Ok(Some(d.clone())),
            Some(other) => Err(self.wrong_type(key, "data", other)),
        }
    }

    /// Non-empty data.
    pub(crate) fn required_data(&self, key: &str) -> Result<Vec<u8>, ProtocolError> {
        match self.data(key)? {
            Some(d) if !d.is_empty() => Ok(d),
            _ => Err(self.missing(key)),
        }
    }

    /// A boolean; absent is `None`.
    pub(crate) fn boolean(&self, key: &str) -> Result<Option<bool>, ProtocolError> {
        match self.dict.get(key) {
            None => Ok(None),
            Some(Value::Boolean(b)) => Ok(Some(*b)),
            Some(other) => Err(self.wrong_type(key, "a boolean", other)),
        }
    }

    /// A dictionary; absent is `None`.
    pub(crate) fn dictionary(&self, key: &str) -> Result<Option<&'a Dictionary>, ProtocolError> {
        match self.dict.get(key) {
            None => Ok(None),
            Some(Value::Dictionary(d)) => Ok(Some(d)),
            Some(other) => Err(self.wrong_type(key, "a dictionary", other)),
        }
    }
}

/// `Debug` for a raw dictionary that lists its keys only: raw MDM documents can hold secrets
/// (a `BootstrapToken`, an unlock token) and can be megabytes long.
pub(crate) struct KeysOnly<'a>(pub(crate) &'a Dictionary);

impl fmt::Debug for KeysOnly<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Dictionary ")?;
        f.debug_set().entries(self.0.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{binary_bomb, nested_arrays, to_binary, xml_dict};

    const LIMIT: usize = 1 << 20;

    #[test]
    fn nesting_up_to_the_limit_is_accepted_and_one_more_refused() {
        // The top-level dictionary is level 1.
        let ok = nested_arrays(MAX_NESTING_DEPTH - 1);
        assert!(read_dictionary(&ok, "test", LIMIT).is_ok());
        assert!(read_dictionary(&to_binary(&ok), "test", LIMIT).is_ok());
        let deep = nested_arrays(MAX_NESTING_DEPTH);
        assert_eq!(
            read_dictionary(&deep, "test", LIMIT).unwrap_err(),
            ProtocolError::TooDeep {
                what: "test",
                limit: MAX_NESTING_DEPTH
            }
        );
    }

    #[test]
    fn a_stack_smashing_body_is_refused_without_building_it() {
        // 100 000 levels abort a 2 MiB thread if built as a `plist::Value`; run the check on
        // such a thread to prove it does not recurse per level.
        let body = nested_arrays(100_000);
        let result = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || read_dictionary(&body, "test", 4 << 20))
            .unwrap()
            .join()
            .unwrap();
        assert!(
            matches!(result, Err(ProtocolError::TooDeep { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn containers_where_a_key_belongs_are_within_the_depth_budget() {
        // Found by fuzzing: dictionaries nested where a key is expected were skipped without
        // the depth budget and overflowed the stack. Run on a 2 MiB thread, like a server's.
        let body = format!(
            "<?xml version=\"1.0\"?><plist version=\"1.0\"><dict><key>MessageType</key>{}",
            "<dict>".repeat(100_000)
        )
        .into_bytes();
        let result = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || read_dictionary(&body, "test", 4 << 20))
            .unwrap()
            .join()
            .unwrap();
        assert!(
            matches!(result, Err(ProtocolError::TooDeep { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn shared_containers_cannot_expand_a_small_binary_plist() {
        let bomb = binary_bomb(40);
        assert!(bomb.len() < 256);
        match read_dictionary(&bomb, "test", LIMIT) {
            Err(ProtocolError::TooManyValues {
                what: "test",
                limit,
            }) => {
                assert_eq!(limit, bomb.len() + 1);
            }
            other => panic!("expected TooManyValues, got {other:?}"),
        }
        // A small fan-out within budget is an ordinary (non-dictionary) plist.
        assert!(matches!(
            read_dictionary(&binary_bomb(3), "test", LIMIT),
            Err(ProtocolError::NotADictionary {
                found: "an array",
                ..
            })
        ));
    }

    #[test]
    fn a_uid_anywhere_is_refused() {
        let mut inner = Dictionary::new();
        inner.insert("u".into(), Value::Uid(plist::Uid::new(8)));
        let mut dict = Dictionary::new();
        dict.insert("RequestType".into(), Value::String("RestartDevice".into()));
        dict.insert("a".into(), Value::Array(vec![Value::Dictionary(inner)]));
        let mut body = Vec::new();
        Value::Dictionary(dict).to_writer_binary(&mut body).unwrap();
        let err = read_dictionary(&body, "test", LIMIT).unwrap_err();
        assert!(
            matches!(&err, ProtocolError::NotAPlist { reason, .. } if reason.contains("UID")),
            "{err:?}"
        );
        assert!(err.is_bad_input());
    }

    #[test]
    fn a_string_with_a_nul_is_refused_naming_its_key() {
        let dict = read_dictionary(
            &xml_dict("<key>CommandUUID</key><string>6A2B\u{0}3C4D</string>"),
            "test",
            LIMIT,
        )
        .unwrap();
        let err = Fields::new(&dict, "test")
            .string("CommandUUID")
            .unwrap_err();
        assert!(
            matches!(&err, ProtocolError::InvalidValue { key, .. } if key == "CommandUUID"),
            "{err:?}"
        );
        assert!(err.is_bad_input());
    }

    #[test]
    fn size_and_emptiness_are_checked_first() {
        let body = xml_dict("<key>a</key><string>b</string>");
        assert_eq!(
            read_dictionary(&body, "test", 10).unwrap_err(),
            ProtocolError::TooLarge {
                what: "test",
                size: body.len(),
                limit: 10
            }
        );
        for empty in [&b""[..], b"  \n\t"] {
            assert_eq!(
                read_dictionary(empty, "test", LIMIT).unwrap_err(),
                ProtocolError::Empty { what: "test" }
            );
        }
    }

    #[test]
    fn kinds_are_named_for_messages() {
        let dict = read_dictionary(
            &xml_dict(
                "<key>s</key><string>x</string><key>d</key><data>AA==</data>\
                 <key>b</key><true/><key>i</key><integer>1</integer><key>r</key><real>1.5</real>\
                 <key>t</key><date>2024-01-01T00:00:00Z</date><key>a</key><array/><key>m</key><dict/>",
            ),
            "test",
            LIMIT,
        )
        .unwrap();
        let kinds: Vec<_> = dict.values().map(kind).collect();
        assert_eq!(
            kinds,
            [
                "a string",
                "data",
                "a boolean",
                "an integer",
                "a real number",
                "a date",
                "an array",
                "a dictionary"
            ]
        );
    }

    #[test]
    fn keys_only_debug_hides_values() {
        let dict = read_dictionary(
            &xml_dict("<key>BootstrapToken</key><data>c2VjcmV0</data>"),
            "test",
            LIMIT,
        )
        .unwrap();
        let shown = format!("{:?}", KeysOnly(&dict));
        assert_eq!(shown, "Dictionary {\"BootstrapToken\"}");
    }
}
