//! `recon init`: writes a commented `recon.toml` to start from — the whole template, or with
//! `--table` a first projection of that table and a `[compare]` section derived from its columns and
//! the read model's mapping. Never overwrites a file.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};

use crate::cli::InitArgs;
use crate::commands::Outcome;
use crate::config::ReadModelConnection;
use crate::secret::Secret;
use crate::source::postgres::introspect::TableShape;

/// Every section and rule with its default: docs/configuration.md in TOML.
pub const TEMPLATE: &str = include_str!("init_template.toml");

pub async fn run(args: InitArgs) -> anyhow::Result<Outcome> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let text = match &args.table {
        None => {
            if args.pg_url.is_some() || args.es_url.is_some() || args.index.is_some() || args.redis_url.is_some() {
                bail!(
                    "--pg-url, --es-url, --index and --redis-url derive a configuration from a table: add --table NAME"
                );
            }
            TEMPLATE.to_string()
        }
        Some(table) => {
            let pg_url = args
                .pg_url
                .clone()
                .or_else(|| env("DATABASE_URL"))
                .context("--table needs the write model's database: give --pg-url URL (or set DATABASE_URL)")?;
            let shape = crate::engine::connect::describe_table(&pg_url, table).await?;
            let redis_url = args.redis_url.clone();
            let read_model = match redis_url {
                Some(url) => ReadModel::Redis { url },
                None => {
                    let url = args
                        .es_url
                        .clone()
                        .or_else(|| env("ELASTICSEARCH_URL"))
                        .unwrap_or_else(|| "http://localhost:9200".to_string());
                    // Asked for by name (or by URL): its mapping must be read. Neither: a guess at an index
                    // named after the table on localhost, which may well not be there.
                    let named = args.index.is_some()
                        || env("RECON_ES_INDEX").is_some()
                        || args.es_url.is_some()
                        || env("ELASTICSEARCH_URL").is_some();
                    let index = args
                        .index
                        .clone()
                        .or_else(|| env("RECON_ES_INDEX"))
                        .unwrap_or_else(|| shape.name.clone());
                    let connection = ReadModelConnection {
                        url: Secret::new(url.clone()),
                        username: env("ELASTICSEARCH_USERNAME"),
                        password: env("ELASTICSEARCH_PASSWORD").map(Secret::new),
                        api_key: env("ELASTICSEARCH_API_KEY").map(Secret::new),
                        ca_cert: None,
                        insecure: false,
                        max_retries: 2,
                        timeout: crate::source::elasticsearch::DEFAULT_TIMEOUT,
                    };
                    let (mapping, unread) = match crate::engine::connect::read_model_field_types(&connection, &index).await {
                        Ok(mapping) => (Some(mapping), None),
                        Err(e) if !named => (None, Some(format!("{e:#}"))),
                        Err(e) => {
                            return Err(e.context(format!(
                                "reading the mapping of {index} (give --index and --es-url of the read model, or                                  leave both out to name the fields as the columns)"
                            )))
                        }
                    };
                    ReadModel::Elasticsearch {
                        url,
                        index,
                        mapping,
                        unread,
                    }
                }
            };
            derive(&shape, &pg_url, &read_model, args.key.as_deref())?
        }
    };
    write_new(&args.path, &text)?;
    crate::note!(
        "recon: wrote {}; review it, then run `recon doctor --config {}`",
        args.path.display(),
        args.path.display()
    );
    Ok(Outcome::InSync)
}

/// Creates `path` with `text`, refusing to replace anything there.
fn write_new(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut file = match std::fs::OpenOptions::new().write(true).create_new(true).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => bail!(
            "{} already exists; recon init never overwrites a file: move it away or name another PATH",
            path.display()
        ),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("cannot create {}", path.display()))),
    };
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Where the derived configuration's documents live.
pub enum ReadModel {
    /// `mapping`: the index's top-level fields and types, when the index exists.
    Elasticsearch {
        url: String,
        index: String,
        mapping: Option<BTreeMap<String, String>>,
        /// Why there is no mapping, when it could not be read.
        unread: Option<String>,
    },
    Redis {
        url: String,
    },
}

