//! A nano-vectordb file (`vdb_*.json`) as a stream of `(ordinal, id, row, vector)`.
//!
//! The file is `{"embedding_dim": D, "data": [rows], "matrix": base64(float32 LE)}` and row `i`
//! of `data` owns floats `i·D..(i+1)·D` of `matrix`. Two [`ObjectReader`]s walk the same file:
//! one through `data`, the other through the `matrix` string, decoded in chunks by the JSON
//! backend's [`MatrixDecoder`], so the members may come in either order.
//!
//! Memory: one row, one reader buffer per reader and the floats of one decoded chunk — never
//! the matrix. Ordering: file order of `data`; vectors are the file's float32 values bit for
//! bit. Errors: [`StorageError::Corrupt`] naming the file and byte offset; [`VdbSource::open`]
//! already checks that `matrix` holds `rows × embedding_dim` values (counting base64 symbols,
//! not decoding them); bad base64 surfaces at the row that needs it. Duplicate ids are not
//! detected (that would need memory per row). The stream ends after the first error.

use std::fs::File;
use std::path::{Path, PathBuf};

use serde_json::value::RawValue;

use crate::storage::json::jsonio::ObjectReader;
use crate::storage::json::vdb::{MatrixDecoder, row_id};
use crate::storage::{StorageError, StorageResult};

/// One row of a vector store.
#[derive(Debug)]
pub struct VdbRow {
    /// Position in `data`, from 0.
    pub ordinal: u64,
    pub id: Box<str>,
    /// The whole `data` row, minified (`__id__`, `__created_at__`, meta fields, `vector`).
    pub row: Box<RawValue>,
    /// The `matrix` row, exactly as stored.
    pub vector: Vec<f32>,
}

/// What a first look learnt about a nano-vectordb file.
#[derive(Debug, Clone)]
pub struct VdbSource {
    path: PathBuf,
    dim: usize,
    /// `None` when only the header was read ([`VdbSource::open_header`]).
    rows: Option<u64>,
    /// Whether the file exists and holds a store.
    present: bool,
}

impl VdbSource {
    /// Surveys `path` in one streaming pass: `embedding_dim`, the row count, and whether
    /// `matrix` has exactly `rows × embedding_dim` values. A missing file is an empty store.
    pub fn open(path: &Path) -> StorageResult<VdbSource> {
        let mut src = VdbSource {
            path: path.to_path_buf(),
            dim: 0,
            rows: Some(0),
            present: false,
        };
        let Some(mut r) = ObjectReader::open(path)? else {
            return Ok(src);
        };
        src.present = true;
        let mut rows = 0u64;
        let (mut dim, mut data, mut matrix) = (None, false, None);
        while let Some(key) = r.next_key()? {
            let twice = match &*key {
                "embedding_dim" => dim.is_some(),
                "data" => data,
                "matrix" => matrix.is_some(),
                _ => false,
            };
            if twice {
                let at = r.member_offset();
                return Err(r.err_at(at, format!("member \"{key}\" appears twice")));
            }
            match &*key {
                "embedding_dim" => {
                    let n = r.number()?;
                    let d = n.as_u64().and_then(|d| usize::try_from(d).ok());
                    let Some(d) = d else {
                        let at = r.value_offset();
                        return Err(r.err_at(at, "\"embedding_dim\" is not a non-negative integer"));
                    };
                    dim = Some(d);
                }
                "data" => {
                    r.begin_array()?;
                    while r.next_element()?.is_some() {
                        rows += 1;
                    }
                    data = true;
                }
                "matrix" => {
                    let (mut symbols, mut pad) = (0u64, 0u64);
                    r.begin_string()?;
                    while r.string_step(&mut |_, s| {
                        pad = if s.bytes().all(|b| b == b'=') { pad } else { 0 };
                        pad += s.bytes().rev().take_while(|&b| b == b'=').count() as u64;
                        symbols += s.len() as u64;
                        Ok(())
                    })? {}
                    matrix = Some((symbols - pad, r.value_offset()));
                }
                _ => {}
            }
        }
        let Some(dim) = dim else {
            return Err(StorageError::corrupt(path, "no \"embedding_dim\" member"));
        };
        if !data {
            return Err(StorageError::corrupt(path, "no \"data\" member"));
        }
        let Some((symbols, matrix_at)) = matrix else {
            return Err(StorageError::corrupt(path, "no \"matrix\" member"));
        };
        src.dim = dim;
        src.rows = Some(rows);
        if dim == 0 && rows > 0 {
            return Err(StorageError::corrupt(
                path,
                format!("embedding_dim is 0 but \"data\" has {rows} rows"),
            ));
        }
        let bytes = symbols * 3 / 4;
        let want = rows.saturating_mul(dim as u64);
        if bytes % 4 != 0 || bytes / 4 != want {
            return Err(StorageError::corrupt(
                path,
                format!(
                    "byte {matrix_at}: \"matrix\" holds {bytes} bytes ({} float32 values), but \"data\" has {rows} rows × embedding_dim {dim} = {want}",
                    bytes / 4
                ),
            ));
        }
        Ok(src)
    }

