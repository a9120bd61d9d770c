//! The PostgreSQL write-model source against a real server (see `support::pg`).

use std::str::FromStr;

use bigdecimal::BigDecimal;
use futures::TryStreamExt;
use recon::model::{Key, KeyedDoc};
use recon::source::postgres::{KeyKind, PostgresSettings, PostgresSource, ScanMode};
use recon::source::{DocumentSource, KeyRange};
use serde_json::Value;

use crate::support::{self, shop_database, shop_projection_query, test_database, TestDb};

async fn connect(settings: PostgresSettings) -> PostgresSource {
    PostgresSource::connect(settings)
        .await
        .unwrap_or_else(|e| panic!("connect failed: {e:#}"))
}

async fn scan(source: &PostgresSource, range: KeyRange) -> Vec<KeyedDoc> {
    let scan = source
        .open_scan(range)
        .await
        .unwrap_or_else(|e| panic!("open_scan failed: {e:#}"));
    scan.docs
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("scan failed: {e:#}"))
}

async fn connect_error(settings: PostgresSettings) -> String {
    match PostgresSource::connect(settings).await {
        Ok(_) => panic!("connect succeeded"),
        Err(e) => format!("{e:#}"),
    }
}

fn int_keys(docs: &[KeyedDoc]) -> Vec<i64> {
    docs.iter()
        .map(|d| match d.key {
            Key::Int(i) => i,
            Key::Text(ref s) => panic!("text key {s}"),
        })
        .collect()
}

fn text_keys(docs: &[KeyedDoc]) -> Vec<String> {
    docs.iter().map(|d| d.key.doc_id()).collect()
}

fn shop_settings(db: &TestDb, page_size: usize) -> PostgresSettings {
    let mut settings = db.settings(shop_projection_query(), "orderId");
    settings.page_size = page_size;
    settings.updated_at = Some("updatedAt".into());
    settings
}

#[tokio::test]
async fn pages_cross_boundaries_in_key_order() {
    let db = shop_database(23, 1).await;
    for mode in [ScanMode::Stream, ScanMode::Pages] {
        let mut settings = shop_settings(&db, 5);
        settings.scan = mode;
        ranges_in_key_order(&connect(settings).await).await;
    }
    // Both modes read the same documents.
    let mut pages = shop_settings(&db, 5);
    pages.scan = ScanMode::Pages;
    let streamed = scan(&connect(shop_settings(&db, 5)).await, KeyRange::all()).await;
    let paged = scan(&connect(pages).await, KeyRange::all()).await;
    assert_eq!(
        streamed.iter().map(|d| &d.doc).collect::<Vec<_>>(),
        paged.iter().map(|d| &d.doc).collect::<Vec<_>>()
    );
}

async fn ranges_in_key_order(source: &PostgresSource) {
    assert_eq!(source.key_kind(), KeyKind::Int);
    assert_eq!(
        source.columns(),
        [
            "orderId",
            "customerName",
            "products",
            "totalPrice",
            "orderDate",
            "updatedAt"
        ]
    );

    let all = scan(source, KeyRange::all()).await;
    assert_eq!(int_keys(&all), (1..=23).collect::<Vec<_>>());

    // Bounds inside pages and exactly on a page multiple (5 rows in 5-row pages: an empty last page).
    let range = KeyRange {
        after: Some(Key::Int(4)),
        until: Some(Key::Int(9)),
    };
    assert_eq!(int_keys(&scan(source, range).await), vec![5, 6, 7, 8, 9]);
    let tail = KeyRange {
        after: Some(Key::Int(20)),
        until: None,
    };
    assert_eq!(int_keys(&scan(source, tail).await), vec![21, 22, 23]);
    let head = KeyRange {
        after: None,
        until: Some(Key::Int(10)),
    };
    assert_eq!(int_keys(&scan(source, head).await), (1..=10).collect::<Vec<_>>());
    let empty = KeyRange {
        after: Some(Key::Int(23)),
        until: None,
    };
    assert!(scan(source, empty).await.is_empty());

    // A range key of the wrong kind is refused rather than silently matching nothing.
    let wrong = KeyRange {
        after: Some(Key::Text("5".into())),
        until: None,
    };
    let err = source.open_scan(wrong).await.err().expect("text bound on an int key");
    assert!(format!("{err:#}").contains("key column \"orderId\""), "{err:#}");
}

