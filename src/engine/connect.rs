//! The one place settings become connected sides: pool sizes, page sizes and the fields fetched,
//! written once for check, repair and reindex.

use std::collections::BTreeSet;

use anyhow::bail;

use std::sync::Arc;

use crate::config::{ReadModelConnection, ReadModelSettings, RedisConfig, Settings};
use crate::model::KeyKind;
use crate::source::elasticsearch::write::BulkWriter;
use crate::source::elasticsearch::EsClient;
use crate::source::elasticsearch::{ConnectSettings, ElasticsearchSettings, ElasticsearchSource};
use crate::source::postgres::{PostgresSettings, PostgresSource};
use crate::source::preflight::Checklist;
use crate::source::redis::write::RedisWriter;
use crate::source::redis::{RedisSettings, RedisSource};
use crate::source::retry::RetryPolicy;
use crate::source::{BulkSettings, ConditionalWriter};
use crate::source::{ReadModel, WriteModel};

/// Both sides of a check, connected and known to sort keys alike.
pub struct Sides {
    pub write_model: Box<dyn WriteModel>,
    pub read_model: Box<dyn ReadModel>,
}

impl Sides {
    /// [`ensure_known_fields`] on these sides. Not part of [`connect_sides_with`]: reindex's verify gate
    /// connects to a new generation (whose `--mapping` may not map an ignored read-model field) after
    /// checking the rules against the alias at the start.
    pub async fn ensure_known_fields(&self, settings: &Settings) -> anyhow::Result<()> {
        ensure_known_fields(settings, self.write_model.columns(), self.read_model.field_names()).await
    }
}

/// Connects to both sides, asks the read model for only the compared fields, and refuses a pair whose
/// key kinds would sort differently.
/// Also refuses `[compare]` paths naming no field ([`ensure_known_fields`]).
pub async fn connect_sides(settings: &Settings) -> anyhow::Result<Sides> {
    let sides = connect_sides_with(settings, 1).await?;
    sides.ensure_known_fields(settings).await?;
    Ok(sides)
}

/// [`connect_sides`] with room in the PostgreSQL pool for `parallel` concurrent range scans.
pub async fn connect_sides_with(settings: &Settings, parallel: u32) -> anyhow::Result<Sides> {
    let es = &settings.elasticsearch;
    // Read-ahead memory is pages × ranges: smaller pages per range keep the total flat in N.
    let write_model = connect_write_model(
        settings,
        parallel,
        per_range(settings.postgres.page_size, parallel, 500),
    )
    .await?;
    if let Some(redis) = &settings.redis {
        let read_model = connect_redis(
            settings,
            redis,
            WriteModel::key_kind(&write_model),
            Fetch::Compared(write_model.columns()),
            parallel,
        )
        .await?;
        return Ok(Sides {
            write_model: Box::new(write_model),
            read_model: Box::new(read_model),
        });
    }
    let read_model = connect_read_model(
        settings,
        &es.index,
        per_range(es.page_size, parallel, 250),
        Fetch::Compared(write_model.columns()),
    )
    .await?;
    paired(settings, write_model, read_model)
}

/// Both sides as the engine holds them, refused when their keys would sort differently.
fn paired(settings: &Settings, write_model: PostgresSource, read_model: ElasticsearchSource) -> anyhow::Result<Sides> {
    ensure_same_key_kind(
        settings,
        write_model.key_kind(),
        read_model.key_kind(),
        read_model.key_mapping(),
    )?;
    Ok(Sides {
        write_model: Box::new(write_model),
        read_model: Box::new(read_model),
    })
}

/// The write model as `[postgres]` describes it, with a pool for `scans` concurrent range scans plus
/// the exported snapshot's holder, lookups and estimates, reading `page_size` rows a page.
pub async fn connect_write_model(settings: &Settings, scans: u32, page_size: usize) -> anyhow::Result<PostgresSource> {
    PostgresSource::connect(PostgresSettings {
        updated_at: settings.postgres.updated_at.clone(),
        page_size,
        scan: settings.postgres.scan,
        max_connections: (scans + 4).max(8),
        ..PostgresSettings::new(
            settings.postgres.url.expose(),
            &settings.postgres.query,
            &settings.postgres.key,
        )
    })
    .await
}

