//! `recon undo AUDIT`: put back what a repair changed, conditionally, from its audit log.
//!
//! Each applied action is reversed only if the document is still the one the repair wrote (its
//! `seq_no`/`primary_term` as recorded in the outcome): a created document is deleted, an
//! overwritten one gets its before-image back, a deleted one is created again with its `_id` and
//! `_source`. A document changed since the repair conflicts and is reported, never overwritten,
//! unless it is already as it was before the repair (an undo run twice): then there is nothing to do.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};
use elasticsearch::http::Method;
use serde_json::Value;

use super::apply::{encode, Executor, Tally};
use super::audit::{self, AuditLog, Header, Intent, OutcomeRecord, AUDIT_SCHEMA};
use super::plan::BeforeImage;
use super::{confirm, needs_yes, SummaryFormat};
use crate::commands::command_line::{CommandLine, Takes, Target};
use crate::commands::Outcome;
use crate::config::{ReadModelConnection, ReadModelSettings};
use crate::source::elasticsearch::write::{BulkSettings, BulkWriter, WriteKind};
use crate::source::elasticsearch::{ConnectSettings, EsClient, RetryPolicy};

#[derive(Debug, Clone)]
pub struct UndoOptions {
    pub apply: bool,
    pub yes: bool,
    /// The undo's own audit log.
    pub audit: Option<PathBuf>,
    pub bulk: BulkSettings,
    pub format: SummaryFormat,
    /// The config file and the overrides the undo was given, for the commands it prints.
    pub target: Target,
}

/// Why a reversal was left alone (its outcome's `error`, result `as_before`, in the undo's log): its
/// document already is as it was before the repair.
pub const AS_BEFORE: &str = "already as before the repair";

/// What undoing `intent` (whose outcome was `outcome`) writes; None when there is nothing to undo.
pub fn reversal(seq: u64, intent: &Intent, outcome: &OutcomeRecord) -> Option<Intent> {
    if outcome.status != "applied" {
        return None;
    }
    let written_index = outcome.index.clone().unwrap_or_else(|| intent.index.clone());
    let after = |source: Option<&serde_json::Map<String, serde_json::Value>>| {
        Some(BeforeImage {
            index: written_index.clone(),
            source: source?.clone(),
            seq_no: outcome.seq_no?,
            primary_term: outcome.primary_term?,
        })
    };
    let conditional = |kind: WriteKind, doc| Intent {
        seq,
        action: kind,
        key: intent.key.clone(),
        index: written_index.clone(),
        id: intent.id.clone(),
        if_seq_no: outcome.seq_no,
        if_primary_term: outcome.primary_term,
        doc,
        before: after(intent.doc.as_ref().filter(|_| intent.action != WriteKind::Update)),
    };
    match intent.action {
        WriteKind::Create => Some(conditional(WriteKind::Delete, None)),
        WriteKind::Index | WriteKind::Update => {
            let before = intent.before.as_ref()?;
            Some(conditional(WriteKind::Index, Some(before.source.clone())))
        }
        WriteKind::Delete => {
            let before = intent.before.as_ref()?;
            Some(Intent {
                seq,
                action: WriteKind::Create,
                key: intent.key.clone(),
                index: before.index.clone(),
                id: intent.id.clone(),
                if_seq_no: None,
                if_primary_term: None,
                doc: Some(before.source.clone()),
                before: None,
            })
        }
    }
}

/// How undo reaches the read model: `[elasticsearch]`'s connection.
fn connect_settings(c: &ReadModelConnection) -> ConnectSettings {
    ConnectSettings {
        url: c.url.expose().to_string(),
        username: c.username.clone(),
        password: c.password.clone(),
        api_key: c.api_key.clone(),
        ca_cert: c.ca_cert.clone(),
        insecure: c.insecure,
        timeout: c.timeout,
        retry: RetryPolicy {
            max_retries: c.max_retries,
            ..RetryPolicy::default()
        },
    }
}

