//! Shared test harness. Every test gets its own database (and, later, its own index), so tests run in
//! parallel and in any order.

// Each test module uses a different part of the harness.
#![allow(dead_code)]

pub mod fixture;
pub mod pg;
pub mod rabbitmq;
pub mod redis;

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

/// Runs `command` to the end with its stdout on a pseudo-terminal (stdin empty, stderr piped): what a
/// user at a terminal would see on stdout. The terminal turns `\n` into `\r\n`.
pub fn run_on_a_terminal(command: std::process::Command) -> Run {
    run_with_a_terminal(command, Terminal::Stdout)
}

/// Runs `command` to the end with its stderr on a pseudo-terminal (stdin empty, stdout piped): what a
/// user at a terminal sees on stderr, progress bars and all. The terminal turns `\n` into `\r\n`.
pub fn run_with_stderr_on_a_terminal(command: std::process::Command) -> Run {
    run_with_a_terminal(command, Terminal::Stderr)
}

/// Which of a command's outputs goes to the pseudo-terminal.
#[derive(Clone, Copy, PartialEq)]
enum Terminal {
    Stdout,
    Stderr,
}

fn run_with_a_terminal(mut command: std::process::Command, terminal: Terminal) -> Run {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    use std::process::Stdio;

    // SAFETY: plain libc calls on a descriptor this function owns; ptsname_r writes into `name`.
    let (master, slave_path) = unsafe {
        let fd = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(fd >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
        assert_eq!(libc::grantpt(fd), 0, "grantpt");
        assert_eq!(libc::unlockpt(fd), 0, "unlockpt");
        let mut name = [0 as libc::c_char; 128];
        assert_eq!(libc::ptsname_r(fd, name.as_mut_ptr(), name.len()), 0, "ptsname_r");
        let path = std::ffi::CStr::from_ptr(name.as_ptr()).to_str().unwrap().to_string();
        (std::fs::File::from_raw_fd(fd), path)
    };
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(&slave_path)
        .unwrap();
    command.stdin(Stdio::null());
    match terminal {
        Terminal::Stdout => command.stdout(Stdio::from(slave)).stderr(Stdio::piped()),
        Terminal::Stderr => command.stdout(Stdio::piped()).stderr(Stdio::from(slave)),
    };
    let child = command.spawn().expect("recon runs");
    // The Command holds the terminal's other end open; the reader sees its end only once both are closed.
    drop(command);
    let reader = std::thread::spawn(move || {
        let mut master = master;
        let mut seen = Vec::new();
        let mut chunk = [0u8; 4096];
        // Reading a terminal whose other end is closed fails with EIO: that is its end of file.
        while let Ok(n) = master.read(&mut chunk) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&chunk[..n]);
        }
        seen
    });
    let out = child.wait_with_output().unwrap();
    let seen = reader.join().unwrap();
    let (stdout, stderr) = match terminal {
        Terminal::Stdout => (seen, out.stderr),
        Terminal::Stderr => (out.stdout, seen),
    };
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}
