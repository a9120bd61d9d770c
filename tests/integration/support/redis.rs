//! Redis for tests: a throwaway `redis-server` per test (nothing persisted, killed on drop), or the
//! server `RECON_TEST_REDIS_URL` names. Each test writes under its own key prefix, so tests sharing a
//! server never see each other's keys.

use std::sync::atomic::{AtomicU64, Ordering};

use recon_testkit::redis_server::RedisServer;
use std::sync::{Arc, Mutex};

/// Set to a Redis URL to run the tests against an existing server instead of throwaway ones.
pub const REDIS_URL_ENV: &str = "RECON_TEST_REDIS_URL";

/// A Redis server for one test, and the key prefix that test writes under.
pub struct TestRedis {
    pub url: String,
    /// Unique to this test: put it in front of every key (and of `redis.key_pattern`).
    pub prefix: String,
    server: Option<RedisServer>,
}

impl TestRedis {
    /// Starts a server on a free port (or uses `RECON_TEST_REDIS_URL`) and waits until it answers PING.
    pub async fn start() -> TestRedis {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let prefix = format!("t{}-{}:", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        if let Ok(url) = std::env::var(REDIS_URL_ENV) {
            return TestRedis {
                url,
                prefix,
                server: None,
            };
        }
        let server = tokio::task::spawn_blocking(RedisServer::start)
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{e:#} (or set {REDIS_URL_ENV} to a server the tests may write to)"));
        TestRedis {
            url: server.url(),
            prefix,
            server: Some(server),
        }
    }

    /// Stops the server and starts it again on the same port with the same data: every connection is
    /// cut and every loaded script forgotten.
    pub async fn restart(&mut self) {
        let mut server = self
            .server
            .take()
            .expect("a server from RECON_TEST_REDIS_URL cannot be restarted");
        let server = tokio::task::spawn_blocking(move || {
            server.restart().expect("redis-server restarts");
            server
        })
        .await
        .unwrap();
        self.server = Some(server);
    }

    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// Runs one command; panics on an error reply.
    pub async fn run(&self, args: &[&str]) {
        let mut conn = self.conn().await;
        let mut cmd = redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        let _: redis::Value = cmd
            .query_async(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    }

    /// Resets the server's command statistics (`CONFIG RESETSTAT`).
    pub async fn reset_stats(&self) {
        self.run(&["CONFIG", "RESETSTAT"]).await;
    }

    /// How many times the server ran `command` (lowercase, `scan`) since [`TestRedis::reset_stats`],
    /// from `INFO commandstats`; None on a server from `RECON_TEST_REDIS_URL`, whose counts other
    /// tests move too.
    pub async fn calls(&self, command: &str) -> Option<u64> {
        self.server.as_ref()?;
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut self.conn().await)
            .await
            .unwrap();
        let prefix = format!("cmdstat_{command}:calls=");
        Some(
            info.lines()
                .find_map(|l| l.strip_prefix(&prefix))
                .map(|rest| rest.split(',').next().unwrap().parse().unwrap())
                .unwrap_or(0),
        )
    }

    /// `SET` of many key/value pairs in pipelines of 1,000.
    pub async fn set_all(&self, pairs: &[(String, String)]) {
        let mut conn = self.conn().await;
        for chunk in pairs.chunks(1000) {
            let mut pipe = redis::pipe();
            for (k, v) in chunk {
                pipe.cmd("SET").arg(k).arg(v).ignore();
            }
            let () = pipe.query_async(&mut conn).await.unwrap();
        }
    }
}

/// What [`FaultyProxy`] does to the traffic of its connections; each fault fires once, then the proxy
/// passes everything again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Closes the connection once the server has sent this many bytes on it (a reset mid-read).
    CutAfterBytes(u64),
    /// Forwards the first batch of write scripts (`EVALSHA`) that the server runs, then closes the
    /// connection instead of handing back its answer: the writes applied, their answer is lost.
    LoseWriteAnswer,
    /// Holds the first batch of write scripts, never forwarded, unanswered (a hung server), until
    /// [`FaultyProxy::release`] closes the connection.
    HoldWrites,
}

/// A TCP proxy in front of a Redis server that injects one [`Fault`] at a deterministic point of the
/// protocol: no sleeps, no timing. `fired` is notified when the fault fires.
pub struct FaultyProxy {
    pub url: String,
    pub fault: Arc<Mutex<Fault>>,
    pub fired: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Notify>,
}

impl FaultyProxy {
    pub async fn start(upstream: &TestRedis) -> FaultyProxy {
        let upstream_addr = url::Url::parse(&upstream.url).unwrap();
        let upstream_addr = format!(
            "{}:{}",
            upstream_addr.host_str().unwrap(),
            upstream_addr.port().unwrap_or(6379)
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let fault = Arc::new(Mutex::new(Fault::None));
        let fired = Arc::new(tokio::sync::Notify::new());
        let release = Arc::new(tokio::sync::Notify::new());
        let (f, n, r) = (fault.clone(), fired.clone(), release.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(serve(client, upstream_addr.clone(), f.clone(), n.clone(), r.clone()));
            }
        });
        FaultyProxy {
            url: format!("redis://127.0.0.1:{port}/0"),
            fault,
            fired,
            release,
        }
    }

    /// Closes the connection [`Fault::HoldWrites`] holds: its writes were never sent.
    pub fn release(&self) {
        self.release.notify_one();
    }

    pub fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn serve(
    client: tokio::net::TcpStream,
    upstream: String,
    fault: Arc<Mutex<Fault>>,
    fired: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Notify>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    // Set when the last thing the client sent was a batch of write scripts.
    let writes_sent = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let fire = |fault: &Arc<Mutex<Fault>>, fired: &Arc<tokio::sync::Notify>| {
        *fault.lock().unwrap() = Fault::None;
        fired.notify_one();
    };
    let up = {
        let (fault, fired, writes_sent) = (fault.clone(), fired.clone(), writes_sent.clone());
        async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match client_read.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let chunk = &buf[..n];
                let writes = contains(chunk, b"EVALSHA");
                writes_sent.store(writes, std::sync::atomic::Ordering::SeqCst);
                let current = *fault.lock().unwrap();
                if writes && current == Fault::HoldWrites {
                    fire(&fault, &fired);
                    release.notified().await;
                    return;
                }
                if server_write.write_all(chunk).await.is_err() {
                    return;
                }
            }
        }
    };
    let down = async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut sent = 0u64;
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let chunk = &buf[..n];
            let current = *fault.lock().unwrap();
            match current {
                Fault::CutAfterBytes(limit) if sent + n as u64 > limit => {
                    let _ = client_write.write_all(&chunk[..(limit - sent) as usize]).await;
                    fire(&fault, &fired);
                    return;
                }
                // The answer to write scripts the server ran (not a NOSCRIPT refusal, after which the
                // client loads the script and sends them again).
                Fault::LoseWriteAnswer
                    if writes_sent.load(std::sync::atomic::Ordering::SeqCst) && !contains(chunk, b"NOSCRIPT") =>
                {
                    fire(&fault, &fired);
                    return;
                }
                _ => {}
            }
            sent += n as u64;
            if client_write.write_all(chunk).await.is_err() {
                return;
            }
        }
    };
    // Whichever direction ends first closes both.
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}
