//! The one integration-test binary: real PostgreSQL clusters, the emulator over HTTP, the recon binary.

mod check;
mod cli;
mod postgres;
mod support;
