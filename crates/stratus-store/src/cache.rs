//! Reads served from memory: the store's cache of what a GET needs.
//!
//! A GET of an instance reads two rows — its project (to authorize) and the instance — and
//! nothing else; both change rarely next to how often they are read. The store keeps the rows
//! it has read in memory and answers from there, while the database stays the only source of
//! truth: every write through this store invalidates the rows it touched once it has
//! committed, so a replica never answers older than a write it acknowledged (read-your-writes).
//! An update of an instance that committed puts its own row in place of the kept row it
//! updated instead (`Rows::refresh`), so that the reads that follow every status report of a
//! host (the next report, console output) find it in memory.
//!
//! A read that misses takes a ticket — the version of its key's slot, never reused — before it
//! asks the database, and keeps what it found only if the slot still has that version
//! afterwards. A write drops the key's slot after its commit, so a read that raced with it (and
//! may have seen the row before the write) is not kept; the next read fetches the written row.
//! A written key thus takes no room until it is read again. Absent rows
//! are kept too (a create invalidates its key), so a storm of GETs for a name that does not
//! exist does not reach the database either.
//!
//! Other replicas write to a shared database (PostgreSQL) too. Their instance writes reach this
//! cache through the change feed ([`crate::feed`]: the keys in `NOTIFY`), which forgets those
//! rows as the announcement arrives; other rows are not announced. There every kept row also
//! expires after [`SHARED_LAG`], which bounds how stale a read through another replica can be
//! even when an announcement is lost or the database cannot notify. With SQLite this process is the only writer and rows stay
//! until written or evicted. The cache holds at most [`INSTANCE_ROWS`] instances (and as many
//! names of instances) and [`PROJECT_ROWS`] projects, and starts a kind over when it is full:
//! an instance row takes well over a kilobyte, so a cache as large as the region (100,000
//! instances) would double the server's memory, while what hosts read back (their next
//! report, console output) comes within a second or so of the write that kept it.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How stale a row read through one replica can be after a write through another (the
/// documented lag across replicas).
pub const SHARED_LAG: Duration = Duration::from_secs(1);

/// Instance rows kept (and names of instances by uid).
const INSTANCE_ROWS: usize = 4096;
/// Project rows kept.
const PROJECT_ROWS: usize = 100_000;

struct Slot<T> {
    version: u64,
    /// The row (or its absence) as read, and when; boxed, so that a slot waiting for its read
    /// (or keeping an absence) takes little room.
    value: Option<(Option<Box<T>>, Instant)>,
}

/// A cache of one kind of row by key.
pub(crate) struct Rows<K, T> {
    slots: Mutex<HashMap<K, Slot<T>>>,
    /// Kept rows expire after this long (a shared database); never when `None`.
    ttl: Option<Duration>,
    /// Rows kept at most: when full, the cache starts over.
    capacity: usize,
    /// Bumped when everything is dropped, so reads in flight then are not kept.
    epoch: std::sync::atomic::AtomicU64,
    /// The version the next new slot gets: a slot's version is never reused, so a written key's
    /// slot is dropped (a read that raced with the write finds no slot of its ticket's version
    /// to fill) and the cache holds only what is kept or being read.
    next_version: std::sync::atomic::AtomicU64,
}

/// What a lookup found: the row (or that there is none), or a ticket to fill the slot with.
pub(crate) enum Lookup<T> {
    Hit(Option<T>),
    Miss(Ticket),
}

/// The version of a slot when a read missed.
pub(crate) struct Ticket {
    version: u64,
    epoch: u64,
}

impl<K: Hash + Eq + Clone, T: Clone> Rows<K, T> {
    pub(crate) fn new(ttl: Option<Duration>, capacity: usize) -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            ttl,
            capacity,
            epoch: std::sync::atomic::AtomicU64::new(0),
            next_version: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub(crate) fn lookup(&self, key: &K) -> Lookup<T> {
        let epoch = self.epoch.load(std::sync::atomic::Ordering::Acquire);
        let mut slots = self.slots.lock().unwrap();
        if let Some(slot) = slots.get(key) {
            if let Some((value, read_at)) = &slot.value
                && self.ttl.is_none_or(|ttl| read_at.elapsed() < ttl)
            {
                return Lookup::Hit(value.as_deref().cloned());
            }
            return Lookup::Miss(Ticket {
                version: slot.version,
                epoch,
            });
        }
        if slots.len() >= self.capacity {
            self.epoch.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            slots.clear();
        }
        let version = self.put(&mut slots, key, None);
        Lookup::Miss(Ticket { version, epoch })
    }

    /// Keeps what a read found, unless a write touched the key since its ticket.
    pub(crate) fn fill(&self, key: K, ticket: Ticket, value: Option<T>) {
        if self.epoch.load(std::sync::atomic::Ordering::Acquire) != ticket.epoch {
            return;
        }
        let mut slots = self.slots.lock().unwrap();
        if let Some(slot) = slots.get_mut(&key)
            && slot.version == ticket.version
        {
            slot.value = Some((value.map(Box::new), Instant::now()));
        }
    }

