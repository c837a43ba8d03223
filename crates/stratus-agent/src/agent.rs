//! The agent's main loop: poll assignments, decide a step per instance, run steps, report.

use crate::DriverError;
use crate::driver::Driver;
use crate::plan::{Observation, Step, next_step};
use async_trait::async_trait;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stratus_types::agent::{
    Assignment, AssignmentBatch, AssignmentCursor, HostImageInfo, HostRegistration, ReportOutcome,
    Reported, ReportedRecord, StatusReport,
};
use stratus_types::{InstanceStatus, MetadataItem};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

/// A failure to reach or to be understood by the control plane.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ControlPlaneError(pub String);

/// How an agent reaches the control plane: in-process in `serve`, over HTTP elsewhere.
#[async_trait]
pub trait ControlPlane: Send + Sync + 'static {
    /// Registers (or re-registers) the host; returns its id.
    async fn register(&self, host: &HostRegistration) -> Result<Uuid, ControlPlaneError>;
    /// The instances placed on `host` (all, or those written after `since`: see
    /// [`AssignmentBatch`]). Returns at once when anything changed after `since`, otherwise
    /// waits up to `wait` for a change. Also tells the control plane the host is alive.
    async fn assignments(
        &self,
        host: Uuid,
        since: AssignmentCursor,
        wait: Duration,
    ) -> Result<AssignmentBatch, ControlPlaneError>;
    async fn report(
        &self,
        host: Uuid,
        report: &StatusReport,
    ) -> Result<Reported, ControlPlaneError>;
    /// The VM of a deleted instance is gone from the host: the deletion can finish.
    async fn report_destroyed(&self, host: Uuid, uid: Uuid) -> Result<(), ControlPlaneError>;
    /// Appends serial console bytes at offset `at`; returns the log's end offset.
    async fn append_serial(
        &self,
        host: Uuid,
        uid: Uuid,
        at: u64,
        bytes: &[u8],
    ) -> Result<u64, ControlPlaneError>;
    /// The metadata of an instance placed on this host (assignments carry only its digest).
    async fn instance_metadata(
        &self,
        host: Uuid,
        uid: Uuid,
    ) -> Result<Vec<MetadataItem>, ControlPlaneError>;
    /// Format, size and checksum of a READY image.
    async fn image(&self, id: &str) -> Result<HostImageInfo, ControlPlaneError>;
    /// Writes the image's file to `dest`.
    async fn download_image(
        &self,
        id: &str,
        dest: &std::path::Path,
    ) -> Result<(), ControlPlaneError>;
}

/// Tuning of the agent loop.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// Longest wait for a change before polling again.
    pub poll_wait: Duration,
    /// How long a VM that no instance claims is left alone before it is destroyed.
    pub orphan_grace: Duration,
    /// Attempts of a failing start step before the instance is given up as TERMINATED.
    pub max_attempts: u32,
    /// Pause after a failed step before it is tried again.
    pub retry_backoff: Duration,
    /// How often serial console output is copied to the control plane.
    pub serial_sync_interval: Duration,
    /// How often every VM is compared with its instance even when neither changed (a guest
    /// that died, a step that was lost).
    pub recheck_every: Duration,
    /// How often the whole list of the host's instances is asked for instead of what changed:
    /// each host at a period of its own between half and one and a half times this, so the
    /// agents of a region started together do not all ask for their whole lists in one second.
    pub relist_every: Duration,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            poll_wait: Duration::from_secs(2),
            orphan_grace: Duration::from_secs(60),
            max_attempts: 3,
            retry_backoff: Duration::from_millis(500),
            serial_sync_interval: Duration::from_millis(500),
            recheck_every: Duration::from_secs(10),
            relist_every: Duration::from_secs(60),
        }
    }
}

/// A host agent.
pub struct Agent {
    control_plane: Arc<dyn ControlPlane>,
    driver: Arc<dyn Driver>,
    registration: HostRegistration,
    config: AgentConfig,
}

