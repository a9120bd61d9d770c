//! recon keeps a CQRS read model honest: it streams the expected documents out of the write model
//! (PostgreSQL) and the actual ones out of the read model (Elasticsearch), merge-joins them by key,
//! diffs them field by field and reports drift.
//!
//! Layout follows the data flow: [`source`] reads, [`diff`] compares (pure, no I/O), [`report`]
//! presents, [`commands`] wires a subcommand together. The Elasticsearch-API emulator used by the tests
//! and by `recon demo` is a crate of its own, `recon-es-emulator` (crates/recon-es-emulator).

pub mod cli;
pub mod command_line;
pub mod commands;
pub mod config;
pub mod diff;
pub mod document;
pub mod engine;
pub mod logging;
pub mod model;
pub mod plural;
pub mod progress;
pub mod publish;
pub mod reindex;
pub mod repair;
pub mod report;
pub mod scale;
pub mod secret;
pub mod source;
pub mod terminal;
