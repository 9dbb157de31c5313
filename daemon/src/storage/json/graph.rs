//! The entity/relation graph of a JSON working directory: LightRAG's `NetworkXStorage`, kept in
//! `graph_chunk_entity_relation.graphml` (read and written by [`super::graphml`]).
//!
//! Semantics are those of the undirected `networkx.Graph` LightRAG holds: `upsert_nodes` is
//! `add_node(id, **props)` (merge), `upsert_edges` is `add_edge(a, b, **props)` (merge into the
//! edge in either direction, missing endpoints created without properties), deleting a node
//! deletes its edges, and every order — nodes, each node's neighbours, edges — is networkx's, so
//! what [`JsonGraphStore::write_to`] produces is byte for byte what `nx.write_graphml` would.
//!
//! Memory layout (a multi-GB graph must fit in about its file size): a node is one allocation
//! (`name` followed by its encoded properties) plus its ordered neighbour list; an edge is its two
//! endpoints plus one allocation of encoded properties. A property is `(key index, value)`
//! against the graph's key table (name, node/edge/graph, GraphML type), encoded as varints and raw
//! bytes. Name → node and endpoint pair → edge lookups are `hashbrown::HashTable<u32>`s that store
//! only slot numbers. Deleted nodes leave tombstones (node order is the write order) that are
//! compacted once they outnumber live nodes; edge slots are reused.
//!
//! Invariants: no lock is held across an `.await`; `flush` writes only when something changed
//! since the last load or write, off the runtime, streaming, through
//! [`crate::fsutil::write_atomic_with`].

use std::hash::BuildHasher;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use hashbrown::{DefaultHashBuilder, HashTable};
use serde_json::Value;

use super::graphml;
use crate::fsutil;
use crate::storage::{Cursor, GraphStore, Page, Record, StorageError, StorageResult};

/// Permission bits of a graph file written where none existed (LightRAG's files are 0644 under
/// the usual umask); an existing file keeps its bits.
const NEW_FILE_MODE: u32 = 0o644;

// ------------------------------------------------------------------------------------------------
// Key table and values
// ------------------------------------------------------------------------------------------------

/// A GraphML attribute type as networkx writes it. `int`/`integer` read as [`AttrType::Long`]
/// and `float` as [`AttrType::Double`], because networkx reads them into Python `int`/`float`
/// and writes those back as `long`/`double`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttrType {
    Boolean,
    Long,
    Double,
    String,
}

impl AttrType {
    pub(crate) fn graphml_name(self) -> &'static str {
        match self {
            AttrType::Boolean => "boolean",
            AttrType::Long => "long",
            AttrType::Double => "double",
            AttrType::String => "string",
        }
    }
}

/// What a key describes (`<key for="…">`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    Graph,
    Node,
    Edge,
}

impl Scope {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Scope::Graph => "graph",
            Scope::Node => "node",
            Scope::Edge => "edge",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Scope::Graph => 0,
            Scope::Node => 1,
            Scope::Edge => 2,
        }
    }
}

/// One entry of the key table. Keys are unique by (name, scope, type); one name may have keys
/// of several types (networkx writes a key per Python type it meets).
#[derive(Debug, Clone)]
pub(crate) struct KeyDef {
    pub(crate) name: Box<str>,
    pub(crate) scope: Scope,
    pub(crate) ty: AttrType,
    /// Index of the first key with the same (scope, name): equal ids mean the same property.
    pub(crate) name_id: u32,
}

/// A property value, borrowed from an encoded attribute list.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Val<'a> {
    Bool(bool),
    Long(i64),
    Double(f64),
    Str(&'a str),
}

impl Val<'_> {
    pub(crate) fn ty(&self) -> AttrType {
        match self {
            Val::Bool(_) => AttrType::Boolean,
            Val::Long(_) => AttrType::Long,
            Val::Double(_) => AttrType::Double,
            Val::Str(_) => AttrType::String,
        }
    }

    pub(crate) fn to_owned_val(self) -> OwnedVal {
        match self {
            Val::Bool(b) => OwnedVal::Bool(b),
            Val::Long(i) => OwnedVal::Long(i),
            Val::Double(f) => OwnedVal::Double(f),
            Val::Str(s) => OwnedVal::Str(s.into()),
        }
    }

    /// The JSON form LightRAG's Python sees: long → integer, double → float, boolean → bool.
    /// A non-finite double (JSON has none) becomes `null`.
    pub(crate) fn to_json(self) -> Value {
        match self {
            Val::Bool(b) => Value::Bool(b),
            Val::Long(i) => Value::from(i),
            Val::Double(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
            Val::Str(s) => Value::String(s.to_owned()),
        }
    }
}

/// An owned property value (key defaults).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum OwnedVal {
    Bool(bool),
    Long(i64),
    Double(f64),
    Str(Box<str>),
}

impl OwnedVal {
    pub(crate) fn as_val(&self) -> Val<'_> {
        match self {
            OwnedVal::Bool(b) => Val::Bool(*b),
            OwnedVal::Long(i) => Val::Long(*i),
            OwnedVal::Double(f) => Val::Double(*f),
            OwnedVal::Str(s) => Val::Str(s),
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Encoded attribute lists: repeated (varint key index, payload by the key's type)
//   boolean: 1 byte; long: zigzag varint; double: 8 bytes LE; string: varint length + UTF-8.
// ------------------------------------------------------------------------------------------------

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn get_varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    let mut shift = 0u32;
    loop {
        let byte = *b.get(*pos)?;
        *pos += 1;
        if shift >= 64 {
            return None;
        }
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(v);
        }
        shift += 7;
    }
}

fn zigzag(i: i64) -> u64 {
    ((i << 1) ^ (i >> 63)) as u64
}

fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// Appends one attribute. `v`'s type must be the key's type (callers convert first).
pub(crate) fn put_attr(out: &mut Vec<u8>, key: u32, v: Val<'_>) {
    put_varint(out, u64::from(key));
    match v {
        Val::Bool(b) => out.push(u8::from(b)),
        Val::Long(i) => put_varint(out, zigzag(i)),
        Val::Double(f) => out.extend_from_slice(&f.to_le_bytes()),
        Val::Str(s) => {
            put_varint(out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
    }
}

/// The raw entries of an encoded attribute list: (key index, encoded payload).
pub(crate) struct RawAttrs<'a> {
    keys: &'a [KeyDef],
    b: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for RawAttrs<'a> {
    type Item = (u32, &'a [u8]);

    fn next(&mut self) -> Option<(u32, &'a [u8])> {
        if self.pos >= self.b.len() {
            return None;
        }
        let key = u32::try_from(get_varint(self.b, &mut self.pos)?).ok()?;
        let start = self.pos;
        match self.keys.get(key as usize)?.ty {
            AttrType::Boolean => self.pos += 1,
            AttrType::Long => {
                get_varint(self.b, &mut self.pos)?;
            }
            AttrType::Double => self.pos += 8,
            AttrType::String => {
                let len = usize::try_from(get_varint(self.b, &mut self.pos)?).ok()?;
                self.pos = self.pos.checked_add(len)?;
            }
        }
        let payload = self.b.get(start..self.pos)?;
        Some((key, payload))
    }
}

fn decode_payload(ty: AttrType, p: &[u8]) -> Option<Val<'_>> {
    Some(match ty {
        AttrType::Boolean => Val::Bool(*p.first()? != 0),
        AttrType::Long => Val::Long(unzigzag(get_varint(p, &mut 0)?)),
        AttrType::Double => Val::Double(f64::from_le_bytes(p.get(..8)?.try_into().ok()?)),
        AttrType::String => {
            let mut pos = 0;
            let len = usize::try_from(get_varint(p, &mut pos)?).ok()?;
            Val::Str(std::str::from_utf8(p.get(pos..pos.checked_add(len)?)?).ok()?)
        }
    })
}

/// The decoded entries of an encoded attribute list: (key index, value).
pub(crate) struct Attrs<'a> {
    raw: RawAttrs<'a>,
}

impl<'a> Iterator for Attrs<'a> {
    type Item = (u32, Val<'a>);

    fn next(&mut self) -> Option<(u32, Val<'a>)> {
        let (key, payload) = self.raw.next()?;
        let ty = self.raw.keys.get(key as usize)?.ty;
        Some((key, decode_payload(ty, payload)?))
    }
}

pub(crate) fn attrs<'a>(keys: &'a [KeyDef], b: &'a [u8]) -> Attrs<'a> {
    Attrs {
        raw: RawAttrs { keys, b, pos: 0 },
    }
}

pub(crate) fn raw_attrs<'a>(keys: &'a [KeyDef], b: &'a [u8]) -> RawAttrs<'a> {
    RawAttrs { keys, b, pos: 0 }
}

/// `old` updated with `new` as Python's `dict.update`: a property already present (same name,
/// whatever its key's type) keeps its place and takes the new value; others are appended.
fn merge_attrs(keys: &[KeyDef], old: &[u8], new: &[u8], out: &mut Vec<u8>) {
    let name_of = |k: u32| keys.get(k as usize).map_or(u32::MAX, |d| d.name_id);
    let mut entries: Vec<(u32, &[u8])> = raw_attrs(keys, old).collect();
    for (k, p) in raw_attrs(keys, new) {
        let id = name_of(k);
        match entries.iter_mut().find(|(ek, _)| name_of(*ek) == id) {
            Some(slot) => *slot = (k, p),
            None => entries.push((k, p)),
        }
    }
    for (k, p) in entries {
        put_varint(out, u64::from(k));
        out.extend_from_slice(p);
    }
}

/// True when `new` names no property twice (then it needs no merge with itself).
fn distinct_names(keys: &[KeyDef], new: &[u8]) -> bool {
    let mut seen: [u32; 16] = [u32::MAX; 16];
    for (n, (k, _)) in raw_attrs(keys, new).enumerate() {
        let id = keys.get(k as usize).map_or(u32::MAX, |d| d.name_id);
        if seen[..n.min(seen.len())].contains(&id) {
            return false;
        }
        match seen.get_mut(n) {
            Some(slot) => *slot = id,
            // Long lists take the general path.
            None => return false,
        }
    }
    true
}

/// Characters XML 1.0 cannot carry (not even as character references): a file holding them
/// cannot be read back by networkx (expat) or by us.
fn first_non_xml_char(s: &str) -> Option<char> {
    s.chars().find(|&c| {
        matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}')
    })
}

// ------------------------------------------------------------------------------------------------
// The graph
// ------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Adj {
    pub(crate) nbr: u32,
    pub(crate) edge: u32,
}

