//! Watching instances: `GET …/compute/instances?watch=true` as server-sent events.
//!
//! A watch is Kubernetes' list-then-watch in one request. Without a `resourceVersion` it
//! begins with every instance of the selection as `ADDED` events, then a `BOOKMARK` carrying
//! the version the listing started from, then every change after it. With a
//! `resourceVersion` (or the `Last-Event-ID` of a reconnecting event source) it sends only the
//! changes after that version. Every event's SSE `id` is its version, so an `EventSource`
//! resumes by itself.
//!
//! The events come from the store's change feed ([`stratus_store::InstanceChange`]), the same
//! feed that keeps the read cache current, through one hub per process: it turns each change
//! into the instance's API view, serializes it once for every watcher, numbers it, and keeps
//! the last [`HISTORY`] events so a watcher that reconnects resumes without a listing. While
//! nobody watches, the hub does none of this and keeps no history.
//! Versions are `{epoch}.{sequence}`; the epoch changes when the hub may have missed changes
//! (the feed from other replicas reconnected, or the hub itself fell behind), and with it every
//! version handed out before is void.
//!
//! A watcher is never silently skipped past a change: one whose version is older than the
//! history, from another epoch or from another replica, or one that falls [`HISTORY`] events
//! behind while connected, gets an `ERROR` event with code 410 and the stream ends; it lists
//! again by watching without a version. Changes of one instance reach a watcher in the order
//! of their generations: a late-published older generation is dropped. A watcher may see a
//! change twice (once in the listing, once as the event that made it) and should treat events
//! as the latest state, not as deltas.
//!
//! Authorization is checked when the watch begins (`instances.list` on the project), as for a
//! list; a watch lasts at most `timeoutSeconds` (default 1800) and no longer than the token it
//! was opened with, and ends when the region shuts down. A client resumes with a fresh token.

use super::{App, Caller, InstanceFilters};
use axum::response::sse::Event;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use stratus_core::selector::LabelSelector;
use stratus_core::{Error, Result};
use stratus_store::{ChangeKind, InstanceChange, InstanceRecord, PageRequest};
use stratus_types::{DesiredState, ErrorDetail, ErrorInfo, Instance, WatchEventType};
use tokio::sync::broadcast;
use uuid::Uuid;

/// Events kept for watchers that resume, and by which a connected watcher may fall behind.
pub const HISTORY: usize = 4096;

/// How long a watcher with nothing to report waits before it is sent a `BOOKMARK`.
const BOOKMARK_EVERY: Duration = Duration::from_secs(15);

/// Instances read at a time for the listing a watch begins with.
const LISTING_BATCH: u32 = 200;

/// Batches of watches' listings read from the store at once. A thousand watchers that connect
/// together (a replica restarted under them) queue here, in order, rather than for the
/// database's connections, which a request waits for only so long before it fails.
const LISTINGS_AT_ONCE: usize = 8;

/// How long a watch lasts unless `timeoutSeconds` says otherwise, and at most.
pub const DEFAULT_TIMEOUT_S: u64 = 1800;
pub const MAX_TIMEOUT_S: u64 = 3600;

/// One numbered event of the hub's history.
struct Change {
    seq: u64,
    /// `ADDED`, `MODIFIED`, `DELETED`; `ERROR` marks the end of an epoch.
    kind: WatchEventType,
    project: String,
    id: String,
    /// The instance's view; its labels decide which watchers get the event. `None` for the
    /// end of an epoch and for a deletion this replica never saw the instance of.
    instance: Option<Arc<Instance>>,
    /// The event's JSON, made once for every watcher.
    data: Arc<str>,
}

struct History {
    epoch: u64,
    seq: u64,
    events: VecDeque<Arc<Change>>,
    /// Per instance in `events`: its uid, its last published generation (`i64::MAX` once
    /// deleted), and the sequence number of that event.
    latest: HashMap<(String, String), (Uuid, i64, u64)>,
    /// Instances whose deletion was asked for, as last seen: what a `DELETED` event shows when
    /// the deletion is heard from another replica, which announces only the key.
    deleting: HashMap<(String, String), Arc<Instance>>,
}

