//! The API's one route table.
//!
//! Each entry is a handler whose `#[utoipa::path]` names its method and path; the table gives
//! both the router and the OpenAPI document from those annotations, so an operation cannot be
//! served without being documented, nor documented without being served (`routes!` refuses a
//! handler without an annotation at compile time). Entries sharing a path are listed together;
//! the document lists paths in the table's order. The router ([`crate::router`]) adds only the
//! host agents' protocol below `/internal/` and the console below `/console`, which a test holds
//! it to.
//!
//! Actions are written the contract's way, `…/{id}:{action}`, in the document. A router
//! segment cannot hold a parameter followed by more text, so such a path is routed at `…/{id}`
//! and its handler splits the segment at the colon.

use crate::app::App;
use crate::handlers::{catalog, host_operations, iam, instances, meta, networks, servers, tenancy};
use axum::Router;
use std::sync::Arc;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::UtoipaMethodRouter;
use utoipa_axum::routes;

/// Every public operation, in the order the document lists them.
fn table() -> Vec<UtoipaMethodRouter<Arc<App>>> {
    vec![
        routes!(meta::health),
        routes!(meta::mint_token),
        routes!(meta::jwks),
        routes!(meta::openapi),
        routes!(catalog::list_regions),
        routes!(catalog::get_region),
        routes!(catalog::list_zones),
        routes!(catalog::get_zone),
        routes!(catalog::list_instance_types),
        routes!(catalog::get_instance_type),
        routes!(catalog::list_gpu_types),
        routes!(catalog::get_gpu_type),
        routes!(host_operations::list_hosts),
        routes!(host_operations::get_host),
        routes!(host_operations::host_action),
        routes!(catalog::list_images, catalog::create_image),
        routes!(catalog::get_image, catalog::delete_image),
        routes!(tenancy::list_organizations, tenancy::create_organization),
        routes!(
            tenancy::get_organization,
            tenancy::update_organization,
            tenancy::delete_organization
        ),
        routes!(tenancy::get_quotas, tenancy::update_quotas),
        routes!(tenancy::list_projects, tenancy::create_project),
        routes!(
            tenancy::get_project,
            tenancy::update_project,
            tenancy::delete_project
        ),
        routes!(instances::list_instances, instances::create_instance),
        routes!(
            instances::get_instance,
            instances::update_instance,
            instances::delete_instance
        ),
        routes!(instances::instance_action),
        routes!(instances::serial_port_output),
        routes!(networks::list_networks, networks::create_network),
        routes!(
            networks::get_network,
            networks::update_network,
            networks::delete_network
        ),
        routes!(networks::list_subnets),
        routes!(networks::get_subnet),
        routes!(networks::list_addresses, networks::allocate_address),
        routes!(networks::get_address, networks::release_address),
        routes!(servers::list_servers, servers::register_server),
        routes!(servers::batch_create_servers),
        routes!(
            servers::get_server,
            servers::update_server,
            servers::decommission_server
        ),
        routes!(servers::server_action),
        routes!(servers::server_logs),
        routes!(iam::list_api_keys, iam::create_api_key),
        routes!(iam::get_api_key, iam::update_api_key, iam::delete_api_key),
        routes!(iam::rotate_api_key),
        routes!(iam::introspect),
        routes!(iam::revoke),
        routes!(iam::check_permissions),
        routes!(iam::list_service_accounts, iam::create_service_account),
        routes!(
            iam::get_service_account,
            iam::update_service_account,
            iam::delete_service_account
        ),
        routes!(iam::list_credentials, iam::create_credential),
        routes!(iam::get_credential, iam::delete_credential),
        routes!(iam::list_audit_events),
    ]
}

