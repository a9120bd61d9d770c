//! The `recon-es-emulator` binary: prints where it listens first, serves, and honours its flags.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

/// One HTTP/1.1 request on a fresh connection: (status, body).
fn get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connects");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn the_binary_prints_its_address_first_and_serves() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_recon-es-emulator"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--flavor",
            "opensearch",
            "--faults",
            "reject_every=1,only=search",
            "--seed",
            "7",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("the emulator binary starts");
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let url = first.trim().to_string();
    let addr = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("an http URL first: {url}"));
    assert!(addr.starts_with("127.0.0.1:"), "{url}");
    let (status, info) = get(addr, "/");
    assert_eq!(status, 200, "{info}");
    assert!(
        info.contains("\"distribution\":\"opensearch\""),
        "--flavor applies: {info}"
    );
    assert_eq!(get(addr, "/_search").0, 429, "--faults applies");
    child.kill().expect("kill");
    let _ = child.wait();

    let bad = Command::new(env!("CARGO_BIN_EXE_recon-es-emulator"))
        .args(["--faults", "bogus=1"])
        .output()
        .expect("runs");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown fault"));
}
