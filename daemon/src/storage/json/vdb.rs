//! One LightRAG vector namespace as its nano-vectordb file `vdb_<namespace>.json`
//! (LightRAG's `NanoVectorDBStorage` over `nano_vectordb.NanoVectorDB`):
//! `{"embedding_dim": D, "data": [rows], "matrix": base64(float32 LE, rows L2-normalised)}`,
//! plus any other top-level member (`additional_data`), kept as it is.
//!
//! Memory: one contiguous `Vec<f32>` matrix (row `i` is `data[i]`), the rows kept minified
//! (their `vector` field included: base64(zlib(float16 LE raw embedding))), and an id → row
//! index over the ids vector. The matrix is decoded from the file's base64 in streamed chunks
//! and written back the same way.
//!
//! Invariants: the matrix has exactly `rows × embedding_dim` values and row `i` belongs to
//! `ids[i]`/`rows[i]`; ids are unique; an untouched store is never written by
//! [`VectorStore::flush`] and writing it reproduces the file byte for byte.

use std::hash::BuildHasher;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use base64::DecodeSliceError;
use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use hashbrown::{DefaultHashBuilder, HashTable};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::jsonio::{self, ObjectReader};
use super::kv::{blocking, cursor_start, next_cursor, unix_now};
use crate::storage::{
    Cursor, Page, Record, StorageError, StorageResult, VectorItem, VectorMatch, VectorNamespace,
    VectorStore,
};

/// Python's `base64.b64decode` is lenient about padding and trailing bits; so are we.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A vector store of one namespace, backed by one nano-vectordb file.
pub struct JsonVectorStore {
    path: PathBuf,
    ns: VectorNamespace,
    inner: Arc<RwLock<Inner>>,
}

/// Top-level members, in the order they are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Top {
    Dim,
    Data,
    Matrix,
    Extra(usize),
}

struct Inner {
    dim: usize,
    ids: Vec<Box<str>>,
    rows: Vec<Box<RawValue>>,
    matrix: Vec<f32>,
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
    extra: Vec<(Box<str>, Box<RawValue>)>,
    order: Vec<Top>,
    generation: u64,
    saved: AtomicU64,
}

impl Inner {
    fn empty(dim: usize) -> Inner {
        Inner {
            dim,
            ids: Vec::new(),
            rows: Vec::new(),
            matrix: Vec::new(),
            index: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            extra: Vec::new(),
            order: vec![Top::Dim, Top::Data, Top::Matrix],
            generation: 0,
            saved: AtomicU64::new(0),
        }
    }

    fn dirty(&self) -> bool {
        self.saved.load(Ordering::Acquire) != self.generation
    }

    fn find(&self, id: &str) -> Option<usize> {
        let h = self.hasher.hash_one(id);
        let ids = &self.ids;
        self.index
            .find(h, |&i| ids.get(i as usize).is_some_and(|s| &**s == id))
            .map(|&i| i as usize)
    }

    /// Appends a row (the caller checked the id is new and the vector's length).
    fn push(&mut self, id: Box<str>, row: Box<RawValue>, vector: &[f32]) -> StorageResult<()> {
        let i = u32::try_from(self.ids.len())
            .map_err(|_| StorageError::Invalid("a vector store holds at most 2^32 rows".into()))?;
        let h = self.hasher.hash_one(&*id);
        self.ids.push(id);
        self.rows.push(row);
        self.matrix.extend_from_slice(vector);
        let (ids, hasher) = (&self.ids, &self.hasher);
        self.index.insert_unique(h, i, |&j| {
            hasher.hash_one(ids.get(j as usize).map_or("", |s| &**s))
        });
        Ok(())
    }

    fn rebuild_index(&mut self) {
        self.index.clear();
        let (ids, hasher, index) = (&self.ids, &self.hasher, &mut self.index);
        for (i, id) in ids.iter().enumerate() {
            let h = hasher.hash_one(&**id);
            index.insert_unique(h, i as u32, |&j| {
                hasher.hash_one(ids.get(j as usize).map_or("", |s| &**s))
            });
        }
    }

    fn matrix_row(&self, i: usize) -> &[f32] {
        self.matrix
            .get(i * self.dim..(i + 1) * self.dim)
            .unwrap_or(&[])
    }

    /// The row's meta: the stored row without `__id__` and `vector`.
    fn meta(&self, path: &Path, i: usize) -> StorageResult<Record> {
        let (Some(id), Some(raw)) = (self.ids.get(i), self.rows.get(i)) else {
            return Ok(Record::new());
        };
        let mut rec = jsonio::parse_record(raw).map_err(|e| {
            StorageError::corrupt(path, format!("row \"{id}\": {}", jsonio::serde_message(&e)))
        })?;
        rec.shift_remove("__id__");
        rec.shift_remove("vector");
        Ok(rec)
    }

    fn item(&self, path: &Path, i: usize) -> StorageResult<VectorItem> {
        Ok(VectorItem {
            id: self.ids.get(i).map(|s| s.to_string()).unwrap_or_default(),
            meta: self.meta(path, i)?,
            vector: self.matrix_row(i).to_vec(),
        })
    }
}

#[derive(Deserialize)]
struct IdProbe<'a> {
    #[serde(default, borrow, rename = "__id__")]
    id: Option<&'a RawValue>,
}

