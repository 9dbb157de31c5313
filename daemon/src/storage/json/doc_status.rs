//! Document processing status as `kv_store_doc_status.json` (LightRAG's
//! `JsonDocStatusStorage`): an object of `doc_id → record`, written like the KV files.
//!
//! Records are kept minified as read, each with its `status` extracted once so that counts by
//! status are maintained on load, upsert and delete rather than recomputed.
//!
//! Invariants: only LightRAG's doc-status fields are ever written by an upsert (an extra key
//! such as `_id` would break LightRAG's reader); no `_id`/`create_time`/`update_time` is added;
//! an untouched store is never written by [`DocStatusStore::flush`] and writing it reproduces
//! the file byte for byte.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::jsonio;
use super::kv::{blocking, cursor_start, next_cursor, remove_keys};
use crate::storage::{
    Cursor, DOC_STATUS_FIELDS, DocStatusStore, Page, Record, StorageError, StorageResult,
};

/// The doc-status store of one working directory.
pub struct JsonDocStatusStore {
    path: PathBuf,
    inner: Arc<RwLock<Inner>>,
}

struct Entry {
    raw: Box<RawValue>,
    /// The record's `status` when it is a string.
    status: Option<Box<str>>,
}

struct Inner {
    records: IndexMap<Box<str>, Entry, hashbrown::DefaultHashBuilder>,
    counts: hashbrown::HashMap<Box<str>, u64>,
    generation: u64,
    saved: AtomicU64,
}

impl Inner {
    fn dirty(&self) -> bool {
        self.saved.load(Ordering::Acquire) != self.generation
    }

    fn count_in(&mut self, status: Option<&str>) {
        if let Some(s) = status {
            match self.counts.get_mut(s) {
                Some(n) => *n += 1,
                None => {
                    self.counts.insert(s.into(), 1);
                }
            }
        }
    }

    fn count_out(&mut self, status: Option<&str>) {
        if let Some(s) = status
            && let Some(n) = self.counts.get_mut(s)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.counts.remove(s);
            }
        }
    }
}

#[derive(Deserialize)]
struct StatusProbe<'a> {
    #[serde(default, borrow)]
    status: Option<&'a RawValue>,
}

/// The `status` string of a stored record, if it has one.
fn status_of(raw: &RawValue) -> Result<Option<Box<str>>, serde_json::Error> {
    let probe: StatusProbe<'_> = serde_json::from_str(raw.get())?;
    Ok(match probe.status {
        Some(s) if s.get().starts_with('"') => {
            Some(serde_json::from_str::<String>(s.get())?.into_boxed_str())
        }
        _ => None,
    })
}

