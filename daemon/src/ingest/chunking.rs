//! LightRAG's default chunker, reproduced exactly: `chunking_by_token_size`
//! (`lightrag/chunker/token_size.py` in 1.5.7, `operate.py` in 1.4.9.8) with no split character,
//! over the o200k_base tokenizer (`TiktokenTokenizer("gpt-4o-mini")`).
//!
//! The algorithm: encode the whole text; for every start `s` in `range(0, n, size - overlap)` take
//! the window `tokens[s:s+size]`, decode it the way Python tiktoken does (bytes, then
//! `.decode("utf-8", errors="replace")`, so a window that splits a multi-byte character shows
//! U+FFFD at its edge), and `str.strip()` it. `tokens` is `min(size, n - s)` and
//! `chunk_order_index` the window index. Every start below `n` makes a window, so a 2201-token
//! text gives windows of 1200, 1101 and 1 tokens.
//!
//! Encoding is `encode_ordinary`: LightRAG's `Tokenizer.encode` retries with
//! `disallowed_special=()` when the text contains a special-token string such as
//! `<|endoftext|>`, i.e. it encodes such strings as ordinary text. (1.4.9.8 had no retry and
//! failed such documents.)

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use tiktoken_rs::CoreBPE;

use super::chunker_cache::ChunkerCache;
use super::text::{DEFAULT_CHUNK_OVERLAP_TOKEN_SIZE, DEFAULT_CHUNK_TOKEN_SIZE, py_strip};

/// Why chunking could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// The embedded o200k_base vocabulary could not be turned into a tokenizer.
    #[error("cannot build the o200k_base tokenizer: {0}")]
    Tokenizer(String),
    /// The tokenizer gave up on the text. tiktoken's pre-tokenising regex overflows its
    /// backtracking stack on a run of about a million whitespace characters not ending in a
    /// newline; Python tiktoken raises `ValueError` on exactly the same texts (same regex engine
    /// and limit, checked against tiktoken 0.14), so LightRAG fails such a document.
    #[error("the o200k_base tokenizer cannot split this text: {0}")]
    Tokenize(String),
    /// A chunk has more tokens than the embedding model accepts. LightRAG 1.5.7 then splits it
    /// again (`enforce_chunk_token_limit_before_embedding` → `split_by_token_limit`), which is
    /// not reproduced here.
    #[error(
        "chunk {order} has {tokens} tokens, over the embedding limit of {limit}; \
         LightRAG's hard split before embedding is not implemented"
    )]
    OverEmbeddingLimit {
        /// `chunk_order_index` of the window (before renumbering).
        order: usize,
        /// Its token count.
        tokens: usize,
        /// The embedding model's `max_token_size`.
        limit: usize,
    },
    /// `chunk_overlap_token_size >= chunk_token_size` (LightRAG's `_window_step` raises
    /// `ValueError` for the same sizes).
    #[error("chunk_overlap_token_size ({overlap}) must be < chunk_token_size ({size})")]
    InvalidSizes {
        /// The requested window size in tokens.
        size: usize,
        /// The requested overlap in tokens.
        overlap: usize,
    },
}

/// One window of a document, as `chunking_by_token_size` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// `chunk_order_index`: the window index, from 0.
    pub order: usize,
    /// `tokens`: `min(size, n_tokens - start)`. This counts the window's tokens, not the tokens
    /// of the stripped `content` ([`Chunker::stored_chunks`] recounts them when LightRAG does).
    pub tokens: usize,
    /// `content`: the decoded window after Python's `str.strip()`. Can be empty for a window of
    /// whitespace only; see [`Chunker::chunk`].
    pub content: String,
}

/// The o200k_base tokenizer and LightRAG's fixed-token chunker over it.
///
/// Building one parses the ~200k-entry vocabulary (about 0.3 s in release, over a second in
/// debug): use [`Chunker::shared`]. It is `Sync`; tiktoken keeps per-thread regex state.
pub struct Chunker {
    bpe: CoreBPE,
}

impl std::fmt::Debug for Chunker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunker")
            .field("encoding", &"o200k_base")
            .finish()
    }
}

