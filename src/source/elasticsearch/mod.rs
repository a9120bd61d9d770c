//! The read model on Elasticsearch or OpenSearch as a [`DocumentSource`]: a point in time plus
//! `search_after` pages sorted by the key field, read ahead on a background task.

pub mod admin;
pub mod audit_v1;
pub mod client;
pub mod preflight;
pub mod rebuild;
pub mod wire;
pub mod write;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use elasticsearch::http::Method;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

pub use client::{ConnectSettings, EsClient, EsError, Flavor, RetryPolicy};

use crate::model::{Doc, DocMeta, DocValue, Key, KeyKind, KeyedDoc};
use crate::source::{ConditionalWriter, DocStream, DocumentSource, KeyRange, ReadModel, Scan, SharedView};

#[derive(Debug, Clone)]
pub struct ElasticsearchSettings {
    pub connect: ConnectSettings,
    /// Index or alias.
    pub index: String,
    /// Doc-valued field holding the key (keyword or an integer type).
    pub key_field: String,
    pub page_size: usize,
    /// How long the point in time stays open between two pages.
    pub keep_alive: String,
    /// `_source` fields to fetch; `None` fetches the whole `_source`.
    pub source_includes: Option<Vec<String>>,
    pub source_excludes: Vec<String>,
    /// Pages read ahead of the diff.
    pub prefetch_pages: usize,
}

pub struct ElasticsearchSource {
    client: EsClient,
    settings: ElasticsearchSettings,
    key_kind: KeyKind,
    /// The key field's mapping type as the index has it (`keyword`, `long`, …), for messages.
    key_mapping: String,
}

impl ElasticsearchSource {
    /// Connects, checks that the index exists and that the key field is mapped so that it sorts the
    /// way the write model does.
    pub async fn connect(settings: ElasticsearchSettings) -> anyhow::Result<ElasticsearchSource> {
        let client = EsClient::connect(&settings.connect).await?;
        let index = &settings.index;
        let mapping = client
            .request(Method::Get, &format!("/{}/_mapping", encode(index)), &[], None)
            .await?;
        if mapping.status == 404 {
            bail!(
                "index or alias [{index}] not found on {} (elasticsearch.index); create it or fix the name",
                client.url()
            );
        }
        if mapping.status >= 400 {
            return Err(client::api_error(Method::Get, "/_mapping", mapping.status, mapping.body).into());
        }
        let (key_kind, key_mapping) = key_kind_in_mappings(&mapping.body, &settings.key_field)?;
        Ok(ElasticsearchSource {
            client,
            settings,
            key_kind,
            key_mapping,
        })
    }

    pub fn key_kind(&self) -> KeyKind {
        self.key_kind
    }

    /// The key field's mapping type (`keyword`, `long`, …).
    pub fn key_mapping(&self) -> &str {
        &self.key_mapping
    }

    pub fn flavor(&self) -> Flavor {
        self.client.flavor()
    }

    /// Conditional writes to this read model, batched and paced as `settings` say.
    pub fn conditional_writer(&self, settings: write::BulkSettings) -> std::sync::Arc<dyn ConditionalWriter> {
        std::sync::Arc::new(write::BulkWriter::new(self.client.clone(), settings))
    }

    pub fn client(&self) -> &EsClient {
        &self.client
    }

    fn base_query(&self, range: &KeyRange) -> Value {
        let key = &self.settings.key_field;
        let mut filter = vec![json!({"exists": {"field": key}})];
        let mut bounds = Map::new();
        if let Some(after) = &range.after {
            bounds.insert("gt".into(), after.to_json());
        }
        if let Some(until) = &range.until {
            bounds.insert("lte".into(), until.to_json());
        }
        if !bounds.is_empty() {
            filter.push(json!({"range": {key: bounds}}));
        }
        json!({"bool": {"filter": filter}})
    }

    fn source_filter(&self) -> Value {
        match &self.settings.source_includes {
            Some(includes) => json!({"includes": includes, "excludes": self.settings.source_excludes}),
            None if self.settings.source_excludes.is_empty() => Value::Bool(true),
            None => json!({"excludes": self.settings.source_excludes}),
        }
    }

