//! A bulk run's progress: counters the run updates and callers read at any time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::{Class, Client};

/// A handle on a bulk run's progress; cheap to clone. Read it with [`Progress::snapshot`]
/// or wait for changes with [`Progress::subscribe`].
#[derive(Debug, Clone)]
pub struct Progress {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: Client,
    started: Instant,
    rate_limited_at_start: u64,
    total: AtomicU64,
    created: AtomicU64,
    skipped: AtomicU64,
    failed: AtomicU64,
    unknown: AtomicU64,
    in_flight: AtomicU64,
    finished: AtomicU64,
    notify: tokio::sync::watch::Sender<u64>,
}

/// A bulk run's progress at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Snapshot {
    /// Items in the input, when known ([`Bulk::total`](super::Bulk::total) or an exact
    /// size hint).
    pub total: Option<u64>,
    /// Documents this run created (or found created by an earlier, interrupted run).
    pub created: u64,
    /// Items skipped because the journal says an earlier run created them.
    pub skipped: u64,
    /// Items certainly not created (the API refused them).
    pub failed: u64,
    /// Items whose outcome is unknown after every resend: the next run settles them.
    pub unknown: u64,
    /// Items being worked on now.
    pub in_flight: u64,
    /// Items not started yet (when the total is known).
    pub queued: Option<u64>,
    /// Items finished per second since the run started.
    pub rate: f64,
    /// Time left at that rate (when the total is known and the rate is not zero).
    pub eta: Option<Duration>,
    /// 429s the creation class received since the run started (by any user of the client).
    pub rate_limited: u64,
    /// Time since the run started.
    pub elapsed: Duration,
    /// Whether the run has ended: the input ran out and every item is done, or the run
    /// stopped (its journal failed, or its stream was dropped). `done() < total` tells the
    /// two apart.
    pub finished: bool,
}

impl Snapshot {
    /// Items finished, whatever their outcome.
    pub fn done(&self) -> u64 {
        self.created + self.skipped + self.failed + self.unknown
    }
}

/// How an item ended, for the counters.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ended {
    Created,
    Skipped,
    Failed,
    Unknown,
}

impl Progress {
    pub(crate) fn new(client: &Client, total: Option<u64>) -> Self {
        let (notify, _) = tokio::sync::watch::channel(0);
        Self {
            inner: Arc::new(Inner {
                client: client.clone(),
                started: Instant::now(),
                rate_limited_at_start: client.learned(Class::Create).rate_limited,
                total: AtomicU64::new(total.unwrap_or(u64::MAX)),
                created: AtomicU64::new(0),
                skipped: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                unknown: AtomicU64::new(0),
                in_flight: AtomicU64::new(0),
                finished: AtomicU64::new(0),
                notify,
            }),
        }
    }

    pub(crate) fn started(&self) {
        self.inner.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn ended(&self, how: Ended) {
        let counter = match how {
            Ended::Created => &self.inner.created,
            Ended::Skipped => &self.inner.skipped,
            Ended::Failed => &self.inner.failed,
            Ended::Unknown => &self.inner.unknown,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.inner.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.changed();
    }

    /// Marks the run ended (see [`Snapshot::finished`]).
    pub(crate) fn finish(&self) {
        self.inner.finished.store(1, Ordering::Relaxed);
        let done = self.snapshot().done();
        if self.inner.total.load(Ordering::Relaxed) == u64::MAX {
            self.inner.total.store(done, Ordering::Relaxed);
        }
        self.changed();
    }

    fn changed(&self) {
        self.inner.notify.send_modify(|n| *n += 1);
    }

    /// The progress now.
    pub fn snapshot(&self) -> Snapshot {
        let i = &self.inner;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let total = Some(load(&i.total)).filter(|t| *t != u64::MAX);
        let (created, skipped, failed, unknown) = (
            load(&i.created),
            load(&i.skipped),
            load(&i.failed),
            load(&i.unknown),
        );
        let in_flight = load(&i.in_flight);
        let done = created + skipped + failed + unknown;
        let elapsed = i.started.elapsed();
        let rate = done as f64 / elapsed.as_secs_f64().max(1e-3);
        let queued = total.map(|t| t.saturating_sub(done + in_flight));
        let eta = total
            .filter(|_| rate > 0.0)
            .map(|t| Duration::from_secs_f64(t.saturating_sub(done) as f64 / rate));
        Snapshot {
            total,
            created,
            skipped,
            failed,
            unknown,
            in_flight,
            queued,
            rate,
            eta,
            rate_limited: i
                .client
                .learned(Class::Create)
                .rate_limited
                .saturating_sub(i.rate_limited_at_start),
            elapsed,
            finished: load(&i.finished) == 1,
        }
    }

    /// The changes of this run's progress, as they happen.
    pub fn subscribe(&self) -> Updates {
        Updates {
            progress: self.clone(),
            rx: self.inner.notify.subscribe(),
            finished: false,
        }
    }
}

/// The changes of a bulk run's progress: [`Progress::subscribe`]. Changes that arrive while
/// the subscriber is busy are merged into the next snapshot.
#[derive(Debug)]
pub struct Updates {
    progress: Progress,
    rx: tokio::sync::watch::Receiver<u64>,
    finished: bool,
}

impl Updates {
    /// Waits for the next change (an item ended, or the run finished) and returns the
    /// snapshot then; `None` after the snapshot that reported the run finished.
    pub async fn next(&mut self) -> Option<Snapshot> {
        if self.finished {
            return None;
        }
        self.rx.changed().await.ok()?;
        let snapshot = self.progress.snapshot();
        self.finished = snapshot.finished;
        Some(snapshot)
    }
}

/// An `indicatif` progress bar that follows `progress` until the run ends (cargo feature
/// `indicatif`). Spawns a task on the current tokio runtime that redraws it ten times a
/// second.
#[cfg(feature = "indicatif")]
pub fn progress_bar(progress: &Progress) -> indicatif::ProgressBar {
    let snapshot = progress.snapshot();
    let bar = indicatif::ProgressBar::new(snapshot.total.unwrap_or(0));
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} · {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    let (progress, shown) = (progress.clone(), bar.clone());
    tokio::spawn(async move {
        loop {
            let s = progress.snapshot();
            if let Some(total) = s.total {
                shown.set_length(total);
            }
            shown.set_position(s.done());
            shown.set_message(format!(
                "{:.1}/s · {} failed · {} unknown · {} in flight · {} 429s",
                s.rate, s.failed, s.unknown, s.in_flight, s.rate_limited
            ));
            if s.finished {
                shown.finish_and_clear();
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    bar
}
