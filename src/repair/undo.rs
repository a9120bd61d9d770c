//! `recon undo AUDIT`: put back what a repair changed, conditionally, from its audit log.
//!
//! Each applied action is reversed only if the document is still the one the repair wrote (its
//! version as recorded in the outcome): a created document is deleted, an
//! overwritten one gets its before-image back, a deleted one is created again with its `_id` and
//! `_source`. A document changed since the repair conflicts and is reported, never overwritten,
//! unless it is already as it was before the repair (an undo run twice): then there is nothing to do.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};

use super::apply::{Executor, Tally};
use super::audit::{self, AuditLog, Header, Intent, OutcomeRecord, AUDIT_SCHEMA};
use super::plan::BeforeImage;
use super::{confirm, needs_yes, SummaryFormat};
use crate::command_line::{CommandLine, Takes, Target};
use crate::config::ReadModelSettings;
use crate::document::Doc;
use crate::engine::Outcome;
use crate::source::BulkSettings;
use crate::source::{ConditionalWriter, StoredDoc, WriteKind};

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
    let written_location = outcome.location.clone().unwrap_or_else(|| intent.location.clone());
    let after = |source: Option<&Doc>| {
        Some(BeforeImage {
            location: written_location.clone(),
            source: source?.clone(),
            version: outcome.version.clone()?,
            raw: None,
        })
    };
    let conditional = |kind: WriteKind, doc| Intent {
        seq,
        action: kind,
        key: intent.key.clone(),
        location: written_location.clone(),
        id: intent.id.clone(),
        if_version: outcome.version.clone(),
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
                location: before.location.clone(),
                id: intent.id.clone(),
                if_version: None,
                doc: Some(before.source.clone()),
                before: None,
            })
        }
    }
}

/// Whether `current` shows the document `reversal` would write as it was before the repair: gone,
/// for one the repair created; holding the before-image, for one it overwrote or deleted. A document
/// the read model could not read (a missing index) shows nothing.
fn is_as_before(reversal: &Intent, current: &StoredDoc) -> bool {
    match &reversal.doc {
        None => *current == StoredDoc::Absent,
        Some(before) => current.source() == Some(before),
    }
}

/// Reads the document `reversal` would write now: whether it already is as before the repair.
async fn already_as_before(writer: &dyn ConditionalWriter, reversal: &Intent) -> anyhow::Result<bool> {
    let current = writer
        .read_back(&[(reversal.location.clone(), reversal.id.clone())])
        .await?;
    Ok(current.first().is_some_and(|c| is_as_before(reversal, c)))
}