    fn sort(&self) -> Value {
        let key = &self.settings.key_field;
        match self.client.flavor() {
            // Elasticsearch appends the implicit `_shard_doc` tiebreaker under a PIT.
            Flavor::Elasticsearch => json!([{key: {"order": "asc"}}]),
            // OpenSearch before 3.3 has no `_shard_doc`; `_id` keeps documents sharing a key apart.
            Flavor::OpenSearch => json!([{key: {"order": "asc"}}, {"_id": {"order": "asc"}}]),
        }
    }

    async fn open_pit(&self) -> anyhow::Result<String> {
        let index = encode(&self.settings.index);
        let keep_alive = self.settings.keep_alive.as_str();
        let (path, field) = match self.client.flavor() {
            Flavor::Elasticsearch => (format!("/{index}/_pit"), "id"),
            Flavor::OpenSearch => (format!("/{index}/_search/point_in_time"), "pit_id"),
        };
        let body = self
            .client
            .request_ok(Method::Post, &path, &[("keep_alive", keep_alive)], None)
            .await?;
        body[field]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("POST {path} answered without a point-in-time id: {body}"))
    }

    async fn count(&self, range: &KeyRange) -> anyhow::Result<u64> {
        let body = json!({"query": self.base_query(range)});
        let path = format!("/{}/_count", encode(&self.settings.index));
        let answer = self.client.request_ok(Method::Post, &path, &[], Some(&body)).await?;
        answer["count"]
            .as_u64()
            .with_context(|| format!("_count answered without a count: {answer}"))
    }
}

impl ElasticsearchSource {
    /// Opens one point in time for several range scans ([`ElasticsearchSource::open_scan_at`]), so a
    /// parallel run reads one consistent view. Close it with [`ElasticsearchSource::close_shared_pit`].
    pub async fn open_shared_pit(&self) -> anyhow::Result<SharedPit> {
        let id = self.open_pit().await?;
        Ok(SharedPit {
            id,
            snapshot_ms: now_ms(),
        })
    }

    /// Best effort, like a scan's own PIT: an unclosed one expires after keep_alive.
    pub async fn close_shared_pit(&self, pit: SharedPit) {
        let (path, body) = pit_close_request(self.client.flavor(), &pit.id);
        let _ = self.client.request(Method::Delete, path, &[], Some(&body)).await;
    }

    /// Like [`DocumentSource::open_scan`], but searching `pit` when given (a parallel range: the
    /// range query restricts the shared PIT to the range), or a PIT of its own, closed at the end.
    pub fn open_scan_at<'a>(
        &'a self,
        range: KeyRange,
        pit: Option<&'a SharedPit>,
    ) -> BoxFuture<'a, anyhow::Result<Scan>> {
        async move {
            let estimate = self.count(&range).await.ok();
            let (pit_id, owns_pit, snapshot_ms) = match pit {
                Some(shared) => (shared.id.clone(), false, shared.snapshot_ms),
                None => (self.open_pit().await?, true, now_ms()),
            };
            let pager = Pager {
                unkeyed: false,
                owns_pit,
                client: self.client.clone(),
                pit: pit_id,
                keep_alive: self.settings.keep_alive.clone(),
                page_size: self.settings.page_size,
                query: self.base_query(&range),
                sort: self.sort(),
                source: self.source_filter(),
                key_kind: self.key_kind,
                key_field: self.settings.key_field.clone(),
            };
            Ok(Scan {
                docs: pager.spawn(self.settings.prefetch_pages),
                estimate,
                snapshot_ms,
            })
        }
        .boxed()
    }

    /// The documents whose key field is absent, `null` or `[]` (or held a value the index could not
    /// take as a key, with `ignore_malformed`). The key-ordered scan cannot see them — it sorts on the
    /// key and filters on `exists` — so they are read on their own, in a point in time of their own,
    /// sorted by `_shard_doc` (`_id` on OpenSearch, which has no `_shard_doc` before 3.3). Each comes
    /// with an empty placeholder key: only its `_id` and version name it.
    pub fn open_unkeyed_scan(&self) -> BoxFuture<'_, anyhow::Result<DocStream>> {
        async move {
            let pager = Pager {
                unkeyed: true,
                owns_pit: true,
                client: self.client.clone(),
                pit: self.open_pit().await?,
                keep_alive: self.settings.keep_alive.clone(),
                page_size: self.settings.page_size,
                query: json!({"bool": {"must_not": [{"exists": {"field": &self.settings.key_field}}]}}),
                sort: match self.client.flavor() {
                    Flavor::Elasticsearch => json!([{"_shard_doc": {"order": "asc"}}]),
                    Flavor::OpenSearch => json!([{"_id": {"order": "asc"}}]),
                },
                source: self.source_filter(),
                key_kind: self.key_kind,
                key_field: self.settings.key_field.clone(),
            };
            Ok(pager.spawn(self.settings.prefetch_pages))
        }
        .boxed()
    }
}

