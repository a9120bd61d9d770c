//! One file per subcommand: each turns parsed flags into settings, runs, and returns an [`Outcome`].

pub mod check;
pub mod command_line;
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

/// Exit code when the report could not be delivered because stdout was closed (`recon check | head -1`):
/// 128 + SIGPIPE, what a shell reports for a process SIGPIPE killed, so `set -o pipefail` fails the
/// pipeline instead of passing a gate whose report nobody read.
pub const EXIT_BROKEN_PIPE: i32 = 141;

/// Whether the process was asked to stop (SIGINT or SIGTERM). The first call (of this or [`interrupted`])
/// starts listening, and from then on those signals no longer kill the process: call it before creating
/// anything that must be cleaned up on the way out.
pub fn stop_requested() -> bool {
    *stop_requests().borrow()
}

/// Resolves when the process is asked to stop (SIGINT or SIGTERM), or at once if it already was.
///
/// One listener for the whole process, set up by the first call and never dropped: a signal between
/// two phases of a run (when no one is awaiting this) is remembered, not lost. A second signal exits
/// at once with 130, for an operator who will not wait for a clean stop.
pub async fn interrupted() {
    let mut stop = stop_requests();
    // The sender lives in the listener task for good; `changed` fails only if that task is gone.
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

fn stop_requests() -> tokio::sync::watch::Receiver<bool> {
    static STOP: std::sync::OnceLock<tokio::sync::watch::Receiver<bool>> = std::sync::OnceLock::new();
    STOP.get_or_init(|| {
        let (tell, told) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
                return std::future::pending().await;
            };
            let mut signals = 0;
            loop {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                signals += 1;
                if signals == 1 {
                    let _ = tell.send(true);
                } else {
                    crate::note!("recon: interrupted again: exiting now");
                    std::process::exit(Outcome::Interrupted.exit_code());
                }
            }
        });
        told
    })
    .clone()
}
