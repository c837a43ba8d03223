//! The OpenAPI 3.1 document: what it says of the API as a whole (its title, tags and bearer
//! authentication); the operations come from the route table ([`crate::routes`]).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Stratus compute API",
        description = "The k0rdent compute API as served by Stratus: instances, the catalog they reference, organizations and projects.",
        license(name = "Apache-2.0")
    ),
    // Schemas only parameters name (the route table collects those of bodies).
    components(schemas(
        stratus_types::InstanceAction,
        stratus_types::HostAction,
        crate::handlers::servers::ServerActionName,
        stratus_types::HostName,
        stratus_types::ResourceId
    )),
    modifiers(&BearerAuth),
    security(("bearerAuth" = [])),
    tags(
        (name = "instances", description = "Virtual machine and bare-metal instances"),
        (name = "catalog", description = "Regions, zones, instance types, GPU types"),
        (name = "images", description = "Disk images, from the catalog or imported"),
        (name = "networks", description = "Networks, their subnets, and addresses (IPAM) of a project"),
        (name = "hosts", description = "The region's hosts: capacity, health, cordon and drain (operators; an extension)"),
        (name = "servers", description = "Bare-metal servers with Redfish BMCs: registration, inspection, provisioning, power, logs (operators)"),
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

/// The document without its operations.
pub(crate) fn base() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}
