//! `facturapi_sdk::bulk` through its public API, against the sandbox.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use facturapi_sdk::bulk::{
    Bulk, Entry, ItemResult, ItemState, Journal, JournalError, JournalFuture, MemoryJournal,
    Recorded, Reuse,
};
use facturapi_sdk::sandbox::{ClassLimits, Sandbox, SandboxConfig, ServiceTime};
use facturapi_sdk::{Class, Client, models};
use futures_util::StreamExt as _;
use serde_json::json;

async fn setup(config: SandboxConfig) -> (Sandbox, Client, String, String) {
    let sandbox = Sandbox::start(config).await.unwrap();
    let client = Client::builder()
        .api_key(sandbox.test_key())
        .base_url(sandbox.base_url())
        .build()
        .unwrap();
    let reuse = Reuse::new(&client);
    let customer = reuse
        .customer(&customer_body("XAXX010101000"))
        .await
        .unwrap();
    let product = reuse
        .product(&product_body(Some("sku-1"), "Servicio"))
        .await
        .unwrap();
    (sandbox, client, customer, product)
}

fn customer_body(tax_id: &str) -> models::CustomerCreateInput {
    serde_json::from_value(json!({
        "legal_name": "PUBLICO EN GENERAL", "tax_id": tax_id,
        "tax_system": "616", "address": {"zip": "86500"},
    }))
    .unwrap()
}

fn product_body(sku: Option<&str>, description: &str) -> models::ProductCreateBody {
    let mut body = json!({"description": description, "price": 100.0, "product_key": "81112100"});
    if let Some(sku) = sku {
        body["sku"] = sku.into();
    }
    serde_json::from_value(body).unwrap()
}

fn invoice(customer: &str, product: &str) -> models::InvoiceCreateInput {
    serde_json::from_value(json!({
        "customer": customer, "payment_form": "03",
        "items": [{"product": product, "quantity": 1}],
    }))
    .unwrap()
}

fn items(
    prefix: &str,
    n: usize,
    customer: &str,
    product: &str,
) -> Vec<(String, models::InvoiceCreateInput)> {
    (0..n)
        .map(|i| (format!("{prefix}-{i:03}"), invoice(customer, product)))
        .collect()
}

#[tokio::test]
async fn creates_each_item_once_and_a_rerun_creates_nothing_new() {
    let config = SandboxConfig::default().limit(Class::Create, ClassLimits::rate(200.0, 5.0));
    let (sandbox, client, customer, product) = setup(config).await;
    let input = items("once", 40, &customer, &product);

    let run = Bulk::invoices(&client)
        .organization("org-a")
        .run_iter(input.clone())
        .await
        .unwrap();
    let first: Vec<_> = run.map(Result::unwrap).collect().await;
    assert_eq!(first.len(), 40);
    let mut ids: Vec<String> = first
        .iter()
        .map(|o| match &o.result {
            ItemResult::Created { id, pending: false } => id.clone(),
            other => panic!("{}: {other:?}", o.external_id),
        })
        .collect();

    // Without a journal a rerun sends every item again, with the same keys: the API answers
    // with the documents the first run made.
    let again = Bulk::invoices(&client)
        .organization("org-a")
        .in_input_order()
        .run_iter(input)
        .await
        .unwrap();
    let second: Vec<_> = again.map(Result::unwrap).collect().await;
    let indexes: Vec<u64> = second.iter().map(|o| o.index).collect();
    assert_eq!(indexes, (0..40).collect::<Vec<_>>(), "input order");
    let by_index = |outcomes: &[facturapi_sdk::bulk::ItemOutcome], i: u64| match &outcomes
        .iter()
        .find(|o| o.index == i)
        .unwrap()
        .result
    {
        ItemResult::Created { id, .. } => id.clone(),
        other => panic!("{other:?}"),
    };
    for i in 0..40 {
        assert_eq!(by_index(&first, i), by_index(&second, i));
    }
    let ledger = sandbox.ledger();
    assert_eq!(ledger.documents_created, 40);
    assert_eq!(ledger.duplicates, 0);
    assert_eq!(ledger.idempotent_replays, 40);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 40);
}

#[tokio::test]
async fn another_organization_scope_derives_other_keys() {
    let (sandbox, client, customer, product) = setup(SandboxConfig::default()).await;
    let input = items("scope", 5, &customer, &product);
    for org in ["org-a", "org-b"] {
        let run = Bulk::invoices(&client)
            .organization(org)
            .run_iter(input.clone())
            .await
            .unwrap();
        assert_eq!(run.count().await, 5);
    }
    // Same external ids, two scopes: two sets of keys, so the second run was not a replay.
    assert_eq!(sandbox.ledger().idempotent_replays, 0);
    assert_eq!(sandbox.ledger().documents_created, 10);
}

