//! What placement knows of each zone's hosts, kept by the writer from one group to the next.
//!
//! Placing a group of creates needs the zone's schedulable hosts with their capacity and what
//! is placed on them. Reading them is a thousand rows at region scale, and it was most of what
//! a create cost on PostgreSQL (about 2 ms of a solo create's 4). Yet between two groups of
//! one writer they rarely change but by that writer's own placements, which it counted as it
//! made them.
//!
//! So each zone's row of `placement_zones` carries a version, and everything that changes what
//! placement reads of the zone's hosts bumps it in the transaction that makes the change: a
//! group placing in the zone (whose bump is also the lock the zone's placements queue on), a
//! deletion freeing capacity on one of its hosts, a host registering (or registering again,
//! perhaps with another capacity or zone), a cordon, a host's removal, an import. A group bumps
//! first; when the version it gets is one past the version its writer kept the zone at, nobody
//! else changed the zone in between, and the hosts as kept (with this writer's placements
//! counted on) are what the database holds. Otherwise, and when kept longer than
//! [`KEPT_FOR`], the hosts are read again.
//!
//! Heartbeats do not bump the version: a host's last heartbeat is kept as read, and a kept host
//! counts as live by it. Kept heartbeats can only be older than the database's, so a host is
//! never taken as live when it is not; a host that came back only goes unused until the zone
//! is read again, at most [`KEPT_FOR`] later.
//!
//! What a group read and placed is kept only once its transaction has committed; a group that
//! failed, or ran again job by job, leaves the kept zones as they were or forgets them.

use crate::engine::{DbResult, Tx, args};
use crate::rows::host_usage;
use crate::sql::{GPU_USAGE_IN_ZONE, HOST_CAPACITY};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use stratus_core::placement::HostUsage;
use uuid::Uuid;

/// How long a zone's hosts are kept before they are read again whatever the version says (the
/// time a host that came back from silence may go unused).
pub(crate) const KEPT_FOR: Duration = Duration::from_secs(1);

/// Locks zone `?` for placement, until the transaction ends, and answers its version: bumped,
/// and made where no host registered in the zone yet.
pub(crate) const LOCK_ZONE: &str = "INSERT INTO placement_zones (zone, version) VALUES (?, 1) \
     ON CONFLICT (zone) DO UPDATE SET version = placement_zones.version + 1 RETURNING version";

/// A schedulable host of a zone as kept: its capacity and usage, and its last heartbeat (ms).
#[derive(Clone)]
struct KeptHost {
    usage: HostUsage,
    last_seen_at: i64,
}

/// One zone as kept, or as a group took it: the version it was locked at, when its hosts were
/// read, and the hosts (all schedulable ones).
pub(crate) struct KeptZone {
    version: i64,
    read_at: Instant,
    hosts: Vec<KeptHost>,
}

/// The zones a writer placed in, as their last committed group left them.
#[derive(Default)]
pub(crate) struct KeptZones {
    zones: HashMap<String, KeptZone>,
}

impl KeptZones {
    /// Locks `zone` for the rest of `tx` and answers its schedulable hosts seen since
    /// `live_since`, with what is placed on them: as kept when nothing changed since this
    /// writer's last group there, else as read now. `taken` records what the group took, for
    /// [`KeptZones::committed`].
    pub(crate) async fn lock(
        &self,
        tx: &mut Box<dyn Tx>,
        zone: &str,
        live_since: DateTime<Utc>,
        taken: &mut HashMap<String, KeptZone>,
    ) -> DbResult<Vec<HostUsage>> {
        let locked = tx.query(LOCK_ZONE, args![zone]).await?;
        let version = match locked.first() {
            Some(row) => row.int("version")?,
            None => {
                return Err(stratus_core::Error::internal("locking a zone returned no row").into());
            }
        };
        let kept = self
            .zones
            .get(zone)
            .filter(|k| k.version + 1 == version && k.read_at.elapsed() < KEPT_FOR);
        let (read_at, hosts) = match kept {
            Some(kept) => (kept.read_at, kept.hosts.clone()),
            None => (Instant::now(), read_zone(tx, zone).await?),
        };
        let live_since = live_since.timestamp_millis();
        let live = hosts
            .iter()
            .filter(|h| h.last_seen_at >= live_since)
            .map(|h| h.usage.clone())
            .collect();
        taken.insert(
            zone.to_owned(),
            KeptZone {
                version,
                read_at,
                hosts,
            },
        );
        Ok(live)
    }

    /// Keeps what a committed group took of its zones, with what it placed on their hosts
    /// (`placed`: each zone's live hosts as the group left them).
    pub(crate) fn committed(
        &mut self,
        taken: HashMap<String, KeptZone>,
        placed: &HashMap<String, Vec<HostUsage>>,
    ) {
        for (zone, mut took) in taken {
            if let Some(after) = placed.get(&zone) {
                let by_id: HashMap<Uuid, &HostUsage> =
                    after.iter().map(|h| (h.host_id, h)).collect();
                for host in &mut took.hosts {
                    if let Some(usage) = by_id.get(&host.usage.host_id) {
                        host.usage = (*usage).clone();
                    }
                }
            }
            self.zones.insert(zone, took);
        }
    }

    /// Forgets every zone: they are read again at their next placement.
    pub(crate) fn forget(&mut self) {
        self.zones.clear();
    }
}

/// Bumps the version of the zones `zones` names (a `SELECT zone …` whose `?`s `args` fill),
/// inside the transaction that changes what placement reads of them: what a writer kept of
/// them is read again at its next placement there, which queues behind this transaction.
pub(crate) async fn changed(
    tx: &mut Box<dyn Tx>,
    zones: &str,
    args: Vec<crate::engine::Arg>,
) -> DbResult<()> {
    let sql = format!("UPDATE placement_zones SET version = version + 1 WHERE zone IN ({zones})");
    tx.execute(&sql, args).await.map(drop)
}

/// The schedulable hosts of `zone` with what is placed on them and their last heartbeats.
async fn read_zone(tx: &mut Box<dyn Tx>, zone: &str) -> DbResult<Vec<KeptHost>> {
    let rows = tx
        .query(
            &format!(
                "SELECT {HOST_CAPACITY}, last_seen_at FROM hosts \
                 WHERE zone = ? AND scheduling = 'SCHEDULABLE' ORDER BY id"
            ),
            args![zone],
        )
        .await?;
    let gpus = tx.query(GPU_USAGE_IN_ZONE, args![zone]).await?;
    let usage = host_usage(&rows, &gpus)?;
    rows.iter()
        .zip(usage)
        .map(|(row, usage)| {
            Ok(KeptHost {
                usage,
                last_seen_at: row.int("last_seen_at")?,
            })
        })
        .collect()
}
