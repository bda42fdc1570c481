//! The machinery behind the limits of [`crate::limits`]: per class, a resizable semaphore
//! (the concurrency limit), a gate (a time before which no request of the class starts) and,
//! in adaptive mode, the learner of [`crate::adaptive`], which paces the class and decides
//! the cuts (in static mode with a policy rate, a learner fixed at that rate paces it). The send path asks it for a [`Permit`] before each attempt and reports each
//! attempt's end through it.
//!
//! How permits add up. `Limit::size` is the concurrency limit; the semaphore holds the
//! permits not in use. A shrink takes free permits at once and records the rest as `debt`,
//! paid by the next permits released (they are forgotten instead of returned). A request
//! waiting out a `Retry-After` in a paced class keeps its `Permit` (its place at the head)
//! but lets a replacement into the semaphore, taken back when it is sent again. So at any
//! time: free permits + permits held (in flight, or waiting without a replacement) − debt
//! = size.

use std::fmt;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::adaptive::{Cut, Learner};
use crate::limits::{Class, ClassPolicy, Learned};

/// Which clients share one governor: the same key (by digest), base URL, mode and policies.
#[derive(PartialEq)]
struct Scope {
    key: [u8; 32],
    base_url: String,
    adaptive: bool,
    policies: [ClassPolicy; 5],
    /// The Redis keys' prefix, when the limits are shared (the fleet's own scope).
    fleet: Option<String>,
}

/// The governors of this process, one per scope, held weakly: a scope's limits live as long
/// as a client uses them, and the next client after the last one starts afresh.
static REGISTRY: Mutex<Vec<(Scope, std::sync::Weak<Governor>)>> = Mutex::new(Vec::new());

/// The fleet of shared limits, or nothing (without the `redis` feature it never exists).
#[cfg(feature = "redis")]
pub(crate) type FleetArg = Option<Arc<crate::fleet::Fleet>>;
#[cfg(not(feature = "redis"))]
pub(crate) type FleetArg = Option<std::convert::Infallible>;

/// The governor of the clients of `secret` at `base_url`: shared with every live client of the
/// same key, base URL, mode, policies and shared limits in this process (the server limits
/// the key, not the client). Only a digest of the key is kept.
pub(crate) fn shared(
    secret: &str,
    base_url: &str,
    policies: &[ClassPolicy; 5],
    adaptive: bool,
    fleet: FleetArg,
) -> Arc<Governor> {
    use sha2::Digest as _;
    let scope = Scope {
        key: sha2::Sha256::digest(secret.as_bytes()).into(),
        base_url: base_url.to_owned(),
        adaptive,
        policies: policies.clone(),
        #[cfg(feature = "redis")]
        fleet: fleet.as_ref().map(|f| f.scope()),
        #[cfg(not(feature = "redis"))]
        fleet: None,
    };
    let mut registry = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    registry.retain(|(_, governor)| governor.strong_count() > 0);
    if let Some(governor) = registry
        .iter()
        .find(|(s, _)| *s == scope)
        .and_then(|(_, governor)| governor.upgrade())
    {
        return governor;
    }
    let governor = Arc::new(Governor::with_fleet(policies, adaptive, fleet));
    registry.push((scope, Arc::downgrade(&governor)));
    governor
}

/// Full jitter: a uniform delay in `[0, delay]`. backon's own jitter adds `U(0, delay)` on top
/// of the delay, which keeps synchronized clients closer together; full jitter spreads them.
pub(crate) fn full_jitter(delay: Duration) -> Duration {
    delay.mul_f64(fastrand::f64())
}

/// A resizable limit on requests in flight.
struct Limit {
    semaphore: Arc<Semaphore>,
    /// The configured size; the semaphore may temporarily hold more permits while a
    /// shrink waits for requests in flight to finish.
    size: Mutex<usize>,
    /// Permits still to take back after a shrink: the next ones released are forgotten
    /// (not handed to the requests queued for them, which a FIFO semaphore would do first).
    debt: AtomicUsize,
}

impl Limit {
    /// Removes `n` permits: free ones at once, the rest (added to the debt) as requests in
    /// flight release them.
    fn take_back(&self, n: usize) {
        let to_remove = n - self.semaphore.forget_permits(n);
        self.debt.fetch_add(to_remove, Ordering::Relaxed);
    }

    /// Adds `n` permits, first cancelling what a shrink still had to take back.
    fn give(&self, n: usize) {
        let mut paid = 0;
        let _ = self
            .debt
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| {
                paid = d.min(n);
                Some(d - paid)
            });
        self.semaphore.add_permits(n - paid);
    }
}

