//! The agent loop with the simulated driver against an in-memory control plane: what it does
//! with VMs nobody claims and with instances whose VM is gone.

use async_trait::async_trait;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stratus_agent::agent::ControlPlaneError;
use stratus_agent::sim::{SimDriver, SimTimings};
use stratus_agent::{Agent, AgentConfig, ControlPlane, Driver};
use stratus_types::agent::{
    Assignment, AssignmentBatch, AssignmentCursor, HostImageInfo, HostRegistration, ReportOutcome,
    Reported, ReportedRecord, StatusReport, VmSpec,
};
use stratus_types::{DesiredState, InstanceStatus, MetadataItem, MetadataKey};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A control plane that hands out fixed assignments and records reports.
#[derive(Default)]
struct Recorder {
    assignments: Mutex<Vec<Assignment>>,
    reports: Mutex<Vec<StatusReport>>,
    /// Metadata by instance, and how often it was fetched.
    metadata: Mutex<std::collections::HashMap<Uuid, Vec<MetadataItem>>>,
    metadata_fetches: std::sync::atomic::AtomicUsize,
    /// Whether an accepted report is answered with the record it made.
    answers_record: bool,
}

#[async_trait]
impl ControlPlane for Recorder {
    async fn register(&self, _: &HostRegistration) -> Result<Uuid, ControlPlaneError> {
        Ok(Uuid::new_v4())
    }

    async fn assignments(
        &self,
        _: Uuid,
        since: AssignmentCursor,
        wait: Duration,
    ) -> Result<AssignmentBatch, ControlPlaneError> {
        tokio::time::sleep(wait.min(Duration::from_millis(100))).await;
        Ok(AssignmentBatch {
            revision: since.revision + 1,
            epoch: 0,
            complete: true,
            assignments: self.assignments.lock().unwrap().clone(),
            removed: vec![],
            overlay: vec![],
        })
    }

    async fn report(&self, _: Uuid, report: &StatusReport) -> Result<Reported, ControlPlaneError> {
        self.reports.lock().unwrap().push(report.clone());
        let desired = if report.intent_stopped {
            DesiredState::Stopped
        } else {
            DesiredState::Running
        };
        Ok(Reported {
            outcome: ReportOutcome::Accepted,
            now: self.answers_record.then_some(ReportedRecord {
                generation: report.generation + 1,
                desired,
                status: report.status,
            }),
        })
    }

    async fn report_destroyed(&self, _: Uuid, _: Uuid) -> Result<(), ControlPlaneError> {
        Ok(())
    }

    async fn append_serial(
        &self,
        _: Uuid,
        _: Uuid,
        at: u64,
        bytes: &[u8],
    ) -> Result<u64, ControlPlaneError> {
        Ok(at + bytes.len() as u64)
    }

    async fn instance_metadata(
        &self,
        _: Uuid,
        uid: Uuid,
    ) -> Result<Vec<MetadataItem>, ControlPlaneError> {
        self.metadata_fetches
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(self
            .metadata
            .lock()
            .unwrap()
            .get(&uid)
            .cloned()
            .unwrap_or_default())
    }

    async fn image(&self, id: &str) -> Result<HostImageInfo, ControlPlaneError> {
        Err(ControlPlaneError(format!("no image {id}")))
    }

    async fn download_image(&self, id: &str, _: &std::path::Path) -> Result<(), ControlPlaneError> {
        Err(ControlPlaneError(format!("no image {id}")))
    }
}

fn spec(uid: Uuid) -> VmSpec {
    VmSpec {
        uid,
        project: "p".into(),
        id: "vm".into(),
        hostname: "vm".into(),
        vcpus: 1,
        memory_mb: 512,
        gpus: 0,
        disks: vec![],
        metadata: vec![],
        nics: vec![],
    }
}

fn start(cp: Arc<Recorder>, driver: Arc<SimDriver>) -> CancellationToken {
    let agent = Agent::new(
        cp,
        driver,
        HostRegistration {
            name: "h".into(),
            zone: "z".into(),
            driver: "sim".into(),
            vcpus: 4,
            memory_mb: 4096,
            gpus: vec![],
            accelerator: None,
            agent_version: None,
            underlay: None,
        },
        AgentConfig {
            poll_wait: Duration::from_millis(50),
            orphan_grace: Duration::from_millis(500),
            ..AgentConfig::default()
        },
    );
    let cancel = CancellationToken::new();
    tokio::spawn(agent.run(cancel.clone()));
    cancel
}

