//! Command-line interface. These types only describe the flags; `commands` turns them into settings.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::report::Format;

/// recon keeps a CQRS read model honest.
///
/// It streams the expected documents out of PostgreSQL (the write model) and the actual ones out of
/// Elasticsearch (the read model), both sorted by key, merge-joins them, diffs them field by field and
/// reports drift: missing, orphaned, mismatched and duplicate documents.
#[derive(Debug, Parser)]
#[command(name = "recon", version, about, long_about, propagate_version = true)]
#[command(
    after_help = "Start with `recon demo` to see a check on an embedded shop; see docs/configuration.md \
                        for recon.toml.\nExit codes: 0 in sync, 1 drift found, 2 error, 130 interrupted."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
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
    /// Run a check on an embedded shop with injected drift, then clean up.
    #[command(
        long_about = "Run a check on an embedded shop with injected drift, then clean up.\n\n\
        Starts a throwaway PostgreSQL from the system's server binaries and recon's Elasticsearch-API emulator \
        in-process, loads a small shop (customers, products, orders, order lines), projects it into the read \
        model, injects drift of every kind, runs `recon check` and prints its report. Nothing outside a \
        temporary directory is touched."
    )]
    Demo(DemoArgs),
    /// Work with check reports: combine shard reports into one.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Print a shell completion script to stdout.
    Completions {
        /// The shell to generate completions for.
        shell: clap_complete::Shell,
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

    /// Write the merged report to FILE (atomically) instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Flags that choose what is compared and how much is said.
#[derive(Debug, Args, Clone)]
pub struct CheckArgs {
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

    /// Write the report to FILE (atomically: a complete report or none) instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// No progress bars or progress log lines.
    #[arg(long, short = 'q')]
    pub quiet: bool,

    /// Say where each setting came from, and more about the run, on stderr.
    #[arg(long, short = 'v')]
    pub verbose: bool,

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
    /// goes, so that `--resume` can continue after a crash. A finished run removes FILE.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["keys", "keys_file", "since", "sample"])]
    pub checkpoint: Option<PathBuf>,

    /// Continue the run recorded in --checkpoint FILE after its last compared key, in a new snapshot
    /// (the report says how many snapshots it spans); starts from the beginning when FILE is absent.
    #[arg(long, requires = "checkpoint")]
    pub resume: bool,
}

#[derive(Debug, Args, Clone)]
pub struct DemoArgs {
    /// Number of orders in the demo shop.
    #[arg(long, default_value_t = 2000)]
    pub orders: u64,

    /// Report format [default: table on a terminal, json otherwise].
    #[arg(long, short = 'f', value_enum, value_name = "FORMAT")]
    pub format: Option<Format>,

    /// No progress output.
    #[arg(long, short = 'q')]
    pub quiet: bool,
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
