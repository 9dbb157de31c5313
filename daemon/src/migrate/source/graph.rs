//! The GraphML file as a stream of nodes and edges, in file order, with the properties the JSON
//! backend's loader gives them (LightRAG's types: `created_at` an integer, `weight` a float…).
//!
//! It shares the loader's XML layer ([`graphml::Xml`], key parsing, value conversion, the
//! fast path for networkx's `<data>` form) but keeps no graph: only the file's `<key>`
//! declarations and the element being read.
//!
//! Memory: the keys and one element (bounded by the largest `<node>`/`<edge>`). Ordering: file
//! order; LightRAG's files (networkx) list every node before the first edge, and nodes and
//! edges have their own ordinals from 0. What the loader does with the whole graph in hand is
//! left to the consumer: a repeated node or edge comes again (the loader merges it), and an
//! edge may name a node no `<node>` declares (the loader creates it without properties).
//! Errors: [`StorageError::Corrupt`] naming the file and byte offset; the stream ends after the
//! first error.

use std::fs::File;
use std::io::{self, BufReader};
use std::path::Path;

use hashbrown::HashMap;
use quick_xml::events::{BytesStart, Event};
use serde_json::Value;

use crate::storage::json::graphml::{
    self, FileKey, KeyFor, Tag, Xml, check_graph_attrs, convert, data_key_attr, edge_attrs,
    key_default, node_id_attr, parse_key_attrs, shorten, tag,
};
use crate::storage::{Record, StorageError, StorageResult};

const READ_BUFFER: usize = 256 << 10;

#[derive(Debug, Clone, PartialEq)]
pub struct GraphNode {
    pub ordinal: u64,
    pub id: String,
    pub properties: Record,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GraphEdge {
    pub ordinal: u64,
    pub source: String,
    pub target: String,
    pub properties: Record,
}

#[derive(Debug, Clone, PartialEq)]
pub enum GraphEvent {
    Node(GraphNode),
    Edge(GraphEdge),
}

/// Where the reader is in the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pos {
    /// Children of `<graphml>`.
    Root,
    /// Children of `<graph>`.
    Graph,
}

/// Streaming reader of a GraphML file; a missing file is an empty stream.
pub struct GraphSource {
    x: Option<Xml<BufReader<File>>>,
    pos: Pos,
    buf: Vec<u8>,
    keys: HashMap<String, FileKey>,
    /// Key defaults, filled into nodes (edges) that lack the property, as the loader does.
    node_defaults: Vec<(Box<str>, Value)>,
    edge_defaults: Vec<(Box<str>, Value)>,
    graphs: u32,
    next_node: u64,
    next_edge: u64,
    // Scratch for the element being read.
    raw: Vec<u8>,
    text: String,
    key_id: String,
}

/// Whose `<data>` is being read, for messages.
enum Owner<'a> {
    Node(&'a str),
    Edge(&'a str, &'a str),
}

impl Owner<'_> {
    fn text(&self) -> String {
        match self {
            Owner::Node(id) => format!("node {id:?}"),
            Owner::Edge(s, t) => format!("edge {s:?} – {t:?}"),
        }
    }
}

