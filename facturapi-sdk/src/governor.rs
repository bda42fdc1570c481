//! Per-class concurrency, pacing and pausing: the part of the send path that keeps a burst of
//! calls inside Facturapi's per-class limits.
//!
//! Each [`Class`] has a semaphore (its concurrency limit, resizable at runtime) and a gate
//! (a time before which no request of the class starts: set by a 429's `Retry-After`, so one
//! 429 pauses the whole class, not just the request that got it). In adaptive mode (opt-in,
//! [`ClientBuilder::adaptive_limits`](crate::ClientBuilder::adaptive_limits))
//! each class also has a paced rate, and both the rate and the concurrency limit are
//! learned from 429s (the `adaptive` module); [`Learned`] shows where they stand.

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
    /// Requests of the class in flight at once.
    pub concurrency: usize,
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
                ..base
            },
            Class::ListRead | Class::Create | Class::Write => base,
            Class::HeavyWrite => ClassPolicy {
                concurrency: 2,
                min_delay: Duration::from_secs(1),
                max_delay: Duration::from_secs(30),
                deadline: Duration::from_secs(300),
                ..base
            },
        }
    }

    /// Sets the concurrency limit (at least 1).
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
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
        let to_remove = n - self.semaphore.forget_permits(n);
        self.debt.fetch_add(to_remove, Ordering::Relaxed);
    }

    /// Adds `n` permits, first cancelling what a shrink still had to take back.
    fn give(&self, n: usize) {
        let mut paid = 0;
        let _ = self
            .debt
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |debt| {
                paid = debt.min(n);
                Some(debt - paid)
            });
        self.semaphore.add_permits(n - paid);
    }
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
    /// The class's shrink debt: a permit released while it is due is forgotten.
    debt: Arc<AtomicUsize>,
    in_flight: Arc<AtomicUsize>,
    /// Counted in `in_flight`: false while the holder waits out a `Retry-After`.
    counted: bool,
    /// Requests of the class in flight when this one was sent, itself included.
    level: usize,
}

impl Permit {
    fn new(permit: OwnedSemaphorePermit, in_flight: &Arc<AtomicUsize>, limit: &Limit) -> Self {
        let level = in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        Permit {
            permit: Some(permit),
            debt: limit.debt.clone(),
            in_flight: in_flight.clone(),
            counted: true,
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

    fn active(&mut self) {
        if !std::mem::replace(&mut self.counted, true) {
            self.level = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.idle();
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
                learner: adaptive.then(|| Mutex::new(Learner::new(policy.concurrency, now))),
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
    pub(crate) fn on_success(&self, class: Class, permit: &Permit) {
        let state = &self.classes[class.index()];
        let grown = {
            let Some(mut learner) = self.learner(class) else {
                return;
            };
            let before = learner.rate;
            let grown = learner.on_success(
                Instant::now(),
                state.queued.load(Ordering::Relaxed) > 0,
                permit.level(),
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
    /// In static mode, always. In adaptive mode, only while the learner cannot tell a rate
    /// from a cap yet: otherwise its cut is the answer, and the request that got the 429
    /// alone waits out its `Retry-After` (at the head of the class). A pause of the class
    /// costs a whole second of its capacity for a `Retry-After` that Facturapi rounds up to
    /// whole seconds; on the rate-limit benchmark it was the largest loss.
    pub(crate) fn on_rate_limited(
        &self,
        class: Class,
        sent_at: Instant,
        permit: &Permit,
        until: Instant,
    ) -> bool {
        let state = &self.classes[class.index()];
        state.rate_limited.fetch_add(1, Ordering::Relaxed);
        let cut = {
            let Some(mut learner) = self.learner(class) else {
                return true;
            };
            learner.on_rate_limited(Instant::now(), sent_at, permit.level(), until)
        };
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