/// The `__id__` of a row: `Ok(None)` when it has none, `Err` with a message otherwise.
pub(crate) fn row_id(raw: &RawValue) -> Result<Option<Box<str>>, String> {
    let text = raw.get();
    // Fast path: LightRAG writes `__id__` first and ids rarely hold escapes.
    if let Some(rest) = text.strip_prefix("{\"__id__\":\"")
        && let Some(k) = memchr::memchr2(b'"', b'\\', rest.as_bytes())
        && rest.as_bytes().get(k) == Some(&b'"')
    {
        return Ok(rest.get(..k).map(Box::from));
    }
    let probe: IdProbe<'_> = serde_json::from_str(text).map_err(|e| jsonio::serde_message(&e))?;
    match probe.id {
        None => Ok(None),
        Some(v) if v.get().starts_with('"') => serde_json::from_str::<String>(v.get())
            .map(|s| Some(s.into_boxed_str()))
            .map_err(|e| jsonio::serde_message(&e)),
        Some(v) => Err(format!("\"__id__\" is not a string ({})", v.get())),
    }
}

/// Decodes the streamed base64 of `matrix` into float32 values. Shared with the migration
/// source, which drains [`MatrixDecoder::values`] as it goes so that memory stays bounded.
pub(crate) struct MatrixDecoder {
    /// An incomplete 4-symbol group carried over from the previous chunk.
    group: [u8; 4],
    group_len: usize,
    group_off: u64,
    /// Decoded bytes not yet forming a whole float.
    spill: [u8; 4],
    spill_len: usize,
    out: Vec<f32>,
    tmp: Vec<u8>,
    bytes: u64,
    padded: bool,
}

impl MatrixDecoder {
    pub(crate) fn new(capacity: usize) -> MatrixDecoder {
        MatrixDecoder {
            group: [0; 4],
            group_len: 0,
            group_off: 0,
            spill: [0; 4],
            spill_len: 0,
            out: Vec::with_capacity(capacity),
            tmp: Vec::new(),
            bytes: 0,
            padded: false,
        }
    }

    /// The values decoded so far that the caller has not removed.
    pub(crate) fn values(&mut self) -> &mut Vec<f32> {
        &mut self.out
    }

    /// Decodes base64 text `s` whose first byte is at file offset `off`; errors carry the
    /// offending byte's offset.
    pub(crate) fn feed(&mut self, off: u64, s: &[u8]) -> Result<(), (u64, String)> {
        let mut s = s;
        let mut off = off;
        if self.group_len > 0 {
            let n = (4 - self.group_len).min(s.len());
            let (head, tail) = s.split_at(n);
            if let Some(dst) = self.group.get_mut(self.group_len..self.group_len + n) {
                dst.copy_from_slice(head);
            }
            self.group_len += n;
            s = tail;
            off += n as u64;
            if self.group_len < 4 {
                return Ok(());
            }
            let g = self.group;
            self.group_len = 0;
            self.decode(&g, self.group_off)?;
        }
        let full = s.len() / 4 * 4;
        let (body, rest) = s.split_at(full);
        if !body.is_empty() {
            self.decode(body, off)?;
        }
        if !rest.is_empty() {
            if self.padded {
                return Err((
                    off + full as u64,
                    "base64 continues after its padding".into(),
                ));
            }
            if let Some(dst) = self.group.get_mut(..rest.len()) {
                dst.copy_from_slice(rest);
            }
            self.group_len = rest.len();
            self.group_off = off + full as u64;
        }
        Ok(())
    }

    fn decode(&mut self, b64: &[u8], off: u64) -> Result<(), (u64, String)> {
        if self.padded {
            return Err((off, "base64 continues after its padding".into()));
        }
        self.tmp.resize(b64.len() / 4 * 3 + 3, 0);
        let n = LENIENT
            .decode_slice(b64, &mut self.tmp)
            .map_err(|e| match e {
                DecodeSliceError::DecodeError(base64::DecodeError::InvalidByte(i, b)) => (
                    off + i as u64,
                    format!("invalid base64 {}", describe_b64(b)),
                ),
                DecodeSliceError::DecodeError(base64::DecodeError::InvalidLastSymbol {
                    offset,
                    ..
                }) => (off + offset as u64, "invalid base64 final symbol".into()),
                DecodeSliceError::DecodeError(base64::DecodeError::InvalidLength(_)) => {
                    (off, "truncated base64 (a lone final symbol)".into())
                }
                DecodeSliceError::DecodeError(base64::DecodeError::InvalidPadding) => {
                    (off, "invalid base64 padding".into())
                }
                DecodeSliceError::OutputSliceTooSmall => (off, "base64 decoding failed".into()),
            })?;
        if b64.last() == Some(&b'=') {
            self.padded = true;
        }
        self.bytes += n as u64;
        let mut data = self.tmp.get(..n).unwrap_or(&[]);
        if self.spill_len > 0 {
            let k = (4 - self.spill_len).min(data.len());
            if let Some(dst) = self.spill.get_mut(self.spill_len..self.spill_len + k) {
                dst.copy_from_slice(data.get(..k).unwrap_or(&[]));
            }
            self.spill_len += k;
            data = data.get(k..).unwrap_or(&[]);
            if self.spill_len == 4 {
                self.out.push(f32::from_le_bytes(self.spill));
                self.spill_len = 0;
            }
        }
        let mut chunks = data.chunks_exact(4);
        for c in &mut chunks {
            self.out.push(f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        }
        let rem = chunks.remainder();
        if let Some(dst) = self.spill.get_mut(..rem.len()) {
            dst.copy_from_slice(rem);
            self.spill_len = rem.len();
        }
        Ok(())
    }

    /// Decodes a final partial group; an offset of `u64::MAX` blames the whole value.
    pub(crate) fn finish(mut self) -> Result<Vec<f32>, (u64, String)> {
        if self.group_len > 0 {
            let g = self.group;
            let len = self.group_len;
            self.group_len = 0;
            self.decode(g.get(..len).unwrap_or(&[]), self.group_off)?;
        }
        if self.spill_len > 0 {
            return Err((
                u64::MAX,
                format!(
                    "matrix is {} bytes, not a whole number of float32 values",
                    self.bytes
                ),
            ));
        }
        Ok(self.out)
    }
}

fn describe_b64(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("character '{}'", char::from(b))
    } else {
        format!("byte 0x{b:02x}")
    }
}

