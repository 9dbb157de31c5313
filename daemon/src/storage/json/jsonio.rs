//! Streaming JSON for LightRAG's files: a reader over a file's top-level object that never holds
//! the whole file in memory, and writers that reproduce Python's `json.dump` byte for byte.
//!
//! Reading: [`ObjectReader`] reads the file in chunks into a buffer that grows only as much as
//! one member value (or one array element) needs. The caller walks the members with
//! [`ObjectReader::next_key`] and takes each value as a minified raw value
//! ([`ObjectReader::raw_value`]: whitespace outside strings removed, string escapes kept byte for
//! byte, validated by serde_json), an array walked element by element
//! ([`ObjectReader::begin_array`], [`ObjectReader::next_element`]), a number, or a string
//! streamed in decoded chunks ([`ObjectReader::string_chunks`], for nano-vectordb's `matrix`).
//!
//! Writing: [`write_object_indent2`] is `json.dump(obj, indent=2, ensure_ascii=False)` (KV and
//! doc-status files), [`write_spaced`] re-emits a stored value with Python's default
//! separators (`", "`, `": "`, nano-vectordb files), and [`raw_from_value`] turns a
//! `serde_json::Value` into the minified text Python would produce (floats as Python's `repr`).
//!
//! Invariants: a file written by Python's `json.dump` and read through [`ObjectReader`] is
//! written back byte-identically by these writers; nothing here panics on any input; every
//! error is [`StorageError::Corrupt`] naming the file and the byte offset (or the record).

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use memchr::memchr2;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::fsutil;
use crate::storage::{StorageError, StorageResult};

/// The first buffer size; it grows only when one value does not fit.
const INITIAL_BUF: usize = 1 << 20;
/// Never issue a read smaller than this (grow the buffer instead).
const MIN_READ: usize = 256 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// After `{`: a member name or `}` comes next.
    Members,
    /// After a member's `:`: its value comes next.
    Value,
    /// Inside a member's array, `index` elements taken so far.
    Array { index: u64 },
    /// Inside a member's string value (its opening quote consumed).
    Str,
    /// After a member's value: `,` or `}` comes next.
    AfterValue,
    /// The top-level object is closed and nothing follows it.
    Done,
}

/// Streaming reader of a JSON file whose top level is an object (see the module docs).
pub struct ObjectReader<R> {
    src: R,
    path: PathBuf,
    buf: Vec<u8>,
    /// Next unread byte in `buf`.
    pos: usize,
    /// End of the valid bytes in `buf`.
    end: usize,
    /// File offset of `buf[0]`.
    base: u64,
    eof: bool,
    /// The input's size when known (a file), to size the buffer.
    size: Option<u64>,
    state: State,
    /// The member whose value is being read (for messages).
    member: Box<str>,
    member_offset: u64,
    /// File offset of the last value taken.
    value_offset: u64,
    /// The minified copy of the value being scanned.
    scratch: Vec<u8>,
}

impl ObjectReader<File> {
    /// Opens `path`. `Ok(None)` when the file does not exist, or holds nothing but whitespace
    /// (LightRAG's `load_json` treats both as an absent store).
    pub fn open(path: &Path) -> StorageResult<Option<ObjectReader<File>>> {
        match File::open(path) {
            Ok(f) => {
                let size = f.metadata().ok().map(|m| m.len());
                ObjectReader::new_sized(f, path, size)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::io(path, e)),
        }
    }
}

impl<R> ObjectReader<R> {
    /// The file name used in messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// File offset of the next unread byte.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// File offset of the current member's name.
    pub fn member_offset(&self) -> u64 {
        self.member_offset
    }

    /// File offset of the first byte of the last value taken.
    pub fn value_offset(&self) -> u64 {
        self.value_offset
    }

    /// A [`StorageError::Corrupt`] for this file: `byte <offset>: <msg>`.
    pub fn err_at(&self, offset: u64, msg: impl std::fmt::Display) -> StorageError {
        StorageError::corrupt(&self.path, format!("byte {offset}: {msg}"))
    }

    /// A [`StorageError::Corrupt`] for this file with a free-form message.
    pub fn corrupt(&self, msg: impl Into<String>) -> StorageError {
        StorageError::corrupt(&self.path, msg)
    }
}

impl<R: Read> ObjectReader<R> {
    /// Starts reading `src` (named `path` in messages): skips a UTF-8 BOM and whitespace and
    /// consumes the opening `{`. `Ok(None)` when the input is empty or only whitespace.
    pub fn new(src: R, path: &Path) -> StorageResult<Option<ObjectReader<R>>> {
        ObjectReader::new_sized(src, path, None)
    }

    /// [`Self::new`] for an input of `size` bytes (sizes the buffer for small files).
    fn new_sized(src: R, path: &Path, size: Option<u64>) -> StorageResult<Option<ObjectReader<R>>> {
        let mut r = ObjectReader {
            size,
            src,
            path: path.to_path_buf(),
            buf: Vec::new(),
            pos: 0,
            end: 0,
            base: 0,
            eof: false,
            state: State::Members,
            member: "".into(),
            member_offset: 0,
            value_offset: 0,
            scratch: Vec::new(),
        };
        r.ensure(3)?;
        if r.avail().starts_with(b"\xEF\xBB\xBF") {
            r.pos += 3;
        }
        match r.peek_nonws()? {
            None => Ok(None),
            Some(b'{') => {
                r.pos += 1;
                Ok(Some(r))
            }
            Some(b) => Err(r.err_at(
                r.offset(),
                format!("the top level is not a JSON object (found {})", describe(b)),
            )),
        }
    }

