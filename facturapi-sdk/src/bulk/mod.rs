//! Bulk creation: many invoices (or receipts, or retentions), each exactly once, at the rate
//! the API allows, resumable after a crash.
//!
//! A [`Bulk`] run takes a stream of `(external_id, body)` items and creates one document per
//! item. Each item's idempotency key is derived from its `external_id` and the run's scope
//! (the organization), so sending an item again, in this run or any later one, returns the
//! document the first send created instead of creating a second. Sends go through the
//! client's creation class, so its rate and concurrency limits bound them; the run holds at
//! most [`Bulk::window`] items at a time and never the whole input.
//!
//! With a [`Journal`] (the embedded [`FileJournal`], or your own store), each item's state is
//! recorded before its request goes out and after its outcome is known. A run started on the
//! same journal skips what was created and settles what may have been: it looks the item up
//! by `external_id` (invoices), then resends it with the same key, which returns the original
//! document if there is one.
//!
//! ```
//! use facturapi_sdk::bulk::{Bulk, FileJournal, ItemResult, Reuse};
//! use facturapi_sdk::{Client, models};
//! use futures_util::StreamExt as _;
//! use serde_json::json;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let sandbox = facturapi_sdk::sandbox::Sandbox::start(Default::default()).await?;
//! # let client = Client::builder().api_key(sandbox.test_key()).base_url(sandbox.base_url()).build()?;
//! # let dir = std::env::temp_dir().join(format!("bulk-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! # let journal_path = dir.join("month-end.journal");
//! // let client = Client::from_env()?;
//! let reuse = Reuse::new(&client); // each customer and product created once, then reused
//! let customer = reuse
//!     .customer(&serde_json::from_value(json!({
//!         "legal_name": "PUBLICO EN GENERAL", "tax_id": "XAXX010101000",
//!         "tax_system": "616", "address": {"zip": "86500"},
//!     }))?)
//!     .await?;
//! let orders = (1..=3).map(move |n| {
//!     let body: models::InvoiceCreateInput = serde_json::from_value(json!({
//!         "customer": customer, "payment_form": "03",
//!         "items": [{"product": {"description": "Servicio", "product_key": "81112100",
//!                                "price": 100.0 * n as f64}}],
//!     }))
//!     .expect("an invoice body");
//!     (format!("order-{n}"), body) // (external_id, body)
//! });
//!
//! let mut run = Bulk::invoices(&client)
//!     .organization("my-organization-id") // the scope of the derived idempotency keys
//!     .journal(FileJournal::open(&journal_path)?)
//!     .run_iter(orders)
//!     .await?;
//! while let Some(outcome) = run.next().await {
//!     let outcome = outcome?; // a journal that cannot be written stops the run
//!     match outcome.result {
//!         ItemResult::Created { id, .. } | ItemResult::Skipped { id } => {
//!             println!("{} → {id}", outcome.external_id)
//!         }
//!         ItemResult::Failed { error } => println!("{}: fix, run again: {error}", outcome.external_id),
//!         ItemResult::Unknown { error } => println!("{}: run again to settle: {error}", outcome.external_id),
//!         _ => {}
//!     }
//! }
//! assert_eq!(run.progress().snapshot().created, 3);
//! # std::fs::remove_dir_all(dir)?;
//! # Ok(()) }
//! ```

mod journal;
mod progress;
mod reuse;

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use backon::{BackoffBuilder as _, ExponentialBuilder};
use futures_core::Stream;
use futures_util::StreamExt as _;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::{Client, Error, models};

pub use journal::{
    Durability, Entry, FileJournal, Header, ItemState, Journal, JournalError, JournalFuture,
    MemoryJournal, Recorded,
};
#[cfg(feature = "indicatif")]
pub use progress::progress_bar;
pub use progress::{Progress, Snapshot, Updates};
pub use reuse::Reuse;

use progress::Ended;

/// What a bulk run creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// `POST /invoices`.
    Invoices,
    /// `POST /receipts`.
    Receipts,
    /// `POST /retentions`.
    Retentions,
}

impl Kind {
    /// `invoices`, `receipts` or `retentions`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Invoices => "invoices",
            Kind::Receipts => "receipts",
            Kind::Retentions => "retentions",
        }
    }

    fn create_operation(self) -> &'static str {
        match self {
            Kind::Invoices => "createInvoice",
            Kind::Receipts => "createReceipt",
            Kind::Retentions => "createRetention",
        }
    }

    /// The list operation that filters by `external_id`, for the kinds that have one.
    fn find_operation(self) -> Option<&'static str> {
        match self {
            Kind::Invoices => Some("listInvoices"),
            Kind::Receipts | Kind::Retentions => None,
        }
    }
}

