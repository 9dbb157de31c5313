//! One LightRAG KV namespace as its `kv_store_<namespace>.json` file (LightRAG's
//! `JsonKVStorage`): an object of `id → record`, written with `json.dump(indent=2,
//! ensure_ascii=False)`.
//!
//! Records are kept minified, in insertion order, exactly as read (a duplicate key keeps its
//! first position and its last value, as Python's `json.load` does) and parsed into a
//! [`Record`] only when asked for. The legacy nested LLM-cache layout (`{mode: {hash: entry}}`)
//! is flattened on load to `mode:cache_type:hash` keys and the store is marked changed, so the
//! next flush writes the flat form, as LightRAG does.
//!
//! Invariants: an untouched store is never written by [`KvStore::flush`], and writing an
//! untouched store reproduces the file byte for byte; writes are atomic and streamed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::jsonio::{self, ObjectReader};
use crate::storage::{Cursor, KvNamespace, KvStore, Page, Record, StorageError, StorageResult};

/// Records by id, minified, in file/insertion order.
pub(crate) type RawMap = IndexMap<Box<str>, Box<RawValue>, hashbrown::DefaultHashBuilder>;

/// A KV store of one namespace, backed by one JSON file.
pub struct JsonKvStore {
    path: PathBuf,
    ns: KvNamespace,
    inner: Arc<RwLock<KvInner>>,
}

struct KvInner {
    records: RawMap,
    /// Bumped by every change; the store is dirty while it differs from `saved`.
    generation: u64,
    saved: AtomicU64,
}

impl KvInner {
    fn dirty(&self) -> bool {
        self.saved.load(Ordering::Acquire) != self.generation
    }
}

impl JsonKvStore {
    /// Loads `path` (blocking). A missing or empty file is an empty store.
    pub fn load(path: PathBuf, ns: KvNamespace) -> StorageResult<JsonKvStore> {
        let mut records = RawMap::default();
        let mut legacy: Option<bool> = None;
        let mut migrated = 0u64;
        jsonio::read_members(&path, |r, key, value| {
            if !value.get().starts_with('{') {
                return Err(not_an_object(r, &key));
            }
            if ns == KvNamespace::LlmResponseCache {
                // LightRAG decides from the first key: `a:b:c` means the flat layout.
                let is_legacy = *legacy.get_or_insert_with(|| key.split(':').count() != 3);
                if is_legacy && let Some(entries) = legacy_entries(r, &key, &value)? {
                    for (k, v) in entries {
                        records.insert(k, v);
                        migrated += 1;
                    }
                    return Ok(());
                }
            }
            records.insert(key, value);
            Ok(())
        })?;
        let generation = u64::from(migrated > 0);
        Ok(JsonKvStore {
            path,
            ns,
            inner: Arc::new(RwLock::new(KvInner {
                records,
                generation,
                saved: AtomicU64::new(0),
            })),
        })
    }

    /// The file this store loads from and flushes to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the store has changes that [`KvStore::flush`] would write.
    pub fn is_dirty(&self) -> bool {
        self.read().dirty()
    }

    /// Writes the current content to `path` atomically (export, tests). Blocking. Does not
    /// change whether the store counts as flushed.
    pub fn write_to(&self, path: &Path) -> StorageResult<()> {
        write_records(path, &self.read().records)
    }

    fn read(&self) -> RwLockReadGuard<'_, KvInner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, KvInner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    fn parse(&self, id: &str, raw: &RawValue) -> StorageResult<Record> {
        jsonio::parse_record(raw).map_err(|e| {
            StorageError::corrupt(
                &self.path,
                format!("record \"{id}\": {}", jsonio::serde_message(&e)),
            )
        })
    }
}

fn not_an_object<R>(r: &ObjectReader<R>, key: &str) -> StorageError {
    r.corrupt(format!(
        "record \"{key}\" at byte {}: not a JSON object",
        r.value_offset()
    ))
}

/// Writes `records` as LightRAG's `write_json` does.
pub(crate) fn write_records(path: &Path, records: &RawMap) -> StorageResult<()> {
    jsonio::write_file_atomic(path, |w| {
        jsonio::write_object_indent2(w, records.iter().map(|(k, v)| (&**k, &**v)))
    })
}

