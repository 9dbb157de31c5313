//! GraphML as networkx reads and writes it for LightRAG's `NetworkXStorage`.
//!
//! Reader: streams the file (quick-xml over a `BufReader`), maps `<data>` to properties by the
//! key's `attr.name` (ids `d0…` differ from file to file), converts values by `attr.type` the way
//! `nx.read_graphml` does (Python `int()`/`float()`/boolean table; an empty `<data>` is the string
//! `""`), keeps key `<default>`s, creates nodes that only edges name, merges a repeated edge into
//! the first, and then orders nodes and neighbours exactly as networkx's reader leaves them.
//! Anything it cannot read is [`StorageError::Corrupt`] with the byte offset; it never panics.
//!
//! Writer: byte for byte `nx.write_graphml_xml` (the ElementTree writer networkx uses when lxml
//! is absent, as in LightRAG's files) of an undirected `nx.Graph`: key ids assigned in first-use
//! order and listed in reverse, two-space indentation, ElementTree escaping, Python `str()` of
//! each value (`repr` for floats, `True`/`False`).

use std::borrow::Cow;
use std::fmt::Display;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use hashbrown::HashMap;
use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::reader::Reader;

use super::graph::{AttrType, Graph, OwnedVal, Scope, Val, attrs, put_attr, raw_attrs};
use crate::storage::{StorageError, StorageResult};

const READ_BUFFER: usize = 256 << 10;

// ------------------------------------------------------------------------------------------------
// Reader
// ------------------------------------------------------------------------------------------------

/// Reads the graph file at `path`; `Ok(None)` when there is no such file.
pub(crate) fn read_file(path: &Path) -> StorageResult<Option<Graph>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io(path, e)),
    };
    read(BufReader::with_capacity(READ_BUFFER, file), path).map(Some)
}

/// Reads a GraphML document from `src`; `path` names it in errors.
pub(crate) fn read<R: BufRead>(src: R, path: &Path) -> StorageResult<Graph> {
    let mut x = Xml::new(src, path);
    let mut buf = Vec::with_capacity(64 << 10);
    let mut l = Loader::new();
    read_prologue(&mut x, &mut buf)?;
    l.root(&mut x, &mut buf)?;
    read_epilogue(&mut x, &mut buf)?;
    if l.graphs == 0 {
        return Err(x.corrupt(x.at, "no <graph> element"));
    }
    l.finish()
}

/// Everything up to and including the `<graphml>` start tag.
pub(crate) fn read_prologue<R: BufRead>(x: &mut Xml<R>, buf: &mut Vec<u8>) -> StorageResult<()> {
    loop {
        match x.next(buf)? {
            Event::Start(e) => {
                if e.local_name().as_ref() != "graphml" {
                    let what =
                        format!("the root element is <{}>, not <graphml>", e.name().as_ref());
                    return Err(x.corrupt(x.at, what));
                }
                break;
            }
            Event::Empty(e) => {
                let what = if e.local_name().as_ref() == "graphml" {
                    "the <graphml> element is empty: no <graph> element".to_owned()
                } else {
                    format!("the root element is <{}>, not <graphml>", e.name().as_ref())
                };
                return Err(x.corrupt(x.at, what));
            }
            Event::Decl(d) => {
                if let Some(Ok(enc)) = d.encoding() {
                    let lower = enc.to_ascii_lowercase();
                    if !matches!(lower.as_str(), "utf-8" | "utf8" | "us-ascii" | "ascii") {
                        return Err(
                            x.corrupt(x.at, format!("unsupported encoding {enc:?} (only UTF-8)"))
                        );
                    }
                }
            }
            Event::Text(t) if is_blank(&t) => {}
            Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
            Event::Eof => {
                let what = if x.at == 0 {
                    "empty file"
                } else {
                    "no <graphml> root element"
                };
                return Err(x.corrupt(x.at, what));
            }
            _ => return Err(x.corrupt(x.at, "content before the <graphml> root element")),
        }
    }
    Ok(())
}

/// Everything after the `</graphml>` end tag: nothing but blanks, comments and PIs.
pub(crate) fn read_epilogue<R: BufRead>(x: &mut Xml<R>, buf: &mut Vec<u8>) -> StorageResult<()> {
    loop {
        match x.next(buf)? {
            Event::Eof => break,
            Event::Text(t) if is_blank(&t) => {}
            Event::Comment(_) | Event::PI(_) => {}
            _ => return Err(x.corrupt(x.at, "content after the </graphml> root element")),
        }
    }
    Ok(())
}

pub(crate) fn is_blank(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

/// The XML event source, with the offset of the event being read for messages. Events borrow
/// only the caller's buffer, so the source stays usable (for messages) while one is alive.
pub(crate) struct Xml<R> {
    r: Reader<R>,
    path: PathBuf,
    /// Byte offset where the last event started.
    pub(crate) at: u64,
    /// Skip whitespace before events (off inside character data).
    skip_blanks: bool,
}

impl<R: BufRead> Xml<R> {
    pub(crate) fn new(src: R, path: &Path) -> Self {
        let mut r = Reader::from_reader(src);
        let c = r.config_mut();
        c.check_end_names = true;
        c.expand_empty_elements = false;
        c.trim_text(false);
        Xml {
            r,
            path: path.to_path_buf(),
            at: 0,
            skip_blanks: true,
        }
    }

    pub(crate) fn next<'b>(&mut self, buf: &'b mut Vec<u8>) -> StorageResult<Event<'b>> {
        buf.clear();
        if self.skip_blanks {
            self.skip_whitespace()?;
        }
        self.at = self.r.buffer_position();
        match self.r.read_event_into(buf) {
            Ok(ev) => Ok(ev),
            Err(e) => Err(xml_error(&self.path, e, self.at, self.r.error_position())),
        }
    }

    /// Consumes whitespace (between elements it is no content), so that `at` is where the next
    /// event really starts and no event is spent on indentation.
    fn skip_whitespace(&mut self) -> StorageResult<()> {
        let path = &self.path;
        let mut s = self.r.stream();
        loop {
            let avail = match s.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(StorageError::io(path, e)),
            };
            let n = avail
                .iter()
                .position(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
                .unwrap_or(avail.len());
            let done = n < avail.len() || avail.is_empty();
            s.consume(n);
            if done {
                return Ok(());
            }
        }
    }

    pub(crate) fn corrupt(&self, at: u64, what: impl Display) -> StorageError {
        StorageError::corrupt(&self.path, format!("byte {at}: {what}"))
    }

    /// Appends the raw character data from here to the next `<` (left unread) to `raw`; the
    /// parser continues from there (quick-xml's `stream()`), so a `<data>` text costs one read
    /// instead of an event per entity reference.
    fn raw_text(&mut self, raw: &mut Vec<u8>) -> StorageResult<()> {
        let path = &self.path;
        let mut s = self.r.stream();
        loop {
            let avail = match s.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(StorageError::io(path, e)),
            };
            if avail.is_empty() {
                return Ok(());
            }
            match memchr::memchr(b'<', avail) {
                Some(i) => {
                    raw.extend_from_slice(&avail[..i]);
                    s.consume(i);
                    return Ok(());
                }
                None => {
                    let n = avail.len();
                    raw.extend_from_slice(avail);
                    s.consume(n);
                }
            }
        }
    }

    /// Text content up to the end tag of `element` (whose start tag was just read), appended to
    /// `text`; `raw` is scratch.
    pub(crate) fn read_text(
        &mut self,
        buf: &mut Vec<u8>,
        element: &str,
        raw: &mut Vec<u8>,
        text: &mut String,
    ) -> StorageResult<()> {
        // The character data before the first markup, read raw (normally all of it).
        let start = self.r.buffer_position();
        raw.clear();
        self.raw_text(raw)?;
        if !raw.is_empty() {
            let t = std::str::from_utf8(raw)
                .map_err(|e| self.corrupt(start + e.valid_up_to() as u64, "invalid UTF-8"))?;
            unescape_into(t, text).map_err(|(i, what)| self.corrupt(start + i as u64, what))?;
        }
        // Then events up to the end tag (CDATA, comments and the text after them keep their
        // whitespace: no skipping meanwhile).
        self.skip_blanks = false;
        let res = self.read_text_events(buf, element, text);
        self.skip_blanks = true;
        res
    }

    fn read_text_events(
        &mut self,
        buf: &mut Vec<u8>,
        element: &str,
        text: &mut String,
    ) -> StorageResult<()> {
        loop {
            match self.next(buf)? {
                Event::Text(t) => text.push_str(&t.xml10_content()),
                Event::CData(c) => text.push_str(&c.xml10_content()),
                Event::GeneralRef(r) => match resolve_ref(&r) {
                    Ok(c) => text.push_str(c.as_str()),
                    Err(what) => return Err(self.corrupt(self.at, what)),
                },
                Event::End(_) => return Ok(()),
                Event::Start(e) | Event::Empty(e) => {
                    let what = format!(
                        "unsupported element <{}> inside <{element}>",
                        e.name().as_ref()
                    );
                    return Err(self.corrupt(self.at, what));
                }
                Event::Eof => return Err(self.eof_inside(element)),
                _ => {}
            }
        }
    }

    /// Takes one `<data key="ID">text</data>` (or `<data key="ID" />`) straight from the
    /// buffered input when it is all there in exactly that form, as networkx writes it: the
    /// common case costs no XML events. The key id and unescaped text go to `key_id` and
    /// `text`; returns the offset of the `<data>` tag. `Ok(None)`, with nothing consumed, for
    /// anything else (which the event path then reads).
    pub(crate) fn fast_data(
        &mut self,
        key_id: &mut String,
        text: &mut String,
    ) -> StorageResult<Option<u64>> {
        const OPEN: &[u8] = b"<data key=\"";
        const CLOSE: &[u8] = b"</data>";
        self.skip_whitespace()?;
        let at = self.r.buffer_position();
        let path = &self.path;
        let mut s = self.r.stream();
        let avail = match s.fill_buf() {
            Ok(b) => b,
            Err(_) => return Ok(None),
        };
        let Some(rest) = avail.strip_prefix(OPEN) else {
            return Ok(None);
        };
        let Some(q) = memchr::memchr(b'"', rest) else {
            return Ok(None);
        };
        let (id, after) = rest.split_at(q);
        let after = &after[1..];
        if id
            .iter()
            .any(|b| matches!(b, b'&' | b'<' | b'\t' | b'\n' | b'\r'))
        {
            return Ok(None);
        }
        let (empty, tag_end) = if after.starts_with(b">") {
            (false, 1)
        } else if after.starts_with(b" />") {
            (true, 3)
        } else if after.starts_with(b"/>") {
            (true, 2)
        } else {
            return Ok(None);
        };
        let body = &after[tag_end..];
        let (body_text, used) = if empty {
            (&body[..0], OPEN.len() + q + 1 + tag_end)
        } else {
            let Some(lt) = memchr::memchr(b'<', body) else {
                return Ok(None);
            };
            if !body[lt..].starts_with(CLOSE) {
                return Ok(None);
            }
            (&body[..lt], OPEN.len() + q + 1 + tag_end + lt + CLOSE.len())
        };
        let Ok(id) = std::str::from_utf8(id) else {
            return Ok(None);
        };
        key_id.clear();
        key_id.push_str(id);
        text.clear();
        let text_at = at + (OPEN.len() + q + 1 + tag_end) as u64;
        let raw = std::str::from_utf8(body_text).map_err(|e| {
            StorageError::corrupt(
                path,
                format!("byte {}: invalid UTF-8", text_at + e.valid_up_to() as u64),
            )
        })?;
        unescape_into(raw, text).map_err(|(i, what)| {
            StorageError::corrupt(path, format!("byte {}: {what}", text_at + i as u64))
        })?;
        s.consume(used);
        Ok(Some(at))
    }

    pub(crate) fn bad_attr(&self, at: u64, err: impl Display) -> StorageError {
        self.corrupt(at, format!("malformed attribute: {err}"))
    }

    pub(crate) fn eof_inside(&self, element: &str) -> StorageError {
        self.corrupt(
            self.r.buffer_position(),
            format!("unexpected end of file inside <{element}> (truncated file?)"),
        )
    }

    /// Skips the rest of an element whose start tag was just read.
    pub(crate) fn skip_subtree(&mut self, buf: &mut Vec<u8>, element: &str) -> StorageResult<()> {
        let mut depth = 1usize;
        while depth > 0 {
            match self.next(buf)? {
                Event::Start(_) => depth += 1,
                Event::End(_) => depth -= 1,
                Event::Eof => return Err(self.eof_inside(element)),
                _ => {}
            }
        }
        Ok(())
    }
}

