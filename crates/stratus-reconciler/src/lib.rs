//! Background work of the control plane: the guarantees that do not depend on any agent.
//!
//! Host agents move instances through their transitions. This reconciler covers the cases
//! where no agent will: the host stopped reporting, or a transition is taking far longer than
//! it ever should. It takes no payload; each pass re-reads the world and acts idempotently,
//! so a missed or repeated pass changes nothing. Before touching an instance it takes the
//! instance's lease in the database, so with several replicas each instance is handled by one
//! at a time, and every write is generation-guarded on top.
//!
//! What a pass guarantees:
//! - **Deletion always finishes.** An instance being deleted on a host that is gone, or whose
//!   host has not confirmed within the transition deadline, is removed; the host's orphan
//!   reaper destroys the VM if the host ever returns.
//! - **A dead host is visible.** Instances on a host silent for `host_timeout` go
//!   `REPAIRING`; an agent that comes back reports what survived. After `repair_grace` they
//!   are `TERMINATED` with a message and wait for the owner.
//! - **No transitional state is a trap.** An instance stuck in `PROVISIONING`, `STAGING`,
//!   `STOPPING` or `SUSPENDING` past `transition_timeout` is `TERMINATED` with a message
//!   naming the state it was stuck in.

pub mod images;

use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;
use stratus_core::Result;
use stratus_store::{Changes, InstanceRecord, Store};
use stratus_types::{DesiredState, InstanceStatus};
use tokio_util::sync::CancellationToken;

/// Deadlines and cadence of the reconciler.
#[derive(Clone, Debug)]
pub struct ReconcilerConfig {
    /// Time between passes.
    pub interval: Duration,
    /// A host silent for this long is considered gone.
    pub host_timeout: Duration,
    /// Longest time an instance may stay in one transitional state.
    pub transition_timeout: Duration,
    /// How long instances stay REPAIRING before they are given up as TERMINATED.
    pub repair_grace: Duration,
    /// Length of an instance lease taken for a pass.
    pub lease: Duration,
    /// How long audit events are kept.
    pub audit_retention: Duration,
    /// Time between prunings of old audit events and expired revocations.
    pub prune_every: Duration,
}

impl Default for ReconcilerConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(2),
            host_timeout: Duration::from_secs(15),
            transition_timeout: Duration::from_secs(600),
            repair_grace: Duration::from_secs(600),
            lease: Duration::from_secs(30),
            audit_retention: Duration::from_secs(90 * 24 * 3600),
            prune_every: Duration::from_secs(60),
        }
    }
}

/// The control plane's reconciler.
pub struct Reconciler {
    store: Arc<dyn Store>,
    changes: Changes,
    config: ReconcilerConfig,
    /// The lease owner name of this replica.
    owner: String,
    /// When old records were last pruned.
    pruned_at: std::sync::Mutex<Option<std::time::Instant>>,
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

fn now() -> DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(3)
}

impl Reconciler {
    pub fn new(
        store: Arc<dyn Store>,
        changes: Changes,
        config: ReconcilerConfig,
        owner: String,
    ) -> Self {
        Self {
            store,
            changes,
            config,
            owner,
            pruned_at: std::sync::Mutex::new(None),
        }
    }

    /// Runs passes until `cancel` fires.
    pub async fn run(self, cancel: CancellationToken) {
        loop {
            if let Err(e) = self.pass().await {
                tracing::warn!(error = %e, "reconciler pass failed");
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(self.config.interval) => {}
            }
        }
    }