struct ClassState {
    class: Class,
    limit: Limit,
    gate: Mutex<Option<Instant>>,
    policy: ClassPolicy,
    /// Adaptive mode: the learner; static mode: a fixed pacer when the policy sets a rate.
    learner: Option<Mutex<Learner>>,
    /// Shared limits: the fleet admits each request while Redis answers.
    #[cfg(feature = "redis")]
    fleet: Option<Arc<crate::fleet::Fleet>>,
    /// The last outage of Redis whose start seeded the local limits.
    #[cfg(feature = "redis")]
    seeded: AtomicU64,
    in_flight: AtomicUsize,
    /// Requests waiting for the gate, a permit or a pacing slot.
    queued: AtomicUsize,
    /// Wakes the requests waiting for pacing slots when the learner starts a new schedule.
    rescheduled: tokio::sync::Notify,
    rate_limited: AtomicU64,
}

impl ClassState {
    /// The most requests in flight the class may ever have.
    #[cfg(feature = "redis")]
    fn ceiling(&self) -> usize {
        self.policy
            .max_concurrency
            .max(self.policy.concurrency)
            .max(1)
    }

    /// The fleet, when the class's limits are shared and Redis answers.
    #[cfg(feature = "redis")]
    fn fleet(&self) -> Option<&Arc<crate::fleet::Fleet>> {
        self.fleet.as_ref().filter(|f| f.available())
    }

    /// Waits for the fleet to admit a request (its lease and pacing slot); `None` when the
    /// limits are not shared or Redis does not answer (the local limits apply).
    #[cfg(feature = "redis")]
    async fn admitted(&self) -> Option<crate::fleet::Lease> {
        use crate::fleet::Admit;
        loop {
            let Some(fleet) = self.fleet() else {
                self.degraded();
                return None;
            };
            let initial = self.policy.concurrency.max(1);
            let Some(admit) = fleet.admit(self.class, initial, self.ceiling()).await else {
                self.degraded();
                return None;
            };
            match admit {
                Admit::Go { wait, lease } => {
                    // Back from an outage that seeded the local cap: the fleet's cap binds.
                    if self.size() != self.ceiling() {
                        self.resize(self.ceiling());
                    }
                    tokio::time::sleep(wait).await;
                    return Some(lease);
                }
                Admit::Later(wait) => tokio::time::sleep(wait).await,
            }
        }
    }

    /// Redis does not answer: at the start of each outage, with a fleet size, the local
    /// limits start at this process's share of the fleet's last-seen ones.
    #[cfg(feature = "redis")]
    fn degraded(&self) {
        let Some(fleet) = &self.fleet else { return };
        let (outage, size) = fleet.outages();
        let Some(size) = size else { return };
        if self.seeded.swap(outage, Ordering::Relaxed) == outage {
            return;
        }
        let seen = fleet.seen(self.class);
        if let Some(rate) = seen.rate {
            self.learning(|l| l.seed(rate / size as f64, Instant::now()));
        }
        if seen.cap > 0 {
            self.resize(seen.cap.div_ceil(size));
        }
        tracing::info!(
            class = self.class.as_str(),
            rate = ?seen.rate.map(|r| r / size as f64),
            concurrency = seen.cap.div_ceil(size).max(1),
            "own limits seeded from this process's share of the fleet's"
        );
    }