/// The per-process source of watch events (see the module's essay).
pub struct WatchHub {
    /// Events kept ([`HISTORY`] but in tests).
    capacity: usize,
    history: Mutex<History>,
    sender: broadcast::Sender<Arc<Change>>,
    closing: tokio::sync::watch::Sender<bool>,
    /// Room for [`LISTINGS_AT_ONCE`] listing batches.
    listing: tokio::sync::Semaphore,
}

impl Default for WatchHub {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EventData<'a> {
    #[serde(rename = "type")]
    event_type: WatchEventType,
    resource_version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    self_link: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    object: Option<&'a Instance>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a ErrorInfo>,
}

/// The name of a watch event type on the wire.
fn type_name(kind: WatchEventType) -> &'static str {
    match kind {
        WatchEventType::Added => "ADDED",
        WatchEventType::Modified => "MODIFIED",
        WatchEventType::Deleted => "DELETED",
        WatchEventType::Bookmark => "BOOKMARK",
        WatchEventType::Error => "ERROR",
    }
}

fn event_json(kind: WatchEventType, version: &str, object: Option<&Instance>) -> String {
    serde_json::to_string(&EventData {
        event_type: kind,
        resource_version: version,
        self_link: object.map(|i| i.self_link.as_str()),
        object,
        error: None,
    })
    .expect("events serialize")
}

fn version(epoch: u64, seq: u64) -> String {
    format!("{epoch}.{seq}")
}

/// The `ERROR` event that ends a watch whose watcher must list again.
fn gone(version: &str, why: &str) -> Event {
    let error = ErrorInfo {
        code: 410,
        message: format!("{why}; list again by watching without a resourceVersion"),
        details: vec![ErrorDetail {
            reason: "FAILED_PRECONDITION".into(),
            field: Some("resourceVersion".into()),
            description: None,
        }],
    };
    let data = serde_json::to_string(&EventData {
        event_type: WatchEventType::Error,
        resource_version: version,
        self_link: None,
        object: None,
        error: Some(&error),
    })
    .expect("events serialize");
    Event::default().event("ERROR").data(data)
}

impl WatchHub {
    pub fn new() -> Self {
        Self::with_history(HISTORY)
    }

    /// A hub that keeps `capacity` events.
    fn with_history(capacity: usize) -> Self {
        Self {
            capacity,
            history: Mutex::new(History {
                // Versions from an earlier run of this process, or from another replica, are
                // of another epoch (with overwhelming likelihood).
                epoch: u64::from(rand::random::<u32>()),
                seq: 0,
                events: VecDeque::new(),
                latest: HashMap::new(),
                deleting: HashMap::new(),
            }),
            sender: broadcast::Sender::new(capacity),
            closing: tokio::sync::watch::Sender::new(false),
            listing: tokio::sync::Semaphore::new(LISTINGS_AT_ONCE),
        }
    }

    /// Ends every watch (the region is shutting down).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Watches connected now.
    pub fn watchers(&self) -> usize {
        self.sender.receiver_count()
    }

    /// Whether nobody watches; then the history is dropped (with a new epoch, so no version
    /// handed out before resumes) and changes need not be turned into events at all.
    fn unwatched(&self) -> bool {
        let mut history = self.history.lock().unwrap();
        if self.sender.receiver_count() > 0 {
            return false;
        }
        if !history.events.is_empty() {
            history.epoch += 1;
            history.events.clear();
            history.latest.clear();
        }
        history.deleting.clear();
        true
    }

    /// Numbers and sends one change of `instance` (as its record and view).
    fn publish(&self, kind: WatchEventType, record: &InstanceRecord, instance: Arc<Instance>) {
        self.publish_view(
            kind,
            record.generation,
            record.desired == DesiredState::Deleted,
            instance,
        );
    }

