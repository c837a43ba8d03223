//! Hot writes committed in groups.
//!
//! A write is durable when its transaction has committed, and on SQLite with
//! `synchronous = FULL` every commit is an fsync: one write per transaction caps a region at
//! the disk's fsyncs per second, however many clients ask at once. So the writes a busy region
//! makes most — creates, the guarded updates of instances (every status an agent reports),
//! hosts' heartbeats, audit events and the serial console output agents copy up (a new VM's
//! boot log is one append) — queue for one writer, which takes every job waiting
//! when it is free and runs them in one transaction. One commit — one fsync — then makes
//! the whole group durable, and only then is any job of it answered.
//!
//! On SQLite every statement is a trip to the database's thread and back, and on PostgreSQL
//! one over the network; a group's time is mostly its statements, so a group is first run
//! with as few as it can: the ids its creates ask for looked up together (a taken one is
//! refused before it writes), its audit events in multi-row inserts, its heartbeats in one
//! update, the statuses agents reported in an update per 64 instances, and no savepoint for a
//! create that writes nothing a refusal could follow but its own row (a quota, capacity or
//! full subnet refuses it before it writes, and the group goes on). An update that lost its
//! race changes no row, which is no error. Any other create keeps a savepoint of its own. A
//! job refused by a statement after it wrote (an id taken by another replica meanwhile)
//! undoes the group, which runs again job by job, each inside a savepoint of its own, so the
//! refused job is undone alone and the others stand. A lone job waits for nothing: the writer
//! takes what is queued, even if that is one. One writer also means the region's hot writes
//! never queue for SQLite's write lock against each other.
//!
//! Placement learns its zone's hosts once per group (not once per create), holding the zone's
//! one lock (a row of `placement_zones`) rather than a lock on each host, and counts each create
//! of the group onto its host as it goes; between groups the writer keeps them, read again
//! only when something else changed them ([`crate::zones`]). What is placed on a host is kept in counters
//! on its row (added to by the create that places an instance, taken from by the deletion that
//! removes it, in the same transaction), so a group costs one read of the zone's hosts however
//! many instances the region holds.

use crate::engine::{DbError, DbResult, Engine, Isolation, Tx, args, transaction};
use crate::rows::{insert, insert_many};
use crate::sql::{admit_under, count, count_on_host, instance_exists};
use crate::zones::{KeptZone, KeptZones};
use crate::{Admission, AuditEventRecord, InstanceRecord};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use stratus_core::placement::{Demand, HostUsage, choose_host};
use stratus_core::{Error, Result, quota};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// Jobs taken into one transaction at most.
const GROUP: usize = 256;

/// A create waiting for its group.
pub(crate) struct CreateJob {
    pub instance: InstanceRecord,
    pub demand: Demand,
    pub live_since: DateTime<Utc>,
    pub organization: String,
    pub defaults: quota::Limits,
    pub reply: oneshot::Sender<Result<InstanceRecord>>,
    /// The span of the request that asked, so its statements join that request's trace.
    pub span: tracing::Span,
}

/// A guarded update of an instance waiting for its group: `None` back when someone else wrote
/// first.
pub(crate) struct UpdateJob {
    pub instance: InstanceRecord,
    /// Only the instance's lifecycle changed (see [`crate::Store::update_instance_status`]).
    pub status_only: bool,
    pub reply: oneshot::Sender<Result<Option<InstanceRecord>>>,
    pub span: tracing::Span,
}

/// An audit event waiting for its group.
pub(crate) struct AuditJob {
    pub event: AuditEventRecord,
    pub reply: oneshot::Sender<Result<()>>,
}

/// Serial console output of an instance waiting for its group: appended to its log if the
/// log ends at `at`; the log's end back.
pub(crate) struct ConsoleJob {
    pub uid: Uuid,
    pub at: u64,
    pub bytes: Vec<u8>,
    /// How many of the log's last bytes are kept.
    pub keep: u64,
    pub reply: oneshot::Sender<Result<u64>>,
}

/// A write waiting for its group.
pub(crate) enum Job {
    Create(CreateJob),
    Update(UpdateJob),
    /// A host was heard from at this time.
    Touch {
        host: Uuid,
        at: DateTime<Utc>,
        reply: oneshot::Sender<Result<()>>,
    },
    Audit(AuditJob),
    Console(ConsoleJob),
}