/// The last `__write_seq__` handed out in this process.
static LAST_WRITE_SEQ: AtomicU64 = AtomicU64::new(0);

/// LightRAG's `next_write_seq`: `max(time_ns, last + 1)`, strictly increasing per process.
pub(crate) fn next_write_seq() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let mut last = LAST_WRITE_SEQ.load(Ordering::Relaxed);
    loop {
        let seq = now.max(last.saturating_add(1));
        match LAST_WRITE_SEQ.compare_exchange_weak(last, seq, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => return seq,
            Err(x) => last = x,
        }
    }
}

/// `base64(zlib(float16 LE))` of a raw embedding, as LightRAG stores it in `vector`.
///
/// The zlib stream holds stored (uncompressed) blocks: float16 embeddings shrink by a few
/// percent at best, while setting up a deflate state zeroes a few hundred KiB — more work
/// than the vector itself, on every row an ingest writes. Any zlib reader (Python's
/// `zlib.decompress` included) decodes stored blocks.
fn encode_f16_zlib(v: &[f32]) -> String {
    let mut raw = Vec::with_capacity(v.len() * 2);
    for &x in v {
        raw.extend_from_slice(&half::f16::from_f32(x).to_le_bytes());
    }
    STANDARD.encode(zlib_stored(&raw))
}

/// A zlib stream (RFC 1950) of `data` in stored deflate blocks (RFC 1951 §3.2.4).
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    const MAX_BLOCK: usize = 65_535;
    let blocks = data.len().div_ceil(MAX_BLOCK).max(1);
    let mut out = Vec::with_capacity(2 + blocks * 5 + data.len() + 4);
    // CMF: deflate, 32 KiB window; FLG: no dictionary, fastest level, header check bits.
    out.extend_from_slice(&[0x78, 0x01]);
    let mut chunks = data.chunks(MAX_BLOCK).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        // `chunks(MAX_BLOCK)` keeps every length within u16.
        let len = chunk.len() as u16;
        out.push(u8::from(last));
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&adler2::adler32_slice(data).to_be_bytes());
    out
}

/// L2-normalised copy of `v` (the matrix row nano-vectordb keeps for cosine).
pub(crate) fn normalised(v: &[f32]) -> Option<Vec<f32>> {
    let norm = v
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    if norm == 0.0 || !norm.is_finite() {
        return None;
    }
    Some(v.iter().map(|&x| (f64::from(x) / norm) as f32).collect())
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    acc.iter().sum::<f32>() + tail
}

