//! Command-line interface. These types only describe the flags; `commands` turns them into settings.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// recon keeps a CQRS read model honest.
///
/// It streams the expected documents out of PostgreSQL (the write model) and the actual ones out of
/// Elasticsearch (the read model), both sorted by key, merge-joins them, diffs them field by field and
/// reports drift: missing, orphaned, mismatched and duplicate documents.
#[derive(Debug, Parser)]
#[command(name = "recon", version = env!("RECON_VERSION"), about, long_about, propagate_version = true)]
#[command(
    after_help = "Start with `recon demo` to see a check on an embedded shop; see docs/configuration.md \
                        for recon.toml.\nExit codes: 0 in sync, 1 drift found, 2 error, 130 interrupted."
)]
pub struct Cli {
    /// How messages on stderr are written: text, plain (never a timestamp) or json.
    ///
    /// text: `recon: …` lines, each after an RFC 3339 UTC timestamp when stderr is not a terminal; plain:
    /// the same lines, never a timestamp (journald stamps each line itself); json: one JSON object per
    /// line (timestamp, level, target, message and the event's fields), for a log pipeline.
    #[arg(
        long,
        global = true,
        value_enum,
        value_name = "FORMAT",
        default_value = "text",
        env = "RECON_LOG_FORMAT"
    )]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Plain,
    Json,
}

impl From<LogFormat> for crate::logging::LogFormat {
    fn from(f: LogFormat) -> Self {
        match f {
            LogFormat::Text => crate::logging::LogFormat::Text,
            LogFormat::Plain => crate::logging::LogFormat::Plain,
            LogFormat::Json => crate::logging::LogFormat::Json,
        }
    }
}

