//! `recon explain KEY…`: flags to settings, both sides looked up ([`crate::engine::explain`]), the
//! explanation on stdout ([`crate::report::explain`]).

use std::io::Write;

use anyhow::Context;

use super::Outcome;
use crate::cli::{ExplainArgs, ExplainFormat};
use crate::diff::Comparator;
use crate::engine::connect::connect_for_explain;
use crate::model::KeyKind;
use crate::report::explain::{write_human, write_json, ExplainOptions};
use crate::scale::keys::{parse_key, read_file};

pub async fn run(args: ExplainArgs) -> anyhow::Result<Outcome> {
    let settings = args.connection.load()?;
    for line in settings.describe_origins() {
        tracing::debug!("{line}");
    }
    let comparator = Comparator::new(&settings.compare).context("invalid [compare] rules")?;
    let (sides, compared) = connect_for_explain(&settings).await?;
    tracing::debug!("write model: {}", sides.write_model.describe());
    tracing::debug!("read model: {}", sides.read_model.describe());
    let kind = sides.write_model.key_kind();
    let mut keys = Vec::new();
    for text in &args.keys {
        keys.push(parse_key(text.trim(), kind).map_err(|_| bad_key(text, kind, &settings.postgres.key))?);
    }
    if let Some(path) = &args.keys_file {
        let file = read_file(path, kind)?;
        for key in file.keys()? {
            keys.push(key?);
        }
    }
    if keys.is_empty() {
        // Only a --keys-file can be empty (clap wants a KEY without one): an empty report piped in.
        let file = args.keys_file.as_deref().unwrap_or(std::path::Path::new("-"));
        anyhow::bail!(
            "no keys to explain: --keys-file {} lists none; give keys as arguments or one per line",
            file.display()
        );
    }
    let explained = crate::engine::explain::explain(&sides, &comparator, &compared, &keys).await?;
    let options = ExplainOptions {
        color: args.format == ExplainFormat::Human && crate::terminal::colour_stdout(),
        updated_at: settings.postgres.updated_at.clone(),
        now_ms: chrono::Utc::now().timestamp_millis(),
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match args.format {
        ExplainFormat::Human => write_human(&mut out, &explained, &options)?,
        ExplainFormat::Json => write_json(&mut out, &explained, &options)?,
    }
    out.flush()?;
    Ok(match explained.iter().any(|e| e.verdict.is_drift()) {
        true => Outcome::Drift,
        false => Outcome::InSync,
    })
}

/// A key that cannot be one of the write model's (only an integer key can be malformed): say which
/// kind is wanted and why.
fn bad_key(text: &str, kind: KeyKind, column: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "key {text:?} is not an {kind} key, but postgres.key {column:?} is an {kind} column; give the key as \
         the write model holds it (e.g. 10408)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_key_names_itself_and_the_kind_wanted() {
        let e = bad_key("ORD-7", KeyKind::Int, "orderId").to_string();
        assert_eq!(
            e,
            "key \"ORD-7\" is not an integer key, but postgres.key \"orderId\" is an integer column; give the key \
             as the write model holds it (e.g. 10408)"
        );
    }
}
