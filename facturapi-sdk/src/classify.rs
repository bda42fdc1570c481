//! What the send path does after each attempt: a pure function from the operation's resend
//! rule, what the attempt came to and the call's history to the next action. The loop in
//! [`crate::send`] only carries the action out, so every retry rule is tested here as a
//! table, without a server or a clock.
//!
//! The rules:
//! - a 2xx is the answer;
//! - a 429 was not processed: it is resent after its `Retry-After` (floored at the class's
//!   first backoff delay, so `Retry-After: 0` cannot turn into a busy loop; the class backoff
//!   when absent) and never spends the retry budget, only the deadline. A `Retry-After`
//!   longer than the policy's cap fails at once: the server asked for more than the caller
//!   allowed, and waiting part of it would only earn another 429;
//! - 500, 502, 503, 504, a dropped connection, a timeout and a body cut short may have been
//!   processed: resent only when the operation's rule allows it (idempotent, or keyed), after
//!   the class backoff (floored at a 503's `Retry-After`), within the retry budget;
//! - 409 `idempotency_key_in_use`: an earlier attempt with the key is still being processed;
//!   a keyed request is resent (a later attempt gets that attempt's document);
//! - a connection that never opened sent nothing: resent whatever the rule, within the budget;
//! - anything else (4xx, 3xx) is the final answer;
//! - no resend is scheduled past the deadline.

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};

use crate::request::Resend;

/// What one attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A 2xx, read whole (or its headers, for a stream).
    Success,
    /// 429.
    RateLimited {
        /// The server's `Retry-After`, uncapped.
        retry_after: Option<Duration>,
    },
    /// 500, 502, 503 or 504: the server or a gateway failed, perhaps after the work was done.
    ServerError {
        /// The server's `Retry-After`, uncapped.
        retry_after: Option<Duration>,
    },
    /// 409 `idempotency_key_in_use` for a request that carries a key.
    KeyInUse,
    /// Any other answer (4xx, 3xx, an oversized 2xx body): final.
    Final {
        /// Whether the server may have acted on it (a 3xx from who knows what, a 2xx too
        /// large to read).
        may_have_been_processed: bool,
    },
    /// The connection never opened: nothing was sent.
    NotConnected,
    /// The request may have reached the server and no whole answer came back (a reset, a
    /// timeout, a body cut short).
    Lost,
}

impl Outcome {
    /// Whether this attempt may have been processed by the server.
    pub(crate) fn may_have_been_processed(self) -> bool {
        match self {
            Outcome::Success | Outcome::ServerError { .. } | Outcome::KeyInUse | Outcome::Lost => {
                true
            }
            Outcome::Final {
                may_have_been_processed,
            } => may_have_been_processed,
            Outcome::RateLimited { .. } | Outcome::NotConnected => false,
        }
    }
}

/// What the call has done so far, this attempt included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct History {
    /// Resends already spent from the retry budget (429s do not spend it).
    pub(crate) retries: usize,
}

/// The policy's numbers and the time left, for one decision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Limits {
    /// Resends allowed after failures that are not 429s.
    pub(crate) max_retries: usize,
    /// Longest `Retry-After` the caller accepts.
    pub(crate) retry_after_cap: Duration,
    /// The class's first backoff delay: the floor of any `Retry-After`.
    pub(crate) min_delay: Duration,
    /// The next delay of the class's backoff schedule, jitter applied.
    pub(crate) backoff: Duration,
    /// A uniform draw in `[0, 1]`: the jitter added on top of a `Retry-After`.
    pub(crate) jitter: f64,
    /// Time left until the call's deadline.
    pub(crate) remaining: Duration,
}

/// Most jitter added on top of a `Retry-After`, so callers paused together do not all come
/// back in the same millisecond.
const RETRY_AFTER_SPREAD: Duration = Duration::from_millis(100);

