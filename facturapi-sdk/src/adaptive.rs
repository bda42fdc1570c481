//! The adaptive limits of one class: a paced rate and a concurrency cap, learned from 429s
//! alone (Facturapi does not publish its limits and changes them).
//!
//! - **Pacing**: GCRA without bursts; each request takes the next slot `1/r` after the last.
//!   A class is not paced until its first rate cut: pacing a client that has never met a
//!   limit would only add latency (the rate starts at infinity, not at a guess).
//! - **Cuts**, at most one per epoch (`max(1 s, Retry-After)`): a 429 while the class was at
//!   its concurrency cap and well below its rate is a concurrency limit (`c ← in flight`);
//!   otherwise a rate limit (`W ← min(r, accepted)`, `r ← β·W`).
//! - **Growth**, only while the limiter is what holds requests back: the rate returns to `W`
//!   along a cubic (concave, over `K` seconds) and then probes slowly beyond it (convex);
//!   never above `2 × accepted + 1`. The cap doubles per second until its first cut, then
//!   grows by one after a hold that doubles each time a probe is cut back.
//!
//! This module is pure arithmetic on explicit instants, so its behaviour is unit-tested
//! without a clock; [`crate::governor`] drives it.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// The starting points of DESIGN §6, not yet tuned: the rate-limit benchmark (issue 5) will.
pub(crate) mod constants {
    use std::time::Duration;

    /// Rate kept after a rate cut, as a fraction of the accepted rate.
    pub(crate) const BETA: f64 = 0.9;
    /// Seconds the cubic takes to return to the rate of the last cut.
    pub(crate) const K: f64 = 6.0;
    /// Window over which the accepted rate is measured.
    pub(crate) const WINDOW: Duration = Duration::from_secs(2);
    /// A 429 with the accepted rate below this fraction of `r` while at the cap is a
    /// concurrency limit.
    pub(crate) const WELL_BELOW: f64 = 0.8;
    /// First hold before a concurrency probe.
    pub(crate) const HOLD: Duration = Duration::from_secs(2);
    /// Longest hold.
    pub(crate) const MAX_HOLD: Duration = Duration::from_secs(64);
    /// Successes in the window below which the accepted rate says nothing: a 429 then only
    /// pauses the class (its `Retry-After`), it does not cut the rate.
    pub(crate) const MIN_SAMPLES: usize = 5;
}

use constants::*;

/// What a 429 changed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Cut {
    /// Another cut happened this epoch.
    None,
    /// The rate was cut to this.
    Rate(f64),
    /// The concurrency cap was cut to this.
    Concurrency(usize),
}

/// Learned state of one class.
#[derive(Debug, Clone)]
pub(crate) struct Learner {
    /// Paced rate, requests per second (infinite until the first rate cut).
    pub(crate) rate: f64,
    /// Concurrency cap.
    pub(crate) concurrency: usize,
    /// GCRA: the next free slot.
    tat: Instant,
    /// Rate at the last rate cut (the cubic's plateau).
    w: f64,
    /// When the cubic of the last rate cut started; `None` before any.
    rate_cut_at: Option<Instant>,
    /// The last cut of either kind and its epoch.
    last_cut: Option<(Instant, Duration)>,
    /// Recent successes, with the requests in flight when each completed.
    successes: VecDeque<(Instant, usize)>,
    started: Instant,
    /// Concurrency: doubling until the first cut.
    concurrency_slow_start: bool,
    last_concurrency_change: Instant,
    hold: Duration,
    /// When the cap was last raised by a probe.
    probe_at: Option<Instant>,
    pub(crate) rate_cuts: u64,
    pub(crate) concurrency_cuts: u64,
}

impl Learner {
    pub(crate) fn new(concurrency: usize, now: Instant) -> Self {
        Self {
            rate: f64::INFINITY,
            concurrency: concurrency.max(1),
            tat: now,
            w: f64::INFINITY,
            rate_cut_at: None,
            last_cut: None,
            successes: VecDeque::new(),
            started: now,
            concurrency_slow_start: true,
            last_concurrency_change: now,
            hold: HOLD,
            probe_at: None,
            rate_cuts: 0,
            concurrency_cuts: 0,
        }
    }