#[derive(Debug)]
pub(crate) struct Node {
    /// varint name length, name, encoded properties.
    data: Box<[u8]>,
    /// Neighbours in networkx adjacency order; a self-loop appears once.
    pub(crate) adj: Vec<Adj>,
}

impl Node {
    fn split(&self) -> (&str, &[u8]) {
        let mut pos = 0;
        let len = get_varint(&self.data, &mut pos)
            .and_then(|l| usize::try_from(l).ok())
            .unwrap_or(0);
        let end = pos.saturating_add(len).min(self.data.len());
        let name = self
            .data
            .get(pos..end)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("");
        (name, self.data.get(end..).unwrap_or(&[]))
    }

    pub(crate) fn name(&self) -> &str {
        self.split().0
    }

    pub(crate) fn attr_bytes(&self) -> &[u8] {
        self.split().1
    }
}

#[derive(Debug)]
pub(crate) struct Edge {
    pub(crate) a: u32,
    pub(crate) b: u32,
    pub(crate) attrs: Box<[u8]>,
}

/// The in-memory graph. Node slots are in insertion order (the write order) with tombstones;
/// edge slots are unordered (order comes from the adjacency lists).
pub(crate) struct Graph {
    keys: Vec<KeyDef>,
    /// Key defaults by (scope, name): `name_id` of the key that names them.
    defaults: Vec<(u32, OwnedVal)>,
    graph_attrs: Box<[u8]>,
    nodes: Vec<Option<Node>>,
    live_nodes: usize,
    node_index: HashTable<u32>,
    edges: Vec<Option<Edge>>,
    free_edges: Vec<u32>,
    live_edges: usize,
    edge_index: HashTable<u32>,
    hasher: DefaultHashBuilder,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Graph")
            .field("nodes", &self.live_nodes)
            .field("edges", &self.live_edges)
            .field("keys", &self.keys.len())
            .finish()
    }
}

fn too_large(what: &str) -> StorageError {
    StorageError::Invalid(format!(
        "the graph cannot hold more than {} {what}",
        u32::MAX - 1
    ))
}

impl Graph {
    pub(crate) fn new() -> Graph {
        Graph {
            keys: Vec::new(),
            defaults: Vec::new(),
            graph_attrs: Box::default(),
            nodes: Vec::new(),
            live_nodes: 0,
            node_index: HashTable::new(),
            edges: Vec::new(),
            free_edges: Vec::new(),
            live_edges: 0,
            edge_index: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            scratch: Vec::new(),
        }
    }

    // --- keys ---------------------------------------------------------------------------------

    pub(crate) fn keys(&self) -> &[KeyDef] {
        &self.keys
    }

    /// The key (name, scope, ty), created when missing.
    pub(crate) fn intern_key(
        &mut self,
        name: &str,
        scope: Scope,
        ty: AttrType,
    ) -> StorageResult<u32> {
        let mut name_id = None;
        for (i, k) in self.keys.iter().enumerate() {
            if k.scope == scope && &*k.name == name {
                if k.ty == ty {
                    return Ok(i as u32);
                }
                name_id.get_or_insert(k.name_id);
            }
        }
        let idx = u32::try_from(self.keys.len())
            .ok()
            .filter(|&i| i < u32::MAX)
            .ok_or_else(|| too_large("attribute keys"))?;
        self.keys.push(KeyDef {
            name: name.into(),
            scope,
            ty,
            name_id: name_id.unwrap_or(idx),
        });
        Ok(idx)
    }

    /// Records a key default (`<default>` of a key `for="node"`/`"edge"`): records read from the
    /// store show it for elements without the property, and the writer puts it back on the key.
    pub(crate) fn set_default(
        &mut self,
        name: &str,
        scope: Scope,
        val: OwnedVal,
    ) -> StorageResult<()> {
        let key = self.intern_key(name, scope, val.as_val().ty())?;
        let name_id = self.keys[key as usize].name_id;
        match self.defaults.iter_mut().find(|(id, _)| *id == name_id) {
            Some(slot) => slot.1 = val,
            None => self.defaults.push((name_id, val)),
        }
        Ok(())
    }

    /// The default of the property that key `key` names, if any.
    pub(crate) fn default_for_key(&self, key: u32) -> Option<&OwnedVal> {
        let name_id = self.keys.get(key as usize)?.name_id;
        self.defaults
            .iter()
            .find(|(id, _)| *id == name_id)
            .map(|(_, v)| v)
    }

