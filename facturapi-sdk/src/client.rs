//! The client: configuration, credentials and the per-class governor.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};

use crate::error::{Error, Result};
use crate::governor::Governor;
use crate::limits::{Class, ClassPolicy};

/// The production API.
pub const DEFAULT_BASE_URL: &str = "https://www.facturapi.io/v2";

/// The kind of a secret key, known from its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// `sk_test_…`: an organization's test environment.
    Test,
    /// `sk_live_…`: an organization's live environment.
    Live,
    /// `sk_user_…`: account level (manages organizations).
    User,
}

impl KeyKind {
    /// `test`, `live` or `user`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Test => "test",
            KeyKind::Live => "live",
            KeyKind::User => "user",
        }
    }

    pub(crate) fn of(key: &str) -> Option<Self> {
        [
            ("sk_test_", KeyKind::Test),
            ("sk_live_", KeyKind::Live),
            ("sk_user_", KeyKind::User),
        ]
        .into_iter()
        .find(|(prefix, _)| key.starts_with(prefix) && key.len() > prefix.len())
        .map(|(_, kind)| kind)
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A secret key. Its `Debug` shows only the kind; it has no `Display`.
#[derive(Clone)]
pub struct ApiKey {
    kind: KeyKind,
    header: HeaderValue,
}

impl ApiKey {
    /// Parses a key; only `sk_test_`, `sk_live_` and `sk_user_` keys of visible ASCII
    /// characters are accepted (surrounding whitespace is trimmed).
    pub fn new(key: impl AsRef<str>) -> Result<Self> {
        let key = key.as_ref().trim();
        let invalid = |message: &str| Error::InvalidInput {
            operation_id: "client",
            message: message.to_owned(),
        };
        let kind = KeyKind::of(key)
            .ok_or_else(|| invalid("the API key must start with sk_test_, sk_live_ or sk_user_"))?;
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                "the API key must be visible ASCII characters only (no spaces, controls or accents)",
            ));
        }
        let mut header = HeaderValue::from_str(&format!("Bearer {key}"))
            .map_err(|_| invalid("the API key has characters a header cannot carry"))?;
        header.set_sensitive(true);
        Ok(Self { kind, header })
    }

    /// The key's kind.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The secret itself, for redacting server echoes of it (never for display).
    pub(crate) fn secret(&self) -> &str {
        self.header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .unwrap_or_default()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({}, redacted)", self.kind.as_str())
    }
}

/// Builds a [`Client`].
#[derive(Debug)]
pub struct ClientBuilder {
    key: Option<Result<ApiKey>>,
    base_url: String,
    timeout: Duration,
    connect_timeout: Duration,
    user_agent: String,
    headers: HeaderMap,
    http: Option<reqwest::Client>,
    policies: [ClassPolicy; 5],
    adaptive: bool,
    own_limits: bool,
    #[cfg(feature = "redis")]
    shared_limits: Option<crate::fleet::SharedLimits>,
    max_body_size: usize,
    stream_idle_timeout: Duration,
    allow_insecure_http: bool,
}

/// Default of [`ClientBuilder::max_body_size`]: 64 MiB.
pub const DEFAULT_MAX_BODY_SIZE: usize = 64 * 1024 * 1024;

impl Default for ClientBuilder {
    fn default() -> Self {
        Self {
            key: None,
            base_url: DEFAULT_BASE_URL.to_owned(),
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            user_agent: format!("facturapi-rs/{}", env!("CARGO_PKG_VERSION")),
            headers: HeaderMap::new(),
            http: None,
            policies: Class::ALL.map(ClassPolicy::default_for),
            adaptive: true,
            own_limits: false,
            #[cfg(feature = "redis")]
            shared_limits: None,
            max_body_size: DEFAULT_MAX_BODY_SIZE,
            stream_idle_timeout: Duration::from_secs(30),
            allow_insecure_http: false,
        }
    }
}

