//! Throwaway PostgreSQL clusters from the system's server binaries, for the tests, `recon demo` and the
//! benches.
//!
//! The API is synchronous on purpose: a cluster often lives in a `static` shared by tests that each run
//! their own tokio runtime, so nothing here may depend on a runtime that can die. Readiness is probed and
//! databases are created over a minimal blocking implementation of the wire protocol (trust
//! authentication only, which is what `initdb -A trust` sets up).
//!
//! Lifetime: [`PgCluster::stop`] or `Drop` shuts the server down (SIGINT, then SIGKILL after a deadline)
//! and removes its directory. A cluster in a `static` is never dropped, and a test binary may be killed;
//! so the server is spawned with `PR_SET_PDEATHSIG = SIGKILL` from a spawner thread that lives as long as
//! the process (the death signal fires when the *thread* that forked exits), and every start removes the
//! directories of clusters whose owning process is gone.

use std::ffi::CString;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{chown, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// Directory-name prefix of every cluster under the temp dir; stale ones are recognised by it.
const DIR_PREFIX: &str = "recon-pg-";
/// File inside a cluster directory holding the pid of the process that owns the cluster.
const OWNER_FILE: &str = "owner.pid";
/// Members of this role must log in with a (SCRAM) password, everyone else is trusted: lets tests see
/// a real authentication failure on an otherwise passwordless cluster.
pub const PASSWORD_GROUP: &str = "recon_password_users";
const READY_DEADLINE: Duration = Duration::from_secs(30);
const STOP_DEADLINE: Duration = Duration::from_secs(10);
/// A free port can be taken by someone else between our probe and the server's bind.
const PORT_ATTEMPTS: usize = 3;

/// A running throwaway cluster. The superuser is `postgres`, authentication is `trust`, and it listens
/// on 127.0.0.1 only.
pub struct PgCluster {
    child: Option<Child>,
    port: u16,
    dir: Option<PathBuf>,
}

impl std::fmt::Debug for PgCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgCluster")
            .field("port", &self.port)
            .field("dir", &self.dir)
            .finish()
    }
}

/// The server binaries in use.
#[derive(Debug, Clone)]
struct Binaries {
    initdb: PathBuf,
    postgres: PathBuf,
}

/// The user the server runs as when we are root (PostgreSQL refuses to run as root).
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: u32,
    gid: u32,
}

impl PgCluster {
    /// Creates a fresh cluster in a new temporary directory and starts it; returns once it accepts
    /// connections. Blocking (a few seconds, mostly initdb).
    pub fn start() -> anyhow::Result<PgCluster> {
        remove_stale_clusters();
        let binaries = find_binaries()?;
        let run_as = run_as()?;
        let dir = create_cluster_dir(run_as)?;
        // From here on, a failure must not leave the directory behind.
        let mut cluster = PgCluster {
            child: None,
            port: 0,
            dir: Some(dir.clone()),
        };
        init_data_dir(&binaries, &dir, run_as)?;
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            match start_server(&binaries, &dir, port, run_as) {
                Ok(child) => {
                    cluster.child = Some(child);
                    cluster.port = port;
                    return Ok(cluster);
                }
                Err(StartError::PortTaken) => last_error = Some(anyhow::anyhow!("port {port} was taken")),
                Err(StartError::Failed(e)) => return Err(e),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no free port")))
            .context("could not start PostgreSQL on a free port")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's directory (data directory in `data/`, socket in `sock/`, server log in
    /// `postgres.log`).
    pub fn dir(&self) -> &Path {
        self.dir
            .as_deref()
            .expect("cluster directory exists until the cluster is stopped")
    }

    /// URL of the `postgres` database as the `postgres` superuser.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// URL of database `name` on this cluster (which need not exist).
    pub fn database_url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{}", self.port, name)
    }

    /// Creates database `name` and returns its URL. Blocking.
    pub fn create_database(&self, name: &str) -> anyhow::Result<String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let mut session = WireSession::connect(addr, "postgres").map_err(|e| anyhow::anyhow!("{e}"))?;
        let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        session
            .simple_query(&sql)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("{sql} failed"))?;
        Ok(self.database_url(name))
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        self.dir.as_deref().map(read_log).unwrap_or_default()
    }

    /// Fast shutdown, then removal of the directory. Also done by `Drop`.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> anyhow::Result<()> {
        let mut result = Ok(());
        if let Some(mut child) = self.child.take() {
            result = stop_child(&mut child);
        }
        if let Some(dir) = self.dir.take() {
            if let Err(e) = fs::remove_dir_all(&dir) {
                if result.is_ok() {
                    result = Err(e).with_context(|| format!("could not remove {}", dir.display()));
                }
            }
        }
        result
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

