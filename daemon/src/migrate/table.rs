//! Where each source store lands in LightRAG's PostgreSQL schema, and how one source record
//! becomes one row of [`Cell`]s.
//!
//! The mapping is the one hrag's own Postgres stores (and LightRAG's PG classes) use: KV fields
//! without a column are dropped, doc-status defaults are filled as `PGDocStatusStorage` fills
//! them, relation endpoints and graph edges are stored in canonical order. Columns whose value
//! comes from another store (a chunk vector's `tokens`) are written but not hashed, so a
//! record's hash depends only on its own source record.

use serde::Deserialize;
use serde_json::Value;

use super::cell::{Cell, ColType};
use crate::storage::postgres::kv_spec;
use crate::storage::postgres::schema::GRAPH_NAMESPACE;
use crate::storage::{KvNamespace, Record, VectorNamespace};

const SEP: &str = "<SEP>";

/// One migrated store (the graph is two: nodes and edges).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Store {
    Kv(KvNamespace),
    DocStatus,
    Vector(VectorNamespace),
    GraphNodes,
    GraphEdges,
}

impl Store {
    /// Every store in copy order: chunk KV rows before chunk vectors (which read their
    /// `tokens`), graph nodes before edges (foreign keys).
    pub fn all() -> Vec<Store> {
        let mut v: Vec<Store> = KvNamespace::ALL.iter().map(|n| Store::Kv(*n)).collect();
        v.push(Store::DocStatus);
        v.extend(VectorNamespace::ALL.iter().map(|n| Store::Vector(*n)));
        v.push(Store::GraphNodes);
        v.push(Store::GraphEdges);
        v
    }

    /// The name used in reports and checkpoints.
    pub fn name(self) -> String {
        match self {
            Store::Kv(ns) => ns.as_str().to_owned(),
            Store::DocStatus => "doc_status".to_owned(),
            Store::Vector(ns) => format!("vdb_{}", ns.as_str()),
            Store::GraphNodes => "graph_nodes".to_owned(),
            Store::GraphEdges => "graph_edges".to_owned(),
        }
    }
}

/// A target column: its name, type, and whether it belongs to the record's content hash.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: &'static str,
    pub ty: ColType,
    pub hashed: bool,
}

const fn col(name: &'static str, ty: ColType) -> Column {
    Column {
        name,
        ty,
        hashed: true,
    }
}

/// A target table and the columns the migration writes (after `workspace`); the first column
/// (or first three for edges: namespace, src, tgt) identifies the record.
#[derive(Debug, Clone)]
pub struct TableSpec {
    pub store: Store,
    pub table: String,
    pub columns: Vec<Column>,
    /// Extra `WHERE` condition beyond `workspace` (the graph's namespace).
    pub filter: Option<String>,
}

impl TableSpec {
    pub fn new(store: Store, vector_table: impl Fn(VectorNamespace) -> String) -> TableSpec {
        use ColType::*;
        let (table, columns, filter) = match store {
            Store::Kv(ns) => {
                let spec = kv_spec(ns);
                let mut cols = vec![col("id", Text)];
                cols.extend(spec.cols.iter().map(|c| col(c.col, kv_type(c.kind))));
                cols.push(col("create_time", Ts));
                cols.push(col("update_time", Ts));
                (spec.table.to_owned(), cols, None)
            }
            Store::DocStatus => (
                "lightrag_doc_status".to_owned(),
                vec![
                    col("id", Text),
                    col("content_summary", Text),
                    col("content_length", Int),
                    col("chunks_count", Int),
                    col("status", Text),
                    col("file_path", Text),
                    col("chunks_list", Json),
                    col("track_id", Text),
                    col("metadata", Json),
                    col("error_msg", Text),
                    col("content_hash", Text),
                    col("created_at", Ts),
                    col("updated_at", Ts),
                ],
                None,
            ),
            Store::Vector(ns) => {
                let mut cols = vec![col("id", Text)];
                match ns {
                    VectorNamespace::Chunks => {
                        cols.push(Column {
                            hashed: false,
                            ..col("tokens", Int)
                        });
                        cols.push(Column {
                            hashed: false,
                            ..col("chunk_order_index", Int)
                        });
                        cols.push(col("full_doc_id", Text));
                    }
                    VectorNamespace::Entities => cols.push(col("entity_name", Text)),
                    VectorNamespace::Relationships => {
                        cols.push(col("source_id", Text));
                        cols.push(col("target_id", Text));
                    }
                }
                cols.push(col("content", Text));
                cols.push(col("content_vector", Vector));
                if ns != VectorNamespace::Chunks {
                    cols.push(col("chunk_ids", TextArray));
                }
                cols.push(col("file_path", Text));
                cols.push(col("create_time", Ts));
                cols.push(col("update_time", Ts));
                (vector_table(ns), cols, None)
            }
            Store::GraphNodes => (
                "lightrag_graph_nodes".to_owned(),
                vec![
                    col("namespace", Text),
                    col("id", Text),
                    col("properties", Json),
                ],
                Some(format!("namespace = '{GRAPH_NAMESPACE}'")),
            ),
            Store::GraphEdges => (
                "lightrag_graph_edges".to_owned(),
                vec![
                    col("namespace", Text),
                    col("src_id", Text),
                    col("tgt_id", Text),
                    col("properties", Json),
                ],
                Some(format!("namespace = '{GRAPH_NAMESPACE}'")),
            ),
        };
        TableSpec {
            store,
            table,
            columns,
            filter,
        }
    }

