//! The sandbox's hidden limits: per (identity, class) token bucket, fixed window and
//! concurrency cap, scaled by the schedule.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{ClassLimits, LimitChange};
use crate::limits::Class;

fn index(class: Class) -> usize {
    Class::ALL.iter().position(|c| *c == class).unwrap_or(0)
}

#[derive(Debug)]
struct Slot {
    tokens: f64,
    refilled: Instant,
    window_start: Instant,
    window_count: u32,
    in_flight: u32,
}

#[derive(Debug, Default)]
struct Inner {
    slots: HashMap<(String, Class), Slot>,
    class_in_flight: [u32; 5],
    class_max: [u32; 5],
    /// Requests refused because their identity had its cap in progress already.
    class_over_cap: [u64; 5],
}

#[derive(Debug)]
pub(crate) struct Limits {
    config: BTreeMap<Class, ClassLimits>,
    schedule: Vec<LimitChange>,
    start: Instant,
    inner: Mutex<Inner>,
}

impl Limits {
    pub(crate) fn new(
        config: BTreeMap<Class, ClassLimits>,
        mut schedule: Vec<LimitChange>,
    ) -> Self {
        schedule.sort_by_key(|c| c.at);
        Self {
            config,
            schedule,
            start: Instant::now(),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves counters that are still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn factor(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.start);
        self.schedule
            .iter()
            .rev()
            .find(|c| c.at <= elapsed)
            .map_or(1.0, |c| c.factor)
    }

    fn at(&self, class: Class, now: Instant) -> Option<ClassLimits> {
        let base = *self.config.get(&class)?;
        let f = self.factor(now);
        let scale = |n: u32| ((f64::from(n) * f).round() as u32).max(1);
        Some(ClassLimits {
            token_bucket: base
                .token_bucket
                .map(|(rate, burst)| (rate * f, (burst * f).max(1.0))),
            fixed_window: base.fixed_window.map(|(n, w)| (scale(n), w)),
            concurrency: base.concurrency.map(scale),
        })
    }

    /// The limits of `class` in force now.
    pub(crate) fn current(&self, class: Class) -> Option<ClassLimits> {
        self.at(class, Instant::now())
    }

    /// Admits a request, or says how long until it could be.
    pub(crate) fn admit(
        self: &Arc<Self>,
        identity: &str,
        class: Class,
    ) -> Result<InFlight, Duration> {
        let now = Instant::now();
        let limits = self.at(class, now);
        let mut inner = self.lock();
        let key = (identity.to_owned(), class);
        let slot = inner.slots.entry(key.clone()).or_insert_with(|| Slot {
            tokens: limits
                .and_then(|l| l.token_bucket)
                .map_or(0.0, |(_, burst)| burst),
            refilled: now,
            window_start: now,
            window_count: 0,
            in_flight: 0,
        });
        if let Some(limits) = limits {
            if let Some(max) = limits.concurrency
                && slot.in_flight >= max
            {
                inner.class_over_cap[index(class)] += 1;
                return Err(Duration::from_secs(1));
            }
            if let Some((max, window)) = limits.fixed_window {
                let since = now.saturating_duration_since(slot.window_start);
                if since >= window {
                    let windows = (since.as_nanos() / window.as_nanos().max(1)) as u32;
                    slot.window_start += window * windows;
                    slot.window_count = 0;
                }
                if slot.window_count >= max {
                    return Err((slot.window_start + window).saturating_duration_since(now));
                }
            }
            if let Some((rate, burst)) = limits.token_bucket {
                let elapsed = now.saturating_duration_since(slot.refilled).as_secs_f64();
                slot.tokens = (slot.tokens + elapsed * rate).min(burst);
                slot.refilled = now;
                if slot.tokens < 1.0 {
                    return Err(Duration::from_secs_f64(
                        (1.0 - slot.tokens) / rate.max(1e-9),
                    ));
                }
                slot.tokens -= 1.0;
            }
            slot.window_count += 1;
        }
        slot.in_flight += 1;
        let i = index(class);
        inner.class_in_flight[i] += 1;
        inner.class_max[i] = inner.class_max[i].max(inner.class_in_flight[i]);
        Ok(InFlight {
            limits: self.clone(),
            key,
        })
    }

    /// The most requests in progress at once per class, and the requests refused per class
    /// because their cap was full.
    pub(crate) fn in_flight_counts(&self) -> (BTreeMap<Class, u32>, BTreeMap<Class, u64>) {
        let inner = self.lock();
        let max = Class::ALL.map(|c| (c, inner.class_max[index(c)]));
        let over_cap = Class::ALL.map(|c| (c, inner.class_over_cap[index(c)]));
        (max.into(), over_cap.into())
    }
}

/// An admitted request; counts against the concurrency cap until dropped.
#[derive(Debug)]
pub(crate) struct InFlight {
    limits: Arc<Limits>,
    key: (String, Class),
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut inner = self.limits.lock();
        if let Some(slot) = inner.slots.get_mut(&self.key) {
            slot.in_flight = slot.in_flight.saturating_sub(1);
        }
        let i = index(self.key.1);
        inner.class_in_flight[i] = inner.class_in_flight[i].saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(class_limits: ClassLimits) -> Arc<Limits> {
        Arc::new(Limits::new(
            BTreeMap::from([(Class::Create, class_limits)]),
            Vec::new(),
        ))
    }

    #[test]
    fn token_bucket_admits_the_burst_then_says_when_the_next_token_comes() {
        let l = limits(ClassLimits::rate(2.0, 3.0));
        let held: Vec<_> = (0..3)
            .map(|_| l.admit("k", Class::Create).unwrap())
            .collect();
        let wait = l.admit("k", Class::Create).unwrap_err();
        assert!(
            wait > Duration::from_millis(400) && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
        // Another identity has its own bucket; another class is unlimited.
        assert!(l.admit("other", Class::Create).is_ok());
        assert!(l.admit("k", Class::DetailRead).is_ok());
        drop(held);
    }

    #[test]
    fn concurrency_cap_counts_requests_until_they_finish() {
        let l = limits(ClassLimits::concurrency_only(2));
        let a = l.admit("k", Class::Create).unwrap();
        let _b = l.admit("k", Class::Create).unwrap();
        assert_eq!(
            l.admit("k", Class::Create).unwrap_err(),
            Duration::from_secs(1)
        );
        drop(a);
        assert!(l.admit("k", Class::Create).is_ok());
        let (max, over_cap) = l.in_flight_counts();
        assert_eq!((max[&Class::Create], over_cap[&Class::Create]), (2, 1));
    }

    #[test]
    fn fixed_window_refuses_until_the_window_ends() {
        let l = limits(ClassLimits::window(2, Duration::from_secs(60)));
        drop(l.admit("k", Class::Create).unwrap());
        drop(l.admit("k", Class::Create).unwrap());
        let wait = l.admit("k", Class::Create).unwrap_err();
        assert!(wait > Duration::from_secs(59), "{wait:?}");
    }

    #[test]
    fn schedule_scales_every_limit() {
        let l = Limits::new(
            BTreeMap::from([(Class::Create, ClassLimits::rate(10.0, 4.0).concurrent(4))]),
            vec![LimitChange {
                at: Duration::ZERO,
                factor: 0.5,
            }],
        );
        let now = l.current(Class::Create).unwrap();
        assert_eq!(now.token_bucket, Some((5.0, 2.0)));
        assert_eq!(now.concurrency, Some(2));
    }
}
