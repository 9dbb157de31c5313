//! Test helper for crash safety: opens a JSON working directory and rewrites stores forever,
//! each round with a new, recognisable version, so a test can kill -9 it mid-flush.
//!
//!     flush_loop DIR
//!
//! Round n stores `{"content": "<n>:<padding>"}` under `doc-crash` in full_docs and a node
//! `crash` with `description = "<n>"` in the graph, then flushes. Prints `flushed n` after each.

use std::io::Write;

use hrag_daemon::storage::json::JsonStores;
use hrag_daemon::storage::{KvNamespace, Record};

fn record(pairs: &[(&str, serde_json::Value)]) -> Record {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: flush_loop DIR"))?;
    let backend = JsonStores::open(std::path::Path::new(&dir), None, Some(64))?.into_backend()?;
    // Big enough that a flush takes a while, so kills land inside writes.
    let padding = "x".repeat(4 << 20);
    for n in 0u64.. {
        let content = format!("{n}:{padding}");
        backend
            .kv(KvNamespace::FullDocs)
            .upsert(vec![(
                "doc-crash".into(),
                record(&[("content", content.into())]),
            )])
            .await?;
        backend
            .graph
            .upsert_nodes(vec![(
                "crash".into(),
                record(&[("description", n.to_string().into())]),
            )])
            .await?;
        backend.flush().await?;
        println!("flushed {n}");
        std::io::stdout().flush()?;
    }
    Ok(())
}