    /// Chooses the key for a JSON property value and appends the converted attribute to `out`.
    fn encode_json(
        &mut self,
        scope: Scope,
        owner: &dyn Fn() -> String,
        name: &str,
        value: &Value,
        out: &mut Vec<u8>,
    ) -> StorageResult<()> {
        let invalid =
            |why: String| StorageError::Invalid(format!("{}: property {name:?}: {why}", owner()));
        if let Some(c) = first_non_xml_char(name) {
            return Err(invalid(format!(
                "the name holds {c:?}, which XML cannot carry"
            )));
        }
        let text;
        let natural: Val<'_> = match value {
            Value::Bool(b) => Val::Bool(*b),
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Val::Long(i)
                } else if let Some(u) = n.as_u64() {
                    let f = u as f64;
                    if f as u128 != u128::from(u) {
                        return Err(invalid(format!("integer {u} is out of range")));
                    }
                    Val::Double(f)
                } else {
                    match n.as_f64() {
                        Some(f) => Val::Double(f),
                        None => return Err(invalid(format!("unsupported number {n}"))),
                    }
                }
            }
            Value::String(s) => Val::Str(s),
            other => {
                text = other.to_string();
                Val::Str(&text)
            }
        };
        if let Val::Str(s) = natural
            && let Some(c) = first_non_xml_char(s)
        {
            return Err(invalid(format!(
                "the value holds {c:?}, which XML cannot carry"
            )));
        }
        let mut exact = None;
        let mut lossless = None;
        let mut any = false;
        for (i, k) in self.keys.iter().enumerate() {
            if k.scope != scope || &*k.name != name {
                continue;
            }
            any = true;
            if k.ty == natural.ty() {
                exact = Some((i as u32, natural));
                break;
            }
            if lossless.is_none()
                && let Some(v) = convert_lossless(natural, k.ty)
            {
                lossless = Some((i as u32, v));
            }
        }
        let (key, val) = match exact.or(lossless) {
            Some(found) => found,
            None if !any => (self.intern_key(name, scope, natural.ty())?, natural),
            None => {
                let types: Vec<&str> = self
                    .keys
                    .iter()
                    .filter(|k| k.scope == scope && &*k.name == name)
                    .map(|k| k.ty.graphml_name())
                    .collect();
                return Err(invalid(format!(
                    "value {} does not fit the graph's {} attribute",
                    value_for_message(value),
                    types.join("/")
                )));
            }
        };
        put_attr(out, key, val);
        Ok(())
    }

    /// Encodes a record as an attribute list (keys created as needed).
    pub(crate) fn encode_record(
        &mut self,
        scope: Scope,
        owner: &dyn Fn() -> String,
        record: &Record,
    ) -> StorageResult<Vec<u8>> {
        let mut out = Vec::new();
        for (name, value) in record {
            self.encode_json(scope, owner, name, value, &mut out)?;
        }
        Ok(out)
    }

    /// The JSON object of an attribute list, key defaults of `scope` filled in.
    pub(crate) fn record(&self, scope: Scope, attr_bytes: &[u8]) -> Record {
        let mut rec = Record::new();
        for (k, v) in attrs(&self.keys, attr_bytes) {
            if let Some(def) = self.keys.get(k as usize) {
                rec.insert(def.name.to_string(), v.to_json());
            }
        }
        for (name_id, val) in &self.defaults {
            if let Some(def) = self.keys.get(*name_id as usize)
                && def.scope == scope
                && !rec.contains_key(&*def.name)
            {
                rec.insert(def.name.to_string(), val.as_val().to_json());
            }
        }
        rec
    }

    // --- graph attributes ---------------------------------------------------------------------

    pub(crate) fn graph_attr_bytes(&self) -> &[u8] {
        &self.graph_attrs
    }

    pub(crate) fn merge_graph_attrs(&mut self, new: &[u8]) {
        let mut out = Vec::new();
        merge_attrs(&self.keys, &self.graph_attrs, new, &mut out);
        self.graph_attrs = out.into_boxed_slice();
    }

    // --- nodes --------------------------------------------------------------------------------

    pub(crate) fn node_count(&self) -> usize {
        self.live_nodes
    }

    pub(crate) fn edge_count(&self) -> usize {
        self.live_edges
    }

    /// Number of node slots (live or not); slot order is node order.
    pub(crate) fn node_slots(&self) -> usize {
        self.nodes.len()
    }

    pub(crate) fn node(&self, slot: u32) -> Option<&Node> {
        self.nodes.get(slot as usize).and_then(Option::as_ref)
    }

    pub(crate) fn edge(&self, slot: u32) -> Option<&Edge> {
        self.edges.get(slot as usize).and_then(Option::as_ref)
    }

    pub(crate) fn find_node(&self, name: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(name);
        let nodes = &self.nodes;
        self.node_index
            .find(hash, |&s| {
                nodes[s as usize].as_ref().is_some_and(|n| n.name() == name)
            })
            .copied()
    }

    /// Adds the node `name` (properties `new`) or merges `new` into it. Returns its slot.
    pub(crate) fn merge_node(&mut self, name: &str, new: &[u8]) -> StorageResult<u32> {
        if let Some(slot) = self.find_node(name) {
            if !new.is_empty() {
                let mut out = std::mem::take(&mut self.scratch);
                out.clear();
                put_varint(&mut out, name.len() as u64);
                out.extend_from_slice(name.as_bytes());
                if let Some(node) = self.nodes[slot as usize].as_mut() {
                    merge_attrs(&self.keys, node.attr_bytes(), new, &mut out);
                    node.data = out.as_slice().into();
                }
                self.scratch = out;
            }
            return Ok(slot);
        }
        let slot = u32::try_from(self.nodes.len())
            .ok()
            .filter(|&s| s < u32::MAX)
            .ok_or_else(|| too_large("nodes"))?;
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        put_varint(&mut out, name.len() as u64);
        out.extend_from_slice(name.as_bytes());
        if distinct_names(&self.keys, new) {
            out.extend_from_slice(new);
        } else {
            merge_attrs(&self.keys, &[], new, &mut out);
        }
        self.nodes.push(Some(Node {
            data: out.as_slice().into(),
            adj: Vec::new(),
        }));
        self.scratch = out;
        let hash = self.hasher.hash_one(name);
        let (nodes, hasher) = (&self.nodes, &self.hasher);
        self.node_index.insert_unique(hash, slot, |&s| {
            hasher.hash_one(nodes[s as usize].as_ref().map_or("", |n| n.name()))
        });
        self.live_nodes += 1;
        Ok(slot)
    }

    /// Removes node `slot` and every edge touching it.
    pub(crate) fn remove_node(&mut self, slot: u32) {
        let Some(node) = self.nodes.get_mut(slot as usize).and_then(Option::take) else {
            return;
        };
        let hash = self.hasher.hash_one(node.name());
        if let Ok(entry) = self.node_index.find_entry(hash, |&s| s == slot) {
            entry.remove();
        }
        self.live_nodes -= 1;
        for a in &node.adj {
            if a.nbr != slot
                && let Some(Some(other)) = self.nodes.get_mut(a.nbr as usize)
                && let Some(i) = other.adj.iter().position(|x| x.edge == a.edge)
            {
                other.adj.remove(i);
            }
            self.drop_edge_slot(a.edge);
        }
    }

    /// Compacts node slots when tombstones outnumber live nodes.
    pub(crate) fn maybe_compact(&mut self) {
        let dead = self.nodes.len() - self.live_nodes;
        if dead >= 64 && dead >= self.live_nodes {
            self.compact();
        }
    }

    /// Renumbers live nodes densely, keeping their order.
    pub(crate) fn compact(&mut self) {
        let order: Vec<u32> = (0..self.nodes.len() as u32)
            .filter(|&s| self.nodes[s as usize].is_some())
            .collect();
        self.reorder_nodes(&order);
    }

    /// Renumbers the nodes: `order` lists every live slot once, in the new node order.
    pub(crate) fn reorder_nodes(&mut self, order: &[u32]) {
        let mut map = vec![u32::MAX; self.nodes.len()];
        for (new, &old) in order.iter().enumerate() {
            if let Some(m) = map.get_mut(old as usize) {
                *m = new as u32;
            }
        }
        let mut old_nodes = std::mem::take(&mut self.nodes);
        let mut nodes = Vec::with_capacity(order.len());
        for &old in order {
            if let Some(mut node) = old_nodes.get_mut(old as usize).and_then(Option::take) {
                for a in &mut node.adj {
                    a.nbr = map.get(a.nbr as usize).copied().unwrap_or(u32::MAX);
                }
                nodes.push(Some(node));
            }
        }
        drop(old_nodes);
        self.nodes = nodes;
        self.live_nodes = self.nodes.len();
        for e in self.edges.iter_mut().flatten() {
            e.a = map.get(e.a as usize).copied().unwrap_or(u32::MAX);
            e.b = map.get(e.b as usize).copied().unwrap_or(u32::MAX);
        }
        self.rebuild_indexes();
    }

    fn rebuild_indexes(&mut self) {
        let hasher = &self.hasher;
        let mut node_index = HashTable::with_capacity(self.live_nodes);
        for (slot, node) in self.nodes.iter().enumerate() {
            if let Some(node) = node {
                node_index.insert_unique(hasher.hash_one(node.name()), slot as u32, |&s| {
                    hasher.hash_one(self.nodes[s as usize].as_ref().map_or("", |n| n.name()))
                });
            }
        }
        self.node_index = node_index;
        let mut edge_index = HashTable::with_capacity(self.live_edges);
        for (slot, e) in self.edges.iter().enumerate() {
            if let Some(e) = e {
                edge_index.insert_unique(pair_hash(hasher, e.a, e.b), slot as u32, |&s| {
                    self.edges[s as usize]
                        .as_ref()
                        .map_or(0, |e| pair_hash(hasher, e.a, e.b))
                });
            }
        }
        self.edge_index = edge_index;
    }

    // --- edges --------------------------------------------------------------------------------

    pub(crate) fn find_edge(&self, u: u32, v: u32) -> Option<u32> {
        let hash = pair_hash(&self.hasher, u, v);
        let (lo, hi) = (u.min(v), u.max(v));
        let edges = &self.edges;
        self.edge_index
            .find(hash, |&s| {
                edges[s as usize]
                    .as_ref()
                    .is_some_and(|e| e.a.min(e.b) == lo && e.a.max(e.b) == hi)
            })
            .copied()
    }

    /// Adds the edge u–v (properties `new`) or merges `new` into it. Returns its slot.
    pub(crate) fn merge_edge(&mut self, u: u32, v: u32, new: &[u8]) -> StorageResult<u32> {
        if let Some(slot) = self.find_edge(u, v) {
            if !new.is_empty()
                && let Some(e) = self.edges[slot as usize].as_mut()
            {
                let mut out = std::mem::take(&mut self.scratch);
                out.clear();
                merge_attrs(&self.keys, &e.attrs, new, &mut out);
                e.attrs = out.as_slice().into();
                self.scratch = out;
            }
            return Ok(slot);
        }
        let attrs: Box<[u8]> = if distinct_names(&self.keys, new) {
            new.into()
        } else {
            let mut out = Vec::new();
            merge_attrs(&self.keys, &[], new, &mut out);
            out.into_boxed_slice()
        };
        let edge = Edge { a: u, b: v, attrs };
        let slot = match self.free_edges.pop() {
            Some(s) => {
                self.edges[s as usize] = Some(edge);
                s
            }
            None => {
                let s = u32::try_from(self.edges.len())
                    .ok()
                    .filter(|&s| s < u32::MAX)
                    .ok_or_else(|| too_large("edges"))?;
                self.edges.push(Some(edge));
                s
            }
        };
        let (edges, hasher) = (&self.edges, &self.hasher);
        self.edge_index
            .insert_unique(pair_hash(hasher, u, v), slot, |&s| {
                edges[s as usize]
                    .as_ref()
                    .map_or(0, |e| pair_hash(hasher, e.a, e.b))
            });
        if let Some(Some(n)) = self.nodes.get_mut(u as usize) {
            n.adj.push(Adj { nbr: v, edge: slot });
        }
        if u != v
            && let Some(Some(n)) = self.nodes.get_mut(v as usize)
        {
            n.adj.push(Adj { nbr: u, edge: slot });
        }
        self.live_edges += 1;
        Ok(slot)
    }

    /// Merges `new` into edge `slot`'s properties.
    pub(crate) fn merge_edge_attrs(&mut self, slot: u32, new: &[u8]) {
        if let Some(Some(e)) = self.edges.get_mut(slot as usize) {
            let mut out = Vec::new();
            merge_attrs(&self.keys, &e.attrs, new, &mut out);
            e.attrs = out.into_boxed_slice();
        }
    }

    /// Removes the edge u–v; false when there is none.
    pub(crate) fn remove_edge(&mut self, u: u32, v: u32) -> bool {
        let Some(slot) = self.find_edge(u, v) else {
            return false;
        };
        for n in [u, v] {
            if let Some(Some(node)) = self.nodes.get_mut(n as usize)
                && let Some(i) = node.adj.iter().position(|a| a.edge == slot)
            {
                node.adj.remove(i);
            }
        }
        self.drop_edge_slot(slot);
        true
    }

    fn drop_edge_slot(&mut self, slot: u32) {
        let Some(e) = self.edges.get_mut(slot as usize).and_then(Option::take) else {
            return;
        };
        let hash = pair_hash(&self.hasher, e.a, e.b);
        if let Ok(entry) = self.edge_index.find_entry(hash, |&s| s == slot) {
            entry.remove();
        }
        self.free_edges.push(slot);
        self.live_edges -= 1;
    }

    /// Edges in networkx's `G.edges()` order from `(node slot, adjacency position)`.
    pub(crate) fn edges_from(&self, node: usize, pos: usize) -> OrderedEdges<'_> {
        OrderedEdges {
            g: self,
            u: node,
            pos,
        }
    }

    /// Gives every node the neighbour order networkx has after `read_graphml`, which rebuilds
    /// the graph by adding the edges in `G.edges()` order; also trims spare capacity.
    pub(crate) fn canonicalize_adjacency(&mut self) {
        let order: Vec<u32> = self.edges_from(0, 0).map(|(_, _, e)| e).collect();
        let mut degree = vec![0u32; self.nodes.len()];
        for &e in &order {
            if let Some(e) = self.edge(e) {
                if let Some(d) = degree.get_mut(e.a as usize) {
                    *d += 1;
                }
                if e.a != e.b
                    && let Some(d) = degree.get_mut(e.b as usize)
                {
                    *d += 1;
                }
            }
        }
        for (node, d) in self.nodes.iter_mut().zip(&degree) {
            if let Some(node) = node {
                node.adj = Vec::with_capacity(*d as usize);
            }
        }
        drop(degree);
        for e in order {
            let Some(edge) = self.edges.get(e as usize).and_then(Option::as_ref) else {
                continue;
            };
            let (a, b) = (edge.a, edge.b);
            if let Some(Some(n)) = self.nodes.get_mut(a as usize) {
                n.adj.push(Adj { nbr: b, edge: e });
            }
            if a != b
                && let Some(Some(n)) = self.nodes.get_mut(b as usize)
            {
                n.adj.push(Adj { nbr: a, edge: e });
            }
        }
        self.nodes.shrink_to_fit();
        self.edges.shrink_to_fit();
        self.free_edges.shrink_to_fit();
        self.scratch = Vec::new();
    }

    /// networkx's degree: neighbours, a self-loop counted twice.
    fn degree(&self, slot: u32) -> usize {
        self.node(slot).map_or(0, |n| {
            n.adj.len() + usize::from(n.adj.iter().any(|a| a.nbr == slot))
        })
    }
}

