//! One file per subcommand: each turns parsed flags into settings, runs the engine, and returns an
//! [`Outcome`].

pub mod check;

pub mod completions;
pub mod demo;
pub mod doctor;
pub mod explain;
pub mod init;
pub mod man;
pub mod reindex;
pub mod repair;
pub mod report_merge;
pub mod undo;

// Where they lived before the engine layer; the commands keep using them by these names.
pub use crate::engine::{interrupted, stop_requested, Outcome, EXIT_BROKEN_PIPE, EXIT_ERROR};
