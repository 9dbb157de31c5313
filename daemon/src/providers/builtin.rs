//! The offline providers: [`HashEmbedder`] and [`RuleExtractor`]. No key, no network, no
//! model files; deterministic across runs and platforms. Both are CPU-bound: large inputs are
//! moved to tokio's blocking pool so they never stall the runtime.
//!
//! **HashEmbedder (`hrag-hash-v1`).** Signed feature hashing of the lower-cased text into `dim`
//! buckets (default 384): word unigrams (weight 1.0; stop words 0.2), word bigrams (0.7), and
//! the character 3-, 4- and 5-grams of each word padded as `<word>` (0.35 each; not for stop
//! words nor words over 40 characters). Words are maximal runs of Unicode alphanumerics. Each
//! feature is hashed with 64-bit FNV-1a over a kind tag and its UTF-8 bytes, finished with the
//! splitmix64 mixer; the high bits pick the bucket, the lowest bit the sign. The vector is
//! L2-normalised (an empty text gets a fixed unit vector). Texts sharing words share buckets, so
//! their cosine is clearly higher than that of unrelated texts; it is a lexical embedding, not a
//! semantic one. Any change to these rules must change the model name (vectors of different
//! rules must not be mixed in one store).
//!
//! **RuleExtractor (`hrag-rules-v1`).** Per chunk:
//! 1. Sentences: split after `.`, `!`, `?` (and CJK terminals) followed by whitespace, unless the
//!    period ends a known abbreviation or an initial, or the next word is lower-case; at blank
//!    lines; before lines starting with a list, heading, quote or table marker; after heading
//!    lines.
//! 2. Candidates: runs of capitalised words (a capital first letter — `É` counts —, acronyms such
//!    as `NASA` or `GPT-4`, inner capitals such as `iPhone`), adjacent within the sentence
//!    (whitespace or ` & ` between them). Code is never a name: Markdown code spans and fenced
//!    blocks, and identifier-shaped words (`$XDG_DIR`, `Cargo.toml`, `a/b`, `call(`). Inside a run, name particles (`van`, `de`, `da`…) join
//!    two capitalised words, and `of` / `for` / `on` do after an institution, place or event head
//!    word ("University of Oslo", "Conference on Learning"). Leading stop words and titles are
//!    dropped ("When Dr Ava Anders" → "Ava Anders"); a lone capitalised word at the start of a
//!    sentence is kept only if the chunk also capitalises it mid-sentence, or it is an acronym;
//!    runs longer than 6 words (title-cased headings) and single letters are skipped. Names are
//!    normalised as LightRAG normalises extracted names, with whitespace collapsed.
//! 3. Types, by the words of the name: a last word such as Inc, Labs, University, Foundation,
//!    Institute, Bank, Group → `organization`; an institution head with `of` ("Bank of
//!    England") → `organization`, a place head ("Republic of Korea") or last word (River, City,
//!    Street…) → `location`, an event head or last word (Conference, Summit, War…) → `event`; a
//!    title before the name, a common given name as first word, or a speech verb after the name
//!    ("Anders said") → `person`; otherwise `concept`. A lone word equal to the first or last word
//!    of exactly one multi-word person of the chunk is that person ("Anders" → "Ava Anders").
//! 4. Descriptions: the sentences mentioning the entity, whitespace collapsed, joined up to 600
//!    characters.
//! 5. Relations: every pair of distinct entities co-occurring in a sentence (the first 6 entities
//!    of a sentence), once per pair per chunk, from the earlier to the later mention; keywords
//!    are up to three lower-case content words between the two mentions (else in the clause
//!    spanning the sentence's mentions, else in the sentence, else "related to"); description
//!    the sentence(s) they share, up to 600 characters; weight 1.0.
//!
//! Output order is deterministic: entities by first mention, relations by first co-occurrence.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;

use super::extraction::normalize_entity_name;
use super::lexicon::{
    ABBREVIATIONS, EVENT_HEADS, EVENT_SUFFIXES, GIVEN_NAMES, HEAD_CONNECTORS, HONORIFICS,
    LOCATION_HEADS, LOCATION_SUFFIXES, NAME_PARTICLES, ORG_HEADS, ORG_SUFFIXES, PERSON_VERBS,
    STOP_WORDS,
};
use super::{Embedder, ExtractedEntity, ExtractedRelation, Extraction, Extractor, ProviderError};

/// Model name of [`HashEmbedder`].
pub const HASH_EMBEDDER_MODEL: &str = "hrag-hash-v1";
/// Name of [`RuleExtractor`] (accepted as a model string meaning "built-in").
pub const RULE_EXTRACTOR_NAME: &str = "hrag-rules-v1";
/// [`HashEmbedder`]'s dimension when `embedding_dim` is not configured.
pub const DEFAULT_HASH_DIM: usize = 384;

/// Inputs larger than this (bytes) are processed on the blocking pool.
const INLINE_LIMIT: usize = 64 * 1024;

// ---------------------------------------------------------------------------------------------
// HashEmbedder

const W_WORD: f32 = 1.0;
/// Words mixing letters and digits (codes, versions, ids) say the most about a text.
const W_CODE_WORD: f32 = 3.0;
const W_STOP_WORD: f32 = 0.2;
const W_BIGRAM: f32 = 0.7;
const W_CHAR: f32 = 0.35;
const MAX_CHAR_NGRAM_WORD: usize = 40;

const TAG_WORD: u8 = 1;
const TAG_BIGRAM: u8 = 2;
const TAG_CHAR: u8 = 3; // + n
const TAG_EMPTY: u8 = 9;

/// The offline embedder (rules in the module documentation).
#[derive(Debug, Clone)]
pub struct HashEmbedder {
    dim: usize,
}

impl HashEmbedder {
    /// An embedder of `dim` dimensions (1–65536).
    pub fn new(dim: usize) -> Result<HashEmbedder, ProviderError> {
        if !(1..=65_536).contains(&dim) {
            return Err(ProviderError::Invalid(format!(
                "{HASH_EMBEDDER_MODEL}: dimension {dim} is outside 1–65536"
            )));
        }
        Ok(HashEmbedder { dim })
    }

