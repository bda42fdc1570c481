//! Shared limits behind a Redis that does not work: one that accepts connections and never
//! answers (a partition, a stopped or overloaded server), and one that answers every
//! command with an error. Byte-level servers of this test's own, no real Redis: the calls
//! go on, each held up by one Redis timeout at most, on the process's own limits; once a
//! second one call asks Redis again while the others go on without waiting for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use facturapi_sdk::sandbox::{Sandbox, SandboxConfig};
use facturapi_sdk::{Class, Client, SharedLimits};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::time::Instant;

/// How the fake Redis treats what it reads.
#[derive(Clone, Copy, Debug)]
enum Fake {
    /// Reads everything, answers nothing.
    Silent,
    /// Answers every read with a RESP error.
    Errors,
}

/// A fake Redis on a free loopback port: its URL, and how many connections it accepted.
async fn fake_redis(fake: Fake) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let url = format!("redis://{}/", listener.local_addr().expect("an address"));
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let (mut seen, mut buf) = (Vec::new(), [0u8; 4096]);
                while let Ok(n @ 1..) = stream.read(&mut buf).await {
                    seen.extend_from_slice(&buf[..n]);
                    let Fake::Errors = fake else { continue };
                    // One error per command, as a Redis that refuses them all would answer.
                    while let Some(used) = command_len(&seen) {
                        seen.drain(..used);
                        if stream.write_all(b"-ERR not a redis\r\n").await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (url, accepted)
}

/// The length of the first whole command in `bytes` (a RESP array of bulk strings, as
/// clients send them), or `None` while it is incomplete. Hand-written: the redis crate
/// reads replies, not a client's commands with their length, and this needs only the framing.
fn command_len(bytes: &[u8]) -> Option<usize> {
    // A line ending in CRLF that starts with `kind`: its number, and where the next begins.
    let line = |at: usize, kind: u8| -> Option<(usize, usize)> {
        let end = at + bytes.get(at..)?.windows(2).position(|w| w == b"\r\n")?;
        (bytes.get(at) == Some(&kind)).then_some(())?;
        let n = std::str::from_utf8(&bytes[at + 1..end])
            .ok()?
            .parse()
            .ok()?;
        Some((n, end + 2))
    };
    let (count, mut at) = line(0, b'*')?;
    for _ in 0..count {
        let (len, start) = line(at, b'$')?;
        at = start + len + 2;
        if bytes.len() < at {
            return None;
        }
    }
    Some(at)
}

/// Redis's timeout in the SDK (`REDIS_TIMEOUT`), and how long it keeps to its own limits
/// after a failed Redis call before it asks again (`RETRY_REDIS`).
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
const RETRY_REDIS: Duration = Duration::from_secs(1);
const CALLERS: usize = 4;
const RUN: Duration = Duration::from_secs(3);

async fn calls_go_on(fake: Fake) {
    let (url, accepted) = fake_redis(fake).await;
    let sandbox = Sandbox::start(SandboxConfig::default().seed(3))
        .await
        .expect("a sandbox");
    let client = Client::builder()
        .api_key(sandbox.test_key())
        .base_url(sandbox.base_url())
        .shared_limits(SharedLimits::redis(url).salt("unanswered"))
        .build()
        .expect("a client");
    let end = Instant::now() + RUN;
    let callers = (0..CALLERS).map(|_| {
        let client = client.clone();
        tokio::spawn(async move {
            let mut took = Vec::new();
            while Instant::now() < end {
                let start = Instant::now();
                let listed = client.customers().list(&Default::default()).await;
                took.push(start.elapsed());
                if let Err(e) = listed {
                    panic!("{fake:?}: a call failed: {e}");
                }
            }
            took
        })
    });
    let mut took = Vec::new();
    for caller in callers.collect::<Vec<_>>() {
        took.extend(caller.await.expect("a caller"));
    }
    let longest = took.iter().max().copied().unwrap_or_default();
    // Held up by Redis: longer than anything the sandbox takes alone (a few milliseconds).
    let held_up = took.iter().filter(|t| **t >= REDIS_TIMEOUT / 2).count();
    println!(
        "{fake:?}: {} calls in {} s, {held_up} held up by Redis, the longest {} ms; \
         {} connections to it",
        took.len(),
        RUN.as_secs(),
        longest.as_millis(),
        accepted.load(Ordering::SeqCst)
    );
    assert!(
        accepted.load(Ordering::SeqCst) >= 1,
        "{fake:?}: the client never tried Redis, so this test showed nothing"
    );
    assert!(
        !client.learned(Class::ListRead).shared,
        "{fake:?}: the class ran on the fleet's limits through a Redis that does not work"
    );
    // One Redis timeout at most per call, with room for a loaded machine; a call that
    // waited on Redis twice, or on its reconnections, would take 500 ms and more.
    assert!(
        longest < REDIS_TIMEOUT + Duration::from_millis(200),
        "{fake:?}: a call took {} ms",
        longest.as_millis()
    );
    // The first calls all ask Redis (nothing has failed yet); after that, one call a
    // second asks it again, and the others do not wait for its answer.
    let again = (RUN.as_secs_f64() / RETRY_REDIS.as_secs_f64()).ceil() as usize;
    assert!(
        held_up <= CALLERS + again,
        "{fake:?}: {held_up} of {} calls held up by Redis (at most {} expected)",
        took.len(),
        CALLERS + again
    );
    // Nor does the client reconnect in a loop: one connection per question at most.
    assert!(
        accepted.load(Ordering::SeqCst) <= CALLERS + again,
        "{fake:?}: {} connections",
        accepted.load(Ordering::SeqCst)
    );
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_redis_that_never_answers_calls_go_on_held_up_one_timeout_at_most() {
    calls_go_on(Fake::Silent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_redis_that_answers_errors_calls_go_on() {
    calls_go_on(Fake::Errors).await;
}