    /// Columns identifying a record (the rest is its content).
    pub fn key_len(&self) -> usize {
        match self.store {
            Store::GraphNodes => 2,
            Store::GraphEdges => 3,
            _ => 1,
        }
    }

    /// `workspace = '…' [AND …]`, with the workspace quoted as an SQL literal.
    pub fn scope(&self, workspace: &str) -> String {
        let mut s = format!("workspace = {}", sql_literal(workspace));
        if let Some(f) = &self.filter {
            s.push_str(" AND ");
            s.push_str(f);
        }
        s
    }
}

fn kv_type(k: crate::storage::postgres::KvKind) -> ColType {
    use crate::storage::postgres::KvKind as K;
    match k {
        K::Text => ColType::Text,
        K::Int => ColType::Int,
        K::Json => ColType::Json,
    }
}

/// An SQL string literal (standard_conforming_strings is on since PostgreSQL 9.1).
pub fn sql_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Why a source record cannot be migrated (the caller adds file and offset).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RowError(pub String);

/// A record of a store, ready to write: the cells in [`TableSpec::columns`] order.
#[derive(Debug, Clone)]
pub struct Row {
    /// How reports name the record.
    pub key: String,
    pub cells: Vec<Cell>,
}

/// Turns source records into rows; `now_us` stands in for a missing timestamp, fixed per
/// migration (saved with its checkpoint) so that every retry writes and hashes the same value.
pub struct RowMapper {
    pub now_us: i64,
}

fn text(v: Option<&Value>) -> Cell {
    match v {
        None | Some(Value::Null) => Cell::Null,
        Some(Value::String(s)) => Cell::Text(s.clone()),
        Some(other) => Cell::Text(other.to_string()),
    }
}

fn int(v: Option<&Value>, what: &str) -> Result<Cell, RowError> {
    match v {
        None | Some(Value::Null) => Ok(Cell::Null),
        Some(v) => v
            .as_i64()
            .and_then(|i| i32::try_from(i).ok())
            .map(Cell::Int)
            .ok_or_else(|| RowError(format!("{what}: expected a 32-bit integer, got {v}"))),
    }
}

fn json_or(v: Option<&Value>, default: Option<Value>) -> Cell {
    match v {
        None | Some(Value::Null) => default.map(Cell::Json).unwrap_or(Cell::Null),
        Some(v) => Cell::Json(v.clone()),
    }
}

/// Epoch seconds (LightRAG's `create_time`, `__created_at__`) as microseconds.
fn epoch_secs(v: Option<&Value>, now_us: i64, what: &str) -> Result<Cell, RowError> {
    match v {
        None | Some(Value::Null) => Ok(Cell::Ts(now_us)),
        Some(v) => match v.as_f64() {
            // timestamp(0) keeps whole seconds.
            Some(s) if s.is_finite() => Ok(Cell::Ts(s.round() as i64 * 1_000_000)),
            _ => Err(RowError(format!("{what}: expected epoch seconds, got {v}"))),
        },
    }
}

/// An ISO-8601 time (doc status) as UTC microseconds; a naive time is taken as UTC, as the
/// daemon's sessions (`timezone = UTC`) read it.
fn iso_time(v: Option<&Value>, now_us: i64, what: &str) -> Result<Cell, RowError> {
    let s = match v {
        None | Some(Value::Null) => return Ok(Cell::Ts(now_us)),
        Some(Value::String(s)) => s.trim(),
        Some(other) => {
            return Err(RowError(format!(
                "{what}: expected an ISO-8601 time, got {other}"
            )));
        }
    };
    let parsed = chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_micros())
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                .or_else(|_| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f"))
                .map(|t| t.and_utc().timestamp_micros())
        })
        .map_err(|_| RowError(format!("{what}: {s:?} is not an ISO-8601 time")))?;
    Ok(Cell::Ts(parsed))
}