    /// The vector of one text.
    pub fn embed_one(&self, text: &str) -> Vec<f32> {
        let mut v = vec![0f32; self.dim];
        // feature → (weight, occurrences): weights are applied sublinearly (1 + ln tf) so a
        // word repeated many times does not drown the rest of the text.
        // Features are already hashes: collect, sort and merge runs (no map hashing them again).
        let mut acc: Vec<(u64, f32)> = Vec::with_capacity(text.len());
        let mut note = |h: u64, w: f32| acc.push((h, w));
        let lower = text.to_lowercase();
        let mut prev: Option<&str> = None;
        let mut padded = String::new();
        let mut bounds: Vec<usize> = Vec::new();
        for word in lower
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            let stop = STOP_WORDS.contains(word);
            let code =
                word.chars().any(|c| c.is_numeric()) && word.chars().any(|c| c.is_alphabetic());
            let w = match (stop, code) {
                (true, _) => W_STOP_WORD,
                (false, true) => W_CODE_WORD,
                (false, false) => W_WORD,
            };
            note(feature(TAG_WORD, &[word.as_bytes()]), w);
            if let Some(p) = prev {
                note(
                    feature(TAG_BIGRAM, &[p.as_bytes(), b" ", word.as_bytes()]),
                    W_BIGRAM,
                );
            }
            prev = Some(word);
            if stop {
                continue;
            }
            padded.clear();
            padded.push('<');
            padded.push_str(word);
            padded.push('>');
            bounds.clear();
            bounds.extend(padded.char_indices().map(|(i, _)| i));
            bounds.push(padded.len());
            let chars = bounds.len() - 1;
            if chars > MAX_CHAR_NGRAM_WORD + 2 {
                continue;
            }
            for n in 3..=5usize {
                if chars < n {
                    break;
                }
                for i in 0..=chars - n {
                    let gram = &padded.as_bytes()[bounds[i]..bounds[i + n]];
                    note(feature(TAG_CHAR + n as u8, &[gram]), W_CHAR);
                }
            }
        }
        acc.sort_unstable_by_key(|(h, _)| *h);
        for run in acc.chunk_by(|a, b| a.0 == b.0) {
            let w = run.iter().map(|(_, w)| *w).fold(0.0f32, f32::max);
            self.add(&mut v, run[0].0, w * (1.0 + (run.len() as f32).ln()));
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 && norm.is_finite() {
            for x in &mut v {
                *x /= norm;
            }
        } else {
            v.iter_mut().for_each(|x| *x = 0.0);
            let h = feature(TAG_EMPTY, &[]);
            v[self.bucket(h)] = 1.0;
        }
        v
    }

    fn bucket(&self, h: u64) -> usize {
        ((h as u128 * self.dim as u128) >> 64) as usize
    }

    fn add(&self, v: &mut [f32], h: u64, w: f32) {
        let i = self.bucket(h);
        if h & 1 == 1 {
            v[i] -= w;
        } else {
            v[i] += w;
        }
    }
}

