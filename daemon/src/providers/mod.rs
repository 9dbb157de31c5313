//! Model providers: embeddings, chat completions and entity/relation extraction.
//!
//! Two families sit behind three traits ([`Embedder`], [`Llm`], [`Extractor`]):
//! - **built-in, offline** ([`builtin`]): [`HashEmbedder`] (feature hashing, deterministic, no
//!   key, no network) and [`RuleExtractor`] (capitalised-phrase entities, sentence
//!   co-occurrence relations);
//! - **OpenAI-compatible HTTP** ([`openai`]): OpenAI, Azure OpenAI, Ollama, vLLM, LiteLLM
//!   proxies, with batching, a concurrency limit, timeouts and bounded retries; extraction over
//!   a chat model goes through [`LlmExtractor`] ([`extraction`]), which writes and reuses the
//!   `llm_response_cache` records LightRAG 1.5.7 writes.
//!
//! [`from_entry`] picks them per database. Invariants: nothing here logs or displays an API key
//! (keys live in [`ApiKey`], whose `Debug` is redacted, and are scrubbed from echoed server
//! messages); the built-ins never touch the network; a provider never panics on what a server
//! or a document sends.
//!
//! # Configuration (per database)
//!
//! Inputs are the registry entry's `model` and `model_config` (see [`ProviderSettings`]), then
//! the environment. The first that applies wins.
//!
//! **Which model.** LLM: `model_config.llm_model`, else the entry's `model`. Embeddings:
//! `model_config.embedding_model`. A model string is read as:
//! - absent, empty, `builtin`, `builtin/…`, `hrag-hash-v1` or `hrag-rules-v1` → the built-ins
//!   (no LLM: extraction by [`RuleExtractor`], `Providers::llm` is `None`);
//! - `openai/<model>` or a bare name without `/` (`gpt-4o-mini`) → OpenAI (or any server
//!   speaking its API at the configured base URL);
//! - `azure/<deployment>` → Azure OpenAI (`api-key` header, `api-version` query, deployment
//!   path);
//! - `ollama/<model>` (also `ollama_chat/`) → Ollama's OpenAI-compatible API;
//! - anything else with a `/` (`Qwen/Qwen2.5-7B-Instruct`, `anthropic/claude-…`): sent
//!   unchanged to an OpenAI-compatible server (vLLM, a LiteLLM proxy), which needs an explicit
//!   base URL.
//!
//! **Base URL** (the OpenAI-style base including its version path, e.g.
//! `https://api.openai.com/v1`; requests go to `<base>/chat/completions` and
//! `<base>/embeddings`). LLM: `model_config.api_base` → env `HRAG_LLM_BASE_URL` → the flavour's
//! env → the flavour's default. Embeddings: `model_config.embedding_api_base` → env
//! `HRAG_EMBEDDING_BASE_URL` → (when the embedding model has the LLM's flavour) `api_base` →
//! `HRAG_LLM_BASE_URL` → the flavour's env → the flavour's default. Flavour env and defaults:
//! OpenAI `OPENAI_BASE_URL`, `OPENAI_API_BASE` → `https://api.openai.com/v1`; Azure
//! `AZURE_API_BASE`, `AZURE_OPENAI_ENDPOINT` (the resource endpoint, required); Ollama
//! `OLLAMA_HOST` (`host:port` or URL, `/v1` appended) → `http://127.0.0.1:11434/v1`; other
//! prefixes `OPENAI_BASE_URL` (required).
//!
//! **API key.** `model_config.api_keys` (a map; values may contain `${ENV}` references, which
//! are interpolated; names are matched case-insensitively): the role (`llm` / `embedding`),
//! then the flavour (`openai` / `azure` / `ollama`), then `<flavour>_api_key` — then the
//! environment: OpenAI and other prefixes `OPENAI_API_KEY`; Azure `AZURE_API_KEY`,
//! `AZURE_OPENAI_API_KEY`; Ollama none. A missing key sends no credentials (local servers need
//! none; a hosted API answers 401, reported as [`ProviderError::Permanent`]).
//!
//! **Azure API version.** `model_config.api_version` → `AZURE_API_VERSION` →
//! `OPENAI_API_VERSION` → `2024-02-01` (HybridRAG's default).
//!
//! **Embedding dimension.** Built-in: `embedding_dim`, else 384. HTTP: `embedding_dim` → env
//! `EMBEDDING_DIM` (LightRAG's) → the model's known native size (OpenAI `text-embedding-3-*`,
//! `ada-002`, common Ollama models) → error. Every HTTP response is checked against it;
//! `text-embedding-3-*` models are sent `dimensions`.
//!
//! **Tuning** (model_config key → env → default): `llm_timeout_secs` / `LLM_TIMEOUT` / 240;
//! `embedding_timeout_secs` / `EMBEDDING_TIMEOUT` / 30; `llm_max_async` / `MAX_ASYNC` / 4;
//! `embedding_max_async` / `EMBEDDING_FUNC_MAX_ASYNC` / 8; `embedding_batch_num` /
//! `EMBEDDING_BATCH_NUM` / 10; `max_attempts` / `HRAG_HTTP_MAX_ATTEMPTS` / 5 (first try
//! included); `max_gleaning` / `MAX_GLEANING` / 0 (hrag's default: LightRAG's is 1, which
//! doubles the model spend per chunk; any value ≥ 1 runs the one gleaning pass LightRAG runs).