impl Chunker {
    /// Builds a new tokenizer from the vocabulary embedded in `tiktoken-rs` (no download).
    pub fn new() -> Result<Self, ChunkError> {
        tiktoken_rs::o200k_base()
            .map(|bpe| Self { bpe })
            .map_err(|e| ChunkError::Tokenizer(e.to_string()))
    }

    /// The process-wide chunker, built on first use and released after a quiet period (see
    /// [`ChunkerCache`]): hold the `Arc` only while chunking.
    pub fn shared() -> Result<Arc<Chunker>, ChunkError> {
        ChunkerCache::global().get()
    }

    /// `tokenizer.encode(text)` (1.5.7 `Tokenizer.encode`): the o200k_base token ids of `text`,
    /// special-token strings such as `<|endoftext|>` encoded as ordinary text. Fails exactly
    /// where Python tiktoken raises (see [`ChunkError::Tokenize`]); the panic tiktoken-rs raises
    /// there is caught (the default panic hook still prints it once).
    pub fn try_encode(&self, text: &str) -> Result<Vec<u32>, ChunkError> {
        std::panic::catch_unwind(AssertUnwindSafe(|| self.bpe.encode_ordinary(text))).map_err(
            |payload| {
                let msg = payload
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| payload.downcast_ref::<&str>().copied())
                    .unwrap_or("tokenizer panicked");
                ChunkError::Tokenize(msg.to_owned())
            },
        )
    }

    /// [`Chunker::try_encode`], never failing: for a text LightRAG cannot tokenise it falls back
    /// to encoding 256 KiB slices separately (a best effort, not LightRAG's output, which is
    /// an error). Identical to `try_encode` on every other text.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        if let Ok(tokens) = self.try_encode(text) {
            return tokens;
        }
        const SLICE: usize = 256 * 1024;
        let mut tokens = Vec::with_capacity(text.len() / 4);
        let mut rest = text;
        while !rest.is_empty() {
            let mut cut = rest.len().min(SLICE);
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            let (head, tail) = rest.split_at(cut);
            // A slice is shorter than the failing whitespace run, so this cannot fail; if it
            // did, the slice would be dropped rather than panic.
            if let Ok(t) = self.try_encode(head) {
                tokens.extend(t);
            }
            rest = tail;
        }
        tokens
    }

    /// `len(tokenizer.encode(text))`: the token count LightRAG uses everywhere (chunk `tokens`,
    /// summary limits). Best effort on text LightRAG cannot tokenise (see [`Chunker::encode`]).
    pub fn count_tokens(&self, text: &str) -> usize {
        self.encode(text).len()
    }

    /// `tokenizer.decode(tokens)`: Python tiktoken's
    /// `decode_bytes(tokens).decode("utf-8", errors="replace")`. Each maximal invalid UTF-8
    /// subsequence becomes one U+FFFD, which is what both CPython and
    /// `String::from_utf8_lossy` do. Ids outside the vocabulary (never produced by
    /// [`Chunker::encode`]) are skipped.
    pub fn decode(&self, tokens: &[u32]) -> String {
        let bytes = match self.bpe.decode_bytes(tokens) {
            Ok(bytes) => bytes,
            Err(_) => {
                let mut bytes = Vec::with_capacity(tokens.len() * 4);
                for t in tokens {
                    if let Ok(b) = self.bpe.decode_bytes(std::slice::from_ref(t)) {
                        bytes.extend_from_slice(&b);
                    }
                }
                bytes
            }
        };
        match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }
    }

    /// `chunking_by_token_size(tokenizer, text)` with LightRAG's defaults: 1200-token windows,
    /// 100 tokens of overlap (windows start every 1100 tokens).
    ///
    /// Returns every window, exactly as LightRAG's chunker does. What LightRAG then stores:
    /// - 1.5.7 (`build_chunks_dict_from_chunking_result`) skips a chunk whose `content` is empty
    ///   and keys the others `chunk_id(doc_id, order)`, so the order indices (and ids) of later
    ///   chunks do not shift;
    /// - 1.4.9.8 keys every chunk `legacy_chunk_id(content)`, so chunks with equal text collapse
    ///   into the last one.
    ///
    /// Empty text gives no chunk. `text` must be the sanitised document (full_docs `content`).
    /// On a text LightRAG cannot tokenise this is a best effort (see [`Chunker::encode`]);
    /// [`Chunker::try_chunk`] fails there instead, as LightRAG does.
    pub fn chunk(&self, text: &str) -> Vec<Chunk> {
        let tokens = self.encode(text);
        self.windows(
            &tokens,
            DEFAULT_CHUNK_TOKEN_SIZE,
            DEFAULT_CHUNK_OVERLAP_TOKEN_SIZE,
        )
    }

    /// [`Chunker::chunk`], failing with [`ChunkError::Tokenize`] where LightRAG's tokenizer
    /// raises (and so LightRAG marks the document failed).
    pub fn try_chunk(&self, text: &str) -> Result<Vec<Chunk>, ChunkError> {
        self.chunk_with(
            text,
            DEFAULT_CHUNK_TOKEN_SIZE,
            DEFAULT_CHUNK_OVERLAP_TOKEN_SIZE,
        )
    }

    /// `chunking_by_token_size(tokenizer, text, None, False, overlap, size)`: windows of `size`
    /// tokens starting every `size - overlap` tokens. Fails like LightRAG when
    /// `overlap >= size` (which includes `size == 0`) and where its tokenizer raises.
    pub fn chunk_with(
        &self,
        text: &str,
        size: usize,
        overlap: usize,
    ) -> Result<Vec<Chunk>, ChunkError> {
        if overlap >= size {
            return Err(ChunkError::InvalidSizes { size, overlap });
        }
        let tokens = self.try_encode(text)?;
        Ok(self.windows(&tokens, size, overlap))
    }

    /// The chunks LightRAG 1.5.7 stores in text_chunks for a document `ainsert`ed with the
    /// default chunker, in order, each to be keyed `chunk_id(doc_id, order)`:
    /// - [`Chunker::try_chunk`], failing where LightRAG fails;
    /// - chunks whose content is empty are dropped;
    /// - without an embedding token limit (`None` or `Some(0)`, as in LightRAG) that is all:
    ///   `build_chunks_dict_from_chunking_result` keeps the others' `order`, leaving a gap;
    /// - when the embedding function declares a `max_token_size` (LightRAG's
    ///   `embedding_token_limit`; its OpenAI and Ollama bindings default to 8192, and the
    ///   fixtures were made with 8192), `enforce_chunk_token_limit_before_embedding` also
    ///   replaces `tokens` by the token count of the stripped content, `len(encode(content))`
    ///   (it can differ from the window size by a token where a window edge splits a character),
    ///   and renumbers `order` 0, 1, 2… over the chunks kept. A chunk over the limit would be
    ///   split again by LightRAG: that gives [`ChunkError::OverEmbeddingLimit`].
    pub fn stored_chunks(
        &self,
        text: &str,
        embedding_token_limit: Option<usize>,
    ) -> Result<Vec<Chunk>, ChunkError> {
        let mut chunks = self.try_chunk(text)?;
        chunks.retain(|c| !c.content.is_empty());
        if let Some(limit) = embedding_token_limit.filter(|&l| l > 0) {
            for c in &mut chunks {
                let tokens = self.try_encode(&c.content)?.len();
                if tokens > limit {
                    return Err(ChunkError::OverEmbeddingLimit {
                        order: c.order,
                        tokens,
                        limit,
                    });
                }
                c.tokens = tokens;
            }
            for (order, c) in chunks.iter_mut().enumerate() {
                c.order = order;
            }
        }
        Ok(chunks)
    }

    /// The window loop; `overlap < size` is the caller's to guarantee.
    fn windows(&self, tokens: &[u32], size: usize, overlap: usize) -> Vec<Chunk> {
        let step = size.saturating_sub(overlap).max(1);
        let n = tokens.len();
        let mut chunks = Vec::with_capacity(n.div_ceil(step));
        let mut start = 0usize;
        let mut order = 0usize;
        while start < n {
            let end = start.saturating_add(size).min(n);
            let window = tokens.get(start..end).unwrap_or_default();
            let decoded = self.decode(window);
            let stripped = py_strip(&decoded);
            let content = if stripped.len() == decoded.len() {
                decoded
            } else {
                stripped.to_owned()
            };
            chunks.push(Chunk {
                order,
                tokens: end - start,
                content,
            });
            order += 1;
            start = start.saturating_add(step);
        }
        chunks
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::HashMap;

    use serde_json::{Map, Value};

    use super::*;
    use crate::ingest::text::{
        CHUNK_METHOD_LEGACY, CHUNK_OPTS_DEFAULT, PARSE_ENGINE_LEGACY, PARSE_FORMAT_RAW, chunk_id,
        chunk_options, content_hash, content_length, content_summary, doc_id_for_path,
        duplicate_doc_id, error_doc_id, legacy_chunk_id, legacy_doc_id, md5_hex, sanitize_text,
        sanitize_text_legacy,
    };

    fn chunker() -> Arc<Chunker> {
        Chunker::shared().unwrap()
    }

    fn fixture_dir(name: &str) -> String {
        format!("{}/../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
    }

    fn load(dir: &str, file: &str) -> Map<String, Value> {
        let path = format!("{dir}/{file}");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        match serde_json::from_str(&text).unwrap() {
            Value::Object(map) => map,
            other => panic!("{path}: not an object: {other}"),
        }
    }

    fn s<'a>(v: &'a Value, key: &str) -> &'a str {
        v[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key} missing in {v}"))
    }

    fn n(v: &Value, key: &str) -> usize {
        usize::try_from(
            v[key]
                .as_u64()
                .unwrap_or_else(|| panic!("{key} missing in {v}")),
        )
        .unwrap()
    }

    /// (content, tokens, chunk_order_index) of every text_chunks record, by full_doc_id, by id.
    type StoredChunks = HashMap<String, HashMap<String, (String, usize, usize)>>;

    fn stored_chunks(dir: &str) -> StoredChunks {
        let mut by_doc: StoredChunks = HashMap::new();
        for (id, rec) in load(dir, "kv_store_text_chunks.json") {
            by_doc
                .entry(s(&rec, "full_doc_id").to_owned())
                .or_default()
                .insert(
                    id,
                    (
                        s(&rec, "content").to_owned(),
                        n(&rec, "tokens"),
                        n(&rec, "chunk_order_index"),
                    ),
                );
        }
        by_doc
    }

    /// Every 1.5.7 document record is reproduced: ids, content hash, summary, length, the
    /// chunking snapshots, and each processed document's chunks (id, content, tokens, order).
    /// Returns the number of processed documents and chunks checked.
    fn check_fixture_157(dir: &str) -> (usize, usize) {
        let full_docs = load(dir, "kv_store_full_docs.json");
        let status = load(dir, "kv_store_doc_status.json");
        let mut stored = stored_chunks(dir);
        let (mut docs, mut chunks_checked) = (0, 0);
        for (doc_id, fd) in &full_docs {
            let content = s(fd, "content");
            let file_path = s(fd, "file_path");
            assert_eq!(&doc_id_for_path(file_path), doc_id);
            assert_eq!(content_hash(content), s(fd, "content_hash"), "{doc_id}");
            assert_eq!(
                sanitize_text(content),
                content,
                "stored content is sanitised"
            );
            assert_eq!(fd["chunk_options"], chunk_options(1200, 100));
            assert_eq!(s(fd, "parse_format"), PARSE_FORMAT_RAW);

            let st = &status[doc_id.as_str()];
            assert_eq!(s(st, "content_hash"), content_hash(content));
            assert_eq!(s(st, "content_summary"), content_summary(content));
            assert_eq!(n(st, "content_length"), content_length(content));
            assert_eq!(s(st, "file_path"), file_path);
            if s(st, "status") != "processed" {
                continue;
            }
            docs += 1;
            let meta = &st["metadata"];
            assert_eq!(s(meta, "chunk_method"), CHUNK_METHOD_LEGACY);
            assert_eq!(s(meta, "chunk_opts"), CHUNK_OPTS_DEFAULT);
            assert_eq!(s(meta, "parse_engine"), PARSE_ENGINE_LEGACY);

            let mut expected = HashMap::new();
            let mut ids = Vec::new();
            // The fixtures were made with an embedding function of max_token_size=8192.
            for c in chunker().stored_chunks(content, Some(8192)).unwrap() {
                let id = chunk_id(doc_id, c.order);
                ids.push(Value::String(id.clone()));
                expected.insert(id, (c.content, c.tokens, c.order));
            }
            let actual = stored.remove(doc_id.as_str()).unwrap_or_default();
            assert_eq!(actual, expected, "{doc_id}");
            assert_eq!(st["chunks_list"], Value::Array(ids), "{doc_id}");
            assert_eq!(n(st, "chunks_count"), expected.len());
            chunks_checked += expected.len();
        }
        assert!(
            stored.is_empty(),
            "chunks of unknown documents: {:?}",
            stored.keys()
        );
        (docs, chunks_checked)
    }

    /// 1.4.9.8: content-hash doc and chunk ids, same chunk texts and token counts.
    fn check_fixture_149(dir: &str) -> (usize, usize) {
        let full_docs = load(dir, "kv_store_full_docs.json");
        let status = load(dir, "kv_store_doc_status.json");
        let mut stored = stored_chunks(dir);
        let (mut docs, mut chunks_checked) = (0, 0);
        for (doc_id, fd) in &full_docs {
            let content = s(fd, "content");
            assert_eq!(&legacy_doc_id(content), doc_id);
            assert_eq!(
                sanitize_text_legacy(content),
                content,
                "stored content is sanitised"
            );
            let st = &status[doc_id.as_str()];
            assert_eq!(s(st, "content_summary"), content_summary(content));
            assert_eq!(n(st, "content_length"), content_length(content));
            if s(st, "status") != "processed" {
                continue;
            }
            docs += 1;
            // A Python dict keyed by content hash: a repeated key keeps its first position and
            // takes the last value.
            let mut ids: Vec<String> = Vec::new();
            let mut expected = HashMap::new();
            for c in chunker().try_chunk(content).unwrap() {
                let id = legacy_chunk_id(&c.content);
                if !expected.contains_key(&id) {
                    ids.push(id.clone());
                }
                expected.insert(id, (c.content, c.tokens, c.order));
            }
            let actual = stored.remove(doc_id.as_str()).unwrap_or_default();
            assert_eq!(actual, expected, "{doc_id}");
            let ids: Vec<Value> = ids.into_iter().map(Value::String).collect();
            assert_eq!(st["chunks_list"], Value::Array(ids), "{doc_id}");
            chunks_checked += expected.len();
        }
        assert!(
            stored.is_empty(),
            "chunks of unknown documents: {:?}",
            stored.keys()
        );
        (docs, chunks_checked)
    }

    #[test]
    fn reproduces_lightrag_157_small_fixture() {
        let (docs, chunks) = check_fixture_157(&fixture_dir("lightrag-1.5.7-small"));
        assert_eq!((docs, chunks), (12, 14));
    }

    #[test]
    fn reproduces_lightrag_149_small_fixture() {
        let (docs, chunks) = check_fixture_149(&fixture_dir("lightrag-1.4.9.8-small"));
        assert_eq!((docs, chunks), (10, 12));
    }

    #[test]
    fn failed_row_ids_of_157_fixture() {
        let status = load(
            &fixture_dir("lightrag-1.5.7-small"),
            "kv_store_doc_status.json",
        );
        let dup = &status["dup-19e7282ee90463394396c088dd1096fd"];
        let original = doc_id_for_path(s(dup, "file_path"));
        assert_eq!(original, s(&dup["metadata"], "original_doc_id"));
        assert_eq!(
            duplicate_doc_id(&original, s(dup, "track_id"), 0, s(dup, "file_path")),
            "dup-19e7282ee90463394396c088dd1096fd"
        );
        let err = &status["error-3f8d853ddd0734f25d6d0e918d72f38e"];
        assert_eq!(
            error_doc_id(s(err, "file_path"), s(err, "content_summary")),
            "error-3f8d853ddd0734f25d6d0e918d72f38e"
        );
    }

    /// Checks a chunking against LightRAG's `chunking_by_token_size` output, given as
    /// (tokens, content length in chars, md5 of content).
    fn assert_chunks(chunks: &[Chunk], expected: &[(usize, usize, &str)]) {
        let got: Vec<(usize, usize, usize, String)> = chunks
            .iter()
            .map(|c| {
                (
                    c.order,
                    c.tokens,
                    c.content.chars().count(),
                    md5_hex(&c.content),
                )
            })
            .collect();
        let want: Vec<(usize, usize, usize, String)> = expected
            .iter()
            .enumerate()
            .map(|(i, &(t, len, h))| (i, t, len, h.to_owned()))
            .collect();
        assert_eq!(got, want);
    }

    // The expected values below were printed by LightRAG 1.5.7's
    // `chunking_by_token_size(TiktokenTokenizer("gpt-4o-mini"), text)` (tiktoken 0.14).

    #[test]
    fn multi_window_document_matches_lightrag() {
        let text = format!("word{}", " word".repeat(2200));
        assert_eq!(chunker().count_tokens(&text), 2201);
        let chunks = chunker().chunk(&text);
        assert_chunks(
            &chunks,
            &[
                (1200, 5999, "453c7a80ce640b4420f311e778bbce72"),
                (1101, 5504, "245de804bffaaa3d407b1eb3c003f8df"),
                (1, 4, "c47d187067c6cf953245f128b5fde62a"),
            ],
        );
        assert_eq!(chunks[2].content, "word");
    }

    #[test]
    fn windows_splitting_characters_decode_like_python() {
        // CJK characters that take two tokens each: window edges cut characters in half.
        let cjk: String = (0..3000u32)
            .map(|i| char::from_u32(0x4e00 + (i * 7919) % 20000).unwrap())
            .collect();
        let chunks = chunker().chunk(&cjk);
        assert_chunks(
            &chunks,
            &[
                (1200, 628, "e2e24875f8d335010b9242a729b0c87d"),
                (1200, 624, "fdfd898d0070bbc01ed8f23748eb86b2"),
                (1200, 625, "26439527f07ffde9569ef0b9c2376566"),
                (1200, 631, "e957595db5ad09925490c2fed7dbd333"),
                (1200, 628, "87d79351b36154580b52c15432d32d8b"),
                (238, 126, "a066bd07a3c77b7d0e07fd7b6fd2f8ab"),
            ],
        );
        assert!(chunks[1].content.starts_with('\u{fffd}'));
        assert!(chunks[1].content.ends_with('\u{fffd}'));

        // Emoji (4-byte characters, ZWJ sequences): one window starts with two U+FFFD.
        let emoji = "\u{1f642}\u{1f980}\u{1f469}\u{200d}\u{1f680}".repeat(900);
        let chunks = chunker().chunk(&emoji);
        assert_chunks(
            &chunks,
            &[
                (1200, 667, "3a7b0cf335ab1cea1161f5d77a019bd9"),
                (1200, 668, "9aff2d5aad927888552764249e16ee00"),
                (1200, 667, "b3057fd807cbf8fe7594836a8d77b764"),
                (1200, 667, "a74d95d02860fef86e5450530c916dbe"),
                (1200, 668, "e670980ecda3f839541e3c01f124c5d8"),
                (1200, 666, "9cd0877812e3dd78bf0932e2df04b3ba"),
                (1200, 667, "406a307dfdd170125745c82ebc8c7390"),
                (400, 223, "ca43c53da6cdd35aa880d8f6fa6fe4f8"),
            ],
        );
        assert!(chunks[1].content.starts_with("\u{fffd}\u{fffd}\u{1f469}"));
    }

    #[test]
    fn special_token_strings_are_ordinary_text() {
        let text = "Intro <|endoftext|> middle <|endofprompt|> end ".repeat(3);
        let chunks = chunker().chunk(&text);
        assert_chunks(&chunks, &[(52, 140, "8c1a683f9711d756ca30c3d715c7a44a")]);
    }

    #[test]
    fn whitespace_window_gives_empty_content() {
        let text = format!("start{}end", " \n".repeat(6000));
        let chunks = chunker().chunk(&text);
        let got: Vec<(usize, usize, &str)> = chunks
            .iter()
            .map(|c| (c.order, c.tokens, c.content.as_str()))
            .collect();
        assert_eq!(got, [(0, 1200, "start"), (1, 1200, ""), (2, 802, "end")]);
    }

    /// Expected values from `enforce_chunk_token_limit_before_embedding(chunking_by_token_size(
    /// tok, text), tok, max_tokens=8192)` and `build_chunks_dict_from_chunking_result`.
    #[test]
    fn stored_chunks_match_lightrag_pipeline() {
        let text = format!("start{}end", " \n".repeat(6000));
        let summary = |chunks: Vec<Chunk>| -> Vec<(usize, usize, String)> {
            chunks
                .into_iter()
                .map(|c| (c.order, c.tokens, c.content))
                .collect()
        };
        // No embedding limit: the empty window is skipped, the order gap stays.
        assert_eq!(
            summary(chunker().stored_chunks(&text, None).unwrap()),
            [(0, 1200, "start".into()), (2, 802, "end".into())]
        );
        // With a limit: tokens recounted, orders renumbered.
        assert_eq!(
            summary(chunker().stored_chunks(&text, Some(8192)).unwrap()),
            [(0, 1, "start".into()), (1, 1, "end".into())]
        );
        // A window edge inside an emoji: its U+FFFD re-encodes to one token fewer.
        let emoji = "\u{1f642}\u{1f980}\u{1f469}\u{200d}\u{1f680}".repeat(900);
        let tokens: Vec<usize> = chunker()
            .stored_chunks(&emoji, Some(8192))
            .unwrap()
            .iter()
            .map(|c| c.tokens)
            .collect();
        assert_eq!(tokens, [1199, 1199, 1200, 1200, 1200, 1200, 1200, 400]);
        assert_eq!(
            chunker().stored_chunks(&emoji, Some(1000)),
            Err(ChunkError::OverEmbeddingLimit {
                order: 0,
                tokens: 1199,
                limit: 1000
            })
        );
    }

    #[test]
    fn custom_sizes_and_invalid_sizes() {
        let chunks = chunker().chunk_with("alpha beta gamma", 2, 1).unwrap();
        let got: Vec<(usize, usize, &str)> = chunks
            .iter()
            .map(|c| (c.order, c.tokens, c.content.as_str()))
            .collect();
        assert_eq!(
            got,
            [(0, 2, "alpha beta"), (1, 2, "beta gamma"), (2, 1, "gamma")]
        );
        assert_eq!(
            chunker().chunk_with("x", 100, 100),
            Err(ChunkError::InvalidSizes {
                size: 100,
                overlap: 100
            })
        );
        assert!(chunker().chunk_with("x", 0, 0).is_err());
        assert!(chunker().chunk_with("", 1, 0).unwrap().is_empty());
    }

    #[test]
    fn empty_and_tiny_inputs() {
        assert!(chunker().chunk("").is_empty());
        assert_eq!(chunker().count_tokens(""), 0);
        let one = chunker().chunk("x");
        assert_eq!(
            one,
            [Chunk {
                order: 0,
                tokens: 1,
                content: "x".into()
            }]
        );
        // Python's strip() removes U+001C..U+001F too.
        assert_eq!(chunker().chunk("\u{1c}x\u{1f}")[0].content, "x");
        assert_eq!(chunker().decode(&[]), "");
        assert_eq!(chunker().decode(&[u32::MAX]), "");
    }

    /// A whitespace run of about a million characters overflows tiktoken's regex stack; Python
    /// tiktoken raises there (LightRAG fails the document), tiktoken-rs panics. Neither escapes.
    #[test]
    fn untokenisable_text_fails_without_panicking() {
        let text = format!("a{}b", " ".repeat(1_000_000));
        assert!(matches!(
            chunker().try_chunk(&text),
            Err(ChunkError::Tokenize(_))
        ));
        assert!(matches!(
            chunker().try_encode(&text),
            Err(ChunkError::Tokenize(_))
        ));
        let best_effort = chunker().chunk(&text);
        assert!(!best_effort.is_empty());
        assert_eq!(best_effort[0].content, "a");
        // The tokenizer still works afterwards.
        assert_eq!(chunker().count_tokens("hello world"), 2);
    }
}