fn xml_error(path: &Path, e: quick_xml::Error, at: u64, err_at: u64) -> StorageError {
    use quick_xml::encoding::EncodingError;
    match e {
        quick_xml::Error::Io(io) => {
            StorageError::io(path, io::Error::new(io.kind(), io.to_string()))
        }
        quick_xml::Error::Encoding(EncodingError::Utf8(u)) => StorageError::corrupt(
            path,
            format!("byte {}: invalid UTF-8", at + u.valid_up_to() as u64),
        ),
        other => {
            let off = err_at.max(at);
            let what = match &other {
                quick_xml::Error::Syntax(_) => "malformed or truncated XML",
                _ => "malformed XML",
            };
            StorageError::corrupt(path, format!("byte {off}: {what}: {other}"))
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tag {
    Key,
    Default,
    Graph,
    Node,
    Edge,
    Data,
    HyperEdge,
    Other,
}

pub(crate) fn tag(e: &BytesStart<'_>) -> Tag {
    match e.local_name().as_ref() {
        "key" => Tag::Key,
        "default" => Tag::Default,
        "graph" => Tag::Graph,
        "node" => Tag::Node,
        "edge" => Tag::Edge,
        "data" => Tag::Data,
        "hyperedge" => Tag::HyperEdge,
        _ => Tag::Other,
    }
}

/// Which `<key for="…">`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyFor {
    Node,
    Edge,
    Other,
}

/// A `<key>` of the file.
pub(crate) struct FileKey {
    pub(crate) name: Box<str>,
    pub(crate) ty: AttrType,
    /// The graph's key for (name, scope, ty), by [`Scope::index`], once used.
    typed: [Option<u32>; 3],
    /// The graph's string key for (name, scope), for empty `<data>`.
    empty: [Option<u32>; 3],
}

/// Whose `<data>` is being read, for messages.
#[derive(Debug, Clone, Copy)]
enum Owner {
    Graph,
    Node,
    Edge,
}

impl Owner {
    fn scope(self) -> Scope {
        match self {
            Owner::Graph => Scope::Graph,
            Owner::Node => Scope::Node,
            Owner::Edge => Scope::Edge,
        }
    }
}

/// One element's start tag, classified.
enum Item {
    Start(Tag),
    Empty(Tag),
}

struct Loader {
    g: Graph,
    keys: HashMap<String, FileKey>,
    /// Scratch: the current element's encoded properties, text, ids.
    blob: Vec<u8>,
    raw: Vec<u8>,
    text: String,
    key_id: String,
    id: String,
    src: String,
    tgt: String,
    other: String,
    /// By node slot: declared by a `<node>` (not only named by an edge).
    declared: Vec<bool>,
    /// Node slots in order of their first `<node>`.
    decl_order: Vec<u32>,
    edge_seen: bool,
    node_after_edge: bool,
    /// `<edge id="…">` values, set as the property `id` at the end (as networkx does).
    edge_ids: Vec<(u32, String)>,
    graphs: u32,
}

impl Loader {
    fn new() -> Loader {
        Loader {
            g: Graph::new(),
            keys: HashMap::new(),
            blob: Vec::new(),
            raw: Vec::new(),
            text: String::new(),
            key_id: String::new(),
            id: String::new(),
            src: String::new(),
            tgt: String::new(),
            other: String::new(),
            declared: Vec::new(),
            decl_order: Vec::new(),
            edge_seen: false,
            node_after_edge: false,
            edge_ids: Vec::new(),
            graphs: 0,
        }
    }

    fn owner_text(&self, owner: Owner) -> String {
        match owner {
            Owner::Graph => "graph".to_owned(),
            Owner::Node => format!("node {:?}", self.id),
            Owner::Edge => format!("edge {:?} – {:?}", self.src, self.tgt),
        }
    }

    /// Reads the next event inside `element`: a classified start tag (its attributes handled by
    /// `on_start` while the tag is alive), `None` at the end tag. Other content is skipped.
    fn next_child<R: BufRead>(
        &mut self,
        x: &mut Xml<R>,
        buf: &mut Vec<u8>,
        element: &str,
        on_start: impl FnOnce(&mut Self, &Xml<R>, Tag, &BytesStart<'_>) -> StorageResult<()>,
    ) -> StorageResult<Option<Item>> {
        loop {
            let item = match x.next(buf)? {
                Event::Start(e) => {
                    let t = tag(&e);
                    on_start(self, x, t, &e)?;
                    self.other.clear();
                    self.other.push_str(e.name().as_ref());
                    Item::Start(t)
                }
                Event::Empty(e) => {
                    let t = tag(&e);
                    on_start(self, x, t, &e)?;
                    Item::Empty(t)
                }
                Event::End(_) => return Ok(None),
                Event::Eof => return Err(x.eof_inside(element)),
                _ => continue,
            };
            return Ok(Some(item));
        }
    }

    /// Skips an element whose start tag `next_child` returned.
    fn skip<R: BufRead>(&mut self, x: &mut Xml<R>, buf: &mut Vec<u8>) -> StorageResult<()> {
        let name = std::mem::take(&mut self.other);
        let res = x.skip_subtree(buf, &name);
        self.other = name;
        res
    }

    /// Children of `<graphml>` up to its end tag.
    fn root<R: BufRead>(&mut self, x: &mut Xml<R>, buf: &mut Vec<u8>) -> StorageResult<()> {
        let mut key = None;
        loop {
            let item = self.next_child(x, buf, "graphml", |l, x, t, e| {
                match t {
                    Tag::Key => key = Some(parse_key_attrs(x, e, x.at)?),
                    Tag::Graph => {
                        check_graph_attrs(x, e, x.at)?;
                        l.graphs += 1;
                        if l.graphs > 1 {
                            return Err(x.corrupt(
                                x.at,
                                "a second <graph> element (one graph per file is supported)",
                            ));
                        }
                    }
                    _ => {}
                }
                Ok(())
            })?;
            match item {
                None => return Ok(()),
                Some(Item::Start(Tag::Key)) | Some(Item::Empty(Tag::Key)) => {
                    let empty = matches!(item, Some(Item::Empty(_)));
                    if let Some(k) = key.take() {
                        self.key(x, buf, k, empty)?;
                    }
                }
                Some(Item::Start(Tag::Graph)) => self.graph(x, buf)?,
                Some(Item::Start(_)) => self.skip(x, buf)?,
                Some(Item::Empty(_)) => {}
            }
        }
    }

    /// A `<key>`: its declaration and optional `<default>`.
    fn key<R: BufRead>(
        &mut self,
        x: &mut Xml<R>,
        buf: &mut Vec<u8>,
        key: (String, KeyFor, FileKey, u64),
        empty: bool,
    ) -> StorageResult<()> {
        let (id, key_for, fk, at) = key;
        let mut default: Option<Option<String>> = None;
        if !empty {
            while let Some(item) = self.next_child(x, buf, "key", |_, _, _, _| Ok(()))? {
                match item {
                    Item::Start(Tag::Default) => {
                        self.text.clear();
                        self.read_text(x, buf, "default")?;
                        default = Some(Some(std::mem::take(&mut self.text)));
                    }
                    Item::Empty(Tag::Default) => default = Some(None),
                    Item::Start(_) => self.skip(x, buf)?,
                    Item::Empty(_) => {}
                }
            }
        }
        if let Some(text) = default {
            let scope = match key_for {
                KeyFor::Node => Some(Scope::Node),
                KeyFor::Edge => Some(Scope::Edge),
                // networkx keeps defaults of node and edge keys only.
                KeyFor::Other => None,
            };
            let val = key_default(x, at, &id, &fk, text)?;
            if let Some(scope) = scope {
                self.g.set_default(&fk.name, scope, val)?;
            }
        }
        self.keys.insert(id, fk);
        Ok(())
    }

    /// Text content up to the end tag of `element` (whose start tag was just read), appended to
    /// `self.text`.
    fn read_text<R: BufRead>(
        &mut self,
        x: &mut Xml<R>,
        buf: &mut Vec<u8>,
        element: &str,
    ) -> StorageResult<()> {
        x.read_text(buf, element, &mut self.raw, &mut self.text)
    }

    /// Takes the `key` attribute of a `<data>` start tag into `self.key_id`.
    fn data_attrs<R: BufRead>(
        &mut self,
        x: &Xml<R>,
        e: &BytesStart<'_>,
        owner: Owner,
    ) -> StorageResult<()> {
        if !data_key_attr(x, e, &mut self.key_id)? {
            let what = format!("{}: <data> without a key attribute", self.owner_text(owner));
            return Err(x.corrupt(x.at, what));
        }
        Ok(())
    }

    /// The rest of a `<data>` of `owner` (key id in `self.key_id`, start tag at `at`): appends
    /// the converted property to `self.blob`.
    fn data<R: BufRead>(
        &mut self,
        x: &mut Xml<R>,
        buf: &mut Vec<u8>,
        owner: Owner,
        at: u64,
        empty: bool,
    ) -> StorageResult<()> {
        self.text.clear();
        if !empty {
            self.read_text(x, buf, "data")?;
        }
        self.store_data(&x.path, owner, at)
    }

    /// Converts `self.text` by the key `self.key_id` and appends the property to `self.blob`.
    fn store_data(&mut self, path: &Path, owner: Owner, at: u64) -> StorageResult<()> {
        let corrupt = |what: String| StorageError::corrupt(path, format!("byte {at}: {what}"));
        let scope = owner.scope();
        let Some(fk) = self.keys.get_mut(self.key_id.as_str()) else {
            let what = format!(
                "{}: <data> refers to undeclared key {:?}",
                self.owner_text(owner),
                self.key_id
            );
            return Err(corrupt(what));
        };
        let si = scope.index();
        if self.text.is_empty() {
            // networkx: a <data> without text is the string "" whatever the key's type.
            let key = match fk.empty[si] {
                Some(k) => k,
                None => {
                    let k = self.g.intern_key(&fk.name, scope, AttrType::String)?;
                    fk.empty[si] = Some(k);
                    k
                }
            };
            put_attr(&mut self.blob, key, Val::Str(""));
            return Ok(());
        }
        let val = match convert(&self.text, fk.ty) {
            Ok(v) => v,
            Err(why) => {
                let (name, ty) = (fk.name.to_string(), fk.ty.graphml_name());
                let what = format!(
                    "{}: <data key={:?}> ({name}, {ty}): {:?} {why}",
                    self.owner_text(owner),
                    self.key_id,
                    shorten(&self.text)
                );
                return Err(corrupt(what));
            }
        };
        let key = match fk.typed[si] {
            Some(k) => k,
            None => {
                let k = self.g.intern_key(&fk.name, scope, fk.ty)?;
                fk.typed[si] = Some(k);
                k
            }
        };
        put_attr(&mut self.blob, key, val);
        Ok(())
    }

    /// Children of `<graph>` up to its end tag.
    fn graph<R: BufRead>(&mut self, x: &mut Xml<R>, buf: &mut Vec<u8>) -> StorageResult<()> {
        loop {
            let mut at = 0;
            let item = self.next_child(x, buf, "graph", |l, x, t, e| {
                at = x.at;
                match t {
                    Tag::Node => l.node_attrs(x, e),
                    Tag::Edge => l.edge_attrs(x, e),
                    Tag::Data => {
                        l.blob.clear();
                        l.data_attrs(x, e, Owner::Graph)
                    }
                    Tag::HyperEdge => Err(x.corrupt(x.at, "hyperedges are not supported")),
                    _ => Ok(()),
                }
            })?;
            let (t, empty) = match item {
                None => return Ok(()),
                Some(Item::Start(t)) => (t, false),
                Some(Item::Empty(t)) => (t, true),
            };
            match t {
                Tag::Node => self.node(x, buf, empty)?,
                Tag::Edge => self.edge(x, buf, empty)?,
                Tag::Data => {
                    self.data(x, buf, Owner::Graph, at, empty)?;
                    let blob = std::mem::take(&mut self.blob);
                    self.g.merge_graph_attrs(&blob);
                    self.blob = blob;
                }
                _ if !empty => self.skip(x, buf)?,
                _ => {}
            }
        }
    }

    /// The children of a `<node>` or `<edge>` (its start tag just read, not empty): their
    /// `<data>` into `self.blob`.
    fn children<R: BufRead>(
        &mut self,
        x: &mut Xml<R>,
        buf: &mut Vec<u8>,
        owner: Owner,
        element: &str,
    ) -> StorageResult<()> {
        loop {
            if self.fast_data(x, owner)? {
                continue;
            }
            let mut at = 0;
            let item = self.next_child(x, buf, element, |l, x, t, e| {
                at = x.at;
                match t {
                    Tag::Data => l.data_attrs(x, e, owner),
                    Tag::Graph => {
                        let what =
                            format!("{}: nested graphs are not supported", l.owner_text(owner));
                        Err(x.corrupt(x.at, what))
                    }
                    _ => Ok(()),
                }
            })?;
            match item {
                None => return Ok(()),
                Some(Item::Start(Tag::Data)) => self.data(x, buf, owner, at, false)?,
                Some(Item::Empty(Tag::Data)) => self.data(x, buf, owner, at, true)?,
                Some(Item::Start(_)) => self.skip(x, buf)?,
                Some(Item::Empty(_)) => {}
            }
        }
    }

    /// A `<data>` in networkx's exact form, read without XML events (see [`Xml::fast_data`]).
    fn fast_data<R: BufRead>(&mut self, x: &mut Xml<R>, owner: Owner) -> StorageResult<bool> {
        match x.fast_data(&mut self.key_id, &mut self.text)? {
            Some(at) => {
                self.store_data(&x.path, owner, at)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Takes the `id` of a `<node>` start tag into `self.id`.
    fn node_attrs<R: BufRead>(&mut self, x: &Xml<R>, e: &BytesStart<'_>) -> StorageResult<()> {
        node_id_attr(x, e, &mut self.id)
    }

    fn node<R: BufRead>(
        &mut self,
        x: &mut Xml<R>,
        buf: &mut Vec<u8>,
        empty: bool,
    ) -> StorageResult<()> {
        self.blob.clear();
        if !empty {
            self.children(x, buf, Owner::Node, "node")?;
        }
        let before = self.g.node_slots();
        let blob = std::mem::take(&mut self.blob);
        let slot = self.g.merge_node(&self.id, &blob)?;
        self.blob = blob;
        if self.g.node_slots() > before {
            self.declared.push(true);
            self.decl_order.push(slot);
        } else if let Some(d) = self.declared.get_mut(slot as usize)
            && !*d
        {
            *d = true;
            self.decl_order.push(slot);
        }
        if self.edge_seen {
            self.node_after_edge = true;
        }
        Ok(())
    }

    /// Takes `source`, `target` and `id` of an `<edge>` start tag (the id into `self.key_id`
    /// until the edge is stored).
    fn edge_attrs<R: BufRead>(&mut self, x: &Xml<R>, e: &BytesStart<'_>) -> StorageResult<()> {
        edge_attrs(x, e, &mut self.src, &mut self.tgt, &mut self.key_id)
    }

    fn edge<R: BufRead>(
        &mut self,
        x: &mut Xml<R>,
        buf: &mut Vec<u8>,
        empty: bool,
    ) -> StorageResult<()> {
        self.edge_seen = true;
        let edge_id = (!self.key_id.is_empty()).then(|| self.key_id.clone());
        self.blob.clear();
        if !empty {
            self.children(x, buf, Owner::Edge, "edge")?;
        }
        let u = self.implicit_node(true)?;
        let v = self.implicit_node(false)?;
        let blob = std::mem::take(&mut self.blob);
        let slot = self.g.merge_edge(u, v, &blob)?;
        self.blob = blob;
        if let Some(id) = edge_id {
            self.edge_ids.push((slot, id));
        }
        Ok(())
    }

    /// The slot of the edge's source (or target), created without properties when missing.
    fn implicit_node(&mut self, source: bool) -> StorageResult<u32> {
        let name = if source { &self.src } else { &self.tgt };
        let before = self.g.node_slots();
        let slot = self.g.merge_node(name, &[])?;
        if self.g.node_slots() > before {
            self.declared.push(false);
        }
        Ok(slot)
    }

    fn finish(mut self) -> StorageResult<Graph> {
        if !self.edge_ids.is_empty() {
            let key = self.g.intern_key("id", Scope::Edge, AttrType::String)?;
            let mut blob = Vec::new();
            for (slot, id) in std::mem::take(&mut self.edge_ids) {
                blob.clear();
                put_attr(&mut blob, key, Val::Str(&id));
                self.g.merge_edge_attrs(slot, &blob);
            }
        }
        if self.node_after_edge {
            // networkx adds every <node> first, then the edges (creating the nodes they name).
            let mut order = std::mem::take(&mut self.decl_order);
            order.extend(
                self.declared
                    .iter()
                    .enumerate()
                    .filter(|(_, d)| !**d)
                    .map(|(s, _)| s as u32),
            );
            self.declared = Vec::new();
            self.g.reorder_nodes(&order);
        }
        self.g.canonicalize_adjacency();
        Ok(self.g)
    }
}

/// Takes the `id` of a `<node>` start tag into `id`.
pub(crate) fn node_id_attr<R: BufRead>(
    x: &Xml<R>,
    e: &BytesStart<'_>,
    id: &mut String,
) -> StorageResult<()> {
    id.clear();
    let mut has_id = false;
    for a in e.attributes() {
        let a = a.map_err(|err| x.bad_attr(x.at, err))?;
        if a.key.as_ref() == "id" {
            let v = a
                .normalized_value(quick_xml::XmlVersion::Explicit1_0)
                .map_err(|err| x.bad_attr(x.at, err))?;
            id.push_str(&v);
            has_id = true;
        }
    }
    if !has_id {
        return Err(x.corrupt(x.at, "<node> without an id"));
    }
    Ok(())
}

/// Takes `source`, `target` and `id` (empty when absent) of an `<edge>` start tag.
pub(crate) fn edge_attrs<R: BufRead>(
    x: &Xml<R>,
    e: &BytesStart<'_>,
    src: &mut String,
    tgt: &mut String,
    id: &mut String,
) -> StorageResult<()> {
    src.clear();
    tgt.clear();
    id.clear();
    let (mut has_src, mut has_tgt) = (false, false);
    for a in e.attributes() {
        let a = a.map_err(|err| x.bad_attr(x.at, err))?;
        let key = a.key.as_ref();
        if !matches!(key, "source" | "target" | "id" | "directed") {
            continue;
        }
        let v = a
            .normalized_value(quick_xml::XmlVersion::Explicit1_0)
            .map_err(|err| x.bad_attr(x.at, err))?;
        match key {
            "source" => {
                src.push_str(&v);
                has_src = true;
            }
            "target" => {
                tgt.push_str(&v);
                has_tgt = true;
            }
            "id" => id.push_str(&v),
            "directed" if v == "true" => {
                return Err(x.corrupt(
                    x.at,
                    "a directed edge (directed=\"true\") in an undirected graph",
                ));
            }
            _ => {}
        }
    }
    if !has_src || !has_tgt {
        let missing = if has_src { "target" } else { "source" };
        return Err(x.corrupt(x.at, format!("<edge> without a {missing}")));
    }
    Ok(())
}

/// Takes the `key` attribute of a `<data>` start tag into `key_id`; `Ok(false)` without one.
pub(crate) fn data_key_attr<R: BufRead>(
    x: &Xml<R>,
    e: &BytesStart<'_>,
    key_id: &mut String,
) -> StorageResult<bool> {
    key_id.clear();
    let mut found = false;
    for a in e.attributes() {
        let a = a.map_err(|err| x.bad_attr(x.at, err))?;
        if a.key.as_ref() == "key" {
            let v = a
                .normalized_value(quick_xml::XmlVersion::Explicit1_0)
                .map_err(|err| x.bad_attr(x.at, err))?;
            key_id.push_str(&v);
            found = true;
        }
    }
    Ok(found)
}

/// The value of a key's `<default>` (`None`: an empty `<default/>`), converted by the key's type.
pub(crate) fn key_default<R: BufRead>(
    x: &Xml<R>,
    at: u64,
    id: &str,
    fk: &FileKey,
    text: Option<String>,
) -> StorageResult<OwnedVal> {
    let val = match text.as_deref() {
        None | Some("") if fk.ty == AttrType::String => Some(OwnedVal::Str("".into())),
        None | Some("") => None,
        Some(t) => convert(t, fk.ty).ok().map(Val::to_owned_val),
    };
    val.ok_or_else(|| {
        x.corrupt(
            at,
            format!(
                "<key id={id:?}> ({}, {}): invalid <default> {:?}",
                fk.name,
                fk.ty.graphml_name(),
                text.unwrap_or_default()
            ),
        )
    })
}

pub(crate) fn parse_key_attrs<R: BufRead>(
    x: &Xml<R>,
    e: &BytesStart<'_>,
    at: u64,
) -> StorageResult<(String, KeyFor, FileKey, u64)> {
    let (mut id, mut key_for, mut name, mut ty, mut yfiles) =
        (None, KeyFor::Other, None, None, None);
    for a in e.attributes() {
        let a = a.map_err(|err| x.bad_attr(at, err))?;
        let v = a
            .normalized_value(quick_xml::XmlVersion::Explicit1_0)
            .map_err(|err| x.bad_attr(at, err))?;
        match a.key.as_ref() {
            "id" => id = Some(v.into_owned()),
            "for" => {
                key_for = match &*v {
                    "node" => KeyFor::Node,
                    "edge" => KeyFor::Edge,
                    _ => KeyFor::Other,
                }
            }
            "attr.name" => name = Some(v.into_owned()),
            "attr.type" => ty = Some(v.into_owned()),
            "yfiles.type" => yfiles = Some(v.into_owned()),
            _ => {}
        }
    }
    let Some(id) = id else {
        return Err(x.corrupt(at, "<key> without an id"));
    };
    let (name, ty) = match (yfiles, name) {
        (Some(y), _) => (y, AttrType::String),
        (None, Some(name)) => {
            let ty = match ty.as_deref() {
                None | Some("string") | Some("yfiles") => AttrType::String,
                Some("boolean") => AttrType::Boolean,
                Some("int") | Some("long") | Some("integer") => AttrType::Long,
                Some("float") | Some("double") => AttrType::Double,
                Some(other) => {
                    return Err(
                        x.corrupt(at, format!("<key id={id:?}>: unknown attr.type {other:?}"))
                    );
                }
            };
            (name, ty)
        }
        (None, None) => return Err(x.corrupt(at, format!("<key id={id:?}> without attr.name"))),
    };
    let fk = FileKey {
        name: name.into(),
        ty,
        typed: [None; 3],
        empty: [None; 3],
    };
    Ok((id, key_for, fk, at))
}

pub(crate) fn check_graph_attrs<R: BufRead>(
    x: &Xml<R>,
    e: &BytesStart<'_>,
    at: u64,
) -> StorageResult<()> {
    for a in e.attributes() {
        let a = a.map_err(|err| x.bad_attr(at, err))?;
        if a.key.as_ref() == "edgedefault" && &*a.value == "directed" {
            return Err(x.corrupt(
                at,
                "a directed graph (edgedefault=\"directed\"); LightRAG's graph is undirected",
            ));
        }
    }
    Ok(())
}

/// A resolved entity or character reference.
enum Resolved {
    Str(&'static str),
    Char(char, [u8; 4]),
}

impl Resolved {
    fn as_str(&self) -> &str {
        match self {
            Resolved::Str(s) => s,
            Resolved::Char(c, b) => b
                .get(..c.len_utf8())
                .and_then(|b| std::str::from_utf8(b).ok())
                .unwrap_or(""),
        }
    }
}

/// Resolves `&name;` (without `&` and `;`): the five XML entities and character references
/// to characters XML allows.
fn resolve_name(name: &str) -> Result<Resolved, String> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix('x') {
            Some(hex) if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                u32::from_str_radix(hex, 16).ok()
            }
            None if !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit()) => num.parse().ok(),
            _ => None,
        };
        return match code.and_then(char::from_u32) {
            Some(c) if is_xml_char(c) => {
                let mut b = [0u8; 4];
                c.encode_utf8(&mut b);
                Ok(Resolved::Char(c, b))
            }
            _ => Err(format!("invalid character reference &{name};")),
        };
    }
    match name {
        "lt" => Ok(Resolved::Str("<")),
        "gt" => Ok(Resolved::Str(">")),
        "amp" => Ok(Resolved::Str("&")),
        "quot" => Ok(Resolved::Str("\"")),
        "apos" => Ok(Resolved::Str("'")),
        _ => Err(format!("unknown entity &{name};")),
    }
}

fn resolve_ref(r: &BytesRef<'_>) -> Result<Resolved, String> {
    resolve_name(r)
}

/// XML 1.0's `Char` production.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
}

/// Appends character data (no markup) to `out`: references resolved, line ends normalised
/// (`\r\n` and `\r` → `\n`). An error carries the byte index in `raw`.
fn unescape_into(raw: &str, out: &mut String) -> Result<(), (usize, String)> {
    let b = raw.as_bytes();
    let mut i = 0;
    while let Some(j) = memchr::memchr2(b'&', b'\r', &b[i..]) {
        let p = i + j;
        out.push_str(&raw[i..p]);
        if b[p] == b'\r' {
            out.push('\n');
            i = p + 1;
            if b.get(i) == Some(&b'\n') {
                i += 1;
            }
            continue;
        }
        let Some(len) = memchr::memchr2(b';', b'&', &b[p + 1..]).filter(|&l| b[p + 1 + l] == b';')
        else {
            return Err((
                p,
                "malformed XML: entity or character reference not closed (no ';')".to_owned(),
            ));
        };
        let name = &raw[p + 1..p + 1 + len];
        match resolve_name(name) {
            Ok(r) => out.push_str(r.as_str()),
            Err(what) => return Err((p, what)),
        }
        i = p + 2 + len;
    }
    out.push_str(&raw[i..]);
    Ok(())
}

pub(crate) fn shorten(s: &str) -> Cow<'_, str> {
    if s.chars().count() > 60 {
        Cow::Owned(format!("{}…", s.chars().take(60).collect::<String>()))
    } else {
        Cow::Borrowed(s)
    }
}

/// Converts `<data>` text as networkx does (`int(text)`, `float(text)`, boolean table).
pub(crate) fn convert(text: &str, ty: AttrType) -> Result<Val<'_>, &'static str> {
    match ty {
        AttrType::String => Ok(Val::Str(text)),
        AttrType::Long => parse_py_int(text).map(Val::Long),
        AttrType::Double => parse_py_float(text).map(Val::Double),
        AttrType::Boolean => match text.to_lowercase().as_str() {
            "true" | "1" => Ok(Val::Bool(true)),
            "false" | "0" => Ok(Val::Bool(false)),
            _ => Err("is not a boolean"),
        },
    }
}

/// Python's `str.strip()` whitespace.
fn py_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

/// Removes PEP 515 digit separators; `None` when one is misplaced.
fn remove_underscores(s: &str) -> Option<Cow<'_, str>> {
    if !s.contains('_') {
        return Some(Cow::Borrowed(s));
    }
    let b = s.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if c == b'_' {
            let prev = i.checked_sub(1).and_then(|j| b.get(j));
            let next = b.get(i + 1);
            if !(prev.is_some_and(u8::is_ascii_digit) && next.is_some_and(u8::is_ascii_digit)) {
                return None;
            }
        }
    }
    Some(Cow::Owned(s.replace('_', "")))
}

