//! Newtype identifiers.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a value read from storage or the wire.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }
            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
            /// Unwraps the text.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A registered application's `client_id`.
    ClientId
);
id_type!(
    /// A user's stable identifier; it is the `sub` of every token.
    UserId
);
id_type!(
    /// An OP session's internal id. Never the cookie value (only a hash of that is stored) and never a `sid`.
    SessionId
);
id_type!(
    /// The `sid` of one participation: per (OP session, client), random, opaque (BC-SID-02/03).
    Sid
);
