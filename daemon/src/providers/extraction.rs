//! Entity/relation extraction through a chat model ([`LlmExtractor`]), in LightRAG's text
//! record format, with LightRAG 1.5.7's LLM response cache.
//!
//! **Prompt.** hrag's own wording, asking for LightRAG's records: one per line,
//! `entity<|#|>name<|#|>type<|#|>description` and
//! `relation<|#|>src<|#|>tgt<|#|>keywords<|#|>description`, then `<|COMPLETE|>`; LightRAG's
//! default entity types; at most 100 rows and 40 entity rows. The chunk text sits in the user
//! prompt between "---Input Text---\n```\n" and "\n```\n", the rules in the system prompt, as
//! in LightRAG.
//!
//! **Parser** ([`parse_answer`]), as lenient as LightRAG's `_process_extraction_result`: lines
//! split on newlines and the completion marker; records glued on one line split apart;
//! corrupted delimiters (`<|##|>`, `<#>`, `<|#|`, `|#|>`, …) repaired; a 5-field `entity` row
//! read as a relation; `relationship` accepted for `relation`; types lower-cased without spaces,
//! keeping the first comma token; names and descriptions normalised as LightRAG's
//! `sanitize_and_normalize_extracted_text`; self-relations dropped; names over 256 characters /
//! 512 bytes truncated. Rows beyond the limits (100 rows, 40 entity rows per answer) are
//! dropped, as the prompt demands. Lines that are no record are counted
//! ([`Extraction::malformed_rows`]), logged with the chunk id, and skipped. Deviation: where
//! LightRAG re-prefixes a glued fragment with the malformed `entity<|`, hrag uses the full
//! delimiter, so such fragments parse instead of being dropped.
//!
//! **Gleaning** ([`ExtractOptions::gleaning`], off by default: it doubles the spend per chunk):
//! one more call with the first exchange as history, its user prompt starting "Based on the
//! last extraction task"; rows merged as LightRAG does (per name or pair, the longer
//! description wins).
//!
//! **Cache.** Each answer is stored in `llm_response_cache` under
//! `default:extract:<compute_args_hash(prompt, "\n<response_format>\n", "",
//! "\n<llm_identity>\n", identity)>` with the record
//! `{return, cache_type: "extract", chunk_id, original_prompt, queryparam: null}`, exactly as
//! LightRAG 1.5.7's `use_llm_func_with_cache` does: `prompt` is user prompt, system prompt and
//! (gleaning) the history as Python's `json.dumps` writes it, joined with newlines, all
//! sanitised; `identity` is `{"binding":null,"host":null,"model":<model>,"role":"extract"}`,
//! which is what LightRAG used as a library (no role config) writes, `<model>` being the model
//! as configured (`openai/gpt-4o-mini`). A stored answer is reused instead of calling the
//! model. Because hrag's prompt text differs from LightRAG's, its keys never collide with
//! LightRAG's own entries (nor hit them). Answers are cleaned of `<think>` blocks before they
//! are stored; an answer without the completion marker (likely truncated) is used but not
//! stored, as LightRAG skips truncated answers.

use std::sync::Arc;

use async_trait::async_trait;
use md5::{Digest, Md5};
use serde_json::{Value, json};

use super::{
    ChatMessage, ChatRole, ExtractedEntity, ExtractedRelation, Extraction, Extractor, Llm,
    ProviderError,
};
use crate::storage::{KvStore, Record};

/// LightRAG's field separator.
pub const TUPLE_DELIMITER: &str = "<|#|>";
/// LightRAG's end-of-answer marker.
pub const COMPLETION_DELIMITER: &str = "<|COMPLETE|>";
/// LightRAG's default entity types.
pub const DEFAULT_ENTITY_TYPES: [&str; 11] = [
    "Person",
    "Creature",
    "Organization",
    "Location",
    "Event",
    "Concept",
    "Method",
    "Content",
    "Data",
    "Artifact",
    "NaturalObject",
];
/// LightRAG's per-answer limits (`MAX_EXTRACTION_RECORDS`, `MAX_EXTRACTION_ENTITIES`).
pub const MAX_RECORDS: usize = 100;
pub const MAX_ENTITY_RECORDS: usize = 40;
/// LightRAG's `DEFAULT_ENTITY_NAME_MAX_LENGTH` (characters) and `_BYTES`.
pub const ENTITY_NAME_MAX_CHARS: usize = 256;
pub const ENTITY_NAME_MAX_BYTES: usize = 512;

const SYSTEM_TEMPLATE: &str = "---Role---
You build a knowledge graph. You read the text in the `---Input Text---` block of the user's message and list the entities it names and the relationships it states between them.

---Instructions---
1. Entities: list every clearly named, meaningful entity of the input text. For each one give:
   - entity_name: the name as the text writes it; use title case for names without a fixed capitalisation, and the same spelling every time the entity recurs.
   - entity_type: one of the types under `---Entity Types---`, or `Other` when none fits.
   - entity_description: what the input text says about the entity, in one to three sentences, using only the input text.
2. Relationships: list the direct relationships the text states between two of the entities you listed. Split a statement about three or more entities into pairs. For each give:
   - source_entity and target_entity: the names exactly as in your entity rows.
   - relationship_keywords: one or more short keywords summarising the relationship, separated by commas (never by {tuple_delimiter}).
   - relationship_description: one sentence explaining how the two are related.