/// A bulk run being configured: [`Bulk::invoices`], [`Bulk::receipts`],
/// [`Bulk::retentions`]. `B` is the body type of one item.
pub struct Bulk<B> {
    client: Client,
    kind: Kind,
    journal: Option<Arc<dyn Journal>>,
    scope: Option<String>,
    ordered: bool,
    window: usize,
    resends: usize,
    total: Option<u64>,
    body: PhantomData<fn(B)>,
}

impl<B> fmt::Debug for Bulk<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bulk")
            .field("kind", &self.kind)
            .field("journal", &self.journal)
            .field("scope", &self.scope)
            .field("ordered", &self.ordered)
            .field("window", &self.window)
            .field("resends", &self.resends)
            .finish_non_exhaustive()
    }
}

impl Bulk<models::InvoiceCreateInput> {
    /// A run creating invoices (`createInvoice`).
    pub fn invoices(client: &Client) -> Self {
        Self::new(client, Kind::Invoices)
    }
}

impl Bulk<models::ReceiptInput> {
    /// A run creating receipts (`createReceipt`).
    pub fn receipts(client: &Client) -> Self {
        Self::new(client, Kind::Receipts)
    }
}

impl Bulk<models::RetentionInput> {
    /// A run creating retentions (`createRetention`).
    pub fn retentions(client: &Client) -> Self {
        Self::new(client, Kind::Retentions)
    }
}

/// The default number of items a run works on at once.
pub const DEFAULT_WINDOW: usize = 64;
/// The default number of job-level resends of an item whose outcome is unknown.
pub const DEFAULT_RESENDS: usize = 8;

impl<B> Bulk<B> {
    fn new(client: &Client, kind: Kind) -> Self {
        Self {
            client: client.clone(),
            kind,
            journal: None,
            scope: None,
            ordered: false,
            window: DEFAULT_WINDOW,
            resends: DEFAULT_RESENDS,
            total: None,
            body: PhantomData,
        }
    }

    /// The scope idempotency keys are derived in: your organization's id. Two organizations
    /// (or two scopes) never derive the same key for the same `external_id`. Without it the
    /// scope is a salted hash of the API key, so a run resumed with a renewed key would
    /// derive new keys; a journal pins the scope its first run used, whatever later runs
    /// say.
    pub fn organization(mut self, id: impl Into<String>) -> Self {
        self.scope = Some(id.into());
        self
    }

    /// Records every item's state in `journal`, and skips or settles what it recorded before.
    pub fn journal(mut self, journal: impl Journal + 'static) -> Self {
        self.journal = Some(Arc::new(journal));
        self
    }

    /// Outcomes in input order (default: in the order items finish). An item that takes long
    /// holds back the outcomes after it, and the window does not refill past it.
    pub fn in_input_order(mut self) -> Self {
        self.ordered = true;
        self
    }

    /// How many items the run works on at once (default [`DEFAULT_WINDOW`], at least 1). The
    /// creation class's own limits decide how many requests are in flight; the window only
    /// bounds how much of the input is held in memory, and should be at least the class's
    /// concurrency.
    pub fn window(mut self, items: usize) -> Self {
        self.window = items.max(1);
        self
    }

    /// How many times an item whose outcome is unknown (a failure after which the document
    /// may exist: a 5xx, a timeout, a dropped connection, `409 idempotency_key_in_use`, or
    /// 429s past the retry budget) is sent again with the same key, after the SDK's own
    /// retries, with exponential backoff and jitter (default [`DEFAULT_RESENDS`]). After that
    /// it is reported as [`ItemResult::Unknown`]; a later run on the same journal settles it.
    pub fn resends(mut self, times: usize) -> Self {
        self.resends = times;
        self
    }

    /// The number of items in the input, for [`Snapshot::queued`] and [`Snapshot::eta`] when
    /// the stream's size hint does not say.
    pub fn total(mut self, items: u64) -> Self {
        self.total = Some(items);
        self
    }
}

