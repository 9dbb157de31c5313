//! Query keywords from the chat model, as LightRAG's `extract_keywords_only` gets them: high-level
//! keywords (themes, searched among relations) and low-level keywords (names and details,
//! searched among entities), cached in `llm_response_cache` under `{mode}:keywords:{hash}`
//! with the answer's JSON in `return`, so asking the same question again costs no model call.

use std::sync::Arc;

use serde_json::{Value, json};

use super::extraction::{compute_args_hash, remove_think_tags};
use super::{Llm, ProviderError};
use crate::storage::{KvStore, Record};

const SYSTEM: &str = "You extract search keywords from a user's question for a retrieval system \
over a knowledge graph. Answer with one JSON object and nothing else: \
{\"high_level_keywords\": [...], \"low_level_keywords\": [...]}. High-level keywords name the \
overarching concepts or themes of the question; low-level keywords name the specific entities, \
people, places, products and details it mentions. Use the question's language; give at most \
ten of each; give empty lists if the question is meaningless.";

/// The keywords of one question.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keywords {
    pub high_level: Vec<String>,
    pub low_level: Vec<String>,
}

/// The cache identity of the query role (`json.dumps(…, sort_keys=True)` of the identity).
fn identity(model: &str) -> String {
    format!(
        "{{\"binding\":null,\"host\":null,\"model\":{},\"role\":\"query\"}}",
        Value::String(model.to_owned())
    )
}

/// `{mode}:keywords:<hash>` for the question as prompted.
pub fn cache_key(mode: &str, prompt: &str, model: &str) -> String {
    let hash = compute_args_hash(&[
        prompt,
        "\n<response_format>\n",
        "json",
        "\n<llm_identity>\n",
        &identity(model),
    ]);
    format!("{mode}:keywords:{hash}")
}

/// The keywords of `question` for a query in `mode`, from the cache or the model.
pub async fn extract(
    llm: &dyn Llm,
    cache: Option<&Arc<dyn KvStore>>,
    mode: &str,
    question: &str,
) -> Result<Keywords, ProviderError> {
    let prompt = format!("Question: {question}");
    let key = cache_key(mode, &prompt, llm.model_name());
    if let Some(cache) = cache
        && let Some(record) = cache.get(&key).await?
        && let Some(answer) = record.get("return").and_then(Value::as_str)
        && let Some(kw) = parse(answer)
    {
        return Ok(kw);
    }
    let answer = remove_think_tags(&llm.complete(SYSTEM, &prompt).await?);
    let kw = parse(&answer).ok_or_else(|| {
        ProviderError::Invalid(format!(
            "the model's keywords are not the JSON object asked for: {}",
            answer.chars().take(200).collect::<String>()
        ))
    })?;
    if let Some(cache) = cache {
        let stored = json!({"high_level_keywords": kw.high_level,
                            "low_level_keywords": kw.low_level})
        .to_string();
        let mut record = Record::new();
        record.insert("return".into(), json!(stored));
        record.insert("cache_type".into(), json!("keywords"));
        record.insert("chunk_id".into(), Value::Null);
        record.insert("original_prompt".into(), json!(prompt));
        record.insert("queryparam".into(), json!({"mode": mode}));
        record.insert("_id".into(), json!(key));
        if let Err(error) = cache.upsert(vec![(key.clone(), record)]).await {
            tracing::warn!(%error, "could not store the query keywords in the LLM cache");
        }
    }
    Ok(kw)
}

/// The first JSON object in `answer` (models wrap it in prose or code fences), with its two
/// lists; `None` when there is no such object.
pub fn parse(answer: &str) -> Option<Keywords> {
    let start = answer.find('{')?;
    let end = answer.rfind('}')?;
    let obj: Value = serde_json::from_str(answer.get(start..=end)?).ok()?;
    let list = |k: &str| -> Option<Vec<String>> {
        let items = obj.get(k)?.as_array()?;
        Some(
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    };
    Some(Keywords {
        high_level: list("high_level_keywords")?,
        low_level: list("low_level_keywords")?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_fenced_and_bare_answers_and_rejects_others() {
        let kw = parse(
            "```json\n{\"high_level_keywords\": [\"trade\", \" \"], \"low_level_keywords\": [\"Ava Anders\"]}\n```",
        )
        .unwrap();
        assert_eq!(kw.high_level, ["trade"]);
        assert_eq!(kw.low_level, ["Ava Anders"]);
        assert!(parse("no json here").is_none());
        assert!(parse("{\"high_level_keywords\": []}").is_none());
        assert!(parse("{\"high_level_keywords\": 3, \"low_level_keywords\": []}").is_none());
    }

    #[test]
    fn cache_keys_name_the_mode() {
        let k = cache_key("hybrid", "Question: x", "openai/gpt");
        assert!(
            k.starts_with("hybrid:keywords:") && k.len() == 16 + 32,
            "{k}"
        );
        assert_ne!(k, cache_key("local", "Question: x", "openai/gpt"));
    }
}