fn stop_child(child: &mut Child) -> anyhow::Result<()> {
    let pid = child.id() as libc::pid_t;
    if child.try_wait()?.is_some() {
        return Ok(());
    }
    // SIGINT is PostgreSQL's "fast" shutdown: abort transactions, disconnect clients, exit cleanly.
    unsafe { libc::kill(pid, libc::SIGINT) };
    if wait_with_deadline(child, STOP_DEADLINE)?.is_some() {
        return Ok(());
    }
    child.kill()?;
    child.wait()?;
    bail!("PostgreSQL (pid {pid}) ignored SIGINT for {STOP_DEADLINE:?} and was killed")
}

fn wait_with_deadline(child: &mut Child, deadline: Duration) -> io::Result<Option<std::process::ExitStatus>> {
    let until = Instant::now() + deadline;
    let mut pause = Duration::from_millis(2);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= until {
            return Ok(None);
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Highest version under /usr/lib/postgresql/*/bin (Debian/Ubuntu layout), else whatever PATH has.
fn find_binaries() -> anyhow::Result<Binaries> {
    let mut versioned: Vec<(Vec<u32>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version: Vec<u32> = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|p| p.parse().ok())
                .collect::<Option<_>>()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("postgres").is_file()).then_some((version, bin))
        })
        .collect();
    versioned.sort();
    if let Some((_, bin)) = versioned.pop() {
        return Ok(Binaries {
            initdb: bin.join("initdb"),
            postgres: bin.join("postgres"),
        });
    }
    let on_path = |name: &str| {
        std::env::var_os("PATH")
            .into_iter()
            .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    };
    match (on_path("initdb"), on_path("postgres")) {
        (Some(initdb), Some(postgres)) => Ok(Binaries { initdb, postgres }),
        _ => bail!(
            "PostgreSQL server binaries (initdb, postgres) not found under /usr/lib/postgresql/*/bin or on PATH; \
             install PostgreSQL server binaries, e.g. apt-get install -y postgresql"
        ),
    }
}

fn run_as() -> anyhow::Result<Option<RunAs>> {
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let name = CString::new("postgres").expect("no NUL");
    // getpwnam's result points into static storage; copy the ids out immediately.
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    if entry.is_null() {
        bail!(
            "running as root, and PostgreSQL refuses to run as root; create a `postgres` system user \
             (the postgresql package does) or run as an ordinary user"
        );
    }
    let (uid, gid) = unsafe { ((*entry).pw_uid, (*entry).pw_gid) };
    Ok(Some(RunAs { uid, gid }))
}

fn create_cluster_dir(run_as: Option<RunAs>) -> anyhow::Result<PathBuf> {
    // Under /tmp rather than $TMPDIR: the socket path must stay short (108 bytes), and when we are root
    // the postgres user must be able to traverse every parent.
    let dir = tempfile::Builder::new()
        .prefix(DIR_PREFIX)
        .tempdir_in("/tmp")
        .context("could not create a temporary directory for PostgreSQL")?
        .keep();
    let setup = || -> anyhow::Result<()> {
        fs::write(dir.join(OWNER_FILE), std::process::id().to_string())?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))?;
        fs::create_dir(dir.join("sock"))?;
        if let Some(RunAs { uid, gid }) = run_as {
            chown(&dir, Some(uid), Some(gid))?;
            chown(dir.join("sock"), Some(uid), Some(gid))?;
        }
        Ok(())
    };
    if let Err(e) = setup() {
        let _ = fs::remove_dir_all(&dir);
        return Err(e.context(format!("could not prepare {}", dir.display())));
    }
    Ok(dir)
}