/// Marks presence of a field whatever its value (even `null`).
#[derive(Default)]
struct Present(bool);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Present, D::Error> {
        serde::de::IgnoredAny::deserialize(d)?;
        Ok(Present(true))
    }
}

/// A field's value when present (`Some(Value::Null)` for `null`).
#[derive(Default)]
struct Captured(Option<Value>);

impl<'de> Deserialize<'de> for Captured {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Captured, D::Error> {
        Ok(Captured(Some(Value::deserialize(d)?)))
    }
}

/// An object's members as raw values, in order; a repeated name keeps its first position and
/// its last value (as Python's `json.load`).
struct Entries(IndexMap<String, Box<RawValue>>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Entries, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Entries;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Entries, A::Error> {
                let mut m = IndexMap::new();
                while let Some((k, v)) = a.next_entry::<String, Box<RawValue>>()? {
                    m.insert(k, v);
                }
                Ok(Entries(m))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Deserialize)]
struct LegacyProbe {
    #[serde(default, rename = "return")]
    ret: Present,
    #[serde(default)]
    cache_type: Captured,
}

type RawEntry = (Box<str>, Box<RawValue>);

/// For a top-level member of a legacy cache file: its entries flattened to
/// `mode:cache_type:hash`, or `None` when the member is not a legacy mode (all values objects
/// with a `return`), which LightRAG keeps as it is.
fn legacy_entries<R>(
    r: &ObjectReader<R>,
    mode: &str,
    value: &RawValue,
) -> StorageResult<Option<Vec<RawEntry>>> {
    let at = r.value_offset();
    let bad = |msg: String| r.corrupt(format!("legacy cache mode \"{mode}\" at byte {at}: {msg}"));
    let entries = serde_json::from_str::<Entries>(value.get())
        .map_err(|e| bad(jsonio::serde_message(&e)))?
        .0;
    let mut out = Vec::with_capacity(entries.len());
    for (hash, entry) in entries {
        if !entry.get().starts_with('{') {
            return Ok(None);
        }
        let probe: LegacyProbe = serde_json::from_str(entry.get())
            .map_err(|e| bad(format!("entry \"{hash}\": {}", jsonio::serde_message(&e))))?;
        if !probe.ret.0 {
            return Ok(None);
        }
        let cache_type = match probe.cache_type.0 {
            None => "extract".to_string(),
            Some(Value::String(s)) => s,
            Some(other) => {
                return Err(bad(format!(
                    "entry \"{hash}\": cache_type is not a string ({other})"
                )));
            }
        };
        out.push((
            format!("{mode}:{cache_type}:{hash}").into_boxed_str(),
            entry,
        ));
    }
    Ok(Some(out))
}

pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// An ordinal cursor: where the next page starts.
pub(crate) fn cursor_start(cursor: Option<&Cursor>) -> StorageResult<usize> {
    match cursor {
        None => Ok(0),
        Some(c) => {
            c.0.parse::<usize>()
                .map_err(|_| StorageError::Invalid(format!("invalid cursor {:?}", c.0)))
        }
    }
}

pub(crate) fn next_cursor(end: usize, len: usize) -> Option<Cursor> {
    (end < len).then(|| Cursor(end.to_string()))
}

/// Runs a blocking flush off the async runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> StorageResult<T> + Send + 'static,
) -> StorageResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StorageError::Backend(format!("storage task failed: {e}")))?
}

/// Removes `ids` from `map` keeping the order of the rest; whether anything was removed.
pub(crate) fn remove_keys<V>(
    map: &mut IndexMap<Box<str>, V, hashbrown::DefaultHashBuilder>,
    ids: &[String],
    mut removed: impl FnMut(&V),
) -> bool {
    let before = map.len();
    if ids.len() <= 16 {
        for id in ids {
            if let Some(v) = map.shift_remove(id.as_str()) {
                removed(&v);
            }
        }
    } else {
        let set: hashbrown::HashSet<&str> = ids.iter().map(String::as_str).collect();
        map.retain(|k, v| {
            let drop = set.contains(&**k);
            if drop {
                removed(v);
            }
            !drop
        });
    }
    map.len() != before
}

#[async_trait]
impl KvStore for JsonKvStore {
    fn namespace(&self) -> KvNamespace {
        self.ns
    }

