//! An in-process emulator of the Elasticsearch REST API subset recon relies on (and the YAML REST
//! tests of that subset), with near-real-time visibility, point in time, scroll, aliases and
//! deterministic fault injection. See docs/emulator.md.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use recon_es_emulator::{Emulator, EmulatorConfig};
//! let es = Emulator::start("127.0.0.1:0", EmulatorConfig::default()).await?;
//! println!("{}", es.url());
//! es.shutdown().await;
//! # Ok(()) }
//! ```

mod cluster;
mod dates;
mod documents;
mod error;
mod faults;
mod http;
mod indices;
mod mapping;
mod query;
mod search;
mod security;
mod source_filter;
mod store;

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use faults::FaultSpec;
pub use security::User;

use error::EsError;
use faults::FaultState;
use http::{Reply, Req};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use search::{Pit, Scroll};
use store::Index;

/// Which product the emulator pretends to be.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Flavor {
    #[default]
    Elasticsearch,
    OpenSearch,
}

impl std::str::FromStr for Flavor {
    type Err = String;
    fn from_str(s: &str) -> Result<Flavor, String> {
        match s.to_ascii_lowercase().as_str() {
            "elasticsearch" | "es" => Ok(Flavor::Elasticsearch),
            "opensearch" | "os" => Ok(Flavor::OpenSearch),
            other => Err(format!(
                "unknown flavor {other:?} (expected elasticsearch or opensearch)"
            )),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct EmulatorConfig {
    pub flavor: Flavor,
    pub faults: FaultSpec,
    pub seed: u64,
}

/// State shared by every connection of one emulator.
/// Locks are taken with `into_inner` on poison, so one request whose handler panics cannot take the
/// emulator down for every test sharing it.
pub(crate) struct Shared {
    pub flavor: Flavor,
    pub cluster: Mutex<Cluster>,
    pub faults: Mutex<FaultState>,
    /// The users of a cluster with security on; None: security off.
    pub security: Mutex<Option<Vec<User>>>,
}

/// A running emulator. Stops when shut down or dropped.
pub struct Emulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl Emulator {
    /// Binds `addr` (use "127.0.0.1:0"), spawns the server on the current tokio runtime, returns at once.
    pub async fn start(addr: &str, config: EmulatorConfig) -> std::io::Result<Emulator> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            flavor: config.flavor,
            cluster: Mutex::new(Cluster::new(config.seed)),
            faults: Mutex::new(FaultState::new(config.faults, config.seed)),
            security: Mutex::new(None),
        });
        let accept_shared = shared.clone();
        let accept = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(_) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let sh = accept_shared.clone();
                conns.spawn(async move {
                    let service = service_fn(move |req| handle(sh.clone(), req));
                    let _ = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                // Reap finished connections so the set does not grow without bound.
                while conns.try_join_next().is_some() {}
            }
        });
        Ok(Emulator { addr, shared, accept })
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replaces the fault configuration (same effect as `PUT /_emulator/faults`).
    pub fn set_faults(&self, faults: FaultSpec) {
        self.shared
            .faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .set(faults);
    }

    /// Turns security on with these native users (every request must authenticate as one of them), or
    /// off with None (the default: no authentication, no `_security` endpoints).
    pub fn set_security(&self, users: Option<Vec<User>>) {
        *self
            .shared
            .security
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = users;
    }

    pub async fn shutdown(mut self) {
        self.accept.abort();
        let _ = (&mut self.accept).await;
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        // Aborting the accept task drops its JoinSet, which aborts every connection task too.
        self.accept.abort();
    }
}

type Body = BoxBody<Bytes, std::io::Error>;

fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never: Infallible| match never {}).boxed()
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let body = match decode_body(&parts, body) {
        Ok(b) => b,
        Err(e) => return Ok(render(&shared, &parts, Reply::error(&e), None)),
    };
    let req = Req::new(&parts, body);
    let kind = http::endpoint_kind(&req);
    // Authentication comes before anything else, as in Elasticsearch; the admin endpoint is the emulator's.
    let user = match (
        &*shared
            .security
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
        kind,
    ) {
        (Some(users), k) if k != "emulator" => match security::authenticate(users, &req) {
            Ok(user) => Some(user.clone()),
            Err(reply) => return Ok(render(&shared, &parts, reply, None)),
        },
        _ => None,
    };
    let faults = shared
        .faults
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .decide(kind, &req.path);
    if !faults.latency.is_zero() {
        tokio::time::sleep(faults.latency).await;
    }
    let reply = match faults.status {
        Some(429) => Reply::error(&EsError::rejected(if kind == "bulk" { "write" } else { "search" })),
        Some(status) => Reply::error(&EsError::new(
            status,
            "cluster_block_exception",
            "blocked by: [SERVICE_UNAVAILABLE/2/no master];",
        )),
        None => {
            let sh = shared.clone();
            let faults = faults.clone();
            // Handlers are synchronous and may sort large result sets: keep them off the I/O threads.
            match tokio::task::spawn_blocking(move || cluster::dispatch(&sh, &req, &faults, user.as_ref())).await {
                Ok(r) => r,
                Err(_) => Reply::error(&EsError::new(500, "exception", "handler panicked")),
            }
        }
    };
    Ok(render(&shared, &parts, reply, faults.reset_after))
}

/// Request bodies may be compressed (`request_body_compression` in elasticsearch-rs, `http_compress`
/// in the Python client); Elasticsearch inflates gzip and deflate.
fn decode_body(parts: &hyper::http::request::Parts, body: Bytes) -> Result<Bytes, EsError> {
    use std::io::Read;
    let encoding = parts
        .headers
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let mut out = Vec::new();
    let result = match encoding.as_str() {
        "" | "identity" => return Ok(body),
        "gzip" | "x-gzip" => flate2::read::MultiGzDecoder::new(&body[..]).read_to_end(&mut out),
        "deflate" => flate2::read::ZlibDecoder::new(&body[..]).read_to_end(&mut out),
        other => return Err(EsError::bad_request(format!("Unsupported Content-Encoding [{other}]"))),
    };
    result.map_err(|e| EsError::bad_request(format!("failed to decompress the request body: {e}")))?;
    Ok(Bytes::from(out))
}

fn render(
    shared: &Shared,
    parts: &hyper::http::request::Parts,
    reply: Reply,
    reset_after: Option<u64>,
) -> Response<Body> {
    let mut builder = Response::builder().status(reply.status);
    // Every response but an unauthenticated one names the product (elastic/elasticsearch#73434).
    if shared.flavor == Flavor::Elasticsearch && reply.status != 401 {
        builder = builder.header("X-Elastic-Product", "Elasticsearch");
    }
    let ctype = http::response_content_type(parts, reply.content_type);
    builder = builder.header("content-type", ctype);
    for (k, v) in &reply.headers {
        builder = builder.header(*k, v.as_str());
    }
    let len = reply.body.len();
    builder = builder.header("content-length", len);
    let body = if parts.method == hyper::Method::HEAD {
        full(Bytes::new())
    } else {
        match reset_after {
            Some(n) if (n as usize) < len => {
                let prefix = reply.body.slice(..n as usize);
                let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = vec![
                    Ok(Frame::data(prefix)),
                    Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "injected connection reset",
                    )),
                ];
                StreamBody::new(futures::stream::iter(frames)).boxed()
            }
            _ => full(reply.body),
        }
    };
    builder.body(body).unwrap_or_else(|_| Response::new(full(Bytes::new())))
}

/// The cluster's state: indices, open search contexts, ids. At the crate root because every handler
/// reads it and the search contexts it holds belong to the search handler.
pub struct Cluster {
    pub indices: BTreeMap<String, Index>,
    pub pits: HashMap<String, Pit>,
    pub scrolls: HashMap<String, Scroll>,
    pub cluster_uuid: String,
    pub rng: StdRng,
    pub counter: u64,
}

impl Cluster {
    pub fn new(seed: u64) -> Cluster {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_e1a5);
        let cluster_uuid = random_id(&mut rng, 22);
        Cluster {
            indices: BTreeMap::new(),
            pits: HashMap::new(),
            scrolls: HashMap::new(),
            cluster_uuid,
            rng,
            counter: 0,
        }
    }

    /// A fresh 20-character base64url id, as Elasticsearch generates for documents.
    pub fn new_id(&mut self, len: usize) -> String {
        self.counter += 1;
        random_id(&mut self.rng, len)
    }
}

pub fn random_id(rng: &mut StdRng, len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..len).map(|_| ALPHABET[rng.gen_range(0..64)] as char).collect()
}
