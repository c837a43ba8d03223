//! The audit trail: who changed what, and with what result.
//!
//! Every request that can change state (any method but GET, HEAD and OPTIONS on `/v1/…`)
//! leaves one event after it is answered: the principal, its organization and the credential
//! it used (API key, service-account credential or OIDC subject), the method and path (which
//! name the resource and the action), the HTTP status and the request id. The event is stored
//! in the region's database, where an organization's owners and admins read it back through
//! `GET /v1/regions/global/audit/events`, and logged with target `stratus::audit` (with
//! `--log-format json`, one JSON line to ship to a log store). A trail that cannot be written
//! (the database is down) is still logged. Bodies are never recorded, so secrets never are.
//!
//! The principal is learnt from the bearer check: the middleware puts an empty [`AuditSlot`]
//! into the request, and the `Principal` extractor fills it when it accepts a token.

use crate::app::App;
use crate::app::Principal;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use std::sync::{Arc, Mutex};

/// Where the bearer check leaves the principal of a request for the audit event.
#[derive(Clone, Default)]
pub struct AuditSlot(Arc<Mutex<Option<Principal>>>);

impl AuditSlot {
    /// Records the principal the request acts as.
    pub fn fill(&self, principal: &Principal) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(principal.clone());
        }
    }

    fn take(&self) -> Option<Principal> {
        self.0.lock().ok().and_then(|mut slot| slot.take())
    }
}

/// Records an audit event for every mutating API request.
pub async fn audit(State(app): State<Arc<App>>, mut request: Request, next: Next) -> Response {
    let mutating = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if !mutating || !request.uri().path().starts_with("/v1/") {
        return next.run(request).await;
    }
    let slot = AuditSlot::default();
    request.extensions_mut().insert(slot.clone());
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let response = next.run(request).await;
    let principal = slot.take();
    let who = principal.as_ref();
    tracing::info!(
        target: "stratus::audit",
        principal = who.map_or("-", |p| p.subject.as_str()),
        principal_type = who.map_or("-", |p| p.principal_type.as_str()),
        organization = who.map_or("-", |p| p.tenant.as_str()),
        credential_id = who.and_then(|p| p.credential_id.as_deref()).unwrap_or("-"),
        method = %method,
        path = %path.as_str(),
        status = response.status().as_u16(),
        request_id = %request_id,
        "audit"
    );
    let at = chrono::Utc::now();
    let event = stratus_store::AuditEventRecord {
        id: format!(
            "{:013}-{}",
            at.timestamp_millis(),
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        ),
        at,
        principal: who.map_or("-", |p| p.subject.as_str()).to_owned(),
        principal_type: who.map_or("-", |p| p.principal_type.as_str()).to_owned(),
        organization_id: who.map_or("-", |p| p.tenant.as_str()).to_owned(),
        credential_id: who
            .and_then(|p| p.credential_id.as_deref())
            .unwrap_or("-")
            .to_owned(),
        method: method.to_string(),
        path,
        status: response.status().as_u16(),
        request_id,
    };
    if let Err(e) = app.record_audit_event(&event).await {
        tracing::warn!(error = %e, request_id = %event.request_id, "the audit event was not stored");
    }
    response
}