pub mod builtin;
pub mod config;
pub mod extraction;
pub mod keywords;
mod lexicon;
pub mod openai;
#[cfg(test)]
pub(crate) mod testserver;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::registry::DbEntry;
use crate::storage::{KvStore, StorageError};

pub use builtin::{HASH_EMBEDDER_MODEL, HashEmbedder, RULE_EXTRACTOR_NAME, RuleExtractor};
pub use config::{ApiKey, Flavour, ModelRef, ProviderSettings};
pub use extraction::{ExtractOptions, LlmExtractor};
pub use openai::{HttpEndpoint, HttpOptions, OpenAiChat, OpenAiEmbedder};

/// Why a provider call failed, shaped so the caller can decide between "retry later" and
/// "give up until the configuration changes".
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The server kept answering 429 (or asked for a longer wait than hrag waits inline).
    /// Retry after `retry_after` when known.
    #[error("{endpoint}: rate limited: {message}")]
    RateLimited {
        endpoint: String,
        retry_after: Option<Duration>,
        message: String,
    },
    /// 5xx, connection failure or timeout that persisted through the retries: retry later.
    #[error("{endpoint}: {message}")]
    Transient { endpoint: String, message: String },
    /// The server refused the request (400, 401, 403, 404, 422…): retrying cannot help until
    /// the configuration (key, model name, URL) changes.
    #[error("{endpoint}: {message}")]
    Permanent {
        endpoint: String,
        status: Option<u16>,
        message: String,
    },
    /// Bad configuration, or an answer that cannot be used (wrong dimension, malformed JSON).
    #[error("{0}")]
    Invalid(String),
    /// The LLM response cache could not be read.
    #[error("LLM response cache: {0}")]
    Cache(#[from] StorageError),
}

impl ProviderError {
    /// Whether the same call may succeed later without a configuration change.
    pub fn is_retryable(&self) -> bool {
        match self {
            ProviderError::RateLimited { .. } | ProviderError::Transient { .. } => true,
            ProviderError::Permanent { .. } | ProviderError::Invalid(_) => false,
            ProviderError::Cache(e) => !matches!(e, StorageError::Corrupt { .. }),
        }
    }

    /// The wait the server asked for, when it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Turns texts into vectors of a fixed dimension.
#[async_trait]
pub trait Embedder: Send + Sync {
    /// The model name (LightRAG's `EmbeddingFunc.model_name`; Postgres vector tables are
    /// suffixed with it).
    fn model_name(&self) -> &str;
    /// The dimension of every vector returned.
    fn dim(&self) -> usize;
    /// One vector per text, in order.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, ProviderError>;
}

/// Who said a [`ChatMessage`] of a conversation's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatRole {
    User,
    Assistant,
}

impl ChatRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ChatRole::User => "user",
            ChatRole::Assistant => "assistant",
        }
    }
}

/// One earlier turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: ChatRole,
    pub content: String,
}

/// A chat model.
#[async_trait]
pub trait Llm: Send + Sync {
    /// The model as configured (e.g. `openai/gpt-4o-mini`); part of the LLM cache identity.
    fn model_name(&self) -> &str;
    /// The answer to `user` under the instructions `system` (empty: none).
    async fn complete(&self, system: &str, user: &str) -> Result<String, ProviderError>;
    /// The answer to `user` after the earlier turns `history` (used by gleaning). Models that
    /// cannot take a history support only an empty one.
    async fn complete_with_history(
        &self,
        system: &str,
        history: &[ChatMessage],
        user: &str,
    ) -> Result<String, ProviderError> {
        if history.is_empty() {
            self.complete(system, user).await
        } else {
            Err(ProviderError::Invalid(format!(
                "model '{}' does not take a conversation history",
                self.model_name()
            )))
        }
    }
}