/// The router path of a document path: an `{id}:{action}` (or `{id}:rotate`) segment is
/// routed as `{id}`.
fn router_path(document_path: &str) -> String {
    document_path
        .split('/')
        .map(|segment| match segment.split_once("}:") {
            Some((parameter, _)) => format!("{parameter}}}"),
            None => segment.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The public API's router and the paths and schemas of its document, from [`table`].
pub(crate) fn public() -> (Router<Arc<App>>, OpenApi) {
    let mut router = Router::new();
    let mut document = crate::openapi::base();
    for (schemas, paths, method_router) in table() {
        for path in paths.paths.keys() {
            router = router.route(&router_path(path), method_router.clone());
        }
        document.paths.merge(paths);
        let components = document.components.get_or_insert_with(Default::default);
        for (name, schema) in schemas {
            components.schemas.entry(name).or_insert(schema);
        }
    }
    (router, document)
}

/// The methods each documented path takes, to answer `OPTIONS` and to name in the `Allow`
/// header of a 405: the document's, not the router's, which routes `{id}:{action}` at `{id}`.
pub(crate) struct AllowedMethods {
    templates: Vec<(Vec<String>, Vec<axum::http::Method>)>,
}

impl AllowedMethods {
    pub(crate) fn of(document: &OpenApi) -> Self {
        let templates = document
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let mut methods: Vec<axum::http::Method> = [
                    (item.get.is_some(), axum::http::Method::GET),
                    (item.get.is_some(), axum::http::Method::HEAD),
                    (item.post.is_some(), axum::http::Method::POST),
                    (item.put.is_some(), axum::http::Method::PUT),
                    (item.patch.is_some(), axum::http::Method::PATCH),
                    (item.delete.is_some(), axum::http::Method::DELETE),
                ]
                .into_iter()
                .filter_map(|(has, method)| has.then_some(method))
                .collect();
                methods.push(axum::http::Method::OPTIONS);
                (path.split('/').map(str::to_owned).collect(), methods)
            })
            .collect();
        Self { templates }
    }

    /// The methods of the documented path `path` matches, if it matches one.
    pub(crate) fn for_path(&self, path: &str) -> Option<&[axum::http::Method]> {
        // The router decodes `%3A` in `id%3Aaction` to the action's colon; so does this.
        let path = path.replace("%3A", ":").replace("%3a", ":");
        let segments: Vec<&str> = path.split('/').collect();
        self.templates
            .iter()
            .find(|(template, _)| {
                template.len() == segments.len()
                    && template
                        .iter()
                        .zip(&segments)
                        .all(|(t, s)| segment_matches(t, s))
            })
            .map(|(_, methods)| methods.as_slice())
    }
}

/// Whether a path segment fits a template segment: a literal, `{param}` (one segment without
/// an action), `{param}:{action}` or `{param}:word`.
fn segment_matches(template: &str, segment: &str) -> bool {
    if !template.contains('{') {
        return template == segment;
    }
    match template.split_once("}:") {
        None => !segment.is_empty() && !segment.contains(':'),
        Some((_, action)) => match segment.split_once(':') {
            Some((id, verb)) if !id.is_empty() && !verb.is_empty() => {
                action.starts_with('{') || action == verb
            }
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_segments_are_routed_at_their_parameter() {
        assert_eq!(
            router_path("/v1/regions/{region}/projects/{project}/compute/instances/{id}:{action}"),
            "/v1/regions/{region}/projects/{project}/compute/instances/{id}"
        );
        assert_eq!(
            router_path("/v1/regions/global/iam/apikeys/{id}:rotate"),
            "/v1/regions/global/iam/apikeys/{id}"
        );
        assert_eq!(router_path("/healthz"), "/healthz");
    }

    #[test]
    fn allowed_methods_follow_the_document() {
        let allowed = AllowedMethods::of(&public().1);
        let names = |path: &str| {
            allowed
                .for_path(path)
                .map(|m| m.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(","))
        };
        let instances = "/v1/regions/r/projects/p/compute/instances";
        assert_eq!(
            names(&format!("{instances}/web-1")).as_deref(),
            Some("GET,HEAD,PATCH,DELETE,OPTIONS")
        );
        assert_eq!(
            names(&format!("{instances}/web-1:stop")).as_deref(),
            Some("POST,OPTIONS")
        );
        assert_eq!(
            names("/v1/regions/global/iam/apikeys/k:rotate").as_deref(),
            Some("POST,OPTIONS")
        );
        assert_eq!(names("/v1/regions/global/iam/apikeys/k:fly"), None);
        assert_eq!(names("/nowhere"), None);
    }

    /// The router holds the table's operations, the agents' protocol and the console, nothing
    /// else: so every route outside `/internal/` and `/console` is one of the document.
    #[test]
    fn only_the_agents_protocol_and_the_console_are_routed_outside_the_table() {
        use stratus_types::agent::routes as agent;
        for path in [
            agent::REGISTER,
            agent::ASSIGNMENTS,
            agent::REPORTS,
            agent::DESTROYED,
            agent::SERIAL,
            agent::IMAGE,
            agent::IMAGE_CONTENT,
        ] {
            assert!(path.starts_with("/internal/v1/"), "{path}");
        }
        for path in crate::console::PATHS {
            assert!(path.starts_with("/console"), "{path}");
        }
        let document = public().1;
        assert!(
            document
                .paths
                .paths
                .keys()
                .all(|p| !p.starts_with("/internal/") && !p.starts_with("/console")),
            "documented operations stay out of the internal and console prefixes"
        );
    }
}