#[tokio::test]
async fn scan_reports_snapshot_time_and_an_estimate() {
    let db = shop_database(300, 2).await;
    let source = connect(shop_settings(&db, 100)).await;
    let before = chrono::Utc::now().timestamp_millis();
    let scan = source.open_scan(KeyRange::all()).await.unwrap();
    let after = chrono::Utc::now().timestamp_millis();
    let snapshot = scan.snapshot_ms.expect("snapshot time");
    // Same machine's clock: within the call, give or take clock granularity.
    assert!(
        before - 1000 <= snapshot && snapshot <= after + 1000,
        "{before} {snapshot} {after}"
    );
    let estimate = scan.estimate.expect("an estimate after ANALYZE");
    assert!((150..=600).contains(&estimate), "estimate {estimate} for 300 rows");
    let docs: Vec<KeyedDoc> = scan.docs.try_collect().await.unwrap();
    assert_eq!(docs.len(), 300);
}

/// Cross-checks the projection and the decoding against independent arithmetic: each order's
/// totalPrice is the sum of its products' prices times quantities, products are sorted by sku.
#[tokio::test]
async fn shop_documents_are_consistent_with_their_lines() {
    let db = shop_database(200, 3).await;
    let source = connect(shop_settings(&db, 64)).await;
    let docs = scan(&source, KeyRange::all()).await;
    let mut conn = db.connect().await;
    let quantities: Vec<(i64, String, i32)> =
        sqlx::query_as("SELECT order_id, sku, quantity FROM order_lines ORDER BY order_id, sku")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    for doc in &docs {
        let id = int_keys(std::slice::from_ref(doc))[0];
        let products = doc.doc["products"].as_array().expect("products array");
        assert!(
            (1..=4).contains(&products.len()),
            "order {id}: {} lines",
            products.len()
        );
        let skus: Vec<&str> = products.iter().map(|p| p["sku"].as_str().unwrap()).collect();
        let mut sorted = skus.clone();
        sorted.sort();
        assert_eq!(skus, sorted, "order {id}");
        let mut expected = BigDecimal::from(0);
        for product in products {
            let sku = product["sku"].as_str().unwrap();
            let quantity = quantities
                .iter()
                .find(|(o, s, _)| *o == id && s == sku)
                .map(|(_, _, q)| *q)
                .expect("line exists");
            let price = BigDecimal::from_str(&product["price"].to_string()).unwrap();
            expected += price * BigDecimal::from(quantity);
        }
        let total = BigDecimal::from_str(&doc.doc["totalPrice"].to_string()).unwrap();
        assert_eq!(total, expected, "order {id}");
        // updated_at feeds the metadata, and stays in the document.
        let updated = chrono::DateTime::parse_from_rfc3339(doc.doc["updatedAt"].as_str().unwrap()).unwrap();
        assert_eq!(doc.meta.updated_at_ms, Some(updated.timestamp_millis()), "order {id}");
    }
}

#[tokio::test]
async fn scan_sees_one_snapshot_and_lookup_sees_the_present() {
    let db = test_database().await;
    db.execute(
        "CREATE TABLE items (id int PRIMARY KEY, v text NOT NULL);
         INSERT INTO items SELECT i, 'v' || i FROM generate_series(1, 10) AS i;",
    )
    .await;
    let mut settings = db.settings("SELECT id, v FROM items", "id");
    settings.page_size = 2;
    settings.prefetch_pages = 1;
    let source = connect(settings).await;
    let mut scan = source.open_scan(KeyRange::all()).await.unwrap();
    let first = scan.docs.try_next().await.unwrap().expect("a first row");
    assert_eq!(first.key, Key::Int(1));

    // Another session changes rows the scan has not read yet (at most 2 pages of 2 are read ahead).
    db.execute(
        "INSERT INTO items VALUES (11, 'new');
         UPDATE items SET v = 'changed' WHERE id = 9;
         DELETE FROM items WHERE id = 10;",
    )
    .await;

    let rest: Vec<KeyedDoc> = scan.docs.try_collect().await.unwrap();
    assert_eq!(int_keys(&rest), (2..=10).collect::<Vec<_>>());
    let nine = rest.iter().find(|d| d.key == Key::Int(9)).unwrap();
    assert_eq!(nine.doc["v"], "v9");

    let mut found = source
        .lookup(&[Key::Int(9), Key::Int(10), Key::Int(11), Key::Int(99)])
        .await
        .unwrap();
    found.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(int_keys(&found), vec![9, 11]);
    assert_eq!(found[0].doc["v"], "changed");
    assert_eq!(found[1].doc["v"], "new");
}