    async fn get(&self, id: &str) -> StorageResult<Option<Record>> {
        let g = self.read();
        g.records.get(id).map(|raw| self.parse(id, raw)).transpose()
    }

    async fn get_many(&self, ids: &[String]) -> StorageResult<Vec<Option<Record>>> {
        let g = self.read();
        ids.iter()
            .map(|id| {
                g.records
                    .get(id.as_str())
                    .map(|raw| self.parse(id, raw))
                    .transpose()
            })
            .collect()
    }

    async fn missing(&self, ids: &[String]) -> StorageResult<Vec<String>> {
        let g = self.read();
        let mut seen = hashbrown::HashSet::new();
        Ok(ids
            .iter()
            .filter(|id| !g.records.contains_key(id.as_str()) && seen.insert(id.as_str()))
            .cloned()
            .collect())
    }

    /// As LightRAG 1.5.7's `JsonKVStorage.upsert`: text_chunks records get `llm_cache_list: []`
    /// when they have none; a new key gets `create_time` and `update_time`, an existing one
    /// `update_time` (the whole record is replaced, so a payload without `create_time` drops
    /// it); then `_id`. Fields already in the payload keep their position.
    async fn upsert(&self, records: Vec<(String, Record)>) -> StorageResult<()> {
        if records.is_empty() {
            return Ok(());
        }
        let now = Value::from(unix_now());
        let mut g = self.write();
        let exists: Vec<bool> = records
            .iter()
            .map(|(k, _)| g.records.contains_key(k.as_str()))
            .collect();
        let mut prepared = Vec::with_capacity(records.len());
        for ((k, mut v), existed) in records.into_iter().zip(exists) {
            if self.ns == KvNamespace::TextChunks && !v.contains_key("llm_cache_list") {
                v.insert("llm_cache_list".into(), Value::Array(Vec::new()));
            }
            if !existed {
                v.insert("create_time".into(), now.clone());
            }
            v.insert("update_time".into(), now.clone());
            v.insert("_id".into(), Value::String(k.clone()));
            let raw = jsonio::raw_from_record(&v)?;
            prepared.push((k.into_boxed_str(), raw));
        }
        for (k, raw) in prepared {
            g.records.insert(k, raw);
        }
        g.generation += 1;
        Ok(())
    }

    async fn delete(&self, ids: &[String]) -> StorageResult<()> {
        let mut g = self.write();
        if remove_keys(&mut g.records, ids, |_| {}) {
            g.generation += 1;
        }
        Ok(())
    }

    async fn count(&self) -> StorageResult<u64> {
        Ok(self.read().records.len() as u64)
    }

    async fn page(
        &self,
        cursor: Option<Cursor>,
        limit: usize,
    ) -> StorageResult<Page<(String, Record)>> {
        let start = cursor_start(cursor.as_ref())?;
        let g = self.read();
        let len = g.records.len();
        let end = start.saturating_add(limit.max(1)).min(len);
        let items = g
            .records
            .iter()
            .skip(start)
            .take(end.saturating_sub(start))
            .map(|(k, raw)| Ok((k.to_string(), self.parse(k, raw)?)))
            .collect::<StorageResult<Vec<_>>>()?;
        Ok(Page {
            items,
            next: next_cursor(end.max(start), len),
        })
    }