/// Whether `current` (a get answer, or an `_mget` entry) shows the document `reversal` would write as
/// it was before the repair: gone, for one the repair created; holding the before-image, for one it
/// overwrote or deleted. An error (a missing index) shows nothing.
fn is_as_before(reversal: &Intent, current: &Value) -> bool {
    let found = current["found"] == Value::Bool(true);
    match &reversal.doc {
        None => !found && current.get("error").is_none(),
        Some(before) => found && current["_source"].as_object() == Some(before),
    }
}

/// Reads the document `reversal` would write now: whether it already is as before the repair.
async fn already_as_before(client: &EsClient, reversal: &Intent) -> anyhow::Result<bool> {
    let path = format!("/{}/_doc/{}", encode(&reversal.index), encode(&reversal.id));
    let current = client.request(Method::Get, &path, &[], None).await?;
    Ok(is_as_before(reversal, &current.body))
}

/// Leaves out the reversals whose documents already are as before the repair (an undo run twice):
/// there is nothing to write for them. Reads the documents with one `_mget` per thousand.
async fn without_as_before(client: &EsClient, reversals: Vec<Intent>) -> anyhow::Result<(Vec<Intent>, u64)> {
    let mut todo = Vec::with_capacity(reversals.len());
    let mut as_before = 0;
    for chunk in reversals.chunks(1000) {
        let docs: Vec<Value> = chunk
            .iter()
            .map(|r| serde_json::json!({"_index": r.index, "_id": r.id}))
            .collect();
        let body = client
            .request_ok(Method::Post, "/_mget", &[], Some(&serde_json::json!({ "docs": docs })))
            .await
            .context("cannot read the documents the repair wrote")?;
        let answers = body["docs"]
            .as_array()
            .filter(|a| a.len() == chunk.len())
            .with_context(|| format!("_mget of {} documents did not answer for each", chunk.len()))?;
        for (r, current) in chunk.iter().zip(answers) {
            if is_as_before(r, current) {
                as_before += 1;
            } else {
                todo.push(r.clone());
            }
        }
    }
    Ok((todo, as_before))
}

