//! LightRAG 1.5.7's PostgreSQL DDL (as `pg-schema.sql` shows it) and its table-name rules.

use md5::{Digest, Md5};

use crate::storage::{StorageError, StorageResult, VectorNamespace};

/// PostgreSQL's identifier limit (NAMEDATALEN - 1).
const MAX_IDENT: usize = 63;
/// pgvector's HNSW/IVFFlat limit for `vector` columns.
pub const MAX_INDEXED_DIM: usize = 2000;
/// pgvector's limit for `halfvec` indexes: above `MAX_INDEXED_DIM` vectors are indexed (and
/// searched) through a `content_vector::halfvec(N)` expression, the column staying `vector`.
pub const MAX_HALFVEC_DIM: usize = 4000;
/// IVFFlat lists, as LightRAG creates them.
const IVFFLAT_LISTS: u32 = 100;

/// Whether vectors of `dim` dimensions are indexed and searched as `halfvec`.
pub fn uses_halfvec(dim: usize) -> bool {
    dim > MAX_INDEXED_DIM && dim <= MAX_HALFVEC_DIM
}

/// The ANN index of a vector table: its name and what follows `ON` in its `CREATE INDEX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VectorIndexDdl {
    pub name: String,
    pub table: String,
    /// `<table> USING <method> (<column> <ops>) WITH (…)`.
    body: String,
}

impl VectorIndexDdl {
    /// LightRAG's own statement (blocks writes to the table while it runs).
    pub fn create(&self) -> String {
        format!("CREATE INDEX IF NOT EXISTS {} ON {}", self.name, self.body)
    }

    /// The same index built without blocking writes; cannot run inside a transaction.
    pub fn create_concurrently(&self) -> String {
        format!(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS {} ON {}",
            self.name, self.body
        )
    }

    /// Removes a leftover (e.g. the INVALID index a crashed concurrent build leaves).
    pub fn drop_concurrently(&self) -> String {
        format!("DROP INDEX CONCURRENTLY IF EXISTS {}", self.name)
    }
}

/// The ANN index of a vector table, or why there is none.
pub fn vector_index(
    table: &str,
    dim: usize,
    kind: super::VectorIndexType,
    m: u32,
    ef_construction: u32,
) -> Result<VectorIndexDdl, String> {
    use super::VectorIndexType as K;
    if dim > MAX_HALFVEC_DIM {
        return Err(format!(
            "{dim} dimensions exceed pgvector's index limits ({MAX_INDEXED_DIM} for vector, \
             {MAX_HALFVEC_DIM} for halfvec)"
        ));
    }
    let half = uses_halfvec(dim);
    let (column, ops) = if half {
        (
            format!("(content_vector::halfvec({dim}))"),
            "halfvec_cosine_ops",
        )
    } else {
        ("content_vector".to_owned(), "vector_cosine_ops")
    };
    let (method, suffix, with) = match kind {
        K::Hnsw => (
            "hnsw",
            if half {
                "hnsw_halfvec_cosine"
            } else {
                "hnsw_cosine"
            },
            format!("m = {m}, ef_construction = {ef_construction}"),
        ),
        K::IvfFlat => (
            "ivfflat",
            if half {
                "ivfflat_halfvec_cosine"
            } else {
                "ivfflat_cosine"
            },
            format!("lists = {IVFFLAT_LISTS}"),
        ),
    };
    Ok(VectorIndexDdl {
        name: index_name(table, suffix),
        table: table.to_owned(),
        body: format!("{table} USING {method} ({column} {ops}) WITH ({with})"),
    })
}

/// The statement creating a vector table's ANN index, or why there is none.
pub fn index_ddl(
    table: &str,
    dim: usize,
    kind: super::VectorIndexType,
    m: u32,
    ef_construction: u32,
) -> Result<String, String> {
    vector_index(table, dim, kind, m, ef_construction).map(|i| i.create())
}

/// The graph namespace LightRAG's `PGTableGraphStorage` writes.
pub const GRAPH_NAMESPACE: &str = "chunk_entity_relation";

/// LightRAG's `_generate_collection_suffix`: model name lower-cased, every character outside
/// `[a-z0-9_]` replaced by `_`, then `_<dim>d`. `None` without a model name.
pub fn collection_suffix(model: Option<&str>, dim: usize) -> Option<String> {
    let model = model.filter(|m| !m.is_empty())?;
    let clean: String = model
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Some(format!("{clean}_{dim}d"))
}