fn command_as(program: &Path, dir: &Path, run_as: Option<RunAs>) -> Command {
    let mut command = Command::new(program);
    // The cluster dir, not ours: the postgres user may not be allowed into our working directory.
    command.current_dir(dir).env("LC_ALL", "C").env_remove("PGDATA");
    if let Some(RunAs { uid, gid }) = run_as {
        command.uid(uid).gid(gid).env("HOME", dir);
    }
    command
}

fn init_data_dir(binaries: &Binaries, dir: &Path, run_as: Option<RunAs>) -> anyhow::Result<()> {
    let output = command_as(&binaries.initdb, dir, run_as)
        .arg("-D")
        .arg(dir.join("data"))
        .args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
        ])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("could not run {}", binaries.initdb.display()))?;
    if !output.status.success() {
        bail!(
            "{} failed ({}):\n{}{}",
            binaries.initdb.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    // First matching line wins, so this goes before initdb's trust lines.
    let hba = dir.join("data/pg_hba.conf");
    let rules = fs::read_to_string(&hba).with_context(|| format!("could not read {}", hba.display()))?;
    let rules = format!("host all +{PASSWORD_GROUP} 127.0.0.1/32 scram-sha-256\n{rules}");
    fs::write(&hba, rules).with_context(|| format!("could not write {}", hba.display()))?;
    Ok(())
}

enum StartError {
    PortTaken,
    Failed(anyhow::Error),
}

fn start_server(binaries: &Binaries, dir: &Path, port: u16, run_as: Option<RunAs>) -> Result<Child, StartError> {
    let failed = |e: anyhow::Error| StartError::Failed(e);
    let log = fs::File::create(dir.join("postgres.log"))
        .context("could not create postgres.log")
        .map_err(failed)?;
    let log_err = log
        .try_clone()
        .context("could not duplicate the log file")
        .map_err(failed)?;
    let mut command = command_as(&binaries.postgres, dir, run_as);
    command
        .arg("-D")
        .arg(dir.join("data"))
        .arg("-p")
        .arg(port.to_string())
        .arg("-k")
        .arg(dir.join("sock"))
        .args(["-c", "listen_addresses=127.0.0.1"])
        .args([
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
        ])
        // Dynamic shared memory in files of the data directory, not /dev/shm: a SIGKILLed server then
        // leaves nothing behind that removing the directory does not clean.
        .args(["-c", "dynamic_shared_memory_type=mmap"])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    unsafe {
        command.pre_exec(|| {
            // Dies with the thread that forked it (the spawner thread, alive as long as the process).
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl.
            if libc::getppid() == 1 {
                return Err(io::Error::other("parent exited"));
            }
            Ok(())
        });
    }
    let mut child = spawn_on_spawner_thread(command)
        .with_context(|| format!("could not run {}", binaries.postgres.display()))
        .map_err(failed)?;
    match wait_until_ready(&mut child, port) {
        Ok(()) => Ok(child),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            let log = read_log(dir);
            if log.contains("could not bind") || log.contains("Address already in use") {
                Err(StartError::PortTaken)
            } else {
                Err(StartError::Failed(
                    e.context(format!("PostgreSQL did not start; its log:\n{log}")),
                ))
            }
        }
    }
}

fn read_log(dir: &Path) -> String {
    fs::read_to_string(dir.join("postgres.log")).unwrap_or_default()
}

