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

/// The demo's redis-server directories (`recon-redis-*`) under `tmp`.
fn redis_dirs(tmp: &std::path::Path) -> Vec<PathBuf> {
    std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("recon-redis-"))
        })
        .collect()
}

/// The Redis demo tells the same story as the Elasticsearch one: its own redis-server, exactly the
/// injected drift found (no duplicates in a key-value store, but an undecodable value and an unkeyed
/// key), and the server stopped at the end.
#[test]
fn the_redis_demo_finds_exactly_the_injected_drift_and_stops_its_server() {
    let tmp = tempfile::tempdir().unwrap();
    let out = recon()
        .args(["demo", "--read-model", "redis", "--format", "json"])
        .env("TMPDIR", tmp.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("starting a throwaway redis-server"), "{stderr}");
    assert!(
        stderr
            .contains("found exactly the injected drift (2 missing, 3 orphaned, 8 mismatched, 0 duplicate, 1 unkeyed)"),
        "{stderr}"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["summary"]["unkeyed"], 1, "{report}");
    assert!(
        report["run"]["target"]
            .as_str()
            .unwrap()
            .starts_with("Redis redis://127.0.0.1:"),
        "{report}"
    );
    // Stopped: its port is closed and its directory gone.
    let target = report["run"]["target"].as_str().unwrap();
    let port: u16 = target["Redis redis://127.0.0.1:".len()..]
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "redis-server still runs on {port}"
    );
    assert_eq!(redis_dirs(tmp.path()), Vec::<PathBuf>::new());
}

/// Without redis-server on PATH the Redis demo says how to install it, and starts nothing.
#[test]
fn the_redis_demo_without_redis_server_says_how_to_install_it() {
    let empty = tempfile::tempdir().unwrap();
    let out = recon()
        .args(["demo", "--read-model", "redis", "--quiet"])
        .env("PATH", empty.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("recon: error: redis-server is not on PATH; install it: apt-get install -y redis-server"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

/// Ctrl-C in the middle of the Redis demo stops both servers and removes their directories.
#[test]
fn an_interrupted_redis_demo_stops_its_redis_server_too() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = recon()
        .args(["demo", "--read-model", "redis", "--orders", "50000", "--format", "json"])
        .env("TMPDIR", tmp.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    while !said.contains("loading a shop") {
        let mut line = String::new();
        assert_ne!(stderr.read_line(&mut line).unwrap(), 0, "the demo ended early: {said}");
        said.push_str(&line);
    }
    assert_eq!(redis_dirs(tmp.path()).len(), 1, "the demo's redis-server runs: {said}");
    // SAFETY: signals the child this test started and has not yet reaped.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGINT) }, 0);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{said}{rest}");
    assert_eq!(redis_dirs(tmp.path()), Vec::<PathBuf>::new(), "{said}{rest}");
    assert_eq!(clusters_of(pid), Vec::<PathBuf>::new(), "{said}{rest}");
}
