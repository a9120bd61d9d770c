//! The pure core: field-by-field comparison of documents ([`Comparator`]) and the merge join of the
//! write model's and the read model's sorted streams into drift ([`Joiner`]). No I/O here: everything
//! takes documents and streams, so it is tested without any server.

mod compare;
mod explain;
mod join;
pub mod value;

pub use compare::{unknown_fields, Comparator, RuleError};
pub use explain::{ActualDoc, Explanation, Leaf, Row, Verdict, NOT_COMPARED};
pub use join::{compared_duplicate, Grace, JoinError, Joiner, Outcome, Side};
