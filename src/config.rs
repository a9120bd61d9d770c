//! Configuration: the TOML contract, layered defaults < file < environment < flags.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `[compare]`: how expected and actual documents are compared.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CompareConfig {
    /// Paths never compared, on either side (`indexedAt`, `products.internalNote`).
    #[serde(default)]
    pub ignore: Vec<String>,
    /// A `null` on one side equals an absent field on the other.
    #[serde(default = "default_true")]
    pub null_equals_missing: bool,
    /// Per-path rules. A rule on `products.price` applies to every element's `price`.
    #[serde(default)]
    pub fields: BTreeMap<String, FieldRule>,
}

impl Default for CompareConfig {
    fn default() -> Self {
        CompareConfig {
            ignore: Vec::new(),
            null_equals_missing: true,
            fields: BTreeMap::new(),
        }
    }
}

fn default_true() -> bool {
    true
}

/// How one path compares.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FieldRule {
    #[serde(rename = "as")]
    pub kind: RuleKind,
    /// For `as = "number"`: |expected - actual| <= tolerance, computed in exact decimals.
    #[serde(default)]
    pub tolerance: Option<toml::Value>,
    /// For `as = "set"`: the element field that identifies an element; without it elements compare as
    /// a multiset of whole values.
    #[serde(default)]
    pub key: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// RFC 3339 / date strings (or epoch millis) compared as instants.
    Instant,
    /// Numbers (or numeric strings) compared by exact decimal value, within `tolerance`.
    Number,
    /// Arrays compared ignoring order (matched on `key` when given).
    Set,
    /// Strings compared exactly (the default; useful to override a parent rule).
    Exact,
    /// Strings compared ignoring case.
    CaseInsensitive,
}

// ---------------------------------------------------------------------------------------------
// The file, the environment, the flags, and the settings they resolve to.
// ---------------------------------------------------------------------------------------------

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::secret::{redact_url, Secret};

/// The configuration file as written. Every table rejects unknown keys, so a typo is an error with
/// its line instead of a silently ignored setting.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The check's name in metrics and reports (default: the index or alias it reads).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub postgres: PostgresFile,
    #[serde(default)]
    pub elasticsearch: Option<ElasticsearchFile>,
    #[serde(default)]
    pub redis: Option<RedisFile>,
    #[serde(default)]
    pub compare: Option<CompareConfig>,
    /// How `recon repair --via amqp|http` reaches the projector.
    #[serde(default)]
    pub publish: Option<PublishFile>,
}

/// `[publish]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishFile {
    pub url: Option<String>,
    pub exchange: Option<String>,
    pub routing_key: Option<String>,
    pub http_url: Option<String>,
    pub http_format: Option<HttpFormat>,
    #[serde(default, with = "humantime_serde_opt")]
    pub confirm_timeout: Option<std::time::Duration>,
}

/// How `--via http` encodes a batch.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HttpFormat {
    /// One JSON array of the batch's messages.
    #[default]
    Json,
    /// One message per line.
    Ndjson,
}

/// `[publish]`, resolved: where re-projection requests go. Nothing here is required until a
/// `--via` needs it; the transport says what is missing.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishConfig {
    /// The AMQP broker (`amqp://` or `amqps://`), layered: file < AMQP_URL < --amqp-url.
    pub url: Option<Secret>,
    pub exchange: Option<String>,
    /// `{key}` and `{kind}` are filled in.
    pub routing_key: String,
    pub http_url: Option<Secret>,
    pub http_format: HttpFormat,
    /// `recon repair --declare`: declare the exchange (durable, topic) instead of requiring it.
    pub declare: bool,
    /// How long a batch may wait for the broker to take and confirm it (`--via amqp`, `http`).
    pub confirm_timeout: std::time::Duration,
}

/// The default `publish.confirm_timeout`.
pub const DEFAULT_CONFIRM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The default `publish.routing_key`.
pub const DEFAULT_ROUTING_KEY: &str = "reproject.{kind}.{key}";