    /// Numbers and sends one change of `instance`, at `generation` of its row; `deleting` when
    /// its deletion was asked for.
    fn publish_view(
        &self,
        kind: WatchEventType,
        generation: i64,
        deleting: bool,
        instance: Arc<Instance>,
    ) {
        let key = (project_of(&instance), instance.id.to_string());
        let mut history = self.history.lock().unwrap();
        let generation = if kind == WatchEventType::Deleted {
            i64::MAX
        } else {
            generation
        };
        if let Some((uid, published, _)) = history.latest.get(&key)
            && *uid == instance.uid
            && *published >= generation
        {
            return;
        }
        if kind == WatchEventType::Deleted {
            history.deleting.remove(&key);
        } else if deleting {
            history.deleting.insert(key.clone(), instance.clone());
        }
        history.seq += 1;
        let seq = history.seq;
        history
            .latest
            .insert(key.clone(), (instance.uid, generation, seq));
        let data = event_json(kind, &version(history.epoch, seq), Some(&instance));
        self.push(
            &mut history,
            Change {
                seq,
                kind,
                project: key.0,
                id: key.1,
                instance: Some(instance),
                data: data.into(),
            },
        );
    }

    /// Sends the deletion of an instance known only by its key (heard from another replica).
    fn publish_deleted_key(&self, project: &str, id: &str, self_link: &str) {
        let key = (project.to_owned(), id.to_owned());
        let mut history = self.history.lock().unwrap();
        if history
            .latest
            .get(&key)
            .is_some_and(|(_, generation, _)| *generation == i64::MAX)
        {
            return;
        }
        let last_seen = history.deleting.remove(&key).or_else(|| {
            let (_, _, seq) = history.latest.get(&key)?;
            let first = history.events.front()?.seq;
            history.events.get((seq - first) as usize)?.instance.clone()
        });
        history.seq += 1;
        let seq = history.seq;
        let rv = version(history.epoch, seq);
        let data = match &last_seen {
            Some(instance) => event_json(WatchEventType::Deleted, &rv, Some(instance)),
            None => serde_json::to_string(&EventData {
                event_type: WatchEventType::Deleted,
                resource_version: &rv,
                self_link: Some(self_link),
                object: None,
                error: None,
            })
            .expect("events serialize"),
        };
        if let Some(instance) = &last_seen {
            history.latest.insert(key, (instance.uid, i64::MAX, seq));
        }
        self.push(
            &mut history,
            Change {
                seq,
                kind: WatchEventType::Deleted,
                project: project.to_owned(),
                id: id.to_owned(),
                instance: last_seen,
                data: data.into(),
            },
        );
    }

    fn push(&self, history: &mut History, change: Change) {
        let change = Arc::new(change);
        history.events.push_back(change.clone());
        while history.events.len() > self.capacity {
            let Some(old) = history.events.pop_front() else {
                break;
            };
            let key = (old.project.clone(), old.id.clone());
            if history.latest.get(&key).is_some_and(|e| e.2 == old.seq) {
                history.latest.remove(&key);
            }
        }
        let _ = self.sender.send(change);
    }

    /// Voids every version handed out: changes may have been missed. Connected watchers are
    /// told to list again.
    fn expire(&self) {
        let mut history = self.history.lock().unwrap();
        history.epoch += 1;
        history.events.clear();
        history.latest.clear();
        history.deleting.clear();
        let _ = self.sender.send(Arc::new(Change {
            seq: history.seq,
            kind: WatchEventType::Error,
            project: String::new(),
            id: String::new(),
            instance: None,
            data: "".into(),
        }));
    }

    /// Joins the stream of changes: from now (`None`), or after `from`, replaying what the
    /// history holds since; `Err` with the reason when `from` cannot be resumed.
    fn join(&self, from: Option<(u64, u64)>) -> std::result::Result<Joined, String> {
        let history = self.history.lock().unwrap();
        let receiver = self.sender.subscribe();
        let mut replay = Vec::new();
        if let Some((epoch, seq)) = from {
            if epoch != history.epoch || seq > history.seq {
                return Err(format!(
                    "resourceVersion {epoch}.{seq} is not one of this replica's current versions"
                ));
            }
            let oldest = history.events.front().map_or(history.seq + 1, |e| e.seq);
            if seq + 1 < oldest {
                return Err(format!(
                    "resourceVersion {epoch}.{seq} is too old: changes after it are no longer kept"
                ));
            }
            replay.extend(history.events.iter().filter(|e| e.seq > seq).cloned());
        }
        Ok(Joined {
            receiver,
            epoch: history.epoch,
            position: history.seq,
            replay,
        })
    }

