//! Shared test harness. Every test gets its own database (and, later, its own index), so tests run in
//! parallel and in any order.

// Each test module uses a different part of the harness.
#![allow(dead_code)]

pub mod fixture;
pub mod pg;

// Re-exported for every test module, whichever parts it uses.
#[allow(unused_imports)]
pub use pg::{shop_database, shop_projection_query, shop_schema_sql, test_database, TestDb};

/// The recon binary with a clean environment, so a developer's DATABASE_URL never leaks into a test.
pub fn cli_command() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_recon"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NO_COLOR", "1");
    command
}

/// Polls `condition` every 5 ms until it holds (true) or `limit` passes (false): synchronization on an
/// observable state, never a fixed sleep.
pub async fn eventually<F, Fut>(limit: std::time::Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = std::time::Instant::now() + limit;
    while std::time::Instant::now() < end {
        if condition().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    false
}

/// What a finished `recon` process said: exit code (-1 when killed by a signal), stdout, stderr.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<std::process::Output> for Run {
    fn from(out: std::process::Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}
