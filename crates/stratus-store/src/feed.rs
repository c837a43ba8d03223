//! The instance change feed: which instances changed, in the order their writes committed.
//!
//! Watchers, and the read caches of other replicas, need more than "something changed": they
//! need the key. Every write to an instance, once committed, goes through [`ChangeLog`], which
//! does three things in one place, so no write path can forget one of them:
//!
//! 1. forgets the instance's cached row ([`crate::cache`]), so this replica answers its own
//!    writes at once (read-your-writes);
//! 2. tells this process's subscribers (the API's watch hub) with the row as written, so they
//!    need not read it back;
//! 3. announces the key to the other replicas sharing the database (on PostgreSQL, `NOTIFY`
//!    with the keys as payload, several keys to one notification when a group commits). A
//!    replica hearing it forgets its own cached row of that key and tells its subscribers,
//!    who read the row, since the notification carries only the key.
//!
//! Announcements carry the writing replica's id, so a replica ignores its own. When the feed
//! from the database was interrupted (a reconnection), announcements may have been lost: the
//! replica then forgets its whole cache and tells subscribers [`InstanceChange::Resync`], and a
//! watcher is told to list again. Where the database cannot notify (SQLite has one process;
//! CockroachDB has no `pg_notify`), the cache's expiry bounds staleness instead.

use crate::InstanceRecord;
use crate::cache::ReadCache;
use crate::engine::Engine;
use std::sync::Arc;
use tokio::sync::broadcast;
use uuid::Uuid;

/// Changes a subscriber may fall behind by before it is told to resync.
const BACKLOG: usize = 65_536;

/// Bytes of keys sent in one notification at most (PostgreSQL's payload limit is 8000).
const PAYLOAD_BYTES: usize = 7_000;

/// What happened to an instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Created,
    Updated,
    Deleted,
}

impl ChangeKind {
    fn letter(self) -> char {
        match self {
            ChangeKind::Created => 'c',
            ChangeKind::Updated => 'u',
            ChangeKind::Deleted => 'd',
        }
    }

    fn from_letter(letter: &str) -> Option<Self> {
        match letter {
            "c" => Some(ChangeKind::Created),
            "u" => Some(ChangeKind::Updated),
            "d" => Some(ChangeKind::Deleted),
            _ => None,
        }
    }
}

/// One entry of the feed.
#[derive(Clone, Debug)]
pub enum InstanceChange {
    /// The instance `project`/`id` changed. `record` is the row as committed (for a deletion,
    /// as it was last) when this replica wrote it, `None` when another replica did: read it.
    Changed {
        kind: ChangeKind,
        project: String,
        id: String,
        record: Option<Arc<InstanceRecord>>,
    },
    /// Changes may have been missed: anything may have changed.
    Resync,
}

/// Where committed instance writes are published (see the module's essay).
pub(crate) struct ChangeLog {
    cache: Arc<ReadCache>,
    sender: broadcast::Sender<InstanceChange>,
    /// This replica's id in its announcements.
    replica: String,
}

impl ChangeLog {
    pub(crate) fn new(cache: Arc<ReadCache>) -> Arc<Self> {
        Arc::new(Self {
            cache,
            sender: broadcast::Sender::new(BACKLOG),
            replica: Uuid::new_v4().to_string(),
        })
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<InstanceChange> {
        self.sender.subscribe()
    }

    /// Forgets the cached row of an instance a write may have touched (also when the write's
    /// outcome is unknown).
    pub(crate) fn forget(&self, instance: &InstanceRecord) {
        self.cache.forget_instance(instance);
    }

    /// After `changes` committed: forgets (or refreshes) their cached rows, tells subscribers and announces
    /// their keys to the other replicas.
    pub(crate) async fn committed(
        &self,
        engine: &dyn Engine,
        changes: Vec<(ChangeKind, InstanceRecord)>,
    ) {
        let announcements = self.published(engine, changes);
        self.announce(engine, announcements).await;
    }

    /// After `changes` committed: forgets their cached rows (an update's own row replaces the
    /// one it updated) and tells this replica's subscribers; returns what to [`Self::announce`] to the other replicas (nothing where
    /// the database does not announce).
    pub(crate) fn published(
        &self,
        engine: &dyn Engine,
        changes: Vec<(ChangeKind, InstanceRecord)>,
    ) -> Vec<String> {
        let announces = engine.announces();
        let mut payloads = Vec::new();
        let mut payload = String::new();
        for (kind, record) in changes {
            match kind {
                ChangeKind::Created => {
                    self.cache.forget_instance(&record);
                    self.cache.name_instance(&record);
                }
                ChangeKind::Updated => self.cache.refresh_instance(&record),
                ChangeKind::Deleted => {
                    self.cache.forget_instance(&record);
                    self.cache.unname_instance(record.uid);
                }
            }
            if announces {
                if payload.len() > PAYLOAD_BYTES {
                    payloads.push(std::mem::take(&mut payload));
                }
                payload.push_str(&format!(
                    "{}\t{}\t{}\t{}\n",
                    self.replica,
                    kind.letter(),
                    record.project,
                    record.id
                ));
            }
            let _ = self.sender.send(InstanceChange::Changed {
                kind,
                project: record.project.clone(),
                id: record.id.clone(),
                record: Some(Arc::new(record)),
            });
        }
        if !payload.is_empty() {
            payloads.push(payload);
        }
        payloads
    }

    /// Announces changes [`Self::published`] here to the other replicas.
    pub(crate) async fn announce(&self, engine: &dyn Engine, payloads: Vec<String>) {
        for payload in payloads {
            engine.announce(&payload).await;
        }
    }

    /// Takes in an announcement from the database: `None` when the feed was (re)connected and
    /// announcements may have been missed, else the payload of one notification. Returns
    /// whether it named instances (whose subscribers wake whom they concern).
    pub(crate) fn heard(&self, payload: Option<&str>) -> bool {
        let Some(payload) = payload else {
            self.cache.clear();
            let _ = self.sender.send(InstanceChange::Resync);
            return true;
        };
        let mut named = false;
        for line in payload.lines() {
            let mut fields = line.split('\t');
            let (Some(replica), Some(kind), Some(project), Some(id)) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let Some(kind) = ChangeKind::from_letter(kind) else {
                continue;
            };
            named = true;
            if replica == self.replica {
                continue;
            }
            let key = (project.to_owned(), id.to_owned());
            self.cache.instances.invalidate(&key);
            let _ = self.sender.send(InstanceChange::Changed {
                kind,
                project: key.0,
                id: key.1,
                record: None,
            });
        }
        named
    }
}
