//! Puts the commit recon is built from into `recon --version` (`recon 0.1.0 (1a2b3c4d5e6f)`), so a
//! report, a bug or a cron log can name the exact build. Outside a git checkout the version stands alone.

use std::path::Path;
use std::process::Command;

fn main() {
    let version = env!("CARGO_PKG_VERSION");
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|commit| !commit.is_empty());
    match commit {
        Some(commit) => println!("cargo:rustc-env=RECON_VERSION={version} ({commit})"),
        None => println!("cargo:rustc-env=RECON_VERSION={version}"),
    }
    // Build again when HEAD moves: the file HEAD, the branch file it points at and packed-refs, wherever
    // git keeps them (in a linked worktree `.git` is a file and the branches live in the main checkout).
    let git_path = |path: &str| {
        Command::new("git")
            .args(["rev-parse", "--git-path", path])
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
            .filter(|path| Path::new(path).exists())
    };
    let branch = Command::new("git")
        .args(["symbolic-ref", "-q", "HEAD"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string());
    let watched: Vec<String> = ["HEAD", "packed-refs"]
        .into_iter()
        .map(str::to_string)
        .chain(branch)
        .filter_map(|path| git_path(&path))
        .collect();
    if watched.is_empty() {
        println!("cargo:rerun-if-changed=build.rs");
    }
    for path in watched {
        println!("cargo:rerun-if-changed={path}");
    }
}