/// A point in time shared by several range scans of one run.
pub struct SharedPit {
    id: String,
    snapshot_ms: Option<i64>,
}

impl SharedPit {
    /// When the PIT was opened, epoch milliseconds.
    pub fn snapshot_ms(&self) -> Option<i64> {
        self.snapshot_ms
    }
}

fn now_ms() -> Option<i64> {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .ok()
}

fn pit_close_request(flavor: Flavor, id: &str) -> (&'static str, Value) {
    match flavor {
        Flavor::Elasticsearch => ("/_pit", json!({"id": id})),
        Flavor::OpenSearch => ("/_search/point_in_time", json!({"pit_id": [id]})),
    }
}

impl SharedView for SharedPit {
    fn snapshot_ms(&self) -> Option<i64> {
        self.snapshot_ms
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any + Send> {
        self
    }
}

impl ReadModel for ElasticsearchSource {
    fn key_kind(&self) -> KeyKind {
        self.key_kind
    }

    fn key_type(&self) -> String {
        self.key_mapping.clone()
    }

    /// `_id`, the concrete index, and the version unpacked into `seq_no` and `primary_term`.
    fn describe_meta(&self, meta: &DocMeta) -> Vec<(String, Value)> {
        describe_hit(meta)
    }

    fn open_view(&self) -> BoxFuture<'_, anyhow::Result<Option<Box<dyn SharedView>>>> {
        async move { Ok(Some(Box::new(self.open_shared_pit().await?) as Box<dyn SharedView>)) }.boxed()
    }

    fn close_view(&self, view: Box<dyn SharedView>) -> BoxFuture<'_, ()> {
        async move {
            if let Ok(pit) = view.into_any().downcast::<SharedPit>() {
                self.close_shared_pit(*pit).await;
            }
        }
        .boxed()
    }

    fn open_scan_in<'a>(
        &'a self,
        range: KeyRange,
        view: Option<&'a dyn SharedView>,
    ) -> BoxFuture<'a, anyhow::Result<Scan>> {
        async move {
            let pit = match view {
                Some(view) => Some(
                    view.as_any()
                        .downcast_ref::<SharedPit>()
                        .context("not a point in time: a view of another source")?,
                ),
                None => None,
            };
            self.open_scan_at(range, pit).await
        }
        .boxed()
    }

    fn open_unkeyed_scan(&self) -> BoxFuture<'_, anyhow::Result<DocStream>> {
        ElasticsearchSource::open_unkeyed_scan(self)
    }

    fn conditional_writer(&self, batching: write::BulkSettings) -> Option<std::sync::Arc<dyn ConditionalWriter>> {
        Some(ElasticsearchSource::conditional_writer(self, batching))
    }

    fn field_names(&self) -> BoxFuture<'_, Option<BTreeSet<String>>> {
        mapped_fields(&self.client, &self.settings.index).boxed()
    }
}

/// The top-level fields of the mappings behind `index` with their types (`long`, `keyword`, `date`,
/// `object`, `nested`), for `recon init`; the first index's type wins when an alias spans several.
pub async fn mapped_field_types(
    client: &EsClient,
    index: &str,
) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let path = format!("/{}/_mapping", encode(index));
    let answer = client.request(Method::Get, &path, &[], None).await?;
    if answer.status == 404 {
        bail!(
            "no index or alias [{index}] on {}; create it first, or leave --index out",
            client.url()
        );
    }
    if answer.status >= 400 {
        return Err(client::api_error(Method::Get, &path, answer.status, answer.body).into());
    }
    let mut types = std::collections::BTreeMap::new();
    for body in answer.body.as_object().into_iter().flat_map(|o| o.values()) {
        for (field, mapping) in body["mappings"]["properties"].as_object().into_iter().flatten() {
            let kind = mapping["type"].as_str().unwrap_or("object").to_string();
            types.entry(field.clone()).or_insert(kind);
        }
    }
    Ok(types)
}

