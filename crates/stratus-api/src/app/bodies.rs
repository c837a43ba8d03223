//! Instances as JSON, kept per version.
//!
//! Making an instance's JSON is most of what a GET or a page of a LIST costs once its rows are
//! in memory: the view (links, NICs), then serializing it with every string escaped. An
//! instance's record is fixed by its uid and generation, since every write bumps the
//! generation, and so is its JSON. This keeps the JSON of the latest version seen of each
//! instance, so a read that knows the version (a GET from the store's record, a page from the
//! versions the database lists) sends the bytes it kept instead of making them again.
//!
//! Keeping them adds no staleness: which version a reader answers is still decided by the
//! store (its cache for a GET, the database for a page); a body is used only for the very
//! version the store named. A key is an instance's uid, which no other instance ever takes, so
//! a body never answers for another instance, nor for one deleted and created again.
//!
//! The bodies are bounded by their total size ([`CAPACITY_BYTES`]); when that is reached
//! they are all dropped and kept again as they are read, as the store's record cache does.

use serde::Serialize;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// Bytes of JSON kept at most.
const CAPACITY_BYTES: usize = 16 << 20;

/// An instance as JSON, shared by every answer that sends it.
#[derive(Clone, Debug)]
pub struct Body(Arc<RawValue>);

impl Body {
    /// `value` as JSON.
    pub fn of<T: Serialize>(value: &T) -> serde_json::Result<Self> {
        Ok(Self(Arc::from(serde_json::value::to_raw_value(value)?)))
    }

    /// Its length in bytes.
    pub fn size(&self) -> usize {
        self.0.get().len()
    }
}

impl Serialize for Body {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// The JSON of the latest version seen of each instance.
#[derive(Default)]
pub(crate) struct InstanceBodies {
    kept: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    by_uid: HashMap<Uuid, (i64, Body)>,
    bytes: usize,
}

impl InstanceBodies {
    /// The JSON of version `generation` of instance `uid`, if kept.
    pub(crate) fn get(&self, uid: Uuid, generation: i64) -> Option<Body> {
        let kept = self.kept.lock().unwrap();
        match kept.by_uid.get(&uid) {
            Some((kept_generation, body)) if *kept_generation == generation => Some(body.clone()),
            _ => None,
        }
    }

    /// Keeps `body` as the JSON of version `generation` of instance `uid`, unless a later
    /// version is kept already.
    pub(crate) fn keep(&self, uid: Uuid, generation: i64, body: &Body) {
        let mut kept = self.kept.lock().unwrap();
        if kept.bytes + body.size() > CAPACITY_BYTES {
            kept.by_uid.clear();
            kept.bytes = 0;
        }
        let replaced = match kept.by_uid.get(&uid) {
            Some((later, _)) if *later > generation => return,
            Some((_, older)) => older.size(),
            None => 0,
        };
        kept.bytes = kept.bytes - replaced + body.size();
        kept.by_uid.insert(uid, (generation, body.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_answers_only_its_own_version() {
        let bodies = InstanceBodies::default();
        let uid = Uuid::new_v4();
        bodies.keep(uid, 2, &Body::of(&"second").unwrap());
        assert_eq!(bodies.get(uid, 2).unwrap().0.get(), "\"second\"");
        assert!(bodies.get(uid, 1).is_none());
        assert!(bodies.get(uid, 3).is_none());
        assert!(bodies.get(Uuid::new_v4(), 2).is_none());
        // A reader that read an older version late does not replace the later one.
        bodies.keep(uid, 1, &Body::of(&"first").unwrap());
        assert!(bodies.get(uid, 1).is_none());
        assert_eq!(bodies.get(uid, 2).unwrap().0.get(), "\"second\"");
        bodies.keep(uid, 3, &Body::of(&"third").unwrap());
        assert!(bodies.get(uid, 2).is_none());
        assert_eq!(bodies.get(uid, 3).unwrap().0.get(), "\"third\"");
    }

    #[test]
    fn bodies_past_the_capacity_start_over() {
        let bodies = InstanceBodies::default();
        let big = Body::of(&"x".repeat(1 << 20)).unwrap();
        let uids: Vec<Uuid> = (0..20).map(|_| Uuid::new_v4()).collect();
        for uid in &uids {
            bodies.keep(*uid, 1, &big);
        }
        let held = uids.iter().filter(|u| bodies.get(**u, 1).is_some()).count();
        assert!((1..16).contains(&held), "{held} bodies of 1 MiB held");
        assert!(bodies.kept.lock().unwrap().bytes <= CAPACITY_BYTES);
        // The latest is always kept.
        assert!(bodies.get(uids[19], 1).is_some());
    }
}