/// What the group's creates looked up already: organizations' quotas (their settings, and
/// what their instances hold) and the subnets NICs named. Forgotten when a job is undone,
/// which may have written them.
#[derive(Default)]
struct Seen {
    quotas: crate::sql::Admissions,
    subnets: crate::addressing::SubnetsSeen,
}

/// What one job did.
enum Done {
    Created(InstanceRecord),
    Updated(Option<InstanceRecord>),
    Touched,
    Audited,
    /// Console output appended (or not): where the log ends.
    Appended(u64),
}

/// When the writer has the database gather statistics on the instances table anew.
///
/// PostgreSQL plans a prepared statement once for its connection (a generic plan, after five
/// runs) and plans it again only when the table's statistics change, which autovacuum
/// gathers at most once a minute. A region filling up fast outgrows its plans first: a lookup
/// of one instance by project and id, planned while the table was nearly empty, took the index
/// of pages (which narrows only to the project) over the unique one, and at 20,000 instances
/// read every instance of the project, 55 ms a lookup, halving the rate of creates until
/// autovacuum came round. So the writer has the table analyzed itself after 1,000 creates and
/// each time its creates have grown fourfold since (4,000, 16,000, 64,000 …): a handful of
/// times over a region's growth, each on a connection of the pool, apart from the writes.
#[derive(Debug)]
pub(crate) struct Statistics {
    created: usize,
    next: usize,
}

impl Default for Statistics {
    fn default() -> Self {
        Self {
            created: 0,
            next: 1000,
        }
    }
}

impl Statistics {
    /// Counts `created` more instances; whether the statistics are due now.
    pub(crate) fn due_after(&mut self, created: usize) -> bool {
        self.created += created;
        if self.created < self.next {
            return false;
        }
        self.next = self.created.saturating_mul(4);
        true
    }

    /// Has the database gather the instances table's statistics.
    async fn gather(engine: Arc<dyn Engine>) {
        if let Err(e) = engine.execute("ANALYZE instances", vec![]).await {
            tracing::warn!(error = ?e, "gathering the statistics of the instances table failed");
        }
    }
}

/// Waits for the next job, then takes every job already queued behind it (up to [`GROUP`]);
/// `None` when every sender is gone.
async fn next_group<T>(queue: &mut mpsc::UnboundedReceiver<T>) -> Option<Vec<T>> {
    let mut jobs = vec![queue.recv().await?];
    while jobs.len() < GROUP {
        match queue.try_recv() {
            Ok(job) => jobs.push(job),
            Err(_) => break,
        }
    }
    Some(jobs)
}

/// Starts the writer of `engine`'s hot writes (on a thread of its own when the database runs
/// in this process); the returned sender queues them. The writer ends when every sender is
/// gone.
pub(crate) fn start(
    engine: Arc<dyn Engine>,
    log: Arc<crate::feed::ChangeLog>,
) -> Result<mpsc::UnboundedSender<Job>> {
    let (sender, mut queue) = mpsc::unbounded_channel::<Job>();
    let in_process = engine.in_process();
    let writer = async move {
        let mut zones = KeptZones::default();
        let mut statistics = Statistics::default();
        while let Some(jobs) = next_group(&mut queue).await {
            metrics::histogram!("stratus_write_group_size").record(jobs.len() as f64);
            let outcomes = run_group(engine.as_ref(), &jobs, &mut zones).await;
            let mut committed = Vec::new();
            for (job, outcome) in jobs.iter().zip(&outcomes) {
                match (job, outcome) {
                    (Job::Create(job), outcome) => {
                        log.forget(&job.instance);
                        if let Ok(Done::Created(record)) = outcome {
                            committed.push((crate::feed::ChangeKind::Created, record.clone()));
                        }
                    }
                    // A committed update's row takes the place of the one it updated, when
                    // published; any other outcome forgets the row now.
                    (Job::Update(job), outcome) => match outcome {
                        Ok(Done::Updated(Some(record))) => {
                            committed.push((crate::feed::ChangeKind::Updated, record.clone()));
                        }
                        _ => log.forget(&job.instance),
                    },
                    _ => {}
                }
            }
            let created = committed
                .iter()
                .filter(|(kind, _)| *kind == crate::feed::ChangeKind::Created)
                .count();
            if engine.plans_from_gathered_statistics() && statistics.due_after(created) {
                tokio::spawn(Statistics::gather(engine.clone()));
            }
            // Answered before the other replicas are told, which takes a trip to the database:
            // their view lags by the documented bound anyway, and this one's is current.
            let announcements = log.published(engine.as_ref(), committed);
            for (job, outcome) in jobs.into_iter().zip(outcomes) {
                answer(job, outcome);
            }
            log.announce(engine.as_ref(), announcements).await;
        }
    };
    // A group's statements are several trips each to the database's thread and back; on a
    // busy machine each trip waited its turn behind request handlers on the shared runtime.
    if in_process {
        let (started, starting) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("stratus-writer".into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => {
                        let _ = started.send(Ok(()));
                        runtime.block_on(writer);
                    }
                    Err(e) => {
                        let _ = started.send(Err(e));
                    }
                }
            })
            .map_err(|e| Error::internal(format!("starting the writer's thread: {e}")))?;
        starting
            .recv()
            .map_err(|e| Error::internal(format!("starting the writer: {e}")))?
            .map_err(|e| Error::internal(format!("starting the writer's runtime: {e}")))?;
    } else {
        tokio::spawn(writer);
    }
    Ok(sender)
}