    /// The next member's name, leaving the reader in front of its value; `None` once the
    /// top-level object is closed (and nothing but whitespace follows it). A value the caller
    /// did not take is validated and skipped.
    pub fn next_key(&mut self) -> StorageResult<Option<Box<str>>> {
        match self.state {
            State::Value => {
                self.raw_value()?;
            }
            State::Array { .. } => while self.next_element()?.is_some() {},
            State::Str => while self.string_step(&mut |_, _| Ok(()))? {},
            State::Done => return Ok(None),
            State::Members | State::AfterValue => {}
        }
        let Some(mut b) = self.peek_nonws()? else {
            return Err(self.eof_err());
        };
        if self.state == State::AfterValue {
            match b {
                b',' => {
                    self.pos += 1;
                    b = match self.peek_nonws()? {
                        Some(b) => b,
                        None => return Err(self.eof_err()),
                    };
                    if b != b'"' {
                        return Err(self.err_at(
                            self.offset(),
                            format!("expected a member name, found {}", describe(b)),
                        ));
                    }
                }
                b'}' => return self.finish(),
                _ => {
                    return Err(self.err_at(
                        self.offset(),
                        format!(
                            "expected ',' or '}}' after member \"{}\", found {}",
                            self.member,
                            describe(b)
                        ),
                    ));
                }
            }
        } else if b == b'}' {
            return self.finish();
        } else if b != b'"' {
            return Err(self.err_at(
                self.offset(),
                format!("expected a member name or '}}', found {}", describe(b)),
            ));
        }
        let key_offset = self.offset();
        let key = self.read_key()?;
        match self.peek_nonws()? {
            Some(b':') => self.pos += 1,
            Some(b) => {
                return Err(self.err_at(
                    self.offset(),
                    format!("expected ':' after member name, found {}", describe(b)),
                ));
            }
            None => return Err(self.eof_err()),
        }
        self.member = key.clone();
        self.member_offset = key_offset;
        self.state = State::Value;
        Ok(Some(key))
    }

    /// The current member's value, minified and validated.
    pub fn raw_value(&mut self) -> StorageResult<Box<RawValue>> {
        self.expect_state_value()?;
        let v = self.scan_raw()?;
        self.state = State::AfterValue;
        Ok(v)
    }

    /// Enters the current member's value, which must be an array.
    pub fn begin_array(&mut self) -> StorageResult<()> {
        self.expect_state_value()?;
        match self.peek_nonws()? {
            Some(b'[') => {
                self.value_offset = self.offset();
                self.pos += 1;
                self.state = State::Array { index: 0 };
                Ok(())
            }
            Some(b) => Err(self.err_at(
                self.offset(),
                format!(
                    "member \"{}\" is not an array (found {})",
                    self.member,
                    describe(b)
                ),
            )),
            None => Err(self.eof_err()),
        }
    }

    /// The next element of the array entered with [`Self::begin_array`]; `None` after the last.
    pub fn next_element(&mut self) -> StorageResult<Option<Box<RawValue>>> {
        let State::Array { index } = self.state else {
            return Err(StorageError::Backend(
                "ObjectReader::next_element called outside an array".into(),
            ));
        };
        let Some(b) = self.peek_nonws()? else {
            return Err(self.eof_err());
        };
        if b == b']' {
            self.pos += 1;
            self.state = State::AfterValue;
            return Ok(None);
        }
        if index > 0 {
            if b != b',' {
                return Err(self.err_at(
                    self.offset(),
                    format!(
                        "expected ',' or ']' in member \"{}\" (element {index}), found {}",
                        self.member,
                        describe(b)
                    ),
                ));
            }
            self.pos += 1;
        }
        let v = self.scan_raw()?;
        self.state = State::Array { index: index + 1 };
        Ok(Some(v))
    }

    /// The current member's value, which must be a number.
    pub fn number(&mut self) -> StorageResult<serde_json::Number> {
        let raw = self.raw_value()?;
        serde_json::from_str::<serde_json::Number>(raw.get()).map_err(|_| {
            self.err_at(
                self.value_offset,
                format!("member \"{}\" is not a number", self.member),
            )
        })
    }

    /// Streams the current member's value, which must be a string, to `f` in decoded chunks
    /// (never the whole string at once). `f` gets each chunk with the file offset of its first
    /// byte; a chunk is either a run of literal characters (offsets map one to one) or one
    /// decoded escape. A lone surrogate escape (`\ud800`) decodes as U+FFFD.
    pub fn string_chunks(
        &mut self,
        mut f: impl FnMut(u64, &str) -> StorageResult<()>,
    ) -> StorageResult<()> {
        self.begin_string()?;
        while self.string_step(&mut f)? {}
        Ok(())
    }

    /// Enters the current member's value, which must be a string; walk it with
    /// [`Self::string_step`]. The pull form of [`Self::string_chunks`], for a caller that
    /// consumes the string at its own pace (migration walks `matrix` in step with `data`).
    pub fn begin_string(&mut self) -> StorageResult<()> {
        self.expect_state_value()?;
        match self.peek_nonws()? {
            Some(b'"') => {
                self.value_offset = self.offset();
                self.pos += 1;
            }
            Some(b) => {
                return Err(self.err_at(
                    self.offset(),
                    format!(
                        "member \"{}\" is not a string (found {})",
                        self.member,
                        describe(b)
                    ),
                ));
            }
            None => return Err(self.eof_err()),
        }
        self.state = State::Str;
        Ok(())
    }

