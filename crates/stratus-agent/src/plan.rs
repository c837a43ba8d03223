//! The next step for one instance on this host, decided from three facts: what the owner
//! wants (`desired`), the status the control plane last recorded, and what the driver sees.
//!
//! The control plane puts an instance into a transitional status when work is wanted
//! (`PROVISIONING`, `STAGING`, `STOPPING`, `SUSPENDING`); the agent does that work and reports
//! the status it reached. For settled statuses the agent only checks that the VM still
//! matches, and reports what it finds when it does not (a guest that powered off, a VM that
//! vanished). Because the decision is re-made from fresh facts every time, a step interrupted
//! by a crash is simply decided and done again.

use crate::driver::{VmInfo, VmState};
use stratus_types::{DesiredState, InstanceStatus};

/// A status to report, with its message and whether the owner's intent becomes "stopped".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    pub status: InstanceStatus,
    pub message: Option<String>,
    pub intent_stopped: bool,
}

impl Observation {
    fn new(status: InstanceStatus, message: Option<&str>) -> Self {
        Self {
            status,
            message: message.map(str::to_owned),
            intent_stopped: false,
        }
    }

    fn stopped_by_guest(message: String) -> Self {
        Self {
            status: InstanceStatus::Terminated,
            message: Some(message),
            intent_stopped: true,
        }
    }
}

/// One step of work for the agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing to do: the VM matches the record.
    Nothing,
    /// Define the VM and prepare its disks, then report `STAGING`.
    Prepare,
    /// Start the VM (preparing it first if it is missing), then report `RUNNING`.
    Boot,
    /// Reset the running VM, then report `RUNNING`.
    Reset,
    /// Resume the paused VM, then report `RUNNING`.
    Resume,
    /// Pause the running VM, then report `SUSPENDED`.
    Pause,
    /// Stop the VM, then report `then` if given.
    PowerOff { then: Option<Observation> },
    /// Remove the VM and its disks, then tell the control plane it is gone.
    Destroy,
    /// Only report what was observed.
    Report(Observation),
}

