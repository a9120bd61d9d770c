//! `recon doctor` without the command: every check of both sides and of the `[compare]` rules, in
//! order, a failure skipping what depends on it. Fast by construction: plans, samples and single
//! requests, never a scan.

use futures::FutureExt;

use crate::config::Settings;
use crate::source::preflight::{Check, Checklist};

use super::connect::{ensure_known_fields, preflight_read_model, preflight_write_model};

/// The name of the check of the `[compare]` rules.
pub const COMPARE: &str = "compare.fields";

/// Runs the checks of a resolved configuration after `list`'s own (the configuration's).
pub async fn preflight(settings: &Settings, list: &mut Checklist) {
    let write_model = preflight_write_model(settings, list).await;
    let key_kind = write_model.as_ref().map(|w| w.key_kind());
    let read_model_fields = preflight_read_model(settings, key_kind, list).await;
    let Some(write_model) = write_model else {
        list.push(Check::skipped(COMPARE, "skipped: needs postgres.query"));
        return;
    };
    let columns = write_model.columns().to_vec();
    let rules = settings.compare.fields.len() + settings.compare.ignore.len();
    let known = ensure_known_fields(settings, &columns, futures::future::ready(read_model_fields).boxed()).await;
    list.push(match known {
        Ok(()) if rules == 0 => Check::ok(COMPARE, "no [compare] rules: every field compares exactly"),
        Ok(()) => Check::ok(
            COMPARE,
            format!(
                "{rules} [compare] {} name fields the projection produces",
                if rules == 1 { "entry" } else { "entries" }
            ),
        ),
        Err(e) => Check::fail(
            COMPARE,
            e.to_string(),
            "fix or remove the [compare] entries named (compare.fields, compare.ignore)",
        ),
    });
}