fn pair_hash(hasher: &DefaultHashBuilder, u: u32, v: u32) -> u64 {
    hasher.hash_one((u.min(v), u.max(v)))
}

/// Converts `v` to type `ty` when no information is lost (an integer into a double key, an
/// integral float into a long key).
fn convert_lossless(v: Val<'_>, ty: AttrType) -> Option<Val<'_>> {
    match (v, ty) {
        (Val::Long(i), AttrType::Double) => {
            let f = i as f64;
            (f as i128 == i128::from(i)).then_some(Val::Double(f))
        }
        (Val::Double(f), AttrType::Long) => {
            // 2^63: the first float above i64::MAX.
            const TWO_63: f64 = 9_223_372_036_854_775_808.0;
            (f.fract() == 0.0 && (-TWO_63..TWO_63).contains(&f)).then_some(Val::Long(f as i64))
        }
        _ => None,
    }
}

fn value_for_message(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        let cut: String = s.chars().take(60).collect();
        format!("{cut}…")
    } else {
        s
    }
}

/// Iterator over edges in write order: `(u slot, v slot, edge slot)`, `u` before `v` in node
/// order (or equal for a self-loop).
pub(crate) struct OrderedEdges<'g> {
    g: &'g Graph,
    u: usize,
    pos: usize,
}

impl OrderedEdges<'_> {
    /// Where the iteration stands: (node slot, adjacency position).
    pub(crate) fn position(&self) -> (usize, usize) {
        (self.u, self.pos)
    }
}