    fn learner(&self) -> Option<std::sync::MutexGuard<'_, Learner>> {
        let learner = self.learner.as_ref()?;
        Some(learner.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Waits for a pacing slot (when the class is paced; at once otherwise), booking again as soon as
    /// the learner starts a new schedule (a rate cut, or growth) while it waits. `waited`:
    /// the request waited for a permit or is resent after its `Retry-After` (see
    /// [`Learner::book`]). Returns whether the send
    /// catches up on a late one (see [`Learner::send_at`]).
    async fn paced(&self, waited: bool) -> bool {
        let Some(mut booked) = self.learner().map(|mut l| l.book(Instant::now(), waited)) else {
            return false;
        };
        loop {
            let rescheduled = self.rescheduled.notified();
            tokio::pin!(rescheduled);
            rescheduled.as_mut().enable();
            let (slot, epoch) = booked;
            if let Some(again) = self
                .learner()
                .and_then(|mut l| l.rebook(epoch, Instant::now()))
            {
                booked = again;
                continue;
            }
            tokio::select! {
                () = tokio::time::sleep_until(slot) => {
                    let Some(mut l) = self.learner() else { return false };
                    let now = Instant::now();
                    if let Some(again) = l.rebook(epoch, now) {
                        booked = again;
                    } else {
                        match l.send_at(now) {
                            Ok(caught_up) => return caught_up,
                            // Too soon after the last send: later, on the same schedule.
                            Err(later) => booked = (later, epoch),
                        }
                    }
                }
                () = &mut rescheduled => {}
            }
        }
    }

    /// Runs `f` on the learner; wakes the requests waiting for slots if it started a new
    /// pacing schedule.
    fn learning<T>(&self, f: impl FnOnce(&mut Learner) -> T) -> Option<T> {
        let mut learner = self.learner()?;
        let epoch = learner.epoch;
        let out = f(&mut learner);
        let rescheduled = learner.epoch != epoch;
        drop(learner);
        if rescheduled {
            self.rescheduled.notify_waiters();
        }
        Some(out)
    }

    /// Carries out what the learner decided: the semaphore follows its concurrency, a first
    /// unmeasured 429 closes the gate.
    fn apply(&self, cut: Cut) {
        match cut {
            Cut::Concurrency(size) => self.resize(size),
            Cut::Rate(rate) => {
                metrics::gauge!("facturapi_learned_rate", "class" => self.class.as_str()).set(rate);
            }
            Cut::Unmeasured(until) => self.pause(until),
            Cut::None => {}
        }
        if cut != Cut::None {
            tracing::debug!(class = self.class.as_str(), ?cut, "adaptive limits");
        }
    }

    /// Pauses the class until `until` (never shortens an existing pause).
    fn pause(&self, until: Instant) {
        if let Ok(mut gate) = self.gate.lock()
            && gate.is_none_or(|current| current < until)
        {
            *gate = Some(until);
        }
    }

    /// The concurrency limit: the one number both modes keep, and the learner is told.
    fn size(&self) -> usize {
        self.limit.size.lock().map_or(1, |s| *s)
    }

    fn resize(&self, size: usize) {
        let size = size.max(1);
        metrics::gauge!("facturapi_learned_concurrency", "class" => self.class.as_str())
            .set(size as f64);
        let Ok(mut current) = self.limit.size.lock() else {
            return;
        };
        if size > *current {
            self.limit.give(size - *current);
        } else if size < *current {
            self.limit.take_back(*current - size);
        }
        *current = size;
    }
}

/// Where a request that got a 429 waits out its `Retry-After`.
#[derive(Debug)]
pub(crate) enum After429 {
    /// Keeping its permit, to resume with [`Governor::resume`].
    Hold(Permit),
    /// Without it: it queues for a permit again afterwards.
    Released,
}

/// The per-class limits of one client.
pub(crate) struct Governor {
    classes: Vec<Arc<ClassState>>,
}

impl fmt::Debug for Governor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for class in Class::ALL {
            let state = &self.classes[class.index()];
            map.entry(
                &class.as_str(),
                &state.limit.size.lock().map(|s| *s).unwrap_or_default(),
            );
        }
        map.finish()
    }
}

/// Permission to have one request of a class in flight.
pub(crate) struct Permit {
    permit: Option<OwnedSemaphorePermit>,
    state: Arc<ClassState>,
    /// Counted in `in_flight`: false while the holder waits out a `Retry-After`.
    counted: bool,
    /// Idle, and replaced by another permit in the semaphore meanwhile (see
    /// [`Permit::replace`]).
    replaced: bool,
    /// Requests of the class in flight when this one was sent, itself included.
    level: usize,
    /// When the request it carries was sent (or sent again after a `Retry-After`).
    sent: Instant,
    /// That send caught up on a late one (see [`Learner::send_at`]).
    caught_up: bool,
    /// The request succeeded: reported to the learner when the permit finishes.
    served: bool,
    /// Admitted by the fleet (shared limits): its lease, released when it finishes.
    #[cfg(feature = "redis")]
    lease: Option<crate::fleet::Lease>,
    /// Admitted by the fleet: the local learner does not hear of it.
    #[cfg(feature = "redis")]
    shared: bool,
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("class", &self.state.class)
            .field("counted", &self.counted)
            .field("level", &self.level)
            .finish_non_exhaustive()
    }
}

impl Permit {
    fn new(permit: OwnedSemaphorePermit, state: &Arc<ClassState>, caught_up: bool) -> Self {
        let level = state.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        Permit {
            permit: Some(permit),
            state: state.clone(),
            counted: true,
            replaced: false,
            level,
            sent: Instant::now(),
            caught_up,
            served: false,
            #[cfg(feature = "redis")]
            lease: None,
            #[cfg(feature = "redis")]
            shared: false,
        }
    }

    /// Admitted by the fleet under `lease`.
    #[cfg(feature = "redis")]
    fn with_lease(mut self, lease: crate::fleet::Lease) -> Self {
        self.shared = true;
        self.level = lease.level as usize;
        self.lease = Some(lease);
        self
    }