/// The vector table of a namespace: `lightrag_vdb_<kind>_<suffix>`, or the bare name.
pub fn vector_table(ns: VectorNamespace, model: Option<&str>, dim: usize) -> StorageResult<String> {
    let kind = match ns {
        VectorNamespace::Chunks => "chunks",
        VectorNamespace::Entities => "entity",
        VectorNamespace::Relationships => "relation",
    };
    let name = match collection_suffix(model, dim) {
        Some(suffix) => format!("lightrag_vdb_{kind}_{suffix}"),
        None => format!("lightrag_vdb_{kind}"),
    };
    if name.len() > MAX_IDENT {
        return Err(StorageError::Invalid(format!(
            "vector table name {name:?} is longer than PostgreSQL's {MAX_IDENT} characters; \
             use a shorter embedding model name"
        )));
    }
    Ok(name)
}

/// An index name as LightRAG builds it: `idx_<table>_<suffix>`, or
/// `idx_<md5(table)[:12]>_<suffix>` when that exceeds 63 bytes.
pub fn index_name(table: &str, suffix: &str) -> String {
    let name = format!("idx_{table}_{suffix}");
    if name.len() <= MAX_IDENT {
        return name;
    }
    let digest = Md5::digest(table.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("idx_{}_{suffix}", &hex[..12])
}

/// Tables with LightRAG's two standard btree indexes `(id)` and `(workspace, id)`.
const STD_INDEXED: &[&str] = &[
    "lightrag_doc_full",
    "lightrag_doc_chunks",
    "lightrag_doc_status",
    "lightrag_llm_cache",
    "lightrag_full_entities",
    "lightrag_full_relations",
    "lightrag_entity_chunks",
    "lightrag_relation_chunks",
];

const TS0: &str = "timestamp(0) without time zone DEFAULT CURRENT_TIMESTAMP";

/// Runs hrag's own DDL statements in one round trip (the simple query protocol takes several
/// statements at once); one by one they cost a round trip and a parse each, ~40 ms for the
/// whole schema. Inside a transaction they stay in it; outside, they form one.
pub async fn run_script(
    conn: &mut sqlx::PgConnection,
    stmts: &[String],
) -> Result<(), sqlx::Error> {
    if stmts.is_empty() {
        return Ok(());
    }
    let script = stmts
        .iter()
        .map(|s| s.trim_end().trim_end_matches(';'))
        .collect::<Vec<_>>()
        .join(";\n");
    sqlx::raw_sql(sqlx::AssertSqlSafe(script))
        .execute(conn)
        .await
        .map(|_| ())
}

/// The statements creating every non-vector table and index (idempotent).
pub fn base_ddl() -> Vec<String> {
    let mut v = vec![
        format!(
            "CREATE TABLE IF NOT EXISTS lightrag_doc_full (id varchar(255) NOT NULL, \
             workspace varchar(255) NOT NULL, doc_name varchar(1024), content text, meta jsonb, \
             sidecar_location text, parse_format varchar(32) DEFAULT 'raw'::character varying, \
             content_hash text, process_options text, chunk_options jsonb DEFAULT '{{}}'::jsonb, \
             parse_engine text, create_time {TS0}, update_time {TS0}, \
             CONSTRAINT lightrag_doc_full_pk PRIMARY KEY (workspace, id))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS lightrag_doc_chunks (id varchar(255) NOT NULL, \
             workspace varchar(255) NOT NULL, full_doc_id varchar(256), chunk_order_index integer, \
             tokens integer, content text, file_path text, \
             llm_cache_list jsonb DEFAULT '[]'::jsonb, heading jsonb DEFAULT '{{}}'::jsonb, \
             sidecar jsonb DEFAULT '{{}}'::jsonb, create_time {TS0}, update_time {TS0}, \
             CONSTRAINT lightrag_doc_chunks_pk PRIMARY KEY (workspace, id))"
        ),
        "CREATE TABLE IF NOT EXISTS lightrag_doc_status (workspace varchar(255) NOT NULL, \
         id varchar(255) NOT NULL, content_summary varchar(255), content_length integer, \
         chunks_count integer, status varchar(64), file_path text, \
         chunks_list jsonb DEFAULT '[]'::jsonb, track_id varchar(255), \
         metadata jsonb DEFAULT '{}'::jsonb, error_msg text, content_hash text, \
         created_at timestamp without time zone DEFAULT CURRENT_TIMESTAMP, \
         updated_at timestamp without time zone DEFAULT CURRENT_TIMESTAMP, \
         CONSTRAINT lightrag_doc_status_pk PRIMARY KEY (workspace, id))"
            .to_owned(),
        "CREATE TABLE IF NOT EXISTS lightrag_llm_cache (workspace varchar(255) NOT NULL, \
         id varchar(255) NOT NULL, original_prompt text, return_value text, \
         chunk_id varchar(255), cache_type varchar(32), queryparam jsonb, \
         create_time timestamp without time zone DEFAULT CURRENT_TIMESTAMP, \
         update_time timestamp without time zone DEFAULT CURRENT_TIMESTAMP, \
         CONSTRAINT lightrag_llm_cache_pk PRIMARY KEY (workspace, id))"
            .to_owned(),
    ];
    for (table, col, id_len) in [
        ("lightrag_full_entities", "entity_names", 255),
        ("lightrag_full_relations", "relation_pairs", 255),
        ("lightrag_entity_chunks", "chunk_ids", 512),
        ("lightrag_relation_chunks", "chunk_ids", 512),
    ] {
        v.push(format!(
            "CREATE TABLE IF NOT EXISTS {table} (id varchar({id_len}) NOT NULL, \
             workspace varchar(255) NOT NULL, {col} jsonb, count integer, \
             create_time {TS0}, update_time {TS0}, \
             CONSTRAINT {table}_pk PRIMARY KEY (workspace, id))"
        ));
    }
    v.push(
        "CREATE TABLE IF NOT EXISTS lightrag_graph_nodes (workspace text NOT NULL, \
         namespace text DEFAULT 'chunk_entity_relation'::text NOT NULL, id text NOT NULL, \
         properties jsonb DEFAULT '{}'::jsonb NOT NULL, \
         updated_at timestamp with time zone DEFAULT now() NOT NULL, \
         CONSTRAINT lightrag_graph_nodes_pkey PRIMARY KEY (workspace, namespace, id))"
            .to_owned(),
    );
    v.push(
        "CREATE TABLE IF NOT EXISTS lightrag_graph_edges (workspace text NOT NULL, \
         namespace text DEFAULT 'chunk_entity_relation'::text NOT NULL, src_id text NOT NULL, \
         tgt_id text NOT NULL, properties jsonb DEFAULT '{}'::jsonb NOT NULL, \
         updated_at timestamp with time zone DEFAULT now() NOT NULL, \
         CONSTRAINT lightrag_graph_edges_pkey PRIMARY KEY (workspace, namespace, src_id, tgt_id), \
         CONSTRAINT fk_lightrag_graph_edges_src FOREIGN KEY (workspace, namespace, src_id) \
           REFERENCES lightrag_graph_nodes(workspace, namespace, id) ON DELETE CASCADE, \
         CONSTRAINT fk_lightrag_graph_edges_tgt FOREIGN KEY (workspace, namespace, tgt_id) \
           REFERENCES lightrag_graph_nodes(workspace, namespace, id) ON DELETE CASCADE)"
            .to_owned(),
    );
    for t in STD_INDEXED {
        v.extend(std_indexes(t));
    }
    let ds = "lightrag_doc_status";
    for (suffix, cols) in [
        ("track_id", "(track_id)"),
        (
            "workspace_status_updated_at",
            "(workspace, status, updated_at DESC)",
        ),
        (
            "workspace_status_created_at",
            "(workspace, status, created_at DESC)",
        ),
        ("workspace_updated_at", "(workspace, updated_at DESC)"),
        ("workspace_created_at", "(workspace, created_at DESC)"),
        ("workspace_file_path", "(workspace, file_path)"),
        (
            "ws_status_created_nf_id",
            "(workspace, status, created_at NULLS FIRST, id)",
        ),
    ] {
        v.push(format!(
            "CREATE INDEX IF NOT EXISTS idx_{ds}_{suffix} ON {ds} USING btree {cols}"
        ));
    }
    v.push(format!(
        "CREATE INDEX IF NOT EXISTS idx_{ds}_workspace_content_hash ON {ds} USING btree \
         (workspace, content_hash) WHERE ((content_hash IS NOT NULL) AND (content_hash <> ''::text))"
    ));
    v.push(
        "CREATE INDEX IF NOT EXISTS idx_lightrag_graph_edges_namespace_tgt ON lightrag_graph_edges \
         USING btree (workspace, namespace, tgt_id)"
            .to_owned(),
    );
    v.push(
        "CREATE INDEX IF NOT EXISTS idx_lightrag_graph_edges_noncanonical ON lightrag_graph_edges \
         USING btree (workspace, namespace) WHERE ((src_id COLLATE \"C\") > (tgt_id COLLATE \"C\"))"
            .to_owned(),
    );
    v
}

fn std_indexes(table: &str) -> [String; 2] {
    [
        format!(
            "CREATE INDEX IF NOT EXISTS {} ON {table} USING btree (id)",
            index_name(table, "id")
        ),
        format!(
            "CREATE INDEX IF NOT EXISTS {} ON {table} USING btree (workspace, id)",
            index_name(table, "workspace_id")
        ),
    ]
}

/// The statements creating one vector table and its btree indexes (idempotent).
pub fn vector_ddl(ns: VectorNamespace, table: &str, dim: usize) -> Vec<String> {
    let create = match ns {
        VectorNamespace::Chunks => format!(
            "CREATE TABLE IF NOT EXISTS {table} (id varchar(255) NOT NULL, \
             workspace varchar(255) NOT NULL, full_doc_id varchar(256), chunk_order_index integer, \
             tokens integer, content text, content_vector vector({dim}), file_path text, \
             create_time {TS0}, update_time {TS0}, \
             CONSTRAINT {table}_pk PRIMARY KEY (workspace, id))"
        ),
        VectorNamespace::Entities => format!(
            "CREATE TABLE IF NOT EXISTS {table} (id varchar(255) NOT NULL, \
             workspace varchar(255) NOT NULL, entity_name varchar(512), content text, \
             content_vector vector({dim}), create_time {TS0}, update_time {TS0}, \
             chunk_ids varchar(255)[], file_path text, \
             CONSTRAINT {table}_pk PRIMARY KEY (workspace, id))"
        ),
        VectorNamespace::Relationships => format!(
            "CREATE TABLE IF NOT EXISTS {table} (id varchar(255) NOT NULL, \
             workspace varchar(255) NOT NULL, source_id varchar(512), target_id varchar(512), \
             content text, content_vector vector({dim}), create_time {TS0}, update_time {TS0}, \
             chunk_ids varchar(255)[], file_path text, \
             CONSTRAINT {table}_pk PRIMARY KEY (workspace, id))"
        ),
    };
    let mut v = vec![create];
    v.extend(std_indexes(table));
    v
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn suffix_and_names_follow_lightrag() {
        assert_eq!(
            collection_suffix(Some("fake-embed"), 64).as_deref(),
            Some("fake_embed_64d")
        );
        assert_eq!(
            collection_suffix(Some("BAAI/bge-M3"), 1024).as_deref(),
            Some("baai_bge_m3_1024d")
        );
        assert_eq!(collection_suffix(None, 64), None);
        assert_eq!(
            vector_table(VectorNamespace::Entities, Some("fake-embed"), 64).unwrap(),
            "lightrag_vdb_entity_fake_embed_64d"
        );
        assert_eq!(
            vector_table(VectorNamespace::Chunks, None, 64).unwrap(),
            "lightrag_vdb_chunks"
        );
        assert!(vector_table(VectorNamespace::Chunks, Some(&"x".repeat(60)), 8).is_err());
        assert_eq!(
            index_name("lightrag_vdb_chunks_fake_embed_64d", "hnsw_cosine"),
            "idx_lightrag_vdb_chunks_fake_embed_64d_hnsw_cosine"
        );
        let long = index_name(
            &format!("lightrag_vdb_chunks_{}", "a".repeat(40)),
            "hnsw_cosine",
        );
        assert!(long.len() <= 63 && long.starts_with("idx_") && long.ends_with("_hnsw_cosine"));
    }

    #[test]
    fn index_kinds_and_dimension_limits() {
        use super::super::VectorIndexType as K;
        let hnsw = index_ddl("t", 1536, K::Hnsw, 16, 64).unwrap();
        assert!(
            hnsw.contains("idx_t_hnsw_cosine ON t USING hnsw (content_vector vector_cosine_ops)")
        );
        let ivf = index_ddl("t", 768, K::IvfFlat, 16, 64).unwrap();
        assert!(
            ivf.contains("idx_t_ivfflat_cosine ON t USING ivfflat") && ivf.contains("lists = 100")
        );
        let half = index_ddl("t", 3072, K::Hnsw, 16, 64).unwrap();
        assert!(
            half.contains("((content_vector::halfvec(3072)) halfvec_cosine_ops)"),
            "{half}"
        );
        assert!(uses_halfvec(3072) && !uses_halfvec(2000) && !uses_halfvec(4001));
        assert!(index_ddl("t", 4001, K::Hnsw, 16, 64).is_err());
    }

    #[test]
    fn concurrent_variant_builds_the_same_index() {
        use super::super::VectorIndexType as K;
        let i = vector_index("t", 64, K::Hnsw, 16, 64).unwrap();
        assert_eq!(i.name, "idx_t_hnsw_cosine");
        let plain = i.create();
        let conc = i.create_concurrently();
        assert_eq!(
            conc,
            plain.replace("CREATE INDEX IF", "CREATE INDEX CONCURRENTLY IF")
        );
        assert_eq!(
            plain,
            "CREATE INDEX IF NOT EXISTS idx_t_hnsw_cosine ON t USING hnsw \
             (content_vector vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
        );
        assert_eq!(
            i.drop_concurrently(),
            "DROP INDEX CONCURRENTLY IF EXISTS idx_t_hnsw_cosine"
        );
    }
}