pub async fn run(settings: &ReadModelSettings, repair_log: &Path, options: &UndoOptions) -> anyhow::Result<Outcome> {
    needs_yes(options.apply, options.yes)?;
    let contents = audit::read(repair_log)?;
    contents.warn_torn(repair_log);
    let header = contents
        .header
        .clone()
        .with_context(|| format!("{} has no header; is it a recon audit log?", repair_log.display()))?;
    if header.command != "repair" {
        bail!(
            "{} is the log of a `recon {}`; only a repair can be undone",
            repair_log.display(),
            header.command
        );
    }
    let mut reversals = Vec::new();
    let mut unknown = 0u64;
    for (seq, intent) in &contents.intents {
        match contents.outcomes.get(seq) {
            Some(outcome) => {
                if let Some(r) = reversal(reversals.len() as u64 + 1, intent, outcome) {
                    reversals.push(r);
                }
            }
            None => unknown += 1,
        }
    }
    if unknown > 0 {
        // Resume takes the write model's URL too: --pg-url, when the configuration lacks it.
        let resume = CommandLine::recon("repair")
            .arg("--resume")
            .path(repair_log)
            .at(&options.target, Takes::READ_MODEL)
            .option("--index", &header.index)
            .arg("--apply");
        crate::note!(
            "recon: warning: {unknown} actions of {} have no recorded outcome (interrupted); finish the repair \
             first ({resume}), or they stay as they are",
            repair_log.display()
        );
    }
    let client = EsClient::connect(&connect_settings(&settings.connection)).await?;
    let (reversals, mut as_before) = if reversals.is_empty() {
        (reversals, 0)
    } else {
        without_as_before(&client, reversals).await?
    };
    let count = |k: WriteKind| reversals.iter().filter(|r| r.action == k).count();
    if options.format == SummaryFormat::Text {
        println!(
            "undo plan: {} actions: delete {} created, restore {} overwritten, re-create {} deleted; {as_before} \
             {AS_BEFORE}",
            reversals.len(),
            count(WriteKind::Delete),
            count(WriteKind::Index),
            count(WriteKind::Create)
        );
    }
    if reversals.is_empty() {
        if options.apply {
            print_summary(options, &Tally::default(), as_before, 0, None);
        }
        return Ok(Outcome::InSync);
    }
    if !options.apply {
        let mut command = CommandLine::recon("undo")
            .path(repair_log)
            .at(&options.target, Takes::READ_MODEL);
        if let Some(audit) = &options.audit {
            command = command.arg("--audit").path(audit);
        }
        crate::note!(
            "recon: dry run: nothing was written; to undo: {}",
            command.arg("--apply")
        );
        return Ok(Outcome::Drift);
    }
    if !confirm(
        &format!("Undo {} changes on {}?", reversals.len(), header.index),
        options.yes,
    )? {
        crate::note!("recon: not confirmed; nothing was written");
        return Ok(Outcome::Drift);
    }
    let path = options.audit.clone().unwrap_or_else(|| audit::default_path("undo"));
    let mut log = AuditLog::create(&path)?;
    log.header(&Header {
        schema: AUDIT_SCHEMA.into(),
        command: "undo".into(),
        started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        config: settings.source_file.as_ref().map(|p| p.display().to_string()),
        index: header.index.clone(),
        mode: None,
        tool_version: env!("CARGO_PKG_VERSION").into(),
        actions: None,
    })?;
    log.note(
        "undoes",
        &serde_json::json!({"audit": repair_log.display().to_string()}),
    )?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    tokio::spawn(async move {
        crate::commands::interrupted().await;
        flag.store(true, Ordering::SeqCst);
    });
    let executor = Executor::new(
        BulkWriter::new(client.clone(), options.bulk.clone()),
        client,
        log,
        stop,
        1,
        false,
    );
    let mut tally = Tally::default();
    let mut not_started = 0;
    for part in reversals.chunks(options.bulk.max_actions.max(1)) {
        if executor.stopped() {
            not_started += part.len();
            continue;
        }
        let encoded: Vec<super::apply::EncodedIntent> = part.iter().map(super::apply::EncodedIntent::of).collect();
        let mut settled = Vec::new();
        for (r, o) in part.iter().zip(executor.write(&encoded, false).await?) {
            let mut one = Tally::default();
            match o.status.as_str() {
                "applied" => one.applied = 1,
                // Not the version the repair wrote, but as before the repair: undone already (by an
                // earlier undo, or by hand). Nothing to do, and nothing lost.
                "conflict" if already_as_before(&executor.client, r).await.unwrap_or(false) => {
                    as_before += 1;
                    settled.push(OutcomeRecord::skipped(r.seq, AS_BEFORE, "as_before"));
                }
                "conflict" => {
                    one.conflict = 1;
                    one.conflicts
                        .push((r.key.clone(), format!("_id {}: changed since the repair", r.id)));
                }
                _ => {
                    one.failed = 1;
                    one.failures.push((r.key.clone(), o.error.clone().unwrap_or_default()));
                }
            }
            tally.merge(one);
        }
        // The last outcome per action counts: the log says why the conflict is none.
        executor
            .audit
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .outcomes(&settled)?;
    }
    executor
        .audit
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .finish()?;
    // Searches (the next check or repair) see the undo only after a refresh.
    let refresh = format!("/{}/_refresh", super::apply::encode(&header.index));
    if let Err(e) = executor.client.request_ok(Method::Post, &refresh, &[], None).await {
        crate::note!("recon: warning: cannot refresh {}: {e}", header.index);
    }
    print_summary(options, &tally, as_before, not_started, Some(&path));
    if executor.stopped() {
        crate::note!("recon: interrupted; {not_started} reversals not started");
        return Ok(Outcome::Interrupted);
    }
    Ok(if tally.conflict == 0 && tally.failed == 0 {
        Outcome::InSync
    } else {
        Outcome::Drift
    })
}

