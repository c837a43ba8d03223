//! Creates committed in groups.
//!
//! A create is durable when its transaction has committed, and on SQLite with
//! `synchronous = FULL` every commit is an fsync: one create per transaction caps a region at
//! the disk's fsyncs per second, however many clients ask at once. So creates queue for one
//! writer, which takes every create waiting when it is free and runs them in one transaction,
//! each inside a savepoint of its own: a create refused by a quota, by capacity or by a taken
//! id rolls back its savepoint alone and the others stand. One commit — one fsync — then makes
//! the whole group durable, and only then is any create of it acknowledged. A lone create waits
//! for nothing: the writer takes what is queued, even if that is one.
//!
//! Audit events, one per mutating request and stored before the request is answered, are
//! grouped the same way by a writer of their own: otherwise every create would still pay one
//! fsync of its own for its audit event.
//!
//! Placement reads its zone's hosts and what is placed on them once per group (not once per
//! create) and counts each create of the group onto its host as it goes, so a group of creates
//! costs one pass over the zone's usage, not one per create.

use crate::engine::{DbError, DbResult, Engine, Isolation, Tx, args, transaction};
use crate::rows::{host_usage, insert};
use crate::sql::{GPU_USAGE_BY_HOST, USAGE_BY_HOST, admit, count, instance_exists, records};
use crate::{Admission, AuditEventRecord, InstanceRecord};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;
use stratus_core::placement::{Demand, HostUsage, choose_host};
use stratus_core::{Error, Result, quota};
use tokio::sync::{mpsc, oneshot};

/// Creates taken into one transaction at most.
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

/// Starts the writer of `engine`'s creates; the returned sender queues them. The writer ends
/// when every sender is gone.
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

pub(crate) fn start(
    engine: Arc<dyn Engine>,
    log: Arc<crate::feed::ChangeLog>,
) -> mpsc::UnboundedSender<CreateJob> {
    let (sender, mut queue) = mpsc::unbounded_channel::<CreateJob>();
    tokio::spawn(async move {
        while let Some(jobs) = next_group(&mut queue).await {
            metrics::histogram!("stratus_create_group_size").record(jobs.len() as f64);
            let outcomes = create_group(engine.as_ref(), &jobs).await;
            let created: Vec<_> = outcomes
                .iter()
                .flatten()
                .map(|record| (crate::feed::ChangeKind::Created, record.clone()))
                .collect();
            for job in &jobs {
                log.forget(&job.instance);
            }
            log.committed(engine.as_ref(), created).await;
            for (job, outcome) in jobs.into_iter().zip(outcomes) {
                let _ = job.reply.send(outcome);
            }
        }
    });
    sender
}

/// An audit event waiting for its group.
pub(crate) struct AuditJob {
    pub event: AuditEventRecord,
    pub reply: oneshot::Sender<Result<()>>,
}

/// Starts the writer of `engine`'s audit events; the returned sender queues them.
pub(crate) fn start_audit(engine: Arc<dyn Engine>) -> mpsc::UnboundedSender<AuditJob> {
    let (sender, mut queue) = mpsc::unbounded_channel::<AuditJob>();
    tokio::spawn(async move {
        while let Some(jobs) = next_group(&mut queue).await {
            // Each event in a savepoint of its own: one refused row loses no other.
            let stored = transaction!(engine.as_ref(), Isolation::ReadCommitted, |tx| {
                let mut outcomes = Vec::with_capacity(jobs.len());
                for job in &jobs {
                    tx.execute("SAVEPOINT stratus_audit", vec![]).await?;
                    match crate::sql::insert_in(&mut tx, &job.event).await {
                        Ok(()) => outcomes.push(Ok(())),
                        Err(DbError::Retry) => return Err(DbError::Retry),
                        Err(refused) => {
                            tx.execute("ROLLBACK TO SAVEPOINT stratus_audit", vec![])
                                .await?;
                            outcomes.push(Err(match refused {
                                DbError::Unique => Error::internal("an audit event id was reused"),
                                other => other.into(),
                            }));
                        }
                    }
                    tx.execute("RELEASE SAVEPOINT stratus_audit", vec![])
                        .await?;
                }
                outcomes
            });
            let outcomes = stored.unwrap_or_else(|failed| each_failed(jobs.len(), failed));
            for (job, outcome) in jobs.into_iter().zip(outcomes) {
                let _ = job.reply.send(outcome);
            }
        }
    });
    sender
}