3. Format: one row per line, fields separated by the literal marker {tuple_delimiter}, nothing else on the line:
   entity{tuple_delimiter}entity_name{tuple_delimiter}entity_type{tuple_delimiter}entity_description
   relation{tuple_delimiter}source_entity{tuple_delimiter}target_entity{tuple_delimiter}relationship_keywords{tuple_delimiter}relationship_description
   An entity row has exactly 4 fields and starts with `entity`; a relationship row has exactly 5 fields and starts with `relation`. The marker {tuple_delimiter} is atomic: never put text inside it.
4. Order and limits: all entity rows first, then the relationship rows, the most important first. At most {max_records} rows in total and at most {max_entities} entity rows; list fewer when fewer matter. Relationships are undirected: never list the same pair twice, and never relate an entity to itself.
5. Style: write descriptions in the third person and name the subject instead of using pronouns. Write in {language}; keep proper nouns in their original language.
6. End: after the last row, output {completion_delimiter} on a line of its own.

---Entity Types---
{entity_types}

---Format Example (placeholders only, never content)---
entity{tuple_delimiter}<entity_name>{tuple_delimiter}<entity_type>{tuple_delimiter}<entity_description>
relation{tuple_delimiter}<source_entity>{tuple_delimiter}<target_entity>{tuple_delimiter}<relationship_keywords>{tuple_delimiter}<relationship_description>
{completion_delimiter}
";

const USER_TEMPLATE: &str = "---Task---
List the entities and relationships of the input text below, following the system instructions exactly. Output only the rows and the final {completion_delimiter}, nothing before or after them.

---Input Text---
```
{input_text}
```

---Output---
";

const CONTINUE_TEMPLATE: &str = "---Task---
Based on the last extraction task, list the entities and relationships of the same input text that were missed, or whose rows were incomplete or badly formatted. Do not repeat rows that were already correct. Use the same format and limits, start every relationship row with `relation`, and end with {completion_delimiter}.

---Output---
";

/// How [`LlmExtractor`] asks.
#[derive(Debug, Clone)]
pub struct ExtractOptions {
    /// Run LightRAG's one gleaning pass.
    pub gleaning: bool,
    /// The language the model answers in (LightRAG's `SUMMARY_LANGUAGE`).
    pub language: String,
    pub entity_types: Vec<String>,
    pub max_records: usize,
    pub max_entities: usize,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        ExtractOptions {
            gleaning: false,
            language: "English".to_owned(),
            entity_types: DEFAULT_ENTITY_TYPES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            max_records: MAX_RECORDS,
            max_entities: MAX_ENTITY_RECORDS,
        }
    }
}

/// Extraction by a chat model, cached in `llm_response_cache`.
pub struct LlmExtractor {
    llm: Arc<dyn Llm>,
    cache: Option<Arc<dyn KvStore>>,
    options: ExtractOptions,
    system_prompt: String,
    identity: String,
}

impl LlmExtractor {
    /// An extractor over `llm`; `cache` is the database's `llm_response_cache` (None: no
    /// caching).
    pub fn new(
        llm: Arc<dyn Llm>,
        cache: Option<Arc<dyn KvStore>>,
        options: ExtractOptions,
    ) -> LlmExtractor {
        let system_prompt = fill(SYSTEM_TEMPLATE, &options, "");
        let identity = llm_cache_identity(llm.model_name());
        LlmExtractor {
            llm,
            cache,
            options,
            system_prompt,
            identity,
        }
    }

    /// One cached model call. Returns the (cleaned) answer; pushes the cache key when the
    /// answer came from, or went into, the cache.
    async fn call(
        &self,
        chunk_id: &str,
        system: &str,
        history: &[ChatMessage],
        user: &str,
        keys: &mut Vec<String>,
    ) -> Result<String, ProviderError> {
        let Some(cache) = &self.cache else {
            let answer = self
                .llm
                .complete_with_history(system, history, user)
                .await?;
            return Ok(remove_think_tags(&answer));
        };
        let prompt = cache_prompt(user, system, history);
        let key = extract_cache_key(&prompt, &self.identity);
        if let Some(record) = cache.get(&key).await?
            && let Some(Value::String(answer)) = record.get("return")
        {
            tracing::debug!(chunk_id, cache_key = %key, "LLM cache hit");
            keys.push(key);
            return Ok(answer.clone());
        }
        let raw = self
            .llm
            .complete_with_history(system, history, user)
            .await?;
        let answer = remove_think_tags(&raw);
        if answer.is_empty() {
            return Ok(answer);
        }
        if !answer.contains(COMPLETION_DELIMITER) {
            tracing::warn!(
                chunk_id,
                "the extraction answer has no completion marker (truncated?); not caching it"
            );
            return Ok(answer);
        }
        let mut record = Record::new();
        record.insert("return".into(), json!(answer));
        record.insert("cache_type".into(), json!("extract"));
        record.insert("chunk_id".into(), json!(chunk_id));
        record.insert("original_prompt".into(), json!(prompt));
        record.insert("queryparam".into(), Value::Null);
        match cache.upsert(vec![(key.clone(), record)]).await {
            Ok(()) => keys.push(key),
            Err(error) => {
                tracing::warn!(chunk_id, %error, "could not store the extraction answer in the LLM cache")
            }
        }
        Ok(answer)
    }
}