/// Python's `int(text)` for base-10 text that fits an i64.
pub(crate) fn parse_py_int(text: &str) -> Result<i64, &'static str> {
    let s = remove_underscores(py_strip(text)).ok_or("is not an integer")?;
    let digits = s.strip_prefix(['+', '-']).unwrap_or(&s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("is not an integer");
    }
    s.parse::<i64>()
        .map_err(|_| "is out of range for a 64-bit integer")
}

/// Python's `float(text)`.
pub(crate) fn parse_py_float(text: &str) -> Result<f64, &'static str> {
    let s = remove_underscores(py_strip(text)).ok_or("is not a number")?;
    s.parse::<f64>().map_err(|_| "is not a number")
}

// ------------------------------------------------------------------------------------------------
// Writer
// ------------------------------------------------------------------------------------------------

pub(crate) const HEADER: &str = "<?xml version='1.0' encoding='utf-8'?>\n<graphml xmlns=\"http://graphml.graphdrawing.org/xmlns\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:schemaLocation=\"http://graphml.graphdrawing.org/xmlns http://graphml.graphdrawing.org/xmlns/1.0/graphml.xsd\">\n";

/// Writes `g` as `nx.write_graphml_xml` writes the equivalent `nx.Graph`.
pub(crate) fn write<W: Write>(g: &Graph, w: &mut W) -> io::Result<()> {
    let keys = g.keys();
    // Key ids: first use over graph attributes, nodes, then edges (networkx's order).
    let mut id_of: Vec<u32> = vec![u32::MAX; keys.len()];
    let mut by_id: Vec<u32> = Vec::new();
    let mut see = |bytes: &[u8]| {
        for (k, _) in raw_attrs(keys, bytes) {
            if let Some(slot) = id_of.get_mut(k as usize)
                && *slot == u32::MAX
            {
                *slot = by_id.len() as u32;
                by_id.push(k);
            }
        }
    };
    see(g.graph_attr_bytes());
    for slot in 0..g.node_slots() as u32 {
        if let Some(n) = g.node(slot) {
            see(n.attr_bytes());
        }
    }
    for (_, _, e) in g.edges_from(0, 0) {
        if let Some(e) = g.edge(e) {
            see(&e.attrs);
        }
    }
    // `<data key="dN"` per key index.
    let data_open: Vec<String> = id_of
        .iter()
        .map(|&id| format!("<data key=\"d{id}\""))
        .collect();

    w.write_all(HEADER.as_bytes())?;
    let mut num = String::new();
    for (id, &k) in by_id.iter().enumerate().rev() {
        let Some(def) = keys.get(k as usize) else {
            continue;
        };
        write!(
            w,
            "  <key id=\"d{id}\" for=\"{}\" attr.name=\"",
            def.scope.as_str()
        )?;
        write_attr_escaped(w, &def.name)?;
        write!(w, "\" attr.type=\"{}\"", def.ty.graphml_name())?;
        match g.default_for_key(k) {
            None => w.write_all(b" />\n")?,
            Some(d) => {
                w.write_all(b">\n    <default")?;
                write_value(w, d.as_val(), &mut num, "default")?;
                w.write_all(b"\n  </key>\n")?;
            }
        }
    }

    let has_body = g.node_count() > 0 || !g.graph_attr_bytes().is_empty();
    if !has_body {
        w.write_all(b"  <graph edgedefault=\"undirected\" />\n</graphml>\n")?;
        return Ok(());
    }
    w.write_all(b"  <graph edgedefault=\"undirected\">\n")?;
    for slot in 0..g.node_slots() as u32 {
        let Some(n) = g.node(slot) else { continue };
        w.write_all(b"    <node id=\"")?;
        write_attr_escaped(w, n.name())?;
        write_element_data(w, keys, n.attr_bytes(), &data_open, "node", &mut num)?;
    }
    for (u, v, e) in g.edges_from(0, 0) {
        let (Some(un), Some(vn), Some(edge)) = (g.node(u), g.node(v), g.edge(e)) else {
            continue;
        };
        w.write_all(b"    <edge source=\"")?;
        write_attr_escaped(w, un.name())?;
        w.write_all(b"\" target=\"")?;
        write_attr_escaped(w, vn.name())?;
        write_element_data(w, keys, &edge.attrs, &data_open, "edge", &mut num)?;
    }
    for (k, v) in attrs(keys, g.graph_attr_bytes()) {
        w.write_all(b"    ")?;
        w.write_all(
            data_open
                .get(k as usize)
                .map_or("<data", String::as_str)
                .as_bytes(),
        )?;
        write_value(w, v, &mut num, "data")?;
        w.write_all(b"\n")?;
    }
    w.write_all(b"  </graph>\n</graphml>\n")
}

