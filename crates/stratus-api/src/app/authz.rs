//! Who may do what: one check, called by every operation.
//!
//! A principal acts inside its organization (the token's `tenant_id`) with roles. A resource
//! of another organization answers exactly like a missing one (404), so existence never leaks;
//! inside the caller's organization a role that is too small gets a 403 naming the missing
//! permission. The `super_admin` role belongs to the region's operators (the bootstrap key)
//! and reaches every organization.

use stratus_core::{Error, Result};
use stratus_types::auth::Claims;

/// A permission string of the contract's shape `{service}.{resource}.{verb}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    InstancesGet,
    InstancesList,
    InstancesCreate,
    InstancesUpdate,
    InstancesDelete,
    ProjectsGet,
    ProjectsList,
    ProjectsCreate,
    ProjectsUpdate,
    ProjectsDelete,
    OrganizationsGet,
    OrganizationsList,
    OrganizationsCreate,
    OrganizationsUpdate,
    OrganizationsDelete,
    ImagesGet,
    ImagesList,
    ImagesCreate,
    ImagesDelete,
    ApiKeysGet,
    ApiKeysList,
    ApiKeysCreate,
    ApiKeysUpdate,
    ApiKeysDelete,
    ServiceAccountsGet,
    ServiceAccountsList,
    ServiceAccountsCreate,
    ServiceAccountsUpdate,
    ServiceAccountsDelete,
    QuotasGet,
    QuotasUpdate,
    HostsGet,
    HostsList,
    HostsUpdate,
    ServersGet,
    ServersList,
    ServersCreate,
    ServersUpdate,
    ServersDelete,
    NetworksGet,
    NetworksList,
    NetworksCreate,
    NetworksUpdate,
    NetworksDelete,
    SubnetsGet,
    SubnetsList,
    AddressesGet,
    AddressesList,
    AddressesCreate,
    AddressesDelete,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        use Permission::*;
        match self {
            InstancesGet => "compute.instances.get",
            InstancesList => "compute.instances.list",
            InstancesCreate => "compute.instances.create",
            InstancesUpdate => "compute.instances.update",
            InstancesDelete => "compute.instances.delete",
            ProjectsGet => "resourcemanager.projects.get",
            ProjectsList => "resourcemanager.projects.list",
            ProjectsCreate => "resourcemanager.projects.create",
            ProjectsUpdate => "resourcemanager.projects.update",
            ProjectsDelete => "resourcemanager.projects.delete",
            OrganizationsGet => "resourcemanager.organizations.get",
            OrganizationsList => "resourcemanager.organizations.list",
            OrganizationsCreate => "resourcemanager.organizations.create",
            OrganizationsUpdate => "resourcemanager.organizations.update",
            OrganizationsDelete => "resourcemanager.organizations.delete",
            ImagesGet => "compute.images.get",
            ImagesList => "compute.images.list",
            ImagesCreate => "compute.images.create",
            ImagesDelete => "compute.images.delete",
            ApiKeysGet => "iam.apikeys.get",
            ApiKeysList => "iam.apikeys.list",
            ApiKeysCreate => "iam.apikeys.create",
            ApiKeysUpdate => "iam.apikeys.update",
            ApiKeysDelete => "iam.apikeys.delete",
            ServiceAccountsGet => "iam.serviceAccounts.get",
            ServiceAccountsList => "iam.serviceAccounts.list",
            ServiceAccountsCreate => "iam.serviceAccounts.create",
            ServiceAccountsUpdate => "iam.serviceAccounts.update",
            ServiceAccountsDelete => "iam.serviceAccounts.delete",
            QuotasGet => "resourcemanager.quotas.get",
            QuotasUpdate => "resourcemanager.quotas.update",
            HostsGet => "compute.hosts.get",
            HostsList => "compute.hosts.list",
            HostsUpdate => "compute.hosts.update",
            ServersGet => "infrastructure.servers.get",
            ServersList => "infrastructure.servers.list",
            ServersCreate => "infrastructure.servers.create",
            ServersUpdate => "infrastructure.servers.update",
            ServersDelete => "infrastructure.servers.delete",
            NetworksGet => "compute.networks.get",
            NetworksList => "compute.networks.list",
            NetworksCreate => "compute.networks.create",
            NetworksUpdate => "compute.networks.update",
            NetworksDelete => "compute.networks.delete",
            SubnetsGet => "compute.subnets.get",
            SubnetsList => "compute.subnets.list",
            AddressesGet => "compute.addresses.get",
            AddressesList => "compute.addresses.list",
            AddressesCreate => "compute.addresses.create",
            AddressesDelete => "compute.addresses.delete",
        }
    }

    /// The permission named `text` (`compute.instances.create`), if there is one.
    pub fn parse(text: &str) -> Option<Permission> {
        Permission::ALL.iter().copied().find(|p| p.as_str() == text)
    }

    fn is_read(self) -> bool {
        self.as_str().ends_with(".get") || self.as_str().ends_with(".list")
    }

    fn is_compute(self) -> bool {
        self.as_str().starts_with("compute.") && !self.is_region_level() && !self.is_hosts()
    }

    /// Permissions on the region's hosts and bare-metal servers: its operators' alone,
    /// reading included (a tenant learns nothing of the machines under its instances).
    fn is_hosts(self) -> bool {
        self.as_str().starts_with("compute.hosts.")
            || self.as_str().starts_with("infrastructure.servers.")
    }

    /// Permissions on what the whole region shares (its images): reading them is everyone's,
    /// changing them is for the region's operators.
    fn is_region_level(self) -> bool {
        self.as_str().starts_with("compute.images.")
    }

    /// Permissions on credentials (API keys, service accounts): whoever holds them can make
    /// new principals, so they belong to administrators only, never to readers.
    fn is_iam(self) -> bool {
        self.as_str().starts_with("iam.")
    }

    fn is_api_keys(self) -> bool {
        self.as_str().starts_with("iam.apikeys.")
    }
}