    /// After a write committed `written` under `key`: keeps it in place of the kept row when
    /// `succeeds` says it is that row's successor, and forgets the key otherwise.
    ///
    /// Only a row that is kept can be replaced, and only by its successor, so a write whose
    /// refresh comes late never undoes what came after it: a later write already replaced the
    /// row (this one is no successor of it), or a deletion dropped the slot (nothing is kept
    /// but absence, which no update succeeds), or a read is filling the slot (no row is kept
    /// yet; its ticket is void once the key is forgotten).
    pub(crate) fn refresh(&self, key: &K, written: &T, succeeds: impl FnOnce(&T) -> bool) {
        let mut slots = self.slots.lock().unwrap();
        let replaces = slots.get(key).is_some_and(|slot| match &slot.value {
            Some((Some(kept), read_at)) => {
                self.ttl.is_none_or(|ttl| read_at.elapsed() < ttl) && succeeds(kept)
            }
            _ => false,
        });
        if !replaces {
            slots.remove(key);
            return;
        }
        let kept = Some((Some(Box::new(written.clone())), Instant::now()));
        self.put(&mut slots, key, kept);
    }

    /// Puts a slot of a new version for `key`, holding `value`; returns the version.
    fn put(
        &self,
        slots: &mut HashMap<K, Slot<T>>,
        key: &K,
        value: Option<(Option<Box<T>>, Instant)>,
    ) -> u64 {
        let version = self
            .next_version
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        slots.insert(key.clone(), Slot { version, value });
        version
    }

    /// Forgets the row of `key` (after a write to it committed).
    pub(crate) fn invalidate(&self, key: &K) {
        self.slots.lock().unwrap().remove(key);
    }

    /// Forgets every row.
    pub(crate) fn clear(&self) {
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.slots.lock().unwrap().clear();
    }
}

/// The rows a GET needs.
pub(crate) struct ReadCache {
    /// Instances by (project, id).
    pub instances: Rows<(String, String), crate::InstanceRecord>,
    /// Projects by id.
    pub projects: Rows<String, crate::ProjectRecord>,
    /// The (project, id) of instances by uid, which names one instance for its whole life:
    /// hosts speak of instances by uid, and find them among `instances` through this.
    names: Mutex<HashMap<uuid::Uuid, (String, String)>>,
}

impl ReadCache {
    /// A cache for a store that is the database's only writer (`shared: false`) or one of
    /// several.
    pub(crate) fn new(shared: bool) -> Self {
        let ttl = shared.then_some(SHARED_LAG);
        Self {
            instances: Rows::new(ttl, INSTANCE_ROWS),
            projects: Rows::new(ttl, PROJECT_ROWS),
            names: Mutex::new(HashMap::new()),
        }
    }

    /// Forgets the row of `instance` (after a write to it).
    pub(crate) fn forget_instance(&self, instance: &crate::InstanceRecord) {
        self.instances
            .invalidate(&(instance.project.clone(), instance.id.clone()));
    }

    /// Keeps `written`, an update of an instance that committed, in place of the row it
    /// updated (a record of the same instance and an older generation), if that is kept.
    pub(crate) fn refresh_instance(&self, written: &crate::InstanceRecord) {
        self.instances.refresh(
            &(written.project.clone(), written.id.clone()),
            written,
            |kept| kept.uid == written.uid && kept.generation < written.generation,
        );
    }

    /// Notes the (project, id) of `instance`'s uid.
    pub(crate) fn name_instance(&self, instance: &crate::InstanceRecord) {
        let mut names = self.names.lock().unwrap();
        if names.len() >= INSTANCE_ROWS {
            names.clear();
        }
        names.insert(
            instance.uid,
            (instance.project.clone(), instance.id.clone()),
        );
    }

    /// The (project, id) of the instance of `uid`, when noted.
    pub(crate) fn instance_name(&self, uid: uuid::Uuid) -> Option<(String, String)> {
        self.names.lock().unwrap().get(&uid).cloned()
    }

    /// Forgets the name of an instance that is gone.
    pub(crate) fn unname_instance(&self, uid: uuid::Uuid) {
        self.names.lock().unwrap().remove(&uid);
    }

