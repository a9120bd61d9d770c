//! One file per subcommand: each turns parsed flags into settings, runs, and returns an [`Outcome`].

pub mod check;
pub mod completions;
pub mod demo;
pub mod reindex;
pub mod repair;
pub mod report_merge;
pub mod undo;

/// How a run ended, as the process exit code (like diff(1): 0 same, 1 different, 2 trouble).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// No drift, or no more failing keys than `--allow`.
    InSync,
    /// Drift beyond `--allow`.
    Drift,
    /// SIGINT or SIGTERM.
    Interrupted,
}

impl Outcome {
    pub fn exit_code(self) -> i32 {
        match self {
            Outcome::InSync => 0,
            Outcome::Drift => 1,
            Outcome::Interrupted => 130,
        }
    }
}

/// Exit code for any error.
pub const EXIT_ERROR: i32 = 2;

/// Resolves when the process is asked to stop (SIGINT or SIGTERM).
pub async fn interrupted() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
