//! The adaptive limits of one class: a paced rate and a concurrency cap, learned from 429s
//! alone (Facturapi does not publish its limits and changes them).
//!
//! - **Pacing**: GCRA without bursts; each request takes the next slot `1/r` after the last.
//!   The sends themselves keep a second GCRA: a timer fires late, and a send may catch up on
//!   a late one (go up to a slot before it is due, so the schedule's rate holds) until the
//!   429s show a bucket of one: a first unpaced burst of [`SERVED_ONE_OF`] or more sent
//!   together of which the server served at most one (a burst of `b` serves `b`), or
//!   refusals of sends that caught up, [`CAUGHT_UP_REFUSED`] of them and most of all (over
//!   a limit with a burst, sends are refused whether they caught up or not). From then on a
//!   send goes no sooner than `1/r` after the last one went (a late timer delays the next
//!   send instead of bunching the two).
//!   A class is not paced until its first rate cut: pacing a client that has never met a
//!   limit would only add latency (the rate starts at infinity, not at a guess). A rate cut
//!   starts the schedule again one slot after it: the requests waiting for slots booked at
//!   the old rate book again on the new schedule when they wake.
//! - **Judging a 429.** A 429 is judged once the requests that were in flight when it came
//!   back have finished (or after [`SETTLE_LATENCIES`] mean latencies, [`SETTLE`] at most: a
//!   stalled request does not hold the judgement up while the class goes on over the
//!   limit): by then the learner knows how many of them succeeded, that is, how many the
//!   server was serving when it refused (`served`; with the successes that were out when
//!   it was sent and came back before it: a busy client reads a 429 late). It also
//!   knows the most successful requests ever seen in flight at once lately (`peak`, over
//!   [`LEVEL_WINDOW`]). A 429 is **at the top** when `served ≥ max(1, peak)`, or when every
//!   permit of the class was in use and `served ≥ max(1, peak − 1)`: a cap refuses only
//!   while the server is full, and a caller with fewer requests than permits meets it when
//!   its own level peaks. A token bucket refuses at any level, and nothing at all when
//!   nothing else is in flight. In a paced class, a 429 is at the top only when the
//!   pacing asks for `served + 1` in flight at least (its rate times the mean time a
//!   success takes, over [`LEVEL_WINDOW`]): a class paced at about one request in flight
//!   reaches two by chance, and a 429 there is its rate limit's.
//! - **Classification.** A concurrency limit needs every 429 of the last [`REFUSAL_WINDOW`]
//!   at the top, at two moments [`MOMENT`] apart at least: one burst sent at once into a
//!   token bucket of `b` is refused at the top (the `b` it serves fill it), but the next
//!   requests, sent into the empty bucket, are refused with fewer served. A 429 at the top
//!   waits for that evidence and cuts nothing; any other is a rate limit. In a class already
//!   paced for a rate limit, a 429 at the top is the rate limit's too when 429s below the
//!   top came lately or the cap is already down to what the server serves: with one or two
//!   in flight, every 429 is at the top by chance. A 429 at the top of a request sent
//!   before the last concurrency cut is that cut's aftermath and changes nothing.
//! - **Concurrency cuts**: the cap drops to the fewest served at those 429s, never below
//!   `peak` (the server served that many at once: a cap cannot be lower), and never rises
//!   by a cut. The cap never grows past the policy's `max_concurrency`.
//! - **What is accepted**: every answer but a 429 counts as a success here (the governor
//!   reports a 5xx or a 4xx too): it went past the server's limiter and used its share of
//!   the limit, and a rate read from 2xx alone runs short of the limit by the server's error
//!   rate. A request whose answer never came counts as neither.
//! - **Rate cuts**, one per congestion event: `W ← min(r, accepted)`, `r ← β·W`. A 429 of a
//!   request sent before the last rate cut + [`GRACE`] changes nothing: a token bucket the
//!   client drained still refuses a request or two after the cut, and cutting again for
//!   each of those cuts 27 % for one event. Unless the cut was not deep enough: with
//!   [`MIN_SAMPLES`] 429s of requests sent after it on pace (a send that caught up on a
//!   late one is refused by a bucket of one at any rate, and wastes its slot), while the
//!   class is paced and accepts less than the new rate by more than [`SAME_LIMIT`]
//!   (measured since the cut, over 2 × [`MOMENT`] at least), it cuts again to what is
//!   accepted: a limit that halved. The
//!   first cut needs one success (what one success in a second reads is a floor the slow
//!   start doubles from), is measured over the successes of the last [`WINDOW`] (over a
//!   second at least, whenever the class started), keeps [`FIRST_BETA`], starts
//!   its schedule at the end of its `Retry-After` (the unpaced burst took all the server
//!   had) and is followed by a slow start from there (×[`SLOW_START`] per second until the
//!   next cut, which reads the accepted rate of the last second and keeps [`FIRST_BETA`]
//!   of it too, then, once that cut's [`GRACE`] is over, ×[`SLOW_START_AGAIN`] until the one
//!   after). A first cut read over [`DEMAND`] or more of unpaced sending keeps [`BETA`]
//!   instead, starts at once and grows by [`SLOW_START_AGAIN`] once its [`GRACE`] is over:
//!   the class sent what its callers asked for until a burst of theirs met the limit, and a
//!   pause would only gather a backlog to send into it. A first 429 before any
//!   success cuts nothing: the class pauses for its `Retry-After` instead, and the first
//!   cut then starts at once. The class pauses
//!   once: later 429s only wait out their own. The accepted rate is measured from the end
//!   of a pause, and a lull in demand's time is left out of its span (see [`LULL`]):
//!   neither is a low rate.
//! - **Growth**, only while the limiter is what holds requests back: the rate returns to a
//!   plateau a learned margin below `W` (see [`MARGIN`]) along a cubic (concave, over `k`
//!   seconds), then probes beyond it with steps that double each second (a limit that grew
//!   is found in seconds, not minutes); never above `2 × accepted + 1`. A probe refused at
//!   the limit found before (the same `W`, read from what was accepted since the probe
//!   began) returns to the plateau within [`RETURN`] and holds it until the next probe; a
//!   probe's cut never finds the limit below the `W` its plateau held on (against a bucket
//!   of one, the refused sends of a probe waste their slots and what is accepted reads
//!   low; a limit that fell meanwhile is cut by the next congestion event). A refusal
//!   back on the plateau after a probe that met the limit where it held, before the next
//!   probe, finds the limit no lower than the `W` that plateau held on (or the rate
//!   refused, if lower), and undoes a raise the probe read: its reading held the burst
//!   credit that the plateau refilled under the limit and the probe drained. Unless
//!   the server accepted well under the rate of the probe's cut since then (see
//!   [`FELL`]): a limit that fell, read as it is. Once sends go a slot apart against a
//!   bucket of one, a refusal in slow start or while probing reads no lower than halfway
//!   from what was accepted to the rate the refused send went at: such a bucket refuses the
//!   first send that comes sooner than its refill, and what was accepted averages the
//!   climb (a 20/s bucket of one read as 17 to 18.8/s); the refused rate alone reads high
//!   by how fast the rate climbed while the server's timing jittered. A
//!   cut that finds the limit more than [`ROSE`] above the last one ([`SAME_LIMIT`] once
//!   sends go a slot apart) starts a slow
//!   start again (×[`SLOW_START_AGAIN`] once its [`GRACE`] is over): the limit was
//!   raised, and the probe's steep climb reads low. While successive cuts find the same `W`
//!   (within [`SAME_LIMIT`]), their readings are averaged (over [`READINGS`]; a probe's
//!   holds the burst credit it drained), except that once sends go a slot apart a probe
//!   refused above `W` sets it to what it read (against a bucket of one, a climb from the
//!   plateau reads low; one that read high is undone as above). `k` is [`K_MIN`] after a
//!   cut that found a new `W`; once `W` has held (two cuts found it, one of them outside a
//!   slow start, whose readings hold burst credit), it is what keeps the probes' 429s
//!   within [`PROBE_BUDGET`] of the requests (see [`longest_k`]), counting as many as the
//!   last cut's congestion event cost: a stable limit is probed, and 429'd, seldom. Once a
//!   cut finds the limit [`MOVED`] from the last `W` that held, `k` stays at [`MOVED_K`]
//!   and probes climb by [`MOVED_PROBE`]: a limit that moved may move again. The cap
//!   doubles every [`CAP_DOUBLING`] mean latencies of sending (a quarter of a second to a
//!   second; time before the first request or in an idle gap does not count) until its
//!   first cut, then grows by one after a hold that doubles each time a probe is cut back,
//!   and is never shorter, after one was, than [`PROBE_BUDGET`] allows at the rate accepted
//!   (20 s at 20/s).
//!
//! This module is pure arithmetic on explicit instants, so its behaviour is unit-tested
//! without a clock; [`crate::governor`] drives it. The constants are tuned on the rate-limit
//! benchmark (`benches/rate_limits.rs`, `BENCHMARKS.md`).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// The tuned constants; `BENCHMARKS.md` shows how they fare.
pub(crate) mod constants {
    use std::time::Duration;

    /// Rate kept after a rate cut, as a fraction of the accepted rate. A β of 0.9 gives
    /// away 10 % after every cut; the accepted rate measured while over a limit is the
    /// limit itself (plus any burst credit, which a second cut removes), so 0.95 suffices.
    pub(crate) const BETA: f64 = 0.95;
    /// The first rate cut, and the one that ends the slow start, keep this fraction instead:
    /// each is measured over a second that began under the limit, with the server's whole
    /// burst credit to spend (a fixed window of 10/s read as 11.3/s, a 20/s bucket of 5 as
    /// 23/s, and a second of 429s followed a cut to β of that).
    pub(crate) const FIRST_BETA: f64 = 0.85;
    /// After the first rate cut (a conservative guess), the rate grows by this factor per
    /// second until the next cut: slow start. Doubling finds a 20/s limit from a first guess
    /// of 2.5/s in 3 s (growing by half took 5 s); the overshoot lasts until the first 429,
    /// and the next cut reads the limit from the last second.
    pub(crate) const SLOW_START: f64 = 2.0;
    /// After the cut that ends the first slow start (or finds a raised limit), once its
    /// [`GRACE`] is over, the rate grows by this factor per second until the next cut. That
    /// cut reads the accepted rate over a second in which the rate was still climbing: a
    /// 20/s bucket of 1 met while doubling read as 13/s, and a cubic back to that plateau
    /// held the class at two thirds of its limit.
    pub(crate) const SLOW_START_AGAIN: f64 = 1.25;
    /// Seconds the rate takes back to its plateau after a probe was refused at the limit it
    /// had found before: the limit is where it was, so the plateau is known to hold. The
    /// cut still goes to β × `W` first: the probe drained the server's burst credit, and
    /// a rate a hair under the limit refills it too slowly to absorb a send that is a few
    /// milliseconds early. Two seconds at β rebuild about a token of a 20/s bucket.
    pub(crate) const RETURN: f64 = 2.0;
    /// Shortest time (seconds) the cubic takes to return to the rate of the last cut.
    pub(crate) const K_MIN: f64 = 4.0;
    /// Longest: once the limit has held, `k` is what [`PROBE_BUDGET`] allows at its rate,
    /// and never past this. It bounds how long a raised limit goes unnoticed (the probes
    /// start after `k`).
    pub(crate) const K_MAX: f64 = 24.0;
    /// In the fleet's learner (`fleet/refuse.lua`, one limit probed for all its processes),
    /// `k` grows by this many seconds per second the limit has stayed where it was: a limit
    /// that just moved may move again and is probed every few seconds, one that held for a
    /// minute is probed as seldom as [`PROBE_BUDGET`] allows. A process's own learner takes
    /// that longest `k` as soon as its limit has held, until it moves, and keeps
    /// [`MOVED_K`] after.
    pub(crate) const PATIENCE: f64 = 0.25;
    /// `k` once the limit has moved (see [`MOVED`]), however long it holds: it may move
    /// again, and a raise goes unnoticed for up to `k` plus the probe's climb. Limits
    /// stepping every 20 s, over five seeds: 0.95 of the oracle in the worst run and 0.97
    /// median (a limit that halved then rose by half: 0.98 and 1.00), against 0.89 and
    /// 0.93 (0.96 and 1.00) with `k` growing by a tenth of the time held and probes of
    /// 0.12, for about as many 429s (the worst whole runs: 2.9 % against 2.8 %, and 2.5 %
    /// both). Processes learning alone on one key read the others' traffic as a limit that
    /// moved and probe more often (two: 6.3 % against 5.0 %).
    pub(crate) const MOVED_K: f64 = 3.0;
    /// A cut that finds the limit more than this fraction away from the last `W` that two
    /// cuts or more found, one of them outside a slow start (cuts since may have found
    /// others), found a limit that moved: from
    /// then on `k` stays at [`MOVED_K`] and probes climb by [`MOVED_PROBE`]. Wider
    /// than [`SAME_LIMIT`]: a probe that drained burst credit reads up to a fifth high (a
    /// 20/s bucket of 5 read as 23/s), and that is no move.
    pub(crate) const MOVED: f64 = 0.25;
    /// Readings of a limit that stayed where it was are averaged over this many cuts at
    /// most: one reading holds whatever burst credit its probe drained (a 20/s bucket of 5
    /// read from 19.6 to 21.4/s), and a plateau built on the highest was over the limit.
    pub(crate) const READINGS: u32 = 4;
    /// Share of the requests that the probes of a limit that stays where it was may have
    /// refused. Such a probe costs one 429 most often at 20/s (measured on the benchmark at
    /// a 20/s bucket of 5), so at `W` per second a cycle lasts `1 / (PROBE_BUDGET × W)`
    /// seconds at least: 20 s at 20/s, 6.7 s at 60/s; one whose congestion event cost `n`
    /// 429s (the cut and its aftermath: more at a fast limit, where more sends go before
    /// the cut is judged) makes the next cycle `n` times as long. `k` is that, less
    /// [`PROBE_TIME`]. Below the 0.5 % of requests that the steady state's 429s may be: a
    /// refusal on the plateau still fits (at 0.4 %, a concurrency cap's steady state had
    /// 0.8 % in the worst of five runs, against 0.5 % at this).
    pub(crate) const PROBE_BUDGET: f64 = 0.0025;
    /// Seconds a probe takes to meet a limit that stayed, about: the rest of a cycle.
    pub(crate) const PROBE_TIME: f64 = 1.0;
    /// Successive cuts within this fraction of each other found the same limit.
    pub(crate) const SAME_LIMIT: f64 = 0.1;
    /// A cut that finds the limit more than this fraction above the last one found a limit
    /// that was raised, and grows again as in slow start. Wider than [`SAME_LIMIT`]: a probe
    /// from a plateau under a token bucket drains the credit the plateau let refill, and
    /// reads up to a fifth high (a 20/s bucket of 5 read as 21 and 23/s); taken for a raise,
    /// its slow start read the bucket's whole burst on top (24 and 25/s), and the plateau
    /// built on that ran over the limit, a 429 every 2 s for two callers. A raise reads
    /// higher (one from 18/s to 36/s as 29/s). Against a bucket of one (sends spaced, see
    /// [`Learner::send_at`]) a probe's climb reads low, not high, and [`SAME_LIMIT`] stays
    /// the threshold.
    pub(crate) const ROSE: f64 = 0.2;
    /// After a probe's cut, a refusal while the server accepted less than `1 / (1 + FELL)`
    /// of the cut's rate since it (about 83 %) met a limit that fell. The cases it must
    /// not catch accept more: a bucket of one that wasted the slots of sends that caught up
    /// read 17.3/s of 19/s sent (91 %), and accepted successes lag the sends by a service
    /// time (6 % of a second at 60 ms).
    pub(crate) const FELL: f64 = 0.2;
    /// Beyond `W`, the first second's step as a fraction of `W`; steps double each second.
    /// At 2 %, a limit raised by half was found 5 s into the probe; at 4 %, in under 4 s;
    /// at 6 %, the probe passes it 3.2 s in (a doubled limit, 4.1 s: from a plateau at `W`,
    /// `log2(1 + 1 / PROBE)` seconds).
    pub(crate) const PROBE: f64 = 0.06;
    /// [`PROBE`] once the limit has moved (see [`MOVED`]): from a plateau at `W`, the rate
    /// passes twice `W` 2.6 s into the probe, against 4.1 s at [`PROBE`]. A probe
    /// of a limit that stayed is cut by its first 429 either way, but the steeper one sends
    /// a few more over the limit before that 429 is judged.
    pub(crate) const MOVED_PROBE: f64 = 0.2;
    /// After a rate cut, 429s of requests sent this soon after it are its aftermath (a
    /// drained bucket), not a new congestion event.
    pub(crate) const GRACE: Duration = Duration::from_secs(1);
    /// A first 429 after this long of unpaced sending (lulls left out) came of a burst of
    /// the callers' own demand, not of a class sending all it could: what was accepted is
    /// that demand, and the limit is no lower. The cut keeps [`BETA`] of it, does not pause
    /// the class for its `Retry-After`, and grows by [`SLOW_START_AGAIN`] once its
    /// [`GRACE`] is over, not by [`SLOW_START`]: paused, the class gathered a second of
    /// demand, and doubling from 0.85 of what it read sent that backlog into the limit.
    pub(crate) const DEMAND: Duration = Duration::from_secs(1);
    /// Longest stretch over which the accepted rate is measured: since the last rate cut
    /// (or the end of a pause, or the end of an idle gap), up to this, lulls left out. Over
    /// 2 s, the burst credit a probe drains before its first 429 read a 20/s bucket of 5 as
    /// 21.5/s, and three cuts followed; over 16 s, the client's own pacing below the limit
    /// dominated and each cut read lower than the last.
    pub(crate) const WINDOW: Duration = Duration::from_secs(4);
    /// The cubic returns to `(1 − margin) × W`, not to `W`: the rate accepted at a cut
    /// still holds some drained burst credit (a 20/s bucket of 5 read as 20.75/s over 4 s,
    /// and a cubic aimed at 20.75 was over the limit 2 s after each cut), and a fixed window
    /// refuses a paced client at its exact rate whenever a send is late. The margin starts
    /// at `MARGIN`; a cut before the probe phase at the same limit (the plateau itself was
    /// over) widens it by `MARGIN`, up to `MARGIN_MAX`, unless the send refused caught up
    /// on a late one while sends may (a bucket of one refuses those below its rate); a cut
    /// while probing narrows it by a fifth of `MARGIN`, never below `MARGIN` (a probe's
    /// reading holds burst credit too: below 2.5 %, margins narrowed to 1.5–2 % put a 20/s
    /// bucket of 5's plateau over the limit, refused about 5 s after each probe).
    pub(crate) const MARGIN: f64 = 0.025;
    /// The widest margin.
    pub(crate) const MARGIN_MAX: f64 = 0.1;
    /// No slot taken for this long (or two slots' worth, if longer): the class was idle, and
    /// both the accepted rate and the cap's slow start count again from its next request
    /// (idle time is neither a low rate nor growth time: a burst after an idle minute must
    /// not read as one).
    pub(crate) const IDLE_GAP: Duration = Duration::from_secs(1);
    /// No slot taken for this long (or two slots' worth, or [`LULL_LATENCIES`] mean
    /// latencies, whichever is longest) before a new request that found a permit free:
    /// demand fell short of the pace, and the gap's time is left out of the span the
    /// accepted rate is read over. What the server accepted while the class had little to
    /// send is no low limit: a batch's last requests retrying a 5xx every half second before
    /// the next batch came in read a 60/s limit as 32/s over the window, and the class was
    /// paced at half the limit. The measurement does not restart after a lull (as after an
    /// idle gap, see [`IDLE_GAP`]): in an open loop such gaps are ordinary, and a reading
    /// restarted after one held the burst credit the gap let refill. Shorter gaps count as
    /// demand: several requests retrying at once, a send about every 100 ms, still read as
    /// a low rate (a 60/s limit as 38.8/s, in one run of the sandbox's trickle test).
    pub(crate) const LULL: Duration = Duration::from_millis(250);
    /// Mean latencies a gap between two slots must exceed to be a lull: a caller sending
    /// one request after another leaves a latency between its sends, and that is its
    /// steady rate, not a lull.
    pub(crate) const LULL_LATENCIES: f64 = 4.0;
    /// Window over which the accepted levels of concurrency are remembered: short, so a cap
    /// that dropped is soon seen as one.
    pub(crate) const LEVEL_WINDOW: Duration = Duration::from_secs(2);
    /// Window over which judged 429s are remembered: a concurrency cut needs every 429 in it
    /// to be a sign of a cap. Longer than [`LEVEL_WINDOW`], so the 429s of a rate limit's
    /// last burst still speak against a cap in the next one.
    pub(crate) const REFUSAL_WINDOW: Duration = Duration::from_secs(10);
    /// A cap shows at two moments at least this far apart: one burst against a token bucket
    /// refuses at the top too, but only at once.
    pub(crate) const MOMENT: Duration = Duration::from_millis(250);
    /// Growth by this factor since the pacing schedule started starts a new one: the
    /// requests waiting for slots booked at the old rate book again (a slow start from
    /// 5/s held eight permits on slots 1.5 s ahead while the rate tripled).
    pub(crate) const RESCHEDULE: f64 = 1.25;
    /// Refusals of sends that caught up on a late one (see `Learner::send_at`) before the
    /// learner decides whether the server has a bucket of one: a few, so a bucket with a
    /// burst is not taken for one on the chance of a handful of 429s.
    pub(crate) const CAUGHT_UP_REFUSED: u32 = 6;
    /// The share of the paced sends' 429s those refusals must also make: over a limit with a
    /// burst, sends are refused whether they caught up or not (those that catch up are about
    /// half), and below a bucket of one's rate, only those that caught up.
    pub(crate) const CAUGHT_UP_SHARE: f64 = 0.8;
    /// An unpaced burst of at least this many requests sent together (within
    /// [`TOGETHER`]), of which the server served at most one, shows a bucket of one at
    /// once: a bucket with a burst of `b` serves `b` of it, a fixed window its whole count.
    /// Fewer (a caller with two workers) say nothing. A cap of one serves one too: spacing
    /// changes nothing while its class is unpaced.
    pub(crate) const SERVED_ONE_OF: usize = 4;
    /// Sends this close together are one burst (see [`SERVED_ONE_OF`]).
    pub(crate) const TOGETHER: Duration = Duration::from_millis(10);
    /// Most 429s waiting to be judged, and most judged ones remembered: a storm of 429s
    /// costs bounded memory and bounded work per event (the oldest is judged, or forgotten,
    /// early).
    pub(crate) const MAX_REMEMBERED: usize = 256;
    /// Longest a 429 waits to be judged for the requests in flight with it (a stalled one
    /// must not hold the judgement up): this, or [`SETTLE_LATENCIES`] times the mean time a
    /// success takes lately, if shorter.
    pub(crate) const SETTLE: Duration = Duration::from_secs(2);
    /// A 429 waits for the requests in flight with it this many mean latencies at most: the
    /// others are back by then, and one that is not is stalled. Waiting the whole
    /// [`SETTLE`] for a request the server held 3 s, a probe at 100/s went on climbing and
    /// 40 requests were refused before its cut.
    pub(crate) const SETTLE_LATENCIES: f64 = 3.0;
    /// The shortest wait, whatever the latency.
    pub(crate) const SETTLE_MIN: Duration = Duration::from_millis(50);
    /// Until its first cut, the cap doubles once per this many mean latencies of sending
    /// (about a round of its requests each): a class whose requests take 80 ms, started at
    /// a cap of 4, ran at half a 100/s limit for a whole second when the cap doubled once a
    /// second. Two rounds, not one: the requests of the last doubling are still out when it
    /// grows again, and their 429s come back after it.
    pub(crate) const CAP_DOUBLING: f64 = 2.0;
    /// The shortest time between two doublings: fast requests do not take the cap from 4 to
    /// 64 within a tenth of a second, before the first 429 has been judged.
    pub(crate) const CAP_DOUBLING_MIN: Duration = Duration::from_millis(250);
    /// The longest: a slow class still doubles once a second.
    pub(crate) const CAP_DOUBLING_MAX: Duration = Duration::from_secs(1);
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

/// The longest `k` at a limit of `w` per second that stays where it was: the probes'
/// 429s within [`PROBE_BUDGET`], within [`K_MIN`] and [`K_MAX`], one 429 a probe (a probe
/// that costs `n` waits as long as at `w / n`). The fleet's script (`fleet/refuse.lua`)
/// applies the same rule, one 429 a probe.
pub(crate) fn longest_k(w: f64) -> f64 {
    (probe_cycle(w) - PROBE_TIME).clamp(K_MIN, K_MAX)
}

/// Seconds between probes, each costing one 429, that keep their 429s within
/// [`PROBE_BUDGET`] of the requests at `rate` per second (infinite at 0).
fn probe_cycle(rate: f64) -> f64 {
    1.0 / (PROBE_BUDGET * rate)
}

/// What a 429 changed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Cut {
    /// Nothing: the aftermath of the last cut, or a cap already at or below the level.
    None,
    /// Nothing yet: no success to measure a rate by. The class pauses until then (its
    /// first such 429 only) and measures again from there.
    Unmeasured(Instant),
    /// The rate was cut to this.
    Rate(f64),
    /// The concurrency cap was cut to this.
    Concurrency(usize),
}

