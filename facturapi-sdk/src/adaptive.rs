//! The adaptive limits of one class: a paced rate and a concurrency cap, learned from 429s
//! alone (Facturapi does not publish its limits and changes them).
//!
//! - **Pacing**: GCRA without bursts; each request takes the next slot `1/r` after the last.
//!   A class is not paced until its first rate cut: pacing a client that has never met a
//!   limit would only add latency (the rate starts at infinity, not at a guess).
//! - **Cuts**, one per congestion event: a 429 of a request sent before the last cut was
//!   sent under the old limits and changes nothing. A 429 at a level of concurrency the
//!   server has not accepted lately (or, at the cap and paced, with the accepted rate well
//!   below the paced one) is a concurrency limit: the cap drops to the highest level the
//!   server did accept. Otherwise it is a rate limit: `W ← min(r, accepted)`, `r ← β·W`.
//!   A first 429 with too few successes to tell the two apart cuts nothing: the class
//!   pauses for its `Retry-After`, and the accepted rate is measured from the end of the
//!   pause (a pause must not read as a low rate).
//! - **Growth**, only while the limiter is what holds requests back: the rate returns to `W`
//!   along a cubic (concave, over `K` seconds) and then probes slowly beyond it (convex);
//!   never above `2 × accepted + 1`. The cap doubles per second until its first cut, then
//!   grows by one after a hold that doubles each time a probe is cut back.
//!
//! This module is pure arithmetic on explicit instants, so its behaviour is unit-tested
//! without a clock; [`crate::governor`] drives it. The constants are those of DESIGN §6
//! except `MIN_SAMPLES`; the rate-limit benchmark (`benches/rate_limits.rs`,
//! `BENCHMARKS.md`) measures them.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// DESIGN §6's starting points; see `BENCHMARKS.md` for how they fare.
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
    /// Successes below which the accepted rate says nothing: a first 429 then only pauses
    /// the class (its `Retry-After`). Three, not five: with a small burst and fast 429s,
    /// five successes between pauses may never come, and the class would pause forever.
    pub(crate) const MIN_SAMPLES: usize = 3;
}

use constants::*;

