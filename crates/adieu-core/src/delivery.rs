//! Back-channel logout deliveries: the state machine and the retry policy (DESIGN.md "Delivery
//! guarantees", BC-SEND-01..09).
//!
//! ```text
//!   Pending { next_attempt_at } ──claim──► Leased { until }
//!   Leased ──200/204──────────────────────► Delivered
//!   Leased ──400 (BC-SEND-06: final)──────► Rejected
//!   Leased ──connect error/timeout/5xx/429► Pending { now + backoff }   while attempts and deadline allow
//!          └─────────────────────────────► Dead { reason }             otherwise
//!   Leased ──any other status─────────────► Dead { reason }             (3xx, other 4xx, 1xx/2xx≠200/204; redirects never followed)
//!   Leased ──lease expires (worker died)──► claimable again (at-least-once)
//!   Pending ──client unsubscribes─────────► Discarded
//!   Dead ──operator retry─────────────────► Pending { now }             (a new round of attempts)
//! ```
//!
//! A delivery row is written in the same transaction that ends the session (the outbox), so a
//! committed logout is delivered even if the process dies right after the commit.

use crate::id::{ClientId, SessionId, Sid, UserId};
use crate::initiator::{Initiator, InitiatorSubscription};
use crate::time::UnixMillis;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    /// A worker holds it until its lease ends.
    Leased,
    /// The application answered 200 or 204.
    Delivered,
    /// The application answered 400: final, never retried.
    Rejected,
    /// Gave up: attempts or deadline exhausted, or a non-recoverable answer.
    Dead,
    /// The client unsubscribed (removed its logout URI) before it was delivered.
    Discarded,
}

impl DeliveryStatus {
    /// Storage and API name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Leased => "leased",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Rejected => "rejected",
            DeliveryStatus::Dead => "dead",
            DeliveryStatus::Discarded => "discarded",
        }
    }

    /// Whether nothing more will happen to it (short of an operator's retry).
    pub fn is_final(self) -> bool {
        !matches!(self, DeliveryStatus::Pending | DeliveryStatus::Leased)
    }

    /// Whether an operator may send it again: a pending one now, a dead or rejected one in a new
    /// round of attempts. A leased one is being sent; delivered and discarded ones are done.
    pub fn retryable(self) -> bool {
        matches!(self, DeliveryStatus::Pending | DeliveryStatus::Dead | DeliveryStatus::Rejected)
    }

    /// Every status.
    pub const ALL: [DeliveryStatus; 6] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Leased,
        DeliveryStatus::Delivered,
        DeliveryStatus::Rejected,
        DeliveryStatus::Dead,
        DeliveryStatus::Discarded,
    ];

    /// The storage names of the final statuses ([`DeliveryStatus::is_final`]): what retention may
    /// prune.
    pub fn final_names() -> Vec<&'static str> {
        Self::ALL.into_iter().filter(|s| s.is_final()).map(DeliveryStatus::as_str).collect()
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeliveryStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "pending" => DeliveryStatus::Pending,
            "leased" => DeliveryStatus::Leased,
            "delivered" => DeliveryStatus::Delivered,
            "rejected" => DeliveryStatus::Rejected,
            "dead" => DeliveryStatus::Dead,
            "discarded" => DeliveryStatus::Discarded,
            other => return Err(format!("unknown delivery status {other:?}")),
        })
    }
}

/// One logout notification to one application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// Id.
    pub id: String,
    /// The ended OP session.
    pub session_id: SessionId,
    /// The application to notify.
    pub client_id: ClientId,
    /// The user's subject (kept even if the account is deleted).
    pub sub: UserId,
    /// The application's `sid` for that session.
    pub sid: Sid,
    /// Why the session ended.
    pub initiator: Initiator,
    /// Current status.
    pub status: DeliveryStatus,
    /// Attempts made in the current round (`attempt_count` on the wire; `attempts` there lists them).
    #[serde(rename = "attempt_count")]
    pub attempts: u32,
    /// When the next attempt is due (pending).
    pub next_attempt_at: UnixMillis,
    /// When the current lease ends (leased).
    pub lease_until: Option<UnixMillis>,
    /// When the current round of attempts started (creation, or an operator's retry).
    pub round_started_at: UnixMillis,
    /// Creation time (the logout's commit).
    pub created_at: UnixMillis,
    /// When it reached a final status.
    pub finished_at: Option<UnixMillis>,
    /// The last failure, for operators.
    pub last_error: Option<String>,
}