// Parsed once per process; boxing the big flag set would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compare the read model with the write model and report drift (never writes).
    #[command(long_about = "Compare the read model with the write model and report drift.\n\n\
        Reads PostgreSQL in one REPEATABLE READ, READ ONLY transaction (one snapshot for the whole run) and \
        Elasticsearch through a point in time, both in key order and concurrently, and diffs every document. \
        check never writes to either side.\n\n\
        Exit codes: 0 no drift (or no more failing keys than --allow), 1 drift, 2 error, 130 interrupted.")]
    Check(CheckArgs),
    /// Show why keys drift: both sides side by side, rules and metadata (never writes).
    #[command(
        long_about = "Show why keys drift: both sides' documents side by side, with the rules and metadata.\n\n\
        For each KEY, looks up the expected document (the projection, in a READ ONLY transaction of its own) \
        and the actual document(s) in the read model, and judges them exactly as `recon check` does: in \
        sync, missing, orphaned, mismatched (at which paths) or duplicate; a key on neither side says so. \
        Then shows every path of both documents side by side, the differing ones marked, each with the \
        compare rule it is judged by (exact, instant, number with its tolerance, set by key, ignored), and \
        what both sides say about their documents: the row's postgres.updated_at and its age; each \
        document's id, version and location in the read model. explain never writes.\n\n\
        Keys are given as the write model's key column holds them (integers or text).\n\n\
        Examples:\n  recon explain 10408\n  recon explain 10408 10411 --format json | jq .data.differences\n  \
        jq -r '.drift[].key | select(. != null)' report.json | recon explain --keys-file -\n\n\
        Exit codes: 0 every key in sync (or on neither side), 1 some key drifts, 2 error."
    )]
    Explain(ExplainArgs),
    /// Run a check on an embedded shop with injected drift, then clean up.
    #[command(
        long_about = "Run a check on an embedded shop with injected drift, then clean up.\n\n\
        Starts a throwaway PostgreSQL from the system's server binaries and recon's Elasticsearch-API emulator \
        in-process, loads a small shop (customers, products, orders, order lines), projects it into the read \
        model, injects drift of every kind, runs `recon check` and prints its report. Nothing outside a \
        temporary directory is touched."
    )]
    Demo(DemoArgs),
    /// Repair the drift a check finds, with conditional writes and an undo log (dry run by default).
    #[command(
        long_about = "Repair the drift a check finds, with conditional writes and an undo log.\n\n\
        Without --apply, prints the plan and writes nothing. Keys come from a check run now (the default), \
        from a report (--from-report), from --keys/--keys-file, or from a saved plan (--from-plan). Every key \
        is re-verified on both sides at repair time. Missing documents are created (op_type=create), \
        mismatched ones rewritten only over the version that was compared (sequence number and primary term \
        on Elasticsearch, a hash of the value compared and written in one Lua script on Redis), \
        orphans deleted conditionally once PostgreSQL confirms the row is gone, duplicates reduced to the \
        document whose _id is the key. A conflict means someone wrote meanwhile: the key is left alone \
        and reported. Every intended write is appended with its before-image to an audit log and fsynced \
        before it is sent; `recon undo` and `--resume` read it.\n\n\
        --apply asks for confirmation on a terminal; without a terminal it needs --yes.\n\n\
        With --via amqp, http or ndjson recon writes nothing itself: each drifted key becomes one \
        re-projection request (docs/reproject-contract.md) for the projector, published with confirms after \
        the same re-verification, caps, confirmation and audit log; --await then re-checks the requested \
        keys until they converge.\n\n\
        Exit codes: 0 everything planned repaired (or nothing to do; through the projector: every request \
        confirmed and, when awaited, converged), 1 drift remains (dry run, conflicts, failures, requests \
        returned or not converged), 2 error, 130 interrupted (the resume command is printed on stderr)."
    )]
    Repair(RepairArgs),
    /// Undo a repair from its audit log, conditionally (dry run by default).
    #[command(long_about = "Undo a repair from its audit log, conditionally.\n\n\
        Documents the repair created are deleted, documents it overwrote get their old _source back, \
        documents it deleted are created again with their _id and _source, each only if the document is \
        still the version the repair wrote. A document changed since the repair is skipped and reported; one \
        already as it was before the repair (an undo run twice) is left alone, and is no failure. Only the \
        read model's connection is read from the configuration: an undo never reads the write model.\n\n\
        Exit codes: 0 everything undone (or already as before the repair), 1 some documents changed since the \
        repair (or a dry run with something to undo), 2 error, 130 interrupted.")]
    Undo(UndoArgs),
    /// Rebuild the read model into a fresh index, verify it, swap the alias (zero downtime).
    #[command(
        long_about = "Rebuild the read model into a fresh index, verify it, swap the alias.\n\n\
        elasticsearch.index must name an alias. recon creates <alias>-<YYYYMMDDtHHMMSSz> with the mapping and \
        settings of the index behind it (or --mapping FILE), loads the projection in key order with refresh \
        off and no replicas, catches up on rows changed since the load's snapshot (postgres.updated_at), \
        checks the new index and repairs its drift until at most --max-drift keys drift, then moves the \
        alias in one atomic alias update and makes a last conditional catch-up pass. Progress is kept in \
        the new index's _meta: a killed run leaves the alias untouched and can be resumed (--resume) or \
        discarded (--discard). The previous index is kept (--keep) for --rollback.\n\n\
        Asks before acting on a terminal; without a terminal it needs --yes.\n\n\
        Exit codes: 0 swapped (or rolled back, listed), 1 the verify gate failed (alias untouched, new index \
        kept) or not confirmed, 2 error, 130 interrupted (resume with --resume)."
    )]
    Reindex(ReindexArgs),
    /// Check the configuration, both sides and the [compare] rules before a run (fast: no scan).
    #[command(
        long_about = "Check the configuration, both sides and the [compare] rules before a run.\n\n\
        In order, each passed, failed (with what to fix) or skipped when a check it needs failed: the \
        configuration resolves (and where each setting came from; secrets never shown); PostgreSQL is \
        reachable, accepts the login, the projection plans (EXPLAIN, never run) and returns the key column, the \
        key is unique in a sample, a snapshot can be exported (for --parallel), the planner's row estimate; \
        the read model is reachable, accepts the credentials, its product and version, the index or alias \
        exists, the key field's mapping sorts like the write model's key, a point in time opens, and whether \
        the credentials may write (for repair), asked without writing anything; the [compare] rules name \
        fields the projection produces. Nothing is scanned and nothing is written.\n\n\
        Exit codes: 0 every check passed, 2 a check failed (named on stderr) or an error.",
        after_help = "Examples:\n  recon doctor\n  recon doctor --config /etc/recon/orders.toml --format json\n  \
        DATABASE_URL=postgres://recon@db/shop recon doctor --es-url https://es:9200"
    )]
    Doctor(DoctorArgs),
    /// Write a commented recon.toml to start from, or one derived from a table (never overwrites).
    #[command(
        long_about = "Write a commented recon.toml to start from (never overwrites a file).\n\n\
        Without --table: every section and rule, with the defaults shown and comments that explain them \
        (docs/configuration.md is the reference). With --table: a first projection of that table (its \
        columns, named as the index maps them: `ordered_at` becomes `orderedAt` when the index has that \
        field), its primary key as the key, updated_at when there is one, and a [compare] section from the \
        column types (numeric → number, timestamps → instant). Joins of related tables are left to you; the \
        file says which tables are related. Passwords are never written into the file.\n\n\
        Exit codes: 0 written, 2 the file exists or an error.",
        after_help = "Examples:\n  recon init\n  recon init --pg-url postgres://recon@db/shop --table orders --es-url http://es:9200 --index orders\n  \
        recon init orders-redis.toml --pg-url postgres://recon@db/shop --table orders --redis-url redis://cache:6379/0"
    )]
    Init(InitArgs),
    /// Work with check reports: combine shard reports into one.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Print a shell completion script to stdout.
    Completions {
        /// The shell to generate completions for.
        shell: clap_complete::Shell,
    },
    /// Print the man page of recon, or of one of its commands, to stdout (roff: `recon man check | man -l -`).
    Man {
        /// The command whose page to print (check, explain, repair, undo, reindex, doctor, init, demo, report,
        /// completions); recon's own page without one.
        command: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Combine the JSON reports of `recon check --shard K/N` runs into one report for the whole key
    /// space, with the exit code a full run would have had.
    #[command(
        long_about = "Combine the JSON reports of `recon check --shard K/N` runs into one report.\n\n\
        Every shard 1..N must be given exactly once, and their key ranges must tile the key space (no gap, \
        no overlap); otherwise merge fails with exit code 2. Counts are summed, drift lists concatenated in \
        key order. Exit codes: 0 in sync (within the shards' --allow), 1 drift, 2 error."
    )]
    Merge(MergeArgs),
}