    fn version_now(&self) -> String {
        let history = self.history.lock().unwrap();
        version(history.epoch, history.seq)
    }
}

struct Joined {
    receiver: broadcast::Receiver<Arc<Change>>,
    epoch: u64,
    position: u64,
    replay: Vec<Arc<Change>>,
}

/// The project of an instance, from its `selfLink` (`/v1/regions/R/projects/P/…`).
fn project_of(instance: &Instance) -> String {
    instance
        .self_link
        .split('/')
        .nth(5)
        .unwrap_or_default()
        .to_owned()
}

/// Reads a `resourceVersion` as `(epoch, sequence)`.
fn parse_version(text: &str) -> Result<(u64, u64)> {
    text.split_once('.')
        .and_then(|(e, s)| Some((e.parse().ok()?, s.parse().ok()?)))
        .ok_or_else(|| {
            Error::invalid(
                "resourceVersion",
                format!(
                    "{text:?} is not a resource version: give the resourceVersion of a watch event"
                ),
            )
        })
}

/// Which changes a watcher gets.
struct Selection {
    project: String,
    labels: LabelSelector,
    id: Option<String>,
}

impl Selection {
    fn admits(&self, change: &Change) -> bool {
        change.project == self.project
            && self.id.as_ref().is_none_or(|id| *id == change.id)
            // A deletion seen only by key is sent to every watcher of its project.
            && change
                .instance
                .as_ref()
                .is_none_or(|i| self.labels.matches(&i.labels))
    }
}

/// Where a watch stands.
enum Phase {
    /// Sending the instances present when the watch began, after this id.
    Listing {
        after: Option<String>,
    },
    Live,
    Ended,
}

/// What a live watch does next.
enum Step {
    /// Send this change.
    Change(Arc<Change>),
    /// Nothing to send for a while: send a bookmark.
    Idle,
    /// Changes were missed (the reason): tell the watcher to list again, and end.
    Missed(String),
    /// The watch is over (its timeout, a shutdown).
    End,
}

/// Following the hub's changes for one watcher.
struct Live {
    selection: Selection,
    receiver: broadcast::Receiver<Arc<Change>>,
    epoch: u64,
    /// The sequence number up to which changes have been considered.
    position: u64,
    deadline: tokio::time::Instant,
    closing: tokio::sync::watch::Receiver<bool>,
}

impl Live {
    fn version(&self) -> String {
        version(self.epoch, self.position)
    }

    async fn next(&mut self) -> Step {
        loop {
            let received = tokio::select! {
                _ = tokio::time::sleep_until(self.deadline) => return Step::End,
                _ = self.closing.wait_for(|closing| *closing) => return Step::End,
                received = tokio::time::timeout(BOOKMARK_EVERY, self.receiver.recv()) => received,
            };
            let change = match received {
                Err(_idle) => return Step::Idle,
                Ok(Ok(change)) => change,
                Ok(Err(broadcast::error::RecvError::Lagged(missed))) => {
                    return Step::Missed(format!("this watch fell {missed} changes behind"));
                }
                Ok(Err(broadcast::error::RecvError::Closed)) => return Step::End,
            };
            if change.kind == WatchEventType::Error {
                return Step::Missed(
                    "the region may have missed changes (its change feed reconnected)".into(),
                );
            }
            if change.seq <= self.position {
                continue;
            }
            self.position = change.seq;
            if self.selection.admits(&change) {
                return Step::Change(change);
            }
        }
    }
}

/// The state of one watcher's stream.
struct Watcher {
    app: Arc<App>,
    live: Live,
    pending: VecDeque<Event>,
    phase: Phase,
    _gauge: WatcherGauge,
}

/// Counts a watcher in `stratus_instance_watchers` while it lives.
struct WatcherGauge;

impl WatcherGauge {
    fn new() -> Self {
        metrics::gauge!("stratus_instance_watchers").increment(1.0);
        Self
    }
}

impl Drop for WatcherGauge {
    fn drop(&mut self) {
        metrics::gauge!("stratus_instance_watchers").decrement(1.0);
    }
}

