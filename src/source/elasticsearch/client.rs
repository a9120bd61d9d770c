//! A thin layer over the official `elasticsearch` crate: one retry policy, error bodies turned into
//! typed errors, and flavor detection. The crate itself never retries and returns 4xx/5xx as `Ok`.

use std::path::PathBuf;
use std::time::Duration;

use backon::Retryable;
use elasticsearch::auth::Credentials;
use elasticsearch::cert::{Certificate, CertificateValidation};
use elasticsearch::http::headers::HeaderMap;
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::http::{Method, StatusCode};
use elasticsearch::Elasticsearch;
use serde_json::Value;

use crate::secret::{redact_url, Secret};

/// Which product answers on the URL. The two differ in the point-in-time API and its tiebreaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Elasticsearch,
    OpenSearch,
}

pub use crate::source::retry::RetryPolicy;

#[derive(Debug, Clone)]
pub struct ConnectSettings {
    pub url: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub api_key: Option<Secret>,
    pub ca_cert: Option<PathBuf>,
    pub insecure: bool,
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

impl ConnectSettings {
    /// No credentials, system CA roots, a 60 s timeout and the default retry policy.
    pub fn new(url: impl Into<String>) -> ConnectSettings {
        ConnectSettings {
            url: url.into(),
            username: None,
            password: None,
            api_key: None,
            ca_cert: None,
            insecure: false,
            timeout: super::DEFAULT_TIMEOUT,
            retry: RetryPolicy::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EsError {
    #[error("cannot reach Elasticsearch at {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("Elasticsearch at {url} rejected the credentials (HTTP {status}); check elasticsearch.username/password or api_key")]
    Unauthorized { url: String, status: u16 },
    #[error("{method} {path} failed with HTTP {status}: {error_type}: {reason}")]
    Api {
        method: String,
        path: String,
        status: u16,
        error_type: String,
        reason: String,
        body: Value,
    },
    #[error("{method} {path} still failing after {attempts} attempts: {last}")]
    Exhausted {
        method: String,
        path: String,
        attempts: usize,
        last: String,
    },
    #[error("{method} {path} returned a body that is not JSON: {detail}")]
    InvalidBody {
        method: String,
        path: String,
        detail: String,
    },
    #[error("invalid Elasticsearch settings: {0}")]
    Settings(String),
}

impl EsError {
    pub fn status(&self) -> Option<u16> {
        match self {
            EsError::Api { status, .. } | EsError::Unauthorized { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn error_type(&self) -> Option<&str> {
        match self {
            EsError::Api { error_type, .. } => Some(error_type),
            _ => None,
        }
    }
}

/// A response with its status and parsed JSON body (`Null` when empty).
#[derive(Debug)]
pub struct EsResponse {
    pub status: u16,
    pub body: Value,
}

/// Why one attempt failed; another may succeed.
enum Attempt {
    /// Answered with a status worth retrying (429, 502, 503, 504): the request was not carried out.
    /// `last` is what the error says when the retries run out (with the body), `cause` what a retry's
    /// log line says (`503 Service Unavailable`).
    Transient { last: String, cause: String },
    /// No complete answer (connection refused or reset, timeout): the request may have been carried
    /// out. The cause, with what to check.
    Broken(String),
}

impl Attempt {
    fn cause(&self) -> &str {
        match self {
            Attempt::Transient { cause, .. } | Attempt::Broken(cause) => cause,
        }
    }
}

#[derive(Clone)]
pub struct EsClient {
    client: Elasticsearch,
    url: String,
    retry: RetryPolicy,
    flavor: Flavor,
    version: String,
    timeout: Duration,
}

impl EsClient {
    /// Builds the client and asks `GET /` which product and version answer. Connection failures here
    /// are not retried at length: an unreachable URL is a configuration error, said at once.
    pub async fn connect(settings: &ConnectSettings) -> Result<EsClient, EsError> {
        let url = redact_url(&settings.url);
        let parsed = url::Url::parse(&settings.url)
            .map_err(|e| EsError::Settings(format!("elasticsearch.url {url:?} is not a URL: {e}")))?;
        let mut builder = TransportBuilder::new(SingleNodeConnectionPool::new(parsed.clone()))
            .timeout(settings.timeout)
            .enable_meta_header(false);
        if is_loopback(&parsed) {
            builder = builder.disable_proxy();
        }
        if let Some(api_key) = &settings.api_key {
            builder = builder.auth(Credentials::EncodedApiKey(api_key.expose().to_string()));
        } else if let Some(user) = &settings.username {
            let password = settings
                .password
                .as_ref()
                .map(|p| p.expose().to_string())
                .unwrap_or_default();
            builder = builder.auth(Credentials::Basic(user.clone(), password));
        } else if !parsed.username().is_empty() {
            let password = parsed.password().unwrap_or_default().to_string();
            builder = builder.auth(Credentials::Basic(parsed.username().to_string(), password));
        }
        if settings.insecure {
            builder = builder.cert_validation(CertificateValidation::None);
        } else if let Some(path) = &settings.ca_cert {
            let pem = std::fs::read(path)
                .map_err(|e| EsError::Settings(format!("cannot read elasticsearch.ca_cert {}: {e}", path.display())))?;
            let cert = Certificate::from_pem(&pem).map_err(|e| {
                EsError::Settings(format!(
                    "elasticsearch.ca_cert {} is not a PEM certificate: {e}",
                    path.display()
                ))
            })?;
            builder = builder.cert_validation(CertificateValidation::Full(cert));
        }
        let transport = builder.build().map_err(|e| EsError::Settings(e.to_string()))?;
        let mut client = EsClient {
            client: Elasticsearch::new(transport),
            url: url.clone(),
            retry: RetryPolicy {
                max_retries: 2,
                ..settings.retry.clone()
            },
            flavor: Flavor::Elasticsearch,
            version: String::new(),
            timeout: settings.timeout,
        };
        let info = match client.request(Method::Get, "/", &[], None).await {
            Ok(r) => r,
            Err(EsError::Exhausted { mut last, .. }) => {
                // A server that expects TLS closes a plain-HTTP connection without a word.
                if last.starts_with(BROKE_OFF) && parsed.scheme() == "http" {
                    last.push_str("; if the server expects TLS, use https:// in elasticsearch.url");
                }
                return Err(EsError::Unreachable { url, detail: last });
            }
            Err(e) => return Err(e),
        };
        if info.status == 401 || info.status == 403 {
            return Err(EsError::Unauthorized {
                url,
                status: info.status,
            });
        }
        if info.status >= 400 {
            return Err(api_error(Method::Get, "/", info.status, info.body));
        }
        let version = &info.body["version"];
        client.flavor = if version["distribution"].as_str() == Some("opensearch") {
            Flavor::OpenSearch
        } else {
            Flavor::Elasticsearch
        };
        client.version = version["number"].as_str().unwrap_or("unknown").to_string();
        client.retry = settings.retry.clone();
        Ok(client)
    }

    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// The URL without credentials.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends a request, retrying transient failures; any other status is returned as it is.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<EsResponse, EsError> {
        let bytes = body.map(|b| serde_json::to_vec(b).expect("a JSON value serializes"));
        self.request_bytes(method, path, query, bytes).await
    }

    /// Like [`request`](Self::request) with a body already encoded (NDJSON for `_bulk`).
    pub async fn request_bytes(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<EsResponse, EsError> {
        let lost = std::sync::atomic::AtomicBool::new(false);
        let raw = self.request_bytes_inner(method, path, query, body, &lost).await?;
        parse_body(method, path, raw)
    }

    /// Like [`request_bytes`](Self::request_bytes), with the answer's body left unparsed (a bulk
    /// answer is read into its own types), and says whether an attempt broke off after the request
    /// may have reached the server (a reset connection, a timeout): a write answered by a later
    /// attempt may then have applied already, and its conflict be its own.
    pub async fn request_raw_noting_lost(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> (Result<RawResponse, EsError>, bool) {
        let lost = std::sync::atomic::AtomicBool::new(false);
        let result = self.request_bytes_inner(method, path, query, body, &lost).await;
        (result, lost.load(std::sync::atomic::Ordering::Relaxed))
    }

    async fn request_bytes_inner(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Vec<u8>>,
        lost: &std::sync::atomic::AtomicBool,
    ) -> Result<RawResponse, EsError> {
        let attempts = std::sync::atomic::AtomicUsize::new(0);
        let attempt = || async {
            attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let result = self.attempt(method, path, query, body.clone()).await;
            if let Err(Attempt::Broken(_)) = &result {
                lost.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            result
        };
        // Every retry is said at the default level: a storm of 503s must not pass in silence.
        let notify = |failed: &Attempt, pause: Duration| {
            crate::source::retry::log_retry(
                &format!("{} {path}", method_name(method)),
                failed.cause(),
                attempts.load(std::sync::atomic::Ordering::Relaxed),
                self.retry.max_retries + 1,
                pause,
            )
        };
        let result = attempt
            .retry(self.retry.backoff())
            .sleep(tokio::time::sleep)
            .notify(notify)
            .await;
        match result {
            Ok(response) => Ok(response),
            Err(Attempt::Transient { last, .. } | Attempt::Broken(last)) => Err(EsError::Exhausted {
                method: method_name(method),
                path: path.to_string(),
                attempts: attempts.load(std::sync::atomic::Ordering::Relaxed),
                last,
            }),
        }
    }

    /// Like [`request`](Self::request), but any status >= 400 is an error.
    pub async fn request_ok(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, EsError> {
        let response = self.request(method, path, query, body).await?;
        if response.status >= 400 {
            return Err(api_error(method, path, response.status, response.body));
        }
        Ok(response.body)
    }

    /// Like [`request_ok`](Self::request_ok), but the answer is deserialized straight into `T`: for
    /// search pages, where building a generic JSON tree of every hit's envelope first cost a tenth of
    /// a whole check run's CPU.
    pub async fn request_ok_as<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<T, EsError> {
        let bytes = body.map(|b| serde_json::to_vec(b).expect("a JSON value serializes"));
        let lost = std::sync::atomic::AtomicBool::new(false);
        let raw = self.request_bytes_inner(method, path, query, bytes, &lost).await?;
        if raw.status >= 400 {
            let response = parse_body(method, path, raw)?;
            return Err(api_error(method, path, response.status, response.body));
        }
        serde_json::from_slice(&raw.body).map_err(|e| EsError::InvalidBody {
            method: method_name(method),
            path: path.to_string(),
            detail: format!("HTTP {}: {e}: {}", raw.status, summarize(&raw.body)),
        })
    }

    async fn attempt(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<RawResponse, Attempt> {
        let query = if query.is_empty() { None } else { Some(query) };
        let response = self
            .client
            .send(method, path, HeaderMap::new(), query, body, None)
            .await
            .map_err(|e| broken(&e, Phase::Request, self.timeout))?;
        let status = response.status_code();
        // The whole body is read inside the attempt: a connection reset half-way through a page is
        // as transient as a refused request, and the request is idempotent, so it is sent again.
        let bytes = response
            .bytes()
            .await
            .map_err(|e| broken(&e, Phase::Answer, self.timeout))?;
        if is_transient(status) {
            return Err(Attempt::Transient {
                last: format!("HTTP {} {}", status.as_u16(), summarize(&bytes)),
                cause: format!(
                    "{} {}",
                    status.as_u16(),
                    status.canonical_reason().unwrap_or("(no reason)")
                ),
            });
        }
        Ok(RawResponse {
            status: status.as_u16(),
            body: bytes.to_vec(),
        })
    }
}

/// A response with its body as it came.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

// The error every request returns; boxing it here alone would gain nothing.
#[allow(clippy::result_large_err)]
fn parse_body(method: Method, path: &str, raw: RawResponse) -> Result<EsResponse, EsError> {
    let RawResponse { status, body: bytes } = raw;
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            // Text answers (cat APIs without format=json) are kept as a string.
            Err(_) if (200..300).contains(&status) => Value::String(String::from_utf8_lossy(&bytes).into_owned()),
            Err(e) => {
                return Err(EsError::InvalidBody {
                    method: method_name(method),
                    path: path.to_string(),
                    detail: format!("HTTP {status}: {e}: {}", summarize(&bytes)),
                })
            }
        }
    };
    Ok(EsResponse { status, body })
}

fn method_name(method: Method) -> String {
    format!("{method:?}").to_uppercase()
}

fn is_transient(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 502 | 503 | 504)
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Turns an Elasticsearch error body into an [`EsError::Api`], reading both the object and the plain
/// string forms of `error`.
pub fn api_error(method: Method, path: &str, status: u16, body: Value) -> EsError {
    let (error_type, reason) = match &body["error"] {
        Value::String(s) => (String::from("error"), s.clone()),
        Value::Object(e) => {
            let root = &e
                .get("root_cause")
                .and_then(|r| r.get(0))
                .cloned()
                .unwrap_or(Value::Null);
            let ty = e.get("type").and_then(Value::as_str).unwrap_or("unknown");
            let mut reason = e.get("reason").and_then(Value::as_str).unwrap_or("").to_string();
            // "all shards failed" says nothing; the root cause says what to fix.
            if let (Some(rt), Some(rr)) = (root["type"].as_str(), root["reason"].as_str()) {
                if rt != ty || rr != reason {
                    reason = format!("{reason} (caused by {rt}: {rr})");
                }
            }
            (ty.to_string(), reason)
        }
        _ => (String::from("http_error"), summarize(body.to_string().as_bytes())),
    };
    EsError::Api {
        method: method_name(method),
        path: path.to_string(),
        status,
        error_type,
        reason,
        body,
    }
}

/// Where an attempt broke: before any answer, or while its body was being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Request,
    Answer,
}

/// An attempt that got no complete answer.
fn broken(e: &(dyn std::error::Error + 'static), phase: Phase, timeout: Duration) -> Attempt {
    Attempt::Broken(cause_of(e, &error_chain(e), phase, timeout))
}

/// What broke a connection, said so that it points at the fix: refused (nothing listens), TLS against
/// a plain-HTTP port or the other way round, a certificate this system does not trust, a reset
/// mid-answer, a timeout.
fn cause_of(e: &(dyn std::error::Error + 'static), chain: &str, phase: Phase, timeout: Duration) -> String {
    let mut io_kind = None;
    let mut innermost = e.to_string();
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            io_kind.get_or_insert(io.kind());
        }
        innermost = err.to_string();
        next = err.source();
    }
    let text = chain.to_ascii_lowercase();
    if io_kind == Some(std::io::ErrorKind::ConnectionRefused) || text.contains("connection refused") {
        return "connection refused (is Elasticsearch running, and are host and port in elasticsearch.url right?)"
            .into();
    }
    if text.contains("invalidcontenttype") || text.contains("corrupt message") || text.contains("wrong version number")
    {
        return format!(
            "TLS handshake failed, the server does not speak TLS on this port ({innermost}): use http:// in \
             elasticsearch.url, or the port of its HTTPS listener"
        );
    }
    if text.contains("certificate") || text.contains("unknownissuer") || text.contains("notvalidforname") {
        let hint = if text.contains("notvalidforname") {
            "use the host name the certificate was issued for in elasticsearch.url"
        } else if text.contains("expired") {
            "the server's certificate has expired: renew it"
        } else {
            "this system does not trust the server's certificate: set elasticsearch.ca_cert to the PEM file of \
             the CA that signed it (or insecure = true, for a test cluster only)"
        };
        return format!("TLS: {innermost} ({hint})");
    }
    if io_kind == Some(std::io::ErrorKind::TimedOut) || text.contains("timed out") {
        return format!(
            "no answer within {} (elasticsearch.timeout; is the cluster overloaded?)",
            humantime::format_duration(timeout)
        );
    }
    let reset = io_kind == Some(std::io::ErrorKind::ConnectionReset) || text.contains("connection reset");
    let closed = reset || text.contains("closed before message completed") || text.contains("incomplete");
    if phase == Phase::Answer || closed {
        return format!(
            "{BROKE_OFF} ({innermost}): a restarting node, or a proxy or load balancer cutting the connection"
        );
    }
    innermost
}

/// How [`cause_of`] says a connection closed before the whole answer came.
const BROKE_OFF: &str = "the connection broke off before the whole answer came";

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

fn summarize(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]);
    text.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn api_error_reads_root_cause_behind_all_shards_failed() {
        let body = json!({"error": {"root_cause": [{"type": "query_shard_exception",
            "reason": "No mapping found for [x] in order to sort on"}],
            "type": "search_phase_execution_exception", "reason": "all shards failed"}, "status": 400});
        let e = api_error(Method::Post, "/_search", 400, body);
        assert_eq!(e.error_type(), Some("search_phase_execution_exception"));
        assert!(e.to_string().contains("No mapping found for [x]"), "{e}");
    }

    fn cause(e: std::io::Error, phase: Phase) -> String {
        let chain = error_chain(&e);
        cause_of(&e, &chain, phase, Duration::from_secs(60))
    }

    #[test]
    fn a_broken_connection_says_what_to_check() {
        use std::io::{Error, ErrorKind};
        let refused = cause(Error::from(ErrorKind::ConnectionRefused), Phase::Request);
        assert!(
            refused.starts_with("connection refused (is Elasticsearch running"),
            "{refused}"
        );
        let plain_port = cause(
            Error::new(
                ErrorKind::InvalidData,
                "received corrupt message of type InvalidContentType",
            ),
            Phase::Request,
        );
        assert!(plain_port.contains("use http:// in elasticsearch.url"), "{plain_port}");
        let untrusted = cause(
            Error::new(ErrorKind::InvalidData, "invalid peer certificate: UnknownIssuer"),
            Phase::Request,
        );
        assert!(
            untrusted.starts_with("TLS: invalid peer certificate: UnknownIssuer")
                && untrusted.contains("elasticsearch.ca_cert"),
            "{untrusted}"
        );
        let other_name = cause(
            Error::new(ErrorKind::InvalidData, "invalid peer certificate: NotValidForName"),
            Phase::Request,
        );
        assert!(
            other_name.contains("host name the certificate was issued for"),
            "{other_name}"
        );
        let slow = cause(Error::from(ErrorKind::TimedOut), Phase::Request);
        assert!(slow.starts_with("no answer within 1m (elasticsearch.timeout"), "{slow}");
        let cut = cause(Error::from(ErrorKind::ConnectionReset), Phase::Answer);
        assert!(cut.starts_with(BROKE_OFF), "{cut}");
    }

    #[test]
    fn api_error_accepts_string_errors() {
        let e = api_error(
            Method::Get,
            "/_alias/a",
            404,
            json!({"error": "alias [a] missing", "status": 404}),
        );
        assert!(e.to_string().contains("alias [a] missing"));
        assert_eq!(e.status(), Some(404));
    }
}