impl Iterator for OrderedEdges<'_> {
    type Item = (u32, u32, u32);

    fn next(&mut self) -> Option<(u32, u32, u32)> {
        loop {
            let slot = self.g.nodes.get(self.u)?;
            let Some(node) = slot else {
                self.u += 1;
                self.pos = 0;
                continue;
            };
            match node.adj.get(self.pos) {
                Some(a) => {
                    self.pos += 1;
                    if a.nbr as usize >= self.u {
                        return Some((self.u as u32, a.nbr, a.edge));
                    }
                }
                None => {
                    self.u += 1;
                    self.pos = 0;
                }
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// The store
// ------------------------------------------------------------------------------------------------

struct State {
    graph: Graph,
    /// Bumped by every change.
    version: u64,
}

struct Inner {
    path: PathBuf,
    state: RwLock<State>,
    /// `version` last loaded or written.
    saved: AtomicU64,
    /// One flush at a time.
    flushing: Mutex<()>,
}

/// LightRAG's `NetworkXStorage` on a `graph_chunk_entity_relation.graphml` file.
#[derive(Clone)]
pub struct JsonGraphStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for JsonGraphStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonGraphStore")
            .field("path", &self.inner.path)
            .finish()
    }
}

fn poisoned() -> StorageError {
    StorageError::Backend("the graph store's lock is poisoned (a writer panicked)".into())
}

/// Loads `path` (blocking). A missing file is an empty graph; an unreadable one fails with
/// [`StorageError::Corrupt`] naming the file and byte offset.
pub fn load(path: PathBuf) -> StorageResult<JsonGraphStore> {
    JsonGraphStore::load(path)
}

impl JsonGraphStore {
    /// See [`load`].
    pub fn load(path: PathBuf) -> StorageResult<JsonGraphStore> {
        let graph = graphml::read_file(&path)?.unwrap_or_else(Graph::new);
        Ok(JsonGraphStore {
            inner: Arc::new(Inner {
                path,
                state: RwLock::new(State { graph, version: 0 }),
                saved: AtomicU64::new(0),
                flushing: Mutex::new(()),
            }),
        })
    }

    /// The file this store loads from and flushes to.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// True when there are changes `flush` would write.
    pub fn is_dirty(&self) -> bool {
        self.read()
            .map(|s| s.version != self.inner.saved.load(Ordering::Acquire))
            .unwrap_or(false)
    }

    /// Writes the current graph to `path` atomically (blocking), as networkx would.
    pub fn write_to(&self, path: &Path) -> StorageResult<()> {
        let state = self.read()?;
        write_graph_file(&state.graph, path)
    }

    fn read(&self) -> StorageResult<RwLockReadGuard<'_, State>> {
        self.inner.state.read().map_err(|_| poisoned())
    }

    fn write(&self) -> StorageResult<RwLockWriteGuard<'_, State>> {
        self.inner.state.write().map_err(|_| poisoned())
    }

    fn flush_blocking(inner: &Inner) -> StorageResult<bool> {
        let _one = inner.flushing.lock().map_err(|_| poisoned())?;
        let state = inner.state.read().map_err(|_| poisoned())?;
        if state.version == inner.saved.load(Ordering::Acquire) {
            return Ok(false);
        }
        write_graph_file(&state.graph, &inner.path)?;
        inner.saved.store(state.version, Ordering::Release);
        Ok(true)
    }
}

fn write_graph_file(graph: &Graph, path: &Path) -> StorageResult<()> {
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(NEW_FILE_MODE);
    fsutil::write_atomic_with(path, mode, |w| graphml::write(graph, w))
        .map_err(|e| StorageError::io(path, e))
}

fn node_owner(name: &str) -> String {
    format!("graph node {name:?}")
}

pub(crate) fn check_name(name: &str) -> StorageResult<()> {
    match first_non_xml_char(name) {
        Some(c) => Err(StorageError::Invalid(format!(
            "{}: the name holds {c:?}, which XML cannot carry",
            node_owner(name)
        ))),
        None => Ok(()),
    }
}

fn parse_cursor(c: &Cursor, prefix: char) -> StorageResult<(usize, usize)> {
    let bad = || StorageError::Invalid(format!("not a graph cursor: {:?}", c.0));
    let rest = c.0.strip_prefix(prefix).ok_or_else(bad)?;
    let (a, b) = rest.split_once(':').unwrap_or((rest, "0"));
    Ok((a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?))
}

#[async_trait]
impl GraphStore for JsonGraphStore {
    async fn upsert_nodes(&self, nodes: Vec<(String, Record)>) -> StorageResult<()> {
        if nodes.is_empty() {
            return Ok(());
        }
        let mut st = self.write()?;
        let g = &mut st.graph;
        let keys_before = g.keys.len();
        let mut encoded = Vec::with_capacity(nodes.len());
        for (name, rec) in &nodes {
            let owner = || node_owner(name);
            let res = check_name(name).and_then(|()| g.encode_record(Scope::Node, &owner, rec));
            match res {
                Ok(blob) => encoded.push(blob),
                Err(e) => {
                    g.keys.truncate(keys_before);
                    return Err(e);
                }
            }
        }
        for ((name, _), blob) in nodes.iter().zip(&encoded) {
            g.merge_node(name, blob)?;
        }
        st.version += 1;
        Ok(())
    }

    async fn upsert_edges(&self, edges: Vec<(String, String, Record)>) -> StorageResult<()> {
        if edges.is_empty() {
            return Ok(());
        }
        let mut st = self.write()?;
        let g = &mut st.graph;
        let keys_before = g.keys.len();
        let mut encoded = Vec::with_capacity(edges.len());
        for (a, b, rec) in &edges {
            let owner = || format!("graph edge {a:?} – {b:?}");
            let res = check_name(a)
                .and_then(|()| check_name(b))
                .and_then(|()| g.encode_record(Scope::Edge, &owner, rec));
            match res {
                Ok(blob) => encoded.push(blob),
                Err(e) => {
                    g.keys.truncate(keys_before);
                    return Err(e);
                }
            }
        }
        for ((a, b, _), blob) in edges.iter().zip(&encoded) {
            let u = g.merge_node(a, &[])?;
            let v = g.merge_node(b, &[])?;
            g.merge_edge(u, v, blob)?;
        }
        st.version += 1;
        Ok(())
    }

    async fn get_node(&self, id: &str) -> StorageResult<Option<Record>> {
        let st = self.read()?;
        let g = &st.graph;
        Ok(g.find_node(id)
            .and_then(|s| g.node(s))
            .map(|n| g.record(Scope::Node, n.attr_bytes())))
    }

    async fn get_edge(&self, a: &str, b: &str) -> StorageResult<Option<Record>> {
        let st = self.read()?;
        let g = &st.graph;
        let (Some(u), Some(v)) = (g.find_node(a), g.find_node(b)) else {
            return Ok(None);
        };
        Ok(g.find_edge(u, v)
            .and_then(|e| g.edge(e))
            .map(|e| g.record(Scope::Edge, &e.attrs)))
    }

    async fn delete_nodes(&self, ids: &[String]) -> StorageResult<()> {
        let mut st = self.write()?;
        let mut changed = false;
        for id in ids {
            if let Some(slot) = st.graph.find_node(id) {
                st.graph.remove_node(slot);
                changed = true;
            }
        }
        if changed {
            st.graph.maybe_compact();
            st.version += 1;
        }
        Ok(())
    }

    async fn delete_edges(&self, pairs: &[(String, String)]) -> StorageResult<()> {
        let mut st = self.write()?;
        let mut changed = false;
        for (a, b) in pairs {
            if let (Some(u), Some(v)) = (st.graph.find_node(a), st.graph.find_node(b)) {
                changed |= st.graph.remove_edge(u, v);
            }
        }
        if changed {
            st.version += 1;
        }
        Ok(())
    }

    async fn neighbours(&self, id: &str) -> StorageResult<Vec<String>> {
        let st = self.read()?;
        let g = &st.graph;
        let Some(node) = g.find_node(id).and_then(|s| g.node(s)) else {
            return Ok(Vec::new());
        };
        Ok(node
            .adj
            .iter()
            .filter_map(|a| g.node(a.nbr).map(|n| n.name().to_owned()))
            .collect())
    }

    async fn degree(&self, id: &str) -> StorageResult<u64> {
        let st = self.read()?;
        Ok(st
            .graph
            .find_node(id)
            .map_or(0, |s| st.graph.degree(s) as u64))
    }

    async fn node_count(&self) -> StorageResult<u64> {
        Ok(self.read()?.graph.node_count() as u64)
    }

