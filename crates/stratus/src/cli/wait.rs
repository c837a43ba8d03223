//! `--wait`: following an instance's lifecycle until it reaches a goal.
//!
//! The instance is followed with conditional, waiting reads (`If-None-Match` with `Prefer:
//! wait`): the server answers as soon as the instance changes, so every status change is shown
//! as it happens (a spinner with the
//! current status on a terminal, one plain line per change otherwise, both on standard error so
//! standard output stays the result). The wait ends well when the goal is reached, fails when
//! the instance settles in another stable state (RUNNING, TERMINATED, SUSPENDED: nothing more
//! will happen by itself), and times out after `--timeout`. REPAIRING is waited through: the
//! instance returns to its desired state when its host reports again.

use super::{Failure, Session};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};
use stratus_types::{Instance, InstanceStatus};

/// Longest single wait the server is asked for; the deadline is checked between waits.
const WAIT_AT_MOST: Duration = Duration::from_secs(20);

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
    // The version last seen; the first read fetches one.
    let mut etag: Option<String> = None;
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
        if Instant::now() >= deadline {
            let state = last
                .map(|(s, _)| s.as_str().to_owned())
                .unwrap_or_else(|| "unknown".into());
            return Err(Failure::Timeout(format!(
                "timed out after {}s waiting for instance {id} to be {}; it is {state}",
                timeout.as_secs_f64(),
                goal.describe()
            )));
        }
        let client = session.fresh_client().await?;
        let instances = client.instances(&session.region, &session.project);
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .min(WAIT_AT_MOST);
        let read = match &etag {
            Some(known) => instances.get_when_changed(id, known, wait).await,
            None => instances.get_versioned(id).await.map(Some),
        };
        match read {
            Ok(Some(changed)) => {
                etag = changed.etag;
                current = Some(changed.value);
                if etag.is_none() {
                    // A server that sends no ETag is followed by plain reads, paced.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            // Unchanged for the whole wait; the deadline is checked above.
            Ok(None) => {}
            Err(e) if goal == Goal::Gone && e.status() == Some(404) => {
                progress.change("deleted", None);
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        }
    }
}