impl GraphSource {
    pub fn open(path: &Path) -> StorageResult<GraphSource> {
        let mut s = GraphSource {
            x: None,
            pos: Pos::Root,
            buf: Vec::with_capacity(64 << 10),
            keys: HashMap::new(),
            node_defaults: Vec::new(),
            edge_defaults: Vec::new(),
            graphs: 0,
            next_node: 0,
            next_edge: 0,
            raw: Vec::new(),
            text: String::new(),
            key_id: String::new(),
        };
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(s),
            Err(e) => return Err(StorageError::io(path, e)),
        };
        let mut x = Xml::new(BufReader::with_capacity(READ_BUFFER, file), path);
        graphml::read_prologue(&mut x, &mut s.buf)?;
        s.x = Some(x);
        Ok(s)
    }

    fn read_next(&mut self) -> StorageResult<Option<GraphEvent>> {
        loop {
            if self.x.is_none() {
                return Ok(None);
            }
            match self.pos {
                Pos::Root => {
                    if self.root_child()? {
                        return Ok(None);
                    }
                }
                Pos::Graph => {
                    if let Some(ev) = self.graph_child()? {
                        return Ok(Some(ev));
                    }
                }
            }
        }
    }

    /// One child of `<graphml>`; `Ok(true)` after its end tag (and the rest of the file).
    fn root_child(&mut self) -> StorageResult<bool> {
        enum Child {
            Key((String, KeyFor, FileKey, u64), bool),
            Graph(bool),
            Skip(Option<String>),
            End,
        }
        let Some(x) = self.x.as_mut() else {
            return Ok(true);
        };
        let child = match next_ev(x, &mut self.buf)? {
            Ev::Start(e, empty) => match tag(&e) {
                Tag::Key => Child::Key(parse_key_attrs(x, &e, x.at)?, empty),
                Tag::Graph => {
                    check_graph_attrs(x, &e, x.at)?;
                    Child::Graph(empty)
                }
                _ if empty => Child::Skip(None),
                _ => Child::Skip(Some(name_of(&e))),
            },
            Ev::End => Child::End,
            Ev::Eof => return Err(x.eof_inside("graphml")),
            Ev::Other => return Ok(false),
        };
        match child {
            Child::Key(key, empty) => self.key(key, empty)?,
            Child::Graph(empty) => {
                self.graphs += 1;
                if self.graphs > 1 {
                    return Err(x.corrupt(
                        x.at,
                        "a second <graph> element (one graph per file is supported)",
                    ));
                }
                if !empty {
                    self.pos = Pos::Graph;
                }
            }
            Child::Skip(Some(name)) => x.skip_subtree(&mut self.buf, &name)?,
            Child::Skip(None) => {}
            Child::End => {
                graphml::read_epilogue(x, &mut self.buf)?;
                if self.graphs == 0 {
                    return Err(x.corrupt(x.at, "no <graph> element"));
                }
                self.x = None;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// A `<key>` and its optional `<default>`.
    fn key(&mut self, key: (String, KeyFor, FileKey, u64), empty: bool) -> StorageResult<()> {
        let Some(x) = self.x.as_mut() else {
            return Ok(());
        };
        let (id, key_for, fk, at) = key;
        let mut default: Option<Option<String>> = None;
        // `<key/>` has no children to read.
        if !empty {
            loop {
                let (t, empty_child, name) = match next_ev(x, &mut self.buf)? {
                    Ev::Start(e, empty) => (tag(&e), empty, name_of(&e)),
                    Ev::End => break,
                    Ev::Eof => return Err(x.eof_inside("key")),
                    Ev::Other => continue,
                };
                match (t, empty_child) {
                    (Tag::Default, false) => {
                        self.text.clear();
                        x.read_text(&mut self.buf, "default", &mut self.raw, &mut self.text)?;
                        default = Some(Some(std::mem::take(&mut self.text)));
                    }
                    (Tag::Default, true) => default = Some(None),
                    (_, false) => x.skip_subtree(&mut self.buf, &name)?,
                    (_, true) => {}
                }
            }
        }
        if let Some(text) = default {
            let val = key_default(x, at, &id, &fk, text)?.as_val().to_json();
            let defaults = match key_for {
                KeyFor::Node => Some(&mut self.node_defaults),
                KeyFor::Edge => Some(&mut self.edge_defaults),
                KeyFor::Other => None,
            };
            if let Some(d) = defaults {
                match d.iter_mut().find(|(n, _)| *n == fk.name) {
                    Some(slot) => slot.1 = val,
                    None => d.push((fk.name.clone(), val)),
                }
            }
        }
        self.keys.insert(id, fk);
        Ok(())
    }

    /// One child of `<graph>`: a node or an edge, or `None` for anything else (its end tag
    /// included, which returns to the root).
    fn graph_child(&mut self) -> StorageResult<Option<GraphEvent>> {
        enum Child {
            Node(String, bool),
            Edge(String, String, String, bool),
            Data,
            Skip(Option<String>),
        }
        let Some(x) = self.x.as_mut() else {
            return Ok(None);
        };
        let child = match next_ev(x, &mut self.buf)? {
            Ev::Start(e, empty) => match tag(&e) {
                Tag::Node => {
                    let mut id = String::new();
                    node_id_attr(x, &e, &mut id)?;
                    Child::Node(id, empty)
                }
                Tag::Edge => {
                    let (mut src, mut tgt, mut id) = (String::new(), String::new(), String::new());
                    edge_attrs(x, &e, &mut src, &mut tgt, &mut id)?;
                    Child::Edge(src, tgt, id, empty)
                }
                Tag::HyperEdge => return Err(x.corrupt(x.at, "hyperedges are not supported")),
                Tag::Data if !empty => Child::Data,
                _ if empty => Child::Skip(None),
                _ => Child::Skip(Some(name_of(&e))),
            },
            Ev::End => {
                self.pos = Pos::Root;
                return Ok(None);
            }
            Ev::Eof => return Err(x.eof_inside("graph")),
            Ev::Other => return Ok(None),
        };
        match child {
            Child::Node(id, empty) => {
                let mut properties = Record::new();
                if !empty {
                    self.children(&mut properties, &Owner::Node(&id), "node")?;
                }
                fill_defaults(&mut properties, &self.node_defaults);
                let ordinal = self.next_node;
                self.next_node += 1;
                Ok(Some(GraphEvent::Node(GraphNode {
                    ordinal,
                    id,
                    properties,
                })))
            }
            Child::Edge(source, target, edge_id, empty) => {
                let mut properties = Record::new();
                if !empty {
                    self.children(&mut properties, &Owner::Edge(&source, &target), "edge")?;
                }
                // networkx keeps an edge's `id` attribute as a property.
                if !edge_id.is_empty() {
                    properties.insert("id".to_owned(), Value::String(edge_id));
                }
                fill_defaults(&mut properties, &self.edge_defaults);
                let ordinal = self.next_edge;
                self.next_edge += 1;
                Ok(Some(GraphEvent::Edge(GraphEdge {
                    ordinal,
                    source,
                    target,
                    properties,
                })))
            }
            // Graph attributes: none in LightRAG's files, and nothing to migrate.
            Child::Data => {
                self.text.clear();
                x.read_text(&mut self.buf, "data", &mut self.raw, &mut self.text)?;
                Ok(None)
            }
            Child::Skip(Some(name)) => {
                x.skip_subtree(&mut self.buf, &name)?;
                Ok(None)
            }
            Child::Skip(None) => Ok(None),
        }
    }

    /// The `<data>` children of a node or edge (start tag read) into `props`.
    fn children(
        &mut self,
        props: &mut Record,
        owner: &Owner<'_>,
        element: &str,
    ) -> StorageResult<()> {
        let Some(x) = self.x.as_mut() else {
            return Ok(());
        };
        loop {
            if let Some(at) = x.fast_data(&mut self.key_id, &mut self.text)? {
                store(x, &self.keys, props, owner, &self.key_id, &self.text, at)?;
                continue;
            }
            let (t, empty, name, found) = match next_ev(x, &mut self.buf)? {
                Ev::Start(e, empty) => {
                    let t = tag(&e);
                    let found = t == Tag::Data && data_key_attr(x, &e, &mut self.key_id)?;
                    (t, empty, name_of(&e), found)
                }
                Ev::End => return Ok(()),
                Ev::Eof => return Err(x.eof_inside(element)),
                Ev::Other => continue,
            };
            let at = x.at;
            match t {
                Tag::Data => {
                    if !found {
                        let what = format!("{}: <data> without a key attribute", owner.text());
                        return Err(x.corrupt(at, what));
                    }
                    self.text.clear();
                    if !empty {
                        x.read_text(&mut self.buf, "data", &mut self.raw, &mut self.text)?;
                    }
                    store(x, &self.keys, props, owner, &self.key_id, &self.text, at)?;
                }
                Tag::Graph => {
                    let what = format!("{}: nested graphs are not supported", owner.text());
                    return Err(x.corrupt(at, what));
                }
                _ if !empty => x.skip_subtree(&mut self.buf, &name)?,
                _ => {}
            }
        }
    }
}

/// The next event of an element's content, reduced to what the readers here look at.
enum Ev<'b> {
    /// A start tag, and whether it is an empty element.
    Start(BytesStart<'b>, bool),
    End,
    Eof,
    /// Text, comments, processing instructions.
    Other,
}

fn next_ev<'b, R: io::BufRead>(x: &mut Xml<R>, buf: &'b mut Vec<u8>) -> StorageResult<Ev<'b>> {
    Ok(match x.next(buf)? {
        Event::Start(e) => Ev::Start(e, false),
        Event::Empty(e) => Ev::Start(e, true),
        Event::End(_) => Ev::End,
        Event::Eof => Ev::Eof,
        _ => Ev::Other,
    })
}

