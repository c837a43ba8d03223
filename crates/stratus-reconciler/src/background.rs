//! Background tasks, and the one driver that runs them all.
//!
//! The control plane has work no request asks for: finishing deletions whose host is gone,
//! giving up on transitions past their deadline, importing registered images, pruning old
//! records. Each kind is a [`BackgroundTask`]: it takes no payload, and each activation looks at
//! the world as the database has it and acts on what needs it, idempotently, so a missed or
//! repeated activation changes nothing. The [`Driver`] owns the loops: every task is activated
//! at its period, and sooner when the region's change feed says something changed (for the
//! tasks that ask to be woken), never twice at once. An activation reports what it did as a
//! [`TaskReport`]; a failing item (one instance, one image) is logged and counted there and the
//! activation goes on with the next, so one bad row never stalls the rest. The driver keeps each
//! task's last status — when it ran, how long it took, what it did — for operators to read.
//!
//! (The shape is Oxide omicron's background tasks: named tasks, a period and a wake-up
//! channel each, and a status per task.)

use async_trait::async_trait;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stratus_store::Changes;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// What one activation did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskReport {
    /// Items acted on.
    pub acted: u64,
    /// Items that failed, each with why (the first few), and how many failed in all.
    pub errors: Vec<String>,
    pub failed: u64,
}

/// Most error messages a report keeps.
const KEPT_ERRORS: usize = 5;

impl TaskReport {
    /// Counts an item acted on.
    pub fn acted(&mut self) {
        self.acted += 1;
    }

    /// Counts a failed item, keeping its message.
    pub fn failed(&mut self, what: impl std::fmt::Display) {
        self.failed += 1;
        if self.errors.len() < KEPT_ERRORS {
            self.errors.push(what.to_string());
        }
    }

    /// Records `result` of acting on one item: counted as done when it did something, as a
    /// failure (with `item` named) when it failed.
    pub fn item(&mut self, item: impl std::fmt::Display, result: stratus_core::Result<bool>) {
        match result {
            Ok(true) => self.acted(),
            Ok(false) => {}
            Err(e) => self.failed(format!("{item}: {e}")),
        }
    }
}

/// Work the control plane does by itself.
#[async_trait]
pub trait BackgroundTask: Send + Sync + 'static {
    /// A short name, for logs and statuses (`instance-watchdog`).
    fn name(&self) -> &'static str;
    /// One look at the world, acting on what needs it.
    async fn activate(&self) -> TaskReport;
}

/// What the driver knows of a task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskStatus {
    pub name: &'static str,
    pub activations: u64,
    /// When the last activation started, and how long it took.
    pub last_started: Option<Instant>,
    pub last_duration: Option<Duration>,
    pub last_report: TaskReport,
}

struct Registration {
    task: Arc<dyn BackgroundTask>,
    period: Duration,
    wake_on: Option<Changes>,
    status: Arc<Mutex<TaskStatus>>,
}

/// Runs the background tasks, each in a loop of its own.
#[derive(Default)]
pub struct Driver {
    tasks: Vec<Registration>,
}

/// Reads the statuses of a driver's tasks while they run.
#[derive(Clone)]
pub struct Statuses(Vec<Arc<Mutex<TaskStatus>>>);

impl Statuses {
    pub fn get(&self) -> Vec<TaskStatus> {
        self.0
            .iter()
            .filter_map(|s| s.lock().ok().map(|s| s.clone()))
            .collect()
    }
}