/// One HTTP attempt of a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    /// The delivery.
    pub delivery_id: String,
    /// 1-based number within the delivery's history.
    pub number: u32,
    /// When it started.
    pub at: UnixMillis,
    /// Time to the answer (or the failure), milliseconds.
    pub latency_ms: u64,
    /// HTTP status, if an answer came.
    pub http_status: Option<u16>,
    /// What went wrong, if anything.
    pub error: Option<String>,
}

/// What the application's answer (or its absence) means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// An HTTP status arrived.
    Status {
        /// The status.
        code: u16,
        /// `Retry-After` in seconds (honoured for 429 and 5xx; the HTTP-date form is ignored).
        retry_after: Option<Duration>,
    },
    /// No answer: connection refused, TLS failure, timeout, address refused by policy, …
    Failed {
        /// Whether trying again may help (network trouble yes; a forbidden address no).
        recoverable: bool,
        /// Description for operators.
        reason: String,
    },
}

/// What one attempt's result means: the one verdict type the worker decides, the store
/// records, metrics count (by [`Verdict::label`]), and the API, the command line and the sign-out
/// page show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// 200 or 204.
    Delivered,
    /// 400 (BC-RESP-02, BC-SEND-06).
    Rejected,
    /// Try again at this time.
    Retry {
        /// When.
        at: UnixMillis,
        /// Why this attempt failed.
        reason: String,
    },
    /// Give up.
    Dead {
        /// Why.
        reason: String,
    },
}

impl Verdict {
    /// The metric label and the name operators see: `delivered`, `rejected`, `retry` or `dead`.
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Delivered => "delivered",
            Verdict::Rejected => "rejected",
            Verdict::Retry { .. } => "retry",
            Verdict::Dead { .. } => "dead",
        }
    }

    /// Why the attempt failed, as stored in `last_error` (none when delivered).
    pub fn reason(&self) -> Option<&str> {
        match self {
            Verdict::Delivered => None,
            Verdict::Rejected => Some("HTTP 400: the application rejected the logout token"),
            Verdict::Retry { reason, .. } | Verdict::Dead { reason } => Some(reason),
        }
    }
}

/// A delivery's state with what each state carries (the diagram at the top of this module).
/// The store persists it as `status`, `next_attempt_at`, `lease_until`, `finished_at` and
/// `last_error`; it decides nothing itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryState {
    /// Waiting for its next attempt.
    Pending {
        /// When it is due.
        next_attempt_at: UnixMillis,
    },
    /// A worker holds it.
    Leased {
        /// When the lease ends.
        until: UnixMillis,
    },
    /// The application answered 200 or 204.
    Delivered {
        /// When the answer came.
        at: UnixMillis,
    },
    /// The application answered 400.
    Rejected {
        /// When.
        at: UnixMillis,
    },
    /// Given up.
    Dead {
        /// When.
        at: UnixMillis,
        /// Why.
        reason: String,
    },
    /// The client unsubscribed first.
    Discarded {
        /// When.
        at: UnixMillis,
    },
}

impl DeliveryState {
    /// The state a leased delivery goes to when an attempt that ended at `ended_at` got `verdict`.
    pub fn after(verdict: &Verdict, ended_at: UnixMillis) -> DeliveryState {
        match verdict {
            Verdict::Delivered => DeliveryState::Delivered { at: ended_at },
            Verdict::Rejected => DeliveryState::Rejected { at: ended_at },
            Verdict::Retry { at, .. } => DeliveryState::Pending { next_attempt_at: *at },
            Verdict::Dead { reason } => DeliveryState::Dead { at: ended_at, reason: reason.clone() },
        }
    }

    /// The status it is stored and shown under.
    pub fn status(&self) -> DeliveryStatus {
        match self {
            DeliveryState::Pending { .. } => DeliveryStatus::Pending,
            DeliveryState::Leased { .. } => DeliveryStatus::Leased,
            DeliveryState::Delivered { .. } => DeliveryStatus::Delivered,
            DeliveryState::Rejected { .. } => DeliveryStatus::Rejected,
            DeliveryState::Dead { .. } => DeliveryStatus::Dead,
            DeliveryState::Discarded { .. } => DeliveryStatus::Discarded,
        }
    }

    /// When it reached a final state (none while pending or leased).
    pub fn finished_at(&self) -> Option<UnixMillis> {
        match self {
            DeliveryState::Pending { .. } | DeliveryState::Leased { .. } => None,
            DeliveryState::Delivered { at }
            | DeliveryState::Rejected { at }
            | DeliveryState::Dead { at, .. }
            | DeliveryState::Discarded { at } => Some(*at),
        }
    }
}

