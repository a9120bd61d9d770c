//! Shared test harness. Every test gets its own database (and, later, its own index), so tests run in
//! parallel and in any order.

// Each test module uses a different part of the harness.
#![allow(dead_code)]

pub mod pg;

// Re-exported for every test module, whichever parts it uses.
#[allow(unused_imports)]
pub use pg::{shop_database, shop_projection_query, shop_schema_sql, test_database, TestDb};
