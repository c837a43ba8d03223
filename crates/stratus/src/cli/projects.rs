//! `stratus projects …`.

use super::output::{Tabular, emit, fields, when};
use super::{Failure, Session};
use clap::Subcommand;
use stratus_types::{Project, ProjectCreateRequest, ResourceId};

/// `stratus projects …`.
#[derive(Subcommand)]
pub enum ProjectsCommand {
    /// List the projects you can see.
    List,
    /// Show one project.
    Get { id: String },
    /// Create a project in an organization.
    Create {
        id: String,
        /// The organization that owns it.
        #[arg(long)]
        organization: String,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete an empty project.
    Delete { id: String },
}

impl ProjectsCommand {
    pub async fn run(self, session: &Session) -> Result<(), Failure> {
        let client = &session.client;
        match self {
            ProjectsCommand::List => emit(session.output, &client.list_all_projects().await?),
            ProjectsCommand::Get { id } => emit(session.output, &client.get_project(&id).await?),
            ProjectsCommand::Create {
                id,
                organization,
                display_name,
                description,
            } => {
                let parse_id = |text: &str, what: &str| {
                    ResourceId::parse(text)
                        .map_err(|e| Failure::Usage(format!("invalid {what}: {e}")))
                };
                let request = ProjectCreateRequest {
                    id: Some(parse_id(&id, "project id")?),
                    display_name,
                    description,
                    organization_id: parse_id(&organization, "--organization")?,
                };
                emit(session.output, &client.create_project(&request).await?)
            }
            ProjectsCommand::Delete { id } => {
                client.delete_project(&id).await?;
                eprintln!("project {id} deleted");
                Ok(())
            }
        }
    }
}

impl Tabular for Vec<Project> {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let rows = self
            .iter()
            .map(|p| {
                vec![
                    p.id.to_string(),
                    p.organization_id.to_string(),
                    p.display_name.clone(),
                    when(&p.created_at),
                ]
            })
            .collect();
        (vec!["ID", "ORGANIZATION", "NAME", "CREATED"], rows)
    }
}

impl Tabular for Project {
    fn table(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        fields(vec![
            ("id", self.id.to_string()),
            ("organization", self.organization_id.to_string()),
            ("display name", self.display_name.clone()),
            ("description", self.description.clone()),
            ("created", when(&self.created_at)),
            ("self link", self.self_link.clone()),
        ])
    }
}
