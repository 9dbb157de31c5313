//! `hragctl verify DB`: compares a Postgres workspace with the JSON directory it was migrated
//! from (kept as the backup), both sides re-read and hashed record by record.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hrag_proto::{JobPhase, ProgressEvent, StoreReport, VerifyReport};

use super::checkpoint;
use super::error::MigrateError;
use super::feed::{Limits, SourceCtx};
use super::job::{Emit, now_us, table_specs};
use super::source::SourceDir;
use super::table::{RowMapper, Store};
use super::verify;
use crate::storage::postgres::{PgSettings, PgStores};

pub struct Recheck {
    pub db: String,
    pub source_path: PathBuf,
    pub source_workspace: Option<String>,
    pub target: PgSettings,
}

const LIMITS: Limits = Limits {
    rows: 5000,
    bytes: 16 << 20,
};

pub async fn run(r: Recheck, emit: Emit) -> Result<VerifyReport, MigrateError> {
    let say = |m: String| {
        emit(ProgressEvent {
            db: r.db.clone(),
            phase: JobPhase::Verifying,
            store: None,
            records_done: 0,
            records_total: None,
            bytes_done: 0,
            bytes_total: None,
            message: Some(m),
        })
    };
    let dir = SourceDir::open(&r.source_path, r.source_workspace.as_deref())
        .map_err(MigrateError::source)?;
    let mut settings = r.target.clone();
    settings.statement_timeout = Duration::ZERO;
    settings.max_connections = 1;
    let pg = PgStores::connect(settings.clone())
        .await
        .map_err(MigrateError::target)?;
    let mut conn = pg
        .pool()
        .acquire()
        .await
        .map_err(|e| MigrateError::target(crate::storage::postgres::db_err("connect", e)))?;
    // Missing source timestamps were written as the migration's start time.
    let job: Option<checkpoint::JobRecord> = checkpoint::load_job(&mut conn, &settings.workspace)
        .await
        .unwrap_or_default();
    let stamp = job.as_ref().map(|j| j.now_us).unwrap_or_else(now_us);
    let specs = table_specs(settings.embedding_model.as_deref(), settings.embedding_dim)?;
    let ctx = Arc::new(SourceCtx {
        dir,
        specs,
        vdbs: HashMap::new(),
        mapper: RowMapper { now_us: stamp },
    });
    let stores = Store::all();
    say(format!(
        "hashing every record of {} and of {}",
        ctx.dir.dir().display(),
        settings.location()
    ));
    let source = verify::source_digests(ctx.clone(), &stores, LIMITS).await?;
    let mut reports = Vec::new();
    let mut mismatches = Vec::new();
    for s in &stores {
        let spec = &ctx.specs[s];
        let src = source.get(&s.name()).cloned().unwrap_or_default();
        let tgt = verify::pg_digest(&mut conn, spec, &settings.workspace).await?;
        let ok = src == tgt;
        if !ok {
            let buckets = src.differing(&tgt);
            let mut named = verify::name_differences(
                &mut conn,
                ctx.clone(),
                spec,
                &settings.workspace,
                &buckets,
                LIMITS,
            )
            .await?;
            if named.is_empty() {
                named.push(format!(
                    "{}: {} records in the source, {} in the target",
                    s.name(),
                    src.records,
                    tgt.records
                ));
            }
            mismatches.extend(named);
        }
        reports.push(StoreReport {
            store: s.name(),
            records: tgt.records,
            bytes: 0,
            verified: Some(ok),
        });
    }
    Ok(VerifyReport {
        db: r.db,
        ok: mismatches.is_empty(),
        stores: reports,
        mismatches,
    })
}