/// Hands a job its outcome, in the terms its caller asked in.
fn answer(job: Job, outcome: Result<Done>) {
    match job {
        Job::Create(job) => {
            let _ = job.reply.send(outcome.and_then(|done| match done {
                Done::Created(record) => Ok(record),
                _ => Err(Error::internal("a create did something else")),
            }));
        }
        Job::Update(job) => {
            let _ = job.reply.send(outcome.and_then(|done| match done {
                Done::Updated(record) => Ok(record),
                _ => Err(Error::internal("an update did something else")),
            }));
        }
        Job::Touch { reply, .. } => {
            let _ = reply.send(outcome.map(|_| ()));
        }
        Job::Audit(job) => {
            let _ = job.reply.send(outcome.map(|_| ()));
        }
        Job::Console(job) => {
            let _ = job.reply.send(outcome.and_then(|done| match done {
                Done::Appended(end) => Ok(end),
                _ => Err(Error::internal("a console append did something else")),
            }));
        }
    }
}

/// The outcomes of a group whose transaction failed as a whole: the same error for each.
fn each_failed<T>(jobs: usize, failed: DbError) -> Vec<Result<T>> {
    let failed: Error = failed.into();
    (0..jobs).map(|_| Err(failed.clone())).collect()
}

/// Runs `jobs` in one transaction; one outcome per job, in order.
///
/// Nearly every group has no job refused, so it runs first with as few statements as it can
/// ([`run_together`]). A job refused there after it wrote undoes the whole group, which then
/// runs again job by job, each in a savepoint of its own ([`run_one_by_one`]). A group whose
/// transaction failed (the database is out of reach, its commit failed) fails as a whole.
async fn run_group(engine: &dyn Engine, jobs: &[Job], kept: &mut KeptZones) -> Vec<Result<Done>> {
    if let Some(outcomes) = run_alone(engine, jobs).await {
        return outcomes;
    }
    let together = transaction!(engine, Isolation::ReadCommitted, |tx| {
        let mut placing = Placing::new(kept);
        let outcomes = run_together(&mut tx, engine, jobs, &mut placing).await?;
        (outcomes, placing.taken, placing.hosts)
    });
    match together {
        Ok((outcomes, taken, hosts)) => {
            kept.committed(taken, &hosts);
            outcomes
        }
        Err(DbError::Undo) => {
            metrics::counter!("stratus_write_groups_run_again_total").increment(1);
            kept.forget();
            run_one_by_one(engine, jobs, &KeptZones::default()).await
        }
        Err(failed) => each_failed(jobs.len(), failed),
    }
}