    async fn edge_count(&self) -> StorageResult<u64> {
        Ok(self.read()?.graph.edge_count() as u64)
    }

    /// Nodes in write order; the cursor is `n<slot>` (valid while no node is deleted).
    async fn page_nodes(
        &self,
        cursor: Option<Cursor>,
        limit: usize,
    ) -> StorageResult<Page<(String, Record)>> {
        let start = match &cursor {
            Some(c) => parse_cursor(c, 'n')?.0,
            None => 0,
        };
        let st = self.read()?;
        let g = &st.graph;
        let mut items = Vec::new();
        let mut slot = start;
        while slot < g.node_slots() && items.len() < limit.max(1) {
            if let Some(n) = g.node(slot as u32) {
                items.push((n.name().to_owned(), g.record(Scope::Node, n.attr_bytes())));
            }
            slot += 1;
        }
        while slot < g.node_slots() && g.node(slot as u32).is_none() {
            slot += 1;
        }
        let next = (slot < g.node_slots()).then(|| Cursor(format!("n{slot}")));
        Ok(Page { items, next })
    }

    /// Edges in write order, `(u, v)` with `u` first in node order; the cursor is
    /// `e<node slot>:<adjacency position>` (valid while nothing is deleted).
    async fn page_edges(
        &self,
        cursor: Option<Cursor>,
        limit: usize,
    ) -> StorageResult<Page<(String, String, Record)>> {
        let (node, pos) = match &cursor {
            Some(c) => parse_cursor(c, 'e')?,
            None => (0, 0),
        };
        let st = self.read()?;
        let g = &st.graph;
        let mut it = g.edges_from(node, pos);
        let mut items = Vec::new();
        let mut at = it.position();
        while items.len() < limit.max(1) {
            let Some((u, v, e)) = it.next() else {
                return Ok(Page { items, next: None });
            };
            if let (Some(un), Some(vn), Some(edge)) = (g.node(u), g.node(v), g.edge(e)) {
                items.push((
                    un.name().to_owned(),
                    vn.name().to_owned(),
                    g.record(Scope::Edge, &edge.attrs),
                ));
            }
            at = it.position();
        }
        // Look ahead so that a finished scan says so.
        let next = it.next().map(|_| Cursor(format!("e{}:{}", at.0, at.1)));
        Ok(Page { items, next })
    }

    async fn flush(&self) -> StorageResult<bool> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || JsonGraphStore::flush_blocking(&inner))
            .await
            .map_err(|e| StorageError::Backend(format!("graph flush task failed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn fixture_dir(version: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures")
            .join(format!("lightrag-{version}-small"))
    }

    /// (nodes, edges) from a fixture's COUNTS.json.
    fn fixture_counts(version: &str) -> Result<(u64, u64), Box<dyn std::error::Error>> {
        let counts: Value =
            serde_json::from_slice(&std::fs::read(fixture_dir(version).join("COUNTS.json"))?)?;
        let g = if counts.get("graph").is_some() {
            &counts["graph"]
        } else {
            &counts["files"]["graph_chunk_entity_relation.graphml"]
        };
        let n = g["nodes"].as_u64().ok_or("no node count")?;
        let e = g["edges"].as_u64().ok_or("no edge count")?;
        Ok((n, e))
    }

    fn rec(v: Value) -> Record {
        match v {
            Value::Object(m) => m,
            _ => Record::new(),
        }
    }

    fn s(x: &str) -> String {
        x.to_owned()
    }

    /// Copies a fixture's graph into a temp dir.
    fn copy_fixture(version: &str, dir: &Path) -> Result<PathBuf, Box<dyn std::error::Error>> {
        let target = dir.join(crate::storage::GRAPH_FILE);
        std::fs::copy(
            fixture_dir(version).join(crate::storage::GRAPH_FILE),
            &target,
        )?;
        Ok(target)
    }

    #[tokio::test]
    async fn fixtures_load_with_their_counts_and_round_trip_byte_identically() -> TestResult {
        for version in ["1.5.7", "1.4.9.8"] {
            let dir = tempfile::tempdir()?;
            let path = copy_fixture(version, dir.path())?;
            let store = JsonGraphStore::load(path.clone())?;
            let (nodes, edges) = fixture_counts(version)?;
            assert_eq!(store.node_count().await?, nodes, "{version}");
            assert_eq!(store.edge_count().await?, edges, "{version}");
            let out = dir.path().join("out.graphml");
            store.write_to(&out)?;
            assert!(
                std::fs::read(&path)? == std::fs::read(&out)?,
                "{version}: bytes differ"
            );
            // Never modified: flush writes nothing.
            assert!(!store.flush().await?);
        }
        Ok(())
    }

    #[tokio::test]
    async fn fixture_records_have_lightrag_types() -> TestResult {
        let dir = tempfile::tempdir()?;
        let store = JsonGraphStore::load(copy_fixture("1.5.7", dir.path())?)?;
        let node = store.get_node("Tariq Anders").await?.ok_or("no node")?;
        assert_eq!(node["entity_id"], json!("Tariq Anders"));
        assert_eq!(node["entity_type"], json!("person"));
        assert_eq!(node["created_at"], json!(1735689600));
        assert_eq!(node["truncate"], json!(""));
        assert!(
            node["description"]
                .as_str()
                .is_some_and(|d| d.contains("<SEP>"))
        );
        let keys: Vec<&str> = node.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "entity_id",
                "entity_type",
                "description",
                "source_id",
                "file_path",
                "created_at",
                "truncate"
            ]
        );
        let page = store.page_edges(None, 1).await?;
        let (a, b, edge) = page.items.first().ok_or("no edge")?;
        assert!(edge["weight"].is_f64(), "{edge:?}");
        assert_eq!(store.get_edge(b, a).await?.as_ref(), Some(edge));
        Ok(())
    }

    #[tokio::test]
    async fn missing_file_is_an_empty_graph_and_an_unchanged_store_writes_nothing() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join(crate::storage::GRAPH_FILE);
        let store = JsonGraphStore::load(path.clone())?;
        assert_eq!(store.node_count().await?, 0);
        assert_eq!(store.edge_count().await?, 0);
        assert!(!store.flush().await?);
        assert!(!path.exists());
        store.delete_nodes(&[s("nobody")]).await?;
        store.delete_edges(&[(s("a"), s("b"))]).await?;
        assert!(!store.flush().await?, "deleting nothing is no change");
        store.upsert_nodes(vec![(s("A"), Record::new())]).await?;
        assert!(store.is_dirty());
        assert!(store.flush().await?);
        assert!(!store.flush().await?);
        let text = std::fs::read_to_string(&path)?;
        assert!(text.contains("    <node id=\"A\" />\n"), "{text}");
        Ok(())
    }

    #[tokio::test]
    async fn empty_graph_is_written_as_networkx_does() -> TestResult {
        let dir = tempfile::tempdir()?;
        let store = JsonGraphStore::load(dir.path().join("g.graphml"))?;
        let out = dir.path().join("out.graphml");
        store.write_to(&out)?;
        assert_eq!(
            std::fs::read_to_string(&out)?,
            "<?xml version='1.0' encoding='utf-8'?>\n<graphml xmlns=\"http://graphml.graphdrawing.org/xmlns\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:schemaLocation=\"http://graphml.graphdrawing.org/xmlns http://graphml.graphdrawing.org/xmlns/1.0/graphml.xsd\">\n  <graph edgedefault=\"undirected\" />\n</graphml>\n"
        );
        // And it reads back.
        let again = JsonGraphStore::load(out)?;
        assert_eq!(again.node_count().await?, 0);
        Ok(())
    }

    /// The operations of `scenario.py` (networkx 3.6.1) through the trait; `EXPECTED` is what
    /// `nx.write_graphml_xml` wrote for it.
    async fn run_scenario(store: &JsonGraphStore) -> TestResult {
        let odd = "N\t1\n\"q\"&<>";
        store
            .upsert_nodes(vec![
                (
                    s("A"),
                    rec(json!({"entity_id": "A", "entity_type": "person",
                        "description": "x<SEP>y & \"z\"", "source_id": "c1",
                        "created_at": 1735689600, "truncate": ""})),
                ),
                (s("B"), rec(json!({"entity_id": "B", "score": 2.5}))),
            ])
            .await?;
        store
            .upsert_edges(vec![(
                s("B"),
                s("C"),
                rec(
                    json!({"weight": 1.0, "description": "d", "keywords": "k1,k2",
                    "created_at": 1, "truncate": ""}),
                ),
            )])
            .await?;
        store
            .upsert_edges(vec![
                (s("A"), s("B"), rec(json!({"weight": 2.0}))),
                (s("C"), s("A"), rec(json!({"description": "ca"}))),
            ])
            .await?;
        store
            .upsert_nodes(vec![(
                s("A"),
                rec(json!({"description": "new", "extra": true})),
            )])
            .await?;
        store
            .upsert_edges(vec![
                (s("A"), s("C"), rec(json!({"weight": 0.5}))),
                (s("D"), s("D"), rec(json!({"flag": false}))),
            ])
            .await?;
        store
            .upsert_nodes(vec![(s(odd), rec(json!({"entity_id": odd})))])
            .await?;
        store
            .upsert_edges(vec![
                (s("E"), s(odd), rec(json!({"weight": 1e-05}))),
                (s("E"), s("A"), rec(json!({"weight": 1e16}))),
            ])
            .await?;
        store.delete_nodes(&[s("B")]).await?;
        store
            .upsert_edges(vec![(s("B"), s("E"), Record::new())])
            .await?;
        Ok(())
    }

    const EXPECTED: &str = r#"<?xml version='1.0' encoding='utf-8'?>
