//! Background work of the control plane, as tasks of one [`background::Driver`]: the
//! instance watchdog ([`Reconciler`]), the image importer ([`images::ImageImporter`]) and the
//! pruning of old records ([`Pruner`]).
//!
//! Host agents move instances through their transitions. The watchdog covers the cases where
//! no agent will: the host stopped reporting, or a transition is taking far longer than it
//! ever should. It takes no payload; each activation re-reads the world and acts idempotently,
//! so a missed or repeated one changes nothing. Before touching an instance it takes the
//! instance's lease in the database, so with several replicas each instance is handled by one
//! at a time, and every write is generation-guarded on top. An instance it fails on is logged
//! and left for the next activation; the others are still handled.
//!
//! What an activation guarantees:
//! - **Deletion always finishes.** An instance being deleted on a host that is gone, or whose
//!   host has not confirmed within the transition deadline, is removed; the host's orphan
//!   reaper destroys the VM if the host ever returns.
//! - **A dead host is visible.** Instances on a host silent for `host_timeout` go
//!   `REPAIRING`; an agent that comes back reports what survived. After `repair_grace` they
//!   are `TERMINATED` with a message and wait for the owner.
//! - **No transitional state is a trap.** An instance stuck in `PROVISIONING`, `STAGING`,
//!   `STOPPING` or `SUSPENDING` past `transition_timeout` is `TERMINATED` with a message
//!   naming the state it was stuck in.

pub mod background;
pub mod images;

use async_trait::async_trait;
use background::{BackgroundTask, TaskReport};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;
use stratus_core::Result;
use stratus_store::{InstanceRecord, Store};
use stratus_types::{DesiredState, InstanceStatus};

/// Deadlines and cadence of the background work.
#[derive(Clone, Debug)]
pub struct ReconcilerConfig {
    /// Time between activations of the instance watchdog.
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

/// The instance watchdog: deletions that finish without their host, silent hosts, deadlines.
pub struct Reconciler {
    store: Arc<dyn Store>,
    config: ReconcilerConfig,
    /// The lease owner name of this replica.
    owner: String,
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

fn now() -> DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(3)
}

impl Reconciler {
    pub fn new(store: Arc<dyn Store>, config: ReconcilerConfig, owner: String) -> Self {
        Self {
            store,
            config,
            owner,
        }
    }

    /// One look at the instances that need the control plane's attention; an instance that
    /// fails is reported and the others are still handled.
    pub async fn pass(&self) -> TaskReport {
        let mut report = TaskReport::default();
        let now = now();
        for (instance, decision) in match self.decisions(now).await {
            Ok(decisions) => decisions,
            Err(e) => {
                report.failed(format!("reading the instances: {e}"));
                return report;
            }
        } {
            let result = self.with_lease(&instance, decision, now).await;
            report.item(
                format!("instance {}/{}", instance.project, instance.id),
                result,
            );
        }
        report
    }

    /// The instances to act on, each with what to do.
    async fn decisions(&self, now: DateTime<Utc>) -> Result<Vec<(InstanceRecord, Outcome)>> {
        let mut decisions = Vec::new();
        let silent_since = now - chrono_duration(self.config.host_timeout);
        for host in self.store.list_hosts().await? {
            if host.last_seen_at >= silent_since {
                continue;
            }
            for instance in self.store.list_instances_on_host(host.id).await? {
                if let Some(outcome) = on_silent_host(&instance, &host.name, host.last_seen_at, now)
                {
                    decisions.push((instance, outcome));
                }
            }
        }
        let timeout = self.config.transition_timeout;
        let stuck = self
            .store
            .list_instances_in_status_since(
                &[
                    InstanceStatus::Provisioning,
                    InstanceStatus::Staging,
                    InstanceStatus::Stopping,
                    InstanceStatus::Suspending,
                ],
                now - chrono_duration(timeout),
            )
            .await?;
        for instance in stuck {
            if let Some(outcome) = past_deadline(&instance, timeout, now) {
                decisions.push((instance, outcome));
            }
        }
        let grace = self.config.repair_grace;
        let abandoned = self
            .store
            .list_instances_in_status_since(
                &[InstanceStatus::Repairing],
                now - chrono_duration(grace),
            )
            .await?;
        for instance in abandoned {
            let outcome = Outcome::Update {
                desired: DesiredState::Stopped,
                status: InstanceStatus::Terminated,
                message: format!(
                    "its host has been unreachable for more than {}s; start it again to recover",
                    grace.as_secs()
                ),
                record: instance.clone(),
            };
            decisions.push((instance, outcome));
        }
        Ok(decisions)
    }

    /// Claims the instance's lease, applies the decision, releases the lease; whether it did
    /// something.
    async fn with_lease(
        &self,
        instance: &InstanceRecord,
        outcome: Outcome,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let until = now + chrono_duration(self.config.lease);
        if !self
            .store
            .claim_instance_lease(instance.uid, &self.owner, now, until)
            .await?
        {
            return Ok(false);
        }
        let result = self.apply(outcome, now).await;
        self.store
            .release_instance_lease(instance.uid, &self.owner)
            .await?;
        result
    }

    async fn apply(&self, outcome: Outcome, now: DateTime<Utc>) -> Result<bool> {
        match outcome {
            Outcome::Finalize { record, why } => {
                let done = self.store.finalize_instance_deletion(record.uid).await?;
                if done {
                    tracing::warn!(id = %record.id, project = %record.project, why, "deletion finished without the host");
                }
                Ok(done)
            }
            Outcome::Update {
                mut record,
                desired,
                status,
                message,
            } => {
                record.desired = desired;
                record.set_status(status, Some(message.clone()), now);
                let done = self.store.update_instance_status(&record).await?.is_some();
                if done {
                    tracing::warn!(id = %record.id, project = %record.project, status = status.as_str(), status_message = message, "instance reconciled");
                }
                Ok(done)
            }
        }
    }
}

#[async_trait]
impl BackgroundTask for Reconciler {
    fn name(&self) -> &'static str {
        "instance-watchdog"
    }

    async fn activate(&self) -> TaskReport {
        self.pass().await
    }
}

/// Deletes audit events past their retention and revocations of tokens that have expired
/// anyway.
pub struct Pruner {
    store: Arc<dyn Store>,
    audit_retention: Duration,
}

impl Pruner {
    pub fn new(store: Arc<dyn Store>, audit_retention: Duration) -> Self {
        Self {
            store,
            audit_retention,
        }
    }
}

#[async_trait]
impl BackgroundTask for Pruner {
    fn name(&self) -> &'static str {
        "pruner"
    }

    async fn activate(&self) -> TaskReport {
        let mut report = TaskReport::default();
        let now = now();
        let before = now - chrono_duration(self.audit_retention);
        for (what, pruned) in [
            ("audit events", self.store.prune_audit_events(before).await),
            ("revocations", self.store.prune_revoked_tokens(now).await),
        ] {
            match pruned {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(n, what, "pruned old records");
                    report.acted += n;
                }
                Err(e) => report.failed(format!("pruning {what}: {e}")),
            }
        }
        report
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
            traceparent: None,
            request_id: None,
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