#[async_trait]
impl Extractor for LlmExtractor {
    async fn extract(&self, chunk_id: &str, text: &str) -> Result<Extraction, ProviderError> {
        let system = sanitize_text(&self.system_prompt);
        let user = sanitize_text(&fill(USER_TEMPLATE, &self.options, text));
        let mut keys = Vec::new();
        let first = self.call(chunk_id, &system, &[], &user, &mut keys).await?;
        let mut parsed = parse_answer(&first, chunk_id, &self.options);
        if self.options.gleaning {
            let history = [
                ChatMessage {
                    role: ChatRole::User,
                    content: user.clone(),
                },
                ChatMessage {
                    role: ChatRole::Assistant,
                    content: first,
                },
            ];
            let cont = sanitize_text(&fill(CONTINUE_TEMPLATE, &self.options, text));
            let glean = self
                .call(chunk_id, &system, &history, &cont, &mut keys)
                .await?;
            let gleaned = parse_answer(&glean, chunk_id, &self.options);
            parsed = merge_gleaning(parsed, gleaned);
        }
        if parsed.malformed > 0 {
            tracing::warn!(
                chunk_id,
                malformed_rows = parsed.malformed,
                "skipped rows of the extraction answer that are not records"
            );
        }
        Ok(Extraction {
            entities: parsed.entities,
            relations: parsed.relations,
            cache_keys: keys,
            malformed_rows: parsed.malformed,
        })
    }
}

fn fill(template: &str, o: &ExtractOptions, input_text: &str) -> String {
    template
        .replace("{tuple_delimiter}", TUPLE_DELIMITER)
        .replace("{completion_delimiter}", COMPLETION_DELIMITER)
        .replace("{max_records}", &o.max_records.to_string())
        .replace("{max_entities}", &o.max_entities.to_string())
        .replace("{language}", &o.language)
        .replace("{entity_types}", &o.entity_types.join(", "))
        // Last: the chunk text is data and must not be scanned for placeholders.
        .replace("{input_text}", input_text)
}

/// What one answer held.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedAnswer {
    pub entities: Vec<ExtractedEntity>,
    pub relations: Vec<ExtractedRelation>,
    /// Lines or records that are not a usable row.
    pub malformed: usize,
    /// Rows beyond the limits.
    pub over_limit: usize,
}

/// Parses an extraction answer (rules in the module documentation).
pub fn parse_answer(answer: &str, chunk_id: &str, options: &ExtractOptions) -> ParsedAnswer {
    let mut out = ParsedAnswer::default();
    let mut rows = 0usize;
    let mut entity_rows = 0usize;
    let lower_marker = COMPLETION_DELIMITER.to_ascii_lowercase();
    for line in answer.split('\n') {
        for segment in line
            .split(COMPLETION_DELIMITER)
            .flat_map(|s| s.split(lower_marker.as_str()))
        {
            let segment = clean_line(segment);
            if segment.is_empty() {
                continue;
            }
            if !segment.chars().any(char::is_alphanumeric) {
                // Fences, rules, stray punctuation: not an attempt at a row.
                continue;
            }
            let fixed = fix_delimiters(segment);
            for record in split_glued(&fixed) {
                match parse_record(&record, chunk_id) {
                    Row::Entity(e) => {
                        if rows >= options.max_records || entity_rows >= options.max_entities {
                            out.over_limit += 1;
                            continue;
                        }
                        rows += 1;
                        entity_rows += 1;
                        out.entities.push(e);
                    }
                    Row::Relation(r) => {
                        if rows >= options.max_records {
                            out.over_limit += 1;
                            continue;
                        }
                        rows += 1;
                        out.relations.push(r);
                    }
                    Row::Dropped => {}
                    Row::Malformed => {
                        tracing::debug!(
                            chunk_id,
                            row = %preview(&record),
                            "extraction row is not a record"
                        );
                        out.malformed += 1;
                    }
                }
            }
        }
    }
    if out.over_limit > 0 {
        tracing::warn!(
            chunk_id,
            dropped_rows = out.over_limit,
            max_rows = options.max_records,
            max_entity_rows = options.max_entities,
            "the extraction answer exceeds the row limits; extra rows dropped"
        );
    }
    out
}

