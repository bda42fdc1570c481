//! The adaptive limits of one class: a paced rate and a concurrency cap, learned from 429s
//! alone (Facturapi does not publish its limits and changes them).
//!
//! - **Pacing**: GCRA without bursts; each request takes the next slot `1/r` after the last.
//!   A class is not paced until its first rate cut: pacing a client that has never met a
//!   limit would only add latency (the rate starts at infinity, not at a guess).
//! - **Levels.** A success is recorded with the requests of the class in flight when it
//!   came back (itself included), a 429 likewise. A server that caps concurrency at `C`
//!   answers a success while at most `C` are in flight and a 429 while more than `C` are.
//!   (Counting at send time instead misreads a burst sent at once: the server takes them in
//!   its own order, and a 429 can have a lower send-level than a success.)
//! - **Classification.** A 429 is a concurrency limit only on evidence of a cap: it came back
//!   at the cap, and every 429 of the last [`REFUSAL_WINDOW`] came back at a level above every
//!   level accepted in the last [`LEVEL_WINDOW`] (a cap refuses only above itself; a rate
//!   limit refuses at any level). With nothing accepted yet there is no such evidence: a
//!   burst refused by a token bucket and one refused by a cap look alike, and reading the
//!   bucket as a cap collapsed the concurrency of a pure rate limit from 8 to 1. Any other
//!   429 is a rate limit.
//! - **Concurrency cuts**: the cap drops to the others in flight (`level − 1`), never below
//!   the highest level accepted lately (a limit cannot be below what the server accepted).
//!   They are monotone, so every 429 of a burst may lower the cap further: a burst of 8
//!   against a cap of 4 that accepted 4 returns four 429s, which see 7, 6, 5 and 4 others in
//!   flight: the cap ends at 4. The cap never grows past the policy's `max_concurrency`.
//! - **Rate cuts**, one per congestion event: `W ← min(r, accepted)`, `r ← β·W`. A 429 of a
//!   request sent before the last rate cut + [`GRACE`] changes nothing: a token bucket the
//!   client drained still refuses a request or two after the cut, and cutting again for
//!   those (as the first version did) cut 27 % for one event. The first cut is measured over
//!   at least a second, keeps [`FIRST_BETA`] and is followed by a slow start
//!   (×[`SLOW_START`] per second until the next cut). A first 429 with too few successes to
//!   measure a rate cuts nothing: the class pauses for its `Retry-After`, and the accepted
//!   rate is measured from the end of the pause (a pause is not a low rate).
//! - **Growth**, only while the limiter is what holds requests back: the rate returns to a
//!   plateau a learned margin below `W` (see [`MARGIN`]) along a cubic (concave, over `k`
//!   seconds), then probes beyond it with steps that double each second (a limit that grew
//!   is found in seconds, not minutes); never above `2 × accepted + 1`. `k` doubles (up to
//!   [`K_MAX`]) while successive cuts find the same `W`, and falls back to [`K_MIN`] when `W`
//!   moves: a stable limit is probed, and 429'd, less often. The cap doubles per second
//!   until its first cut, then grows by one after a hold that doubles each time a probe is
//!   cut back.
//!
//! This module is pure arithmetic on explicit instants, so its behaviour is unit-tested
//! without a clock; [`crate::governor`] drives it. The constants started as DESIGN §6's and
//! were tuned on the rate-limit benchmark (`benches/rate_limits.rs`, `BENCHMARKS.md`).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// The tuned constants; `BENCHMARKS.md` shows how they fare.
pub(crate) mod constants {
    use std::time::Duration;

