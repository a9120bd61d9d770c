//! `recon reindex`: rebuild the read model into a fresh generation behind the alias, with no lost
//! writes, a verify gate before the swap, generations to roll back to, and progress kept in the new
//! index's `_meta` so that a killed run resumes.
//!
//! Stages, one file each: [`generations`] (names, listing, what to create), [`load`] (the bulk load
//! out of one snapshot), [`catchup`] (re-projecting changed rows, repairing the check's drift),
//! [`state`] (the progress kept in the generation). Every call to Elasticsearch (creating the
//! generation, saving the state, swapping the alias, deleting old generations) is one function of
//! [`crate::source::elasticsearch::rebuild`].
//!
//! The order that loses no write: load the snapshot taken at the watermark W; re-project rows with
//! `updated_at >= W - margin`; check the new index, repair its drift and compare the repaired keys
//! again, each pass catching up on rows changed since the previous one, until at most `--max-drift`
//! keys still drift after a pass; swap the alias; a last
//! pass over rows changed since the last check, written conditionally because the projector now
//! writes the new index too. See docs/runbooks/reindex.md for the one window a delete can slip through.

pub mod catchup;
pub mod fingerprints;
pub mod generations;
mod hooks;
pub mod load;
pub mod state;

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Map, Value};

use self::catchup::{CatchUp, Written};
use self::fingerprints::{Fingerprints, Sifted};
use self::generations::{Generation, Target};
use self::state::{Phase, RangeProgress, ReindexState};
use crate::config::Settings;
use crate::diff::Comparator;
use crate::engine::Outcome;
use crate::engine::{connect_sides_with, scan, ScanScope, Sides};
use crate::model::{Drift, DriftKind, Summary};
use crate::plural::plural;
use crate::progress::ProgressMode;
use crate::repair::SummaryFormat;
use crate::scale::keyfile::{KeyFile, KeyFileWriter};
use crate::source::elasticsearch::write::{BulkSettings, BulkWriter};
use crate::source::elasticsearch::{rebuild, ElasticsearchSource, EsClient};
use crate::source::postgres::{PostgresSource, SharedSnapshot};
use crate::source::{DocumentSource, KeyRange, ReadModel};

/// Why `recon reindex` refuses to act; each message says what to run instead.
#[derive(Debug, thiserror::Error)]
pub enum ReindexError {
    #[error(
        "recon reindex needs postgres.updated_at (the column with each row's last change): without it the rows \
         changed during the load cannot be caught up"
    )]
    NeedsUpdatedAt,
    #[error(
        "elasticsearch.index {alias:?} is a concrete index, not an alias; recon reindex builds a new index and moves \
         an alias to it. Point readers and the projector at an alias, or let recon do it: `{adopt}` rebuilds {alias} \
         into {alias}-<timestamp> and replaces the index {alias} by an alias of that name in one atomic call (the \
         old index is deleted then; there is nothing to roll back to)"
    )]
    ConcreteIndex { alias: String, adopt: String },
    #[error(
        "no alias or index named {0:?} (elasticsearch.index); create the first generation with your projector, or \
         create the alias"
    )]
    Missing(String),
    #[error(
        "{describe}; the alias still points at {behind}. Continue it with `{resume}` or delete it and start again \
         with `{discard}`"
    )]
    Unfinished {
        describe: String,
        behind: String,
        resume: String,
        discard: String,
    },
    #[error(
        "--resume: there is no unfinished reindex of {alias} to resume; nothing was changed. To build a new \
         generation, run without --resume: `{rebuild}`"
    )]
    NothingToResume { alias: String, rebuild: String },
    #[error("{alias} is not an alias; there is nothing to roll back")]
    NotAnAlias { alias: String },
    #[error("no older generation of {alias} to roll back to (see `{list}`)")]
    NothingToRollBackTo { alias: String, list: String },
    #[error("recon reindex without a terminal needs --yes; nothing was changed")]
    NeedsYes,
}

/// Check-and-repair passes before the verify gate gives up.
const MAX_PASSES: u32 = 3;
/// Drifted keys re-verified and repaired at a time by a verify pass.
const REPAIR_CHUNK: usize = 10_000;
/// A fingerprint pass looks up at most this many keys not proven by their fingerprint, or a fifth of
/// the keys if more; beyond that it checks in full (a scan reads a key for a fraction of a lookup).
const LOOKUPS_AT_MOST: u64 = 1_000;

/// What `recon reindex` was asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Rebuild,
    Rollback,
    List,
}

/// How the verify gate checks the new generation (`--verify`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// The load's fingerprints, the changed rows and a key scan; the rest compared in full.
    Fingerprints,
    /// A whole check of the new generation per pass.
    Full,
}

impl Gate {
    fn as_str(self) -> &'static str {
        match self {
            Gate::Fingerprints => "fingerprints",
            Gate::Full => "full",
        }
    }
}

/// What to do with an unfinished reindex found at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unfinished {
    Resume,
    Discard,
    /// Ask on a terminal; refuse without one.
    Ask,
}

#[derive(Debug, Clone)]
pub struct ReindexOptions {
    pub action: Action,
    pub yes: bool,
    pub mapping: Option<PathBuf>,
    pub max_drift: u64,
    pub gate: Gate,
    pub keep: usize,
    pub margin: Duration,
    pub adopt: bool,
    pub parallel: u32,
    pub unfinished: Unfinished,
    pub format: SummaryFormat,
    pub progress: ProgressMode,
    /// For the commands printed in messages.
    pub rerun: Rerun,
}

/// Where this run acts, as flags: every command printed for the user to paste carries them, so that it
/// acts on the same write model, cluster and alias (a hint without `--index` would act on the config's).
#[derive(Debug, Clone, Default)]
pub struct Rerun {
    pub config: PathBuf,
    pub pg_url: Option<String>,
    pub es_url: Option<String>,
    pub index: Option<String>,
}