<graphml xmlns="http://graphml.graphdrawing.org/xmlns" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="http://graphml.graphdrawing.org/xmlns http://graphml.graphdrawing.org/xmlns/1.0/graphml.xsd">
  <key id="d9" for="edge" attr.name="flag" attr.type="boolean" />
  <key id="d8" for="edge" attr.name="weight" attr.type="double" />
  <key id="d7" for="edge" attr.name="description" attr.type="string" />
  <key id="d6" for="node" attr.name="extra" attr.type="boolean" />
  <key id="d5" for="node" attr.name="truncate" attr.type="string" />
  <key id="d4" for="node" attr.name="created_at" attr.type="long" />
  <key id="d3" for="node" attr.name="source_id" attr.type="string" />
  <key id="d2" for="node" attr.name="description" attr.type="string" />
  <key id="d1" for="node" attr.name="entity_type" attr.type="string" />
  <key id="d0" for="node" attr.name="entity_id" attr.type="string" />
  <graph edgedefault="undirected">
    <node id="A">
      <data key="d0">A</data>
      <data key="d1">person</data>
      <data key="d2">new</data>
      <data key="d3">c1</data>
      <data key="d4">1735689600</data>
      <data key="d5" />
      <data key="d6">True</data>
    </node>
    <node id="C" />
    <node id="D" />
    <node id="N&#09;1&#10;&quot;q&quot;&amp;&lt;&gt;">
      <data key="d0">N	1
"q"&amp;&lt;&gt;</data>
    </node>
    <node id="E" />
    <node id="B" />
    <edge source="A" target="C">
      <data key="d7">ca</data>
      <data key="d8">0.5</data>
    </edge>
    <edge source="A" target="E">
      <data key="d8">1e+16</data>
    </edge>
    <edge source="D" target="D">
      <data key="d9">False</data>
    </edge>
    <edge source="N&#09;1&#10;&quot;q&quot;&amp;&lt;&gt;" target="E">
      <data key="d8">1e-05</data>
    </edge>
    <edge source="E" target="B" />
  </graph>
