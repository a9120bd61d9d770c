//! `recon demo` end to end: its own throwaway PostgreSQL, the emulator in-process, the binary.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;

use crate::support::cli_command as recon;

/// The throwaway clusters (directories under /tmp) the process `pid` owns.
fn clusters_of(pid: u32) -> Vec<PathBuf> {
    std::fs::read_dir("/tmp")
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("recon-pg-"))
        })
        .filter(|p| std::fs::read_to_string(p.join("owner.pid")).is_ok_and(|owner| owner.trim() == pid.to_string()))
        .collect()
}

/// Ctrl-C in the middle of the demo stops its PostgreSQL, removes its directory and exits 130.
#[test]
fn an_interrupted_demo_cleans_up_and_exits_130() {
    // Big enough that loading and projecting the shop are far from done when the signal arrives.
    let mut child = recon()
        .args(["demo", "--orders", "50000", "--format", "json"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    // The cluster is up and the shop is being loaded once the demo says so.
    while !said.contains("loading a shop") {
        let mut line = String::new();
        assert_ne!(stderr.read_line(&mut line).unwrap(), 0, "the demo ended early: {said}");
        said.push_str(&line);
    }
    assert_eq!(clusters_of(pid).len(), 1, "the demo's cluster exists: {said}");
    // SAFETY: signals the child this test started and has not yet reaped.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGINT) }, 0);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{said}{rest}");
    assert!(!rest.contains("found exactly"), "interrupted before the end: {rest}");
    assert_eq!(
        clusters_of(pid),
        Vec::<PathBuf>::new(),
        "the cluster's directory is gone: {said}{rest}"
    );
}