/// A 429 waiting for the requests in flight with it to finish.
#[derive(Debug, Clone)]
struct Pending {
    /// When it came back.
    at: Instant,
    sent_at: Instant,
    /// When its `Retry-After` ends.
    resume_at: Instant,
    /// Requests in flight with it that have not finished yet.
    outstanding: usize,
    /// The successes the server was serving with it: those out when it was sent and back
    /// before it, then, of those in flight as it came back, the ones that succeeded.
    served: usize,
    /// Every permit of the class was in use.
    saturated: bool,
    /// The request caught up on a late send (see [`Learner::send_at`]).
    caught_up: bool,
}

/// A success.
#[derive(Debug, Clone, Copy)]
struct Success {
    /// When it came back.
    at: Instant,
    sent: Instant,
    /// The most successful requests in flight at once while it was (itself included), of
    /// those back by then.
    overlap: usize,
}

/// A judged 429.
#[derive(Debug, Clone)]
struct Refusal {
    at: Instant,
    served: usize,
    /// A sign of a cap: refused while the server served about as many as it ever did at once.
    at_the_top: bool,
}

/// Learned state of one class.
#[derive(Debug, Clone)]
pub(crate) struct Learner {
    /// Paced rate, requests per second (infinite until the first rate cut).
    pub(crate) rate: f64,
    /// The most the cap grows to (the policy's `max_concurrency`). The cap itself is the
    /// governor's (its semaphore's size): the learner is told it and answers with a new one.
    ceiling: usize,
    /// 429s waiting to be judged, in the order they came.
    pending: VecDeque<Pending>,
    /// Judged 429s of the last [`REFUSAL_WINDOW`].
    refusals: VecDeque<Refusal>,
    /// The class paused for a first 429 it could not measure (it does so once).
    paused: bool,
    /// GCRA: the next free slot.
    tat: Instant,
    /// Schedules so far (each rate cut starts one, and so does growth by [`RESCHEDULE`]):
    /// a slot booked on an older one is booked again (see [`Learner::rebook`]).
    pub(crate) epoch: u64,
    /// The rate the current schedule started at.
    scheduled_at: f64,
    /// The last slot taken (`None` before the first).
    last_slot: Option<Instant>,
    /// GCRA of the sends themselves (see [`Learner::send_at`]): when the last one was due
    /// (or went, if later). The next one is due a slot (at the current rate) after it.
    last_due: Option<Instant>,
    /// Whether a send may catch up on a late one (go up to a slot before it is due): until
    /// the 429s show a bucket of one (see [`Learner::refused_send`]).
    catches_up: bool,
    /// 429s of paced sends that caught up, and of the others (see [`Learner::refused_send`]).
    refused_caught_up: u32,
    refused_on_pace: u32,
    /// Rate at the last rate cut (the cubic's plateau).
    w: f64,
    /// Seconds from the last cut to the first probe.
    k: f64,
    /// How many cuts found `W` since it last moved (a cut found a new limit).
    readings: u32,
    /// When the last cut was a probe that met the limit where it held (within
    /// [`SAME_LIMIT`]): the `W` its plateau had held on (see [`Learner::rate_limited`]).
    probed: Option<f64>,
    /// Seconds the cubic takes back to the plateau (`k`, or [`RETURN`] after a probe was
    /// refused at the same limit); the rate holds the plateau from there to `k`.
    back: f64,
    /// The plateau's margin below `w` (see [`MARGIN`]).
    margin: f64,
    /// After the first rate cut, growing by [`SLOW_START`] per second; after the second, by
    /// [`SLOW_START_AGAIN`]; after the others, `None` (the cubic).
    rate_slow_start: Option<f64>,
    /// Seconds after the last rate cut before its slow start grows (see
    /// [`Learner::grown`]).
    grows_after: f64,
    /// The rate set by the last rate cut.
    cut_to: f64,
    /// When the cubic of the last rate cut started; `None` before any.
    rate_cut_at: Option<Instant>,
    /// 429s of requests sent after the last rate cut, within its [`GRACE`].
    refused_since_cut: usize,
    /// The 429s the last cut's congestion event has cost so far (the one that cut and its
    /// aftermath).
    event_refusals: u32,
    /// Recent successes, in the order they came back.
    successes: VecDeque<Success>,
    /// Lulls in demand (start, end) within the last [`WINDOW`], whose time the accepted
    /// rate's span leaves out (see [`LULL`]).
    lulls: VecDeque<(Instant, Instant)>,
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
    /// Whether a cut has found the limit [`MOVED`] away from a `W` that held (see
    /// `held_w`): until then `k` is [`longest_k`] once `W` has held and probes climb by [`PROBE`];
    /// after it `k` is [`MOVED_K`] and probes climb by [`MOVED_PROBE`].
    moved: bool,
    /// The last `W` that two cuts or more found, one of them outside a slow start (infinite
    /// before one did): a move is measured from it, so a limit that halved and was read in
    /// two cuts (31/s, 23.7/s, 15/s) counts as moved.
    held_w: f64,
    /// Whether a cut outside a slow start has read `W`. The first cut and the slow start's
    /// read the burst credit the class gathered while under the limit (a 20/s bucket of 10
    /// read as 28/s and 29/s, then 20/s): a limit only they found never held, and the cut
    /// that finds it lower has found no move.
    w_settled: bool,
    /// Static mode: paces at `rate` and learns nothing (see [`Learner::fixed`]).
    fixed: bool,
}

impl Learner {
    pub(crate) fn new(ceiling: usize, now: Instant) -> Self {
        Self {
            rate: f64::INFINITY,
            ceiling: ceiling.max(1),
            pending: VecDeque::new(),
            refusals: VecDeque::new(),
            paused: false,
            tat: now,
            epoch: 0,
            scheduled_at: f64::INFINITY,
            last_slot: None,
            last_due: None,
            catches_up: true,
            refused_caught_up: 0,
            refused_on_pace: 0,
            w: f64::INFINITY,
            k: K_MIN,
            readings: 0,
            probed: None,
            back: K_MIN,
            margin: MARGIN,
            rate_slow_start: None,
            grows_after: 0.0,
            cut_to: f64::INFINITY,
            rate_cut_at: None,
            refused_since_cut: 0,
            event_refusals: 0,
            successes: VecDeque::new(),
            lulls: VecDeque::new(),
            measured_from: now,
            concurrency_slow_start: true,
            last_concurrency_change: now,
            hold: HOLD,
            probe_at: None,
            rate_cuts: 0,
            concurrency_cuts: 0,
            moved: false,
            held_w: f64::INFINITY,
            w_settled: false,
            fixed: false,
        }
    }

    /// A pacer for static mode: its schedule at `rate` per second from `now`, and nothing
    /// learned (successes and 429s change nothing).
    pub(crate) fn fixed(rate: f64, now: Instant) -> Self {
        let mut pacer = Self {
            rate,
            fixed: true,
            ..Self::new(1, now)
        };
        pacer.new_schedule(now);
        pacer
    }

    /// Whether it learns (adaptive mode), rather than pacing at a fixed rate.
    pub(crate) fn learns(&self) -> bool {
        !self.fixed
    }

    /// Starts from a rate learned elsewhere (with shared limits: this process's share of the
    /// fleet's, while Redis does not answer), as after a cut at that limit: paced just
    /// under it, growing back along the cubic, its cap grown one at a time.
    #[cfg(any(feature = "redis", test))]
    pub(crate) fn seed(&mut self, rate: f64, now: Instant) {
        if !(rate.is_finite() && rate > 0.0) {
            return;
        }
        self.w = rate;
        self.rate = (BETA * rate).max(0.01);
        self.new_schedule(now);
        self.cut_to = self.rate;
        self.rate_cut_at = Some(now);
        self.rate_slow_start = None;
        self.k = K_MIN;
        self.readings = 1;
        self.w_settled = true;
        self.back = K_MIN;
        self.measured_from = now;
        self.refused_since_cut = 0;
        self.paused = true;
        self.concurrency_slow_start = false;
        self.last_concurrency_change = now;
    }

    fn forget_old(&mut self, now: Instant) {
        while self
            .successes
            .front()
            .is_some_and(|s| now.saturating_duration_since(s.at) > WINDOW)
        {
            self.successes.pop_front();
        }
        while self
            .lulls
            .front()
            .is_some_and(|&(_, end)| now.saturating_duration_since(end) > WINDOW)
        {
            self.lulls.pop_front();
        }
    }

    /// Successes per second since the last rate cut, pause or idle gap, lulls left out (what
    /// was accepted at an older rate says nothing of the new one), over at most [`WINDOW`],
    /// and how many successes that is.
    pub(crate) fn accepted_rate(&mut self, now: Instant) -> (f64, usize) {
        self.accepted_since(self.measured_from, now)
    }

    /// Successes per second over the last second (or since the measurement started, if
    /// later).
    fn accepted_last_second(&self, now: Instant) -> f64 {
        let from = self
            .measured_from
            .max(now.checked_sub(Duration::from_secs(1)).unwrap_or(now));
        let samples = self.successes.len() - self.successes.partition_point(|s| s.at < from);
        samples as f64 / now.saturating_duration_since(from).as_secs_f64().max(0.25)
    }

    /// Successes per second since `from` (within [`WINDOW`]), over a quarter of a second at
    /// least, and how many successes that is.
    fn accepted_since(&mut self, from: Instant, now: Instant) -> (f64, usize) {
        self.forget_old(now);
        // Time-ordered: a binary search, not a scan (up to WINDOW of successes).
        let samples = self.successes.len() - self.successes.partition_point(|s| s.at < from);
        let span = now.saturating_duration_since(from).min(WINDOW);
        let start = now - span;
        let span = (span.as_secs_f64() - self.lull_time(start, now)).max(0.25);
        (samples as f64 / span, samples)
    }

    /// Seconds of lulls between `start` and `now`.
    fn lull_time(&self, start: Instant, now: Instant) -> f64 {
        self.lulls
            .iter()
            .map(|&(a, b)| {
                b.min(now)
                    .saturating_duration_since(a.max(start))
                    .as_secs_f64()
            })
            .sum()
    }

    /// Takes the next pacing slot, with the schedule's epoch: a slot is valid until the
    /// learner starts a new schedule (see [`Learner::rebook`]). `waited`: the request waited
    /// for a permit, or is resent after its `Retry-After` (see [`Learner::take_slot`]).
    pub(crate) fn book(&mut self, now: Instant, waited: bool) -> (Instant, u64) {
        (self.take_slot(now, waited), self.epoch)
    }

    /// A request woke at a slot booked in `epoch`: if a new schedule started since (a rate
    /// cut, or growth by [`RESCHEDULE`]), it books a slot on it. The slots booked before a
    /// cut were spaced at the old rate, the one just refused (up to a second of them, with a class's permits all
    /// booked ahead): sent as booked, they kept the server refusing after the cut, and the
    /// next 429 read as a second limit.
    pub(crate) fn rebook(&mut self, epoch: u64, now: Instant) -> Option<(Instant, u64)> {
        (epoch != self.epoch).then(|| self.book(now, true))
    }

