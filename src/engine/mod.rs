//! The engine under the commands: it turns settings into connected sides ([`connect`]), runs a scan
//! plan over them — serial, ranged in one shared view, targeted, sampled, resumed — with recheck and
//! checkpoints ([`scan`], [`recheck`]), and says how a run ended ([`Outcome`]). Commands are adapters
//! around it (flags in, report out); nothing here knows about flags or report formats.

pub mod connect;
pub mod explain;
mod pass;
pub mod preflight;
pub mod recheck;
pub mod scan;
pub mod scope;
pub mod signals;

pub use connect::{connect_sides, connect_sides_with, ensure_known_fields, ensure_same_key_kind, Sides};
pub use scan::{scan, Scanned};
pub use scope::{CheckpointSpec, ScanScope};
pub use signals::{interrupted, stop_requested};

/// How a run ended, as the process exit code (like diff(1): 0 same, 1 different, 2 trouble).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// No drift, or no more failing keys than `--allow`.
    InSync,
    /// Drift beyond `--allow`.
    Drift,
    /// SIGINT or SIGTERM.
    Interrupted,
}

impl Outcome {
    pub fn exit_code(self) -> i32 {
        match self {
            Outcome::InSync => 0,
            Outcome::Drift => 1,
            Outcome::Interrupted => 130,
        }
    }
}

/// Exit code for any error.
pub const EXIT_ERROR: i32 = 2;

/// Exit code when the report could not be delivered because stdout was closed (`recon check | head -1`):
/// 128 + SIGPIPE, what a shell reports for a process SIGPIPE killed, so `set -o pipefail` fails the
/// pipeline instead of passing a gate whose report nobody read.
pub const EXIT_BROKEN_PIPE: i32 = 141;

#[cfg(test)]
mod tests;
