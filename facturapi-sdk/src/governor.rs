//! Per-class concurrency and pausing: the part of the send path that keeps a burst of calls
//! inside Facturapi's per-class limits.
//!
//! Each [`Class`] has a semaphore (its concurrency limit, resizable at runtime) and a gate
//! (a time before which no request of the class starts: set by a 429's `Retry-After`, so one
//! 429 pauses the whole class, not just the request that got it).

use std::fmt;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

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
    /// The configured size; the semaphore may temporarily hold fewer permits while a
    /// shrink waits for requests in flight to finish.
    size: Mutex<usize>,
}

struct ClassState {
    limit: Limit,
    gate: Mutex<Option<Instant>>,
    policy: ClassPolicy,
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
    _permit: OwnedSemaphorePermit,
}

impl Governor {
    pub(crate) fn new(policies: &[ClassPolicy; 5]) -> Self {
        let classes = policies
            .iter()
            .map(|policy| ClassState {
                limit: Limit {
                    semaphore: Arc::new(Semaphore::new(policy.concurrency.max(1))),
                    size: Mutex::new(policy.concurrency.max(1)),
                },
                gate: Mutex::new(None),
                policy: policy.clone(),
            })
            .collect();
        Self { classes }
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
        let permit = self.classes[class.index()]
            .limit
            .semaphore
            .clone()
            .try_acquire_owned()
            .ok()?;
        Some(Permit { _permit: permit })
    }

    pub(crate) async fn acquire(&self, class: Class) -> Permit {
        let state = &self.classes[class.index()];
        loop {
            if let Some(until) = self.gate(class) {
                tokio::time::sleep_until(until).await;
            }
            // The semaphore is never closed, so acquisition only fails if it were.
            let Ok(permit) = state.limit.semaphore.clone().acquire_owned().await else {
                continue;
            };
            if self.gate(class).is_none() {
                return Permit { _permit: permit };
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
        let size = size.max(1);
        let limit = &self.classes[class.index()].limit;
        let Ok(mut current) = limit.size.lock() else {
            return;
        };
        if size > *current {
            limit.semaphore.add_permits(size - *current);
        } else if size < *current {
            let mut to_remove = *current - size;
            to_remove -= limit.semaphore.forget_permits(to_remove);
            if to_remove > 0
                && let Ok(runtime) = tokio::runtime::Handle::try_current()
            {
                // The rest are in flight: take them back as they are released. (Outside a
                // runtime nothing can be in flight, so this branch is not reached there.)
                let semaphore = limit.semaphore.clone();
                runtime.spawn(async move {
                    if let Ok(permits) = semaphore.acquire_many_owned(to_remove as u32).await {
                        permits.forget();
                    }
                });
            }
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