fn name_of(e: &BytesStart<'_>) -> String {
    e.name().as_ref().to_owned()
}

/// Converts one `<data>` by its key's type, as the loader does.
fn store<R: io::BufRead>(
    x: &Xml<R>,
    keys: &HashMap<String, FileKey>,
    props: &mut Record,
    owner: &Owner<'_>,
    key_id: &str,
    text: &str,
    at: u64,
) -> StorageResult<()> {
    let Some(fk) = keys.get(key_id) else {
        let what = format!(
            "{}: <data> refers to undeclared key {key_id:?}",
            owner.text()
        );
        return Err(x.corrupt(at, what));
    };
    // networkx: a <data> without text is the string "" whatever the key's type.
    let v = if text.is_empty() {
        Value::String(String::new())
    } else {
        match convert(text, fk.ty) {
            Ok(v) => v.to_json(),
            Err(why) => {
                let what = format!(
                    "{}: <data key={key_id:?}> ({}, {}): {:?} {why}",
                    owner.text(),
                    fk.name,
                    fk.ty.graphml_name(),
                    shorten(text)
                );
                return Err(x.corrupt(at, what));
            }
        }
    };
    props.insert(fk.name.to_string(), v);
    Ok(())
}

fn fill_defaults(props: &mut Record, defaults: &[(Box<str>, Value)]) {
    for (name, v) in defaults {
        if !props.contains_key(&**name) {
            props.insert(name.to_string(), v.clone());
        }
    }
}

impl Iterator for GraphSource {
    type Item = StorageResult<GraphEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.read_next() {
            Ok(Some(ev)) => Some(Ok(ev)),
            Ok(None) => {
                self.x = None;
                None
            }
            Err(e) => {
                self.x = None;
                Some(Err(e))
            }
        }
    }
}
