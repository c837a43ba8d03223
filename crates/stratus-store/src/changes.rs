//! Notification that the region's state changed.
//!
//! Writers bump a revision after every instance or image write; host agents, waiting reads
//! and background tasks wait for the revision to move instead of polling the database in a
//! tight loop. The revision is per process. Writes made through other replicas reach it through
//! the store's change feed where the database has one (PostgreSQL's `NOTIFY`, followed by
//! [`crate::Store::follow_changes`], bumping once more after each reconnection since
//! announcements may have been missed); elsewhere every wait is bounded, so another replica's
//! write is seen at the latest when the wait ends.
//!
//! Host agents wait on a revision of their own host. A region of a thousand hosts taking a
//! thousand creates a second cannot wake every agent for every instance write (each wakes to
//! read its assignments: a million reads a second), so an instance write wakes only the agent
//! of the instance's host ([`Changes::bump_instance`]), and the agents of hosts that carry
//! overlay networks when instances come or go (their tunnels' forwarding entries follow the
//! region's NICs). Everything else — images, hosts, a feed that reconnected — is
//! [`Changes::bump`], which wakes every waiter.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

/// A revision counter that waiters can wait on.
#[derive(Clone)]
pub struct Changes {
    /// Bumped by every change.
    sender: watch::Sender<u64>,
    /// Bumped by changes every host agent must hear of.
    every_host: watch::Sender<u64>,
    hosts: Arc<Mutex<HostRevisions>>,
}

#[derive(Default)]
struct HostRevisions {
    /// Per host, bumped by writes of the instances placed on it.
    own: HashMap<Uuid, watch::Sender<u64>>,
    /// Whether each host known here carries overlay networks; those that do are woken
    /// whenever instances come or go.
    overlay: HashMap<Uuid, bool>,
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
            every_host: watch::Sender::new(1),
            hosts: Arc::default(),
        }
    }

    /// Records that something changed; wakes every waiter.
    pub fn bump(&self) {
        self.every_host.send_modify(|r| *r += 1);
        self.sender.send_modify(|r| *r += 1);
    }

    /// Records that an instance on `host` changed (`placed`: one came or went): wakes the
    /// waiters of the whole region, the agent of `host`, and with `placed` the agents of hosts
    /// with overlay networks.
    pub fn bump_instance(&self, host: Option<Uuid>, placed: bool) {
        {
            let mut hosts = self.hosts.lock().unwrap();
            let HostRevisions { own, overlay } = &mut *hosts;
            let mut wake = |h: Uuid| {
                own.entry(h)
                    .or_insert_with(|| watch::Sender::new(0))
                    .send_modify(|r| *r += 1)
            };
            if let Some(h) = host {
                wake(h);
            }
            if placed {
                for (h, _) in overlay.iter().filter(|(h, o)| **o && Some(**h) != host) {
                    wake(*h);
                }
            }
        }
        self.sender.send_modify(|r| *r += 1);
    }

    /// Notes whether `host` carries overlay networks.
    pub fn set_overlay_host(&self, host: Uuid, overlay: bool) {
        self.hosts.lock().unwrap().overlay.insert(host, overlay);
    }

    /// Whether `host` carries overlay networks, if noted.
    pub fn overlay_host(&self, host: Uuid) -> Option<bool> {
        self.hosts.lock().unwrap().overlay.get(&host).copied()
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

    /// The revision of `host`: moved by [`Changes::bump`] and by writes that concern it.
    pub fn host_revision(&self, host: Uuid) -> u64 {
        *self.every_host.borrow() + self.host_sender(host).borrow().to_owned()
    }

    fn host_sender(&self, host: Uuid) -> watch::Sender<u64> {
        self.hosts
            .lock()
            .unwrap()
            .own
            .entry(host)
            .or_insert_with(|| watch::Sender::new(0))
            .clone()
    }

    /// Like [`Changes::wait_past`] for the revision of `host`.
    pub async fn wait_host_past(&self, host: Uuid, since: u64, wait: Duration) -> u64 {
        let mut own = self.host_sender(host).subscribe();
        let mut every = self.every_host.subscribe();
        let now = *own.borrow_and_update() + *every.borrow_and_update();
        if now <= since && !wait.is_zero() {
            let _ = tokio::time::timeout(wait, async {
                tokio::select! {
                    _ = own.changed() => {}
                    _ = every.changed() => {}
                }
            })
            .await;
        }
        self.host_revision(host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_instance_write_wakes_its_host_and_overlay_hosts_only() {
        let changes = Changes::new();
        let (mine, other, overlay) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        changes.set_overlay_host(overlay, true);
        let at = |h| changes.host_revision(h);
        let (m, o, v) = (at(mine), at(other), at(overlay));
        changes.bump_instance(Some(mine), false);
        assert_eq!((at(mine), at(other), at(overlay)), (m + 1, o, v));
        changes.bump_instance(Some(mine), true);
        assert_eq!((at(mine), at(other), at(overlay)), (m + 2, o, v + 1));
        changes.bump();
        assert_eq!((at(mine), at(other), at(overlay)), (m + 3, o + 1, v + 2));
        let quiet = changes.wait_host_past(other, at(other), Duration::from_millis(20));
        let woken = tokio::join!(quiet, async { changes.bump_instance(Some(mine), false) }).0;
        assert_eq!(woken, o + 1, "another host's write woke this host");
    }
}
