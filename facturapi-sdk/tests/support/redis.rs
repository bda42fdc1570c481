//! A real Redis for the tests of shared limits: `redis-server` started on a free loopback
//! port, stopped when dropped. `.ci/run` installs the distribution's package when the machine
//! lacks it; locally, install `redis-server` (Debian and Ubuntu: `apt-get install
//! redis-server`) or point `FACTURAPI_REDIS_SERVER` at the binary. Without it the tests fail
//! and say so: they never pass without having run.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` of the test's own.
#[derive(Debug)]
pub(crate) struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one on a free loopback port.
    pub(crate) fn start() -> Result<Self, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let mut server = Self { port, child: None };
        server.restart()?;
        Ok(server)
    }

    /// `redis://127.0.0.1:<port>/`.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
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
        let child = Command::new(&binary)
            .args(["--port", &self.port.to_string()])
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

    fn ping(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
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
pub(crate) fn shared_or_own() -> Result<(String, Option<RedisServer>), String> {
    match std::env::var("FACTURAPI_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Ok((url, None)),
        _ => {
            let server = RedisServer::start()?;
            Ok((server.url(), Some(server)))
        }
    }
}