impl JsonVectorStore {
    /// Loads `path` (blocking). A missing or empty file is an empty store of `expected_dim`
    /// (0 when `None`: the first upsert sets it). With `expected_dim`, a file of another
    /// dimension is refused.
    pub fn load(
        path: PathBuf,
        ns: VectorNamespace,
        expected_dim: Option<usize>,
    ) -> StorageResult<JsonVectorStore> {
        let inner = match ObjectReader::open(&path)? {
            None => Inner::empty(expected_dim.unwrap_or(0)),
            Some(r) => read_file(r, expected_dim)?,
        };
        Ok(JsonVectorStore {
            path,
            ns,
            inner: Arc::new(RwLock::new(inner)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the store has changes that [`VectorStore::flush`] would write.
    pub fn is_dirty(&self) -> bool {
        self.read().dirty()
    }

    /// Writes the current content to `path` atomically (export, tests). Blocking.
    pub fn write_to(&self, path: &Path) -> StorageResult<()> {
        write_store(path, &self.read())
    }

    /// The raw (un-normalised, float16-precision) embedding of `id`, decoded from the row's
    /// `vector` field.
    pub fn raw_vector(&self, id: &str) -> StorageResult<Option<Vec<f32>>> {
        let g = self.read();
        let Some(i) = g.find(id) else {
            return Ok(None);
        };
        let raw = g.rows.get(i).map(|r| r.get()).unwrap_or("{}");
        let bad = |msg: String| StorageError::corrupt(&self.path, format!("row \"{id}\": {msg}"));
        #[derive(Deserialize)]
        struct VecProbe {
            #[serde(default)]
            vector: Option<String>,
        }
        let probe: VecProbe =
            serde_json::from_str(raw).map_err(|e| bad(jsonio::serde_message(&e)))?;
        let b64 = probe
            .vector
            .ok_or_else(|| bad("no \"vector\" string".into()))?;
        let z = LENIENT
            .decode(b64.as_bytes())
            .map_err(|e| bad(format!("\"vector\" is not base64: {e}")))?;
        let mut bytes = Vec::with_capacity(g.dim * 2);
        flate2::read::ZlibDecoder::new(z.as_slice())
            .read_to_end(&mut bytes)
            .map_err(|e| bad(format!("\"vector\" is not a zlib stream: {e}")))?;
        if bytes.len() != g.dim * 2 {
            return Err(bad(format!(
                "\"vector\" holds {} bytes, expected {} float16 values",
                bytes.len(),
                g.dim
            )));
        }
        Ok(Some(
            bytes
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        ))
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// The stored row of an item of namespace `ns`: `__id__`, `__created_at__`, `__write_seq__`,
/// the namespace's meta fields in the payload's order, then `vector` (also used by export).
pub(crate) fn encode_row(
    ns: VectorNamespace,
    item: &VectorItem,
    now: i64,
    seq: u64,
) -> StorageResult<Box<RawValue>> {
    let fields = ns.meta_fields();
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"{\"__id__\":");
    jsonio::push_py_str(&mut out, &item.id);
    out.extend_from_slice(format!(",\"__created_at__\":{now},\"__write_seq__\":{seq}").as_bytes());
    for (k, v) in &item.meta {
        if fields.contains(&k.as_str()) {
            out.push(b',');
            jsonio::push_py_str(&mut out, k);
            out.push(b':');
            jsonio::push_py_value(&mut out, v);
        }
    }
    out.extend_from_slice(b",\"vector\":\"");
    let enc = encode_f16_zlib(&item.vector);
    out.extend_from_slice(enc.as_bytes());
    out.extend_from_slice(b"\"}");
    jsonio::raw_from_bytes(out)
}

/// Reads a nano-vectordb file.
fn read_file<R: Read>(mut r: ObjectReader<R>, expected_dim: Option<usize>) -> StorageResult<Inner> {
    let mut inner = Inner::empty(0);
    inner.order.clear();
    let mut dim: Option<usize> = None;
    let mut matrix: Option<(Vec<f32>, u64)> = None;
    let path = r.path().to_path_buf();
    while let Some(key) = r.next_key()? {
        let top = match &*key {
            "embedding_dim" => Top::Dim,
            "data" => Top::Data,
            "matrix" => Top::Matrix,
            _ => Top::Extra(0),
        };
        if top != Top::Extra(0) && inner.order.contains(&top) {
            return Err(r.corrupt(format!(
                "byte {}: member \"{key}\" appears twice",
                r.member_offset()
            )));
        }
        match top {
            Top::Dim => {
                let n = r.number()?;
                let d = n
                    .as_u64()
                    .and_then(|d| usize::try_from(d).ok())
                    .ok_or_else(|| {
                        r.err_at(
                            r.value_offset(),
                            "\"embedding_dim\" is not a non-negative integer",
                        )
                    })?;
                // A dimension-less empty store (embedding_dim 0, no rows) takes the expected one.
                if let Some(e) = expected_dim
                    && e != d
                    && d != 0
                {
                    return Err(r.err_at(
                        r.value_offset(),
                        format!("wrong dimension: embedding_dim is {d}, expected {e}"),
                    ));
                }
                dim = Some(d);
                inner.order.push(Top::Dim);
            }
            Top::Data => {
                r.begin_array()?;
                let mut n = 0u64;
                while let Some(row) = r.next_element()? {
                    let at = r.value_offset();
                    let label = format!("row {n} of \"data\" at byte {at}");
                    if !row.get().starts_with('{') {
                        return Err(r.corrupt(format!("{label}: not a JSON object")));
                    }
                    let id = match row_id(&row) {
                        Ok(Some(id)) => id,
                        Ok(None) => return Err(r.corrupt(format!("{label}: no \"__id__\""))),
                        Err(msg) => return Err(r.corrupt(format!("{label}: {msg}"))),
                    };
                    if inner.find(&id).is_some() {
                        return Err(r.corrupt(format!("{label}: duplicate __id__ \"{id}\"")));
                    }
                    inner.push(id, row, &[])?;
                    n += 1;
                }
                inner.order.push(Top::Data);
            }
            Top::Matrix => {
                let capacity = dim.map_or(0, |d| d.saturating_mul(inner.ids.len()));
                let mut dec = MatrixDecoder::new(capacity);
                let p = path.clone();
                r.string_chunks(|off, s| {
                    dec.feed(off, s.as_bytes()).map_err(|(at, msg)| {
                        StorageError::corrupt(&p, format!("byte {at}: {msg} in member \"matrix\""))
                    })
                })?;
                let values = dec.finish().map_err(|(at, msg)| {
                    // `u64::MAX`: the whole value is at fault.
                    let at = if at == u64::MAX { r.value_offset() } else { at };
                    StorageError::corrupt(&path, format!("byte {at}: {msg}"))
                })?;
                matrix = Some((values, r.value_offset()));
                inner.order.push(Top::Matrix);
            }
            Top::Extra(_) => {
                let raw = r.raw_value()?;
                if let Some(slot) = inner.extra.iter_mut().find(|(k, _)| *k == key) {
                    slot.1 = raw;
                } else {
                    inner.order.push(Top::Extra(inner.extra.len()));
                    inner.extra.push((key, raw));
                }
            }
        }
    }
    let Some(dim) = dim else {
        return Err(StorageError::corrupt(&path, "no \"embedding_dim\" member"));
    };
    if !inner.order.contains(&Top::Data) {
        return Err(StorageError::corrupt(&path, "no \"data\" member"));
    }
    let Some((values, matrix_at)) = matrix else {
        return Err(StorageError::corrupt(&path, "no \"matrix\" member"));
    };
    let rows = inner.ids.len();
    if dim == 0 && rows > 0 {
        return Err(StorageError::corrupt(
            &path,
            format!("embedding_dim is 0 but \"data\" has {rows} rows"),
        ));
    }
    let want = rows.saturating_mul(dim);
    if values.len() != want {
        return Err(StorageError::corrupt(
            &path,
            format!(
                "byte {matrix_at}: \"matrix\" holds {} float32 values, but \"data\" has {rows} rows × embedding_dim {dim} = {want}",
                values.len()
            ),
        ));
    }
    inner.dim = match expected_dim {
        Some(e) if dim == 0 => e,
        _ => dim,
    };
    inner.matrix = values;
    inner.matrix.shrink_to_fit();
    Ok(inner)
}

/// Writes a store as nano-vectordb's `json.dump(storage, f, ensure_ascii=False)` does.
fn write_store(path: &Path, g: &Inner) -> StorageResult<()> {
    jsonio::write_file_atomic(path, |w| {
        w.write_all(b"{")?;
        for (i, top) in g.order.iter().enumerate() {
            if i > 0 {
                w.write_all(b", ")?;
            }
            match *top {
                Top::Dim => write!(w, "\"embedding_dim\": {}", g.dim)?,
                Top::Data => {
                    w.write_all(b"\"data\": [")?;
                    for (j, row) in g.rows.iter().enumerate() {
                        if j > 0 {
                            w.write_all(b", ")?;
                        }
                        jsonio::write_spaced(w, row.get())?;
                    }
                    w.write_all(b"]")?;
                }
                Top::Matrix => {
                    w.write_all(b"\"matrix\": \"")?;
                    write_matrix_b64(w, &g.matrix)?;
                    w.write_all(b"\"")?;
                }
                Top::Extra(k) => {
                    if let Some((key, raw)) = g.extra.get(k) {
                        jsonio::write_py_str(w, key)?;
                        w.write_all(b": ")?;
                        jsonio::write_spaced(w, raw.get())?;
                    }
                }
            }
        }
        w.write_all(b"}")
    })
}

/// base64 of the float32 LE bytes, encoded in chunks of a multiple of 3 bytes so that the
/// concatenation equals the encoding of the whole.
pub(crate) fn write_matrix_b64<W: Write>(w: &mut W, m: &[f32]) -> io::Result<()> {
    const FLOATS: usize = 3 * 16384;
    let mut bytes = Vec::with_capacity(FLOATS * 4);
    let mut enc = vec![0u8; FLOATS * 4 / 3 * 4 + 4];
    for chunk in m.chunks(FLOATS) {
        bytes.clear();
        for f in chunk {
            bytes.extend_from_slice(&f.to_le_bytes());
        }
        let n = STANDARD
            .encode_slice(&bytes, &mut enc)
            .map_err(|e| io::Error::other(e.to_string()))?;
        w.write_all(enc.get(..n).unwrap_or(&[]))?;
    }
    Ok(())
}

#[async_trait]
impl VectorStore for JsonVectorStore {
    fn namespace(&self) -> VectorNamespace {
        self.ns
    }

    fn dim(&self) -> usize {
        self.read().dim
    }

    /// As LightRAG's `NanoVectorDBStorage.upsert` + `NanoVectorDB.upsert`: one
    /// `__created_at__` (unix seconds) and one `__write_seq__` token for the batch; the matrix
    /// row is the L2-normalised vector; an existing id is replaced in place, a new one
    /// appended. A vector of the wrong length, non-finite or all zeros is refused (nothing is
    /// changed).
    async fn upsert(&self, items: Vec<VectorItem>) -> StorageResult<()> {
        if items.is_empty() {
            return Ok(());
        }
        let (dim, empty) = {
            let g = self.read();
            (g.dim, g.ids.is_empty())
        };
        let dim = match (dim, items.first()) {
            (0, Some(first)) if empty => first.vector.len(),
            _ => dim,
        };
        let now = unix_now();
        let seq = next_write_seq();
        let mut prepared = Vec::with_capacity(items.len());
        for item in &items {
            if item.vector.len() != dim || dim == 0 {
                return Err(StorageError::Invalid(format!(
                    "vector \"{}\" has {} values, the store's dimension is {dim}",
                    item.id,
                    item.vector.len()
                )));
            }
            let Some(norm) = normalised(&item.vector) else {
                return Err(StorageError::Invalid(format!(
                    "vector \"{}\" is all zeros or not finite",
                    item.id
                )));
            };
            prepared.push((item.id.as_str(), encode_row(self.ns, item, now, seq)?, norm));
        }
        let mut g = self.write();
        if g.dim != dim && !(g.dim == 0 && g.ids.is_empty()) {
            return Err(StorageError::Invalid(format!(
                "the store's dimension changed to {} during the upsert",
                g.dim
            )));
        }
        g.dim = dim;
        for (id, row, norm) in prepared {
            match g.find(id) {
                Some(i) => {
                    if let Some(slot) = g.rows.get_mut(i) {
                        *slot = row;
                    }
                    if let Some(dst) = g.matrix.get_mut(i * dim..(i + 1) * dim) {
                        dst.copy_from_slice(&norm);
                    }
                }
                None => g.push(id.into(), row, &norm)?,
            }
        }
        g.generation += 1;
        Ok(())
    }

    async fn delete(&self, ids: &[String]) -> StorageResult<()> {
        let mut g = self.write();
        let doomed: hashbrown::HashSet<usize> = ids.iter().filter_map(|id| g.find(id)).collect();
        if doomed.is_empty() {
            return Ok(());
        }
        let dim = g.dim;
        let n = g.ids.len();
        let mut w = 0;
        for r in 0..n {
            if doomed.contains(&r) {
                continue;
            }
            if w != r {
                g.ids.swap(w, r);
                g.rows.swap(w, r);
                g.matrix.copy_within(r * dim..(r + 1) * dim, w * dim);
            }
            w += 1;
        }
        g.ids.truncate(w);
        g.rows.truncate(w);
        g.matrix.truncate(w * dim);
        g.rebuild_index();
        g.generation += 1;
        Ok(())
    }

    async fn get(&self, ids: &[String]) -> StorageResult<Vec<Option<VectorItem>>> {
        let g = self.read();
        ids.iter()
            .map(|id| g.find(id).map(|i| g.item(&self.path, i)).transpose())
            .collect()
    }

    /// Cosine against the normalised query (the matrix rows are normalised): the `top_k`
    /// best rows with a score `>= threshold`, best first (ties in row order).
    async fn query(
        &self,
        query: &[f32],
        top_k: usize,
        threshold: f32,
    ) -> StorageResult<Vec<VectorMatch>> {
        let g = self.read();
        if g.ids.is_empty() || top_k == 0 {
            return Ok(Vec::new());
        }
        if query.len() != g.dim {
            return Err(StorageError::Invalid(format!(
                "query vector has {} values, the store's dimension is {}",
                query.len(),
                g.dim
            )));
        }
        let Some(q) = normalised(query) else {
            return Ok(Vec::new());
        };
        // Keep the best `top_k` in a min-heap.
        #[derive(PartialEq)]
        struct Hit(f32, usize);
        impl Eq for Hit {}
        impl PartialOrd for Hit {
            fn partial_cmp(&self, o: &Hit) -> Option<std::cmp::Ordering> {
                Some(self.cmp(o))
            }
        }
        impl Ord for Hit {
            // "Greater" = better: higher score, then earlier row.
            fn cmp(&self, o: &Hit) -> std::cmp::Ordering {
                self.0.total_cmp(&o.0).then_with(|| o.1.cmp(&self.1))
            }
        }
        let mut heap = std::collections::BinaryHeap::with_capacity(top_k + 1);
        for (i, row) in g.matrix.chunks_exact(g.dim).enumerate() {
            let s = dot(row, &q);
            // NaN scores never pass.
            if s.partial_cmp(&threshold)
                .is_none_or(|o| o == std::cmp::Ordering::Less)
            {
                continue;
            }
            heap.push(std::cmp::Reverse(Hit(s, i)));
            if heap.len() > top_k {
                heap.pop();
            }
        }
        let mut hits: Vec<Hit> = heap.into_iter().map(|r| r.0).collect();
        hits.sort_by(|a, b| b.cmp(a));
        hits.into_iter()
            .map(|Hit(score, i)| {
                Ok(VectorMatch {
                    id: g.ids.get(i).map(|s| s.to_string()).unwrap_or_default(),
                    score,
                    meta: g.meta(&self.path, i)?,
                })
            })
            .collect()
    }

    async fn count(&self) -> StorageResult<u64> {
        Ok(self.read().ids.len() as u64)
    }

    async fn page(&self, cursor: Option<Cursor>, limit: usize) -> StorageResult<Page<VectorItem>> {
        let start = cursor_start(cursor.as_ref())?;
        let g = self.read();
        let len = g.ids.len();
        let end = start.saturating_add(limit.max(1)).min(len);
        let items = (start..end)
            .map(|i| g.item(&self.path, i))
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
            write_store(&path, &g)?;
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
    use crate::storage::json::kv::tests::{counts, fixture_dir};
    use serde_json::Value;

    #[test]
    fn stored_zlib_streams_decode_with_a_real_inflater() {
        for len in [0usize, 1, 768, 65_535, 65_536, 200_001] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let z = zlib_stored(&data);
            let mut back = Vec::new();
            flate2::read::ZlibDecoder::new(z.as_slice())
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data, "length {len}");
        }
    }

    fn expected_rows(fixture: &str, ns: VectorNamespace) -> u64 {
        let c = counts(fixture);
        if let Some(n) = c["vdb"][ns.as_str()].as_u64() {
            return n;
        }
        c["files"][ns.file_name()]["rows"].as_u64().unwrap()
    }

    fn meta(v: Value) -> Record {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[tokio::test]
    async fn fixtures_load_with_counts_and_round_trip_byte_identically() {
        let tmp = tempfile::tempdir().unwrap();
        for fixture in ["lightrag-1.5.7-small", "lightrag-1.4.9.8-small"] {
            for ns in VectorNamespace::ALL {
                let src = fixture_dir(fixture).join(ns.file_name());
                let store = JsonVectorStore::load(src.clone(), ns, Some(64)).unwrap();
                assert_eq!(store.count().await.unwrap(), expected_rows(fixture, ns));
                assert_eq!(store.dim(), 64);
                let out = tmp.path().join(format!("{fixture}-{}", ns.file_name()));
                store.write_to(&out).unwrap();
                assert!(
                    std::fs::read(&src).unwrap() == std::fs::read(&out).unwrap(),
                    "{fixture} {ns:?} differs after a round trip"
                );
                // Matrix rows are unit length, and match the f16 `vector` field in direction.
                let page = store.page(None, 3).await.unwrap();
                for item in &page.items {
                    let n: f32 = item.vector.iter().map(|x| x * x).sum();
                    assert!((n - 1.0).abs() < 1e-4, "{n}");
                    assert!(!item.meta.contains_key("__id__") && !item.meta.contains_key("vector"));
                    assert!(item.meta.contains_key("__created_at__"));
                    let raw = store.raw_vector(&item.id).unwrap().unwrap();
                    let rn = normalised(&raw).unwrap();
                    let cos = dot(&rn, &item.vector);
                    assert!(cos > 0.999, "{cos}");
                }
                // The best match of a stored row is itself.
                let first = &page.items[0];
                let hits = store.query(&first.vector, 3, 0.2).await.unwrap();
                assert_eq!(hits[0].id, first.id);
                assert!((hits[0].score - 1.0).abs() < 1e-5);
                assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
            }
        }
    }

    #[tokio::test]
    async fn empty_files_and_extra_members() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("vdb_chunks.json");
        std::fs::write(&path, r#"{"embedding_dim": 0, "data": [], "matrix": ""}"#).unwrap();
        let s = JsonVectorStore::load(path.clone(), VectorNamespace::Chunks, Some(8)).unwrap();
        assert_eq!(s.dim(), 8);
        assert!(s.query(&[1.0; 8], 3, 0.0).await.unwrap().is_empty());
        // Unknown members (nano-vectordb's additional_data) survive, in their place.
        let text = r#"{"embedding_dim": 2, "additional_data": {"k": [1, 2.5e-05]}, "data": [], "matrix": "", "zz": "é\n"}"#;
        std::fs::write(&path, text).unwrap();
        let s = JsonVectorStore::load(path.clone(), VectorNamespace::Chunks, Some(2)).unwrap();
        let out = tmp.path().join("out.json");
        s.write_to(&out).unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), text);
    }

    #[tokio::test]
    async fn upsert_get_delete_query_and_reload() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("vdb_entities.json");
        let store = JsonVectorStore::load(path.clone(), VectorNamespace::Entities, None).unwrap();
        assert_eq!(store.dim(), 0);
        assert!(!store.flush().await.unwrap());
        assert!(!path.exists());

        let item = |id: &str, v: Vec<f32>| VectorItem {
            id: id.into(),
            meta: meta(serde_json::json!({
                "content": format!("{id} text"), "entity_type": "dropped",
                "entity_name": id, "file_path": "f.txt", "weight": 1.5,
            })),
            vector: v,
        };
        store
            .upsert(vec![
                item("a", vec![3.0, 4.0, 0.0]),
                item("b", vec![0.0, 1.0, 0.0]),
                item("c", vec![0.0, 0.0, -2.0]),
            ])
            .await
            .unwrap();
        assert_eq!(store.dim(), 3);
        let got = store.get(&["a".into(), "zz".into()]).await.unwrap();
        let a = got[0].as_ref().unwrap();
        assert_eq!(a.vector, vec![0.6, 0.8, 0.0]);
        let keys: Vec<&str> = a.meta.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "__created_at__",
                "__write_seq__",
                "content",
                "entity_name",
                "file_path"
            ]
        );
        assert!(got[1].is_none());
        assert_eq!(store.raw_vector("a").unwrap().unwrap(), vec![3.0, 4.0, 0.0]);
        assert!(store.raw_vector("zz").unwrap().is_none());

        // Wrong length → Invalid, nothing changed.
        let e = store
            .upsert(vec![item("d", vec![1.0, 2.0])])
            .await
            .unwrap_err();
        assert!(matches!(e, StorageError::Invalid(_)), "{e}");
        assert_eq!(
            e.to_string(),
            "vector \"d\" has 2 values, the store's dimension is 3"
        );
        assert_eq!(store.count().await.unwrap(), 3);

        // Replace in place, append new.
        store
            .upsert(vec![
                item("b", vec![1.0, 0.0, 0.0]),
                item("d", vec![1.0, 1.0, 0.0]),
            ])
            .await
            .unwrap();
        let ids: Vec<String> = store
            .page(None, 10)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|i| i.id)
            .collect();
        assert_eq!(ids, ["a", "b", "c", "d"]);
        let sb = store.get(&["b".into()]).await.unwrap()[0].clone().unwrap();
        let sd = store.get(&["d".into()]).await.unwrap()[0].clone().unwrap();
        let seq_a = a.meta["__write_seq__"].as_u64().unwrap();
        assert!(sb.meta["__write_seq__"].as_u64().unwrap() > seq_a);
        assert_eq!(sb.meta["__write_seq__"], sd.meta["__write_seq__"]);

