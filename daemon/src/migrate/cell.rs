//! One column value of a migrated row, in the three forms the migration needs: PostgreSQL's
//! binary COPY encoding (to write), its decoding (to read back for verification), and an
//! order-independent content hash that both sides compute the same way.
//!
//! Invariant: `decode(encode(c)) ` hashes like `c`. JSON is hashed in a canonical form (keys
//! sorted, numbers as f64) because `jsonb` reorders keys and normalises numbers.

use std::fmt::Write as _;

use serde_json::Value;

/// `varchar`'s type oid, the element type of LightRAG's `varchar(255)[]` columns.
const VARCHAR_OID: u32 = 1043;
/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
const PG_EPOCH_US: i64 = 946_684_800_000_000;

/// A column's PostgreSQL type, as far as the migration distinguishes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColType {
    Text,
    Int,
    Json,
    /// `timestamp` / `timestamptz`: microseconds since the Unix epoch (UTC).
    Ts,
    /// `varchar[]`.
    TextArray,
    /// pgvector's `vector`.
    Vector,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Text(String),
    Int(i32),
    Json(Value),
    Ts(i64),
    TextArray(Vec<String>),
    Vector(Vec<f32>),
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

impl Cell {
    /// Appends the field (length word and bytes) in binary COPY format.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Cell::Null => out.extend_from_slice(&(-1i32).to_be_bytes()),
            Cell::Text(s) => put_bytes(out, s.as_bytes()),
            Cell::Int(i) => {
                out.extend_from_slice(&4i32.to_be_bytes());
                out.extend_from_slice(&i.to_be_bytes());
            }
            Cell::Json(v) => {
                let text = v.to_string();
                put_len(out, text.len() + 1);
                out.push(1); // jsonb's binary format version
                out.extend_from_slice(text.as_bytes());
            }
            Cell::Ts(us) => {
                out.extend_from_slice(&8i32.to_be_bytes());
                out.extend_from_slice(&(us - PG_EPOCH_US).to_be_bytes());
            }
            Cell::TextArray(items) => {
                let body: usize = if items.is_empty() {
                    12
                } else {
                    20 + items.iter().map(|s| 4 + s.len()).sum::<usize>()
                };
                put_len(out, body);
                let ndim: i32 = if items.is_empty() { 0 } else { 1 };
                out.extend_from_slice(&ndim.to_be_bytes());
                out.extend_from_slice(&0i32.to_be_bytes()); // no nulls
                out.extend_from_slice(&VARCHAR_OID.to_be_bytes());
                if !items.is_empty() {
                    out.extend_from_slice(&len_i32(items.len()).to_be_bytes());
                    out.extend_from_slice(&1i32.to_be_bytes()); // lower bound
                    for s in items {
                        put_bytes(out, s.as_bytes());
                    }
                }
            }
            Cell::Vector(v) => {
                put_len(out, 4 + 4 * v.len());
                out.extend_from_slice(&(v.len() as u16).to_be_bytes());
                out.extend_from_slice(&0u16.to_be_bytes());
                for x in v {
                    out.extend_from_slice(&x.to_bits().to_be_bytes());
                }
            }
        }
    }

    /// Reads one field of type `ty` (its bytes without the length word; `None` for NULL).
    pub fn decode(ty: ColType, bytes: Option<&[u8]>) -> Result<Cell, DecodeError> {
        let Some(b) = bytes else {
            return Ok(Cell::Null);
        };
        let bad = |what: &str| DecodeError(format!("malformed {what} value from postgres"));
        Ok(match ty {
            ColType::Text => {
                Cell::Text(String::from_utf8(b.to_vec()).map_err(|_| bad("text (not UTF-8)"))?)
            }
            ColType::Int => Cell::Int(i32::from_be_bytes(
                b.try_into().map_err(|_| bad("integer"))?,
            )),
            ColType::Json => {
                let (ver, text) = b.split_first().ok_or_else(|| bad("jsonb"))?;
                if *ver != 1 {
                    return Err(bad("jsonb (unknown version)"));
                }
                Cell::Json(serde_json::from_slice(text).map_err(|_| bad("jsonb"))?)
            }
            ColType::Ts => Cell::Ts(
                i64::from_be_bytes(b.try_into().map_err(|_| bad("timestamp"))?) + PG_EPOCH_US,
            ),
            ColType::TextArray => decode_array(b).ok_or_else(|| bad("varchar[]"))?,
            ColType::Vector => {
                let dim = b
                    .get(..2)
                    .map(|d| u16::from_be_bytes([d[0], d[1]]) as usize)
                    .ok_or_else(|| bad("vector"))?;
                let body = b.get(4..).ok_or_else(|| bad("vector"))?;
                if body.len() != dim * 4 {
                    return Err(bad("vector"));
                }
                Cell::Vector(
                    body.chunks_exact(4)
                        .map(|c| f32::from_bits(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                        .collect(),
                )
            }
        })
    }

    /// Appends the canonical content to `out`: a tag, then the value (lengths and numbers
    /// little-endian). A record's hash is one xxh3 over its cells' canonical forms.
    pub fn canonical_into(&self, out: &mut Vec<u8>) {
        match self {
            Cell::Null => out.push(0),
            Cell::Text(s) => {
                out.push(1);
                canonical_str(out, s);
            }
            Cell::Int(i) => {
                out.push(2);
                out.extend_from_slice(&i.to_le_bytes());
            }
            Cell::Json(v) => {
                out.push(3);
                let mut s = String::new();
                canonical_json(v, &mut s);
                canonical_str(out, &s);
            }
            Cell::Ts(us) => {
                out.push(4);
                out.extend_from_slice(&us.to_le_bytes());
            }
            Cell::TextArray(items) => {
                out.push(5);
                out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                for s in items {
                    canonical_str(out, s);
                }
            }
            Cell::Vector(v) => {
                out.push(6);
                out.extend_from_slice(&(v.len() as u64).to_le_bytes());
                out.reserve(v.len() * 4);
                for x in v {
                    out.extend_from_slice(&x.to_bits().to_le_bytes());
                }
            }
        }
    }
}

fn canonical_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn len_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&len_i32(n).to_be_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_len(out, b.len());
    out.extend_from_slice(b);
}