#[derive(Debug, Args, Clone)]
pub struct MergeArgs {
    /// The shard reports (`recon check --shard K/N --format json`).
    #[arg(required = true, value_name = "REPORT")]
    pub reports: Vec<PathBuf>,

    /// Report format [default: json].
    #[arg(long, short = 'f', value_enum, value_name = "FORMAT", default_value = "json")]
    pub format: Format,

    /// Write the merged report to FILE (atomically) instead of stdout. Repeatable as FORMAT:FILE for
    /// several reports of the same merge, e.g. `-o json:report.json -o prometheus:recon.prom`; a plain
    /// FILE takes --format.
    #[arg(long, short = 'o', value_name = "[FORMAT:]FILE", value_parser = parse_output)]
    pub output: Vec<OutputArg>,
}

/// Where the configuration is, and the settings a flag may override; shared by check and repair.
#[derive(Debug, Args, Clone)]
pub struct ConnectionArgs {
    /// Configuration file (TOML); see docs/configuration.md.
    #[arg(
        long,
        short = 'c',
        value_name = "FILE",
        default_value = "recon.toml",
        env = "RECON_CONFIG"
    )]
    pub config: PathBuf,

    /// PostgreSQL URL; overrides postgres.url and DATABASE_URL.
    #[arg(long, value_name = "URL")]
    pub pg_url: Option<String>,

    /// Elasticsearch URL; overrides elasticsearch.url and ELASTICSEARCH_URL.
    #[arg(long, value_name = "URL")]
    pub es_url: Option<String>,

    /// Index or alias holding the read model; overrides elasticsearch.index.
    #[arg(long, value_name = "NAME")]
    pub index: Option<String>,

    /// Redis URL (redis:// or rediss://); overrides redis.url and REDIS_URL.
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<String>,
}

impl ConnectionArgs {
    /// Resolves the settings: defaults < file < environment < these flags.
    pub fn load(&self) -> Result<crate::config::Settings, crate::config::ConfigError> {
        self.load_with(self.overrides())
    }

    /// The flags that override the configuration.
    pub fn overrides(&self) -> crate::config::Overrides {
        crate::config::Overrides {
            pg_url: self.pg_url.clone(),
            es_url: self.es_url.clone(),
            es_index: self.index.clone(),
            redis_url: self.redis_url.clone(),
            amqp_url: None,
        }
    }