impl<B: Serialize + Send + 'static> Bulk<B> {
    /// [`Bulk::run`] over an iterator.
    pub async fn run_iter<I>(self, items: I) -> Result<Run, JournalError>
    where
        I: IntoIterator<Item = (String, B)>,
        I::IntoIter: Send + 'static,
    {
        self.run(futures_util::stream::iter(items)).await
    }

    /// Starts the run: reads the journal, then returns the stream of outcomes. Items are taken
    /// from `items` as the window has room, so the input is never held whole.
    ///
    /// Dropping the stream stops the run; items in flight then may or may not have been
    /// created, and their journal entries say `Sent`, so a later run settles them.
    pub async fn run<S>(self, items: S) -> Result<Run, JournalError>
    where
        S: Stream<Item = (String, B)> + Send + 'static,
    {
        let recorded = match &self.journal {
            Some(journal) => journal.load().await?,
            None => Recorded::default(),
        };
        let scope = match &recorded.header {
            Some(header) if header.kind != self.kind.as_str() => {
                return Err(JournalError::KindMismatch {
                    path: format!("{:?}", self.journal),
                    recorded: header.kind.clone(),
                    wanted: self.kind.as_str().to_owned(),
                });
            }
            Some(header) => {
                if self
                    .scope
                    .as_ref()
                    .is_some_and(|scope| *scope != header.scope)
                {
                    tracing::warn!(
                        "bulk: the journal's scope is used, not the one configured: keys stay \
                         those of the journal's first run"
                    );
                }
                header.scope.clone()
            }
            None => {
                let scope = self
                    .scope
                    .clone()
                    .unwrap_or_else(|| key_scope(self.client.inner.key.secret()));
                if let Some(journal) = &self.journal {
                    let header = Header {
                        kind: self.kind.as_str().to_owned(),
                        scope: scope.clone(),
                    };
                    journal.record(&Entry::Header { header }).await?;
                }
                scope
            }
        };
        let total = self.total.or_else(|| match items.size_hint() {
            (low, Some(high)) if low == high => Some(low as u64),
            _ => None,
        });
        let progress = Progress::new(&self.client, total);
        let ctx = Arc::new(Ctx {
            client: self.client,
            kind: self.kind,
            journal: self.journal,
            scope,
            prior: recorded.items,
            resends: self.resends,
            progress: progress.clone(),
        });
        let work = items.enumerate().map(move |(index, (external_id, body))| {
            let ctx = ctx.clone();
            async move { ctx.item(index as u64, external_id, body).await }
        });
        let outcomes = if self.ordered {
            work.buffered(self.window).boxed()
        } else {
            work.buffer_unordered(self.window).boxed()
        };
        Ok(Run {
            outcomes,
            progress,
            ended: false,
        })
    }
}

/// A bulk run's outcomes, one per item: a [`Stream`]. Its first `Err` (the journal could not
/// be written) is its last item.
pub struct Run {
    outcomes: Pin<Box<dyn Stream<Item = Result<ItemOutcome, JournalError>> + Send>>,
    progress: Progress,
    ended: bool,
}

impl fmt::Debug for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Run")
            .field("progress", &self.progress.snapshot())
            .finish_non_exhaustive()
    }
}

/// A run dropped before its end stops: its progress says so, and subscribers are told.
impl Drop for Run {
    fn drop(&mut self) {
        if !self.ended {
            self.progress.finish();
        }
    }
}

impl Run {
    /// The run's progress, to poll or subscribe to (from another task).
    pub fn progress(&self) -> Progress {
        self.progress.clone()
    }
}

impl Stream for Run {
    type Item = Result<ItemOutcome, JournalError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let next = self.outcomes.as_mut().poll_next(cx);
        match &next {
            Poll::Ready(None) => {
                self.ended = true;
                self.progress.finish();
            }
            Poll::Ready(Some(Err(_))) => {
                self.ended = true;
                self.progress.finish();
            }
            _ => {}
        }
        next
    }
}

/// One item's outcome.
#[derive(Debug)]
#[non_exhaustive]
pub struct ItemOutcome {
    /// The item's place in the input, from 0.
    pub index: u64,
    /// Its `external_id`.
    pub external_id: String,
    /// What happened.
    pub result: ItemResult,
}

/// What happened to one item.
#[derive(Debug)]
#[non_exhaustive]
pub enum ItemResult {
    /// The document exists: this run created it, or found the one an interrupted run created.
    Created {
        /// Its id.
        id: String,
        /// Whether Facturapi is still finishing it (a `pending` document: do not create it
        /// again; its final status arrives by webhook or by reading it).
        pending: bool,
    },
    /// The journal says an earlier run created it; nothing was sent.
    Skipped {
        /// Its id.
        id: String,
    },
    /// Certainly not created: the API refused it (a validation error, a key that may not
    /// create it, 429s before it was ever processed) or the item is malformed. Fix the cause
    /// and run again: nothing will be created twice.
    Failed {
        /// Why.
        error: Error,
    },
    /// Perhaps created: every resend failed too. Run again on the same journal to settle it.
    Unknown {
        /// The last error.
        error: Error,
    },
}