/// The server-sent event of a change, as numbered in `epoch`.
fn change_event(epoch: u64, change: &Change) -> Event {
    Event::default()
        .event(type_name(change.kind))
        .id(version(epoch, change.seq))
        .data(&*change.data)
}

impl Watcher {
    fn bookmark(&self) -> Event {
        let rv = self.live.version();
        Event::default()
            .event("BOOKMARK")
            .id(rv.clone())
            .data(event_json(WatchEventType::Bookmark, &rv, None))
    }

    /// The next event of the stream, `None` when it ends.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            match &self.phase {
                Phase::Ended => return None,
                Phase::Listing { after } => {
                    let after = after.clone();
                    self.list_from(after).await;
                }
                Phase::Live => {
                    return match self.live.next().await {
                        Step::Change(change) => Some(change_event(self.live.epoch, &change)),
                        Step::Idle => Some(self.bookmark()),
                        Step::Missed(why) => {
                            self.phase = Phase::Ended;
                            Some(gone(&self.live.version(), &why))
                        }
                        Step::End => None,
                    };
                }
            }
        }
    }

    /// Queues the next batch of the listing a watch begins with.
    async fn list_from(&mut self, after: Option<String>) {
        let rv = self.live.version();
        let added = |instance: &Instance| {
            Event::default().event("ADDED").data(event_json(
                WatchEventType::Added,
                &rv,
                Some(instance),
            ))
        };
        let selection = &self.live.selection;
        let _room = self.app.watch.listing.acquire().await;
        let listed = match &selection.id {
            Some(id) => self
                .app
                .store
                .get_instance(&selection.project, id)
                .await
                .map(|found| (found.into_iter().collect::<Vec<_>>(), false)),
            None => self
                .app
                .store
                .list_instances(
                    &selection.project,
                    &selection.labels,
                    &PageRequest {
                        after,
                        offset: None,
                        limit: LISTING_BATCH,
                        with_total: false,
                    },
                )
                .await
                .map(|page| (page.items, page.more)),
        };
        match listed {
            Ok((records, more)) => {
                for record in &records {
                    let view = self.app.instance_view(record).instance;
                    self.pending.push_back(added(&view));
                }
                self.phase = match records.last() {
                    Some(last) if more => Phase::Listing {
                        after: Some(last.id.clone()),
                    },
                    _ => {
                        self.pending.push_back(self.bookmark());
                        Phase::Live
                    }
                };
            }
            Err(e) => {
                tracing::warn!(error = %e, "a watch could not list its instances");
                self.pending
                    .push_back(gone(&rv, "the region could not list the instances"));
                self.phase = Phase::Ended;
            }
        }
    }
}