/// A group that is one statement, run by itself: status reports of different instances,
/// audit events or heartbeats, each as many as one statement writes. A transaction around one
/// statement would add two trips to the database (its start and its commit) for nothing, and
/// agents' reports and heartbeats, the most frequent groups, are mostly such. `None` for any
/// other group, and for one whose statement failed in a way the group in a transaction may
/// get past (a taken audit event id, a lost race).
async fn run_alone(engine: &dyn Engine, jobs: &[Job]) -> Option<Vec<Result<Done>>> {
    let (sql, args) = match jobs.first()? {
        Job::Update(first) if first.status_only => {
            let mut instances = Vec::with_capacity(jobs.len());
            for job in jobs {
                match job {
                    Job::Update(update)
                        if update.status_only
                            && instances
                                .iter()
                                .all(|i: &&InstanceRecord| i.uid != update.instance.uid) =>
                    {
                        instances.push(&update.instance)
                    }
                    _ => return None,
                }
            }
            if runs(&instances).len() != 1 {
                return None;
            }
            crate::sql::guarded_status_updates_of(&instances)
        }
        Job::Audit(_) => {
            let events: Vec<&AuditEventRecord> = jobs
                .iter()
                .map(|job| match job {
                    Job::Audit(audit) => Some(&audit.event),
                    _ => None,
                })
                .collect::<Option<_>>()?;
            if runs(&events).len() != 1 {
                return None;
            }
            insert_many(&events)
        }
        Job::Touch { .. } => {
            let mut heard: Vec<(Uuid, DateTime<Utc>)> = Vec::with_capacity(jobs.len());
            for job in jobs {
                match job {
                    Job::Touch { host, at, .. } if heard.iter().all(|(h, _)| h != host) => {
                        heard.push((*host, *at))
                    }
                    _ => return None,
                }
            }
            if runs(&heard).len() != 1 {
                return None;
            }
            heard.sort();
            touch_hosts(&heard)
        }
        _ => return None,
    };
    let rows = match engine.write_alone(&sql, args).await {
        Ok(rows) => rows,
        Err(DbError::Unique | DbError::Retry) => return None,
        Err(failed) => return Some(each_failed(jobs.len(), failed)),
    };
    let wrote = match rows.iter().map(|row| row.uuid("uid")).collect() {
        Ok(wrote) => wrote,
        Err(unreadable) => return Some(each_failed(jobs.len(), unreadable.into())),
    };
    let wrote: HashSet<Uuid> = wrote;
    Some(
        jobs.iter()
            .map(|job| {
                Ok(match job {
                    Job::Update(update) => Done::Updated(crate::sql::written_if(
                        &update.instance,
                        wrote.contains(&update.instance.uid),
                    )),
                    Job::Audit(_) => Done::Audited,
                    _ => Done::Touched,
                })
            })
            .collect(),
    )
}