impl ClientBuilder {
    /// Static limits: each class keeps its policy's concurrency, is paced at its policy's
    /// [`rate`](ClassPolicy::rate) (not paced without one) and learns nothing. A request that
    /// gets a 429 waits out its `Retry-After` keeping its place; the rest of the class goes
    /// on. In a paced class its permit serves the next request meanwhile (the pacing is the
    /// brake); in an unpaced one it stays taken, so the class runs one request fewer. For
    /// callers that size the limits themselves (e.g. a share of an organization's limits per
    /// process). Without it (the default) each class's paced rate and concurrency limit are
    /// learned from 429s, starting unpaced at the policy's `concurrency`; see
    /// [`Client::learned`] and `BENCHMARKS.md`.
    pub fn static_limits(mut self) -> Self {
        self.adaptive = false;
        self
    }

    /// Limits of this client's own. By default every client of one key in the process (same
    /// base URL, mode and policies) shares one set of limits, learned once: Facturapi limits
    /// the key, not the client, and two clients learning apart would each spend the other's
    /// share. This client keeps its own instead, as a separate process would: for tests and
    /// benchmarks that play several processes in one.
    pub fn own_limits(mut self) -> Self {
        self.own_limits = true;
        self
    }

    /// Limits shared by every process of the organization (feature `redis`): each request is
    /// admitted through Redis, so the fleet as a whole paces at one learned rate, holds at
    /// most one learned cap in flight, and learns from every process's 429s at once (one cut
    /// per congestion event, not one per process). Adaptive mode only: with
    /// [`static_limits`](Self::static_limits) it is ignored. While Redis does not answer
    /// (within 250 ms), the process keeps to its own learned limits and tries Redis again a
    /// second later; Redis never fails a call. The API key never reaches Redis: see
    /// [`SharedLimits`](crate::SharedLimits).
    #[cfg(feature = "redis")]
    pub fn shared_limits(mut self, shared: crate::fleet::SharedLimits) -> Self {
        self.shared_limits = Some(shared);
        self
    }

    /// The secret key (`sk_test_…`, `sk_live_…` or `sk_user_…`), sent as `Authorization: Bearer`.
    pub fn api_key(mut self, key: impl AsRef<str>) -> Self {
        self.key = Some(ApiKey::new(key));
        self
    }

    /// The API's base URL (default [`DEFAULT_BASE_URL`]); any URL, e.g. a local sandbox.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// Time allowed for one attempt (default 60 s): from sending to the last byte of the body
    /// (to the headers, for [`ByteStream`](crate::ByteStream) downloads). Separately, the
    /// class policy's [`deadline`](ClassPolicy::deadline) bounds the whole call: every
    /// attempt, every wait between attempts and every body read.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Largest response body read into memory (default [`DEFAULT_MAX_BODY_SIZE`]): a larger 2xx
    /// body ends the call with [`Error::BodyTooLarge`]. Error bodies are kept up to
    /// [`ERROR_BODY_LIMIT`](crate::error::ERROR_BODY_LIMIT) bytes. Downloads of any size
    /// stream with the `…_stream` methods.
    pub fn max_body_size(mut self, bytes: usize) -> Self {
        self.max_body_size = bytes;
        self
    }

    /// Longest wait for the next chunk of a streamed download (default 30 s); past it the
    /// stream yields [`Error::Timeout`].
    pub fn stream_idle_timeout(mut self, timeout: Duration) -> Self {
        self.stream_idle_timeout = timeout;
        self
    }

    /// Allows a live or user key over a plain `http://` base URL, which [`build`](Self::build)
    /// otherwise refuses: the key would cross the network unencrypted. For a local proxy or
    /// sandbox you trust.
    pub fn allow_insecure_http(mut self) -> Self {
        self.allow_insecure_http = true;
        self
    }