fn wait_until_ready(child: &mut Child, port: u16) -> anyhow::Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let until = Instant::now() + READY_DEADLINE;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("PostgreSQL exited during startup ({status})");
        }
        let last = match WireSession::connect(addr, "postgres") {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        if Instant::now() >= until {
            bail!("PostgreSQL did not accept connections within {READY_DEADLINE:?}: {last}");
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("could not find a free port")?;
    Ok(listener.local_addr()?.port())
}

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Runs `command` on the process-lifetime spawner thread, so that `PR_SET_PDEATHSIG` in its `pre_exec`
/// fires when the process exits, not when some short-lived (e.g. per-test) thread does.
fn spawn_on_spawner_thread(command: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        thread::Builder::new()
            .name("recon-pg-spawner".into())
            .spawn(move || {
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("could not start the PostgreSQL spawner thread");
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .send((command, reply_tx))
        .map_err(|_| io::Error::other("spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("spawner thread is gone"))?
}

/// Removes cluster directories left by processes that no longer exist (a static cluster is never
/// dropped; a killed test binary never cleans up). Best effort.
fn remove_stale_clusters() {
    let Ok(entries) = fs::read_dir("/tmp") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_str().is_some_and(|n| n.starts_with(DIR_PREFIX)) {
            continue;
        }
        let dir = entry.path();
        let Some(owner) = read_pid(&dir.join(OWNER_FILE)) else {
            // No owner file yet: maybe a cluster being created right now. Leave it.
            continue;
        };
        if pid_alive(owner) {
            continue;
        }
        // The death signal should have taken the server with its owner; make sure anyway.
        if let Some(server) = read_pid(&dir.join("data/postmaster.pid")) {
            if pid_alive(server) && process_mentions(server, &dir) {
                unsafe { libc::kill(server, libc::SIGKILL) };
            }
        }
        let _ = fs::remove_dir_all(&dir);
    }
}

fn read_pid(path: &Path) -> Option<libc::pid_t> {
    fs::read_to_string(path).ok()?.lines().next()?.trim().parse().ok()
}

fn pid_alive(pid: libc::pid_t) -> bool {
    if pid <= 0 {
        return false;
    }
    // EPERM means it exists but belongs to someone else.
    unsafe { libc::kill(pid, 0) == 0 || *libc::__errno_location() == libc::EPERM }
}

fn process_mentions(pid: libc::pid_t, dir: &Path) -> bool {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|cmdline| String::from_utf8_lossy(&cmdline).contains(&*dir.to_string_lossy()))
        .unwrap_or(false)
}

/// Just enough of the frontend/backend protocol (v3) to log in with trust authentication and run simple
/// queries, without a runtime.
struct WireSession {
    stream: TcpStream,
}

impl WireSession {
    fn connect(addr: SocketAddr, database: &str) -> Result<WireSession, String> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut session = WireSession { stream };
        let mut body = Vec::new();
        body.extend_from_slice(&196608u32.to_be_bytes()); // protocol 3.0
        for part in [
            "user",
            "postgres",
            "database",
            database,
            "application_name",
            "recon-pgcluster",
        ] {
            body.extend_from_slice(part.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut message = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        message.extend_from_slice(&body);
        session.stream.write_all(&message).map_err(|e| e.to_string())?;
        session.read_until_ready(true)?;
        Ok(session)
    }

    fn simple_query(&mut self, sql: &str) -> Result<(), String> {
        let mut message = vec![b'Q'];
        message.extend_from_slice(&((sql.len() + 5) as u32).to_be_bytes());
        message.extend_from_slice(sql.as_bytes());
        message.push(0);
        self.stream.write_all(&message).map_err(|e| e.to_string())?;
        self.read_until_ready(false)
    }

    /// Reads messages up to ReadyForQuery; the first ErrorResponse's message is the result. During
    /// startup an error ends the session (the server hangs up without ReadyForQuery).
    fn read_until_ready(&mut self, startup: bool) -> Result<(), String> {
        let mut error = None;
        loop {
            let mut header = [0u8; 5];
            self.stream.read_exact(&mut header).map_err(|e| e.to_string())?;
            let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
            let mut body = vec![0u8; len.saturating_sub(4)];
            self.stream.read_exact(&mut body).map_err(|e| e.to_string())?;
            match header[0] {
                b'R' => {
                    let code = body.get(..4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
                    if code != Some(0) {
                        return Err(format!(
                            "server asks for authentication (method {code:?}); expected trust"
                        ));
                    }
                }
                b'E' => {
                    let message = error_message(&body);
                    if startup {
                        return Err(message);
                    }
                    error.get_or_insert(message);
                }
                b'Z' => return error.map_or(Ok(()), Err),
                _ => {}
            }
        }
    }
}

impl Drop for WireSession {
    fn drop(&mut self) {
        let _ = self.stream.write_all(&[b'X', 0, 0, 0, 4]);
    }
}

/// The `M` (message) field of an ErrorResponse, with its SQLSTATE.
fn error_message(body: &[u8]) -> String {
    let mut message = String::new();
    let mut code = String::new();
    for field in body.split(|b| *b == 0) {
        match field.first() {
            Some(b'M') => message = String::from_utf8_lossy(&field[1..]).into_owned(),
            Some(b'C') => code = String::from_utf8_lossy(&field[1..]).into_owned(),
            _ => {}
        }
    }
    format!("{message} (SQLSTATE {code})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_message_reads_message_and_code() {
        let body = b"SERROR\0C57P03\0Mthe database system is starting up\0\0";
        assert_eq!(
            error_message(body),
            "the database system is starting up (SQLSTATE 57P03)"
        );
    }

    #[test]
    fn stale_clusters_of_dead_owners_are_removed_and_live_ones_kept() {
        let dead = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir_in("/tmp")
            .unwrap()
            .keep();
        let live = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir_in("/tmp")
            .unwrap()
            .keep();
        // A pid that cannot be alive: above the kernel's pid_max ceiling (2^22).
        fs::write(dead.join(OWNER_FILE), "4194305").unwrap();
        fs::write(live.join(OWNER_FILE), std::process::id().to_string()).unwrap();
        remove_stale_clusters();
        assert!(!dead.exists(), "a dead owner's directory is removed");
        assert!(live.exists(), "a live owner's directory is kept");
        fs::remove_dir_all(live).unwrap();
    }

    #[test]
    fn cluster_starts_serves_and_cleans_up() {
        let cluster = PgCluster::start().expect("cluster starts");
        let dir = cluster.dir().to_path_buf();
        let url = cluster.create_database("pgcluster_unit").unwrap();
        assert!(url.ends_with("/pgcluster_unit"));
        // A second CREATE of the same name is refused by the server: the mini client reports errors.
        let err = cluster.create_database("pgcluster_unit").unwrap_err();
        assert!(format!("{err:#}").contains("already exists"), "{err:#}");
        let pid = cluster.child.as_ref().unwrap().id() as libc::pid_t;
        cluster.stop().unwrap();
        assert!(!dir.exists());
        assert!(!pid_alive(pid), "the server process is gone");
    }

    const CHILD_ENV: &str = "RECON_PGCLUSTER_EXIT_CHILD";

    /// Running, i.e. neither gone nor a zombie waiting to be reaped.
    fn running(pid: libc::pid_t) -> bool {
        fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.trim_start().chars().next())
            })
            .is_some_and(|state| state != 'Z' && state != 'X')
    }

    /// A process that exits without stopping its cluster (as with a cluster in a static) takes the
    /// server with it, and the next start removes the directory.
    #[test]
    fn server_dies_with_the_process_that_started_it() {
        let output = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "pgcluster::tests::exit_without_stopping",
                "--include-ignored",
                "--nocapture",
            ])
            .env(CHILD_ENV, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("cluster: "))
            .unwrap_or_else(|| {
                panic!(
                    "child printed no cluster:\n{stdout}\n{}",
                    String::from_utf8_lossy(&output.stderr)
                )
            });
        let (pid, dir) = line.split_once(' ').unwrap();
        let pid: libc::pid_t = pid.parse().unwrap();
        let dir = PathBuf::from(dir);
        let until = Instant::now() + Duration::from_secs(20);
        while running(pid) {
            assert!(Instant::now() < until, "postgres {pid} outlived its parent");
            thread::sleep(Duration::from_millis(20));
        }
        assert!(dir.exists(), "the exited process could not clean up");
        remove_stale_clusters();
        assert!(!dir.exists(), "a dead owner's cluster directory is removed");
    }

    #[test]
    #[ignore = "run by server_dies_with_the_process_that_started_it in a child process"]
    fn exit_without_stopping() {
        if std::env::var_os(CHILD_ENV).is_none() {
            return;
        }
        let cluster = PgCluster::start().unwrap();
        let pid = cluster.child.as_ref().unwrap().id();
        println!("cluster: {pid} {}", cluster.dir().display());
        io::stdout().flush().unwrap();
        std::process::exit(0);
    }
}
