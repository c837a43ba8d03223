//! `--wait`: following an instance's lifecycle until it reaches a goal.
//!
//! The instance is followed with a watch of it alone (`watch=true&fieldSelector=id=…`): the
//! server sends its current state, then every change as it happens, so every status change is
//! shown at once (a spinner with the current status on a terminal, one plain line per change
//! otherwise, both on standard error so standard output stays the result). A stream the server
//! ends is reopened from the last event's version; one whose version the server no longer
//! keeps is reopened from the instance's current state. The wait ends well when the goal is reached, fails when
//! the instance settles in another stable state (RUNNING, TERMINATED, SUSPENDED: nothing more
//! will happen by itself), and times out after `--timeout`. REPAIRING is waited through: the
//! instance returns to its desired state when its host reports again.

use super::{Failure, Session};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};
use stratus_client::{InstanceWatch, WatchOptions};
use stratus_types::{Instance, InstanceStatus, WatchEventType};

/// Where a wait should end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Goal {
    Status(InstanceStatus),
    /// Deleted: the instance answers 404.
    Gone,
}

impl Goal {
    fn describe(self) -> &'static str {
        match self {
            Goal::Status(status) => status.as_str(),
            Goal::Gone => "deleted",
        }
    }
}

/// Shows status changes: a spinner on a terminal, plain lines elsewhere.
struct Progress {
    id: String,
    started: Instant,
    spinner: Option<ProgressBar>,
}

impl Progress {
    fn new(id: &str) -> Self {
        let spinner = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        Self {
            id: id.to_owned(),
            started: Instant::now(),
            spinner,
        }
    }

    fn change(&self, status: &str, message: Option<&str>) {
        let line = format!(
            "{:>6.1}s  {}  {status}{}",
            self.started.elapsed().as_secs_f64(),
            self.id,
            message.map(|m| format!("  ({m})")).unwrap_or_default()
        );
        match &self.spinner {
            Some(bar) => {
                bar.println(line);
                bar.set_message(format!("{}: {status}", self.id));
            }
            None => eprintln!("{line}"),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.spinner {
            bar.finish_and_clear();
        }
    }
}

/// Waits until instance `id` reaches `goal`; `seen` is the instance as the request that
/// started the change answered it. Answers the final instance (`None` when gone).
pub async fn until(
    session: &Session,
    id: &str,
    seen: Option<&Instance>,
    goal: Goal,
    timeout: Duration,
) -> Result<Option<Instance>, Failure> {
    let progress = Progress::new(id);
    let result = follow(session, id, seen, goal, timeout, &progress).await;
    progress.finish();
    result
}

async fn follow(
    session: &Session,
    id: &str,
    seen: Option<&Instance>,
    goal: Goal,
    timeout: Duration,
    progress: &Progress,
) -> Result<Option<Instance>, Failure> {
    let deadline = Instant::now() + timeout;
    let mut last: Option<(InstanceStatus, Option<String>)> = None;
    let mut current = seen.cloned();
    let mut watch: Option<InstanceWatch> = None;
    // Where a reopened watch resumes; `None` lists the instance first.
    let mut resume: Option<String> = None;
    // Whether the open watch is still sending the instance's state before its first bookmark,
    // and whether that state held the instance.
    let (mut listing, mut listed) = (false, false);
    loop {
        if let Some(instance) = &current {
            let now = (
                instance.lifecycle.status,
                instance.lifecycle.status_message.clone(),
            );
            if last.as_ref() != Some(&now) {
                progress.change(now.0.as_str(), now.1.as_deref());
                last = Some(now.clone());
            }
            let status = now.0;
            if goal == Goal::Status(status) {
                return Ok(current);
            }
            let settled = matches!(
                status,
                InstanceStatus::Running | InstanceStatus::Terminated | InstanceStatus::Suspended
            );
            // A deletion shows STOPPING until the host has destroyed the VM; a settled state
            // is no failure of a deletion that has not finished yet.
            if settled && goal != Goal::Gone {
                return Err(Failure::Failed(format!(
                    "instance {id} ended {}{} instead of {}",
                    status.as_str(),
                    now.1.map(|m| format!(" ({m})")).unwrap_or_default(),
                    goal.describe()
                )));
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let state = last
                .map(|(s, _)| s.as_str().to_owned())
                .unwrap_or_else(|| "unknown".into());
            return Err(Failure::Timeout(format!(
                "timed out after {}s waiting for instance {id} to be {}; it is {state}",
                timeout.as_secs_f64(),
                goal.describe()
            )));
        }
        let open = match watch.as_mut() {
            Some(open) => open,
            None => {
                let client = session.fresh_client().await?;
                let options = WatchOptions {
                    id: Some(id.to_owned()),
                    resource_version: resume.clone(),
                    timeout: Some(left.max(Duration::from_secs(1))),
                    ..WatchOptions::default()
                };
                let opened = client
                    .instances(&session.region, &session.project)
                    .watch(&options)
                    .await?;
                (listing, listed) = (resume.is_none(), false);
                watch.insert(opened)
            }
        };
        let event = match tokio::time::timeout(left, open.next()).await {
            Err(_) => continue, // the deadline, reported above
            Ok(event) => event?,
        };
        let Some(event) = event else {
            // The server ended the stream; resume after what was read.
            resume = open.last_version.clone().or(resume);
            watch = None;
            continue;
        };
        match event.event_type {
            WatchEventType::Added | WatchEventType::Modified => {
                listed |= listing;
                current = event.object;
            }
            WatchEventType::Deleted if goal == Goal::Gone => {
                progress.change("deleted", None);
                return Ok(None);
            }
            WatchEventType::Deleted => {
                return Err(Failure::Failed(format!(
                    "instance {id} was deleted while waiting for it to be {}",
                    goal.describe()
                )));
            }
            WatchEventType::Bookmark => {
                if listing && !listed {
                    if goal == Goal::Gone {
                        progress.change("deleted", None);
                        return Ok(None);
                    }
                    return Err(Failure::Failed(format!("instance {id} does not exist")));
                }
                listing = false;
            }
            WatchEventType::Error => {
                // Too far behind, or the region's feed restarted: start over from its state.
                resume = None;
                watch = None;
            }
        }
    }
}