    /// Resolves the settings with `overrides` (these flags, and a command's own).
    pub fn load_with(
        &self,
        overrides: crate::config::Overrides,
    ) -> Result<crate::config::Settings, crate::config::ConfigError> {
        crate::config::Settings::load(&self.config, &overrides, &|name| std::env::var(name).ok())
    }

    /// Where the run acts, for the commands it prints for the user to paste.
    pub fn target(&self) -> crate::command_line::Target {
        crate::command_line::Target {
            config: self.config.clone(),
            pg_url: self.pg_url.clone(),
            es_url: self.es_url.clone(),
            index: self.index.clone(),
            redis_url: self.redis_url.clone(),
        }
    }
}

/// Flags that choose what is compared and how much is said.
#[derive(Debug, Args, Clone)]
pub struct CheckArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,

    /// Report drift on rows changed within DURATION before the snapshot as `pending` instead of failing
    /// (needs postgres.updated_at), e.g. 30s, 5m.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub grace: Option<Duration>,

    /// Exit 0 as long as at most N keys drift.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub allow: u64,

    /// List at most N drifted keys in the report (counts stay complete).
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,

    /// Report format [default: table on a terminal, json otherwise].
    #[arg(long, short = 'f', value_enum, value_name = "FORMAT")]
    pub format: Option<Format>,

    /// Write the report to FILE (atomically: a complete report or none) instead of stdout. Repeatable as
    /// FORMAT:FILE for several reports of the same run (one snapshot, the same counts), e.g.
    /// `-o junit:report.xml -o markdown:summary.md -o prometheus:recon.prom`; a plain FILE takes --format.
    #[arg(long, short = 'o', value_name = "[FORMAT:]FILE", value_parser = parse_output)]
    pub output: Vec<OutputArg>,

    /// Only warnings and errors on stderr: no progress bars, progress lines or notes.
    #[arg(long, short = 'q')]
    pub quiet: bool,

    /// More on stderr: -v adds debug messages (where each setting came from, what each side is), -vv
    /// trace messages too. RECON_LOG filters finer, e.g. RECON_LOG=recon::source=debug.
    #[arg(long, short = 'v', action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Check only these keys (comma-separated), orphans among them included.
    #[arg(long, value_name = "K1,K2,…", conflicts_with_all = ["keys_file", "since", "shard", "sample"])]
    pub keys: Option<String>,

    /// Check only the keys listed in FILE, one per line (`-` for stdin; `#` starts a comment line).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["since", "shard", "sample"])]
    pub keys_file: Option<PathBuf>,

    /// Check only rows changed since DURATION ago (e.g. 1h) or since TIMESTAMP (RFC 3339), and their
    /// documents (needs postgres.updated_at). Cannot see orphans left by deletes: run a full check too.
    #[arg(long, value_name = "DURATION|TIMESTAMP", conflicts_with_all = ["shard", "sample"])]
    pub since: Option<String>,

    /// After the scan, wait DURATION, then read every drifted key again from both sides and drop the
    /// keys that now agree (reported as converged), e.g. 30s.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub recheck: Option<Duration>,

    /// Split the key space into N ranges of about equal rows and scan them concurrently, all in one
    /// PostgreSQL snapshot and one Elasticsearch point in time.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub parallel: u32,

    /// Check only the K-th of N contiguous key ranges (e.g. 2/8); combine the shards' JSON reports with
    /// `recon report merge`.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<crate::scale::plan::Shard>,

    /// Check a seeded random set of contiguous key ranges covering about FRACTION of the rows (0 < FRACTION
    /// <= 1), and estimate the total drift.
    #[arg(long, value_name = "FRACTION", value_parser = parse_fraction)]
    pub sample: Option<f64>,

    /// Seed for --sample [default: from the clock; the report states it].
    #[arg(long, value_name = "N", requires = "sample")]
    pub sample_seed: Option<u64>,

    /// Record the last key fully compared (and the counts and drift up to it) in FILE as the scan
    /// goes, per range with --parallel, so that `--resume` can continue after a crash or an interrupt.
    /// A finished run removes FILE.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["keys", "keys_file", "since", "sample"])]
    pub checkpoint: Option<PathBuf>,

    /// Continue the run recorded in --checkpoint FILE after its last compared key (every range after
    /// its own), in a new snapshot (the report says how many snapshots it spans); starts from the
    /// beginning when FILE is absent.
    #[arg(long, requires = "checkpoint")]
    pub resume: bool,
}