    /// One pass over the instances that need the control plane's attention (and, now and
    /// then, the pruning of audit events past their retention and of expired revocations).
    pub async fn pass(&self) -> Result<()> {
        let now = now();
        if self.prune_due() {
            let before = now - chrono_duration(self.config.audit_retention);
            let events = self.store.prune_audit_events(before).await?;
            let revocations = self.store.prune_revoked_tokens(now).await?;
            if events + revocations > 0 {
                tracing::info!(
                    events,
                    revocations,
                    "pruned old audit events and expired revocations"
                );
            }
        }
        let silent_since = now - chrono_duration(self.config.host_timeout);
        for host in self.store.list_hosts().await? {
            if host.last_seen_at >= silent_since {
                continue;
            }
            for instance in self.store.list_instances_on_host(host.id).await? {
                self.with_lease(&instance, |i| {
                    on_silent_host(i, &host.name, host.last_seen_at, now)
                })
                .await?;
            }
        }
        let stuck = self
            .store
            .list_instances_in_status_since(
                &[
                    InstanceStatus::Provisioning,
                    InstanceStatus::Staging,
                    InstanceStatus::Stopping,
                    InstanceStatus::Suspending,
                ],
                now - chrono_duration(self.config.transition_timeout),
            )
            .await?;
        for instance in stuck {
            let timeout = self.config.transition_timeout;
            self.with_lease(&instance, |i| past_deadline(i, timeout, now))
                .await?;
        }
        let abandoned = self
            .store
            .list_instances_in_status_since(
                &[InstanceStatus::Repairing],
                now - chrono_duration(self.config.repair_grace),
            )
            .await?;
        for instance in abandoned {
            let grace = self.config.repair_grace;
            self.with_lease(&instance, |i| {
                Some(Outcome::Update {
                    desired: DesiredState::Stopped,
                    status: InstanceStatus::Terminated,
                    message: format!(
                        "its host has been unreachable for more than {}s; start it again to recover",
                        grace.as_secs()
                    ),
                    record: i.clone(),
                })
            })
            .await?;
        }
        Ok(())
    }

    fn prune_due(&self) -> bool {
        let Ok(mut last) = self.pruned_at.lock() else {
            return false;
        };
        let due = last.is_none_or(|at| at.elapsed() >= self.config.prune_every);
        if due {
            *last = Some(std::time::Instant::now());
        }
        due
    }

    /// Claims the instance's lease, applies the decision, releases the lease.
    async fn with_lease(
        &self,
        instance: &InstanceRecord,
        decide: impl FnOnce(&InstanceRecord) -> Option<Outcome>,
    ) -> Result<()> {
        let Some(outcome) = decide(instance) else {
            return Ok(());
        };
        let now = now();
        let until = now + chrono_duration(self.config.lease);
        if !self
            .store
            .claim_instance_lease(instance.uid, &self.owner, now, until)
            .await?
        {
            return Ok(());
        }
        let result = self.apply(outcome, now).await;
        self.store
            .release_instance_lease(instance.uid, &self.owner)
            .await?;
        result
    }

    async fn apply(&self, outcome: Outcome, now: DateTime<Utc>) -> Result<()> {
        match outcome {
            Outcome::Finalize { record, why } => {
                if self.store.finalize_instance_deletion(record.uid).await? {
                    tracing::warn!(id = %record.id, project = %record.project, why, "deletion finished without the host");
                    self.changes.bump();
                }
            }
            Outcome::Update {
                mut record,
                desired,
                status,
                message,
            } => {
                record.desired = desired;
                record.set_status(status, Some(message.clone()), now);
                if self.store.update_instance(&record).await?.is_some() {
                    tracing::warn!(id = %record.id, project = %record.project, status = status.as_str(), status_message = message, "instance reconciled");
                    self.changes.bump();
                }
            }
        }
        Ok(())
    }
}

/// What the reconciler decided for one instance.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// Remove the row of an instance whose deletion cannot be confirmed by its host.
    Finalize {
        record: InstanceRecord,
        why: &'static str,
    },
    /// Move the instance to `status` with `message` (a generation-guarded write).
    Update {
        record: InstanceRecord,
        desired: DesiredState,
        status: InstanceStatus,
        message: String,
    },
}

