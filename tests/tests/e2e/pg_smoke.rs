//! Smoke tests for the private PostgreSQL harness: pgvector works over TCP and the unix socket,
//! vectors round-trip bit-exact, and the outage helpers (stop / start_again) work.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use pgvector::Vector;
use sqlx::Connection as _;
use sqlx::postgres::{PgConnection, PgPoolOptions};

use crate::support::pg::PgCluster;

/// Rows of (id, embedding). Values chosen to catch any lossy text/float conversion.
fn rows() -> Vec<(i64, Vec<f32>)> {
    vec![
        (1, vec![1.0, 0.0, 0.0]),
        (2, vec![0.1, 1.0 / 3.0, -2.5e-7]),
        (3, vec![-1.0, f32::MIN_POSITIVE, 3.402_823_5e38]),
        (4, vec![0.0, 0.0, 1.0]),
    ]
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[tokio::test]
async fn pgvector_over_tcp_and_unix_socket() {
    let pg = PgCluster::start();

    // --- TCP ---
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect(&pg.url())
        .await
        .unwrap_or_else(|e| panic!("connect {}: {e}", pg.url()));

    let extversion: Option<String> =
        sqlx::query_scalar("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            .fetch_optional(&pool)
            .await
            .unwrap();
    let extversion = extversion.expect("the vector extension is not installed in the database");
    assert!(!extversion.is_empty(), "empty pgvector extversion");

    sqlx::query("CREATE TABLE items (id bigint PRIMARY KEY, embedding vector(3) NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    for (id, v) in rows() {
        sqlx::query("INSERT INTO items (id, embedding) VALUES ($1, $2)")
            .bind(id)
            .bind(Vector::from(v))
            .execute(&pool)
            .await
            .unwrap();
    }

    // Nearest neighbour by cosine distance: (0.9, 0.1, 0) is closest to (1, 0, 0).
    let query = Vector::from(vec![0.9, 0.1, 0.0]);
    let (nearest, distance): (i64, f64) = sqlx::query_as(
        "SELECT id, embedding <=> $1 AS d FROM items ORDER BY embedding <=> $1, id LIMIT 1",
    )
    .bind(&query)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(nearest, 1, "nearest neighbour (cosine) of (0.9, 0.1, 0)");
    assert!(
        (0.0..0.01).contains(&distance),
        "cosine distance {distance}"
    );

    // And the farthest of the non-negative-ish rows really is ranked last.
    let order: Vec<i64> = sqlx::query_scalar("SELECT id FROM items ORDER BY embedding <=> $1, id")
        .bind(Vector::from(vec![0.0, 0.0, 1.0]))
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        order.first(),
        Some(&4),
        "order by cosine distance: {order:?}"
    );

    // Values come back bit-exact.
    let stored: Vec<(i64, Vector)> = sqlx::query_as("SELECT id, embedding FROM items ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    let expected = rows();
    assert_eq!(stored.len(), expected.len());
    for ((id, v), (want_id, want)) in stored.iter().zip(&expected) {
        assert_eq!(id, want_id);
        assert_eq!(bits(v.as_slice()), bits(want), "row {id} not bit-exact");
    }

    // --- unix socket ---
    let mut conn = PgConnection::connect(&pg.socket_url())
        .await
        .unwrap_or_else(|e| panic!("connect {}: {e}", pg.socket_url()));
    let over_socket: bool = sqlx::query_scalar("SELECT inet_client_addr() IS NULL")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(
        over_socket,
        "socket_url() did not connect over the unix socket"
    );
    let v: Vector = sqlx::query_scalar("SELECT embedding FROM items WHERE id = 2")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(bits(v.as_slice()), bits(&expected[1].1));
    let socket_extversion: String =
        sqlx::query_scalar("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(socket_extversion, extversion);
    conn.close().await.unwrap();

    pool.close().await;
}

#[tokio::test]
async fn stop_and_start_again_keeps_data() {
    let pg = PgCluster::start();
    let mut conn = PgConnection::connect(&pg.url()).await.unwrap();
    sqlx::query("CREATE TABLE t (v vector(3))")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO t VALUES ($1)")
        .bind(Vector::from(vec![1.0, 2.0, 3.0]))
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);

    pg.stop();
    assert!(
        PgConnection::connect(&pg.url()).await.is_err(),
        "connected while the cluster was stopped"
    );

    pg.start_again();
    let mut conn = PgConnection::connect(&pg.url()).await.unwrap();
    let v: Vector = sqlx::query_scalar("SELECT v FROM t")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(v.to_vec(), vec![1.0, 2.0, 3.0]);
    conn.close().await.unwrap();
}