/// Flags of `recon explain`.
#[derive(Debug, Args, Clone)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,

    /// The keys to explain, as the write model's key column holds them.
    #[arg(value_name = "KEY", required_unless_present = "keys_file")]
    pub keys: Vec<String>,

    /// Explain the keys listed in FILE too, one per line (`-` for stdin; `#` starts a comment line).
    #[arg(long, value_name = "FILE")]
    pub keys_file: Option<PathBuf>,

    /// Output: columns for a person, or one `recon.explain/v1` JSON object per key and line.
    #[arg(long, short = 'f', value_enum, value_name = "FORMAT", default_value = "human")]
    pub format: ExplainFormat,

    /// More on stderr: -v adds debug messages (where each setting came from, which sides are read), -vv
    /// trace messages too. RECON_LOG filters finer, e.g. RECON_LOG=recon::source=debug.
    #[arg(long, short = 'v', action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// Flags of `recon repair`.
#[derive(Debug, Args, Clone)]
pub struct RepairArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,

    /// Leave rows changed within DURATION alone (the projector may not have caught up), e.g. 5m.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub grace: Option<Duration>,

    /// Repair the keys listed in a `recon check` JSON or NDJSON report (each re-verified first).
    #[arg(long, value_name = "FILE", group = "keys_from")]
    pub from_report: Option<PathBuf>,

    /// Repair these keys (comma-separated), re-verified first.
    #[arg(long, value_name = "K1,K2", value_delimiter = ',', group = "keys_from")]
    pub keys: Option<Vec<String>>,

    /// Repair the keys in FILE, one per line (`-` for stdin; `#` starts a comment line), as `recon
    /// check --keys-file` reads them.
    #[arg(long, value_name = "FILE", group = "keys_from")]
    pub keys_file: Option<PathBuf>,

    /// Apply a plan written earlier with --plan; anything written since it was made conflicts.
    #[arg(long, value_name = "FILE", group = "keys_from")]
    pub from_plan: Option<PathBuf>,

    /// Finish an interrupted repair from its audit log, without repeating applied actions.
    #[arg(long, value_name = "AUDIT", group = "keys_from")]
    pub resume: Option<PathBuf>,

    /// Write to the read model (without it, only the plan is shown).
    #[arg(long)]
    pub apply: bool,

    /// Do not ask for confirmation (required with --apply when stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,

    /// Write the whole plan to FILE (NDJSON); apply it later with --from-plan.
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,

    /// replace: write the whole projected document, keeping compare.ignore fields; patch: update only
    /// the differing top-level fields.
    #[arg(long, value_enum, default_value = "replace")]
    pub mode: RepairMode,

    /// Refuse to apply a plan of more than N writes.
    #[arg(long, value_name = "N", default_value_t = crate::repair::DEFAULT_MAX_CHANGES)]
    pub max_changes: u64,

    /// Refuse to apply a plan of more than N deletes.
    #[arg(long, value_name = "N", default_value_t = crate::repair::DEFAULT_MAX_DELETES)]
    pub max_deletes: u64,

    /// The write-ahead audit log [default: recon-repair-YYYYMMDDTHHMMSSZ.ndjson in the current directory].
    #[arg(long, value_name = "FILE")]
    pub audit: Option<PathBuf>,

    /// Most documents per bulk request.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub batch_size: usize,

    /// Most bytes per bulk request, e.g. 5MB, 512KB.
    #[arg(long, value_name = "SIZE", default_value = "5MB", value_parser = parse_bytes)]
    pub batch_bytes: usize,

    /// Bulk requests in flight at once.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub concurrency: usize,

    /// Most documents written (or re-projection requests published) per second.
    #[arg(long, value_name = "DOCS")]
    pub max_rate: Option<f64>,

    /// How the repair reaches the read model. write: conditional writes by recon itself. amqp, http,
    /// ndjson: re-projection requests to the projector ([publish] in the configuration;
    /// docs/reproject-contract.md), which then writes the read model itself.
    #[arg(long, value_enum, value_name = "HOW", default_value = "write")]
    pub via: Via,

    /// AMQP broker URL (amqp:// or amqps://) for --via amqp; overrides publish.url and AMQP_URL.
    #[arg(long, value_name = "URL")]
    pub amqp_url: Option<String>,

    /// With --via amqp: declare the exchange (durable, type topic) when it does not exist, instead of
    /// stopping. Never a queue: until the projector binds one, every request comes back unroutable.
    #[arg(long)]
    pub declare: bool,

    /// With --via amqp: append the requests the broker could not route (NDJSON, with the reason) to FILE.
    #[arg(long, value_name = "FILE")]
    pub dead_letter: Option<PathBuf>,

    /// With --via ndjson: write the messages to FILE (appended) instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// With --via amqp|http|ndjson: after the confirms, re-check the requested keys until each has
    /// converged or DURATION has passed [default: 5m; 0 with --via ndjson]. 0 ends the run after the
    /// confirms.
    #[arg(long = "await", value_name = "DURATION", value_parser = parse_duration)]
    pub await_for: Option<Duration>,

    /// Summary format on stdout.
    #[arg(long, short = 'f', value_enum, default_value = "text")]
    pub format: SummaryFormat,

    /// Only warnings and errors on stderr: no progress bars, progress lines or notes.
    #[arg(long, short = 'q')]
    pub quiet: bool,

    /// More on stderr: -v adds debug messages (where each setting came from, what each side is), -vv
    /// trace messages too. RECON_LOG filters finer, e.g. RECON_LOG=recon::source=debug.
    #[arg(long, short = 'v', action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// Flags of `recon reindex`.