fn decode_array(b: &[u8]) -> Option<Cell> {
    let word = |at: usize| -> Option<i32> {
        b.get(at..at + 4)
            .map(|w| i32::from_be_bytes([w[0], w[1], w[2], w[3]]))
    };
    let ndim = word(0)?;
    if ndim == 0 {
        return Some(Cell::TextArray(Vec::new()));
    }
    if ndim != 1 || word(4)? != 0 {
        return None;
    }
    let n = usize::try_from(word(12)?).ok()?;
    let mut at = 20;
    let mut items = Vec::with_capacity(n.min(1 << 16));
    for _ in 0..n {
        let len = usize::try_from(word(at)?).ok()?;
        at += 4;
        items.push(String::from_utf8(b.get(at..at + len)?.to_vec()).ok()?);
        at += len;
    }
    Some(Cell::TextArray(items))
}

/// JSON with object keys sorted and every number printed as an f64, so that a value and its
/// `jsonb` round trip (which reorders keys and may print `1.0e2` as `100`) read the same.
pub fn canonical_json(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            let _ = write!(out, "{f:?}");
        }
        Value::String(s) => out.push_str(&Value::String(s.clone()).to_string()),
        Value::Array(items) => {
            out.push('[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(x, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                if let Some(x) = m.get(k) {
                    canonical_json(x, out);
                }
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn round_trip(ty: ColType, c: Cell) {
        let mut buf = Vec::new();
        c.encode(&mut buf);
        let len = i32::from_be_bytes(buf[..4].try_into().unwrap());
        let body = if len < 0 { None } else { Some(&buf[4..]) };
        if let Some(b) = body {
            assert_eq!(b.len(), len as usize);
        }
        let back = Cell::decode(ty, body).unwrap();
        let (mut h1, mut h2) = (Vec::new(), Vec::new());
        c.canonical_into(&mut h1);
        back.canonical_into(&mut h2);
        assert_eq!(h1, h2, "{c:?} vs {back:?}");
    }

    #[test]
    fn every_type_round_trips_through_the_binary_format() {
        round_trip(ColType::Text, Cell::Text("héllo".into()));
        round_trip(ColType::Text, Cell::Null);
        round_trip(ColType::Int, Cell::Int(-7));
        round_trip(
            ColType::Json,
            Cell::Json(serde_json::json!({"b": [1, 2.5, "x"], "a": null})),
        );
        round_trip(ColType::Ts, Cell::Ts(1_700_000_000_123_456));
        round_trip(ColType::TextArray, Cell::TextArray(vec![]));
        round_trip(
            ColType::TextArray,
            Cell::TextArray(vec!["chunk-1".into(), "chunk-2".into()]),
        );
        round_trip(ColType::Vector, Cell::Vector(vec![0.1, -2.5e-8, 3.0]));
    }

    #[test]
    fn canonical_json_ignores_key_order_and_integer_spelling() {
        let a = serde_json::json!({"x": 100, "y": {"b": 1, "a": 2}});
        let b: Value = serde_json::from_str(r#"{"y": {"a": 2, "b": 1}, "x": 100.0}"#).unwrap();
        let (mut sa, mut sb) = (String::new(), String::new());
        canonical_json(&a, &mut sa);
        canonical_json(&b, &mut sb);
        assert_eq!(sa, sb);
    }

    #[test]
    fn different_vectors_hash_differently() {
        let (mut h1, mut h2) = (Vec::new(), Vec::new());
        Cell::Vector(vec![1.0, 2.0]).canonical_into(&mut h1);
        Cell::Vector(vec![1.0, 2.000_000_2]).canonical_into(&mut h2);
        assert_ne!(h1, h2);
    }
}
