//! What `recon check` needs beyond one serial scan: targeted key lists, drift held on disk until a
//! recheck or until parallel ranges are stitched back in key order, key-range plans for parallel,
//! sharded and sampled runs, checkpoints, and nesting of flat joined rows.

pub mod checkpoint;
pub mod keyfile;
pub mod keys;
pub mod plan;
pub mod spool;