    pub(crate) fn clear(&self) {
        self.instances.clear();
        self.projects.clear();
        self.names.lock().unwrap().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_that_raced_with_a_write_is_not_kept() {
        let rows: Rows<&str, u32> = Rows::new(None, 1000);
        let Lookup::Miss(ticket) = rows.lookup(&"a") else {
            panic!("an empty cache misses")
        };
        // A write commits while the read is at the database, which answered the old row.
        rows.invalidate(&"a");
        rows.fill("a", ticket, Some(1));
        let Lookup::Miss(ticket) = rows.lookup(&"a") else {
            panic!("the raced read was kept")
        };
        rows.fill("a", ticket, Some(2));
        assert!(matches!(rows.lookup(&"a"), Lookup::Hit(Some(2))));
        rows.invalidate(&"a");
        assert!(matches!(rows.lookup(&"a"), Lookup::Miss(_)));
    }

    /// The row of a generation: an update's successor when its generation is higher.
    fn succeeds(written: u32) -> impl FnOnce(&u32) -> bool {
        move |kept| *kept < written
    }

    #[test]
    fn an_update_replaces_only_the_row_it_succeeds() {
        let rows: Rows<&str, u32> = Rows::new(None, 1000);
        let Lookup::Miss(ticket) = rows.lookup(&"a") else {
            panic!("an empty cache misses")
        };
        rows.fill("a", ticket, Some(4));
        rows.refresh(&"a", &5, succeeds(5));
        assert!(matches!(rows.lookup(&"a"), Lookup::Hit(Some(5))));
        rows.refresh(&"a", &6, succeeds(6));
        // The refresh of a write that committed before the kept one comes late: forgotten.
        rows.refresh(&"a", &5, succeeds(5));
        assert!(matches!(rows.lookup(&"a"), Lookup::Miss(_)));
    }

    #[test]
    fn an_update_refreshed_late_never_brings_back_what_is_gone() {
        let rows: Rows<&str, u32> = Rows::new(None, 1000);
        let Lookup::Miss(ticket) = rows.lookup(&"a") else {
            panic!()
        };
        rows.fill("a", ticket, Some(4));
        // The row is deleted (its slot dropped) before the update of it refreshes.
        rows.invalidate(&"a");
        rows.refresh(&"a", &5, succeeds(5));
        assert!(matches!(rows.lookup(&"a"), Lookup::Miss(_)));
        // Read again: it is absent, and stays so.
        let Lookup::Miss(ticket) = rows.lookup(&"a") else {
            panic!()
        };
        rows.fill("a", ticket, None);
        rows.refresh(&"a", &5, succeeds(5));
        assert!(matches!(rows.lookup(&"a"), Lookup::Miss(_)));
        // A read at the database while an update refreshes: the read is not kept.
        let Lookup::Miss(ticket) = rows.lookup(&"a") else {
            panic!()
        };
        rows.refresh(&"a", &5, succeeds(5));
        rows.fill("a", ticket, Some(4));
        assert!(matches!(rows.lookup(&"a"), Lookup::Miss(_)));
    }

    #[test]
    fn a_full_cache_starts_over_and_voids_reads_in_flight() {
        let rows: Rows<u32, u32> = Rows::new(None, 10);
        let Lookup::Miss(in_flight) = rows.lookup(&0) else {
            panic!()
        };
        for key in 1..25 {
            let Lookup::Miss(ticket) = rows.lookup(&key) else {
                panic!()
            };
            rows.fill(key, ticket, Some(key));
            assert!(rows.slots.lock().unwrap().len() <= 10);
        }
        assert!(matches!(rows.lookup(&24), Lookup::Hit(Some(24))));
        rows.fill(0, in_flight, Some(0));
        assert!(matches!(rows.lookup(&0), Lookup::Miss(_)));
    }

    #[test]
    fn written_keys_take_no_room() {
        let rows: Rows<u32, u32> = Rows::new(None, 1000);
        for key in 0..1000 {
            let Lookup::Miss(ticket) = rows.lookup(&key) else {
                panic!("an empty cache misses")
            };
            rows.fill(key, ticket, None);
            // The key is created: its absence is forgotten, and with it its slot.
            rows.invalidate(&key);
        }
        assert_eq!(rows.slots.lock().unwrap().len(), 0);
    }

    #[test]
    fn absent_rows_are_kept_and_a_clear_drops_reads_in_flight() {
        let rows: Rows<&str, u32> = Rows::new(None, 1000);
        let Lookup::Miss(ticket) = rows.lookup(&"gone") else {
            panic!()
        };
        rows.fill("gone", ticket, None);
        assert!(matches!(rows.lookup(&"gone"), Lookup::Hit(None)));
        let Lookup::Miss(ticket) = rows.lookup(&"b") else {
            panic!()
        };
        rows.clear();
        rows.fill("b", ticket, Some(1));
        assert!(matches!(rows.lookup(&"b"), Lookup::Miss(_)));
    }

    #[test]
    fn rows_of_a_shared_database_expire() {
        let rows: Rows<&str, u32> = Rows::new(Some(Duration::from_millis(20)), 1000);
        let Lookup::Miss(ticket) = rows.lookup(&"a") else {
            panic!()
        };
        rows.fill("a", ticket, Some(1));
        assert!(matches!(rows.lookup(&"a"), Lookup::Hit(Some(1))));
        std::thread::sleep(Duration::from_millis(30));
        assert!(matches!(rows.lookup(&"a"), Lookup::Miss(_)));
    }
}