    /// Advances through the string entered with [`Self::begin_string`], passing `f` at most
    /// one chunk (see [`Self::string_chunks`]). `Ok(false)` once the closing quote is consumed.
    pub fn string_step(
        &mut self,
        f: &mut impl FnMut(u64, &str) -> StorageResult<()>,
    ) -> StorageResult<bool> {
        if self.state != State::Str {
            return Err(StorageError::Backend(
                "ObjectReader::string_step called outside a string".into(),
            ));
        }
        if self.pos >= self.end {
            let keep = self.pos;
            if !self.fill(keep)? {
                return Err(self.eof_err());
            }
            return Ok(true);
        }
        let hay = self.avail();
        let k = memchr2(b'"', b'\\', hay).unwrap_or(hay.len());
        if k > 0 {
            let run = &hay[..k];
            if let Some(c) = run.iter().position(|&b| b < 0x20) {
                return Err(self.err_at(
                    self.offset() + c as u64,
                    format!("control character {} inside a string", describe(run[c])),
                ));
            }
            match std::str::from_utf8(run) {
                Ok(s) => {
                    f(self.offset(), s)?;
                    self.pos += k;
                }
                Err(e) => {
                    let good = e.valid_up_to();
                    if e.error_len().is_some() || k < hay.len() {
                        return Err(self.err_at(self.offset() + good as u64, "invalid UTF-8"));
                    }
                    // A character split by the end of the buffer: emit what is complete,
                    // read more, and continue with the rest.
                    if good > 0 {
                        let s = std::str::from_utf8(&run[..good])
                            .map_err(|_| self.err_at(self.offset(), "invalid UTF-8"))?;
                        f(self.offset(), s)?;
                        self.pos += good;
                    }
                    let keep = self.pos;
                    if !self.fill(keep)? {
                        return Err(self.eof_err());
                    }
                }
            }
            return Ok(true);
        }
        // At a delimiter.
        if hay.first() == Some(&b'"') {
            self.pos += 1;
            self.state = State::AfterValue;
            return Ok(false);
        }
        let esc_offset = self.offset();
        self.ensure(2)?;
        let Some(&e) = self.avail().get(1) else {
            return Err(self.eof_err());
        };
        let mut tmp = [0u8; 4];
        let (s, used): (&str, usize) = match e {
            b'"' => ("\"", 2),
            b'\\' => ("\\", 2),
            b'/' => ("/", 2),
            b'b' => ("\u{8}", 2),
            b'f' => ("\u{c}", 2),
            b'n' => ("\n", 2),
            b'r' => ("\r", 2),
            b't' => ("\t", 2),
            b'u' => {
                self.ensure(12)?;
                let hi = self.hex4(2)?;
                let (c, used) = if (0xD800..0xDC00).contains(&hi) {
                    let avail = self.avail();
                    if avail.get(6) == Some(&b'\\') && avail.get(7) == Some(&b'u') {
                        let lo = self.hex4(8)?;
                        if (0xDC00..0xE000).contains(&lo) {
                            let cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                            (char::from_u32(cp).unwrap_or('\u{FFFD}'), 12)
                        } else {
                            ('\u{FFFD}', 6)
                        }
                    } else {
                        ('\u{FFFD}', 6)
                    }
                } else {
                    (char::from_u32(hi).unwrap_or('\u{FFFD}'), 6)
                };
                (&*c.encode_utf8(&mut tmp), used)
            }
            other => {
                return Err(self.err_at(
                    esc_offset,
                    format!(
                        "invalid escape '\\{}' in a string",
                        char::from(other).escape_default()
                    ),
                ));
            }
        };
        f(esc_offset, s)?;
        self.pos += used;
        Ok(true)
    }

    // ----- internals -----

    fn avail(&self) -> &[u8] {
        self.buf.get(self.pos..self.end).unwrap_or(&[])
    }

    fn expect_state_value(&self) -> StorageResult<()> {
        if self.state == State::Value {
            Ok(())
        } else {
            Err(StorageError::Backend(
                "ObjectReader: no member value is pending".into(),
            ))
        }
    }