    /// Time allowed to open a connection.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Replaces the `facturapi-rs/<version>` user agent.
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// Adds a header sent with every request. `Authorization` is refused: the key is set with
    /// [`api_key`](Self::api_key).
    pub fn default_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        if name != AUTHORIZATION {
            self.headers.insert(name, value);
        }
        self
    }

    /// Uses this `reqwest::Client` (its own proxies and TLS settings apply; the per-attempt
    /// timeout and user agent are still set per request). Build it with
    /// `.redirect(reqwest::redirect::Policy::none())`: a response from another origin than the
    /// base URL's is refused ([`Error::Redirect`]), but by then a client that follows
    /// redirects has already sent the request there. The SDK builds reqwest without a
    /// bundled TLS crypto provider: install one (e.g. `rustls::crypto::ring::default_provider()
    /// .install_default()`) before building your own `reqwest::Client`, or build a
    /// `facturapi_sdk::Client` first, which installs ring when none is installed.
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// Replaces the policy of one class.
    pub fn class_policy(mut self, class: Class, policy: ClassPolicy) -> Self {
        self.policies[class as usize] = policy;
        self
    }

    /// Builds the client.
    pub fn build(self) -> Result<Client> {
        let invalid = |message: String| Error::InvalidInput {
            operation_id: "client",
            message,
        };
        if let Some((class, rate)) = Class::ALL.iter().zip(&self.policies).find_map(|(c, p)| {
            p.rate
                .filter(|r| !(r.is_finite() && *r > 0.0))
                .map(|r| (c, r))
        }) {
            return Err(invalid(format!(
                "the {class} rate must be a positive number of requests per second, not {rate}"
            )));
        }
        let key = self.key.ok_or_else(|| {
            invalid("no API key: call .api_key(…) or use Client::from_env()".into())
        })??;
        let base_url = reqwest::Url::parse(self.base_url.trim_end_matches('/'))
            .map_err(|e| invalid(format!("invalid base URL {:?}: {e}", self.base_url)))?;
        if !matches!(base_url.scheme(), "http" | "https") || base_url.cannot_be_a_base() {
            return Err(invalid(format!("the base URL must be http(s): {base_url}")));
        }
        if base_url.scheme() == "http"
            && matches!(key.kind, KeyKind::Live | KeyKind::User)
            && !self.allow_insecure_http
        {
            return Err(invalid(format!(
                "a {} key would travel unencrypted to {base_url}: use https, or call .allow_insecure_http() for a local endpoint you trust",
                key.kind
            )));
        }
        let http = match self.http {
            Some(http) => http,
            None => {
                install_crypto_provider();
                // The API never redirects: a 3xx is returned to the send path as an error, and
                // nothing (body, idempotency key) is replayed to another origin.
                reqwest::Client::builder()
                    .connect_timeout(self.connect_timeout)
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|e| invalid(format!("cannot build the HTTP client: {e}")))?
            }
        };
        let user_agent = HeaderValue::from_str(&self.user_agent)
            .map_err(|_| invalid("invalid user agent".into()))?;
        #[cfg(feature = "redis")]
        let fleet = match self.shared_limits.filter(|_| self.adaptive) {
            Some(shared) => Some(Arc::new(
                crate::fleet::Fleet::new(&shared, key.secret(), base_url.as_str())
                    .map_err(invalid)?,
            )),
            None => None,
        };
        #[cfg(not(feature = "redis"))]
        let fleet: crate::governor::FleetArg = None;
        let governor = if self.own_limits {
            Arc::new(Governor::with_fleet(&self.policies, self.adaptive, fleet))
        } else {
            crate::governor::shared(
                key.secret(),
                base_url.as_str(),
                &self.policies,
                self.adaptive,
                fleet,
            )
        };
        Ok(Client {
            inner: Arc::new(Inner {
                key,
                base_url,
                timeout: self.timeout,
                user_agent,
                headers: self.headers,
                http,
                governor,
                max_body_size: self.max_body_size,
                stream_idle_timeout: self.stream_idle_timeout,
            }),
        })
    }
}

pub(crate) struct Inner {
    pub(crate) key: ApiKey,
    pub(crate) base_url: reqwest::Url,
    pub(crate) timeout: Duration,
    pub(crate) user_agent: HeaderValue,
    pub(crate) headers: HeaderMap,
    pub(crate) http: reqwest::Client,
    pub(crate) governor: Arc<Governor>,
    pub(crate) max_body_size: usize,
    pub(crate) stream_idle_timeout: Duration,
}