#[tokio::test]
async fn lookup_returns_the_scanned_documents_in_batches() {
    let db = shop_database(1500, 4).await;
    let source = connect(shop_settings(&db, 5000)).await;
    let scanned = scan(&source, KeyRange::all()).await;
    // More keys than one lookup batch, with absent keys and a key of the other kind mixed in.
    let mut keys: Vec<Key> = (1..=1500).rev().map(Key::Int).collect();
    keys.push(Key::Int(0));
    keys.push(Key::Int(i64::MAX));
    keys.push(Key::Text("7".into()));
    let mut found = source.lookup(&keys).await.unwrap();
    found.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(found, scanned);
    assert!(source.lookup(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn values_map_like_a_projector_would_send_them() {
    let db = test_database().await;
    // A non-UTC zone configured for the database must not change how instants are rendered. (sqlx pins
    // the session to UTC at startup anyway; the values are decoded from binary, which has no zone.)
    db.execute(&format!(
        "ALTER DATABASE {} SET timezone = 'America/New_York';
         CREATE DOMAIN money2 AS numeric(12,2);",
        db.name
    ))
    .await;
    let query = r#"SELECT 1::int8 AS id,
        true AS b,
        7::int2 AS i2,
        -8::int4 AS i4,
        9007199254740993::int8 AS i8,
        12345678901234567890.10::numeric AS n,
        12.50::numeric(12,2) AS price,
        3.10::money2 AS domain,
        'NaN'::numeric AS nan,
        0.1::real AS r,
        0.1::float8 AS d,
        '-Infinity'::float8 AS inf,
        'text ✓'::text AS t,
        'vc'::varchar(5) AS vc,
        'ab'::char(3) AS ch,
        'nm'::name AS nm,
        'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'::uuid AS u,
        '2024-03-01 05:00:00-05'::timestamptz AS tz,
        '2024-03-01 10:00:00.123456+00'::timestamptz AS tzf,
        '2024-03-01 10:00:00.5'::timestamp AS ts,
        '2024-03-01'::date AS dt,
        'infinity'::timestamptz AS tzinf,
        '{"b": 1.50, "a": 12345678901234567890, "n": null}'::jsonb AS jb,
        '{"z": 1, "a": [2.0]}'::json AS js,
        ARRAY[1, NULL, 9007199254740993]::int8[] AS ai,
        ARRAY['x', 'y']::text[] AS at,
        ARRAY[1.10, 2]::numeric[] AS an,
        ARRAY[[true], [false]] AS ab2,
        ARRAY['2024-03-01 10:00:00+00']::timestamptz[] AS atz,
        '{}'::int4[] AS empty,
        NULL::text AS nul"#;
    let source = connect(db.settings(query, "id")).await;
    let docs = scan(&source, KeyRange::all()).await;
    assert_eq!(docs.len(), 1);
    let expected = r#"{"id":1,"b":true,"i2":7,"i4":-8,"i8":9007199254740993,"n":12345678901234567890.10,"price":12.50,"domain":3.10,"nan":"NaN","r":0.1,"d":0.1,"inf":"-Infinity","t":"text ✓","vc":"vc","ch":"ab ","nm":"nm","u":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11","tz":"2024-03-01T10:00:00Z","tzf":"2024-03-01T10:00:00.123456Z","ts":"2024-03-01T10:00:00.5","dt":"2024-03-01","tzinf":"infinity","jb":{"a":12345678901234567890,"b":1.50,"n":null},"js":{"z":1,"a":[2.0]},"ai":[1,null,9007199254740993],"at":["x","y"],"an":[1.10,2],"ab2":[[true],[false]],"atz":["2024-03-01T10:00:00Z"],"empty":[],"nul":null}"#;
    assert_eq!(docs[0].doc.to_string(), expected);
    // The bigint is exact, not rounded through f64 (9007199254740993 is not a double).
    assert_eq!(docs[0].doc["i8"].as_i64(), Some(9007199254740993));
}

#[tokio::test]
async fn text_keys_follow_utf8_byte_order() {
    let db = test_database().await;
    // A linguistic collation on the column: recon must still page in byte order. ICU's root collation
    // is there when the server was built with ICU (Debian's is); fall back to the default otherwise.
    let icu = {
        let mut conn = db.connect().await;
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM pg_collation WHERE collname = 'und-x-icu'")
            .fetch_one(&mut conn)
            .await
            .unwrap()
            > 0
    };
    let collate = if icu { r#"COLLATE "und-x-icu""# } else { "" };
    let mut keys: Vec<String> = [
        "a", "B", "é", "Z", "z", "~", "\u{FF5E}", "😀", "ab", "a b", "A", "e", "ë", "10", "9", "ß",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let values: Vec<String> = keys.iter().map(|k| format!("('{k}')")).collect();
    db.execute(&format!(
        "CREATE TABLE words (w text {collate} PRIMARY KEY);
         INSERT INTO words VALUES {};",
        values.join(", ")
    ))
    .await;
    let mut settings = db.settings("SELECT w FROM words", "w");
    settings.page_size = 3;
    let source = connect(settings).await;
    assert_eq!(source.key_kind(), KeyKind::Text);
    let docs = scan(&source, KeyRange::all()).await;
    keys.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    assert_eq!(text_keys(&docs), keys);
    // Ranges use the same order: strictly after "Z", up to and including "é".
    let range = KeyRange {
        after: Some(Key::Text("Z".into())),
        until: Some(Key::Text("é".into())),
    };
    let expected: Vec<String> = keys
        .iter()
        .filter(|k| k.as_str() > "Z" && k.as_str() <= "é")
        .cloned()
        .collect();
    assert_eq!(text_keys(&scan(&source, range).await), expected);
    let mut found = source
        .lookup(&[Key::Text("😀".into()), Key::Text("ß".into()), Key::Text("nope".into())])
        .await
        .unwrap();
    found.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(text_keys(&found), vec!["ß", "😀"]);
}

#[tokio::test]
async fn uuid_keys_page_in_text_byte_order() {
    let db = test_database().await;
    db.execute(
        "CREATE TABLE things (id uuid PRIMARY KEY, n int);
         INSERT INTO things SELECT md5(i::text)::uuid, i FROM generate_series(1, 40) AS i;",
    )
    .await;
    let mut settings = db.settings("SELECT id, n FROM things", "id");
    settings.page_size = 7;
    let source = connect(settings).await;
    assert_eq!(source.key_kind(), KeyKind::Text);
    let docs = scan(&source, KeyRange::all()).await;
    let mut expected: Vec<String> = {
        let mut conn = db.connect().await;
        sqlx::query_scalar("SELECT id::text FROM things")
            .fetch_all(&mut conn)
            .await
            .unwrap()
    };
    expected.sort();
    assert_eq!(text_keys(&docs), expected);
    let probe = expected[5].clone();
    let found = source
        .lookup(&[Key::Text(probe.clone()), Key::Text("not-a-uuid".into())])
        .await
        .unwrap();
    assert_eq!(text_keys(&found), vec![probe]);
}

#[tokio::test]
async fn connect_errors_say_what_to_fix() {
    let db = test_database().await;
    db.execute(
        "CREATE TABLE t (id int, amount numeric, at timestamptz, span interval, label text);
         INSERT INTO t VALUES (1, 1, now(), '1 day', 'x');",
    )
    .await;

    let missing = connect_error(db.settings("SELECT * FROM orders", "id")).await;
    assert!(missing.contains(r#"relation "orders" does not exist"#), "{missing}");
    assert!(missing.contains("check postgres.query"), "{missing}");

    let syntax = connect_error(db.settings("SELEC id FROM t", "id")).await;
    assert!(
        syntax.contains("syntax error") && syntax.contains("check postgres.query"),
        "{syntax}"
    );

    let unknown_key = connect_error(db.settings("SELECT id, label FROM t", "orderId")).await;
    assert!(
        unknown_key.contains(r#"key column "orderId" is not a column"#),
        "{unknown_key}"
    );
    assert!(unknown_key.contains(r#""id", "label""#), "{unknown_key}");

    let bad_key = connect_error(db.settings("SELECT amount, label FROM t", "amount")).await;
    assert!(bad_key.contains(r#"key column "amount" has type numeric"#), "{bad_key}");
    assert!(
        bad_key.contains("supported: smallint, integer, bigint, text"),
        "{bad_key}"
    );

    let bad_column = connect_error(db.settings("SELECT id, span FROM t", "id")).await;
    assert!(
        bad_column.contains(r#"column "span" has type interval"#),
        "{bad_column}"
    );

    let duplicate = connect_error(db.settings("SELECT id, label AS id FROM t", "id")).await;
    assert!(duplicate.contains(r#"column "id" more than once"#), "{duplicate}");

    let mut updated = db.settings("SELECT id, label FROM t", "id");
    updated.updated_at = Some("label".into());
    let updated = connect_error(updated).await;
    assert!(
        updated.contains(r#"updated_at column "label" has type text"#),
        "{updated}"
    );

    let mut no_db = db.settings("SELECT 1 AS id", "id");
    no_db.url = db.url.replace(&db.name, "recon_no_such_db");
    let no_db = connect_error(no_db).await;
    assert!(
        no_db.contains("does not exist") && no_db.contains("database name"),
        "{no_db}"
    );
}

#[tokio::test]
async fn unreachable_server_is_reported_without_the_password() {
    // Port 1 on localhost: nothing listens there.
    let mut settings = PostgresSettings::new("postgres://app:hunter2@127.0.0.1:1/shop", "SELECT 1 AS id", "id");
    settings.connect_timeout = std::time::Duration::from_secs(5);
    let message = connect_error(settings).await;
    assert!(
        message.contains("cannot reach PostgreSQL at postgres://app:***@127.0.0.1:1/shop"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
}

#[tokio::test]
async fn wrong_password_is_an_authentication_error_without_the_password() {
    let db = test_database().await;
    let role = format!("{}_pw", db.name);
    let group = recon_testkit::pgcluster::PASSWORD_GROUP;
    db.execute(&format!(
        "DO $$ BEGIN CREATE ROLE {group}; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
         CREATE ROLE {role} LOGIN PASSWORD 'right-password' IN ROLE {group};"
    ))
    .await;
    let mut settings = db.settings("SELECT 1 AS id", "id");
    settings.url = db.url_as(&role, "wrong-password");
    let result = PostgresSource::connect(settings).await;
    if !support::pg::on_throwaway_cluster() && result.is_ok() {
        eprintln!("the server at RECON_TEST_DATABASE_URL trusts every login; wrong-password case not checked");
        return;
    }
    let message = format!("{:#}", result.err().expect("a wrong password is refused"));
    assert!(message.contains("password authentication failed"), "{message}");
    assert!(message.contains("check the user and password"), "{message}");
    assert!(!message.contains("wrong-password"), "{message}");

    // And the right one works, so the failure above was the password's.
    let mut settings = db.settings("SELECT 1 AS id", "id");
    settings.url = db.url_as(&role, "right-password");
    connect(settings).await;
}

#[tokio::test]
async fn null_and_duplicate_keys_fail_the_scan() {
    let db = test_database().await;
    db.execute(
        "CREATE TABLE loose (id int, v text);
         INSERT INTO loose VALUES (1, 'a'), (2, 'b'), (NULL, 'c'), (2, 'd');",
    )
    .await;
    let source = connect(db.settings("SELECT id, v FROM loose WHERE v <> 'd'", "id")).await;
    let opened = source.open_scan(KeyRange::all()).await.unwrap();
    let err = opened.docs.try_collect::<Vec<_>>().await.expect_err("NULL key");
    let message = format!("{err:#}");
    assert!(
        message.contains(r#"row 3 of the scan has a NULL key column "id""#),
        "{message}"
    );

    // Read up to the error: the keys before it, and its message.
    async fn until_error(source: &PostgresSource, range: KeyRange) -> (Vec<Key>, String) {
        let mut docs = source.open_scan(range).await.unwrap().docs;
        let mut keys = Vec::new();
        loop {
            match docs.try_next().await {
                Ok(Some(doc)) => keys.push(doc.key),
                Ok(None) => panic!("scan ended without noticing the NULL key"),
                Err(e) => return (keys, format!("{e:#}")),
            }
        }
    }
    let up_to_9 = KeyRange {
        after: None,
        until: Some(Key::Int(9)),
    };
    // Streamed, NULL keys sort last and fail when decoded; a range bounded above (`id <= 9`) leaves
    // them out of the query, so the probe at the end finds them.
    let mut settings = db.settings("SELECT id, v FROM loose WHERE v <> 'b'", "id");
    settings.page_size = 1;
    let source = connect(settings.clone()).await;
    let (keys, message) = until_error(&source, KeyRange::all()).await;
    assert_eq!(keys, vec![Key::Int(1), Key::Int(2)]);
    assert!(
        message.contains(r#"row 3 of the scan has a NULL key column "id""#),
        "{message}"
    );
    let (keys, message) = until_error(&source, up_to_9.clone()).await;
    assert_eq!(keys, vec![Key::Int(1), Key::Int(2)]);
    assert!(message.contains(r#"key column "id" is NULL"#), "{message}");

    // In pages, beyond the first page `id > last` hides NULL keys; the probe at the end finds them.
    settings.scan = ScanMode::Pages;
    let source = connect(settings).await;
    for range in [KeyRange::all(), up_to_9] {
        let (keys, message) = until_error(&source, range).await;
        assert_eq!(keys, vec![Key::Int(1), Key::Int(2)]);
        assert!(message.contains(r#"key column "id" is NULL"#), "{message}");
    }
    // A scan starting after a key covers no NULLs: no probe, no error.
    let range = KeyRange {
        after: Some(Key::Int(0)),
        until: None,
    };
    assert_eq!(int_keys(&scan(&source, range).await), vec![1, 2]);

    let source = connect(db.settings("SELECT id, v FROM loose WHERE id IS NOT NULL", "id")).await;
    let opened = source.open_scan(KeyRange::all()).await.unwrap();
    let err = opened.docs.try_collect::<Vec<_>>().await.expect_err("duplicate key");
    assert!(format!("{err:#}").contains("key 2 appears more than once"), "{err:#}");
}

#[tokio::test]
async fn describe_names_the_server_without_secrets() {
    let db = test_database().await;
    let role = format!("{}_d", db.name);
    db.execute(&format!("CREATE ROLE {role} LOGIN PASSWORD 'pa55word' SUPERUSER"))
        .await;
    let mut settings = db.settings("SELECT 1 AS id", "id");
    settings.url = db.url_as(&role, "pa55word");
    let source = connect(settings.clone()).await;
    let description = source.describe();
    assert!(
        description.contains(&db.name) && description.contains("\"id\""),
        "{description}"
    );
    assert!(!description.contains("pa55word"), "{description}");
    assert!(!format!("{settings:?}").contains("pa55word"));
}

#[tokio::test]
async fn extension_and_domain_types_decode_as_their_base_types() {
    let db = test_database().await;
    let available: bool = {
        let mut conn = db.connect().await;
        sqlx::query_scalar("SELECT count(*) > 0 FROM pg_available_extensions WHERE name = 'citext'")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    };
    if !available {
        eprintln!("citext is not installed on the test server; extension types not checked");
        return;
    }
    db.execute(
        "CREATE EXTENSION citext;
         CREATE DOMAIN order_id AS bigint CHECK (VALUE > 0);
         CREATE DOMAIN tags AS text[];
         CREATE TABLE t (id order_id PRIMARY KEY, email citext, aliases citext[], labels tags);
         INSERT INTO t VALUES (2, 'B@x.org', '{A@x.org}', '{x,y}'), (1, 'a@x.org', '{}', NULL);",
    )
    .await;
    let mut settings = db.settings("SELECT * FROM t", "id");
    settings.page_size = 1;
    let source = connect(settings).await;
    assert_eq!(source.key_kind(), KeyKind::Int);
    let docs = scan(&source, KeyRange::all()).await;
    let rendered: Vec<String> = docs.iter().map(|d| d.doc.to_string()).collect();
    assert_eq!(
        rendered,
        [
            r#"{"id":1,"email":"a@x.org","aliases":[],"labels":null}"#,
            r#"{"id":2,"email":"B@x.org","aliases":["A@x.org"],"labels":["x","y"]}"#,
        ]
    );
}

#[tokio::test]
async fn lookup_matches_exact_keys_under_a_case_insensitive_collation() {
    let db = test_database().await;
    let icu: bool = {
        let mut conn = db.connect().await;
        sqlx::query_scalar("SELECT count(*) > 0 FROM pg_collation WHERE collprovider = 'i'")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    };
    if !icu {
        eprintln!("the test server has no ICU; nondeterministic collations not checked");
        return;
    }
    db.execute(
        "CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
         CREATE TABLE people (email text COLLATE ci PRIMARY KEY, n int);
         INSERT INTO people VALUES ('ann@x.org', 1), ('Bob@x.org', 2);",
    )
    .await;
    let source = connect(db.settings("SELECT email, n FROM people", "email")).await;
    // 'ANN@x.org' equals 'ann@x.org' under the collation, but is not the same key.
    let keys = [Key::Text("ANN@x.org".into()), Key::Text("Bob@x.org".into())];
    let found = source.lookup(&keys).await.unwrap();
    assert_eq!(text_keys(&found), vec!["Bob@x.org"]);
}

#[tokio::test]
async fn an_order_without_lines_has_no_products_and_a_zero_total() {
    let db = shop_database(3, 5).await;
    db.execute(
        "INSERT INTO orders (id, customer_id, order_date, updated_at)
         VALUES (4, 1, '2024-05-01T12:00:00Z', '2024-05-02T08:30:00.25Z');",
    )
    .await;
    let source = connect(shop_settings(&db, 10)).await;
    let docs = source.lookup(&[Key::Int(4)]).await.unwrap();
    assert_eq!(docs.len(), 1);
    let doc = &docs[0].doc;
    assert_eq!(doc["products"], Value::Array(Vec::new()));
    assert_eq!(doc["totalPrice"].to_string(), "0.00");
    assert_eq!(doc["orderDate"], "2024-05-01T12:00:00Z");
    assert_eq!(doc["updatedAt"], "2024-05-02T08:30:00.25Z");
    assert_eq!(docs[0].meta.updated_at_ms, Some(1_714_638_600_250));
}

#[tokio::test]
async fn a_streamed_scan_outlives_the_roles_statement_timeout() {
    let db = test_database().await;
    let role = format!("{}_t", db.name);
    // An application role whose statements are cut off after 200 ms, and a scan that takes longer:
    // four rows at 100 ms each.
    db.execute(&format!(
        "CREATE ROLE {role} LOGIN PASSWORD 'pw' SUPERUSER;
         ALTER ROLE {role} SET statement_timeout = '200ms';
         CREATE TABLE slow (id int PRIMARY KEY);
         INSERT INTO slow SELECT generate_series(1, 4);"
    ))
    .await;
    let query = "SELECT id, pg_sleep(0.1)::text AS slept FROM slow";
    let mut settings = db.settings(query, "id");
    settings.url = db.url_as(&role, "pw");
    let source = connect(settings.clone()).await;
    assert_eq!(int_keys(&scan(&source, KeyRange::all()).await), vec![1, 2, 3, 4]);

    // The timeout itself is real: the same query as one plain statement of that role is cancelled.
    let mut conn: sqlx::PgConnection = sqlx::Connection::connect(&settings.url).await.unwrap();
    let err = sqlx::query(query)
        .fetch_all(&mut conn)
        .await
        .expect_err("statement_timeout");
    assert!(err.to_string().contains("statement timeout"), "{err}");
}
