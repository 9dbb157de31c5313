//! Progress events of one export, sent to the client that asked for it.

use hrag_proto::{JobPhase, ProgressEvent};
use tokio::sync::mpsc::UnboundedSender;

pub struct Progress {
    db: String,
    tx: Option<UnboundedSender<ProgressEvent>>,
}

impl Progress {
    pub fn new(db: &str, tx: Option<UnboundedSender<ProgressEvent>>) -> Progress {
        Progress {
            db: db.to_owned(),
            tx,
        }
    }

    /// Where `store` stands (one event per page, so their number is bounded by the pages).
    /// Never waits: a client that has gone away does not stop the export.
    pub fn report(&self, store: &str, records_done: u64, records_total: u64, bytes_done: u64) {
        let Some(tx) = &self.tx else { return };
        let _ = tx.send(ProgressEvent {
            db: self.db.clone(),
            phase: JobPhase::Copying,
            store: Some(store.to_owned()),
            records_done,
            records_total: Some(records_total),
            bytes_done,
            bytes_total: None,
            message: None,
        });
    }
}