    /// The request is no longer in flight: the learner hears how it ended (a 429 waiting
    /// for the requests that were in flight with it learns from it whether they were
    /// served).
    fn finish(&mut self) {
        if !std::mem::replace(&mut self.counted, false) {
            return;
        }
        self.state.in_flight.fetch_sub(1, Ordering::Relaxed);
        let served = std::mem::replace(&mut self.served, false);
        #[cfg(feature = "redis")]
        if self.shared {
            if let Some(lease) = self.lease.take() {
                lease.release(served);
            }
            return;
        }
        let size = self.state.size();
        let sent = self.sent;
        let Some(cut) = self
            .state
            .learning(|l| l.on_finish(sent, Instant::now(), served, size))
        else {
            return;
        };
        self.state.apply(cut);
    }

    /// Requests of the class in flight when this one was sent, itself included.
    pub(crate) fn level(&self) -> usize {
        self.level
    }

    /// Keeps the permit (the place at the head of the class) without counting as in flight.
    pub(crate) fn idle(&mut self) {
        self.finish();
    }

    /// While idle, lets another request take this permit's place in the semaphore, so the
    /// limit bounds requests in flight, not requests waiting out a `Retry-After`. Without
    /// it a 429 storm parks every permit and starves the class (a 15/s limit read as 9/s on
    /// the benchmark). Only for a paced class: unpaced, parked permits are the one brake on
    /// a storm, and replacing them turned each `Retry-After` pause into a new burst.
    fn replace(&mut self) {
        if !self.counted && !std::mem::replace(&mut self.replaced, true) {
            self.state.limit.give(1);
        }
    }

    fn active(&mut self, caught_up: bool) {
        if !std::mem::replace(&mut self.counted, true) {
            self.level = self.state.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
            self.sent = Instant::now();
            self.caught_up = caught_up;
            if std::mem::replace(&mut self.replaced, false) {
                self.state.limit.take_back(1);
            }
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.counted {
            self.finish();
        } else if self.replaced {
            // Its replacement is already in the semaphore.
            if let Some(permit) = self.permit.take() {
                permit.forget();
            }
            return;
        }
        let due = self
            .state
            .limit
            .debt
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| d.checked_sub(1))
            .is_ok();
        if due && let Some(permit) = self.permit.take() {
            permit.forget();
        }
    }
}

/// Counts a request as queued while it waits.
struct Queued<'a>(&'a AtomicUsize);

