//! Checking an application's back-channel logout endpoint from the provider's side: the probes
//! `adieu check-rp` sends, what Back-Channel Logout 1.0 requires of the answer to each, and the
//! verdict.
//!
//! Every probe names a session that does not exist (a random `sub` and `sid`), or no session at
//! all, so none can end a real session. The first probe is a valid logout token, which the
//! application must accept with 200 (BCL §2.8: a valid token for a session it does not have is
//! still a success). Every other token probe is invalid in exactly one way and must be refused
//! with 400. The last three break the request itself.

use serde::Serialize;

/// One request sent to the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Probe {
    /// A valid logout token for a session the application does not have.
    Valid,
    /// `alg: none`, no signature.
    AlgNone,
    /// `aud` is another client.
    WrongAudience,
    /// `iss` is another issuer.
    WrongIssuer,
    /// `exp` has passed.
    Expired,
    /// No `exp`.
    NoExp,
    /// No `events`.
    NoEvents,
    /// `events` holds another event.
    WrongEvent,
    /// A `nonce` claim (BCL §2.4 forbids it).
    WithNonce,
    /// Neither `sub` nor `sid`.
    NoSubNoSid,
    /// The signature does not match.
    BadSignature,
    /// A `kid` the provider's key set does not have.
    UnknownKid,
    /// HS256, keyed with the provider's public key (algorithm confusion).
    Hs256WithPublicKey,
    /// A GET instead of a POST.
    Get,
    /// The token as JSON instead of a form.
    WrongContentType,
    /// A form of 1 MiB.
    Oversized,
}

impl Probe {
    /// Every probe, in the order they are sent.
    pub const ALL: [Probe; 16] = [
        Probe::Valid,
        Probe::AlgNone,
        Probe::WrongAudience,
        Probe::WrongIssuer,
        Probe::Expired,
        Probe::NoExp,
        Probe::NoEvents,
        Probe::WrongEvent,
        Probe::WithNonce,
        Probe::NoSubNoSid,
        Probe::BadSignature,
        Probe::UnknownKid,
        Probe::Hs256WithPublicKey,
        Probe::Get,
        Probe::WrongContentType,
        Probe::Oversized,
    ];

    /// What was sent, in words.
    pub fn sent(self) -> &'static str {
        match self {
            Probe::Valid => "a valid logout token for a session the application does not have",
            Probe::AlgNone => "a token with alg none and no signature",
            Probe::WrongAudience => "a token whose aud is another client",
            Probe::WrongIssuer => "a token whose iss is another issuer",
            Probe::Expired => "a token that expired an hour ago",
            Probe::NoExp => "a token without exp",
            Probe::NoEvents => "a token without events",
            Probe::WrongEvent => "a token whose events hold another event",
            Probe::WithNonce => "a token with a nonce",
            Probe::NoSubNoSid => "a token with neither sub nor sid",
            Probe::BadSignature => "a token whose signature does not match",
            Probe::UnknownKid => "a token signed under a kid the provider does not publish",
            Probe::Hs256WithPublicKey => "a token signed with HS256, keyed with the provider's public key",
            Probe::Get => "a GET instead of a POST",
            Probe::WrongContentType => "a valid token sent as JSON instead of a form",
            Probe::Oversized => "a form body of 1 MiB",
        }
    }

    /// What Back-Channel Logout 1.0 requires of the answer.
    pub fn requires(self) -> &'static str {
        match self {
            Probe::Valid => "200 OK, with Cache-Control: no-store (BCL §2.8)",
            Probe::Get => "a refusal: logout requests are POSTs (BCL §2.5); 405 is usual",
            Probe::WrongContentType => "a refusal: the token comes as application/x-www-form-urlencoded (BCL §2.5)",
            Probe::Oversized => "a refusal (400 or 413), not a crash or a hang",
            Probe::AlgNone | Probe::BadSignature | Probe::UnknownKid | Probe::Hs256WithPublicKey => {
                "400 Bad Request: the signature must be checked with the provider's keys (BCL §2.6 step 3)"
            }
            Probe::WrongAudience => "400 Bad Request: aud must be the application's client id (BCL §2.6 step 3)",
            Probe::WrongIssuer => "400 Bad Request: iss must be the provider's issuer (BCL §2.6 step 3)",
            Probe::Expired | Probe::NoExp => "400 Bad Request: exp is required and must not have passed (BCL §2.4)",
            Probe::NoEvents | Probe::WrongEvent => {
                "400 Bad Request: events must hold http://schemas.openid.net/event/backchannel-logout (BCL §2.6 step 4)"
            }
            Probe::WithNonce => "400 Bad Request: a logout token must not hold a nonce (BCL §2.6 step 6)",
            Probe::NoSubNoSid => "400 Bad Request: a logout token names sub, sid or both (BCL §2.6 step 5)",
        }
    }

    /// What to change in the application when this probe fails.
    pub fn fix(self) -> &'static str {
        match self {
            Probe::Valid => {
                "Accept a valid token even when no session matches, answer 200 with Cache-Control: no-store, \
                 and check the endpoint reads the logout_token form field"
            }
            Probe::AlgNone | Probe::Hs256WithPublicKey => {
                "Accept only the provider's asymmetric algorithms (RS256, ES256, EdDSA), never the token's own choice"
            }
            Probe::BadSignature => "Verify the signature with the provider's JWKS before trusting any claim",
            Probe::UnknownKid => {
                "Refetch the JWKS once for an unknown kid, then refuse the token (400) if the kid is still unknown"
            }
            Probe::WrongAudience => "Compare aud with your client id",
            Probe::WrongIssuer => "Compare iss with the provider's issuer, exactly",
            Probe::Expired | Probe::NoExp => "Require exp and refuse tokens whose exp has passed",
            Probe::NoEvents | Probe::WrongEvent => "Require the back-channel logout event in events",
            Probe::WithNonce => "Refuse logout tokens that hold a nonce (they could be ID tokens)",
            Probe::NoSubNoSid => "Refuse logout tokens that name neither sub nor sid",
            Probe::Get => "Route only POST to the endpoint",
            Probe::WrongContentType => "Read the token only from an application/x-www-form-urlencoded body",
            Probe::Oversized => "Limit the request body (a logout token is a few kilobytes)",
        }
    }

    fn is_token_probe(self) -> bool {
        !matches!(self, Probe::Valid | Probe::Get | Probe::WrongContentType | Probe::Oversized)
    }
}

