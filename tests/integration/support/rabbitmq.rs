//! RabbitMQ for tests: a throwaway node (Debian's `rabbitmq-server`) shared by the whole test binary,
//! or one of a test's own (the restart test), or the broker `RECON_TEST_AMQP_URL` names. Each test
//! declares its own exchange and queues ([`names`]), so tests sharing a node never see each other's
//! messages.
//!
//! A node runs under a small shell watchdog that reads its standard input from this process: when the
//! test binary exits (however it exits) the pipe closes, and the watchdog stops the node and removes
//! its directory. The watchdog also takes `stop` and `start` lines, for a restart mid-test.
//!
//! And a test projector ([`Projector`]): a consumer on a durable queue bound to the exchange that, for
//! each request, re-projects the key from PostgreSQL into the emulator and acks; or dead-letters it
//! (nack, requeue=false) when a predicate picks its key.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use serde_json::Value;

/// Set to an AMQP URL to run the tests against an existing broker instead of a throwaway node.
pub const AMQP_URL_ENV: &str = "RECON_TEST_AMQP_URL";

const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";

/// A broker: its URL, and the node when the tests started it.
pub struct Broker {
    pub url: String,
    node: Option<Node>,
}

/// The node every test of this binary shares (started on first use).
pub async fn shared() -> &'static Broker {
    static SHARED: tokio::sync::OnceCell<Broker> = tokio::sync::OnceCell::const_new();
    SHARED
        .get_or_init(|| async {
            if let Ok(url) = std::env::var(AMQP_URL_ENV) {
                return Broker { url, node: None };
            }
            let node = Node::start().await;
            Broker {
                url: node.url.clone(),
                node: Some(node),
            }
        })
        .await
}

/// A node of the test's own, for a test that restarts it; None with `RECON_TEST_AMQP_URL` (a broker
/// the tests did not start cannot be restarted by them).
pub async fn own() -> Option<Broker> {
    if std::env::var(AMQP_URL_ENV).is_ok() {
        return None;
    }
    let node = Node::start().await;
    Some(Broker {
        url: node.url.clone(),
        node: Some(node),
    })
}

impl Broker {
    /// Stops the node and starts it again on the same port and data directory: durable queues and
    /// persistent messages survive.
    pub async fn restart(&self) {
        let node = self.node.as_ref().expect("only a node the tests started restarts");
        node.command("stop");
        node.command("start");
        wait_until_up(&self.url, node).await;
    }

    /// Stops the node (for a restart with [`start`](Self::start) later).
    pub fn stop(&self) {
        self.node.as_ref().expect("a node of the tests").command("stop");
    }

    pub async fn start(&self) {
        let node = self.node.as_ref().expect("a node of the tests");
        node.command("start");
        wait_until_up(&self.url, node).await;
    }