impl Rerun {
    /// `recon SUBCOMMAND --config FILE [--pg-url …] [--es-url …] [--index NAME] [FLAGS]`, each value quoted
    /// for a POSIX shell where needed. A password in a URL shows as `***` (secrets are never printed):
    /// put the real one back, or keep it in the config or the environment.
    fn command(&self, subcommand: &str, index: Option<&str>, flags: &str) -> String {
        let mut words = vec![
            "recon".to_string(),
            subcommand.to_string(),
            "--config".to_string(),
            shell_quote(&self.config.to_string_lossy()),
        ];
        let urls = [("--pg-url", &self.pg_url), ("--es-url", &self.es_url)];
        for (flag, url) in urls {
            if let Some(url) = url {
                words.push(flag.to_string());
                words.push(shell_quote(&shown_url(url)));
            }
        }
        if let Some(index) = index.or(self.index.as_deref()) {
            words.push("--index".to_string());
            words.push(shell_quote(index));
        }
        if !flags.is_empty() {
            words.push(flags.to_string());
        }
        words.join(" ")
    }
}

/// The URL as the user typed it, unless it holds a secret: then redacted.
fn shown_url(url: &str) -> String {
    let redacted = crate::secret::redact_url(url);
    let normalized = url::Url::parse(url)
        .map(String::from)
        .unwrap_or_else(|_| url.to_string());
    if redacted == normalized {
        url.to_string()
    } else {
        redacted
    }
}

