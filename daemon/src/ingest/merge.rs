//! Merging extracted entities and relations into the graph, vector stores and tracking KV
//! records, following LightRAG 1.5.7's rules (operate.py), and taking a document's
//! contributions out again when it is removed.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use indexmap::IndexSet;

use serde_json::{Value, json};

use crate::ingest::text::{self, GRAPH_FIELD_SEP};
use crate::providers::Embedder;
use crate::storage::{Backend, KvNamespace, Record, StorageError, VectorItem, VectorNamespace};

/// LightRAG's caps on `source_id` and `file_path` lists (KEEP: the oldest stay).
pub const MAX_SOURCE_IDS: usize = 200;
const MAX_FILE_PATHS: usize = 75;
/// LightRAG summarises descriptions with its LLM from this many fragments on
/// (`FORCE_LLM_SUMMARY_ON_MERGE`); without a summary the oldest are kept, so a hub entity's
/// description — and the text embedded for it on every merge — stays bounded.
const MAX_DESCRIPTION_FRAGMENTS: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("embedding failed: {0}")]
    Embed(String),
}

/// One chunk's contribution to an entity.
#[derive(Debug, Clone)]
pub struct EntityFact {
    pub entity_type: String,
    pub description: String,
    pub chunk_id: String,
    pub file_path: String,
}

/// One chunk's contribution to a relation.
#[derive(Debug, Clone)]
pub struct RelationFact {
    pub src: String,
    pub tgt: String,
    pub keywords: String,
    pub description: String,
    pub weight: f64,
    pub chunk_id: String,
    pub file_path: String,
}

/// What entity and relation facts share: where they come from, and what they say.
trait Fact {
    fn description(&self) -> &str;
    fn chunk_id(&self) -> &str;
    fn file_path(&self) -> &str;
}

impl Fact for EntityFact {
    fn description(&self) -> &str {
        &self.description
    }
    fn chunk_id(&self) -> &str {
        &self.chunk_id
    }
    fn file_path(&self) -> &str {
        &self.file_path
    }
}

impl Fact for RelationFact {
    fn description(&self) -> &str {
        &self.description
    }
    fn chunk_id(&self) -> &str {
        &self.chunk_id
    }
    fn file_path(&self) -> &str {
        &self.file_path
    }
}

/// The `<SEP>`-joined fields nodes and edges merge alike, plus `created_at`.
struct Provenance {
    description: String,
    source_id: String,
    file_path: String,
    created_at: i64,
}

/// Merges `facts` into the stored record `old`; `merged` is `old` unless a rebuild replaces
/// the description and file paths instead of extending them.
fn provenance<F: Fact>(
    old: Option<&Record>,
    merged: Option<&Record>,
    facts: &[F],
    now: i64,
) -> Provenance {
    let description = merge_list(
        sep_list(merged, "description"),
        facts.iter().map(|f| f.description()),
        Some(MAX_DESCRIPTION_FRAGMENTS),
    )
    .join(GRAPH_FIELD_SEP);
    let source_id = merge_list(
        sep_list(old, "source_id"),
        facts.iter().map(|f| f.chunk_id()),
        Some(MAX_SOURCE_IDS),
    )
    .join(GRAPH_FIELD_SEP);
    let file_path = merge_list(
        sep_list(merged, "file_path"),
        facts.iter().map(|f| f.file_path()),
        Some(MAX_FILE_PATHS),
    )
    .join(GRAPH_FIELD_SEP);
    let created_at = old
        .and_then(|o| o.get("created_at"))
        .and_then(Value::as_i64)
        .unwrap_or(now);
    Provenance {
        description,
        source_id,
        file_path,
        created_at,
    }
}

/// The `<SEP>`-joined field `k` of `r`, borrowed.
fn sep_list<'a>(r: Option<&'a Record>, k: &str) -> Vec<&'a str> {
    r.and_then(|o| o.get(k))
        .and_then(Value::as_str)
        .map(|s| s.split(GRAPH_FIELD_SEP).filter(|x| !x.is_empty()).collect())
        .unwrap_or_default()
}

