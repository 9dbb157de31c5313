//! One document through LightRAG 1.5.7's insert path, on the storage traits: sanitise, ids,
//! doc status, full_docs, chunks, embeddings, extraction, merge; and a document's removal.
//!
//! Invariants: a document whose current content is already processed (under its path id, its
//! 1.4.9 content id, or its content hash) is never processed again; every stage writes
//! LightRAG's record shapes; a failure leaves the document `failed` with its error, never half
//! merged into the graph (extraction and embedding happen before any graph write).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Value, json};

use crate::ingest::chunking::Chunker;
use crate::ingest::doc_index::DocIndex;
use crate::ingest::merge::{self, EntityFact, MergeError, RelationFact};
use crate::ingest::text;
use crate::providers::{Extraction, Providers};
use crate::storage::{Backend, KvNamespace, Record, StorageError, VectorNamespace};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Merge(#[from] MergeError),
    #[error("extraction failed: {0}")]
    Extract(String),
    #[error("{0}")]
    Invalid(String),
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Processed {
        doc_id: String,
        chunks: usize,
    },
    /// Its current content is already processed.
    Unchanged {
        doc_id: String,
    },
    Removed {
        doc_id: String,
    },
    /// Nothing to do (an empty file, or a removal of something never ingested).
    Skipped(String),
}

pub use super::doc_index::TRACK_ID;

pub struct Pipeline {
    backend: std::sync::Arc<Backend>,
    providers: Providers,
    index: DocIndex,
}