impl Delivery {
    /// Its state, from the stored columns.
    pub fn state(&self) -> DeliveryState {
        let at = self.finished_at.unwrap_or(self.next_attempt_at);
        match self.status {
            DeliveryStatus::Pending => DeliveryState::Pending { next_attempt_at: self.next_attempt_at },
            DeliveryStatus::Leased => DeliveryState::Leased { until: self.lease_until.unwrap_or(self.next_attempt_at) },
            DeliveryStatus::Delivered => DeliveryState::Delivered { at },
            DeliveryStatus::Rejected => DeliveryState::Rejected { at },
            DeliveryStatus::Dead => DeliveryState::Dead { at, reason: self.last_error.clone().unwrap_or_default() },
            DeliveryStatus::Discarded => DeliveryState::Discarded { at },
        }
    }
}

/// The notify rule: whether ending a session with `initiator` writes a delivery to a participant
/// whose client has `logout_uri` (its `backchannel_logout_uri`) and `subscription`. Only clients
/// with a logout URI are told (BC-REG-01), and only of the initiators they subscribe to
/// (`rp-logout` and `idp-logout` always).
pub fn notified(initiator: Initiator, logout_uri: Option<&str>, subscription: &InitiatorSubscription) -> bool {
    logout_uri.is_some() && subscription.subscribes(initiator)
}

/// Retries with exponential backoff and jitter, a cap, an attempt limit and a deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Attempts per round, first included. `1` means never retry (Auth0's behaviour).
    pub max_attempts: u32,
    /// Delay before the second attempt.
    pub initial_backoff: Duration,
    /// Longest delay between attempts.
    pub max_backoff: Duration,
    /// No attempt starts later than this after the round began.
    pub deadline: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 12,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(600),
            deadline: Duration::from_secs(24 * 3600),
        }
    }
}

