//! The example write model: a small shop (customers, products, orders, order lines) and the projection
//! query that turns it into one order document per row. Used by `recon demo`, the tests and the benches.
//!
//! The seed data is deterministic (a function of the order count and the seed, computed with
//! `hashint8`, never `random()`) and generated server-side with `generate_series`, so a million orders
//! load in seconds.

/// Tables of the shop. Plain `CREATE TABLE`s: run it in an empty database.
pub fn schema_sql() -> &'static str {
    r#"
CREATE TABLE customers (
    id   bigint PRIMARY KEY,
    name text   NOT NULL
);
CREATE TABLE products (
    sku   text          PRIMARY KEY,
    name  text          NOT NULL,
    price numeric(12,2) NOT NULL
);
CREATE TABLE orders (
    id          bigint      PRIMARY KEY,
    customer_id bigint      NOT NULL CONSTRAINT orders_customer_fk REFERENCES customers (id),
    order_date  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE order_lines (
    order_id bigint  NOT NULL CONSTRAINT order_lines_order_fk REFERENCES orders (id) ON DELETE CASCADE,
    sku      text    NOT NULL CONSTRAINT order_lines_product_fk REFERENCES products (sku),
    quantity integer NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, sku)
);
"#
}

/// One row per order: `orderId` bigint, `customerName` text, `products` jsonb array of
/// `{sku, name, price}` ordered by sku, `totalPrice` numeric, `orderDate` and `updatedAt` timestamptz.
/// An order without lines has `products = []` and `totalPrice = 0.00`.
pub fn projection_query() -> &'static str {
    r#"SELECT o.id AS "orderId",
       c.name AS "customerName",
       COALESCE(l.products, '[]'::jsonb) AS "products",
       COALESCE(l.total, 0)::numeric(14,2) AS "totalPrice",
       o.order_date AS "orderDate",
       o.updated_at AS "updatedAt"
  FROM orders o
  JOIN customers c ON c.id = o.customer_id
  LEFT JOIN LATERAL (
       SELECT jsonb_agg(jsonb_build_object('sku', p.sku, 'name', p.name, 'price', p.price)
                        ORDER BY p.sku COLLATE "C") AS products,
              sum(p.price * ol.quantity) AS total
         FROM order_lines ol
         JOIN products p ON p.sku = ol.sku
        WHERE ol.order_id = o.id) l ON true"#
}

/// The same documents as [`projection_query`] in recon's flat form: one row per order line (one row
/// with NULL product columns for an order without lines), `products[].…` columns that recon nests into
/// the `products` array. No JSON is built in PostgreSQL, which makes it the faster form; recon orders a
/// key's rows by its array columns (sku first), as the JSON form's `ORDER BY p.sku` does.
///
/// A plain join, with the order's total as a window over its lines: streamed as one ordered query
/// (`postgres.scan = "stream"`), PostgreSQL merge-joins orders and lines once and never builds JSON.
/// (Under `scan = "pages"` the same query would sort the rest of the table for every page; a per-order
/// LATERAL suits that mode better.)
pub fn flat_projection_query() -> &'static str {
    r#"SELECT o.id AS "orderId",
       c.name AS "customerName",
       p.sku AS "products[].sku",
       p.name AS "products[].name",
       p.price AS "products[].price",
       COALESCE(sum(p.price * ol.quantity) OVER (PARTITION BY o.id), 0)::numeric(14,2) AS "totalPrice",
       o.order_date AS "orderDate",
       o.updated_at AS "updatedAt"
  FROM orders o
  JOIN customers c ON c.id = o.customer_id
  LEFT JOIN order_lines ol ON ol.order_id = o.id
  LEFT JOIN products p ON p.sku = ol.sku"#
}

/// Number of products in the catalogue the seed creates.
pub const SEED_PRODUCTS: u64 = 200;