        let hits = store.query(&[1.0, 0.1, 0.0], 2, 0.2).await.unwrap();
        let hit_ids: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(hit_ids, ["b", "d"]);
        let hits = store.query(&[0.0, 0.0, 1.0], 5, 0.2).await.unwrap();
        assert!(hits.is_empty(), "c is opposite: {hits:?}");
        let hits = store.query(&[0.0, 0.0, 1.0], 5, -1.0).await.unwrap();
        assert_eq!(hits.len(), 4);
        assert_eq!(hits[3].id, "c");
        assert!(store.query(&[1.0], 5, 0.0).await.is_err());

        store.delete(&["a".into(), "nope".into()]).await.unwrap();
        assert_eq!(store.count().await.unwrap(), 3);
        assert!(store.get(&["a".into()]).await.unwrap()[0].is_none());
        let d = store.get(&["d".into()]).await.unwrap()[0].clone().unwrap();
        assert_eq!(d.vector, sd.vector);

        assert!(store.flush().await.unwrap());
        assert!(!store.flush().await.unwrap());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with(
                "{\"embedding_dim\": 3, \"data\": [{\"__id__\": \"b\", \"__created_at__\": "
            ),
            "{text}"
        );
        let again =
            JsonVectorStore::load(path.clone(), VectorNamespace::Entities, Some(3)).unwrap();
        let before = store.page(None, 10).await.unwrap().items;
        let after = again.page(None, 10).await.unwrap().items;
        assert_eq!(before.len(), after.len());
        for (x, y) in before.iter().zip(&after) {
            assert_eq!(x.id, y.id);
            assert_eq!(x.meta, y.meta);
            let xb: Vec<u32> = x.vector.iter().map(|f| f.to_bits()).collect();
            let yb: Vec<u32> = y.vector.iter().map(|f| f.to_bits()).collect();
            assert_eq!(xb, yb);
        }
        // Written again untouched: identical bytes.
        let out = tmp.path().join("again.json");
        again.write_to(&out).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&path).unwrap());
    }

    #[test]
    fn matrix_decoding_handles_every_chunk_split() {
        let floats: Vec<f32> = (0..37).map(|i| i as f32 * 0.37 - 3.0).collect();
        let mut bytes = Vec::new();
        for f in &floats {
            bytes.extend_from_slice(&f.to_le_bytes());
        }
        let b64 = STANDARD.encode(&bytes);
        for split in 0..b64.len() {
            for split2 in split..(split + 7).min(b64.len()) {
                let mut d = MatrixDecoder::new(0);
                d.feed(0, &b64.as_bytes()[..split]).unwrap();
                d.feed(split as u64, &b64.as_bytes()[split..split2])
                    .unwrap();
                d.feed(split2 as u64, &b64.as_bytes()[split2..]).unwrap();
                assert_eq!(d.finish().unwrap(), floats);
            }
        }
        let mut out = Vec::new();
        write_matrix_b64(&mut out, &floats).unwrap();
        assert_eq!(out, b64.as_bytes());
    }

    fn load_err(text: &str, expected: Option<usize>) -> String {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("vdb.json");
        std::fs::write(&path, text).unwrap();
        match JsonVectorStore::load(path, VectorNamespace::Chunks, expected) {
            Ok(_) => panic!("loaded {text}"),
            Err(e) => e
                .to_string()
                .rsplit_once("vdb.json: ")
                .unwrap()
                .1
                .to_string(),
        }
    }

    #[test]
    fn damaged_files_never_panic() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("vdb.json");
        let src =
            std::fs::read(fixture_dir("lightrag-1.5.7-small").join("vdb_chunks.json")).unwrap();
        for m in crate::storage::json::kv::tests::mutations(&src, 400) {
            std::fs::write(&path, &m).unwrap();
            if let Err(e) = JsonVectorStore::load(path.clone(), VectorNamespace::Chunks, Some(64)) {
                assert!(matches!(e, StorageError::Corrupt { .. }), "{e}");
            }
        }
    }

    #[test]
    fn corrupt_inputs() {
        // One row of dim 2: [1.0, 0.0] → "AACAPwAAAAA=".
        let ok = r#"{"embedding_dim": 2, "data": [{"__id__": "x", "vector": "v"}], "matrix": "AACAPwAAAAA="}"#;
        assert!(
            JsonVectorStore::load(
                {
                    let tmp = std::env::temp_dir()
                        .join(format!("hrag-vdb-ok-{}.json", std::process::id()));
                    std::fs::write(&tmp, ok).unwrap();
                    tmp
                },
                VectorNamespace::Chunks,
                Some(2)
            )
            .is_ok()
        );
        let _ = std::fs::remove_file(
            std::env::temp_dir().join(format!("hrag-vdb-ok-{}.json", std::process::id())),
        );

        assert_eq!(
            load_err(ok, Some(3)),
            "byte 18: wrong dimension: embedding_dim is 2, expected 3"
        );
        assert_eq!(
            load_err(
                r#"{"embedding_dim": 0, "data": [{"__id__": "x"}], "matrix": ""}"#,
                Some(2)
            ),
            "embedding_dim is 0 but \"data\" has 1 rows"
        );
        assert_eq!(
            load_err(&ok.replace("AACAPwAA", "AACA*wAA"), None),
            "byte 78: invalid base64 character '*' in member \"matrix\""
        );
        assert_eq!(
            load_err(&ok.replace("AACAPwAAAAA=", "AACAPwAAAAAAAIA/"), None),
            "byte 73: \"matrix\" holds 3 float32 values, but \"data\" has 1 rows × embedding_dim 2 = 2"
        );
        assert_eq!(
            load_err(&ok.replace("AACAPwAAAAA=", "AACAPwAA"), None),
            "byte 73: matrix is 6 bytes, not a whole number of float32 values"
        );
        assert_eq!(
            load_err(&ok.replace("\"__id__\": \"x\", ", ""), None),
            "row 0 of \"data\" at byte 30: no \"__id__\""
        );
        assert_eq!(
            load_err(
                &ok.replace(
                    "{\"__id__\": \"x\", \"vector\": \"v\"}",
                    "{\"__id__\": \"x\"}, {\"__id__\": \"x\"}"
                ),
                None
            ),
            "row 1 of \"data\" at byte 47: duplicate __id__ \"x\""
        );
        assert_eq!(
            load_err(&ok.replace("\"__id__\": \"x\"", "\"__id__\": 5"), None),
            "row 0 of \"data\" at byte 30: \"__id__\" is not a string (5)"
        );
        assert_eq!(
            load_err(&ok[..50], None),
            "byte 50: unexpected end of file inside member \"data\" (element 0)"
        );
        assert_eq!(
            load_err(&ok[..60], None),
            "byte 60: unexpected end of file inside member \"data\" (element 1)"
        );
        assert_eq!(
            load_err(&ok[..ok.len() - 6], None),
            format!(
                "byte {}: unexpected end of file inside member \"matrix\"",
                ok.len() - 6
            )
        );
        assert_eq!(
            load_err(&ok[..ok.len() - 1], None),
            format!(
                "byte {}: unexpected end of file after member \"matrix\"",
                ok.len() - 1
            )
        );
        assert_eq!(
            load_err(r#"{"embedding_dim": 2, "data": []}"#, None),
            "no \"matrix\" member"
        );
        assert_eq!(
            load_err(r#"{"embedding_dim": 2.5, "data": [], "matrix": ""}"#, None),
            "byte 18: \"embedding_dim\" is not a non-negative integer"
        );
        assert_eq!(
            load_err(r#"{"embedding_dim": 2, "data": {}, "matrix": ""}"#, None),
            "byte 29: member \"data\" is not an array (found '{')"
        );
    }
}
