//! `stratus audit …`: the audit trail of an organization.

use super::output::{Tabular, emit, when};
use super::{Failure, Session};
use clap::Subcommand;
use stratus_types::auth::AuditEvent;

/// `stratus audit …`.
#[derive(Subcommand)]
pub enum AuditCommand {
    /// The latest mutating requests of an organization, oldest first (owners and admins).
    List {
        /// The organization (default: yours).
        #[arg(long)]
        organization: Option<String>,
        /// Show only the N most recent events (0: all of them).
        #[arg(long, value_name = "N", default_value_t = 100)]
        limit: usize,
    },
}

impl AuditCommand {
    pub async fn run(self, session: &Session) -> Result<(), Failure> {
        match self {
            AuditCommand::List {
                organization,
                limit,
            } => {
                let mut events = session
                    .client
                    .list_all_audit_events(organization.as_deref())
                    .await?;
                if limit > 0 && events.len() > limit {
                    events.drain(..events.len() - limit);
                }
                emit(session.output, &events)
            }
        }
    }
}

impl Tabular for Vec<AuditEvent> {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let rows = self
            .iter()
            .map(|e| {
                vec![
                    when(&e.time),
                    e.principal.clone().unwrap_or_else(|| "-".into()),
                    e.method.clone(),
                    e.path.clone(),
                    e.status.to_string(),
                    e.request_id.clone(),
                ]
            })
            .collect();
        (
            vec![
                "TIME",
                "PRINCIPAL",
                "METHOD",
                "PATH",
                "STATUS",
                "REQUEST ID",
            ],
            rows,
        )
    }
}
