//! The reading half of the copy: one store of the source, from a checkpoint's ordinal on, cut
//! into batches of rows with their source digest. Runs on a blocking thread; the writer takes
//! the batches from a bounded channel, so reading and writing overlap and at most a couple of
//! batches are in memory.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use tokio::sync::mpsc::{Receiver, Sender};

use super::checkpoint::StoreProgress;
use super::digest::{Digest, record_hash};
use super::error::MigrateError;
use super::source::graph::{GraphEvent, GraphSource};
use super::source::kv::KvSource;
use super::source::vdb::VdbSource;
use super::source::{SourceDir, StoreFile};
use super::table::{Row, RowMapper, Store, TableSpec};
use crate::storage::{DOC_STATUS_FILE, GRAPH_FILE, Record};

/// A batch of one store, ready for one transaction.
#[derive(Debug)]
pub struct Batch {
    pub store: Store,
    pub rows: Vec<Row>,
    /// The ordinal after the batch's last record.
    pub next_ordinal: u64,
    /// Source bytes read so far in this store (estimated for vector stores).
    pub bytes: u64,
    /// The digest of this batch's records alone.
    pub digest: Digest,
    /// The source bytes of this batch's records: about the size of its COPY payload.
    pub size: usize,
}

/// How big a batch may grow.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub rows: usize,
    pub bytes: usize,
}

/// The key bucketed for digests: identifies the record on both sides.
pub fn row_key(store: Store, cells: &[super::cell::Cell]) -> String {
    use super::cell::Cell;
    let t = |i: usize| match cells.get(i) {
        Some(Cell::Text(s)) => s.as_str(),
        _ => "",
    };
    match store {
        Store::GraphNodes => t(1).to_owned(),
        Store::GraphEdges => format!("{} – {}", t(1), t(2)),
        _ => t(0).to_owned(),
    }
}

/// The hash of a row's hashed columns.
pub fn row_hash(spec: &TableSpec, row: &Row) -> u128 {
    record_hash(
        spec.columns
            .iter()
            .zip(&row.cells)
            .filter(|(c, _)| c.hashed)
            .map(|(_, cell)| cell),
    )
}

struct Batcher<'a> {
    spec: &'a TableSpec,
    limits: Limits,
    tx: &'a Sender<Result<Batch, MigrateError>>,
    rows: Vec<Row>,
    size: usize,
    digest: Digest,
}

impl<'a> Batcher<'a> {
    fn new(
        spec: &'a TableSpec,
        limits: Limits,
        tx: &'a Sender<Result<Batch, MigrateError>>,
    ) -> Batcher<'a> {
        Batcher {
            spec,
            limits,
            tx,
            rows: Vec::new(),
            size: 0,
            digest: Digest::default(),
        }
    }

    /// Adds a row; sends the batch when full. `Err` when the writer is gone.
    fn push(&mut self, row: Row, size: usize, next_ordinal: u64, bytes: u64) -> Result<(), ()> {
        let key = row_key(self.spec.store, &row.cells);
        self.digest.add(&key, row_hash(self.spec, &row));
        self.rows.push(row);
        self.size += size;
        if self.rows.len() >= self.limits.rows || self.size >= self.limits.bytes {
            self.flush(next_ordinal, bytes)?;
        }
        Ok(())
    }

    fn flush(&mut self, next_ordinal: u64, bytes: u64) -> Result<(), ()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let batch = Batch {
            store: self.spec.store,
            rows: std::mem::take(&mut self.rows),
            next_ordinal,
            bytes,
            digest: std::mem::take(&mut self.digest),
            size: self.size,
        };
        self.size = 0;
        self.tx.blocking_send(Ok(batch)).map_err(|_| ())
    }
}

fn at(path: &Path, e: impl std::fmt::Display) -> MigrateError {
    MigrateError::Source(format!("{}: {e}", path.display()))
}