impl App {
    /// Starts turning the store's change feed into watch events and wake-ups of the agents
    /// concerned ([`stratus_store::Changes::bump_instance`]); ends with the application.
    pub(crate) fn follow_instance_changes(self: &Arc<Self>) {
        let mut feed = self.store.instance_changes();
        let app: Weak<App> = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let change = match feed.recv().await {
                    Ok(change) => change,
                    Err(broadcast::error::RecvError::Lagged(_)) => InstanceChange::Resync,
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let Some(app) = app.upgrade() else {
                    return;
                };
                app.take_change(change).await;
            }
        });
    }

    async fn take_change(&self, change: InstanceChange) {
        let InstanceChange::Changed {
            kind,
            project,
            id,
            record,
        } = change
        else {
            self.watch.expire();
            self.changes.bump();
            return;
        };
        let heard = record.is_none();
        let record = match record {
            Some(record) => Some(record),
            None => match self.store.get_instance(&project, &id).await {
                Ok(found) => found.map(Arc::new),
                Err(e) => {
                    tracing::warn!(error = %e, "a watched change could not be read; watchers list again");
                    self.watch.expire();
                    self.changes.bump();
                    return;
                }
            },
        };
        // Agents and waiting reads: the instance's host, and overlay hosts when it came or went.
        // A change heard from another replica whose row is gone names no host (only heard
        // changes come without their row): every agent lists its instances again (rare:
        // deletions finish where the host's agent reports).
        match &record {
            Some(r) => self.changes.bump_instance(
                r.host_id.map(|host| (host, r.uid)),
                kind != ChangeKind::Updated,
            ),
            None => self.changes.bump(),
        }
        if self.watch.unwatched() {
            return;
        }
        match (kind, record) {
            // Heard from another replica: the row now may be a new instance of the same id.
            (ChangeKind::Deleted, _) if heard => {
                let self_link = self.instance_self_link(&project, &id);
                self.watch.publish_deleted_key(&project, &id, &self_link);
            }
            (_, None) => {} // deleted since; its deletion is announced too
            (kind, Some(record)) => {
                let event = match kind {
                    ChangeKind::Created => WatchEventType::Added,
                    ChangeKind::Updated => WatchEventType::Modified,
                    ChangeKind::Deleted => WatchEventType::Deleted,
                };
                let view = Arc::new(self.instance_view(&record).instance);
                self.watch.publish(event, &record, view);
            }
        }
    }

    /// The stream of a watch of `project`'s instances (`filters.watch`); it resumes after
    /// `filters.resource_version`, else after `last_event_id` (an event source reconnecting).
    pub async fn watch_instances(
        self: &Arc<Self>,
        caller: &Caller,
        (region, project): (&str, &str),
        filters: &InstanceFilters,
        last_event_id: Option<&str>,
    ) -> Result<impl futures_util::Stream<Item = std::result::Result<Event, Infallible>> + use<>>
    {
        let (project, labels) = self
            .listed_instances(caller, (region, project), filters)
            .await?;
        let from = filters
            .resource_version
            .as_deref()
            .or(last_event_id.filter(|id| !id.is_empty()))
            .map(parse_version)
            .transpose()?;
        // A watch lasts no longer than the token it was opened with.
        let token_left = caller
            .principal
            .expires_at
            .map(|exp| (exp - chrono::Utc::now().timestamp()).max(1) as u64);
        let timeout = filters
            .timeout_seconds
            .unwrap_or(DEFAULT_TIMEOUT_S)
            .min(token_left.unwrap_or(u64::MAX));
        let selection = Selection {
            project: project.id,
            labels,
            id: filters.field_id.clone(),
        };
        let mut pending = VecDeque::new();
        let (receiver, epoch, position, phase) = match self.watch.join(from) {
            Ok(joined) => {
                for change in &joined.replay {
                    if selection.admits(change) {
                        pending.push_back(change_event(joined.epoch, change));
                    }
                }
                let phase = if from.is_some() {
                    Phase::Live
                } else {
                    Phase::Listing { after: None }
                };
                (joined.receiver, joined.epoch, joined.position, phase)
            }
            Err(why) => {
                pending.push_back(gone(&self.watch.version_now(), &why));
                (self.watch.sender.subscribe(), 0, 0, Phase::Ended)
            }
        };
        let watcher = Watcher {
            app: self.clone(),
            live: Live {
                selection,
                receiver,
                epoch,
                position,
                deadline: tokio::time::Instant::now() + Duration::from_secs(timeout),
                closing: self.watch.closing.subscribe(),
            },
            pending,
            phase,
            _gauge: WatcherGauge::new(),
        };
        Ok(futures_util::stream::unfold(
            watcher,
            |mut watcher| async move {
                let event = watcher.next().await?;
                Some((Ok(event), watcher))
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(project: &str, id: &str, uid: Uuid, team: &str) -> Arc<Instance> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "selfLink": format!("/v1/regions/global/projects/{project}/compute/instances/{id}"),
                "uid": uid, "id": id, "displayName": id, "description": "",
                "labels": {"team": team}, "type": "/v1/regions/global/compute/instanceTypes/t",
                "instanceMetadata": [], "hostname": id,
                "lifecycle": {"status": "RUNNING"}, "disks": [], "nics": [], "gpus": [],
                "createdAt": "2026-11-30T00:00:00Z", "updatedAt": "2026-11-30T00:00:00Z",
            }))
            .expect("an instance"),
        )
    }

    fn live(hub: &WatchHub, from: Option<(u64, u64)>, labels: &str) -> Live {
        let joined = hub.join(from).expect("joins");
        Live {
            selection: Selection {
                project: "p".into(),
                labels: match labels {
                    "" => LabelSelector::default(),
                    text => LabelSelector::parse(text).unwrap(),
                },
                id: None,
            },
            receiver: joined.receiver,
            epoch: joined.epoch,
            position: joined.position,
            deadline: tokio::time::Instant::now() + Duration::from_secs(5),
            closing: hub.closing.subscribe(),
        }
    }

    fn epoch(hub: &WatchHub) -> u64 {
        hub.history.lock().unwrap().epoch
    }

    #[tokio::test]
    async fn a_watcher_gets_its_selection_in_order_and_never_an_older_generation() {
        let hub = WatchHub::with_history(16);
        let mut watcher = live(&hub, None, "team=a");
        let (one, two) = (Uuid::new_v4(), Uuid::new_v4());
        // The late generation 2 of p/one, published after 3, is dropped.
        for (kind, generation, project, id, uid, team) in [
            (WatchEventType::Added, 1, "p", "one", one, "a"),
            (WatchEventType::Added, 1, "p", "two", two, "b"),
            (WatchEventType::Added, 1, "q", "one", one, "a"),
            (WatchEventType::Modified, 3, "p", "one", one, "a"),
            (WatchEventType::Modified, 2, "p", "one", one, "a"),
            (WatchEventType::Deleted, 4, "p", "one", one, "a"),
        ] {
            hub.publish_view(kind, generation, false, instance(project, id, uid, team));
        }
        let mut seen = Vec::new();
        for _ in 0..3 {
            let Step::Change(change) = watcher.next().await else {
                panic!("a change was expected")
            };
            seen.push((change.kind, change.project.clone(), change.id.clone()));
        }
        let p_one = |kind| (kind, "p".to_owned(), "one".to_owned());
        assert_eq!(
            seen,
            [
                p_one(WatchEventType::Added),
                p_one(WatchEventType::Modified),
                p_one(WatchEventType::Deleted)
            ]
        );
        hub.close();
        assert!(matches!(watcher.next().await, Step::End));
    }

    #[tokio::test]
    async fn a_watcher_that_falls_behind_is_told_to_list_again() {
        let hub = WatchHub::with_history(4);
        let mut watcher = live(&hub, None, "");
        for generation in 1..=10 {
            let view = instance("p", &format!("i{generation}"), Uuid::new_v4(), "a");
            hub.publish_view(WatchEventType::Added, generation, false, view);
        }
        match watcher.next().await {
            Step::Missed(why) => assert!(why.contains("fell 6 changes behind"), "{why}"),
            _ => panic!("a watcher 10 changes behind a history of 4 was not told"),
        }
    }

    #[tokio::test]
    async fn a_version_resumes_only_while_the_history_holds_what_follows_it() {
        let hub = WatchHub::with_history(4);
        for generation in 1..=3 {
            let view = instance("p", &format!("i{generation}"), Uuid::new_v4(), "a");
            hub.publish_view(WatchEventType::Added, generation, false, view);
        }
        let now = epoch(&hub);
        let joined = hub.join(Some((now, 1))).expect("version 1 resumes");
        assert_eq!(
            joined.replay.iter().map(|c| c.seq).collect::<Vec<_>>(),
            [2, 3]
        );
        for generation in 4..=8 {
            let view = instance("p", &format!("i{generation}"), Uuid::new_v4(), "a");
            hub.publish_view(WatchEventType::Added, generation, false, view);
        }
        let too_old = hub.join(Some((now, 1))).err().expect("version 1 is gone");
        assert!(too_old.contains("too old"), "{too_old}");
        assert!(hub.join(Some((now, 4))).is_ok(), "the history holds 5 to 8");
        assert!(
            hub.join(Some((now, 9))).is_err(),
            "a version not handed out yet"
        );
        let mut watcher = live(&hub, Some((now, 8)), "");
        hub.expire();
        assert!(matches!(watcher.next().await, Step::Missed(_)));
        assert!(
            hub.join(Some((now, 8))).is_err(),
            "an earlier epoch's version"
        );
    }
}