/// The outcomes of a group whose transaction failed as a whole: the same error for each.
fn each_failed<T>(jobs: usize, failed: DbError) -> Vec<Result<T>> {
    let failed: Error = failed.into();
    (0..jobs).map(|_| Err(failed.clone())).collect()
}

/// Runs `jobs` in one transaction; one outcome per job, in order.
async fn create_group(engine: &dyn Engine, jobs: &[CreateJob]) -> Vec<Result<InstanceRecord>> {
    let outcomes = transaction!(engine, Isolation::ReadCommitted, |tx| {
        let mut zones: HashMap<String, Vec<HostUsage>> = HashMap::new();
        let mut outcomes = Vec::with_capacity(jobs.len());
        for job in jobs {
            // Outside the create's savepoint: rolling one back must not release the host rows'
            // locks the group's placement relies on.
            if !zones.contains_key(&job.instance.zone) {
                let usage = zone_usage(&mut tx, engine, &job.instance.zone, job.live_since).await?;
                zones.insert(job.instance.zone.clone(), usage);
            }
            tx.execute("SAVEPOINT stratus_create", vec![]).await?;
            let one = create_one(&mut tx, engine, job, &mut zones);
            match tracing::Instrument::instrument(one, job.span.clone()).await {
                Ok(created) => {
                    tx.execute("RELEASE SAVEPOINT stratus_create", vec![])
                        .await?;
                    outcomes.push(Ok(created));
                }
                Err(DbError::Retry) => return Err(DbError::Retry),
                Err(refused) => {
                    tx.execute("ROLLBACK TO SAVEPOINT stratus_create", vec![])
                        .await?;
                    tx.execute("RELEASE SAVEPOINT stratus_create", vec![])
                        .await?;
                    outcomes.push(Err(match refused {
                        DbError::Unique => instance_exists(&job.instance),
                        other => other.into(),
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
) -> DbResult<InstanceRecord> {
    let instance = &job.instance;
    // Creates of one organization queue on its row, so each sees what the previous one took
    // of its quotas; creates in one zone queue on its host rows (PostgreSQL), so each group
    // sees what the previous one placed.
    let admission = Admission {
        organization: &job.organization,
        defaults: &job.defaults,
    };
    admit(tx, engine, &admission, &instance.amounts()).await?;
    let taken = count(
        tx,
        "SELECT COUNT(*) AS n FROM instances WHERE project = ? AND id = ?",
        args![&instance.project, &instance.id],
    )
    .await?;
    if taken > 0 {
        return Err(instance_exists(instance).into());
    }
    let usage = &zones[&instance.zone];
    let mut placed = instance.clone();
    let host = choose_host(&instance.zone, &job.demand, usage)?;
    placed.host_id = Some(host);
    placed.spec.nics = crate::addressing::assign_nics(tx, engine, &placed).await?;
    let (sql, args) = insert(&placed);
    let rows = tx.query(&format!("{sql} RETURNING *"), args).await?;
    let created = records::<InstanceRecord>(&rows)?
        .pop()
        .ok_or_else(|| Error::internal("creating an instance returned no row"))?;
    // The group's later creates see this one on its host.
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

/// The live, schedulable hosts of `zone` (locked where the database locks rows) with what is
/// placed on them.
async fn zone_usage(
    tx: &mut Box<dyn Tx>,
    engine: &dyn Engine,
    zone: &str,
    live_since: DateTime<Utc>,
) -> DbResult<Vec<HostUsage>> {
    let hosts_sql = format!(
        "SELECT * FROM hosts WHERE zone = ? AND last_seen_at >= ? \
         AND scheduling = 'SCHEDULABLE' ORDER BY id{}",
        engine.for_update()
    );
    let hosts = records(
        &tx.query(&hosts_sql, args![zone, live_since.timestamp_millis()])
            .await?,
    )?;
    let sums = tx.query(USAGE_BY_HOST, vec![]).await?;
    let gpu_sums = tx.query(GPU_USAGE_BY_HOST, vec![]).await?;
    Ok(host_usage(&hosts, &sums, &gpu_sums)?)
}
