//! PostgreSQL's binary `COPY` stream: the payload written for a batch of rows, and a reader
//! that cuts the chunks of a `COPY … TO STDOUT (FORMAT binary)` into tuples of cells.

use super::cell::{Cell, ColType, DecodeError};
use super::table::Row;

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// The whole `COPY FROM STDIN (FORMAT binary)` payload of `rows`, each prefixed with the
/// workspace column; `size_hint` is about the rows' source size (saves regrowing a
/// multi-megabyte buffer).
pub fn encode_rows(workspace: &str, rows: &[Row], size_hint: usize) -> Vec<u8> {
    let est = size_hint + rows.len() * (64 + workspace.len());
    let mut out = Vec::with_capacity(est);
    out.extend_from_slice(SIGNATURE);
    out.extend_from_slice(&0i32.to_be_bytes()); // flags
    out.extend_from_slice(&0i32.to_be_bytes()); // header extension length
    let ws = Cell::Text(workspace.to_owned());
    for row in rows {
        let n = i16::try_from(row.cells.len() + 1).unwrap_or(i16::MAX);
        out.extend_from_slice(&n.to_be_bytes());
        ws.encode(&mut out);
        for c in &row.cells {
            c.encode(&mut out);
        }
    }
    out.extend_from_slice(&(-1i16).to_be_bytes());
    out
}

/// Decodes a binary COPY stream fed in arbitrary chunks.
pub struct TupleReader {
    types: Vec<ColType>,
    buf: Vec<u8>,
    pos: usize,
    header_done: bool,
    finished: bool,
}

impl TupleReader {
    pub fn new(types: Vec<ColType>) -> TupleReader {
        TupleReader {
            types,
            buf: Vec::new(),
            pos: 0,
            header_done: false,
            finished: false,
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        if self.pos > 0 && self.pos >= self.buf.len() / 2 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    pub fn finished(&self) -> bool {
        self.finished
    }

    /// The next complete tuple, `None` when more input is needed (or the trailer was read).
    pub fn next_tuple(&mut self) -> Result<Option<Vec<Cell>>, DecodeError> {
        if self.finished {
            return Ok(None);
        }
        let b = &self.buf[self.pos..];
        let mut at = 0usize;
        if !self.header_done {
            if b.len() < 19 {
                return Ok(None);
            }
            if &b[..11] != SIGNATURE {
                return Err(DecodeError("not a binary COPY stream".into()));
            }
            let ext = u32::from_be_bytes([b[15], b[16], b[17], b[18]]) as usize;
            if b.len() < 19 + ext {
                return Ok(None);
            }
            at = 19 + ext;
        }
        let Some(nf) = b.get(at..at + 2) else {
            self.commit(at);
            return Ok(None);
        };
        let nf = i16::from_be_bytes([nf[0], nf[1]]);
        if nf == -1 {
            self.finished = true;
            self.commit(at + 2);
            return Ok(None);
        }
        if nf as usize != self.types.len() {
            return Err(DecodeError(format!(
                "COPY tuple has {nf} fields, expected {}",
                self.types.len()
            )));
        }
        let mut p = at + 2;
        let mut fields: Vec<Option<(usize, usize)>> = Vec::with_capacity(self.types.len());
        for _ in 0..self.types.len() {
            let Some(l) = b.get(p..p + 4) else {
                self.commit(at);
                return Ok(None);
            };
            let len = i32::from_be_bytes([l[0], l[1], l[2], l[3]]);
            p += 4;
            if len < 0 {
                fields.push(None);
                continue;
            }
            let len = len as usize;
            if b.len() < p + len {
                self.commit(at);
                return Ok(None);
            }
            fields.push(Some((p, len)));
            p += len;
        }
        let cells = fields
            .iter()
            .zip(&self.types)
            .map(|(f, ty)| Cell::decode(*ty, f.map(|(s, l)| &b[s..s + l])))
            .collect::<Result<Vec<_>, _>>()?;
        self.commit(p);
        Ok(Some(cells))
    }

    /// Marks `n` bytes past `pos` as consumed (and the header as read).
    fn commit(&mut self, n: usize) {
        if n > 0 {
            self.header_done = true;
        }
        self.pos += n;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rows_written_read_back_in_any_chunking() {
        let rows = vec![
            Row {
                key: "a".into(),
                cells: vec![Cell::Text("a".into()), Cell::Int(3), Cell::Null],
            },
            Row {
                key: "b".into(),
                cells: vec![
                    Cell::Text("b".into()),
                    Cell::Int(-1),
                    Cell::Vector(vec![1.5, 2.5]),
                ],
            },
        ];
        let bytes = encode_rows("ws", &rows, 0);
        for chunk in [1, 3, 7, bytes.len()] {
            let mut r = TupleReader::new(vec![
                ColType::Text,
                ColType::Text,
                ColType::Int,
                ColType::Vector,
            ]);
            let mut got = Vec::new();
            for c in bytes.chunks(chunk) {
                r.feed(c);
                while let Some(t) = r.next_tuple().unwrap() {
                    got.push(t);
                }
            }
            assert!(r.finished());
            assert_eq!(got.len(), 2);
            assert_eq!(got[0][0], Cell::Text("ws".into()));
            assert_eq!(got[1][3], Cell::Vector(vec![1.5, 2.5]));
        }
    }
}