#[derive(Debug, Args, Clone)]
pub struct ReindexArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,

    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,

    /// Create the new index with the mappings in FILE (JSON: the `mappings` object, or a body with
    /// `mappings` and optionally `settings`) instead of copying them from the current index.
    #[arg(long, value_name = "FILE")]
    pub mapping: Option<PathBuf>,

    /// Swap only when at most N keys of the new index still drift after a verify pass's repair.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub max_drift: u64,

    /// How the verify gate checks the new index before the swap. `fingerprints`: against the
    /// documents the load sent (a 128-bit fingerprint each, kept in the temp dir), the rows changed
    /// since (by updated_at) and a key-only scan of the write model for deletes; every key that is not
    /// proven equal that way is compared in full, as `recon check --keys` does. `full`: a whole `recon
    /// check` of the new index per pass, which reads the projection again (a reindex of 1M orders took
    /// 1.5x as long) and also catches rows changed without an updated_at bump. A run resumed on another
    /// machine (the fingerprints stay in the temp dir of the one that loaded) verifies in full.
    #[arg(long, value_enum, value_name = "GATE", default_value = "fingerprints")]
    pub verify: Gate,

    /// Older generations to keep after a successful swap (the rest are deleted).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub keep: usize,

    /// Rows changed this long before a pass's snapshot are re-projected again by the next pass
    /// (covers transactions that commit after their updated_at), e.g. 5m.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub catch_up_margin: Duration,

    /// Point the alias back at the newest older generation (one atomic alias update).
    #[arg(long, conflicts_with_all = ["list", "adopt", "mapping", "resume", "discard"])]
    pub rollback: bool,

    /// List the generations of the alias: doc counts, creation times, phase, which one is live.
    #[arg(long, conflicts_with_all = ["adopt", "mapping", "resume", "discard"])]
    pub list: bool,

    /// elasticsearch.index names a concrete index: rebuild it into a generation and replace it by an
    /// alias of the same name (the concrete index is deleted in the same atomic call).
    #[arg(long)]
    pub adopt: bool,

    /// Load N key ranges concurrently, all in one PostgreSQL snapshot.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub parallel: u32,

    /// Continue the unfinished reindex found at start (load from its last key, original watermark).
    #[arg(long, conflicts_with = "discard")]
    pub resume: bool,

    /// Delete the unfinished reindex found at start, then start a new one.
    #[arg(long)]
    pub discard: bool,

    /// Output of --list and of the final summary on stdout.
    #[arg(long, short = 'f', value_enum, default_value = "text")]
    pub format: SummaryFormat,

    /// Only warnings and errors on stderr: no progress lines or notes.
    #[arg(long, short = 'q')]
    pub quiet: bool,

    /// More on stderr: -v adds debug messages (where each setting came from, what each side is), -vv
    /// trace messages too. RECON_LOG filters finer, e.g. RECON_LOG=recon::source=debug.
    #[arg(long, short = 'v', action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// Flags of `recon undo`.
#[derive(Debug, Args, Clone)]
pub struct UndoArgs {
    /// The repair's audit log.
    #[arg(value_name = "AUDIT")]
    pub log: PathBuf,