#[tokio::test]
async fn a_journal_skips_what_was_created_and_records_failures() {
    let (sandbox, client, customer, product) = setup(SandboxConfig::default()).await;
    let journal = Arc::new(MemoryJournal::new());
    let mut input = items("journal", 6, &customer, &product);
    // The sandbox refuses an invoice for a customer it does not have: certainly not created.
    input[2].1 = invoice("no-such-customer", &product);

    let outcomes: Vec<_> = Bulk::invoices(&client)
        .journal(SharedJournal(journal.clone()))
        .run_iter(input.clone())
        .await
        .unwrap()
        .map(Result::unwrap)
        .collect()
        .await;
    let failed: Vec<_> = outcomes
        .iter()
        .filter_map(|o| match &o.result {
            ItemResult::Failed { error } => Some((o.external_id.clone(), error.status())),
            _ => None,
        })
        .collect();
    assert_eq!(failed, vec![("journal-002".to_owned(), Some(400))]);
    let recorded = journal.recorded();
    assert_eq!(recorded.items["journal-002"], ItemState::Failed);
    assert!(matches!(
        recorded.items["journal-000"],
        ItemState::Created { .. }
    ));
    assert_eq!(recorded.header.as_ref().unwrap().kind, "invoices");

    // Fixed, the rerun creates only the failed item and skips the rest.
    input[2].1 = invoice(&customer, &product);
    let run = Bulk::invoices(&client)
        .journal(SharedJournal(journal.clone()))
        .run_iter(input)
        .await
        .unwrap();
    let progress = run.progress();
    let outcomes: Vec<_> = run.map(Result::unwrap).collect().await;
    let skipped = outcomes
        .iter()
        .filter(|o| matches!(o.result, ItemResult::Skipped { .. }))
        .count();
    assert_eq!(skipped, 5);
    let snapshot = progress.snapshot();
    assert_eq!(
        (snapshot.created, snapshot.skipped, snapshot.failed),
        (1, 5, 0)
    );
    assert_eq!(snapshot.total, Some(6));
    assert_eq!(snapshot.in_flight, 0);
    assert!(snapshot.finished);
    assert_eq!(sandbox.ledger().documents_created, 6);
}

#[tokio::test]
async fn a_sent_item_is_settled_by_its_external_id_before_any_resend() {
    let (sandbox, client, customer, product) = setup(SandboxConfig::default()).await;
    let input = items("settle", 3, &customer, &product);
    // A first run created them with its own keys (another tool, or a renewed scope).
    for (external_id, body) in &input {
        let mut body = serde_json::to_value(body).unwrap();
        body["external_id"] = external_id.as_str().into();
        client
            .raw("createInvoice")
            .unwrap()
            .body(&body)
            .json()
            .await
            .unwrap();
    }
    // ... and its journal says only that they were sent.
    let journal = Arc::new(MemoryJournal::new());
    for (external_id, _) in &input {
        let entry = Entry::Item {
            external_id: external_id.clone(),
            state: ItemState::Sent,
        };
        journal.record(&entry).await.unwrap();
    }
    let outcomes: Vec<_> = Bulk::invoices(&client)
        .journal(SharedJournal(journal.clone()))
        .run_iter(input)
        .await
        .unwrap()
        .map(Result::unwrap)
        .collect()
        .await;
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o.result, ItemResult::Created { .. }))
    );
    // Found by external_id: nothing was created again.
    assert_eq!(sandbox.ledger().documents_created, 3);
    assert_eq!(sandbox.ledger().duplicates, 0);
}

#[tokio::test]
async fn a_journal_of_another_kind_is_refused() {
    let (_sandbox, client, ..) = setup(SandboxConfig::default()).await;
    let journal = Arc::new(MemoryJournal::new());
    let receipts: Vec<(String, models::ReceiptInput)> = Vec::new();
    Bulk::receipts(&client)
        .journal(SharedJournal(journal.clone()))
        .run_iter(receipts)
        .await
        .unwrap();
    let invoices: Vec<(String, models::InvoiceCreateInput)> = Vec::new();
    let err = Bulk::invoices(&client)
        .journal(SharedJournal(journal))
        .run_iter(invoices)
        .await
        .unwrap_err();
    assert!(matches!(err, JournalError::KindMismatch { .. }), "{err}");
}