    /// Reads more input, dropping the bytes before `keep` (which must be `<= pos`). Returns
    /// whether new bytes arrived (`false` at end of file). Indices shift down by `keep`.
    fn fill(&mut self, keep: usize) -> StorageResult<bool> {
        if self.eof {
            return Ok(false);
        }
        let keep = keep.min(self.pos);
        if keep > 0 {
            self.buf.copy_within(keep..self.end, 0);
            self.end -= keep;
            self.pos -= keep;
            self.base += keep as u64;
        }
        if self.buf.len() - self.end < MIN_READ {
            let mut new_len = (self.buf.len() * 2)
                .max(self.end + MIN_READ)
                .max(INITIAL_BUF);
            if let Some(size) = self.size {
                // No need for more room than the rest of the file (plus a margin).
                let rest = usize::try_from(size.saturating_sub(self.base)).unwrap_or(usize::MAX);
                new_len = new_len.min(rest.saturating_add(4096)).max(self.end + 4096);
            }
            if new_len > self.buf.len() {
                self.buf.resize(new_len, 0);
            }
        }
        loop {
            let Some(dst) = self.buf.get_mut(self.end..) else {
                return Ok(false);
            };
            match self.src.read(dst) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(StorageError::io(&self.path, e)),
            }
        }
    }

    /// Makes `n` bytes available from `pos` when the input has them.
    fn ensure(&mut self, n: usize) -> StorageResult<()> {
        while self.end - self.pos < n {
            let keep = self.pos;
            if !self.fill(keep)? {
                break;
            }
        }
        Ok(())
    }

    /// Skips whitespace; the next byte (not consumed), or `None` at end of file.
    fn peek_nonws(&mut self) -> StorageResult<Option<u8>> {
        loop {
            while let Some(&b) = self.buf.get(self.pos).filter(|_| self.pos < self.end) {
                if is_ws(b) {
                    self.pos += 1;
                } else {
                    return Ok(Some(b));
                }
            }
            let keep = self.pos;
            if !self.fill(keep)? {
                return Ok(None);
            }
        }
    }

    fn finish(&mut self) -> StorageResult<Option<Box<str>>> {
        self.pos += 1;
        self.state = State::Done;
        self.member = "".into();
        match self.peek_nonws()? {
            None => Ok(None),
            Some(b) => Err(self.err_at(
                self.offset(),
                format!(
                    "trailing characters after the top-level object (found {})",
                    describe(b)
                ),
            )),
        }
    }

    /// "inside member "k" (element i)" / "in the top-level object".
    fn context(&self) -> String {
        match self.state {
            State::Value | State::Str => format!("inside member \"{}\"", self.member),
            State::AfterValue => format!("after member \"{}\"", self.member),
            State::Array { index } => {
                format!("inside member \"{}\" (element {index})", self.member)
            }
            State::Members | State::Done => "in the top-level object".into(),
        }
    }

    fn eof_err(&self) -> StorageError {
        self.err_at(
            self.base + self.end as u64,
            format!("unexpected end of file {}", self.context()),
        )
    }

    fn hex4(&self, at: usize) -> StorageResult<u32> {
        let avail = self.avail();
        let digits = avail.get(at..at + 4).ok_or_else(|| self.eof_err())?;
        let mut v = 0u32;
        for &d in digits {
            let n = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                b'A'..=b'F' => d - b'A' + 10,
                _ => {
                    return Err(self.err_at(self.offset(), "invalid \\u escape in a string"));
                }
            };
            v = v * 16 + u32::from(n);
        }
        Ok(v)
    }

    /// Reads a member name at `pos` (which is `"`), decoding escapes.
    fn read_key(&mut self) -> StorageResult<Box<str>> {
        let mut start = self.pos;
        let mut i = start + 1;
        let mut escaped = false;
        loop {
            if i >= self.end {
                self.pos = i;
                let before = self.pos;
                if !self.fill(start)? {
                    return Err(self.eof_err());
                }
                let shift = before - self.pos;
                start -= shift;
                i = self.pos;
                continue;
            }
            let hay = self.buf.get(i..self.end).unwrap_or(&[]);
            match memchr2(b'"', b'\\', hay) {
                None => i = self.end,
                Some(k) => {
                    i += k;
                    if self.buf.get(i) == Some(&b'"') {
                        break;
                    }
                    if i + 1 >= self.end {
                        // Need the escaped byte: read more and look again from the backslash.
                        self.pos = i;
                        let before = self.pos;
                        if !self.fill(start)? {
                            return Err(self.eof_err());
                        }
                        let shift = before - self.pos;
                        start -= shift;
                        i = self.pos;
                        continue;
                    }
                    escaped = true;
                    i += 2;
                }
            }
        }
        // buf[start] is the opening quote, buf[i] the closing one.
        self.pos = i + 1;
        let body = self.buf.get(start + 1..i).unwrap_or(&[]);
        let body_offset = self.base + start as u64 + 1;
        if let Some(c) = body.iter().position(|&b| b < 0x20) {
            return Err(self.err_at(
                body_offset + c as u64,
                format!(
                    "control character {} inside a member name",
                    describe(body[c])
                ),
            ));
        }
        let text = std::str::from_utf8(body)
            .map_err(|e| self.err_at(body_offset + e.valid_up_to() as u64, "invalid UTF-8"))?;
        if !escaped {
            return Ok(text.into());
        }
        let quoted = self.buf.get(start..=i).unwrap_or(&[]);
        serde_json::from_slice::<String>(quoted)
            .map(String::into_boxed_str)
            .map_err(|e| {
                self.err_at(
                    body_offset - 1,
                    format!("member name: {}", serde_message(&e)),
                )
            })
    }

    /// Scans one value at the next non-whitespace byte, minifying it into `scratch`, then
    /// validates it. Leaves `pos` just after the value.
    fn scan_raw(&mut self) -> StorageResult<Box<RawValue>> {
        if self.peek_nonws()?.is_none() {
            return Err(self.eof_err());
        }
        let mut start = self.pos;
        self.value_offset = self.offset();
        self.scratch.clear();
        let mut i = start;
        let mut depth: usize = 0;
        let mut in_str = false;
        // Outside strings: was the last byte kept part of a number/literal, and was
        // whitespace dropped since? (Dropping it would glue two tokens: `[1 2]` → `[12]`.)
        let mut last_scalar = false;
        let mut gap = false;
        loop {
            if i >= self.end {
                self.pos = i;
                let before = self.pos;
                let more = self.fill(start)?;
                let shift = before - self.pos;
                start -= shift;
                i = self.pos;
                if !more {
                    if depth == 0 && !in_str && !self.scratch.is_empty() {
                        break; // a number or literal ending at end of file
                    }
                    return Err(self.eof_err());
                }
                continue;
            }
            if in_str {
                let hay = self.buf.get(i..self.end).unwrap_or(&[]);
                match memchr2(b'"', b'\\', hay) {
                    None => {
                        self.scratch.extend_from_slice(hay);
                        i = self.end;
                    }
                    Some(k) => {
                        self.scratch.extend_from_slice(&hay[..k]);
                        i += k;
                        if self.buf.get(i) == Some(&b'"') {
                            self.scratch.push(b'"');
                            i += 1;
                            in_str = false;
                            last_scalar = false;
                            gap = false;
                            if depth == 0 {
                                break;
                            }
                        } else if let Some(&e) = self.buf.get(i + 1).filter(|_| i + 1 < self.end) {
                            self.scratch.push(b'\\');
                            self.scratch.push(e);
                            i += 2;
                        } else {
                            // The escaped byte is not read yet: read more, then come back to
                            // the backslash.
                            self.pos = i;
                            let before = self.pos;
                            if !self.fill(start)? {
                                return Err(self.eof_err());
                            }
                            let shift = before - self.pos;
                            start -= shift;
                            i = self.pos;
                        }
                    }
                }
                continue;
            }
            // Outside strings: a tight loop over the bytes in the buffer.
            let mut ended = false;
            while i < self.end {
                let Some(&b) = self.buf.get(i) else { break };
                match b {
                    b' ' | b'\n' | b'\r' | b'\t' => {
                        if depth == 0 {
                            ended = true;
                            break;
                        }
                        gap = true;
                        i += 1;
                        // Indentation comes in runs of spaces: skip them at once.
                        let rest = self.buf.get(i..self.end).unwrap_or(&[]);
                        i += rest.iter().position(|&c| c != b' ').unwrap_or(rest.len());
                    }
                    b'"' => {
                        self.scratch.push(b);
                        i += 1;
                        in_str = true;
                        break;
                    }
                    b'{' | b'[' => {
                        depth += 1;
                        self.scratch.push(b);
                        i += 1;
                        last_scalar = false;
                        gap = false;
                    }
                    b'}' | b']' => {
                        if depth == 0 {
                            ended = true;
                            break;
                        }
                        depth -= 1;
                        self.scratch.push(b);
                        i += 1;
                        last_scalar = false;
                        gap = false;
                        if depth == 0 {
                            ended = true;
                            break;
                        }
                    }
                    b',' | b':' => {
                        if depth == 0 {
                            ended = true;
                            break;
                        }
                        self.scratch.push(b);
                        i += 1;
                        last_scalar = false;
                        gap = false;
                    }
                    _ => {
                        if last_scalar && gap {
                            return Err(self.err_at(
                                self.base + i as u64,
                                format!("unexpected {} {}", describe(b), self.context()),
                            ));
                        }
                        self.scratch.push(b);
                        i += 1;
                        last_scalar = true;
                        gap = false;
                    }
                }
            }
            if ended {
                break;
            }
        }
        self.pos = i;
        if self.scratch.is_empty() {
            let found = self
                .buf
                .get(i)
                .filter(|_| i < self.end)
                .map_or_else(|| "end of file".to_string(), |&b| describe(b));
            return Err(self.err_at(
                self.value_offset,
                format!("expected a value {}, found {found}", self.context()),
            ));
        }
        let text = match std::str::from_utf8(&self.scratch) {
            Ok(t) => t,
            Err(_) => {
                let src = self.buf.get(start..i).unwrap_or(&[]);
                let at = match std::str::from_utf8(src) {
                    Err(e) => self.base + (start + e.valid_up_to()) as u64,
                    Ok(_) => self.value_offset,
                };
                return Err(self.err_at(at, "invalid UTF-8"));
            }
        };
        RawValue::from_string(text.to_owned()).map_err(|e| {
            self.corrupt(format!(
                "{} at byte {}: {}",
                self.value_label(),
                self.value_offset,
                serde_message(&e)
            ))
        })
    }

    /// `record "k"` for a member value, `element i of member "k"` inside an array.
    fn value_label(&self) -> String {
        match self.state {
            State::Array { index } => format!("element {index} of member \"{}\"", self.member),
            _ => format!("record \"{}\"", self.member),
        }
    }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t')
}

