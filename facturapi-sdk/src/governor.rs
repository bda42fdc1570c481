//! Per-class concurrency, pacing and pausing: the part of the send path that keeps a burst of
//! calls inside Facturapi's per-class limits.
//!
//! Each [`Class`] has a semaphore (its concurrency limit, resizable at runtime) and a gate
//! (a time before which no request of the class starts, set by a 429's `Retry-After`). In
//! adaptive mode (the default) each class also has a paced rate, and both the rate and the
//! concurrency limit are learned from 429s (the `adaptive` module); the gate then only closes
//! for a first 429 the learner cannot measure yet. In static mode
//! ([`ClientBuilder::static_limits`](crate::ClientBuilder::static_limits)) the limits are
//! the policies', and a request that got a 429 waits out its `Retry-After` keeping its
//! permit: one slot of the class waits, the others go on. [`Learned`] shows where they stand.

use std::fmt;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::adaptive::{Cut, Learner};

/// The five operation classes of Facturapi's rate-limit contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// GET of one resource or one of its files.
    DetailRead,
    /// GET of a collection, a search or a catalog lookup.
    ListRead,
    /// POST that creates a resource.
    Create,
    /// PUT, DELETE or an action that changes a resource.
    Write,
    /// Stamping, SAT cancellation, global/to-invoice, uploads, ZIP requests, e-mail, previews.
    HeavyWrite,
}

impl Class {
    /// Every class.
    pub const ALL: [Class; 5] = [
        Class::DetailRead,
        Class::ListRead,
        Class::Create,
        Class::Write,
        Class::HeavyWrite,
    ];

    /// The name used in `spec/endpoints.toml`, metrics and tracing.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::DetailRead => "detail_read",
            Class::ListRead => "list_read",
            Class::Create => "create",
            Class::Write => "write",
            Class::HeavyWrite => "heavy_write",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Class {
    /// The class of a spec operation, by operation id (`None` for ids the spec lacks).
    pub fn of_operation(operation_id: &str) -> Option<Class> {
        operations()
            .iter()
            .find(|op| op.operation_id == operation_id)
            .map(|op| op.class)
    }
}

/// One operation of the spec, as `cargo xtask codegen` catalogs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Operation {
    /// The spec's operationId (or the one derived from method and path).
    pub operation_id: &'static str,
    /// HTTP method.
    pub method: &'static str,
    /// Path template.
    pub path: &'static str,
    /// Its class.
    pub class: Class,
    /// The handle it hangs on (`client.invoices()` → `invoices`).
    pub resource: &'static str,
    /// The method's name on that handle.
    pub method_name: &'static str,
    /// Key kinds the spec accepts (empty: any).
    pub keys: &'static [crate::KeyKind],
    /// When it may be sent again after an attempt that may have reached the server.
    pub resend: crate::request::Resend,
}

/// Every operation of the spec with its class, in spec order (110): for dashboards and
/// alerts that group by class, and for tools that route by operation.
pub fn operations() -> &'static [Operation] {
    crate::generated::operations::OPERATIONS
}

/// How one class is sent: its concurrency limit and its retry schedule.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ClassPolicy {
    /// Requests of the class in flight at once (the starting point in adaptive mode).
    pub concurrency: usize,
    /// Most requests in flight that adaptive mode ever grows to (at least `concurrency`).
    pub max_concurrency: usize,
    /// First retry delay (before jitter) after a 5xx, timeout or connection error, and after a
    /// 429 without `Retry-After`.
    pub min_delay: Duration,
    /// Largest retry delay (before jitter).
    pub max_delay: Duration,
    /// Growth factor of the delay.
    pub factor: f32,
    /// Retries after failures that are not 429s (429s never spend this budget).
    pub max_retries: usize,
    /// Total time a call may take, waits included; past it a 429 becomes
    /// [`Error::RateLimited`](crate::Error::RateLimited).
    pub deadline: Duration,
    /// Longest `Retry-After` honoured; larger values are clamped to it.
    pub retry_after_cap: Duration,
}

