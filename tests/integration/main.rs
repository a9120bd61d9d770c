//! The one integration-test binary: real PostgreSQL clusters, the emulator over HTTP, the recon binary.

mod check;
mod cli;
mod demo;
mod doctor;
mod emulator_api;
mod emulator_faults;
mod explain;
mod layers;
mod logging;
mod monitoring;
mod postgres;
mod redis;
mod reindex;
mod repair;
mod reproject;
mod scale;
mod scheduling;
mod support;
