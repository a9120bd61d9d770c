//! Throwaway `redis-server`s: on a free port of 127.0.0.1, keeping nothing on disk (`--save ""
//! --appendonly no`; only an explicit `SAVE` writes, into a directory of the server's own), killed
//! when stopped or dropped.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// What to tell someone without the server binary.
pub const INSTALL_HINT: &str = "install it: apt-get install -y redis-server";

/// How long a server may take to answer its first PING.
const START_LIMIT: Duration = Duration::from_secs(10);

/// A `redis-server` of this process.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers PING. Fails saying how to install
    /// `redis-server` when it is not on PATH.
    pub fn start() -> anyhow::Result<RedisServer> {
        let mut last = None;
        // A free port may be taken by someone else before the server binds it: try a few.
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .context("no free port on 127.0.0.1")?
                .port();
            let dir = tempfile::Builder::new()
                .prefix("recon-redis-")
                .tempdir()
                .context("cannot create a directory for redis-server")?;
            let mut server = RedisServer {
                port,
                child: Some(spawn(port, dir.path())?),
                dir,
            };
            match server.wait_until_ready() {
                Ok(()) => return Ok(server),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("tried at least once"))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Saves the data, stops the server and starts it again on the same port with that data: every
    /// connection is cut and every loaded script forgotten.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        command(self.port, "SAVE").context("SAVE before the restart")?;
        self.kill();
        self.child = Some(spawn(self.port, self.dir.path())?);
        self.wait_until_ready()
    }

    /// Stops the server; its directory goes too.
    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn wait_until_ready(&mut self) -> anyhow::Result<()> {
        let end = Instant::now() + START_LIMIT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    bail!("redis-server exited at start ({status}); is port {} taken?", self.port);
                }
            }
            if command(self.port, "PING").is_ok_and(|answer| answer == "+PONG") {
                return Ok(());
            }
            if Instant::now() > end {
                bail!(
                    "redis-server did not answer PING on port {} within {START_LIMIT:?}",
                    self.port
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(port: u16, dir: &Path) -> anyhow::Result<Child> {
    Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => anyhow::anyhow!("redis-server is not on PATH; {INSTALL_HINT}"),
            _ => anyhow::anyhow!("cannot start redis-server: {e}"),
        })
}

/// Sends one inline command, answers its first line (`+PONG`, `+OK`).
fn command(port: u16, text: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.write_all(format!("{text}\r\n").as_bytes())?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    Ok(line.trim_end().to_string())
}