/// Closes a `<node id="…` / `<edge … target="…` start tag and writes its `<data>` children.
pub(crate) fn write_element_data<W: Write>(
    w: &mut W,
    keys: &[super::graph::KeyDef],
    bytes: &[u8],
    data_open: &[String],
    element: &str,
    num: &mut String,
) -> io::Result<()> {
    if bytes.is_empty() {
        return w.write_all(b"\" />\n");
    }
    w.write_all(b"\">\n")?;
    for (k, v) in attrs(keys, bytes) {
        w.write_all(b"      ")?;
        w.write_all(
            data_open
                .get(k as usize)
                .map_or("<data", String::as_str)
                .as_bytes(),
        )?;
        write_value(w, v, num, "data")?;
        w.write_all(b"\n")?;
    }
    writeln!(w, "    </{element}>")
}

/// Finishes a `<data key="dN"` or `<default` start tag with the value: ` />` for an empty
/// string (ElementTree's short empty element), else `>text</tag>`.
fn write_value<W: Write>(w: &mut W, v: Val<'_>, num: &mut String, tag: &str) -> io::Result<()> {
    match v {
        Val::Str("") => w.write_all(b" />"),
        Val::Str(s) => {
            w.write_all(b">")?;
            write_text_escaped(w, s)?;
            write!(w, "</{tag}>")
        }
        other => {
            py_str(other, num);
            write!(w, ">{num}</{tag}>")
        }
    }
}