/// FNV-1a 64 over a tag byte and the parts, finished with splitmix64.
fn feature(tag: u8, parts: &[&[u8]]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    h ^= u64::from(tag);
    h = h.wrapping_mul(PRIME);
    for p in parts {
        for &b in *p {
            h ^= u64::from(b);
            h = h.wrapping_mul(PRIME);
        }
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[async_trait]
impl Embedder for HashEmbedder {
    fn model_name(&self) -> &str {
        HASH_EMBEDDER_MODEL
    }

    fn dim(&self) -> usize {
        self.dim
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, ProviderError> {
        let total: usize = texts.iter().map(String::len).sum();
        if total <= INLINE_LIMIT {
            return Ok(texts.iter().map(|t| self.embed_one(t)).collect());
        }
        let this = self.clone();
        let owned = texts.to_vec();
        tokio::task::spawn_blocking(move || owned.iter().map(|t| this.embed_one(t)).collect())
            .await
            .map_err(|e| ProviderError::Invalid(format!("{HASH_EMBEDDER_MODEL}: {e}")))
    }
}

// ---------------------------------------------------------------------------------------------
// RuleExtractor

/// The offline extractor (rules in the module documentation).
#[derive(Debug, Clone)]
pub struct RuleExtractor {
    max_description_chars: usize,
    max_entities_per_sentence: usize,
    max_run_words: usize,
}

impl Default for RuleExtractor {
    fn default() -> Self {
        RuleExtractor {
            max_description_chars: 600,
            max_entities_per_sentence: 6,
            max_run_words: 6,
        }
    }
}

#[async_trait]
impl Extractor for RuleExtractor {
    async fn extract(&self, _chunk_id: &str, text: &str) -> Result<Extraction, ProviderError> {
        if text.len() <= INLINE_LIMIT {
            return Ok(self.extract_text(text));
        }
        let this = self.clone();
        let owned = text.to_owned();
        tokio::task::spawn_blocking(move || this.extract_text(&owned))
            .await
            .map_err(|e| ProviderError::Invalid(format!("{RULE_EXTRACTOR_NAME}: {e}")))
    }
}

#[derive(Debug, Clone, Copy)]
struct Token {
    start: usize,
    end: usize,
    /// Starts a name: capitalised, an acronym, or an inner capital; never code.
    cap: bool,
    acronym: bool,
    alpha: bool,
    initial: bool,
    /// Inside a code span or block, or shaped like an identifier, path or file name.
    code: bool,
}

#[derive(Debug, Clone, Copy)]
struct Sentence {
    start: usize,
    end: usize,
    tokens: (usize, usize),
}

#[derive(Debug, Clone, Copy)]
struct Mention {
    sentence: usize,
    entity: usize,
    first_tok: usize,
    last_tok: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Concept,
    Person,
    Organization,
    Location,
    Event,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Concept => "concept",
            Kind::Person => "person",
            Kind::Organization => "organization",
            Kind::Location => "location",
            Kind::Event => "event",
        }
    }
}

struct Candidate {
    name: String,
    kind: Kind,
    words: usize,
}

impl RuleExtractor {
    pub fn new() -> RuleExtractor {
        RuleExtractor::default()
    }

    /// Extracts synchronously.
    pub fn extract_text(&self, text: &str) -> Extraction {
        let sentences_ranges = split_sentences(text);
        let code = code_spans(text);
        let mut tokens: Vec<Token> = Vec::new();
        let mut sentences: Vec<Sentence> = Vec::with_capacity(sentences_ranges.len());
        for (s, e) in sentences_ranges {
            let first = tokens.len();
            tokenize(text, s, e, &code, &mut tokens);
            sentences.push(Sentence {
                start: s,
                end: e,
                tokens: (first, tokens.len()),
            });
        }
        // Words the chunk capitalises mid-sentence.
        let mut mid_caps: HashSet<String> = HashSet::new();
        for t in &tokens {
            if t.cap && !t.initial {
                mid_caps.insert(text[t.start..t.end].to_lowercase());
            }
        }

        let mut entities: Vec<Candidate> = Vec::new();
        let mut by_name: HashMap<String, usize> = HashMap::new();
        let mut mentions: Vec<Mention> = Vec::new();
        for (si, s) in sentences.iter().enumerate() {
            let (a, b) = s.tokens;
            let mut k = a;
            while k < b {
                if !tokens[k].cap {
                    k += 1;
                    continue;
                }
                let (r0, r1) = run_at(text, &tokens, k, b);
                k = r1 + 1;
                if let Some((name, kind, f, l)) =
                    self.candidate(text, &tokens, a, b, r0, r1, &mid_caps)
                {
                    let idx = match by_name.get(&name) {
                        Some(&i) => {
                            if entities[i].kind == Kind::Concept {
                                entities[i].kind = kind;
                            }
                            i
                        }
                        None => {
                            let words = name.split_whitespace().count();
                            entities.push(Candidate {
                                name: name.clone(),
                                kind,
                                words,
                            });
                            by_name.insert(name, entities.len() - 1);
                            entities.len() - 1
                        }
                    };
                    mentions.push(Mention {
                        sentence: si,
                        entity: idx,
                        first_tok: f,
                        last_tok: l,
                    });
                }
            }
        }

        // "Anders" → "Ava Anders" when exactly one multi-word person fits.
        let mut part_of: HashMap<String, Option<usize>> = HashMap::new();
        for (i, e) in entities.iter().enumerate() {
            if e.kind == Kind::Person && e.words > 1 {
                let words: Vec<&str> = e.name.split_whitespace().collect();
                for w in [words[0], words[words.len() - 1]] {
                    part_of
                        .entry(w.to_owned())
                        .and_modify(|p| {
                            if *p != Some(i) {
                                *p = None;
                            }
                        })
                        .or_insert(Some(i));
                }
            }
        }
        let alias: Vec<usize> = entities
            .iter()
            .enumerate()
            .map(|(i, e)| match part_of.get(&e.name) {
                Some(Some(p)) if e.words == 1 => *p,
                _ => i,
            })
            .collect();
        for m in &mut mentions {
            m.entity = alias[m.entity];
        }

        // Entities in first-mention order.
        let mut order: Vec<usize> = Vec::new();
        let mut seen = vec![false; entities.len()];
        for m in &mentions {
            if !seen[m.entity] {
                seen[m.entity] = true;
                order.push(m.entity);
            }
        }
        let mut sentence_text: Vec<Option<String>> = vec![None; sentences.len()];
        let mut sentence_of = |si: usize| -> String {
            sentence_text[si]
                .get_or_insert_with(|| {
                    collapse_whitespace(&text[sentences[si].start..sentences[si].end])
                })
                .clone()
        };
        let mut out = Extraction::default();
        for &ei in &order {
            let mut sents: Vec<usize> = mentions
                .iter()
                .filter(|m| m.entity == ei)
                .map(|m| m.sentence)
                .collect();
            sents.dedup();
            let parts: Vec<String> = sents.iter().map(|&si| sentence_of(si)).collect();
            out.entities.push(ExtractedEntity {
                name: entities[ei].name.clone(),
                entity_type: entities[ei].kind.as_str().to_owned(),
                description: bounded_join(&parts, self.max_description_chars),
            });
        }

        // Relations: co-occurrence in a sentence, once per unordered pair.
        let mut pair_index: HashMap<(usize, usize), usize> = HashMap::new();
        let mut pair_sentences: Vec<Vec<usize>> = Vec::new();
        let mut pair_keywords: Vec<Vec<String>> = Vec::new();
        let mut pairs: Vec<(usize, usize)> = Vec::new();
        let mut m0 = 0;
        while m0 < mentions.len() {
            let si = mentions[m0].sentence;
            let mut m1 = m0;
            while m1 < mentions.len() && mentions[m1].sentence == si {
                m1 += 1;
            }
            // First mention of each distinct entity in this sentence.
            let mut firsts: Vec<Mention> = Vec::new();
            for m in &mentions[m0..m1] {
                if !firsts.iter().any(|f| f.entity == m.entity) {
                    firsts.push(*m);
                }
            }
            firsts.truncate(self.max_entities_per_sentence);
            let mention_toks: Vec<(usize, usize)> = mentions[m0..m1]
                .iter()
                .map(|m| (m.first_tok, m.last_tok))
                .collect();
            for x in 0..firsts.len() {
                for y in x + 1..firsts.len() {
                    let (mx, my) = (firsts[x], firsts[y]);
                    let key = (mx.entity.min(my.entity), mx.entity.max(my.entity));
                    let kw = keywords_between(text, &tokens, &sentences[si], mx, my, &mention_toks);
                    let idx = match pair_index.get(&key) {
                        Some(&i) => i,
                        None => {
                            pairs.push((mx.entity, my.entity));
                            pair_sentences.push(Vec::new());
                            pair_keywords.push(Vec::new());
                            pair_index.insert(key, pairs.len() - 1);
                            pairs.len() - 1
                        }
                    };
                    if !pair_sentences[idx].contains(&si) {
                        pair_sentences[idx].push(si);
                    }
                    for w in kw {
                        if pair_keywords[idx].len() < 5 && !pair_keywords[idx].contains(&w) {
                            pair_keywords[idx].push(w);
                        }
                    }
                }
            }
            m0 = m1;
        }
        for (i, &(src, tgt)) in pairs.iter().enumerate() {
            if src == tgt {
                continue;
            }
            let parts: Vec<String> = pair_sentences[i]
                .iter()
                .map(|&si| sentence_of(si))
                .collect();
            let keywords = if pair_keywords[i].is_empty() {
                "related to".to_owned()
            } else {
                pair_keywords[i].join(",")
            };
            out.relations.push(ExtractedRelation {
                src: entities[src].name.clone(),
                tgt: entities[tgt].name.clone(),
                keywords,
                description: bounded_join(&parts, self.max_description_chars),
                weight: 1.0,
            });
        }
        out
    }

    /// Turns the run `r0..=r1` into a named, typed candidate; `(name, kind, first, last)` with
    /// the token range actually kept.
    #[allow(clippy::too_many_arguments)]
    fn candidate(
        &self,
        text: &str,
        tokens: &[Token],
        sent_first: usize,
        sent_end: usize,
        mut r0: usize,
        r1: usize,
        mid_caps: &HashSet<String>,
    ) -> Option<(String, Kind, usize, usize)> {
        let word = |i: usize| &text[tokens[i].start..tokens[i].end];
        let lower = |i: usize| word(i).to_lowercase();
        let mut person_cue = false;
        // A title just before the run ("Dr. Ava Anders").
        if r0 > sent_first && HONORIFICS.contains(lower(r0 - 1).as_str()) {
            person_cue = true;
        }
        // Leading stop words and titles.
        while r0 <= r1 {
            let l = lower(r0);
            if HONORIFICS.contains(l.as_str()) {
                if r0 == r1 {
                    // A title alone ("Dr" before ". Ravi Menon").
                    return None;
                }
                person_cue = true;
                r0 += 1;
            } else if STOP_WORDS.contains(l.as_str()) {
                r0 += 1;
            } else {
                break;
            }
        }
        if r0 > r1 {
            return None;
        }
        let count = r1 - r0 + 1;
        if count > self.max_run_words {
            return None;
        }
        let first = &tokens[r0];
        if count == 1 {
            let w = word(r0);
            if w.chars().count() < 2 {
                return None;
            }
            if first.initial && !first.acronym && !mid_caps.contains(&lower(r0)) {
                return None;
            }
        }
        let name = normalize_entity_name(&collapse_whitespace(
            &text[tokens[r0].start..tokens[r1].end],
        ));
        if name.chars().count() < 2 {
            return None;
        }
        // Speech verb after the name.
        if r1 + 1 < sent_end
            && gap_is_space(text, &tokens[r1], &tokens[r1 + 1])
            && PERSON_VERBS.contains(lower(r1 + 1).as_str())
        {
            person_cue = true;
        }
        let words: Vec<String> = (r0..=r1).map(lower).collect();
        let kind = classify(&words, &tokens[r0..=r1], person_cue);
        Some((name, kind, r0, r1))
    }
}

fn classify(words: &[String], toks: &[Token], person_cue: bool) -> Kind {
    let n = words.len();
    let first = words[0].as_str();
    let last = words[n - 1].as_str();
    let has_connector = words.iter().any(|w| HEAD_CONNECTORS.contains(w.as_str()));
    if n >= 2 && ORG_SUFFIXES.contains(last) {
        return Kind::Organization;
    }
    if n >= 3 && has_connector {
        if LOCATION_HEADS.contains(first) {
            return Kind::Location;
        }
        if EVENT_HEADS.contains(first) {
            return Kind::Event;
        }
        if ORG_HEADS.contains(first) {
            return Kind::Organization;
        }
    }
    if n >= 2 && LOCATION_SUFFIXES.contains(last) {
        return Kind::Location;
    }
    if n >= 2 && EVENT_SUFFIXES.contains(last) {
        return Kind::Event;
    }
    let name_like = toks.iter().all(|t| t.alpha && !t.acronym);
    if person_cue || (n <= 4 && name_like && GIVEN_NAMES.contains(first)) {
        return Kind::Person;
    }
    Kind::Concept
}

/// Extends a capitalised run starting at token `k` (sentence tokens end at `end`); returns the
/// first and last token of the run.
fn run_at(text: &str, tokens: &[Token], k: usize, end: usize) -> (usize, usize) {
    let mut last = k;
    let mut j = k + 1;
    while j < end && joinable(text, &tokens[j - 1], &tokens[j]) {
        if tokens[j].cap {
            last = j;
            j += 1;
            continue;
        }
        let w = text[tokens[j].start..tokens[j].end].to_lowercase();
        let prev = text[tokens[j - 1].start..tokens[j - 1].end].to_lowercase();
        let prev = prev.as_str();
        let org_head = ORG_HEADS.contains(prev) || ORG_SUFFIXES.contains(prev);
        let event_head = EVENT_HEADS.contains(prev);
        let any_head = org_head || event_head || LOCATION_HEADS.contains(prev);
        let joins = NAME_PARTICLES.contains(w.as_str())
            || match w.as_str() {
                "of" => any_head,
                "for" => org_head,
                "on" => event_head,
                other => HEAD_CONNECTORS.contains(other) && any_head,
            };
        if joins && j + 1 < end && tokens[j + 1].cap && joinable(text, &tokens[j], &tokens[j + 1]) {
            last = j + 1;
            j += 2;
            continue;
        }
        break;
    }
    (k, last)
}

/// Whether two tokens are adjacent words of one name: whitespace (at most one line break) or
/// ` & ` between them.
fn joinable(text: &str, a: &Token, b: &Token) -> bool {
    let gap = &text[a.end..b.start];
    if gap.len() > 4 {
        return false;
    }
    if gap.trim() == "&" {
        return true;
    }
    !gap.is_empty()
        && gap.chars().all(char::is_whitespace)
        && gap.chars().filter(|&c| c == '\n').count() <= 1
}

fn gap_is_space(text: &str, a: &Token, b: &Token) -> bool {
    let gap = &text[a.end..b.start];
    !gap.is_empty() && gap.chars().all(char::is_whitespace)
}

/// Content words between two mentions (else of the whole sentence), at most three.
fn keywords_between(
    text: &str,
    tokens: &[Token],
    sentence: &Sentence,
    a: Mention,
    b: Mention,
    mention_toks: &[(usize, usize)],
) -> Vec<String> {
    // Mentions are in text order and do not overlap.
    let in_mention = |i: usize| {
        let k = mention_toks.partition_point(|&(f, _)| f <= i);
        k > 0 && mention_toks[k - 1].1 >= i
    };
    let pick = |range: std::ops::Range<usize>| -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for i in range {
            if out.len() == 3 {
                break;
            }
            let t = &tokens[i];
            if t.cap || t.code || !t.alpha || in_mention(i) {
                continue;
            }
            let w = text[t.start..t.end].to_lowercase();
            if w.chars().count() < 3 || STOP_WORDS.contains(w.as_str()) || out.contains(&w) {
                continue;
            }
            out.push(w);
        }
        out
    };
    let (lo, hi) = if a.last_tok < b.first_tok {
        (a.last_tok + 1, b.first_tok)
    } else if b.last_tok < a.first_tok {
        (b.last_tok + 1, a.first_tok)
    } else {
        (0, 0)
    };
    let between = pick(lo..hi);
    if !between.is_empty() {
        return between;
    }
    // The clause spanning the sentence's mentions, then the whole sentence.
    let first = mention_toks.iter().map(|m| m.0).min().unwrap_or(lo);
    let last = mention_toks.iter().map(|m| m.1).max().unwrap_or(hi);
    let clause = pick(first..last + 1);
    if !clause.is_empty() {
        return clause;
    }
    pick(sentence.tokens.0..sentence.tokens.1)
}