/// Leaves out the reversals whose documents already are as before the repair (an undo run twice):
/// there is nothing to write for them.
async fn without_as_before(
    writer: &dyn ConditionalWriter,
    reversals: Vec<Intent>,
) -> anyhow::Result<(Vec<Intent>, u64)> {
    let places: Vec<(String, String)> = reversals.iter().map(|r| (r.location.clone(), r.id.clone())).collect();
    let current = writer
        .read_back(&places)
        .await
        .context("cannot read the documents the repair wrote")?;
    let mut todo = Vec::with_capacity(reversals.len());
    let mut as_before = 0;
    for (r, current) in reversals.into_iter().zip(&current) {
        if is_as_before(&r, current) {
            as_before += 1;
        } else {
            todo.push(r);
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
    // The before-images' exact bytes, by reversal, where the read model kept them: written instead
    // of the document encoded again, so the value comes back byte for byte.
    let mut raw_docs: std::collections::HashMap<u64, String> = std::collections::HashMap::new();
    let mut unknown = 0u64;
    for (seq, intent) in &contents.intents {
        match contents.outcomes.get(seq) {
            Some(outcome) => {
                if let Some(r) = reversal(reversals.len() as u64 + 1, intent, outcome) {
                    let raw = intent.before.as_ref().and_then(|b| b.raw.clone());
                    if let Some(raw) = raw.filter(|_| r.doc.is_some()) {
                        raw_docs.insert(r.seq, raw);
                    }
                    reversals.push(r);
                }
            }
            None => unknown += 1,
        }
    }
    if unknown > 0 {
        // Resume takes the write model's URL too: --pg-url, when the configuration lacks it.
        let mut resume = CommandLine::recon("repair")
            .arg("--resume")
            .path(repair_log)
            .at(&options.target, Takes::READ_MODEL);
        // The index the repair wrote; a Redis key pattern comes from the configuration.
        if settings.redis.is_none() {
            resume = resume.option("--index", &header.index);
        }
        let resume = resume.arg("--apply");
        crate::note!(
            "recon: warning: {unknown} actions of {} have no recorded outcome (interrupted); finish the repair \
             first ({resume}), or they stay as they are",
            repair_log.display()
        );
    }
    let writer = crate::engine::connect::connect_writer(settings, options.bulk.clone()).await?;
    let (reversals, mut as_before) = if reversals.is_empty() {
        (reversals, 0)
    } else {
        without_as_before(writer.as_ref(), reversals).await?
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
        crate::engine::interrupted().await;
        flag.store(true, Ordering::SeqCst);
    });
    let executor = Executor::new(writer, log, stop, 1, false);
    let mut tally = Tally::default();
    let mut not_started = 0;
    for part in reversals.chunks(options.bulk.max_actions.max(1)) {
        if executor.stopped() {
            not_started += part.len();
            continue;
        }
        let encoded: Vec<super::apply::EncodedIntent> = part
            .iter()
            .map(|r| {
                let mut encoded = super::apply::EncodedIntent::of(r);
                if let Some(raw) = raw_docs.get(&r.seq) {
                    encoded.doc_json = Some(raw.as_bytes().to_vec());
                }
                encoded
            })
            .collect();
        let mut settled = Vec::new();
        for (r, o) in part.iter().zip(executor.write(&encoded, false).await?) {
            let mut one = Tally::default();
            match o.status.as_str() {
                "applied" => one.applied = 1,
                // Not the version the repair wrote, but as before the repair: undone already (by an
                // earlier undo, or by hand). Nothing to do, and nothing lost.
                "conflict" if already_as_before(executor.writer.as_ref(), r).await.unwrap_or(false) => {
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
    if let Err(e) = executor.writer.refresh(&header.index).await {
        crate::note!("recon: warning: cannot refresh {}: {e}", header.index);
    }
    print_summary(options, &tally, as_before, not_started, Some(&path));
    if executor.stopped() {
        crate::note!("recon: warning: interrupted; {not_started} reversals not started");
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
    use crate::model::Version;
    use serde_json::json;

    fn v(n: i64) -> Version {
        Version::new(format!("v{n}"))
    }

    fn intent(action: WriteKind, before: Option<BeforeImage>) -> Intent {
        Intent {
            seq: 7,
            action,
            key: json!(1),
            location: "orders".into(),
            id: "1".into(),
            if_version: Some(Version::new("v3")),
            doc: json!({"customerName": "new"}).as_object().cloned().map(Doc::from),
            before,
        }
    }

    fn applied(version: i64) -> OutcomeRecord {
        OutcomeRecord {
            seq: 7,
            status: "applied".into(),
            result: Some("created".into()),
            location: Some("orders-v2".into()),
            version: Some(v(version)),
            error: None,
            note: None,
        }
    }

    #[test]
    fn each_write_is_reversed_on_the_version_the_repair_produced() {
        let before = BeforeImage {
            location: "orders-v2".into(),
            source: json!({"customerName": "old"}).as_object().cloned().unwrap().into(),
            version: v(3),
            raw: None,
        };
        let r = reversal(1, &intent(WriteKind::Create, None), &applied(9)).unwrap();
        assert_eq!(
            (r.action, r.location.as_str(), r.if_version),
            (WriteKind::Delete, "orders-v2", Some(v(9)))
        );
        let r = reversal(1, &intent(WriteKind::Index, Some(before.clone())), &applied(9)).unwrap();
        assert_eq!((r.action, r.if_version), (WriteKind::Index, Some(v(9))));
        assert_eq!(r.doc.unwrap()["customerName"], "old");
        let r = reversal(1, &intent(WriteKind::Delete, Some(before.clone())), &applied(9)).unwrap();
        assert_eq!((r.action, r.if_version, r.id.as_str()), (WriteKind::Create, None, "1"));
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
            doc: Some(before.clone().into()),
            ..intent(WriteKind::Index, None)
        };
        let found = |name: &str| StoredDoc::Found {
            location: Some("orders".into()),
            source: json!({ "customerName": name }).as_object().cloned().unwrap().into(),
            version: Some(v(4)),
        };
        let gone = StoredDoc::Absent;
        let (old, new) = (found("old"), found("new"));
        let no_index = StoredDoc::NoLocation("no such index [orders]".into());
        assert!(is_as_before(&delete, &gone));
        assert!(!is_as_before(&delete, &old) && !is_as_before(&delete, &no_index));
        assert!(is_as_before(&restore, &old));
        assert!(!is_as_before(&restore, &new) && !is_as_before(&restore, &gone));
    }
}