/// The sides a repair plans and writes with: whole documents on the read model (before-images and
/// replacements need every field), the pool and page sizes of one scan, and the same refusals as a
/// check (key kinds that sort differently, `[compare]` paths naming no field).
pub async fn connect_for_repair(settings: &Settings) -> anyhow::Result<Sides> {
    if let Some(redis) = &settings.redis {
        let write_model = connect_write_model(settings, 1, settings.postgres.page_size).await?;
        let read_model = connect_redis(settings, redis, WriteModel::key_kind(&write_model), Fetch::Whole, 1).await?;
        let sides = Sides {
            write_model: Box::new(write_model),
            read_model: Box::new(read_model),
        };
        sides.ensure_known_fields(settings).await?;
        return Ok(sides);
    }
    let (write_model, read_model) = tokio::try_join!(
        connect_write_model(settings, 1, settings.postgres.page_size),
        connect_read_model(
            settings,
            &settings.elasticsearch.index,
            settings.elasticsearch.page_size,
            Fetch::Whole
        )
    )?;
    let sides = paired(settings, write_model, read_model)?;
    sides.ensure_known_fields(settings).await?;
    Ok(sides)
}

/// The sides `recon explain` reads: the read model's documents whole (what a check never fetches, the
/// `compare.ignore` fields and those the projection does not produce, is shown too), the same refusals
/// as a check. Returned with the top-level fields a check would compare ([`compared_fields`]): what
/// explain keeps of each read-model document to judge it exactly as a check would.
pub async fn connect_for_explain(settings: &Settings) -> anyhow::Result<(Sides, BTreeSet<String>)> {
    let write_model = connect_write_model(settings, 1, settings.postgres.page_size).await?;
    let compared = compared_fields(settings, write_model.columns());
    let sides = match &settings.redis {
        Some(redis) => {
            let read_model =
                RedisSource::connect(redis_settings(redis, Some(WriteModel::key_kind(&write_model)))).await?;
            Sides {
                write_model: Box::new(write_model),
                read_model: Box::new(read_model),
            }
        }
        None => {
            let read_model = connect_read_model(
                settings,
                &settings.elasticsearch.index,
                settings.elasticsearch.page_size,
                Fetch::Whole,
            )
            .await?;
            paired(settings, write_model, read_model)?
        }
    };
    sides.ensure_known_fields(settings).await?;
    Ok((sides, compared))
}

/// The top-level fields of a read-model document a check compares: the projection's `columns` but the
/// ignored ones, and the read model's key field (what [`Fetch::Compared`] and `[redis]` fetch).
pub fn compared_fields(settings: &Settings, columns: &[String]) -> BTreeSet<String> {
    let ignored: BTreeSet<&str> = settings.compare.ignore.iter().map(String::as_str).collect();
    let key_field = match &settings.redis {
        Some(redis) => &redis.key,
        None => &settings.elasticsearch.key,
    };
    let mut compared: BTreeSet<String> = columns
        .iter()
        .filter(|c| !ignored.contains(c.as_str()))
        .chain([key_field])
        .cloned()
        .collect();
    if settings.redis.is_some() {
        // A value Redis could not decode is a document holding only this marker, never cut away.
        compared.insert(crate::source::redis::UNDECODABLE.to_string());
    }
    compared
}

/// The read model `[redis]` describes: keys parsed as the write model's `key_kind`, the fields `fetch`
/// says kept, `MGET` batches shared out over `parallel` ranges.
async fn connect_redis(
    settings: &Settings,
    redis: &RedisConfig,
    key_kind: KeyKind,
    fetch: Fetch<'_>,
    parallel: u32,
) -> anyhow::Result<RedisSource> {
    let fields = match fetch {
        Fetch::Whole => None,
        Fetch::Compared(columns) => {
            let ignored: BTreeSet<&str> = settings.compare.ignore.iter().map(String::as_str).collect();
            Some(
                columns
                    .iter()
                    .filter(|c| !ignored.contains(c.as_str()))
                    .cloned()
                    .collect(),
            )
        }
    };
    RedisSource::connect(RedisSettings {
        fields,
        batch: per_range(1000, parallel, 250),
        ..redis_settings(redis, Some(key_kind))
    })
    .await
}

/// What reaching `[redis]` needs, every field kept.
fn redis_settings(redis: &RedisConfig, key_kind: Option<KeyKind>) -> RedisSettings {
    RedisSettings {
        url: redis.url.expose().to_string(),
        key_field: redis.key.clone(),
        key_pattern: redis.key_pattern.clone(),
        encoding: redis.encoding,
        key_kind,
        fields: None,
        batch: 1000,
    }
}