fn obj(v: Value) -> Record {
    match v {
        Value::Object(m) => m,
        _ => Record::new(),
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// ISO-8601 with `+00:00`, as LightRAG writes doc-status times.
fn now_iso() -> String {
    let s = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    s.trim_end_matches('Z').to_owned() + "+00:00"
}

fn str_of(r: &Record, k: &str) -> Option<String> {
    r.get(k).and_then(Value::as_str).map(str::to_owned)
}

impl Pipeline {
    /// Builds the pipeline over an open store (see [`DocIndex`] for what it keeps in memory).
    /// The tokenizer is not loaded until a document is chunked.
    pub async fn new(
        backend: std::sync::Arc<Backend>,
        providers: Providers,
    ) -> Result<Pipeline, PipelineError> {
        let index = DocIndex::open(backend.doc_status.as_ref()).await?;
        Ok(Pipeline {
            backend,
            providers,
            index,
        })
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Whether document lookups go to the store rather than an in-memory index.
    pub fn index_in_store(&self) -> bool {
        self.index.is_store()
    }

    /// The paths of the documents hrag ingested (for noticing files deleted while down).
    pub async fn known_paths(&self) -> Result<Vec<String>, PipelineError> {
        Ok(self
            .index
            .our_paths(self.backend.doc_status.as_ref())
            .await?)
    }

    /// The document stored for `rel_path`, if any.
    pub async fn doc_of_path(&self, rel_path: &str) -> Result<Option<String>, PipelineError> {
        Ok(self
            .index
            .doc_of_path(self.backend.doc_status.as_ref(), rel_path)
            .await?)
    }

    /// Is this content already processed, under any id LightRAG or hrag would have given it?
    async fn already_processed(
        &self,
        doc_id: &str,
        text: &str,
        hash: &str,
    ) -> Result<Option<String>, PipelineError> {
        if let Some(rec) = self.backend.doc_status.get(doc_id).await?
            && str_of(&rec, "status").as_deref() == Some("processed")
            && str_of(&rec, "content_hash")
                .as_deref()
                .is_none_or(|h| h == hash)
        {
            // A record without a hash (1.4.9) under the path id: compare the stored content.
            if str_of(&rec, "content_hash").is_some()
                || self.stored_content_is(doc_id, text).await?
            {
                return Ok(Some(doc_id.to_owned()));
            }
        }
        let legacy = text::legacy_doc_id(text);
        if let Some(rec) = self.backend.doc_status.get(&legacy).await?
            && str_of(&rec, "status").as_deref() == Some("processed")
        {
            return Ok(Some(legacy));
        }
        Ok(self
            .index
            .processed_with_hash(self.backend.doc_status.as_ref(), hash)
            .await?)
    }

    async fn stored_content_is(&self, doc_id: &str, text: &str) -> Result<bool, PipelineError> {
        Ok(self
            .backend
            .kv(KvNamespace::FullDocs)
            .get(doc_id)
            .await?
            .and_then(|r| str_of(&r, "content"))
            .is_some_and(|c| c == text))
    }

    /// Brings the document for `rel_path` in line with `content`.
    pub async fn upsert_file(
        &self,
        rel_path: &str,
        content: &str,
    ) -> Result<Outcome, PipelineError> {
        let text = text::sanitize_text(content);
        let doc_id = text::doc_id_for_path(rel_path);
        if text.is_empty() {
            self.remove_file(rel_path).await?;
            return Ok(Outcome::Skipped(format!("{rel_path} is empty")));
        }
        let hash = text::content_hash(&text);
        if let Some(done) = self.already_processed(&doc_id, &text, &hash).await? {
            return Ok(Outcome::Unchanged { doc_id: done });
        }
        // A changed file replaces its previous version, whatever id that one had.
        let previous = self.doc_of_path(rel_path).await?;
        for old in previous.into_iter().chain(Some(doc_id.clone())) {
            self.remove_document(&old).await?;
        }
        match self.process(&doc_id, rel_path, &text, &hash).await {
            Ok(chunks) => Ok(Outcome::Processed { doc_id, chunks }),
            Err(e) => {
                self.mark_failed(&doc_id, rel_path, &text, &hash, &e.to_string())
                    .await?;
                Err(e)
            }
        }
    }

    fn status_record(
        &self,
        status: &str,
        rel_path: &str,
        text: &str,
        hash: &str,
        created_at: &str,
    ) -> Record {
        obj(json!({
            "status": status,
            "content_summary": text::content_summary(text),
            "content_length": text::content_length(text),
            "created_at": created_at,
            "updated_at": now_iso(),
            "file_path": rel_path,
            "track_id": TRACK_ID,
            "content_hash": hash,
        }))
    }

    async fn process(
        &self,
        doc_id: &str,
        rel_path: &str,
        text: &str,
        hash: &str,
    ) -> Result<usize, PipelineError> {
        let created = now_iso();
        let start = now_secs();
        let mut pending = self.status_record("pending", rel_path, text, hash, &created);
        pending.insert("metadata".into(), json!({"kg_write_state": "pre_graph"}));
        pending.insert("chunks_list".into(), json!([]));
        self.backend
            .doc_status
            .upsert(vec![(doc_id.to_owned(), pending)])
            .await?;
        self.index.note_path(rel_path, doc_id);

        self.backend
            .kv(KvNamespace::FullDocs)
            .upsert(vec![(
                doc_id.to_owned(),
                obj(json!({"content": text, "file_path": rel_path, "parse_format": "raw",
                           "content_hash": hash, "chunk_options": text::chunk_options(text::DEFAULT_CHUNK_TOKEN_SIZE, text::DEFAULT_CHUNK_OVERLAP_TOKEN_SIZE)})),
            )])
            .await?;

        // Held for this call only, so that an idle daemon can release the tokenizer.
        let chunks = Chunker::shared()
            .and_then(|c| c.stored_chunks(text, None))
            .map_err(|e| PipelineError::Invalid(format!("cannot chunk {rel_path}: {e}")))?;
        let chunk_ids: Vec<String> = chunks
            .iter()
            .map(|c| text::chunk_id(doc_id, c.order))
            .collect();
        let mut processing = self.status_record("processing", rel_path, text, hash, &created);
        processing.insert("chunks_count".into(), json!(chunks.len()));
        processing.insert("chunks_list".into(), json!(chunk_ids));
        processing.insert(
            "metadata".into(),
            json!({"kg_write_state": "pre_graph", "process_start_time": start,
                   "chunk_method": text::CHUNK_METHOD_LEGACY, "chunk_opts": text::CHUNK_OPTS_DEFAULT}),
        );
        self.backend
            .doc_status
            .upsert(vec![(doc_id.to_owned(), processing)])
            .await?;

        // Extract every chunk before writing anything to the graph, so a provider failure
        // never leaves a half-merged document.
        let mut entities: BTreeMap<String, Vec<EntityFact>> = BTreeMap::new();
        let mut relations: BTreeMap<(String, String), Vec<RelationFact>> = BTreeMap::new();
        let mut chunk_records = Vec::with_capacity(chunks.len());
        for (chunk, id) in chunks.iter().zip(&chunk_ids) {
            let ex = self
                .providers
                .extractor
                .extract(id, &chunk.content)
                .await
                .map_err(|e| PipelineError::Extract(e.to_string()))?;
            for e in ex.entities {
                entities
                    .entry(e.name.clone())
                    .or_default()
                    .push(EntityFact {
                        entity_type: e.entity_type,
                        description: e.description,
                        chunk_id: id.clone(),
                        file_path: rel_path.to_owned(),
                    });
            }
            for r in ex.relations {
                if r.src == r.tgt {
                    continue;
                }
                let pair = text::relation_pair(&r.src, &r.tgt);
                relations.entry(pair).or_default().push(RelationFact {
                    src: r.src,
                    tgt: r.tgt,
                    keywords: r.keywords,
                    description: r.description,
                    weight: r.weight,
                    chunk_id: id.clone(),
                    file_path: rel_path.to_owned(),
                });
            }
            chunk_records.push((
                id.clone(),
                obj(json!({"tokens": chunk.tokens, "content": chunk.content,
                           "chunk_order_index": chunk.order, "full_doc_id": doc_id,
                           "file_path": rel_path, "llm_cache_list": ex.cache_keys})),
            ));
        }
        self.backend
            .kv(KvNamespace::TextChunks)
            .upsert(chunk_records)
            .await?;
        let rows = chunks
            .iter()
            .zip(&chunk_ids)
            .map(|(c, id)| {
                (
                    id.clone(),
                    c.content.clone(),
                    obj(
                        json!({"full_doc_id": doc_id, "content": c.content, "file_path": rel_path}),
                    ),
                )
            })
            .collect();
        merge::upsert_vectors(
            &self.backend,
            self.providers.embedder.as_ref(),
            VectorNamespace::Chunks,
            rows,
        )
        .await?;

        let (names, pairs) = merge::merge(
            &self.backend,
            self.providers.embedder.as_ref(),
            entities,
            relations,
        )
        .await?;
        self.backend
            .kv(KvNamespace::FullEntities)
            .upsert(vec![(
                doc_id.to_owned(),
                obj(json!({"entity_names": names, "count": names.len()})),
            )])
            .await?;
        let pair_list: Vec<[String; 2]> =
            pairs.iter().map(|(a, b)| [a.clone(), b.clone()]).collect();
        self.backend
            .kv(KvNamespace::FullRelations)
            .upsert(vec![(
                doc_id.to_owned(),
                obj(json!({"relation_pairs": pair_list, "count": pair_list.len()})),
            )])
            .await?;

        let mut done = self.status_record("processed", rel_path, text, hash, &created);
        done.insert("chunks_count".into(), json!(chunks.len()));
        done.insert("chunks_list".into(), json!(chunk_ids));
        done.insert(
            "metadata".into(),
            json!({"kg_write_state": "graph_mutation_started", "process_start_time": start,
                   "process_end_time": now_secs(), "chunk_method": text::CHUNK_METHOD_LEGACY,
                   "chunk_opts": text::CHUNK_OPTS_DEFAULT}),
        );
        self.backend
            .doc_status
            .upsert(vec![(doc_id.to_owned(), done)])
            .await?;
        self.index.note_processed(hash, doc_id);
        Ok(chunks.len())
    }

    async fn mark_failed(
        &self,
        doc_id: &str,
        rel_path: &str,
        text: &str,
        hash: &str,
        error: &str,
    ) -> Result<(), PipelineError> {
        let mut rec = self.status_record("failed", rel_path, text, hash, &now_iso());
        rec.insert("error_msg".into(), json!(error));
        rec.insert("chunks_count".into(), json!(0));
        rec.insert("chunks_list".into(), json!([]));
        rec.insert("metadata".into(), json!({"kg_write_state": "pre_graph"}));
        self.backend
            .doc_status
            .upsert(vec![(doc_id.to_owned(), rec)])
            .await?;
        Ok(())
    }

    /// Removes the document stored for `rel_path`, if any.
    pub async fn remove_file(&self, rel_path: &str) -> Result<Outcome, PipelineError> {
        let id = self
            .doc_of_path(rel_path)
            .await?
            .unwrap_or_else(|| text::doc_id_for_path(rel_path));
        if self.remove_document(&id).await? {
            Ok(Outcome::Removed { doc_id: id })
        } else {
            Ok(Outcome::Skipped(format!("{rel_path} was not ingested")))
        }
    }

    /// After a removal, rebuilds the entities and relations the document shared with others
    /// from the chunks that remain (at most [`merge::MAX_SOURCE_IDS`] each, the oldest, as
    /// LightRAG does), so that none keeps the removed text in its description, file paths or
    /// vector. Extraction answers come from the LLM cache, as at ingestion.
    async fn rebuild_survivors(
        &self,
        names: &[String],
        pairs: &[(String, String)],
    ) -> Result<(), PipelineError> {
        let b = &self.backend;
        let chunk_ids = |r: Option<Record>| -> Vec<String> {
            r.and_then(|r| r.get("chunk_ids").cloned())
                .and_then(|v| serde_json::from_value::<Vec<String>>(v).ok())
                .unwrap_or_default()
                .into_iter()
                .take(merge::MAX_SOURCE_IDS)
                .collect()
        };
        let mut entity_chunks = Vec::new();
        for name in names {
            if b.graph.get_node(name).await?.is_some() {
                let ids = chunk_ids(b.kv(KvNamespace::EntityChunks).get(name).await?);
                entity_chunks.push((name.clone(), ids));
            }
        }
        let mut relation_chunks = Vec::new();
        for (x, y) in pairs {
            if b.graph.get_edge(x, y).await?.is_some() {
                let key = text::relation_key(x, y);
                let ids = chunk_ids(b.kv(KvNamespace::RelationChunks).get(&key).await?);
                relation_chunks.push(((x.clone(), y.clone()), ids));
            }
        }
        if entity_chunks.is_empty() && relation_chunks.is_empty() {
            return Ok(());
        }
        // Each remaining chunk is extracted once: (extraction, its file path).
        let wanted: Vec<String> = entity_chunks
            .iter()
            .flat_map(|(_, c)| c)
            .chain(relation_chunks.iter().flat_map(|(_, c)| c))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let records = b.kv(KvNamespace::TextChunks).get_many(&wanted).await?;
        let mut found: HashMap<String, (Extraction, String)> = HashMap::new();
        for (id, rec) in wanted.into_iter().zip(records) {
            let Some(rec) = rec else { continue };
            let content = str_of(&rec, "content").unwrap_or_default();
            let ex = self
                .providers
                .extractor
                .extract(&id, &content)
                .await
                .map_err(|e| PipelineError::Extract(e.to_string()))?;
            found.insert(id, (ex, str_of(&rec, "file_path").unwrap_or_default()));
        }
        let mut entities: BTreeMap<String, Vec<EntityFact>> = BTreeMap::new();
        for (name, ids) in entity_chunks {
            let mut facts = Vec::new();
            for id in ids {
                let Some((ex, fp)) = found.get(&id) else {
                    continue;
                };
                let fact = |entity_type: &str, description: &str| EntityFact {
                    entity_type: entity_type.to_owned(),
                    description: description.to_owned(),
                    chunk_id: id.clone(),
                    file_path: fp.clone(),
                };
                let before = facts.len();
                facts.extend(
                    ex.entities
                        .iter()
                        .filter(|e| e.name == name)
                        .map(|e| fact(&e.entity_type, &e.description)),
                );
                // Named only in a relation of this chunk: an UNKNOWN contribution, as at merge.
                if facts.len() == before
                    && let Some(r) = ex
                        .relations
                        .iter()
                        .find(|r| r.src != r.tgt && (r.src == name || r.tgt == name))
                {
                    facts.push(fact("UNKNOWN", &r.description));
                }
            }
            // A chunk that no longer yields the entity (another extractor): left as pruned.
            if !facts.is_empty() {
                entities.insert(name, facts);
            }
        }
        let mut relations: BTreeMap<(String, String), Vec<RelationFact>> = BTreeMap::new();
        for (pair, ids) in relation_chunks {
            let mut facts = Vec::new();
            for id in ids {
                let Some((ex, fp)) = found.get(&id) else {
                    continue;
                };
                facts.extend(
                    ex.relations
                        .iter()
                        .filter(|r| r.src != r.tgt && text::relation_pair(&r.src, &r.tgt) == pair)
                        .map(|r| RelationFact {
                            src: r.src.clone(),
                            tgt: r.tgt.clone(),
                            keywords: r.keywords.clone(),
                            description: r.description.clone(),
                            weight: r.weight,
                            chunk_id: id.clone(),
                            file_path: fp.clone(),
                        }),
                );
            }
            if !facts.is_empty() {
                relations.insert(pair, facts);
            }
        }
        merge::rebuild(b, self.providers.embedder.as_ref(), entities, relations).await?;
        Ok(())
    }

    /// Removes one document and its contributions; `false` when it was not stored.
    pub async fn remove_document(&self, doc_id: &str) -> Result<bool, PipelineError> {
        let b = &self.backend;
        let status = b.doc_status.get(doc_id).await?;
        let full = b.kv(KvNamespace::FullDocs).get(doc_id).await?;
        if status.is_none() && full.is_none() {
            return Ok(false);
        }
        let mut chunk_ids: BTreeSet<String> = status
            .as_ref()
            .and_then(|s| s.get("chunks_list"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(n) = status
            .as_ref()
            .and_then(|s| s.get("chunks_count"))
            .and_then(Value::as_u64)
        {
            chunk_ids.extend((0..n as usize).map(|i| text::chunk_id(doc_id, i)));
        }
        let names: Vec<String> = b
            .kv(KvNamespace::FullEntities)
            .get(doc_id)
            .await?
            .and_then(|r| r.get("entity_names").cloned())
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        let pairs: Vec<(String, String)> = b
            .kv(KvNamespace::FullRelations)
            .get(doc_id)
            .await?
            .and_then(|r| r.get("relation_pairs").cloned())
            .and_then(|v| serde_json::from_value::<Vec<[String; 2]>>(v).ok())
            .unwrap_or_default()
            .into_iter()
            .map(|[a, x]| text::relation_pair(&a, &x))
            .collect();
        merge::unmerge(b, &chunk_ids, &names, &pairs).await?;
        self.rebuild_survivors(&names, &pairs).await?;
        let chunks: Vec<String> = chunk_ids.into_iter().collect();
        b.vectors(VectorNamespace::Chunks).delete(&chunks).await?;
        b.kv(KvNamespace::TextChunks).delete(&chunks).await?;
        let ids = vec![doc_id.to_owned()];
        for ns in [
            KvNamespace::FullDocs,
            KvNamespace::FullEntities,
            KvNamespace::FullRelations,
        ] {
            b.kv(ns).delete(&ids).await?;
        }
        b.doc_status.delete(&ids).await?;
        self.index.forget(doc_id);
        Ok(true)
    }
}
