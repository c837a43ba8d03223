//! What each owner action does to an instance.
//!
//! An instance row holds the owner's intent (`desired`) and the last observed `status`. An
//! action changes the intent and moves the status into the transitional state that describes
//! the work now under way, so the response already tells the caller what is happening
//! (`:stop` answers `STOPPING`). The host agent then performs the work and reports the state it
//! reached. Every action is legal only from the states where it means something; anything else
//! is a 409 that says which states would allow it. Delete is legal from every state: no state is
//! a trap.

use crate::Error;
use stratus_types::{DesiredState, InstanceStatus};

/// An owner action on an instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Start,
    Stop,
    Reboot,
    Suspend,
    Resume,
    Delete,
}

impl Action {
    /// The action named by the part after the colon in `…/instances/{id}:start`.
    pub fn parse(verb: &str) -> Option<Self> {
        Some(match verb {
            "start" => Self::Start,
            "stop" => Self::Stop,
            "reboot" => Self::Reboot,
            "suspend" => Self::Suspend,
            "resume" => Self::Resume,
            _ => return None,
        })
    }

    pub fn verb(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Reboot => "reboot",
            Self::Suspend => "suspend",
            Self::Resume => "resume",
            Self::Delete => "delete",
        }
    }
}

/// The new intent and status an action leads to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub desired: DesiredState,
    pub status: InstanceStatus,
    pub message: &'static str,
}

/// Decides what `action` does to an instance that wants `desired` and is `status`.
pub fn apply(
    action: Action,
    desired: DesiredState,
    status: InstanceStatus,
) -> Result<Transition, Error> {
    use InstanceStatus::*;
    if desired == DesiredState::Deleted {
        return match action {
            Action::Delete => Ok(Transition {
                desired,
                status,
                message: "deleting",
            }),
            _ => Err(Error::FailedPrecondition(format!(
                "cannot {} the instance: it is being deleted",
                action.verb()
            ))),
        };
    }
    let (allowed_from, to): (&[InstanceStatus], Transition) = match action {
        Action::Delete => {
            return Ok(Transition {
                desired: DesiredState::Deleted,
                status: Stopping,
                message: "deleting",
            });
        }
        Action::Start => (
            &[Terminated],
            Transition {
                desired: DesiredState::Running,
                status: Provisioning,
                message: "starting",
            },
        ),
        Action::Stop => (
            &[
                Provisioning,
                Staging,
                Running,
                Suspending,
                Suspended,
                Repairing,
            ],
            Transition {
                desired: DesiredState::Stopped,
                status: Stopping,
                message: "stopping",
            },
        ),
        Action::Reboot => (
            &[Running],
            Transition {
                desired: DesiredState::Running,
                status: Staging,
                message: "rebooting",
            },
        ),
        Action::Suspend => (
            &[Running],
            Transition {
                desired: DesiredState::Suspended,
                status: Suspending,
                message: "suspending",
            },
        ),
        Action::Resume => (
            &[Suspended],
            Transition {
                desired: DesiredState::Running,
                status: Staging,
                message: "resuming",
            },
        ),
    };
    if allowed_from.contains(&status) {
        return Ok(to);
    }
    let allowed: Vec<&str> = allowed_from.iter().map(|s| s.as_str()).collect();
    let mut message = format!(
        "cannot {} an instance that is {}; {} is possible only from {}",
        action.verb(),
        status.as_str(),
        action.verb(),
        allowed.join(", ")
    );
    if action == Action::Start && status == Suspended {
        message.push_str(" (use :resume for a SUSPENDED instance)");
    }
    Err(Error::FailedPrecondition(message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use DesiredState as D;
    use InstanceStatus as S;

    #[test]
    fn delete_is_possible_from_every_state() {
        for status in S::ALL {
            for desired in [D::Running, D::Stopped, D::Suspended, D::Deleted] {
                let t = apply(Action::Delete, desired, status).unwrap();
                assert_eq!(t.desired, D::Deleted);
            }
        }
    }

    #[test]
    fn every_status_has_an_action_that_leaves_or_a_stable_meaning() {
        // From every state either stop or start is possible, so an owner is never stuck.
        for status in S::ALL {
            let stop = apply(Action::Stop, D::Running, status);
            let start = apply(Action::Start, D::Stopped, status);
            assert!(
                stop.is_ok() || start.is_ok() || status == S::Stopping,
                "{status:?} allows neither stop nor start"
            );
        }
    }

    #[test]
    fn actions_move_into_the_transitional_state_of_their_work() {
        let t = apply(Action::Stop, D::Running, S::Running).unwrap();
        assert_eq!((t.desired, t.status), (D::Stopped, S::Stopping));
        let t = apply(Action::Start, D::Stopped, S::Terminated).unwrap();
        assert_eq!((t.desired, t.status), (D::Running, S::Provisioning));
        let t = apply(Action::Reboot, D::Running, S::Running).unwrap();
        assert_eq!((t.status, t.message), (S::Staging, "rebooting"));
        let t = apply(Action::Suspend, D::Running, S::Running).unwrap();
        assert_eq!((t.desired, t.status), (D::Suspended, S::Suspending));
        let t = apply(Action::Resume, D::Suspended, S::Suspended).unwrap();
        assert_eq!((t.desired, t.status), (D::Running, S::Staging));
    }

    #[test]
    fn impossible_actions_explain_which_states_allow_them() {
        let err = apply(Action::Start, D::Suspended, S::Suspended).unwrap_err();
        let Error::FailedPrecondition(msg) = err else {
            panic!("want FailedPrecondition")
        };
        assert!(
            msg.contains("SUSPENDED") && msg.contains(":resume"),
            "{msg}"
        );
        assert!(apply(Action::Reboot, D::Stopped, S::Terminated).is_err());
        assert!(apply(Action::Start, D::Deleted, S::Terminated).is_err());
    }
}
