//! Test hooks: the integration tests' way to kill a reindex, or hold it, at a known point. They exist
//! only in debug builds (`#[cfg(debug_assertions)]`; the tests run the debug binary): a release `recon`
//! reads none of these variables and holds none of their names. In a release build every hook is a
//! no-op.
//!
//! - `RECON_REINDEX_FAIL_AFTER=STAGE` exits hard right after STAGE (`load`, `verify`, `swap`), as a
//!   crash would; `RECON_REINDEX_FAIL_AFTER=batches:N` once N bulk batches of the load are settled.
//! - `RECON_REINDEX_HOLD_<STAGE>=PATH` creates PATH and waits (at most a minute) until it is removed.
//!   `AFTER_LOAD`: between the load and the first verify pass; `BEFORE_SWAP`: once the verify gate
//!   opened, in the window between the last check and the swap.

/// Exits hard if the tests asked to crash right after `stage`.
#[cfg(debug_assertions)]
pub fn failpoint(stage: &str) {
    if std::env::var("RECON_REINDEX_FAIL_AFTER").is_ok_and(|s| s == stage) {
        crate::note!("recon: RECON_REINDEX_FAIL_AFTER={stage}: exiting hard (test hook)");
        std::process::abort();
    }
}

#[cfg(not(debug_assertions))]
pub fn failpoint(_stage: &str) {}

/// Waits at `stage` while the tests act, if they asked to.
#[cfg(debug_assertions)]
pub async fn hold(stage: &str) -> anyhow::Result<()> {
    use std::time::{Duration, Instant};
    let Some(path) = std::env::var_os(format!("RECON_REINDEX_HOLD_{stage}")) else {
        return Ok(());
    };
    let path = std::path::PathBuf::from(path);
    std::fs::write(&path, b"held\n")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while path.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

#[cfg(not(debug_assertions))]
pub async fn hold(_stage: &str) -> anyhow::Result<()> {
    Ok(())
}

/// After how many bulk batches the load is to crash (`RECON_REINDEX_FAIL_AFTER=batches:N`).
#[cfg(debug_assertions)]
pub fn fail_after_batches() -> Option<u64> {
    batches(&std::env::var("RECON_REINDEX_FAIL_AFTER").ok()?)
}

#[cfg(not(debug_assertions))]
pub fn fail_after_batches() -> Option<u64> {
    None
}

/// Exits hard: `total` batches are settled and the tests asked for a crash there.
#[cfg(debug_assertions)]
pub fn crash_after_batches(total: u64) {
    crate::note!("recon: RECON_REINDEX_FAIL_AFTER=batches:{total}: exiting hard (test hook)");
    std::process::abort();
}

#[cfg(not(debug_assertions))]
pub fn crash_after_batches(_total: u64) {}

#[cfg(debug_assertions)]
fn batches(value: &str) -> Option<u64> {
    value.strip_prefix("batches:")?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[cfg(debug_assertions)]
    #[test]
    fn the_batch_hook_reads_batches_n_only() {
        assert_eq!(super::batches("batches:7"), Some(7));
        assert_eq!(super::batches("load"), None);
        assert_eq!(super::batches("batches:x"), None);
    }

    /// Every mention of a hook's variable in the product's source is in this file, where each one is
    /// behind `#[cfg(debug_assertions)]`: a release build reads none of them.
    #[test]
    fn hooks_live_in_this_file_only() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut found = Vec::new();
        super::super::tests::each_source_file(&src, &mut |path, text| {
            if text.contains("RECON_REINDEX_") && !path.ends_with("reindex/hooks.rs") {
                found.push(path.display().to_string());
            }
        });
        assert_eq!(found, Vec::<String>::new(), "test hooks outside src/reindex/hooks.rs");
        // In this file: every function reading one is compiled for debug builds only.
        let text = std::fs::read_to_string(src.join("reindex/hooks.rs")).unwrap();
        let body = &text[..text.find("#[cfg(test)]").unwrap()];
        for item in body.split("\n\n").filter(|item| item.contains("RECON_REINDEX_")) {
            if item.trim_start().starts_with("//!") {
                continue;
            }
            assert!(item.contains("#[cfg(debug_assertions)]"), "not debug-only: {item}");
        }
    }
}
