//! The `metrics` facade: requests by class and status, 429s, retries and latency, so users can
//! alert on the 429 rate and on p95/p99 with the exporter of their choice.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use facturapi_sdk::{Class, ClassPolicy, Client};
use metrics::{
    Counter, CounterFn, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Counts every counter increment and histogram sample by name and labels.
#[derive(Default)]
struct Tally(Mutex<BTreeMap<String, Arc<Cell>>>);

#[derive(Default)]
struct Cell(AtomicU64);

impl CounterFn for Cell {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }
    fn absolute(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }
}

impl HistogramFn for Cell {
    fn record(&self, _value: f64) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

impl Tally {
    fn cell(&self, key: &Key) -> Arc<Cell> {
        let mut labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        self.0.lock().unwrap().entry(name).or_default().clone()
    }

    fn get(&self, name: &str) -> u64 {
        self.0
            .lock()
            .unwrap()
            .get(name)
            .map_or(0, |c| c.0.load(Ordering::Relaxed))
    }
}

impl Recorder for Tally {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.cell(key))
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.cell(key))
    }
}

#[test]
fn requests_429s_retries_and_latency_are_counted_by_class() {
    let tally = Tally::default();
    metrics::with_local_recorder(&tally, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let server = MockServer::start().await;
            let ok = ResponseTemplate::new(200).set_body_json(serde_json::json!({"id": "c", "created_at": "2024-01-01T00:00:00Z", "livemode": false}));
            Mock::given(method("GET")).respond_with(ResponseTemplate::new(429).insert_header("retry-after", "0")).up_to_n_times(1).mount(&server).await;
            Mock::given(method("GET")).respond_with(ResponseTemplate::new(503)).up_to_n_times(1).mount(&server).await;
            Mock::given(method("GET")).respond_with(ok).mount(&server).await;
            let client = Client::builder()
                .api_key("sk_test_metrics")
                .base_url(server.uri())
                .class_policy(
                    Class::DetailRead,
                    ClassPolicy::default_for(Class::DetailRead).with_backoff(std::time::Duration::from_millis(5), std::time::Duration::from_millis(10), 2.0),
                )
                .build()
                .unwrap();
            client.customers().retrieve("c").await.unwrap();
        });
    });
    assert_eq!(
        tally.get("facturapi_requests_total{class=detail_read,status=429}"),
        1
    );
    assert_eq!(
        tally.get("facturapi_requests_total{class=detail_read,status=503}"),
        1
    );
    assert_eq!(
        tally.get("facturapi_requests_total{class=detail_read,status=200}"),
        1
    );
    assert_eq!(
        tally.get("facturapi_rate_limited_total{class=detail_read}"),
        1
    );
    assert_eq!(
        tally.get("facturapi_retries_total{class=detail_read}"),
        1,
        "the 503 was retried; the 429 does not count as a retry"
    );
    assert_eq!(
        tally.get("facturapi_request_duration_seconds{class=detail_read}"),
        3,
        "one latency sample per attempt"
    );
}