impl ClassPolicy {
    /// The default policy of `class`: the most cautious for heavy writes.
    pub fn default_for(class: Class) -> Self {
        let base = ClassPolicy {
            concurrency: 4,
            max_concurrency: 32,
            min_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
            factor: 2.0,
            max_retries: 3,
            deadline: Duration::from_secs(120),
            retry_after_cap: Duration::from_secs(120),
        };
        match class {
            Class::DetailRead => ClassPolicy {
                concurrency: 8,
                max_concurrency: 64,
                ..base
            },
            Class::ListRead | Class::Create | Class::Write => base,
            Class::HeavyWrite => ClassPolicy {
                concurrency: 2,
                max_concurrency: 8,
                min_delay: Duration::from_secs(1),
                max_delay: Duration::from_secs(30),
                deadline: Duration::from_secs(300),
                ..base
            },
        }
    }

    /// Sets the concurrency limit (at least 1; the ceiling rises to it if lower).
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self.max_concurrency = self.max_concurrency.max(self.concurrency);
        self
    }

    /// Sets the most requests in flight adaptive mode may grow to (at least `concurrency`).
    pub fn with_max_concurrency(mut self, max_concurrency: usize) -> Self {
        self.max_concurrency = max_concurrency.max(self.concurrency);
        self
    }

    /// Sets the retry delays: first delay, cap and growth factor.
    pub fn with_backoff(mut self, min_delay: Duration, max_delay: Duration, factor: f32) -> Self {
        self.min_delay = min_delay;
        self.max_delay = max_delay.max(min_delay);
        self.factor = factor.max(1.0);
        self
    }

    /// Sets the retry budget for non-429 failures.
    pub fn with_max_retries(mut self, max_retries: usize) -> Self {
        self.max_retries = max_retries;
        self
    }

    /// Sets the total time a call may take.
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Sets the longest `Retry-After` honoured.
    pub fn with_retry_after_cap(mut self, cap: Duration) -> Self {
        self.retry_after_cap = cap;
        self
    }

    /// The exponential schedule (without jitter) of this policy.
    pub(crate) fn schedule(&self) -> backon::ExponentialBackoff {
        use backon::BackoffBuilder as _;
        backon::ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_factor(self.factor)
            .without_max_times()
            .build()
    }
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
    debt: Arc<AtomicUsize>,
}

impl Limit {
    /// Removes `n` permits: free ones at once, the rest as requests in flight release them.
    fn take_back(&self, n: usize) {
        take_back(&self.semaphore, &self.debt, n);
    }

    /// Adds `n` permits, first cancelling what a shrink still had to take back.
    fn give(&self, n: usize) {
        give(&self.semaphore, &self.debt, n);
    }
}

/// Removes `n` permits from `semaphore`: free ones at once, the rest (added to `debt`) as
/// holders release them.
fn take_back(semaphore: &Semaphore, debt: &AtomicUsize, n: usize) {
    let to_remove = n - semaphore.forget_permits(n);
    debt.fetch_add(to_remove, Ordering::Relaxed);
}

/// Adds `n` permits to `semaphore`, first cancelling what `debt` still had to take back.
fn give(semaphore: &Semaphore, debt: &AtomicUsize, n: usize) {
    let mut paid = 0;
    let _ = debt.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| {
        paid = d.min(n);
        Some(d - paid)
    });
    semaphore.add_permits(n - paid);
}

struct ClassState {
    limit: Limit,
    gate: Mutex<Option<Instant>>,
    policy: ClassPolicy,
    /// Adaptive mode only.
    learner: Option<Mutex<Learner>>,
    in_flight: Arc<AtomicUsize>,
    /// Requests waiting for the gate, a permit or a pacing slot.
    queued: AtomicUsize,
    rate_limited: AtomicU64,
}