impl RetryPolicy {
    /// The delay after attempt `attempt` (1-based) failed, before jitter: initial × 2^(attempt-1), capped.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(30));
        self.initial_backoff.saturating_mul(factor).min(self.max_backoff)
    }

    /// Decides what follows attempt number `attempt` (1-based, within the round) that got `response`.
    /// `jitter` in `[0, 1)` picks the delay within `[backoff/2, backoff]` ("equal jitter").
    pub fn next(
        &self,
        response: &Response,
        attempt: u32,
        round_started_at: UnixMillis,
        now: UnixMillis,
        jitter: f64,
    ) -> Verdict {
        let reason = match response {
            Response::Status { code: 200 | 204, .. } => return Verdict::Delivered,
            Response::Status { code: 400, .. } => return Verdict::Rejected,
            Response::Status { code, retry_after } if *code == 429 || (500..600).contains(code) => {
                let reason = format!("HTTP {code}");
                return self.retry_or_die(reason, attempt, round_started_at, now, jitter, *retry_after);
            }
            Response::Status { code, .. } if (300..400).contains(code) => {
                format!("HTTP {code}: redirects are not followed")
            }
            Response::Status { code, .. } => format!("HTTP {code} is not a recoverable answer"),
            Response::Failed { recoverable: true, reason } => {
                return self.retry_or_die(reason.clone(), attempt, round_started_at, now, jitter, None);
            }
            Response::Failed { recoverable: false, reason } => reason.clone(),
        };
        Verdict::Dead { reason }
    }

    fn retry_or_die(
        &self,
        reason: String,
        attempt: u32,
        round_started_at: UnixMillis,
        now: UnixMillis,
        jitter: f64,
        retry_after: Option<Duration>,
    ) -> Verdict {
        if attempt >= self.max_attempts {
            return Verdict::Dead { reason: format!("{reason}; gave up after {attempt} attempt(s)") };
        }
        let base = self.backoff(attempt);
        let jitter = jitter.clamp(0.0, 1.0);
        let mut delay = base / 2 + base.mul_f64(jitter) / 2;
        if let Some(ra) = retry_after {
            delay = delay.max(ra.min(self.max_backoff));
        }
        let at = now.plus(delay);
        if at > round_started_at.plus(self.deadline) {
            return Verdict::Dead { reason: format!("{reason}; retry deadline passed") };
        }
        Verdict::Retry { at, reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: UnixMillis = UnixMillis(1_000_000);

    fn status(code: u16) -> Response {
        Response::Status { code, retry_after: None }
    }

    #[test]
    fn bc_send_07_200_and_204_are_delivered() {
        let p = RetryPolicy::default();
        assert_eq!(p.next(&status(200), 1, T0, T0, 0.5), Verdict::Delivered);
        assert_eq!(p.next(&status(204), 1, T0, T0, 0.5), Verdict::Delivered);
    }

    #[test]
    fn bc_send_06_400_is_final_and_never_retried() {
        assert_eq!(RetryPolicy::default().next(&status(400), 1, T0, T0, 0.5), Verdict::Rejected);
    }

    #[test]
    fn bc_send_06_5xx_429_and_network_errors_are_retried() {
        let p = RetryPolicy::default();
        for r in
            [status(500), status(503), status(429), Response::Failed { recoverable: true, reason: "refused".into() }]
        {
            assert!(matches!(p.next(&r, 1, T0, T0, 0.5), Verdict::Retry { .. }), "{r:?}");
        }
    }

    #[test]
    fn redirects_and_other_4xx_are_dead_at_once() {
        let p = RetryPolicy::default();
        match p.next(&status(302), 1, T0, T0, 0.5) {
            Verdict::Dead { reason } => assert!(reason.contains("redirects are not followed")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(p.next(&status(404), 1, T0, T0, 0.5), Verdict::Dead { .. }));
        let forbidden = Response::Failed { recoverable: false, reason: "address refused".into() };
        assert!(matches!(p.next(&forbidden, 1, T0, T0, 0.5), Verdict::Dead { .. }));
    }

    #[test]
    fn backoff_doubles_with_equal_jitter_and_is_capped() {
        let p = RetryPolicy { max_attempts: 100, ..RetryPolicy::default() };
        assert_eq!(p.backoff(1), Duration::from_secs(1));
        assert_eq!(p.backoff(4), Duration::from_secs(8));
        assert_eq!(p.backoff(40), Duration::from_secs(600));
        let at = |attempt, j| match p.next(&status(500), attempt, T0, T0, j) {
            Verdict::Retry { at, .. } => at.0 - T0.0,
            other => panic!("{other:?}"),
        };
        assert_eq!(at(3, 0.0), 2_000);
        assert_eq!(at(3, 0.999_999), 3_999);
        assert_eq!(at(50, 0.0), 300_000);
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        let p = RetryPolicy::default();
        let r = Response::Status { code: 429, retry_after: Some(Duration::from_secs(30)) };
        assert_eq!(
            p.next(&r, 1, T0, T0, 0.0),
            Verdict::Retry { at: T0.plus(Duration::from_secs(30)), reason: "HTTP 429".into() }
        );
        let huge = Response::Status { code: 429, retry_after: Some(Duration::from_secs(99_999)) };
        assert!(matches!(p.next(&huge, 1, T0, T0, 0.0), Verdict::Retry { at, .. } if at == T0.plus(p.max_backoff)));
    }

    #[test]
    fn attempts_are_limited_and_one_attempt_means_no_retry() {
        let once = RetryPolicy { max_attempts: 1, ..RetryPolicy::default() };
        assert!(matches!(once.next(&status(500), 1, T0, T0, 0.5), Verdict::Dead { .. }));
        let p = RetryPolicy { max_attempts: 3, ..RetryPolicy::default() };
        assert!(matches!(p.next(&status(500), 2, T0, T0, 0.5), Verdict::Retry { .. }));
        assert!(matches!(p.next(&status(500), 3, T0, T0, 0.5), Verdict::Dead { .. }));
    }

    #[test]
    fn no_retry_is_scheduled_past_the_deadline() {
        let p = RetryPolicy { deadline: Duration::from_secs(10), ..RetryPolicy::default() };
        let late = T0.plus(Duration::from_secs(9));
        match p.next(&status(500), 2, T0, late, 0.5) {
            Verdict::Dead { reason } => assert!(reason.contains("deadline")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn notify_rule_needs_a_logout_uri_and_a_subscribed_initiator() {
        let default = InitiatorSubscription::default();
        assert!(notified(Initiator::RpLogout, Some("https://app.example/bc"), &default));
        assert!(!notified(Initiator::RpLogout, None, &default));
        assert!(!notified(Initiator::SessionExpired, Some("https://app.example/bc"), &default));
    }

    #[test]
    fn delivery_state_after_each_verdict() {
        let end = UnixMillis(5_000);
        assert_eq!(DeliveryState::after(&Verdict::Delivered, end), DeliveryState::Delivered { at: end });
        assert_eq!(DeliveryState::after(&Verdict::Rejected, end).status(), DeliveryStatus::Rejected);
        let retry = Verdict::Retry { at: UnixMillis(9_000), reason: "HTTP 503".into() };
        assert_eq!(DeliveryState::after(&retry, end), DeliveryState::Pending { next_attempt_at: UnixMillis(9_000) });
        assert_eq!(DeliveryState::after(&retry, end).finished_at(), None);
        let dead = DeliveryState::after(&Verdict::Dead { reason: "HTTP 404".into() }, end);
        assert_eq!(dead.finished_at(), Some(end));
        assert!(dead.status().is_final());
    }
}