/// What the undo did, on stdout. `audit`: its own log, when it wrote one.
fn print_summary(options: &UndoOptions, tally: &Tally, as_before: u64, not_started: usize, audit: Option<&Path>) {
    match options.format {
        SummaryFormat::Text => {
            println!(
                "undone {}, {AS_BEFORE} {as_before}, changed since the repair (skipped) {}, failed {}",
                tally.applied, tally.conflict, tally.failed
            );
            for (key, reason) in tally.conflicts.iter().chain(&tally.failures).take(20) {
                println!("  key {key}: {reason}");
            }
            if let Some(path) = audit {
                println!("undo audit log: {}", path.display());
            }
        }
        SummaryFormat::Json => println!(
            "{}",
            serde_json::json!({
                "schema": "recon.undo/v1",
                "undone": tally.applied, "already_as_before": as_before,
                "conflict": tally.conflict, "failed": tally.failed,
                "not_started": not_started,
                "conflicts": tally.conflicts.iter().map(|(k, r)| serde_json::json!({"key": k, "reason": r}))
                    .collect::<Vec<_>>(),
                "audit": audit.map(|p| p.display().to_string()),
            })
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn intent(action: WriteKind, before: Option<BeforeImage>) -> Intent {
        Intent {
            seq: 7,
            action,
            key: json!(1),
            index: "orders".into(),
            id: "1".into(),
            if_seq_no: Some(3),
            if_primary_term: Some(1),
            doc: json!({"customerName": "new"}).as_object().cloned(),
            before,
        }
    }

    fn applied(seq_no: i64) -> OutcomeRecord {
        OutcomeRecord {
            seq: 7,
            status: "applied".into(),
            result: Some("created".into()),
            index: Some("orders-v2".into()),
            seq_no: Some(seq_no),
            primary_term: Some(1),
            error: None,
            note: None,
        }
    }

    #[test]
    fn each_write_is_reversed_on_the_version_the_repair_produced() {
        let before = BeforeImage {
            index: "orders-v2".into(),
            source: json!({"customerName": "old"}).as_object().cloned().unwrap(),
            seq_no: 3,
            primary_term: 1,
        };
        let r = reversal(1, &intent(WriteKind::Create, None), &applied(9)).unwrap();
        assert_eq!(
            (r.action, r.index.as_str(), r.if_seq_no),
            (WriteKind::Delete, "orders-v2", Some(9))
        );
        let r = reversal(1, &intent(WriteKind::Index, Some(before.clone())), &applied(9)).unwrap();
        assert_eq!((r.action, r.if_seq_no), (WriteKind::Index, Some(9)));
        assert_eq!(r.doc.unwrap()["customerName"], "old");
        let r = reversal(1, &intent(WriteKind::Delete, Some(before.clone())), &applied(9)).unwrap();
        assert_eq!((r.action, r.if_seq_no, r.id.as_str()), (WriteKind::Create, None, "1"));
        assert_eq!(r.doc.unwrap()["customerName"], "old");
        let conflict = OutcomeRecord {
            status: "conflict".into(),
            ..applied(9)
        };
        assert!(reversal(1, &intent(WriteKind::Create, None), &conflict).is_none());
    }

    #[test]
    fn as_before_means_gone_for_a_created_document_and_the_before_image_otherwise() {
        let before = json!({"customerName": "old"}).as_object().cloned().unwrap();
        let delete = Intent {
            action: WriteKind::Delete,
            doc: None,
            ..intent(WriteKind::Delete, None)
        };
        let restore = Intent {
            action: WriteKind::Index,
            doc: Some(before.clone()),
            ..intent(WriteKind::Index, None)
        };
        let gone = json!({"_index": "orders", "_id": "1", "found": false});
        let old = json!({"_index": "orders", "_id": "1", "found": true, "_source": {"customerName": "old"}});
        let new = json!({"_index": "orders", "_id": "1", "found": true, "_source": {"customerName": "new"}});
        let no_index = json!({"_index": "orders", "_id": "1", "error": {"type": "index_not_found_exception"}});
        assert!(is_as_before(&delete, &gone));
        assert!(!is_as_before(&delete, &old) && !is_as_before(&delete, &no_index));
        assert!(is_as_before(&restore, &old));
        assert!(!is_as_before(&restore, &new) && !is_as_before(&restore, &gone));
    }
}