/// Where one class's limits stand (see [`Client::learned`](crate::Client::learned)).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Learned {
    /// The paced rate, requests per second (`None` while not paced: in static mode, and in
    /// adaptive mode until the first rate cut).
    pub rate: Option<f64>,
    /// The concurrency limit.
    pub concurrency: usize,
    /// Requests in flight now.
    pub in_flight: usize,
    /// Requests waiting for the gate, a permit or a pacing slot.
    pub queued: usize,
    /// When the class may start requests again, if a 429 paused it.
    pub paused_until: Option<Instant>,
    /// 429s received.
    pub rate_limited: u64,
    /// Rate cuts made (adaptive mode).
    pub rate_cuts: u64,
    /// Concurrency cuts made (adaptive mode).
    pub concurrency_cuts: u64,
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
    classes: Vec<ClassState>,
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
#[derive(Debug)]
pub(crate) struct Permit {
    permit: Option<OwnedSemaphorePermit>,
    semaphore: Arc<Semaphore>,
    /// The class's shrink debt: a permit released while it is due is forgotten.
    debt: Arc<AtomicUsize>,
    in_flight: Arc<AtomicUsize>,
    /// Counted in `in_flight`: false while the holder waits out a `Retry-After`.
    counted: bool,
    /// Idle, and replaced by another permit in the semaphore meanwhile (see
    /// [`Permit::replace`]).
    replaced: bool,
    /// Requests of the class in flight when this one was sent, itself included.
    level: usize,
}

impl Permit {
    fn new(permit: OwnedSemaphorePermit, in_flight: &Arc<AtomicUsize>, limit: &Limit) -> Self {
        let level = in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        Permit {
            permit: Some(permit),
            semaphore: limit.semaphore.clone(),
            debt: limit.debt.clone(),
            in_flight: in_flight.clone(),
            counted: true,
            replaced: false,
            level,
        }
    }

    /// Requests of the class in flight when this one was sent, itself included.
    pub(crate) fn level(&self) -> usize {
        self.level
    }

