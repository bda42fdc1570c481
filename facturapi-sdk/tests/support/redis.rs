//! A real Redis for the tests of shared limits: `redis-server` started on a free loopback
//! port, stopped when dropped. `.ci/run` installs the distribution's package when the machine
//! lacks it; locally, install `redis-server` (Debian and Ubuntu: `apt-get install
//! redis-server`) or point `FACTURAPI_REDIS_SERVER` at the binary. Without it the tests fail
//! and say so: they never pass without having run.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` of the test's own.
#[derive(Debug)]
pub(crate) struct RedisServer {
    port: u16,
    child: Option<Child>,
    /// TLS only: its certificate and key files (PEM).
    tls: Option<(PathBuf, PathBuf)>,
}

impl RedisServer {
    /// Starts one on a free loopback port.
    #[allow(dead_code)] // not every binary that includes this module uses plain Redis
    pub(crate) fn start() -> Result<Self, String> {
        Self::start_with(None)
    }

    /// Starts one on a free loopback port that speaks TLS only, with this certificate and key
    /// (PEM files); clients need no certificate of their own.
    #[allow(dead_code)] // not every binary that includes this module uses TLS
    pub(crate) fn start_tls(certificate: PathBuf, key: PathBuf) -> Result<Self, String> {
        Self::start_with(Some((certificate, key)))
    }

    fn start_with(tls: Option<(PathBuf, PathBuf)>) -> Result<Self, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let mut server = Self {
            port,
            child: None,
            tls,
        };
        server.restart()?;
        Ok(server)
    }

    /// `redis://127.0.0.1:<port>/` (`rediss://` with TLS).
    pub(crate) fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (SIGKILL: what a crash looks like to its clients).
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (empty: nothing is persisted).
    pub(crate) fn restart(&mut self) -> Result<(), String> {
        self.kill();
        let binary =
            std::env::var("FACTURAPI_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let mut command = Command::new(&binary);
        match &self.tls {
            None => command.args(["--port", &self.port.to_string()]),
            Some((certificate, key)) => command
                .args(["--port", "0", "--tls-port", &self.port.to_string()])
                .arg("--tls-cert-file")
                .arg(certificate)
                .arg("--tls-key-file")
                .arg(key)
                .args(["--tls-auth-clients", "no"]),
        };
        let child = command
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                format!(
                    "these tests need a real Redis, and `{binary}` could not start ({e}): \
                     install the distribution's redis-server package (`.ci/run` does) or set \
                     FACTURAPI_REDIS_SERVER to the binary"
                )
            })?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.ping() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!("redis-server did not answer on port {}", self.port))
    }

    /// Answers `PING` (with TLS: accepts connections; the handshake is the client's test).
    fn ping(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        if self.tls.is_some() {
            return true;
        }
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        let mut answer = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut answer).is_ok()
            && &answer == b"+PONG\r\n"
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The Redis for tests that only use one: `FACTURAPI_TEST_REDIS_URL` (what `.ci/run` starts),
/// or one started for the test.
#[allow(dead_code)] // not every binary that includes this module uses plain Redis
pub(crate) fn shared_or_own() -> Result<(String, Option<RedisServer>), String> {
    match std::env::var("FACTURAPI_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Ok((url, None)),
        _ => {
            let server = RedisServer::start()?;
            Ok((server.url(), Some(server)))
        }
    }
}

/// Sends one command to the Redis at `url` (`redis://host:port/`) and returns its answer's
/// integers and strings, flattened (enough for `KEYS`, `ZCARD` and `HGET`). Hand-written:
/// the tests read a few numbers and need no client of their own.
#[allow(dead_code)] // not every binary that includes this module asks Redis directly
pub(crate) fn command(url: &str, args: &[&str]) -> Result<Vec<String>, String> {
    use std::io::BufRead as _;
    let address = url
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_owned();
    let stream = TcpStream::connect(&address).map_err(|e| format!("{address}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    (&stream)
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut reader = std::io::BufReader::new(&stream);
    let mut line = || -> Result<String, String> {
        let mut l = String::new();
        reader.read_line(&mut l).map_err(|e| e.to_string())?;
        Ok(l.trim_end().to_owned())
    };
    let first = line()?;
    let (kind, rest) = first.split_at(1);
    match kind {
        ":" | "+" => Ok(vec![rest.to_owned()]),
        "$" if rest == "-1" => Ok(vec![]),
        "$" => Ok(vec![line()?]),
        "*" => {
            let n: usize = rest.parse().map_err(|_| first.clone())?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                let header = line()?;
                if header.starts_with('$') && header != "$-1" {
                    items.push(line()?);
                } else if let Some(v) = header.strip_prefix(':') {
                    items.push(v.to_owned());
                }
            }
            Ok(items)
        }
        _ => Err(format!("Redis answered {first}")),
    }
}
