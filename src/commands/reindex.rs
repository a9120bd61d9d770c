//! `recon reindex`: flags to settings, then [`crate::reindex::run`].

use crate::cli::ReindexArgs;
use crate::commands::Outcome;
use crate::progress::ProgressMode;
use crate::reindex::{self, Action, ReindexOptions, Rerun, Unfinished};

pub async fn run(args: ReindexArgs) -> anyhow::Result<Outcome> {
    let settings = args.connection.load()?;
    if settings.redis.is_some() {
        anyhow::bail!(
            "recon reindex rebuilds Elasticsearch indices only: {} names a [redis] read model; a Redis read model \
             is rebuilt by its projector (recon check and, later, recon repair work with it)",
            args.connection.config.display()
        );
    }
    for line in settings.describe_origins() {
        tracing::debug!("{line}");
    }
    let options = ReindexOptions {
        action: if args.list {
            Action::List
        } else if args.rollback {
            Action::Rollback
        } else {
            Action::Rebuild
        },
        yes: args.yes,
        mapping: args.mapping,
        max_drift: args.max_drift,
        gate: args.verify.into(),
        keep: args.keep,
        margin: args.catch_up_margin,
        adopt: args.adopt,
        parallel: args.parallel,
        unfinished: match (args.resume, args.discard) {
            (true, _) => Unfinished::Resume,
            (_, true) => Unfinished::Discard,
            _ => Unfinished::Ask,
        },
        format: args.format.into(),
        progress: ProgressMode::detect(args.quiet),
        rerun: Rerun {
            config: args.connection.config,
            pg_url: args.connection.pg_url,
            es_url: args.connection.es_url,
            index: args.connection.index,
        },
    };
    reindex::run(&settings, &options).await
}