    /// Keeps the permit (the place at the head of the class) without counting as in flight.
    pub(crate) fn idle(&mut self) {
        if std::mem::replace(&mut self.counted, false) {
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// While idle, lets another request take this permit's place in the semaphore, so the
    /// limit bounds requests in flight, not requests waiting out a `Retry-After`. Without
    /// it a 429 storm parks every permit and starves the class (a 15/s limit read as 9/s on
    /// the benchmark). Only for a paced class: unpaced, parked permits are the one brake on
    /// a storm, and replacing them turned each `Retry-After` pause into a new burst.
    fn replace(&mut self) {
        if !self.counted && !std::mem::replace(&mut self.replaced, true) {
            give(&self.semaphore, &self.debt, 1);
        }
    }

    fn active(&mut self) {
        if !std::mem::replace(&mut self.counted, true) {
            self.level = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
            if std::mem::replace(&mut self.replaced, false) {
                take_back(&self.semaphore, &self.debt, 1);
            }
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if std::mem::replace(&mut self.counted, false) {
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
        } else if self.replaced {
            // Its replacement is already in the semaphore.
            if let Some(permit) = self.permit.take() {
                permit.forget();
            }
            return;
        }
        let due = self
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
        let now = Instant::now();
        let classes = policies
            .iter()
            .map(|policy| ClassState {
                limit: Limit {
                    semaphore: Arc::new(Semaphore::new(policy.concurrency.max(1))),
                    size: Mutex::new(policy.concurrency.max(1)),
                    debt: Arc::new(AtomicUsize::new(0)),
                },
                gate: Mutex::new(None),
                learner: adaptive.then(|| {
                    Mutex::new(Learner::new(
                        policy.concurrency,
                        policy.max_concurrency.max(policy.concurrency),
                        now,
                    ))
                }),
                policy: policy.clone(),
                in_flight: Arc::new(AtomicUsize::new(0)),
                queued: AtomicUsize::new(0),
                rate_limited: AtomicU64::new(0),
            })
            .collect();
        Self { classes }
    }

    fn learner(&self, class: Class) -> Option<std::sync::MutexGuard<'_, Learner>> {
        let learner = self.classes[class.index()].learner.as_ref()?;
        Some(learner.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// A success of `class` (its permit still held): adaptive growth.
    pub(crate) fn on_success(&self, class: Class, _permit: &Permit) {
        let state = &self.classes[class.index()];
        let grown = {
            let Some(mut learner) = self.learner(class) else {
                return;
            };
            let before = learner.rate;
            let grown = learner.on_success(
                Instant::now(),
                state.queued.load(Ordering::Relaxed) > 0,
                // In flight as it came back, itself included (its permit still counts).
                state.in_flight.load(Ordering::Relaxed).max(1),
            );
            if learner.rate != before {
                metrics::gauge!("facturapi_learned_rate", "class" => class.as_str())
                    .set(learner.rate);
            }
            grown
        };
        if let Some(size) = grown {
            self.resize(class, size);
        }
    }

    /// A 429 of a request of `class` sent at `sent_at`; returns whether the whole class
    /// must pause for the `Retry-After`.
    ///
    /// In static mode, never: the limits are the caller's, and the request that got the 429
    /// waits out its `Retry-After` holding its permit, so the class runs one request fewer
    /// for that long (the more 429s, the fewer in flight). In adaptive mode, only while the
    /// learner cannot tell a rate from a cap yet: otherwise its cut is the answer, and the
    /// request that got the 429 alone waits out its `Retry-After` (at the head of the class).
    /// A pause of the class costs a whole second of its capacity for a `Retry-After` that
    /// Facturapi rounds up to whole seconds, when the server's bucket refills in a fraction
    /// of that.
    pub(crate) fn on_rate_limited(
        &self,
        class: Class,
        sent_at: Instant,
        permit: &mut Permit,
        until: Instant,
    ) -> bool {
        let state = &self.classes[class.index()];
        state.rate_limited.fetch_add(1, Ordering::Relaxed);
        let (cut, paced) = {
            let Some(mut learner) = self.learner(class) else {
                return false;
            };
            // In flight as it came back, itself included (the send path has already set
            // its permit idle).
            let level = state.in_flight.load(Ordering::Relaxed) + usize::from(!permit.counted);
            let cut = learner.on_rate_limited(Instant::now(), sent_at, level, until);
            (cut, learner.rate.is_finite())
        };
        if paced {
            permit.replace();
        }
        match cut {
            Cut::Concurrency(size) => self.resize(class, size),
            Cut::Rate(rate) => {
                metrics::gauge!("facturapi_learned_rate", "class" => class.as_str()).set(rate);
            }
            Cut::None | Cut::Unmeasured => {}
        }
        tracing::debug!(class = class.as_str(), ?cut, "adaptive limits");
        cut == Cut::Unmeasured
    }

    /// What a 429 means for the class, in one call: the learner's cut (adaptive mode), the
    /// class pause (a first 429 the learner cannot measure), and whether the request keeps
    /// its permit (its place at the head of the class) while it waits until `until`: always
    /// in static mode, and in adaptive mode while a concurrency cut left room for it. The
    /// send path does not branch on the mode.
    pub(crate) fn on_429(
        &self,
        class: Class,
        sent_at: Instant,
        mut permit: Permit,
        until: Instant,
    ) -> After429 {
        permit.idle();
        if self.on_rate_limited(class, sent_at, &mut permit, until) {
            self.pause(class, until);
        }
        if !self.adaptive(class) || permit.level() <= self.concurrency(class) {
            After429::Hold(permit)
        } else {
            // A concurrency cut left no room for it: back to the queue.
            After429::Released
        }
    }

    /// Whether the learner paces or caps this class (adaptive mode).
    pub(crate) fn adaptive(&self, class: Class) -> bool {
        self.classes[class.index()].learner.is_some()
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
            let slot = self.learner(class).map(|mut l| l.slot(Instant::now()));
            if let Some(slot) = slot {
                tokio::time::sleep_until(slot).await;
            }
            if self.gate(class).is_none() {
                permit.active();
                return permit;
            }
        }
    }

    /// Where the limits of `class` stand.
    pub(crate) fn learned(&self, class: Class) -> Learned {
        let state = &self.classes[class.index()];
        let (rate, rate_cuts, concurrency_cuts) = match self.learner(class) {
            Some(l) => (
                Some(l.rate).filter(|r| r.is_finite()),
                l.rate_cuts,
                l.concurrency_cuts,
            ),
            None => (None, 0, 0),
        };
        Learned {
            rate,
            concurrency: self.concurrency(class),
            in_flight: state.in_flight.load(Ordering::Relaxed),
            queued: state.queued.load(Ordering::Relaxed),
            paused_until: self.gate(class),
            rate_limited: state.rate_limited.load(Ordering::Relaxed),
            rate_cuts,
            concurrency_cuts,
        }
    }

    pub(crate) fn policy(&self, class: Class) -> &ClassPolicy {
        &self.classes[class.index()].policy
    }

    /// When the class may next start a request, if it is paused.
    pub(crate) fn gate(&self, class: Class) -> Option<Instant> {
        let gate = self.classes[class.index()]
            .gate
            .lock()
            .map(|g| *g)
            .unwrap_or(None);
        gate.filter(|until| *until > Instant::now())
    }

    /// Pauses the class until `until` (never shortens an existing pause).
    pub(crate) fn pause(&self, class: Class, until: Instant) {
        if let Ok(mut gate) = self.classes[class.index()].gate.lock()
            && gate.is_none_or(|current| current < until)
        {
            *gate = Some(until);
        }
    }

    /// Waits for the class gate, then for a permit. Re-checks the gate after the permit:
    /// a 429 may have paused the class while this request queued.
    /// A permit at once, when the class is not paused and one is free (the common case:
    /// no timer is armed).
    pub(crate) fn try_acquire(&self, class: Class) -> Option<Permit> {
        if self.gate(class).is_some() {
            return None;
        }
        let state = &self.classes[class.index()];
        let mut learner = self.learner(class);
        if let Some(l) = &learner
            && !l.slot_free(Instant::now())
        {
            return None;
        }
        let permit = state.limit.semaphore.clone().try_acquire_owned().ok()?;
        if let Some(l) = &mut learner {
            l.slot(Instant::now());
        }
        Some(Permit::new(permit, &state.in_flight, &state.limit))
    }

    /// Waits for the gate, a permit and (adaptive mode) a pacing slot, in that order, so at
    /// most a class's permits are ever booked on the pacing schedule.
    pub(crate) async fn acquire(&self, class: Class) -> Permit {
        let state = &self.classes[class.index()];
        let _queued = Queued::new(&state.queued);
        loop {
            if let Some(until) = self.gate(class) {
                tokio::time::sleep_until(until).await;
            }
            // The semaphore is never closed, so acquisition only fails if it were.
            let Ok(permit) = state.limit.semaphore.clone().acquire_owned().await else {
                continue;
            };
            let slot = self.learner(class).map(|mut l| l.slot(Instant::now()));
            if let Some(slot) = slot {
                tokio::time::sleep_until(slot).await;
            }
            if self.gate(class).is_none() {
                return Permit::new(permit, &state.in_flight, &state.limit);
            }
        }
    }

    /// The current concurrency limit of `class`.
    pub(crate) fn concurrency(&self, class: Class) -> usize {
        self.classes[class.index()]
            .limit
            .size
            .lock()
            .map(|s| *s)
            .unwrap_or(1)
    }

    /// Resizes the concurrency limit of `class` (at least 1). Growing takes effect at once;
    /// shrinking takes permits back as requests in flight finish.
    pub(crate) fn set_concurrency(&self, class: Class, size: usize) {
        if let Some(mut learner) = self.learner(class) {
            learner.concurrency = size.max(1);
        }
        self.resize(class, size);
    }

    fn resize(&self, class: Class, size: usize) {
        let size = size.max(1);
        metrics::gauge!("facturapi_learned_concurrency", "class" => class.as_str())
            .set(size as f64);
        let limit = &self.classes[class.index()].limit;
        let Ok(mut current) = limit.size.lock() else {
            return;
        };
        if size > *current {
            limit.give(size - *current);
        } else if size < *current {
            limit.take_back(*current - size);
        }
        *current = size;
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
        let paused = governor.on_rate_limited(class, Instant::now(), &mut parked, later);
        assert!(paused, "a first 429 with nothing measured pauses the class");
        let _busy = governor.acquire(class).await;
        assert!(
            governor.try_acquire(class).is_none(),
            "unpaced: no replacement"
        );
        // Paced: it is replaced while it waits.
        governor.learner(class).expect("adaptive").rate = 1_000.0;
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
}