/// Who is calling, from a verified bearer token.
#[derive(Clone, Debug, PartialEq)]
pub struct Principal {
    pub subject: String,
    /// The organization the principal belongs to.
    pub tenant: String,
    pub roles: Vec<String>,
    /// `organization`: the roles hold in every project of the tenant; `project`: only in
    /// project `scope_id`.
    pub scope: String,
    pub scope_id: String,
    pub principal_type: String,
    pub credential_id: Option<String>,
    /// When the token it came from expires (Unix seconds); `None` for principals that are
    /// not a request's (the region's own work, `auth/check` subjects).
    pub expires_at: Option<i64>,
}

impl From<Claims> for Principal {
    fn from(c: Claims) -> Self {
        Self {
            subject: c.sub,
            tenant: c.tenant_id,
            roles: c.roles,
            scope: c.scope,
            scope_id: c.scope_id,
            principal_type: c.principal_type,
            credential_id: c.credential_id,
            expires_at: Some(c.exp),
        }
    }
}

/// The operator role that reaches every organization.
pub const SUPER_ADMIN: &str = "super_admin";

/// Roles a principal can hold on a whole organization.
pub const ORGANIZATION_ROLES: &[&str] = &["owner", "admin", "member", "viewer"];
/// Roles a principal can hold on one project.
pub const PROJECT_ROLES: &[&str] = &["admin", "member", "viewer"];