/// ElementTree's `_escape_cdata`.
fn write_text_escaped<W: Write>(w: &mut W, s: &str) -> io::Result<()> {
    let b = s.as_bytes();
    let mut start = 0;
    for i in memchr::memchr3_iter(b'&', b'<', b'>', b) {
        w.write_all(&b[start..i])?;
        w.write_all(match b[i] {
            b'&' => b"&amp;",
            b'<' => b"&lt;",
            _ => b"&gt;",
        })?;
        start = i + 1;
    }
    w.write_all(&b[start..])
}

/// ElementTree's `_escape_attrib` (Python ≥ 3.9: also `\r`, `\n`, `\t`).
pub(crate) fn write_attr_escaped<W: Write>(w: &mut W, s: &str) -> io::Result<()> {
    let b = s.as_bytes();
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        let rep: &[u8] = match c {
            b'&' => b"&amp;",
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            b'"' => b"&quot;",
            b'\r' => b"&#13;",
            b'\n' => b"&#10;",
            b'\t' => b"&#09;",
            _ => continue,
        };
        w.write_all(&b[start..i])?;
        w.write_all(rep)?;
        start = i + 1;
    }
    w.write_all(&b[start..])
}

/// Python's `str()` of a value into `num` (numbers and booleans).
fn py_str(v: Val<'_>, num: &mut String) {
    use std::fmt::Write as _;
    num.clear();
    match v {
        Val::Bool(true) => num.push_str("True"),
        Val::Bool(false) => num.push_str("False"),
        Val::Long(i) => {
            let _ = write!(num, "{i}");
        }
        Val::Double(f) => py_float_repr(f, num),
        Val::Str(s) => num.push_str(s),
    }
}

