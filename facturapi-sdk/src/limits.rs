//! The vocabulary of Facturapi's rate limits: the five operation classes it limits
//! separately ([`Class`]), the class of each operation ([`operations`]), how each class is
//! sent ([`ClassPolicy`]), and where its limits stand ([`Learned`]).
//!
//! Each class has a concurrency limit and, in adaptive mode (the default), a paced rate;
//! both are learned from 429s, since Facturapi does not publish its limits and changes them.
//! A class is not paced until its first rate cut, and only its first 429 pauses it, until
//! that 429's `Retry-After` ends (the unpaced burst before it took all the server had: a
//! measured one starts the paced schedule there, one too early to measure waits there
//! before measuring), unless it came after a second or more of unpaced sending: then the
//! callers' own demand met the limit, and the class is paced at once, just under what the
//! server accepted. In static mode
//! ([`ClientBuilder::static_limits`](crate::ClientBuilder::static_limits)) the limits are
//! the policies': their concurrency, and their [`rate`](ClassPolicy::rate) when set (the
//! class is paced at it from the first request).
//!
//! **The `Retry-After` rule**, in both modes: the request that got a 429 is not sent again
//! before its `Retry-After` ends, even when the learner expects the server to take it sooner
//! (Facturapi asks for it to be honoured, and rounds it up to whole seconds). It waits
//! holding its permit, at the head of its class; nothing else waits for it. In a paced class
//! its permit is handed to the next request meanwhile, so a 429 costs its caller the wait
//! and the class nothing. A caller with fewer workers than the limit allows has nothing to
//! overlap that wait with: there the SDK's answer is to pace so that the 429 does not come.

use std::fmt;
use std::time::Duration;

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

    pub(crate) fn index(self) -> usize {
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

/// How one class is sent: its concurrency limit, its rate in static mode and its retry schedule.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ClassPolicy {
    /// Requests of the class in flight at once (the starting point in adaptive mode).
    pub concurrency: usize,
    /// Most requests in flight that adaptive mode ever grows to (at least `concurrency`).
    pub max_concurrency: usize,
    /// Requests per second the class is paced at in static mode (`None`: not paced).
    /// Adaptive mode learns its own rate and does not read it.
    pub rate: Option<f64>,
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
            rate: None,
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

    /// Sets the rate static mode paces the class at, in requests per second (a positive,
    /// finite number: [`ClientBuilder::build`](crate::ClientBuilder::build) refuses others).
    pub fn with_rate(mut self, per_second: f64) -> Self {
        self.rate = Some(per_second);
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

/// Where one class's limits stand (see [`Client::learned`](crate::Client::learned)).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Learned {
    /// The paced rate, requests per second (`None` while not paced: in static mode without
    /// a policy [`rate`](ClassPolicy::rate), and in adaptive mode until the first rate cut). With shared limits: the fleet's, as this
    /// process last saw it, and likewise the concurrency limit and the cuts below.
    pub rate: Option<f64>,
    /// The concurrency limit.
    pub concurrency: usize,
    /// Requests of this client in flight now.
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
    /// The limits are the fleet's, shared through Redis (see
    /// [`ClientBuilder::shared_limits`](crate::ClientBuilder::shared_limits)); false without
    /// shared limits and while Redis does not answer (the process's own limits apply).
    pub shared: bool,
}
