//! The domain of the adieu OpenID Provider, without I/O.
//!
//! - [`id`]: newtype identifiers (`ClientId`, `UserId`, `SessionId`, `Sid`, …) so that one can never be
//!   passed where another is expected (a `Sid` is never a cookie value).
//! - [`time`]: [`UnixMillis`] and the [`Clock`] trait; time is a parameter so tests control it.
//! - [`client`]: registered applications and their logout settings.
//! - [`consent`]: what users allowed applications, and when the consent screen is shown.
//! - [`delivery`]: back-channel logout deliveries: the state machine and the retry policy.
//! - [`audit`]: audit log events.
//! - [`initiator`]: the seven ways a session ends and a client's subscription to them.
//! - [`rp_check`]: the probes `adieu check-rp` sends to an application and the verdict on each.
//! - [`net`]: which IP addresses the provider may call on an application's behalf (SSRF defence).
//! - [`user`]: user accounts, identifier rules, and which initiator a change of account ends sessions with.
//! - [`session`]: OP sessions, their lifetimes, and participations `(session, client, sid)`.
//! - [`grant`]: authorization codes, access and refresh tokens, pending sign-in requests.
//! - [`keys`]: signing keys: generations, pre-publication, which key signs when, retirement.
//! - [`upstream`]: signing in through upstream providers and being logged out by them (`idp-logout`).
//! - [`store`]: the storage traits every backend implements, and [`store::StoreError`].

pub mod audit;
pub mod client;
pub mod consent;
pub mod delivery;
pub mod grant;
pub mod handoff;
pub mod id;
pub mod initiator;
pub mod keys;
pub mod net;
pub mod rp_check;
pub mod session;
pub mod store;
pub mod text;
pub mod time;
pub mod upstream;
pub mod user;

pub use client::{Client, TokenEndpointAuthMethod};
pub use id::{ClientId, SessionId, Sid, UserId};
pub use initiator::{Initiator, InitiatorMode, InitiatorSubscription};
pub use session::{Participation, Session, SessionLifetime};
pub use store::{Store, StoreError, StoreResult};
pub use time::{Clock, ManualClock, SystemClock, UnixMillis};
pub use user::User;