/// Streams one KV or doc-status store from `from.next_ordinal`.
pub fn feed_kv(
    path: &Path,
    spec: &TableSpec,
    mapper: &RowMapper,
    from: &StoreProgress,
    limits: Limits,
    tx: &Sender<Result<Batch, MigrateError>>,
) -> Result<(), MigrateError> {
    let mut src = KvSource::open_from(path, from.next_ordinal).map_err(MigrateError::source)?;
    let mut b = Batcher::new(spec, limits, tx);
    let mut bytes = from.bytes;
    let mut next = from.next_ordinal;
    for entry in src.by_ref() {
        let e = entry.map_err(MigrateError::source)?;
        let rec: Record = serde_json::from_str(e.value.get()).map_err(|err| {
            at(
                path,
                format!("record {:?} at byte {}: {err}", e.key, e.offset),
            )
        })?;
        let row = match spec.store {
            Store::Kv(ns) => mapper.kv(ns, &e.key, &rec),
            _ => mapper.doc_status(&e.key, &rec),
        }
        .map_err(|err| {
            at(
                path,
                format!("record {:?} at byte {}: {err}", e.key, e.offset),
            )
        })?;
        let size = e.key.len() + e.value.get().len();
        next = e.ordinal + 1;
        bytes = e.offset + e.value.get().len() as u64;
        if b.push(row, size, next, bytes).is_err() {
            return Ok(());
        }
    }
    let _ = b.flush(next, bytes);
    Ok(())
}

/// Streams one vector store: `data` rows in step with their `matrix` rows.
pub fn feed_vdb(
    src: &VdbSource,
    file_size: u64,
    spec: &TableSpec,
    mapper: &RowMapper,
    from: &StoreProgress,
    limits: Limits,
    tx: &Sender<Result<Batch, MigrateError>>,
) -> Result<(), MigrateError> {
    let Store::Vector(ns) = spec.store else {
        return Err(MigrateError::Invalid("not a vector store".into()));
    };
    let path = src.path().to_path_buf();
    let mut b = Batcher::new(spec, limits, tx);
    let mut next = from.next_ordinal;
    let mut rows = src
        .rows_from(from.next_ordinal)
        .map_err(MigrateError::source)?;
    while let Some(r) = rows.next() {
        let r = r.map_err(MigrateError::source)?;
        let size = r.row.get().len() + r.vector.len() * 4;
        let row = mapper
            .vector(ns, &r.id, r.row.get(), r.vector)
            .map_err(|err| at(&path, format!("row {} ({:?}): {err}", r.ordinal, r.id)))?;
        next = r.ordinal + 1;
        let read = rows.bytes_read().min(file_size);
        if b.push(row, size, next, read).is_err() {
            return Ok(());
        }
    }
    let _ = b.flush(next, file_size);
    Ok(())
}

/// Streams the graph: nodes from `nodes.next_ordinal`, edges from `edges.next_ordinal`; a
/// batch holds one kind only.
pub fn feed_graph(
    path: &Path,
    specs: (&TableSpec, &TableSpec),
    mapper: &RowMapper,
    from: (&StoreProgress, &StoreProgress),
    limits: Limits,
    tx: &Sender<Result<Batch, MigrateError>>,
) -> Result<(), MigrateError> {
    let src = GraphSource::open(path).map_err(MigrateError::source)?;
    let (mut nodes, mut edges) = (
        Batcher::new(specs.0, limits, tx),
        Batcher::new(specs.1, limits, tx),
    );
    let (mut next_node, mut next_edge) = (from.0.next_ordinal, from.1.next_ordinal);
    for ev in src {
        let sent = match ev.map_err(MigrateError::source)? {
            GraphEvent::Node(n) if n.ordinal >= from.0.next_ordinal => {
                next_node = n.ordinal + 1;
                let size = n.id.len() + 64 * n.properties.len();
                nodes.push(mapper.node(&n.id, &n.properties), size, next_node, 0)
            }
            GraphEvent::Edge(e) if e.ordinal >= from.1.next_ordinal => {
                // Every node must be committed before an edge may reference it.
                if nodes.flush(next_node, 0).is_err() {
                    return Ok(());
                }
                next_edge = e.ordinal + 1;
                let size = e.source.len() + e.target.len() + 64 * e.properties.len();
                edges.push(
                    mapper.edge(&e.source, &e.target, &e.properties),
                    size,
                    next_edge,
                    0,
                )
            }
            _ => Ok(()),
        };
        if sent.is_err() {
            return Ok(());
        }
    }
    let _ = nodes.flush(next_node, 0);
    let _ = edges.flush(next_edge, 0);
    Ok(())
}