struct Shared {
    control_plane: Arc<dyn ControlPlane>,
    driver: Arc<dyn Driver>,
    config: AgentConfig,
    host: Uuid,
    in_flight: Mutex<HashSet<Uuid>>,
    failures: Mutex<HashMap<Uuid, u32>>,
    step_done: Notify,
    /// Instances whose step ended since the loop last looked: they are compared again.
    finished: Mutex<HashSet<Uuid>>,
    /// The instances placed on this host at the last poll, whose consoles are uploaded.
    placed: Mutex<HashSet<Uuid>>,
}

impl Agent {
    pub fn new(
        control_plane: Arc<dyn ControlPlane>,
        driver: Arc<dyn Driver>,
        registration: HostRegistration,
        config: AgentConfig,
    ) -> Self {
        Self {
            control_plane,
            driver,
            registration,
            config,
        }
    }

    /// Runs until `cancel` fires; steps under way are allowed to finish.
    pub async fn run(self, cancel: CancellationToken) {
        let host = loop {
            match self.control_plane.register(&self.registration).await {
                Ok(id) => break id,
                Err(e) => {
                    tracing::warn!(error = %e, "registering the host failed; retrying");
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        };
        tracing::info!(%host, name = %self.registration.name, driver = self.driver.name(), "host registered");
        let shared = Arc::new(Shared {
            control_plane: self.control_plane,
            driver: self.driver,
            config: self.config,
            host,
            in_flight: Mutex::new(HashSet::new()),
            failures: Mutex::new(HashMap::new()),
            step_done: Notify::new(),
            finished: Mutex::new(HashSet::new()),
            placed: Mutex::new(HashSet::new()),
        });
        let tracker = TaskTracker::new();
        // Consoles are copied on a clock of their own: a poll loop held up by a slow
        // hypervisor never leaves a guest's console unseen.
        tracker.spawn(copy_consoles(shared.clone(), cancel.clone()));
        let mut orphans: HashMap<Uuid, Instant> = HashMap::new();
        let mut metadata = MetadataCache::default();
        // What this host runs, kept from the polls: whole lists, and what changed in between.
        let mut known: HashMap<Uuid, Assignment> = HashMap::new();
        let mut unfilled: HashMap<Uuid, Assignment> = HashMap::new();
        let mut since = AssignmentCursor::default();
        let mut listed = Instant::now();
        let mut checked = Instant::now();
        let mut wait = shared.config.poll_wait;
        let spread = (host.as_u128() % 1024) as f64 / 1024.0;
        let relist_every = shared.config.relist_every.mul_f64(0.5 + spread);
        loop {
            if listed.elapsed() >= relist_every {
                since = AssignmentCursor::default();
            }
            let polled = tokio::select! {
                _ = cancel.cancelled() => break,
                _ = shared.step_done.notified() => { wait = Duration::ZERO; continue; }
                polled = shared.control_plane.assignments(host, since, wait) => polled,
            };
            wait = shared.config.poll_wait;
            let batch = match polled {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::warn!(error = %e, "polling assignments failed");
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                    continue;
                }
            };
            since = AssignmentCursor {
                epoch: batch.epoch,
                revision: batch.revision,
            };
            if let Err(e) = shared.driver.observe_overlay(&batch.overlay).await {
                tracing::warn!(error = %e, "programming the overlay failed");
            }
            let complete = batch.complete;
            // Instances whose metadata could not be fetched before are tried again; the poll's
            // own version of one wins.
            let mut arrived: HashMap<Uuid, Assignment> = std::mem::take(&mut unfilled);
            if complete {
                listed = Instant::now();
                let here: HashSet<Uuid> = batch.assignments.iter().map(|a| a.spec.uid).collect();
                known.retain(|uid, _| here.contains(uid));
                arrived.retain(|uid, _| here.contains(uid));
            }
            for uid in &batch.removed {
                known.remove(uid);
                arrived.remove(uid);
            }
            arrived.extend(batch.assignments.into_iter().map(|a| (a.spec.uid, a)));
            let arrived_uids: Vec<Uuid> = arrived.keys().copied().collect();
            let (written, pending) = metadata
                .fill(&shared, arrived.into_values().collect())
                .await;
            unfilled = pending.into_iter().map(|a| (a.spec.uid, a)).collect();
            let mut compare: HashSet<Uuid> = written.iter().map(|a| a.spec.uid).collect();
            known.extend(written.into_iter().map(|a| (a.spec.uid, a)));
            // What is placed here changes by the poll's difference, not by a pass over all; an
            // instance whose metadata is still to come is placed here all the same.
            {
                let mut placed = shared.placed.lock().unwrap();
                if complete {
                    *placed = known.keys().copied().collect();
                    placed.extend(unfilled.keys().copied());
                    metadata.keep_only(&placed);
                } else {
                    for uid in &batch.removed {
                        placed.remove(uid);
                        metadata.forget(uid);
                    }
                    placed.extend(arrived_uids);
                }
            }
            compare.extend(shared.finished.lock().unwrap().drain());
            let recheck = complete || checked.elapsed() >= shared.config.recheck_every;
            if recheck {
                checked = Instant::now();
                compare.extend(known.keys().copied());
            }
            for uid in &compare {
                if let Some(assignment) = known.get(uid) {
                    start_step_if_needed(&shared, &tracker, assignment).await;
                }
            }
            if recheck {
                let placed = shared.placed.lock().unwrap().clone();
                reap_orphans(&shared, &placed, &mut orphans).await;
            }
        }
        tracker.close();
        tracker.wait().await;
    }
}

/// The metadata of the host's instances, fetched when an assignment's digest says it changed,
/// since polls leave it out.
#[derive(Default)]
struct MetadataCache {
    by_instance: HashMap<Uuid, (String, Vec<MetadataItem>)>,
}

impl MetadataCache {
    /// `assignments` with their metadata filled in, and apart those whose metadata cannot be
    /// fetched now (the loop tries them again).
    async fn fill(
        &mut self,
        shared: &Shared,
        assignments: Vec<Assignment>,
    ) -> (Vec<Assignment>, Vec<Assignment>) {
        let mut filled = Vec::with_capacity(assignments.len());
        let mut pending = Vec::new();
        for mut a in assignments {
            let uid = a.spec.uid;
            let current = self
                .by_instance
                .get(&uid)
                .is_some_and(|(digest, _)| *digest == a.metadata_digest);
            if !current {
                match shared
                    .control_plane
                    .instance_metadata(shared.host, uid)
                    .await
                {
                    Ok(items) => {
                        self.by_instance
                            .insert(uid, (a.metadata_digest.clone(), items));
                    }
                    Err(e) => {
                        tracing::warn!(%uid, error = %e, "fetching an instance's metadata failed");
                        pending.push(a);
                        continue;
                    }
                }
            }
            a.spec.metadata = self.by_instance[&uid].1.clone();
            filled.push(a);
        }
        (filled, pending)
    }