struct Ctx {
    client: Client,
    kind: Kind,
    journal: Option<Arc<dyn Journal>>,
    scope: String,
    prior: HashMap<String, ItemState>,
    resends: usize,
    progress: Progress,
}

impl Ctx {
    async fn item(
        &self,
        index: u64,
        external_id: String,
        body: impl Serialize,
    ) -> Result<ItemOutcome, JournalError> {
        self.progress.started();
        let result = self.settle_or_create(&external_id, body).await;
        let ended = match &result {
            Ok(ItemResult::Created { .. }) => Ended::Created,
            Ok(ItemResult::Skipped { .. }) => Ended::Skipped,
            Ok(ItemResult::Failed { .. }) => Ended::Failed,
            Ok(ItemResult::Unknown { .. }) | Err(_) => Ended::Unknown,
        };
        self.progress.ended(ended);
        Ok(ItemOutcome {
            index,
            external_id,
            result: result?,
        })
    }

    async fn settle_or_create(
        &self,
        external_id: &str,
        body: impl Serialize,
    ) -> Result<ItemResult, JournalError> {
        match self.prior.get(external_id) {
            Some(ItemState::Created { id, .. }) => {
                return Ok(ItemResult::Skipped { id: id.clone() });
            }
            Some(ItemState::Sent | ItemState::Unknown) => {
                if let Some(id) = self.find(external_id).await {
                    self.record(external_id, created(&id, false)).await?;
                    return Ok(ItemResult::Created { id, pending: false });
                }
            }
            _ => {}
        }
        let body = match self.prepare(external_id, body) {
            Ok(body) => body,
            Err(error) => return Ok(ItemResult::Failed { error }),
        };
        self.record(external_id, ItemState::Sent).await?;
        let result = self.create(&body).await;
        let state = match &result {
            ItemResult::Created { id, pending } => created(id, *pending),
            ItemResult::Failed { .. } => ItemState::Failed,
            ItemResult::Unknown { .. } | ItemResult::Skipped { .. } => ItemState::Unknown,
        };
        self.record(external_id, state).await?;
        Ok(result)
    }

    /// The body as JSON with the item's `external_id` and idempotency key set.
    fn prepare(&self, external_id: &str, body: impl Serialize) -> Result<Value, Error> {
        let op = self.kind.create_operation();
        let invalid = |message: String| Error::InvalidInput {
            operation_id: op,
            message,
        };
        if external_id.trim().is_empty() {
            return Err(invalid("an item's external_id is empty".into()));
        }
        let mut body = serde_json::to_value(body).map_err(|e| invalid(e.to_string()))?;
        let Some(fields) = body.as_object_mut() else {
            return Err(invalid(format!(
                "{external_id}: the body is not a JSON object"
            )));
        };
        match fields.get("external_id") {
            None | Some(Value::Null) => {
                fields.insert("external_id".into(), external_id.into());
            }
            Some(Value::String(own)) if own == external_id => {}
            Some(own) => {
                return Err(invalid(format!(
                    "{external_id}: the body's own external_id {own} differs from the item's"
                )));
            }
        }
        // A body that brings its own key keeps it: the caller has chosen how its items are
        // told apart.
        let has_key = fields
            .get("idempotency_key")
            .and_then(Value::as_str)
            .is_some_and(|k| !k.is_empty());
        if !has_key {
            let key = idempotency_key(&self.scope, self.kind, external_id);
            fields.insert("idempotency_key".into(), key.into());
        }
        Ok(body)
    }