/// The meta fields of a nano-vectordb row (the `vector` field is skipped unparsed).
#[derive(Deserialize)]
struct VdbMeta {
    #[serde(rename = "__created_at__")]
    created_at: Option<Value>,
    full_doc_id: Option<Value>,
    content: Option<Value>,
    file_path: Option<Value>,
    entity_name: Option<Value>,
    source_id: Option<Value>,
    src_id: Option<Value>,
    tgt_id: Option<Value>,
    tokens: Option<Value>,
    chunk_order_index: Option<Value>,
}

impl RowMapper {
    pub fn kv(&self, ns: KvNamespace, id: &str, rec: &Record) -> Result<Row, RowError> {
        let spec = kv_spec(ns);
        let mut cells = Vec::with_capacity(spec.cols.len() + 3);
        cells.push(Cell::Text(id.to_owned()));
        for c in spec.cols {
            let what = format!("field {:?}", c.key);
            let v = rec.get(c.key);
            cells.push(match kv_type(c.kind) {
                ColType::Int => int(v, &what)?,
                ColType::Json => json_or(v, c.default.and_then(sql_json_default)),
                _ => text(v),
            });
        }
        cells.push(epoch_secs(
            rec.get("create_time"),
            self.now_us,
            "create_time",
        )?);
        cells.push(epoch_secs(
            rec.get("update_time"),
            self.now_us,
            "update_time",
        )?);
        Ok(Row {
            key: id.to_owned(),
            cells,
        })
    }

    pub fn doc_status(&self, id: &str, rec: &Record) -> Result<Row, RowError> {
        if !matches!(rec.get("status"), Some(Value::String(_))) {
            return Err(RowError("\"status\" must be a string".into()));
        }
        let g = |k: &str| rec.get(k);
        let chunks_count = match int(g("chunks_count"), "field \"chunks_count\"")? {
            Cell::Null => Cell::Int(-1),
            c => c,
        };
        Ok(Row {
            key: id.to_owned(),
            cells: vec![
                Cell::Text(id.to_owned()),
                text(g("content_summary")),
                int(g("content_length"), "field \"content_length\"")?,
                chunks_count,
                text(g("status")),
                text(g("file_path")),
                json_or(g("chunks_list"), Some(Value::Array(vec![]))),
                text(g("track_id")),
                json_or(g("metadata"), Some(Value::Object(Record::new()))),
                text(g("error_msg")),
                text(g("content_hash")),
                iso_time(g("created_at"), self.now_us, "created_at")?,
                iso_time(g("updated_at"), self.now_us, "updated_at")?,
            ],
        })
    }

    /// A vector row from its raw `data` entry and its `matrix` row. A chunk's `tokens` and
    /// `chunk_order_index` are filled later from its text_chunks record when the row lacks them.
    pub fn vector(
        &self,
        ns: VectorNamespace,
        id: &str,
        raw: &str,
        vector: Vec<f32>,
    ) -> Result<Row, RowError> {
        let m: VdbMeta = serde_json::from_str(raw)
            .map_err(|e| RowError(format!("row is not a nano-vectordb record: {e}")))?;
        let created = epoch_secs(m.created_at.as_ref(), self.now_us, "__created_at__")?;
        let mut cells = vec![Cell::Text(id.to_owned())];
        match ns {
            VectorNamespace::Chunks => {
                cells.push(int(m.tokens.as_ref(), "field \"tokens\"")?);
                cells.push(int(
                    m.chunk_order_index.as_ref(),
                    "field \"chunk_order_index\"",
                )?);
                cells.push(text(m.full_doc_id.as_ref()));
            }
            VectorNamespace::Entities => cells.push(text(m.entity_name.as_ref())),
            VectorNamespace::Relationships => {
                let (a, b) = (text(m.src_id.as_ref()), text(m.tgt_id.as_ref()));
                // LightRAG stores the two entity names sorted.
                let (a, b) = match (&a, &b) {
                    (Cell::Text(x), Cell::Text(y)) if y < x => (b, a),
                    _ => (a, b),
                };
                cells.push(a);
                cells.push(b);
            }
        }
        cells.push(text(m.content.as_ref()));
        cells.push(Cell::Vector(vector));
        if ns != VectorNamespace::Chunks {
            cells.push(match text(m.source_id.as_ref()) {
                Cell::Text(s) if s.is_empty() => Cell::TextArray(vec![]),
                Cell::Text(s) => Cell::TextArray(s.split(SEP).map(str::to_owned).collect()),
                _ => Cell::Null,
            });
        }
        cells.push(text(m.file_path.as_ref()));
        cells.push(created.clone());
        cells.push(created);
        Ok(Row {
            key: id.to_owned(),
            cells,
        })
    }