/// Why the call ends without the answer it wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GiveUp {
    /// The attempt's own answer is final.
    Final,
    /// It may have been processed, and the operation's rule forbids sending it again.
    Unsafe,
    /// The retry budget is spent.
    BudgetSpent,
    /// The next attempt would start after the deadline.
    Deadline,
    /// The server asked to wait longer than the policy's `retry_after_cap`.
    RetryAfterAboveCap(Duration),
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Return the answer.
    Return,
    /// Send again after `after`; `spends_budget` for failures that are not 429s.
    Resend {
        /// The wait before the next attempt.
        after: Duration,
        /// Whether the resend counts against the retry budget.
        spends_budget: bool,
    },
    /// Stop with an error.
    GiveUp(GiveUp),
}

/// The next action after an attempt.
pub(crate) fn decide(rule: Resend, outcome: Outcome, history: History, limits: Limits) -> Action {
    let resend = |after: Duration, spends_budget: bool| {
        if after > limits.remaining {
            Action::GiveUp(GiveUp::Deadline)
        } else {
            Action::Resend {
                after,
                spends_budget,
            }
        }
    };
    let above_cap = |retry_after: Option<Duration>| {
        retry_after
            .filter(|wait| *wait > limits.retry_after_cap)
            .map(|wait| Action::GiveUp(GiveUp::RetryAfterAboveCap(wait)))
    };
    match outcome {
        Outcome::Success => Action::Return,
        Outcome::Final { .. } => Action::GiveUp(GiveUp::Final),
        Outcome::RateLimited { retry_after } => {
            if let Some(give_up) = above_cap(retry_after) {
                return give_up;
            }
            let after = match retry_after {
                Some(wait) => {
                    let floor = wait.max(limits.min_delay);
                    floor + (floor / 4).min(RETRY_AFTER_SPREAD).mul_f64(limits.jitter)
                }
                None => limits.backoff,
            };
            resend(after, false)
        }
        Outcome::ServerError { .. } | Outcome::KeyInUse | Outcome::NotConnected | Outcome::Lost => {
            let safe = match outcome {
                Outcome::NotConnected => true,
                _ => rule != Resend::NotAfterSend,
            };
            if !safe {
                return Action::GiveUp(if outcome == Outcome::KeyInUse {
                    GiveUp::Final
                } else {
                    GiveUp::Unsafe
                });
            }
            let retry_after = match outcome {
                Outcome::ServerError { retry_after } => retry_after,
                _ => None,
            };
            if let Some(give_up) = above_cap(retry_after) {
                return give_up;
            }
            if history.retries >= limits.max_retries {
                return Action::GiveUp(GiveUp::BudgetSpent);
            }
            resend(limits.backoff.max(retry_after.unwrap_or_default()), true)
        }
    }
}

/// Longest wait a `Retry-After` is read as (about 30 years): anything longer is as good as
/// forever, and keeps `Instant` arithmetic from overflowing.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(1 << 30);

/// One `Retry-After` value as a wait: delta-seconds (whole or fractional) or an HTTP-date
/// (a past date is zero); junk, negative and non-finite values are `None`. Not capped: the
/// caller compares it with its own cap.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let numeric = !value.is_empty()
        && value.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && value.bytes().filter(|b| *b == b'.').count() <= 1
        && value.bytes().next().is_some_and(|b| b.is_ascii_digit());
    if numeric {
        // Digits only: parse as f64 saturates to infinity rather than failing.
        let seconds: f64 = value.parse().ok()?;
        return Some(
            Duration::try_from_secs_f64(seconds)
                .map_or(RETRY_AFTER_MAX, |d| d.min(RETRY_AFTER_MAX)),
        );
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(
        date.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(RETRY_AFTER_MAX),
    )
}

