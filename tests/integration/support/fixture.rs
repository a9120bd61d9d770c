//! A write model in a fresh database, a read model in an emulator (or `RECON_TEST_ES_URL`), a
//! recon.toml pointing at both, and the recon binary run against them.

use std::path::PathBuf;

use elasticsearch::http::request::JsonBody;
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::indices::IndicesCreateParts;
use elasticsearch::params::Refresh;
use elasticsearch::{BulkParts, Elasticsearch};
use serde_json::{json, Value};

use recon_es_emulator::{Emulator, EmulatorConfig};

use super::cli_command as recon;
use super::pg::{test_database, TestDb};

/// A write model, a read model and a recon.toml pointing at both.
pub struct Fixture {
    pub db: TestDb,
    pub es_url: String,
    pub es: Elasticsearch,
    pub emulator: Option<Emulator>,
    pub dir: tempfile::TempDir,
}

pub const ORDERS_SCHEMA: &str = r#"
CREATE TABLE orders (
    id bigint PRIMARY KEY,
    customer text NOT NULL,
    total numeric(12,2) NOT NULL,
    ordered_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT '2024-01-01T00:00:00Z',
    items jsonb NOT NULL DEFAULT '[]'
);"#;

pub const ORDERS_QUERY: &str = r#"SELECT id AS "orderId", customer AS "customerName", items AS "products",
       total AS "totalPrice", ordered_at AS "orderDate", updated_at AS "updatedAt" FROM orders"#;

