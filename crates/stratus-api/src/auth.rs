//! The bearer-token check on every API request, as an extractor.
//!
//! A handler that takes a [`Caller`] (or a [`Principal`]) gets one only for a request whose
//! `Authorization: Bearer` token the application accepts ([`App::authenticate`]): the region's
//! own tokens and those of configured OIDC issuers, live (not revoked, their credential still
//! active). The principal is also left for the audit trail and named in the request's span.

use crate::app::{App, Caller, Principal};
use crate::audit::AuditSlot;
use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use std::sync::Arc;
use stratus_core::Error;

impl FromRequestParts<Arc<App>> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| {
                Error::Unauthenticated(
                    "this request needs an Authorization: Bearer token (POST /v1/regions/global/auth/token issues one)"
                        .into(),
                )
            })?
            .to_str()
            .map_err(|_| Error::Unauthenticated("malformed Authorization header".into()))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or_else(|| {
                Error::Unauthenticated("the Authorization header must be `Bearer <token>`".into())
            })?;
        let principal = app.authenticate(token.trim()).await?;
        if let Some(slot) = parts.extensions.get::<AuditSlot>() {
            slot.fill(&principal);
        }
        tracing::Span::current().record("principal", principal.subject.as_str());
        Ok(principal)
    }
}

impl FromRequestParts<Arc<App>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let principal = Principal::from_request_parts(parts, app).await?;
        let request_id = parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Ok(Caller {
            principal,
            request_id,
        })
    }
}
