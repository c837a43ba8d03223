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
//!
//! A woken agent should not read every instance on its host either: with a hundred instances
//! per host, each change would cost a hundred rows. Each host's revision therefore keeps a
//! journal of which of its instances were written at which revision (the last
//! [`JOURNAL_PER_HOST`]), and an agent that names the revision it last saw gets only the
//! instances written since ([`Changes::written_on_host_since`]). Where the journal cannot
//! answer — an agent that is new, or comes from another process's epoch, or fell further behind
//! than the journal reaches, or anything after a [`Changes::bump`] — it gets the whole list,
//! which is always right. So a change costs the same whether the host holds one instance or a
//! thousand.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

/// Instance writes remembered per host for answering "what changed since" (older questions
/// get the whole list).
const JOURNAL_PER_HOST: usize = 1024;

/// A revision counter that waiters can wait on.
#[derive(Clone)]
pub struct Changes {
    /// Bumped by every change.
    sender: watch::Sender<u64>,
    hosts: Arc<Mutex<HostRevisions>>,
    /// Tells this process's revisions from another's (a restarted or another replica).
    epoch: u64,
}

#[derive(Default)]
struct HostRevisions {
    /// Per host, moved by writes of the instances placed on it and by [`Changes::bump`].
    own: HashMap<Uuid, HostJournal>,
    /// Whether each host known here carries overlay networks; those that do are woken
    /// whenever instances come or go.
    overlay: HashMap<Uuid, bool>,
}

/// A host's revision, and which of its instances were written at which revision.
struct HostJournal {
    revision: watch::Sender<u64>,
    /// The oldest revision whose later changes are all in `written`.
    floor: u64,
    /// `(revision, instance)` of the host's instance writes after `floor`, oldest first.
    written: VecDeque<(u64, Uuid)>,
}

impl HostJournal {
    fn new() -> Self {
        Self {
            revision: watch::Sender::new(1),
            floor: 1,
            written: VecDeque::new(),
        }
    }

    fn advance(&mut self, instance: Option<Uuid>) {
        self.revision.send_modify(|r| *r += 1);
        let revision = *self.revision.borrow();
        if let Some(uid) = instance {
            self.written.push_back((revision, uid));
            if self.written.len() > JOURNAL_PER_HOST
                && let Some((forgotten, _)) = self.written.pop_front()
            {
                self.floor = forgotten;
            }
        }
    }
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
            hosts: Arc::default(),
            epoch: Uuid::new_v4().as_u64_pair().0 | 1,
        }
    }

    /// This process's epoch: revisions of another epoch mean nothing here.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Records that something changed; wakes every waiter, and every host's next poll gets
    /// its whole list.
    pub fn bump(&self) {
        for journal in self.hosts.lock().unwrap().own.values_mut() {
            journal.advance(None);
            journal.floor = *journal.revision.borrow();
            journal.written.clear();
        }
        self.sender.send_modify(|r| *r += 1);
    }

    /// Records that an instance changed (`written`: its host and itself, where it has a host;
    /// `placed`: it came or went): wakes the waiters of the whole region, the agent of its
    /// host, and with `placed` the agents of hosts with overlay networks.
    pub fn bump_instance(&self, written: Option<(Uuid, Uuid)>, placed: bool) {
        let host = written.map(|(host, _)| host);
        {
            let mut hosts = self.hosts.lock().unwrap();
            let HostRevisions { own, overlay } = &mut *hosts;
            if let Some((h, instance)) = written {
                own.entry(h)
                    .or_insert_with(HostJournal::new)
                    .advance(Some(instance));
            }
            if placed {
                for (h, _) in overlay.iter().filter(|(h, o)| **o && Some(**h) != host) {
                    own.entry(*h).or_insert_with(HostJournal::new).advance(None);
                }
            }
        }
        self.sender.send_modify(|r| *r += 1);
    }

    /// The instances of `host` written after its revision `since`, oldest first, or `None`
    /// when this process no longer knows (or never knew) all of them.
    pub fn written_on_host_since(&self, host: Uuid, since: u64) -> Option<Vec<Uuid>> {
        let hosts = self.hosts.lock().unwrap();
        let journal = hosts.own.get(&host)?;
        if since < journal.floor {
            return None;
        }
        let mut seen = HashSet::new();
        Some(
            journal
                .written
                .iter()
                .filter(|(revision, uid)| *revision > since && seen.insert(*uid))
                .map(|(_, uid)| *uid)
                .collect(),
        )
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
        *self.host_sender(host).borrow()
    }

    fn host_sender(&self, host: Uuid) -> watch::Sender<u64> {
        self.hosts
            .lock()
            .unwrap()
            .own
            .entry(host)
            .or_insert_with(HostJournal::new)
            .revision
            .clone()
    }

    /// Like [`Changes::wait_past`] for the revision of `host`.
    pub async fn wait_host_past(&self, host: Uuid, since: u64, wait: Duration) -> u64 {
        let mut own = self.host_sender(host).subscribe();
        if *own.borrow_and_update() <= since && !wait.is_zero() {
            let _ = tokio::time::timeout(wait, own.changed()).await;
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
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        changes.bump_instance(Some((mine, a)), false);
        assert_eq!((at(mine), at(other), at(overlay)), (m + 1, o, v));
        changes.bump_instance(Some((mine, b)), true);
        assert_eq!((at(mine), at(other), at(overlay)), (m + 2, o, v + 1));
        changes.bump();
        assert_eq!((at(mine), at(other), at(overlay)), (m + 3, o + 1, v + 2));
        let quiet = changes.wait_host_past(other, at(other), Duration::from_millis(20));
        let woken = tokio::join!(quiet, async {
            changes.bump_instance(Some((mine, a)), false)
        })
        .0;
        assert_eq!(woken, o + 1, "another host's write woke this host");
    }

    #[test]
    fn a_host_learns_which_instances_changed_until_its_journal_runs_out() {
        let changes = Changes::new();
        let host = Uuid::new_v4();
        let start = changes.host_revision(host);
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        changes.bump_instance(Some((host, a)), false);
        let after_a = changes.host_revision(host);
        changes.bump_instance(Some((host, b)), false);
        changes.bump_instance(Some((host, a)), false);
        changes.bump_instance(Some((Uuid::new_v4(), Uuid::new_v4())), false);
        assert_eq!(changes.written_on_host_since(host, start), Some(vec![a, b]));
        assert_eq!(
            changes.written_on_host_since(host, after_a),
            Some(vec![b, a])
        );
        let now = changes.host_revision(host);
        assert_eq!(changes.written_on_host_since(host, now), Some(vec![]));
        // A host never heard of, an epoch's start, and anything before a bump: the whole list.
        assert_eq!(changes.written_on_host_since(Uuid::new_v4(), 5), None);
        assert_eq!(changes.written_on_host_since(host, 0), None);
        changes.bump();
        assert_eq!(changes.written_on_host_since(host, now), None);
        let bumped = changes.host_revision(host);
        assert_eq!(changes.written_on_host_since(host, bumped), Some(vec![]));
        // A journal that overflowed forgets its oldest writes, and answers only after them.
        for _ in 0..JOURNAL_PER_HOST + 1 {
            changes.bump_instance(Some((host, a)), false);
        }
        assert_eq!(changes.written_on_host_since(host, bumped), None);
        let late = changes.host_revision(host) - 1;
        assert_eq!(changes.written_on_host_since(host, late), Some(vec![a]));
    }
}