    /// Rate kept after a rate cut, as a fraction of the accepted rate. DESIGN's 0.9 gave
    /// away 10 % after every cut; the accepted rate measured while over a limit is the
    /// limit itself (plus any burst credit, which a second cut removes), so 0.95 suffices.
    pub(crate) const BETA: f64 = 0.95;
    /// The first rate cut keeps this fraction instead: it is measured on an unpaced burst,
    /// which still holds the server's whole burst credit (a fixed window of 10/s read as
    /// 11.3/s, and a second of 429s followed a cut to β of that).
    pub(crate) const FIRST_BETA: f64 = 0.85;
    /// After the first rate cut (a conservative guess), the rate grows by this factor per
    /// second until the next cut: slow start, as in DESIGN §6.
    pub(crate) const SLOW_START: f64 = 1.5;
    /// Shortest time (seconds) the cubic takes to return to the rate of the last cut.
    pub(crate) const K_MIN: f64 = 4.0;
    /// Longest: while the limit stays where it was.
    pub(crate) const K_MAX: f64 = 16.0;
    /// Successive cuts within this fraction of each other found the same limit.
    pub(crate) const SAME_LIMIT: f64 = 0.1;
    /// Beyond `W`, the first second's step as a fraction of `W`; steps double each second.
    pub(crate) const PROBE: f64 = 0.02;
    /// After a rate cut, 429s of requests sent this soon after it are its aftermath (a
    /// drained bucket), not a new congestion event.
    pub(crate) const GRACE: Duration = Duration::from_secs(1);
    /// Longest stretch over which the accepted rate is measured: since the last rate cut
    /// (or the end of a pause, or the end of an idle gap), up to this. Over 2 s, the burst
    /// credit a probe drains before its first 429 read a 20/s bucket of 5 as 21.5/s, and
    /// three cuts followed; over 16 s, the client's own pacing below the limit dominated
    /// and each cut read lower than the last.
    pub(crate) const WINDOW: Duration = Duration::from_secs(4);
    /// The cubic returns to `(1 − margin) × W`, not to `W`: the rate accepted at a cut
    /// still holds some drained burst credit (a 20/s bucket of 5 read as 20.75/s over 4 s,
    /// and a cubic aimed at 20.75 was over the limit 2 s after each cut), and a fixed window
    /// refuses a paced client at its exact rate whenever a send is late. The margin starts
    /// at `MARGIN`; a cut before the probe phase at the same limit (the plateau itself was
    /// over) widens it by `MARGIN`, up to `MARGIN_MAX`; a cut while probing narrows it by a
    /// fifth of `MARGIN`, down to half of it.
    pub(crate) const MARGIN: f64 = 0.025;
    /// The widest margin.
    pub(crate) const MARGIN_MAX: f64 = 0.1;
    /// No slot taken for this long (or two slots' worth, if longer): the class was idle, and
    /// the accepted rate is measured again from its next request. Idle time is not a low
    /// rate: a burst after an idle minute must not read as one.
    pub(crate) const IDLE_GAP: Duration = Duration::from_secs(1);
    /// Window over which the accepted levels of concurrency are remembered: short, so a cap
    /// that dropped is soon seen as one.
    pub(crate) const LEVEL_WINDOW: Duration = Duration::from_secs(2);
    /// Window over which the levels of 429s are remembered: a concurrency cut needs every
    /// 429 in it above every accepted level. Longer than [`LEVEL_WINDOW`], so the low-level
    /// 429s of a rate limit's last burst still speak against a cap in the next one.
    pub(crate) const REFUSAL_WINDOW: Duration = Duration::from_secs(10);
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
    /// Nothing: the aftermath of the last cut, or a cap already at or below the level.
    None,
    /// Nothing yet: too few successes to measure a rate. The class pauses for the
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
    /// The most the cap grows to (the policy's `max_concurrency`).
    ceiling: usize,
    /// Recent 429s, with the requests in flight when each came back (itself included).
    refusals: VecDeque<(Instant, usize)>,
    /// GCRA: the next free slot.
    tat: Instant,
    /// The last slot taken.
    last_slot: Instant,
    /// Rate at the last rate cut (the cubic's plateau).
    w: f64,
    /// Seconds the cubic takes back to its plateau.
    k: f64,
    /// The plateau's margin below `w` (see [`MARGIN`]).
    margin: f64,
    /// Between the first rate cut and the second: growing by [`SLOW_START`] per second.
    rate_slow_start: bool,
    /// When the cubic of the last rate cut started; `None` before any.
    rate_cut_at: Option<Instant>,
    /// Recent successes, with the requests in flight when each came back (itself included).
    successes: VecDeque<(Instant, usize)>,
    /// Start of the accepted-rate measurement (creation, a pause's end, the last rate cut,
    /// the end of an idle gap).
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
    pub(crate) fn new(concurrency: usize, ceiling: usize, now: Instant) -> Self {
        Self {
            rate: f64::INFINITY,
            concurrency: concurrency.max(1),
            ceiling: ceiling.max(concurrency).max(1),
            refusals: VecDeque::new(),
            tat: now,
            last_slot: now,
            w: f64::INFINITY,
            k: K_MIN,
            margin: MARGIN,
            rate_slow_start: false,
            rate_cut_at: None,
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

    fn forget_old(&mut self, now: Instant) {
        while self
            .successes
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > WINDOW)
        {
            self.successes.pop_front();
        }
    }

    /// Successes per second since the last rate cut, pause or idle gap (what was accepted at
    /// an older rate says nothing of the new one), over at most [`WINDOW`], and how many
    /// successes that is.
    pub(crate) fn accepted_rate(&mut self, now: Instant) -> (f64, usize) {
        self.forget_old(now);
        let from = self.measured_from;
        // Time-ordered: a binary search, not a scan (up to WINDOW of successes).
        let samples = self.successes.len() - self.successes.partition_point(|(t, _)| *t < from);
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
        let gap = IDLE_GAP.max(Duration::from_secs_f64((2.0 / self.rate).min(60.0)));
        if slot.saturating_duration_since(self.last_slot) > gap {
            self.measured_from = self.measured_from.max(slot);
        }
        self.last_slot = slot;
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

    /// The rate `t` seconds after the last rate cut: after the first, slow start; after the
    /// others, a concave cubic back to the plateau over `k` seconds, then steps beyond it
    /// that double each second.
    fn grown(&self, t: f64) -> f64 {
        if self.rate_slow_start {
            return FIRST_BETA * self.w * SLOW_START.powf(t);
        }
        let plateau = (1.0 - self.margin) * self.w;
        if t <= self.k {
            let c = (plateau - BETA * self.w) / self.k.powi(3);
            plateau + c * (t - self.k).powi(3)
        } else {
            plateau * (1.0 + PROBE * ((t - self.k).exp2() - 1.0))
        }
    }

    /// A success. `queued`: requests of the class are waiting for a permit or a slot;
    /// `level`: requests of the class in flight as it came back, itself included.
    /// Returns the new concurrency cap when it grew.
    pub(crate) fn on_success(&mut self, now: Instant, queued: bool, level: usize) -> Option<usize> {
        self.successes.push_back((now, level));
        let (accepted, _) = self.accepted_rate(now);
        if let Some(cut) = self.rate_cut_at
            && (queued || self.paced(now))
        {
            let grown = self.grown(now.saturating_duration_since(cut).as_secs_f64());
            // Growth never takes the rate past twice what the server accepts, plus one.
            let ceiling = (2.0 * accepted + 1.0).max(self.rate);
            self.rate = grown.max(self.rate).min(ceiling);
        }
        // Concurrency grows when requests wait for a permit while all are in use.
        let at_cap = level >= self.concurrency;
        let since = now.saturating_duration_since(self.last_concurrency_change);
        if queued && at_cap && !self.paced(now) && self.concurrency < self.ceiling {
            if self.concurrency_slow_start && since >= Duration::from_secs(1) {
                self.concurrency = (self.concurrency * 2).min(self.ceiling);
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

    /// A 429 of a request sent at `sent_at`, with `level` requests of the class in flight as
    /// it came back (itself included).
    pub(crate) fn on_rate_limited(
        &mut self,
        now: Instant,
        sent_at: Instant,
        level: usize,
        resume_at: Instant,
    ) -> Cut {
        let (mut accepted, samples) = self.accepted_rate(now);
        if self.rate.is_infinite() {
            // The first cut: an unpaced burst that took the server's whole burst credit in
            // a fraction of a second says little of its rate over a second (a window of 10
            // per second filled in 0.1 s read as 40/s over the 0.25 s floor).
            let span = now.saturating_duration_since(self.measured_from);
            accepted = accepted.min(samples as f64 / span.as_secs_f64().max(1.0));
        }
        let measured = samples >= MIN_SAMPLES;
        let most_accepted = self
            .successes
            .iter()
            .rev()
            .take_while(|(t, _)| now.saturating_duration_since(*t) <= LEVEL_WINDOW)
            .map(|(_, n)| *n)
            .max();
        while self
            .refusals
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > REFUSAL_WINDOW)
        {
            self.refusals.pop_front();
        }
        self.refusals.push_back((now, level));
        let fewest_refused = self.refusals.iter().map(|(_, n)| *n).min().unwrap_or(level);
        // Evidence of a cap: at the cap, and every recent 429 above every accepted level.
        let concurrency_limit = level > 1
            && level >= self.concurrency
            && most_accepted.is_some_and(|most| fewest_refused > most);
        if concurrency_limit {
            let cap = (level - 1).max(most_accepted.unwrap_or(1));
            if cap >= self.concurrency {
                return Cut::None;
            }
            // A probe that was cut back waits twice as long next time.
            if self
                .probe_at
                .is_some_and(|p| now.saturating_duration_since(p) < self.hold * 2)
            {
                self.hold = (self.hold * 2).min(MAX_HOLD);
            }
            self.concurrency = cap;
            self.concurrency_slow_start = false;
            self.last_concurrency_change = now;
            self.probe_at = None;
            self.concurrency_cuts += 1;
            return Cut::Concurrency(cap);
        }
        if self.rate_cut_at.is_some_and(|cut| sent_at < cut + GRACE) {
            return Cut::None;
        }
        // The first rate cut needs a measured rate; later ones cut the paced rate.
        if !measured && self.rate.is_infinite() {
            self.measured_from = self.measured_from.max(resume_at);
            return Cut::Unmeasured;
        }
        let w = if measured {
            self.rate.min(accepted.max(0.01))
        } else {
            self.rate
        };
        // The same limit again: probe it less often, and learn whether the plateau is too
        // close to it. A new one: probe soon.
        let same_limit = self.w.is_finite() && (w / self.w - 1.0).abs() <= SAME_LIMIT;
        if same_limit && let Some(cut) = self.rate_cut_at {
            self.margin = if now.saturating_duration_since(cut).as_secs_f64() < self.k {
                (self.margin + MARGIN).min(MARGIN_MAX)
            } else {
                (self.margin - MARGIN / 5.0).max(MARGIN / 2.0)
            };
        }
        self.k = if same_limit {
            (self.k * 2.0).min(K_MAX)
        } else {
            K_MIN
        };
        let beta = if self.rate.is_finite() {
            BETA
        } else {
            FIRST_BETA
        };
        self.rate_slow_start = self.rate.is_infinite();
        self.w = w;
        self.rate = (beta * w).max(0.01);
        self.rate_cut_at = Some(now);
        // The slots already booked stand, and the next ones follow them at the new rate:
        // restarting the schedule at now (as the first version did) booked new slots among
        // the old ones, a burst right after every cut, and 429s with it. The measurement
        // starts again.
        self.measured_from = now;
        self.rate_cuts += 1;
        Cut::Rate(self.rate)
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
        let mut l = Learner::new(4, 64, t0);
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
        let mut l = Learner::new(4, 64, t0);
        assert!((0..100).all(|_| l.slot(t0) == t0));
    }

    #[test]
    fn a_429_cuts_the_rate_once_per_congestion_event() {
        let t0 = Instant::now();
        let mut l = Learner::new(8, 64, t0);
        for i in 0..20 {
            l.on_success(at(t0, i * 50), false, 1);
        }
        let now = at(t0, 1_000);
        let resume = now + Duration::from_secs(1);
        let cut = l.on_rate_limited(now, at(t0, 990), 1, resume);
        let Cut::Rate(r) = cut else { panic!("{cut:?}") };
        assert!(
            (r - FIRST_BETA * 20.0).abs() < 1.0,
            "a first cut keeps 0.85 × the accepted rate: {r}"
        );
        assert_eq!(
            l.on_rate_limited(at(t0, 1_010), at(t0, 995), 1, resume),
            Cut::None,
            "sent before the cut: under the old rate"
        );
        assert_eq!(
            l.on_rate_limited(at(t0, 1_800), at(t0, 1_700), 1, resume),
            Cut::None,
            "sent just after it: the drained bucket, not a new event"
        );
        // No pause of the whole class: the next slot is free at once, then paced at the
        // new rate.
        let next = at(t0, 1_020);
        assert_eq!(l.slot(next), next);
        assert_eq!(l.slot(next) - next, Duration::from_secs_f64(1.0 / r));
        // Still over once the grace is past: the paced rate is cut again, even before a new
        // measurement.
        let cut = l.on_rate_limited(at(t0, 2_200), at(t0, 2_150), 1, resume);
        assert_eq!(cut, Cut::Rate(BETA * r));
    }

    #[test]
    fn cuts_that_find_the_same_limit_probe_it_less_often() {
        let t0 = Instant::now();
        let mut l = Learner::new(8, 64, t0);
        let mut ks = Vec::new();
        let mut ms = 0;
        // The server accepts 20/s every time the client goes over.
        let mut margins = Vec::new();
        for _ in 0..5 {
            for _ in 0..40 {
                ms += 50;
                l.on_success(at(t0, ms), false, 1);
            }
            ms += 10;
            let cut = l.on_rate_limited(at(t0, ms), at(t0, ms - 5), 1, at(t0, ms + 1_000));
            assert!(matches!(cut, Cut::Rate(_)), "{cut:?}");
            ks.push(l.k);
            margins.push(l.margin);
        }
        // The first cut (to 0.85 × 20) reads as a new limit; from the second on, the same.
        assert_eq!(ks, [K_MIN, K_MIN, 2.0 * K_MIN, 4.0 * K_MIN, K_MAX]);
        // Each cut came 2 s after the last, before the probe phase: the plateau was over
        // the limit, so its margin widens, up to MARGIN_MAX.
        assert_eq!(
            margins
                .iter()
                .map(|m| (m * 1000.0).round() / 1000.0)
                .collect::<Vec<_>>(),
            [0.025, 0.025, 0.05, 0.075, MARGIN_MAX]
        );
        // A limit that moved: back to probing soon.
        for _ in 0..20 {
            ms += 100;
            l.on_success(at(t0, ms), false, 1);
        }
        l.on_rate_limited(at(t0, ms + 10), at(t0, ms + 5), 1, at(t0, ms + 1_000));
        assert_eq!(l.k, K_MIN);
    }

    #[test]
    fn a_first_429_with_too_few_successes_is_unmeasured_and_measures_from_after_the_pause() {
        let t0 = Instant::now();
        let mut l = Learner::new(8, 64, t0);
        l.on_success(t0, false, 1);
        let resume = at(t0, 1_100);
        assert_eq!(
            l.on_rate_limited(at(t0, 100), at(t0, 90), 1, resume),
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
    fn a_first_cut_reads_a_burst_shorter_than_a_second_over_a_second() {
        let t0 = Instant::now();
        let mut l = Learner::new(4, 64, t0);
        // A window of 10 per second, filled in 100 ms by an unpaced client.
        for i in 0..10 {
            l.on_success(at(t0, i * 10), false, 4);
        }
        let cut = l.on_rate_limited(at(t0, 100), at(t0, 99), 1, at(t0, 1_000));
        assert_eq!(cut, Cut::Rate(FIRST_BETA * 10.0));
    }

    #[test]
    fn after_the_first_rate_cut_the_rate_grows_by_half_per_second_until_the_next() {
        let t0 = Instant::now();
        let mut l = Learner::new(4, 64, t0);
        for i in 0..4 {
            l.on_success(at(t0, i * 10), false, 1);
        }
        let cut = l.on_rate_limited(at(t0, 100), at(t0, 99), 1, at(t0, 1_000));
        assert_eq!(cut, Cut::Rate(FIRST_BETA * 4.0), "4 in a second, at least");
        let mut rate_at = |ms: u64| {
            for _ in 0..10 {
                l.successes.push_back((at(t0, ms), 1)); // accepted: no ceiling
            }
            l.tat = at(t0, ms + 100); // paced
            l.on_success(at(t0, ms), true, 1);
            l.rate
        };
        let (one, three) = (rate_at(1_100), rate_at(3_100));
        assert!((one / (FIRST_BETA * 4.0) - 1.5).abs() < 0.01, "{one}");
        assert!((three / one - 2.25).abs() < 0.01, "{three}");
        let cut = l.on_rate_limited(at(t0, 3_200), at(t0, 3_150), 1, at(t0, 4_200));
        assert!(matches!(cut, Cut::Rate(_)));
        assert!(!l.rate_slow_start, "the second cut ends slow start");
    }

    #[test]
    fn idle_time_is_not_read_as_a_low_rate() {
        let t0 = Instant::now();
        let mut l = Learner::new(8, 64, t0);
        for i in 0..10 {
            l.slot(at(t0, i * 50));
            l.on_success(at(t0, i * 50 + 20), false, 1);
        }
        // Ten idle seconds, then 1.5 s at 40/s until the server says no.
        let start = 10_000;
        for i in 0..60 {
            l.slot(at(t0, start + i * 25));
            l.on_success(at(t0, start + i * 25 + 20), false, 1);
        }
        let cut = l.on_rate_limited(at(t0, 11_500), at(t0, 11_490), 1, at(t0, 12_500));
        let Cut::Rate(r) = cut else { panic!("{cut:?}") };
        assert!(
            (r - FIRST_BETA * 40.0).abs() < 1.0,
            "measured over the burst alone: {r}"
        );
    }

    #[test]
    fn every_429_of_a_burst_over_a_cap_lowers_the_cap_to_the_others_in_flight() {
        let t0 = Instant::now();
        let mut l = Learner::new(8, 64, t0);
        // A first burst, nothing accepted yet: a cap and a token bucket look alike, so it
        // cuts nothing (the class pauses for the Retry-After instead).
        assert_eq!(
            l.on_rate_limited(at(t0, 1), t0, 8, at(t0, 1_000)),
            Cut::Unmeasured
        );
        // Later: four accepted, then eight sent at once against a cap of 4. The four 429s
        // come back seeing 7, 6, 5 and 4 others in flight.
        let t1 = at(t0, 12_000);
        for i in 0..4 {
            l.on_success(at(t1, i), false, 4 - i as usize);
        }
        let cuts: Vec<Cut> = [8, 7, 6, 5]
            .into_iter()
            .map(|level| l.on_rate_limited(at(t1, 10), t1, level, at(t1, 1_000)))
            .collect();
        assert_eq!(cuts, [7, 6, 5, 4].map(Cut::Concurrency));
        assert_eq!(l.rate, f64::INFINITY, "the rate is left alone");
        assert_eq!(
            l.on_rate_limited(at(t1, 20), t1, 5, at(t1, 1_000)),
            Cut::None,
            "never raised by a cut"
        );
    }

    #[test]
    fn a_pure_rate_limit_never_cuts_concurrency() {
        let t0 = Instant::now();
        let mut l = Learner::new(8, 64, t0);
        // Rounds of eight at once against a token bucket of 2: two accepted, six refused,
        // the 429s coming back first (at every level), the successes after.
        for round in 0..5u64 {
            let t = at(t0, round * 1_200);
            for level in (3..=8).rev() {
                l.on_rate_limited(t, t, level, at(t, 1_000));
            }
            l.on_success(at(t, 50), true, 2);
            l.on_success(at(t, 51), true, 1);
            for i in 0..6 {
                l.on_success(at(t, 1_050 + i), true, 6 - i as usize);
            }
        }
        assert_eq!((l.concurrency, l.concurrency_cuts), (8, 0));
    }

    #[test]
    fn the_cap_grows_no_further_than_its_ceiling() {
        let t0 = Instant::now();
        let mut l = Learner::new(8, 12, t0);
        let mut sizes = Vec::new();
        for s in 1..6 {
            if let Some(size) = l.on_success(at(t0, s * 1_100), true, l.concurrency) {
                sizes.push(size);
            }
        }
        assert_eq!(sizes, [12], "doubled to the ceiling, then held");
    }

    #[test]
    fn a_429_at_the_cap_above_every_accepted_level_is_a_cap_and_others_a_rate() {
        let t0 = Instant::now();
        let mut l = Learner::new(5, 64, t0);
        for (i, level) in [1, 2, 3, 4, 4].into_iter().enumerate() {
            l.on_success(at(t0, i as u64 * 100), true, level);
        }
        let resume = at(t0, 1_500);
        let mut below_the_cap = l.clone();
        below_the_cap.concurrency = 6;
        assert!(
            matches!(
                below_the_cap.on_rate_limited(at(t0, 500), at(t0, 499), 5, resume),
                Cut::Rate(_)
            ),
            "below the cap: one more in flight than usual says nothing of a cap"
        );
        assert_eq!(
            l.on_rate_limited(at(t0, 500), at(t0, 499), 5, resume),
            Cut::Concurrency(4)
        );
        for i in 0..5 {
            l.on_success(at(t0, 600 + i * 20), true, 4);
        }
        assert!(matches!(
            l.on_rate_limited(at(t0, 800), at(t0, 790), 4, resume),
            Cut::Rate(_)
        ));
    }

    #[test]
    fn a_429_at_a_level_the_server_accepted_is_not_a_cap() {
        let t0 = Instant::now();
        let mut l = Learner::new(8, 64, t0);
        l.rate = 50.0;
        for i in 0..5 {
            l.on_success(at(t0, i * 200), false, 8);
        }
        // Accepted at 8 in flight: a 429 at 8 is a rate limit, however low the accepted
        // rate is against the paced one.
        assert!(matches!(
            l.on_rate_limited(at(t0, 1_000), at(t0, 990), 8, at(t0, 2_000)),
            Cut::Rate(_)
        ));
        assert_eq!(l.concurrency, 8);
    }

    #[test]
    fn after_a_cut_the_rate_returns_to_its_plateau_along_a_cubic_then_probes_in_doubling_steps() {
        let t0 = Instant::now();
        let mut l = Learner::new(8, 64, t0);
        l.rate_cut_at = Some(t0);
        l.w = 10.0;
        l.rate = BETA * 10.0;
        // Keep the accepted rate high enough not to cap growth.
        let mut rates = Vec::new();
        for i in 1..=80 {
            let now = at(t0, i * 100);
            for _ in 0..3 {
                l.successes.push_back((now, 1));
            }
            l.tat = now + Duration::from_millis(50); // paced
            l.on_success(now, true, 0);
            rates.push(l.rate);
        }
        let at_s = |s: usize| rates[s * 10 - 1];
        let plateau = (1.0 - MARGIN) * 10.0;
        assert!(
            at_s(2) > plateau - 0.05 && at_s(2) < plateau,
            "concave: most of the way back at k/2: {}",
            at_s(2)
        );
        assert!(
            (at_s(4) - plateau).abs() < 0.01,
            "at the plateau after k: {}",
            at_s(4)
        );
        let steps = [5, 6, 7, 8].map(|s| at_s(s) - at_s(s - 1));
        assert!(
            (steps[0] - PROBE * plateau).abs() < 0.01
                && steps.windows(2).all(|w| (w[1] / w[0] - 2.0).abs() < 0.01),
            "steps beyond W of 2 % of W, doubling each second: {steps:?}"
        );
    }

    #[test]
    fn concurrency_doubles_until_its_first_cut_then_probes_after_a_doubling_hold() {
        let t0 = Instant::now();
        let mut l = Learner::new(2, 64, t0);
        assert_eq!(l.on_success(at(t0, 1_000), true, 2), Some(4));
        assert_eq!(
            l.on_success(at(t0, 1_500), true, 4),
            None,
            "one round per second"
        );
        assert_eq!(l.on_success(at(t0, 2_000), true, 4), Some(8));
        // The doubling sent four more at once; the server took one.
        let resume = at(t0, 9_000);
        for (level, cap) in [(8, 7), (7, 6), (6, 5)] {
            assert_eq!(
                l.on_rate_limited(at(t0, 2_100), at(t0, 2_050), level, resume),
                Cut::Concurrency(cap),
            );
        }
        for ms in [3_000, 3_500, 4_000] {
            assert_eq!(l.on_success(at(t0, ms), true, 5), None, "holding");
        }
        assert_eq!(
            l.on_success(at(t0, 4_200), true, 5),
            Some(6),
            "probe after the 2 s hold"
        );
        assert_eq!(
            l.on_rate_limited(at(t0, 4_300), at(t0, 4_250), 6, resume),
            Cut::Concurrency(5)
        );
        assert_eq!(
            l.hold,
            Duration::from_secs(4),
            "the failed probe doubles the hold"
        );
        assert_eq!(l.on_success(at(t0, 7_000), true, 5), None);
        assert_eq!(l.on_success(at(t0, 8_400), true, 5), Some(6));
        assert_eq!(l.rate, f64::INFINITY, "the rate was never cut");
    }

    #[test]
    fn nothing_grows_while_the_limiter_is_not_the_bottleneck() {
        let t0 = Instant::now();
        let mut l = Learner::new(4, 64, t0);
        l.rate = 5.0;
        l.rate_cut_at = Some(t0);
        l.w = 5.0;
        for i in 1..=100 {
            l.on_success(at(t0, i * 100), false, 1);
        }
        assert_eq!((l.rate, l.concurrency), (5.0, 4));
    }
}
