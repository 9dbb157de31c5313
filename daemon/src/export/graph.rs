//! The graph as `graph_chunk_entity_relation.graphml`, laid out as `nx.write_graphml` lays
//! out LightRAG's undirected graph.
//!
//! GraphML declares its `<key>`s before any node, but which keys (and of which type) exist is
//! known only after every node and edge was seen. Nodes and edges are therefore written to a
//! scratch body file while a key table grows (only the distinct property names are held), and
//! the file is then assembled as header + keys + body. Properties are typed, and keys are
//! numbered in first use, by the JSON backend's own `Graph` key table and GraphML writer.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use hrag_proto::StoreReport;

use super::PAGE;
use super::error::ExportError;
use super::out::Out;
use super::progress::Progress;
use crate::storage::json::graph::{Graph, Scope, check_name};
use crate::storage::json::graphml::{HEADER, write_attr_escaped, write_element_data};
use crate::storage::{GraphStore, StorageError};

/// Writes `graph` to `path` through the scratch file `body` (removed afterwards). Reports the
/// nodes and the edges as two stores named `name:nodes` and `name:edges`; the file's bytes are
/// split between them where the edges start.
pub async fn write(
    graph: &dyn GraphStore,
    path: &Path,
    body_path: &Path,
    name: &str,
    progress: &Progress,
) -> Result<[StoreReport; 2], ExportError> {
    let (nodes_store, edges_store) = (format!("{name}:nodes"), format!("{name}:edges"));
    let node_total = graph
        .node_count()
        .await
        .map_err(|e| ExportError::read(&nodes_store, e))?;
    let edge_total = graph
        .edge_count()
        .await
        .map_err(|e| ExportError::read(&edges_store, e))?;
    let mut keys = Graph::new();
    let mut data_open: Vec<String> = Vec::new();
    let mut num = String::new();
    let mut body = Out::create(body_path)?;

    let mut nodes = 0u64;
    let mut cursor = None;
    loop {
        let page = graph
            .page_nodes(cursor, PAGE)
            .await
            .map_err(|e| ExportError::read(&nodes_store, e))?;
        for (id, props) in page.items {
            let bad = |e: StorageError| ExportError::Record {
                store: nodes_store.clone(),
                id: id.clone(),
                reason: e.to_string(),
            };
            check_name(&id).map_err(bad)?;
            let owner = || format!("node {id:?}");
            let attrs = keys
                .encode_record(Scope::Node, &owner, &props)
                .map_err(bad)?;
            grow(&mut data_open, &keys);
            let r = (|| {
                body.write_all(b"    <node id=\"")?;
                write_attr_escaped(&mut body, &id)?;
                write_element_data(&mut body, keys.keys(), &attrs, &data_open, "node", &mut num)
            })();
            r.map_err(|e| body.err(e))?;
            nodes += 1;
        }
        progress.report(&nodes_store, nodes, node_total, body.bytes());
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let node_bytes = body.bytes();

    let mut edges = 0u64;
    let mut cursor = None;
    loop {
        let page = graph
            .page_edges(cursor, PAGE)
            .await
            .map_err(|e| ExportError::read(&edges_store, e))?;
        for (src, tgt, props) in page.items {
            let bad = |e: StorageError| ExportError::Record {
                store: edges_store.clone(),
                id: format!("{src} – {tgt}"),
                reason: e.to_string(),
            };
            let owner = || format!("edge {src:?} – {tgt:?}");
            let attrs = keys
                .encode_record(Scope::Edge, &owner, &props)
                .map_err(bad)?;
            grow(&mut data_open, &keys);
            let r = (|| {
                body.write_all(b"    <edge source=\"")?;
                write_attr_escaped(&mut body, &src)?;
                body.write_all(b"\" target=\"")?;
                write_attr_escaped(&mut body, &tgt)?;
                write_element_data(&mut body, keys.keys(), &attrs, &data_open, "edge", &mut num)
            })();
            r.map_err(|e| body.err(e))?;
            edges += 1;
        }
        progress.report(&edges_store, edges, edge_total, body.bytes() - node_bytes);
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let body_bytes = body.bytes();
    body.finish()?;

    let mut out = Out::create(path)?;
    let head = (|| {
        out.write_all(HEADER.as_bytes())?;
        write_keys(&mut out, &keys)
    })();
    head.map_err(|e| out.err(e))?;
    let head_bytes = out.bytes();
    let r = if nodes == 0 {
        out.write_all(b"  <graph edgedefault=\"undirected\" />\n</graphml>\n")
    } else {
        (|| {
            out.write_all(b"  <graph edgedefault=\"undirected\">\n")?;
            let mut f = File::open(body_path)?;
            io::copy(&mut f, &mut out)?;
            out.write_all(b"  </graph>\n</graphml>\n")
        })()
    };
    r.map_err(|e| out.err(e))?;
    std::fs::remove_file(body_path).map_err(|e| ExportError::write(body_path, e))?;
    let total = out.finish()?;
    // Header, keys and nodes are the nodes' share; edges and the closing tags the edges'.
    let nodes_share = (head_bytes + node_bytes).min(total);
    debug_assert!(total >= head_bytes + body_bytes);
    Ok([
        StoreReport {
            store: nodes_store,
            records: nodes,
            bytes: nodes_share,
            verified: None,
        },
        StoreReport {
            store: edges_store,
            records: edges,
            bytes: total - nodes_share,
            verified: None,
        },
    ])
}

/// `<data key="dN"` for every key of the table (key ids are table positions: first use).
fn grow(data_open: &mut Vec<String>, keys: &Graph) {
    while data_open.len() < keys.keys().len() {
        data_open.push(format!("<data key=\"d{}\"", data_open.len()));
    }
}

/// The `<key>` declarations, last declared first (networkx inserts each at the front).
fn write_keys(w: &mut impl Write, keys: &Graph) -> io::Result<()> {
    for (id, def) in keys.keys().iter().enumerate().rev() {
        write!(
            w,
            "  <key id=\"d{id}\" for=\"{}\" attr.name=\"",
            def.scope.as_str()
        )?;
        write_attr_escaped(w, &def.name)?;
        writeln!(w, "\" attr.type=\"{}\" />", def.ty.graphml_name())?;
    }
    Ok(())
}