    /// Reads only the header when `embedding_dim` comes first, as nano-vectordb writes it:
    /// the row count stays unknown, and a `matrix` that does not hold `rows × embedding_dim`
    /// values is then reported by the row stream when it reaches the mismatch. Any other
    /// member order falls back to [`VdbSource::open`]. Saves a pass over the whole file.
    pub fn open_header(path: &Path) -> StorageResult<VdbSource> {
        let Some(mut r) = ObjectReader::open(path)? else {
            return VdbSource::open(path);
        };
        match r.next_key()?.as_deref() {
            Some("embedding_dim") => {}
            _ => return VdbSource::open(path),
        }
        let n = r.number()?;
        let Some(dim) = n.as_u64().and_then(|d| usize::try_from(d).ok()) else {
            let at = r.value_offset();
            return Err(r.err_at(at, "\"embedding_dim\" is not a non-negative integer"));
        };
        Ok(VdbSource {
            path: path.to_path_buf(),
            dim,
            rows: None,
            present: true,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's `embedding_dim` (0 for a missing file).
    pub fn embedding_dim(&self) -> usize {
        self.dim
    }

    /// The number of rows in `data`, when the whole file was surveyed.
    pub fn row_count(&self) -> Option<u64> {
        self.rows
    }

    /// The rows from the first.
    pub fn rows(&self) -> StorageResult<VdbRows> {
        self.rows_from(0)
    }

    /// The rows from ordinal `first` (for resume); earlier rows are read and dropped.
    pub fn rows_from(&self, first: u64) -> StorageResult<VdbRows> {
        let mut it = VdbRows {
            path: self.path.clone(),
            dim: self.dim,
            data: None,
            matrix: None,
            decoder: None,
            values: Vec::new(),
            head: 0,
            next_ordinal: 0,
            data_start: None,
            matrix_start: None,
        };
        if !self.present {
            return Ok(it);
        }
        let data = reader_at(&self.path, "data")?;
        it.data_start = Some(data.offset());
        it.data = Some(data);
        let matrix = reader_at(&self.path, "matrix")?;
        it.matrix_start = Some(matrix.offset());
        it.matrix = Some(matrix);
        it.decoder = Some(MatrixDecoder::new(0));
        for _ in 0..first {
            match it.next() {
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => {
                    return Err(StorageError::corrupt(
                        &self.path,
                        format!(
                            "resume at row {first}, but \"data\" has only {} rows",
                            it.next_ordinal
                        ),
                    ));
                }
            }
        }
        Ok(it)
    }
}

/// A reader of `path` inside member `member` (`data`: the array entered; `matrix`: the string
/// entered). Other members are skipped piecewise, so skipping stays bounded too.
fn reader_at(path: &Path, member: &str) -> StorageResult<ObjectReader<File>> {
    let Some(mut r) = ObjectReader::open(path)? else {
        return Err(StorageError::corrupt(
            path,
            "the file vanished or emptied while migrating",
        ));
    };
    while let Some(key) = r.next_key()? {
        match (&*key, member) {
            ("data", "data") => {
                r.begin_array()?;
                return Ok(r);
            }
            ("matrix", "matrix") => {
                r.begin_string()?;
                return Ok(r);
            }
            // `next_key` would take the array as one value: walk it instead.
            ("data", _) => {
                r.begin_array()?;
                while r.next_element()?.is_some() {}
            }
            // `next_key` skips a started string in chunks.
            ("matrix", _) => r.begin_string()?,
            _ => {}
        }
    }
    Err(StorageError::corrupt(
        path,
        format!("no \"{member}\" member"),
    ))
}

/// The rows of a [`VdbSource`]; fused after the first error.
pub struct VdbRows {
    path: PathBuf,
    dim: usize,
    data: Option<ObjectReader<File>>,
    /// `None` once the matrix string is closed (or the stream is over).
    matrix: Option<ObjectReader<File>>,
    decoder: Option<MatrixDecoder>,
    /// Decoded floats not yet handed out, from `head`.
    values: Vec<f32>,
    head: usize,
    next_ordinal: u64,
    /// Where the `data` array and the `matrix` string start in the file.
    data_start: Option<u64>,
    matrix_start: Option<u64>,
}

impl VdbRows {
    fn stop(&mut self) {
        self.data = None;
        self.matrix = None;
        self.decoder = None;
        self.values = Vec::new();
    }

    /// Decoded floats held (capacity), for the memory test.
    #[cfg(test)]
    pub(crate) fn held_values(&self) -> usize {
        self.values.capacity()
    }

    fn pending(&self) -> usize {
        self.values.len() - self.head
    }

    /// About how many bytes of the file the rows handed out so far stand for: the part of
    /// `data` read plus the part of `matrix` decoded (which may run a chunk ahead), whichever
    /// member comes first; never more than the two members' sizes.
    pub fn bytes_read(&self) -> u64 {
        let passed = |r: &Option<ObjectReader<File>>, start: Option<u64>| match (r, start) {
            (Some(r), Some(start)) => r.offset().saturating_sub(start),
            _ => 0,
        };
        passed(&self.data, self.data_start) + passed(&self.matrix, self.matrix_start)
    }

    fn matrix_err(&self, at: u64, msg: &str) -> StorageError {
        StorageError::corrupt(&self.path, format!("byte {at}: {msg} in member \"matrix\""))
    }

    /// Decodes more of the matrix; `Ok(false)` once it is exhausted.
    fn decode_more(&mut self) -> StorageResult<bool> {
        let Some(m) = self.matrix.as_mut() else {
            return Ok(false);
        };
        let Some(dec) = self.decoder.as_mut() else {
            return Ok(false);
        };
        let path = &self.path;
        let open = m.string_step(&mut |off, s| {
            dec.feed(off, s.as_bytes()).map_err(|(at, msg)| {
                StorageError::corrupt(path, format!("byte {at}: {msg} in member \"matrix\""))
            })
        })?;
        // Keep only what is not handed out yet, so the buffer holds at most one chunk.
        self.values.drain(..self.head);
        self.head = 0;
        self.values.append(dec.values());
        if !open {
            let at = m.value_offset();
            self.matrix = None;
            if let Some(dec) = self.decoder.take() {
                let rest = dec.finish().map_err(|(off, msg)| {
                    self.matrix_err(if off == u64::MAX { at } else { off }, &msg)
                })?;
                self.values.extend_from_slice(&rest);
            }
        }
        Ok(true)
    }

    fn read_next(&mut self) -> StorageResult<Option<VdbRow>> {
        let Some(d) = self.data.as_mut() else {
            return Ok(None);
        };
        let Some(row) = d.next_element()? else {
            return self.finish().map(|()| None);
        };
        let at = d.value_offset();
        let ordinal = self.next_ordinal;
        let label = format!("row {ordinal} of \"data\" at byte {at}");
        if !row.get().starts_with('{') {
            return Err(StorageError::corrupt(
                &self.path,
                format!("{label}: not a JSON object"),
            ));
        }
        let id = match row_id(&row) {
            Ok(Some(id)) => id,
            Ok(None) => {
                return Err(StorageError::corrupt(
                    &self.path,
                    format!("{label}: no \"__id__\""),
                ));
            }
            Err(msg) => return Err(StorageError::corrupt(&self.path, format!("{label}: {msg}"))),
        };
        while self.pending() < self.dim {
            if !self.decode_more()? {
                return Err(StorageError::corrupt(
                    &self.path,
                    format!("{label}: \"matrix\" ends before this row's vector"),
                ));
            }
        }
        let vector = self
            .values
            .get(self.head..self.head + self.dim)
            .map(<[f32]>::to_vec)
            .unwrap_or_default();
        self.head += self.dim;
        self.next_ordinal += 1;
        Ok(Some(VdbRow {
            ordinal,
            id,
            row,
            vector,
        }))
    }

    /// After the last row: the matrix must hold nothing more.
    fn finish(&mut self) -> StorageResult<()> {
        while self.decode_more()? {}
        let extra = self.pending();
        self.stop();
        if extra > 0 {
            return Err(StorageError::corrupt(
                &self.path,
                format!(
                    "\"matrix\" holds {extra} float32 values more than the {} rows of \"data\" need",
                    self.next_ordinal
                ),
            ));
        }
        Ok(())
    }
}

impl Iterator for VdbRows {
    type Item = StorageResult<VdbRow>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.read_next() {
            Ok(Some(r)) => Some(Ok(r)),
            Ok(None) => {
                self.stop();
                None
            }
            Err(e) => {
                self.stop();
                Some(Err(e))
            }
        }
    }
}
