//! What `recon doctor` learns about a side without reading it through: named checks, each passed,
//! failed (with what to fix) or skipped because a check it needs failed. Each connector runs its own
//! (`postgres::preflight`, the read models' `preflight`); the engine puts them in order.

use serde::Serialize;

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Fail,
    /// Not run: a check it needs failed (or the side cannot answer it).
    Skipped,
}

/// One named check: `postgres.login`, `read_model.pit`, …
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    /// What was found (ok), what went wrong (fail), or what it waits for (skipped). Never a secret.
    pub detail: String,
    /// What to do about a failure.
    pub fix: Option<String>,
}

impl Check {
    pub fn ok(name: &str, detail: impl Into<String>) -> Check {
        Check {
            name: name.to_string(),
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    pub fn fail(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name: name.to_string(),
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn skipped(name: &str, detail: impl Into<String>) -> Check {
        Check {
            name: name.to_string(),
            status: Status::Skipped,
            detail: detail.into(),
            fix: None,
        }
    }
}

/// Checks in order, where a failure skips every later check that depends on it.
#[derive(Debug, Default)]
pub struct Checklist {
    pub checks: Vec<Check>,
}

impl Checklist {
    pub fn push(&mut self, check: Check) {
        self.checks.push(check);
    }

    /// Marks `names` skipped because `needs` failed.
    pub fn skip(&mut self, names: &[&str], needs: &str) {
        for name in names {
            self.checks
                .push(Check::skipped(name, format!("skipped: needs {needs}")));
        }
    }

    pub fn failed(&self) -> bool {
        self.checks.iter().any(|c| c.status == Status::Fail)
    }
}