/// The group in one transaction: its creates' ids looked up in one query, its status reports
/// in one update per 64 instances, its audit events in multi-row inserts and its heartbeats in
/// one update. A create that cannot be refused after it writes (one NIC, its address chosen
/// here) runs without a savepoint and is answered in place when refused before its row goes
/// in (quota, capacity, a full subnet); any other create has a savepoint of its own. A refusal
/// that a statement gave (a taken key) is [`DbError::Undo`]: on PostgreSQL it aborted the
/// transaction.
async fn run_together(
    tx: &mut Box<dyn Tx>,
    engine: &dyn Engine,
    jobs: &[Job],
    placing: &mut Placing<'_>,
) -> DbResult<Vec<Result<Done>>> {
    placing.lock_zones(tx, jobs).await?;
    let mut seen = Seen::default();
    let mut outcomes = Vec::with_capacity(jobs.len());
    let mut events = Vec::new();
    let mut heard: HashMap<Uuid, DateTime<Utc>> = HashMap::new();
    let mut reports: Vec<(usize, &InstanceRecord)> = Vec::new();
    let mut taken = taken_ids(tx, jobs).await?;
    for job in jobs {
        let done = match job {
            Job::Create(create) if taken.contains(&key_of(&create.instance)) => {
                Err(instance_exists(&create.instance))
            }
            Job::Create(create) => {
                let savepoint = !writes_only_its_row_last(&create.instance);
                if savepoint {
                    open_savepoint(tx).await?;
                }
                let one = create_one(tx, engine, create, &mut placing.hosts, &mut seen);
                match tracing::Instrument::instrument(one, create.span.clone()).await {
                    Ok(created) => {
                        if savepoint {
                            release_savepoint(tx).await?;
                        }
                        taken.insert(key_of(&created));
                        Ok(Done::Created(created))
                    }
                    Err(DbError::Other(refused)) if savepoint && is_refusal(&refused) => {
                        seen = Seen::default();
                        undo_savepoint(tx).await?;
                        Err(refused)
                    }
                    Err(DbError::Other(Error::AlreadyExists(_)) | DbError::Unique) => {
                        return Err(DbError::Undo);
                    }
                    Err(DbError::Other(refused)) if is_refusal(&refused) => Err(refused),
                    Err(failed) => return Err(failed),
                }
            }
            Job::Update(update) if update.status_only => {
                reports.push((outcomes.len(), &update.instance));
                Ok(Done::Updated(None))
            }
            Job::Update(update) => {
                let one = update_one(tx, update);
                Ok(Done::Updated(
                    tracing::Instrument::instrument(one, update.span.clone()).await?,
                ))
            }
            Job::Touch { host, at, .. } => {
                let latest = heard.entry(*host).or_insert(*at);
                *latest = (*latest).max(*at);
                Ok(Done::Touched)
            }
            Job::Audit(audit) => {
                events.push(&audit.event);
                Ok(Done::Audited)
            }
            Job::Console(console) => append_apart(tx, engine, console).await?,
        };
        outcomes.push(done);
    }
    for (at, written) in report_statuses(tx, &reports).await? {
        outcomes[at] = Ok(Done::Updated(written));
    }
    for run in runs(&events) {
        let (sql, args) = insert_many(run);
        match tx.execute(&sql, args).await {
            Err(DbError::Unique) => return Err(DbError::Undo),
            other => other?,
        };
    }
    // In the order of their ids, so that replicas lock host rows in one order.
    let mut heard: Vec<(Uuid, DateTime<Utc>)> = heard.into_iter().collect();
    heard.sort();
    for run in runs(&heard) {
        let (sql, args) = touch_hosts(run);
        tx.execute(&sql, args).await?;
    }
    Ok(outcomes)
}

/// Writes the lifecycles `reports` (each the place of its job in the group, and the instance
/// as reported) in a few statements, each guarded by its instance's generation; returns each
/// job's place and its row as written (`None`: it lost its race).
///
/// Reports of one instance go in statements of their own, in the order of the group, since a
/// row two rows of one statement matched would be written once: the first of them takes the
/// row's generation, and the rest lose as they would have one after another.
async fn report_statuses(
    tx: &mut Box<dyn Tx>,
    reports: &[(usize, &InstanceRecord)],
) -> DbResult<Vec<(usize, Option<InstanceRecord>)>> {
    let mut rounds: Vec<Vec<(usize, &InstanceRecord)>> = Vec::new();
    let mut reported: HashMap<Uuid, usize> = HashMap::new();
    for &(at, instance) in reports {
        let before = reported.entry(instance.uid).or_insert(0);
        if rounds.len() <= *before {
            rounds.push(Vec::new());
        }
        rounds[*before].push((at, instance));
        *before += 1;
    }
    let mut outcomes = Vec::with_capacity(reports.len());
    for round in &rounds {
        for run in runs(round) {
            let instances: Vec<&InstanceRecord> = run.iter().map(|(_, i)| *i).collect();
            let (sql, args) = crate::sql::guarded_status_updates_of(&instances);
            let rows = tx.query(&sql, args).await?;
            let wrote = rows
                .iter()
                .map(|row| row.uuid("uid"))
                .collect::<Result<HashSet<Uuid>>>()?;
            for (at, instance) in run {
                let written = crate::sql::written_if(instance, wrote.contains(&instance.uid));
                outcomes.push((*at, written));
            }
        }
    }
    Ok(outcomes)
}

/// An instance's project and id.
fn key_of(instance: &InstanceRecord) -> (String, String) {
    (instance.project.clone(), instance.id.clone())
}