    /// Runs `rabbitmqctl ARGS` against the node (as its user, with its cookie); panics when it fails.
    pub fn ctl(&self, args: &[&str]) {
        let node = self.node.as_ref().expect("rabbitmqctl needs a node the tests started");
        let ctl = "/usr/lib/rabbitmq/bin/rabbitmqctl";
        let mut command = if unsafe { libc::geteuid() } == 0 {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=rabbitmq", "--regid=rabbitmq", "--init-groups", ctl]);
            c
        } else {
            Command::new(ctl)
        };
        let out = command
            .args(["-n", &node.name])
            .args(args)
            .env("HOME", &node.dir)
            .env("ERL_EPMD_PORT", node.epmd_port.to_string())
            .output()
            .expect("rabbitmqctl runs");
        assert!(
            out.status.success(),
            "rabbitmqctl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub async fn connect(&self) -> Connection {
        connect(&self.url).await.expect("the broker answers")
    }
}

struct Node {
    url: String,
    name: String,
    dir: PathBuf,
    /// The port of the node's own epmd (Erlang's port mapper), which the watchdog stops with the node: a
    /// node started on the default port would leave a system-wide epmd daemon running after the tests.
    epmd_port: u16,
    watchdog: Mutex<(Child, ChildStdin, BufReader<ChildStdout>)>,
}

impl Node {
    async fn start() -> Node {
        if !Path::new(SERVER).exists() {
            panic!(
                "{SERVER} is missing: install RabbitMQ (apt-get install -y rabbitmq-server) or set {AMQP_URL_ENV} to \
                 a broker the tests may declare exchanges and queues on"
            );
        }
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = tempfile::Builder::new()
            .prefix("recon-rabbitmq-")
            .tempdir()
            .unwrap()
            .keep();
        let root = unsafe { libc::geteuid() } == 0;
        if root {
            // Debian's server runs as the rabbitmq user: its directories must be that user's.
            let status = Command::new("chown")
                .args(["-R", "rabbitmq:rabbitmq"])
                .arg(&dir)
                .status()
                .unwrap();
            assert!(status.success(), "chown of {} failed", dir.display());
        }
        std::fs::write(dir.join("enabled_plugins"), "[].\n").unwrap();
        if root {
            Command::new("chown")
                .args(["rabbitmq:rabbitmq"])
                .arg(dir.join("enabled_plugins"))
                .status()
                .unwrap();
        }
        let free_port = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .unwrap()
                .port()
        };
        let (port, dist, epmd_port) = (free_port(), free_port(), free_port());
        let name = format!("recon-test-{}-{n}@localhost", std::process::id());
        let run_node = if root {
            format!("exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups {SERVER}")
        } else {
            format!("exec {SERVER}")
        };
        // The watchdog: runs the node in the background, obeys `stop`/`start` lines, and stops the node
        // and removes its directory when its standard input (this process) closes.
        let script = format!(
            r#"run_node() {{ {run_node}; }}
run_node >>"$D/node.out" 2>&1 </dev/null &
pid=$!
while read -r cmd; do
  case "$cmd" in
    stop) kill -TERM "$pid"; wait "$pid"; echo stopped ;;
    start) run_node >>"$D/node.out" 2>&1 </dev/null & pid=$!; echo started ;;
  esac
done
kill -TERM "$pid" 2>/dev/null; wait "$pid"
epmd -port "$ERL_EPMD_PORT" -kill >/dev/null 2>&1
rm -rf "$D""#
        );
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .env("D", &dir)
            .env("HOME", &dir)
            .env(
                "RABBITMQ_NODENAME",
                format!("recon-test-{}-{n}@localhost", std::process::id()),
            )
            .env("ERL_EPMD_PORT", epmd_port.to_string())
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", port.to_string())
            .env("RABBITMQ_DIST_PORT", dist.to_string())
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", dir.join("advanced.config"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("sh runs");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let node = Node {
            url: format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
            name,
            dir,
            epmd_port,
            watchdog: Mutex::new((child, stdin, stdout)),
        };
        wait_until_up(&node.url, &node).await;
        node
    }

    /// Sends `stop` or `start` to the watchdog and waits for its answer.
    fn command(&self, cmd: &str) {
        let mut w = self.watchdog.lock().unwrap();
        writeln!(w.1, "{cmd}").unwrap();
        w.1.flush().unwrap();
        let mut line = String::new();
        w.2.read_line(&mut line).unwrap();
        let expected = if cmd == "stop" { "stopped" } else { "started" };
        assert_eq!(line.trim(), expected, "the watchdog's answer to {cmd}");
    }

    fn exited(&self) -> Option<String> {
        let mut w = self.watchdog.lock().unwrap();
        match w.0.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            _ => None,
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("node.out")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

/// Polls an AMQP connection until the node takes one (bounded: 90 s on a loaded machine).
async fn wait_until_up(url: &str, node: &Node) {
    let end = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(conn) = connect(url).await {
            let _ = conn.close(200, "OK").await;
            return;
        }
        if let Some(status) = node.exited() {
            panic!("the RabbitMQ watchdog exited ({status}):\n{}", node.log_tail());
        }
        if Instant::now() > end {
            panic!("RabbitMQ did not take a connection in 90 s:\n{}", node.log_tail());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn connect(url: &str) -> lapin::Result<Connection> {
    Connection::connect(
        url,
        ConnectionProperties::default()
            .with_executor(tokio_executor_trait::Tokio::current())
            .with_reactor(tokio_reactor_trait::Tokio::current()),
    )
    .await
}

/// Names unique to one test: `(exchange, queue)`.
pub fn names() -> (String, String) {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let stem = format!("recon-t{}-{n}", std::process::id());
    (format!("{stem}.reproject"), format!("{stem}.projector"))
}

/// Declares a durable topic exchange, and a durable queue bound to it with `binding`, dead-lettering
/// to `<queue>.dlx` → `<queue>.dlq`. What a projector's own setup would do.
pub async fn declare(channel: &Channel, exchange: &str, queue: &str, binding: &str) {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(exchange, ExchangeKind::Topic, durable, FieldTable::default())
        .await
        .unwrap();
    let dlx = format!("{queue}.dlx");
    channel
        .exchange_declare(&dlx, ExchangeKind::Fanout, durable, FieldTable::default())
        .await
        .unwrap();
    let durable_queue = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let dlq = format!("{queue}.dlq");
    channel
        .queue_declare(&dlq, durable_queue, FieldTable::default())
        .await
        .unwrap();
    channel
        .queue_bind(&dlq, &dlx, "", QueueBindOptions::default(), FieldTable::default())
        .await
        .unwrap();
    let mut args = FieldTable::default();
    args.insert(
        ShortString::from("x-dead-letter-exchange"),
        AMQPValue::LongString(dlx.as_str().into()),
    );
    channel.queue_declare(queue, durable_queue, args).await.unwrap();
    channel
        .queue_bind(
            queue,
            exchange,
            binding,
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
}

/// One message a projector took.
#[derive(Debug, Clone)]
pub struct Seen {
    pub message_id: String,
    pub correlation_id: String,
    pub content_type: String,
    pub delivery_mode: u8,
    pub body: Value,
    pub dead_lettered: bool,
}

/// Picks the keys a projector dead-letters.
pub type DeadLetterIf = Arc<dyn Fn(&Value) -> bool + Send + Sync>;

/// A consumer that re-projects each requested key from PostgreSQL into the read model and acks.
pub struct Projector {
    pub seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
    _connection: Connection,
}

impl Projector {
    /// Consumes `queue` (declared beforehand). `project(key)` writes the key's document as the write
    /// model has it now (or deletes it); `dead_letter(key)` picks keys to reject instead.
    pub async fn start<F, Fut>(url: &str, queue: &str, project: F, dead_letter: Option<DeadLetterIf>) -> Projector
    where
        F: Fn(Value) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let connection = connect(url).await.unwrap();
        let channel = connection.create_channel().await.unwrap();
        channel.basic_qos(20, BasicQosOptions::default()).await.unwrap();
        let mut consumer = channel
            .basic_consume(
                queue,
                "projector",
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let record = seen.clone();
        let task = tokio::spawn(async move {
            while let Some(Ok(delivery)) = consumer.next().await {
                let body: Value = serde_json::from_slice(&delivery.data).unwrap_or(Value::Null);
                let p = &delivery.properties;
                let text = |s: &Option<ShortString>| s.as_ref().map(|s| s.as_str().to_string()).unwrap_or_default();
                let dead = dead_letter.as_ref().is_some_and(|pick| pick(&body["key"]));
                if dead {
                    delivery
                        .nack(BasicNackOptions {
                            requeue: false,
                            ..BasicNackOptions::default()
                        })
                        .await
                        .unwrap();
                } else {
                    project(body["key"].clone()).await;
                    delivery.ack(BasicAckOptions::default()).await.unwrap();
                }
                record.lock().unwrap().push(Seen {
                    message_id: text(p.message_id()),
                    correlation_id: text(p.correlation_id()),
                    content_type: text(p.content_type()),
                    delivery_mode: p.delivery_mode().unwrap_or(0),
                    body,
                    dead_lettered: dead,
                });
            }
        });
        Projector {
            seen,
            task,
            _connection: connection,
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Projector {
    fn drop(&mut self) {
        self.task.abort();
    }
}