/// Decides the next step for an instance.
pub fn next_step(desired: DesiredState, status: InstanceStatus, vm: Option<&VmInfo>) -> Step {
    use InstanceStatus as S;
    let state = vm.map(|v| v.state);
    let guest_stopped = || {
        Observation::stopped_by_guest(match vm {
            None => "the guest vanished from its host".to_owned(),
            Some(v) => v
                .stop_reason
                .clone()
                .unwrap_or_else(|| "the guest stopped".to_owned()),
        })
    };
    let terminated = |message: &str| Step::PowerOff {
        then: Some(Observation::new(S::Terminated, Some(message))),
    };
    if desired == DesiredState::Deleted {
        return Step::Destroy;
    }
    if desired == DesiredState::Stopped && !matches!(status, S::Terminated | S::Repairing) {
        return terminated("stopped");
    }
    match status {
        S::Provisioning => Step::Prepare,
        S::Staging => match state {
            Some(VmState::Running) => Step::Reset,
            Some(VmState::Paused) => Step::Resume,
            Some(VmState::Stopped) | None => Step::Boot,
        },
        S::Running => match state {
            Some(VmState::Running) => Step::Nothing,
            Some(VmState::Paused) if desired == DesiredState::Running => Step::Resume,
            Some(VmState::Paused) => Step::Nothing,
            Some(VmState::Stopped) | None => Step::Report(guest_stopped()),
        },
        S::Suspending => match state {
            Some(VmState::Running) => Step::Pause,
            Some(VmState::Paused) => Step::Report(Observation::new(S::Suspended, None)),
            Some(VmState::Stopped) | None => Step::Report(guest_stopped()),
        },
        S::Suspended => match state {
            Some(VmState::Paused) => Step::Nothing,
            Some(VmState::Running) => Step::Pause,
            Some(VmState::Stopped) | None => Step::Report(guest_stopped()),
        },
        S::Stopping => terminated("stopped"),
        S::Terminated => match state {
            Some(VmState::Running | VmState::Paused) => Step::PowerOff { then: None },
            Some(VmState::Stopped) | None => Step::Nothing,
        },
        S::Repairing => match (state, desired) {
            (Some(VmState::Running), _) => Step::Report(Observation::new(
                S::Running,
                Some("the host is reporting again"),
            )),
            (Some(VmState::Paused), _) => Step::Report(Observation::new(
                S::Suspended,
                Some("the host is reporting again"),
            )),
            (_, DesiredState::Running) => Step::Report(Observation::new(
                S::Provisioning,
                Some("restarting after the host came back"),
            )),
            _ => Step::Report(Observation::new(
                S::Terminated,
                Some("stopped while its host was away"),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DesiredState as D;
    use InstanceStatus as S;

    fn vm(state: VmState) -> Option<VmInfo> {
        Some(VmInfo {
            state,
            stop_reason: None,
        })
    }

    #[test]
    fn create_walks_provisioning_staging_running() {
        assert_eq!(next_step(D::Running, S::Provisioning, None), Step::Prepare);
        assert_eq!(
            next_step(D::Running, S::Staging, vm(VmState::Stopped).as_ref()),
            Step::Boot
        );
        assert_eq!(
            next_step(D::Running, S::Running, vm(VmState::Running).as_ref()),
            Step::Nothing
        );
    }

    #[test]
    fn staging_on_a_live_vm_means_reboot_or_resume() {
        assert_eq!(
            next_step(D::Running, S::Staging, vm(VmState::Running).as_ref()),
            Step::Reset
        );
        assert_eq!(
            next_step(D::Running, S::Staging, vm(VmState::Paused).as_ref()),
            Step::Resume
        );
    }

    #[test]
    fn delete_destroys_from_every_state() {
        for status in S::ALL {
            for v in [None, vm(VmState::Running), vm(VmState::Paused)] {
                assert_eq!(next_step(D::Deleted, status, v.as_ref()), Step::Destroy);
            }
        }
    }

    #[test]
    fn a_guest_that_stops_by_itself_ends_terminated_and_stays_stopped() {
        let off = VmInfo {
            state: VmState::Stopped,
            stop_reason: Some("guest powered off".into()),
        };
        let Step::Report(o) = next_step(D::Running, S::Running, Some(&off)) else {
            panic!("want a report")
        };
        assert_eq!(o.status, S::Terminated);
        assert_eq!(o.message.as_deref(), Some("guest powered off"));
        assert!(o.intent_stopped);
        let Step::Report(o) = next_step(D::Running, S::Running, None) else {
            panic!("want a report")
        };
        assert!(o.message.unwrap().contains("vanished"));
    }

    #[test]
    fn no_transitional_status_is_left_without_a_step() {
        for status in S::ALL.into_iter().filter(|s| s.is_transitional()) {
            for desired in [D::Running, D::Stopped, D::Suspended] {
                for v in [
                    None,
                    vm(VmState::Running),
                    vm(VmState::Paused),
                    vm(VmState::Stopped),
                ] {
                    assert_ne!(
                        next_step(desired, status, v.as_ref()),
                        Step::Nothing,
                        "{desired:?} {status:?} {v:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_stopped_record_with_a_live_vm_gets_it_stopped() {
        assert_eq!(
            next_step(D::Stopped, S::Terminated, vm(VmState::Running).as_ref()),
            Step::PowerOff { then: None }
        );
    }

    #[test]
    fn a_host_that_returns_reports_what_survived() {
        let Step::Report(o) = next_step(D::Running, S::Repairing, vm(VmState::Running).as_ref())
        else {
            panic!("want a report")
        };
        assert_eq!(o.status, S::Running);
        let Step::Report(o) = next_step(D::Running, S::Repairing, None) else {
            panic!("want a report")
        };
        assert_eq!(o.status, S::Provisioning);
    }
}