/// Which of the ids the creates among `jobs` ask for are taken already, in one query per 64:
/// a create of a taken id is refused before it writes, so it never undoes its group.
async fn taken_ids(tx: &mut Box<dyn Tx>, jobs: &[Job]) -> DbResult<HashSet<(String, String)>> {
    let asked: Vec<&InstanceRecord> = jobs
        .iter()
        .filter_map(|job| match job {
            Job::Create(create) => Some(&create.instance),
            _ => None,
        })
        .collect();
    let mut taken = HashSet::new();
    for run in runs(&asked) {
        let marks = vec!["(?, ?)"; run.len()].join(", ");
        let mut args = Vec::with_capacity(run.len() * 2);
        for instance in run {
            args.push(instance.project.as_str().into());
            args.push(instance.id.as_str().into());
        }
        let sql =
            format!("SELECT project, id FROM instances WHERE (project, id) IN (VALUES {marks})");
        for row in tx.query(&sql, args).await? {
            taken.insert((row.text("project")?, row.text("id")?));
        }
    }
    Ok(taken)
}

/// Whether a create of `instance` writes nothing a refusal could follow but its row, last: at
/// most one NIC, whose address is chosen here (a requested or external one is taken by
/// statements that may refuse it).
fn writes_only_its_row_last(instance: &InstanceRecord) -> bool {
    match instance.spec.nics.as_slice() {
        [] => true,
        [nic] => nic.ipv4_address.is_none() && nic.external_address.is_none(),
        _ => false,
    }
}

/// One update marking each of `heard` (a host and when it was heard from) heard then, unless
/// it was heard from later already.
fn touch_hosts(heard: &[(Uuid, DateTime<Utc>)]) -> (String, Vec<crate::engine::Arg>) {
    let marks = vec!["(?, ?)"; heard.len()].join(", ");
    let mut args = Vec::with_capacity(heard.len() * 2);
    for (host, at) in heard {
        args.push((*host).into());
        args.push(at.timestamp_millis().into());
    }
    (
        format!(
            "UPDATE hosts SET last_seen_at = heard.column2 FROM (VALUES {marks}) AS heard \
             WHERE hosts.id = heard.column1 AND hosts.last_seen_at < heard.column2"
        ),
        args,
    )
}

/// Whether `error` is a create's refusal (its request cannot be met), not a failure of the
/// database.
fn is_refusal(error: &Error) -> bool {
    !matches!(error, Error::Unavailable(_) | Error::Internal(_))
}

/// `items` in runs of 64, 32, …, 1 (largest first): statements over many rows come in a few
/// shapes, each prepared once.
fn runs<T>(mut items: &[T]) -> Vec<&[T]> {
    let mut runs = Vec::new();
    let mut size = 64;
    while !items.is_empty() {
        while size > items.len() {
            size /= 2;
        }
        let (run, rest) = items.split_at(size);
        runs.push(run);
        items = rest;
    }
    runs
}

/// The guarded update of one instance: its row as written, or `None` when someone else wrote
/// first.
async fn update_one(tx: &mut Box<dyn Tx>, job: &UpdateJob) -> DbResult<Option<InstanceRecord>> {
    let instance = &job.instance;
    let (sql, args) = if job.status_only {
        crate::sql::guarded_status_updates_of(&[instance])
    } else {
        crate::sql::guarded_update_of(instance)
    };
    Ok(crate::sql::written(instance, &tx.query(&sql, args).await?))
}

/// Appends the console output of `job`; where the instance's log ends.
async fn append_one(tx: &mut Box<dyn Tx>, job: &ConsoleJob) -> DbResult<u64> {
    crate::sql::append_in(tx, job.uid, job.at, &job.bytes, job.keep).await
}

/// Appends the console output of `job` inside the group, so that its failure is its own: an
/// append racing the instance's deletion on PostgreSQL fails its foreign key there, which
/// aborts the transaction unless the append had a savepoint.
async fn append_apart(
    tx: &mut Box<dyn Tx>,
    engine: &dyn Engine,
    job: &ConsoleJob,
) -> DbResult<Result<Done>> {
    let savepoint = !engine.failed_statement_keeps_transaction();
    if savepoint {
        open_savepoint(tx).await?;
    }
    match append_one(tx, job).await {
        Ok(end) => {
            if savepoint {
                release_savepoint(tx).await?;
            }
            Ok(Ok(Done::Appended(end)))
        }
        Err(DbError::Retry) => Err(DbError::Retry),
        Err(failed) => {
            if savepoint {
                undo_savepoint(tx).await?;
            }
            Ok(Err(failed.into()))
        }
    }
}