/// Joins parts with spaces up to `max` characters; a first part alone longer than `max` is cut
/// at a character boundary and ends with `…`.
fn bounded_join(parts: &[String], max: usize) -> String {
    let mut out = String::new();
    let mut chars = 0;
    for p in parts {
        let n = p.chars().count();
        if out.is_empty() {
            if n > max {
                let cut = p
                    .char_indices()
                    .nth(max.saturating_sub(1))
                    .map_or(p.len(), |(i, _)| i);
                out.push_str(p[..cut].trim_end());
                out.push('…');
                return out;
            }
            out.push_str(p);
            chars = n;
        } else if chars + 1 + n <= max {
            out.push(' ');
            out.push_str(p);
            chars += 1 + n;
        } else {
            break;
        }
    }
    out
}

fn collapse_whitespace(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for w in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(w);
    }
    out
}

/// Splits a text into sentence byte ranges (trimmed, non-empty).
fn split_sentences(text: &str) -> Vec<(usize, usize)> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let n = chars.len();
    let mut out = Vec::new();
    let push = |s: usize, e: usize, out: &mut Vec<(usize, usize)>| {
        let slice = &text[s..e];
        let lead = slice.len() - slice.trim_start().len();
        let trail = slice.len() - slice.trim_end().len();
        if s + lead < e - trail {
            out.push((s + lead, e - trail));
        }
    };
    let mut start = 0usize;
    let mut line_first: Option<char> = chars.iter().map(|&(_, c)| c).find(|c| !c.is_whitespace());
    let mut i = 0;
    while i < n {
        let (pos, c) = chars[i];
        if c == '\n' {
            let mut j = i;
            let mut newlines = 0;
            while j < n && chars[j].1.is_whitespace() {
                if chars[j].1 == '\n' {
                    newlines += 1;
                }
                j += 1;
            }
            let next = chars.get(j).map(|x| x.1);
            let marker = match next {
                Some('-' | '*' | '#' | '>' | '|' | '+' | '•') => true,
                Some(d) if d.is_ascii_digit() => {
                    let mut k = j;
                    while k < n && chars[k].1.is_ascii_digit() {
                        k += 1;
                    }
                    matches!(chars.get(k).map(|x| x.1), Some('.' | ')'))
                        && chars.get(k + 1).is_some_and(|x| x.1 == ' ')
                }
                _ => false,
            };
            let heading = line_first == Some('#');
            if newlines >= 2 || marker || heading {
                push(start, pos, &mut out);
                start = chars.get(j).map_or(text.len(), |x| x.0);
            }
            line_first = next;
            i = j;
            continue;
        }
        let terminal = matches!(c, '.' | '!' | '?' | '…');
        let cjk_terminal = matches!(c, '。' | '！' | '？');
        if terminal || cjk_terminal {
            let mut j = i + 1;
            while j < n
                && matches!(
                    chars[j].1,
                    '.' | '!' | '?' | '"' | '\'' | '”' | '’' | ')' | ']' | '…'
                )
            {
                j += 1;
            }
            let at_end = j >= n;
            let next_space = !at_end && chars[j].1.is_whitespace();
            let mut boundary = cjk_terminal || at_end || next_space;
            if boundary && !cjk_terminal && c == '.' && j == i + 1 && !at_end {
                // An abbreviation or an initial?
                let mut k = i;
                while k > 0 && (chars[k - 1].1.is_alphabetic() || chars[k - 1].1 == '.') {
                    k -= 1;
                }
                let word: String = chars[k..i].iter().map(|x| x.1).collect();
                let is_initial = word.chars().count() == 1
                    && word.chars().next().is_some_and(char::is_uppercase);
                if is_initial || ABBREVIATIONS.contains(word.to_lowercase().as_str()) {
                    boundary = false;
                }
                // The next word starts lower-case: not a sentence start.
                let mut k = j;
                while k < n && chars[k].1.is_whitespace() {
                    k += 1;
                }
                if chars.get(k).is_some_and(|x| x.1.is_lowercase()) {
                    boundary = false;
                }
            }
            if boundary {
                let end = chars.get(j).map_or(text.len(), |x| x.0);
                push(start, end, &mut out);
                start = end;
            }
            i = j;
            continue;
        }
        i += 1;
    }
    push(start, text.len(), &mut out);
    out
}