/// What the endpoint did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// An HTTP status, and whether the answer carried `Cache-Control: no-store`.
    Status {
        /// The status code.
        code: u16,
        /// `Cache-Control` included `no-store`.
        no_store: bool,
    },
    /// No HTTP answer (refused by the address policy, a timeout, a reset connection).
    Failed(String),
}

/// The verdict on one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// As the specification requires.
    Pass,
    /// Acceptable, but not what the specification asks for.
    Warn,
    /// Wrong: the application must be fixed.
    Fail,
}

/// The verdict on `probe` given `answer`, with a note when it is not a plain pass.
pub fn judge(probe: Probe, answer: &Answer) -> (Verdict, Option<&'static str>) {
    let code = match answer {
        Answer::Status { code, .. } => *code,
        Answer::Failed(_) if probe == Probe::Oversized => {
            return (Verdict::Warn, Some("the connection was closed instead of answered (413 is clearer)"));
        }
        Answer::Failed(_) => return (Verdict::Fail, Some("no HTTP answer")),
    };
    let no_store = matches!(answer, Answer::Status { no_store: true, .. });
    match (probe, code) {
        (Probe::Valid, 200) if no_store => (Verdict::Pass, None),
        (Probe::Valid, 200) => (Verdict::Warn, Some("the answer lacks Cache-Control: no-store")),
        (Probe::Valid, 204) => (Verdict::Warn, Some("204 is not the 200 BCL §2.8 asks for")),
        (Probe::Valid, 400) => (Verdict::Fail, Some("a valid logout token was refused")),
        (Probe::Valid, 501) => (Verdict::Fail, Some("501 says the application does not support back-channel logout")),
        (Probe::Valid, _) => (Verdict::Fail, Some("not the 200 a valid logout token needs")),
        (_, 200..=299) if probe.is_token_probe() => (Verdict::Fail, Some("the invalid token was accepted")),
        (_, 200..=299) => (Verdict::Fail, Some("the malformed request was accepted")),
        (_, 500..=599) => (Verdict::Fail, Some("a server error: the provider would retry, and the defect is hidden")),
        (p, 400) if p.is_token_probe() => (Verdict::Pass, None),
        (p, _) if p.is_token_probe() => (Verdict::Warn, Some("refused, but not with the 400 BCL §2.8 asks for")),
        (Probe::Get, 405) | (Probe::WrongContentType, 400 | 415) | (Probe::Oversized, 400 | 413) => {
            (Verdict::Pass, None)
        }
        (_, 400..=499) => (Verdict::Pass, None),
        _ => (Verdict::Fail, Some("not a refusal")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> Answer {
        Answer::Status { code, no_store: true }
    }

    #[test]
    fn a_valid_token_must_get_200_with_no_store() {
        assert_eq!(judge(Probe::Valid, &status(200)).0, Verdict::Pass);
        assert_eq!(judge(Probe::Valid, &Answer::Status { code: 200, no_store: false }).0, Verdict::Warn);
        assert_eq!(judge(Probe::Valid, &status(204)).0, Verdict::Warn);
        for code in [400, 404, 500, 501] {
            assert_eq!(judge(Probe::Valid, &status(code)).0, Verdict::Fail, "{code}");
        }
    }

    #[test]
    fn an_invalid_token_must_be_refused_with_400() {
        for p in Probe::ALL.into_iter().filter(|p| p.is_token_probe()) {
            assert_eq!(judge(p, &status(400)).0, Verdict::Pass, "{p:?}");
            assert_eq!(judge(p, &status(401)).0, Verdict::Warn, "{p:?}");
            assert_eq!(judge(p, &status(200)).0, Verdict::Fail, "{p:?}");
            assert_eq!(judge(p, &status(503)).0, Verdict::Fail, "{p:?}");
            assert_eq!(judge(p, &Answer::Failed("reset".into())).0, Verdict::Fail, "{p:?}");
        }
    }

    #[test]
    fn a_malformed_request_must_be_refused() {
        assert_eq!(judge(Probe::Get, &status(405)).0, Verdict::Pass);
        assert_eq!(judge(Probe::WrongContentType, &status(415)).0, Verdict::Pass);
        assert_eq!(judge(Probe::Oversized, &status(413)).0, Verdict::Pass);
        assert_eq!(judge(Probe::Oversized, &Answer::Failed("reset".into())).0, Verdict::Warn);
        for p in [Probe::Get, Probe::WrongContentType, Probe::Oversized] {
            assert_eq!(judge(p, &status(200)).0, Verdict::Fail, "{p:?}");
            assert_eq!(judge(p, &status(500)).0, Verdict::Fail, "{p:?}");
        }
    }
}