fn preview(s: &str) -> String {
    match s.char_indices().nth(120) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

enum Row {
    Entity(ExtractedEntity),
    Relation(ExtractedRelation),
    /// A well-formed row that carries nothing to keep (a self-relation).
    Dropped,
    Malformed,
}

/// Trims a line and strips list markers and inline-code quotes around a record.
fn clean_line(line: &str) -> &str {
    let mut s = line.trim();
    for prefix in ["- ", "* ", "• "] {
        if let Some(rest) = s.strip_prefix(prefix) {
            s = rest.trim_start();
        }
    }
    // "1. entity…" / "2) relation…"
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits > 0 && digits < 4 {
        let rest = &s[digits..];
        if let Some(r) = rest.strip_prefix(". ").or_else(|| rest.strip_prefix(") ")) {
            s = r.trim_start();
        }
    }
    s.trim_matches('`').trim()
}

/// Repairs corrupted forms of `<|#|>`: a run of one or two `#` with at least two of the four
/// delimiter characters around it (`<`, `|` before; `|`, `>` after), e.g. `<|##|>`, `<#>`,
/// `<|#>`, `<#|>`, `<|#|`, `|#|>`, `<||#||>`, `<|\#|>`; and the glued `<||>` / `<|>` between
/// two words.
fn fix_delimiters(s: &str) -> String {
    if !s.contains('#') && !s.contains("<|") {
        return s.to_owned();
    }
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut copied = 0usize;
    let mut i = 0usize;
    while i < b.len() {
        if b[i] == b'#' {
            let mut end = i;
            while end < b.len() && b[end] == b'#' {
                end += 1;
            }
            if end - i <= 2 {
                // Look back: optional '\', then pipes, then '<'.
                let mut start = i;
                let backslash = start > copied && b[start - 1] == b'\\';
                if backslash {
                    start -= 1;
                }
                let mut pipes_before = 0;
                while start > copied && b[start - 1] == b'|' && pipes_before < 3 {
                    start -= 1;
                    pipes_before += 1;
                }
                let lt = start > copied && b[start - 1] == b'<';
                if lt {
                    start -= 1;
                }
                let mut stop = end;
                let mut pipes_after = 0;
                while stop < b.len() && b[stop] == b'|' && pipes_after < 3 {
                    stop += 1;
                    pipes_after += 1;
                }
                let gt = stop < b.len() && b[stop] == b'>';
                if gt {
                    stop += 1;
                }
                let marks =
                    lt as u8 + (pipes_before > 0) as u8 + (pipes_after > 0) as u8 + gt as u8;
                let exact =
                    lt && gt && !backslash && pipes_before == 1 && pipes_after == 1 && end - i == 1;
                if marks >= 2 && !exact {
                    out.push_str(&s[copied..start]);
                    out.push_str(TUPLE_DELIMITER);
                    copied = stop;
                    i = stop;
                    continue;
                }
            }
            i = end;
            continue;
        }
        // "<|>" or "<||>" glued between two non-space characters.
        if b[i] == b'<' && i > 0 && !b[i - 1].is_ascii_whitespace() {
            let mut j = i + 1;
            while j < b.len() && b[j] == b'|' {
                j += 1;
            }
            if j > i + 1
                && j - i <= 3
                && j < b.len()
                && b[j] == b'>'
                && j + 1 < b.len()
                && !b[j + 1].is_ascii_whitespace()
            {
                out.push_str(&s[copied..i]);
                out.push_str(TUPLE_DELIMITER);
                copied = j + 1;
                i = j + 1;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&s[copied..]);
    out
}

/// Splits records a model glued on one line (`…<|#|>entity<|#|>…`).
fn split_glued(line: &str) -> Vec<String> {
    const KINDS: [&str; 3] = ["entity", "relationship", "relation"];
    let mut records = Vec::new();
    let mut current_kind: Option<&str> = None;
    let mut rest = line;
    loop {
        // The earliest "<|#|>kind<|#|>" in rest.
        let mut best: Option<(usize, &str)> = None;
        let mut search_from = 0;
        while let Some(p) = rest[search_from..].find(TUPLE_DELIMITER) {
            let at = search_from + p;
            let after = &rest[at + TUPLE_DELIMITER.len()..];
            if let Some(kind) = KINDS.iter().find(|k| {
                after
                    .get(..k.len())
                    .is_some_and(|w| w.eq_ignore_ascii_case(k))
                    && after[k.len()..].starts_with(TUPLE_DELIMITER)
            }) {
                best = Some((at, kind));
                break;
            }
            search_from = at + TUPLE_DELIMITER.len();
        }
        match best {
            Some((at, kind)) => {
                push_record(&mut records, current_kind, &rest[..at]);
                current_kind = Some(kind);
                rest = &rest[at + TUPLE_DELIMITER.len() + kind.len() + TUPLE_DELIMITER.len()..];
            }
            None => {
                push_record(&mut records, current_kind, rest);
                return records;
            }
        }
    }
}

fn push_record(records: &mut Vec<String>, kind: Option<&str>, body: &str) {
    let body = body.trim();
    if body.is_empty() {
        return;
    }
    match kind {
        Some(k) => records.push(format!("{k}{TUPLE_DELIMITER}{body}")),
        None => records.push(body.to_owned()),
    }
}

fn parse_record(record: &str, chunk_id: &str) -> Row {
    let fields: Vec<&str> = record
        .split(TUPLE_DELIMITER)
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .collect();
    let Some(kind) = fields.first().map(|f| f.to_lowercase()) else {
        return Row::Malformed;
    };
    let is_entity = kind.contains("entity");
    let is_relation = kind.contains("relation");
    if fields.len() == 4 && is_entity {
        return match entity_row(&fields, chunk_id) {
            Some(e) => Row::Entity(e),
            None => Row::Malformed,
        };
    }
    if fields.len() == 5 && (is_relation || is_entity) {
        if !is_relation {
            tracing::debug!(chunk_id, "5-field entity row read as a relation");
        }
        return relation_row(&fields, chunk_id);
    }
    Row::Malformed
}

fn entity_row(fields: &[&str], chunk_id: &str) -> Option<ExtractedEntity> {
    let name = truncate_name(normalize_entity_name(fields[1]), chunk_id);
    if name.is_empty() {
        return None;
    }
    let entity_type = normalize_entity_type(&normalize_extracted_text(fields[2], true))?;
    let description = normalize_extracted_text(fields[3], false);
    if description.is_empty() {
        return None;
    }
    Some(ExtractedEntity {
        name,
        entity_type,
        description,
    })
}

fn relation_row(fields: &[&str], chunk_id: &str) -> Row {
    let src = truncate_name(normalize_entity_name(fields[1]), chunk_id);
    let tgt = truncate_name(normalize_entity_name(fields[2]), chunk_id);
    if src.is_empty() || tgt.is_empty() {
        return Row::Malformed;
    }
    if src == tgt {
        return Row::Dropped;
    }
    let keywords = normalize_extracted_text(fields[3], true).replace('，', ",");
    let description = normalize_extracted_text(fields[4], false);
    if description.is_empty() {
        return Row::Malformed;
    }
    Row::Relation(ExtractedRelation {
        src,
        tgt,
        keywords,
        description,
        weight: 1.0,
    })
}

/// LightRAG's `_truncate_entity_identifier`: at most 256 characters and 512 UTF-8 bytes.
fn truncate_name(name: String, chunk_id: &str) -> String {
    let chars = name.chars().count();
    if chars <= ENTITY_NAME_MAX_CHARS && name.len() <= ENTITY_NAME_MAX_BYTES {
        return name;
    }
    let mut end = name
        .char_indices()
        .nth(ENTITY_NAME_MAX_CHARS)
        .map_or(name.len(), |(i, _)| i);
    while end > ENTITY_NAME_MAX_BYTES || !name.is_char_boundary(end) {
        end -= 1;
    }
    tracing::warn!(chunk_id, chars, bytes = name.len(), "entity name truncated");
    name[..end].to_owned()
}

/// LightRAG's gleaning merge: per entity name (relation pair), the gleaned rows replace the
/// first pass's when their first description is longer; new names are appended.
fn merge_gleaning(mut first: ParsedAnswer, glean: ParsedAnswer) -> ParsedAnswer {
    let mut glean_entities: Vec<(String, Vec<ExtractedEntity>)> = Vec::new();
    for e in glean.entities {
        match glean_entities.iter_mut().find(|(n, _)| *n == e.name) {
            Some((_, rows)) => rows.push(e),
            None => glean_entities.push((e.name.clone(), vec![e])),
        }
    }
    for (name, rows) in glean_entities {
        let existing = first.entities.iter().position(|e| e.name == name);
        match existing {
            Some(pos) => {
                let old_len = first.entities[pos].description.chars().count();
                let new_len = rows[0].description.chars().count();
                if new_len > old_len {
                    first.entities.retain(|e| e.name != name);
                    let at = pos.min(first.entities.len());
                    first.entities.splice(at..at, rows);
                }
            }
            None => first.entities.extend(rows),
        }
    }
    let mut glean_relations: Vec<((String, String), Vec<ExtractedRelation>)> = Vec::new();
    for r in glean.relations {
        let key = (r.src.clone(), r.tgt.clone());
        match glean_relations.iter_mut().find(|(k, _)| *k == key) {
            Some((_, rows)) => rows.push(r),
            None => glean_relations.push((key, vec![r])),
        }
    }
    for ((src, tgt), rows) in glean_relations {
        let existing = first
            .relations
            .iter()
            .position(|r| r.src == src && r.tgt == tgt);
        match existing {
            Some(pos) => {
                let old_len = first.relations[pos].description.chars().count();
                let new_len = rows[0].description.chars().count();
                if new_len > old_len {
                    first.relations.retain(|r| !(r.src == src && r.tgt == tgt));
                    let at = pos.min(first.relations.len());
                    first.relations.splice(at..at, rows);
                }
            }
            None => first.relations.extend(rows),
        }
    }
    first.malformed += glean.malformed;
    first.over_limit += glean.over_limit;
    first
}

// ---------------------------------------------------------------------------------------------
// Hashing and cache keys (LightRAG 1.5.7 utils.py)

/// Lower-case hex md5.
pub fn md5_hex(data: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Md5::digest(data);
    let mut out = String::with_capacity(32);
    for b in digest.iter() {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 0xf) as usize] as char);
    }
    out
}