/// Byte ranges of code in Markdown: fenced blocks (``` or ~~~) and inline `code` spans.
fn code_spans(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let line_end = |from: usize| memchr::memchr(b'\n', &b[from..]).map_or(b.len(), |p| from + p);
    let mut spans = Vec::new();
    let mut i = 0;
    let mut line_start = true;
    while i < b.len() {
        if line_start {
            let mut k = i;
            while k < b.len() && (b[k] == b' ' || b[k] == b'\t') {
                k += 1;
            }
            let fence = &b[k..b.len().min(k + 3)];
            if fence == b"```" || fence == b"~~~" {
                let mut end = b.len();
                let mut search = (line_end(k) + 1).min(b.len());
                while search < b.len() {
                    let mut m = search;
                    while m < b.len() && (b[m] == b' ' || b[m] == b'\t') {
                        m += 1;
                    }
                    let le = line_end(search);
                    if b[m..].starts_with(fence) {
                        end = le;
                        break;
                    }
                    search = le + 1;
                }
                spans.push((k, end));
                i = end;
                line_start = false;
                continue;
            }
        }
        match b[i] {
            b'\n' => {
                line_start = true;
                i += 1;
            }
            b'`' => {
                let mut run = i;
                while run < b.len() && b[run] == b'`' {
                    run += 1;
                }
                let ticks = run - i;
                let le = line_end(run);
                let mut k = run;
                let mut close = None;
                while k < le {
                    if b[k] == b'`' {
                        let mut r = k;
                        while r < le && b[r] == b'`' {
                            r += 1;
                        }
                        if r - k == ticks {
                            close = Some(r);
                            break;
                        }
                        k = r;
                    } else {
                        k += 1;
                    }
                }
                match close {
                    Some(c) => {
                        spans.push((i, c));
                        i = c;
                    }
                    None => i = run,
                }
                line_start = false;
            }
            _ => {
                line_start = false;
                i += 1;
            }
        }
    }
    spans
}

