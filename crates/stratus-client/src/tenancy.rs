//! Organizations and projects (global resources).

use crate::{Client, ListOptions, Result, all_pages, segment};
use reqwest::Method;
use stratus_types::{
    Organization, OrganizationCreateRequest, OrganizationList, OrganizationUpdateRequest, Project,
    ProjectCreateRequest, ProjectList, ProjectUpdateRequest, Quotas, QuotasUpdateRequest,
};

const PROJECTS: &str = "/v1/regions/global/projects";
const ORGANIZATIONS: &str = "/v1/regions/global/organizations";

impl Client {
    /// One page of the projects the caller can see.
    pub async fn list_projects(&self, options: &ListOptions) -> Result<ProjectList> {
        let request = self.request(Method::GET, PROJECTS).query(&options.query());
        self.send(request).await
    }

    /// Every project the caller can see, following `nextPageToken`.
    pub async fn list_all_projects(&self) -> Result<Vec<Project>> {
        all_pages(|options| async move {
            let page = self.list_projects(&options).await?;
            Ok((page.projects, page.next_page_token))
        })
        .await
    }

    /// One project by id.
    pub async fn get_project(&self, id: &str) -> Result<Project> {
        let path = format!("{PROJECTS}/{}", segment(id));
        self.send(self.request(Method::GET, &path)).await
    }

    /// Creates a project in an organization.
    pub async fn create_project(&self, body: &ProjectCreateRequest) -> Result<Project> {
        self.send(self.request(Method::POST, PROJECTS).json(body))
            .await
    }

    /// Replaces the fields present in `body`.
    pub async fn update_project(&self, id: &str, body: &ProjectUpdateRequest) -> Result<Project> {
        let path = format!("{PROJECTS}/{}", segment(id));
        self.send(self.request(Method::PATCH, &path).json(body))
            .await
    }

    /// Deletes a project; the API refuses while it holds instances.
    pub async fn delete_project(&self, id: &str) -> Result<()> {
        let path = format!("{PROJECTS}/{}", segment(id));
        self.send_empty(self.request(Method::DELETE, &path)).await
    }

    /// One page of the organizations the caller can see.
    pub async fn list_organizations(&self, options: &ListOptions) -> Result<OrganizationList> {
        let request = self
            .request(Method::GET, ORGANIZATIONS)
            .query(&options.query());
        self.send(request).await
    }

    /// One organization by id.
    pub async fn get_organization(&self, id: &str) -> Result<Organization> {
        let path = format!("{ORGANIZATIONS}/{}", segment(id));
        self.send(self.request(Method::GET, &path)).await
    }

    /// Creates an organization (a tenant).
    pub async fn create_organization(
        &self,
        body: &OrganizationCreateRequest,
    ) -> Result<Organization> {
        self.send(self.request(Method::POST, ORGANIZATIONS).json(body))
            .await
    }

    /// Replaces the fields present in `body`.
    pub async fn update_organization(
        &self,
        id: &str,
        body: &OrganizationUpdateRequest,
    ) -> Result<Organization> {
        let path = format!("{ORGANIZATIONS}/{}", segment(id));
        self.send(self.request(Method::PATCH, &path).json(body))
            .await
    }

    /// Deletes an organization without projects.
    pub async fn delete_organization(&self, id: &str) -> Result<()> {
        let path = format!("{ORGANIZATIONS}/{}", segment(id));
        self.send_empty(self.request(Method::DELETE, &path)).await
    }

    /// An organization's quotas and what it uses of each.
    pub async fn get_quotas(&self, organization: &str) -> Result<Quotas> {
        let path = format!("{ORGANIZATIONS}/{}/quotas", segment(organization));
        self.send(self.request(Method::GET, &path)).await
    }

    /// Sets an organization's quotas (the region's operators).
    pub async fn update_quotas(
        &self,
        organization: &str,
        body: &QuotasUpdateRequest,
    ) -> Result<Quotas> {
        let path = format!("{ORGANIZATIONS}/{}/quotas", segment(organization));
        self.send(self.request(Method::PATCH, &path).json(body))
            .await
    }
}