/// One entity found in a chunk. `entity_type` is lower-case without spaces, as LightRAG
/// stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractedEntity {
    pub name: String,
    pub entity_type: String,
    pub description: String,
}

/// One relation found in a chunk, in the direction it was found (LightRAG keeps that direction
/// on the graph edge and sorts the pair only for ids).
#[derive(Debug, Clone, PartialEq)]
pub struct ExtractedRelation {
    pub src: String,
    pub tgt: String,
    /// Comma-separated.
    pub keywords: String,
    pub description: String,
    pub weight: f64,
}

/// What an [`Extractor`] found in one chunk. Rows are in the order found; a name may repeat
/// (LightRAG merges repeated rows later), a relation never joins an entity to itself.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Extraction {
    pub entities: Vec<ExtractedEntity>,
    pub relations: Vec<ExtractedRelation>,
    /// The `llm_response_cache` keys read or written, for `text_chunks.llm_cache_list`.
    pub cache_keys: Vec<String>,
    /// Rows of the model's answers that could not be parsed and were skipped.
    pub malformed_rows: usize,
}

/// Finds entities and relations in a chunk of text.
#[async_trait]
pub trait Extractor: Send + Sync {
    async fn extract(&self, chunk_id: &str, text: &str) -> Result<Extraction, ProviderError>;
}

/// The providers of one database.
#[derive(Clone)]
pub struct Providers {
    pub embedder: Arc<dyn Embedder>,
    pub extractor: Arc<dyn Extractor>,
    /// The chat model, when one is configured (used for extraction and for query answers).
    pub llm: Option<Arc<dyn Llm>>,
}

impl fmt::Debug for Providers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Providers")
            .field("embedder", &self.embedder.model_name())
            .field("embedding_dim", &self.embedder.dim())
            .field("llm", &self.llm.as_ref().map(|l| l.model_name().to_owned()))
            .finish_non_exhaustive()
    }
}

/// The providers for a registry entry, configured from its `model` and `model_config` and from
/// the process environment (rules in the module documentation). `llm_cache` is the database's
/// `llm_response_cache` store; extraction through an LLM reads and writes it.
pub fn from_entry(
    entry: &DbEntry,
    llm_cache: Arc<dyn KvStore>,
) -> Result<Providers, ProviderError> {
    let settings = ProviderSettings::from_entry(entry);
    from_settings(&settings, llm_cache, &|name| std::env::var(name).ok())
}

/// [`from_entry`] with explicit settings and environment (`env` returns a variable's value).
pub fn from_settings(
    settings: &ProviderSettings,
    llm_cache: Arc<dyn KvStore>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Providers, ProviderError> {
    let plan = config::resolve(settings, env)?;
    let embedder: Arc<dyn Embedder> = match plan.embedding {
        config::EmbeddingPlan::Builtin { dim } => Arc::new(HashEmbedder::new(dim)?),
        config::EmbeddingPlan::Http {
            endpoint,
            name,
            api_model,
            dim,
            send_dimensions,
            batch_size,
            options,
        } => Arc::new(OpenAiEmbedder::new(
            endpoint,
            name,
            api_model,
            dim,
            send_dimensions,
            batch_size,
            options,
        )?),
    };
    let llm: Option<Arc<dyn Llm>> = match plan.llm {
        config::LlmPlan::Builtin => None,
        config::LlmPlan::Http {
            endpoint,
            name,
            api_model,
            options,
        } => Some(Arc::new(OpenAiChat::new(
            endpoint, name, api_model, options,
        )?)),
    };
    let extractor: Arc<dyn Extractor> = match &llm {
        Some(llm) => Arc::new(LlmExtractor::new(
            llm.clone(),
            Some(llm_cache),
            ExtractOptions {
                gleaning: plan.gleaning,
                ..ExtractOptions::default()
            },
        )),
        None => Arc::new(RuleExtractor::new()),
    };
    tracing::debug!(
        embedder = embedder.model_name(),
        dim = embedder.dim(),
        llm = llm.as_ref().map(|l| l.model_name()),
        "providers configured"
    );
    Ok(Providers {
        embedder,
        extractor,
        llm,
    })
}

#[cfg(test)]
mod tests;