/// Python's `repr(float)` (shortest round-trip digits; exponent form below 1e-4 and from 1e16).
pub(crate) fn py_float_repr(x: f64, out: &mut String) {
    use std::fmt::Write as _;
    if x.is_nan() {
        out.push_str("nan");
        return;
    }
    if x.is_infinite() {
        out.push_str(if x > 0.0 { "inf" } else { "-inf" });
        return;
    }
    if x == 0.0 {
        out.push_str(if x.is_sign_negative() { "-0.0" } else { "0.0" });
        return;
    }
    let sci = format!("{x:e}");
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (neg, mant) = match mant.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mant),
    };
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let n = digits.len() as i32;
    let decpt = exp + 1;
    if neg {
        out.push('-');
    }
    if -4 < decpt && decpt <= 16 {
        if decpt <= 0 {
            out.push_str("0.");
            for _ in 0..-decpt {
                out.push('0');
            }
            out.push_str(&digits);
        } else if decpt >= n {
            out.push_str(&digits);
            for _ in 0..decpt - n {
                out.push('0');
            }
            out.push_str(".0");
        } else {
            let (a, b) = digits.split_at(decpt as usize);
            out.push_str(a);
            out.push('.');
            out.push_str(b);
        }
    } else {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::json::graph::Scope;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    const FILE: &str = "/data/rag/graph_chunk_entity_relation.graphml";

    fn parse(doc: &[u8]) -> StorageResult<Graph> {
        read(io::Cursor::new(doc), Path::new(FILE))
    }

    fn render(g: &Graph) -> Result<String, Box<dyn std::error::Error>> {
        let mut out = Vec::new();
        write(g, &mut out)?;
        Ok(String::from_utf8(out)?)
    }

    fn neighbours(g: &Graph, name: &str) -> Vec<String> {
        let Some(n) = g.find_node(name).and_then(|s| g.node(s)) else {
            return Vec::new();
        };
        n.adj
            .iter()
            .filter_map(|a| g.node(a.nbr).map(|n| n.name().to_owned()))
            .collect()
    }

    const MIXED_IN: &str = concat!(
        "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?>\n",
        "<!-- comment -->\n",
        "<graphml xmlns=\"http://graphml.graphdrawing.org/xmlns\">\n",
        "  <desc>ignored <b>stuff</b></desc>\n",
        "  <key id=\"zz\" for=\"node\" attr.name=\"created_at\" attr.type=\"int\"/>\n",
        "  <key id=\"k1\" for=\"node\" attr.name=\"description\" attr.type=\"string\"/>\n",
        "  <key id=\"k2\" for=\"node\" attr.name=\"ok\" attr.type=\"boolean\"/>\n",
        "  <key id=\"k3\" for=\"node\" attr.name=\"ratio\" attr.type=\"float\"/>\n",
        "  <graph edgedefault=\"undirected\">\n",
        "    <node id=\"x&#10;y\tz\"><data key=\"k1\">a&lt;SEP&gt;b &amp; c&#13;d\n",
        "e<![CDATA[<raw>]]><!-- c -->f</data><data key=\"zz\"> 1_000 </data><data key=\"k2\">TRUE</data><data key=\"k3\">1e-7</data></node>\n",
        "    <node id=\"empty\"><data key=\"zz\"></data><data key=\"k1\"/></node>\n",
        "    <node id=\"later\"><data key=\"k3\">5</data><data key=\"zz\">-3</data></node>\n",
        "  </graph>\n",
        "</graphml>\n",
    );

    const MIXED_OUT: &str = concat!(
        "<?xml version='1.0' encoding='utf-8'?>\n",
        "<graphml xmlns=\"http://graphml.graphdrawing.org/xmlns\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:schemaLocation=\"http://graphml.graphdrawing.org/xmlns http://graphml.graphdrawing.org/xmlns/1.0/graphml.xsd\">\n",
        "  <key id=\"d4\" for=\"node\" attr.name=\"created_at\" attr.type=\"string\" />\n",
        "  <key id=\"d3\" for=\"node\" attr.name=\"ratio\" attr.type=\"double\" />\n",
        "  <key id=\"d2\" for=\"node\" attr.name=\"ok\" attr.type=\"boolean\" />\n",
        "  <key id=\"d1\" for=\"node\" attr.name=\"created_at\" attr.type=\"long\" />\n",
        "  <key id=\"d0\" for=\"node\" attr.name=\"description\" attr.type=\"string\" />\n",
        "  <graph edgedefault=\"undirected\">\n",
        "    <node id=\"x&#10;y z\">\n",
        "      <data key=\"d0\">a&lt;SEP&gt;b &amp; c\r",
        "d\n",
        "e&lt;raw&gt;f</data>\n",
        "      <data key=\"d1\">1000</data>\n",
        "      <data key=\"d2\">True</data>\n",
        "      <data key=\"d3\">1e-07</data>\n",
        "    </node>\n",
        "    <node id=\"empty\">\n",
        "      <data key=\"d4\" />\n",
        "      <data key=\"d0\" />\n",
        "    </node>\n",
        "    <node id=\"later\">\n",
        "      <data key=\"d3\">5.0</data>\n",
        "      <data key=\"d1\">-3</data>\n",
        "    </node>\n",
        "  </graph>\n",
        "</graphml>\n",
    );

    const ORDER_IN: &str = concat!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
        "<graphml xmlns=\"http://graphml.graphdrawing.org/xmlns\">\n",
        "  <key id=\"w\" for=\"edge\" attr.name=\"weight\" attr.type=\"double\"/>\n",
        "  <key id=\"x\" for=\"edge\" attr.name=\"x\" attr.type=\"string\"/>\n",
        "  <graph edgedefault=\"undirected\">\n",
        "    <node id=\"a\"/>\n",
        "    <node id=\"b\"/>\n",
        "    <edge source=\"c\" target=\"b\"><data key=\"w\">1</data></edge>\n",
        "    <edge source=\"b\" target=\"a\"><data key=\"w\">2</data></edge>\n",
        "    <node id=\"c\"/>\n",
        "    <edge source=\"a\" target=\"d\"/>\n",
        "    <edge source=\"c\" target=\"a\"><data key=\"x\">q</data></edge>\n",
        "    <edge source=\"d\" target=\"b\"><data key=\"w\">3e-7</data><data key=\"x\">r</data></edge>\n",
        "    <edge source=\"e\" target=\"e\"/>\n",
        "    <node id=\"d\"/>\n",
        "  </graph>\n",
        "</graphml>\n",
    );

    const ORDER_OUT: &str = concat!(
        "<?xml version='1.0' encoding='utf-8'?>\n",
        "<graphml xmlns=\"http://graphml.graphdrawing.org/xmlns\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:schemaLocation=\"http://graphml.graphdrawing.org/xmlns http://graphml.graphdrawing.org/xmlns/1.0/graphml.xsd\">\n",
        "  <key id=\"d1\" for=\"edge\" attr.name=\"x\" attr.type=\"string\" />\n",
        "  <key id=\"d0\" for=\"edge\" attr.name=\"weight\" attr.type=\"double\" />\n",
        "  <graph edgedefault=\"undirected\">\n",
        "    <node id=\"a\" />\n",
        "    <node id=\"b\" />\n",
        "    <node id=\"c\" />\n",
        "    <node id=\"d\" />\n",
        "    <node id=\"e\" />\n",
        "    <edge source=\"a\" target=\"b\">\n",
        "      <data key=\"d0\">2.0</data>\n",
        "    </edge>\n",
        "    <edge source=\"a\" target=\"d\" />\n",
        "    <edge source=\"a\" target=\"c\">\n",
        "      <data key=\"d1\">q</data>\n",
        "    </edge>\n",
        "    <edge source=\"b\" target=\"c\">\n",
        "      <data key=\"d0\">1.0</data>\n",
        "    </edge>\n",
        "    <edge source=\"b\" target=\"d\">\n",
        "      <data key=\"d0\">3e-07</data>\n",
        "      <data key=\"d1\">r</data>\n",
        "    </edge>\n",
        "    <edge source=\"e\" target=\"e\" />\n",
        "  </graph>\n",
        "</graphml>\n",
    );

    const DEFAULTS_IN: &str = concat!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
        "<graphml xmlns=\"http://graphml.graphdrawing.org/xmlns\">\n",
        "  <key id=\"k0\" for=\"node\" attr.name=\"color\" attr.type=\"string\"><default>yellow</default></key>\n",
        "  <key id=\"k1\" for=\"edge\" attr.name=\"weight\" attr.type=\"double\"><default>1</default></key>\n",
        "  <key id=\"k2\" for=\"node\" attr.name=\"n\" attr.type=\"int\"/>\n",
        "  <key id=\"k3\" for=\"all\" attr.name=\"flag\" attr.type=\"boolean\"><default>true</default></key>\n",
        "  <graph id=\"G\" edgedefault=\"undirected\">\n",
        "    <node id=\"n0\"><data key=\"k0\">green</data><data key=\"k2\">5</data></node>\n",
        "    <node id=\"n1\"/>\n",
        "    <edge id=\"e0\" source=\"n0\" target=\"n2\"><data key=\"k1\">2.5</data></edge>\n",
        "    <edge source=\"n1\" target=\"n0\"/>\n",
        "    <edge source=\"n1\" target=\"n2\"><data key=\"k0\"/></edge>\n",
        "  </graph>\n",
        "</graphml>\n",
    );

    const DEFAULTS_OUT: &str = concat!(
        "<?xml version='1.0' encoding='utf-8'?>\n",
        "<graphml xmlns=\"http://graphml.graphdrawing.org/xmlns\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:schemaLocation=\"http://graphml.graphdrawing.org/xmlns http://graphml.graphdrawing.org/xmlns/1.0/graphml.xsd\">\n",
        "  <key id=\"d4\" for=\"edge\" attr.name=\"color\" attr.type=\"string\" />\n",
        "  <key id=\"d3\" for=\"edge\" attr.name=\"id\" attr.type=\"string\" />\n",
        "  <key id=\"d2\" for=\"edge\" attr.name=\"weight\" attr.type=\"double\">\n",
        "    <default>1.0</default>\n",
        "  </key>\n",
        "  <key id=\"d1\" for=\"node\" attr.name=\"n\" attr.type=\"long\" />\n",
        "  <key id=\"d0\" for=\"node\" attr.name=\"color\" attr.type=\"string\">\n",
        "    <default>yellow</default>\n",
        "  </key>\n",
        "  <graph edgedefault=\"undirected\">\n",
        "    <node id=\"n0\">\n",
        "      <data key=\"d0\">green</data>\n",
        "      <data key=\"d1\">5</data>\n",
        "    </node>\n",
        "    <node id=\"n1\" />\n",
        "    <node id=\"n2\" />\n",
        "    <edge source=\"n0\" target=\"n2\">\n",
        "      <data key=\"d2\">2.5</data>\n",
        "      <data key=\"d3\">e0</data>\n",
        "    </edge>\n",
        "    <edge source=\"n0\" target=\"n1\" />\n",
        "    <edge source=\"n1\" target=\"n2\">\n",
        "      <data key=\"d4\" />\n",
        "    </edge>\n",
        "  </graph>\n",
        "</graphml>\n",
    );

    #[test]
    fn networkx_reading_rules() -> TestResult {
        // Keys by attr.name whatever their ids, int/float read as long/double, entities,
        // character references, CDATA, comments, EOL and attribute normalisation, a BOM, an
        // empty <data> as "" whatever its type, <data> in any order.
        let g = parse(MIXED_IN.as_bytes())?;
        assert_eq!(render(&g)?, MIXED_OUT);
        let x = g
            .find_node("x\ny z")
            .and_then(|s| g.node(s))
            .ok_or("no node")?;
        let rec = g.record(Scope::Node, x.attr_bytes());
        assert_eq!(
            serde_json::Value::Object(rec),
            serde_json::json!({"description": "a<SEP>b & c\rd\ne<raw>f", "created_at": 1000, "ok": true, "ratio": 1e-7})
        );
        let empty = g
            .find_node("empty")
            .and_then(|s| g.node(s))
            .ok_or("no node")?;
        assert_eq!(
            serde_json::Value::Object(g.record(Scope::Node, empty.attr_bytes())),
            serde_json::json!({"created_at": "", "description": ""})
        );
        Ok(())
    }

    #[test]
    fn node_and_neighbour_order_follow_networkx_reader() -> TestResult {
        // Nodes declared after edges, nodes only named by edges, a self-loop, edges in an order
        // networkx would not write: the result is what nx.read_graphml + write_graphml give.
        let g = parse(ORDER_IN.as_bytes())?;
        assert_eq!(render(&g)?, ORDER_OUT);
        assert_eq!(neighbours(&g, "a"), ["b", "d", "c"]);
        assert_eq!(neighbours(&g, "b"), ["a", "c", "d"]);
        assert_eq!(neighbours(&g, "e"), ["e"]);
        assert_eq!((g.node_count(), g.edge_count()), (5, 6));
        // Writing is a fixed point.
        assert_eq!(render(&parse(ORDER_OUT.as_bytes())?)?, ORDER_OUT);
        Ok(())
    }

    #[test]
    fn key_defaults_edge_ids_and_keys_used_out_of_scope() -> TestResult {
        let g = parse(DEFAULTS_IN.as_bytes())?;
        assert_eq!(render(&g)?, DEFAULTS_OUT);
        let n1 = g.find_node("n1").and_then(|s| g.node(s)).ok_or("no n1")?;
        assert_eq!(
            serde_json::Value::Object(g.record(Scope::Node, n1.attr_bytes())),
            serde_json::json!({"color": "yellow"})
        );
        let (n0, n2) = (
            g.find_node("n0").ok_or("n0")?,
            g.find_node("n2").ok_or("n2")?,
        );
        let e = g
            .find_edge(n2, n0)
            .and_then(|e| g.edge(e))
            .ok_or("no edge")?;
        assert_eq!(
            serde_json::Value::Object(g.record(Scope::Edge, &e.attrs)),
            serde_json::json!({"weight": 2.5, "id": "e0"})
        );
        let n1s = g.find_node("n1").ok_or("n1")?;
        let e = g
            .find_edge(n0, n1s)
            .and_then(|e| g.edge(e))
            .ok_or("no edge")?;
        assert_eq!(
            serde_json::Value::Object(g.record(Scope::Edge, &e.attrs)),
            serde_json::json!({"weight": 1.0})
        );
        assert_eq!(render(&parse(DEFAULTS_OUT.as_bytes())?)?, DEFAULTS_OUT);
        Ok(())
    }

    #[test]
    fn tiny_read_buffers_give_the_same_graph() -> TestResult {
        // Elements cut by buffer refills take the event path instead of the fast one.
        for version in ["1.5.7", "1.4.9.8"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(
                "../tests/fixtures/lightrag-{version}-small/graph_chunk_entity_relation.graphml"
            ));
            let bytes = std::fs::read(&path)?;
            for cap in [1, 7, 64, 1000] {
                let g = read(BufReader::with_capacity(cap, File::open(&path)?), &path)?;
                assert!(
                    render(&g)?.as_bytes() == bytes.as_slice(),
                    "{version}, buffer {cap}"
                );
            }
        }
        let g = read(
            BufReader::with_capacity(3, MIXED_IN.as_bytes()),
            Path::new(FILE),
        )?;
        assert_eq!(render(&g)?, MIXED_OUT);
        Ok(())
    }

    #[test]
    fn a_repeated_edge_updates_the_first() -> TestResult {
        let doc = concat!(
            "<graphml><key id=\"w\" for=\"edge\" attr.name=\"weight\" attr.type=\"double\"/>",
            "<key id=\"k\" for=\"edge\" attr.name=\"keywords\" attr.type=\"string\"/>",
            "<graph edgedefault=\"undirected\"><node id=\"a\"/><node id=\"b\"/><node id=\"c\"/>",
            "<edge source=\"a\" target=\"b\"><data key=\"w\">1</data></edge>",
            "<edge source=\"a\" target=\"c\"/>",
            "<edge source=\"b\" target=\"a\"><data key=\"k\">x</data><data key=\"w\">4</data></edge>",
            "</graph></graphml>"
        );
        let g = parse(doc.as_bytes())?;
        assert_eq!(g.edge_count(), 2);
        assert_eq!(neighbours(&g, "a"), ["b", "c"]);
        let (a, b) = (g.find_node("a").ok_or("a")?, g.find_node("b").ok_or("b")?);
        let e = g.find_edge(a, b).and_then(|e| g.edge(e)).ok_or("no edge")?;
        assert_eq!(
            serde_json::Value::Object(g.record(Scope::Edge, &e.attrs)),
            serde_json::json!({"weight": 4.0, "keywords": "x"})
        );
        Ok(())
    }

    /// A small valid document, and where things are in it.
    const SMALL: &str = concat!(
        "<?xml version='1.0' encoding='utf-8'?>\n",
        "<graphml xmlns=\"http://graphml.graphdrawing.org/xmlns\">\n",
        "  <key id=\"d1\" for=\"edge\" attr.name=\"weight\" attr.type=\"double\" />\n",
        "  <key id=\"d0\" for=\"node\" attr.name=\"created_at\" attr.type=\"long\" />\n",
        "  <graph edgedefault=\"undirected\">\n",
        "    <node id=\"A\">\n",
        "      <data key=\"d0\">1735689600</data>\n",
        "    </node>\n",
        "    <node id=\"B\" />\n",
        "    <edge source=\"A\" target=\"B\">\n",
        "      <data key=\"d1\">1.0</data>\n",
        "    </edge>\n",
        "  </graph>\n",
        "</graphml>\n"
    );

    fn offset(doc: &str, needle: &str) -> Result<usize, Box<dyn std::error::Error>> {
        Ok(doc
            .find(needle)
            .ok_or_else(|| format!("{needle} not in test document"))?)
    }

    /// Parses `doc`, expecting a Corrupt error whose message names the file and contains
    /// `want` (with the byte offset).
    fn expect_corrupt(doc: &[u8], want: &str) -> TestResult {
        match parse(doc) {
            Ok(g) => Err(format!("parsed ({g:?}), wanted {want:?}").into()),
            Err(e @ StorageError::Corrupt { .. }) => {
                let msg = e.to_string();
                if msg.starts_with(FILE) && msg.contains(want) {
                    Ok(())
                } else {
                    Err(format!("message {msg:?} lacks {want:?}").into())
                }
            }
            Err(e) => Err(format!("wrong error {e:?}, wanted {want:?}").into()),
        }
    }

    #[test]
    fn the_small_document_reads() -> TestResult {
        let g = parse(SMALL.as_bytes())?;
        assert_eq!((g.node_count(), g.edge_count()), (2, 1));
        Ok(())
    }

    #[test]
    fn truncated_files_are_corrupt_with_the_offset() -> TestResult {
        expect_corrupt(b"", "byte 0: empty file")?;
        // Inside the XML declaration.
        expect_corrupt(
            &SMALL.as_bytes()[..10],
            "byte 0: malformed or truncated XML",
        )?;
        // Inside a start tag.
        let key = offset(SMALL, "<key id=\"d0\"")?;
        expect_corrupt(
            &SMALL.as_bytes()[..key + 8],
            &format!("byte {key}: malformed or truncated XML"),
        )?;
        // Inside a value.
        let cut = offset(SMALL, "1735689600")? + 4;
        expect_corrupt(
            &SMALL.as_bytes()[..cut],
            &format!("byte {cut}: unexpected end of file inside <data> (truncated file?)"),
        )?;
        // Between elements, and just before the end.
        let cut = offset(SMALL, "    <edge")?;
        expect_corrupt(
            &SMALL.as_bytes()[..cut],
            &format!("byte {cut}: unexpected end of file inside <graph>"),
        )?;
        let cut = offset(SMALL, "</graphml>")?;
        expect_corrupt(
            &SMALL.as_bytes()[..cut],
            &format!("byte {cut}: unexpected end of file inside <graphml>"),
        )?;
        // Every prefix of a real file is refused (and nothing panics).
        let real =
            std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(
                "../tests/fixtures/lightrag-1.4.9.8-small/graph_chunk_entity_relation.graphml",
            ))?;
        for len in (0..real.len() - 1).step_by(397) {
            match parse(&real[..len]) {
                Err(StorageError::Corrupt { message, .. }) if message.starts_with("byte ") => {}
                other => return Err(format!("prefix {len}: {other:?}").into()),
            }
        }
        Ok(())
    }

    #[test]
    fn invalid_utf8_is_corrupt_at_its_byte() -> TestResult {
        let mut doc = SMALL.as_bytes().to_vec();
        let at = offset(SMALL, "1735689600")? + 2;
        doc[at] = 0xff;
        expect_corrupt(&doc, &format!("byte {at}: invalid UTF-8"))?;
        let mut doc = SMALL.as_bytes().to_vec();
        let at = offset(SMALL, "id=\"B\"")? + 4;
        doc[at] = 0xc3;
        expect_corrupt(&doc, &format!("byte {at}: invalid UTF-8"))
    }

    #[test]
    fn broken_markup_is_corrupt() -> TestResult {
        let at = offset(SMALL, "</node>")?;
        expect_corrupt(
            SMALL.replacen("</node>", "</nod>", 1).as_bytes(),
            &format!("byte {at}: malformed XML"),
        )?;
        let at = offset(SMALL, "<node id=\"B\"")?;
        expect_corrupt(
            SMALL
                .replacen("<node id=\"B\" />", "<node id=\"B\" id=\"C\" />", 1)
                .as_bytes(),
            &format!("byte {at}: malformed attribute"),
        )?;
        let at = offset(SMALL, "1735689600")? + 2;
        expect_corrupt(
            SMALL.replacen("1735689600", "17&bogus;", 1).as_bytes(),
            &format!("byte {at}: unknown entity &bogus;"),
        )?;
        let at = offset(SMALL, "</graphml>")? + "</graphml>\n".len();
        expect_corrupt(
            format!("{SMALL}<graphml/>").as_bytes(),
            &format!("byte {at}: content after"),
        )?;
        expect_corrupt(
            b"<graph/>",
            "byte 0: the root element is <graph>, not <graphml>",
        )
    }

    #[test]
    fn semantic_errors_name_the_element_and_key() -> TestResult {
        let data = offset(SMALL, "<data key=\"d0\"")?;
        expect_corrupt(
            SMALL
                .replacen("<data key=\"d0\">", "<data key=\"d9\">", 1)
                .as_bytes(),
            &format!("byte {data}: node \"A\": <data> refers to undeclared key \"d9\""),
        )?;
        expect_corrupt(
            SMALL.replacen("1735689600", "12x", 1).as_bytes(),
            &format!(
                "byte {data}: node \"A\": <data key=\"d0\"> (created_at, long): \"12x\" is not an integer"
            ),
        )?;
        expect_corrupt(
            SMALL
                .replacen("1735689600", "99999999999999999999", 1)
                .as_bytes(),
            &format!(
                "byte {data}: node \"A\": <data key=\"d0\"> (created_at, long): \"99999999999999999999\" is out of range"
            ),
        )?;
        let wdata = offset(SMALL, "<data key=\"d1\"")?;
        expect_corrupt(
            SMALL.replacen(">1.0<", ">heavy<", 1).as_bytes(),
            &format!(
                "byte {wdata}: edge \"A\" – \"B\": <data key=\"d1\"> (weight, double): \"heavy\" is not a number"
            ),
        )?;
        let edge = offset(SMALL, "<edge")?;
        expect_corrupt(
            SMALL.replacen(" target=\"B\"", "", 1).as_bytes(),
            &format!("byte {edge}: <edge> without a target"),
        )?;
        let node = offset(SMALL, "<node id=\"B\"")?;
        expect_corrupt(
            SMALL
                .replacen("<node id=\"B\" />", "<node name=\"B\" />", 1)
                .as_bytes(),
            &format!("byte {node}: <node> without an id"),
        )?;
        let graph = offset(SMALL, "<graph ")?;
        expect_corrupt(
            SMALL
                .replacen("\"undirected\"", "\"directed\"", 1)
                .as_bytes(),
            &format!("byte {graph}: a directed graph"),
        )?;
        let key = offset(SMALL, "<key id=\"d0\"")?;
        expect_corrupt(
            SMALL.replacen("\"long\"", "\"decimal\"", 1).as_bytes(),
            &format!("byte {key}: <key id=\"d0\">: unknown attr.type \"decimal\""),
        )?;
        expect_corrupt(
            SMALL
                .replacen("<node id=\"B\" />", "<node id=\"B\"><graph/></node>", 1)
                .as_bytes(),
            "nested graphs are not supported",
        )
    }

    #[test]
    fn damaged_bytes_never_panic() {
        let real = SMALL.as_bytes();
        for (i, replacement) in
            (0..real.len()).flat_map(|i| [(i, b'<'), (i, b'"'), (i, 0xff), (i, b'&'), (i, b'/')])
        {
            let mut doc = real.to_vec();
            doc[i] = replacement;
            let _ = parse(&doc);
            let mut doc = real.to_vec();
            doc.remove(i);
            let _ = parse(&doc);
        }
    }

    #[test]
    fn reading_a_missing_file_is_none_and_an_error_names_the_file() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("graph_chunk_entity_relation.graphml");
        assert!(read_file(&path)?.is_none());
        std::fs::write(&path, &SMALL.as_bytes()[..100])?;
        let err = read_file(&path).err().ok_or("read a truncated file")?;
        let msg = err.to_string();
        assert!(
            msg.starts_with(&path.display().to_string()) && msg.contains(": byte "),
            "{msg}"
        );
        Ok(())
    }

    #[test]
    fn floats_are_written_as_python_repr() {
        // (bits, repr(float)) from CPython 3.11.
        let cases: &[(u64, &str)] = &[
            (0x3ff0000000000000, "1.0"),
            (0x4004000000000000, "2.5"),
            (0x3ee4f8b588e368f1, "1e-05"),
            (0x4341c37937e08000, "1e+16"),
            (0x430c6bf526340000, "1000000000000000.0"),
            (0x3fb999999999999a, "0.1"),
            (0x3f1a36e2eb1c432d, "0.0001"),
            (0x3f202e4b6ce5dc68, "0.00012345"),
            (0x40fe240c9fbe76c9, "123456.789"),
            (0x4480f0cf064dd592, "1e+22"),
            (0x1, "5e-324"),
            (0x7fefffffffffffff, "1.7976931348623157e+308"),
            (0xc00a000000000000, "-3.25"),
            (0x3fd5555555555555, "0.3333333333333333"),
            (0x3e71e54c672874da, "6.666666666666665e-08"),
            (0x4059000000000000, "100.0"),
            (0x4345ee2a2eb5a5c4, "1.2345678901234568e+16"),
            (0x4340000000000000, "9007199254740992.0"),
            (0x3fd3333333333334, "0.30000000000000004"),
            (0x4341c37937e08000, "1e+16"),
            (0x54b249ad2594c37d, "1e+100"),
            (0x3c36b082c2148b8e, "1.23e-18"),
            (0x8000000000000000, "-0.0"),
            (0xf2a74de452e6b438, "-1.989032661366619e+244"),
            (0x6513270e269e0d37, "7.761117632285041e+178"),
            (0xc5c7fd0a6a3a450, "3.980498358697587e-249"),
            (0xd23f0824128b2f33, "-1.5432835417340557e+88"),
            (0x1818e811892f902b, "1.3647584518757569e-192"),
            (0x9531985d5d9dc9f8, "-1.3701135617873088e-206"),
            (0xe8e25d940ed90475, "-1.7160537630466207e+197"),
            (0x36f675cc81e74ef5, "6.294675241195386e-44"),
            (0x1600a35a099950d8, "1.0613447212142254e-202"),
            (0x6b0d549b6f03675a, "4.708325160387546e+207"),
            (0x3d9c172411e20b8f, "6.387016158513563e-12"),
            (0x8d116ece1738f7d9, "-9.973130378568733e-246"),
            (0xf21ddb66cad4a26, "8.779753225680271e-236"),
            (0x90c192cfd3ac94af, "-5.795503248498993e-228"),
            (0xf28c105d1fb17c23, "-5.988180159386011e+243"),
            (0xa170b33839263059, "-1.306052388527796e-147"),
            (0x953f48f1a09f76b5, "-2.436117699484841e-206"),
            (0xfd630f1f29d0da9, "2.233386999150174e-232"),
            (0x95e60af593bd04cf, "-3.51527970626667e-203"),
            (0xcb1e29c658cda14, "1.5987381841032883e-247"),
            (0x3898d190f9ebdacc, "4.6678633181812096e-36"),
            (0x8e81973e0becd7b0, "-8.441872792105456e-239"),
            (0x2217beaddbc496cb, "1.9015657400796622e-144"),
            (0x6b4cb2424a23d596, "7.370437700706684e+208"),
            (0x8a6a63ec24ede6a4, "-1.7163996725272777e-258"),
            (0x922766581e27a1c0, "-3.2367190832119987e-221"),
            (0x8f6d05584ef8aa38, "-2.2818334634712625e-234"),
            (0xae97ba94d0eda82f, "-3.0536383926309363e-84"),
            (0x1a61dbe22e44158b, "1.3449551894627777e-181"),
            (0x923a736994e3bf91, "-7.317495976062606e-221"),
            (0x301850c5a38fd547, "5.249822308814304e-77"),
            (0x18f135d25f557203, "1.5450754142984396e-188"),
            (0xb64ce4228c38fb29, "-3.953625698224792e-47"),
            (0x907a70c31012f037, "-2.72491267476498e-229"),
            (0x9e7769b10f4205b4, "-6.505141861548772e-162"),
            (0x7f15052434b9b5df, "1.441484839555994e+304"),
            (0x881ed162ae2eb154, "-1.4583679262758548e-269"),
            (0xc6f877186d76b07e, "-7.939416668807721e+33"),
            (0x7731af10506bf2ef, "1.4255183989699612e+266"),
            (0xec66a78795e761d1, "-1.525315701232403e+214"),
            (0x4012209ba6ced34e, "4.531843763707753"),
            (0x3f3047e80eb31625, "0.0002484265848575493"),
            (0x3fb1e4ee0f4ba2ed, "0.06989944337295713"),
            (0x3fea318ffefa1944, "0.8185501079576984"),
            (0x4406c6da3e15beec, "5.2519650381145145e+19"),
            (0x4114f6cec28472a4, "343475.6899583733"),
            (0x3e9352bbaeaa94e3, "2.879377648901865e-07"),
            (0x40c70f49f62f9483, "11806.577825496212"),
            (0x40307f07a476d9d7, "16.49621036435732"),
            (0x413730e558bb1bc0, "1519845.3466050476"),
            (0x428eaebe731dfb8b, "4216983544767.443"),
            (0x4192819408b92277, "77620482.18079554"),
            (0x4408d9ddad541e24, "5.73025940277384e+19"),
            (0x405475761dbaff7d, "81.83533423673175"),
            (0x4230304888735dae, "69529536627.36594"),
            (0x43660e89e7489861, "4.966747952989876e+16"),
            (0x4399531153b370c3, "4.5620533130141306e+17"),
            (0x3fb7f5e83e3ad3d8, "0.09359599608690361"),
            (0x42913f628505d1c7, "4740983374196.444"),
            (0x42cd8efe3b427f6b, "64999975716094.836"),
            (0x7ff0000000000000, "inf"),
            (0xfff0000000000000, "-inf"),
            (0x7ff8000000000000, "nan"),
        ];
        for &(bits, want) in cases {
            let mut out = String::new();
            py_float_repr(f64::from_bits(bits), &mut out);
            assert_eq!(out, want, "{bits:#x}");
        }
    }

    #[test]
    fn numbers_parse_as_python_int_and_float() {
        for (text, want) in [
            ("1_000", Some(1000)),
            (" 12\n", Some(12)),
            ("+7", Some(7)),
            ("-0", Some(0)),
            ("007", Some(7)),
            ("9223372036854775807", Some(i64::MAX)),
            ("1__0", None),
            ("_1", None),
            ("1_", None),
            ("12a", None),
            ("", None),
            ("1.0", None),
            ("9223372036854775808", None),
        ] {
            assert_eq!(parse_py_int(text).ok(), want, "{text:?}");
        }
        for (text, want) in [
            (" 1.5 ", Some(1.5)),
            ("1_0.2_5", Some(10.25)),
            ("1e-7", Some(1e-7)),
            ("-inf", Some(f64::NEG_INFINITY)),
            ("Infinity", Some(f64::INFINITY)),
            (".5", Some(0.5)),
            ("5.", Some(5.0)),
            ("1e500", Some(f64::INFINITY)),
            ("1_e5", None),
            ("0x10", None),
            ("1e", None),
            ("++1", None),
        ] {
            assert_eq!(parse_py_float(text).ok(), want, "{text:?}");
        }
        assert!(parse_py_float("nan").is_ok_and(f64::is_nan));
        assert_eq!(convert("TRUE", AttrType::Boolean), Ok(Val::Bool(true)));
        assert_eq!(convert("0", AttrType::Boolean), Ok(Val::Bool(false)));
        assert!(convert(" true", AttrType::Boolean).is_err());
    }
}
