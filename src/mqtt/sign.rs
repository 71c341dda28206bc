//! Event signatures: HMAC-SHA256 over the canonical payload, hex encoded.
//!
//! The canonical payload is the event's JSON object without `sig`, keys
//! sorted, no whitespace (serde_json's compact form; in Python
//! `json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`).

use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

use crate::model::Signature;

type HmacSha256 = Hmac<Sha256>;

/// A per-job event key: 32 random bytes, hex in the record and the window's env.
#[derive(Clone, PartialEq, Eq)]
pub struct EventKey(Vec<u8>);

impl std::fmt::Debug for EventKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventKey(<redacted>)")
    }
}

impl EventKey {
    pub fn generate() -> EventKey {
        EventKey(rand::random::<[u8; 32]>().to_vec())
    }

    pub fn from_hex(text: &str) -> Option<EventKey> {
        hex::decode(text.trim())
            .ok()
            .filter(|bytes| !bytes.is_empty())
            .map(EventKey)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }

    fn mac(&self, object: &Map<String, Value>) -> HmacSha256 {
        let mut unsigned = object.clone();
        unsigned.remove("sig");
        // A BTreeMap-backed Map serialises with sorted keys: the canonical form.
        let canonical = Value::Object(unsigned).to_string();
        // HMAC accepts keys of any length; new_from_slice cannot fail for it.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(canonical.as_bytes());
        mac
    }

    /// The signature of a JSON object (its `sig` field, if any, is ignored).
    pub fn sign(&self, object: &Map<String, Value>) -> String {
        hex::encode(self.mac(object).finalize().into_bytes())
    }

    /// Whether `object`'s `sig` field is this key's signature of it.
    pub fn verify(&self, object: &Map<String, Value>) -> bool {
        let Some(sig) = object.get("sig").and_then(Value::as_str) else {
            return false;
        };
        let Ok(sig) = hex::decode(sig) else {
            return false;
        };
        self.mac(object).verify_slice(&sig).is_ok()
    }
}

pub fn check(key: Option<&EventKey>, raw: Option<&Map<String, Value>>) -> Signature {
    let Some(key) = key else {
        return Signature::Unchecked;
    };
    match raw {
        Some(object) if object.contains_key("sig") => {
            if key.verify(object) {
                Signature::Valid
            } else {
                Signature::Invalid
            }
        }
        _ => Signature::Unsigned,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn signature_verifies_after_a_json_round_trip() {
        let key = EventKey::generate();
        let mut event =
            object(json!({"job":"j","event":"completed","attempt":1,"ts":1764070000.123456}));
        let sig = key.sign(&event);
        event.insert("sig".into(), Value::String(sig));
        let wire = Value::Object(event).to_string();
        let parsed = object(serde_json::from_str(&wire).expect("json"));
        assert_eq!(check(Some(&key), Some(&parsed)), Signature::Valid);
    }

    #[test]
    fn signatures_survive_the_wire_for_any_timestamp() {
        // serde_json parses floats exactly only with `float_roundtrip`; without
        // it about one timestamp in a few hundred re-serialises differently.
        let key = EventKey::generate();
        for i in 0..5000_u32 {
            let ts = 1_795_611_675.0 + f64::from(i) * 0.000_123_457 + rand::random::<f64>();
            let mut event = object(
                json!({"job":"j","event":"started","attempt":2,"seq":2,"ts":ts,"data":{"pid":1}}),
            );
            let sig = key.sign(&event);
            event.insert("sig".into(), Value::String(sig));
            let wire = Value::Object(event).to_string();
            let parsed = object(serde_json::from_str(&wire).expect("json"));
            assert_eq!(check(Some(&key), Some(&parsed)), Signature::Valid, "{wire}");
        }
    }

    #[test]
    fn tampering_or_another_key_is_detected() {
        let key = EventKey::generate();
        let mut event = object(json!({"job":"j","event":"error","attempt":1,"ts":1.0}));
        let sig = key.sign(&event);
        event.insert("sig".into(), Value::String(sig));
        assert_eq!(
            check(Some(&EventKey::generate()), Some(&event)),
            Signature::Invalid
        );
        event.insert("event".into(), Value::String("completed".into()));
        assert_eq!(check(Some(&key), Some(&event)), Signature::Invalid);
        assert_eq!(check(Some(&key), None), Signature::Unsigned);
        assert_eq!(check(None, Some(&event)), Signature::Unchecked);
    }

    #[test]
    fn key_hex_round_trips_and_debug_hides_it() {
        let key = EventKey::generate();
        assert_eq!(EventKey::from_hex(&key.to_hex()), Some(key.clone()));
        assert!(!format!("{key:?}").contains(&key.to_hex()));
        assert_eq!(EventKey::from_hex("zz"), None);
    }
}