#[tokio::test]
async fn malformed_items_fail_without_a_request() {
    let (sandbox, client, customer, product) = setup(SandboxConfig::default()).await;
    let mut conflicting = serde_json::to_value(invoice(&customer, &product)).unwrap();
    conflicting["external_id"] = "something-else".into();
    let input = vec![
        (" ".to_owned(), invoice(&customer, &product)),
        (
            "conflict".to_owned(),
            serde_json::from_value(conflicting).unwrap(),
        ),
    ];
    let before = sandbox.ledger().total_requests();
    let outcomes: Vec<_> = Bulk::invoices(&client)
        .run_iter(input)
        .await
        .unwrap()
        .map(Result::unwrap)
        .collect()
        .await;
    for o in &outcomes {
        match &o.result {
            ItemResult::Failed { error } => assert!(!error.may_have_been_processed()),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(sandbox.ledger().total_requests(), before);
}

/// A journal whose writes fail after a number of records.
#[derive(Debug)]
struct Failing {
    left: AtomicUsize,
}

impl Journal for Failing {
    fn load(&self) -> JournalFuture<'_, Recorded> {
        Box::pin(async { Ok(Recorded::default()) })
    }

    fn record<'a>(&'a self, _: &'a Entry) -> JournalFuture<'a, ()> {
        let ok = self
            .left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        Box::pin(async move {
            if ok {
                Ok(())
            } else {
                Err(JournalError::Other("disk full".into()))
            }
        })
    }
}

#[tokio::test]
async fn a_journal_that_cannot_be_written_stops_the_run() {
    let (_sandbox, client, customer, product) = setup(SandboxConfig::default()).await;
    let journal = Failing {
        left: AtomicUsize::new(1 + 2 * 3), // the header and three items
    };
    let outcomes: Vec<_> = Bulk::invoices(&client)
        .journal(journal)
        .window(1)
        .run_iter(items("full", 10, &customer, &product))
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(
        outcomes.len(),
        4,
        "three outcomes, then the error, then the end"
    );
    assert!(outcomes[..3].iter().all(Result::is_ok));
    assert!(matches!(outcomes[3], Err(JournalError::Other(_))));
}

#[tokio::test]
async fn progress_updates_arrive_and_end_with_the_run() {
    let config =
        SandboxConfig::default().service_time(ServiceTime::uniform(Duration::from_millis(10), 0.1));
    let (_sandbox, client, customer, product) = setup(config).await;
    let run = Bulk::invoices(&client)
        .window(2)
        .run_iter(items("progress", 30, &customer, &product))
        .await
        .unwrap();
    let mut updates = run.progress().subscribe();
    let watcher = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(snapshot) = updates.next().await {
            seen.push(snapshot);
        }
        seen
    });
    assert_eq!(run.count().await, 30);
    let seen = tokio::time::timeout(Duration::from_secs(5), watcher)
        .await
        .unwrap()
        .unwrap();
    let last = seen.last().unwrap();
    assert!(last.finished);
    assert_eq!(last.done(), 30);
    assert_eq!(last.queued, Some(0));
    assert!(seen.len() > 2, "{} updates", seen.len());
    assert!(seen.windows(2).all(|w| w[0].done() <= w[1].done()));
}

#[tokio::test]
async fn a_dropped_run_ends_its_progress() {
    let config =
        SandboxConfig::default().service_time(ServiceTime::uniform(Duration::from_millis(50), 0.1));
    let (_sandbox, client, customer, product) = setup(config).await;
    let mut run = Bulk::invoices(&client)
        .window(1)
        .run_iter(items("dropped", 20, &customer, &product))
        .await
        .unwrap();
    let progress = run.progress();
    let mut updates = progress.subscribe();
    run.next().await.unwrap().unwrap();
    drop(run);
    let last = tokio::time::timeout(Duration::from_secs(5), async {
        let mut last = None;
        while let Some(snapshot) = updates.next().await {
            last = Some(snapshot);
        }
        last
    })
    .await
    .expect("the subscriber is told the run ended")
    .unwrap();
    assert!(last.finished);
    assert!(last.done() < 20, "{last:?}");
}

#[tokio::test]
async fn reuse_creates_each_customer_and_product_once() {
    let (sandbox, client, ..) = setup(SandboxConfig::default()).await;
    let reuse = Arc::new(Reuse::new(&client));
    let before = sandbox
        .ledger()
        .requests
        .get(&Class::Create)
        .copied()
        .unwrap_or(0);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let reuse = reuse.clone();
        tasks.push(tokio::spawn(async move {
            let tax_id = if i % 2 == 0 {
                "EKU9003173C9"
            } else {
                "ekU9003173c9 "
            };
            let customer = reuse.customer(&customer_body(tax_id.trim())).await.unwrap();
            let product = reuse
                .product(&product_body(None, "Consultoría"))
                .await
                .unwrap();
            (customer, product)
        }));
    }
    let mut pairs = Vec::new();
    for task in tasks {
        pairs.push(task.await.unwrap());
    }
    pairs.dedup();
    assert_eq!(pairs.len(), 1, "{pairs:?}");
    let creates = sandbox.ledger().requests[&Class::Create] - before;
    assert_eq!(creates, 2, "one customer and one product");

    // A second process (a fresh cache) finds the product instead of creating it.
    let other = Reuse::new(&client);
    assert_eq!(
        other
            .product(&product_body(None, "Consultoría"))
            .await
            .unwrap(),
        pairs[0].1
    );
    assert_eq!(sandbox.ledger().requests[&Class::Create] - before, 2);
}

/// Lets a test keep reading the journal it gave to a run.
#[derive(Debug)]
struct SharedJournal(Arc<MemoryJournal>);

impl Journal for SharedJournal {
    fn load(&self) -> JournalFuture<'_, Recorded> {
        self.0.load()
    }

    fn record<'a>(&'a self, entry: &'a Entry) -> JournalFuture<'a, ()> {
        self.0.record(entry)
    }
}