/// A first configuration for `shape`: every column the read model maps (by its name or its camelCase
/// name; every column when there is no mapping), the key, `updated_at`, and rules by column type.
pub fn derive(shape: &TableShape, pg_url: &str, read_model: &ReadModel, key: Option<&str>) -> anyhow::Result<String> {
    let key_column = match key {
        Some(key) => {
            if !shape.columns.iter().any(|c| c.name == key) {
                bail!(
                    "--key {key:?} is not a column of {}.{}; its columns: {}",
                    shape.schema,
                    shape.name,
                    column_list(shape)
                );
            }
            key.to_string()
        }
        None => match shape.primary_key.as_slice() {
            [one] => one.clone(),
            [] => bail!(
                "{}.{} has no primary key: name the column identifying a document with --key COLUMN",
                shape.schema,
                shape.name
            ),
            many => bail!(
                "{}.{}'s primary key has several columns ({}): recon needs one key column; give --key COLUMN (or \
                 write a query that builds one)",
                shape.schema,
                shape.name,
                many.join(", ")
            ),
        },
    };
    let mapping = match read_model {
        ReadModel::Elasticsearch { mapping, .. } => mapping.as_ref().filter(|m| !m.is_empty()),
        ReadModel::Redis { .. } => None,
    };
    let updated_at_column = shape
        .columns
        .iter()
        .find(|c| {
            matches!(
                c.name.as_str(),
                "updated_at" | "updatedAt" | "modified_at" | "last_modified"
            ) && c.data_type.starts_with("timestamp")
        })
        .map(|c| c.name.clone());

    // (column, field) of the projection; the columns left out.
    let mut projected: Vec<(&crate::source::postgres::introspect::TableColumn, String)> = Vec::new();
    let mut left_out = Vec::new();
    let mut ignore = Vec::new();
    for column in &shape.columns {
        let camel = camel_case(&column.name);
        let field = match mapping {
            None => Some(column.name.clone()),
            Some(m) if m.contains_key(&column.name) => Some(column.name.clone()),
            Some(m) if m.contains_key(&camel) => Some(camel.clone()),
            Some(_) => None,
        };
        match field {
            Some(field) => projected.push((column, field)),
            // The key and updated_at are needed whatever the read model maps.
            None if column.name == key_column || Some(&column.name) == updated_at_column.as_ref() => {
                let field = camel;
                if column.name != key_column {
                    ignore.push(field.clone());
                }
                projected.push((column, field));
            }
            None => left_out.push(column.name.clone()),
        }
    }
    let field_of = |column: &str| {
        projected
            .iter()
            .find(|(c, _)| c.name == column)
            .map(|(_, f)| f.clone())
            .unwrap_or_else(|| column.to_string())
    };
    let key_field = field_of(&key_column);

    let mut t = String::new();
    t.push_str(&format!(
        "# recon.toml for {}.{}, written by `recon init --table`: a first projection to review.\n\
         # Every setting and rule is explained in docs/configuration.md (and in the file `recon init` writes\n\
         # without --table). Check it with `recon doctor`, then `recon check`.\n\n",
        shape.schema, shape.name
    ));
    t.push_str("[postgres]\n");
    t.push_str("# Keep passwords out of this file: DATABASE_URL (which replaces this URL) or ~/.pgpass.\n");
    t.push_str(&format!("url = {}\n", toml_string(&without_password(pg_url))));
    if !shape.references.is_empty() || !shape.referenced_by.is_empty() {
        let mut related: Vec<String> = shape.references.clone();
        related.extend(shape.referenced_by.iter().cloned());
        t.push_str(&format!(
            "# {} is related to {} by foreign keys: if the documents nest or denormalize those rows, add the\n\
             # joins by hand (json_agg(...) for arrays of children, or the flat form: columns named \"lines[].sku\").\n",
            shape.name,
            related.join(", ")
        ));
    }
    if !left_out.is_empty() {
        t.push_str(&format!(
            "# Left out, as the read model maps no such field: {}.\n",
            left_out.join(", ")
        ));
    }
    t.push_str("# One row per expected document; every column becomes a field of that name.\nquery = '''\nSELECT ");
    let table_name = format!("{}.{}", quote_ident(&shape.schema), quote_ident(&shape.name));
    let select: Vec<String> = projected
        .iter()
        .map(|(c, field)| {
            if *field == c.name {
                quote_ident(&c.name)
            } else {
                format!("{} AS {}", quote_ident(&c.name), quote_always(field))
            }
        })
        .collect();
    t.push_str(&select.join(",\n       "));
    t.push_str(&format!("\n  FROM {table_name}\n'''\n"));
    t.push_str(&format!(
        "# The column identifying a document (unique, NOT NULL).\nkey = {}\n",
        toml_string(&key_field)
    ));
    match &updated_at_column {
        Some(column) => t.push_str(&format!(
            "# The row's last change: for --grace, --since and recon reindex.\nupdated_at = {}\n",
            toml_string(&field_of(column))
        )),
        None => t.push_str(
            "# A timestamptz column with the row's last change, for --grace, --since and recon reindex:\n\
             # updated_at = \"updatedAt\"\n",
        ),
    }
    t.push('\n');

    match read_model {
        ReadModel::Elasticsearch {
            url,
            index,
            mapping,
            unread,
        } => {
            t.push_str("[elasticsearch]\n");
            t.push_str(
                "# Credentials: username here, the password from ELASTICSEARCH_PASSWORD or password_file; or\n\
                 # ELASTICSEARCH_API_KEY. See docs/configuration.md for TLS, page size and retries.\n",
            );
            t.push_str(&format!("url = {}\n", toml_string(&without_password(url))));
            if let Some(user) = url::Url::parse(url)
                .ok()
                .map(|u| u.username().to_string())
                .filter(|u| !u.is_empty())
            {
                t.push_str(&format!("username = {}\n", toml_string(&user)));
            }
            t.push_str(&format!("index = {}\n", toml_string(index)));
            match mapping {
                None => t.push_str(&format!(
                    "# The mapping of [{index}] could not be read ({}): field names are the columns'.\n\
                     # Map the key field as long (integer keys) or keyword (text keys).\n",
                    unread.as_deref().unwrap_or("no index").replace('\n', " ")
                )),
                Some(mapping) => {
                    if let Some(kind) = mapping.get(&key_field) {
                        t.push_str(&format!("# The key field [{key_field}] is mapped as {kind}.\n"));
                        if kind == "text" {
                            t.push_str(&format!(
                                "# A text field cannot be sorted: use its keyword subfield.\nkey = {}\n",
                                toml_string(&format!("{key_field}.keyword"))
                            ));
                        }
                    }
                    let only_read_model: Vec<&str> = mapping
                        .keys()
                        .filter(|f| !projected.iter().any(|(_, p)| p == *f))
                        .map(String::as_str)
                        .collect();
                    if !only_read_model.is_empty() {
                        t.push_str(&format!(
                            "# The index also maps {}: no column of {} gives them. They are not compared; join\n\
                             # them into the query by hand to compare them too.\n",
                            only_read_model.join(", "),
                            shape.name
                        ));
                    }
                }
            }
        }
        ReadModel::Redis { url } => {
            t.push_str("[redis]\n");
            t.push_str(&format!("url = {}\n", toml_string(&without_password(url))));
            t.push_str("# The Redis key of each document; {} is the key. Adjust it to what the projector writes.\n");
            t.push_str(&format!(
                "key_pattern = {}\n",
                toml_string(&format!("{}:{{}}", shape.name))
            ));
            t.push_str("# \"json\": a JSON string per document (GET/SET); \"hash\": one hash field per field.\n");
            t.push_str("encoding = \"json\"\n");
        }
    }
    t.push('\n');

    t.push_str("[compare]\n");
    t.push_str(&format!(
        "ignore = [{}]\n",
        ignore.iter().map(|f| toml_string(f)).collect::<Vec<_>>().join(", ")
    ));
    t.push_str("null_equals_missing = true\n\n[compare.fields]\n");
    let mut rules = 0;
    for (column, field) in &projected {
        if column.name == key_column || ignore.contains(field) {
            continue;
        }
        let mapped = mapping.and_then(|m| m.get(field)).map(String::as_str);
        let rule = match column.data_type.as_str() {
            "numeric" | "real" | "double precision" | "money" => Some((
                "{ as = \"number\" }",
                "numeric: compared by decimal value (add tolerance = 0.005 to allow rounding)",
            )),
            t if t.starts_with("timestamp") || t == "date" => Some((
                "{ as = \"instant\" }",
                "a timestamp: compared as an instant, whatever the offset it is written with",
            )),
            _ => None,
        };
        if let Some((rule, why)) = rule {
            let why = match mapped {
                Some(kind) => format!("{why}; mapped as {kind}"),
                None => why.to_string(),
            };
            t.push_str(&format!("# {why}\n{} = {rule}\n", toml_key(field)));
            rules += 1;
        } else if matches!(column.data_type.as_str(), "json" | "jsonb" | "ARRAY") {
            t.push_str(&format!(
                "# {field} is {}: if it holds objects in no fixed order, match them on their key:\n# {} = {{ as = \"set\", key = \"id\" }}\n",
                column.data_type,
                toml_key(field)
            ));
        }
    }
    if rules == 0 {
        t.push_str("# No rule needed: every field compares exactly.\n");
    }
    Ok(t)
}