impl Default for PublishConfig {
    fn default() -> Self {
        PublishConfig {
            url: None,
            exchange: None,
            routing_key: DEFAULT_ROUTING_KEY.into(),
            http_url: None,
            http_format: HttpFormat::Json,
            declare: false,
            confirm_timeout: DEFAULT_CONFIRM_TIMEOUT,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisFile {
    pub url: Option<String>,
    pub key: Option<String>,
    pub key_pattern: Option<String>,
    pub encoding: Option<RedisEncoding>,
}

/// How a document is stored under its Redis key.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RedisEncoding {
    /// The value is the document as a JSON string (GET/SET).
    #[default]
    Json,
    /// One hash field per top-level field (HGETALL/HSET); every value is a string.
    Hash,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresFile {
    pub url: Option<String>,
    pub query: Option<String>,
    pub key: Option<String>,
    pub updated_at: Option<String>,
    pub page_size: Option<usize>,
    pub scan: Option<crate::source::postgres::ScanMode>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElasticsearchFile {
    pub url: Option<String>,
    pub index: Option<String>,
    pub key: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    pub api_key: Option<String>,
    pub ca_cert: Option<PathBuf>,
    pub insecure: Option<bool>,
    pub page_size: Option<usize>,
    pub keep_alive: Option<String>,
    pub max_retries: Option<usize>,
    #[serde(default, with = "humantime_serde_opt")]
    pub timeout: Option<Duration>,
}

/// Values given on the command line; they beat everything else.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub pg_url: Option<String>,
    pub es_url: Option<String>,
    pub es_index: Option<String>,
    pub redis_url: Option<String>,
    pub amqp_url: Option<String>,
}

/// Where a setting's value came from, for `--verbose`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Default,
    File,
    Env(&'static str),
    Flag(&'static str),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File => f.write_str("config file"),
            Origin::Env(name) => write!(f, "environment {name}"),
            Origin::Flag(name) => write!(f, "flag {name}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PostgresConfig {
    pub url: Secret,
    pub query: String,
    pub key: String,
    pub updated_at: Option<String>,
    pub page_size: usize,
    pub scan: crate::source::postgres::ScanMode,
}

#[derive(Debug, Clone)]
pub struct ElasticsearchConfig {
    pub url: Secret,
    pub index: String,
    pub key: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub api_key: Option<Secret>,
    pub ca_cert: Option<PathBuf>,
    pub insecure: bool,
    pub page_size: usize,
    pub keep_alive: String,
    /// Retries of a request answered 429/502/503/504 or cut off, before the run gives up.
    pub max_retries: usize,
    pub timeout: Duration,
}

/// `[redis]`: the read model as one Redis value per document.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub url: Secret,
    /// The document field holding the key (defaults to postgres.key).
    pub key: String,
    /// The Redis key of each document; `{}` stands for the key.
    pub key_pattern: String,
    pub encoding: RedisEncoding,
}

/// The default `redis.url`.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/0";

/// Everything a command needs, validated once.
#[derive(Debug, Clone)]
pub struct Settings {
    pub source_file: Option<PathBuf>,
    /// What this check is called in metrics (the `check` label) and reports: `name`, or the index.
    pub name: String,
    pub postgres: PostgresConfig,
    /// The Elasticsearch read model; only defaults (never connected to) when `redis` is set.
    pub elasticsearch: ElasticsearchConfig,
    /// The Redis read model, when the file names `[redis]` instead of `[elasticsearch]`.
    pub redis: Option<RedisConfig>,
    pub compare: CompareConfig,
    /// `[publish]`: the projector's address for `recon repair --via`.
    pub publish: PublishConfig,
    /// (setting, origin) pairs for the settings that can come from several layers.
    pub origins: Vec<(&'static str, Origin)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no configuration file: {path} does not exist; pass --config FILE (see docs/configuration.md)")]
    NotFound { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("{0}")]
    Missing(String),
}

pub const DEFAULT_CONFIG: &str = "recon.toml";

impl Settings {
    /// Where the read model keeps the documents, as a repair's plan and audit log name it: the index
    /// or alias, or for Redis the key pattern.
    pub fn read_model_target(&self) -> &str {
        match &self.redis {
            Some(redis) => &redis.key_pattern,
            None => &self.elasticsearch.index,
        }
    }

    /// Resolves defaults < file < environment < flags. The file is required: the query and the key
    /// can only come from it.
    pub fn load(
        path: &Path,
        overrides: &Overrides,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let (file, source_file) = read_file(path)?;
        Settings::resolve(file, source_file, overrides, env)
    }

    pub fn resolve(
        file: FileConfig,
        source_file: Option<PathBuf>,
        overrides: &Overrides,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let mut origins = Vec::new();
        let where_ = source_file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "configuration".into());
        let missing = |what: &str, how: &str| ConfigError::Missing(format!("{where_}: {what} is not set; {how}"));

        let pg = file.postgres;
        let (pg_url, origin) = layer(pg.url, "DATABASE_URL", overrides.pg_url.clone(), "--pg-url", env);
        let pg_url = pg_url.ok_or_else(|| missing("postgres.url", "set it in [postgres], DATABASE_URL or --pg-url"))?;
        origins.push(("postgres.url", origin));
        let query = pg
            .query
            .ok_or_else(|| missing("postgres.query", "one row per expected document"))?;
        let key = pg
            .key
            .ok_or_else(|| missing("postgres.key", "the column that identifies a document"))?;
        let postgres = PostgresConfig {
            url: Secret::new(pg_url),
            query,
            key: key.clone(),
            updated_at: pg.updated_at,
            page_size: positive(
                pg.page_size.unwrap_or(crate::source::postgres::DEFAULT_PAGE_SIZE),
                &where_,
                "postgres.page_size",
            )?,
            scan: pg.scan.unwrap_or_default(),
        };

        let redis = match (&file.elasticsearch, file.redis) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid {
                    path: where_,
                    message: "names two read models, [elasticsearch] and [redis]; a configuration checks exactly one: \
                              keep one of the sections"
                        .into(),
                })
            }
            (None, Some(r)) => Some(resolve_redis(r, &key, overrides, env, &where_, &mut origins)?),
            (None, None) if overrides.es_index.is_none() && env("RECON_ES_INDEX").is_none_or(|v| v.is_empty()) => {
                return Err(ConfigError::Missing(format!(
                    "{where_}: names no read model; add an [elasticsearch] or a [redis] section (see docs/configuration.md)"
                )))
            }
            _ => None,
        };
        let es = file.elasticsearch.unwrap_or_default();
        let connection = resolve_connection(&es, overrides, env, &where_, &mut origins)?;
        let (index, origin) = layer(es.index, "RECON_ES_INDEX", overrides.es_index.clone(), "--index", env);
        let index = match (index, &redis) {
            (Some(index), _) => {
                origins.push(("elasticsearch.index", origin));
                index
            }
            // With [redis] the Elasticsearch settings are never used.
            (None, Some(_)) => String::new(),
            (None, None) => {
                return Err(missing(
                    "elasticsearch.index",
                    "the index or alias holding the read model",
                ))
            }
        };
        if redis.is_some() {
            origins.retain(|(name, _)| !name.starts_with("elasticsearch."));
        }
        let elasticsearch = ElasticsearchConfig {
            url: connection.url,
            index,
            key: es.key.unwrap_or(key),
            username: connection.username,
            password: connection.password,
            api_key: connection.api_key,
            ca_cert: connection.ca_cert,
            insecure: connection.insecure,
            page_size: positive(es.page_size.unwrap_or(1000), &where_, "elasticsearch.page_size")?,
            keep_alive: es
                .keep_alive
                .unwrap_or_else(|| crate::source::elasticsearch::DEFAULT_KEEP_ALIVE.to_string()),
            max_retries: connection.max_retries,
            timeout: connection.timeout,
        };
        if elasticsearch.page_size > 10_000 {
            return Err(ConfigError::Invalid {
                path: where_,
                message: "elasticsearch.page_size must be at most 10000 (index.max_result_window)".into(),
            });
        }
        let publish = resolve_publish(file.publish.unwrap_or_default(), overrides, env, &where_, &mut origins)?;
        Ok(Settings {
            source_file,
            // The check's name, by default what it reads: the index, or the Redis key pattern.
            name: file.name.unwrap_or_else(|| match &redis {
                Some(redis) => redis.key_pattern.clone(),
                None => elasticsearch.index.clone(),
            }),
            postgres,
            elasticsearch,
            redis,
            compare: file.compare.unwrap_or_default(),
            publish,
            origins,
        })
    }

    /// One line per layered setting, for `--verbose`; URLs without passwords, secrets only as "set".
    pub fn describe_origins(&self) -> Vec<String> {
        self.origins
            .iter()
            .map(|(name, origin)| {
                let value = match *name {
                    "postgres.url" => redact_url(self.postgres.url.expose()),
                    "elasticsearch.url" => redact_url(self.elasticsearch.url.expose()),
                    "elasticsearch.index" => self.elasticsearch.index.clone(),
                    "elasticsearch.username" => self.elasticsearch.username.clone().unwrap_or_else(|| "-".into()),
                    "elasticsearch.password" => set_or_unset(self.elasticsearch.password.is_some()),
                    "elasticsearch.api_key" => set_or_unset(self.elasticsearch.api_key.is_some()),
                    "publish.url" => self
                        .publish
                        .url
                        .as_ref()
                        .map(|u| redact_url(u.expose()))
                        .unwrap_or_else(|| "-".into()),
                    "redis.url" => self
                        .redis
                        .as_ref()
                        .map(|r| redact_url(r.url.expose()))
                        .unwrap_or_default(),
                    _ => String::new(),
                };
                format!("{name} = {value} (from {origin})")
            })
            .collect()
    }
}

/// What `recon undo` needs: the read model's connection, nothing else. An undo writes back what its
/// audit log recorded, into the indices it names, and never reads the write model, so `[postgres]`
/// and `elasticsearch.index` may be absent from its configuration.
#[derive(Debug, Clone)]
pub struct ReadModelSettings {
    pub source_file: Option<PathBuf>,
    pub connection: ReadModelConnection,
    pub origins: Vec<(&'static str, Origin)>,
    /// `[redis]`, when the file names it instead of `[elasticsearch]`.
    pub redis: Option<RedisConfig>,
}

/// `[elasticsearch]`'s address, credentials, TLS, timeout and retries, resolved in layers.
#[derive(Debug, Clone)]
pub struct ReadModelConnection {
    pub url: Secret,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub api_key: Option<Secret>,
    pub ca_cert: Option<PathBuf>,
    pub insecure: bool,
    pub max_retries: usize,
    pub timeout: Duration,
}

impl ReadModelSettings {
    /// Resolves defaults < file < environment < flags, like [`Settings::load`], requiring only what
    /// reaching the read model needs (the file itself, for its `[elasticsearch]` table).
    pub fn load(
        path: &Path,
        overrides: &Overrides,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ReadModelSettings, ConfigError> {
        let (file, source_file) = read_file(path)?;
        let where_ = path.display().to_string();
        let mut origins = Vec::new();
        // The key field defaults to postgres.key, as for a check; nothing else of [postgres] is needed.
        let postgres_key = file.postgres.key.clone().unwrap_or_default();
        let redis = file
            .redis
            .map(|r| resolve_redis(r, &postgres_key, overrides, env, &where_, &mut origins))
            .transpose()?;
        let connection = resolve_connection(
            &file.elasticsearch.unwrap_or_default(),
            overrides,
            env,
            &where_,
            &mut origins,
        )?;
        Ok(ReadModelSettings {
            source_file,
            connection,
            origins,
            redis,
        })
    }

    /// One line per layered setting, for `--verbose`, as [`Settings::describe_origins`] says them.
    pub fn describe_origins(&self) -> Vec<String> {
        let c = &self.connection;
        self.origins
            .iter()
            .map(|(name, origin)| {
                let value = match *name {
                    "elasticsearch.url" => redact_url(c.url.expose()),
                    "elasticsearch.username" => c.username.clone().unwrap_or_else(|| "-".into()),
                    "elasticsearch.password" => set_or_unset(c.password.is_some()),
                    "elasticsearch.api_key" => set_or_unset(c.api_key.is_some()),
                    "redis.url" => self
                        .redis
                        .as_ref()
                        .map(|r| redact_url(r.url.expose()))
                        .unwrap_or_default(),
                    _ => String::new(),
                };
                format!("{name} = {value} (from {origin})")
            })
            .collect()
    }
}

/// `[redis]`: the URL layered (file < REDIS_URL < --redis-url), the rest from the file.
fn resolve_redis(
    file: RedisFile,
    postgres_key: &str,
    overrides: &Overrides,
    env: &dyn Fn(&str) -> Option<String>,
    where_: &str,
    origins: &mut Vec<(&'static str, Origin)>,
) -> Result<RedisConfig, ConfigError> {
    let (url, origin) = layer(file.url, "REDIS_URL", overrides.redis_url.clone(), "--redis-url", env);
    origins.push(("redis.url", origin));
    let url = url.unwrap_or_else(|| DEFAULT_REDIS_URL.to_string());
    let key_pattern = file.key_pattern.ok_or_else(|| {
        ConfigError::Missing(format!(
            "{where_}: redis.key_pattern is not set; the Redis key of each document, {{}} standing for the key \
             (e.g. \"order:{{}}\")"
        ))
    })?;
    if key_pattern.matches("{}").count() != 1 {
        return Err(ConfigError::Invalid {
            path: where_.to_string(),
            message: format!(
                "redis.key_pattern {key_pattern:?} must hold exactly one {{}} (where the key goes), e.g. \"order:{{}}\""
            ),
        });
    }
    Ok(RedisConfig {
        url: Secret::new(url),
        key: file.key.unwrap_or_else(|| postgres_key.to_string()),
        key_pattern,
        encoding: file.encoding.unwrap_or_default(),
    })
}

/// `[publish]`: the broker's URL layered (file < AMQP_URL < --amqp-url), the rest from the file.
fn resolve_publish(
    file: PublishFile,
    overrides: &Overrides,
    env: &dyn Fn(&str) -> Option<String>,
    where_: &str,
    origins: &mut Vec<(&'static str, Origin)>,
) -> Result<PublishConfig, ConfigError> {
    let (url, origin) = layer(file.url, "AMQP_URL", overrides.amqp_url.clone(), "--amqp-url", env);
    if url.is_some() {
        origins.push(("publish.url", origin));
    }
    if let Some(url) = &url {
        if !(url.starts_with("amqp://") || url.starts_with("amqps://")) {
            return Err(ConfigError::Invalid {
                path: where_.to_string(),
                message: format!(
                    "publish.url {} must start with amqp:// (or amqps:// for TLS)",
                    redact_url(url)
                ),
            });
        }
    }
    let routing_key = file.routing_key.unwrap_or_else(|| DEFAULT_ROUTING_KEY.to_string());
    if routing_key.is_empty() {
        return Err(ConfigError::Invalid {
            path: where_.to_string(),
            message: "publish.routing_key is empty; e.g. \"order.{kind}.{key}\" ({key} and {kind} are filled in)"
                .into(),
        });
    }
    Ok(PublishConfig {
        url: url.map(Secret::new),
        exchange: file.exchange,
        routing_key,
        http_url: file.http_url.map(Secret::new),
        http_format: file.http_format.unwrap_or_default(),
        declare: false,
        confirm_timeout: positive_duration(
            file.confirm_timeout.unwrap_or(DEFAULT_CONFIRM_TIMEOUT),
            where_,
            "publish.confirm_timeout",
        )?,
    })
}

/// The connection part of `[elasticsearch]`, shared by every command.
fn resolve_connection(
    es: &ElasticsearchFile,
    overrides: &Overrides,
    env: &dyn Fn(&str) -> Option<String>,
    where_: &str,
    origins: &mut Vec<(&'static str, Origin)>,
) -> Result<ReadModelConnection, ConfigError> {
    let (es_url, origin) = layer(
        es.url.clone(),
        "ELASTICSEARCH_URL",
        overrides.es_url.clone(),
        "--es-url",
        env,
    );
    origins.push(("elasticsearch.url", origin));
    let es_url = es_url.unwrap_or_else(|| "http://localhost:9200".to_string());
    let (username, origin) = layer(es.username.clone(), "ELASTICSEARCH_USERNAME", None, "", env);
    origins.push(("elasticsearch.username", origin));
    let password_from_file = match &es.password_file {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .map_err(|e| ConfigError::Invalid {
                    path: where_.to_string(),
                    message: format!("elasticsearch.password_file {}: {e}", p.display()),
                })?
                .trim_end_matches(['\n', '\r'])
                .to_string(),
        ),
        None => None,
    };
    let (password, origin) = layer(
        es.password.clone().or(password_from_file),
        "ELASTICSEARCH_PASSWORD",
        None,
        "",
        env,
    );
    origins.push(("elasticsearch.password", origin));
    let (api_key, origin) = layer(es.api_key.clone(), "ELASTICSEARCH_API_KEY", None, "", env);
    origins.push(("elasticsearch.api_key", origin));
    Ok(ReadModelConnection {
        url: Secret::new(es_url),
        username,
        password: password.map(Secret::new),
        api_key: api_key.map(Secret::new),
        ca_cert: es.ca_cert.clone(),
        insecure: es.insecure.unwrap_or(false),
        max_retries: es.max_retries.unwrap_or(crate::source::retry::DEFAULT_MAX_RETRIES),
        timeout: es.timeout.unwrap_or(crate::source::elasticsearch::DEFAULT_TIMEOUT),
    })
}

/// The file, parsed; it must exist.
fn read_file(path: &Path) -> Result<(FileConfig, Option<PathBuf>), ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((
            parse_file(&text, &path.display().to_string())?,
            Some(path.to_path_buf()),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ConfigError::NotFound {
            path: path.to_path_buf(),
        }),
        Err(source) => Err(ConfigError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn set_or_unset(set: bool) -> String {
    if set { "(set)" } else { "(not set)" }.to_string()
}

/// file < environment < flag.
fn layer(
    file: Option<String>,
    env_name: &'static str,
    flag: Option<String>,
    flag_name: &'static str,
    env: &dyn Fn(&str) -> Option<String>,
) -> (Option<String>, Origin) {
    if let Some(v) = flag {
        return (Some(v), Origin::Flag(flag_name));
    }
    if let Some(v) = env(env_name).filter(|v| !v.is_empty()) {
        return (Some(v), Origin::Env(env_name));
    }
    match file {
        Some(v) => (Some(v), Origin::File),
        None => (None, Origin::Default),
    }
}

fn positive_duration(value: std::time::Duration, path: &str, name: &str) -> Result<std::time::Duration, ConfigError> {
    if value.is_zero() {
        return Err(ConfigError::Invalid {
            path: path.into(),
            message: format!("{name} must be longer than 0s, e.g. \"60s\""),
        });
    }
    Ok(value)
}

fn positive(value: usize, path: &str, name: &str) -> Result<usize, ConfigError> {
    if value == 0 {
        return Err(ConfigError::Invalid {
            path: path.into(),
            message: format!("{name} must be greater than 0"),
        });
    }
    Ok(value)
}

/// Parses the file; errors carry the file name and toml's line/column with the offending line.
pub fn parse_file(text: &str, path: &str) -> Result<FileConfig, ConfigError> {
    toml::from_str::<FileConfig>(text).map_err(|e| {
        let message = match e.span() {
            Some(span) => {
                let line = text[..span.start].matches('\n').count() + 1;
                let column = span.start - text[..span.start].rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
                return ConfigError::Invalid {
                    path: format!("{path}:{line}:{column}"),
                    message: e.message().to_string(),
                };
            }
            None => e.message().to_string(),
        };
        ConfigError::Invalid {
            path: path.to_string(),
            message,
        }
    })
}

/// `timeout = "30s"` in the file.
mod humantime_serde_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(text) => humantime::parse_duration(&text)
                .map(Some)
                .map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[postgres]
url = "postgres://app:filepw@db:5432/shop"
query = "SELECT 1 AS \"orderId\""
key = "orderId"

[elasticsearch]
url = "http://file:9200"
index = "orders"

[compare]
ignore = ["indexedAt"]
[compare.fields]
totalPrice = { as = "number", tolerance = 0.005 }
"#;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn publish_url_layers_file_env_flag_and_is_shown_without_its_password() {
        let text = format!(
            "{FILE}\n[publish]\nurl = \"amqp://app:filepw@file:5672/%2f\"\nexchange = \"orders.reproject\"\n\
             routing_key = \"order.{{kind}}.{{key}}\"\n"
        );
        let resolve = |overrides: &Overrides, env: &dyn Fn(&str) -> Option<String>| {
            Settings::resolve(parse_file(&text, "recon.toml").unwrap(), None, overrides, env).unwrap()
        };
        let s = resolve(&Overrides::default(), &no_env);
        assert_eq!(
            s.publish.url.as_ref().unwrap().expose(),
            "amqp://app:filepw@file:5672/%2f"
        );
        assert_eq!(s.publish.exchange.as_deref(), Some("orders.reproject"));
        assert_eq!(s.publish.routing_key, "order.{kind}.{key}");
        let env = |name: &str| (name == "AMQP_URL").then(|| "amqps://app:envpw@env/orders".to_string());
        let s = resolve(&Overrides::default(), &env);
        assert_eq!(s.publish.url.as_ref().unwrap().expose(), "amqps://app:envpw@env/orders");
        let flags = Overrides {
            amqp_url: Some("amqp://app:flagpw@flag/%2f".into()),
            ..Overrides::default()
        };
        let s = resolve(&flags, &env);
        assert_eq!(s.publish.url.as_ref().unwrap().expose(), "amqp://app:flagpw@flag/%2f");
        let lines = s.describe_origins().join("\n");
        assert!(
            lines.contains("publish.url = amqp://app:***@flag/%2f (from flag --amqp-url)"),
            "{lines}"
        );
        assert!(!lines.contains("flagpw") && !format!("{s:?}").contains("flagpw"));
        // Without [publish], nothing is required until a --via needs it.
        let s = Settings::resolve(
            parse_file(FILE, "recon.toml").unwrap(),
            None,
            &Overrides::default(),
            &no_env,
        )
        .unwrap();
        assert_eq!(s.publish, PublishConfig::default());
        // Anything but amqp(s):// is refused with the setting's name.
        let bad = Overrides {
            amqp_url: Some("http://x".into()),
            ..Overrides::default()
        };
        let e = Settings::resolve(parse_file(FILE, "recon.toml").unwrap(), None, &bad, &no_env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("publish.url http://x/ must start with amqp://"), "{e}");
    }

    #[test]
    fn layers_are_defaults_file_env_flags() {
        let file = parse_file(FILE, "recon.toml").unwrap();
        let s = Settings::resolve(file, None, &Overrides::default(), &no_env).unwrap();
        assert_eq!(s.elasticsearch.url.expose(), "http://file:9200");
        assert_eq!(
            s.elasticsearch.key, "orderId",
            "elasticsearch.key defaults to postgres.key"
        );
        assert_eq!(s.elasticsearch.page_size, 1000);

        let env = |name: &str| match name {
            "ELASTICSEARCH_URL" => Some("http://env:9200".to_string()),
            "DATABASE_URL" => Some("postgres://env/shop".to_string()),
            _ => None,
        };
        let file = parse_file(FILE, "recon.toml").unwrap();
        let s = Settings::resolve(file, None, &Overrides::default(), &env).unwrap();
        assert_eq!(s.elasticsearch.url.expose(), "http://env:9200");
        assert_eq!(s.postgres.url.expose(), "postgres://env/shop");

        let flags = Overrides {
            es_url: Some("http://flag:9200".into()),
            ..Overrides::default()
        };
        let file = parse_file(FILE, "recon.toml").unwrap();
        let s = Settings::resolve(file, None, &flags, &env).unwrap();
        assert_eq!(s.elasticsearch.url.expose(), "http://flag:9200");
        assert!(s.origins.contains(&("elasticsearch.url", Origin::Flag("--es-url"))));
        assert!(s.origins.contains(&("postgres.url", Origin::Env("DATABASE_URL"))));
    }

    #[test]
    fn scan_mode_defaults_to_stream_and_rejects_unknown_modes() {
        use crate::source::postgres::ScanMode;
        let file = parse_file(FILE, "recon.toml").unwrap();
        let s = Settings::resolve(file, None, &Overrides::default(), &no_env).unwrap();
        assert_eq!(s.postgres.scan, ScanMode::Stream);
        let text = FILE.replacen("[postgres]\n", "[postgres]\nscan = \"pages\"\n", 1);
        let s = Settings::resolve(
            parse_file(&text, "recon.toml").unwrap(),
            None,
            &Overrides::default(),
            &no_env,
        );
        assert_eq!(s.unwrap().postgres.scan, ScanMode::Pages);
        let text = FILE.replacen("[postgres]\n", "[postgres]\nscan = \"fast\"\n", 1);
        let e = parse_file(&text, "recon.toml").unwrap_err().to_string();
        assert!(
            e.starts_with("recon.toml:3:8: unknown variant `fast`, expected `stream` or `pages`"),
            "{e}"
        );
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_line() {
        let text = FILE.replace("index = \"orders\"", "index = \"orders\"\nindx = \"typo\"");
        let e = parse_file(&text, "recon.toml").unwrap_err().to_string();
        assert!(e.starts_with("recon.toml:10:1: unknown field `indx`"), "{e}");
        let text = FILE.replace("tolerance = 0.005", "tolerence = 0.005");
        let e = parse_file(&text, "recon.toml").unwrap_err().to_string();
        assert!(
            e.contains("recon.toml:14:") && e.contains("unknown field `tolerence`"),
            "{e}"
        );
    }

    #[test]
    fn verbose_origins_never_show_secrets() {
        let file = parse_file(FILE, "recon.toml").unwrap();
        let env = |name: &str| (name == "ELASTICSEARCH_PASSWORD").then(|| "espw".to_string());
        let s = Settings::resolve(file, None, &Overrides::default(), &env).unwrap();
        let lines = s.describe_origins().join("\n");
        assert!(!lines.contains("filepw") && !lines.contains("espw"), "{lines}");
        assert!(
            lines.contains("elasticsearch.password = (set) (from environment ELASTICSEARCH_PASSWORD)"),
            "{lines}"
        );
        assert!(!format!("{s:?}").contains("filepw"));
    }

    #[test]
    fn missing_required_settings_say_what_to_set() {
        let file = parse_file("[postgres]\nurl = \"postgres://x/y\"\n", "recon.toml").unwrap();
        let e = Settings::resolve(file, Some("recon.toml".into()), &Overrides::default(), &no_env).unwrap_err();
        assert_eq!(
            e.to_string(),
            "recon.toml: postgres.query is not set; one row per expected document"
        );
    }

    #[test]
    fn the_read_model_alone_needs_no_postgres_and_no_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("undo.toml");
        std::fs::write(&path, "[elasticsearch]\nurl = \"http://file:9200\"\nusername = \"u\"\n").unwrap();
        let s = ReadModelSettings::load(&path, &Overrides::default(), &no_env).unwrap();
        assert_eq!(s.connection.url.expose(), "http://file:9200");
        assert_eq!(s.connection.username.as_deref(), Some("u"));
        assert_eq!(s.source_file.as_deref(), Some(path.as_path()));
        std::fs::write(&path, "").unwrap();
        let flags = Overrides {
            es_url: Some("http://flag:9200".into()),
            ..Overrides::default()
        };
        let s = ReadModelSettings::load(&path, &flags, &no_env).unwrap();
        assert_eq!(s.connection.url.expose(), "http://flag:9200");
        assert!(s.origins.contains(&("elasticsearch.url", Origin::Flag("--es-url"))));
        // Full settings still demand what a check needs.
        let e = Settings::load(&path, &flags, &no_env).unwrap_err().to_string();
        assert!(e.contains("postgres.url is not set"), "{e}");
        let e = ReadModelSettings::load(&dir.path().join("none.toml"), &flags, &no_env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not exist"), "{e}");
    }

    const REDIS_FILE: &str = r#"
[postgres]
url = "postgres://app:filepw@db:5432/shop"
query = "SELECT 1 AS \"orderId\""
key = "orderId"

[redis]
url = "redis://app:redispw@file:6379/2"
key_pattern = "order:{}"
"#;

    #[test]
    fn redis_settings_layer_and_default_like_elasticsearch() {
        let s = Settings::resolve(
            parse_file(REDIS_FILE, "recon.toml").unwrap(),
            None,
            &Overrides::default(),
            &no_env,
        )
        .unwrap();
        let r = s.redis.as_ref().expect("[redis] is the read model");
        assert_eq!(r.url.expose(), "redis://app:redispw@file:6379/2");
        assert_eq!(r.key, "orderId", "redis.key defaults to postgres.key");
        assert_eq!(r.key_pattern, "order:{}");
        assert_eq!(r.encoding, RedisEncoding::Json);
        let lines = s.describe_origins().join("\n");
        assert!(
            !lines.contains("redispw") && !lines.contains("elasticsearch."),
            "{lines}"
        );
        assert!(
            lines.contains("redis.url = redis://app:***@file:6379/2 (from config file)"),
            "{lines}"
        );

        let env = |name: &str| (name == "REDIS_URL").then(|| "redis://env:6379/0".to_string());
        let text = REDIS_FILE.replace("key_pattern", "encoding = \"hash\"\nkey = \"id\"\nkey_pattern");
        let s = Settings::resolve(
            parse_file(&text, "recon.toml").unwrap(),
            None,
            &Overrides::default(),
            &env,
        )
        .unwrap();
        let r = s.redis.as_ref().unwrap();
        assert_eq!(r.url.expose(), "redis://env:6379/0");
        assert_eq!((r.key.as_str(), r.encoding), ("id", RedisEncoding::Hash));
        let flags = Overrides {
            redis_url: Some("redis://flag:6379/1".into()),
            ..Overrides::default()
        };
        let s = Settings::resolve(parse_file(REDIS_FILE, "recon.toml").unwrap(), None, &flags, &env).unwrap();
        assert_eq!(s.redis.as_ref().unwrap().url.expose(), "redis://flag:6379/1");
        assert!(s.origins.contains(&("redis.url", Origin::Flag("--redis-url"))));

        let text = REDIS_FILE.replace(
            "key_pattern = \"order:{}\"",
            "encoding = \"xml\"\nkey_pattern = \"order:{}\"",
        );
        let e = parse_file(&text, "recon.toml").unwrap_err().to_string();
        assert!(e.contains("unknown variant `xml`, expected `json` or `hash`"), "{e}");
    }

    #[test]
    fn a_configuration_names_exactly_one_read_model() {
        let both = format!("{REDIS_FILE}\n[elasticsearch]\nindex = \"orders\"\n");
        let e = Settings::resolve(
            parse_file(&both, "recon.toml").unwrap(),
            Some("recon.toml".into()),
            &Overrides::default(),
            &no_env,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("recon.toml: names two read models, [elasticsearch] and [redis]"),
            "{e}"
        );
        let neither = REDIS_FILE.split("[redis]").next().unwrap();
        let e = Settings::resolve(
            parse_file(neither, "recon.toml").unwrap(),
            Some("recon.toml".into()),
            &Overrides::default(),
            &no_env,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("recon.toml: names no read model; add an [elasticsearch] or a [redis] section"),
            "{e}"
        );
        for (pattern, fix) in [
            ("", "redis.key_pattern is not set"),
            ("order", "must hold exactly one {}"),
        ] {
            let text = if pattern.is_empty() {
                REDIS_FILE.replace("key_pattern = \"order:{}\"\n", "")
            } else {
                REDIS_FILE.replace("order:{}", pattern)
            };
            let e = Settings::resolve(
                parse_file(&text, "recon.toml").unwrap(),
                Some("recon.toml".into()),
                &Overrides::default(),
                &no_env,
            )
            .unwrap_err()
            .to_string();
            assert!(e.starts_with("recon.toml: ") && e.contains(fix), "{e}");
        }
    }
}
