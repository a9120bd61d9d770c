//! What recon's tests, benchmarks and `recon demo` stand on, kept out of the product library:
//! [`pgcluster`] starts throwaway PostgreSQL clusters from the system's server binaries, and [`shop`]
//! is the example write model (schema, generated data, projection) the demo and benches check;
//! [`redis_server`] starts throwaway Redis servers (a read model the demo and tests project into).

pub mod pgcluster;
pub mod redis_server;
pub mod shop;
