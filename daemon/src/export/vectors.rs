//! One vector namespace as a nano-vectordb file:
//! `{"embedding_dim": D, "data": [rows], "matrix": "base64(f32 LE, rows L2-normalised)"}`.
//!
//! `data` must be complete before `matrix` starts, and the matrix is as large as all the
//! vectors together; so the normalised rows are spilled to a scratch file while `data` is
//! written, then base64-encoded from it in fixed chunks. Memory stays one page of rows plus
//! one chunk, whatever the table's size.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use hrag_proto::StoreReport;

use super::PAGE;
use super::error::ExportError;
use super::out::Out;
use super::progress::Progress;
use crate::storage::VectorStore;
use crate::storage::json::jsonio;
use crate::storage::json::kv::unix_now;
use crate::storage::json::vdb::{encode_row, next_write_seq, normalised, write_matrix_b64};

/// Floats encoded per chunk of the matrix: a multiple of 3, so that 4-byte floats make whole
/// base64 quanta and the chunks' encodings concatenate to the encoding of the whole.
const MATRIX_CHUNK_FLOATS: usize = 3 * 16384;

/// Writes `store` to `path`, spilling its matrix to `spill` (removed afterwards).
pub async fn write(
    store: &dyn VectorStore,
    path: &Path,
    spill: &Path,
    name: &str,
    progress: &Progress,
) -> Result<StoreReport, ExportError> {
    let dim = store.dim();
    let total = store
        .count()
        .await
        .map_err(|e| ExportError::read(name, e))?;
    let ns = store.namespace();
    let mut out = Out::create(path)?;
    let mut rows = Out::create(spill)?;
    write!(out, "{{\"embedding_dim\": {dim}, \"data\": [").map_err(|e| out.err(e))?;
    // LightRAG stamps every row of one upsert batch with the same time and write-seq token;
    // an export is one batch per page.
    let now = unix_now();
    let mut done = 0u64;
    let mut cursor = None;
    let mut bytes = Vec::with_capacity(dim * 4);
    loop {
        let page = store
            .page(cursor, PAGE)
            .await
            .map_err(|e| ExportError::read(name, e))?;
        let seq = next_write_seq();
        for item in page.items {
            let bad = |reason: String| ExportError::Record {
                store: name.to_owned(),
                id: item.id.clone(),
                reason,
            };
            if item.vector.len() != dim {
                return Err(bad(format!(
                    "its vector has {} values, the store's dimension is {dim}",
                    item.vector.len()
                )));
            }
            let row = encode_row(ns, &item, now, seq).map_err(|e| bad(e.to_string()))?;
            if done > 0 {
                out.write_all(b", ").map_err(|e| out.err(e))?;
            }
            jsonio::write_spaced(&mut out, row.get()).map_err(|e| out.err(e))?;
            // nano-vectordb divides by the norm; a zero vector has none and stays zero here
            // rather than becoming NaN.
            let unit = normalised(&item.vector).unwrap_or_else(|| vec![0.0; dim]);
            bytes.clear();
            for x in unit {
                bytes.extend_from_slice(&x.to_le_bytes());
            }
            rows.write_all(&bytes).map_err(|e| rows.err(e))?;
            done += 1;
        }
        progress.report(name, done, total, out.bytes());
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    rows.flush().map_err(|e| rows.err(e))?;
    drop(rows);
    out.write_all(b"], \"matrix\": \"")
        .map_err(|e| out.err(e))?;
    copy_matrix(spill, &mut out).map_err(|e| match e {
        Spill::Read(e) => ExportError::write(spill, e),
        Spill::Write(e) => out.err(e),
    })?;
    out.write_all(b"\"}").map_err(|e| out.err(e))?;
    std::fs::remove_file(spill).map_err(|e| ExportError::write(spill, e))?;
    let bytes = out.finish()?;
    Ok(StoreReport {
        store: name.to_owned(),
        records: done,
        bytes,
        verified: None,
    })
}

enum Spill {
    Read(io::Error),
    Write(io::Error),
}

/// base64 of the spilled rows, chunk by chunk.
fn copy_matrix(spill: &Path, out: &mut Out) -> Result<(), Spill> {
    let mut file = File::open(spill).map_err(Spill::Read)?;
    let mut buf = vec![0u8; MATRIX_CHUNK_FLOATS * 4];
    let mut floats = Vec::with_capacity(MATRIX_CHUNK_FLOATS);
    loop {
        let n = fill(&mut file, &mut buf).map_err(Spill::Read)?;
        if n == 0 {
            return Ok(());
        }
        floats.clear();
        floats.extend(
            buf[..n]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
        write_matrix_b64(out, &floats).map_err(Spill::Write)?;
        if n < buf.len() {
            return Ok(());
        }
    }
}

/// Reads until `buf` is full or the file ends; the count read.
fn fill(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
