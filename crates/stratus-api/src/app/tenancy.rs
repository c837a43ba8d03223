//! Organization and project operations (the contract's global resources).

use super::{
    App, Caller, OrganizationFilter, Paging, Permission, Precondition, Principal, check_text, etag,
    now, resource_id,
};
use stratus_core::retry::optimistic;
use stratus_core::{Error, Result, ids};
use stratus_store::{OrganizationRecord, ProjectRecord};
use stratus_types::{
    Organization, OrganizationCreateRequest, OrganizationList, OrganizationUpdateRequest, Project,
    ProjectCreateRequest, ProjectList, ProjectUpdateRequest, ResourceId,
};
use uuid::Uuid;

/// New `displayName` and `description`, checked; `None` leaves a field as it is.
struct Text(Option<String>, Option<String>);

fn checked_text(display_name: Option<String>, description: Option<String>) -> Result<Text> {
    check_text("displayName", display_name.as_deref(), 255)?;
    check_text("description", description.as_deref(), 1024)?;
    Ok(Text(display_name, description))
}

/// A tenancy record with a display name and a description.
trait Described {
    fn etag(&self) -> String;
    /// "organization acme", for messages.
    fn what(&self) -> String;
    /// Checks the precondition, then applies the new text.
    fn apply_text(&mut self, precondition: &Precondition, text: &Text) -> Result<()>;
}

macro_rules! described {
    ($record:ty, $kind:literal) => {
        impl Described for $record {
            fn etag(&self) -> String {
                etag(self.uid, self.generation)
            }
            fn what(&self) -> String {
                format!("{} {}", $kind, self.id)
            }
            fn apply_text(&mut self, precondition: &Precondition, text: &Text) -> Result<()> {
                precondition.check(&self.etag(), &self.what())?;
                if let Some(v) = &text.0 {
                    self.display_name = v.clone();
                }
                if let Some(v) = &text.1 {
                    self.description = v.clone();
                }
                self.updated_at = now();
                Ok(())
            }
        }
    };
}

described!(OrganizationRecord, "organization");
described!(ProjectRecord, "project");

/// A resource and its ETag.
pub struct Versioned<T> {
    pub value: T,
    pub etag: String,
}

fn organization_view(r: &OrganizationRecord) -> Versioned<Organization> {
    Versioned {
        value: Organization {
            self_link: format!("/v1/regions/global/organizations/{}", r.id),
            uid: r.uid,
            id: ResourceId::parse(&r.id).expect("stored ids are valid"),
            display_name: r.display_name.clone(),
            description: r.description.clone(),
        },
        etag: etag(r.uid, r.generation),
    }
}

fn project_view(r: &ProjectRecord) -> Versioned<Project> {
    Versioned {
        value: Project {
            self_link: format!("/v1/regions/global/projects/{}", r.id),
            uid: r.uid,
            id: ResourceId::parse(&r.id).expect("stored ids are valid"),
            display_name: r.display_name.clone(),
            description: r.description.clone(),
            organization_id: ResourceId::parse(&r.organization_id).expect("stored ids are valid"),
            created_at: r.created_at,
            updated_at: r.updated_at,
        },
        etag: etag(r.uid, r.generation),
    }
}

impl App {
    pub(crate) async fn organization_for(
        &self,
        principal: &Principal,
        id: &str,
        permission: Permission,
    ) -> Result<OrganizationRecord> {
        let id = resource_id("id", id)?;
        let not_found = || Error::NotFound(format!("organization {id} not found"));
        let record = self
            .store
            .get_organization(id.as_str())
            .await?
            .ok_or_else(not_found)?;
        principal.authorize(permission, &record.id, None, not_found)?;
        Ok(record)
    }

    pub async fn create_organization(
        &self,
        caller: &Caller,
        body: OrganizationCreateRequest,
    ) -> Result<Versioned<Organization>> {
        if !caller.principal.is_super_admin() {
            return Err(Error::PermissionDenied(format!(
                "permission {} is required",
                Permission::OrganizationsCreate.as_str()
            )));
        }
        let Text(display_name, description) = checked_text(body.display_name, body.description)?;
        let now = now();
        let record = OrganizationRecord {
            uid: Uuid::new_v4(),
            id: body.id.unwrap_or_else(|| ids::generate("org")).to_string(),
            display_name: display_name.unwrap_or_default(),
            description: description.unwrap_or_default(),
            generation: 1,
            created_at: now,
            updated_at: now,
        };
        self.store.create_organization(&record).await?;
        Ok(organization_view(&record))
    }

