//! The page queries seek their index: on analysed tables of tens of thousands of rows, each
//! page's plan (custom, and generic as a cached prepared statement gets after a few runs)
//! starts its index range at the cursor (the keyset bound is an index condition), and no plan
//! scans the table: a page costs its own rows, however deep it is.

use sqlx::{Executor, PgConnection, Row};

use super::{PostgresStore, objects, operations};

/// The plan of `sql` run with `args` (SQL literals), under `mode` (`plan_cache_mode`).
async fn plan(conn: &mut PgConnection, mode: &str, sql: &str, types: &str, args: &str) -> String {
    conn.execute(format!("SET plan_cache_mode = {mode}").as_str()).await.expect("set mode");
    conn.execute(format!("PREPARE page ({types}) AS {sql}").as_str()).await.expect("prepare");
    let rows = sqlx::query(&format!("EXPLAIN EXECUTE page ({args})"))
        .fetch_all(&mut *conn)
        .await
        .expect("explain");
    conn.execute("DEALLOCATE page").await.expect("deallocate");
    let lines: Vec<String> = rows.iter().map(|r| r.get::<String, _>(0)).collect();
    lines.join("\n")
}

#[tokio::test]
async fn pages_read_their_index_in_order() {
    let Some(db) = kws_testenv::postgres().await else { return };
    let store = PostgresStore::connect(db.pool().await).await.expect("connect");
    let mut conn = store.pool().acquire().await.expect("a connection");
    let seed = "\
        INSERT INTO kws_platform.tenants (id, display_name, quotas, version, created_at, \
            updated_at) \
        SELECT 't' || i, 'T', '{}', 1, now(), now() FROM generate_series(0, 99) i; \
        INSERT INTO kws_platform.objects (id, kind, tenant, name, unique_key, cpu_millis, \
            memory_mb, spec, status, observed_at, origin, version, created_at, updated_at) \
        SELECT gen_random_uuid(), \
               (ARRAY['instance', 'app', 'device', 'database', 'job'])[1 + (i / 100) % 5], \
               't' || (i % 100), 'o' || i, NULL, 0, 0, '{}', 'null', NULL, NULL, 1, now(), now() \
        FROM generate_series(0, 49999) i; \
        INSERT INTO kws_platform.operations (id, tenant, kind, target, idempotency_key, \
            request_hash, request, state, steps, error, result, deadline, cancel_requested, \
            holder, lease_until, created_at, updated_at, version) \
        SELECT gen_random_uuid(), 't' || (i % 100), 'k', 't', NULL, 'h', '{}', 'succeeded', '[]', \
               NULL, 'null', now(), false, NULL, NULL, now(), now(), 1 \
        FROM generate_series(0, 49999) i; \
        ANALYZE kws_platform.tenants, kws_platform.objects, kws_platform.operations;";
    conn.execute(sqlx::raw_sql(seed)).await.expect("seed");
    let cases = [
        (
            objects::tenant_page_sql(),
            "text, text, text, bigint",
            "'t7', 'device', 'o5', 100",
            "name > ",
            // objects_name_key and objects_by_kind both hold (tenant, kind) before the name.
            "",
        ),
        (
            objects::kind_page_sql(),
            "text, text, text, bigint",
            "'instance', 't7', 'o5', 100",
            "ROW(tenant, name) > ROW(",
            // Not objects_name_key: its kind comes between tenant and name, so it would read
            // every kind of every later tenant.
            "objects_by_kind",
        ),
        (
            operations::operations_page_sql(true, true),
            "text, uuid, bigint",
            "'t7', 'f0000000-0000-0000-0000-000000000000', 100",
            "id < ",
            "operations_by_tenant",
        ),
        (
            operations::operations_page_sql(true, false),
            "text, uuid, bigint",
            "'t7', NULL, 100",
            "tenant = ",
            "operations_by_tenant",
        ),
        (
            operations::operations_page_sql(false, true),
            "text, uuid, bigint",
            "NULL, 'f0000000-0000-0000-0000-000000000000', 100",
            "id < ",
            "operations_pkey",
        ),
    ];
    for (sql, types, args, bound, index) in &cases {
        for mode in ["force_custom_plan", "force_generic_plan"] {
            let plan = plan(&mut conn, mode, sql, types, args).await;
            assert!(plan.contains("Index Scan"), "{mode}: no index scan:\n{plan}");
            let cond = plan.lines().filter(|l| l.contains("Index Cond:")).collect::<String>();
            assert!(cond.contains(bound), "{mode}: the page does not seek to {bound}:\n{plan}");
            assert!(plan.contains(index), "{mode}: not a range of {index}:\n{plan}");
            assert!(!plan.contains("Seq Scan"), "{mode}: a sequential scan:\n{plan}");
        }
    }
}