    /// Configuration file (TOML); see docs/configuration.md.
    #[arg(
        long,
        short = 'c',
        value_name = "FILE",
        default_value = "recon.toml",
        env = "RECON_CONFIG"
    )]
    pub config: PathBuf,

    /// Elasticsearch URL; overrides elasticsearch.url and ELASTICSEARCH_URL.
    #[arg(long, value_name = "URL")]
    pub es_url: Option<String>,

    /// Redis URL (redis:// or rediss://); overrides redis.url and REDIS_URL.
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<String>,

    /// Write to the read model (without it, only what would be undone is shown).
    #[arg(long)]
    pub apply: bool,

    /// Do not ask for confirmation (required with --apply when stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,

    /// The undo's own audit log [default: recon-undo-YYYYMMDDTHHMMSSZ.ndjson in the current directory].
    #[arg(long, value_name = "FILE")]
    pub audit: Option<PathBuf>,

    /// Most documents written per second.
    #[arg(long, value_name = "DOCS")]
    pub max_rate: Option<f64>,

    /// Summary format on stdout.
    #[arg(long, short = 'f', value_enum, default_value = "text")]
    pub format: SummaryFormat,

    /// More on stderr: -v adds debug messages (where each setting came from), -vv trace messages too.
    #[arg(long, short = 'v', action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// Flags of `recon doctor`.
#[derive(Debug, Args, Clone)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,

    /// human: a checklist (✔/✘ on a terminal, ok/FAIL elsewhere); json: one recon.doctor/v1 document.
    #[arg(long, short = 'f', value_enum, value_name = "FORMAT", default_value = "human")]
    pub format: DoctorFormat,
}

/// `doctor --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DoctorFormat {
    Human,
    Json,
}

/// Flags of `recon init`.
#[derive(Debug, Args, Clone)]
pub struct InitArgs {
    /// The file to write; it must not exist.
    #[arg(value_name = "PATH", default_value = "recon.toml")]
    pub path: PathBuf,

    /// Derive the projection from this table (`orders`, or `schema.orders`).
    #[arg(long, value_name = "NAME")]
    pub table: Option<String>,

    /// The key column [default: the table's primary key].
    #[arg(long, value_name = "COLUMN", requires = "table")]
    pub key: Option<String>,

    /// PostgreSQL URL of the table's database; overrides DATABASE_URL. Its password is not written.
    #[arg(long, value_name = "URL")]
    pub pg_url: Option<String>,

    /// Elasticsearch URL whose index mapping names the fields; overrides ELASTICSEARCH_URL.
    #[arg(long, value_name = "URL", conflicts_with = "redis_url")]
    pub es_url: Option<String>,

    /// The index or alias of the read model [default: the table's name].
    #[arg(long, value_name = "NAME", conflicts_with = "redis_url")]
    pub index: Option<String>,

    /// Write a [redis] read model at this URL instead of [elasticsearch].
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<String>,
}

#[derive(Debug, Args, Clone)]
pub struct DemoArgs {
    /// Number of orders in the demo shop.
    #[arg(long, default_value_t = 2000)]
    pub orders: u64,

    /// Report format [default: table on a terminal, json otherwise].
    #[arg(long, short = 'f', value_enum, value_name = "FORMAT")]
    pub format: Option<Format>,

    /// The read model the shop is projected into: the in-process Elasticsearch-API emulator, or a
    /// throwaway redis-server (which must be installed).
    #[arg(long, value_enum, value_name = "KIND", default_value = "elasticsearch")]
    pub read_model: DemoReadModel,

    /// Only warnings and errors on stderr: no progress output.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// `demo --read-model`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DemoReadModel {
    Elasticsearch,
    Redis,
}

fn parse_fraction(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(f) if f > 0.0 && f <= 1.0 => Ok(f),
        _ => Err(format!("{text:?} is not a fraction in (0, 1], e.g. 0.05")),
    }
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (examples: 30s, 5m, 1h30m)"))
}

/// `5MB`, `512KB`, `1GB` or a bare number of bytes (binary units).
pub fn parse_bytes(text: &str) -> Result<usize, String> {
    let t = text.trim().to_ascii_uppercase();
    let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t.as_str(), ""),
    };
    let n: usize = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size (examples: 5MB, 512KB)"))?;
    let factor = match unit.trim() {
        "" | "B" => 1,
        "K" | "KB" => 1 << 10,
        "M" | "MB" => 1 << 20,
        "G" | "GB" => 1 << 30,
        _ => return Err(format!("{text:?} is not a size (examples: 5MB, 512KB)")),
    };
    Ok(n * factor)
}

