//! The seven ways an OP session ends, and a client's subscription to them (DESIGN.md §1).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Why a session ended. Every ending goes through one function with one of these names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Initiator {
    /// RP-initiated logout at the end-session endpoint.
    RpLogout,
    /// An upstream identity provider sent a back-channel logout.
    IdpLogout,
    /// The user's password changed.
    PasswordChanged,
    /// The session passed its idle or absolute lifetime.
    SessionExpired,
    /// An administrator or the user revoked the session.
    SessionRevoked,
    /// The account was deleted.
    AccountDeleted,
    /// The user's email identifier changed.
    EmailIdentifierChanged,
}

impl Initiator {
    /// All initiators.
    pub const ALL: [Initiator; 7] = [
        Initiator::RpLogout,
        Initiator::IdpLogout,
        Initiator::PasswordChanged,
        Initiator::SessionExpired,
        Initiator::SessionRevoked,
        Initiator::AccountDeleted,
        Initiator::EmailIdentifierChanged,
    ];

    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Initiator::RpLogout => "rp-logout",
            Initiator::IdpLogout => "idp-logout",
            Initiator::PasswordChanged => "password-changed",
            Initiator::SessionExpired => "session-expired",
            Initiator::SessionRevoked => "session-revoked",
            Initiator::AccountDeleted => "account-deleted",
            Initiator::EmailIdentifierChanged => "email-identifier-changed",
        }
    }

    /// Whether every `custom` subscription includes this initiator.
    pub fn is_always_subscribed(self) -> bool {
        matches!(self, Initiator::RpLogout | Initiator::IdpLogout)
    }
}

impl fmt::Display for Initiator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An initiator name that is not one of the seven.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown logout initiator {0:?}")]
pub struct UnknownInitiator(pub String);

impl FromStr for Initiator {
    type Err = UnknownInitiator;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Initiator::ALL.into_iter().find(|i| i.as_str() == s).ok_or_else(|| UnknownInitiator(s.to_owned()))
    }
}

/// `custom` (the listed initiators plus the two required ones) or `all` (every current and future one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum InitiatorMode {
    /// Only the selected initiators, always including `rp-logout` and `idp-logout`.
    #[default]
    Custom,
    /// Every initiator.
    All,
}

/// A client's `backchannel_logout_initiators` setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct InitiatorSubscription {
    /// The mode.
    pub mode: InitiatorMode,
    /// The initiators chosen in `custom` mode (the required two are implied).
    #[serde(default)]
    pub selected_initiators: Vec<Initiator>,
}

impl InitiatorSubscription {
    /// Whether a session ended by `initiator` notifies this client.
    pub fn subscribes(&self, initiator: Initiator) -> bool {
        match self.mode {
            InitiatorMode::All => true,
            InitiatorMode::Custom => initiator.is_always_subscribed() || self.selected_initiators.contains(&initiator),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_subscription_is_custom_with_the_two_required_initiators() {
        let s = InitiatorSubscription::default();
        for i in Initiator::ALL {
            assert_eq!(s.subscribes(i), matches!(i, Initiator::RpLogout | Initiator::IdpLogout), "{i}");
        }
    }

    #[test]
    fn all_mode_subscribes_to_everything_and_custom_adds_selected() {
        let all = InitiatorSubscription { mode: InitiatorMode::All, selected_initiators: vec![] };
        assert!(Initiator::ALL.into_iter().all(|i| all.subscribes(i)));
        let custom =
            InitiatorSubscription { mode: InitiatorMode::Custom, selected_initiators: vec![Initiator::SessionExpired] };
        assert!(custom.subscribes(Initiator::SessionExpired));
        assert!(custom.subscribes(Initiator::RpLogout));
        assert!(!custom.subscribes(Initiator::AccountDeleted));
    }

    #[test]
    fn names_round_trip() {
        for i in Initiator::ALL {
            assert_eq!(i.as_str().parse::<Initiator>().unwrap(), i);
            assert_eq!(serde_json::to_value(i).unwrap(), i.as_str());
        }
        assert!("logout".parse::<Initiator>().is_err());
    }
}