/// `'x'` for a printable ASCII byte, `byte 0xNN` otherwise.
fn describe(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}'", char::from(b))
    } else {
        format!("byte 0x{b:02x}")
    }
}

/// serde_json's message without its "at line L column C" suffix (positions in the minified
/// copy mean nothing to a reader of the file).
pub fn serde_message(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    if e.line() == 0 {
        return msg;
    }
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    match msg.strip_suffix(&suffix) {
        Some(m) => m.to_string(),
        None => msg,
    }
}

// ---------------------------------------------------------------------------------------------
// Writers
// ---------------------------------------------------------------------------------------------

/// Bytes that need an escape in a Python `ensure_ascii=False` string.
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Appends `s` as a JSON string exactly as Python's `json.dumps(s, ensure_ascii=False)` does:
/// `\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`, other control characters as `\u00xx`; everything
/// else (non-ASCII, DEL, `/`) verbatim.
pub fn push_py_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !needs_escape(b) {
            continue;
        }
        out.extend_from_slice(bytes.get(run..i).unwrap_or(&[]));
        run = i + 1;
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
        }
    }
    out.extend_from_slice(bytes.get(run..).unwrap_or(&[]));
    out.push(b'"');
}

/// Writes `s` as [`push_py_str`] does.
pub fn write_py_str<W: Write>(w: &mut W, s: &str) -> io::Result<()> {
    if !s.bytes().any(needs_escape) {
        w.write_all(b"\"")?;
        w.write_all(s.as_bytes())?;
        return w.write_all(b"\"");
    }
    let mut out = Vec::with_capacity(s.len() + 8);
    push_py_str(&mut out, s);
    w.write_all(&out)
}

/// Python's `repr(float)` for a finite `f` (what `json.dump` writes): shortest round-trip
/// digits, fixed notation for exponents -5 < e < 16 (with `.0` when integral), otherwise
/// `d.ddde+XX`.
pub fn py_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    // Shortest round-trip digit count from `{:e}` ("-1.2345e-7"), then the correctly rounded
    // value with that many digits (what Python's repr picks when several would round-trip).
    let shortest = format!("{f:e}");
    let ndigits = shortest
        .split('e')
        .next()
        .map_or(1, |m| m.bytes().filter(u8::is_ascii_digit).count());
    let rounded = format!("{:.*e}", ndigits.saturating_sub(1), f);
    let sci = if rounded.parse::<f64>().ok() == Some(f) {
        rounded
    } else {
        shortest
    };
    let (neg, rest) = match sci.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, sci.as_str()),
    };
    let Some((mant, exp)) = rest.split_once('e') else {
        return format!("{f:?}");
    };
    let Ok(exp) = exp.parse::<i32>() else {
        return format!("{f:?}");
    };
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let nd = digits.len() as i32;
    let decpt = exp + 1;
    let mut out = String::with_capacity(24);
    if neg {
        out.push('-');
    }
    if decpt <= -4 || decpt > 16 {
        let (first, tail) = digits.split_at(1.min(digits.len()));
        out.push_str(first);
        if !tail.is_empty() {
            out.push('.');
            out.push_str(tail);
        }
        let _ = write!(
            out,
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.unsigned_abs()
        );
    } else if decpt <= 0 {
        out.push_str("0.");
        for _ in 0..(-decpt) {
            out.push('0');
        }
        out.push_str(&digits);
    } else if decpt >= nd {
        out.push_str(&digits);
        for _ in 0..(decpt - nd) {
            out.push('0');
        }
        out.push_str(".0");
    } else {
        let (a, b) = digits.split_at(decpt as usize);
        out.push_str(a);
        out.push('.');
        out.push_str(b);
    }
    out
}

