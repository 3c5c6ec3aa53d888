//! Reading the JOSE header and JSON objects strictly, and the `typ` rule.

use super::*;
pub(super) use base64_engine::decode_b64;

pub(super) mod base64_engine {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    pub fn decode_b64(s: &str) -> Option<Vec<u8>> {
        URL_SAFE_NO_PAD.decode(s).ok()
    }
}

/// The JOSE header members verification reads (RFC 7515 §4.1), parsed without building a map.
/// Other members are ignored, except that any `crit` is refused; `jku`, `x5u`, `jwk` and `x5c`
/// are never read. `alg`, `kid` and `typ`, when present, must be strings (`null` included: a
/// member that is there but not a string makes the token malformed), and a member named twice
/// makes it malformed (RFC 7515 §4 allows refusing duplicates instead of taking the last).
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct JoseHeader<'a> {
    #[serde(borrow, default, deserialize_with = "string_member")]
    pub(crate) alg: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "string_member")]
    pub(crate) kid: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "string_member")]
    pub(crate) typ: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(super) crit: Present,
}

impl<'a> JoseHeader<'a> {
    pub(super) fn parse(json: &'a [u8]) -> Result<Self, LogoutTokenError> {
        parse_object(json)
    }
}

/// Reads a JSON object (a JOSE header or a claims set) into `T`, after checking that the whole
/// text is JSON that `serde_json::Value` would read: a derived struct skips the members it does
/// not name without looking closely (an invalid UTF-8 byte or a lone surrogate in a skipped
/// string, a number out of range), and such a token must be refused as it was when the whole
/// text was read into a map (found by the `logout_claims` fuzz target).
pub(super) fn parse_object<'a, T: serde::Deserialize<'a>>(json: &'a [u8]) -> Result<T, LogoutTokenError> {
    let text = std::str::from_utf8(json).map_err(|_| LogoutTokenError::Malformed)?;
    // Only a JSON object (a derived struct would also take an array).
    if !text.trim_start().starts_with('{') {
        return Err(LogoutTokenError::Malformed);
    }
    serde_json::from_str::<StrictJson>(text).map_err(|_| LogoutTokenError::Malformed)?;
    serde_json::from_str(text).map_err(|_| LogoutTokenError::Malformed)
}

/// Any JSON value, every string and number read as `serde_json::Value` reads it, nothing kept.
pub(super) struct StrictJson;

impl<'de> serde::Deserialize<'de> for StrictJson {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictJson)
    }
}

impl<'de> serde::de::Visitor<'de> for StrictJson {
    type Value = StrictJson;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_unit<E>(self) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<StrictJson>()?.is_some() {}
        Ok(self)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self, A::Error> {
        while map.next_entry::<StrictJson, StrictJson>()?.is_some() {}
        Ok(self)
    }
}

/// Whether a member is there at all, whatever its value (`"crit": null` is still a `crit`).
#[derive(Debug, Default)]
pub(super) struct Present(pub(super) bool);

impl<'de> serde::Deserialize<'de> for Present {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d)?;
        Ok(Present(true))
    }
}

/// A string member, borrowed from the JSON when it has no escapes; `null` is refused.
pub(super) fn string_member<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    struct Visitor;
    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = Cow<'de, str>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string")
        }
        fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(v))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v.to_owned()))
        }
        fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v))
        }
    }
    d.deserialize_str(Visitor).map(Some)
}

/// Checks `typ` (BC-RP-13): RFC 7515 §4.1.9 compares media types case-insensitively and allows
/// the `application/` prefix to be omitted.
pub(super) fn check_typ(header: &JoseHeader<'_>, policy: TypPolicy) -> Result<(), LogoutTokenError> {
    let typ = header.typ.as_deref().map(str::to_ascii_lowercase);
    let typ = typ.as_deref().map(|t| t.strip_prefix("application/").unwrap_or(t));
    match (typ, policy) {
        (Some("logout+jwt"), _) => Ok(()),
        (None | Some("jwt"), TypPolicy::Lenient) => Ok(()),
        (None | Some("jwt"), TypPolicy::Strict) => Err(LogoutTokenError::UntypedToken),
        (Some(other), _) => Err(LogoutTokenError::WrongType(other.chars().take(40).collect())),
    }
}