/// The group job by job, each in a savepoint of its own: a refused job is undone alone.
async fn run_one_by_one(
    engine: &dyn Engine,
    jobs: &[Job],
    none_kept: &KeptZones,
) -> Vec<Result<Done>> {
    let outcomes = transaction!(engine, Isolation::ReadCommitted, |tx| {
        let mut placing = Placing::new(none_kept);
        // Outside any job's savepoint: rolling one back must not release the zones' locks the
        // group's placement relies on.
        placing.lock_zones(&mut tx, jobs).await?;
        let mut seen = Seen::default();
        let mut outcomes = Vec::with_capacity(jobs.len());
        for job in jobs {
            // A job of one statement needs no savepoint where a refused statement leaves the
            // transaction as it was (SQLite); a create always has one.
            let savepoint =
                matches!(job, Job::Create(_)) || !engine.failed_statement_keeps_transaction();
            if savepoint {
                open_savepoint(&mut tx).await?;
            }
            let done = match job {
                Job::Create(job) => {
                    let one = create_one(&mut tx, engine, job, &mut placing.hosts, &mut seen);
                    tracing::Instrument::instrument(one, job.span.clone())
                        .await
                        .map(Done::Created)
                }
                Job::Update(job) => {
                    let one = update_one(&mut tx, job);
                    tracing::Instrument::instrument(one, job.span.clone())
                        .await
                        .map(Done::Updated)
                }
                Job::Touch { host, at, .. } => {
                    let (sql, args) = touch_hosts(&[(*host, *at)]);
                    tx.execute(&sql, args).await.map(|_| Done::Touched)
                }
                Job::Audit(job) => crate::sql::insert_in(&mut tx, &job.event)
                    .await
                    .map(|()| Done::Audited),
                Job::Console(job) => append_one(&mut tx, job).await.map(Done::Appended),
            };
            match done {
                Ok(done) => {
                    if savepoint {
                        release_savepoint(&mut tx).await?;
                    }
                    outcomes.push(Ok(done));
                }
                Err(DbError::Retry) => return Err(DbError::Retry),
                // Without a savepoint only a refused constraint is known to leave the
                // transaction intact; anything else fails the group.
                Err(failed) if !savepoint && !matches!(failed, DbError::Unique) => {
                    return Err(failed);
                }
                Err(refused) => {
                    // What the group looked up may have been written by the job undone.
                    seen = Seen::default();
                    if savepoint {
                        undo_savepoint(&mut tx).await?;
                    }
                    outcomes.push(Err(match (job, refused) {
                        (Job::Create(job), DbError::Unique) => instance_exists(&job.instance),
                        (Job::Audit(_), DbError::Unique) => {
                            Error::internal("an audit event id was reused")
                        }
                        (_, other) => other.into(),
                    }));
                }
            }
        }
        outcomes
    });
    outcomes.unwrap_or_else(|failed| each_failed(jobs.len(), failed))
}

/// One create inside the group's transaction: quota, id, placement, addresses, the row.
async fn create_one(
    tx: &mut Box<dyn Tx>,
    engine: &dyn Engine,
    job: &CreateJob,
    zones: &mut HashMap<String, Vec<HostUsage>>,
    seen: &mut Seen,
) -> DbResult<InstanceRecord> {
    let instance = &job.instance;
    // Creates of one organization queue on its row, so each sees what the previous one took
    // of its quotas; creates in one zone queue on its lock (PostgreSQL), so each group
    // sees what the previous one placed.
    let admission = Admission {
        organization: &job.organization,
        defaults: &job.defaults,
    };
    admit_under(
        tx,
        engine,
        &admission,
        &mut seen.quotas,
        &instance.amounts(),
    )
    .await?;
    // A taken id is found by the unique key when the row goes in; a create refused before
    // that (no capacity, no address) whose id is taken is told so instead.
    let host = match choose_host(&instance.zone, &job.demand, &zones[&instance.zone]) {
        Ok(host) => host,
        Err(refused) => return Err(unless_taken(tx, instance, refused.into()).await),
    };
    let mut placed = instance.clone();
    placed.host_id = Some(host);
    placed.spec.nics =
        match crate::addressing::assign_nics(tx, engine, &placed, &mut seen.subnets).await {
            Ok(nics) => nics,
            Err(refused) => return Err(unless_taken(tx, instance, refused).await),
        };
    let (sql, args) = insert(&placed);
    tx.execute(&sql, args).await?;
    // The row is the record as written: it need not be read back, and its spec parsed again.
    let created = crate::sql::as_stored(&placed);
    count_on_host(tx, &created, 1).await?;
    // The group's later creates see this one in its organization's usage and on its host.
    seen.quotas.count(&job.organization, &instance.amounts());
    if let Some(h) = zones
        .get_mut(&instance.zone)
        .and_then(|hosts| hosts.iter_mut().find(|h| h.host_id == host))
    {
        h.used_vcpus += job.demand.vcpus;
        h.used_memory_mb += job.demand.memory_mb;
        h.instances += 1;
        if let Some((gpu_type, n)) = &job.demand.gpu {
            h.used_gpus.push((gpu_type.clone(), *n));
        }
    }
    Ok(created)
}

