//! Provider tests that cross modules: `from_settings`, and LLM extraction over a loopback
//! server with the LLM response cache.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::json;

use super::testserver::{Reply, TestServer};
use super::*;
use crate::storage::{Cursor, KvNamespace, Page, Record, StorageResult};

/// An in-memory `llm_response_cache`.
#[derive(Default)]
struct MemKv {
    records: Mutex<BTreeMap<String, Record>>,
}

#[async_trait]
impl KvStore for MemKv {
    fn namespace(&self) -> KvNamespace {
        KvNamespace::LlmResponseCache
    }
    async fn get(&self, id: &str) -> StorageResult<Option<Record>> {
        Ok(self.records.lock().unwrap().get(id).cloned())
    }
    async fn get_many(&self, ids: &[String]) -> StorageResult<Vec<Option<Record>>> {
        let r = self.records.lock().unwrap();
        Ok(ids.iter().map(|i| r.get(i).cloned()).collect())
    }
    async fn missing(&self, ids: &[String]) -> StorageResult<Vec<String>> {
        let r = self.records.lock().unwrap();
        Ok(ids
            .iter()
            .filter(|i| !r.contains_key(*i))
            .cloned()
            .collect())
    }
    async fn upsert(&self, records: Vec<(String, Record)>) -> StorageResult<()> {
        let mut r = self.records.lock().unwrap();
        for (k, mut v) in records {
            v.insert("_id".into(), json!(k));
            r.insert(k, v);
        }
        Ok(())
    }
    async fn delete(&self, ids: &[String]) -> StorageResult<()> {
        let mut r = self.records.lock().unwrap();
        for i in ids {
            r.remove(i);
        }
        Ok(())
    }
    async fn count(&self) -> StorageResult<u64> {
        Ok(self.records.lock().unwrap().len() as u64)
    }
    async fn page(
        &self,
        _cursor: Option<Cursor>,
        _limit: usize,
    ) -> StorageResult<Page<(String, Record)>> {
        let r = self.records.lock().unwrap();
        Ok(Page {
            items: r.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            next: None,
        })
    }
    async fn flush(&self) -> StorageResult<bool> {
        Ok(false)
    }
}

fn chat_reply(content: &str) -> Reply {
    Reply::json(
        200,
        json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]}),
    )
}

const GOOD_ANSWER: &str = "entity<|#|>Aster University<|#|>Organization<|#|>Aster University is a university that works with Ava Anders.
entity<|#|>Ava Anders<|#|>Person<|#|>Ava Anders is a researcher.
entity<|#|>Federated Learning<|#|>Method<|#|>A way to train models without sharing data.
relation<|#|>Aster University<|#|>Ava Anders<|#|>collaboration<|#|>Aster University collaborates with Ava Anders.
relation<|#|>Ava Anders<|#|>Federated Learning<|#|>research<|#|>Ava Anders works on Federated Learning.
<|COMPLETE|>";

const TEXT: &str = "In 2021, Aster University collaborates with Ava Anders on Federated Learning.";

fn settings_for(server: &TestServer) -> ProviderSettings {
    ProviderSettings {
        llm_model: Some("openai/gpt-test".into()),
        api_base: Some(server.base_url()),
        max_attempts: Some(2),
        ..Default::default()
    }
}

fn no_env(_: &str) -> Option<String> {
    None
}

#[tokio::test]
async fn builtins_when_nothing_is_configured() {
    let cache: Arc<dyn KvStore> = Arc::new(MemKv::default());
    let p = from_settings(&ProviderSettings::default(), cache, &no_env).unwrap();
    assert_eq!(p.embedder.model_name(), HASH_EMBEDDER_MODEL);
    assert_eq!(p.embedder.dim(), 384);
    assert!(p.llm.is_none());
    let x = p.extractor.extract("c-1", TEXT).await.unwrap();
    assert_eq!(x.entities.len(), 3);
    assert!(x.cache_keys.is_empty());
    assert!(format!("{p:?}").contains("hrag-hash-v1"));
}