impl Driver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `task`, activated every `period`, and at once after a change of `wake_on`.
    pub fn register(
        &mut self,
        task: impl BackgroundTask,
        period: Duration,
        wake_on: Option<Changes>,
    ) -> &mut Self {
        let status = Arc::new(Mutex::new(TaskStatus {
            name: task.name(),
            activations: 0,
            last_started: None,
            last_duration: None,
            last_report: TaskReport::default(),
        }));
        self.tasks.push(Registration {
            task: Arc::new(task),
            period,
            wake_on,
            status,
        });
        self
    }

    /// The statuses of the registered tasks.
    pub fn statuses(&self) -> Statuses {
        Statuses(self.tasks.iter().map(|t| t.status.clone()).collect())
    }

    /// Starts every task's loop in `tasks`; they end when `cancel` fires.
    pub fn start(self, tasks: &mut JoinSet<()>, cancel: CancellationToken) {
        for registration in self.tasks {
            tasks.spawn(run(registration, cancel.clone()));
        }
    }
}

async fn run(registration: Registration, cancel: CancellationToken) {
    let Registration {
        task,
        period,
        wake_on,
        status,
    } = registration;
    let mut seen = wake_on.as_ref().map_or(0, Changes::revision);
    loop {
        let started = Instant::now();
        // A stop does not wait for an activation to end: every task tolerates being cut short
        // as it tolerates a crash.
        let report = tokio::select! {
            _ = cancel.cancelled() => return,
            report = task.activate() => report,
        };
        let took = started.elapsed();
        let name = task.name();
        metrics::histogram!("stratus_background_task_duration_seconds", "task" => name)
            .record(took.as_secs_f64());
        metrics::counter!("stratus_background_task_items_total", "task" => name, "outcome" => "acted")
            .increment(report.acted);
        metrics::counter!("stratus_background_task_items_total", "task" => name, "outcome" => "failed")
            .increment(report.failed);
        if report.failed > 0 {
            tracing::warn!(
                task = task.name(),
                acted = report.acted,
                failed = report.failed,
                errors = ?report.errors,
                "background task had failures"
            );
        } else if report.acted > 0 {
            tracing::debug!(
                task = task.name(),
                acted = report.acted,
                ?took,
                "background task acted"
            );
        }
        if let Ok(mut status) = status.lock() {
            status.activations += 1;
            status.last_started = Some(started);
            status.last_duration = Some(took);
            status.last_report = report;
        }
        let next = async {
            match &wake_on {
                Some(changes) => seen = changes.wait_past(seen, period).await,
                None => tokio::time::sleep(period).await,
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = next => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    struct Counting(Arc<AtomicU64>);

    #[async_trait]
    impl BackgroundTask for Counting {
        fn name(&self) -> &'static str {
            "counting"
        }
        async fn activate(&self) -> TaskReport {
            let n = self.0.fetch_add(1, Ordering::SeqCst);
            let mut report = TaskReport::default();
            report.item("item-1", Err(stratus_core::Error::internal("boom")));
            report.item("item-2", Ok(n.is_multiple_of(2)));
            report
        }
    }

    #[tokio::test]
    async fn tasks_run_at_their_period_and_when_woken_and_report_failures() {
        let count = Arc::new(AtomicU64::new(0));
        let changes = Changes::new();
        let mut driver = Driver::new();
        driver.register(
            Counting(count.clone()),
            Duration::from_secs(3600),
            Some(changes.clone()),
        );
        let statuses = driver.statuses();
        let cancel = CancellationToken::new();
        let mut tasks = JoinSet::new();
        driver.start(&mut tasks, cancel.clone());
        let wait_for = |n: u64| {
            let count = count.clone();
            async move {
                for _ in 0..200 {
                    if count.load(Ordering::SeqCst) >= n {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                panic!(
                    "the task ran {} times, not {n}",
                    count.load(Ordering::SeqCst)
                );
            }
        };
        wait_for(1).await;
        changes.bump();
        wait_for(2).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let status = &statuses.get()[0];
        assert_eq!(status.name, "counting");
        assert!(status.activations >= 2);
        assert_eq!(status.last_report.failed, 1, "a failing item is counted");
        assert!(status.last_report.errors[0].contains("item-1: internal error: boom"));
        cancel.cancel();
        while tasks.join_next().await.is_some() {}
    }
}
