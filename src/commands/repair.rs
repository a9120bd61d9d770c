//! `recon repair`: flags to settings, then [`crate::repair::run`].

use crate::cli::RepairArgs;
use crate::commands::Outcome;
use crate::progress::ProgressMode;
use crate::repair::{self, KeySource, RepairOptions};
use crate::source::BulkSettings;

pub async fn run(args: RepairArgs) -> anyhow::Result<Outcome> {
    let settings = args.connection.load()?;
    for line in settings.describe_origins() {
        tracing::debug!("{line}");
    }
    let keys = if let Some(path) = args.resume {
        KeySource::Resume(path)
    } else if let Some(path) = args.from_plan {
        KeySource::Plan(path)
    } else if let Some(path) = args.from_report {
        KeySource::Report(path)
    } else if let Some(keys) = args.keys {
        KeySource::Keys(keys)
    } else if let Some(path) = args.keys_file {
        KeySource::KeysFile(path)
    } else {
        KeySource::Check
    };
    let options = RepairOptions {
        keys,
        mode: args.mode.into(),
        apply: args.apply,
        yes: args.yes,
        plan_out: args.plan,
        max_changes: args.max_changes,
        max_deletes: args.max_deletes,
        audit: args.audit,
        bulk: BulkSettings {
            max_bytes: args.batch_bytes.max(1),
            max_actions: args.batch_size.max(1),
            max_rate: args.max_rate,
            ..BulkSettings::default()
        },
        concurrency: args.concurrency.max(1),
        grace: args.grace,
        progress: ProgressMode::detect(args.quiet),
        format: args.format.into(),
        target: args.connection.target(),
        verbose: args.verbose > 0,
    };
    repair::run(&settings, &options).await
}