/// Appends `v` as minified JSON in Python's spelling (strings as [`push_py_str`], floats as
/// [`py_float`]).
pub fn push_py_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.extend_from_slice(i.to_string().as_bytes());
            } else if let Some(u) = n.as_u64() {
                out.extend_from_slice(u.to_string().as_bytes());
            } else if let Some(f) = n.as_f64() {
                out.extend_from_slice(py_float(f).as_bytes());
            } else {
                out.extend_from_slice(n.to_string().as_bytes());
            }
        }
        Value::String(s) => push_py_str(out, s),
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_py_value(out, x);
            }
            out.push(b']');
        }
        Value::Object(m) => {
            out.push(b'{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_py_str(out, k);
                out.push(b':');
                push_py_value(out, x);
            }
            out.push(b'}');
        }
    }
}

/// `v` as a minified raw value in Python's spelling.
pub fn raw_from_value(v: &Value) -> StorageResult<Box<RawValue>> {
    let mut out = Vec::new();
    push_py_value(&mut out, v);
    raw_from_bytes(out)
}

/// A record (JSON object) as a minified raw value in Python's spelling.
pub fn raw_from_record(m: &serde_json::Map<String, Value>) -> StorageResult<Box<RawValue>> {
    let mut out = Vec::new();
    out.push(b'{');
    for (i, (k, x)) in m.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_py_str(&mut out, k);
        out.push(b':');
        push_py_value(&mut out, x);
    }
    out.push(b'}');
    raw_from_bytes(out)
}

/// Minified JSON text (already valid) as a raw value.
pub fn raw_from_bytes(out: Vec<u8>) -> StorageResult<Box<RawValue>> {
    let s = String::from_utf8(out)
        .map_err(|e| StorageError::Backend(format!("serialising a record: {e}")))?;
    RawValue::from_string(s)
        .map_err(|e| StorageError::Backend(format!("serialising a record: {e}")))
}

/// Parses a stored raw value that must be an object.
pub fn parse_record(raw: &RawValue) -> Result<serde_json::Map<String, Value>, serde_json::Error> {
    serde_json::from_str(raw.get())
}

/// Structural bytes of minified JSON (plus the quote).
fn is_structural(b: u8) -> bool {
    matches!(b, b'"' | b'{' | b'}' | b'[' | b']' | b',' | b':')
}

const SPACES: &[u8; 128] = &[b' '; 128];

fn write_newline_indent<W: Write>(w: &mut W, level: usize) -> io::Result<()> {
    w.write_all(b"\n")?;
    let mut n = level * 2;
    while n > 0 {
        let k = n.min(SPACES.len());
        w.write_all(&SPACES[..k])?;
        n -= k;
    }
    Ok(())
}

/// Writes the minified `raw` as `json.dump(indent=2)` renders a value nested `level` deep:
/// containers open onto indented lines, `,` ends a line, `": "` between name and value, empty
/// containers as `{}`/`[]`. Strings are copied byte for byte (their escapes unchanged).
pub fn write_indented<W: Write>(w: &mut W, raw: &str, level: usize) -> io::Result<()> {
    let b = raw.as_bytes();
    let mut level = level;
    let mut i = 0;
    while i < b.len() {
        let run_end = b
            .get(i..)
            .and_then(|r| r.iter().position(|&c| is_structural(c)))
            .map_or(b.len(), |k| i + k);
        if run_end > i {
            w.write_all(b.get(i..run_end).unwrap_or(&[]))?;
            i = run_end;
            continue;
        }
        let Some(&c) = b.get(i) else { break };
        match c {
            b'"' => {
                let end = string_end(b, i);
                w.write_all(b.get(i..end).unwrap_or(&[]))?;
                i = end;
            }
            b'{' | b'[' => {
                let close = if c == b'{' { b'}' } else { b']' };
                if b.get(i + 1) == Some(&close) {
                    w.write_all(&[c, close])?;
                    i += 2;
                } else {
                    w.write_all(&[c])?;
                    level += 1;
                    write_newline_indent(w, level)?;
                    i += 1;
                }
            }
            b'}' | b']' => {
                level = level.saturating_sub(1);
                write_newline_indent(w, level)?;
                w.write_all(&[c])?;
                i += 1;
            }
            b',' => {
                w.write_all(b",")?;
                write_newline_indent(w, level)?;
                i += 1;
            }
            _ => {
                // ':'
                w.write_all(b": ")?;
                i += 1;
            }
        }
    }
    Ok(())
}

/// Writes the minified `raw` with Python's default separators (`", "` and `": "`, one line),
/// strings byte for byte.
pub fn write_spaced<W: Write>(w: &mut W, raw: &str) -> io::Result<()> {
    let b = raw.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let run_end = b
            .get(i..)
            .and_then(|r| r.iter().position(|&c| matches!(c, b'"' | b',' | b':')))
            .map_or(b.len(), |k| i + k);
        if run_end > i {
            w.write_all(b.get(i..run_end).unwrap_or(&[]))?;
            i = run_end;
            continue;
        }
        match b.get(i) {
            Some(b'"') => {
                let end = string_end(b, i);
                w.write_all(b.get(i..end).unwrap_or(&[]))?;
                i = end;
            }
            Some(b',') => {
                w.write_all(b", ")?;
                i += 1;
            }
            _ => {
                w.write_all(b": ")?;
                i += 1;
            }
        }
    }
    Ok(())
}

/// The index just past the string starting at `b[start]` (a quote).
fn string_end(b: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while let Some(k) = b.get(i..).and_then(|r| memchr2(b'"', b'\\', r)) {
        i += k;
        if b.get(i) == Some(&b'"') {
            return i + 1;
        }
        i += 2;
    }
    b.len()
}