#[tokio::test]
async fn llm_extraction_is_cached_and_reused() {
    let server = TestServer::start(|_req, _n| chat_reply(GOOD_ANSWER)).await;
    let cache = Arc::new(MemKv::default());
    let p = from_settings(&settings_for(&server), cache.clone(), &no_env).unwrap();
    assert_eq!(p.llm.as_ref().unwrap().model_name(), "openai/gpt-test");

    let first = p.extractor.extract("doc-1-chunk-000", TEXT).await.unwrap();
    assert_eq!(server.requests().len(), 1);
    assert_eq!(first.entities.len(), 3);
    assert_eq!(first.relations.len(), 2);
    assert_eq!(first.malformed_rows, 0);
    assert_eq!(first.cache_keys.len(), 1);
    let key = &first.cache_keys[0];
    assert!(
        key.starts_with("default:extract:") && key.len() == 16 + 32,
        "{key}"
    );

    // The request carried the chunk in the user prompt, LightRAG-style.
    let body = server.requests()[0].json();
    assert_eq!(body["model"], "gpt-test");
    assert_eq!(body["messages"][0]["role"], "system");
    let user = body["messages"][1]["content"].as_str().unwrap();
    assert!(
        user.contains(&format!("---Input Text---\n```\n{TEXT}\n```\n")),
        "{user}"
    );

    // The cache record has LightRAG's shape and key.
    let record = cache.get(key).await.unwrap().unwrap();
    let fields: Vec<&str> = record.keys().map(String::as_str).collect();
    assert_eq!(
        fields,
        [
            "return",
            "cache_type",
            "chunk_id",
            "original_prompt",
            "queryparam",
            "_id"
        ]
    );
    assert_eq!(record["return"], GOOD_ANSWER);
    assert_eq!(record["cache_type"], "extract");
    assert_eq!(record["chunk_id"], "doc-1-chunk-000");
    assert_eq!(record["queryparam"], serde_json::Value::Null);
    let prompt = record["original_prompt"].as_str().unwrap();
    let system = body["messages"][0]["content"].as_str().unwrap();
    assert_eq!(prompt, format!("{user}\n{system}"));
    assert_eq!(
        &extraction::extract_cache_key(prompt, &extraction::llm_cache_identity("openai/gpt-test")),
        key
    );

    // Second extraction of the same chunk: zero HTTP calls, same result.
    let second = p.extractor.extract("doc-1-chunk-000", TEXT).await.unwrap();
    assert_eq!(
        server.requests().len(),
        1,
        "the cached answer must be reused"
    );
    assert_eq!(second, first);

    // A fresh provider set over the same cache (a daemon restart) reuses it too.
    let again = from_settings(&settings_for(&server), cache.clone(), &no_env).unwrap();
    again
        .extractor
        .extract("doc-1-chunk-000", TEXT)
        .await
        .unwrap();
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn malformed_answer_keeps_good_rows() {
    let answer = "Sure! Here is the extraction:\n```\n\
        entity<|#|>Aster University<|#|>Organization<|#|>A university.\n\
        this line is garbage\n\
        entity<|#|>Half Row<|#|>\n\
        relation<|#|>Only<|#|>Three\n\
        entity<|#|>Ava Anders<|#|>Person<|#|>A researcher.\n\
        relation<|#|>Aster University<|#|>Ava Anders<|#|>works with<|#|>They collaborate.\n\
        ```\n<|COMPLETE|>";
    let server = TestServer::start(move |_req, _n| chat_reply(answer)).await;
    let cache = Arc::new(MemKv::default());
    let p = from_settings(&settings_for(&server), cache, &no_env).unwrap();
    let x = p.extractor.extract("c-2", TEXT).await.unwrap();
    let names: Vec<_> = x.entities.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["Aster University", "Ava Anders"]);
    assert_eq!(x.relations.len(), 1);
    // "Sure! …", "this line is garbage", the 2-field entity, the 3-field relation.
    assert_eq!(x.malformed_rows, 4);
}