/// LightRAG's `compute_args_hash`: one argument is hashed as is; two or more are each
/// prefixed with their length in characters (`"{len}:{arg}"`) and concatenated.
pub fn compute_args_hash(args: &[&str]) -> String {
    match args {
        [] => md5_hex(b""),
        [one] => md5_hex(one.as_bytes()),
        many => {
            let mut joined = String::with_capacity(many.iter().map(|a| a.len() + 8).sum());
            for a in many {
                joined.push_str(&a.chars().count().to_string());
                joined.push(':');
                joined.push_str(a);
            }
            md5_hex(joined.as_bytes())
        }
    }
}

/// The serialised LLM identity of the extract role (`json.dumps(…, sort_keys=True,
/// separators=(",", ":"), ensure_ascii=False)` of LightRAG's library-mode identity).
pub fn llm_cache_identity(model: &str) -> String {
    format!(
        "{{\"binding\":null,\"host\":null,\"model\":{},\"role\":\"extract\"}}",
        Value::String(model.to_owned())
    )
}

/// `default:extract:<hash>` for a prompt (user, system, history joined) and an identity.
pub fn extract_cache_key(prompt: &str, identity: &str) -> String {
    let hash = compute_args_hash(&[
        prompt,
        "\n<response_format>\n",
        "",
        "\n<llm_identity>\n",
        identity,
    ]);
    format!("default:extract:{hash}")
}

/// The prompt LightRAG hashes and stores as `original_prompt`: the non-empty parts of user
/// prompt, system prompt and history (as `json.dumps` writes it), joined with newlines.
pub fn cache_prompt(user: &str, system: &str, history: &[ChatMessage]) -> String {
    let mut parts: Vec<String> = Vec::with_capacity(3);
    if !user.is_empty() {
        parts.push(user.to_owned());
    }
    if !system.is_empty() {
        parts.push(system.to_owned());
    }
    if !history.is_empty() {
        parts.push(python_history_json(history));
    }
    parts.join("\n")
}

/// `json.dumps(history, ensure_ascii=False)`: `", "` and `": "` separators.
fn python_history_json(history: &[ChatMessage]) -> String {
    let items: Vec<String> = history
        .iter()
        .map(|m| {
            format!(
                "{{\"role\": {}, \"content\": {}}}",
                Value::String(m.role.as_str().to_owned()),
                Value::String(m.content.clone())
            )
        })
        .collect();
    format!("[{}]", items.join(", "))
}