    /// Starts a new schedule at the current rate, one slot from now (or sooner, if the old
    /// one's next slot is): the slots booked on the old one are booked again.
    pub(crate) fn reschedule(&mut self, now: Instant) {
        self.new_schedule(self.tat.min(now + Duration::from_secs_f64(1.0 / self.rate)));
    }

    /// Starts a new schedule at the current rate whose first slot is `first`.
    fn new_schedule(&mut self, first: Instant) {
        self.tat = first;
        self.scheduled_at = self.rate;
        self.epoch += 1;
    }

    /// Takes the next pacing slot for a request that found a permit free: the instant it
    /// may be sent.
    pub(crate) fn slot(&mut self, now: Instant) -> Instant {
        self.take_slot(now, false)
    }

    /// Takes the next pacing slot: the instant this request may be sent. `waited`: it
    /// waited for a permit, was resent after its `Retry-After` or booked again after a new
    /// schedule, so a gap before it shorter than an idle one was requests in flight or held
    /// by the server, not a lull (see [`LULL`]): a stall that held every permit of a backlog
    /// read as a lull, and the reading after it held the burst credit the stall let refill.
    fn take_slot(&mut self, now: Instant, waited: bool) -> Instant {
        let slot = self.tat.max(now);
        let two_slots = Duration::from_secs_f64((2.0 / self.rate).min(60.0));
        let gap = self
            .last_slot
            .map(|last| slot.saturating_duration_since(last));
        let idle = gap.is_none_or(|gap| gap > IDLE_GAP.max(two_slots));
        let lull = || {
            gap.is_some_and(|gap| {
                !waited
                    && gap > LULL.max(two_slots)
                    && gap.as_secs_f64()
                        > LULL_LATENCIES * self.mean_latency(now).unwrap_or_default()
            })
        };
        // The first send, or the first after an idle gap or a lull: the time before it was
        // no low rate.
        if idle {
            self.measured_from = self.measured_from.max(slot);
        } else if lull()
            && let Some(last) = self.last_slot
        {
            self.lulls.push_back((last, slot));
        }
        // Nor, after an idle gap, a second of the cap's slow start (a client built long
        // before its first request doubled its cap with its first success, and sent twice
        // as many into the server's first refusal).
        if self.concurrency_slow_start && idle {
            self.last_concurrency_change = self.last_concurrency_change.max(slot);
        }
        self.last_slot = Some(slot);
        if self.rate.is_finite() {
            self.tat = slot + Duration::from_secs_f64(1.0 / self.rate);
        }
        slot
    }

    /// Whether a slot is free now (without taking it), and the sends' own spacing lets one go.
    pub(crate) fn slot_free(&self, now: Instant) -> bool {
        self.tat <= now && self.spaced_at().is_none_or(|at| at <= now)
    }

    /// The earliest the next send may go by the sends' own spacing: when it is due, less a
    /// slot while sends may catch up. `None` before any paced send.
    fn spaced_at(&self) -> Option<Instant> {
        let last = self.last_due.filter(|_| self.rate.is_finite())?;
        if self.catches_up {
            Some(last)
        } else {
            Some(last + Duration::from_secs_f64(1.0 / self.rate))
        }
    }

    /// A request is about to go at its slot: `Ok` if it may go now (with whether it catches
    /// up, going before it is due), or `Err` with when it may. Slots are booked ahead a slot
    /// apart, but a timer fires late (by a millisecond or so: a tenth of a slot at 100/s).
    /// A send right after a late one reaches the server less than a slot after it: a bucket
    /// with any burst accepts it, and a bucket of one refuses it. So the sends keep their own
    /// GCRA: a send may go up to a slot early (catching up, the schedule's rate kept)
    /// until the 429s show a bucket of one (see [`Learner::refused_send`]); from then on a
    /// send goes a slot after the last one at the earliest, and a late wake delays the next
    /// send.
    pub(crate) fn send_at(&mut self, now: Instant) -> Result<bool, Instant> {
        if !self.rate.is_finite() {
            return Ok(false);
        }
        if let Some(at) = self.spaced_at()
            && at > now
        {
            return Err(at);
        }
        let due = self
            .last_due
            .map_or(now, |last| last + Duration::from_secs_f64(1.0 / self.rate));
        self.last_due = Some(due.max(now));
        Ok(due > now)
    }

    /// A 429 of a paced send (`caught_up`: one that caught up on a late one), outside the
    /// last cut's [`GRACE`] (drained buckets refuse any send then). Over a limit with any
    /// burst, sends are refused whether they caught up or not; a bucket of one refuses the
    /// ones that caught up and hardly any other below its rate. So once those that caught
    /// up make [`CAUGHT_UP_REFUSED`] refusals, and more than [`CAUGHT_UP_SHARE`] of all of
    /// them, sends are spaced a slot apart from then on.
    fn refused_send(&mut self, sent_at: Instant, caught_up: bool) {
        let aftermath = self.rate_cut_at.is_some_and(|cut| sent_at < cut + GRACE);
        if !self.catches_up || !self.rate.is_finite() || aftermath {
            return;
        }
        if caught_up {
            self.refused_caught_up += 1;
        } else {
            self.refused_on_pace += 1;
        }
        let all = self.refused_caught_up + self.refused_on_pace;
        if self.refused_caught_up >= CAUGHT_UP_REFUSED
            && f64::from(self.refused_caught_up) > CAUGHT_UP_SHARE * f64::from(all)
        {
            self.catches_up = false;
            tracing::debug!(
                rate = self.rate,
                refused_caught_up = self.refused_caught_up,
                refused_on_pace = self.refused_on_pace,
                "sends that caught up are refused: no burst to catch up with"
            );
        }
    }

    /// Whether `W` has held: two cuts or more found it, one of them outside a slow start
    /// (whose readings hold burst credit). A cut that finds a new `W` resets the readings
    /// to one, so between cuts this also says that the last one found the same limit.
    fn held(&self) -> bool {
        self.readings >= 2 && self.w_settled
    }

    /// Whether requests are booked ahead: the pacing is what holds them back.
    fn paced(&self, now: Instant) -> bool {
        self.tat > now
    }

    /// The rate `t` seconds after the last rate cut: after the first, slow start; after the
    /// others, a concave cubic back to the plateau over `back` seconds, the plateau until
    /// `k`, then steps beyond it that double each second.
    fn grown(&self, t: f64) -> f64 {
        if let Some(factor) = self.rate_slow_start {
            return self.cut_to * factor.powf((t - self.grows_after).max(0.0));
        }
        let plateau = (1.0 - self.margin) * self.w;
        if t <= self.back {
            let c = (plateau - BETA * self.w) / self.back.powi(3);
            plateau + c * (t - self.back).powi(3)
        } else if t <= self.k {
            plateau
        } else {
            let step = if self.moved { MOVED_PROBE } else { PROBE };
            plateau * (1.0 + step * ((t - self.k).exp2() - 1.0))
        }
    }

    /// A success (any answer but a 429) of a request sent at `sent`. `queued`: requests of
    /// the class are waiting for a permit or a slot; `level`: requests of the class in flight
    /// as it came back, itself included; `concurrency`: the cap now. Returns the new cap when
    /// it grows.
    pub(crate) fn on_success(
        &mut self,
        now: Instant,
        sent: Instant,
        queued: bool,
        level: usize,
        concurrency: usize,
    ) -> Option<usize> {
        if self.fixed {
            return None;
        }
        let overlap = self.overlap(sent, now);
        self.successes.push_back(Success {
            at: now,
            sent,
            overlap,
        });
        let (mut accepted, _) = self.accepted_rate(now);
        if self.rate_slow_start.is_some() {
            accepted = accepted.max(self.accepted_last_second(now));
        }
        if let Some(cut) = self.rate_cut_at
            && (queued || self.paced(now))
        {
            let grown = self.grown(now.saturating_duration_since(cut).as_secs_f64());
            // Growth never takes the rate past twice what the server accepts, plus one.
            let ceiling = (2.0 * accepted + 1.0).max(self.rate);
            self.rate = grown.max(self.rate).min(ceiling);
            if self.rate >= RESCHEDULE * self.scheduled_at {
                // The slots booked so far are spaced at a rate well below this one (a
                // class's permits book up to a second ahead): they are booked again.
                self.reschedule(now);
            }
        }
        // Concurrency grows when requests wait for a permit while all are in use.
        let at_cap = level >= concurrency;
        let since = now.saturating_duration_since(self.last_concurrency_change);
        if queued && at_cap && !self.paced(now) && concurrency < self.ceiling {
            if self.concurrency_slow_start && since >= self.cap_doubling(now) {
                self.last_concurrency_change = now;
                return Some((concurrency * 2).min(self.ceiling));
            }
            if !self.concurrency_slow_start && since >= self.hold {
                self.last_concurrency_change = now;
                self.probe_at = Some(now);
                return Some(concurrency + 1);
            }
        }
        None
    }

    /// A request that was in flight finished (`served`: it succeeded). The 429s waiting for
    /// it learn whether the server was serving it; those with nothing left to wait for (or
    /// waiting longer than [`SETTLE`]) are judged, in the order they came. `concurrency`:
    /// the cap now.
    pub(crate) fn on_finish(
        &mut self,
        sent: Instant,
        now: Instant,
        served: bool,
        concurrency: usize,
    ) -> Cut {
        if self.fixed {
            return Cut::None;
        }
        for pending in self.pending.iter_mut().filter(|p| sent <= p.at) {
            pending.outstanding = pending.outstanding.saturating_sub(1);
            pending.served += usize::from(served);
        }
        self.judge_settled(now, concurrency)
    }

    /// A 429 of a request sent at `sent_at` (`caught_up`: catching up on a late send, see
    /// [`Learner::send_at`]). `others`: the other requests of the class in flight as it came
    /// back; `saturated`: every permit of the class was in use; `concurrency`: the cap now.
    /// It is judged once those others have finished (see [`Learner::on_finish`]); in static
    /// mode only its catching up counts.
    #[allow(clippy::too_many_arguments)] // one 429's facts, each from a different place
    pub(crate) fn on_rate_limited(
        &mut self,
        now: Instant,
        sent_at: Instant,
        caught_up: bool,
        others: usize,
        saturated: bool,
        resume_at: Instant,
        concurrency: usize,
    ) -> Cut {
        if self.fixed {
            self.refused_send(sent_at, caught_up);
            return Cut::None;
        }
        // The successes already back that were in flight when it was sent: the server was
        // serving them when it refused, unless they finished first. A 429 the client reads
        // late (a busy runtime) comes back after some of them, and counting only those still
        // out read a cap of 3 as a rate limit (one of the three served back already).
        let first = self.successes.partition_point(|s| s.at <= sent_at);
        let served = self
            .successes
            .range(first..)
            .filter(|s| s.sent <= sent_at)
            .count();
        self.pending.push_back(Pending {
            at: now,
            sent_at,
            resume_at,
            outstanding: others,
            served,
            saturated,
            caught_up,
        });
        self.judge_settled(now, concurrency)
    }

    /// Judges the 429s at the front of the queue that have settled; returns the last cut.
    fn judge_settled(&mut self, now: Instant, mut concurrency: usize) -> Cut {
        let mut cut = Cut::None;
        if self.pending.is_empty() {
            // Most finishes have no 429 waiting: no mean latency to compute.
            return cut;
        }
        let settle = self.settle(now);
        while let Some(front) = self.pending.front()
            && (front.outstanding == 0
                || now.saturating_duration_since(front.at) > settle
                || self.pending.len() > MAX_REMEMBERED)
        {
            let pending = self.pending.pop_front().expect("a front");
            match self.judge(now, &pending, concurrency) {
                Cut::None => {}
                other => {
                    if let Cut::Concurrency(cap) = other {
                        concurrency = cap;
                    }
                    cut = other;
                }
            }
        }
        cut
    }

    /// The most successful requests in flight at once during `[sent, now]`, this one
    /// included, of those already back. The largest overlap of a set of intervals is found
    /// at one of their starts, and the last of them to come back sees all the others: so
    /// the largest of these values over time is the most the server was seen serving at
    /// once. Only successes back after `sent` can overlap (a binary search finds them; a
    /// handful, about the concurrency), and the count is quadratic in those.
    fn overlap(&self, sent: Instant, now: Instant) -> usize {
        let first = self.successes.partition_point(|s| s.at < sent);
        let others = self.successes.range(first..);
        let this = Success {
            at: now,
            sent,
            overlap: 0,
        };
        let starts =
            std::iter::once(sent).chain(others.clone().map(|s| s.sent).filter(|&s| s > sent));
        starts
            .map(|point| {
                others
                    .clone()
                    .chain(std::iter::once(&this))
                    .filter(|s| s.sent <= point && point <= s.at)
                    .count()
            })
            .max()
            .unwrap_or(1)
    }

    /// The most successful requests seen in flight at once lately.
    fn peak_overlap(&self, now: Instant) -> usize {
        self.successes
            .iter()
            .rev()
            .take_while(|s| now.saturating_duration_since(s.at) <= LEVEL_WINDOW)
            .map(|s| s.overlap)
            .max()
            .unwrap_or(0)
    }

    /// How many requests in flight at once the pacing asks for: the rate times the mean time
    /// a success took, over [`LEVEL_WINDOW`] (Little's law). Unbounded while unpaced.
    fn demand(&self, now: Instant) -> f64 {
        if self.rate.is_infinite() {
            return f64::INFINITY;
        }
        self.mean_latency(now)
            .map_or(f64::INFINITY, |latency| self.rate * latency)
    }

    /// Sending time between two doublings of the cap in its slow start: [`CAP_DOUBLING`]
    /// mean latencies, within [`CAP_DOUBLING_MIN`] and [`CAP_DOUBLING_MAX`] (the longest
    /// without a success to measure).
    fn cap_doubling(&self, now: Instant) -> Duration {
        self.mean_latency(now).map_or(CAP_DOUBLING_MAX, |latency| {
            Duration::from_secs_f64(CAP_DOUBLING * latency)
                .clamp(CAP_DOUBLING_MIN, CAP_DOUBLING_MAX)
        })
    }

    /// How long a 429 waits for the requests in flight with it: [`SETTLE_LATENCIES`] mean
    /// latencies, within [`SETTLE_MIN`] and [`SETTLE`].
    fn settle(&self, now: Instant) -> Duration {
        self.mean_latency(now).map_or(SETTLE, |latency| {
            Duration::from_secs_f64(SETTLE_LATENCIES * latency).clamp(SETTLE_MIN, SETTLE)
        })
    }

    /// The mean time a success took (seconds), over [`LEVEL_WINDOW`]; `None` without one.
    fn mean_latency(&self, now: Instant) -> Option<f64> {
        let (sum, n) = self
            .successes
            .iter()
            .rev()
            .take_while(|s| now.saturating_duration_since(s.at) <= LEVEL_WINDOW)
            .fold((0.0, 0u32), |(sum, n), s| {
                (
                    sum + s.at.saturating_duration_since(s.sent).as_secs_f64(),
                    n + 1,
                )
            });
        (n > 0).then(|| sum / f64::from(n))
    }

    /// One settled 429: a sign of a cap or of a rate limit (see the module docs).
    fn judge(&mut self, now: Instant, pending: &Pending, concurrency: usize) -> Cut {
        if self.rate.is_infinite() && self.catches_up && pending.served <= 1 {
            // The 429s of its burst still waiting to be judged, this one included.
            let refused_with = 1 + self
                .pending
                .iter()
                .filter(|p| {
                    let (a, b) = (p.sent_at, pending.sent_at);
                    a.saturating_duration_since(b)
                        .max(b.saturating_duration_since(a))
                        <= TOGETHER
                })
                .count();
            if pending.served + refused_with >= SERVED_ONE_OF {
                // An unpaced burst of which the server served at most one: no burst credit to
                // catch up with (a bucket with a burst of `b` serves `b` of it, a fixed window
                // its whole count), so sends are spaced a slot apart from the first (see
                // `send_at`).
                self.catches_up = false;
                tracing::debug!(
                    refused_with,
                    served = pending.served,
                    "an unpaced burst was served one request at a time: no burst to catch up with"
                );
            }
        }
        let peak = self.peak_overlap(now);
        // In a paced class, a cap is met only where the pacing asks for more in flight than
        // the server served with the refused one: a 20/s limit paced at 60 ms a request asks
        // for about one at a time, and the level of two it reaches by chance is no cap (a
        // token bucket read so was cut to two in flight, then held each 429's permit
        // through its `Retry-After`).
        let demanded = self.demand(now) >= (pending.served + 1) as f64;
        let at_the_top = pending.served >= 1
            && demanded
            && (pending.saturated && pending.served + 1 >= peak || pending.served >= peak);
        tracing::trace!(
            served = pending.served,
            saturated = pending.saturated,
            peak,
            demanded,
            at_the_top,
            concurrency,
            "429 judged"
        );
        while self
            .refusals
            .front()
            .is_some_and(|r| now.saturating_duration_since(r.at) > REFUSAL_WINDOW)
        {
            self.refusals.pop_front();
        }
        if self.refusals.len() >= MAX_REMEMBERED {
            self.refusals.pop_front();
        }
        self.refusals.push_back(Refusal {
            at: pending.at,
            served: pending.served,
            at_the_top,
        });
        if at_the_top {
            // A cap: every recent 429 at the top, at two moments at least (one burst
            // against a token bucket also refuses at the top, once).
            let all_at_the_top = self.refusals.iter().all(|r| r.at_the_top);
            let first = self.refusals.front().map_or(pending.at, |r| r.at);
            let soon = pending.at.saturating_duration_since(first) < MOMENT;
            let fewest_served = self.refusals.iter().map(|r| r.served).min().unwrap_or(1);
            // Never below what the server was seen serving at once.
            let cap = fewest_served.max(peak).max(1);
            if all_at_the_top && !soon && cap < concurrency {
                // A probe that was cut back waits twice as long next time, and no less than
                // the probe budget allows at the rate accepted: a cap that holds costs a 429
                // a probe, as a rate limit that holds does (a cap of 4 serving 20/s, probed
                // after holds of 8 and 16 s, was refused 0.5 % of requests in steady state;
                // 0.3 % so, in two runs).
                if self
                    .probe_at
                    .is_some_and(|p| now.saturating_duration_since(p) < self.hold * 2)
                {
                    let (accepted, _) = self.accepted_rate(now);
                    let cycle = probe_cycle(accepted).min(MAX_HOLD.as_secs_f64());
                    let budget = Duration::try_from_secs_f64(cycle).unwrap_or(MAX_HOLD);
                    self.hold = (self.hold * 2).max(budget).min(MAX_HOLD);
                }
                self.concurrency_slow_start = false;
                self.last_concurrency_change = now;
                self.probe_at = None;
                self.concurrency_cuts += 1;
                return Cut::Concurrency(cap);
            }
            // No cap to cut yet. In a class paced for a rate limit it found, this 429 is the
            // rate limit's (below) when 429s below the top came lately, or when the cap is
            // already down to the level the server serves: few in flight at a time are at the
            // top by chance (a 20/s bucket of one, paced, ran at one or two in flight and spent
            // 7 s refused at the top, growing, with no cut).
            // Nor is a 429 of a request sent before the last concurrency cut: the cut's own
            // aftermath (the requests refused with the one that cut were over the cap too).
            let aftermath =
                self.concurrency_cuts > 0 && pending.sent_at <= self.last_concurrency_change;
            if self.rate.is_infinite() || (all_at_the_top && soon) || aftermath {
                return Cut::None;
            }
        }
        // Whether the refused send caught up while sends still may: the mark of a bucket of
        // one refusing ordinary timer jitter, whatever the plateau (read before this 429
        // counts towards spacing the sends).
        let jitter = pending.caught_up && self.catches_up;
        self.refused_send(pending.sent_at, pending.caught_up);
        self.rate_limited(now, pending, jitter)
    }