impl Permission {
    /// Every permission, for comparing what roles grant.
    pub const ALL: &'static [Permission] = &[
        Permission::InstancesGet,
        Permission::InstancesList,
        Permission::InstancesCreate,
        Permission::InstancesUpdate,
        Permission::InstancesDelete,
        Permission::ProjectsGet,
        Permission::ProjectsList,
        Permission::ProjectsCreate,
        Permission::ProjectsUpdate,
        Permission::ProjectsDelete,
        Permission::OrganizationsGet,
        Permission::OrganizationsList,
        Permission::OrganizationsCreate,
        Permission::OrganizationsUpdate,
        Permission::OrganizationsDelete,
        Permission::ImagesGet,
        Permission::ImagesList,
        Permission::ImagesCreate,
        Permission::ImagesDelete,
        Permission::ApiKeysGet,
        Permission::ApiKeysList,
        Permission::ApiKeysCreate,
        Permission::ApiKeysUpdate,
        Permission::ApiKeysDelete,
        Permission::ServiceAccountsGet,
        Permission::ServiceAccountsList,
        Permission::ServiceAccountsCreate,
        Permission::ServiceAccountsUpdate,
        Permission::ServiceAccountsDelete,
        Permission::QuotasGet,
        Permission::QuotasUpdate,
        Permission::HostsGet,
        Permission::HostsList,
        Permission::HostsUpdate,
        Permission::ServersGet,
        Permission::ServersList,
        Permission::ServersCreate,
        Permission::ServersUpdate,
        Permission::ServersDelete,
        Permission::NetworksGet,
        Permission::NetworksList,
        Permission::NetworksCreate,
        Permission::NetworksUpdate,
        Permission::NetworksDelete,
        Permission::SubnetsGet,
        Permission::SubnetsList,
        Permission::AddressesGet,
        Permission::AddressesList,
        Permission::AddressesCreate,
        Permission::AddressesDelete,
    ];
}

/// Whether `role`, held at `scope` (`organization` or `project`), grants `permission`.
/// Organization roles: owner (everything), admin (all but deleting the organization), member
/// (compute everywhere, reading the rest), viewer (reading). Project roles: admin (compute,
/// the project's settings and its API keys), member (compute), viewer (reading). Credentials
/// (`iam.*`) are managed by administrators only; quotas are read by the organization's
/// owners and admins and set by the region's operators; hosts are the operators' alone.
pub fn role_grants(scope: &str, role: &str, permission: Permission) -> bool {
    use Permission::*;
    let project_settings = matches!(permission, ProjectsGet | ProjectsUpdate);
    if permission.is_region_level() {
        return role == SUPER_ADMIN || permission.is_read();
    }
    if permission.is_hosts() {
        return role == SUPER_ADMIN;
    }
    // Quotas bound what an organization may take, so setting them is the operators' alone;
    // its administrators may read them.
    if permission == QuotasUpdate {
        return role == SUPER_ADMIN;
    }
    if permission == QuotasGet {
        return matches!(
            (scope, role),
            (_, SUPER_ADMIN) | ("organization", "owner" | "admin")
        );
    }
    if permission.is_iam() {
        return match (scope, role) {
            (_, SUPER_ADMIN) | ("organization", "owner" | "admin") => true,
            ("project", "admin") => permission.is_api_keys(),
            _ => false,
        };
    }
    match (scope, role) {
        (_, SUPER_ADMIN) | ("organization", "owner") => true,
        ("organization", "admin") => permission != OrganizationsDelete,
        ("organization", "member") => permission.is_compute() || permission.is_read(),
        ("project", "admin") => permission.is_compute() || project_settings,
        ("project", "member") => permission.is_compute() || permission == ProjectsGet,
        ("organization" | "project", "viewer") => {
            permission.is_read() && (scope == "organization" || permission != OrganizationsList)
        }
        _ => false,
    }
}

/// What the rules for managing a credential or a token look at.
#[derive(Clone, Copy, Debug)]
pub struct CredentialBounds<'a> {
    /// The organization it acts in.
    pub organization: &'a str,
    /// `organization` or `project`, and which one.
    pub scope: &'a str,
    pub scope_id: &'a str,
    /// The roles it holds there.
    pub roles: &'a [String],
    /// Who made it, when that is known.
    pub created_by: Option<&'a str>,
}