/// `text` as one word of a POSIX shell: as is when it holds only characters no shell treats specially,
/// else in single quotes (a quote inside becomes `'\''`).
fn shell_quote(text: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-.,/:@%+=".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

impl ReindexOptions {
    fn say(&self, line: impl AsRef<str>) {
        if self.progress != ProgressMode::Off {
            crate::note!("recon: {}", line.as_ref());
        }
    }

    /// A `recon reindex` command acting where this run does, with `flags` (already shell words).
    fn command(&self, flags: &str) -> String {
        self.rerun.command("reindex", None, flags)
    }
}

/// Runs `recon reindex` with resolved settings.
pub async fn run(settings: &Settings, options: &ReindexOptions) -> anyhow::Result<Outcome> {
    let client = EsClient::connect(&crate::engine::connect::es_connect_settings(settings)).await?;
    let alias = settings.elasticsearch.index.clone();
    match options.action {
        Action::List => list(&client, &alias, options).await,
        Action::Rollback => rollback(&client, settings, &alias, options).await,
        Action::Rebuild => {
            tokio::select! {
                outcome = rebuild(&client, settings, &alias, options) => outcome,
                _ = crate::engine::interrupted() => {
                    crate::note!(
                        "recon: warning: interrupted; the alias {alias} is where it was unless the swap was done; continue \
                         with: {}",
                        options.command("--resume")
                    );
                    Ok(Outcome::Interrupted)
                }
            }
        }
    }
}

/// Asks on the terminal unless `--yes` ([`crate::terminal::confirm`]); without a terminal `--yes` is
/// required.
fn confirm(question: &str, yes: bool) -> anyhow::Result<bool> {
    crate::terminal::confirm(question, yes, || ReindexError::NeedsYes.into())
}

fn rfc3339_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The instant of PostgreSQL's clock (`now()` of a fresh snapshot), epoch milliseconds.
async fn pg_now(write_model: &PostgresSource) -> anyhow::Result<i64> {
    Ok(write_model.export_snapshot().await?.snapshot_ms())
}

/// Where a catch-up from now must start: PostgreSQL's `now()`, or the start of the oldest transaction
/// writing now (its rows commit later with an older `updated_at`); see [`SharedSnapshot::horizon_ms`].
async fn pg_horizon(write_model: &PostgresSource, options: &ReindexOptions) -> anyhow::Result<i64> {
    let snapshot = write_model.export_snapshot().await?;
    say_horizon(options, &snapshot);
    Ok(snapshot.horizon_ms())
}

fn say_horizon(options: &ReindexOptions, snapshot: &SharedSnapshot) {
    if snapshot.horizon_ms() < snapshot.snapshot_ms() {
        options.say(format!(
            "a transaction writing since {} is still open: the catch-up reads rows changed since then",
            rfc3339_ms(snapshot.horizon_ms())
        ));
    }
}

/// The write model with a pool for `parallel` load ranges, whole pages of `postgres.page_size` rows.
async fn connect_write_model(settings: &Settings, parallel: u32) -> anyhow::Result<PostgresSource> {
    crate::engine::connect::connect_write_model(settings, parallel, settings.postgres.page_size).await
}

/// The new generation as a source: by its concrete name, whole `_source`s.
async fn connect_generation(settings: &Settings, index: &str) -> anyhow::Result<ElasticsearchSource> {
    let page_size = settings.elasticsearch.page_size;
    crate::engine::connect::connect_read_model(settings, index, page_size, crate::engine::connect::Fetch::Whole).await
}

/// `--list`.
async fn list(client: &EsClient, alias: &str, options: &ReindexOptions) -> anyhow::Result<Outcome> {
    let generations = generations::list(client, alias).await?;
    let mut out = std::io::stdout().lock();
    match options.format {
        SummaryFormat::Json => {
            let rows: Vec<Value> = generations
                .iter()
                .map(|g| {
                    json!({
                        "index": g.index,
                        "docs": g.docs,
                        "created_at": g.created_ms.map(rfc3339_ms),
                        "phase": g.state.as_ref().map(|s| s.phase.as_str()),
                        "live": g.live,
                    })
                })
                .collect();
            serde_json::to_writer(&mut out, &json!({"alias": alias, "generations": rows}))?;
            writeln!(out)?;
        }
        SummaryFormat::Text => {
            if generations.is_empty() {
                writeln!(out, "no generations of {alias}")?;
            } else {
                writeln!(out, "  {:<40} {:>12}  {:<24}  PHASE", "INDEX", "DOCS", "CREATED")?;
                for g in &generations {
                    writeln!(
                        out,
                        "{} {:<40} {:>12}  {:<24}  {}",
                        if g.live { "*" } else { " " },
                        g.index,
                        g.docs.map(|d| d.to_string()).unwrap_or_else(|| "-".into()),
                        g.created_ms.map(rfc3339_ms).unwrap_or_else(|| "-".into()),
                        g.state.as_ref().map(|s| s.phase.as_str()).unwrap_or("-"),
                    )?;
                }
                writeln!(out, "(* = behind the alias {alias})")?;
            }
        }
    }
    out.flush()?;
    Ok(Outcome::InSync)
}

/// `--rollback`: the alias back to the newest older generation, then a conditional catch-up of the
/// rows changed since the newer one was started (they were written only there).
async fn rollback(
    client: &EsClient,
    settings: &Settings,
    alias: &str,
    options: &ReindexOptions,
) -> anyhow::Result<Outcome> {
    let Target::Alias { indices } = generations::resolve(client, alias).await? else {
        return Err(ReindexError::NotAnAlias { alias: alias.into() }.into());
    };
    let generations = generations::list(client, alias).await?;
    let current = indices.first().cloned().context("the alias points at no index")?;
    let previous = generations::newest_first(&generations)
        .into_iter()
        .skip_while(|g| g.index != current)
        .find(|g| !g.live && g.state.as_ref().is_none_or(|s| !s.phase.unfinished()))
        .map(|g| g.index.clone());
    let Some(previous) = previous else {
        return Err(ReindexError::NothingToRollBackTo {
            alias: alias.into(),
            list: options.command("--list"),
        }
        .into());
    };
    if !confirm(
        &format!("Point the alias {alias} back from {current} to {previous}?"),
        options.yes,
    )? {
        crate::note!("recon: not confirmed; nothing was changed");
        return Ok(Outcome::Drift);
    }
    rebuild::swap_alias(client, alias, &indices, &previous, false).await?;
    state::set_phase(client, &previous, Phase::Live).await?;
    state::set_phase(client, &current, Phase::Retired).await?;
    options.say(format!("rolled back: {alias} → {previous} (was {current})"));
    // Rows changed while the newer generation was live were projected only there.
    let since = state::load(client, &current).await?.and_then(|s| s.watermark_ms);
    let mut written = Written::default();
    if settings.postgres.updated_at.is_none() || since.is_none() {
        crate::note!(
            "recon: warning: the rows changed while {current} was live are not caught up on {previous} ({}); run \
             `{}` and `{}`",
            if since.is_none() {
                "it has no recon watermark"
            } else {
                "postgres.updated_at is not set"
            },
            options.rerun.command("check", Some(alias), ""),
            options.rerun.command("repair", Some(alias), ""),
        );
    } else if let Some(since) = since {
        let write_model = connect_write_model(settings, 1).await?;
        let generation = connect_generation(settings, &previous).await?;
        let comparator = Comparator::new(&settings.compare).context("invalid [compare] rules")?;
        let writer = BulkWriter::new(client.clone(), BulkSettings::default());
        let catch_up = CatchUp {
            write_model: &write_model,
            generation: &generation,
            comparator: &comparator,
            ignore: &settings.compare.ignore,
            writer: &writer,
            index: &previous,
        };
        catch_up.refresh().await?;
        let keys = catch_up
            .changed_since(since - options.margin.as_millis() as i64)
            .await?;
        written = catch_up.repair_all(&keys).await?;
        options.say(format!(
            "caught {previous} up on {} since {}: {} written, {} left to the projector",
            plural(keys.len(), "row changed", "rows changed"),
            rfc3339_ms(since),
            written.applied,
            written.conflicts
        ));
    }
    summary(
        options,
        "rolled_back",
        alias,
        &previous,
        Some(&current),
        &Pass::default(),
        &written,
    )?;
    Ok(Outcome::InSync)
}

/// What the verify passes found.
#[derive(Debug, Default, Clone)]
struct Pass {
    passes: u32,
    /// Keys failing the last check of the new generation (before its repair).
    failing: u64,
    pending: u64,
    /// Keys the last pass's check found drifting, before its repair (`failing`: after it).
    found: u64,
    loaded: u64,
    load_failed: u64,
    /// How the last pass verified: `fingerprints` or `full`.
    gate: Option<&'static str>,
    /// Keys the last pass proved in sync by their fingerprint…
    settled: u64,
    /// …and keys it compared in full.
    compared: u64,
}

fn summary(
    options: &ReindexOptions,
    result: &str,
    alias: &str,
    index: &str,
    previous: Option<&str>,
    pass: &Pass,
    last: &Written,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match options.format {
        SummaryFormat::Json => {
            serde_json::to_writer(
                &mut out,
                &json!({
                    "schema": "recon.reindex/v1",
                    "result": result,
                    "alias": alias,
                    "index": index,
                    "previous": previous,
                    "loaded": pass.loaded,
                    "load_failed": pass.load_failed,
                    "passes": pass.passes,
                    "failing": pass.failing,
                    "found": pass.found,
                    "pending": pass.pending,
                    "gate": pass.gate,
                    "settled_by_fingerprint": pass.settled,
                    "compared_in_full": pass.compared,
                    "final_pass": {"applied": last.applied, "conflicts": last.conflicts,
                                   "skipped": last.skipped, "failed": last.failed},
                }),
            )?;
            writeln!(out)?;
        }
        SummaryFormat::Text => match result {
            "swapped" => {
                writeln!(
                    out,
                    "{alias} → {index} (was {}); loaded {}; {}, {} drifting at the gate; last pass: {} written, {} \
                     left to the projector",
                    previous.unwrap_or("nothing"),
                    plural(pass.loaded, "document", "documents"),
                    plural(pass.passes, "check pass", "check passes"),
                    plural(pass.failing, "key", "keys"),
                    last.applied,
                    last.conflicts
                )?;
            }
            "rolled_back" => writeln!(out, "{alias} → {index} (rolled back from {})", previous.unwrap_or("-"))?,
            _ => writeln!(
                out,
                "verify gate failed: {} in {index} after {} (--max-drift {}); {alias} still points at {}; \
                 {index} is kept for inspection",
                plural(pass.failing, "key still drifts", "keys still drift"),
                plural(pass.passes, "pass", "passes"),
                options.max_drift,
                previous.unwrap_or("nothing")
            )?,
        },
    }
    out.flush()?;
    Ok(())
}

/// The generation being built and where it came from.
struct Build {
    index: String,
    state: ReindexState,
    /// Indices the alias points at now (the concrete index itself with `--adopt`).
    from: Vec<String>,
}

async fn rebuild(
    client: &EsClient,
    settings: &Settings,
    alias: &str,
    options: &ReindexOptions,
) -> anyhow::Result<Outcome> {
    if settings.postgres.updated_at.is_none() {
        return Err(ReindexError::NeedsUpdatedAt.into());
    }
    let (from, adopt) = match generations::resolve(client, alias).await? {
        Target::Alias { indices } => (indices, false),
        Target::Index if options.adopt => (vec![alias.to_string()], true),
        Target::Index => {
            return Err(ReindexError::ConcreteIndex {
                alias: alias.into(),
                adopt: options.command("--adopt"),
            }
            .into())
        }
        Target::Missing => return Err(ReindexError::Missing(alias.into()).into()),
    };
    let write_model = connect_write_model(settings, options.parallel).await?;
    // Before anything is created: a [compare] typo would change what the verify gate lets through.
    let alias_fields = Box::pin(crate::source::elasticsearch::mapped_fields(client, alias));
    crate::engine::ensure_known_fields(settings, write_model.columns(), alias_fields).await?;
    let generations = generations::list(client, alias).await?;
    let build = match unfinished(client, alias, &generations, options, &from).await? {
        Some(build) => build,
        None => match create(client, alias, options, &write_model, from, adopt, &generations).await? {
            Some(build) => build,
            None => return Ok(Outcome::Drift),
        },
    };
    finish_build(client, settings, alias, options, &write_model, build).await
}

/// An unfinished reindex found at start: resumed, discarded, or refused with the commands to run.
async fn unfinished(
    client: &EsClient,
    alias: &str,
    generations: &[Generation],
    options: &ReindexOptions,
    from: &[String],
) -> anyhow::Result<Option<Build>> {
    let partial: Vec<(&Generation, &ReindexState)> = generations
        .iter()
        .filter_map(|g| g.state.as_ref().filter(|s| s.phase.unfinished()).map(|s| (g, s)))
        .collect();
    let Some((newest, state)) = partial.last() else {
        if options.unfinished == Unfinished::Resume {
            // A new build is not what was asked for: a resume that quietly swaps in a fresh generation
            // would surprise whoever expected to finish the interrupted one.
            return Err(ReindexError::NothingToResume {
                alias: alias.to_string(),
                rebuild: options.command(if options.yes { "--yes" } else { "" }),
            }
            .into());
        }
        return Ok(None);
    };
    // Already behind the alias: only the last pass is missing. Never discarded.
    if newest.live {
        options.say(format!(
            "{} is behind the alias but its last pass did not finish; finishing it",
            newest.index
        ));
        let mut from = state.source_index.clone().into_iter().collect::<Vec<_>>();
        from.retain(|i| i != &newest.index);
        return Ok(Some(Build {
            index: newest.index.clone(),
            state: (*state).clone(),
            from,
        }));
    }
    let describe = format!(
        "an unfinished reindex of {}: {} (phase {}, watermark {}, load {})",
        state.alias,
        newest.index,
        state.phase.as_str(),
        state.watermark.as_deref().unwrap_or("-"),
        state.loaded_upto()
    );
    let choice = match options.unfinished {
        Unfinished::Ask if std::io::stdin().is_terminal() && !options.yes => {
            eprint!("recon: {describe}.\n[r]esume it, [d]iscard it and start again, or [q]uit? ");
            std::io::stderr().flush()?;
            let mut answer = String::new();
            std::io::stdin().lock().read_line(&mut answer)?;
            match answer.trim().to_ascii_lowercase().as_str() {
                "r" | "resume" => Unfinished::Resume,
                "d" | "discard" => Unfinished::Discard,
                _ => bail!("nothing was changed"),
            }
        }
        Unfinished::Ask => {
            return Err(ReindexError::Unfinished {
                describe,
                behind: if from.is_empty() {
                    "nothing".to_string()
                } else {
                    from.join(",")
                },
                resume: options.command("--resume --yes"),
                discard: options.command("--discard --yes"),
            }
            .into())
        }
        other => other,
    };
    match choice {
        Unfinished::Discard => {
            for (g, state) in &partial {
                if !g.live {
                    rebuild::delete_generation(client, &g.index).await?;
                    fingerprints::remove_dir(&g.index, state.scratch.as_deref());
                    options.say(format!("discarded {}", g.index));
                }
            }
            Ok(None)
        }
        _ => {
            options.say(format!("resuming {describe}"));
            Ok(Some(Build {
                index: newest.index.clone(),
                state: (*state).clone(),
                from: from.to_vec(),
            }))
        }
    }
}

/// A new generation: the plan, the confirmation, the index with its initial state.
#[allow(clippy::too_many_arguments)]
async fn create(
    client: &EsClient,
    alias: &str,
    options: &ReindexOptions,
    write_model: &PostgresSource,
    from: Vec<String>,
    adopt: bool,
    generations: &[Generation],
) -> anyhow::Result<Option<Build>> {
    let source_index = from.first().cloned();
    let (mut flat, mut mappings) = match &source_index {
        Some(index) => {
            let (flat, mappings) = rebuild::settings_and_mappings(client, index).await?;
            (rebuild::copyable_settings(&flat), mappings)
        }
        None => (Map::new(), Value::Null),
    };
    if let Some(path) = &options.mapping {
        let (file_mappings, file_settings) = generations::read_mapping_file(path)?;
        mappings = file_mappings;
        flat.extend(file_settings);
    } else if source_index.is_none() {
        bail!("the alias {alias} points at no index to copy the mapping from; pass --mapping FILE");
    }
    let mut now = chrono::Utc::now();
    let mut index = generations::generation_name(alias, now);
    // Two runs within one second: the next free second.
    while generations
        .iter()
        .any(|g| generations::generation_time(alias, &g.index).is_some() && g.index >= index)
    {
        now += chrono::Duration::seconds(1);
        index = generations::generation_name(alias, now);
    }
    let estimate = write_model.estimate(&KeyRange::all()).await;
    let keep: Vec<&str> = generations::newest_first(generations)
        .into_iter()
        .filter(|g| !g.live && generations::generation_time(alias, &g.index).is_some())
        .map(|g| g.index.as_str())
        .collect();
    let mut plan = format!(
        "plan: rebuild {alias} (now {}) into {index} from {} (about {} rows)\n  load in {} with refresh off \
         and no replicas, then restore them\n  catch up on rows changed since the load's snapshot (margin {}), \
         check ({}) and repair {index} until at most {} ({} passes at most)\n  swap \
         {alias} to {index} in {}, then a last conditional pass",
        if from.is_empty() {
            "nothing".to_string()
        } else {
            from.join(",")
        },
        write_model.describe(),
        estimate.map(|e| e.to_string()).unwrap_or_else(|| "?".into()),
        plural(options.parallel, "range", "ranges"),
        humantime::format_duration(options.margin),
        match options.gate {
            Gate::Fingerprints => "by the load's fingerprints and a key scan",
            Gate::Full => "a full check per pass",
        },
        plural(options.max_drift, "key drifts", "keys drift"),
        MAX_PASSES,
        rebuild::SWAP_CALL,
    );
    if adopt {
        plan.push_str(&format!(
            "\n  --adopt: the concrete index {alias} is DELETED in the same call and {alias} becomes an alias; \
             there is no generation to roll back to"
        ));
    } else {
        let doomed: Vec<&str> = keep.iter().skip(options.keep.saturating_sub(1)).copied().collect();
        plan.push_str(&format!(
            "\n  keep {}{}",
            plural(options.keep, "older generation", "older generations"),
            if doomed.is_empty() {
                String::new()
            } else {
                format!("; delete {}", doomed.join(", "))
            }
        ));
    }
    if options.progress != ProgressMode::Off || !options.yes {
        crate::note!("{plan}");
    }
    if !confirm(&format!("Rebuild {alias} into {index}?"), options.yes)? {
        crate::note!("recon: not confirmed; nothing was changed");
        return Ok(None);
    }
    let ranges = if options.parallel > 1 {
        write_model.split(&KeyRange::all(), options.parallel as usize).await?
    } else {
        vec![KeyRange::all()]
    };
    let state = ReindexState {
        phase: Phase::Loading,
        watermark: None,
        watermark_ms: None,
        caught_up_ms: None,
        ranges: ranges.iter().map(RangeProgress::of).collect(),
        source_index,
        alias: alias.to_string(),
        adopt,
        started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        restore: Map::new(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        scratch: Some(format!("{:016x}", rand::random::<u64>())),
    };
    let restore = rebuild::create_generation(client, &index, &flat, &mappings, &state).await?;
    let state = ReindexState { restore, ..state };
    state::save(client, &index, &state).await?;
    options.say(format!("created {index}"));
    Ok(Some(Build { index, state, from }))
}

/// Load (or its rest), catch up, verify, swap, last pass, prune: whatever the build still lacks.
async fn finish_build(
    client: &EsClient,
    settings: &Settings,
    alias: &str,
    options: &ReindexOptions,
    write_model: &PostgresSource,
    build: Build,
) -> anyhow::Result<Outcome> {
    let Build { index, mut state, from } = build;
    let writer = BulkWriter::new(client.clone(), BulkSettings::default());
    let mut pass = Pass::default();
    let comparator = Comparator::new(&settings.compare).context("invalid [compare] rules")?;
    // The load's fingerprints live in a directory of this machine's temp dir until the reindex ends.
    let scratch = state
        .scratch
        .as_deref()
        .filter(|_| options.gate == Gate::Fingerprints)
        .map(|token| fingerprints::dir_for(&index, token));
    let mut fingerprints = None;
    if state.phase == Phase::Loading {
        // A fresh snapshot, also when resuming: rows changed since the ORIGINAL watermark are caught up
        // below, so the keys loaded before the crash need no second look.
        let snapshot = write_model.export_snapshot().await?;
        if state.watermark_ms.is_none() {
            say_horizon(options, &snapshot);
            state.watermark_ms = Some(snapshot.horizon_ms());
            state.watermark = Some(rfc3339_ms(snapshot.horizon_ms()));
            state::save(client, &index, &state).await?;
        }
        options.say(format!(
            "loading {index} from the snapshot of {} (watermark {})",
            rfc3339_ms(snapshot.snapshot_ms()),
            state.watermark.as_deref().unwrap_or("-")
        ));
        let clock = std::time::Instant::now();
        let loader = load::Loader {
            write_model,
            writer: writer.clone(),
            client: client.clone(),
            index: index.clone(),
            in_flight: if options.parallel > 1 { 2 } else { 3 },
            progress: options.progress != ProgressMode::Off,
            fail_after_batches: hooks::fail_after_batches(),
            fingerprint: scratch.clone().map(|dir| (comparator.clone(), dir)),
        };
        let (loaded_state, mut loaded) = loader.load(state, &snapshot).await?;
        fingerprints = loaded.fingerprints.take().map(Arc::new);
        drop(snapshot);
        state = loaded_state;
        pass.loaded = loaded.docs;
        pass.load_failed = loaded.failed;
        options.say(format!(
            "loaded {} in {:.1} s{}",
            plural(loaded.docs, "document", "documents"),
            clock.elapsed().as_secs_f64(),
            if loaded.failed > 0 {
                format!("; {} refused (first: {})", loaded.failed, loaded.failures.join("; "))
            } else {
                String::new()
            }
        ));
        rebuild::restore_settings(client, &index, &state.restore).await?;
        state.phase = Phase::CatchingUp;
        state::save(client, &index, &state).await?;
        hooks::failpoint("load");
        hooks::hold("AFTER_LOAD").await?;
    }
    let watermark = state
        .watermark_ms
        .context("the generation's _meta has no watermark; discard it (--discard)")?;
    let margin = options.margin.as_millis() as i64;
    let generation = connect_generation(settings, &index).await?;
    let catch_up = CatchUp {
        write_model,
        generation: &generation,
        comparator: &comparator,
        ignore: &settings.compare.ignore,
        writer: &writer,
        index: &index,
    };
    let live = match generations::resolve(client, alias).await? {
        Target::Alias { indices } => indices.contains(&index),
        _ => false,
    };
    if !live {
        // Resumed after its load: the fingerprints the load left are whole.
        if let (None, Some(dir)) = (&fingerprints, &scratch) {
            let ranges: Vec<KeyRange> = state.ranges.iter().map(RangeProgress::range).collect();
            fingerprints = fingerprints::reopen(dir, &ranges)?.map(Arc::new);
        }
        if options.gate == Gate::Fingerprints && fingerprints.is_none() {
            options.say(
                "no fingerprints of the load on this machine (it ran elsewhere, or before a reboot): the verify \
                 gate checks in full",
            );
        }
        let passed = verify(
            settings,
            options,
            &catch_up,
            fingerprints.as_ref(),
            &mut state,
            &mut pass,
            watermark,
        )
        .await?;
        if !passed {
            state.phase = Phase::VerifyFailed;
            state::save(client, &index, &state).await?;
            summary(
                options,
                "verify_failed",
                alias,
                &index,
                from.first().map(String::as_str),
                &pass,
                &Written::default(),
            )?;
            crate::note!(
                "recon: warning: the verify gate kept {alias} where it was; inspect {index} (`{}`), then `{}` or `{}`",
                options.rerun.command("check", Some(&index), ""),
                options.command("--resume --yes"),
                options.command("--discard --yes")
            );
            return Ok(Outcome::Drift);
        }
        hooks::failpoint("verify");
        hooks::hold("BEFORE_SWAP").await?;
        state.phase = Phase::Swapped;
        state::save(client, &index, &state).await?;
        rebuild::swap_alias(client, alias, &from, &index, state.adopt).await?;
        options.say(format!("swapped {alias} → {index}"));
        hooks::failpoint("swap");
    }
    if !state.adopt {
        for old in from.iter().filter(|i| *i != &index) {
            state::set_phase(client, old, Phase::Retired).await?;
        }
    }
    // The last pass: rows changed since the last check; the projector writes here too now.
    let since = state.caught_up_ms.unwrap_or(watermark) - margin;
    catch_up.refresh().await?;
    let keys = catch_up.changed_since(since).await?;
    let last = catch_up.repair_all(&keys).await?;
    // Searches (the next check) see the last pass at once, not a refresh interval later.
    catch_up.refresh().await?;
    options.say(format!(
        "last pass: {} since {}: {} written, {} left to the projector, {} already right",
        plural(keys.len(), "row changed", "rows changed"),
        rfc3339_ms(since),
        last.applied,
        last.conflicts,
        last.skipped
    ));
    state.phase = Phase::Live;
    state::save(client, &index, &state).await?;
    drop(fingerprints);
    fingerprints::remove_dir(&index, state.scratch.as_deref());
    if !state.adopt {
        prune(client, alias, &index, options).await?;
    }
    summary(
        options,
        "swapped",
        alias,
        &index,
        from.first().map(String::as_str),
        &pass,
        &last,
    )?;
    if last.failed > 0 {
        crate::note!(
            "recon: warning: {} of the last pass failed ({}); run `{}`",
            plural(last.failed, "write", "writes"),
            last.failures.join("; "),
            options.rerun.command("check", Some(alias), ""),
        );
    }
    Ok(Outcome::InSync)
}

/// Catch-up and check passes until at most `--max-drift` keys drift; false when the gate stays shut.
///
/// Each pass re-projects the rows changed since the previous one, then checks the whole generation:
/// with the load's `fingerprints` when there are some (see [`fingerprints`]), else with a full check.
/// The drifted keys are parked on disk, repaired, and compared again by key; the gate opens once at
/// most `--max-drift` of them still drift.
async fn verify(
    settings: &Settings,
    options: &ReindexOptions,
    catch_up: &CatchUp<'_>,
    fingerprints: Option<&Arc<Fingerprints>>,
    state: &mut ReindexState,
    pass: &mut Pass,
    watermark: i64,
) -> anyhow::Result<bool> {
    let margin = options.margin.as_millis() as i64;
    let client = catch_up.generation.client();
    let mut check_settings = settings.clone();
    check_settings.elasticsearch.index = catch_up.index.to_string();
    // Every key re-projected since the watermark: their fingerprints are stale.
    let mut changed = Arc::new(KeyFile::empty()?);
    for n in 1..=MAX_PASSES {
        pass.passes = n;
        let started = pg_horizon(catch_up.write_model, options).await?;
        let since = state.caught_up_ms.unwrap_or(watermark) - margin;
        let keys = catch_up.changed_since(since).await?;
        let written = catch_up.reproject_all(&keys).await?;
        options.say(format!(
            "pass {n}: re-projected {} since {} ({} written)",
            plural(keys.len(), "row changed", "rows changed"),
            rfc3339_ms(since),
            written.applied
        ));
        catch_up.refresh().await?;
        // Rows changed since this pass started are the next pass's (or the last pass's): pending here.
        let pending_since = started - margin;
        let clock = std::time::Instant::now();
        let sides = connect_sides_with(&check_settings, options.parallel).await?;
        // On disk: a mapping that refuses most documents makes most keys drift. In key order, as both
        // ways of checking hand drift over.
        let mut drifted = KeyFileWriter::new().context("cannot create a temporary file for the drifted keys")?;
        let mut on_drift = |drift: &Drift| {
            if drift.kind != DriftKind::Pending {
                drifted.push(&drift.key)?;
            }
            Ok(())
        };
        let summary = match fingerprints {
            Some(fingerprints) => 'sift: {
                changed = Arc::new(changed.union(&keys)?);
                let sifted = sift_ranges(catch_up, fingerprints, &changed, options, n).await?;
                let settled: u64 = sifted.iter().map(|s| s.settled).sum();
                let candidates: u64 = sifted.iter().map(|s| s.candidates.len()).sum();
                if candidates > LOOKUPS_AT_MOST.max((settled + candidates) / 5) {
                    // Most of the generation is suspect (a mapping that refuses documents, an ingest
                    // pipeline): one scan of both sides is cheaper than looking each key up.
                    options.say(format!(
                        "pass {n}: {candidates} of {} not proven by their fingerprint; checking in full, cheaper \
                         than looking each one up",
                        plural(settled + candidates, "key", "keys")
                    ));
                    break 'sift None;
                }
                let mut summary = Summary::default();
                pass.gate = Some(Gate::Fingerprints.as_str());
                pass.settled = settled;
                pass.compared = candidates;
                // The lookups read the candidates again; the key scans and the index scans saw them all.
                let rows = sifted.iter().map(|s| s.rows).sum();
                let documents = sifted.iter().map(|s| s.documents).sum();
                summary.matched = pass.settled;
                for range in sifted {
                    let compared =
                        compare_keys(&sides, catch_up, range.candidates, pending_since, &mut on_drift).await?;
                    summary += &compared;
                }
                summary.source_rows = rows;
                summary.target_docs = documents;
                Some(summary)
            }
            None => None,
        };
        let summary = match summary {
            Some(summary) => summary,
            None => {
                let grace = grace_since(catch_up.write_model, pending_since).await?;
                let mut scope = ScanScope::serial(KeyRange::all(), Some(grace), ProgressMode::Off);
                scope.parallel = options.parallel as usize;
                let scanned = scan(&sides, catch_up.comparator.clone(), &scope, &mut on_drift).await?;
                if scanned.interrupted {
                    bail!("interrupted during the check of {}", catch_up.index);
                }
                pass.gate = Some(Gate::Full.as_str());
                pass.settled = 0;
                pass.compared = scanned.summary.source_rows.max(scanned.summary.target_docs);
                scanned.summary
            }
        };
        let drifted = drifted.finish()?;
        pass.found = summary.failing();
        pass.failing = pass.found;
        pass.pending = summary.pending;
        state.caught_up_ms = Some(started);
        state::save(client, catch_up.index, state).await?;
        let how = match pass.gate {
            Some("fingerprints") => format!(
                " ({} by the load's fingerprints, {} compared in full)",
                pass.settled, pass.compared
            ),
            _ => " (full check)".to_string(),
        };
        options.say(format!(
            "pass {n}: checked {} in {:.1} s{how}: {}, {}, {}, {} pending (changed since the pass began)",
            catch_up.index,
            clock.elapsed().as_secs_f64(),
            plural(summary.source_rows, "row", "rows"),
            plural(summary.target_docs, "document", "documents"),
            plural(pass.found, "key drifts", "keys drift"),
            pass.pending
        ));
        if !drifted.is_empty() {
            let count = drifted.len();
            let mut repaired = Written::default();
            for chunk in drifted.chunks(REPAIR_CHUNK)? {
                repaired.merge(catch_up.repair(&chunk?).await?);
            }
            // The repairs verified: the drifted keys compared again, both sides read by key. What
            // still drifts (a write refused, a document changed on its way in) blocks the gate.
            catch_up.refresh().await?;
            let after = compare_keys(&sides, catch_up, drifted, pending_since, |_| Ok(())).await?;
            pass.failing = after.failing();
            options.say(format!(
                "pass {n}: repaired {} of {count} drifted keys ({} failed); {} still drift",
                repaired.applied, repaired.failed, pass.failing
            ));
        }
        if pass.failing <= options.max_drift {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A grace period that makes rows changed at or after `pending_since` (PostgreSQL time) pending now.
async fn grace_since(write_model: &PostgresSource, pending_since: i64) -> anyhow::Result<Duration> {
    Ok(Duration::from_millis(
        (pg_now(write_model).await? - pending_since).max(0) as u64,
    ))
}

/// `recon check --keys` over `keys` of the new generation: both sides read by key and compared, rows
/// changed at or after `pending_since` pending; the drift goes to `on_drift`.
async fn compare_keys(
    sides: &Sides,
    catch_up: &CatchUp<'_>,
    keys: KeyFile,
    pending_since: i64,
    on_drift: impl FnMut(&Drift) -> anyhow::Result<()>,
) -> anyhow::Result<Summary> {
    if keys.is_empty() {
        return Ok(Summary::default());
    }
    let grace = grace_since(catch_up.write_model, pending_since).await?;
    let mut scope = ScanScope::serial(KeyRange::all(), Some(grace), ProgressMode::Off);
    scope.keys = Some(Arc::new(keys));
    let scanned = scan(sides, catch_up.comparator.clone(), &scope, on_drift).await?;
    if scanned.interrupted {
        bail!("interrupted during the check of {}", catch_up.index);
    }
    Ok(scanned.summary)
}

/// The fingerprint sift of every range of the load, each on a task of its own (the ranges of a
/// `--parallel` load are sifted concurrently), all in one point in time of the generation; the results
/// in range order.
async fn sift_ranges(
    catch_up: &CatchUp<'_>,
    fingerprints: &Arc<Fingerprints>,
    changed: &Arc<KeyFile>,
    options: &ReindexOptions,
    n: u32,
) -> anyhow::Result<Vec<Sifted>> {
    let sifted = Arc::new(AtomicU64::new(0));
    let ticker = (options.progress != ProgressMode::Off).then(|| {
        let (sifted, total) = (sifted.clone(), fingerprints.len());
        let clock = std::time::Instant::now();
        AbortOnDrop(tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let done = sifted.load(Ordering::Relaxed);
                crate::note!(
                    "recon: pass {n}: verified {done} of about {total} keys ({:.0}/s)",
                    done as f64 / clock.elapsed().as_secs_f64()
                );
            }
        }))
    });
    let generation = catch_up.generation;
    let parts = fingerprints.parts().len();
    // Several parts read one view of the generation.
    let view = if parts > 1 { generation.open_view().await? } else { None };
    // Dropped on any error: aborts the tasks still running.
    let mut tasks = tokio::task::JoinSet::new();
    let mut results: Vec<Option<Sifted>> = (0..parts).map(|_| None).collect();
    let run = async {
        for (i, part) in fingerprints.parts().iter().enumerate() {
            let documents = generation
                .open_scan_in(part.range().clone(), view.as_deref())
                .await?
                .docs;
            let rows = catch_up.write_model.key_stream(part.range().clone());
            let (fingerprints, changed) = (fingerprints.clone(), changed.clone());
            let (comparator, sifted) = (catch_up.comparator.clone(), sifted.clone());
            tasks.spawn(async move {
                let part = &fingerprints.parts()[i];
                let outcome = fingerprints::sift(part, &changed, rows, documents, &comparator, &sifted).await;
                (i, outcome)
            });
        }
        while let Some(joined) = tasks.join_next().await {
            let (i, sifted) = joined.context("a verify task failed")?;
            results[i] = Some(sifted?);
        }
        anyhow::Ok(())
    }
    .await;
    drop(tasks);
    drop(ticker);
    if let Some(view) = view {
        generation.close_view(view).await;
    }
    run?;
    Ok(results.into_iter().flatten().collect())
}

/// A task aborted when this is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Deletes the generations older than the live one beyond `--keep`.
async fn prune(client: &EsClient, alias: &str, live: &str, options: &ReindexOptions) -> anyhow::Result<()> {
    let generations = generations::list(client, alias).await?;
    let older: Vec<&Generation> = generations::newest_first(&generations)
        .into_iter()
        .skip_while(|g| g.index != live)
        .filter(|g| !g.live && generations::generation_time(alias, &g.index).is_some())
        .collect();
    for g in older.into_iter().skip(options.keep) {
        rebuild::delete_generation(client, &g.index).await?;
        options.say(format!("deleted {} (beyond --keep {})", g.index, options.keep));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pasted_commands_carry_the_overrides_quoted_and_no_password() {
        let rerun = Rerun {
            config: PathBuf::from("conf/my recon.toml"),
            pg_url: Some("postgres://app:s3cret@db:5432/shop".into()),
            es_url: Some("http://es:9200".into()),
            index: Some("orders_new".into()),
        };
        assert_eq!(
            rerun.command("reindex", None, "--resume --yes"),
            "recon reindex --config 'conf/my recon.toml' --pg-url 'postgres://app:***@db:5432/shop' \
             --es-url http://es:9200 --index orders_new --resume --yes"
        );
        assert_eq!(
            rerun.command("check", Some("orders-20260101t000000z"), ""),
            "recon check --config 'conf/my recon.toml' --pg-url 'postgres://app:***@db:5432/shop' \
             --es-url http://es:9200 --index orders-20260101t000000z"
        );
        let plain = Rerun {
            config: PathBuf::from("recon.toml"),
            ..Rerun::default()
        };
        assert_eq!(
            plain.command("reindex", None, "--list"),
            "recon reindex --config recon.toml --list"
        );
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a$b"), "'a$b'");
    }

    /// Calls `visit` with every Rust file under `dir` and its text.
    pub(super) fn each_source_file(dir: &std::path::Path, visit: &mut dyn FnMut(&std::path::Path, &str)) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                each_source_file(&path, visit);
            } else if path.extension().is_some_and(|e| e == "rs") {
                visit(&path, &std::fs::read_to_string(&path).unwrap());
            }
        }
    }

    /// Reindex and the demo say what they do ("create the next generation", "swap the alias"); every
    /// REST call, and the `elasticsearch` crate, is under src/source/elasticsearch/.
    #[test]
    fn reindex_and_demo_build_no_rest_call_of_their_own() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let forbidden = [
            "Method::",
            "http::Method",
            "/_",
            "seq_no",
            "primary_term",
            "search_after",
        ];
        let mut found = Vec::new();
        let mut visit = |path: &std::path::Path, text: &str| {
            // The product's code, not its unit tests (this one names what it looks for).
            let code = text.split("\n#[cfg(test)]\nmod tests").next().unwrap_or_default();
            for (n, line) in code.lines().enumerate() {
                // The crate, not this crate's `source::elasticsearch` module.
                let uses_crate = line
                    .match_indices("elasticsearch::")
                    .any(|(at, _)| !line[..at].ends_with("::"));
                if uses_crate || forbidden.iter().any(|word| line.contains(word)) {
                    found.push(format!("{}:{}: {line}", path.display(), n + 1));
                }
            }
        };
        each_source_file(&src.join("reindex"), &mut visit);
        for file in ["commands/demo.rs", "commands/reindex.rs"] {
            visit(&src.join(file), &std::fs::read_to_string(src.join(file)).unwrap());
        }
        assert_eq!(found, Vec::<String>::new());
    }
}