/// Writes a top-level object as `json.dump(obj, f, indent=2, ensure_ascii=False)` does (no
/// trailing newline; `{}` when empty).
pub fn write_object_indent2<'a, W: Write>(
    w: &mut W,
    members: impl IntoIterator<Item = (&'a str, &'a RawValue)>,
) -> io::Result<()> {
    let mut first = true;
    w.write_all(b"{")?;
    for (k, v) in members {
        w.write_all(if first { b"\n  " } else { b",\n  " })?;
        first = false;
        write_py_str(w, k)?;
        w.write_all(b": ")?;
        write_indented(w, v.get(), 1)?;
    }
    w.write_all(if first { b"}" } else { b"\n}" })
}

/// The permission bits to give a rewritten file: the current file's, or 0644 for a new one
/// (what Python's `open(..., "w")` gives under the usual umask).
pub fn file_mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o644)
}

/// Replaces `path` atomically with what `fill` writes (see [`fsutil::write_atomic_with`]).
pub fn write_file_atomic(
    path: &Path,
    fill: impl FnOnce(&mut io::BufWriter<File>) -> io::Result<()>,
) -> StorageResult<()> {
    fsutil::write_atomic_with(path, file_mode(path), fill).map_err(|e| StorageError::io(path, e))
}

/// Reads every member of the top-level object at `path` as a minified raw value, calling
/// `each(key, value, value_offset)` in file order. `Ok(false)` when the file is absent (or only
/// whitespace). Used by the KV and doc-status stores.
pub fn read_members(
    path: &Path,
    mut each: impl FnMut(&ObjectReader<File>, Box<str>, Box<RawValue>) -> StorageResult<()>,
) -> StorageResult<bool> {
    let Some(mut r) = ObjectReader::open(path)? else {
        return Ok(false);
    };
    while let Some(key) = r.next_key()? {
        let value = r.raw_value()?;
        each(&r, key, value)?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn reader(bytes: &[u8]) -> StorageResult<Option<ObjectReader<&[u8]>>> {
        ObjectReader::new(bytes, Path::new("t.json"))
    }

    /// A reader that hands out at most `n` bytes per read, to exercise chunk boundaries.
    struct Trickle<'a> {
        data: &'a [u8],
        n: usize,
    }
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let k = self.n.min(buf.len()).min(self.data.len());
            buf[..k].copy_from_slice(&self.data[..k]);
            self.data = &self.data[k..];
            Ok(k)
        }
    }

    fn all_members(bytes: &[u8]) -> StorageResult<Vec<(String, String)>> {
        let mut out = Vec::new();
        let Some(mut r) = reader(bytes)? else {
            return Ok(out);
        };
        while let Some(k) = r.next_key()? {
            out.push((k.to_string(), r.raw_value()?.get().to_string()));
        }
        Ok(out)
    }

    fn err_text(e: StorageError) -> String {
        e.to_string()
    }

    #[test]
    fn minifies_and_keeps_escapes() {
        let src = "\u{feff}{\n  \"a\\u00e9\": {\n    \"x\": [1, 2.5e-05, \"s \\\" , : \\u00e9\"],\n    \"y\": {}\n  },\n  \"b\": true\n}";
        let m = all_members(src.as_bytes()).unwrap();
        assert_eq!(m[0].0, "aé");
        assert_eq!(m[0].1, r#"{"x":[1,2.5e-05,"s \" , : \u00e9"],"y":{}}"#);
        assert_eq!(m[1], ("b".to_string(), "true".to_string()));
    }

    #[test]
    fn empty_and_whitespace_inputs_are_absent() {
        assert!(reader(b"").unwrap().is_none());
        assert!(reader(b" \n\t").unwrap().is_none());
        assert!(reader(b"\xEF\xBB\xBF").unwrap().is_none());
        assert!(all_members(b"{}").unwrap().is_empty());
    }

    #[test]
    fn tiny_reads_give_the_same_result() {
        let src = "{\"k\\\"1\": {\"a\": \"é\\n\\\\\", \"b\": [1, 2, {\"c\": null}]}, \"k2\": 12345, \"m\": \"AAAA\\u00e9\\ud83d\\ude00x\"}";
        let expect = all_members(src.as_bytes()).unwrap();
        for n in 1..9 {
            let mut r = ObjectReader::new(
                Trickle {
                    data: src.as_bytes(),
                    n,
                },
                Path::new("t"),
            )
            .unwrap()
            .unwrap();
            let mut got = Vec::new();
            while let Some(k) = r.next_key().unwrap() {
                if &*k == "m" {
                    let mut s = String::new();
                    r.string_chunks(|_, c| {
                        s.push_str(c);
                        Ok(())
                    })
                    .unwrap();
                    assert_eq!(s, "AAAAé😀x");
                    got.push((k.to_string(), "\"AAAA\\u00e9\\ud83d\\ude00x\"".to_string()));
                } else {
                    got.push((k.to_string(), r.raw_value().unwrap().get().to_string()));
                }
            }
            assert_eq!(got, expect, "chunk size {n}");
        }
    }

    #[test]
    fn arrays_walk_element_by_element() {
        let src = br#"{"d": [ {"a": 1} , [2, 3], "x" ], "e": []}"#;
        let mut r = reader(src).unwrap().unwrap();
        assert_eq!(r.next_key().unwrap().as_deref(), Some("d"));
        r.begin_array().unwrap();
        let mut els = Vec::new();
        while let Some(v) = r.next_element().unwrap() {
            els.push(v.get().to_string());
        }
        assert_eq!(els, [r#"{"a":1}"#, "[2,3]", r#""x""#]);
        assert_eq!(r.next_key().unwrap().as_deref(), Some("e"));
        r.begin_array().unwrap();
        assert!(r.next_element().unwrap().is_none());
        assert!(r.next_key().unwrap().is_none());
    }

    #[test]
    fn errors_name_byte_offsets() {
        let cases: &[(&[u8], &str)] = &[
            (
                b"[1, 2]",
                "t.json: byte 0: the top level is not a JSON object (found '[')",
            ),
            (
                b"{\"a\": 1} x",
                "t.json: byte 9: trailing characters after the top-level object (found 'x')",
            ),
            (
                b"{\"a\": {\"b\": 1",
                "t.json: byte 13: unexpected end of file inside member \"a\"",
            ),
            (
                b"{\"a\": [1 2]}",
                "t.json: byte 9: unexpected '2' inside member \"a\"",
            ),
            (b"{\"a\": \"x\xff\"}", "t.json: byte 8: invalid UTF-8"),
            (b"{\"a\xc3\": 1}", "t.json: byte 3: invalid UTF-8"),
            (
                b"{\"a\": tru}",
                "t.json: record \"a\" at byte 6: EOF while parsing a value",
            ),
            (
                b"{\"a\": 1,}",
                "t.json: byte 8: expected a member name, found '}'",
            ),
            (
                b"{\"a\": 1 \"b\": 2}",
                "t.json: byte 8: expected ',' or '}' after member \"a\", found '\"'",
            ),
            (
                b"{\"a\": }",
                "t.json: byte 6: expected a value inside member \"a\", found '}'",
            ),
            (
                b"{\"a\": NaN}",
                "t.json: record \"a\" at byte 6: expected value",
            ),
            (
                b"{\"a\" 1}",
                "t.json: byte 5: expected ':' after member name, found '1'",
            ),
        ];
        for (src, want) in cases {
            let got = all_members(src).map(|_| ()).map_err(err_text);
            assert_eq!(
                got,
                Err(want.to_string()),
                "{}",
                String::from_utf8_lossy(src)
            );
        }
        // Inside an array.
        let mut r = reader(b"{\"data\": [1, {\"x\": 2}, {\"y\": ")
            .unwrap()
            .unwrap();
        r.next_key().unwrap();
        r.begin_array().unwrap();
        r.next_element().unwrap();
        r.next_element().unwrap();
        assert_eq!(
            err_text(r.next_element().unwrap_err()),
            "t.json: byte 29: unexpected end of file inside member \"data\" (element 2)"
        );
    }

    #[test]
    fn string_chunks_report_offsets_and_errors() {
        let mut r = reader(b"{\"m\": \"ab\\ncd\"}").unwrap().unwrap();
        r.next_key().unwrap();
        let mut chunks = Vec::new();
        r.string_chunks(|off, s| {
            chunks.push((off, s.to_string()));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            chunks,
            [
                (7, "ab".to_string()),
                (9, "\n".to_string()),
                (11, "cd".to_string())
            ]
        );
        assert!(r.next_key().unwrap().is_none());

        let mut r = reader(b"{\"m\": \"abc").unwrap().unwrap();
        r.next_key().unwrap();
        let e = r.string_chunks(|_, _| Ok(())).unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.json: byte 10: unexpected end of file inside member \"m\""
        );
        let mut r = reader(b"{\"m\": 5}").unwrap().unwrap();
        r.next_key().unwrap();
        let e = r.string_chunks(|_, _| Ok(())).unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.json: byte 6: member \"m\" is not a string (found '5')"
        );
    }

    #[test]
    fn python_floats() {
        let cases = [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (-0.0, "-0.0"),
            (1e-05, "1e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (1234567890123456.0, "1234567890123456.0"),
            (1.5e300, "1.5e+300"),
            (123.456, "123.456"),
            (2.5e-7, "2.5e-07"),
            (0.30000000000000004, "0.30000000000000004"),
            (100.0, "100.0"),
        ];
        for (f, s) in cases {
            assert_eq!(py_float(f), s, "{f}");
        }
    }

    #[test]
    fn python_strings_and_values() {
        let mut out = Vec::new();
        push_py_str(&mut out, "a\"b\\c\nd\re\tf\u{8}g\u{c}h\u{1}i\u{7f}/é");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a\\\"b\\\\c\\nd\\re\\tf\\bg\\fh\\u0001i\u{7f}/é\""
        );
        let v = serde_json::json!({"a": [1, 2.0, -3, null, true], "b": {"c": 1e-7}});
        assert_eq!(
            raw_from_value(&v).unwrap().get(),
            r#"{"a":[1,2.0,-3,null,true],"b":{"c":1e-07}}"#
        );
    }

    #[test]
    fn indent2_and_spaced_writers_match_python() {
        let raw = RawValue::from_string(
            r#"{"a":[],"b":{},"c":[1,{"d":"x,:\"y"}],"e":{"f":null}}"#.to_string(),
        )
        .unwrap();
        let mut out = Vec::new();
        write_object_indent2(&mut out, [("k", &*raw), ("z\n", &*raw)]).unwrap();
        let want = "{\n  \"k\": {\n    \"a\": [],\n    \"b\": {},\n    \"c\": [\n      1,\n      {\n        \"d\": \"x,:\\\"y\"\n      }\n    ],\n    \"e\": {\n      \"f\": null\n    }\n  },\n  \"z\\n\": {\n    \"a\": [],\n    \"b\": {},\n    \"c\": [\n      1,\n      {\n        \"d\": \"x,:\\\"y\"\n      }\n    ],\n    \"e\": {\n      \"f\": null\n    }\n  }\n}";
        assert_eq!(String::from_utf8(out).unwrap(), want);
        let mut out = Vec::new();
        write_object_indent2(&mut out, std::iter::empty()).unwrap();
        assert_eq!(out, b"{}");
        let mut out = Vec::new();
        write_spaced(&mut out, raw.get()).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a": [], "b": {}, "c": [1, {"d": "x,:\"y"}], "e": {"f": null}}"#
        );
    }
}
