//! Shared limits through a Redis that speaks TLS only (`rediss://`): a real `redis-server`
//! with a certificate made for the test, trusted through `SharedLimits::root_certificate`.
//! It needs `redis-server` built with TLS, as the distribution's package is (see
//! `support/redis.rs`).

use std::path::PathBuf;
use std::time::Duration;

use facturapi_sdk::sandbox::{Sandbox, SandboxConfig};
use facturapi_sdk::{Class, Client, Error, SharedLimits};
use tokio::time::Instant;

#[path = "support/redis.rs"]
mod redis_server;

/// A TLS-only Redis whose certificate (for 127.0.0.1, self-signed) is `certificate`.
struct TlsRedis {
    server: redis_server::RedisServer,
    certificate: String,
    dir: PathBuf,
}

impl TlsRedis {
    fn start(tag: &str) -> TlsRedis {
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
                .expect("a certificate");
        let dir =
            std::env::temp_dir().join(format!("facturapi-tls-redis-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for the certificate");
        let (certificate_file, key_file) = (dir.join("redis.pem"), dir.join("redis.key"));
        std::fs::write(&certificate_file, cert.pem()).expect("certificate written");
        std::fs::write(&key_file, signing_key.serialize_pem()).expect("key written");
        let server = redis_server::RedisServer::start_tls(certificate_file, key_file)
            .unwrap_or_else(|e| panic!("{e}"));
        TlsRedis {
            server,
            certificate: cert.pem(),
            dir,
        }
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        self.server.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn client(sandbox: &Sandbox, shared: SharedLimits) -> Client {
    Client::builder()
        .api_key(sandbox.test_key())
        .base_url(sandbox.base_url())
        .shared_limits(shared)
        .build()
        .expect("a client")
}

/// Lists customers until the class's limits are the fleet's or `within` has passed (the
/// first connection's handshake may outlast the bound on a Redis call on a busy machine;
/// the process then tries Redis again a second later). Every call must succeed.
async fn list_until_shared(client: &Client, within: Duration) -> (u32, bool) {
    let deadline = Instant::now() + within;
    let mut calls = 0;
    loop {
        client
            .customers()
            .list(&Default::default())
            .await
            .expect("a list never fails for want of Redis");
        calls += 1;
        let shared = client.learned(Class::ListRead).shared;
        if (shared && calls >= 5) || Instant::now() >= deadline {
            return (calls, shared);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_shared_through_a_redis_that_speaks_tls_only() {
    let redis = TlsRedis::start("trusted");
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let shared = SharedLimits::redis(redis.server.url())
        .root_certificate(redis.certificate.clone())
        .salt("tls test, trusted");
    let client = client(&sandbox, shared);
    let (calls, shared) = list_until_shared(&client, Duration::from_secs(10)).await;
    assert!(shared, "the fleet's limits over TLS after {calls} calls");
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_whose_certificate_is_not_trusted_is_not_used_and_fails_no_call() {
    let redis = TlsRedis::start("untrusted");
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    // The system's roots do not hold the test's self-signed certificate.
    let shared = SharedLimits::redis(redis.server.url()).salt("tls test, untrusted");
    let client = client(&sandbox, shared);
    let (calls, shared) = list_until_shared(&client, Duration::from_secs(2)).await;
    assert!(!shared, "a server the client cannot verify is never used");
    assert!(calls >= 5, "every call went on without Redis: {calls}");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn build_refuses_a_root_certificate_it_cannot_use() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.unwrap();
    let certificate = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
        .expect("a certificate")
        .cert
        .pem();
    let cases = [
        // A root certificate for a server that does not speak TLS.
        (
            SharedLimits::redis("redis://127.0.0.1:6379/").root_certificate(certificate),
            "rediss://",
        ),
        (
            SharedLimits::redis("rediss://127.0.0.1:6379/").root_certificate("not a certificate"),
            "holds no PEM certificate",
        ),
    ];
    for (shared, expected) in cases {
        let built = Client::builder()
            .api_key(sandbox.test_key())
            .base_url(sandbox.base_url())
            .shared_limits(shared)
            .build();
        match built {
            Err(Error::InvalidInput { message, .. }) => {
                assert!(message.contains(expected), "{message}");
            }
            other => panic!("expected an invalid input naming {expected:?}, got {other:?}"),
        }
    }
    sandbox.shutdown().await;
}
