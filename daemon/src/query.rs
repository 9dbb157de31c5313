//! Retrieval over the storage traits, in LightRAG's modes: `naive` (chunk vectors), `local`
//! (entity vectors, then their chunks), `global` (relation vectors, then their chunks),
//! `hybrid` (local + global) and `mix` (hybrid + naive). With a chat model configured, entities
//! are searched by the question's low-level keywords and relations by its high-level ones, as
//! the model names them (cached); without one, or when the model gives none, by the question
//! itself. Results are ordered by score, then id, so the same data gives the same answer on
//! any backend.

use std::collections::BTreeMap;

use hrag_proto::{QueryMode, QueryResult, Retrieved};
use serde_json::Value;

use crate::ingest::text::{GRAPH_FIELD_SEP, compute_mdhash_id};
use crate::providers::Providers;
use crate::providers::keywords::{self, Keywords};
use crate::storage::{Backend, KvNamespace, StorageError, VectorMatch, VectorNamespace};

/// LightRAG's default `top_k`.
pub const DEFAULT_TOP_K: usize = 40;
/// Vector hits below this cosine similarity are dropped.
pub const COSINE_THRESHOLD: f32 = 0.0;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("embedding the query failed: {0}")]
    Embed(String),
    #[error("answering needs an LLM: configure model_config.llm_model for this database")]
    NoLlm,
    #[error("the LLM failed: {0}")]
    Llm(String),
}