/// Opens the savepoint a job runs in.
async fn open_savepoint(tx: &mut Box<dyn Tx>) -> DbResult<()> {
    tx.execute("SAVEPOINT stratus_job", vec![]).await.map(drop)
}

/// Keeps what the job in the savepoint wrote.
async fn release_savepoint(tx: &mut Box<dyn Tx>) -> DbResult<()> {
    tx.execute("RELEASE SAVEPOINT stratus_job", vec![])
        .await
        .map(drop)
}

/// Undoes what the job in the savepoint wrote.
async fn undo_savepoint(tx: &mut Box<dyn Tx>) -> DbResult<()> {
    tx.execute("ROLLBACK TO SAVEPOINT stratus_job", vec![])
        .await?;
    release_savepoint(tx).await
}

/// `refused`, or that `instance`'s id is taken when it is.
async fn unless_taken(
    tx: &mut Box<dyn Tx>,
    instance: &InstanceRecord,
    refused: DbError,
) -> DbError {
    let taken = count(
        tx,
        "SELECT COUNT(*) AS n FROM instances WHERE project = ? AND id = ?",
        args![&instance.project, &instance.id],
    )
    .await;
    match taken {
        Ok(n) if n > 0 => instance_exists(instance).into(),
        Ok(_) => refused,
        Err(failed) => failed,
    }
}

/// What a group knows of the zones it places in: the live hosts of each (with what the group
/// placed counted on), and what it took of each to keep once it commits.
struct Placing<'k> {
    kept: &'k KeptZones,
    hosts: HashMap<String, Vec<HostUsage>>,
    taken: HashMap<String, KeptZone>,
}

impl<'k> Placing<'k> {
    fn new(kept: &'k KeptZones) -> Self {
        Self {
            kept,
            hosts: HashMap::new(),
            taken: HashMap::new(),
        }
    }

    /// Locks the zones the creates of `jobs` place in, in the order of their names and before
    /// the group writes anything (a deletion, too, locks its zone before the instance's row
    /// and the host's, so neither waits for the other holding what the other wants), and
    /// learns their hosts: until the group commits, no other placement in those zones, nor a
    /// change of their hosts, changes them.
    async fn lock_zones(&mut self, tx: &mut Box<dyn Tx>, jobs: &[Job]) -> DbResult<()> {
        let mut zones: Vec<(&str, DateTime<Utc>)> = Vec::new();
        for job in jobs {
            if let Job::Create(create) = job
                && !zones.iter().any(|(zone, _)| *zone == create.instance.zone)
            {
                zones.push((&create.instance.zone, create.live_since));
            }
        }
        zones.sort();
        for (zone, live_since) in zones {
            let live = self
                .kept
                .lock(tx, zone, live_since, &mut self.taken)
                .await?;
            self.hosts.insert(zone.to_owned(), live);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Statistics;

    #[test]
    fn statistics_are_due_at_1000_creates_then_at_each_fourfold_growth() {
        let mut statistics = Statistics::default();
        let due: Vec<usize> = (1..=70_000)
            .step_by(10)
            .filter(|_| statistics.due_after(10))
            .map(|n| n + 9)
            .collect();
        assert_eq!(due, vec![1000, 4000, 16_000, 64_000]);
    }
}