fn split_sep(s: &str) -> Vec<String> {
    s.split(GRAPH_FIELD_SEP)
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Appends `new` to `old` without duplicates, keeping order; `cap` keeps the oldest.
///
/// `old` is a hub entity's whole history (its chunk list grows with every document that
/// names it) while `new` is one document's few facts: only `new` is hashed, and a list
/// already at its cap is returned untouched.
fn merge_list<T: Eq + std::hash::Hash>(
    old: Vec<T>,
    new: impl IntoIterator<Item = T>,
    cap: Option<usize>,
) -> Vec<T> {
    if let Some(c) = cap
        && old.len() >= c
    {
        let mut out = old;
        out.truncate(c);
        return out;
    }
    let mut fresh: IndexSet<T> = new.into_iter().collect();
    for o in &old {
        if fresh.is_empty() {
            break;
        }
        fresh.shift_remove(o);
    }
    let mut out = old;
    out.extend(fresh);
    if let Some(cap) = cap {
        out.truncate(cap);
    }
    out
}

fn str_field(r: &Record, k: &str) -> String {
    r.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn obj(v: Value) -> Record {
    match v {
        Value::Object(m) => m,
        _ => Record::new(),
    }
}

/// The `chunk_ids` of an entity_chunks / relation_chunks record, borrowed.
fn borrowed_chunk_list(r: Option<&Record>) -> Vec<&str> {
    r.and_then(|r| r.get("chunk_ids"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn chunk_list(r: Option<&Record>) -> Vec<String> {
    r.and_then(|r| r.get("chunk_ids"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Merges a document's entities and relations into the stores; returns the entity names and
/// relation pairs it touched (for `full_entities` / `full_relations`).
pub async fn merge(
    backend: &Backend,
    embedder: &dyn Embedder,
    entities: BTreeMap<String, Vec<EntityFact>>,
    relations: BTreeMap<(String, String), Vec<RelationFact>>,
) -> Result<(Vec<String>, Vec<(String, String)>), MergeError> {
    merge_facts(backend, embedder, entities, relations, false).await
}

/// Rewrites existing entities and relations from `facts` alone: what the chunks that remain
/// after a removal say about them (description, type, keywords, weight, file paths; vectors
/// re-embedded), as LightRAG rebuilds them after a deletion. Their `source_id` and chunk lists,
/// already pruned by [`unmerge`], and `created_at` are kept.
pub async fn rebuild(
    backend: &Backend,
    embedder: &dyn Embedder,
    entities: BTreeMap<String, Vec<EntityFact>>,
    relations: BTreeMap<(String, String), Vec<RelationFact>>,
) -> Result<(), MergeError> {
    merge_facts(backend, embedder, entities, relations, true).await?;
    Ok(())
}

/// `merge`, or with `rebuild` the stored description, type, keywords, weight and file paths
/// are replaced by the facts' instead of merged with them.
async fn merge_facts(
    backend: &Backend,
    embedder: &dyn Embedder,
    entities: BTreeMap<String, Vec<EntityFact>>,
    relations: BTreeMap<(String, String), Vec<RelationFact>>,
    rebuild: bool,
) -> Result<(Vec<String>, Vec<(String, String)>), MergeError> {
    let t = now();
    let mut entities = entities;
    // Entities named only in relations become UNKNOWN nodes, as in LightRAG.
    for facts in relations.values() {
        for f in facts {
            for name in [&f.src, &f.tgt] {
                if !entities.contains_key(name) && backend.graph.get_node(name).await?.is_none() {
                    entities.entry(name.clone()).or_default().push(EntityFact {
                        entity_type: "UNKNOWN".into(),
                        description: f.description.clone(),
                        chunk_id: f.chunk_id.clone(),
                        file_path: f.file_path.clone(),
                    });
                }
            }
        }
    }

    let mut nodes = Vec::new();
    let mut entity_rows = Vec::new();
    let mut entity_chunks = Vec::new();
    for (name, facts) in &entities {
        let old = backend.graph.get_node(name).await?;
        // What a rebuild replaces rather than merges.
        let merged = old.as_ref().filter(|_| !rebuild);
        let Provenance {
            description,
            source_id,
            file_path,
            created_at,
        } = provenance(old.as_ref(), merged, facts, t);
        // The most frequent type wins; the stored one counts once.
        let mut votes: HashMap<String, usize> = HashMap::new();
        if let Some(o) = merged {
            let ty = str_field(o, "entity_type");
            if !ty.is_empty() && ty != "UNKNOWN" {
                *votes.entry(ty).or_default() += 1;
            }
        }
        for f in facts {
            if f.entity_type != "UNKNOWN" {
                *votes.entry(f.entity_type.clone()).or_default() += 1;
            }
        }
        let entity_type = votes
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)))
            .map(|(t, _)| t)
            .unwrap_or_else(|| "UNKNOWN".into());
        let node = obj(json!({
            "entity_id": name, "entity_type": entity_type, "description": description,
            "source_id": source_id, "file_path": file_path, "created_at": created_at,
            "truncate": "",
        }));
        if old.as_ref() != Some(&node) {
            nodes.push((name.clone(), node));
        }
        let stored = backend.kv(KvNamespace::EntityChunks).get(name).await?;
        let all = merge_list(
            borrowed_chunk_list(stored.as_ref()),
            facts.iter().map(|f| f.chunk_id.as_str()),
            None,
        );
        entity_chunks.push((
            name.clone(),
            obj(json!({"chunk_ids": all, "count": all.len()})),
        ));
        entity_rows.push((
            text::entity_id(name),
            format!("{name}\n{description}"),
            obj(json!({"entity_name": name, "source_id": source_id,
                       "content": format!("{name}\n{description}"), "file_path": file_path})),
        ));
    }

    let mut edges = Vec::new();
    let mut relation_rows = Vec::new();
    let mut relation_chunks = Vec::new();
    let mut stale_rel_ids = Vec::new();
    for ((a, b), facts) in &relations {
        let old = backend.graph.get_edge(a, b).await?;
        let merged = old.as_ref().filter(|_| !rebuild);
        let Provenance {
            description,
            source_id,
            file_path,
            created_at,
        } = provenance(old.as_ref(), merged, facts, t);
        let mut keywords: BTreeSet<String> = merged
            .map(|o| str_field(o, "keywords"))
            .unwrap_or_default()
            .split(',')
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty())
            .collect();
        for f in facts {
            keywords.extend(
                f.keywords
                    .split(',')
                    .map(|k| k.trim().to_owned())
                    .filter(|k| !k.is_empty()),
            );
        }
        let keywords = keywords.into_iter().collect::<Vec<_>>().join(",");
        let weight = merged
            .and_then(|o| o.get("weight"))
            .and_then(Value::as_f64)
            .unwrap_or(0.0)
            + facts.iter().map(|f| f.weight).sum::<f64>();
        // The graph keeps the extraction's direction for a new edge.
        let (src, tgt) = facts
            .first()
            .map(|f| (f.src.clone(), f.tgt.clone()))
            .unwrap_or_else(|| (a.clone(), b.clone()));
        let edge = obj(json!({
            "weight": weight, "description": description, "keywords": keywords,
            "source_id": source_id, "file_path": file_path, "created_at": created_at,
            "truncate": "",
        }));
        if old.as_ref() != Some(&edge) {
            edges.push((src, tgt, edge));
        }
        let key = text::relation_key(a, b);
        let stored = backend.kv(KvNamespace::RelationChunks).get(&key).await?;
        let all = merge_list(
            borrowed_chunk_list(stored.as_ref()),
            facts.iter().map(|f| f.chunk_id.as_str()),
            None,
        );
        relation_chunks.push((key, obj(json!({"chunk_ids": all, "count": all.len()}))));
        let content = format!("{keywords}\t{a}\n{b}\n{description}");
        relation_rows.push((
            text::relation_id(a, b),
            content.clone(),
            obj(
                json!({"src_id": a, "tgt_id": b, "source_id": source_id, "content": content,
                       "file_path": file_path}),
            ),
        ));
        // LightRAG deletes the reverse id before upserting.
        stale_rel_ids.push(format!("rel-{}", text::md5_hex(&format!("{b}{a}"))));
    }

    backend.graph.upsert_nodes(nodes).await?;
    backend.graph.upsert_edges(edges).await?;
    backend
        .kv(KvNamespace::EntityChunks)
        .upsert(entity_chunks)
        .await?;
    backend
        .kv(KvNamespace::RelationChunks)
        .upsert(relation_chunks)
        .await?;
    upsert_changed_vectors(backend, embedder, VectorNamespace::Entities, entity_rows).await?;
    stale_rel_ids.retain(|id| !relation_rows.iter().any(|(r, _, _)| r == id));
    backend
        .vectors(VectorNamespace::Relationships)
        .delete(&stale_rel_ids)
        .await?;
    upsert_changed_vectors(
        backend,
        embedder,
        VectorNamespace::Relationships,
        relation_rows,
    )
    .await?;
    Ok((
        entities.into_keys().collect(),
        relations.into_keys().collect(),
    ))
}

/// [`upsert_vectors`] for rows that may already be stored, as a hub entity is on nearly every
/// merge: a row whose stored meta already says the same is left alone, and one whose content
/// is unchanged keeps its stored vector. Once a description reaches its fragment cap and its
/// `source_id` its cap, merging it costs a lookup instead of an embedding and a rewrite.
async fn upsert_changed_vectors(
    backend: &Backend,
    embedder: &dyn Embedder,
    ns: VectorNamespace,
    rows: Vec<(String, String, Record)>,
) -> Result<(), MergeError> {
    if rows.is_empty() {
        return Ok(());
    }
    let store = backend.vectors(ns);
    let ids: Vec<String> = rows.iter().map(|(id, _, _)| id.clone()).collect();
    let stored = store.get(&ids).await?;
    let mut reused = Vec::new();
    let mut fresh = Vec::new();
    for (row, old) in rows.into_iter().zip(stored) {
        let (id, content, meta) = row;
        match old {
            Some(old) if meta.iter().all(|(k, v)| old.meta.get(k) == Some(v)) => {}
            Some(old) if old.meta.get("content").and_then(Value::as_str) == Some(&content) => {
                reused.push(VectorItem {
                    id,
                    meta,
                    vector: old.vector,
                });
            }
            _ => fresh.push((id, content, meta)),
        }
    }
    store.upsert(reused).await?;
    upsert_vectors(backend, embedder, ns, fresh).await
}

/// Embeds `content` of each row and upserts the rows.
pub async fn upsert_vectors(
    backend: &Backend,
    embedder: &dyn Embedder,
    ns: VectorNamespace,
    rows: Vec<(String, String, Record)>,
) -> Result<(), MergeError> {
    if rows.is_empty() {
        return Ok(());
    }
    let texts: Vec<String> = rows.iter().map(|(_, c, _)| c.clone()).collect();
    let vectors = embedder
        .embed(&texts)
        .await
        .map_err(|e| MergeError::Embed(e.to_string()))?;
    if vectors.len() != rows.len() {
        return Err(MergeError::Embed(format!(
            "the embedder returned {} vectors for {} texts",
            vectors.len(),
            rows.len()
        )));
    }
    let items = rows
        .into_iter()
        .zip(vectors)
        .map(|((id, _, meta), vector)| VectorItem { id, meta, vector })
        .collect();
    backend.vectors(ns).upsert(items).await?;
    Ok(())
}

/// Takes a document's chunks out of the entities and relations it contributed to: those left
/// without chunks are deleted (graph, vectors, tracking records), the others lose the chunks.
pub async fn unmerge(
    backend: &Backend,
    removed_chunks: &BTreeSet<String>,
    entity_names: &[String],
    relation_pairs: &[(String, String)],
) -> Result<(), MergeError> {
    let keep = |ids: Vec<String>| -> Vec<String> {
        ids.into_iter()
            .filter(|c| !removed_chunks.contains(c))
            .collect()
    };
    let mut dead_nodes = Vec::new();
    let mut dead_rel_keys = Vec::new();
    let mut dead_pairs = Vec::new();
    let mut dead_rel_ids = Vec::new();
    let mut updated_entity_chunks = Vec::new();
    let mut updated_relation_chunks = Vec::new();
    let mut node_updates = Vec::new();
    let mut edge_updates = Vec::new();

    for (a, b) in relation_pairs {
        let key = text::relation_key(a, b);
        let left = keep(chunk_list(
            backend
                .kv(KvNamespace::RelationChunks)
                .get(&key)
                .await?
                .as_ref(),
        ));
        let edge = backend.graph.get_edge(a, b).await?;
        if left.is_empty() {
            dead_rel_keys.push(key);
            dead_pairs.push((a.clone(), b.clone()));
            dead_rel_ids.push(text::relation_id(a, b));
        } else {
            if let Some(mut e) = edge {
                let src = keep(split_sep(&str_field(&e, "source_id")));
                e.insert("source_id".into(), Value::String(src.join(GRAPH_FIELD_SEP)));
                edge_updates.push((a.clone(), b.clone(), e));
            }
            updated_relation_chunks
                .push((key, obj(json!({"chunk_ids": left, "count": left.len()}))));
        }
    }
    for name in entity_names {
        let left = keep(chunk_list(
            backend
                .kv(KvNamespace::EntityChunks)
                .get(name)
                .await?
                .as_ref(),
        ));
        if left.is_empty() {
            // Its remaining edges go with it (the graph cascades; vectors and lists here).
            for other in backend.graph.neighbours(name).await? {
                dead_rel_keys.push(text::relation_key(name, &other));
                dead_rel_ids.push(text::relation_id(name, &other));
            }
            dead_nodes.push(name.clone());
        } else {
            if let Some(mut n) = backend.graph.get_node(name).await? {
                let src = keep(split_sep(&str_field(&n, "source_id")));
                n.insert("source_id".into(), Value::String(src.join(GRAPH_FIELD_SEP)));
                node_updates.push((name.clone(), n));
            }
            updated_entity_chunks.push((
                name.clone(),
                obj(json!({"chunk_ids": left, "count": left.len()})),
            ));
        }
    }
    backend.graph.delete_edges(&dead_pairs).await?;
    backend.graph.delete_nodes(&dead_nodes).await?;
    backend.graph.upsert_nodes(node_updates).await?;
    let live_edges = {
        let mut v = Vec::new();
        for (a, b, e) in edge_updates {
            if backend.graph.get_edge(&a, &b).await?.is_some() {
                v.push((a, b, e));
            }
        }
        v
    };
    backend.graph.upsert_edges(live_edges).await?;
    let ent_ids: Vec<String> = dead_nodes.iter().map(|n| text::entity_id(n)).collect();
    backend
        .vectors(VectorNamespace::Entities)
        .delete(&ent_ids)
        .await?;
    backend
        .vectors(VectorNamespace::Relationships)
        .delete(&dead_rel_ids)
        .await?;
    backend
        .kv(KvNamespace::EntityChunks)
        .delete(&dead_nodes)
        .await?;
    backend
        .kv(KvNamespace::RelationChunks)
        .delete(&dead_rel_keys)
        .await?;
    updated_entity_chunks.retain(|(n, _)| !dead_nodes.contains(n));
    updated_relation_chunks.retain(|(k, _)| !dead_rel_keys.contains(k));
    backend
        .kv(KvNamespace::EntityChunks)
        .upsert(updated_entity_chunks)
        .await?;
    backend
        .kv(KvNamespace::RelationChunks)
        .upsert(updated_relation_chunks)
        .await?;
    Ok(())
}