impl<'a> Queued<'a> {
    fn new(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Queued(counter)
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Governor {
    pub(crate) fn new(policies: &[ClassPolicy; 5], adaptive: bool) -> Self {
        Self::build(
            policies,
            adaptive,
            #[cfg(feature = "redis")]
            None,
        )
    }

    /// A governor of its own limits, or of limits shared through `fleet`.
    pub(crate) fn with_fleet(policies: &[ClassPolicy; 5], adaptive: bool, fleet: FleetArg) -> Self {
        #[cfg(feature = "redis")]
        if let Some(fleet) = fleet.filter(|_| adaptive) {
            return Self::shared_through(policies, fleet);
        }
        #[cfg(not(feature = "redis"))]
        let _ = fleet;
        Self::new(policies, adaptive)
    }

    /// A governor whose limits are shared through `fleet` while Redis answers (adaptive
    /// mode). Its local limits, used when Redis does not answer, start at each class's
    /// ceiling: the fleet's cap is what binds.
    #[cfg(feature = "redis")]
    fn shared_through(policies: &[ClassPolicy; 5], fleet: Arc<crate::fleet::Fleet>) -> Self {
        let governor = Self::build(policies, true, Some(fleet));
        for state in &governor.classes {
            state.resize(state.ceiling());
        }
        governor
    }

    fn build(
        policies: &[ClassPolicy; 5],
        adaptive: bool,
        #[cfg(feature = "redis")] fleet: Option<Arc<crate::fleet::Fleet>>,
    ) -> Self {
        let now = Instant::now();
        let classes = Class::ALL
            .iter()
            .zip(policies)
            .map(|(&class, policy)| {
                Arc::new(ClassState {
                    class,
                    limit: Limit {
                        semaphore: Arc::new(Semaphore::new(policy.concurrency.max(1))),
                        size: Mutex::new(policy.concurrency.max(1)),
                        debt: AtomicUsize::new(0),
                    },
                    gate: Mutex::new(None),
                    learner: if adaptive {
                        Some(Mutex::new(Learner::new(
                            policy.max_concurrency.max(policy.concurrency),
                            now,
                        )))
                    } else {
                        policy
                            .rate
                            .map(|rate| Mutex::new(Learner::fixed(rate, now)))
                    },
                    policy: policy.clone(),
                    #[cfg(feature = "redis")]
                    fleet: fleet.clone(),
                    #[cfg(feature = "redis")]
                    seeded: AtomicU64::new(0),
                    in_flight: AtomicUsize::new(0),
                    queued: AtomicUsize::new(0),
                    rescheduled: tokio::sync::Notify::new(),
                    rate_limited: AtomicU64::new(0),
                })
            })
            .collect();
        Self { classes }
    }

    fn state(&self, class: Class) -> &Arc<ClassState> {
        &self.classes[class.index()]
    }

    /// A request of `class` the server answered with anything but a 429 (its permit still
    /// held): it went past the server's limiter. Adaptive growth, and the permit reports a
    /// served request when it finishes.
    pub(crate) fn on_accepted(&self, class: Class, permit: &mut Permit) {
        permit.served = true;
        #[cfg(feature = "redis")]
        if permit.shared {
            return;
        }
        let state = self.state(class);
        let size = state.size();
        let queued = state.queued.load(Ordering::Relaxed) > 0;
        // In flight as it came back, itself included (its permit still counts).
        let level = state.in_flight.load(Ordering::Relaxed).max(1);
        let grown = state.learning(|learner| {
            let before = learner.rate;
            let grown = learner.on_success(Instant::now(), permit.sent, queued, level, size);
            if learner.rate != before {
                metrics::gauge!("facturapi_learned_rate", "class" => class.as_str())
                    .set(learner.rate);
            }
            grown
        });
        if let Some(Some(size)) = grown {
            state.resize(size);
        }
    }

    /// A 429 of a request of `class` sent at `sent_at`, its permit already idle.
    ///
    /// In static mode the limits are the caller's: nothing changes, and the request waits
    /// out its `Retry-After` holding its permit; unpaced, the class runs one request fewer
    /// for that long (the more 429s, the fewer in flight), and paced, the permit is replaced
    /// meanwhile (the class keeps its rate). In adaptive mode the learner hears it (see
    /// the `adaptive` module): it judges the 429 once the requests in flight with it have
    /// finished, and its cut may come then.
    fn on_rate_limited(&self, class: Class, sent_at: Instant, permit: &mut Permit, until: Instant) {
        let state = self.state(class);
        state.rate_limited.fetch_add(1, Ordering::Relaxed);
        let size = state.size();
        // Every permit in use (this one included, until it is replaced): the caller offers
        // the class more than its limit.
        let saturated = state.limit.semaphore.available_permits() == 0;
        let others = state.in_flight.load(Ordering::Relaxed);
        let Some((cut, paced)) = state.learning(|learner| {
            let cut = learner.on_rate_limited(
                Instant::now(),
                sent_at,
                permit.caught_up,
                others,
                saturated,
                until,
                size,
            );
            (cut, learner.rate.is_finite())
        }) else {
            return;
        };
        if paced {
            permit.replace();
        }
        state.apply(cut);
    }

    /// What a 429 means for the class, in one call: the learner hears it (adaptive mode),
    /// and the request keeps its permit (its place at the head of the class) while it waits
    /// until `until`: always in static mode, and in adaptive mode unless a concurrency cut
    /// left no room for it. The send path does not branch on the mode.
    pub(crate) fn on_429(
        &self,
        class: Class,
        sent_at: Instant,
        mut permit: Permit,
        until: Instant,
    ) -> After429 {
        #[cfg(feature = "redis")]
        if permit.shared {
            let state = self.state(class);
            state.rate_limited.fetch_add(1, Ordering::Relaxed);
            if let Some(lease) = permit.lease.take() {
                let retry_after = until.saturating_duration_since(Instant::now());
                lease.refused(retry_after, state.ceiling());
            }
            permit.idle();
            return After429::Hold(permit);
        }
        permit.idle();
        self.on_rate_limited(class, sent_at, &mut permit, until);
        if !self.adaptive(class) || permit.level() <= self.concurrency(class) {
            After429::Hold(permit)
        } else {
            // A concurrency cut left no room for it: back to the queue.
            After429::Released
        }
    }

    /// Whether the learner paces or caps this class (adaptive mode).
    pub(crate) fn adaptive(&self, class: Class) -> bool {
        self.state(class).learner().is_some_and(|l| l.learns())
    }

    /// Sends again a request that kept its permit through a 429: waits for `until` (its own
    /// `Retry-After`), the class gate and a pacing slot. It keeps its place: it does not queue
    /// for a permit again.
    pub(crate) async fn resume(&self, class: Class, mut permit: Permit, until: Instant) -> Permit {
        tokio::time::sleep_until(until).await;
        loop {
            if let Some(until) = self.gate(class) {
                tokio::time::sleep_until(until).await;
            }
            #[cfg(feature = "redis")]
            match self.state(class).admitted().await {
                Some(lease) => {
                    permit.active(false);
                    return permit.with_lease(lease);
                }
                None => permit.shared = false,
            }
            let caught_up = self.state(class).paced(true).await;
            if self.gate(class).is_none() {
                permit.active(caught_up);
                return permit;
            }
        }
    }

    /// Where the limits of `class` stand.
    pub(crate) fn learned(&self, class: Class) -> Learned {
        let state = self.state(class);
        let (rate, rate_cuts, concurrency_cuts) = match state.learner() {
            Some(l) => (
                Some(l.rate).filter(|r| r.is_finite()),
                l.rate_cuts,
                l.concurrency_cuts,
            ),
            None => (None, 0, 0),
        };
        #[allow(unused_mut)] // without the `redis` feature nothing overrides them
        let (mut rate, mut concurrency, mut rate_cuts, mut concurrency_cuts, mut shared) = (
            rate,
            self.concurrency(class),
            rate_cuts,
            concurrency_cuts,
            false,
        );
        #[cfg(feature = "redis")]
        if let Some(fleet) = state.fleet() {
            // The fleet's numbers, as this process last saw them.
            let seen = fleet.seen(class);
            (rate, concurrency, rate_cuts, concurrency_cuts, shared) = (
                seen.rate,
                seen.cap.max(1),
                seen.rate_cuts,
                seen.cap_cuts,
                !fleet.degraded(),
            );
        }
        Learned {
            rate,
            concurrency,
            in_flight: state.in_flight.load(Ordering::Relaxed),
            queued: state.queued.load(Ordering::Relaxed),
            paused_until: self.gate(class),
            rate_limited: state.rate_limited.load(Ordering::Relaxed),
            rate_cuts,
            concurrency_cuts,
            shared,
        }
    }

    pub(crate) fn policy(&self, class: Class) -> &ClassPolicy {
        &self.state(class).policy
    }

    /// When the class may next start a request, if it is paused.
    pub(crate) fn gate(&self, class: Class) -> Option<Instant> {
        let gate = self.state(class).gate.lock().map(|g| *g).unwrap_or(None);
        gate.filter(|until| *until > Instant::now())
    }

    /// Pauses the class until `until` (never shortens an existing pause).
    #[cfg(test)]
    fn pause(&self, class: Class, until: Instant) {
        self.state(class).pause(until);
    }

    /// A permit at once, when the class is not paused and one is free (the common case:
    /// no timer is armed).
    pub(crate) fn try_acquire(&self, class: Class) -> Option<Permit> {
        if self.gate(class).is_some() {
            return None;
        }
        let state = self.state(class);
        #[cfg(feature = "redis")]
        if state.fleet().is_some() {
            return None; // the fleet admits it, asynchronously
        }
        let mut learner = state.learner();
        if let Some(l) = &learner
            && !l.slot_free(Instant::now())
        {
            return None;
        }
        let permit = state.limit.semaphore.clone().try_acquire_owned().ok()?;
        let caught_up = learner.as_mut().is_some_and(|l| {
            let now = Instant::now();
            l.slot(now);
            l.send_at(now).unwrap_or(false)
        });
        drop(learner);
        Some(Permit::new(permit, state, caught_up))
    }

    /// Waits for the gate, a permit and (a paced class) a pacing slot, in that order, so at
    /// most a class's permits are ever booked on the pacing schedule. Re-checks the gate
    /// after the slot: a 429 may have paused the class while this request queued.
    pub(crate) async fn acquire(&self, class: Class) -> Permit {
        let state = self.state(class);
        let _queued = Queued::new(&state.queued);
        loop {
            if let Some(until) = self.gate(class) {
                tokio::time::sleep_until(until).await;
            }
            let semaphore = &state.limit.semaphore;
            let (permit, waited) = match semaphore.clone().try_acquire_owned() {
                Ok(permit) => (permit, false),
                // The semaphore is never closed, so acquisition only fails if it were.
                Err(_) => match semaphore.clone().acquire_owned().await {
                    Ok(permit) => (permit, true),
                    Err(_) => continue,
                },
            };
            #[cfg(feature = "redis")]
            if let Some(lease) = state.admitted().await {
                return Permit::new(permit, state, false).with_lease(lease);
            }
            let caught_up = state.paced(waited).await;
            if self.gate(class).is_none() {
                return Permit::new(permit, state, caught_up);
            }
        }
    }

    /// The current concurrency limit of `class`.
    pub(crate) fn concurrency(&self, class: Class) -> usize {
        self.state(class).size()
    }

    /// Resizes the concurrency limit of `class` (at least 1). Growing takes effect at once;
    /// shrinking takes permits back as requests in flight finish.
    pub(crate) fn set_concurrency(&self, class: Class, size: usize) {
        self.state(class).resize(size);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::*;

    fn governor(concurrency: usize) -> Governor {
        Governor::new(
            &Class::ALL.map(|c| ClassPolicy::default_for(c).with_concurrency(concurrency)),
            false,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_paused_class_waits_for_its_gate_and_others_do_not() {
        let governor = governor(2);
        let start = Instant::now();
        governor.pause(Class::Create, start + Duration::from_secs(7));
        governor.pause(Class::Create, start + Duration::from_secs(3)); // never shortens
        assert!(governor.try_acquire(Class::Create).is_none());
        let _write = governor.acquire(Class::Write).await;
        assert_eq!(Instant::now(), start, "another class is not paused");
        let _create = governor.acquire(Class::Create).await;
        assert_eq!(Instant::now() - start, Duration::from_secs(7));
        assert!(governor.gate(Class::Create).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn permits_bound_the_requests_in_flight_and_resize() {
        let governor = Arc::new(governor(2));
        let a = governor.acquire(Class::DetailRead).await;
        let _b = governor.acquire(Class::DetailRead).await;
        assert!(
            governor.try_acquire(Class::DetailRead).is_none(),
            "the third waits"
        );
        drop(a);
        let c = governor.try_acquire(Class::DetailRead);
        assert!(c.is_some(), "a released permit is reused");

        governor.set_concurrency(Class::DetailRead, 3);
        assert!(
            governor.try_acquire(Class::DetailRead).is_some(),
            "growing frees a permit at once"
        );

        // Shrinking below what is in flight takes permits back as they are released.
        governor.set_concurrency(Class::DetailRead, 1);
        assert_eq!(governor.concurrency(Class::DetailRead), 1);
        drop(c);
        tokio::task::yield_now().await;
        assert!(
            governor.try_acquire(Class::DetailRead).is_none(),
            "one still in flight fills the new limit of 1"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_paced_class_replaces_a_permit_waiting_out_a_retry_after() {
        let policies = Class::ALL.map(|c| ClassPolicy::default_for(c).with_concurrency(2));
        let governor = Governor::new(&policies, true);
        let class = Class::Write;
        let later = Instant::now() + Duration::from_secs(1);
        let mut parked = governor.acquire(class).await;
        // Unpaced (no rate cut yet): the parked permit still counts against the cap.
        parked.idle();
        governor.on_rate_limited(class, Instant::now(), &mut parked, later);
        assert_eq!(
            governor.gate(class),
            Some(later),
            "a first 429 with nothing measured pauses the class"
        );
        let _busy = governor.acquire(class).await;
        assert!(
            governor.try_acquire(class).is_none(),
            "unpaced: no replacement"
        );
        // Paced: it is replaced while it waits.
        governor.state(class).learner().expect("adaptive").rate = 1_000.0;
        parked.replace();
        let replacement = governor
            .try_acquire(class)
            .expect("an idle permit of a paced class does not count against the cap");
        let resumed = governor.resume(class, parked, later).await;
        assert_eq!(governor.learned(class).in_flight, 3, "back at the head");
        // The cap is restored as requests finish: the next release is taken back.
        drop(replacement);
        assert!(governor.try_acquire(class).is_none(), "2 in flight: full");
        drop(resumed);
        tokio::time::sleep(Duration::from_millis(10)).await; // the next pacing slot
        let mut gave_up = governor.try_acquire(class).expect("one free");
        // A replaced permit dropped (its call gave up) leaves the cap where it was.
        gave_up.idle();
        gave_up.replace();
        drop(gave_up);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(governor.try_acquire(class).is_some());
        assert!(
            governor.try_acquire(class).is_none(),
            "still a cap of 2: {:?}",
            governor.learned(class)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_static_rate_paces_the_class_and_its_429s_cut_nothing() {
        let policies = Class::ALL.map(|c| {
            ClassPolicy::default_for(c)
                .with_concurrency(2)
                .with_rate(4.0)
        });
        let governor = Governor::new(&policies, false);
        let class = Class::Create;
        let start = Instant::now();
        let mut first = governor.acquire(class).await;
        let second = governor.acquire(class).await;
        assert_eq!(
            Instant::now() - start,
            Duration::from_millis(250),
            "1/4 s apart"
        );
        // A 429: no pause, no cut, and its permit serves the next request meanwhile.
        let until = Instant::now() + Duration::from_secs(1);
        first.idle();
        governor.on_rate_limited(class, start, &mut first, until);
        assert!(
            governor.gate(class).is_none(),
            "static mode never pauses the class"
        );
        let third = governor.acquire(class).await;
        assert_eq!(Instant::now() - start, Duration::from_millis(500));
        let learned = governor.learned(class);
        assert_eq!(
            (learned.rate, learned.concurrency, learned.rate_cuts),
            (Some(4.0), 2, 0)
        );
        assert!(!governor.adaptive(class));
        drop((second, third));
        let resumed = governor.resume(class, first, until).await;
        assert_eq!(Instant::now(), until, "it waited out its own Retry-After");
        drop(resumed);
        assert_eq!(governor.learned(class).rate, Some(4.0), "nothing learned");
        // Classes without a rate are not paced.
        let unpaced = Governor::new(&Class::ALL.map(ClassPolicy::default_for), false);
        let at = Instant::now();
        let _a = unpaced.acquire(class).await;
        let _b = unpaced.acquire(class).await;
        assert_eq!((Instant::now(), unpaced.learned(class).rate), (at, None));
    }

    #[test]
    fn full_jitter_stays_within_the_delay() {
        for _ in 0..1000 {
            assert!(full_jitter(Duration::from_millis(100)) <= Duration::from_millis(100));
        }
    }

    #[test]
    fn heavy_writes_have_the_most_cautious_defaults() {
        let heavy = ClassPolicy::default_for(Class::HeavyWrite);
        for class in [
            Class::DetailRead,
            Class::ListRead,
            Class::Create,
            Class::Write,
        ] {
            let other = ClassPolicy::default_for(class);
            assert!(
                heavy.concurrency < other.concurrency && heavy.min_delay > other.min_delay,
                "{class}"
            );
        }
    }

    proptest::proptest! {
        /// Whatever the order of acquisitions, 429s, resumptions, successes, drops and
        /// resizes: free permits + permits held (in flight, or waiting without a
        /// replacement) − debt = the limit's size.
        #[test]
        fn permits_are_conserved(
            ops in proptest::collection::vec((0u8..7, 0usize..16), 1..200),
            adaptive in proptest::bool::ANY,
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap();
            runtime.block_on(async {
                let class = Class::Create;
                let governor = Governor::new(
                    &Class::ALL.map(|c| ClassPolicy::default_for(c).with_concurrency(4)),
                    adaptive,
                );
                let (mut in_flight, mut waiting) = (Vec::new(), Vec::new());
                for (op, n) in ops {
                    match op {
                        0 => in_flight.extend(governor.try_acquire(class)),
                        1 if !in_flight.is_empty() => drop(in_flight.remove(n % in_flight.len())),
                        2 => governor.set_concurrency(class, n + 1),
                        3 if !in_flight.is_empty() => {
                            let permit = in_flight.remove(n % in_flight.len());
                            let now = Instant::now();
                            let until = now + Duration::from_millis(10);
                            if let After429::Hold(p) = governor.on_429(class, now, permit, until) {
                                waiting.push(p);
                            }
                        }
                        4 if !waiting.is_empty() => {
                            let permit = waiting.remove(n % waiting.len());
                            let now = Instant::now();
                            in_flight.push(governor.resume(class, permit, now).await);
                        }
                        5 if !waiting.is_empty() => drop(waiting.remove(n % waiting.len())),
                        6 if !in_flight.is_empty() => {
                            let i = n % in_flight.len();
                            governor.on_accepted(class, &mut in_flight[i]);
                        }
                        _ => {}
                    }
                    tokio::time::advance(Duration::from_millis(7)).await;
                    let state = governor.state(class);
                    let size = *state.limit.size.lock().unwrap();
                    let free = state.limit.semaphore.available_permits();
                    let held = in_flight.len() + waiting.iter().filter(|p: &&Permit| !p.replaced).count();
                    let debt = state.limit.debt.load(Ordering::Relaxed);
                    proptest::prop_assert_eq!(free + held, size + debt, "{:?}", governor.learned(class));
                    proptest::prop_assert_eq!(state.in_flight.load(Ordering::Relaxed), in_flight.len());
                }
                Ok(())
            })?;
        }
    }
    #[tokio::test(start_paused = true)]
    async fn a_new_pacing_schedule_wakes_the_requests_waiting_for_slots_of_the_old_one() {
        let class = Class::Create;
        let governor = Arc::new(Governor::new(
            &Class::ALL.map(|c| ClassPolicy::default_for(c).with_concurrency(4)),
            true,
        ));
        let start = Instant::now();
        governor.state(class).learner().expect("adaptive").rate = 1.0;
        // Four requests book the slots of a 1/s schedule: 0, 1, 2 and 3 s from now.
        let waiting: Vec<_> = (0..4)
            .map(|_| {
                let governor = governor.clone();
                tokio::spawn(async move {
                    let permit = governor.acquire(class).await;
                    (Instant::now(), permit)
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The learner starts a schedule at 10/s (as a growth by a quarter does).
        governor.state(class).learning(|l| {
            l.rate = 10.0;
            l.reschedule(Instant::now());
        });
        let mut sent = Vec::new();
        for task in waiting {
            let (at, _permit) = task.await.expect("acquired");
            sent.push(at - start);
        }
        sent.sort();
        assert_eq!(sent[0], Duration::ZERO, "the first slot was free at once");
        assert!(
            sent[3] <= Duration::from_millis(450),
            "booked again at 10/s, not waiting out the 1/s slots: {sent:?}"
        );
        for pair in sent[1..].windows(2) {
            assert!(
                pair[1] - pair[0] >= Duration::from_millis(99),
                "still paced: {sent:?}"
            );
        }
    }
}