    /// A 429 judged a sign of a rate limit (`jitter`: of a send that caught up while sends
    /// may).
    fn rate_limited(&mut self, now: Instant, pending: &Pending, jitter: bool) -> Cut {
        let (sent_at, resume_at) = (pending.sent_at, pending.resume_at);
        let (mut accepted, samples) = self.accepted_rate(now);
        // A first cut read over a second or more of unpaced sending (lulls left out): the
        // class sent what its callers asked for, under the limit, until a burst of theirs
        // drained the server's credit (see [`DEMAND`]).
        let mut demand = false;
        if self.rate.is_infinite() {
            // The first cut: an unpaced burst that took the server's whole burst credit in
            // a fraction of a second says little of its rate over a second (a window of 10
            // per second filled in 0.1 s read as 40/s over the 0.25 s floor). Over the
            // successes remembered, [`WINDOW`] at most: a class that ran unpaced under the
            // limit for 12 s before its first 429 read 18/s as 6.3/s over the whole time.
            let span = now
                .saturating_duration_since(self.measured_from)
                .min(WINDOW);
            let lull = self.lull_time(now - span, now);
            let sending = span.as_secs_f64() - lull;
            demand = sending >= DEMAND.as_secs_f64() && samples >= MIN_SAMPLES;
            accepted = accepted.min(samples as f64 / sending.max(1.0));
        }
        if self.rate_slow_start.is_some() {
            // Doubling each second, the rate since the cut averages far below the rate that
            // met the limit (a 20/s limit met in slow start read as 10/s over 4 s): the
            // last second is what the server accepts (and what bounds growth).
            accepted = accepted.max(self.accepted_last_second(now));
        }
        // The first cut is measured by any success: it is a floor the slow start doubles
        // from. Paused for lack of one, the class resumed unpaced, and its waiting
        // requests went at once into a bucket of one again.
        let measured = samples >= MIN_SAMPLES || (self.rate.is_infinite() && samples > 0);
        if let Some(cut) = self.rate_cut_at
            && sent_at < cut + GRACE
        {
            // The aftermath of the last cut, unless the cut was not deep enough: requests
            // sent after it are refused again and again while the server accepts well below
            // the new rate (a limit that halved, read over the window at its old value).
            // Measured since the cut, over half a second at least: a fixed window's lumps
            // read anything over less.
            // Only sends that went on pace count: against a bucket of one, a send that
            // caught up on a late one is refused at any rate under the limit, and each such
            // refusal wastes its slot, so what is accepted reads low too.
            if sent_at >= cut && !(pending.caught_up && self.catches_up) {
                self.refused_since_cut += 1;
            }
            // What the probe budget pays for is the 429s a congestion event costs, not one:
            // at a fast limit more sends go before the cut is judged, and after it. The next
            // probe waits as if for a limit that many times slower, each of its 429s counted
            // (a 100/s bucket of 20 probed every 5 s, two runs: 1.1 and 0.7 % of the steady
            // state's requests refused, against 0.5 and 0.2 % so).
            self.event_refusals += 1;
            if self.held() && !self.moved {
                self.k = longest_k(self.w / f64::from(self.event_refusals));
            }
            let since = now.saturating_duration_since(cut);
            let still_over = self.refused_since_cut >= MIN_SAMPLES
                && since >= 2 * MOMENT
                && measured
                && self.paced(now)
                && accepted * (1.0 + SAME_LIMIT) < self.rate;
            if !still_over {
                return Cut::None;
            }
        }
        // The first rate cut needs a measured rate; later ones cut the paced rate. The
        // class pauses for the first such 429 only: pausing again for each one, the
        // successes after each pause never came before its 429s, and the class went from
        // pause to pause.
        if !measured && self.rate.is_infinite() {
            if self.paused {
                return Cut::None;
            }
            self.paused = true;
            self.measured_from = self.measured_from.max(resume_at);
            return Cut::Unmeasured(resume_at);
        }
        let probe_from = self
            .rate_cut_at
            .filter(|_| self.rate_slow_start.is_none())
            .map(|cut| cut + Duration::from_secs_f64(self.k))
            .filter(|&from| from <= now);
        if let Some(from) = probe_from
            && now.saturating_duration_since(from) >= Duration::from_secs(1)
        {
            // Refused while probing: the rate accepted since the probe began, not over the
            // whole window, most of which the plateau filled (a fixed window of 10/s read as
            // 9.2/s over 4 s, and the plateau sank under it by a margin each cycle).
            let (probed, samples) = self.accepted_since(from, now);
            if samples >= MIN_SAMPLES {
                accepted = accepted.max(probed);
            }
        }
        if !self.catches_up
            && measured
            && (probe_from.is_some() || self.rate_slow_start.is_some())
            && let Some(cut) = self.rate_cut_at
        {
            // Climbing against a bucket of one (see `catches_up`): it refuses the first send
            // that comes sooner than its refill. What was accepted averages the climb and
            // reads low (a 20/s bucket of one read as 17 to 18.8/s, and the plateau rose half
            // a request per second a probe cycle: 0.90 of the oracle in the worst of five
            // runs); the rate the refused send went at reads high by how far a slow start
            // climbed while the server's timing jittered (22 to 24/s; alone, it set plateaus
            // over the limit: 0.87 worst with 4.3 % 429s). Halfway between: 0.96 worst.
            let at_sending = self.grown(sent_at.saturating_duration_since(cut).as_secs_f64());
            accepted = accepted.max(0.5 * (accepted + at_sending.min(self.rate)));
        }
        let mut w = if measured {
            self.rate.min(accepted.max(0.01))
        } else {
            self.rate
        };
        let reading = w;
        if probe_from.is_some() && self.w.is_finite() {
            // Refused while probing beyond a plateau that held: the limit is no lower than
            // the one the plateau was built on. Against a bucket of one, the sends a probe
            // gets refused waste their slots, and the rate accepted reads well under the
            // limit (a 20/s bucket of one read as 17/s, each cut lower than the last); a
            // limit that fell meanwhile is cut again by the next congestion event. Never
            // above the rate refused, though: a cut never raises the rate (a plateau a wide
            // margin below `W` is refused while it probes below `W`).
            w = w.max(self.w.min(self.rate));
        }
        let probing = probe_from.is_some();
        // Refused back on the plateau after a probe met the limit where it had held, before
        // the next probe: the limit the plateau held on is no lower than the rate refused.
        // Either the probe's raise of `W` came of a reading that held a token bucket's
        // burst credit, refilled while the plateau ran under the limit and drained within
        // the probe's second or two (a 20/s bucket of 5 read as 21.8/s; taken as it was,
        // the plateau built on it was refused 1.2 s later), and the limit is the one held
        // before it; or a bucket of one refused a send that caught up on a late one and
        // wasted the slots of others, and the rate accepted reads low (a 20/s bucket of one
        // as 17.3/s a second after the probe). Read as they were, both found a new limit,
        // probed it again from scratch, and the first kept a plateau over the limit. Either
        // way the server accepted about what the class sent since the probe's cut. A limit
        // that fell meanwhile accepts well under that (a 30/s limit cut to 18/s as a probe
        // was refused: 18/s accepted of 29/s sent), and is read as it is: held at "no lower
        // than 30", the class was refused ten requests a second until the next cut. The
        // criterion is what was accepted, not how many were refused: against a fixed window
        // or a 100/s bucket one congestion event refuses several sends after its cut too.
        let fell = measured && accepted * (1.0 + FELL) < self.cut_to;
        let mut undone = false;
        if let Some(held) = self.probed.take().filter(|_| !probing)
            && self.rate_slow_start.is_none()
            && !fell
        {
            // The probe raised `W`: back to where it held, the margin as it was (the plateau
            // held there).
            undone = self.w > held && w < self.w;
            w = w.max(held.min(self.w).min(self.rate));
        }
        // The same limit again: probe it less often, and learn whether the plateau is too
        // close to it. A new one: probe soon.
        let same_limit = self.w.is_finite() && (w / self.w - 1.0).abs() <= SAME_LIMIT;
        let settled = self.rate.is_finite() && self.rate_slow_start.is_none();
        // Only a cut of the cubic says how close its plateau is: a slow start has none, and
        // a send that caught up is refused by a bucket of one below its rate (with `k` at
        // 13 s, such refusals widened a 20/s bucket of one's margin to the widest within
        // 20 s: 0.85 worst and 0.92 median of the oracle over five seeds).
        if same_limit
            && !undone
            && !jitter
            && self.rate_slow_start.is_none()
            && let Some(cut) = self.rate_cut_at
        {
            self.margin = if now.saturating_duration_since(cut).as_secs_f64() < self.k {
                (self.margin + MARGIN).min(MARGIN_MAX)
            } else {
                (self.margin - MARGIN / 5.0).max(MARGIN)
            };
        }
        if same_limit {
            // One more reading of the same limit, averaged with the others: it holds the
            // burst credit its probe drained, a different amount each time (a 20/s bucket
            // of 5 read as 21.3/s and 21.6/s; taken as it was, the plateau built on it ran
            // over the limit and was refused 2 s later, two congestion events a probe).
            // Against a bucket of one (sends spaced, see `catches_up`) a probe refused
            // above `W` is taken as it is: there its reading averages its climb from the
            // plateau and reads low (a 20/s bucket of one read as 18/s, and averaged with
            // the readings before it the plateau rose a tenth of a request per second a
            // cycle); one that read high is undone by the plateau's refusal (above). An
            // undone raise is no reading: `W` is where the plateau held.
            if !undone {
                self.readings = (self.readings + 1).min(READINGS);
                self.w_settled |= settled;
            }
            if !(undone || probing && w > self.w && !self.catches_up) {
                w = self.w + (w - self.w) / f64::from(self.readings);
            }
            // Probed soon while one cut (or only slow starts) read the limit: a reading may
            // be low, and the plateau with it. Once it has held, as seldom as the budget
            // allows at once: grown by the time held instead, a 1 s fixed window of 10 was
            // probed 11 s after its second reading and 24 s after its third, two 429s more
            // in the first 40 s than at once.
            self.k = if self.moved {
                MOVED_K
            } else if self.held() {
                longest_k(w)
            } else {
                K_MIN
            };
        } else {
            // A limit that held and then moved may move again (see [`MOVED`]).
            if self.held() {
                self.held_w = self.w;
            }
            if self.held_w.is_finite() && (w / self.held_w - 1.0).abs() > MOVED {
                self.moved = true;
            }
            self.readings = 1;
            self.w_settled = settled;
            self.k = if self.moved { MOVED_K } else { K_MIN };
        }
        // A probe refused at the limit found before: the plateau holds, so the rate is back
        // on it soon and stays there until the next probe.
        self.back = if same_limit && probing {
            RETURN.min(self.k)
        } else {
            self.k
        };
        let first = self.rate.is_infinite();
        // The first cut and the one that ends the slow start read a second that held the
        // server's burst credit: the class was under the limit before, so the bucket was
        // full (a 20/s bucket of 5 read as 23/s, and β of that was over the limit).
        let beta = if demand {
            BETA
        } else if first || (measured && self.rate_slow_start == Some(SLOW_START)) {
            FIRST_BETA
        } else {
            BETA
        };
        // A limit found well above the last one was raised: the probe that found it climbed
        // steeply, so the window's average reads it low (a limit raised from 18/s to 36/s
        // read as 29/s), and a cubic back to that would take a cycle per step. The rate
        // grows again as after the first slow start, and the next cut reads the last second.
        // Against a bucket of one (sends spaced, see `catches_up`) a probe's climb reads
        // low, not high: there, more than [`SAME_LIMIT`] above is a raise.
        let rose_by = if self.catches_up { ROSE } else { SAME_LIMIT };
        let rose = self.w.is_finite() && w > (1.0 + rose_by) * self.w;
        self.rate_slow_start = if demand {
            Some(SLOW_START_AGAIN)
        } else if self.rate.is_infinite() {
            Some(SLOW_START)
        } else if self.rate_slow_start == Some(SLOW_START) || rose {
            Some(SLOW_START_AGAIN)
        } else {
            None
        };
        // The cut that starts a slow start again read a limit, most often close to it:
        // growing at once meets it again within this cut's grace, where a 429 is taken for
        // the cut's aftermath, or for a cut not deep enough (a 20/s bucket of one cut to
        // 18/s, then sent 22/s within the second, was cut again to 14/s). So it grows once
        // the grace is over, and its first 429 is a cut that reads the last second again.
        self.grows_after = if self.rate_slow_start == Some(SLOW_START_AGAIN) {
            GRACE.as_secs_f64()
        } else {
            0.0
        };
        self.probed = (probing && same_limit).then_some(self.w);
        self.w = w;
        // Never above the rate refused: growth holds the rate under twice what is accepted,
        // which may be below β × the readings' mean.
        self.rate = (beta * w).max(0.01).min(self.rate);
        self.cut_to = self.rate;
        // The schedule starts again at the new rate, one slot from now: the requests that
        // booked slots on the old one book again when they wake (`rebook`), in the order
        // they booked. The first cut starts it at the end of its `Retry-After` instead,
        // unless the class already paused for an unmeasured 429 (it pauses once) or read
        // its callers' demand (see [`DEMAND`]): the unpaced burst took all the server had (a
        // fixed window that was full refused the eight requests sent before its end). The
        // cut, its grace, the growth and the
        // measurement start there too: a pause is not a low rate.
        let pause = first && !std::mem::replace(&mut self.paused, true) && !demand;
        let start = if pause { resume_at.max(now) } else { now };
        self.rate_cut_at = Some(start);
        self.new_schedule(if pause {
            start
        } else {
            now + Duration::from_secs_f64(1.0 / self.rate)
        });
        self.measured_from = start;
        self.refused_since_cut = 0;
        self.event_refusals = 1;
        self.rate_cuts += 1;
        tracing::debug!(
            reading,
            accepted,
            samples,
            readings = self.readings,
            undone,
            w = self.w,
            k = self.k,
            margin = self.margin,
            probing,
            same_limit,
            caught_up = pending.caught_up,
            catches_up = self.catches_up,
            rate = self.rate,
            "rate cut"
        );
        Cut::Rate(self.rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A learner with the cap the governor keeps for it: growth and cuts applied.
    #[derive(Debug)]
    struct Sim {
        learner: Learner,
        concurrency: usize,
    }

    impl Sim {
        fn new(concurrency: usize, ceiling: usize, now: Instant) -> Self {
            Sim {
                learner: Learner::new(ceiling.max(concurrency), now),
                concurrency: concurrency.max(1),
            }
        }

        fn apply(&mut self, cut: Cut) -> Cut {
            if let Cut::Concurrency(cap) = cut {
                self.concurrency = cap;
            }
            cut
        }

        fn on_success(
            &mut self,
            now: Instant,
            sent: Instant,
            queued: bool,
            level: usize,
        ) -> Option<usize> {
            let grown = self
                .learner
                .on_success(now, sent, queued, level, self.concurrency);
            if let Some(cap) = grown {
                self.concurrency = cap;
            }
            grown
        }

        fn on_finish(&mut self, sent: Instant, now: Instant, served: bool) -> Cut {
            let cut = self.learner.on_finish(sent, now, served, self.concurrency);
            self.apply(cut)
        }

        fn on_rate_limited(
            &mut self,
            now: Instant,
            sent_at: Instant,
            others: usize,
            saturated: bool,
            resume_at: Instant,
        ) -> Cut {
            let cut = self.learner.on_rate_limited(
                now,
                sent_at,
                false,
                others,
                saturated,
                resume_at,
                self.concurrency,
            );
            self.apply(cut)
        }
    }

    impl Sim {
        /// A 429 of a paced send that caught up on a late one, alone in flight.
        fn on_caught_up_rate_limited(
            &mut self,
            now: Instant,
            sent_at: Instant,
            resume_at: Instant,
        ) -> Cut {
            let cut = self.learner.on_rate_limited(
                now,
                sent_at,
                true,
                0,
                false,
                resume_at,
                self.concurrency,
            );
            self.apply(cut)
        }
    }

    impl std::ops::Deref for Sim {
        type Target = Learner;

        fn deref(&self) -> &Learner {
            &self.learner
        }
    }

    impl std::ops::DerefMut for Sim {
        fn deref_mut(&mut self) -> &mut Learner {
            &mut self.learner
        }
    }

    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    #[test]
    fn a_seeded_learner_paces_at_once_just_under_its_share() {
        let now = Instant::now();
        let mut learner = Learner::new(32, now);
        learner.seed(10.0, now);
        assert!((learner.rate - BETA * 10.0).abs() < 1e-9);
        let (a, b) = (learner.slot(now), learner.slot(now));
        assert_eq!(b - a, Duration::from_secs_f64(1.0 / (BETA * 10.0)));
        let rate = learner.rate;
        learner.seed(f64::NAN, now);
        assert_eq!(learner.rate, rate, "a rate that is not one seeds nothing");
    }

    #[test]
    fn slots_are_spaced_one_over_the_rate_without_bursts() {
        let t0 = Instant::now();
        let mut l = Sim::new(4, 64, t0);
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
        let mut l = Sim::new(4, 64, t0);
        assert!((0..100).all(|_| l.slot(t0) == t0));
    }

    #[test]
    fn a_429_cuts_the_rate_once_per_congestion_event() {
        let t0 = Instant::now();
        let mut l = Sim::new(8, 64, t0);
        // Under a second of unpaced sending (see `DEMAND`).
        for i in 0..20 {
            l.on_success(at(t0, i * 45), at(t0, i * 45), false, 1);
        }
        let now = at(t0, 900);
        let resume = now + Duration::from_secs(1);
        let cut = l.on_rate_limited(now, at(t0, 890), 0, false, resume);
        let Cut::Rate(r) = cut else { panic!("{cut:?}") };
        assert!(
            (r - FIRST_BETA * 20.0).abs() < 1.0,
            "a first cut keeps 0.85 × the accepted rate: {r}"
        );
        assert_eq!(
            l.on_rate_limited(at(t0, 1_010), at(t0, 995), 0, false, resume),
            Cut::None,
            "sent before the cut: under the old rate"
        );
        // The first cut waits out its `Retry-After`: the new schedule starts at its end, paced
        // at the new rate, and a slot booked before the cut is booked again on it.
        let spacing = Duration::from_secs_f64(1.0 / r);
        assert_eq!(l.slot(now), resume);
        assert_eq!(l.slot(now), resume + spacing);
        assert_eq!(l.rebook(0, now), Some((resume + 2 * spacing, 1)));
        assert_eq!(l.rebook(1, now), None, "booked on this schedule: it stands");
        assert_eq!(
            l.on_rate_limited(at(t0, 2_800), at(t0, 2_700), 0, false, at(t0, 3_800)),
            Cut::None,
            "sent just after it: the drained bucket, not a new event"
        );
        // Still over once the grace is past: the paced rate is cut again, even before a new
        // measurement, and no later cut pauses the class: its schedule starts again one slot
        // after the cut.
        let later = at(t0, 3_200);
        let cut = l.on_rate_limited(later, at(t0, 3_150), 0, false, at(t0, 4_200));
        assert_eq!(cut, Cut::Rate(BETA * r));
        assert_eq!(
            l.slot(later),
            later + Duration::from_secs_f64(1.0 / (BETA * r))
        );
    }

    #[test]
    fn a_limit_that_halved_read_in_two_cuts_has_moved() {
        let t0 = Instant::now();
        let mut l = cubic(t0, 30.0, 28.5);
        l.readings = 3;
        // The server accepts 23.3/s, then 15/s: two cuts, the first under `MOVED` from the
        // limit that held, the second from a `W` only one cut found.
        let cut_at = |l: &mut Sim, from: u64, gap: u64| {
            let mut ms = from;
            while ms < from + 2_000 {
                l.on_success(at(t0, ms), at(t0, ms), true, 1);
                ms += gap;
            }
            let now = at(t0, from + 2_010);
            let cut = l.on_rate_limited(now, at(now, 0), 0, false, at(now, 1_000));
            assert!(matches!(cut, Cut::Rate(_)), "{cut:?}");
        };
        cut_at(&mut l, 0, 43);
        assert!((l.w / 30.0 - 1.0).abs() < MOVED, "{}", l.w);
        assert!(!l.moved);
        cut_at(&mut l, 2_010, 67);
        assert!(l.w < 16.0, "{}", l.w);
        assert!(l.moved, "15/s is half the limit that held");
    }

    #[test]
    fn a_limit_only_slow_starts_read_has_not_held_so_reading_it_lower_is_no_move() {
        // The first cut and the slow start's read 28/s and 29/s of a 20/s bucket of 10 (its
        // burst credit); the next slow start is refused where the server accepts 20/s.
        let cut_at_20_per_second = |settled: bool| {
            let t0 = Instant::now();
            let mut l = cubic(t0, 28.5, 24.0);
            l.readings = 2;
            l.w_settled = settled;
            l.rate_slow_start = Some(SLOW_START_AGAIN);
            for i in 0..40u64 {
                l.on_success(at(t0, i * 50), at(t0, i * 50), true, 1);
            }
            let now = at(t0, 2_010);
            let cut = l.on_rate_limited(now, at(now, 0), 0, false, at(now, 1_000));
            assert!(matches!(cut, Cut::Rate(_)), "{cut:?}");
            assert!((l.w - 20.0).abs() < 0.5, "{}", l.w);
            l
        };
        let l = cut_at_20_per_second(false);
        assert!(!l.moved, "no cut outside a slow start read 28.5/s");
        assert_eq!(l.k, K_MIN);
        let l = cut_at_20_per_second(true);
        assert!(l.moved, "a cubic's cut read 28.5/s too: the limit fell");
        assert_eq!(l.k, MOVED_K);
    }

    #[test]
    fn cuts_that_find_the_same_limit_probe_it_less_often() {
        let t0 = Instant::now();
        let mut l = Sim::new(8, 64, t0);
        let mut ks = Vec::new();
        let mut ms = 0;
        // The server accepts 20/s every time the client goes over (requests wait: the rate
        // grows between cuts). The first 429 comes within the first second (see `DEMAND`).
        let mut margins = Vec::new();
        for round in 0..5 {
            for _ in 0..if round == 0 { 19 } else { 40 } {
                ms += 50;
                l.on_success(at(t0, ms), at(t0, ms), true, 1);
            }
            ms += 10;
            let cut = l.on_rate_limited(at(t0, ms), at(t0, ms - 5), 0, false, at(t0, ms + 1_000));
            assert!(matches!(cut, Cut::Rate(_)), "{cut:?}");
            ks.push((l.k, l.w));
            margins.push(l.margin);
        }
        // The first cut reads a new limit; from the second on, the same. The first three
        // are the first cut and the ends of the two slow starts, whose readings hold burst
        // credit: `k` stays at K_MIN. The fourth, of the cubic, finds the limit held: `k` is
        // what the probe budget allows at that limit from then on (19 s at 20/s, not 4 s
        // plus the 6 s it has held).
        let k_min = [K_MIN; 3].map(|k| k.to_bits());
        assert_eq!(
            ks[..3].iter().map(|(k, _)| k.to_bits()).collect::<Vec<_>>(),
            k_min,
            "{ks:?}"
        );
        assert!(
            ks[3..].iter().all(|&(k, w)| k == longest_k(w) && k > K_MIN),
            "{ks:?}"
        );
        // The fourth and fifth cuts, of the cubic after the two slow starts, came 2 s after
        // the last, before the probe phase: the plateau was over the limit, so its margin
        // widens (the slow starts' cuts say nothing of a plateau).
        assert_eq!(
            margins
                .iter()
                .map(|m| (m * 1000.0).round() / 1000.0)
                .collect::<Vec<_>>(),
            [0.025, 0.025, 0.025, 0.05, 0.075]
        );
        // A limit that moved: back to probing soon.
        for _ in 0..20 {
            ms += 100;
            l.on_success(at(t0, ms), at(t0, ms), false, 1);
        }
        l.on_rate_limited(
            at(t0, ms + 10),
            at(t0, ms + 5),
            0,
            false,
            at(t0, ms + 1_000),
        );
        assert_eq!(l.k, MOVED_K, "a limit that moved is probed sooner");
        assert_eq!(l.readings, 1, "its readings start again");
        // It may move again: `k` stays at MOVED_K however long the new limit holds.
        for _ in 0..20 {
            ms += 100;
            l.on_success(at(t0, ms), at(t0, ms), false, 1);
        }
        let cut = l.on_rate_limited(
            at(t0, ms + 10),
            at(t0, ms + 5),
            0,
            false,
            at(t0, ms + 1_000),
        );
        assert!(matches!(cut, Cut::Rate(_)), "{cut:?}");
        assert_eq!(l.readings, 2, "the same limit again");
        assert_eq!(l.k, MOVED_K, "held 2 s, still probed as soon");
    }

    #[test]
    fn a_limit_that_holds_is_probed_within_the_probe_budget() {
        // One 429 per probe, one probe per `k + PROBE_TIME`: at 20/s, 0.25 % of requests.
        let cycle = longest_k(20.0) + PROBE_TIME;
        assert!(
            (1.0 / (cycle * 20.0) - PROBE_BUDGET).abs() < 1e-12,
            "{cycle}"
        );
        assert_eq!(
            longest_k(200.0),
            K_MIN,
            "a fast limit: probed every K_MIN at least"
        );
        assert_eq!(longest_k(2.0), K_MAX, "a slow one: K_MAX at most");
        // A probe refused 2 s into it (4 s after the cut) reads 21.7/s, the burst credit
        // the plateau refilled with it: averaged with the three readings before it.
        let l = refused_at_a_held_limit(BETA * 20.0, 4_000..6_000, 46);
        assert!(
            (l.w - (20.0 + 1.7 / 4.0)).abs() < 0.1,
            "W moves by a quarter of 21.7 − 20: {}",
            l.w
        );
        assert_eq!(l.readings, READINGS);
        // It has held for 100 s: the budget, not the time held, bounds k.
        assert_eq!(l.k, longest_k(l.w));
        // Readings of the same limit below W, taken on the plateau before its probe,
        // are averaged: one that drained more burst credit than the others moves W by
        // a share of the difference only. Refused 3 s after the cut, reading 18.7/s.
        let l = refused_at_a_held_limit(19.6, 0..3_000, 53);
        assert!(
            l.w < 20.0 && l.w > 19.5,
            "W moves by a quarter of 18.7 − 20: {}",
            l.w
        );
        assert_eq!(l.readings, READINGS);
    }

    #[test]
    fn a_probe_whose_congestion_event_cost_more_429s_waits_longer_for_the_next() {
        // A probe of a 20/s limit that has held, refused 2 s into it: one 429 so far, and
        // the next probe in the 19 s the budget allows for one.
        let mut l = refused_at_a_held_limit(BETA * 20.0, 4_000..6_000, 46);
        let cut = l.rate_cut_at.expect("a cut");
        assert_eq!(l.k, longest_k(l.w));
        // A second 429 of the same event (sent with the first, judged after the cut): no
        // cut, but the next probe waits as at a limit half as fast, both 429s in the budget.
        let ms = Duration::from_millis;
        let again = l.on_rate_limited(cut + ms(20), cut - ms(5), 0, false, cut + ms(1_000));
        assert!(matches!(again, Cut::None), "{again:?}");
        assert_eq!(l.k, longest_k(l.w / 2.0));
        assert!(l.k > longest_k(l.w), "{}", l.k);
    }

    /// A learner whose `W` of 20/s has held for 100 s (three readings, `k` = [`K_MIN`])
    /// since a cut, pacing at `rate`: successes every `every_ms` over `ms` after the cut
    /// (the last one just past its end, in flight with the refused send), then a 429 for
    /// the send at its end.
    fn refused_at_a_held_limit(rate: f64, ms: std::ops::Range<u64>, every_ms: u64) -> Sim {
        let t0 = Instant::now();
        let start = t0 + Duration::from_secs(100);
        let mut l = Sim::new(8, 64, t0);
        l.rate_cut_at = Some(start);
        (l.w, l.readings, l.k) = (20.0, 3, K_MIN);
        l.rate = rate;
        l.measured_from = start;
        l.tat = start + Duration::from_secs(60);
        for at_ms in (ms.start + every_ms..ms.end + every_ms).step_by(every_ms as usize) {
            l.on_success(at(start, at_ms), at(start, at_ms), true, 1);
        }
        let Cut::Rate(_) = l.on_rate_limited(
            at(start, ms.end + 10),
            at(start, ms.end),
            0,
            false,
            at(start, ms.end + 1_000),
        ) else {
            panic!("a cut")
        };
        l
    }

    #[test]
    fn a_first_429_without_a_success_is_unmeasured_and_measures_from_after_the_pause() {
        let t0 = Instant::now();
        let mut l = Sim::new(8, 64, t0);
        let resume = at(t0, 1_100);
        assert_eq!(
            l.on_rate_limited(at(t0, 100), at(t0, 90), 0, false, resume),
            Cut::Unmeasured(resume)
        );
        assert_eq!(l.rate, f64::INFINITY);
        assert_eq!(
            l.measured_from, resume,
            "the pause is not read as a low rate"
        );
        for i in 0..4 {
            l.on_success(at(t0, 1_200 + i * 50), at(t0, 1_200 + i * 50), false, 1);
        }
        let (rate, samples) = l.accepted_rate(at(t0, 1_350));
        assert_eq!(samples, 4, "only what came after the pause");
        assert!((rate - 16.0).abs() < 0.1, "4 over the 0.25 s floor: {rate}");
    }

    #[test]
    fn a_first_429_after_a_single_success_cuts_to_a_floor_and_starts_after_its_retry_after() {
        // A bucket of one: the first request is served, the next, sent as it came back,
        // refused.
        let t0 = Instant::now();
        let mut l = Sim::new(4, 64, t0);
        l.slot(t0);
        l.on_success(at(t0, 60), t0, true, 4);
        let resume = at(t0, 1_000);
        let cut = l.on_rate_limited(at(t0, 70), at(t0, 65), 0, true, resume);
        assert_eq!(cut, Cut::Rate(FIRST_BETA), "one success over a second");
        assert_eq!(
            l.rate_slow_start,
            Some(SLOW_START),
            "a floor to double from"
        );
        assert_eq!(
            l.rate_cut_at,
            Some(resume),
            "the schedule starts after the Retry-After"
        );
        assert_eq!(
            l.book(at(t0, 80), false).0,
            resume,
            "nothing goes before it"
        );
    }

    #[test]
    fn a_first_cut_reads_a_burst_shorter_than_a_second_over_a_second() {
        let t0 = Instant::now();
        let mut l = Sim::new(4, 64, t0);
        // A window of 10 per second, filled in 100 ms by an unpaced client.
        for i in 0..10 {
            l.on_success(at(t0, i * 10), at(t0, i * 10), false, 4);
        }
        let cut = l.on_rate_limited(at(t0, 100), at(t0, 99), 0, false, at(t0, 1_000));
        assert_eq!(cut, Cut::Rate(FIRST_BETA * 10.0));
    }

    #[test]
    fn a_first_cut_after_a_long_unpaced_run_reads_the_callers_demand_and_neither_pauses_nor_doubles()
     {
        let t0 = Instant::now();
        let mut l = Sim::new(4, 64, t0);
        // Unpaced at 18/s under the limit for 60 s, then a burst over it is refused.
        for i in 0..60 * 18 {
            let ms = i * 1_000 / 18;
            l.on_success(at(t0, ms + 20), at(t0, ms), false, 1);
        }
        let cut = l.on_rate_limited(at(t0, 60_010), at(t0, 60_000), 0, false, at(t0, 61_000));
        let Cut::Rate(rate) = cut else {
            panic!("{cut:?}")
        };
        assert!((l.w - 18.0).abs() < 0.5, "reads 18/s: {}", l.w);
        assert!((rate - BETA * l.w).abs() < 1e-9, "{rate}");
        // Paced from the 429 on, not from the end of its `Retry-After`.
        let slot = l.slot(at(t0, 60_010));
        assert!(slot < at(t0, 60_200), "{:?}", slot - at(t0, 60_010));
        // Growing by a quarter a second once the cut's grace is over, not doubling.
        assert_eq!(l.rate_slow_start, Some(SLOW_START_AGAIN));
        for (ms, grown) in [(60_900, rate), (62_010, rate * SLOW_START_AGAIN)] {
            for _ in 0..20 {
                l.on_success(at(t0, ms), at(t0, ms), true, 1);
            }
            l.tat = at(t0, ms + 100);
            l.on_success(at(t0, ms), at(t0, ms), true, 1);
            assert!((l.rate - grown).abs() < 0.01, "at {ms} ms: {}", l.rate);
        }
    }

    #[test]
    fn a_first_cut_within_a_second_of_unpaced_sending_pauses_and_doubles() {
        let t0 = Instant::now();
        let mut l = Sim::new(4, 64, t0);
        // Unpaced at 40/s for half a second, then refused.
        for i in 0..20 {
            l.on_success(at(t0, i * 25 + 20), at(t0, i * 25), false, 1);
        }
        let cut = l.on_rate_limited(at(t0, 510), at(t0, 500), 0, false, at(t0, 1_510));
        let Cut::Rate(rate) = cut else {
            panic!("{cut:?}")
        };
        assert!(
            (rate - FIRST_BETA * 20.0).abs() < 1e-9,
            "20 over a second: {rate}"
        );
        assert_eq!(l.slot(at(t0, 510)), at(t0, 1_510), "from its `Retry-After`");
        assert_eq!(l.rate_slow_start, Some(SLOW_START));
    }

    #[test]
    fn after_the_first_rate_cut_the_rate_doubles_each_second_and_the_next_cut_reads_the_last_second()
     {
        let t0 = Instant::now();
        let mut l = Sim::new(4, 64, t0);
        for i in 0..4 {
            l.on_success(at(t0, i * 10), at(t0, i * 10), false, 1);
        }
        // (No `Retry-After` to wait out: the growth starts at the cut.)
        let cut = l.on_rate_limited(at(t0, 100), at(t0, 99), 0, false, at(t0, 100));
        assert_eq!(cut, Cut::Rate(FIRST_BETA * 4.0), "4 in a second, at least");
        let mut rate_at = |ms: u64| {
            for _ in 0..10 {
                l.successes.push_back(Success {
                    at: at(t0, ms),
                    sent: at(t0, ms),
                    overlap: 1,
                }); // accepted: no ceiling
            }
            l.tat = at(t0, ms + 100); // paced
            l.on_success(at(t0, ms), at(t0, ms), true, 1);
            l.rate
        };
        let (one, three) = (rate_at(1_100), rate_at(3_100));
        assert!((one / (FIRST_BETA * 4.0) - 2.0).abs() < 0.01, "{one}");
        assert!(
            (three - 23.0).abs() < 0.01,
            "×4 would be {}, but never above twice the last second's 11 accepted, plus one: \
             {three}",
            one * 4.0
        );
        // 11 accepted in the last second, 22 since the cut 3.1 s ago: the last second, which
        // held the burst credit the slow start found full.
        let cut = l.on_rate_limited(at(t0, 3_200), at(t0, 3_150), 0, false, at(t0, 4_200));
        let Cut::Rate(r) = cut else { panic!("{cut:?}") };
        assert!((r - FIRST_BETA * 11.0).abs() < 0.01, "{r}");
        assert_eq!(
            l.rate_slow_start,
            Some(SLOW_START_AGAIN),
            "the second cut slows the slow start down"
        );
        // And it grows once the cut's grace is over.
        for (ms, grown) in [(4_100, r), (5_200, r * SLOW_START_AGAIN)] {
            for _ in 0..10 {
                l.on_success(at(t0, ms), at(t0, ms), true, 1);
            }
            l.tat = at(t0, ms + 100);
            l.on_success(at(t0, ms), at(t0, ms), true, 1);
            assert!((l.rate - grown).abs() < 0.01, "at {ms} ms: {}", l.rate);
        }
        l.on_rate_limited(at(t0, 5_300), at(t0, 5_250), 0, false, at(t0, 6_300));
        assert_eq!(l.rate_slow_start, None, "the third ends it");
    }

    #[test]
    fn idle_time_is_not_read_as_a_low_rate() {
        let t0 = Instant::now();
        let mut l = Sim::new(8, 64, t0);
        for i in 0..10 {
            l.slot(at(t0, i * 50));
            l.on_success(at(t0, i * 50 + 20), at(t0, i * 50 + 20), false, 1);
        }
        // Ten idle seconds, then 1.5 s at 40/s until the server says no.
        let start = 10_000;
        for i in 0..60 {
            l.slot(at(t0, start + i * 25));
            l.on_success(
                at(t0, start + i * 25 + 20),
                at(t0, start + i * 25 + 20),
                false,
                1,
            );
        }
        let cut = l.on_rate_limited(at(t0, 11_500), at(t0, 11_490), 0, false, at(t0, 12_500));
        let Cut::Rate(r) = cut else { panic!("{cut:?}") };
        assert!(
            (r - BETA * 40.0).abs() < 1.0,
            "measured over the burst alone: {r}"
        );
    }

    #[test]
    fn a_lull_in_demand_is_not_read_as_a_low_rate_but_a_callers_latency_or_a_stall_is_no_lull() {
        let t0 = Instant::now();
        let send = |l: &mut Sim, ms: u64, latency: u64| {
            l.slot(at(t0, ms));
            l.on_success(at(t0, ms + latency), at(t0, ms), false, 1);
        };
        // The rate a 429 at `ms` cuts to (sent 10 ms before, a second's `Retry-After`).
        let rate_cut = |l: &mut Sim, ms: u64| {
            let cut = l.on_rate_limited(at(t0, ms), at(t0, ms - 10), 0, false, at(t0, ms + 1_000));
            let Cut::Rate(r) = cut else { panic!("{cut:?}") };
            r
        };
        let mut l = Sim::new(8, 64, t0);
        // 3 s at 50/s, a batch's last requests every half second for 1.5 s, then the next
        // batch at 50/s for a second until the server says no.
        (0..150).for_each(|i| send(&mut l, i * 20, 30));
        (1..=3).for_each(|i| send(&mut l, 3_000 + i * 500, 30));
        (0..50).for_each(|i| send(&mut l, 4_500 + i * 20, 30));
        let r = rate_cut(&mut l, 5_500);
        // Read over the last 4 s with the lull in, it would be 32/s.
        assert!((r - BETA * 50.0).abs() < 2.5, "the lull left out: {r}");
        // One caller sending a request as the last one's answer came, 400 ms each: more
        // than a lull's quarter second apart, and that is its rate.
        let mut l = Sim::new(8, 64, t0);
        (0..12).for_each(|i| send(&mut l, i * 400, 390));
        let r = rate_cut(&mut l, 4_800);
        assert!(
            (r - BETA * 2.5).abs() < 0.2,
            "measured over the window: {r}"
        );
        // 3 s at 50/s, then a stall of 0.6 s that held every permit: the request after it
        // waited for one, and what the server accepted is read over the window, stall and
        // all (4 s: 42.5/s), not over the burst credit the stall let refill.
        let mut l = Sim::new(8, 64, t0);
        (0..150).for_each(|i| send(&mut l, i * 20, 30));
        l.book(at(t0, 3_600), true);
        l.on_success(at(t0, 3_630), at(t0, 3_600), true, 1);
        (1..50).for_each(|i| send(&mut l, 3_600 + i * 20, 30));
        let r = rate_cut(&mut l, 4_600);
        assert!(
            (r - BETA * 42.5).abs() < 1.5,
            "measured over the window: {r}"
        );
    }

    #[test]
    fn the_cap_doubles_after_a_second_of_sending_not_of_idling() {
        let t0 = Instant::now();
        let mut l = Sim::new(4, 64, t0);
        // Built five seconds before its first request: the first success finds the four
        // permits in use and callers waiting, and requests take 60 ms: the cap doubles
        // after a quarter of a second of sending (two latencies are less).
        let send = |l: &mut Sim, ms: u64| l.slot(at(t0, ms));
        let success = |l: &mut Sim, ms: u64| {
            let now = at(t0, ms);
            let level = l.concurrency;
            l.on_success(now, now - Duration::from_millis(60), true, level)
        };
        send(&mut l, 5_000);
        assert_eq!(
            success(&mut l, 5_060),
            None,
            "not a quarter second of sending yet"
        );
        send(&mut l, 5_100);
        assert_eq!(
            success(&mut l, 5_260),
            Some(8),
            "a quarter second after the first send"
        );
        // Idle for ten seconds: the cap's slow start counts from the next send again.
        send(&mut l, 16_000);
        assert_eq!(
            success(&mut l, 16_060),
            None,
            "idle time is not growth time"
        );
        send(&mut l, 16_100);
        assert_eq!(success(&mut l, 16_260), Some(16));
        // Built 600 ms before its first request: shorter than an idle gap, still not sending.
        let mut l = Sim::new(4, 64, t0);
        send(&mut l, 600);
        assert_eq!(success(&mut l, 700), None, "a tenth of a second of sending");
        assert_eq!(success(&mut l, 860), Some(8));
    }

    #[test]
    fn the_cap_grows_no_further_than_its_ceiling() {
        let t0 = Instant::now();
        let mut l = Sim::new(8, 12, t0);
        let mut sizes = Vec::new();
        for s in 1..6 {
            let now = at(t0, s * 1_100);
            if let Some(size) = l.on_success(now, now, true, l.concurrency) {
                sizes.push(size);
            }
        }
        assert_eq!(sizes, [12], "doubled to the ceiling, then held");
    }

    /// `refused` requests sent together 10 ms before `t` come back with 429s at `t`, one by
    /// one, while `served` others sent with them succeed 50 ms later. Returns the last cut.
    fn moment(l: &mut Sim, t: Instant, refused: usize, served: usize, saturated: bool) -> Cut {
        let sent = t - Duration::from_millis(10);
        let resume = t + Duration::from_secs(1);
        let mut cut = Cut::None;
        let mut note = |c: Cut| {
            if c != Cut::None {
                cut = c;
            }
        };
        for i in 0..refused {
            note(l.on_finish(sent, t, false));
            note(l.on_rate_limited(t, sent, served + refused - 1 - i, saturated, resume));
        }
        let back = t + Duration::from_millis(50);
        for i in 0..served {
            l.on_success(back, sent, true, served - i);
            note(l.on_finish(sent, back, true));
        }
        cut
    }

    #[test]
    fn a_429_is_judged_once_the_requests_in_flight_with_it_have_finished() {
        let t0 = Instant::now();
        let mut l = Sim::new(8, 64, t0);
        let t = at(t0, 100);
        assert_eq!(l.on_rate_limited(t, t0, 2, true, at(t0, 1_100)), Cut::None);
        assert_eq!(l.pending.len(), 1);
        // Sent after it: not one of those it waits for.
        l.on_finish(at(t0, 150), at(t0, 160), true);
        assert_eq!(l.pending[0].outstanding, 2);
        l.on_finish(t0, at(t0, 170), true);
        l.on_finish(t0, at(t0, 180), false);
        assert!(l.pending.is_empty());
        assert_eq!(
            (l.refusals.len(), l.refusals[0].served),
            (1, 1),
            "one of the two was served"
        );
        // One that waits for a stalled request is judged after SETTLE all the same.
        l.on_rate_limited(at(t0, 300), t0, 1, true, at(t0, 1_300));
        assert_eq!(l.pending.len(), 1);
        l.on_finish(at(t0, 2_400), at(t0, 2_450), true);
        assert!(l.pending.is_empty());
    }

    #[test]
    fn a_429_waits_for_a_stalled_request_three_mean_latencies_not_the_whole_settle() {
        let t0 = Instant::now();
        let mut l = Sim::new(8, 64, t0);
        // Successes that took 80 ms each: a 429 waits 240 ms at most for the others.
        for i in 1..=10 {
            let back = at(t0, 100 + i * 20);
            l.on_success(back, back - Duration::from_millis(80), true, 1);
        }
        let t = at(t0, 400);
        assert_eq!(l.on_rate_limited(t, t, 1, true, at(t0, 1_400)), Cut::None);
        l.on_finish(at(t0, 500), at(t0, 600), true);
        assert_eq!(l.pending.len(), 1, "within three mean latencies it waits");
        l.on_finish(at(t0, 600), at(t0, 660), true);
        assert!(
            l.pending.is_empty(),
            "judged 260 ms after it came back, the request in flight with it still out"
        );
        assert_eq!(l.refusals.len(), 1);
    }

    #[test]
    fn a_storm_of_429s_is_remembered_within_bounds() {
        let t0 = Instant::now();
        let mut l = Sim::new(8, 64, t0);
        // A thousand 429s within a second, each with a stalled request in flight.
        for i in 0..1_000 {
            l.on_rate_limited(at(t0, i), at(t0, i), 1, true, at(t0, 1_000 + i));
        }
        assert!(l.pending.len() <= MAX_REMEMBERED, "{}", l.pending.len());
        assert!(l.refusals.len() <= MAX_REMEMBERED, "{}", l.refusals.len());
    }

    #[test]
    fn a_cap_is_429s_at_the_top_at_two_moments_and_the_cap_is_what_was_served() {
        let t0 = Instant::now();
        let mut l = Sim::new(8, 64, t0);
        // Eight at once against a cap of 4: four 429s while four are served.
        let t1 = at(t0, 1_000);
        assert_eq!(moment(&mut l, t1, 4, 4, true), Cut::None, "one moment");
        // A second later, the four that waited come back to a full server again.
        let t2 = at(t0, 2_000);
        assert_eq!(moment(&mut l, t2, 4, 4, true), Cut::Concurrency(4));
        assert_eq!(
            moment(&mut l, at(t0, 3_000), 1, 4, true),
            Cut::None,
            "never raised"
        );
        assert_eq!(
            (l.rate, l.rate_cuts),
            (f64::INFINITY, 0),
            "the rate is left alone"
        );
    }

    #[test]
    fn a_cap_whose_429s_are_read_after_some_of_those_served_with_them_is_still_a_cap() {
        let t0 = Instant::now();
        let mut l = Sim::new(8, 64, t0);
        // Eight at once against a cap of 4, twice, a second apart; a busy client reads the
        // four 429s after two of the four served with them are back.
        for t in [at(t0, 1_000), at(t0, 2_000)] {
            let sent = t - Duration::from_millis(10);
            let resume = t + Duration::from_secs(1);
            for i in 0..2 {
                l.on_success(at(t, 40), sent, true, 4 - i);
                assert_eq!(l.on_finish(sent, at(t, 40), true), Cut::None);
            }
            let mut cuts = Vec::new();
            for i in 0..4 {
                cuts.push(l.on_finish(sent, at(t, 45), false));
                cuts.push(l.on_rate_limited(at(t, 45), sent, 5 - i, true, resume));
            }
            for i in 0..2 {
                l.on_success(at(t, 50), sent, true, 2 - i);
                cuts.push(l.on_finish(sent, at(t, 50), true));
            }
            cuts.retain(|c| *c != Cut::None);
            if t == at(t0, 1_000) {
                assert_eq!(cuts, [], "one moment");
            } else {
                assert_eq!(cuts, [Cut::Concurrency(4)]);
            }
        }
        assert_eq!((l.rate, l.rate_cuts), (f64::INFINITY, 0), "no rate limit");
    }

    #[test]
    fn a_token_bucket_burst_refuses_at_the_top_once_and_lower_after_so_it_is_no_cap() {
        let t0 = Instant::now();
        let mut l = Sim::new(8, 64, t0);
        // Rounds of eight at once against a bucket of 2 every 1.2 s: two served, six refused
        // at the top; then the two that were served send again into an empty bucket.
        for round in 0..5u64 {
            let t = at(t0, 1_000 + round * 1_200);
            moment(&mut l, t, 6, 2, true);
            moment(&mut l, at(t, 100), 2, 0, true);
        }
        assert_eq!((l.concurrency, l.concurrency_cuts), (8, 0));
        assert!(l.rate_cuts >= 1, "{l:?}");
    }

    #[test]
    fn a_paced_class_refused_at_a_level_its_pacing_does_not_ask_for_cuts_its_rate() {
        let t0 = Instant::now();
        let mut l = Sim::new(8, 64, t0);
        l.seed(20.0, t0); // paced at 19/s, as after a cut
        // 60 ms a request at 19/s: about one in flight, two at times, every one served.
        for i in 0..40u64 {
            let sent = at(t0, 1_000 + i * 50);
            let back = sent + Duration::from_millis(60);
            l.on_success(back, sent, false, 2);
            l.on_finish(sent, back, true);
        }
        // Refused while another was served, at moments apart: at the most the server was
        // seen serving, but a level of two is chance at this pace, not a cap.
        let cut = moment(&mut l, at(t0, 3_100), 1, 1, true);
        assert!(matches!(cut, Cut::Rate(r) if r < 19.0), "{cut:?}");
        for i in 0..6u64 {
            moment(&mut l, at(t0, 4_200 + i * 400), 1, 1, true);
        }
        assert_eq!((l.concurrency, l.concurrency_cuts), (8, 0), "{l:?}");
    }

    #[test]
    fn a_paced_class_refused_where_its_pacing_asks_for_more_than_a_cap_cuts_the_cap() {
        let t0 = Instant::now();
        let mut l = Sim::new(8, 64, t0);
        l.seed(50.0, t0); // paced at 47.5/s: 80 ms a request asks for nearly four at once
        // The cap keeps it to two in flight at most.
        for i in 0..40u64 {
            let sent = at(t0, 1_000 + i * 45);
            let back = sent + Duration::from_millis(80);
            l.on_success(back, sent, false, 2);
            l.on_finish(sent, back, true);
        }
        // A cap of two: refused whenever two are served, at two moments.
        assert_eq!(moment(&mut l, at(t0, 3_100), 2, 2, true), Cut::None);
        assert_eq!(
            moment(&mut l, at(t0, 3_600), 2, 2, true),
            Cut::Concurrency(2)
        );
        assert_eq!(l.rate_cuts, 0, "{l:?}");
    }

    #[test]
    fn a_send_after_a_late_one_catches_up_until_the_429s_show_a_bucket_of_one() {
        let t0 = Instant::now();
        let mut l = Sim::new(4, 64, t0);
        // Paced at 10/s, under a limit of 12/s found by a cut 2 s ago.
        l.rate = 10.0;
        l.w = 12.0;
        l.rate_cut_at = Some(t0);
        let t = at(t0, 2_000);
        let (first, second) = (l.slot(t), l.slot(t));
        assert_eq!(second - first, Duration::from_millis(100));
        // The first one's timer fired 30 ms late; the second wakes on time and catches up.
        assert_eq!(l.send_at(at(t0, 2_030)), Ok(false));
        assert_eq!(l.send_at(second), Ok(true));
        // Catching up keeps the schedule's rate: the next one is due a slot after the
        // first one's due time, and goes no sooner than a slot before that.
        assert_eq!(l.send_at(at(t0, 2_125)), Err(at(t0, 2_130)));
        // Sends that caught up are refused, and no other: a bucket of one (each 429 a
        // grace apart from the last one's cut).
        for i in 0..CAUGHT_UP_REFUSED {
            assert!(l.catches_up);
            let ms = 2_160 + 1_200 * u64::from(i);
            let _ = l.learner.on_rate_limited(
                at(t0, ms),
                at(t0, ms - 20),
                true,
                0,
                false,
                at(t0, ms + 1_000),
                l.concurrency,
            );
        }
        assert!(!l.catches_up);
        // From then on a send goes a slot after the last one at the earliest.
        let rate = l.rate;
        let late = at(t0, 4_000);
        assert_eq!(l.send_at(late), Ok(false));
        let spaced = late + Duration::from_secs_f64(1.0 / rate);
        assert_eq!(l.send_at(at(t0, 4_050)), Err(spaced));
        assert_eq!(l.send_at(spaced), Ok(false));
    }

    /// An unpaced burst of `sent` requests a millisecond apart: the first `served` of them
    /// succeed 100 ms later, the rest are refused as they come back (each with those still
    /// out in flight), and then finish.
    fn unpaced_burst(sent: u64, served: u64) -> Sim {
        let t0 = Instant::now();
        let mut l = Sim::new(16, 64, t0);
        for i in 0..served {
            l.on_success(at(t0, 100 + i), at(t0, i), true, (sent - i) as usize);
            l.on_finish(at(t0, i), at(t0, 100 + i), true);
        }
        let resume = at(t0, 1_100);
        for i in served..sent {
            l.on_rate_limited(
                at(t0, 100 + i),
                at(t0, i),
                (sent - 1 - i) as usize,
                true,
                resume,
            );
        }
        for i in served..sent {
            l.on_finish(at(t0, i), at(t0, 200), false);
        }
        l
    }

    #[test]
    fn an_unpaced_burst_served_one_at_a_time_spaces_sends_from_the_first_cut() {
        // A bucket of one serves one of six sent together: no burst to catch up with.
        let one = unpaced_burst(6, 1);
        assert!(!one.catches_up, "{one:?}");
        // A bucket with a burst of three serves three of them; a caller with two workers
        // (one served, one refused) shows nothing either way.
        let three = unpaced_burst(6, 3);
        assert!(three.catches_up, "{three:?}");
        assert!(unpaced_burst(2, 1).catches_up);
    }

    #[test]
    fn a_probe_refused_by_a_bucket_of_one_reads_toward_the_rate_it_was_refused_at() {
        // On a plateau under a limit read at 18/s, probing from 4 s after the cut.
        let t0 = Instant::now();
        let mut l = Sim::new(8, 64, t0);
        l.w = 18.0;
        l.rate = (1.0 - l.margin) * l.w;
        l.back = 0.5;
        l.k = 4.0;
        l.readings = 2;
        l.rate_cut_at = Some(t0);
        l.cut_to = l.rate;
        l.epoch += 1;
        let mut ms = 1_000u64;
        while ms < 6_600 {
            l.on_success(at(t0, ms + 100), at(t0, ms), true, 2);
            ms += (1_000.0 / l.rate) as u64;
        }
        let (now, sent) = (at(t0, 6_700), at(t0, 6_600));
        let refused_at = l.grown(6.6);
        assert!(
            refused_at > 19.0,
            "the probe went past the plateau: {refused_at}"
        );
        let judge = |mut learner: Learner, catches_up: bool| {
            learner.catches_up = catches_up;
            let cut = learner.on_rate_limited(now, sent, false, 0, false, at(t0, 7_700), 8);
            assert!(matches!(cut, Cut::Rate(_)), "{cut:?}");
            learner.w
        };
        let averaged = judge(l.learner.clone(), true);
        let spaced = judge(l.learner.clone(), false);
        // What was accepted averages the climb from the plateau: a bucket with a burst reads
        // it so (its credit, drained by the probe, would read high at the refused rate),
        // and a bucket of one reads halfway to the rate its refused send went at.
        assert!(averaged < refused_at - 0.5, "{averaged} vs {refused_at}");
        assert!(spaced > averaged + 0.2, "{spaced} vs {averaged}");
        assert!(spaced <= refused_at, "{spaced} vs {refused_at}");
    }

    #[test]
    fn sends_refused_whether_they_caught_up_or_not_keep_catching_up() {
        let t0 = Instant::now();
        let refuse = |l: &mut Learner, ms: u64, caught_up: bool| {
            let _ = l.on_rate_limited(
                at(t0, ms),
                at(t0, ms - 20),
                caught_up,
                0,
                false,
                at(t0, ms + 1_000),
                4,
            );
        };
        // Over a limit with a burst: half the refused sends caught up (each 429 a grace
        // apart from the last one's cut).
        let mut l = Learner::new(64, t0);
        l.rate = 10.0;
        l.w = 12.0;
        l.rate_cut_at = Some(t0);
        for i in 0..4 * CAUGHT_UP_REFUSED {
            refuse(&mut l, 2_000 + 1_200 * u64::from(i), i % 2 == 0);
        }
        assert!(l.catches_up);
        assert_eq!(l.refused_caught_up, 2 * CAUGHT_UP_REFUSED);
        // In the grace of a cut (drained buckets), refusals do not count.
        let mut l = Learner::new(64, t0);
        l.rate = 10.0;
        l.w = 12.0;
        l.rate_cut_at = Some(t0);
        for i in 0..2 * CAUGHT_UP_REFUSED {
            refuse(&mut l, 100 + 50 * u64::from(i), true);
        }
        assert!(l.catches_up);
        // In static mode the same rule holds.
        let mut fixed = Learner::fixed(10.0, t0);
        for i in 0..CAUGHT_UP_REFUSED {
            refuse(&mut fixed, 100 + 50 * u64::from(i), true);
        }
        assert!(!fixed.catches_up);
    }

    #[test]
    fn a_429_with_permits_to_spare_is_no_sign_of_a_cap() {
        let t0 = Instant::now();
        let mut l = Sim::new(8, 64, t0);
        // Two callers: each request overlaps the other caller's.
        for i in 2..=9 {
            let now = at(t0, i * 100);
            l.on_success(now, at(t0, i * 100 - 150), true, 2);
        }
        // Eight permits: refused while the other caller was served, twice, a second apart.
        assert!(matches!(
            moment(&mut l, at(t0, 1_000), 1, 1, false),
            Cut::Rate(_)
        ));
        moment(&mut l, at(t0, 2_500), 1, 1, false);
        assert_eq!(l.concurrency_cuts, 0);
    }

    #[test]
    fn a_cap_met_with_permits_to_spare_is_a_cap_when_the_server_served_its_most() {
        let t0 = Instant::now();
        // Sixteen permits, a caller whose level peaks at nine against a cap of eight: the
        // ninth is refused while eight are served, as many as ever at once.
        let mut l = Sim::new(16, 64, t0);
        assert_eq!(moment(&mut l, at(t0, 1_000), 1, 8, false), Cut::None);
        assert_eq!(
            moment(&mut l, at(t0, 2_000), 1, 8, false),
            Cut::Concurrency(8)
        );
        assert_eq!(l.rate_cuts, 0);
    }

    #[test]
    fn a_cut_that_was_not_deep_enough_is_cut_again_within_its_grace() {
        let t0 = Instant::now();
        let mut l = Sim::new(8, 64, t0);
        for i in 0..20 {
            l.on_success(at(t0, i * 50), at(t0, i * 50), true, 1);
        }
        let resume = at(t0, 2_000);
        // (The first cut's `Retry-After` already over: the new schedule starts at once.)
        let Cut::Rate(r) = l.on_rate_limited(at(t0, 1_000), at(t0, 990), 0, false, at(t0, 1_000))
        else {
            panic!("a first cut")
        };
        // The limit halved: requests are booked at the new rate, and the server accepts
        // 8/s of them while refusing the rest.
        for _ in 0..20 {
            l.slot(at(t0, 1_000));
        }
        let mut cuts = Vec::new();
        for i in 1..=6u64 {
            let back = at(t0, 1_000 + i * 125);
            l.on_success(back, at(t0, 1_000 + i * 125 - 60), true, 1);
            let cut =
                l.on_rate_limited(at(back, 5), at(t0, 1_000 + i * 125 - 60), 0, false, resume);
            cuts.push(cut);
        }
        let again: Vec<f64> = cuts
            .iter()
            .filter_map(|c| if let Cut::Rate(r) = c { Some(*r) } else { None })
            .collect();
        assert_eq!(again.len(), 1, "one cut again, not one per 429: {cuts:?}");
        assert!(
            again[0] < 10.0 && again[0] < r,
            "to what is accepted: {again:?}"
        );
    }

    /// A learner on the cubic of a cut at `t0` that found a limit of `w`, now at `rate`.
    fn cubic(t0: Instant, w: f64, rate: f64) -> Sim {
        let mut l = Sim::new(8, 64, t0);
        l.rate_cut_at = Some(t0);
        l.w = w;
        l.cut_to = BETA * w;
        l.rate = rate;
        l.w_settled = true;
        l
    }

    /// A cubic at a limit of 20/s, probing past it while the server accepted 20/s, cut at
    /// 4 s, with the class's permits booked on the new schedule: the learner, the cut's
    /// instant and its rate.
    fn cut_while_probing_a_20_per_second_limit() -> (Sim, Instant, f64) {
        cut_while_probing_a_20_per_second_limit_at_margin(MARGIN)
    }

    /// The same, with the plateau's margin at `margin` before the probe.
    fn cut_while_probing_a_20_per_second_limit_at_margin(margin: f64) -> (Sim, Instant, f64) {
        let t0 = Instant::now();
        // A cubic at a limit of 20/s, probing past it, and the server accepting 20/s.
        let mut l = cubic(t0, 20.0, 20.5);
        l.margin = margin;
        for i in 0..80u64 {
            l.on_success(at(t0, i * 50), at(t0, i * 50), true, 1);
        }
        let cut_at = at(t0, 4_000);
        let cut = l.on_rate_limited(cut_at, at(t0, 3_990), 0, false, at(cut_at, 1_000));
        let Cut::Rate(r) = cut else { panic!("{cut:?}") };
        for _ in 0..20 {
            l.slot(cut_at);
        }
        (l, cut_at, r)
    }

    #[test]
    fn a_probe_cut_narrows_a_widened_margin_but_never_below_margin() {
        // A cubic at a limit of 20/s, probing past it once the wait was over, with the
        // margin that plateau refusals had widened (or not): the probe's cut says the
        // plateau held, so the margin narrows by a fifth of MARGIN, down to MARGIN (below
        // it, the burst credit a reading holds put the plateau over a 20/s bucket of 5).
        let margin_after_a_probe_cut = |margin: f64| {
            cut_while_probing_a_20_per_second_limit_at_margin(margin)
                .0
                .margin
        };
        let narrowed = margin_after_a_probe_cut(2.0 * MARGIN);
        assert!((narrowed - 1.8 * MARGIN).abs() < 1e-9, "{narrowed}");
        assert_eq!(margin_after_a_probe_cut(1.1 * MARGIN), MARGIN);
        assert_eq!(margin_after_a_probe_cut(MARGIN), MARGIN);
    }

    /// After a probe's cut, a refusal back on the plateau past the cut's grace, with the
    /// server accepting `accepted` of every `of` sends at the rate the cut set (`caught_up`:
    /// the refused one caught up on a late one): the learner, the cut, and the rate refused.
    fn refused_on_the_plateau_after(
        mut l: Sim,
        cut_at: Instant,
        r: f64,
        (accepted, of): (u64, u64),
        caught_up: bool,
    ) -> (Sim, Cut, f64) {
        let spacing = (1_000.0 / r) as u64;
        for i in 1..=24u64 {
            if i % of < accepted {
                let back = at(cut_at, i * spacing);
                l.on_success(back, back, true, 1);
            }
        }
        let back = at(cut_at, 25 * spacing);
        let rate = l.rate;
        let cut = if caught_up {
            l.on_caught_up_rate_limited(at(back, 5), back, at(back, 1_000))
        } else {
            l.on_rate_limited(at(back, 5), back, 0, false, at(back, 1_000))
        };
        (l, cut, rate)
    }

    #[test]
    fn a_refusal_after_a_probe_met_the_limit_reads_it_no_lower_than_the_rate_refused() {
        let (l, cut_at, r) = cut_while_probing_a_20_per_second_limit();
        assert_eq!(l.probed, Some(20.0));
        let (w, k, readings) = (l.w, l.k, l.readings);
        // A bucket of one refuses a send that caught up, having wasted the slots of others:
        // the server accepts about nine in ten sends (17.3/s of 19/s, measured).
        let (l, cut, rate) = refused_on_the_plateau_after(l, cut_at, r, (10, 11), true);
        assert!(matches!(cut, Cut::Rate(to) if to < rate), "{cut:?}");
        // The same limit: its readings averaged, no lower than the rate refused, and the
        // next probe no sooner than it was due.
        assert!(
            l.w >= w - (w - rate) / f64::from(l.readings),
            "{} from {w}",
            l.w
        );
        assert_eq!(l.readings, (readings + 1).min(READINGS));
        assert!(l.k >= k, "{} < {k}", l.k);
        assert_eq!(l.probed, None);
        // Without a probe before it, the refusal reads the limit as it is.
        let (mut l, cut_at, r) = cut_while_probing_a_20_per_second_limit();
        l.probed = None;
        let (l, _, _) = refused_on_the_plateau_after(l, cut_at, r, (10, 11), true);
        assert!(l.w < 0.9 * w, "{}", l.w);
    }

    #[test]
    fn a_limit_that_falls_as_a_probe_meets_it_is_read_as_it_falls() {
        let (mut l, cut_at, r) = cut_while_probing_a_20_per_second_limit();
        assert_eq!(l.probed, Some(20.0));
        let w = l.w;
        // The limit halves as the probe is cut: of the requests sent on pace since, the
        // server accepts one in two and refuses the others, the first ones within the
        // cut's grace.
        let spacing = (1_000.0 / r) as u64;
        let mut cut = Cut::None;
        for i in 1..=40u64 {
            let sent = at(cut_at, i * spacing);
            if i % 2 == 0 {
                l.on_success(at(sent, 5), sent, true, 1);
            } else {
                cut = l.on_rate_limited(at(sent, 5), sent, 0, false, at(sent, 1_000));
                if cut != Cut::None {
                    break;
                }
            }
        }
        assert!(matches!(cut, Cut::Rate(_)), "{cut:?}");
        // A fall, not a probe's burst credit: the cut reads the halved limit.
        assert!(l.w < 0.7 * w, "{} from {w}", l.w);
        assert!(l.rate < 0.7 * w, "{}", l.rate);
    }

    /// A plateau under a limit of 20/s read twice, then a probe refused 5 s after the cut
    /// while the server accepted 21/s over the probe's second (sends spaced or not, as
    /// `catches_up` says): the learner, the probe's cut and its rate.
    fn a_probe_reads_21_per_second_of_a_20_per_second_limit(
        catches_up: bool,
    ) -> (Sim, Instant, f64) {
        let t0 = Instant::now();
        let mut l = cubic(t0, 20.0, 23.0);
        l.readings = 2;
        l.catches_up = catches_up;
        for i in 0..80u64 {
            l.on_success(at(t0, i * 50), at(t0, i * 50), true, 1);
        }
        for i in 0..21u64 {
            l.on_success(at(t0, 4_000 + i * 47), at(t0, 4_000 + i * 47), true, 1);
        }
        let cut_at = at(t0, 5_000);
        let cut = l.on_rate_limited(cut_at, at(t0, 4_990), 0, false, at(cut_at, 1_000));
        let Cut::Rate(r) = cut else { panic!("{cut:?}") };
        (l, cut_at, r)
    }

    #[test]
    fn a_probe_that_drained_burst_credit_moves_w_by_its_share_of_the_readings() {
        // A token bucket with a burst: the 21/s the probe read held the credit the plateau
        // refilled under the limit.
        let (l, _, _) = a_probe_reads_21_per_second_of_a_20_per_second_limit(true);
        assert_eq!(l.readings, 3);
        assert!(l.w > 20.0, "a reading above W raises it: {}", l.w);
        assert!(l.w < 20.0 + 1.5 / 3.0, "averaged with two others: {}", l.w);
        // The plateau built on it stays under the limit the plateau held on.
        assert!(
            (1.0 - l.margin) * l.w < 20.0,
            "{} x {}",
            1.0 - l.margin,
            l.w
        );
        // Sends spaced (a bucket of one, whose climb reads low), the reading is W.
        let (spaced, _, _) = a_probe_reads_21_per_second_of_a_20_per_second_limit(false);
        assert!(spaced.w > 20.5, "{}", spaced.w);
    }

    #[test]
    fn a_refusal_after_a_probe_read_the_limit_high_takes_it_back_to_where_it_held() {
        // Sends spaced: a probe refused above W sets it to what it read, here high.
        let (l, cut_at, r) = a_probe_reads_21_per_second_of_a_20_per_second_limit(false);
        assert!(l.w > 20.5, "the probe reads {}", l.w);
        assert_eq!(l.probed, Some(20.0));
        let (margin, readings) = (l.margin, l.readings);
        // The plateau built on it is refused on pace, the server accepting 19.5/s of it.
        let (l, cut, rate) = refused_on_the_plateau_after(l, cut_at, r, (3, 3), false);
        assert!(matches!(cut, Cut::Rate(_)), "{cut:?}");
        assert!(rate > 20.0, "{rate}");
        // Back to the limit the plateau held on, the margin and the readings as they were.
        assert!((l.w - 20.0).abs() < 1e-9, "{}", l.w);
        assert_eq!((l.margin, l.readings), (margin, readings));
        assert!(l.k > K_MIN, "{}", l.k);
    }

    #[test]
    fn the_aftermath_of_a_cut_that_was_deep_enough_cuts_nothing() {
        let (mut l, cut_at, r) = cut_while_probing_a_20_per_second_limit();
        // The drained bucket refuses a few sent after the cut, while accepting the new rate.
        let spacing = (1_000.0 / r) as u64;
        for i in 1..=15u64 {
            let back = at(cut_at, i * spacing);
            l.on_success(back, at(back, 0), true, 1);
            if i % 3 == 0 {
                let cut = l.on_rate_limited(at(back, 5), back, 0, false, at(back, 1_000));
                assert_eq!(cut, Cut::None, "at {i}");
            }
        }
    }

    #[test]
    fn refused_sends_that_caught_up_do_not_read_as_a_limit_that_halved() {
        let (mut l, cut_at, r) = cut_while_probing_a_20_per_second_limit();
        // A bucket of one refuses every third send, one that caught up on a late one: its
        // slot is wasted, and the server accepts two thirds of the new rate.
        let spacing = (1_000.0 / r) as u64;
        for i in 1..=18u64 {
            let back = at(cut_at, i * spacing);
            if i % 3 == 0 {
                let cut = l.on_caught_up_rate_limited(at(back, 5), back, at(back, 1_000));
                assert_eq!(cut, Cut::None, "at {i}");
            } else {
                l.on_success(back, at(back, 0), true, 1);
            }
        }
        assert_eq!(l.rate_cuts, 1, "{l:?}");
    }

    #[test]
    fn a_plateau_refusal_of_a_send_that_caught_up_leaves_the_margin_as_it_was() {
        // W = 20, the wait before the probes at 10 s; the class ran at 19.5/s for 4 s,
        // and one send was refused on the plateau: on pace, or catching up on a late one.
        let plateau = |t0: Instant| {
            let mut l = Sim::new(8, 64, t0);
            l.seed(20.0, t0);
            l.k = 10.0;
            for i in 0..78u64 {
                let back = at(t0, 10 + i * 51);
                l.on_success(back, back, true, 1);
            }
            l
        };
        let t0 = Instant::now();
        let (now, sent) = (at(t0, 4_000), at(t0, 3_990));
        // On pace, the plateau itself was over the limit: its margin widens.
        let mut on_pace = plateau(t0);
        let cut = on_pace.on_rate_limited(now, sent, 0, false, at(now, 1_000));
        assert!(matches!(cut, Cut::Rate(_)), "{cut:?}");
        assert!((on_pace.margin - 2.0 * MARGIN).abs() < 1e-9, "{on_pace:?}");
        // Caught up, while sends may: a bucket of one refuses such a send below its rate.
        // The 429 still cuts the rate, and the margin stays.
        let mut caught_up = plateau(t0);
        let cut = caught_up.on_caught_up_rate_limited(now, sent, at(now, 1_000));
        assert!(matches!(cut, Cut::Rate(_)), "{cut:?}");
        assert!(caught_up.catches_up, "one such refusal spaces no sends yet");
        assert_eq!(caught_up.margin, MARGIN, "{caught_up:?}");
        assert_eq!(
            caught_up.readings, 2,
            "a reading of the same limit all the same"
        );
    }

    #[test]
    fn a_probe_refused_while_little_is_accepted_finds_the_limit_no_lower_than_its_plateau_held() {
        let t0 = Instant::now();
        let mut l = Sim::new(8, 64, t0);
        l.seed(20.0, t0); // W = 20: the plateau held at 19.5/s, then the probe began at 4 s
        // A bucket of one refuses the probe's sends and wastes their slots: 13/s accepted.
        for i in 0..58u64 {
            let sent = at(t0, 1_000 + i * 77);
            l.on_success(sent + Duration::from_millis(60), sent, true, 1);
        }
        let t = at(t0, 5_600);
        let cut = l.on_rate_limited(t, at(t0, 5_540), 0, false, at(t0, 6_600));
        assert_eq!(cut, Cut::Rate(BETA * 20.0), "{l:?}");
        assert_eq!(l.w, 20.0);
    }

    #[test]
    fn a_probe_refused_below_the_w_its_plateau_was_built_on_still_cuts_the_rate() {
        let t0 = Instant::now();
        let mut l = Sim::new(8, 64, t0);
        l.seed(20.0, t0);
        l.margin = MARGIN_MAX; // a plateau of 18/s under W = 20
        for i in 0..64u64 {
            let sent = at(t0, 1_000 + i * 55);
            l.on_success(sent + Duration::from_millis(60), sent, true, 1);
        }
        // Half a second into the probe, still under W: refused.
        let before = l.rate;
        assert!(before < 20.0, "{l:?}");
        let t = at(t0, 4_600);
        let cut = l.on_rate_limited(t, at(t0, 4_540), 0, false, at(t0, 5_600));
        assert!(
            matches!(cut, Cut::Rate(r) if r < before),
            "{cut:?} from {before}"
        );
    }

    #[test]
    fn a_probe_that_finds_a_raised_limit_grows_again_as_in_slow_start() {
        let t0 = Instant::now();
        // Well into the probe, the rate passed 20/s, and the server accepted 18/s.
        let mut l = cubic(t0, 10.0, 24.0);
        for i in 0..72u64 {
            let back = at(t0, 6_000 + i * 55);
            l.on_success(back, back, true, 1);
        }
        let now = at(t0, 10_000);
        let Cut::Rate(r) = l.on_rate_limited(now, at(now, 0), 0, false, at(now, 1_000)) else {
            panic!("a cut")
        };
        assert!(r > 15.0, "read over the window: {r}");
        assert_eq!(l.rate_slow_start, Some(SLOW_START_AGAIN));
        assert_eq!(l.k, K_MIN);
        // A cut at the same limit afterwards goes back to the cubic.
        let later = at(now, 2_000);
        for i in 0..18u64 {
            let back = at(now, 1_000 + i * 55);
            l.on_success(back, back, true, 1);
        }
        l.on_rate_limited(later, at(later, 0), 0, false, at(later, 1_000));
        assert_eq!(l.rate_slow_start, None);
    }

    #[test]
    fn a_probe_that_reads_a_limit_a_little_higher_found_burst_credit_not_a_raise() {
        let t0 = Instant::now();
        // Probing past a plateau under 20/s, the server accepted 23/s: the credit the
        // plateau let the bucket refill, drained.
        let mut l = cubic(t0, 20.0, 24.0);
        for i in 0..92u64 {
            let back = at(t0, 6_000 + i * 1_000 / 23);
            l.on_success(back, back, true, 1);
        }
        let now = at(t0, 10_000);
        let Cut::Rate(r) = l.on_rate_limited(now, at(now, 0), 0, false, at(now, 1_000)) else {
            panic!("a cut")
        };
        assert!((l.w - 23.0).abs() < 0.5, "a new limit: {}", l.w);
        assert_eq!(l.rate_slow_start, None, "no slow start again");
        assert!((r - BETA * l.w).abs() < 1e-9, "{r}");
        assert_eq!(l.k, K_MIN, "probed soon again");
    }

    #[test]
    fn a_cap_is_never_cut_below_what_the_server_served_at_once() {
        let t0 = Instant::now();
        let mut l = Sim::new(6, 64, t0);
        // Six served at once a moment ago (too soon for the cap to double).
        let t = at(t0, 200);
        for i in 0..6 {
            l.on_success(t, at(t0, 100), true, 6 - i);
        }
        // Then 429s at the top with five served: a rate limit met at full concurrency.
        moment(&mut l, at(t0, 900), 1, 5, true);
        assert_eq!(moment(&mut l, at(t0, 1_300), 1, 5, true), Cut::None);
        assert_eq!(l.concurrency, 6);
    }

    #[test]
    fn after_a_cut_the_rate_returns_to_its_plateau_along_a_cubic_then_probes_in_doubling_steps() {
        let steps = returns_then_probes(false);
        assert!(
            (steps[0] - PROBE * (1.0 - MARGIN) * 10.0).abs() < 0.01,
            "steps beyond W of PROBE × W: {steps:?}"
        );
    }

    #[test]
    fn once_the_limit_has_moved_probes_climb_more_steeply() {
        let (steady, moved) = (returns_then_probes(false), returns_then_probes(true));
        assert!(
            (moved[0] - MOVED_PROBE * (1.0 - MARGIN) * 10.0).abs() < 0.01,
            "steps beyond W of MOVED_PROBE × W: {moved:?}"
        );
        assert!(
            moved.iter().zip(&steady).all(|(m, s)| m > s),
            "{moved:?} against {steady:?}"
        );
    }

    /// A learner cut at a `W` of 10/s with `k` at [`K_MIN`] (`moved`: its limit has moved),
    /// growing while paced and accepted at 30/s: checks the cubic's return to the plateau and
    /// that the probe's steps double each second, and returns the first four.
    fn returns_then_probes(moved: bool) -> [f64; 4] {
        let t0 = Instant::now();
        let mut l = Sim::new(8, 64, t0);
        l.rate_cut_at = Some(t0);
        l.w = 10.0;
        l.rate = BETA * 10.0;
        l.moved = moved;
        // Keep the accepted rate high enough not to cap growth.
        let mut rates = Vec::new();
        for i in 1..=80 {
            let now = at(t0, i * 100);
            for _ in 0..3 {
                l.successes.push_back(Success {
                    at: now,
                    sent: now,
                    overlap: 1,
                });
            }
            l.tat = now + Duration::from_millis(50); // paced
            l.on_success(now, now, true, 0);
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
            steps.windows(2).all(|w| (w[1] / w[0] - 2.0).abs() < 0.01),
            "steps beyond W doubling each second: {steps:?}"
        );
        steps
    }

    #[test]
    fn a_probe_refused_at_the_same_limit_is_back_on_its_plateau_within_two_seconds() {
        // The limit has held (three cuts read it, since 100 s): probed as seldom as the
        // budget allows.
        let start = Instant::now();
        let t0 = start + Duration::from_secs(100);
        let mut l = Sim::new(8, 64, start);
        l.rate_cut_at = Some(t0);
        l.w = 10.0;
        (l.readings, l.w_settled) = (3, true);
        l.k = K_MAX;
        l.rate = BETA * 10.0;
        // The server accepts 9/s on the plateau (the client sends no more), then 10/s once
        // the probe begins at k.
        let probe = (K_MAX * 1_000.0) as u64;
        let mut ms = 0;
        while ms < probe + 1_500 {
            ms += if ms < probe { 111 } else { 100 };
            l.on_success(at(t0, ms), at(t0, ms), true, 1);
        }
        let now = at(t0, ms + 5);
        let (window, _) = l.learner.accepted_rate(now);
        assert!(window < 9.6, "the window reads the plateau: {window}");
        let Cut::Rate(r) = l.on_rate_limited(now, at(t0, ms), 0, false, at(now, 1_000)) else {
            panic!("a cut")
        };
        // W is read since the probe began, not over the window the plateau filled.
        let w = r / BETA;
        assert!((9.8..=10.5).contains(&w), "W: {w}");
        assert_eq!(l.back, RETURN, "the plateau is known to hold");
        assert_eq!(l.k, longest_k(l.w), "the same limit: probed no sooner");
        let (plateau, k) = ((1.0 - l.margin) * l.w, l.k);
        let rate_after = |l: &mut Sim, s: f64| {
            let t = now + Duration::from_secs_f64(s);
            for _ in 0..30 {
                l.successes.push_back(Success {
                    at: t,
                    sent: t,
                    overlap: 1,
                }); // accepted: no ceiling
            }
            l.tat = t + Duration::from_millis(50); // paced
            l.on_success(t, t, true, 1);
            l.rate
        };
        assert!(rate_after(&mut l, 1.0) < plateau, "on its way back");
        assert!((rate_after(&mut l, RETURN) - plateau).abs() < 1e-6);
        assert!(
            (rate_after(&mut l, k - 0.1) - plateau).abs() < 1e-6,
            "and it holds there until the next probe"
        );
        assert!(rate_after(&mut l, k + 1.0) > plateau, "then probes");
    }

    #[test]
    fn concurrency_doubles_until_its_first_cut_then_probes_after_a_doubling_hold() {
        let t0 = Instant::now();
        let mut l = Sim::new(2, 64, t0);
        let success = |l: &mut Sim, ms: u64, level: usize| {
            let now = at(t0, ms);
            l.on_success(now, now, true, level)
        };
        assert_eq!(success(&mut l, 1_000, 2), Some(4));
        assert_eq!(
            success(&mut l, 1_100, 4),
            None,
            "a quarter second between doublings at least"
        );
        assert_eq!(success(&mut l, 1_250, 4), Some(8));
        // The doubling sent four more at once against a cap of 5: three refused at two
        // moments, while five were served.
        assert_eq!(moment(&mut l, at(t0, 1_350), 2, 5, true), Cut::None);
        assert_eq!(
            moment(&mut l, at(t0, 1_650), 1, 5, true),
            Cut::Concurrency(5)
        );
        for ms in [2_000, 2_500, 3_000] {
            assert_eq!(success(&mut l, ms, 5), None, "holding");
        }
        // A fast class (about 150/s): the probe budget would allow a probe every 2.7 s, so
        // the doubling sets the hold.
        for ms in 3_001..3_600 {
            assert_eq!(success(&mut l, ms, 5), None, "holding");
        }
        assert_eq!(
            success(&mut l, 3_800, 5),
            Some(6),
            "probe after the 2 s hold"
        );
        assert_eq!(
            moment(&mut l, at(t0, 3_900), 1, 5, true),
            Cut::Concurrency(5)
        );
        assert_eq!(
            l.hold,
            Duration::from_secs(4),
            "the failed probe doubles the hold"
        );
        assert_eq!(success(&mut l, 6_000, 5), None);
        assert_eq!(success(&mut l, 8_000, 5), Some(6));
        assert_eq!(l.rate, f64::INFINITY, "the rate was never cut");
    }

    #[test]
    fn a_cap_probe_cut_back_waits_as_long_as_the_probe_budget_allows() {
        // A cap of 5 serving 20/s (five at a time, 200 to 250 ms each), found, then probed
        // at 6.
        let t0 = Instant::now();
        let mut l = Sim::new(8, 64, t0);
        assert_eq!(
            moment(&mut l, at(t0, 300), 3, 5, true),
            Cut::None,
            "one moment is no cap"
        );
        assert_eq!(moment(&mut l, at(t0, 600), 3, 5, true), Cut::Concurrency(5));
        // Requests sent from 700 ms on, none in flight with those the cut read.
        let mut probe = None;
        let mut ms = 850;
        while probe.is_none() && ms < 10_000 {
            ms += 50;
            probe = l.on_success(at(t0, ms), at(t0, ms - 200), true, 5);
        }
        assert_eq!(probe, Some(6), "probed after the first 2 s hold");
        assert!(ms < 3_000, "{ms}");
        // The probe is refused at the top: cut back to 5. Doubled, the hold would be 4 s;
        // at 20/s the budget allows a probe every 20 s.
        assert_eq!(
            moment(&mut l, at(t0, ms + 100), 1, 5, true),
            Cut::Concurrency(5)
        );
        let (accepted, _) = l.learner.accepted_rate(at(t0, ms + 150));
        assert!((15.0..=25.0).contains(&accepted), "{accepted}");
        assert!(l.hold >= Duration::from_secs(16), "{:?}", l.hold);
        let cut = ms + 150;
        for ms in (cut..cut + 15_000).step_by(50) {
            let probe = l.on_success(at(t0, ms), at(t0, ms - 200), true, 5);
            assert_eq!(probe, None, "holding at {ms} ms");
        }
    }

    #[test]
    fn nothing_grows_while_the_limiter_is_not_the_bottleneck() {
        let t0 = Instant::now();
        let mut l = Sim::new(4, 64, t0);
        l.rate = 5.0;
        l.rate_cut_at = Some(t0);
        l.w = 5.0;
        for i in 1..=100 {
            l.on_success(at(t0, i * 100), at(t0, i * 100), false, 1);
        }
        assert_eq!((l.rate, l.concurrency), (5.0, 4));
    }

    /// One thing that can happen to a class, as the governor reports it.
    #[derive(Debug, Clone)]
    enum Event {
        Slot,
        Success {
            took: u64,
            queued: bool,
            level: usize,
        },
        Refused {
            took: u64,
            others: usize,
            saturated: bool,
        },
        Finished {
            took: u64,
            served: bool,
        },
    }

    fn event() -> impl proptest::strategy::Strategy<Value = (u64, Event)> {
        use proptest::prelude::*;
        let event = prop_oneof![
            Just(Event::Slot),
            (1u64..500, any::<bool>(), 1usize..40).prop_map(|(took, queued, level)| {
                Event::Success {
                    took,
                    queued,
                    level,
                }
            }),
            (1u64..500, 0usize..40, any::<bool>()).prop_map(|(took, others, saturated)| {
                Event::Refused {
                    took,
                    others,
                    saturated,
                }
            }),
            (1u64..3_000, any::<bool>())
                .prop_map(|(took, served)| Event::Finished { took, served }),
        ];
        (0u64..400, event)
    }

    proptest::proptest! {
        /// Whatever the server does: the rate stays positive (or infinite before the first
        /// cut), the cap within [1, ceiling], a cut never raises what it cuts, the class
        /// pauses once at most, and memory stays bounded.
        #[test]
        fn the_limits_stay_in_bounds_and_cuts_only_lower_them(
            events in proptest::collection::vec(event(), 1..400),
            start in 1usize..20,
            ceiling in 1usize..40,
        ) {
            let t0 = Instant::now();
            let mut l = Sim::new(start, ceiling, t0);
            let ceiling = l.ceiling;
            let mut now = t0 + Duration::from_secs(5);
            let mut pauses = 0;
            for (gap, event) in events {
                now += Duration::from_millis(gap);
                let (rate, concurrency) = (l.rate, l.concurrency);
                let ago = |ms: u64| now.checked_sub(Duration::from_millis(ms)).unwrap_or(t0);
                let cut = match event {
                    Event::Slot => {
                        proptest::prop_assert!(l.slot(now) >= now);
                        Cut::None
                    }
                    Event::Success { took, queued, level } => {
                        if let Some(grown) = l.on_success(now, ago(took), queued, level) {
                            proptest::prop_assert!(grown > concurrency && grown <= ceiling);
                        }
                        Cut::None
                    }
                    Event::Refused { took, others, saturated } => l.on_rate_limited(
                        now,
                        ago(took),
                        others,
                        saturated,
                        now + Duration::from_secs(1),
                    ),
                    Event::Finished { took, served } => l.on_finish(ago(took), now, served),
                };
                match cut {
                    Cut::Rate(r) => {
                        proptest::prop_assert!(r <= rate, "a rate cut raised {rate} to {r}");
                        proptest::prop_assert_eq!(r, l.rate);
                    }
                    Cut::Concurrency(c) => {
                        proptest::prop_assert!(c < concurrency, "a cap cut raised {concurrency} to {c}");
                        proptest::prop_assert_eq!(c, l.concurrency);
                    }
                    Cut::Unmeasured(_) => {
                        pauses += 1;
                        proptest::prop_assert!(pauses == 1, "the class pauses once at most");
                    }
                    Cut::None => {}
                }
                proptest::prop_assert!(l.rate > 0.0 && !l.rate.is_nan(), "rate {}", l.rate);
                proptest::prop_assert!((1..=ceiling).contains(&l.concurrency));
                proptest::prop_assert!(l.pending.len() <= MAX_REMEMBERED);
                proptest::prop_assert!(l.refusals.len() <= MAX_REMEMBERED);
            }
        }
    }
}
