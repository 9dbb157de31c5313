//! Order-independent content digests of a store: 256 buckets (chosen by the record's key) of
//! wrapping sums of 128-bit record hashes, plus a record count.
//!
//! Both sides of a migration compute them in whatever order they read; equal digests mean
//! equal multisets of records (up to hash collisions). Buckets let a mismatch be narrowed to
//! the few records whose bucket differs without holding either side in memory.

use std::cell::RefCell;

use xxhash_rust::xxh3::{xxh3_64, xxh3_128};

use super::cell::Cell;

pub const BUCKETS: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    pub records: u64,
    pub sums: Vec<u128>,
}

impl Default for Digest {
    fn default() -> Digest {
        Digest {
            records: 0,
            sums: vec![0; BUCKETS],
        }
    }
}

/// The bucket of a record key.
pub fn bucket(key: &str) -> usize {
    (xxh3_64(key.as_bytes()) & 0xff) as usize
}

/// The content hash of a record: its hashed cells, in column order.
pub fn record_hash<'a>(cells: impl IntoIterator<Item = &'a Cell>) -> u128 {
    thread_local! {
        // One buffer per thread: a record's canonical bytes are hashed in one call, which
        // xxh3 does several times faster than many small streaming updates.
        static CANONICAL: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    CANONICAL.with_borrow_mut(|buf| {
        buf.clear();
        for c in cells {
            c.canonical_into(buf);
        }
        let h = xxh3_128(buf);
        // A huge record must not pin its buffer for the rest of the job.
        if buf.capacity() > MAX_KEPT_BUFFER {
            *buf = Vec::new();
        }
        h
    })
}

/// The largest canonical-form buffer a thread keeps between records.
const MAX_KEPT_BUFFER: usize = 1 << 20;

impl Digest {
    pub fn add(&mut self, key: &str, hash: u128) {
        self.records += 1;
        let b = bucket(key);
        self.sums[b] = self.sums[b].wrapping_add(hash);
    }

    pub fn merge(&mut self, other: &Digest) {
        self.records += other.records;
        for (a, b) in self.sums.iter_mut().zip(&other.sums) {
            *a = a.wrapping_add(*b);
        }
    }

    /// The buckets whose sums differ.
    pub fn differing(&self, other: &Digest) -> Vec<usize> {
        (0..BUCKETS)
            .filter(|&i| self.sums.get(i) != other.sums.get(i))
            .collect()
    }

    /// 16 bytes per bucket, little-endian (the checkpoint's `bytea`).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.sums.iter().flat_map(|s| s.to_le_bytes()).collect()
    }

    pub fn from_bytes(records: u64, bytes: &[u8]) -> Option<Digest> {
        if bytes.len() != BUCKETS * 16 {
            return None;
        }
        let sums = bytes
            .chunks_exact(16)
            .map(|c| {
                let mut a = [0u8; 16];
                a.copy_from_slice(c);
                u128::from_le_bytes(a)
            })
            .collect();
        Some(Digest { records, sums })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn order_does_not_matter_and_bytes_round_trip() {
        let rows = [("a", 1u128), ("b", 2), ("c", u128::MAX)];
        let mut x = Digest::default();
        let mut y = Digest::default();
        for (k, h) in rows {
            x.add(k, h);
        }
        for (k, h) in rows.iter().rev() {
            y.add(k, *h);
        }
        assert_eq!(x, y);
        assert_eq!(Digest::from_bytes(3, &x.to_bytes()).unwrap(), x);
        y.add("d", 5);
        assert_eq!(x.differing(&y), vec![bucket("d")]);
    }
}
