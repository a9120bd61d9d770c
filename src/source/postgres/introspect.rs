//! What `recon init` learns about a table to write a first projection: its columns and their types,
//! its primary key, and the foreign keys that say documents probably nest other tables.

use sqlx::Row;

use super::error::read_error;
use super::{connect_pool, probe_connection, PostgresSettings};

/// One column, with PostgreSQL's name for its type (`bigint`, `numeric`, `timestamp with time zone`).
#[derive(Debug, Clone, PartialEq)]
pub struct TableColumn {
    pub name: String,
    pub data_type: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TableShape {
    pub schema: String,
    pub name: String,
    pub columns: Vec<TableColumn>,
    pub primary_key: Vec<String>,
    /// Tables this one's foreign keys point at.
    pub references: Vec<String>,
    /// Tables whose foreign keys point at this one.
    pub referenced_by: Vec<String>,
}

/// Reads `table` (`orders` on the search path, or `schema.orders`) from the catalog.
pub async fn describe_table(url: &str, table: &str) -> anyhow::Result<TableShape> {
    let settings = PostgresSettings {
        max_connections: 2,
        ..PostgresSettings::new(url, "", "")
    };
    probe_connection(&settings).await?;
    let pool = connect_pool(&settings).await?;
    let found: Option<(String, String)> = sqlx::query_as(
        "SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.oid = to_regclass($1)",
    )
    .bind(table)
    .fetch_optional(&pool)
    .await
    .map_err(|e| read_error(url, e))?;
    let Some((schema, name)) = found else {
        anyhow::bail!(
            "no table {table:?} in the database of --pg-url; give its name as psql's \\dt lists it (schema.table \
             when it is not on the search path)"
        );
    };
    let rows = sqlx::query(
        "SELECT column_name::text AS name, data_type::text AS data_type FROM information_schema.columns \
         WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
    )
    .bind(&schema)
    .bind(&name)
    .fetch_all(&pool)
    .await
    .map_err(|e| read_error(url, e))?;
    let columns = rows
        .iter()
        .map(|r| TableColumn {
            name: r.get("name"),
            data_type: r.get("data_type"),
        })
        .collect();
    let primary_key: Vec<String> = sqlx::query_scalar(
        "SELECT k.column_name::text FROM information_schema.table_constraints t \
         JOIN information_schema.key_column_usage k ON k.constraint_schema = t.constraint_schema \
           AND k.constraint_name = t.constraint_name AND k.table_name = t.table_name \
         WHERE t.constraint_type = 'PRIMARY KEY' AND t.table_schema = $1 AND t.table_name = $2 \
         ORDER BY k.ordinal_position",
    )
    .bind(&schema)
    .bind(&name)
    .fetch_all(&pool)
    .await
    .map_err(|e| read_error(url, e))?;
    let relations = |sql: &'static str| {
        let (schema, name, pool) = (&schema, &name, &pool);
        async move {
            sqlx::query_scalar::<_, String>(sql)
                .bind(schema)
                .bind(name)
                .fetch_all(pool)
                .await
                .map_err(|e| read_error(url, e))
        }
    };
    let references = relations(
        "SELECT DISTINCT confrelid::regclass::text FROM pg_constraint \
         WHERE contype = 'f' AND conrelid = (quote_ident($1) || '.' || quote_ident($2))::regclass ORDER BY 1",
    )
    .await?;
    let referenced_by = relations(
        "SELECT DISTINCT conrelid::regclass::text FROM pg_constraint \
         WHERE contype = 'f' AND confrelid = (quote_ident($1) || '.' || quote_ident($2))::regclass ORDER BY 1",
    )
    .await?;
    pool.close().await;
    Ok(TableShape {
        schema,
        name,
        columns,
        primary_key,
        references,
        referenced_by,
    })
}