/// What a 429 changed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Cut {
    /// Nothing: the request was sent before the last cut, under the old limits.
    None,
    /// Nothing yet: too few successes to tell a rate from a cap. The class pauses for the
    /// `Retry-After` and measures again from there.
    Unmeasured,
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
    /// The last cut of either kind: a 429 of a request sent before it says nothing new.
    last_cut: Option<Instant>,
    /// Recent successes, with the requests in flight when each was sent (itself included).
    successes: VecDeque<(Instant, usize)>,
    /// Start of the accepted-rate measurement (creation, or the last rate cut).
    measured_from: Instant,
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
            measured_from: now,
            concurrency_slow_start: true,
            last_concurrency_change: now,
            hold: HOLD,
            probe_at: None,
            rate_cuts: 0,
            concurrency_cuts: 0,
        }
    }

    /// Successes per second over the last [`WINDOW`] (or since the last rate cut, if
    /// shorter: what was accepted at an older rate says nothing of the new one), and how
    /// many successes that is.
    pub(crate) fn accepted_rate(&mut self, now: Instant) -> (f64, usize) {
        while self
            .successes
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > WINDOW)
        {
            self.successes.pop_front();
        }
        let from = self.measured_from;
        let samples = self.successes.iter().filter(|(t, _)| *t >= from).count();
        let span = now
            .saturating_duration_since(from)
            .min(WINDOW)
            .as_secs_f64()
            .max(0.25);
        (samples as f64 / span, samples)
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
    /// `level`: requests of the class in flight when it was sent, itself included.
    /// Returns the new concurrency cap when it grew.
    pub(crate) fn on_success(&mut self, now: Instant, queued: bool, level: usize) -> Option<usize> {
        self.successes.push_back((now, level));
        let (accepted, _) = self.accepted_rate(now);
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
        let at_cap = level >= self.concurrency;
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

    /// A 429 of a request sent at `sent_at` with `level` requests of the class in flight
    /// (itself included). A request sent before the last cut was sent under the old limits:
    /// its 429 changes nothing (one cut per congestion event).
    pub(crate) fn on_rate_limited(
        &mut self,
        now: Instant,
        sent_at: Instant,
        level: usize,
        resume_at: Instant,
    ) -> Cut {
        if self.last_cut.is_some_and(|cut| sent_at < cut) {
            return Cut::None;
        }
        let (accepted, samples) = self.accepted_rate(now);
        let measured = samples >= MIN_SAMPLES;
        // A 429 is a concurrency limit when the server has accepted fewer in flight lately
        // (whatever the client's own cap) or, at the cap and paced, when the rate was well
        // below the paced one.
        let accepted_this_level = self.successes.iter().any(|(_, n)| *n >= level);
        let concurrency_limit = self.successes.len() >= MIN_SAMPLES
            && level > 1
            && (!accepted_this_level
                || (level >= self.concurrency
                    && self.rate.is_finite()
                    && measured
                    && accepted < WELL_BELOW * self.rate));
        // The first rate cut needs a measured rate; later ones cut the paced rate.
        if !concurrency_limit && !measured && self.rate.is_infinite() {
            self.measured_from = self.measured_from.max(resume_at);
            return Cut::Unmeasured;
        }
        self.last_cut = Some(now);
        if concurrency_limit {
            // A probe that was cut back waits twice as long next time.
            if self
                .probe_at
                .is_some_and(|p| now.saturating_duration_since(p) < self.hold * 2)
            {
                self.hold = (self.hold * 2).min(MAX_HOLD);
            }
            // The most the server has been seen to accept, below this level.
            let accepted_level = self
                .successes
                .iter()
                .map(|(_, n)| *n)
                .filter(|n| *n < level)
                .max()
                .unwrap_or(level.saturating_sub(1));
            self.concurrency = accepted_level.max(1);
            self.concurrency_slow_start = false;
            self.last_concurrency_change = now;
            self.probe_at = None;
            self.concurrency_cuts += 1;
            Cut::Concurrency(self.concurrency)
        } else {
            self.w = if measured {
                self.rate.min(accepted.max(0.01))
            } else {
                self.rate
            };
            self.rate = (BETA * self.w).max(0.01);
            self.rate_cut_at = Some(now);
            // Pacing restarts at the new rate; the measurement starts again too.
            self.tat = self.tat.min(now);
            self.measured_from = now;
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
    fn a_429_cuts_the_rate_once_per_congestion_event() {
        let t0 = Instant::now();
        let mut l = Learner::new(8, t0);
        for i in 0..20 {
            l.on_success(at(t0, i * 50), false, 1);
        }
        let now = at(t0, 1_000);
        let resume = now + Duration::from_secs(1);
        let cut = l.on_rate_limited(now, at(t0, 990), 1, resume);
        let Cut::Rate(r) = cut else { panic!("{cut:?}") };
        assert!((r - 0.9 * 20.0).abs() < 1.0, "0.9 × the accepted rate: {r}");
        assert_eq!(
            l.on_rate_limited(at(t0, 1_010), at(t0, 995), 1, resume),
            Cut::None,
            "sent before the cut: under the old rate"
        );
        // Pacing restarts at once at the new rate: no pause of the whole class.
        let next = at(t0, 1_020);
        assert_eq!(l.slot(next), next);
        assert_eq!(l.slot(next) - next, Duration::from_secs_f64(1.0 / r));
        // Still over, with a request sent after the cut: the paced rate is cut again, even
        // before a new measurement.
        let cut = l.on_rate_limited(at(t0, 1_200), at(t0, 1_150), 1, resume);
        assert_eq!(cut, Cut::Rate(0.9 * r));
    }

    #[test]
    fn a_first_429_with_too_few_successes_is_unmeasured_and_measures_from_after_the_pause() {
        let t0 = Instant::now();
        let mut l = Learner::new(8, t0);
        l.on_success(t0, false, 1);
        let resume = at(t0, 1_100);
        assert_eq!(
            l.on_rate_limited(at(t0, 100), at(t0, 90), 2, resume),
            Cut::Unmeasured
        );
        assert_eq!(l.rate, f64::INFINITY);
        assert_eq!(
            l.measured_from, resume,
            "the pause is not read as a low rate"
        );
        for i in 0..4 {
            l.on_success(at(t0, 1_200 + i * 50), false, 1);
        }
        let (rate, samples) = l.accepted_rate(at(t0, 1_350));
        assert_eq!(samples, 4, "only what came after the pause");
        assert!((rate - 16.0).abs() < 0.1, "4 over the 0.25 s floor: {rate}");
    }

    #[test]
    fn a_429_at_a_level_the_server_never_accepted_cuts_concurrency_to_the_highest_it_did() {
        let t0 = Instant::now();
        let mut l = Learner::new(8, t0);
        for (i, level) in [1, 2, 3, 4, 4].into_iter().enumerate() {
            l.on_success(at(t0, i as u64 * 100), true, level);
        }
        let resume = at(t0, 1_500);
        assert_eq!(
            l.on_rate_limited(at(t0, 500), at(t0, 499), 6, resume),
            Cut::Concurrency(4)
        );
        assert_eq!(l.rate, f64::INFINITY, "the rate is left alone");
        // At a level the server did accept, a 429 is a rate limit.
        for i in 0..5 {
            l.on_success(at(t0, 600 + i * 20), true, 4);
        }
        assert!(matches!(
            l.on_rate_limited(at(t0, 800), at(t0, 790), 4, resume),
            Cut::Rate(_)
        ));
    }

    #[test]
    fn a_429_at_the_cap_well_below_the_paced_rate_is_a_concurrency_limit() {
        let t0 = Instant::now();
        let mut l = Learner::new(8, t0);
        l.rate = 50.0;
        for i in 0..5 {
            l.on_success(at(t0, i * 200), false, 8);
        }
        assert_eq!(
            l.on_rate_limited(at(t0, 1_000), at(t0, 990), 8, at(t0, 2_000)),
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
        let resume = at(t0, 9_000);
        assert_eq!(
            l.on_rate_limited(at(t0, 2_100), at(t0, 2_050), 8, resume),
            Cut::Concurrency(4),
            "back to the most the server accepted"
        );
        for ms in [3_000, 3_500, 4_000] {
            assert_eq!(l.on_success(at(t0, ms), true, 4), None, "holding");
        }
        assert_eq!(
            l.on_success(at(t0, 4_200), true, 4),
            Some(5),
            "probe after the 2 s hold"
        );
        assert_eq!(
            l.on_rate_limited(at(t0, 4_300), at(t0, 4_250), 5, resume),
            Cut::Concurrency(4)
        );
        assert_eq!(
            l.hold,
            Duration::from_secs(4),
            "the failed probe doubles the hold"
        );
        assert_eq!(l.on_success(at(t0, 7_000), true, 4), None);
        assert_eq!(l.on_success(at(t0, 8_400), true, 4), Some(5));
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