    /// Forgets the metadata of instances no longer `placed` here.
    fn keep_only(&mut self, placed: &HashSet<Uuid>) {
        self.by_instance.retain(|uid, _| placed.contains(uid));
    }

    /// Forgets the metadata of an instance that left this host.
    fn forget(&mut self, uid: &Uuid) {
        self.by_instance.remove(uid);
    }
}

async fn start_step_if_needed(shared: &Arc<Shared>, tracker: &TaskTracker, a: &Assignment) {
    let uid = a.spec.uid;
    if shared.in_flight.lock().unwrap().contains(&uid) {
        return;
    }
    let Some(mut step) = step_for(shared, a).await else {
        return;
    };
    shared.in_flight.lock().unwrap().insert(uid);
    let shared = shared.clone();
    let mut assignment = a.clone();
    tracker.spawn(async move {
        // A report accepted names the record it made: the next step (a boot after the disks
        // are ready) starts from it at once, without waiting for the next poll; a few steps at
        // most, so that a VM that does not do as told goes back to the poll's pace.
        for _ in 0..STEPS_WITHOUT_POLLING {
            let span = step_span(&assignment, &step);
            let Some(now) = run_step(&shared, &assignment, step).instrument(span).await else {
                break;
            };
            assignment.generation = now.generation;
            assignment.desired = now.desired;
            assignment.status = now.status;
            match step_for(&shared, &assignment).await {
                Some(next) => step = next,
                None => break,
            }
        }
        shared.in_flight.lock().unwrap().remove(&uid);
        shared.finished.lock().unwrap().insert(uid);
        shared.step_done.notify_one();
    });
}

/// How many steps of one instance follow each other on accepted reports before the agent
/// waits for its next poll (a create takes two: disks, then the boot).
const STEPS_WITHOUT_POLLING: usize = 4;

/// The step `a` needs now, from what its VM is doing (`None`: nothing, or the VM could not be
/// inspected); also tells the driver what the guest is served now.
async fn step_for(shared: &Shared, a: &Assignment) -> Option<Step> {
    let uid = a.spec.uid;
    let vm = match shared.driver.inspect(uid).await {
        Ok(vm) => vm,
        Err(e) => {
            tracing::warn!(%uid, error = %e, "inspecting a VM failed");
            return None;
        }
    };
    if vm.is_some()
        && let Err(e) = shared.driver.observe(&a.spec).await
    {
        tracing::warn!(%uid, error = %e, "updating what the guest is served failed");
    }
    match next_step(a.desired, a.status, vm.as_ref()) {
        Step::Nothing => None,
        step => Some(step),
    }
}

/// Performs one step and reports its outcome; failed start steps are retried a bounded number
/// of times, then the instance is reported TERMINATED with the error. Returns the record the
/// report made, when it was accepted.
async fn run_step(shared: &Shared, a: &Assignment, step: Step) -> Option<ReportedRecord> {
    let uid = a.spec.uid;
    let driver = &shared.driver;
    tracing::debug!(%uid, id = %a.spec.id, status = ?a.status, ?step, "step");
    let started = Instant::now();
    let result = match &step {
        Step::Nothing => return None,
        Step::Prepare => driver
            .prepare(&a.spec)
            .await
            .map(|()| Some(observed(InstanceStatus::Staging, Some("starting the VM")))),
        Step::Boot => async {
            if driver.inspect(uid).await?.is_none() {
                driver.prepare(&a.spec).await?;
            }
            driver.boot(uid).await
        }
        .await
        .map(|()| Some(observed(InstanceStatus::Running, None))),
        Step::Reset => driver
            .reset(uid)
            .await
            .map(|()| Some(observed(InstanceStatus::Running, None))),
        Step::Resume => driver
            .resume(uid)
            .await
            .map(|()| Some(observed(InstanceStatus::Running, None))),
        Step::Pause => driver
            .pause(uid)
            .await
            .map(|()| Some(observed(InstanceStatus::Suspended, None))),
        Step::PowerOff { then } => driver.power_off(uid).await.map(|how| {
            then.clone().map(|mut observation| {
                if let Some(how) = how {
                    observation.message = Some(match observation.message {
                        Some(message) => format!("{message}; {how}"),
                        None => how,
                    });
                }
                observation
            })
        }),
        Step::Destroy => match driver.destroy(uid).await {
            Ok(()) => {
                if let Err(e) = shared
                    .control_plane
                    .report_destroyed(shared.host, uid)
                    .await
                {
                    tracing::warn!(%uid, error = %e, "reporting a destroyed VM failed");
                }
                return None;
            }
            Err(e) => Err(e),
        },
        Step::Report(observation) => Ok(Some(observation.clone())),
    };
    record_step(&step, started.elapsed(), &result);
    let observation = match result {
        Ok(observation) => {
            shared.failures.lock().unwrap().remove(&uid);
            observation
        }
        Err(e) => {
            let attempts = {
                let mut failures = shared.failures.lock().unwrap();
                let n = failures.entry(uid).or_insert(0);
                *n += 1;
                *n
            };
            tracing::warn!(%uid, id = %a.spec.id, ?step, attempts, error = %e, "step failed");
            // A failure that would only happen again ends the instance at once; one that may
            // pass gets `max_attempts` tries. Stops and deletions are never given up.
            let gives_up = (e.is_permanent() || attempts >= shared.config.max_attempts)
                && matches!(
                    step,
                    Step::Prepare | Step::Boot | Step::Reset | Step::Resume | Step::Pause
                );
            if !gives_up {
                tokio::time::sleep(shared.config.retry_backoff * attempts).await;
                return None;
            }
            shared.failures.lock().unwrap().remove(&uid);
            let _ = driver.power_off(uid).await;
            Some(Observation {
                status: InstanceStatus::Terminated,
                message: Some(if e.is_permanent() {
                    format!("{} failed: {e}", verb(&step))
                } else {
                    format!("{} failed after {attempts} attempts: {e}", verb(&step))
                }),
                intent_stopped: true,
            })
        }
    };
    let observation = observation?;
    let report = StatusReport {
        uid,
        generation: a.generation,
        status: observation.status,
        message: observation.message,
        intent_stopped: observation.intent_stopped,
    };
    match shared.control_plane.report(shared.host, &report).await {
        Ok(Reported {
            outcome: ReportOutcome::Accepted,
            now,
        }) => now,
        Ok(Reported {
            outcome: ReportOutcome::Stale,
            ..
        }) => {
            tracing::debug!(%uid, "report was stale; the record changed meanwhile");
            None
        }
        Err(e) => {
            tracing::warn!(%uid, error = %e, "reporting a status failed");
            None
        }
    }
}

fn observed(status: InstanceStatus, message: Option<&str>) -> Observation {
    Observation {
        status,
        message: message.map(str::to_owned),
        intent_stopped: false,
    }
}

/// The span of one driver step: named for the step, carrying the instance and the id of the
/// request that asked for the change, and a child of that request's trace when it has one.
fn step_span(a: &Assignment, step: &Step) -> tracing::Span {
    let span = tracing::info_span!(
        "driver step",
        otel.name = %format!("driver.{}", step_name(step)),
        step = step_name(step),
        instance = %a.spec.uid,
        id = %a.spec.id,
        project = %a.spec.project,
        request_id = a.request_id.as_deref().unwrap_or(""),
    );
    if let Some(parent) = a.traceparent.as_deref().and_then(remote_parent) {
        let _ = span.set_parent(parent);
    }
    span
}

/// The context of a W3C `traceparent` (`00-{trace}-{span}-{flags}`), if it is one.
fn remote_parent(traceparent: &str) -> Option<opentelemetry::Context> {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    let mut parts = traceparent.split('-');
    let (Some("00"), Some(trace), Some(span), Some(flags), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let context = SpanContext::new(
        TraceId::from_hex(trace).ok()?,
        SpanId::from_hex(span).ok()?,
        TraceFlags::new(u8::from_str_radix(flags, 16).ok()?),
        true,
        TraceState::default(),
    );
    context
        .is_valid()
        .then(|| opentelemetry::Context::new().with_remote_span_context(context))
}

/// The step's name in metrics.
fn step_name(step: &Step) -> &'static str {
    match step {
        Step::Nothing => "nothing",
        Step::Prepare => "prepare",
        Step::Boot => "boot",
        Step::Reset => "reset",
        Step::Resume => "resume",
        Step::Pause => "pause",
        Step::PowerOff { .. } => "power_off",
        Step::Destroy => "destroy",
        Step::Report(_) => "report",
    }
}

/// Times a driver step, counts the VMs it started and the driver errors it met by kind.
fn record_step<T>(step: &Step, took: Duration, result: &Result<T, DriverError>) {
    let name = step_name(step);
    let outcome = match result {
        Ok(_) => "ok",
        Err(DriverError::NotFound(_)) => "not_found",
        Err(DriverError::Transient(_)) => "transient",
        Err(DriverError::Permanent(_)) => "permanent",
    };
    metrics::histogram!("stratus_agent_step_duration_seconds", "step" => name, "outcome" => outcome)
        .record(took.as_secs_f64());
    if result.is_err() {
        metrics::counter!("stratus_agent_driver_errors_total", "step" => name, "error" => outcome)
            .increment(1);
    } else if *step == Step::Boot {
        metrics::counter!("stratus_agent_vm_starts_total").increment(1);
    }
}

fn verb(step: &Step) -> &'static str {
    match step {
        Step::Prepare => "preparing the disks",
        Step::Boot => "booting",
        Step::Reset => "rebooting",
        Step::Resume => "resuming",
        Step::Pause => "suspending",
        _ => "the step",
    }
}