    /// Sends the creation, resending with the same key while the outcome is unknown.
    async fn create(&self, body: &Value) -> ItemResult {
        let op = self.kind.create_operation();
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(5))
            .with_max_times(self.resends)
            .with_jitter()
            .build();
        let mut may_exist = false;
        loop {
            let answer = match self.client.raw(op) {
                Ok(call) => call.body(body).json().await,
                Err(e) => Err(e),
            };
            // `processed`: the API certainly acted on it (a 2xx it could not read); the resend
            // with the same key returns the document.
            let (error, processed) = match answer {
                Ok(doc) => match doc.get("id").and_then(Value::as_str) {
                    Some(id) => {
                        let pending = doc.get("status").and_then(Value::as_str) == Some("pending");
                        return ItemResult::Created {
                            id: id.to_owned(),
                            pending,
                        };
                    }
                    None => {
                        let message = "the API answered 2xx without the document's id".into();
                        (
                            Error::InvalidInput {
                                operation_id: op,
                                message,
                            },
                            true,
                        )
                    }
                },
                Err(e) => match e.created_id() {
                    // Created, its body unreadable: the error carries the id.
                    Some(id) if e.was_processed() => {
                        return ItemResult::Created {
                            id: id.to_owned(),
                            pending: false,
                        };
                    }
                    _ => {
                        let processed = e.was_processed();
                        (e, processed)
                    }
                },
            };
            may_exist |= processed || error.may_have_been_processed();
            if (processed || resendable(&error))
                && let Some(delay) = delays.next()
            {
                tracing::debug!(operation = op, ?delay, error = %error, "bulk: resending with the same key");
                tokio::time::sleep(delay).await;
                continue;
            }
            return if may_exist {
                ItemResult::Unknown { error }
            } else {
                ItemResult::Failed { error }
            };
        }
    }

    /// The id of the document an earlier run created for `external_id`, if the API lists
    /// one. `None` when it lists none, when the kind has no such filter, or when the lookup
    /// fails (the resend with the same key settles it then).
    async fn find(&self, external_id: &str) -> Option<String> {
        let op = self.kind.find_operation()?;
        let call = self.client.raw(op).ok()?;
        let found = call
            .query("external_id", external_id)
            .query("limit", &10)
            .json()
            .await
            .ok()?;
        found
            .get("data")?
            .as_array()?
            .iter()
            .find(|doc| doc.get("external_id").and_then(Value::as_str) == Some(external_id))?
            .get("id")?
            .as_str()
            .map(str::to_owned)
    }

    async fn record(&self, external_id: &str, state: ItemState) -> Result<(), JournalError> {
        match &self.journal {
            Some(journal) => {
                let entry = Entry::Item {
                    external_id: external_id.to_owned(),
                    state,
                };
                journal.record(&entry).await
            }
            None => Ok(()),
        }
    }
}

fn created(id: &str, pending: bool) -> ItemState {
    ItemState::Created {
        id: id.to_owned(),
        pending,
    }
}

/// Failures after which the same keyed request may be sent again: its key makes a second
/// send return the first one's document.
fn resendable(error: &Error) -> bool {
    match error {
        Error::Api(api) => api.status >= 500 || api.status == 409 || api.status == 429,
        Error::Timeout { .. } | Error::Transport { .. } | Error::RateLimited { .. } => true,
        Error::BodyTooLarge { .. } | Error::Decode(_) => true,
        other => other.may_have_been_processed() && !matches!(other, Error::Redirect { .. }),
    }
}

/// The idempotency key of one item: a hash of the scope, the kind and the `external_id`, so
/// the same item always gets the same key and different scopes never share one.
pub fn idempotency_key(scope: &str, kind: Kind, external_id: &str) -> String {
    let mut hash = Sha256::new();
    for part in ["facturapi-rs bulk v1", scope, kind.as_str(), external_id] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    format!("frs1-{}", hex::encode(&hash.finalize()[..16]))
}

/// The default scope: a salted hash of the API key (never the key itself).
fn key_scope(secret: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(b"facturapi-rs bulk scope\0");
    hash.update(secret.as_bytes());
    format!("key-{}", hex::encode(&hash.finalize()[..8]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_differ_by_scope_kind_and_id() {
        let k = idempotency_key("org1", Kind::Invoices, "a-1");
        assert_eq!(k, idempotency_key("org1", Kind::Invoices, "a-1"));
        assert_ne!(k, idempotency_key("org2", Kind::Invoices, "a-1"));
        assert_ne!(k, idempotency_key("org1", Kind::Receipts, "a-1"));
        assert_ne!(k, idempotency_key("org1", Kind::Invoices, "a-2"));
        // Length-prefixed parts: moving a character between parts changes the key.
        assert_ne!(
            idempotency_key("org1a", Kind::Invoices, "-1"),
            idempotency_key("org1", Kind::Invoices, "a-1")
        );
        assert_eq!(k.len(), "frs1-".len() + 32);
    }

    #[test]
    fn the_key_scope_does_not_contain_the_key() {
        let scope = key_scope("sk_test_abcdefghijklmnop");
        assert!(!scope.contains("abcdef"), "{scope}");
        assert_ne!(scope, key_scope("sk_test_abcdefghijklmnoq"));
    }
}
