//! A KV or doc-status file (`kv_store_*.json`) as a stream of `(ordinal, key, value)` in file
//! order.
//!
//! Memory: one member at a time (the [`ObjectReader`] buffer grows only to the largest single
//! value). Ordering: file order; `ordinal` counts members from 0, so a migration that committed
//! ordinals `0..n` resumes with [`KvSource::open_from`]`(path, n)`. Errors: every
//! [`StorageError::Corrupt`] names the file and byte offset; the stream ends after the first
//! error.

use std::fs::File;
use std::path::Path;

use serde_json::value::RawValue;

use crate::storage::json::jsonio::ObjectReader;
use crate::storage::{StorageError, StorageResult};

/// One member of a KV file.
#[derive(Debug)]
pub struct KvEntry {
    /// Position in the file, from 0.
    pub ordinal: u64,
    pub key: Box<str>,
    /// The value, minified (string escapes kept as written).
    pub value: Box<RawValue>,
    /// File offset of the value's first byte.
    pub offset: u64,
}

/// Streaming reader of one KV file; a missing (or whitespace-only) file is an empty stream.
pub struct KvSource {
    reader: Option<ObjectReader<File>>,
    next_ordinal: u64,
}

impl KvSource {
    pub fn open(path: &Path) -> StorageResult<KvSource> {
        Ok(KvSource {
            reader: ObjectReader::open(path)?,
            next_ordinal: 0,
        })
    }

    /// Opens `path` positioned at ordinal `first`: the members before it are scanned (their
    /// syntax checked) but never parsed into values. Fewer members than `first` is an error,
    /// since the file is then not the one the resume point was taken from.
    pub fn open_from(path: &Path, first: u64) -> StorageResult<KvSource> {
        let mut s = KvSource::open(path)?;
        let skipped = s.skip_members(first)?;
        if skipped < first {
            return Err(StorageError::corrupt(
                path,
                format!("resume at member {first}, but the file has only {skipped} members"),
            ));
        }
        Ok(s)
    }

    /// Skips up to `n` members; returns how many were skipped (fewer at the end of the file).
    pub fn skip_members(&mut self, n: u64) -> StorageResult<u64> {
        let Some(r) = self.reader.as_mut() else {
            return Ok(0);
        };
        let mut done = 0;
        while done < n {
            // `next_key` skips a value left untaken, scanning it without building it.
            match r.next_key() {
                Ok(Some(_)) => done += 1,
                Ok(None) => {
                    self.reader = None;
                    break;
                }
                Err(e) => {
                    self.reader = None;
                    return Err(e);
                }
            }
        }
        self.next_ordinal += done;
        Ok(done)
    }

    /// The ordinal the next entry will have.
    pub fn next_ordinal(&self) -> u64 {
        self.next_ordinal
    }

    fn read_next(&mut self) -> StorageResult<Option<KvEntry>> {
        let Some(r) = self.reader.as_mut() else {
            return Ok(None);
        };
        let Some(key) = r.next_key()? else {
            return Ok(None);
        };
        let value = r.raw_value()?;
        let offset = r.value_offset();
        // LightRAG's KV values are always objects; anything else would be migrated as garbage.
        if !value.get().starts_with('{') {
            return Err(r.err_at(
                offset,
                format!("the value of \"{key}\" is not a JSON object"),
            ));
        }
        let ordinal = self.next_ordinal;
        self.next_ordinal += 1;
        Ok(Some(KvEntry {
            ordinal,
            key,
            value,
            offset,
        }))
    }
}

impl Iterator for KvSource {
    type Item = StorageResult<KvEntry>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.read_next() {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => {
                self.reader = None;
                None
            }
            Err(e) => {
                self.reader = None;
                Some(Err(e))
            }
        }
    }
}
