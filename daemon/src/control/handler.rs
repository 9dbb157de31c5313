//! Turns one [`Request`] into one [`Response`].

use std::sync::Arc;

use hrag_proto::{ProgressEvent, Request, Response};
use tokio::sync::mpsc::UnboundedSender;

use crate::daemon::Daemon;
use crate::error::DaemonError;

pub async fn handle(
    daemon: &Arc<Daemon>,
    request: Request,
    progress: &UnboundedSender<ProgressEvent>,
) -> Response {
    let result: Result<Response, DaemonError> = match request {
        Request::Status => Ok(Response::Status(daemon.status().await)),
        Request::Health => Ok(Response::Health(daemon.health().await)),
        Request::Pause { target } => daemon.set_paused(target, true).await.map(Response::Paused),
        Request::Resume { target } => daemon
            .set_paused(target, false)
            .await
            .map(Response::Resumed),
        Request::DbList => Ok(Response::DbList(daemon.db_list())),
        Request::DbShow { name } => daemon.db_show(&name).map(Response::DbShow),
        Request::DbAdd(spec) => daemon.db_add(spec).await.map(Response::DbAdded),
        Request::DbRemove { name } => daemon
            .db_remove(&name)
            .await
            .map(|()| Response::DbRemoved { name }),
        Request::DbSetBackend(spec) => daemon.db_set_backend(spec).await.map(Response::BackendSet),
        Request::Reload => daemon.reload().await.map(Response::Reloaded),
        Request::BackendStatus { db, verbose: _ } => {
            daemon.backend_status(db).await.map(Response::BackendStatus)
        }
        Request::Query(spec) => daemon.query(spec).await.map(Response::Query),
        Request::Ingest { db, paths } => daemon.ingest(&db, paths).await.map(Response::Enqueued),
        Request::Metrics => Ok(Response::Metrics {
            text: daemon.metrics().await,
        }),
        Request::Migrate(spec) => daemon
            .migrate(spec, progress)
            .await
            .map(Response::Migration),
        Request::MigrateStatus { db } => daemon
            .migrate_status(db, progress)
            .await
            .map(Response::MigrationStatus),
        Request::Verify { db } => daemon.verify(&db, progress).await.map(Response::Verified),
        Request::Export { db, dir } => daemon
            .export(&db, &dir, Some(progress.clone()))
            .await
            .map(Response::Exported),
    };
    result.unwrap_or_else(|e| Response::Error(e.to_body()))
}