    /// Successes per second over the last [`WINDOW`] (or since start, if shorter).
    pub(crate) fn accepted_rate(&mut self, now: Instant) -> f64 {
        while self
            .successes
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > WINDOW)
        {
            self.successes.pop_front();
        }
        let span = now
            .saturating_duration_since(self.started)
            .min(WINDOW)
            .as_secs_f64()
            .max(0.25);
        self.successes.len() as f64 / span
    }

    /// Takes the next pacing slot: the instant this request may be sent.
    pub(crate) fn slot(&mut self, now: Instant) -> Instant {
        let slot = self.tat.max(now);
        if self.rate.is_finite() {
            self.tat = slot + Duration::from_secs_f64(1.0 / self.rate);
        }
        slot
    }

    /// Whether a slot is free now (without taking it).
    pub(crate) fn slot_free(&self, now: Instant) -> bool {
        self.tat <= now
    }

    /// Whether requests are booked ahead: the pacing is what holds them back.
    fn paced(&self, now: Instant) -> bool {
        self.tat > now
    }

    /// A success. `queued`: requests of the class are waiting for a permit or a slot;
    /// `in_flight`: requests of the class out now, this one included. Returns the new
    /// concurrency cap when it grew.
    pub(crate) fn on_success(
        &mut self,
        now: Instant,
        queued: bool,
        in_flight: usize,
    ) -> Option<usize> {
        self.successes.push_back((now, in_flight));
        let accepted = self.accepted_rate(now);
        if let Some(cut) = self.rate_cut_at
            && (queued || self.paced(now))
        {
            let t = now.saturating_duration_since(cut).as_secs_f64();
            let c = self.w * (1.0 - BETA) / K.powi(3);
            let grown = self.w + c * (t - K).powi(3);
            // Growth never takes the rate past twice what the server accepts, plus one.
            let ceiling = (2.0 * accepted + 1.0).max(self.rate);
            self.rate = grown.max(self.rate).min(ceiling);
        }
        // Concurrency grows when requests wait for a permit while all are in use.
        let at_cap = in_flight >= self.concurrency;
        let since = now.saturating_duration_since(self.last_concurrency_change);
        if queued && at_cap && !self.paced(now) {
            if self.concurrency_slow_start && since >= Duration::from_secs(1) {
                self.concurrency *= 2;
                self.last_concurrency_change = now;
                return Some(self.concurrency);
            }
            if !self.concurrency_slow_start && since >= self.hold {
                self.concurrency += 1;
                self.last_concurrency_change = now;
                self.probe_at = Some(now);
                return Some(self.concurrency);
            }
        }
        None
    }

    /// A 429 with `retry_after` (the pause applied), `in_flight` other requests of the class
    /// still out. Restarts pacing after the pause.
    pub(crate) fn on_rate_limited(
        &mut self,
        now: Instant,
        retry_after: Duration,
        in_flight: usize,
    ) -> Cut {
        let gate = now + retry_after;
        self.tat = self.tat.max(gate);
        if let Some((at, epoch)) = self.last_cut
            && now.saturating_duration_since(at) < epoch
        {
            return Cut::None;
        }
        let accepted = self.accepted_rate(now);
        let at_cap = in_flight + 1 >= self.concurrency;
        // At the cap, a 429 is a concurrency limit when the rate was well below the paced
        // one, or (unpaced) when few recent successes came with this many requests in
        // flight. (A few do come under a concurrency cap: the client still counts requests
        // whose answers are on their way; under a rate limit at the cap they are common.)
        let ok_at_this_level = self
            .successes
            .iter()
            .filter(|(_, n)| *n > in_flight)
            .count();
        let concurrency_limit = at_cap
            && if self.rate.is_finite() {
                accepted < WELL_BELOW * self.rate
            } else {
                ok_at_this_level < MIN_SAMPLES
            };
        if !concurrency_limit && self.successes.len() < MIN_SAMPLES {
            return Cut::None;
        }
        self.last_cut = Some((now, retry_after.max(Duration::from_secs(1))));
        if concurrency_limit {
            // A probe that was cut back waits twice as long next time.
            if self
                .probe_at
                .is_some_and(|p| now.saturating_duration_since(p) < self.hold * 2)
            {
                self.hold = (self.hold * 2).min(MAX_HOLD);
            }
            self.concurrency = in_flight.max(1);
            self.concurrency_slow_start = false;
            self.last_concurrency_change = now;
            self.probe_at = None;
            self.concurrency_cuts += 1;
            Cut::Concurrency(self.concurrency)
        } else {
            self.w = self.rate.min(accepted.max(0.01));
            self.rate = (BETA * self.w).max(0.01);
            self.rate_cut_at = Some(gate);
            self.rate_cuts += 1;
            Cut::Rate(self.rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    #[test]
    fn slots_are_spaced_one_over_the_rate_without_bursts() {
        let t0 = Instant::now();
        let mut l = Learner::new(4, t0);
        l.rate = 10.0;
        let a = l.slot(t0);
        let b = l.slot(t0);
        let c = l.slot(t0);
        assert_eq!(
            (a, b - a, c - b),
            (t0, Duration::from_millis(100), Duration::from_millis(100))
        );
        // After an idle second, no credit is banked: the next slot is now.
        let later = at(t0, 2_000);
        assert_eq!(l.slot(later), later);
    }

    #[test]
    fn nothing_is_paced_before_the_first_rate_cut() {
        let t0 = Instant::now();
        let mut l = Learner::new(4, t0);
        assert!((0..100).all(|_| l.slot(t0) == t0));
    }

    #[test]
    fn a_429_below_the_cap_cuts_the_rate_once_per_epoch() {
        let t0 = Instant::now();
        let mut l = Learner::new(8, t0);
        for i in 0..20 {
            l.on_success(at(t0, i * 50), false, 1);
        }
        let now = at(t0, 1_000);
        let cut = l.on_rate_limited(now, Duration::from_secs(1), 1);
        let Cut::Rate(r) = cut else { panic!("{cut:?}") };
        assert!((r - 0.9 * 20.0).abs() < 1.0, "0.9 × the accepted rate: {r}");
        assert_eq!(
            l.on_rate_limited(at(t0, 1_500), Duration::from_secs(1), 1),
            Cut::None
        );
        // Pacing restarts after the pause.
        assert!(l.slot(now) >= now + Duration::from_secs(1));
    }

    #[test]
    fn a_429_with_too_few_successes_to_measure_a_rate_cuts_nothing() {
        let t0 = Instant::now();
        let mut l = Learner::new(8, t0);
        l.on_success(t0, false, 1);
        assert_eq!(l.on_rate_limited(at(t0, 100), Duration::ZERO, 0), Cut::None);
        assert_eq!(l.rate, f64::INFINITY);
    }

    #[test]
    fn a_429_at_the_cap_well_below_the_rate_cuts_concurrency_to_what_was_in_flight() {
        let t0 = Instant::now();
        let mut l = Learner::new(8, t0);
        l.rate = 50.0;
        for i in 0..5 {
            l.on_success(at(t0, i * 200), false, 7);
        }
        assert_eq!(
            l.on_rate_limited(at(t0, 1_000), Duration::from_secs(1), 7),
            Cut::Concurrency(7)
        );
        assert_eq!(l.rate, 50.0, "the rate is left alone");
    }

    #[test]
    fn after_a_cut_the_rate_returns_to_w_along_a_cubic_then_probes_slowly() {
        let t0 = Instant::now();
        let mut l = Learner::new(8, t0);
        l.rate_cut_at = Some(t0);
        l.w = 10.0;
        l.rate = 9.0;
        // Keep the accepted rate high enough not to cap growth.
        let mut rates = Vec::new();
        for i in 1..=180 {
            let now = at(t0, i * 100);
            for _ in 0..2 {
                l.successes.push_back((now, 1));
            }
            l.tat = now + Duration::from_millis(50); // paced
            l.on_success(now, true, 0);
            rates.push(l.rate);
        }
        let at_s = |s: usize| rates[s * 10 - 1];
        assert!(
            at_s(3) > 9.8 && at_s(3) < 10.0,
            "concave: most of the way back at K/2: {}",
            at_s(3)
        );
        assert!((at_s(6) - 10.0).abs() < 0.01, "at W after K: {}", at_s(6));
        assert!(
            at_s(12) > 10.5 && at_s(12) < 11.5,
            "slow probing beyond: {}",
            at_s(12)
        );
    }

    #[test]
    fn concurrency_doubles_until_its_first_cut_then_probes_after_a_doubling_hold() {
        let t0 = Instant::now();
        let mut l = Learner::new(2, t0);
        assert_eq!(l.on_success(at(t0, 1_000), true, 2), Some(4));
        assert_eq!(
            l.on_success(at(t0, 1_500), true, 4),
            None,
            "one round per second"
        );
        assert_eq!(l.on_success(at(t0, 2_000), true, 4), Some(8));
        assert_eq!(
            l.on_rate_limited(at(t0, 2_100), Duration::from_secs(1), 7),
            Cut::Concurrency(7)
        );
        assert_eq!(l.on_success(at(t0, 3_000), true, 7), None, "holding");
        assert_eq!(
            l.on_success(at(t0, 4_200), true, 7),
            Some(8),
            "probe after the 2 s hold"
        );
        assert_eq!(
            l.on_rate_limited(at(t0, 4_300), Duration::from_secs(1), 7),
            Cut::Concurrency(7)
        );
        assert_eq!(
            l.hold,
            Duration::from_secs(4),
            "the failed probe doubles the hold"
        );
        assert_eq!(l.on_success(at(t0, 7_000), true, 7), None);
        assert_eq!(l.on_success(at(t0, 8_400), true, 7), Some(8));
        assert_eq!(l.rate, f64::INFINITY, "the rate was never cut");
    }

    #[test]
    fn nothing_grows_while_the_limiter_is_not_the_bottleneck() {
        let t0 = Instant::now();
        let mut l = Learner::new(4, t0);
        l.rate = 5.0;
        l.rate_cut_at = Some(t0);
        l.w = 5.0;
        for i in 1..=100 {
            l.on_success(at(t0, i * 100), false, 1);
        }
        assert_eq!((l.rate, l.concurrency), (5.0, 4));
    }
}
