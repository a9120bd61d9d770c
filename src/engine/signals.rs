//! SIGINT and SIGTERM: one process-wide listener, so a run stops cleanly at its next step.

use super::Outcome;

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