impl Fixture {
    pub async fn new(schema: &str) -> Fixture {
        let db = test_database().await;
        db.execute(schema).await;
        let (es_url, emulator) = match std::env::var("RECON_TEST_ES_URL") {
            Ok(url) => (url, None),
            Err(_) => {
                let emulator = Emulator::start("127.0.0.1:0", EmulatorConfig::default()).await.unwrap();
                (emulator.url(), Some(emulator))
            }
        };
        let transport = TransportBuilder::new(SingleNodeConnectionPool::new(es_url.parse().unwrap()))
            .disable_proxy()
            .build()
            .unwrap();
        Fixture {
            db,
            es_url,
            es: Elasticsearch::new(transport),
            emulator,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The usual orders table and an index `name` whose key field has `key_type`.
    pub async fn orders(index: &str, key_type: &str) -> Fixture {
        let f = Fixture::new(ORDERS_SCHEMA).await;
        f.create_index(
            index,
            json!({"orderId": {"type": key_type}, "orderDate": {"type": "date"}}),
        )
        .await;
        f.config(index, ORDERS_QUERY, "orderId", "");
        f
    }

    /// Creates `index` with `properties`, plus the `indexedAt` stamp every fixture's projector would add
    /// (the `compare.ignore` entry of [`Fixture::config`] names it).
    pub async fn create_index(&self, index: &str, mut properties: Value) {
        if let Some(fields) = properties.as_object_mut() {
            fields.entry("indexedAt").or_insert_with(|| json!({"type": "date"}));
        }
        let _ = self
            .es
            .indices()
            .delete(elasticsearch::indices::IndicesDeleteParts::Index(&[index]))
            .send()
            .await;
        let response = self
            .es
            .indices()
            .create(IndicesCreateParts::Index(index))
            .body(json!({"settings": {"number_of_shards": 1}, "mappings": {"properties": properties}}))
            .send()
            .await
            .unwrap();
        assert!(response.status_code().is_success(), "{:?}", response.text().await);
    }

    /// Indexes `(id, doc)` pairs and refreshes.
    pub async fn index_docs(&self, index: &str, docs: &[(String, Value)]) {
        let mut body: Vec<JsonBody<Value>> = Vec::new();
        for (id, doc) in docs {
            body.push(json!({"index": {"_index": index, "_id": id}}).into());
            body.push(doc.clone().into());
        }
        let response = self
            .es
            .bulk(BulkParts::None)
            .refresh(Refresh::True)
            .body(body)
            .send()
            .await
            .unwrap();
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["errors"], json!(false), "{answer}");
    }

    pub fn config(&self, index: &str, query: &str, key: &str, extra: &str) -> PathBuf {
        let path = self.dir.path().join("recon.toml");
        let (updated_at, ignore) = if query.contains("\"updatedAt\"") {
            ("updated_at = \"updatedAt\"\n", "\"updatedAt\", \"indexedAt\"")
        } else {
            ("", "\"indexedAt\"")
        };
        let text = format!(
            "[postgres]\nurl = \"{}\"\nquery = '''{query}'''\nkey = \"{key}\"\n{updated_at}\n\
             [elasticsearch]\nurl = \"{}\"\nindex = \"{index}\"\n\n\
             [compare]\nignore = [{ignore}]\n{extra}\n",
            self.db.url, self.es_url
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Runs a JSON check off the async runtime (the emulator serves on it meanwhile).
    pub async fn check_json(&self, args: &[&str]) -> (i32, Value, String) {
        let (code, stdout, stderr) = self
            .check_async(&[&["--format", "json", "--quiet"], args].concat())
            .await;
        let report = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
        (code, report, stderr)
    }

    pub async fn check_async(&self, args: &[&str]) -> (i32, String, String) {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let dir = self.dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            let out = recon()
                .current_dir(dir)
                .arg("check")
                .args(&args)
                .output()
                .expect("recon runs");
            (
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        })
        .await
        .unwrap()
    }
}

pub fn order_doc(id: i64, customer: &str, total: &str, date: &str, products: Value) -> (String, Value) {
    let total: Value = serde_json::from_str(total).unwrap();
    (
        id.to_string(),
        json!({"orderId": id, "customerName": customer, "products": products,
                              "totalPrice": total, "orderDate": date, "indexedAt": "2026-01-01T00:00:00Z"}),
    )
}

/// The usual four orders in the write model.
pub async fn seed_orders(f: &Fixture) {
    f.db.execute(
        r#"INSERT INTO orders (id, customer, total, ordered_at, items) VALUES
        (1, 'Ada', 100.00, '2024-03-01T10:00:00Z', '[{"sku":"A","name":"Pen","price":50.00},{"sku":"B","name":"Ink","price":50.00}]'),
        (2, 'Zoë', 12.50, '2024-03-02T11:30:00Z', '[{"sku":"C","name":"Pad","price":12.50}]'),
        (3, 'José', 7.00, '2024-03-03T00:00:00Z', '[]'),
        (4, 'Mia', 1.00, '2024-03-04T00:00:00Z', '[]')"#,
    )
    .await;
}

/// The fixture with one drift of each kind: 2 mismatched (nested price), 3 missing, 5 orphaned,
/// 4 duplicated under a second id.
pub async fn drifted() -> Fixture {
    let f = Fixture::orders("orders", "long").await;
    seed_orders(&f).await;
    f.config(
        "orders",
        ORDERS_QUERY,
        "orderId",
        "[compare.fields]\nproducts = { as = \"set\", key = \"sku\" }\norderDate = { as = \"instant\" }",
    );
    let four = order_doc(4, "Mia", "1", "2024-03-04T01:00:00+01:00", json!([]));
    f.index_docs(
        "orders",
        &[
            order_doc(
                1,
                "Ada",
                "100",
                "2024-03-01T10:00:00Z",
                json!([{"sku":"B","name":"Ink","price":50},{"sku":"A","name":"Pen","price":55}]),
            ),
            order_doc(
                2,
                "Zoe",
                "12.5",
                "2024-03-02T11:30:00Z",
                json!([{"sku":"C","name":"Pad","price":12.5}]),
            ),
            order_doc(5, "Ghost", "1", "2024-03-05T00:00:00Z", json!([])),
            four.clone(),
            ("4-retry".to_string(), four.1),
        ],
    )
    .await;
    f
}