    pub async fn get_organization(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<Versioned<Organization>> {
        let record = self
            .organization_for(&caller.principal, id, Permission::OrganizationsGet)
            .await?;
        Ok(organization_view(&record))
    }

    pub async fn list_organizations(
        &self,
        caller: &Caller,
        paging: &Paging,
    ) -> Result<OrganizationList> {
        let principal = &caller.principal;
        let page_request = self.pages.page_request(paging, "organizations")?;
        if !principal.is_super_admin() {
            // Everyone else sees exactly their own organization.
            let own = self.store.get_organization(&principal.tenant).await?;
            let organizations: Vec<_> = own
                .iter()
                .filter(|o| {
                    page_request
                        .after
                        .as_deref()
                        .is_none_or(|a| o.id.as_str() > a)
                })
                .skip(page_request.offset.unwrap_or(0) as usize)
                .map(|o| organization_view(o).value)
                .collect();
            return Ok(OrganizationList {
                organizations,
                next_page_token: None,
                total: page_request.with_total.then_some(own.iter().count() as u64),
            });
        }
        let page = self.store.list_organizations(&page_request).await?;
        Ok(OrganizationList {
            next_page_token: self.next_token(&page, &page_request, "organizations", |o| &o.id),
            organizations: page
                .items
                .iter()
                .map(|o| organization_view(o).value)
                .collect(),
            total: page.total,
        })
    }

    pub async fn update_organization(
        &self,
        caller: &Caller,
        id: &str,
        precondition: &Precondition,
        body: OrganizationUpdateRequest,
    ) -> Result<Versioned<Organization>> {
        let text = &checked_text(body.display_name, body.description)?;
        optimistic(&format!("organization {id}"), move || async move {
            let mut record = self
                .organization_for(&caller.principal, id, Permission::OrganizationsUpdate)
                .await?;
            record.apply_text(precondition, text)?;
            let stored = self.store.update_organization(&record).await?;
            Ok(stored.as_ref().map(organization_view))
        })
        .await
    }

    pub async fn delete_organization(
        &self,
        caller: &Caller,
        id: &str,
        precondition: &Precondition,
    ) -> Result<()> {
        let record = self
            .organization_for(&caller.principal, id, Permission::OrganizationsDelete)
            .await?;
        precondition.check(&record.etag(), &record.what())?;
        self.store.delete_organization(&record.id).await?;
        Ok(())
    }

    /// The project `id` (named by path parameter `param`), if the caller may use it for
    /// `permission`; a project the caller cannot see is a 404 like a missing one.
    pub(crate) async fn project_record(
        &self,
        principal: &Principal,
        param: &str,
        id: &str,
        permission: Permission,
    ) -> Result<ProjectRecord> {
        let id = resource_id(param, id)?;
        let not_found = || Error::NotFound(format!("project {id} not found"));
        let record = self
            .store
            .get_project(id.as_str())
            .await?
            .ok_or_else(not_found)?;
        principal.authorize(
            permission,
            &record.organization_id,
            Some(&record.id),
            not_found,
        )?;
        Ok(record)
    }

    pub async fn create_project(
        &self,
        caller: &Caller,
        body: ProjectCreateRequest,
    ) -> Result<Versioned<Project>> {
        let principal = &caller.principal;
        let Text(display_name, description) = checked_text(body.display_name, body.description)?;
        let organization = body.organization_id.to_string();
        principal.authorize(Permission::ProjectsCreate, &organization, None, || {
            Error::invalid(
                "organizationId",
                format!("organization {organization} does not exist"),
            )
        })?;
        let now = now();
        let record = ProjectRecord {
            uid: Uuid::new_v4(),
            id: body
                .id
                .unwrap_or_else(|| ids::generate("project"))
                .to_string(),
            organization_id: organization,
            display_name: display_name.unwrap_or_default(),
            description: description.unwrap_or_default(),
            generation: 1,
            created_at: now,
            updated_at: now,
        };
        self.store.create_project(&record).await?;
        Ok(project_view(&record))
    }

    pub async fn get_project(&self, caller: &Caller, id: &str) -> Result<Versioned<Project>> {
        let record = self
            .project_record(&caller.principal, "id", id, Permission::ProjectsGet)
            .await?;
        Ok(project_view(&record))
    }

    pub async fn list_projects(
        &self,
        caller: &Caller,
        paging: &Paging,
        filter: &OrganizationFilter,
    ) -> Result<ProjectList> {
        let principal = &caller.principal;
        let organization = match filter.organization_id.as_deref() {
            Some(org) => Some(resource_id("organizationId", org)?.to_string()),
            None if principal.is_super_admin() => None,
            None => Some(principal.tenant.clone()),
        };
        let query_key = format!("projects:{}", organization.as_deref().unwrap_or("*"));
        let page_request = self.pages.page_request(paging, &query_key)?;
        let page = match &organization {
            Some(org) if !principal.sees(org) => stratus_store::Page {
                items: vec![],
                more: false,
                total: page_request.with_total.then_some(0),
            },
            // A principal holding roles on one project sees that project.
            _ if principal.scope == "project" && !principal.is_super_admin() => {
                let own = self.store.get_project(&principal.scope_id).await?;
                stratus_store::Page {
                    total: page_request.with_total.then_some(own.iter().count() as u64),
                    items: own
                        .into_iter()
                        .filter(|p| {
                            page_request
                                .after
                                .as_deref()
                                .is_none_or(|a| p.id.as_str() > a)
                        })
                        .collect(),
                    more: false,
                }
            }
            _ => {
                principal.authorize(
                    Permission::ProjectsList,
                    organization.as_deref().unwrap_or(&principal.tenant),
                    None,
                    || Error::NotFound("no such organization".into()),
                )?;
                self.store
                    .list_projects(organization.as_deref(), &page_request)
                    .await?
            }
        };
        Ok(ProjectList {
            next_page_token: self.next_token(&page, &page_request, &query_key, |p| &p.id),
            projects: page.items.iter().map(|p| project_view(p).value).collect(),
            total: page.total,
        })
    }

    pub async fn update_project(
        &self,
        caller: &Caller,
        id: &str,
        precondition: &Precondition,
        body: ProjectUpdateRequest,
    ) -> Result<Versioned<Project>> {
        let text = &checked_text(body.display_name, body.description)?;
        optimistic(&format!("project {id}"), move || async move {
            let mut record = self
                .project_record(&caller.principal, "id", id, Permission::ProjectsUpdate)
                .await?;
            record.apply_text(precondition, text)?;
            let stored = self.store.update_project(&record).await?;
            Ok(stored.as_ref().map(project_view))
        })
        .await
    }

    pub async fn delete_project(
        &self,
        caller: &Caller,
        id: &str,
        precondition: &Precondition,
    ) -> Result<()> {
        let record = self
            .project_record(&caller.principal, "id", id, Permission::ProjectsDelete)
            .await?;
        precondition.check(&record.etag(), &record.what())?;
        self.store.delete_project(&record.id).await?;
        Ok(())
    }

    /// Creates the organization and project a new region starts with, unless they exist.
    pub async fn ensure_default_tenancy(&self, organization: &str, project: &str) -> Result<()> {
        let now = now();
        let org = OrganizationRecord {
            uid: Uuid::new_v4(),
            id: organization.to_owned(),
            display_name: "Default organization".into(),
            description: String::new(),
            generation: 1,
            created_at: now,
            updated_at: now,
        };
        match self.store.create_organization(&org).await {
            Ok(()) | Err(Error::AlreadyExists(_)) => {}
            Err(e) => return Err(e),
        }
        let project = ProjectRecord {
            uid: Uuid::new_v4(),
            id: project.to_owned(),
            organization_id: organization.to_owned(),
            display_name: "Default project".into(),
            description: String::new(),
            generation: 1,
            created_at: now,
            updated_at: now,
        };
        match self.store.create_project(&project).await {
            Ok(()) | Err(Error::AlreadyExists(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The token for the page after `page`, when there is one (never in offset mode).
    pub(crate) fn next_token<T>(
        &self,
        page: &stratus_store::Page<T>,
        request: &stratus_store::PageRequest,
        query_key: &str,
        id_of: fn(&T) -> &str,
    ) -> Option<String> {
        match (page.more, page.items.last()) {
            (true, Some(last)) if request.offset.is_none() => {
                Some(self.pages.next_token(query_key, id_of(last)))
            }
            _ => None,
        }
    }
}