/// What the reading thread needs: the source files, the target tables, the row mapper.
pub struct SourceCtx {
    pub dir: SourceDir,
    pub specs: HashMap<Store, TableSpec>,
    /// The surveyed vector files, by file name.
    pub vdbs: HashMap<String, VdbSource>,
    pub mapper: RowMapper,
}

impl SourceCtx {
    fn file(&self, name: &str) -> Option<&StoreFile> {
        self.dir.files().iter().find(|f| f.name == name)
    }

    fn spec(&self, store: Store) -> Result<&TableSpec, MigrateError> {
        self.specs
            .get(&store)
            .ok_or_else(|| MigrateError::Invalid(format!("no table for {}", store.name())))
    }

    /// Feeds `stores` in order, each from its checkpoint in `from`.
    fn feed(
        &self,
        stores: &[Store],
        from: &BTreeMap<String, StoreProgress>,
        limits: Limits,
        tx: &Sender<Result<Batch, MigrateError>>,
    ) -> Result<(), MigrateError> {
        let start = |s: Store| from.get(&s.name()).cloned().unwrap_or_default();
        let mut graph_done = false;
        for &store in stores {
            if tx.is_closed() {
                return Ok(());
            }
            match store {
                Store::Kv(_) | Store::DocStatus => {
                    let name = match store {
                        Store::Kv(ns) => ns.file_name(),
                        _ => DOC_STATUS_FILE.to_owned(),
                    };
                    if let Some(f) = self.file(&name).filter(|f| f.size.is_some()) {
                        feed_kv(
                            &f.path,
                            self.spec(store)?,
                            &self.mapper,
                            &start(store),
                            limits,
                            tx,
                        )?;
                    }
                }
                Store::Vector(ns) => {
                    if let Some(f) = self.file(&ns.file_name()).filter(|f| f.size.is_some()) {
                        let src = match self.vdbs.get(f.name) {
                            Some(v) => v.clone(),
                            None => {
                                VdbSource::open_header(&f.path).map_err(MigrateError::source)?
                            }
                        };
                        let size = f.size.unwrap_or(0);
                        feed_vdb(
                            &src,
                            size,
                            self.spec(store)?,
                            &self.mapper,
                            &start(store),
                            limits,
                            tx,
                        )?;
                    }
                }
                Store::GraphNodes | Store::GraphEdges => {
                    if graph_done {
                        continue;
                    }
                    graph_done = true;
                    if let Some(f) = self.file(GRAPH_FILE).filter(|f| f.size.is_some()) {
                        let (n, e) = (Store::GraphNodes, Store::GraphEdges);
                        feed_graph(
                            &f.path,
                            (self.spec(n)?, self.spec(e)?),
                            &self.mapper,
                            (&start(n), &start(e)),
                            limits,
                            tx,
                        )?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Starts reading `stores` on a blocking thread; batches (or the first error) arrive on the
/// returned channel, which holds at most two batches.
pub fn spawn(
    ctx: Arc<SourceCtx>,
    stores: Vec<Store>,
    from: BTreeMap<String, StoreProgress>,
    limits: Limits,
) -> Receiver<Result<Batch, MigrateError>> {
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = ctx.feed(&stores, &from, limits, &tx) {
            let _ = tx.blocking_send(Err(e));
        }
    });
    rx
}
