//! Who may do what: one check, called by every operation.
//!
//! A principal acts inside its organization (the token's `tenant_id`) with roles. A resource
//! of another organization answers exactly like a missing one (404), so existence never leaks;
//! inside the caller's organization a role that is too small gets a 403 naming the missing
//! permission. The `super_admin` role belongs to the region's operators (the bootstrap key)
//! and reaches every organization.

use crate::auth::Principal;
use stratus_core::{Error, Result};

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
        }
    }

    fn is_read(self) -> bool {
        self.as_str().ends_with(".get") || self.as_str().ends_with(".list")
    }

    fn is_compute(self) -> bool {
        self.as_str().starts_with("compute.")
    }
}

/// The operator role that reaches every organization.
pub const SUPER_ADMIN: &str = "super_admin";

fn role_grants(role: &str, permission: Permission) -> bool {
    match role {
        SUPER_ADMIN | "owner" => true,
        "admin" => permission != Permission::OrganizationsDelete,
        "member" => permission.is_compute() || permission.is_read(),
        "viewer" => permission.is_read(),
        _ => false,
    }
}

impl Principal {
    pub fn is_super_admin(&self) -> bool {
        self.roles.iter().any(|r| r == SUPER_ADMIN)
    }

    /// Whether the principal can see resources of `organization` at all.
    pub fn sees(&self, organization: &str) -> bool {
        self.is_super_admin() || self.tenant == organization
    }

    /// Allows `permission` on a resource of `organization`; `not_found` is the error for a
    /// resource the caller cannot see.
    pub fn authorize(
        &self,
        permission: Permission,
        organization: &str,
        not_found: impl FnOnce() -> Error,
    ) -> Result<()> {
        if !self.sees(organization) {
            return Err(not_found());
        }
        if self.roles.iter().any(|r| role_grants(r, permission)) {
            Ok(())
        } else {
            Err(Error::PermissionDenied(format!(
                "permission {} is required; the caller has roles [{}]",
                permission.as_str(),
                self.roles.join(", ")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(tenant: &str, role: &str) -> Principal {
        Principal {
            subject: "u".into(),
            tenant: tenant.into(),
            roles: vec![role.into()],
            principal_type: "user".into(),
            credential_id: None,
        }
    }

    #[test]
    fn other_organizations_look_like_nothing() {
        let p = principal("acme", "owner");
        let err = p
            .authorize(Permission::InstancesGet, "globex", || {
                Error::NotFound("x".into())
            })
            .unwrap_err();
        assert!(matches!(err, Error::NotFound(_)));
    }

    #[test]
    fn small_roles_are_told_which_permission_is_missing() {
        let p = principal("acme", "viewer");
        assert!(
            p.authorize(Permission::InstancesList, "acme", || unreachable!())
                .is_ok()
        );
        let err = p
            .authorize(Permission::InstancesCreate, "acme", || unreachable!())
            .unwrap_err();
        assert!(
            matches!(err, Error::PermissionDenied(m) if m.contains("compute.instances.create"))
        );
    }

    #[test]
    fn super_admins_reach_everywhere() {
        let p = principal("default", SUPER_ADMIN);
        assert!(
            p.authorize(Permission::OrganizationsDelete, "globex", || unreachable!())
                .is_ok()
        );
    }
}