/// The top-level fields of the mappings behind `index` (every index of an alias); None when they
/// cannot be read.
pub async fn mapped_fields(client: &EsClient, index: &str) -> Option<BTreeSet<String>> {
    let path = format!("/{}/_mapping", encode(index));
    let answer = client.request(Method::Get, &path, &[], None).await.ok()?;
    if answer.status != 200 {
        return None;
    }
    let indices = answer.body.as_object()?;
    Some(
        indices
            .values()
            .filter_map(|i| i["mappings"]["properties"].as_object())
            .flat_map(|properties| properties.keys().cloned())
            .collect(),
    )
}

impl DocumentSource for ElasticsearchSource {
    fn open_scan(&self, range: KeyRange) -> BoxFuture<'_, anyhow::Result<Scan>> {
        self.open_scan_at(range, None)
    }

    fn lookup<'a>(&'a self, keys: &'a [Key]) -> BoxFuture<'a, anyhow::Result<Vec<KeyedDoc>>> {
        async move {
            let mut found = Vec::new();
            let path = format!("/{}/_search", encode(&self.settings.index));
            for chunk in keys.chunks(1000) {
                let values: Vec<Value> = chunk.iter().map(Key::to_json).collect();
                // Several documents may carry one key (that is the duplicate drift), so ask for room.
                let body = json!({
                    "size": chunk.len() * 4 + 16,
                    "query": {"terms": {&self.settings.key_field: values}},
                    "sort": [{&self.settings.key_field: "asc"}],
                    "_source": self.source_filter(),
                    "seq_no_primary_term": true,
                    "track_total_hits": false,
                });
                let mut answer = self.client.request_ok(Method::Post, &path, &[], Some(&body)).await?;
                check_shards(&answer)?;
                found.extend(hits_to_docs(&mut answer, self.key_kind, &self.settings.key_field)?);
            }
            Ok(found)
        }
        .boxed()
    }

    fn product(&self) -> &'static str {
        match self.client.flavor() {
            Flavor::Elasticsearch => "Elasticsearch",
            Flavor::OpenSearch => "OpenSearch",
        }
    }

    fn describe(&self) -> String {
        let product = self.product();
        format!(
            "{product} {} {} index {}",
            self.client.version(),
            self.client.url(),
            self.settings.index
        )
    }
}

/// Reads the pages of one scan on its own task, so the read model is read while the diff works.
struct Pager {
    /// Reading the documents without a key: they get a placeholder key instead of their sort value.
    unkeyed: bool,
    /// A scan's own PIT is closed when it ends; a shared one by whoever opened it.
    owns_pit: bool,
    client: EsClient,
    pit: String,
    keep_alive: String,
    page_size: usize,
    query: Value,
    sort: Value,
    source: Value,
    key_kind: KeyKind,
    key_field: String,
}