    async fn flush(&self) -> StorageResult<bool> {
        let inner = Arc::clone(&self.inner);
        let path = self.path.clone();
        blocking(move || {
            let g = inner.read().unwrap_or_else(|e| e.into_inner());
            if !g.dirty() {
                return Ok(false);
            }
            write_records(&path, &g.records)?;
            g.saved.store(g.generation, Ordering::Release);
            Ok(true)
        })
        .await
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    pub(crate) fn fixture_dir(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures")
            .join(name)
    }

    pub(crate) fn counts(name: &str) -> Value {
        let text = std::fs::read_to_string(fixture_dir(name).join("COUNTS.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// Expected record count of a KV file in either fixture's COUNTS.json.
    fn expected_records(fixture: &str, ns: KvNamespace) -> u64 {
        let c = counts(fixture);
        if let Some(n) = c["kv"][ns.as_str()].as_u64() {
            return n;
        }
        c["files"][ns.file_name()]["records"].as_u64().unwrap()
    }

    fn rec(v: Value) -> Record {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[tokio::test]
    async fn fixtures_load_with_counts_and_round_trip_byte_identically() {
        let tmp = tempfile::tempdir().unwrap();
        for fixture in ["lightrag-1.5.7-small", "lightrag-1.4.9.8-small"] {
            for ns in KvNamespace::ALL {
                let src = fixture_dir(fixture).join(ns.file_name());
                let store = JsonKvStore::load(src.clone(), ns).unwrap();
                assert_eq!(
                    store.count().await.unwrap(),
                    expected_records(fixture, ns),
                    "{fixture} {ns:?}"
                );
                assert!(!store.is_dirty());
                let out = tmp.path().join(format!("{fixture}-{}", ns.file_name()));
                store.write_to(&out).unwrap();
                assert!(
                    std::fs::read(&src).unwrap() == std::fs::read(&out).unwrap(),
                    "{fixture} {ns:?} differs after a round trip"
                );
                // Every record parses.
                let mut cursor = None;
                let mut n = 0;
                loop {
                    let page = store.page(cursor, 7).await.unwrap();
                    n += page.items.len() as u64;
                    match page.next {
                        Some(c) => cursor = Some(c),
                        None => break,
                    }
                }
                assert_eq!(n, expected_records(fixture, ns));
            }
        }
    }

    #[tokio::test]
    async fn llm_cache_modes_match_counts() {
        let store = JsonKvStore::load(
            fixture_dir("lightrag-1.5.7-small").join("kv_store_llm_response_cache.json"),
            KvNamespace::LlmResponseCache,
        )
        .unwrap();
        let page = store.page(None, 1000).await.unwrap();
        let mut by: std::collections::BTreeMap<String, u64> = Default::default();
        for (k, _) in &page.items {
            let mut parts = k.splitn(3, ':');
            let key = format!("{}:{}", parts.next().unwrap(), parts.next().unwrap());
            *by.entry(key).or_default() += 1;
        }
        let want: std::collections::BTreeMap<String, u64> = serde_json::from_value(
            counts("lightrag-1.5.7-small")["llm_cache_by_mode_type"].clone(),
        )
        .unwrap();
        assert_eq!(by, want);
    }

    #[tokio::test]
    async fn missing_file_is_empty_and_never_written() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("kv_store_full_docs.json");
        let store = JsonKvStore::load(path.clone(), KvNamespace::FullDocs).unwrap();
        assert_eq!(store.count().await.unwrap(), 0);
        assert!(!store.flush().await.unwrap());
        assert!(!path.exists());
        // An empty (or whitespace-only) file is absent too, as for LightRAG.
        std::fs::write(&path, " \n").unwrap();
        let store = JsonKvStore::load(path.clone(), KvNamespace::FullDocs).unwrap();
        assert_eq!(store.count().await.unwrap(), 0);
        store.write_to(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{}");
    }

    #[tokio::test]
    async fn upsert_stamps_like_lightrag_and_flushes() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("kv_store_text_chunks.json");
        let store = JsonKvStore::load(path.clone(), KvNamespace::TextChunks).unwrap();
        store
            .upsert(vec![(
                "c1".into(),
                rec(serde_json::json!({"content": "x", "tokens": 3, "w": 0.5})),
            )])
            .await
            .unwrap();
        let r = store.get("c1").await.unwrap().unwrap();
        let keys: Vec<&str> = r.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "content",
                "tokens",
                "w",
                "llm_cache_list",
                "create_time",
                "update_time",
                "_id"
            ]
        );
        assert_eq!(r["_id"], "c1");
        assert_eq!(r["llm_cache_list"], serde_json::json!([]));
        let t = r["create_time"].as_i64().unwrap();
        assert!(t > 1_700_000_000);
        assert_eq!(r["update_time"], r["create_time"]);

        // Replacing an existing key: only update_time, the payload's fields keep their place
        // and a payload without create_time drops it (LightRAG replaces the whole record).
        store
            .upsert(vec![(
                "c1".into(),
                rec(serde_json::json!({"_id": "c1", "content": "y", "llm_cache_list": ["k"]})),
            )])
            .await
            .unwrap();
        let r = store.get("c1").await.unwrap().unwrap();
        let keys: Vec<&str> = r.keys().map(String::as_str).collect();
        assert_eq!(keys, ["_id", "content", "llm_cache_list", "update_time"]);
        assert_eq!(r["content"], "y");

        assert!(store.is_dirty());
        assert!(store.flush().await.unwrap());
        assert!(!store.flush().await.unwrap());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("{\n  \"c1\": {\n    \"_id\": \"c1\",\n    \"content\": \"y\",\n    \"llm_cache_list\": [\n      \"k\"\n    ],\n    \"update_time\": "),
            "{text}"
        );
        let again = JsonKvStore::load(path.clone(), KvNamespace::TextChunks).unwrap();
        assert_eq!(
            again.get("c1").await.unwrap(),
            store.get("c1").await.unwrap()
        );
    }

    #[tokio::test]
    async fn delete_page_missing() {
        let store = JsonKvStore::load(
            fixture_dir("lightrag-1.5.7-small").join("kv_store_full_docs.json"),
            KvNamespace::FullDocs,
        )
        .unwrap();
        let all = store.page(None, 100).await.unwrap();
        assert!(all.next.is_none());
        let ids: Vec<String> = all.items.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(ids.len(), 13);
        let missing = store
            .missing(&[ids[0].clone(), "nope".into(), "nope".into()])
            .await
            .unwrap();
        assert_eq!(missing, ["nope"]);
        let p1 = store.page(None, 5).await.unwrap();
        assert_eq!(p1.items.len(), 5);
        assert_eq!(p1.next, Some(Cursor("5".into())));
        let p3 = store.page(Some(Cursor("10".into())), 5).await.unwrap();
        assert_eq!(p3.items.len(), 3);
        assert!(p3.next.is_none());
        assert!(store.page(Some(Cursor("x".into())), 5).await.is_err());

        store.delete(&["nope".into()]).await.unwrap();
        assert!(!store.is_dirty());
        store
            .delete(&[ids[1].clone(), ids[3].clone()])
            .await
            .unwrap();
        assert!(store.is_dirty());
        let rest: Vec<String> = store
            .page(None, 100)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let want: Vec<String> = ids
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 1 && *i != 3)
            .map(|(_, k)| k.clone())
            .collect();
        assert_eq!(rest, want);
        let many: Vec<String> = want.iter().skip(2).cloned().collect();
        store.delete(&many).await.unwrap();
        assert_eq!(store.count().await.unwrap(), 2);
        assert_eq!(
            store
                .get_many(&[want[0].clone(), many[0].clone()])
                .await
                .unwrap()[1],
            None
        );
    }