/// Destroys VMs that no instance on this host claims, once they have been unclaimed for the
/// grace period (a VM can briefly exist before its record reaches this agent).
async fn reap_orphans(
    shared: &Shared,
    claimed: &HashSet<Uuid>,
    orphans: &mut HashMap<Uuid, Instant>,
) {
    let vms = match shared.driver.list().await {
        Ok(vms) => vms,
        Err(e) => {
            tracing::warn!(error = %e, "listing VMs failed");
            return;
        }
    };
    orphans.retain(|uid, _| vms.contains(uid) && !claimed.contains(uid));
    for uid in vms.into_iter().filter(|uid| !claimed.contains(uid)) {
        let since = *orphans.entry(uid).or_insert_with(Instant::now);
        if since.elapsed() >= shared.config.orphan_grace {
            tracing::warn!(%uid, "destroying a VM that no instance claims");
            match shared.driver.destroy(uid).await {
                Ok(()) => {
                    orphans.remove(&uid);
                }
                Err(e) => tracing::warn!(%uid, error = %e, "destroying an orphan VM failed"),
            }
        }
    }
}

/// Copies new serial console output of the host's VMs to the control plane every
/// `serial_sync_interval`, until `cancel` fires.
async fn copy_consoles(shared: Arc<Shared>, cancel: CancellationToken) {
    let mut ends: HashMap<Uuid, Copied> = HashMap::new();
    let mut failing: HashSet<Uuid> = HashSet::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(shared.config.serial_sync_interval) => {}
        }
        let placed = shared.placed.lock().unwrap().clone();
        sync_serial(&shared, &placed, &mut ends, &mut failing).await;
    }
}