impl JsonDocStatusStore {
    /// Loads `path` (blocking). A missing or empty file is an empty store. A record without a
    /// string `status` is kept as it is, but counted under no status.
    pub fn load(path: PathBuf) -> StorageResult<JsonDocStatusStore> {
        let mut inner = Inner {
            records: IndexMap::default(),
            counts: hashbrown::HashMap::new(),
            generation: 0,
            saved: AtomicU64::new(0),
        };
        jsonio::read_members(&path, |r, key, raw| {
            if !raw.get().starts_with('{') {
                return Err(r.corrupt(format!(
                    "record \"{key}\" at byte {}: not a JSON object",
                    r.value_offset()
                )));
            }
            let status = status_of(&raw).map_err(|e| {
                r.corrupt(format!(
                    "record \"{key}\" at byte {}: {}",
                    r.value_offset(),
                    jsonio::serde_message(&e)
                ))
            })?;
            inner.count_in(status.as_deref());
            if let Some(old) = inner.records.insert(key, Entry { raw, status }) {
                inner.count_out(old.status.as_deref());
            }
            Ok(())
        })?;
        Ok(JsonDocStatusStore {
            path,
            inner: Arc::new(RwLock::new(inner)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the store has changes that [`DocStatusStore::flush`] would write.
    pub fn is_dirty(&self) -> bool {
        self.read().dirty()
    }

    /// Writes the current content to `path` atomically (export, tests). Blocking.
    pub fn write_to(&self, path: &Path) -> StorageResult<()> {
        write_entries(path, &self.read())
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
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

fn write_entries(path: &Path, inner: &Inner) -> StorageResult<()> {
    jsonio::write_file_atomic(path, |w| {
        jsonio::write_object_indent2(w, inner.records.iter().map(|(k, e)| (&**k, &*e.raw)))
    })
}

#[async_trait]
impl DocStatusStore for JsonDocStatusStore {
    async fn get(&self, id: &str) -> StorageResult<Option<Record>> {
        let g = self.read();
        g.records
            .get(id)
            .map(|e| self.parse(id, &e.raw))
            .transpose()
    }

    async fn get_many(&self, ids: &[String]) -> StorageResult<Vec<Option<Record>>> {
        let g = self.read();
        ids.iter()
            .map(|id| {
                g.records
                    .get(id.as_str())
                    .map(|e| self.parse(id, &e.raw))
                    .transpose()
            })
            .collect()
    }

    /// As LightRAG's `JsonDocStatusStorage.upsert` (a record without `chunks_list` gets `[]`),
    /// after refusing, before any change, a record with a key outside [`DOC_STATUS_FIELDS`]
    /// or without a string `status`.
    async fn upsert(&self, records: Vec<(String, Record)>) -> StorageResult<()> {
        let mut prepared = Vec::with_capacity(records.len());
        for (id, mut rec) in records {
            if let Some(k) = rec
                .keys()
                .find(|k| !DOC_STATUS_FIELDS.contains(&k.as_str()))
            {
                return Err(StorageError::Invalid(format!(
                    "doc status \"{id}\": \"{k}\" is not a LightRAG doc-status field"
                )));
            }
            let status = match rec.get("status") {
                Some(Value::String(s)) => s.clone().into_boxed_str(),
                _ => {
                    return Err(StorageError::Invalid(format!(
                        "doc status \"{id}\": \"status\" must be a string"
                    )));
                }
            };
            if !rec.contains_key("chunks_list") {
                rec.insert("chunks_list".into(), Value::Array(Vec::new()));
            }
            let raw = jsonio::raw_from_record(&rec)?;
            prepared.push((
                id.into_boxed_str(),
                Entry {
                    raw,
                    status: Some(status),
                },
            ));
        }
        if prepared.is_empty() {
            return Ok(());
        }
        let mut g = self.write();
        for (id, entry) in prepared {
            g.count_in(entry.status.as_deref());
            if let Some(old) = g.records.insert(id, entry) {
                g.count_out(old.status.as_deref());
            }
        }
        g.generation += 1;
        Ok(())
    }

    async fn delete(&self, ids: &[String]) -> StorageResult<()> {
        let mut g = self.write();
        let mut gone: Vec<Box<str>> = Vec::new();
        let changed = remove_keys(&mut g.records, ids, |e| {
            if let Some(s) = &e.status {
                gone.push(s.clone());
            }
        });
        for s in gone {
            g.count_out(Some(&s));
        }
        if changed {
            g.generation += 1;
        }
        Ok(())
    }

    /// Records whose status is `status`, in store order; the cursor is an ordinal in the
    /// whole store.
    async fn by_status(
        &self,
        status: &str,
        cursor: Option<Cursor>,
        limit: usize,
    ) -> StorageResult<Page<(String, Record)>> {
        let start = cursor_start(cursor.as_ref())?;
        let limit = limit.max(1);
        let g = self.read();
        let len = g.records.len();
        let mut items = Vec::new();
        let mut pos = start;
        for (k, e) in g.records.iter().skip(start) {
            if items.len() == limit {
                break;
            }
            pos += 1;
            if e.status.as_deref() == Some(status) {
                items.push((k.to_string(), self.parse(k, &e.raw)?));
            }
        }
        let pos = pos.max(start);
        // Nothing matches beyond `pos` when the scan reached the end.
        Ok(Page {
            items,
            next: next_cursor(pos, len),
        })
    }

    async fn counts_by_status(&self) -> StorageResult<BTreeMap<String, u64>> {
        Ok(self
            .read()
            .counts
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect())
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
            .map(|(k, e)| Ok((k.to_string(), self.parse(k, &e.raw)?)))
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
            write_entries(&path, &g)?;
            g.saved.store(g.generation, Ordering::Release);
            Ok(true)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::storage::DOC_STATUS_FILE;
    use crate::storage::json::kv::tests::{counts, fixture_dir};

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
            let src = fixture_dir(fixture).join(DOC_STATUS_FILE);
            let store = JsonDocStatusStore::load(src.clone()).unwrap();
            let c = counts(fixture);
            let (total, by) = if c["doc_status"].is_object() {
                (&c["doc_status"]["total"], &c["doc_status"]["by_status"])
            } else {
                let f = &c["files"][DOC_STATUS_FILE];
                (&f["records"], &f["by_status"])
            };
            assert_eq!(store.count().await.unwrap(), total.as_u64().unwrap());
            let by: BTreeMap<String, u64> = serde_json::from_value(by.clone()).unwrap();
            assert_eq!(store.counts_by_status().await.unwrap(), by, "{fixture}");
            let out = tmp.path().join(format!("{fixture}.json"));
            store.write_to(&out).unwrap();
            assert!(
                std::fs::read(&src).unwrap() == std::fs::read(&out).unwrap(),
                "{fixture}: differs after a round trip"
            );
            // by_status pages through exactly the counted records.
            for (status, n) in &by {
                let mut cursor = None;
                let mut got = 0;
                loop {
                    let p = store.by_status(status, cursor, 2).await.unwrap();
                    assert!(p.items.iter().all(|(_, r)| r["status"] == status.as_str()));
                    got += p.items.len() as u64;
                    match p.next {
                        Some(c) => cursor = Some(c),
                        None => break,
                    }
                }
                assert_eq!(got, *n, "{fixture} {status}");
            }
        }
    }

    #[tokio::test]
    async fn upsert_validates_and_maintains_counts() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(DOC_STATUS_FILE);
        std::fs::copy(
            fixture_dir("lightrag-1.5.7-small").join(DOC_STATUS_FILE),
            &path,
        )
        .unwrap();
        let store = JsonDocStatusStore::load(path.clone()).unwrap();
        let bad = store
            .upsert(vec![
                ("d1".into(), rec(serde_json::json!({"status": "pending"}))),
                (
                    "d2".into(),
                    rec(serde_json::json!({"status": "pending", "_id": "d2"})),
                ),
            ])
            .await
            .unwrap_err();
        assert_eq!(
            bad.to_string(),
            "doc status \"d2\": \"_id\" is not a LightRAG doc-status field"
        );
        let bad = store
            .upsert(vec![(
                "d3".into(),
                rec(serde_json::json!({"content_length": 1})),
            )])
            .await
            .unwrap_err();
        assert_eq!(
            bad.to_string(),
            "doc status \"d3\": \"status\" must be a string"
        );
        assert!(!store.is_dirty());
        assert_eq!(store.count().await.unwrap(), 15);

        store
            .upsert(vec![(
                "d1".into(),
                rec(serde_json::json!({"status": "pending", "content_summary": "x", "created_at": "2025-01-01T00:00:00+00:00"})),
            )])
            .await
            .unwrap();
        let r = store.get("d1").await.unwrap().unwrap();
        let keys: Vec<&str> = r.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["status", "content_summary", "created_at", "chunks_list"]
        );
        let c = store.counts_by_status().await.unwrap();
        assert_eq!(c["pending"], 2);
        assert_eq!(c["processed"], 12);

        // A status change moves the count.
        store
            .upsert(vec![(
                "d1".into(),
                rec(serde_json::json!({"status": "processed"})),
            )])
            .await
            .unwrap();
        let c = store.counts_by_status().await.unwrap();
        assert_eq!((c["pending"], c["processed"]), (1, 13));

        let failed: Vec<String> = store
            .by_status("failed", None, 10)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(failed.len(), 2);
        store.delete(&failed).await.unwrap();
        let c = store.counts_by_status().await.unwrap();
        assert!(!c.contains_key("failed"));
        assert_eq!(store.count().await.unwrap(), 14);

        assert!(store.flush().await.unwrap());
        assert!(!store.flush().await.unwrap());
        let again = JsonDocStatusStore::load(path).unwrap();
        assert_eq!(again.counts_by_status().await.unwrap(), c);
        let a = again.page(None, 100).await.unwrap().items;
        let b = store.page(None, 100).await.unwrap().items;
        assert_eq!(a, b);
        assert!(
            !a.iter()
                .any(|(_, r)| r.contains_key("_id") || r.contains_key("update_time"))
        );
    }

    #[test]
    fn corrupt_inputs() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join(DOC_STATUS_FILE);
        let src =
            std::fs::read(fixture_dir("lightrag-1.4.9.8-small").join(DOC_STATUS_FILE)).unwrap();
        std::fs::write(&path, &src[..src.len() - 1]).unwrap();
        let e = JsonDocStatusStore::load(path.clone())
            .err()
            .unwrap()
            .to_string();
        let last = std::str::from_utf8(&src)
            .unwrap()
            .rsplit_once("\n  \"")
            .unwrap()
            .1;
        let last = last.split_once('"').unwrap().0;
        assert!(
            e.ends_with(&format!(
                "kv_store_doc_status.json: byte {}: unexpected end of file after member \"{last}\"",
                src.len() - 1,
            )),
            "{e}"
        );
        for m in crate::storage::json::kv::tests::mutations(&src, 400) {
            std::fs::write(&path, &m).unwrap();
            if let Err(e) = JsonDocStatusStore::load(path.clone()) {
                assert!(matches!(e, StorageError::Corrupt { .. }), "{e}");
            }
        }
        std::fs::write(&path, br#"{"d": {"status": "ok"}, "e": 3}"#).unwrap();
        let e = JsonDocStatusStore::load(path.clone())
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.ends_with("kv_store_doc_status.json: record \"e\" at byte 29: not a JSON object"),
            "{e}"
        );
    }
}