impl Pager {
    /// Reads on a task of its own, at most `prefetch` pages ahead of the consumer.
    fn spawn(self, prefetch: usize) -> DocStream {
        let (tx, rx) = mpsc::channel(prefetch.max(1));
        tokio::spawn(self.run(tx));
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|page| (page, rx)) })
            .flat_map(|page: anyhow::Result<Vec<KeyedDoc>>| {
                futures::stream::iter(match page {
                    Ok(docs) => docs.into_iter().map(Ok).collect::<Vec<_>>(),
                    Err(e) => vec![Err(e)],
                })
            })
            .boxed()
    }

    async fn run(mut self, tx: mpsc::Sender<anyhow::Result<Vec<KeyedDoc>>>) {
        let mut search_after: Option<Value> = None;
        loop {
            let page = self.page(search_after.take()).await;
            match page {
                Ok((docs, last_sort)) => {
                    let done = docs.len() < self.page_size || last_sort.is_none();
                    if !docs.is_empty() && tx.send(Ok(docs)).await.is_err() {
                        break; // the diff stopped reading
                    }
                    if done {
                        break;
                    }
                    search_after = last_sort;
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    break;
                }
            }
        }
        self.close().await;
    }

    async fn page(&mut self, search_after: Option<Value>) -> anyhow::Result<(Vec<KeyedDoc>, Option<Value>)> {
        let mut body = json!({
            "size": self.page_size,
            "query": self.query,
            "sort": self.sort,
            "pit": {"id": self.pit, "keep_alive": self.keep_alive},
            "_source": self.source,
            "seq_no_primary_term": true,
            "track_total_hits": false,
        });
        if let Some(after) = search_after {
            body["search_after"] = after;
        }
        let answer: wire::SearchResponse = match self
            .client
            .request_ok_as(Method::Post, "/_search", &[], Some(&body))
            .await
        {
            Ok(answer) => answer,
            Err(e) if is_pit_gone(&e) => bail!(
                "the point in time expired during the scan ({e}); raise elasticsearch.keep_alive \
                 (now {}) or read faster pages",
                self.keep_alive
            ),
            Err(e) => return Err(e.into()),
        };
        page_complete(answer.shards.as_ref(), answer.timed_out)?;
        if let Some(id) = answer.pit_id {
            if id != self.pit {
                self.pit = id;
            }
        }
        let last_sort = answer
            .hits
            .hits
            .last()
            .map(|h| Value::Array(h.sort.iter().map(DocValue::to_json).collect()));
        let mut docs = Vec::with_capacity(answer.hits.hits.len());
        for hit in answer.hits.hits {
            let doc = hit.source.unwrap_or_default();
            let meta = DocMeta {
                id: Some(hit.id),
                location: hit.index,
                version: write::version_of(hit.seq_no, hit.primary_term),
                updated_at_ms: None,
                raw: None,
                undecodable: None,
            };
            let key = match self.unkeyed {
                true => Key::Text(String::new()),
                false => hit_key(hit.sort.first(), self.key_kind, &self.key_field, meta.id.as_deref())?,
            };
            docs.push(KeyedDoc { key, doc, meta });
        }
        Ok((docs, last_sort))
    }

    async fn close(&self) {
        if !self.owns_pit {
            return;
        }
        let (path, body) = pit_close_request(self.client.flavor(), &self.pit);
        // Best effort: an unclosed PIT expires on its own after keep_alive.
        let _ = self.client.request(Method::Delete, path, &[], Some(&body)).await;
    }
}

fn is_pit_gone(e: &EsError) -> bool {
    let in_body = |body: &Value| body.to_string().contains("search_context_missing_exception");
    matches!(e, EsError::Api { status: 404, body, .. } if in_body(body))
}

/// A 200 can hide failed shards or a timeout; either would make the scan silently incomplete.
fn check_shards(answer: &Value) -> anyhow::Result<()> {
    let shards = serde_json::from_value::<Option<wire::Shards>>(answer["_shards"].clone()).unwrap_or(None);
    page_complete(shards.as_ref(), answer["timed_out"].as_bool() == Some(true))
}

fn page_complete(shards: Option<&wire::Shards>, timed_out: bool) -> anyhow::Result<()> {
    if let Some(shards) = shards.filter(|s| s.failed > 0) {
        let reason = shards
            .failures
            .first()
            .and_then(|f| f["reason"]["reason"].as_str())
            .unwrap_or("no reason given");
        bail!(
            "{} of {} shards failed while reading the read model ({reason}); the scan would be incomplete",
            shards.failed,
            shards.total
        );
    }
    if timed_out {
        bail!("the search timed out on the cluster; the scan would be incomplete");
    }
    Ok(())
}

/// The key a hit was sorted by, checked against the write model's key kind.
fn hit_key(sort: Option<&DocValue>, key_kind: KeyKind, key_field: &str, id: Option<&str>) -> anyhow::Result<Key> {
    let raw = sort.unwrap_or(&DocValue::Null);
    match (key_kind, Key::from_doc(raw)) {
        (KeyKind::Int, Some(k @ Key::Int(_))) => Ok(k),
        (KeyKind::Text, Some(Key::Text(s))) => Ok(Key::Text(s)),
        _ => bail!(
            "document _id [{}] has key {key_field} = {raw}, which is not a {key_kind} key",
            id.unwrap_or_default()
        ),
    }
}