/// A conditional writer to the read model the configuration names (`[redis]`, or the one
/// `[elasticsearch]`'s connection reaches), and nothing else: all `recon undo` needs (the audit log
/// names every document and version it writes).
pub async fn connect_writer(
    settings: &ReadModelSettings,
    batching: BulkSettings,
) -> anyhow::Result<Arc<dyn ConditionalWriter>> {
    if let Some(redis) = &settings.redis {
        // An undo never reads the write model: its key kind is unknown, and not needed to write.
        let writer = RedisWriter::connect(redis_settings(redis, None), batching).await?;
        return Ok(Arc::new(writer));
    }
    let connection = &settings.connection;
    let client = EsClient::connect(&connection_settings(connection)).await?;
    Ok(Arc::new(BulkWriter::new(client, batching)))
}

/// The connection `[elasticsearch]` describes: credentials, TLS, timeout and `max_retries`.
pub fn es_connect_settings(settings: &Settings) -> ConnectSettings {
    let es = &settings.elasticsearch;
    ConnectSettings {
        url: es.url.expose().to_string(),
        username: es.username.clone(),
        password: es.password.clone(),
        api_key: es.api_key.clone(),
        ca_cert: es.ca_cert.clone(),
        insecure: es.insecure,
        timeout: es.timeout,
        retry: RetryPolicy {
            max_retries: es.max_retries,
            ..RetryPolicy::default()
        },
    }
}

/// What reaching the read model a [`ReadModelConnection`] describes takes (an undo's, `recon init`'s).
fn connection_settings(connection: &ReadModelConnection) -> ConnectSettings {
    ConnectSettings {
        url: connection.url.expose().to_string(),
        username: connection.username.clone(),
        password: connection.password.clone(),
        api_key: connection.api_key.clone(),
        ca_cert: connection.ca_cert.clone(),
        insecure: connection.insecure,
        timeout: connection.timeout,
        retry: RetryPolicy {
            max_retries: connection.max_retries,
            ..RetryPolicy::default()
        },
    }
}

/// Which `_source` fields the read model returns.
pub enum Fetch<'a> {
    /// What is compared: these projection columns (with the key), minus `compare.ignore`.
    Compared(&'a [String]),
    /// Whole documents: what a repair's before-images and replacements need.
    Whole,
}

/// The read model as `[elasticsearch]` describes it, reading `index` (the configured one, or a
/// generation by its concrete name), `page_size` documents a page.
pub async fn connect_read_model(
    settings: &Settings,
    index: &str,
    page_size: usize,
    fetch: Fetch<'_>,
) -> anyhow::Result<ElasticsearchSource> {
    let es = &settings.elasticsearch;
    let (source_includes, source_excludes) = match fetch {
        Fetch::Whole => (None, Vec::new()),
        Fetch::Compared(columns) => {
            let ignored: BTreeSet<&str> = settings.compare.ignore.iter().map(String::as_str).collect();
            let mut includes: Vec<String> = columns
                .iter()
                .filter(|c| !ignored.contains(c.as_str()))
                .cloned()
                .collect();
            if !includes.contains(&es.key) {
                includes.push(es.key.clone());
            }
            let excludes = settings
                .compare
                .ignore
                .iter()
                .filter(|p| p.contains('.'))
                .cloned()
                .collect();
            (Some(includes), excludes)
        }
    };
    ElasticsearchSource::connect(ElasticsearchSettings {
        connect: es_connect_settings(settings),
        index: index.to_string(),
        key_field: es.key.clone(),
        page_size,
        keep_alive: es.keep_alive.clone(),
        source_includes,
        source_excludes,
        prefetch_pages: 2,
    })
    .await
}

/// Both sides must order keys alike, or the merge join would pair the wrong documents. `read_mapping`
/// is the read model's own name for the key field's type (`keyword`, `long`), which is what the message
/// shows: recon's key kinds are not mapping types.
pub fn ensure_same_key_kind(
    settings: &Settings,
    write: KeyKind,
    read: KeyKind,
    read_mapping: &str,
) -> anyhow::Result<()> {
    if write != read {
        let (write_kind, fix) = match write {
            KeyKind::Int => ("an integer key (smallint, integer or bigint)", "as long"),
            KeyKind::Text => ("a text key (text, varchar or uuid)", "as keyword"),
        };
        bail!(
            "the two sides sort keys differently: postgres.key {:?} is {write_kind} but elasticsearch.key {:?} is \
             mapped as {read_mapping}; map the field {fix} (or cast the key in the query) so both sort alike",
            settings.postgres.key,
            settings.elasticsearch.key,
        );
    }
    Ok(())
}