    pub fn node(&self, id: &str, props: &Record) -> Row {
        let mut p = props.clone();
        p.insert("entity_id".into(), Value::String(id.to_owned()));
        Row {
            key: id.to_owned(),
            cells: vec![
                Cell::Text(GRAPH_NAMESPACE.to_owned()),
                Cell::Text(id.to_owned()),
                Cell::Json(Value::Object(p)),
            ],
        }
    }

    pub fn edge(&self, a: &str, b: &str, props: &Record) -> Row {
        let (s, t) = if b < a { (b, a) } else { (a, b) };
        Row {
            key: format!("{s} – {t}"),
            cells: vec![
                Cell::Text(GRAPH_NAMESPACE.to_owned()),
                Cell::Text(s.to_owned()),
                Cell::Text(t.to_owned()),
                Cell::Json(Value::Object(props.clone())),
            ],
        }
    }
}

/// The JSON of a column default written as SQL (`'[]'::jsonb`).
fn sql_json_default(sql: &str) -> Option<Value> {
    let inner = sql.strip_prefix('\'')?.split('\'').next()?;
    serde_json::from_str(inner).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn mapper() -> RowMapper {
        RowMapper { now_us: 42 }
    }

    #[test]
    fn relation_rows_sort_their_endpoints_and_split_chunk_ids() {
        let raw = r#"{"__id__":"rel-1","__created_at__":1700000000,"src_id":"Zeta","tgt_id":"Alpha","source_id":"c1<SEP>c2","content":"x","file_path":"f","vector":"eJ..."}"#;
        let row = mapper()
            .vector(VectorNamespace::Relationships, "rel-1", raw, vec![1.0])
            .unwrap();
        assert_eq!(row.cells[1], Cell::Text("Alpha".into()));
        assert_eq!(row.cells[2], Cell::Text("Zeta".into()));
        assert_eq!(
            row.cells[5],
            Cell::TextArray(vec!["c1".into(), "c2".into()])
        );
        assert_eq!(row.cells[7], Cell::Ts(1_700_000_000_000_000));
    }

    #[test]
    fn doc_status_fills_lightrag_defaults_and_reads_offsets() {
        let rec: Record = serde_json::from_str(
            r#"{"status":"processed","created_at":"2025-01-01T02:00:00+02:00","updated_at":"2025-01-01T00:00:00"}"#,
        )
        .unwrap();
        let row = mapper().doc_status("doc-1", &rec).unwrap();
        assert_eq!(row.cells[3], Cell::Int(-1));
        assert_eq!(row.cells[6], Cell::Json(serde_json::json!([])));
        assert_eq!(row.cells[11], row.cells[12]);
        let missing: Record = serde_json::from_str(r#"{"content_length":3}"#).unwrap();
        assert!(mapper().doc_status("d", &missing).is_err());
    }

    #[test]
    fn kv_rows_follow_the_column_map_and_defaults() {
        let rec: Record =
            serde_json::from_str(r#"{"content":"c","tokens":5,"chunk_order_index":0,"full_doc_id":"d","create_time":10}"#)
                .unwrap();
        let spec = TableSpec::new(Store::Kv(KvNamespace::TextChunks), |_| String::new());
        let row = mapper()
            .kv(KvNamespace::TextChunks, "chunk-1", &rec)
            .unwrap();
        assert_eq!(row.cells.len(), spec.columns.len());
        let at = |name: &str| spec.columns.iter().position(|c| c.name == name).unwrap();
        assert_eq!(row.cells[at("tokens")], Cell::Int(5));
        assert_eq!(
            row.cells[at("llm_cache_list")],
            Cell::Json(serde_json::json!([]))
        );
        assert_eq!(row.cells[at("create_time")], Cell::Ts(10_000_000));
        assert_eq!(row.cells[at("update_time")], Cell::Ts(42));
        let bad: Record = serde_json::from_str(r#"{"tokens":"many"}"#).unwrap();
        assert!(mapper().kv(KvNamespace::TextChunks, "c", &bad).is_err());
    }
}