fn in_spans(spans: &[(usize, usize)], pos: usize) -> bool {
    let idx = spans.partition_point(|s| s.0 <= pos);
    idx > 0 && spans[idx - 1].1 > pos
}

/// Appends the word tokens of `text[s..e]`; `code` are the chunk's code spans.
fn tokenize(text: &str, s: usize, e: usize, code: &[(usize, usize)], out: &mut Vec<Token>) {
    let slice = &text[s..e];
    let chars: Vec<(usize, char)> = slice.char_indices().collect();
    let n = chars.len();
    let mut i = 0;
    let mut first_word = true;
    while i < n {
        let (_, c) = chars[i];
        if !c.is_alphanumeric() {
            i += 1;
            continue;
        }
        let begin = i;
        let mut j = i + 1;
        let mut underscore = false;
        while j < n {
            let cj = chars[j].1;
            if cj.is_alphanumeric() {
                j += 1;
                continue;
            }
            if cj == '_' {
                underscore = true;
                j += 1;
                continue;
            }
            // Inner apostrophe, hyphen or ampersand ("O'Brien", "GPT-4", "AT&T").
            let inner = matches!(cj, '\'' | '’' | '-' | '‐' | '&')
                && chars.get(j + 1).is_some_and(|x| x.1.is_alphanumeric());
            if inner && cj == '&' {
                let prev_up = chars[j - 1].1.is_uppercase();
                let next_up = chars.get(j + 1).is_some_and(|x| x.1.is_uppercase());
                if !(prev_up && next_up) {
                    break;
                }
            }
            if inner {
                j += 2;
                continue;
            }
            break;
        }
        let mut end = j;
        // Possessive "'s": not part of the name.
        if end >= begin + 3 {
            let a = chars[end - 2].1;
            let b = chars[end - 1].1;
            if matches!(a, '\'' | '’') && (b == 's' || b == 'S') {
                end -= 2;
            }
        }
        let word_start = chars[begin].0;
        let word_end = chars.get(end).map_or(slice.len(), |x| x.0);
        let word = &slice[word_start..word_end];
        let mut wchars = word.chars();
        let first = wchars.next().unwrap_or(' ');
        let second = wchars.next();
        let letters = word.chars().filter(|c| c.is_alphabetic()).count();
        let uppers = word.chars().filter(|c| c.is_uppercase()).count();
        let acronym = letters >= 2 && uppers == letters;
        // "iPhone", "eBay": a capital right after a lower-case first letter.
        let inner_cap = first.is_lowercase()
            && second.is_some_and(char::is_uppercase)
            && letters >= 3
            && letters == word.chars().count();
        let alpha = word
            .chars()
            .all(|c| c.is_alphabetic() || matches!(c, '\'' | '’' | '-' | '‐'));
        let numeric = first.is_numeric();
        // Identifiers, paths, file names, variables: `$XDG_DIR`, `Cargo.toml`, `a/Foo`, `f(`.
        let before = chars[..begin].last().map(|x| x.1);
        let before2 = begin.checked_sub(2).map(|k| chars[k].1);
        let after = chars.get(j).map(|x| x.1);
        let after2 = chars.get(j + 1).map(|x| x.1);
        let code_shaped = underscore
            || matches!(before, Some('\\' | '.' | '@' | '$' | '=' | '~' | '#' | '_'))
            || (before == Some('/')
                && !before2.is_some_and(|c| c.is_uppercase() || c.is_ascii_digit()))
            || (after == Some('.') && after2.is_some_and(char::is_alphanumeric))
            || after == Some('(');
        let code = code_shaped || in_spans(code, s + word_start);
        let cap = !code && (first.is_uppercase() || inner_cap);
        // Sentence-initial: the first word of the sentence, or a word right after an opening
        // quote, bracket, colon or dash.
        let prev_sig = slice[..word_start]
            .chars()
            .rev()
            .find(|c| !c.is_whitespace());
        let after_opener = matches!(
            prev_sig,
            Some(':' | '"' | '“' | '(' | '[' | '—' | '–' | '‘' | '«' | '*' | '_')
        );
        let initial = (first_word && !numeric) || after_opener;
        if !numeric {
            first_word = false;
        }
        out.push(Token {
            start: s + word_start,
            end: s + word_end,
            cap,
            acronym,
            alpha,
            initial,
            code,
        });
        i = j;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn hash_embedder_is_deterministic_and_normalised() {
        let e = HashEmbedder::new(DEFAULT_HASH_DIM).unwrap();
        let a = e.embed_one("Federated learning keeps data on devices.");
        let b = HashEmbedder::new(DEFAULT_HASH_DIM)
            .unwrap()
            .embed_one("Federated learning keeps data on devices.");
        assert_eq!(a, b);
        assert_eq!(a.len(), 384);
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
        // Fixed across platforms and releases: a change here means a new model name.
        let probe: Vec<f32> = a.iter().take(4).copied().collect();
        let again: Vec<f32> =
            e.embed_one("Federated learning keeps data on devices.")[..4].to_vec();
        assert_eq!(probe, again);
        let empty = e.embed_one("");
        assert_eq!(empty.iter().filter(|x| **x != 0.0).count(), 1);
        assert!(HashEmbedder::new(0).is_err());
    }

    #[test]
    fn hash_embedder_golden_values() {
        // Pins the feature hashing: these numbers must never change under this model name.
        let e = HashEmbedder::new(16).unwrap();
        let v = e.embed_one("Aster University");
        let rounded: Vec<i32> = v.iter().map(|x| (x * 1000.0).round() as i32).collect();
        assert_eq!(rounded, GOLDEN_ASTER_16);
    }

    const GOLDEN_ASTER_16: [i32; 16] = [
        0, -361, 0, 361, -464, 120, -120, 120, 241, 120, 241, 0, 0, 0, -344, -481,
    ];

    #[test]
    fn shared_words_score_higher_than_unrelated_texts() {
        let e = HashEmbedder::new(DEFAULT_HASH_DIM).unwrap();
        let q = e.embed_one("How does federated learning protect patient data in hospitals?");
        let related = e.embed_one(
            "Hospitals use federated learning so that patient data never leaves the site.",
        );
        let unrelated = e.embed_one(
            "The recipe needs two cups of flour, sugar and a pinch of salt before baking.",
        );
        let (r, u) = (cosine(&q, &related), cosine(&q, &unrelated));
        assert!(r > 0.35, "related {r}");
        assert!(u < 0.15, "unrelated {u}");
        assert!(r > u + 0.25, "related {r} vs unrelated {u}");
    }

    #[tokio::test]
    async fn embed_trait_keeps_order_and_dim() {
        let e = HashEmbedder::new(64).unwrap();
        let texts = vec!["alpha beta".to_owned(), "gamma".to_owned()];
        let out = e.embed(&texts).await.unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0], e.embed_one("alpha beta"));
        assert_eq!(e.model_name(), HASH_EMBEDDER_MODEL);
        assert_eq!(e.dim(), 64);
        let big: Vec<String> = (0..40).map(|i| format!("text {i} ").repeat(400)).collect();
        let out = e.embed(&big).await.unwrap();
        assert_eq!(out[7], e.embed_one(&big[7]));
    }

    fn names(x: &Extraction) -> Vec<(&str, &str)> {
        x.entities
            .iter()
            .map(|e| (e.name.as_str(), e.entity_type.as_str()))
            .collect()
    }

    fn pairs(x: &Extraction) -> Vec<(&str, &str)> {
        x.relations
            .iter()
            .map(|r| (r.src.as_str(), r.tgt.as_str()))
            .collect()
    }

    #[test]
    fn rule_extractor_finds_entities_and_relations() {
        let x = RuleExtractor::new().extract_text(
            "In 2021, Aster University collaborates with Ava Anders on Federated Learning.",
        );
        assert_eq!(
            names(&x),
            [
                ("Aster University", "organization"),
                ("Ava Anders", "person"),
                ("Federated Learning", "concept"),
            ]
        );
        assert_eq!(
            pairs(&x),
            [
                ("Aster University", "Ava Anders"),
                ("Aster University", "Federated Learning"),
                ("Ava Anders", "Federated Learning"),
            ]
        );
        assert_eq!(x.relations[0].keywords, "collaborates");
        assert!(x.relations.iter().all(|r| r.weight == 1.0));
        assert_eq!(
            x.relations[0].description,
            "In 2021, Aster University collaborates with Ava Anders on Federated Learning."
        );
        assert_eq!(x.entities[1].description, x.relations[0].description);
        assert!(x.cache_keys.is_empty());
    }

    #[test]
    fn rule_extractor_handles_names_sentences_and_aliases() {
        let text = "Élodie Haddad joined Nordwind Labs in March.  The lab studies Graph Neural \
                    Networks.\n\nWhen Dr. Ravi Menon met Haddad, they discussed NASA funding. \
                    Haddad said the University of Oslo would help.\n\n# Notes\n- Researchers \
                    meet weekly.";
        let x = RuleExtractor::new().extract_text(text);
        let got = names(&x);
        assert!(got.contains(&("Élodie Haddad", "person")), "{got:?}");
        assert!(got.contains(&("Nordwind Labs", "organization")), "{got:?}");
        assert!(
            got.contains(&("Graph Neural Networks", "concept")),
            "{got:?}"
        );
        assert!(got.contains(&("Ravi Menon", "person")), "{got:?}");
        assert!(got.contains(&("NASA", "concept")), "{got:?}");
        assert!(
            got.contains(&("University of Oslo", "organization")),
            "{got:?}"
        );
        for junk in [
            "The",
            "When",
            "In",
            "March",
            "Haddad",
            "Researchers",
            "Dr",
            "Notes",
        ] {
            assert!(!got.iter().any(|(n, _)| *n == junk), "{junk} in {got:?}");
        }
        // "Haddad" is Élodie Haddad: relations point at the full name.
        let p = pairs(&x);
        assert!(p.contains(&("Ravi Menon", "Élodie Haddad")), "{p:?}");
        assert!(
            p.contains(&("Élodie Haddad", "University of Oslo")),
            "{p:?}"
        );
        assert!(x.relations.iter().all(|r| r.src != r.tgt));
        let haddad = x
            .entities
            .iter()
            .find(|e| e.name == "Élodie Haddad")
            .unwrap();
        assert!(
            haddad
                .description
                .starts_with("Élodie Haddad joined Nordwind Labs")
        );
        assert!(haddad.description.contains("Haddad said"));
    }

    #[test]
    fn rule_extractor_is_deterministic_and_bounded() {
        let sentence = "Acme Corp and Beta Labs signed a deal with Gamma Group in Paris. ";
        let text = sentence.repeat(40);
        let a = RuleExtractor::new().extract_text(&text);
        let b = RuleExtractor::new().extract_text(&text);
        assert_eq!(a, b);
        for e in &a.entities {
            assert!(e.description.chars().count() <= 600);
        }
        // One relation per pair per chunk: 4 entities, 6 pairs.
        assert_eq!(a.entities.len(), 4, "{:?}", names(&a));
        assert_eq!(a.relations.len(), 6, "{:?}", pairs(&a));
        let empty = RuleExtractor::new().extract_text("");
        assert!(empty.entities.is_empty() && empty.relations.is_empty());
        let lower = RuleExtractor::new().extract_text("nothing capitalised here at all.");
        assert!(lower.entities.is_empty());
    }

    #[test]
    fn sentence_splitting() {
        let s = "Dr. Smith met Mr. J. Doe at 3.5 p.m. today. It rained! Did it? yes.\n\nNext para";
        let parts: Vec<&str> = split_sentences(s).iter().map(|&(a, b)| &s[a..b]).collect();
        assert_eq!(
            parts,
            [
                "Dr. Smith met Mr. J. Doe at 3.5 p.m. today.",
                "It rained!",
                "Did it?",
                "yes.",
                "Next para"
            ]
        );
    }

    /// A deterministic generator of awkward text: scripts, punctuation, Markdown, code.
    pub(crate) fn awkward_text(seed: u64, len: usize) -> String {
        const PIECES: &[&str] = &[
            "Élodie",
            "Haddad",
            "the",
            "of",
            "University",
            "NASA",
            "`code`",
            "```",
            "\n",
            "\n\n",
            "# ",
            "- ",
            ". ",
            "? ",
            "! ",
            "'s",
            "’",
            "&",
            "AT&T",
            "日本",
            "語",
            "。",
            "$VAR_X",
            "a/b",
            "Dr.",
            "U.S.",
            "3.5",
            "<|#|>",
            "entity",
            "relation",
            "(",
            ")",
            "\"",
            "“",
            "…",
            "\u{0}",
            "\u{202F}",
            "\u{FFFF}",
            "ß",
            "İ",
            "ǅ",
            "e\u{301}",
            "🙂",
            " ",
            "  ",
            "\t",
            "van",
            "de",
            "Bank",
            "Inc",
            "Said",
            "said",
            "on",
            "for",
            "iPhone",
            "GPT-4",
            "O'Brien",
            "—",
            ":",
            ";",
            ",",
            "_",
            "\\",
            "#",
        ];
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut out = String::new();
        while out.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.push_str(PIECES[(x % PIECES.len() as u64) as usize]);
            if x & 3 == 0 {
                out.push(' ');
            }
        }
        out
    }

    #[test]
    fn never_panics_on_awkward_text() {
        let e = HashEmbedder::new(32).unwrap();
        let r = RuleExtractor::new();
        for seed in 0..400 {
            let text = awkward_text(seed, (seed as usize % 40) * 50);
            let v = e.embed_one(&text);
            assert_eq!(v.len(), 32);
            assert!(v.iter().all(|x| x.is_finite()));
            let x = r.extract_text(&text);
            for rel in &x.relations {
                assert_ne!(rel.src, rel.tgt);
                assert!(x.entities.iter().any(|e| e.name == rel.src));
                assert!(x.entities.iter().any(|e| e.name == rel.tgt));
            }
            for ent in &x.entities {
                assert!(!ent.name.is_empty());
                assert!(ent.description.chars().count() <= 601);
            }
        }
    }

    /// Ad-hoc throughput of the offline providers on 1–5 KB chunks; run with
    /// `cargo test --release -p hrag-daemon --lib providers::builtin::tests::throughput --
    /// --ignored --nocapture` (`HRAG_BENCH_FILE=path` measures chunks of a real file too).
    #[test]
    #[ignore = "measurement, not a check"]
    fn throughput() {
        use std::time::Instant;
        const NAMES: &[&str] = &[
            "Aster University",
            "Ava Anders",
            "Lumen Bank",
            "Hugo Quinn",
            "Borealis Institute",
            "Élodie Haddad",
            "Nordwind Labs",
            "Ravi Menon",
            "NASA",
            "Aurora Summit",
        ];
        const TOPICS: &[&str] = &[
            "Federated Learning",
            "Protein Folding",
            "Graph Neural Networks",
            "Edge Computing",
        ];
        const VERBS: &[&str] = &[
            "collaborates with",
            "funds",
            "mentors",
            "competes with",
            "hosts",
        ];
        let mut chunks: Vec<String> = Vec::new();
        let mut x: u64 = 42;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as usize
        };
        for i in 0..2000 {
            let target = 1024 + (i * 2069) % 4096;
            let mut c = String::new();
            while c.len() < target {
                let s = format!(
                    "In {}, {} {} {} on {}. The team reported steady progress, and the \
                     results were shared with partners in the region. ",
                    2000 + next() % 25,
                    NAMES[next() % NAMES.len()],
                    VERBS[next() % VERBS.len()],
                    NAMES[next() % NAMES.len()],
                    TOPICS[next() % TOPICS.len()],
                );
                c.push_str(&s);
                if next() % 5 == 0 {
                    c.push_str("\n\n## Notes\n- Follow-up meeting next week.\n");
                }
            }
            chunks.push(c);
        }
        if let Ok(path) = std::env::var("HRAG_BENCH_FILE") {
            let text = std::fs::read_to_string(path).unwrap();
            let chars: Vec<char> = text.chars().collect();
            let real: Vec<String> = chars.chunks(3000).map(|c| c.iter().collect()).collect();
            measure("file", &real);
        }
        measure("synthetic", &chunks);

        fn measure(label: &str, chunks: &[String]) {
            let bytes: usize = chunks.iter().map(String::len).sum();
            let e = HashEmbedder::new(DEFAULT_HASH_DIM).unwrap();
            let r = RuleExtractor::new();
            let t = Instant::now();
            let mut dims = 0;
            for c in chunks {
                dims += e.embed_one(c).len();
            }
            let embed = t.elapsed();
            let t = Instant::now();
            let mut found = 0;
            for c in chunks {
                found += r.extract_text(c).entities.len();
            }
            let extract = t.elapsed();
            let n = chunks.len() as f64;
            let total = (embed + extract).as_secs_f64();
            eprintln!(
                "{label}: {} chunks, avg {:.0} B; embed {:.0} chunks/s ({:.1} MB/s); extract \
                 {:.0} chunks/s ({:.1} MB/s); both {:.0} chunks/s; {} entities, {} dims",
                chunks.len(),
                bytes as f64 / n,
                n / embed.as_secs_f64(),
                bytes as f64 / embed.as_secs_f64() / 1e6,
                n / extract.as_secs_f64(),
                bytes as f64 / extract.as_secs_f64() / 1e6,
                n / total,
                found,
                dims
            );
        }
    }
}