/// A Facturapi client. Cheap to clone: clones share connections and the per-class limits.
/// Clients built apart with the same key (and base URL, mode and policies) share the limits
/// too, unless built with [`ClientBuilder::own_limits`].
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("key", &self.inner.key)
            .field("base_url", &self.inner.base_url.as_str())
            .field("concurrency", &self.inner.governor)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A builder with the defaults.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// A client for the key in `FACTURAPI_KEY` (and the base URL in `FACTURAPI_BASE_URL`, if set).
    pub fn from_env() -> Result<Self> {
        let key = std::env::var("FACTURAPI_KEY").map_err(|_| Error::InvalidInput {
            operation_id: "client",
            message: "FACTURAPI_KEY is not set".into(),
        })?;
        let mut builder = Client::builder().api_key(key);
        if let Ok(url) = std::env::var("FACTURAPI_BASE_URL") {
            builder = builder.base_url(url);
        }
        builder.build()
    }

    /// The kind of the client's key.
    pub fn key_kind(&self) -> KeyKind {
        self.inner.key.kind
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        self.inner.base_url.as_str()
    }

    /// The concurrency limit of a class now.
    pub fn concurrency(&self, class: Class) -> usize {
        self.inner.governor.concurrency(class)
    }

    /// Changes the concurrency limit of a class at runtime (at least 1), for every client that
    /// shares this one's limits. Shrinking lets requests in flight finish.
    pub fn set_concurrency(&self, class: Class, limit: usize) {
        self.inner.governor.set_concurrency(class, limit);
    }

    /// The policy a class was built with.
    pub fn class_policy(&self, class: Class) -> &ClassPolicy {
        self.inner.governor.policy(class)
    }

    /// Where the limits of a class stand: the learned rate and concurrency, requests in
    /// flight and queued, the pause, and counts of 429s and cuts.
    pub fn learned(&self, class: Class) -> crate::limits::Learned {
        self.inner.governor.learned(class)
    }

    /// Whether the class is paused by a recent 429, and until when.
    pub fn paused_until(&self, class: Class) -> Option<tokio::time::Instant> {
        self.inner.governor.gate(class)
    }
}

/// Anything that can lend a [`Client`]: the client itself, resource handles, and your own
/// API wrappers. `#[endpoint]` methods on `&self` call through it.
pub trait AsClient {
    /// The client to send with.
    fn as_client(&self) -> &Client;
}

impl AsClient for Client {
    fn as_client(&self) -> &Client {
        self
    }
}

impl<T: AsClient + ?Sized> AsClient for &T {
    fn as_client(&self) -> &Client {
        (**self).as_client()
    }
}

pub(crate) fn auth_header(client: &Client) -> (HeaderName, HeaderValue) {
    (AUTHORIZATION, client.inner.key.header.clone())
}

/// rustls (reqwest's TLS, and Redis's with shared limits) is built without a default crypto
/// provider (aws-lc needs cmake): ring is installed, unless the application installed one
/// already.
pub(crate) fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(key: &str, url: &str) -> ClientBuilder {
        Client::builder().api_key(key).base_url(url)
    }

    #[test]
    fn clients_of_one_key_share_their_limits_unless_told_otherwise() {
        const KEY: &str = "sk_test_shared00000000000000000000";
        let url = "https://limits.example/v2";
        let a = client(KEY, url).build().unwrap();
        let b = client(KEY, url).build().unwrap();
        a.set_concurrency(Class::Create, 3);
        assert_eq!(
            b.concurrency(Class::Create),
            3,
            "one key: one set of limits"
        );

        let own = client(KEY, url).own_limits().build().unwrap();
        let other_key = client("sk_test_other000000000000000000000", url)
            .build()
            .unwrap();
        let other_url = client(KEY, "https://elsewhere.example/v2").build().unwrap();
        let fixed = client(KEY, url).static_limits().build().unwrap();
        for c in [&own, &other_key, &other_url, &fixed] {
            assert_eq!(c.concurrency(Class::Create), 4, "{c:?}");
        }

        // When the last client of a scope is gone, the next one starts afresh.
        drop((a, b));
        assert_eq!(
            client(KEY, url).build().unwrap().concurrency(Class::Create),
            4
        );
    }
}