impl Principal {
    pub fn is_super_admin(&self) -> bool {
        self.roles.iter().any(|r| r == SUPER_ADMIN)
    }

    /// Whether the principal can see resources of `organization` at all.
    pub fn sees(&self, organization: &str) -> bool {
        self.is_super_admin() || self.tenant == organization
    }

    /// Whether the principal administers `organization`: owner or admin on all of it, or an
    /// operator of the region.
    pub fn administers(&self, organization: &str) -> bool {
        self.is_super_admin()
            || (self.tenant == organization
                && self.scope == "organization"
                && self
                    .roles
                    .iter()
                    .any(|r| matches!(r.as_str(), "owner" | "admin" | SUPER_ADMIN)))
    }

    pub(crate) fn must_administer(&self, what: &str) -> Result<()> {
        if self.administers(&self.tenant) {
            Ok(())
        } else {
            Err(Error::PermissionDenied(format!(
                "{what} needs role owner or admin on organization {}; the caller holds [{}] on {} {}",
                self.tenant,
                self.roles.join(", "),
                self.scope,
                self.scope_id
            )))
        }
    }

    /// Whether the principal's roles grant every permission `role` would grant at `scope`:
    /// nobody hands out more than they hold.
    pub fn can_grant(&self, scope: &str, role: &str) -> bool {
        self.is_super_admin()
            || (role != SUPER_ADMIN
                && Permission::ALL.iter().all(|p| {
                    !role_grants(scope, role, *p)
                        || self.roles.iter().any(|r| role_grants(&self.scope, r, *p))
                }))
    }

    /// Whether `roles` held at `scope` grant nothing the principal's own roles do not.
    pub fn holds_all(&self, scope: &str, roles: &[String]) -> bool {
        roles.iter().all(|r| self.can_grant(scope, r))
    }

    /// Whether the principal's roles grant `permission` where it acts: in its organization,
    /// or only in `project` when its roles hold on one project.
    fn grants(&self, permission: Permission, project: Option<&str>) -> bool {
        let in_scope = self.is_super_admin()
            || match self.scope.as_str() {
                "project" => project == Some(self.scope_id.as_str()),
                _ => true,
            };
        in_scope
            && self
                .roles
                .iter()
                .any(|r| role_grants(&self.scope, r, permission))
    }

    /// Whether the principal may use `permission` on a credential (an API key or service
    /// account) or on a token, described by `bounds`. The region's operators may; anyone else
    /// only inside its own organization, holding the permission where the credential acts,
    /// holding at least every role the credential holds, and, unless it administers the whole
    /// organization, only on credentials it made itself. Nobody reaches up: a key made by an
    /// administrator never manages its maker's other keys, and an administrator never manages
    /// an owner's.
    pub fn manages(&self, permission: Permission, bounds: &CredentialBounds<'_>) -> bool {
        if self.is_super_admin() {
            return true;
        }
        let project = (bounds.scope == "project").then_some(bounds.scope_id);
        bounds.organization == self.tenant
            && self.grants(permission, project)
            && self.holds_all(bounds.scope, bounds.roles)
            && (self.administers(&self.tenant) || bounds.created_by == Some(self.subject.as_str()))
    }

    /// Allows `permission` where the principal acts (its organization, or its project), with
    /// a 403 naming the permission otherwise: for operations that make something new there.
    pub fn authorize_here(&self, permission: Permission) -> Result<()> {
        let project = (self.scope == "project").then_some(self.scope_id.as_str());
        if self.grants(permission, project) {
            return Ok(());
        }
        Err(self.denied(permission, None))
    }

    /// The 403 for `permission` (on `target`, when named), saying what the caller holds.
    fn denied(&self, permission: Permission, target: Option<String>) -> Error {
        Error::PermissionDenied(format!(
            "permission {}{} is required; the caller holds [{}] on {} {}",
            permission.as_str(),
            target.map(|t| format!(" on {t}")).unwrap_or_default(),
            self.roles.join(", "),
            self.scope,
            self.scope_id
        ))
    }

