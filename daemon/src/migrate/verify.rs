//! Verification: the target's records, streamed out with binary `COPY … TO STDOUT`, hashed as
//! the source's were, compared per store; on a mismatch both sides are re-read for the
//! differing buckets only, to name the first records that differ.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures::StreamExt as _;
use sqlx::PgConnection;

use super::cell::ColType;
use super::copy_binary::TupleReader;
use super::digest::{Digest, bucket, record_hash};
use super::error::MigrateError;
use super::feed::{Limits, SourceCtx, row_hash, row_key, spawn};
use super::table::{Store, TableSpec};
use crate::storage::postgres::{PgStores, db_err};
use crate::storage::{Backend, VectorMatch, VectorNamespace, VectorStore};

/// How many differing records a report names.
const NAMED: usize = 10;

fn tgt(context: &str, e: sqlx::Error) -> MigrateError {
    MigrateError::target(db_err(context, e))
}

/// Calls `f(key, hash)` for every target record of the store, streamed.
async fn pg_rows(
    conn: &mut PgConnection,
    spec: &TableSpec,
    workspace: &str,
    mut f: impl FnMut(String, u128),
) -> Result<(), MigrateError> {
    let hashed: Vec<_> = spec.columns.iter().filter(|c| c.hashed).collect();
    let list: Vec<&str> = hashed.iter().map(|c| c.name).collect();
    let types: Vec<ColType> = hashed.iter().map(|c| c.ty).collect();
    let sql = format!(
        "COPY (SELECT {} FROM {} WHERE {}) TO STDOUT (FORMAT binary)",
        list.join(", "),
        spec.table,
        spec.scope(workspace)
    );
    // Key columns sit at the same positions among the hashed ones (they are always hashed).
    let mut reader = TupleReader::new(types);
    let mut stream = conn
        .copy_out_raw(&sql)
        .await
        .map_err(|e| tgt(&format!("read back {}", spec.table), e))?;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| tgt(&format!("read back {}", spec.table), e))?;
        reader.feed(&chunk);
        while let Some(cells) = reader
            .next_tuple()
            .map_err(|e| MigrateError::Target(format!("{}: {e}", spec.table)))?
        {
            let key = row_key(spec.store, &cells);
            f(key, record_hash(&cells));
        }
    }
    Ok(())
}

/// The target's digest of one store.
pub async fn pg_digest(
    conn: &mut PgConnection,
    spec: &TableSpec,
    workspace: &str,
) -> Result<Digest, MigrateError> {
    let mut d = Digest::default();
    pg_rows(conn, spec, workspace, |k, h| d.add(&k, h)).await?;
    Ok(d)
}

/// The source's digest of every store, by re-reading it all.
pub async fn source_digests(
    ctx: Arc<SourceCtx>,
    stores: &[Store],
    limits: Limits,
) -> Result<BTreeMap<String, Digest>, MigrateError> {
    let mut out: BTreeMap<String, Digest> = BTreeMap::new();
    let mut rx = spawn(ctx, stores.to_vec(), BTreeMap::new(), limits);
    while let Some(b) = rx.recv().await {
        let b = b?;
        out.entry(b.store.name()).or_default().merge(&b.digest);
    }
    Ok(out)
}

/// Names the first records that differ between source and target in `buckets`.
pub async fn name_differences(
    conn: &mut PgConnection,
    ctx: Arc<SourceCtx>,
    spec: &TableSpec,
    workspace: &str,
    buckets: &[usize],
    limits: Limits,
) -> Result<Vec<String>, MigrateError> {
    let wanted = |k: &str| buckets.contains(&bucket(k));
    let mut target: HashMap<String, u128> = HashMap::new();
    pg_rows(conn, spec, workspace, |k, h| {
        if wanted(&k) {
            target.insert(k, h);
        }
    })
    .await?;
    let mut named = Vec::new();
    let store = spec.store.name();
    let mut rx = spawn(ctx, vec![spec.store], BTreeMap::new(), limits);
    while let Some(b) = rx.recv().await {
        let b = b?;
        // The graph file feeds nodes and edges together.
        if b.store != spec.store {
            continue;
        }
        for row in b.rows {
            let key = row_key(spec.store, &row.cells);
            if !wanted(&key) {
                continue;
            }
            let h = row_hash(spec, &row);
            match target.remove(&key) {
                None => named.push(format!("{store} {key:?}: missing in the target")),
                Some(t) if t != h => named.push(format!("{store} {key:?}: content differs")),
                Some(_) => {}
            }
            if named.len() >= NAMED {
                return Ok(named);
            }
        }
    }
    for key in target.into_keys().take(NAMED - named.len()) {
        named.push(format!(
            "{store} {key:?}: in the target but not in the source"
        ));
    }
    Ok(named)
}

/// The query sample: three stored vectors of the smallest vector store (each question scans the
/// whole table on the target, which has no vector index yet, so the smallest keeps it cheap),
/// asked on the JSON store the daemon has open and on the target, must bring the same top
/// records. `Ok(Err(..))` names the differences.
pub async fn compare_queries(
    json: &Backend,
    pg: &PgStores,
) -> Result<Result<String, Vec<String>>, MigrateError> {
    const TOP: usize = 5;
    const PROBES: usize = 3;
    let mut smallest: Option<(u64, VectorNamespace)> = None;
    for ns in VectorNamespace::ALL {
        let n = json
            .vectors(ns)
            .count()
            .await
            .map_err(MigrateError::source)?;
        if n > 0 && smallest.is_none_or(|(m, _)| n < m) {
            smallest = Some((n, ns));
        }
    }
    let Some((_, ns)) = smallest else {
        return Ok(Ok("query sample skipped: no vectors".to_owned()));
    };
    let local = json.vectors(ns).clone();
    let sample = local
        .page(None, PROBES)
        .await
        .map_err(MigrateError::source)?;
    let remote = Arc::new(pg.vectors(ns).map_err(MigrateError::target)?);
    let mut asks = Vec::new();
    for item in sample.items {
        let local = local.clone();
        let remote = remote.clone();
        asks.push(async move {
            let a = local
                .query(&item.vector, TOP, -1.0)
                .await
                .map_err(MigrateError::source)?;
            let b = VectorStore::query(&*remote, &item.vector, TOP, -1.0)
                .await
                .map_err(MigrateError::target)?;
            Ok::<_, MigrateError>((ns, item.id, a, b))
        });
    }
    let answers = futures::future::try_join_all(asks).await?;
    let mut differences = Vec::new();
    for (ns, probe, a, b) in &answers {
        // Equal scores may come in either order (f32 on one side, f64 on the other).
        let same = a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x.id == y.id || (x.score - y.score).abs() < 1e-4);
        if !same {
            let ids = |m: &[VectorMatch]| {
                m.iter()
                    .map(|x| x.id.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            differences.push(format!(
                "vdb_{} query by {probe:?}: JSON [{}] vs Postgres [{}]",
                ns.as_str(),
                ids(a),
                ids(b)
            ));
        }
    }
    if differences.is_empty() {
        Ok(Ok(format!(
            "{} sample queries gave the same top {TOP} on both backends",
            answers.len()
        )))
    } else {
        Ok(Err(differences))
    }
}