// The value enums of the flags. The layers below have their own types, which know no clap; each
// converts into its counterpart where a command builds its options.

/// One `--output`: a file, and the format written to it when the flag named one (`junit:report.xml`).
#[derive(Debug, Clone, PartialEq)]
pub struct OutputArg {
    pub format: Option<Format>,
    pub path: PathBuf,
}

/// `FORMAT:FILE` when the part before the first `:` names a format, else the whole text is the file.
fn parse_output(text: &str) -> Result<OutputArg, String> {
    if let Some((name, path)) = text.split_once(':') {
        if let Ok(format) = Format::from_str(name, false) {
            if path.is_empty() {
                return Err(format!("{text:?}: no file after {name}:"));
            }
            return Ok(OutputArg {
                format: Some(format),
                path: PathBuf::from(path),
            });
        }
    }
    if text.is_empty() {
        return Err("an empty file name".into());
    }
    Ok(OutputArg {
        format: None,
        path: PathBuf::from(text),
    })
}

/// `--format` of check, demo and report merge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Summary, per-field counts and a sample of drifted keys, for a terminal.
    Table,
    /// One `recon.check/v2` JSON document.
    Json,
    /// One JSON object per line: each drifted key as it is found, then the summary.
    Ndjson,
    /// JUnit XML, one test case per drifted key, for CI dashboards.
    Junit,
    /// GitHub-flavoured markdown, for pull-request comments and CI job summaries.
    Markdown,
    /// Prometheus text exposition format, for node_exporter's textfile collector.
    Prometheus,
}

impl From<Format> for crate::report::Format {
    fn from(format: Format) -> Self {
        match format {
            Format::Table => Self::Table,
            Format::Json => Self::Json,
            Format::Ndjson => Self::Ndjson,
            Format::Junit => Self::Junit,
            Format::Markdown => Self::Markdown,
            Format::Prometheus => Self::Prometheus,
        }
    }
}

/// `explain --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExplainFormat {
    /// The documents side by side in columns, for a terminal.
    Human,
    /// One `recon.explain/v1` JSON object per key and line (NDJSON).
    Json,
}

/// `--format` of repair, undo and reindex: their summary on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SummaryFormat {
    Text,
    Json,
}

impl From<SummaryFormat> for crate::repair::SummaryFormat {
    fn from(format: SummaryFormat) -> Self {
        match format {
            SummaryFormat::Text => Self::Text,
            SummaryFormat::Json => Self::Json,
        }
    }
}

/// `repair --mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RepairMode {
    /// The whole projected document, keeping the `compare.ignore` fields of the current one.
    Replace,
    /// Only the differing top-level fields (`update` with a partial `doc`).
    Patch,
}

impl From<RepairMode> for crate::repair::plan::RepairMode {
    fn from(mode: RepairMode) -> Self {
        match mode {
            RepairMode::Replace => Self::Replace,
            RepairMode::Patch => Self::Patch,
        }
    }
}

/// `repair --via`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Via {
    /// Conditional writes to the read model, by recon (the default).
    Write,
    /// Publish re-projection requests to a RabbitMQ exchange, with publisher confirms.
    Amqp,
    /// POST re-projection requests in batches to publish.http_url.
    Http,
    /// Write re-projection requests as NDJSON to stdout (or --output), for any other broker's producer.
    Ndjson,
}

impl Via {
    /// The transport, or None for `write`.
    pub fn transport(self) -> Option<crate::publish::Via> {
        match self {
            Via::Write => None,
            Via::Amqp => Some(crate::publish::Via::Amqp),
            Via::Http => Some(crate::publish::Via::Http),
            Via::Ndjson => Some(crate::publish::Via::Ndjson),
        }
    }
}

/// `reindex --verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Gate {
    /// The load's fingerprints, the changed rows and a key scan; the rest compared in full.
    Fingerprints,
    /// A whole check of the new generation per pass.
    Full,
}

impl From<Gate> for crate::reindex::Gate {
    fn from(gate: Gate) -> Self {
        match gate {
            Gate::Fingerprints => Self::Fingerprints,
            Gate::Full => Self::Full,
        }
    }
}