    /// Allows `permission` on something the whole region shares (its images).
    pub fn authorize_region(&self, permission: Permission) -> Result<()> {
        if self
            .roles
            .iter()
            .any(|r| role_grants(&self.scope, r, permission))
        {
            Ok(())
        } else {
            Err(Error::PermissionDenied(format!(
                "permission {} is required (the region's operators hold it); the caller holds [{}]",
                permission.as_str(),
                self.roles.join(", ")
            )))
        }
    }

    /// Allows `permission` on a resource of `organization` (inside `project` when the
    /// resource lives in one); `not_found` is the error for a resource the caller cannot see.
    pub fn authorize(
        &self,
        permission: Permission,
        organization: &str,
        project: Option<&str>,
        not_found: impl FnOnce() -> Error,
    ) -> Result<()> {
        if !self.sees(organization) {
            return Err(not_found());
        }
        if self.grants(permission, project) {
            return Ok(());
        }
        let target = match project {
            Some(project) => format!("project {project}"),
            None => format!("organization {organization}"),
        };
        Err(self.denied(permission, Some(target)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(tenant: &str, role: &str) -> Principal {
        Principal {
            scope: "organization".into(),
            scope_id: tenant.into(),
            subject: "u".into(),
            tenant: tenant.into(),
            roles: vec![role.into()],
            principal_type: "user".into(),
            credential_id: None,
            expires_at: None,
        }
    }

    #[test]
    fn other_organizations_look_like_nothing() {
        let p = principal("acme", "owner");
        let err = p
            .authorize(Permission::InstancesGet, "globex", Some("p"), || {
                Error::NotFound("x".into())
            })
            .unwrap_err();
        assert!(matches!(err, Error::NotFound(_)));
    }

    #[test]
    fn small_roles_are_told_which_permission_is_missing() {
        let p = principal("acme", "viewer");
        assert!(
            p.authorize(
                Permission::InstancesList,
                "acme",
                Some("p"),
                || unreachable!()
            )
            .is_ok()
        );
        let err = p
            .authorize(
                Permission::InstancesCreate,
                "acme",
                Some("p"),
                || unreachable!(),
            )
            .unwrap_err();
        assert!(
            matches!(err, Error::PermissionDenied(m) if m.contains("compute.instances.create"))
        );
    }

    #[test]
    fn super_admins_reach_everywhere() {
        let p = principal("default", SUPER_ADMIN);
        assert!(
            p.authorize(
                Permission::OrganizationsDelete,
                "globex",
                None,
                || unreachable!()
            )
            .is_ok()
        );
    }

    #[test]
    fn project_roles_stay_inside_their_project() {
        let mut p = principal("acme", "member");
        p.scope = "project".into();
        p.scope_id = "web".into();
        assert!(
            p.authorize(
                Permission::InstancesCreate,
                "acme",
                Some("web"),
                || unreachable!()
            )
            .is_ok()
        );
        let err = p
            .authorize(
                Permission::InstancesGet,
                "acme",
                Some("db"),
                || unreachable!(),
            )
            .unwrap_err();
        assert!(matches!(err, Error::PermissionDenied(m) if m.contains("project db")));
        assert!(
            p.authorize(Permission::ProjectsCreate, "acme", None, || unreachable!())
                .is_err()
        );
    }

    #[test]
    fn nobody_grants_more_than_they_hold() {
        let admin = principal("acme", "admin");
        assert!(admin.can_grant("organization", "member"));
        assert!(admin.can_grant("project", "admin"));
        assert!(!admin.can_grant("organization", "owner"));
        assert!(!admin.can_grant("organization", SUPER_ADMIN));
        let viewer = principal("acme", "viewer");
        assert!(viewer.can_grant("project", "viewer"));
        assert!(!viewer.can_grant("project", "member"));
    }
}
