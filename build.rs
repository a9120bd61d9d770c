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
    // Build again when HEAD moves: the file HEAD, and the branch file it points at.
    let head = Path::new(".git/HEAD");
    if head.exists() {
        println!("cargo:rerun-if-changed=.git/HEAD");
        if let Some(branch) = std::fs::read_to_string(head)
            .ok()
            .and_then(|text| text.strip_prefix("ref: ").map(|r| r.trim().to_string()))
        {
            let branch = Path::new(".git").join(branch);
            if branch.exists() {
                println!("cargo:rerun-if-changed={}", branch.display());
            }
        }
    } else {
        println!("cargo:rerun-if-changed=build.rs");
    }
}