/// The `Retry-After` of a response: of several headers (or comma-joined values of an
/// HTTP-date-free list), the longest valid one wins; none valid is `None`.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    headers
        .get_all(RETRY_AFTER)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| {
            // An HTTP-date has a comma of its own ("Wed, 21 Oct 2015 07:28:00 GMT"): split
            // only values that do not read whole.
            match parse_retry_after(value, now) {
                Some(wait) => vec![Some(wait)],
                None => value
                    .split(',')
                    .map(|part| parse_retry_after(part, now))
                    .collect(),
            }
        })
        .flatten()
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;
    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn limits() -> Limits {
        Limits {
            max_retries: 3,
            retry_after_cap: S(120),
            min_delay: MS(250),
            backoff: MS(400),
            jitter: 0.0,
            remaining: S(60),
        }
    }

    fn resend(after: Duration, spends_budget: bool) -> Action {
        Action::Resend {
            after,
            spends_budget,
        }
    }

    /// Every rule against every outcome: the whole retry policy in one table.
    #[test]
    fn the_decision_table() {
        use GiveUp::{BudgetSpent, Deadline, RetryAfterAboveCap, Unsafe};
        use Outcome::*;
        use Resend::{Idempotent, Keyed, NotAfterSend};
        let h0 = History::default();
        let spent = History { retries: 3 };
        let rl = |s: Option<u64>| RateLimited {
            retry_after: s.map(S),
        };
        let se = |s: Option<u64>| ServerError {
            retry_after: s.map(S),
        };
        let final_ = Outcome::Final {
            may_have_been_processed: false,
        };
        #[rustfmt::skip]
        let table: Vec<(Resend, Outcome, History, Limits, Action)> = vec![
            // A 2xx is the answer; a 4xx or 3xx is final.
            (NotAfterSend, Success, h0, limits(), Action::Return),
            (Idempotent, final_, h0, limits(), Action::GiveUp(GiveUp::Final)),
            // 429: resent after Retry-After whatever the rule, without spending the budget.
            (NotAfterSend, rl(Some(2)), spent, limits(), resend(S(2), false)),
            (Keyed, rl(Some(2)), h0, limits(), resend(S(2), false)),
            // ... its absence: the class backoff; zero: floored at the first backoff delay.
            (NotAfterSend, rl(None), h0, limits(), resend(MS(400), false)),
            (NotAfterSend, rl(Some(0)), h0, limits(), resend(MS(250), false)),
            // ... above the cap: fail at once, with the server's own value.
            (Keyed, rl(Some(86_400)), h0, limits(), Action::GiveUp(RetryAfterAboveCap(S(86_400)))),
            // ... past the deadline: give up.
            (Keyed, rl(Some(5)), h0, Limits { remaining: S(3), ..limits() }, Action::GiveUp(Deadline)),
            // 5xx, drops, timeouts, bodies cut short: only safe requests, within the budget.
            (Idempotent, se(None), h0, limits(), resend(MS(400), true)),
            (Keyed, se(None), h0, limits(), resend(MS(400), true)),
            (NotAfterSend, se(None), h0, limits(), Action::GiveUp(Unsafe)),
            (Keyed, Lost, h0, limits(), resend(MS(400), true)),
            (Idempotent, Lost, h0, limits(), resend(MS(400), true)),
            (NotAfterSend, Lost, h0, limits(), Action::GiveUp(Unsafe)),
            (Keyed, Lost, spent, limits(), Action::GiveUp(BudgetSpent)),
            (Idempotent, Lost, h0, Limits { remaining: MS(100), ..limits() }, Action::GiveUp(Deadline)),
            // ... a 503's Retry-After is a floor under the backoff; above the cap it fails.
            (Idempotent, se(Some(3)), h0, limits(), resend(S(3), true)),
            (Idempotent, se(Some(1_000)), h0, limits(), Action::GiveUp(RetryAfterAboveCap(S(1_000)))),
            // 409 idempotency_key_in_use: a keyed request waits for its earlier attempt.
            (Keyed, KeyInUse, h0, limits(), resend(MS(400), true)),
            (NotAfterSend, KeyInUse, h0, limits(), Action::GiveUp(GiveUp::Final)),
            // A connection that never opened sent nothing: any rule, within the budget.
            (NotAfterSend, NotConnected, h0, limits(), resend(MS(400), true)),
            (NotAfterSend, NotConnected, spent, limits(), Action::GiveUp(BudgetSpent)),
        ];
        for (i, (rule, outcome, history, limits, want)) in table.into_iter().enumerate() {
            assert_eq!(
                decide(rule, outcome, history, limits),
                want,
                "row {i}: {rule:?} {outcome:?} {history:?}"
            );
        }
    }

    #[test]
    fn jitter_on_a_retry_after_is_bounded() {
        let l = Limits {
            jitter: 1.0,
            ..limits()
        };
        assert_eq!(
            decide(
                Resend::Keyed,
                Outcome::RateLimited {
                    retry_after: Some(S(2))
                },
                History::default(),
                l
            ),
            resend(S(2) + MS(100), false)
        );
    }

    #[test]
    fn which_outcomes_may_have_been_processed() {
        assert!(Outcome::Lost.may_have_been_processed());
        assert!(Outcome::KeyInUse.may_have_been_processed());
        assert!(Outcome::ServerError { retry_after: None }.may_have_been_processed());
        assert!(!Outcome::RateLimited { retry_after: None }.may_have_been_processed());
        assert!(!Outcome::NotConnected.may_have_been_processed());
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + S(1_700_000_000);
        assert_eq!(parse_retry_after("3", now), Some(S(3)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("1.5", now), Some(MS(1500)));
        assert_eq!(parse_retry_after("86400", now), Some(S(86_400)), "uncapped");
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(RETRY_AFTER_MAX)
        );
        let date = httpdate::fmt_http_date(now + S(7));
        assert_eq!(parse_retry_after(&date, now), Some(S(7)));
        let past = httpdate::fmt_http_date(now - S(7));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        for junk in [
            "",
            "-1",
            ".5",
            "1.2.3",
            "soon",
            "3 seconds",
            "NaN",
            "inf",
            "1e3",
        ] {
            assert_eq!(parse_retry_after(junk, now), None, "{junk:?}");
        }
    }

    #[test]
    fn of_several_retry_after_headers_the_longest_wins() {
        let now = SystemTime::now();
        let mut headers = HeaderMap::new();
        headers.append(RETRY_AFTER, "1".parse().unwrap());
        headers.append(RETRY_AFTER, "junk".parse().unwrap());
        headers.append(RETRY_AFTER, "4".parse().unwrap());
        assert_eq!(retry_after(&headers, now), Some(S(4)));
        let mut joined = HeaderMap::new();
        joined.append(RETRY_AFTER, "2, 5".parse().unwrap());
        assert_eq!(retry_after(&joined, now), Some(S(5)));
        let mut date = HeaderMap::new();
        let value = httpdate::fmt_http_date(now + S(30));
        date.append(RETRY_AFTER, value.parse().unwrap());
        let got = retry_after(&date, now).unwrap();
        assert!(got > S(28) && got <= S(30), "{got:?}");
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }
}

#[cfg(test)]
mod never_panics {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any header text, including what a hostile server sends: a typed answer, no panic,
        /// and a numeric value reads as itself.
        #[test]
        fn retry_after_parser(value in "\\PC{0,40}", seconds in 0u32..1_000_000) {
            let now = SystemTime::now();
            let _ = parse_retry_after(&value, now);
            prop_assert_eq!(
                parse_retry_after(&seconds.to_string(), now),
                Some(Duration::from_secs(u64::from(seconds)))
            );
        }

        #[test]
        fn retry_after_of_raw_header_bytes(values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..4)) {
            let mut headers = HeaderMap::new();
            for bytes in values {
                if let Ok(value) = reqwest::header::HeaderValue::from_bytes(&bytes) {
                    headers.append(RETRY_AFTER, value);
                }
            }
            let _ = retry_after(&headers, SystemTime::now());
        }
    }
}