fn meta_str(m: &VectorMatch, k: &str) -> String {
    m.meta
        .get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn sort(items: &mut Vec<Retrieved>, top_k: usize) {
    items.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
    items.truncate(top_k);
}

/// Chunks named in `source_ids`, scored by the best hit that led to them.
async fn chunks_of(
    backend: &Backend,
    sources: &BTreeMap<String, f64>,
) -> Result<Vec<Retrieved>, QueryError> {
    let ids: Vec<String> = sources.keys().cloned().collect();
    let records = backend.kv(KvNamespace::TextChunks).get_many(&ids).await?;
    Ok(ids
        .into_iter()
        .zip(records)
        .filter_map(|(id, r)| {
            let r = r?;
            let score = sources.get(&id).copied().unwrap_or(0.0);
            let content = r
                .get("content")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            Some(Retrieved {
                hash_id: compute_mdhash_id(&content, "chunk-"),
                content,
                source: r
                    .get("file_path")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                id,
                score,
            })
        })
        .collect())
}

fn add_sources(into: &mut BTreeMap<String, f64>, source_id: &str, score: f64) {
    for c in source_id.split(GRAPH_FIELD_SEP).filter(|c| !c.is_empty()) {
        let e = into.entry(c.to_owned()).or_insert(score);
        if score > *e {
            *e = score;
        }
    }
}

pub async fn run(
    backend: &Backend,
    providers: &Providers,
    mode: QueryMode,
    text: &str,
    top_k: Option<usize>,
    answer: bool,
    db: &str,
) -> Result<QueryResult, QueryError> {
    let top_k = top_k.unwrap_or(DEFAULT_TOP_K).max(1);
    let (local, global, naive) = match mode {
        QueryMode::Naive => (false, false, true),
        QueryMode::Local => (true, false, false),
        QueryMode::Global => (false, true, false),
        QueryMode::Hybrid => (true, true, false),
        QueryMode::Mix => (true, true, true),
    };
    let kw = match (&providers.llm, local || global) {
        (Some(llm), true) => keywords::extract(
            llm.as_ref(),
            Some(backend.kv(KvNamespace::LlmResponseCache)),
            mode.as_str(),
            text,
        )
        .await
        .map_err(|e| QueryError::Llm(format!("asking for the query's keywords: {e}")))?,
        _ => Keywords::default(),
    };
    let or_question = |words: &[String]| {
        if words.is_empty() {
            text.to_owned()
        } else {
            words.join(", ")
        }
    };
    let texts = [
        text.to_owned(),
        or_question(&kw.low_level),
        or_question(&kw.high_level),
    ];
    let vectors = providers
        .embedder
        .embed(&texts)
        .await
        .map_err(|e| QueryError::Embed(e.to_string()))?;
    let mut vectors = vectors.into_iter();
    let (q, q_low, q_high) = (
        vectors.next().unwrap_or_default(),
        vectors.next().unwrap_or_default(),
        vectors.next().unwrap_or_default(),
    );
    let mut result = QueryResult {
        db: db.to_owned(),
        mode,
        chunks: vec![],
        entities: vec![],
        relations: vec![],
        answer: None,
    };
    let mut from_graph: BTreeMap<String, f64> = BTreeMap::new();
    if local {
        let hits = backend
            .vectors(VectorNamespace::Entities)
            .query(&q_low, top_k, COSINE_THRESHOLD)
            .await?;
        for h in &hits {
            let name = meta_str(h, "entity_name");
            let node = backend.graph.get_node(&name).await?;
            let description = node
                .as_ref()
                .and_then(|n| n.get("description"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            add_sources(
                &mut from_graph,
                &meta_str(h, "source_id"),
                f64::from(h.score),
            );
            result.entities.push(Retrieved {
                hash_id: compute_mdhash_id(&name, "ent-"),
                id: name,
                score: f64::from(h.score),
                content: description,
                source: Some(meta_str(h, "file_path")),
            });
        }
        sort(&mut result.entities, top_k);
    }
    if global {
        let hits = backend
            .vectors(VectorNamespace::Relationships)
            .query(&q_high, top_k, COSINE_THRESHOLD)
            .await?;
        for h in &hits {
            add_sources(
                &mut from_graph,
                &meta_str(h, "source_id"),
                f64::from(h.score),
            );
            let (src, tgt) = (meta_str(h, "src_id"), meta_str(h, "tgt_id"));
            result.relations.push(Retrieved {
                hash_id: compute_mdhash_id(&format!("{src}{tgt}"), "rel-"),
                id: format!("{src}{GRAPH_FIELD_SEP}{tgt}"),
                score: f64::from(h.score),
                content: meta_str(h, "content"),
                source: Some(meta_str(h, "file_path")),
            });
        }
        sort(&mut result.relations, top_k);
    }
    let mut chunks = chunks_of(backend, &from_graph).await?;
    if naive {
        let hits = backend
            .vectors(VectorNamespace::Chunks)
            .query(&q, top_k, COSINE_THRESHOLD)
            .await?;
        for h in hits {
            let score = f64::from(h.score);
            match chunks.iter_mut().find(|c| c.id == h.id) {
                Some(c) => c.score = c.score.max(score),
                None => chunks.push(Retrieved {
                    hash_id: compute_mdhash_id(&meta_str(&h, "content"), "chunk-"),
                    content: meta_str(&h, "content"),
                    source: Some(meta_str(&h, "file_path")),
                    id: h.id,
                    score,
                }),
            }
        }
    }
    sort(&mut chunks, top_k);
    result.chunks = chunks;
    if answer {
        let llm = providers.llm.as_ref().ok_or(QueryError::NoLlm)?;
        let context: String = result
            .chunks
            .iter()
            .map(|c| format!("- {}\n", c.content))
            .collect();
        let system = "Answer the question using only the context. Say so when the context does not contain the answer.";
        let user = format!("Context:\n{context}\nQuestion: {text}");
        result.answer = Some(
            llm.complete(system, &user)
                .await
                .map_err(|e| QueryError::Llm(e.to_string()))?,
        );
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::ingest::pipeline::Pipeline;
    use crate::providers::testserver::{Reply, TestServer};
    use crate::providers::{self, ProviderSettings};
    use crate::storage::json::JsonStores;

    const SHIPPING: &str = "Borealis Shipping runs ferries from Marlow Harbour. Borealis Shipping \
        hired Nadia Petrova to plan the northern routes out of Marlow Harbour.";
    const ACADEMIA: &str = "Aster University works with Ava Anders on federated learning. Ava \
        Anders teaches at Aster University in Westbrook.";

    #[tokio::test]
    async fn llm_keywords_steer_entity_search_and_are_cached_per_mode() {
        let dir = tempfile::tempdir().unwrap();
        let backend = Arc::new(
            JsonStores::open(dir.path(), None, None)
                .unwrap()
                .into_backend()
                .unwrap(),
        );
        let cache = backend.kv(KvNamespace::LlmResponseCache).clone();
        let builtin =
            providers::from_settings(&ProviderSettings::default(), cache.clone(), &|_| None)
                .unwrap();
        let pipeline = Pipeline::new(backend.clone(), builtin.clone())
            .await
            .unwrap();
        pipeline.upsert_file("ships.md", SHIPPING).await.unwrap();
        pipeline.upsert_file("school.md", ACADEMIA).await.unwrap();

        let answer = json!({"high_level_keywords": ["ferry routes"],
                            "low_level_keywords": ["Borealis Shipping", "Marlow Harbour"]})
        .to_string();
        let server = TestServer::start(move |_req, _n| {
            Reply::json(
                200,
                json!({"choices": [{"index": 0, "message": {"role": "assistant",
                "content": format!("```json\n{answer}\n```")}, "finish_reason": "stop"}]}),
            )
        })
        .await;
        let settings = ProviderSettings {
            llm_model: Some("openai/gpt-test".into()),
            api_base: Some(server.base_url()),
            max_attempts: Some(1),
            ..Default::default()
        };
        let with_llm = providers::from_settings(&settings, cache.clone(), &|_| None).unwrap();
        let p = Providers {
            llm: with_llm.llm,
            ..builtin
        };

        let question = "Who should I ask about this?";
        let ask = |mode| run(&backend, &p, mode, question, Some(3), false, "t");
        let r = ask(QueryMode::Local).await.unwrap();
        let top = r
            .entities
            .first()
            .map(|e| e.id.as_str())
            .unwrap_or_default();
        assert!(
            top == "Borealis Shipping" || top == "Marlow Harbour",
            "{:?}",
            r.entities
        );
        assert_eq!(server.requests().len(), 1);

        // The same question in the same mode: answered from the cache.
        let again = ask(QueryMode::Local).await.unwrap();
        assert_eq!(again, r);
        assert_eq!(server.requests().len(), 1);
        let key = keywords::cache_key("local", &format!("Question: {question}"), "openai/gpt-test");
        let record = cache
            .get(&key)
            .await
            .unwrap()
            .expect("the keywords are cached");
        assert_eq!(record["cache_type"], "keywords");

        // Naive mode needs no keywords; another mode asks again.
        ask(QueryMode::Naive).await.unwrap();
        assert_eq!(server.requests().len(), 1);
        ask(QueryMode::Global).await.unwrap();
        assert_eq!(server.requests().len(), 2);
    }
}
