//! Reading and checking the claims (BCL §2.4, §2.6 steps 3 to 7).

use super::*;

pub(crate) fn number(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f.floor() as i64)),
        _ => None,
    }
}

pub(crate) fn non_empty_string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// The claims a logout token is checked on, each kept as its raw JSON so that a claim of the
/// wrong type gets the error of that claim's rule (not a generic parse error). Other claims are
/// skipped without being built (BC-LT-02: ignored). A claim named twice is malformed.
#[derive(serde::Deserialize)]
pub(super) struct LogoutClaims<'a> {
    #[serde(borrow, default, deserialize_with = "raw_member")]
    pub(super) iss: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw_member")]
    pub(super) aud: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw_member")]
    pub(super) iat: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw_member")]
    pub(super) exp: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw_member")]
    pub(super) jti: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw_member")]
    pub(super) sub: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw_member")]
    pub(super) sid: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw_member")]
    pub(super) events: Option<&'a RawValue>,
    #[serde(default)]
    pub(super) nonce: Present,
}

/// A member that is there, whatever its value (`null` is not taken for absent).
pub(super) fn raw_member<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue as serde::Deserialize>::deserialize(d).map(Some)
}

/// A claim's string value, borrowed when it has no escapes; `None` for any other JSON type.
pub(super) fn raw_str(raw: &RawValue) -> Option<Cow<'_, str>> {
    if !raw.get().starts_with('"') {
        return None;
    }
    string_member(&mut serde_json::Deserializer::from_str(raw.get())).ok().flatten()
}

/// A claim's value as a NumericDate (a fraction is rounded down); `None` for a non-number.
pub(super) fn raw_number(raw: &RawValue) -> Option<i64> {
    let n: serde_json::Number = serde_json::from_str(raw.get()).ok()?;
    number(Some(&Value::Number(n)))
}

/// A non-empty string claim, owned (`jti`, `sub`, `sid`); `None` for anything else.
pub(super) fn raw_non_empty(raw: Option<&RawValue>) -> Option<String> {
    raw.and_then(raw_str).filter(|s| !s.is_empty()).map(Cow::into_owned)
}

/// A claim that is absent (`None`) or a non-empty string; anything else present is refused.
pub(super) fn present_string(raw: Option<&RawValue>) -> Result<Option<String>, LogoutTokenError> {
    match raw {
        None => Ok(None),
        Some(v) => raw_non_empty(Some(v)).map(Some).ok_or(LogoutTokenError::InvalidSubjectOrSession),
    }
}

/// BC-RP-04..07 on signed claims.
pub(super) fn check_claims(
    payload: Vec<u8>,
    policy: &VerificationPolicy,
    now: i64,
) -> Result<VerifiedLogoutToken, LogoutTokenError> {
    let claims: LogoutClaims<'_> = parse_object(&payload)?;
    let leeway = i64::try_from(policy.leeway.as_secs()).unwrap_or(i64::MAX);
    // BC-RP-04: iss exact (CORE-01).
    if claims.iss.and_then(raw_str).as_deref() != Some(policy.issuer.as_str()) {
        return Err(LogoutTokenError::WrongIssuer);
    }
    // BC-RP-04: aud contains the client; others must be trusted (CORE-02).
    let audiences: Vec<String> = match claims.aud {
        Some(a) if a.get().starts_with('"') => vec![raw_str(a).ok_or(LogoutTokenError::WrongAudience)?.into_owned()],
        Some(a) if a.get().starts_with('[') => {
            serde_json::from_str::<Vec<String>>(a.get()).map_err(|_| LogoutTokenError::WrongAudience)?
        }
        _ => return Err(LogoutTokenError::WrongAudience),
    };
    if !audiences.contains(&policy.client_id) {
        return Err(LogoutTokenError::WrongAudience);
    }
    if audiences.iter().any(|a| *a != policy.client_id && !policy.trusted_audiences.contains(a)) {
        return Err(LogoutTokenError::UntrustedAudience);
    }
    // BC-RP-04: iat, exp.
    let iat = claims.iat.and_then(raw_number).ok_or(LogoutTokenError::MissingIssuedAt)?;
    if iat > now.saturating_add(leeway) {
        return Err(LogoutTokenError::IssuedInFuture);
    }
    let exp = match claims.exp {
        None => None,
        Some(v) => Some(raw_number(v).ok_or(LogoutTokenError::Malformed)?),
    };
    match (exp, policy.exp) {
        (Some(exp), _) if now > exp.saturating_add(leeway) => return Err(LogoutTokenError::Expired),
        (Some(_), _) => {}
        (None, ExpPolicy::Required) => return Err(LogoutTokenError::MissingExpiry),
        (None, ExpPolicy::AllowMissing { max_age }) => {
            let max_age = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
            if now > iat.saturating_add(max_age).saturating_add(leeway) {
                return Err(LogoutTokenError::TooOld);
            }
        }
    }
    let jti = raw_non_empty(claims.jti).ok_or(LogoutTokenError::MissingJti)?;
    // BC-RP-05: each of them absent, or a non-empty string.
    let subject = match (present_string(claims.sub)?, present_string(claims.sid)?) {
        (Some(sub), Some(sid)) => LogoutSubject::Both { sub, sid },
        (Some(sub), None) => LogoutSubject::Sub(sub),
        (None, Some(sid)) => LogoutSubject::Sid(sid),
        (None, None) => return Err(LogoutTokenError::MissingSubjectAndSession),
    };
    // BC-RP-06: events is an object whose back-channel member is an object. That member named
    // twice is malformed, like any claim named twice.
    let event = match claims.events {
        Some(e) if e.get().starts_with('{') => {
            let members = serde_json::from_str::<EventMembers<'_>>(e.get()).map_err(|_| LogoutTokenError::Malformed)?;
            let mut named = members.0.into_iter().filter(|(k, _)| k == BACKCHANNEL_LOGOUT_EVENT).map(|(_, v)| v);
            let first = named.next();
            if named.next().is_some() {
                return Err(LogoutTokenError::Malformed);
            }
            first
        }
        _ => None,
    };
    match event {
        None => return Err(LogoutTokenError::MissingEvent),
        Some(v) if v.get().starts_with('{') => {}
        Some(_) => return Err(LogoutTokenError::EventNotObject),
    }
    // BC-RP-07.
    if claims.nonce.0 {
        return Err(LogoutTokenError::NoncePresent);
    }
    Ok(VerifiedLogoutToken {
        issuer: policy.issuer.clone(),
        audiences,
        issued_at: iat,
        expires_at: exp,
        jti,
        subject,
        payload: payload.into_boxed_slice(),
        claims: OnceLock::new(),
    })
}

/// The members of the `events` object, in order, values left as raw JSON.
pub(super) struct EventMembers<'a>(pub(super) Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for EventMembers<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = EventMembers<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::new();
                while let Some(key) = map.next_key_seed(StringSeed)? {
                    members.push((key, map.next_value::<&RawValue>()?));
                }
                Ok(EventMembers(members))
            }
        }
        d.deserialize_map(Visitor)
    }
}

/// Deserializes a key as a borrowed-when-possible string.
pub(super) struct StringSeed;

impl<'de> serde::de::DeserializeSeed<'de> for StringSeed {
    type Value = Cow<'de, str>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        string_member(d).map(|s| s.unwrap_or_default())
    }
}