/// LightRAG's `remove_think_tags`: drops a leading orphan `…</think>` and every
/// `<think>…</think>` block, then trims.
pub fn remove_think_tags(text: &str) -> String {
    let mut s = text;
    if let Some(close) = s.find("</think>")
        && !s[..close].contains("<think>")
    {
        s = &s[close + "</think>".len()..];
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(open) = rest.find("<think>") {
        match rest[open..].find("</think>") {
            Some(close) => {
                out.push_str(&rest[..open]);
                rest = &rest[open + close + "</think>".len()..];
            }
            None => break,
        }
    }
    out.push_str(rest);
    out.trim().to_owned()
}

// ---------------------------------------------------------------------------------------------
// Text normalisation (LightRAG 1.5.7 utils.py)

fn is_py_strip(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// LightRAG's `sanitize_text_for_encoding` (one implementation for the whole daemon).
pub fn sanitize_text(text: &str) -> String {
    crate::ingest::text::sanitize_text(text)
}

/// LightRAG's `sanitize_and_normalize_extracted_text`.
pub fn normalize_extracted_text(text: &str, remove_inner_quotes: bool) -> String {
    let safe = sanitize_text(text);
    if safe.is_empty() {
        return safe;
    }
    normalize_extracted_info(&safe, remove_inner_quotes)
}

/// LightRAG's `normalize_entity_name`.
pub fn normalize_entity_name(text: &str) -> String {
    normalize_extracted_text(text, true)
}

/// LightRAG's `_normalize_and_validate_entity_type` (after normalisation): `None` when the
/// type must be rejected.
pub fn normalize_entity_type(entity_type: &str) -> Option<String> {
    if entity_type.trim().is_empty()
        || entity_type
            .chars()
            .any(|c| matches!(c, '\'' | '(' | ')' | '<' | '>' | '|' | '/' | '\\'))
    {
        return None;
    }
    let first = if entity_type.contains(',') {
        entity_type
            .split(',')
            .map(str::trim)
            .find(|t| !t.is_empty())?
    } else {
        entity_type
    };
    let t = first.replace(' ', "").to_lowercase();
    if matches!(t.as_str(), "__proto__" | "constructor" | "prototype") {
        return None;
    }
    Some(t)
}

fn is_cjk(c: char) -> bool {
    ('\u{4e00}'..='\u{9fa5}').contains(&c)
}

fn is_cjk_adjacent_ascii(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '(' | ')' | '[' | ']' | '@' | '#' | '$' | '%' | '!' | '&' | '*' | '-' | '=' | '+' | '_'
        )
}

/// LightRAG's `normalize_extracted_info`.
fn normalize_extracted_info(input: &str, remove_inner_quotes: bool) -> String {
    // HTML paragraph and line-break tags.
    let mut name = strip_p_br_tags(input);
    // Full-width letters, digits and symbols to ASCII; CJK dashes and space.
    name = name
        .chars()
        .map(|c| match c {
            '\u{FF21}'..='\u{FF3A}' | '\u{FF41}'..='\u{FF5A}' | '\u{FF10}'..='\u{FF19}' => {
                char::from_u32(c as u32 - 0xFEE0).unwrap_or(c)
            }
            '－' | '—' => '-',
            '＋' => '+',
            '／' => '/',
            '＊' => '*',
            '（' => '(',
            '）' => ')',
            '\u{3000}' => ' ',
            other => other,
        })
        .collect();
    // Whitespace between CJK characters, and between CJK and ASCII word characters.
    if name.chars().any(is_cjk) {
        name = remove_cjk_spaces(&name);
    }
    // Outer quotes.
    if name.chars().count() >= 2 {
        for (open, close) in [
            ('"', '"'),
            ('\'', '\''),
            ('“', '”'),
            ('‘', '’'),
            ('《', '》'),
        ] {
            if let Some(inner) = name.strip_prefix(open).and_then(|s| s.strip_suffix(close))
                && !inner.contains(open)
                && !inner.contains(close)
            {
                name = inner.to_owned();
            }
        }
    }
    if remove_inner_quotes {
        name = name.replace(['“', '”', '‘', '’'], "");
        if name.chars().any(is_cjk) {
            name = remove_quotes_around_cjk(&name);
        }
        name = name.replace('\u{00A0}', " ");
        if name.contains('\u{202F}') {
            let mut out = String::with_capacity(name.len());
            let mut prev: Option<char> = None;
            for c in name.chars() {
                if c == '\u{202F}' && prev.is_some_and(|p| !p.is_numeric()) {
                    out.push(' ');
                } else {
                    out.push(c);
                }
                prev = Some(c);
            }
            name = out;
        }
    }
    let name = name.trim_matches(is_py_strip);
    let chars = name.chars().count();
    if chars < 3 && !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
        return String::new();
    }
    if chars < 6 && name.contains('.') && name.chars().all(|c| c == '.' || c.is_numeric()) {
        return String::new();
    }
    name.to_owned()
}

