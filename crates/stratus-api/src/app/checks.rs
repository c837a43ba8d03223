//! `POST /v1/regions/global/auth/check`: may a principal do these things?
//!
//! A console hides the buttons its user may not press, a pipeline checks before it starts.
//! The answers come from the same rules every operation applies (`authz`), so a check and the
//! operation itself never disagree. A subject other than the caller (an API key id or a
//! service account's client id) can be asked about by whoever administers its organization;
//! a resource the subject cannot see is simply "not allowed".

use super::{App, Caller, Permission, Principal};
use stratus_core::{Error, Result};
use stratus_types::auth::{CheckRequest, CheckResponse, CheckResult};

/// Most questions one request may ask.
const MAX_CHECKS: usize = 100;

impl App {
    pub async fn check_permissions(
        &self,
        caller: &Caller,
        body: CheckRequest,
    ) -> Result<CheckResponse> {
        let principal = &caller.principal;
        if body.checks.is_empty() || body.checks.len() > MAX_CHECKS {
            return Err(Error::invalid(
                "checks",
                format!("ask 1 to {MAX_CHECKS} questions; got {}", body.checks.len()),
            ));
        }
        let mut questions = Vec::with_capacity(body.checks.len());
        for (i, check) in body.checks.iter().enumerate() {
            let permission = Permission::parse(&check.action).ok_or_else(|| {
                Error::invalid(
                    format!("checks[{i}].action"),
                    format!("{:?} is not a permission of this API", check.action),
                )
            })?;
            questions.push((permission, check.resource.as_str()));
        }
        let subject = match body.subject {
            None => principal.clone(),
            Some(subject) if subject == principal.subject => principal.clone(),
            Some(subject) => self.subject_principal(principal, &subject).await?,
        };
        let mut results = Vec::with_capacity(questions.len());
        for (permission, resource) in questions {
            results.push(CheckResult {
                allowed: self.allowed(&subject, permission, resource).await?,
            });
        }
        Ok(CheckResponse { results })
    }

    /// The principal an API key or a service account acts as, for a caller administering
    /// its organization.
    async fn subject_principal(&self, caller: &Principal, subject: &str) -> Result<Principal> {
        let (tenant, scope, scope_id, roles, principal_type) = if let Some(key) =
            self.store.get_api_key(subject).await?
        {
            (
                key.organization_id,
                key.scope,
                key.scope_id,
                key.roles,
                "api_key",
            )
        } else if let Some(account) = self.store.get_service_account_by_client_id(subject).await? {
            (
                account.organization_id,
                account.scope,
                account.scope_id,
                account.roles,
                "service_account",
            )
        } else {
            return Err(Error::NotFound(format!("subject {subject} not found")));
        };
        if !(caller.administers(&tenant) && caller.holds_all(&scope, &roles)) {
            if caller.sees(&tenant) && !caller.administers(&tenant) {
                return Err(Error::PermissionDenied(format!(
                    "asking about another subject needs role owner or admin on organization {tenant}"
                )));
            }
            return Err(Error::NotFound(format!("subject {subject} not found")));
        }
        Ok(Principal {
            subject: subject.to_owned(),
            tenant,
            roles,
            scope,
            scope_id,
            principal_type: principal_type.into(),
            credential_id: None,
            expires_at: None,
        })
    }

    async fn allowed(
        &self,
        subject: &Principal,
        permission: Permission,
        resource: &str,
    ) -> Result<bool> {
        if permission.as_str().starts_with("compute.images.") {
            return Ok(subject.authorize_region(permission).is_ok());
        }
        let not_found = || Error::NotFound(String::new());
        if let Some(project) = self.store.get_project(resource).await? {
            return Ok(subject
                .authorize(
                    permission,
                    &project.organization_id,
                    Some(&project.id),
                    not_found,
                )
                .is_ok());
        }
        if self.store.get_organization(resource).await?.is_some() {
            return Ok(subject
                .authorize(permission, resource, None, not_found)
                .is_ok());
        }
        Ok(false)
    }
}