/// Moves each hit's `_source` out of the page (a page is read once; cloning it would double the work).
fn hits_to_docs(answer: &mut Value, key_kind: KeyKind, key_field: &str) -> anyhow::Result<Vec<KeyedDoc>> {
    let hits = match answer["hits"]["hits"].as_array_mut() {
        Some(hits) => std::mem::take(hits),
        None => Vec::new(),
    };
    let mut docs = Vec::with_capacity(hits.len());
    for mut hit in hits {
        let id = hit["_id"].as_str().unwrap_or_default().to_string();
        let key = hit_key(
            hit["sort"].get(0).map(DocValue::from).as_ref(),
            key_kind,
            key_field,
            Some(&id),
        )?;
        let doc = match hit["_source"].take() {
            Value::Object(map) => Doc::from(map),
            _ => Doc::new(),
        };
        let meta = DocMeta {
            id: Some(id),
            location: hit["_index"].as_str().map(str::to_string),
            version: write::version_of(hit["_seq_no"].as_i64(), hit["_primary_term"].as_i64()),
            updated_at_ms: None,
            raw: None,
            undecodable: None,
        };
        docs.push(KeyedDoc { key, doc, meta });
    }
    Ok(docs)
}

/// A hit's envelope as `recon explain` shows it; a version token that is not `SEQ_NO:PRIMARY_TERM` (none
/// this connector hands out) is shown as it is.
fn describe_hit(meta: &DocMeta) -> Vec<(String, Value)> {
    let mut described = Vec::new();
    if let Some(id) = &meta.id {
        described.push(("_id".to_string(), Value::from(id.as_str())));
    }
    if let Some(index) = &meta.location {
        described.push(("index".to_string(), Value::from(index.as_str())));
    }
    match meta.version.as_ref().map(|v| (v, write::decode_version(v))) {
        Some((_, Some((seq_no, primary_term)))) => {
            described.push(("seq_no".to_string(), Value::from(seq_no)));
            described.push(("primary_term".to_string(), Value::from(primary_term)));
        }
        Some((token, None)) => described.push(("version".to_string(), Value::from(token.as_str()))),
        None => {}
    }
    described
}

/// Finds the key field's type in every concrete index behind the name and checks it sorts like the
/// write model's key: keyword for text keys, an integer type for integer keys. Returns the kind and
/// the mapping type.
fn key_kind_in_mappings(mappings: &Value, key_field: &str) -> anyhow::Result<(KeyKind, String)> {
    let indices = mappings.as_object().context("the _mapping answer is not an object")?;
    let mut kind: Option<(KeyKind, String)> = None;
    for (index, body) in indices {
        let mut node = &body["mappings"];
        let mut field_type = None;
        let parts: Vec<&str> = key_field.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            let property = &node["properties"][*part];
            if property.is_null() {
                // `orderId.keyword`: a multi-field under `fields`.
                let sub = &node["fields"][*part];
                if !sub.is_null() && i == parts.len() - 1 {
                    field_type = sub["type"].as_str();
                }
                break;
            }
            if i == parts.len() - 1 {
                field_type = Some(property["type"].as_str().unwrap_or("object"));
            }
            node = property;
        }
        let this = match field_type {
            Some("keyword") | Some("constant_keyword") => KeyKind::Text,
            Some("long") | Some("integer") | Some("short") | Some("byte") => KeyKind::Int,
            Some("text") => bail!(
                "key field [{key_field}] is mapped as text in index [{index}], which cannot be sorted; \
                 map it as keyword (or long), or set elasticsearch.key = \"{key_field}.keyword\""
            ),
            Some(other) => bail!(
                "key field [{key_field}] is mapped as {other} in index [{index}]; recon needs keyword or an \
                 integer type (long, integer, short, byte)"
            ),
            None => bail!(
                "key field [{key_field}] is not mapped in index [{index}]; check elasticsearch.key or the mapping"
            ),
        };
        let mapped_as = field_type.unwrap_or_default().to_string();
        if let Some((_, first)) = kind.as_ref().filter(|(k, _)| *k != this) {
            bail!(
                "key field [{key_field}] has different types in the indices behind the name: {first} elsewhere, \
                 {mapped_as} in [{index}]"
            );
        }
        kind = Some((this, mapped_as));
    }
    kind.context("the index has no mappings")
}

