//! systemd integration: READY/STOPPING/STATUS notifications and watchdog pings, all no-ops
//! unless `NOTIFY_SOCKET` is set (i.e. under `Type=notify`).

use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

fn enabled() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

fn send(states: &[NotifyState]) {
    if !enabled() {
        return;
    }
    if let Err(error) = sd_notify::notify(states) {
        warn!(%error, "cannot notify systemd");
    }
}

pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("draining")]);
}

pub fn reloading(done: bool) {
    if done {
        send(&[NotifyState::Ready, NotifyState::Status("registry reloaded")]);
    } else {
        send(&[NotifyState::Reloading]);
    }
}

/// Pings the watchdog at half of `WatchdogSec` until `cancel` fires.
pub fn spawn_watchdog(cancel: CancellationToken) {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    let period = (interval / 2).max(Duration::from_millis(100));
    debug!(?period, "systemd watchdog enabled");
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => send(&[NotifyState::Watchdog]),
            }
        }
    });
}