/// How far a console has been copied: to an offset of the VM's console (the driver's) and
/// to an offset of the instance's log (the control plane's). The two are the same until a VM
/// starts over with a new console (re-provisioned), whose output then goes on at the log's end.
#[derive(Clone, Copy, Debug, Default)]
struct Copied {
    console: u64,
    log: u64,
}

/// Copies new serial console output of the VMs `placed` to the control plane. A console that
/// cannot be read or uploaded is said once in the log, and again once it works.
async fn sync_serial(
    shared: &Shared,
    placed: &HashSet<Uuid>,
    copied: &mut HashMap<Uuid, Copied>,
    failing: &mut HashSet<Uuid>,
) {
    copied.retain(|uid, _| placed.contains(uid));
    failing.retain(|uid| placed.contains(uid));
    for &uid in placed {
        let at = copied.entry(uid).or_default();
        let uploaded = match shared.driver.serial_output(uid, at.console).await {
            // The console is shorter than what was copied of it: the VM started over.
            Ok((start, _)) if start < at.console => {
                at.console = 0;
                continue;
            }
            Ok((_, bytes)) if bytes.is_empty() => continue,
            Ok((start, bytes)) => shared
                .control_plane
                .append_serial(shared.host, uid, at.log, &bytes)
                .await
                .map(|end| (start + bytes.len() as u64, at.log + bytes.len() as u64, end))
                .map_err(|e| format!("uploading serial output failed: {e}")),
            Err(e) => Err(format!("reading serial output failed: {e}")),
        };
        match uploaded {
            Ok((console_end, expected_end, log_end)) => {
                if log_end == expected_end {
                    *at = Copied {
                        console: console_end,
                        log: log_end,
                    };
                } else {
                    // The log ends elsewhere (this agent restarted): go on from its end, the
                    // console read from the same offset unless it turns out shorter.
                    *at = Copied {
                        console: log_end,
                        log: log_end,
                    };
                }
                if failing.remove(&uid) {
                    tracing::info!(%uid, "serial output is being copied again");
                }
            }
            Err(e) => {
                if failing.insert(uid) {
                    tracing::warn!(%uid, error = %e, "a console is not being copied");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::remote_parent;
    use opentelemetry::trace::TraceContextExt;

    #[test]
    fn a_traceparent_becomes_the_remote_parent_of_a_step() {
        let parent = remote_parent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .expect("a valid traceparent");
        let span = parent.span();
        let context = span.span_context();
        assert!(context.is_remote() && context.is_sampled());
        assert_eq!(
            context.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(context.span_id().to_string(), "00f067aa0ba902b7");
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-not-hex-01",
        ] {
            assert!(remote_parent(bad).is_none(), "{bad:?}");
        }
    }
}
