//! Notification that the region's state changed.
//!
//! Writers bump a revision after every instance or image write; host agents, waiting reads
//! and background tasks wait for the revision to move instead of polling the database in a
//! tight loop. The revision is per process. Writes made through other replicas reach it through
//! the store's change feed where the database has one (PostgreSQL's `NOTIFY`, followed by
//! [`crate::Store::follow_changes`], bumping once more after each reconnection since
//! announcements may have been missed); elsewhere every wait is bounded, so another replica's
//! write is seen at the latest when the wait ends.

use std::time::Duration;
use tokio::sync::watch;

/// A revision counter that waiters can wait on.
#[derive(Clone)]
pub struct Changes {
    sender: watch::Sender<u64>,
}

impl Default for Changes {
    fn default() -> Self {
        Self::new()
    }
}

impl Changes {
    pub fn new() -> Self {
        Self {
            sender: watch::Sender::new(1),
        }
    }

    /// Records that something changed; wakes every waiter.
    pub fn bump(&self) {
        self.sender.send_modify(|r| *r += 1);
    }

    pub fn revision(&self) -> u64 {
        *self.sender.borrow()
    }

    /// Returns at once when the revision is past `since`, else waits up to `wait` for a bump.
    /// Returns the current revision.
    pub async fn wait_past(&self, since: u64, wait: Duration) -> u64 {
        let mut receiver = self.sender.subscribe();
        if *receiver.borrow_and_update() <= since && !wait.is_zero() {
            let _ = tokio::time::timeout(wait, receiver.changed()).await;
        }
        self.revision()
    }
}
