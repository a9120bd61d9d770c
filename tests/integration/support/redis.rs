//! Redis for tests: a throwaway `redis-server` per test (nothing persisted, killed on drop), or the
//! server `RECON_TEST_REDIS_URL` names. Each test writes under its own key prefix, so tests sharing a
//! server never see each other's keys.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Set to a Redis URL to run the tests against an existing server instead of throwaway ones.
pub const REDIS_URL_ENV: &str = "RECON_TEST_REDIS_URL";

/// A Redis server for one test, and the key prefix that test writes under.
pub struct TestRedis {
    pub url: String,
    /// Unique to this test: put it in front of every key (and of `redis.key_pattern`).
    pub prefix: String,
    child: Option<Child>,
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
                child: None,
            };
        }
        let mut last = String::new();
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let child = Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot start redis-server ({e}): install it (apt-get install -y redis-server) or set \
                         {REDIS_URL_ENV} to a server the tests may write to"
                    )
                });
            let mut redis = TestRedis {
                url: format!("redis://127.0.0.1:{port}/0"),
                prefix: prefix.clone(),
                child: Some(child),
            };
            match redis.wait_for_ping(Duration::from_secs(10)).await {
                Ok(()) => return redis,
                Err(e) => last = e,
            }
        }
        panic!("redis-server did not answer PING: {last}");
    }

    /// Polls PING until it answers; an error when the server exited or the time ran out.
    async fn wait_for_ping(&mut self, limit: Duration) -> Result<(), String> {
        let end = Instant::now() + limit;
        let client = redis::Client::open(self.url.as_str()).map_err(|e| e.to_string())?;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!("redis-server exited: {status}"));
                }
            }
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
                let pong: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut conn).await;
                if pong.is_ok() {
                    return Ok(());
                }
            }
            if Instant::now() > end {
                return Err("no answer in time".into());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
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

impl Drop for TestRedis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