fn strip_p_br_tags(s: &str) -> String {
    if !s.contains('<') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(p) = rest.find('<') {
        out.push_str(&rest[..p]);
        let tail = &rest[p..];
        match tag_len(tail) {
            Some(n) => rest = &tail[n..],
            None => {
                out.push('<');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Length of `<p>`, `</p >`, `<p/>`, `<br>`, `</br>`, `<br/>` (any case, spaces before `>`)
/// at the start of `s`.
fn tag_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 1;
    let closing = b.get(i) == Some(&b'/');
    if closing {
        i += 1;
    }
    let word = if b
        .get(i..i + 2)
        .is_some_and(|w| w.eq_ignore_ascii_case(b"br"))
    {
        2
    } else if b.get(i).is_some_and(|c| c.eq_ignore_ascii_case(&b'p')) {
        1
    } else {
        return None;
    };
    i += word;
    if !closing && b.get(i) == Some(&b'/') && b.get(i + 1) == Some(&b'>') {
        return Some(i + 2);
    }
    while b.get(i).is_some_and(|c| c.is_ascii_whitespace()) {
        i += 1;
    }
    (b.get(i) == Some(&b'>')).then_some(i + 1)
}

fn remove_cjk_spaces(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            let mut j = i;
            while j < chars.len() && chars[j].is_whitespace() {
                j += 1;
            }
            let prev = out.chars().next_back();
            let next = chars.get(j).copied();
            let drop = match (prev, next) {
                (Some(p), Some(n)) => {
                    (is_cjk(p) && (is_cjk(n) || is_cjk_adjacent_ascii(n)))
                        || (is_cjk_adjacent_ascii(p) && is_cjk(n))
                }
                _ => false,
            };
            if !drop {
                out.extend(&chars[i..j]);
            }
            i = j;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn remove_quotes_around_cjk(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' || c == '"' {
            let mut j = i;
            while j < chars.len() && (chars[j] == '\'' || chars[j] == '"') {
                j += 1;
            }
            let before_cjk = chars.get(j).is_some_and(|&n| is_cjk(n));
            let after_cjk = i > 0 && is_cjk(chars[i - 1]);
            if !(before_cjk || after_cjk) {
                out.extend(&chars[i..j]);
            }
            i = j;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn opts() -> ExtractOptions {
        ExtractOptions::default()
    }

    #[test]
    fn args_hash_matches_lightrag() {
        // Values computed with lightrag-hku 1.5.7's own functions.
        assert_eq!(
            compute_args_hash(&["héllo"]),
            "be50e8478cf24ff3595bc7307fb91b50"
        );
        let identity = llm_cache_identity("openai/gpt-4o-mini");
        assert_eq!(
            identity,
            r#"{"binding":null,"host":null,"model":"openai/gpt-4o-mini","role":"extract"}"#
        );
        assert_eq!(
            extract_cache_key("user text é\nsystem text", &identity),
            "default:extract:fc2f5f6c3e0224663bed07966d9f5cc9"
        );
        let history = [
            ChatMessage {
                role: ChatRole::User,
                content: "a \"q\" é\n".into(),
            },
            ChatMessage {
                role: ChatRole::Assistant,
                content: "b\tc".into(),
            },
        ];
        let prompt = cache_prompt("cont", "sys", &history);
        assert_eq!(
            prompt,
            "cont\nsys\n[{\"role\": \"user\", \"content\": \"a \\\"q\\\" é\\n\"}, {\"role\": \"assistant\", \"content\": \"b\\tc\"}]"
        );
        assert_eq!(
            extract_cache_key(&prompt, &identity),
            "default:extract:b24be6eca840c3f5105e0f77f880db1f"
        );
    }

    /// Every extract key in LightRAG's own fixture is reproduced.
    #[test]
    fn fixture_cache_keys_reproduce() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/lightrag-1.5.7-small/kv_store_llm_response_cache.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("fixture {} missing: {e}", path.display()));
        let cache: serde_json::Map<String, Value> = serde_json::from_str(&text).unwrap();
        let identity = llm_cache_identity("fixture-fake-llm");
        let mut checked = 0;
        for (key, record) in &cache {
            if !key.starts_with("default:extract:") {
                continue;
            }
            let prompt = record["original_prompt"].as_str().unwrap();
            assert_eq!(&extract_cache_key(prompt, &identity), key);
            assert_eq!(record["cache_type"], "extract");
            checked += 1;
        }
        assert!(checked > 0);
    }

    #[test]
    fn parses_lenient_answers() {
        let answer = "Here are the results:\n\
            entity<|#|>Aster University<|#|>Organization<|#|>A university that collaborates.\n\
            entity<|#|>\"Ava Anders\"<|#|>person, researcher<|#|>A researcher.\n\
            garbage line without delimiters\n\
            entity<|#|>Broken<|#|>concept\n\
            entity<|#|>Aster University<|#|>Ava Anders<|#|>collaboration<|#|>Aster works with Ava.\n\
            relationship<|#|>Ava Anders<|#|>Federated Learning<|#|>research，study<|#|>Ava studies it.\n\
            relation<|#|>Ava Anders<|#|>Ava Anders<|#|>self<|#|>Self relation.\n\
            relation<|##|>Federated Learning<|#>Aster University<#|>topic<|#|Research topic of Aster.\n\
            - `entity<|#|>Federated Learning<|#|>Method<|#|>A training method.`\n\
            entity<|#|>Bad Type<|#|>foo/bar<|#|>Rejected type.\n\
            <|COMPLETE|>";
        let p = parse_answer(answer, "chunk-1", &opts());
        let names: Vec<_> = p.entities.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            ["Aster University", "Ava Anders", "Federated Learning"]
        );
        assert_eq!(p.entities[1].entity_type, "person");
        assert_eq!(p.entities[0].entity_type, "organization");
        assert_eq!(p.entities[2].entity_type, "method");
        let pairs: Vec<_> = p
            .relations
            .iter()
            .map(|r| (r.src.as_str(), r.tgt.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("Aster University", "Ava Anders"),
                ("Ava Anders", "Federated Learning"),
                ("Federated Learning", "Aster University"),
            ]
        );
        assert_eq!(p.relations[1].keywords, "research,study");
        assert!(p.relations.iter().all(|r| r.weight == 1.0));
        // "Here are…", "garbage…", the 3-field entity, the bad type.
        assert_eq!(p.malformed, 4);
    }

    #[test]
    fn glued_records_split() {
        let answer = "entity<|#|>A Corp<|#|>organization<|#|>Maker of A.<|#|>entity<|#|>B Corp<|#|>organization<|#|>Maker of B.<|#|>relation<|#|>A Corp<|#|>B Corp<|#|>rivalry<|#|>They compete.<|COMPLETE|>";
        let p = parse_answer(answer, "c", &opts());
        assert_eq!(p.entities.len(), 2);
        assert_eq!(p.relations.len(), 1);
        assert_eq!(p.malformed, 0);
    }

    #[test]
    fn limits_apply() {
        let mut answer = String::new();
        for i in 0..50 {
            answer.push_str(&format!(
                "entity<|#|>Entity {i}<|#|>concept<|#|>Number {i}.\n"
            ));
        }
        for i in 0..80 {
            answer.push_str(&format!(
                "relation<|#|>Entity {i}<|#|>Entity {}<|#|>next<|#|>Follows.\n",
                i + 1
            ));
        }
        let p = parse_answer(&answer, "c", &opts());
        assert_eq!(p.entities.len(), MAX_ENTITY_RECORDS);
        assert_eq!(p.entities.len() + p.relations.len(), MAX_RECORDS);
        assert_eq!(p.over_limit, 130 - MAX_RECORDS);
    }

    #[test]
    fn normalisation_matches_lightrag() {
        assert_eq!(normalize_entity_name("  \"Alice\"  "), "Alice");
        assert_eq!(normalize_entity_name("'Bob's'"), "'Bob's'");
        assert_eq!(normalize_entity_name("<p>Tom&amp;Jerry</p>"), "Tom&Jerry");
        assert_eq!(normalize_entity_name("１２"), "");
        assert_eq!(normalize_entity_name("1.2"), "");
        assert_eq!(normalize_entity_name("123"), "123");
        assert_eq!(normalize_entity_name("北京 大学"), "北京大学");
        assert_eq!(normalize_entity_name("“北京”"), "北京");
        assert_eq!(normalize_entity_name("A\u{00A0}B"), "A B");
        assert_eq!(normalize_entity_name("Ｇｏｏｇｌｅ"), "Google");
        assert_eq!(
            normalize_entity_type("Person, Researcher"),
            Some("person".into())
        );
        assert_eq!(
            normalize_entity_type("Natural Object"),
            Some("naturalobject".into())
        );
        assert_eq!(normalize_entity_type("a/b"), None);
        assert_eq!(normalize_entity_type(" , "), None);
        assert_eq!(normalize_entity_type("Constructor"), None);
        assert_eq!(sanitize_text("  a\u{1}b &lt;x&gt; \n"), "ab <x>");
    }

    #[test]
    fn think_tags_removed() {
        assert_eq!(remove_think_tags("<think>hmm</think>\nanswer"), "answer");
        assert_eq!(remove_think_tags("reasoning</think> answer"), "answer");
        assert_eq!(
            remove_think_tags("a<think>x</think>b<think>y</think>c"),
            "abc"
        );
        assert_eq!(remove_think_tags("plain"), "plain");
    }

    #[test]
    fn delimiter_repairs() {
        for bad in [
            "<|##|>", "<#>", "<|#>", "<#|>", "<|#|", "|#|>", "<||#||>", "<|\\#|>",
        ] {
            let rec = format!("entity{bad}Name<|#|>type<|#|>desc");
            assert_eq!(
                fix_delimiters(&rec),
                "entity<|#|>Name<|#|>type<|#|>desc",
                "{bad}"
            );
        }
        assert_eq!(fix_delimiters("a<|>b"), "a<|#|>b");
        assert_eq!(fix_delimiters("C# and ## heading"), "C# and ## heading");
    }

    #[test]
    fn gleaning_merge_prefers_longer_descriptions() {
        let e = |n: &str, d: &str| ExtractedEntity {
            name: n.into(),
            entity_type: "concept".into(),
            description: d.into(),
        };
        let first = ParsedAnswer {
            entities: vec![e("A", "short"), e("B", "a long description")],
            ..Default::default()
        };
        let glean = ParsedAnswer {
            entities: vec![e("A", "a longer one"), e("B", "tiny"), e("C", "new")],
            ..Default::default()
        };
        let merged = merge_gleaning(first, glean);
        let got: Vec<_> = merged
            .entities
            .iter()
            .map(|e| (e.name.as_str(), e.description.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("A", "a longer one"),
                ("B", "a long description"),
                ("C", "new")
            ]
        );
    }

    #[test]
    fn prompt_layout() {
        let o = opts();
        let user = fill(USER_TEMPLATE, &o, "Text with {tuple_delimiter} inside.");
        assert!(user.contains("---Input Text---\n```\nText with {tuple_delimiter} inside.\n```\n"));
        let system = fill(SYSTEM_TEMPLATE, &o, "");
        assert!(system.contains("entity<|#|>entity_name<|#|>entity_type<|#|>entity_description"));
        assert!(system.contains("Person, Creature, Organization"));
        assert!(system.contains("At most 100 rows in total and at most 40 entity rows"));
        assert!(!system.contains('{'), "unfilled placeholder: {system}");
        assert!(
            fill(CONTINUE_TEMPLATE, &o, "")
                .starts_with("---Task---\nBased on the last extraction task")
        );
    }
}