/// Index names go into URL paths; commas and wildcards are legitimate there, other bytes are escaped.
fn encode(index: &str) -> String {
    url::form_urlencoded::byte_serialize(index.as_bytes())
        .collect::<String>()
        .replace("%2C", ",")
        .replace("%2A", "*")
}

/// A default keep-alive long enough for slow pages, short enough that a crashed run's PIT goes away.
pub const DEFAULT_KEEP_ALIVE: &str = "5m";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hit_is_described_with_its_version_unpacked() {
        let meta = DocMeta {
            id: Some("4-retry".into()),
            location: Some("orders-v2".into()),
            version: write::version_of(Some(12), Some(1)),
            updated_at_ms: None,
            raw: None,
            undecodable: None,
        };
        assert_eq!(
            describe_hit(&meta),
            vec![
                ("_id".to_string(), json!("4-retry")),
                ("index".to_string(), json!("orders-v2")),
                ("seq_no".to_string(), json!(12)),
                ("primary_term".to_string(), json!(1)),
            ]
        );
        let odd = DocMeta {
            version: Some(crate::model::Version::new("x")),
            ..DocMeta::default()
        };
        assert_eq!(describe_hit(&odd), vec![("version".to_string(), json!("x"))]);
    }

    #[test]
    fn key_kind_follows_the_mapping() {
        let m = json!({"orders": {"mappings": {"properties": {"orderId": {"type": "long"}}}}});
        assert_eq!(
            key_kind_in_mappings(&m, "orderId").unwrap(),
            (KeyKind::Int, "long".into())
        );
        let m = json!({"orders": {"mappings": {"properties": {"sku": {"type": "keyword"}}}}});
        assert_eq!(
            key_kind_in_mappings(&m, "sku").unwrap(),
            (KeyKind::Text, "keyword".into())
        );
        let m = json!({"orders": {"mappings": {"properties": {"sku": {"type": "text",
            "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}}}}});
        let e = key_kind_in_mappings(&m, "sku").unwrap_err().to_string();
        assert!(e.contains("mapped as text") && e.contains("sku.keyword"), "{e}");
        assert_eq!(key_kind_in_mappings(&m, "sku.keyword").unwrap().0, KeyKind::Text);
        let e = key_kind_in_mappings(&m, "nope").unwrap_err().to_string();
        assert!(e.contains("not mapped"), "{e}");
    }

    #[test]
    fn hits_keep_64_bit_keys_exact() {
        let answer: Value = serde_json::from_str(
            r#"{"hits":{"hits":[{"_index":"o","_id":"9007199254740993","_seq_no":4,"_primary_term":1,
            "_source":{"orderId":9007199254740993},"sort":[9007199254740993, 7]}]}}"#,
        )
        .unwrap();
        let docs = hits_to_docs(&mut answer.clone(), KeyKind::Int, "orderId").unwrap();
        assert_eq!(docs[0].key, Key::Int(9007199254740993));
        assert_eq!(docs[0].meta.version, Some(crate::model::Version::new("4:1")));
        assert_eq!(docs[0].doc["orderId"].to_string(), "9007199254740993");
        assert!(hits_to_docs(&mut answer.clone(), KeyKind::Text, "orderId").is_err());
    }

    #[test]
    fn shard_failures_stop_the_scan() {
        let answer = json!({"_shards": {"total": 5, "failed": 1, "failures": [{"reason": {"reason": "boom"}}]}});
        let e = check_shards(&answer).unwrap_err().to_string();
        assert!(e.contains("1 of 5 shards failed") && e.contains("boom"), "{e}");
        assert!(check_shards(&json!({"_shards": {"total": 1, "failed": 0}, "timed_out": true})).is_err());
    }
}