/// Refuses `[compare]` paths that name no field of the documents, listing the fields there are: a typo
/// in a rule or an ignore entry would otherwise silently change what is compared. `projected` are the
/// projection's fields ([`PostgresSource::columns`]); the read model's mapping (`index`) is read only
/// when an ignore entry names something else, and a mapping that cannot be read judges no ignore entry.
pub async fn ensure_known_fields(
    settings: &Settings,
    projected: &[String],
    read_model_fields: futures::future::BoxFuture<'_, Option<BTreeSet<String>>>,
) -> anyhow::Result<()> {
    let compare = &settings.compare;
    let first = |path: &String| path.split('.').next().unwrap_or_default().to_string();
    let read_model_only = if compare.ignore.iter().all(|p| projected.contains(&first(p))) {
        Some(BTreeSet::new())
    } else {
        read_model_fields
            .await
            .map(|fields| fields.into_iter().filter(|f| !projected.contains(f)).collect())
    };
    let unknown = crate::diff::unknown_fields(compare, projected, read_model_only.as_ref());
    if unknown.is_empty() {
        return Ok(());
    }
    let mut message = format!(
        "[compare] names {} the documents do not have: {}; fix or remove {} (a typo there would silently \
         change what is compared). The projection (postgres.query) produces: {}; a nested path starts at one \
         of them (e.g. products.price)",
        if unknown.len() == 1 { "a field" } else { "fields" },
        unknown.join(", "),
        if unknown.len() == 1 { "it" } else { "them" },
        projected.join(", ")
    );
    if let Some(only) = read_model_only.filter(|only| !only.is_empty()) {
        let only: Vec<&str> = only.iter().map(String::as_str).collect();
        message.push_str(&format!(
            ". compare.ignore may also name a field only the read model has; {} maps: {}",
            settings.elasticsearch.index,
            only.join(", ")
        ));
    }
    bail!("{message}")
}

/// A page size shared out over `parallel` ranges, but not below `floor` (nor above the setting).
fn per_range(page_size: usize, parallel: u32, floor: usize) -> usize {
    (page_size / parallel.max(1) as usize).max(floor).min(page_size)
}

/// `recon doctor`'s checks of the write model (see `source::postgres::preflight`): the connected source
/// when its projection and key are usable.
pub async fn preflight_write_model(settings: &Settings, list: &mut Checklist) -> Option<Box<dyn WriteModel>> {
    let source = crate::source::postgres::preflight::preflight(
        PostgresSettings {
            updated_at: settings.postgres.updated_at.clone(),
            page_size: settings.postgres.page_size,
            scan: settings.postgres.scan,
            max_connections: 2,
            ..PostgresSettings::new(
                settings.postgres.url.expose(),
                &settings.postgres.query,
                &settings.postgres.key,
            )
        },
        list,
    )
    .await?;
    Some(Box::new(source))
}

/// `recon doctor`'s checks of the configured read model, which know its key should sort as `expected`
/// (the write model's key kind, when its checks got that far). Returns the fields the read model knows
/// of, when it has a schema, for the check of `[compare]`.
pub async fn preflight_read_model(
    settings: &Settings,
    expected: Option<KeyKind>,
    list: &mut Checklist,
) -> Option<BTreeSet<String>> {
    if let Some(redis) = &settings.redis {
        crate::source::redis::preflight::preflight(&redis_settings(redis, expected), list).await;
        return None;
    }
    let es = &settings.elasticsearch;
    crate::source::elasticsearch::preflight::preflight(
        ElasticsearchSettings {
            connect: ConnectSettings {
                retry: RetryPolicy {
                    // A preflight says what is wrong now; the runs it prepares retry.
                    max_retries: 0,
                    ..RetryPolicy::default()
                },
                ..es_connect_settings(settings)
            },
            index: es.index.clone(),
            key_field: es.key.clone(),
            page_size: 1,
            keep_alive: es.keep_alive.clone(),
            source_includes: None,
            source_excludes: Vec::new(),
            prefetch_pages: 1,
        },
        expected,
        list,
    )
    .await
}

/// A table of the write model, as `recon init` derives a first projection from it.
pub async fn describe_table(url: &str, table: &str) -> anyhow::Result<crate::source::postgres::introspect::TableShape> {
    crate::source::postgres::introspect::describe_table(url, table).await
}

/// The top-level fields the read model's `index` maps, with their types, for `recon init`.
pub async fn read_model_field_types(
    connection: &ReadModelConnection,
    index: &str,
) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let client = EsClient::connect(&connection_settings(connection)).await?;
    crate::source::elasticsearch::mapped_field_types(&client, index).await
}