fn column_list(shape: &TableShape) -> String {
    shape
        .columns
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `ordered_at` → `orderedAt`.
fn camel_case(name: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = !out.is_empty();
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// An identifier as PostgreSQL needs it: bare when it is lowercase letters, digits and `_`.
fn quote_ident(name: &str) -> String {
    let bare = name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if bare {
        name.to_string()
    } else {
        quote_always(name)
    }
}

fn quote_always(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

fn toml_key(name: &str) -> String {
    if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        name.to_string()
    } else {
        toml_string(name)
    }
}

/// The URL without its password (a file is no place for one).
fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse_file, Overrides, Settings};
    use crate::source::postgres::introspect::TableColumn;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn the_template_is_accepted_by_the_config_loader() {
        let file = parse_file(TEMPLATE, "recon.toml").unwrap();
        let settings = Settings::resolve(file, None, &Overrides::default(), &no_env).unwrap();
        assert_eq!(settings.postgres.key, "orderId");
        assert_eq!(settings.elasticsearch.index, "orders");
        assert_eq!(settings.compare.fields.len(), 2);
        // The commented-out [redis] section is the alternative, complete once uncommented.
        let redis: String = TEMPLATE
            .lines()
            .skip_while(|l| !l.starts_with("# [redis]"))
            .take_while(|l| !l.is_empty())
            .map(|l| l.strip_prefix("# ").unwrap_or(l).to_string() + "\n")
            .collect();
        let without_es = TEMPLATE.split("[elasticsearch]").next().unwrap().to_string();
        let text = format!("{without_es}{redis}");
        let file = parse_file(&text, "recon.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
        let settings = Settings::resolve(file, None, &Overrides::default(), &no_env).unwrap();
        assert_eq!(settings.redis.unwrap().key_pattern, "order:{}");
    }

    fn orders() -> TableShape {
        let column = |name: &str, data_type: &str| TableColumn {
            name: name.into(),
            data_type: data_type.into(),
        };
        TableShape {
            schema: "public".into(),
            name: "orders".into(),
            columns: vec![
                column("id", "bigint"),
                column("customer_id", "bigint"),
                column("total", "numeric"),
                column("ordered_at", "timestamp with time zone"),
                column("updated_at", "timestamp with time zone"),
                column("internal_note", "text"),
            ],
            primary_key: vec!["id".into()],
            references: vec!["customers".into()],
            referenced_by: vec!["order_lines".into()],
        }
    }

    #[test]
    fn a_derived_configuration_names_the_mapped_fields_and_loads() {
        let mapping: BTreeMap<String, String> = [
            ("id", "long"),
            ("customerId", "long"),
            ("total", "scaled_float"),
            ("orderedAt", "date"),
            ("lines", "nested"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let read_model = ReadModel::Elasticsearch {
            url: "http://es:9200".into(),
            index: "orders".into(),
            mapping: Some(mapping),
            unread: None,
        };
        let text = derive(&orders(), "postgres://app:secret@db/shop", &read_model, None).unwrap();
        assert!(!text.contains("secret"), "{text}");
        assert!(text.contains("customer_id AS \"customerId\""), "{text}");
        assert!(
            text.contains("Left out, as the read model maps no such field: internal_note"),
            "{text}"
        );
        assert!(text.contains("related to customers, order_lines"), "{text}");
        assert!(text.contains("The index also maps lines"), "{text}");
        let file = parse_file(&text, "recon.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
        let settings = Settings::resolve(file, None, &Overrides::default(), &no_env).unwrap();
        assert_eq!(settings.postgres.key, "id");
        assert_eq!(settings.postgres.updated_at.as_deref(), Some("updatedAt"));
        assert_eq!(settings.compare.ignore, vec!["updatedAt".to_string()]);
        let rules: Vec<(&str, crate::config::RuleKind)> = settings
            .compare
            .fields
            .iter()
            .map(|(k, r)| (k.as_str(), r.kind))
            .collect();
        assert_eq!(
            rules,
            vec![
                ("orderedAt", crate::config::RuleKind::Instant),
                ("total", crate::config::RuleKind::Number)
            ]
        );
        let e = derive(&orders(), "postgres://db/shop", &read_model, Some("nope")).unwrap_err();
        assert!(e.to_string().contains("--key \"nope\" is not a column"), "{e}");
    }

    #[test]
    fn init_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("recon.toml");
        write_new(&path, "a").unwrap();
        let e = write_new(&path, "b").unwrap_err().to_string();
        assert!(e.contains("already exists") && e.contains("recon.toml"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a");
    }
}
