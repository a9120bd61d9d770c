//! `recon undo AUDIT`: flags to settings, then [`crate::repair::undo::run`].

use crate::cli::UndoArgs;
use crate::command_line::Target;
use crate::commands::Outcome;
use crate::config::{Overrides, ReadModelSettings};
use crate::repair::undo::{self, UndoOptions};
use crate::source::BulkSettings;

pub async fn run(args: UndoArgs) -> anyhow::Result<Outcome> {
    let overrides = Overrides {
        es_url: args.es_url.clone(),
        redis_url: args.redis_url.clone(),
        ..Overrides::default()
    };
    // Only the read model's connection: an undo never reads the write model.
    let settings = ReadModelSettings::load(&args.config, &overrides, &|name| std::env::var(name).ok())?;
    for line in settings.describe_origins() {
        tracing::debug!("{line}");
    }
    let options = UndoOptions {
        apply: args.apply,
        yes: args.yes,
        audit: args.audit,
        bulk: BulkSettings {
            max_rate: args.max_rate,
            ..BulkSettings::default()
        },
        format: args.format.into(),
        target: Target {
            config: args.config,
            es_url: args.es_url,
            redis_url: args.redis_url,
            ..Target::default()
        },
    };
    undo::run(&settings, &args.log, &options).await
}