#[tokio::test]
async fn gleaning_makes_a_second_cached_call() {
    let server = TestServer::start(|_req, n| {
        if n == 0 {
            chat_reply(GOOD_ANSWER)
        } else {
            chat_reply("entity<|#|>Privacy<|#|>Concept<|#|>Keeping data private.\n<|COMPLETE|>")
        }
    })
    .await;
    let cache = Arc::new(MemKv::default());
    let settings = ProviderSettings {
        max_gleaning: Some(1),
        ..settings_for(&server)
    };
    let p = from_settings(&settings, cache.clone(), &no_env).unwrap();
    let x = p.extractor.extract("c-3", TEXT).await.unwrap();
    assert_eq!(server.requests().len(), 2);
    assert_eq!(x.cache_keys.len(), 2);
    assert_eq!(x.entities.len(), 4);
    let glean = server.requests()[1].json();
    let msgs = glean["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 4);
    assert_eq!(msgs[2]["role"], "assistant");
    assert!(
        msgs[3]["content"]
            .as_str()
            .unwrap()
            .starts_with("---Task---\nBased on the last extraction task")
    );
    // The gleaning record's prompt carries the history as Python's json.dumps writes it.
    let rec = cache.get(&x.cache_keys[1]).await.unwrap().unwrap();
    assert!(
        rec["original_prompt"]
            .as_str()
            .unwrap()
            .contains("[{\"role\": \"user\", \"content\": ")
    );
    p.extractor.extract("c-3", TEXT).await.unwrap();
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn truncated_answer_is_used_but_not_cached() {
    let server = TestServer::start(|_req, _n| {
        chat_reply("entity<|#|>Aster University<|#|>Organization<|#|>A university.")
    })
    .await;
    let cache = Arc::new(MemKv::default());
    let p = from_settings(&settings_for(&server), cache.clone(), &no_env).unwrap();
    let x = p.extractor.extract("c-4", TEXT).await.unwrap();
    assert_eq!(x.entities.len(), 1);
    assert!(x.cache_keys.is_empty());
    assert_eq!(cache.count().await.unwrap(), 0);
}

#[tokio::test]
async fn llm_errors_surface_with_their_kind() {
    let server = TestServer::start(|_req, _n| {
        Reply::json(401, json!({"error": {"message": "invalid key"}}))
    })
    .await;
    let cache = Arc::new(MemKv::default());
    let p = from_settings(&settings_for(&server), cache, &no_env).unwrap();
    let err = p.extractor.extract("c-5", TEXT).await.unwrap_err();
    assert!(
        matches!(
            err,
            ProviderError::Permanent {
                status: Some(401),
                ..
            }
        ),
        "{err}"
    );
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn http_embedder_from_settings() {
    let server = TestServer::start(|req, _n| {
        let n = req.json()["input"].as_array().map_or(0, Vec::len);
        let data: Vec<_> = (0..n)
            .map(|i| json!({"index": i, "embedding": [0.5, 0.5, 0.5, 0.5]}))
            .collect();
        Reply::json(200, json!({"data": data}))
    })
    .await;
    let settings = ProviderSettings {
        embedding_model: Some("openai/tiny-embed".into()),
        embedding_dim: Some(4),
        embedding_api_base: Some(server.base_url()),
        embedding_batch_num: Some(2),
        ..Default::default()
    };
    let cache: Arc<dyn KvStore> = Arc::new(MemKv::default());
    let p = from_settings(&settings, cache, &|k| {
        (k == "OPENAI_API_KEY").then(|| "sk-from-env".to_owned())
    })
    .unwrap();
    assert_eq!(p.embedder.model_name(), "openai/tiny-embed");
    let texts: Vec<String> = (0..5).map(|i| format!("t{i}")).collect();
    let v = p.embedder.embed(&texts).await.unwrap();
    assert_eq!(v.len(), 5);
    assert_eq!(server.requests().len(), 3);
    assert_eq!(
        server.requests()[0].header("authorization"),
        Some("Bearer sk-from-env")
    );
    // No LLM configured: the rule extractor.
    assert!(p.llm.is_none());
}