</graphml>
"#;

    #[tokio::test]
    async fn trait_operations_write_what_networkx_writes() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join(crate::storage::GRAPH_FILE);
        let store = JsonGraphStore::load(path.clone())?;
        run_scenario(&store).await?;
        assert!(store.flush().await?);
        assert_eq!(std::fs::read_to_string(&path)?, EXPECTED);

        // Neighbour order, degree (a self-loop counts twice) as networkx has them.
        assert_eq!(store.neighbours("A").await?, ["C", "E"]);
        assert_eq!(store.neighbours("E").await?, ["N\t1\n\"q\"&<>", "A", "B"]);
        assert_eq!(store.neighbours("D").await?, ["D"]);
        assert_eq!(store.degree("D").await?, 2);
        assert_eq!(store.degree("E").await?, 3);
        assert_eq!(store.degree("nobody").await?, 0);
        assert!(store.neighbours("nobody").await?.is_empty());
        assert_eq!(store.node_count().await?, 6);
        assert_eq!(store.edge_count().await?, 5);

        // Reloading what was written gives the same graph, and writes the same bytes again.
        let again = JsonGraphStore::load(path.clone())?;
        let out = dir.path().join("again.graphml");
        again.write_to(&out)?;
        assert_eq!(std::fs::read_to_string(&out)?, EXPECTED);
        for id in ["A", "C", "D", "E", "B", "N\t1\n\"q\"&<>"] {
            assert_eq!(again.get_node(id).await?, store.get_node(id).await?, "{id}");
        }
        // As after nx.read_graphml: neighbours in the order the file's edges name them.
        assert_eq!(again.neighbours("E").await?, ["A", "N\t1\n\"q\"&<>", "B"]);
        let all = |st: JsonGraphStore| async move {
            let mut out = Vec::new();
            let mut cursor = None;
            loop {
                let page = st.page_edges(cursor, 2).await?;
                out.extend(page.items);
                match page.next {
                    Some(c) => cursor = Some(c),
                    None => return Ok::<_, StorageError>(out),
                }
            }
        };
        assert_eq!(all(again.clone()).await?, all(store.clone()).await?);
        Ok(())
    }

    #[tokio::test]
    async fn upserts_merge_like_networkx() -> TestResult {
        let dir = tempfile::tempdir()?;
        let store = JsonGraphStore::load(dir.path().join("g.graphml"))?;
        store
            .upsert_nodes(vec![(
                s("A"),
                rec(json!({"entity_type": "x", "description": "one"})),
            )])
            .await?;
        store
            .upsert_nodes(vec![(
                s("A"),
                rec(json!({"source_id": "c", "entity_type": "y"})),
            )])
            .await?;
        let a = store.get_node("A").await?.ok_or("no A")?;
        assert_eq!(
            Value::Object(a),
            json!({"entity_type": "y", "description": "one", "source_id": "c"})
        );
        let keys: Vec<String> = store
            .get_node("A")
            .await?
            .ok_or("no A")?
            .keys()
            .cloned()
            .collect();
        assert_eq!(
            keys,
            ["entity_type", "description", "source_id"],
            "dict.update keeps places"
        );

        // Edges: either direction is the same edge; missing endpoints are created bare.
        store
            .upsert_edges(vec![(
                s("A"),
                s("B"),
                rec(json!({"weight": 1.0, "keywords": "k"})),
            )])
            .await?;
        store
            .upsert_edges(vec![(
                s("B"),
                s("A"),
                rec(json!({"weight": 3.0, "description": "d"})),
            )])
            .await?;
        assert_eq!(store.edge_count().await?, 1);
        let want = json!({"weight": 3.0, "keywords": "k", "description": "d"});
        assert_eq!(
            store.get_edge("A", "B").await?.map(Value::Object),
            Some(want.clone())
        );
        assert_eq!(
            store.get_edge("B", "A").await?.map(Value::Object),
            Some(want)
        );
        assert_eq!(store.get_node("B").await?, Some(Record::new()));
        assert_eq!(store.get_edge("A", "C").await?, None);
        assert_eq!(store.get_edge("A", "nobody").await?, None);
        assert_eq!(store.get_node("nobody").await?, None);

        // Deleting an edge in the other direction.
        store
            .delete_edges(&[(s("B"), s("A")), (s("A"), s("zzz"))])
            .await?;
        assert_eq!(store.edge_count().await?, 0);
        assert!(store.neighbours("A").await?.is_empty());
        assert_eq!(store.node_count().await?, 2);
        Ok(())
    }

    #[tokio::test]
    async fn deleting_nodes_deletes_their_edges() -> TestResult {
        let dir = tempfile::tempdir()?;
        let store = JsonGraphStore::load(copy_fixture("1.4.9.8", dir.path())?)?;
        let (nodes, edges) = (store.node_count().await?, store.edge_count().await?);
        let first = (store.page_nodes(None, 1).await?.items.into_iter().next())
            .ok_or("empty")?
            .0;
        let nbrs = store.neighbours(&first).await?;
        let self_loop = nbrs.contains(&first);
        let degree = store.degree(&first).await?;
        assert!(degree > 0);
        store.delete_nodes(std::slice::from_ref(&first)).await?;
        assert_eq!(store.node_count().await?, nodes - 1);
        assert_eq!(
            store.edge_count().await?,
            edges - degree + u64::from(self_loop),
            "every incident edge goes"
        );
        assert_eq!(store.get_node(&first).await?, None);
        for n in &nbrs {
            assert!(!store.neighbours(n).await?.contains(&first));
            assert_eq!(store.get_edge(n, &first).await?, None);
        }
        // What is written reloads to the same counts.
        assert!(store.flush().await?);
        let again = JsonGraphStore::load(store.path().to_path_buf())?;
        assert_eq!(again.node_count().await?, nodes - 1);
        assert_eq!(again.edge_count().await?, store.edge_count().await?);
        Ok(())
    }

    #[tokio::test]
    async fn compaction_keeps_order_and_lookups() -> TestResult {
        let dir = tempfile::tempdir()?;
        let store = JsonGraphStore::load(dir.path().join("g.graphml"))?;
        let names: Vec<String> = (0..300).map(|i| format!("n{i}")).collect();
        store
            .upsert_nodes(
                names
                    .iter()
                    .map(|n| (n.clone(), rec(json!({"i": n}))))
                    .collect(),
            )
            .await?;
        let edges: Vec<_> = names
            .windows(2)
            .map(|w| (w[1].clone(), w[0].clone(), rec(json!({"weight": 1}))))
            .collect();
        store.upsert_edges(edges).await?;
        // Delete two thirds: tombstones outnumber live nodes and get compacted.
        let doomed: Vec<String> = names
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 3 != 0)
            .map(|(_, n)| n.clone())
            .collect();
        store.delete_nodes(&doomed).await?;
        {
            let st = store.read()?;
            assert_eq!(st.graph.node_slots(), st.graph.node_count(), "compacted");
        }
        assert_eq!(store.node_count().await?, 100);
        assert_eq!(store.edge_count().await?, 0);
        let page = store.page_nodes(None, 1000).await?;
        let order: Vec<String> = page.items.into_iter().map(|(n, _)| n).collect();
        let want: Vec<String> = names.iter().step_by(3).cloned().collect();
        assert_eq!(order, want);
        store
            .upsert_edges(vec![(s("n3"), s("n0"), Record::new())])
            .await?;
        assert_eq!(store.neighbours("n0").await?, ["n3"]);
        assert_eq!(
            store.get_node("n297").await?.map(Value::Object),
            Some(json!({"i": "n297"}))
        );
        Ok(())
    }

    #[tokio::test]
    async fn paging_follows_the_write_order() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = copy_fixture("1.5.7", dir.path())?;
        let store = JsonGraphStore::load(path.clone())?;
        let text = std::fs::read_to_string(&path)?;
        // Node and edge order as the file lists them.
        let file_nodes: Vec<&str> = text
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix("<node id=\""))
            .map(|l| l.split('"').next().unwrap_or(""))
            .collect();
        let file_edges: Vec<(&str, &str)> = text
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix("<edge source=\""))
            .map(|l| {
                let mut parts = l.split('"');
                let a = parts.next().unwrap_or("");
                let b = parts.nth(1).unwrap_or("");
                (a, b)
            })
            .collect();
        for limit in [1, 7, 1000] {
            let mut names = Vec::new();
            let mut cursor = None;
            loop {
                let page = store.page_nodes(cursor, limit).await?;
                assert!(page.items.len() <= limit);
                names.extend(page.items.into_iter().map(|(n, _)| n));
                match page.next {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            assert_eq!(names, file_nodes, "limit {limit}");
            let mut pairs = Vec::new();
            let mut cursor = None;
            loop {
                let page = store.page_edges(cursor, limit).await?;
                assert!(page.items.len() <= limit);
                pairs.extend(page.items.into_iter().map(|(a, b, _)| (a, b)));
                match page.next {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            let pairs: Vec<(&str, &str)> = pairs
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect();
            assert_eq!(pairs, file_edges, "limit {limit}");
        }
        assert!(matches!(
            store.page_nodes(Some(Cursor(s("bogus"))), 1).await,
            Err(StorageError::Invalid(_))
        ));
        assert!(matches!(
            store.page_edges(Some(Cursor(s("n1"))), 1).await,
            Err(StorageError::Invalid(_))
        ));
        Ok(())
    }

    #[tokio::test]
    async fn values_are_typed_and_converted_losslessly_or_refused() -> TestResult {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("g.graphml");
        let store = JsonGraphStore::load(path.clone())?;
        store
            .upsert_edges(vec![(
                s("a"),
                s("b"),
                rec(json!({"weight": 1.5, "created_at": 7, "flag": true, "tags": ["x", 1], "obj": {"k": null}, "none": null})),
            )])
            .await?;
        // An integer into the double key, an integral float into the long key.
        store
            .upsert_edges(vec![(
                s("b"),
                s("c"),
                rec(json!({"weight": 2, "created_at": 8.0})),
            )])
            .await?;
        let e = store.get_edge("c", "b").await?.ok_or("no edge")?;
        assert!(e["weight"].is_f64() && e["weight"] == json!(2.0), "{e:?}");
        assert!(
            e["created_at"].is_i64() && e["created_at"] == json!(8),
            "{e:?}"
        );
        let first = store.get_edge("a", "b").await?.ok_or("no edge")?;
        assert_eq!(first["tags"], json!("[\"x\",1]"));
        assert_eq!(first["obj"], json!("{\"k\":null}"));
        assert_eq!(first["none"], json!("null"));
        assert_eq!(first["flag"], json!(true));

        // What does not fit is refused, naming the element and the property, and the whole
        // batch is left out.
        let before = store.edge_count().await?;
        let err = store
            .upsert_edges(vec![
                (s("x"), s("y"), rec(json!({"weight": 1.0, "brand_new": 1}))),
                (s("b"), s("c"), rec(json!({"weight": "heavy"}))),
            ])
            .await
            .err()
            .ok_or("accepted a string weight")?;
        let msg = err.to_string();
        assert!(matches!(err, StorageError::Invalid(_)), "{msg}");
        assert!(
            msg.contains("\"b\"") && msg.contains("\"c\"") && msg.contains("\"weight\""),
            "{msg}"
        );
        assert_eq!(store.edge_count().await?, before);
        assert_eq!(store.get_node("x").await?, None);
        // The rolled-back batch left no key behind: brand_new may still take a float.
        store
            .upsert_edges(vec![(s("x"), s("y"), rec(json!({"brand_new": 0.25})))])
            .await?;
        let err = store
            .upsert_nodes(vec![
                (s("n"), rec(json!({"n": 1}))),
                (s("m"), rec(json!({"n": 1.5}))),
            ])
            .await
            .err()
            .ok_or("accepted 1.5 into a long")?;
        assert!(
            err.to_string().contains("graph node \"m\": property \"n\""),
            "{err}"
        );
        let err = store
            .upsert_nodes(vec![(s("bad\u{1}name"), Record::new())])
            .await
            .err()
            .ok_or("accepted a control character")?;
        assert!(matches!(err, StorageError::Invalid(_)), "{err}");

        // Types as written: long, double, boolean, string.
        assert!(store.flush().await?);
        let text = std::fs::read_to_string(&path)?;
        for line in [
            "attr.name=\"weight\" attr.type=\"double\"",
            "attr.name=\"created_at\" attr.type=\"long\"",
            "attr.name=\"flag\" attr.type=\"boolean\"",
            "attr.name=\"tags\" attr.type=\"string\"",
            ">2.0</data>",
            ">True</data>",
            ">[\"x\",1]</data>",
        ] {
            assert!(text.contains(line), "{line} not in {text}");
        }
        let again = JsonGraphStore::load(path)?;
        assert_eq!(again.get_edge("b", "c").await?, Some(e));
        Ok(())
    }
}
