//! The OpenAPI 3.1 document, generated from the handlers' annotations and the wire types.

use crate::handlers::{catalog, iam, instances, meta, tenancy};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Stratus compute API",
        description = "The k0rdent compute API as served by Stratus: instances, the catalog they reference, organizations and projects.",
        license(name = "Apache-2.0")
    ),
    paths(
        meta::health, meta::mint_token, meta::jwks, meta::openapi,
        catalog::list_regions, catalog::get_region, catalog::list_zones, catalog::get_zone,
        catalog::list_instance_types, catalog::get_instance_type,
        catalog::list_gpu_types, catalog::get_gpu_type,
        catalog::list_images, catalog::create_image, catalog::get_image, catalog::delete_image,
        tenancy::list_organizations, tenancy::create_organization, tenancy::get_organization,
        tenancy::update_organization, tenancy::delete_organization,
        tenancy::list_projects, tenancy::create_project, tenancy::get_project,
        tenancy::update_project, tenancy::delete_project,
        instances::list_instances, instances::create_instance, instances::get_instance,
        instances::update_instance, instances::delete_instance, instances::instance_action,
        instances::serial_port_output,
        iam::list_api_keys, iam::create_api_key, iam::get_api_key, iam::update_api_key,
        iam::delete_api_key, iam::rotate_api_key, iam::introspect, iam::revoke, iam::check_permissions,
        iam::list_service_accounts, iam::create_service_account, iam::get_service_account,
        iam::update_service_account, iam::delete_service_account,
        iam::list_credentials, iam::create_credential, iam::get_credential, iam::delete_credential,
        iam::list_audit_events,
    ),
    modifiers(&BearerAuth),
    security(("bearerAuth" = [])),
    tags(
        (name = "instances", description = "Virtual machine and bare-metal instances"),
        (name = "catalog", description = "Regions, zones, instance types, GPU types"),
        (name = "images", description = "Disk images, from the catalog or imported"),
        (name = "organizations", description = "Tenants"),
        (name = "projects", description = "Projects, which own compute resources"),
        (name = "auth", description = "Access tokens: minting, introspection, revocation"),
        (name = "iam", description = "API keys, service accounts and their credentials, the audit trail"),
        (name = "meta", description = "Health and this document"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearerAuth",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The API's OpenAPI document.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

/// The document as pretty JSON with a trailing newline, as committed in `openapi/stratus.json`.
pub fn document_json() -> String {
    let mut text = document()
        .to_pretty_json()
        .expect("the document serializes");
    text.push('\n');
    text
}
