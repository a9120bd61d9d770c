//! What can go wrong reading the write model, and the messages that say what to fix.

use crate::model::{Key, KeyKind};
use crate::secret::redact_url;

/// Everything that can go wrong reading the write model. URLs in messages are always redacted.
#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    #[error("postgres.url {url} is not a valid PostgreSQL URL: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot reach PostgreSQL at {url}: {reason} (is the server running, and are host and port in postgres.url right?)")]
    Unreachable { url: String, reason: String },
    #[error("PostgreSQL at {url} rejected the login: {reason} (check the user and password of postgres.url)")]
    Authentication { url: String, reason: String },
    #[error("PostgreSQL at {url}: {reason} (check the database name in postgres.url)")]
    NoDatabase { url: String, reason: String },
    #[error("PostgreSQL at {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("postgres.query failed: {reason} (check postgres.query)")]
    Query { reason: String },
    #[error("postgres.query returns column {column:?} more than once; give each column a distinct name")]
    DuplicateColumn { column: String },
    #[error("key column {key:?} is not a column of postgres.query; its columns are: {columns}")]
    UnknownKey { key: String, columns: String },
    #[error(
        "key column {key:?} has type {type_name}, which cannot be a key (supported: smallint, integer, bigint, \
         text, varchar, char, uuid); cast it in postgres.query"
    )]
    UnsupportedKeyType { key: String, type_name: String },
    #[error("updated_at column {column:?} is not a column of postgres.query; its columns are: {columns}")]
    UnknownUpdatedAt { column: String, columns: String },
    #[error("updated_at column {column:?} has type {type_name}; it must be timestamptz or timestamp")]
    UpdatedAtType { column: String, type_name: String },
    #[error(
        "column {column:?} has type {type_name}, which recon cannot turn into JSON; cast it in postgres.query \
         (e.g. \"{column}\"::text)"
    )]
    UnsupportedType { column: String, type_name: String },
    #[error("row {row} of the scan has a NULL key column {key:?}; every row needs a key")]
    NullKey { row: u64, key: String },
    #[error("postgres.query returns rows whose key column {key:?} is NULL; every row needs a key")]
    NullKeys { key: String },
    #[error("key {key} appears more than once in postgres.query's result; the key column must be unique")]
    DuplicateKey { key: Key },
    #[error("a {got:?} key was given for a source whose key column {key:?} is {expected:?}")]
    KeyKindMismatch {
        key: String,
        expected: KeyKind,
        got: KeyKind,
    },
    #[error("cannot decode column {column:?}: {reason}")]
    Decode { column: String, reason: String },
    #[error("reading the write model failed: {reason}")]
    Read { reason: String },
    #[error(
        "lost the connection to PostgreSQL at {url} in the middle of the scan, after {read}: {reason} (the \
         server restarted or shut down, an administrator ended the session, e.g. with pg_terminate_backend, or \
         the network dropped it; run again)"
    )]
    LostMidScan { url: String, read: String, reason: String },
}

/// Removes the URL's password from a message that may quote it (e.g. a URL parse error).
pub(super) fn redact_message(message: &str, raw_url: &str) -> String {
    let password = url::Url::parse(raw_url)
        .ok()
        .and_then(|u| u.password().map(str::to_string));
    match password {
        Some(p) if !p.is_empty() => message.replace(&p, "***"),
        _ => message.to_string(),
    }
}

pub(super) fn connect_error(url: &str, raw_url: &str, error: sqlx::Error) -> PostgresError {
    let url = url.to_string();
    let reason = redact_message(&error.to_string(), raw_url);
    match &error {
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some("28P01" | "28000") => PostgresError::Authentication {
                url,
                reason: db.message().to_string(),
            },
            Some("3D000") => PostgresError::NoDatabase {
                url,
                reason: db.message().to_string(),
            },
            _ => PostgresError::Connect { url, reason },
        },
        sqlx::Error::Io(e) => PostgresError::Unreachable {
            url,
            reason: match e.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
                std::io::ErrorKind::ConnectionReset => "connection reset".to_string(),
                std::io::ErrorKind::TimedOut => "timed out".to_string(),
                _ => e.to_string(),
            },
        },
        sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) => PostgresError::Unreachable { url, reason },
        sqlx::Error::Configuration(_) => PostgresError::InvalidUrl { url, reason },
        _ => PostgresError::Connect { url, reason },
    }
}

pub(super) fn query_error(raw_url: &str, error: sqlx::Error) -> PostgresError {
    match &error {
        sqlx::Error::Database(db) => PostgresError::Query {
            reason: db.message().to_string(),
        },
        _ => read_error(raw_url, error),
    }
}

/// The connection is gone: reset or closed under us, or the server ended the session (admin_shutdown,
/// crash_shutdown, cannot_connect_now, or any connection exception).
fn lost_connection(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03")),
        _ => false,
    }
}

/// A failed read of a scan that has received `rows_read` rows: once rows have arrived, a lost connection
/// is not a server that cannot be reached.
pub(super) fn scan_error(raw_url: &str, rows_read: u64, error: sqlx::Error) -> PostgresError {
    if rows_read > 0 && lost_connection(&error) {
        PostgresError::LostMidScan {
            url: redact_url(raw_url),
            read: crate::plural::plural(rows_read, "row", "rows"),
            reason: redact_message(&error.to_string(), raw_url),
        }
    } else {
        read_error(raw_url, error)
    }
}

pub(super) fn read_error(raw_url: &str, error: sqlx::Error) -> PostgresError {
    match &error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) => {
            connect_error(&redact_url(raw_url), raw_url, error)
        }
        _ => PostgresError::Read {
            reason: redact_message(&error.to_string(), raw_url),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn a_reset_or_an_ended_session_is_a_lost_connection_and_a_query_error_is_not() {
        let reset = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(lost_connection(&reset));
        assert!(lost_connection(&sqlx::Error::WorkerCrashed));
        assert!(!lost_connection(&sqlx::Error::RowNotFound));
        assert!(!lost_connection(&sqlx::Error::Protocol("unexpected message".into())));
    }

    #[test]
    fn redact_url_hides_passwords_everywhere() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/shop"),
            "postgres://app:***@db:5432/shop"
        );
        assert_eq!(redact_url("postgres://app@db/shop"), "postgres://app@db/shop");
        let with_param = redact_url("postgres://db/shop?user=app&password=s3cret&sslmode=require");
        assert!(!with_param.contains("s3cret"), "{with_param}");
        assert!(with_param.contains("sslmode=require"), "{with_param}");
        let broken = redact_url("postgres://app:s3cret@[bad/shop");
        assert!(!broken.contains("s3cret"), "{broken}");
        assert_eq!(
            redact_message("bad url postgres://a:pw9@x", "postgres://a:pw9@x"),
            "bad url postgres://a:***@x"
        );
    }
}
