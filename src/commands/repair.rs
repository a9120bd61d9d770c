//! `recon repair`: flags to settings, then [`crate::repair::run`].

use crate::cli::RepairArgs;
use crate::commands::Outcome;
use crate::progress::ProgressMode;
use crate::publish::Via;
use crate::repair::reproject::ReprojectOptions;
use crate::repair::{self, KeySource, RepairOptions};
use crate::source::BulkSettings;

pub async fn run(args: RepairArgs) -> anyhow::Result<Outcome> {
    let via = args.via.transport();
    // Flags of the projector's path are refused with the path they belong to.
    let only_with = |flag: &str, given: bool, needs: &str| -> anyhow::Result<()> {
        if given {
            anyhow::bail!("{flag} applies only with {needs}");
        }
        Ok(())
    };
    let resume = args.resume.is_some();
    only_with(
        "--amqp-url",
        args.amqp_url.is_some() && via != Some(Via::Amqp) && !resume,
        "--via amqp",
    )?;
    only_with(
        "--dead-letter",
        args.dead_letter.is_some() && via != Some(Via::Amqp) && !resume,
        "--via amqp",
    )?;
    only_with(
        "--output",
        args.output.is_some() && via != Some(Via::Ndjson) && !resume,
        "--via ndjson",
    )?;
    only_with(
        "--await",
        args.await_for.is_some() && via.is_none() && !resume,
        "--via amqp, http or ndjson",
    )?;
    let mut overrides = args.connection.overrides();
    overrides.amqp_url.clone_from(&args.amqp_url);
    let mut settings = args.connection.load_with(overrides)?;
    settings.publish.declare = args.declare;
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
        reproject: ReprojectOptions {
            via,
            dead_letter: args.dead_letter,
            output: args.output,
            await_for: args.await_for,
            amqp_url: args.amqp_url,
        },
    };
    repair::run(&settings, &options).await
}