fn on_silent_host(
    i: &InstanceRecord,
    host: &str,
    last_seen: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<Outcome> {
    let silent = (now - last_seen).num_seconds();
    match (i.desired, i.status) {
        (DesiredState::Deleted, _) => Some(Outcome::Finalize {
            record: i.clone(),
            why: "its host stopped reporting",
        }),
        (_, InstanceStatus::Repairing | InstanceStatus::Terminated) => None,
        (DesiredState::Stopped, _) => Some(Outcome::Update {
            record: i.clone(),
            desired: DesiredState::Stopped,
            status: InstanceStatus::Terminated,
            message: format!("stopped; its host {host} has not reported for {silent}s"),
        }),
        (desired, _) => Some(Outcome::Update {
            record: i.clone(),
            desired,
            status: InstanceStatus::Repairing,
            message: format!("its host {host} has not reported for {silent}s"),
        }),
    }
}

fn past_deadline(i: &InstanceRecord, timeout: Duration, now: DateTime<Utc>) -> Option<Outcome> {
    if now - i.status_changed_at < chrono_duration(timeout) || !i.status.is_transitional() {
        return None;
    }
    if i.desired == DesiredState::Deleted {
        return Some(Outcome::Finalize {
            record: i.clone(),
            why: "its host did not confirm within the deadline",
        });
    }
    Some(Outcome::Update {
        record: i.clone(),
        desired: DesiredState::Stopped,
        status: InstanceStatus::Terminated,
        message: format!(
            "gave up after {}s in {}{}",
            timeout.as_secs(),
            i.status.as_str(),
            i.status_message
                .as_deref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratus_store::InstanceSpec;
    use uuid::Uuid;

    fn instance(desired: DesiredState, status: InstanceStatus, age_s: i64) -> InstanceRecord {
        let now = Utc::now();
        InstanceRecord {
            uid: Uuid::new_v4(),
            project: "p".into(),
            id: "i".into(),
            zone: "z".into(),
            host_id: Some(Uuid::new_v4()),
            spec: InstanceSpec {
                display_name: String::new(),
                description: String::new(),
                labels: Default::default(),
                instance_type: String::new(),
                metadata: vec![],
                hostname: "i".into(),
                disks: vec![],
                nics: vec![],
                gpus: vec![],
            },
            vcpus: 1,
            memory_mb: 1,
            gpu_type: None,
            gpu_count: 0,
            desired,
            status,
            status_message: Some("starting".into()),
            status_changed_at: now - chrono::Duration::seconds(age_s),
            generation: 1,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn deletions_on_silent_hosts_finish() {
        let i = instance(DesiredState::Deleted, InstanceStatus::Stopping, 1);
        let o = on_silent_host(&i, "h", Utc::now(), Utc::now()).unwrap();
        assert!(matches!(o, Outcome::Finalize { .. }));
    }

    #[test]
    fn running_instances_on_silent_hosts_go_repairing() {
        let i = instance(DesiredState::Running, InstanceStatus::Running, 1);
        let seen = Utc::now() - chrono::Duration::seconds(20);
        let Some(Outcome::Update {
            status, message, ..
        }) = on_silent_host(&i, "h1", seen, Utc::now())
        else {
            panic!("want an update")
        };
        assert_eq!(status, InstanceStatus::Repairing);
        assert!(
            message.contains("h1") && message.contains("20s"),
            "{message}"
        );
        let settled = instance(DesiredState::Stopped, InstanceStatus::Terminated, 1);
        assert_eq!(on_silent_host(&settled, "h", seen, Utc::now()), None);
    }

    #[test]
    fn stuck_transitions_end_terminated_with_the_reason() {
        let i = instance(DesiredState::Running, InstanceStatus::Staging, 700);
        let Some(Outcome::Update {
            status,
            desired,
            message,
            ..
        }) = past_deadline(&i, Duration::from_secs(600), Utc::now())
        else {
            panic!("want an update")
        };
        assert_eq!(
            (status, desired),
            (InstanceStatus::Terminated, DesiredState::Stopped)
        );
        assert!(
            message.contains("STAGING") && message.contains("starting"),
            "{message}"
        );
        let fresh = instance(DesiredState::Running, InstanceStatus::Staging, 10);
        assert_eq!(
            past_deadline(&fresh, Duration::from_secs(600), Utc::now()),
            None
        );
        let deleting = instance(DesiredState::Deleted, InstanceStatus::Stopping, 700);
        assert!(matches!(
            past_deadline(&deleting, Duration::from_secs(600), Utc::now()),
            Some(Outcome::Finalize { .. })
        ));
    }
}