    #[tokio::test]
    async fn duplicate_keys_keep_first_position_last_value() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("kv.json");
        std::fs::write(&path, r#"{"a": {"v": 1}, "b": {"v": 2}, "a": {"v": 3}}"#).unwrap();
        let store = JsonKvStore::load(path, KvNamespace::FullDocs).unwrap();
        let page = store.page(None, 10).await.unwrap();
        let got: Vec<(String, Value)> = page
            .items
            .into_iter()
            .map(|(k, r)| (k, r["v"].clone()))
            .collect();
        assert_eq!(
            got,
            [("a".into(), Value::from(3)), ("b".into(), Value::from(2))]
        );
    }

    #[tokio::test]
    async fn legacy_cache_is_flattened_and_marked_dirty() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("kv_store_llm_response_cache.json");
        std::fs::write(
            &path,
            r#"{"default": {"h1": {"return": "r1", "cache_type": "extract"}, "h2": {"return": null}},
                "mix": {"h3": {"return": "r3", "cache_type": "keywords"}},
                "other": {"x": 1}}"#,
        )
        .unwrap();
        let store = JsonKvStore::load(path.clone(), KvNamespace::LlmResponseCache).unwrap();
        let keys: Vec<String> = store
            .page(None, 10)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            keys,
            [
                "default:extract:h1",
                "default:extract:h2",
                "mix:keywords:h3",
                "other"
            ]
        );
        assert!(store.is_dirty());
        assert!(store.flush().await.unwrap());
        let again = JsonKvStore::load(path, KvNamespace::LlmResponseCache).unwrap();
        assert!(!again.is_dirty());
        assert_eq!(again.count().await.unwrap(), 4);

        // Already flat: untouched.
        let flat = JsonKvStore::load(
            fixture_dir("lightrag-1.4.9.8-small").join("kv_store_llm_response_cache.json"),
            KvNamespace::LlmResponseCache,
        )
        .unwrap();
        assert!(!flat.is_dirty());
    }

    /// Deterministic damaged copies of `src`: truncations, byte flips, insertions, deletions.
    pub(crate) fn mutations(src: &[u8], n: usize) -> Vec<Vec<u8>> {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move |m: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % m.max(1) as u64) as usize
        };
        const NASTY: &[u8] = b"\"{}[],:\\ \n0e-+.tfnu\xff\xc3\x00=*";
        (0..n)
            .map(|i| {
                let mut v = src.to_vec();
                let at = next(v.len());
                match i % 4 {
                    0 => v.truncate(at),
                    1 => v[at] = NASTY[next(NASTY.len())],
                    2 => v.insert(at, NASTY[next(NASTY.len())]),
                    _ => {
                        v.remove(at);
                    }
                }
                v
            })
            .collect()
    }

    #[test]
    fn damaged_files_never_panic() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("kv.json");
        for (file, ns) in [
            ("kv_store_full_entities.json", KvNamespace::FullEntities),
            ("kv_store_text_chunks.json", KvNamespace::TextChunks),
        ] {
            let src = std::fs::read(fixture_dir("lightrag-1.5.7-small").join(file)).unwrap();
            for m in mutations(&src, 400) {
                std::fs::write(&path, &m).unwrap();
                if let Err(e) = JsonKvStore::load(path.clone(), ns) {
                    assert!(matches!(e, StorageError::Corrupt { .. }), "{e}");
                }
            }
        }
        let mut legacy = br#"{"default": {"h1": {"return": "r1", "cache_type": "extract"}}, "mix": {"h": {"return": 1}}}"#.to_vec();
        for m in mutations(&legacy, 300) {
            std::fs::write(&path, &m).unwrap();
            let _ = JsonKvStore::load(path.clone(), KvNamespace::LlmResponseCache);
        }
        legacy.clear();
    }

    fn load_err(text: &[u8], ns: KvNamespace) -> String {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("kv.json");
        std::fs::write(&path, text).unwrap();
        match JsonKvStore::load(path, ns) {
            Ok(_) => panic!("loaded {}", String::from_utf8_lossy(text)),
            Err(e) => e
                .to_string()
                .rsplit_once("kv.json: ")
                .unwrap()
                .1
                .to_string(),
        }
    }

    #[test]
    fn corrupt_inputs_name_the_offset_or_record() {
        // Truncated at several points of a real file.
        let src =
            std::fs::read(fixture_dir("lightrag-1.5.7-small").join("kv_store_entity_chunks.json"))
                .unwrap();
        for cut in [1, 20, 517, src.len() / 2, src.len() - 1] {
            let msg = load_err(&src[..cut], KvNamespace::EntityChunks);
            assert!(
                msg.starts_with(&format!("byte {cut}: unexpected end of file")),
                "{cut}: {msg}"
            );
        }
        assert_eq!(
            load_err(&src[..20], KvNamespace::EntityChunks),
            "byte 20: unexpected end of file inside member \"Tariq Anders\""
        );
        assert_eq!(
            load_err(b"{\"a\": {\"x\": 1}, \"b\": [1]}", KvNamespace::FullDocs),
            "record \"b\" at byte 21: not a JSON object"
        );
        assert_eq!(
            load_err(b"\"text\"", KvNamespace::FullDocs),
            "byte 0: the top level is not a JSON object (found '\"')"
        );
        assert_eq!(
            load_err(b"{\"a\": {\"x\": \"\xe9t\xe9\"}}", KvNamespace::FullDocs),
            "byte 13: invalid UTF-8"
        );
        assert_eq!(
            load_err(b"{\"a\": {\"x\": 1}}\n{}", KvNamespace::FullDocs),
            "byte 16: trailing characters after the top-level object (found '{')"
        );
        assert_eq!(
            load_err(b"{\"a\": {\"x\": 01}}", KvNamespace::FullDocs),
            "record \"a\" at byte 6: invalid number"
        );
        assert_eq!(
            load_err(
                br#"{"default": {"h1": {"return": "r", "cache_type": 7}}}"#,
                KvNamespace::LlmResponseCache
            ),
            "legacy cache mode \"default\" at byte 12: entry \"h1\": cache_type is not a string (7)"
        );
    }
}