/// Places `uid` on the host, meant to run, at `status` and `generation`.
fn assign(cp: &Recorder, uid: Uuid, status: InstanceStatus, generation: i64, digest: &str) {
    cp.assignments.lock().unwrap().push(Assignment {
        spec: spec(uid),
        desired: DesiredState::Running,
        status,
        generation,
        metadata_digest: digest.into(),
        traceparent: None,
        request_id: None,
    });
}

/// The reports `cp` took, once there are at least `n` (waiting up to 5 s).
async fn reports(cp: &Recorder, n: usize) -> Vec<StatusReport> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reports = cp.reports.lock().unwrap().clone();
        if reports.len() >= n {
            return reports;
        }
        assert!(Instant::now() < deadline, "fewer than {n} reports");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn instant_sim() -> Arc<SimDriver> {
    let timings = SimTimings {
        prepare_ms: 0,
        boot_ms: 0,
        stop_ms: 0,
        pause_ms: 0,
    };
    Arc::new(SimDriver::new(None, timings).unwrap())
}

#[tokio::test]
async fn a_vm_no_instance_claims_is_destroyed_after_the_grace_period() {
    let driver = instant_sim();
    let stray = Uuid::new_v4();
    driver.prepare(&spec(stray)).await.unwrap();
    driver.boot(stray).await.unwrap();
    let started = Instant::now();
    let cancel = start(Arc::new(Recorder::default()), driver.clone());
    while driver.inspect(stray).await.unwrap().is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the stray VM was never reaped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "reaped before the grace period"
    );
    cancel.cancel();
}

#[tokio::test]
async fn a_running_instance_whose_vm_vanished_is_reported_terminated() {
    let cp = Arc::new(Recorder::default());
    let uid = Uuid::new_v4();
    assign(&cp, uid, InstanceStatus::Running, 7, "");
    let cancel = start(cp.clone(), instant_sim());
    let report = reports(&cp, 1).await.remove(0);
    assert_eq!(report.uid, uid);
    assert_eq!(report.generation, 7);
    assert_eq!(report.status, InstanceStatus::Terminated);
    assert!(report.intent_stopped);
    assert!(report.message.unwrap().contains("vanished"));
    cancel.cancel();
}

/// Polls leave an instance's metadata out: the agent fetches it once per digest and hands it to
/// the driver with the spec (here the simulator, which reads a failure to inject from it).
#[tokio::test]
async fn metadata_is_fetched_once_per_digest_and_reaches_the_driver() {
    let cp = Arc::new(Recorder::default());
    let uid = Uuid::new_v4();
    cp.metadata.lock().unwrap().insert(
        uid,
        vec![MetadataItem {
            key: MetadataKey::parse(stratus_agent::sim::FAIL_KEY).unwrap(),
            value: "boot-permanent".into(),
        }],
    );
    assign(&cp, uid, InstanceStatus::Staging, 3, "d1");
    let cancel = start(cp.clone(), instant_sim());
    let report = reports(&cp, 1).await.remove(0);
    assert!(
        report
            .message
            .unwrap()
            .contains("simulated permanent boot failure"),
        "the driver saw the fetched metadata"
    );
    // Many polls later, still one fetch: the digest did not change.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fetches = || {
        cp.metadata_fetches
            .load(std::sync::atomic::Ordering::SeqCst)
    };
    assert_eq!(fetches(), 1);
    cp.assignments.lock().unwrap()[0].metadata_digest = "d2".into();
    let deadline = Instant::now() + Duration::from_secs(5);
    while fetches() < 2 {
        assert!(Instant::now() < deadline, "a new digest was not fetched");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cancel.cancel();
}

/// A report accepted is answered with the record it made, and the agent takes its next step
/// from that record at once: here the polls keep answering the instance as it was created
/// (PROVISIONING, generation 1), so a boot reported from generation 2 could only come from
/// the answer.
#[tokio::test]
async fn an_accepted_report_leads_straight_to_the_next_step() {
    let cp = Arc::new(Recorder {
        answers_record: true,
        ..Recorder::default()
    });
    let uid = Uuid::new_v4();
    assign(&cp, uid, InstanceStatus::Provisioning, 1, "");
    let cancel = start(cp.clone(), instant_sim());
    let reports = reports(&cp, 2).await;
    cancel.cancel();
    let steps: Vec<(InstanceStatus, i64)> = reports
        .iter()
        .take(2)
        .map(|r| (r.status, r.generation))
        .collect();
    assert_eq!(
        steps,
        [(InstanceStatus::Staging, 1), (InstanceStatus::Running, 2)]
    );
}