/// Inserts `orders` orders (ids 1..=orders) with 1 to 4 lines each, about `orders / 5` customers and
/// [`SEED_PRODUCTS`] products, then ANALYZEs. Expects the tables of [`schema_sql`], empty. The same `(orders, seed)` always gives the same data.
pub fn seed_sql(orders: u64, seed: u64) -> String {
    let customers = (orders / 5).max(10);
    let products = SEED_PRODUCTS;
    // A non-negative pseudo-random bigint from an integer expression; `salt` separates the streams.
    let hash = |expr: &str, salt: u64| {
        format!(
            "(hashint8(({expr}) * 1000003 + {}) ::bigint + 2147483648)",
            (seed % 1_000_000_007) * 7919 + salt
        )
    };
    let first_name = hash("c", 1);
    let last_name = hash("c", 2);
    let price = hash("p", 3);
    let customer = hash("o", 4);
    let order_second = hash("o", 5);
    let update_second = hash("o", 6);
    let line_count = hash("o", 7);
    let first_sku = hash("o", 8);
    let quantity = hash("o * 8 + n", 9);
    format!(
        r#"
-- Checking foreign keys row by row costs more than the inserts; check them once, at the end.
ALTER TABLE orders DROP CONSTRAINT orders_customer_fk;
ALTER TABLE order_lines DROP CONSTRAINT order_lines_order_fk, DROP CONSTRAINT order_lines_product_fk;

INSERT INTO customers (id, name)
SELECT c,
       (ARRAY['Ada','Zoë','José','Łucja','Mia','Noah','Søren','Hana','Chloé','Ömer'])[1 + {first_name} % 10]
       || ' ' ||
       (ARRAY['Lovelace','Müller','García','Nowak','Rossi','Schmidt','Dubois','Tanaka','Ångström','Smith'])[1 + {last_name} % 10]
       || ' #' || c
  FROM generate_series(1, {customers}::bigint) AS c;

INSERT INTO products (sku, name, price)
SELECT 'SKU-' || lpad(p::text, 5, '0'),
       'Product ' || p,
       ((100 + {price} % 99900) / 100.0)::numeric(12,2)
  FROM generate_series(1, {products}::bigint) AS p;

INSERT INTO orders (id, customer_id, order_date, updated_at)
SELECT o,
       1 + {customer} % {customers},
       timestamptz '2024-01-01 00:00:00+00' + ({order_second} % (366 * 86400)) * interval '1 second',
       timestamptz '2024-01-01 00:00:00+00' + ({order_second} % (366 * 86400)) * interval '1 second'
           + ({update_second} % 86400) * interval '1 second'
  FROM generate_series(1, {orders}::bigint) AS o;

-- Lines n = 0..3 pick skus first + 37n (mod {products}): distinct within an order as 37 and {products} are
-- coprime and n < 4.
INSERT INTO order_lines (order_id, sku, quantity)
SELECT o,
       'SKU-' || lpad((1 + ({first_sku} + 37 * n) % {products})::text, 5, '0'),
       1 + {quantity} % 5
  FROM generate_series(1, {orders}::bigint) AS o
  CROSS JOIN LATERAL generate_series(0, ({line_count} % 4)::bigint) AS n;

ALTER TABLE orders ADD CONSTRAINT orders_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id);
ALTER TABLE order_lines
    ADD CONSTRAINT order_lines_order_fk FOREIGN KEY (order_id) REFERENCES orders (id) ON DELETE CASCADE,
    ADD CONSTRAINT order_lines_product_fk FOREIGN KEY (sku) REFERENCES products (sku);
ANALYZE customers, products, orders, order_lines;
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_is_a_function_of_its_inputs() {
        assert_eq!(seed_sql(100, 7), seed_sql(100, 7));
        assert_ne!(seed_sql(100, 7), seed_sql(100, 8));
        assert!(seed_sql(1_000_000, 1).contains("generate_series(1, 1000000::bigint)"));
    }
}
