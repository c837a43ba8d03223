//! Who may do what: every route of the OpenAPI document against every kind of caller, two
//! organizations that cannot see each other, API keys that rotate and tokens that revoke, and
//! logs that never carry a secret.

use crate::support::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// A token signed by the region's own key for `tenant` with `roles`, valid from `iat` to `exp`
/// (seconds from now), for audience `aud`.
fn signed(
    t: &TestRegion,
    tenant: &str,
    roles: &[&str],
    times: (i64, i64),
    aud: Option<&str>,
) -> String {
    let mut claims = t.user_claims(tenant, roles);
    let now = chrono::Utc::now().timestamp();
    claims.iat = now + times.0;
    claims.exp = now + times.1;
    if let Some(aud) = aud {
        claims.aud = aud.into();
    }
    t.sign(&claims)
}

/// A token of the region's own issuer for `roles` on project `project` of `tenant`.
fn signed_for_project(t: &TestRegion, tenant: &str, project: &str, roles: &[&str]) -> String {
    let mut claims = t.user_claims(tenant, roles);
    claims.sub = format!("user-of-{project}-{}", roles.join("-"));
    claims.scope = "project".into();
    claims.scope_id = project.into();
    t.sign(&claims)
}

fn with_token(c: &Client, token: Option<String>) -> Client {
    let mut other = c.clone();
    other.token = token;
    other
}

/// What each operation answers to a caller of another organization and to a viewer of the
/// region's default organization, with the path parameters and body it is sent with.
struct Expect {
    params: &'static [(&'static str, &'static str)],
    body: Option<Value>,
    /// Status for anyone, token or not (operations that need no token).
    public: Option<u16>,
    other_org: u16,
    viewer: u16,
}

fn expect(other_org: u16, viewer: u16) -> Expect {
    Expect {
        params: &[],
        body: None,
        public: None,
        other_org,
        viewer,
    }
}

fn coverage_table(key_id: &str, account: &str, credential: &str) -> BTreeMap<&'static str, Expect> {
    let key: &'static str = Box::leak(key_id.to_owned().into_boxed_str());
    let leak = |s: &str| -> &'static str { Box::leak(s.to_owned().into_boxed_str()) };
    let account: &'static str = leak(account);
    let credential: &'static str = leak(credential);
    let account_params: &'static [(&str, &str)] =
        Box::leak(vec![("id", account), ("serviceAccountId", account)].into_boxed_slice());
    let credential_params: &'static [(&str, &str)] =
        Box::leak(vec![("serviceAccountId", account), ("id", credential)].into_boxed_slice());
    let instance: &'static [(&str, &str)] = &[("project", "default"), ("id", "cov-vm")];
    let with =
        |mut e: Expect, params: &'static [(&'static str, &'static str)], body: Option<Value>| {
            e.params = params;
            e.body = body;
            e
        };
    let public = |status: u16, body: Option<Value>| Expect {
        params: &[],
        body,
        public: Some(status),
        other_org: 0,
        viewer: 0,
    };
    let key_params: &'static [(&str, &str)] = Box::leak(vec![("id", key)].into_boxed_slice());
    BTreeMap::from([
        ("health", public(200, None)),
        ("getJwks", public(200, None)),
        ("getOpenApi", public(200, None)),
        (
            "mintToken",
            public(
                401,
                Some(json!({"grant_type": "api_key", "api_key": "stk_nobody"})),
            ),
        ),
        (
            "introspectToken",
            with(expect(200, 200), &[], Some(json!({"token": "x.y.z"}))),
        ),
        (
            "revokeToken",
            with(expect(200, 200), &[], Some(json!({"token": "x.y.z"}))),
        ),
        (
            "checkPermissions",
            with(
                expect(200, 200),
                &[],
                Some(
                    json!({"checks": [{"action": "compute.instances.get", "resource": "default"}]}),
                ),
            ),
        ),
        // Managing keys is for administrators, and never of keys above them.
        ("listApiKeys", expect(200, 403)),
        (
            "createApiKey",
            with(expect(201, 403), &[], Some(json!({"roles": ["owner"]}))),
        ),
        ("getApiKey", with(expect(404, 404), key_params, None)),
        (
            "updateApiKey",
            with(
                expect(404, 404),
                key_params,
                Some(json!({"displayName": "x"})),
            ),
        ),
        ("deleteApiKey", with(expect(404, 404), key_params, None)),
        ("rotateApiKey", with(expect(404, 404), key_params, None)),
        // Service accounts are for an organization's owners and admins; to others they do not exist.
        ("listServiceAccounts", expect(200, 403)),
        (
            "createServiceAccount",
            with(expect(201, 403), &[], Some(json!({"roles": ["member"]}))),
        ),
        (
            "getServiceAccount",
            with(expect(404, 404), account_params, None),
        ),
        (
            "updateServiceAccount",
            with(
                expect(404, 404),
                account_params,
                Some(json!({"displayName": "x"})),
            ),
        ),
        (
            "deleteServiceAccount",
            with(expect(404, 404), account_params, None),
        ),
        (
            "listCredentials",
            with(expect(404, 404), account_params, None),
        ),
        (
            "createCredential",
            with(expect(404, 404), account_params, None),
        ),
        (
            "getCredential",
            with(expect(404, 404), credential_params, None),
        ),
        (
            "deleteCredential",
            with(expect(404, 404), credential_params, None),
        ),
        ("listAuditEvents", expect(200, 403)),
        ("listOrganizations", expect(200, 200)),
        (
            "createOrganization",
            with(expect(403, 403), &[], Some(json!({"id": "cov-org"}))),
        ),
        (
            "getOrganization",
            with(expect(404, 200), &[("id", "default")], None),
        ),
        // Hosts are the region operators' alone, whoever else asks.
        ("listHosts", expect(403, 403)),
        (
            "getHost",
            with(expect(403, 403), &[("host", "local")], None),
        ),
        (
            "hostAction",
            with(expect(403, 403), &[("host", "local:cordon")], None),
        ),
        // Servers likewise: operators alone.
        (
            "listServers",
            with(expect(404, 403), &[("project", "default")], None),
        ),
        (
            "registerServer",
            with(
                expect(404, 403),
                &[("project", "default")],
                Some(
                    json!({"bmcAddress": "http://127.0.0.1:9", "bmcUsername": "u", "bmcPassword": "p"}),
                ),
            ),
        ),
        (
            "batchCreateServers",
            with(
                expect(404, 403),
                &[("project", "default")],
                Some(json!({"servers": []})),
            ),
        ),
        (
            "getServer",
            with(
                expect(404, 403),
                &[("project", "default"), ("id", "cov-server")],
                None,
            ),
        ),
        (
            "updateServer",
            with(
                expect(404, 403),
                &[("project", "default"), ("id", "cov-server")],
                Some(json!({"persona": "x"})),
            ),
        ),
        (
            "decommissionServer",
            with(
                expect(404, 403),
                &[("project", "default"), ("id", "cov-server")],
                None,
            ),
        ),
        (
            "serverAction",
            with(
                expect(404, 403),
                &[("project", "default"), ("id", "cov-server:validate")],
                None,
            ),
        ),
        (
            "getServerLogs",
            with(
                expect(404, 403),
                &[("project", "default"), ("id", "cov-server")],
                None,
            ),
        ),
        // Quotas: read by the organization's administrators, set by operators only.
        (
            "getQuotas",
            with(expect(404, 403), &[("id", "default")], None),
        ),
        (
            "updateQuotas",
            with(
                expect(404, 403),
                &[("id", "default")],
                Some(json!({"cpuCores": 8})),
            ),
        ),
        (
            "updateOrganization",
            with(
                expect(404, 403),
                &[("id", "default")],
                Some(json!({"displayName": "x"})),
            ),
        ),
        (
            "deleteOrganization",
            with(expect(404, 403), &[("id", "default")], None),
        ),
        ("listProjects", expect(200, 200)),
        // Another organization's id answers like an organization that does not exist.
        (
            "createProject",
            with(
                expect(400, 403),
                &[],
                Some(json!({"id": "cov-p", "organizationId": "default"})),
            ),
        ),
        (
            "getProject",
            with(expect(404, 200), &[("id", "default")], None),
        ),
        (
            "updateProject",
            with(
                expect(404, 403),
                &[("id", "default")],
                Some(json!({"displayName": "x"})),
            ),
        ),
        (
            "deleteProject",
            with(expect(404, 403), &[("id", "default")], None),
        ),
        ("listRegions", expect(200, 200)),
        ("getRegion", expect(200, 200)),
        ("listZones", expect(200, 200)),
        ("getZone", expect(200, 200)),
        ("listInstanceTypes", expect(200, 200)),
        (
            "getInstanceType",
            with(expect(200, 200), &[("id", "e2-small")], None),
        ),
        ("listGpuTypes", expect(200, 200)),
        (
            "getGpuType",
            with(expect(200, 200), &[("id", "nvidia-h100")], None),
        ),
        ("listImages", expect(200, 200)),
        (
            "getImage",
            with(expect(200, 200), &[("id", "stratus-guest")], None),
        ),
        // Images are the region's: only its operators register or delete them.
        (
            "createImage",
            with(
                expect(403, 403),
                &[],
                Some(json!({"id": "cov-img", "source": "/nowhere.raw", "format": "raw"})),
            ),
        ),
        (
            "deleteImage",
            with(expect(403, 403), &[("id", "stratus-guest")], None),
        ),
        (
            "listInstances",
            with(expect(404, 200), &[("project", "default")], None),
        ),
        (
            "createInstance",
            with(
                expect(404, 403),
                &[("project", "default")],
                Some(json!({"id": "cov-new", "type": TYPE_SMALL})),
            ),
        ),
        ("getInstance", with(expect(404, 200), instance, None)),
        // Networks are compute resources of a project, like its instances.
        (
            "listNetworks",
            with(expect(404, 200), &[("project", "default")], None),
        ),
        (
            "createNetwork",
            with(
                expect(404, 403),
                &[("project", "default")],
                Some(json!({"id": "cov-net", "cidr": "10.50.0.0/16"})),
            ),
        ),
        (
            "getNetwork",
            with(
                expect(404, 200),
                &[("project", "default"), ("id", "default")],
                None,
            ),
        ),
        (
            "updateNetwork",
            with(
                expect(404, 403),
                &[("project", "default"), ("id", "default")],
                Some(json!({"displayName": "x"})),
            ),
        ),
        (
            "deleteNetwork",
            with(
                expect(404, 403),
                &[("project", "default"), ("id", "default")],
                None,
            ),
        ),
        (
            "listSubnets",
            with(expect(404, 200), &[("project", "default")], None),
        ),
        (
            "getSubnet",
            with(
                expect(404, 200),
                &[("project", "default"), ("id", "default-subnet")],
                None,
            ),
        ),
        (
            "listAddresses",
            with(expect(404, 200), &[("project", "default")], None),
        ),
        (
            "allocateAddress",
            with(
                expect(404, 403),
                &[("project", "default")],
                Some(json!({"addressType": "INTERNAL",
                    "network": "/v1/regions/local-1/projects/default/compute/networks/default"})),
            ),
        ),
        (
            "getAddress",
            with(
                expect(404, 404),
                &[("project", "default"), ("id", "cov-address")],
                None,
            ),
        ),
        (
            "releaseAddress",
            with(
                expect(404, 403),
                &[("project", "default"), ("id", "cov-address")],
                None,
            ),
        ),
        (
            "updateInstance",
            with(
                expect(404, 403),
                instance,
                Some(json!({"labels": {"a": "b"}})),
            ),
        ),
        ("deleteInstance", with(expect(404, 403), instance, None)),
        (
            "getSerialPortOutput",
            with(expect(404, 200), instance, None),
        ),
        (
            "instanceAction",
            with(
                expect(404, 403),
                &[("project", "default"), ("id", "cov-vm:stop")],
                None,
            ),
        ),
    ])
}

fn concrete_path(template: &str, params: &[(&str, &str)]) -> String {
    let defaults = [("region", "local-1"), ("zone", "local-1a")];
    let mut path = template.to_owned();
    for (name, value) in params.iter().chain(defaults.iter()) {
        path = path.replace(&format!("{{{name}}}"), value);
    }
    // `{id}:{action}` templates take the whole `id:action` from the `id` parameter.
    path = path.replace(":{action}", "");
    assert!(
        !path.contains('{'),
        "no value for a parameter of {template}"
    );
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_each_kind_of_caller_as_designed() {
    // The region also trusts an external identity provider, whose tokens may claim anything.
    let idp_key = crate::oidc::TestKey::ed25519("idp-key");
    let idp = crate::oidc::TestIdp::start(&[&idp_key]).await;
    let mut config = fast_config();
    config.auth.oidc = vec![idp.config()];
    let t = TestRegion::with_config(config).await;
    let admin = t.client.clone();
    admin.create_instance("cov-vm").await;
    // The key routes are tried on the region's bootstrap key, which holds super_admin.
    let keys = admin
        .get("/v1/regions/global/iam/apikeys?createdBy=*")
        .await;
    let key_id = keys.body["apiKeys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["roles"] == json!(["super_admin"]))
        .unwrap_or_else(|| panic!("no bootstrap key in {:#}", keys.body))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A key the administrator made for a robot, with role viewer: it must act as a viewer,
    // never as the administrator who made it.
    let robot = admin
        .post(
            "/v1/regions/global/iam/apikeys",
            json!({"roles": ["viewer"], "displayName": "robot"}),
        )
        .await;
    assert_eq!(robot.status, StatusCode::CREATED, "{:#}", robot.body);
    let admin_made_key = Client::login(&admin.base, robot.body["secret"].as_str().unwrap()).await;
    let oidc_operator = with_token(
        &admin,
        Some(idp_key.sign(&idp.claims("default", &["super_admin"]))),
    );
    let account = admin
        .post(
            "/v1/regions/global/iam/service-accounts",
            json!({"roles": ["member"]}),
        )
        .await;
    assert_eq!(account.status, StatusCode::CREATED, "{:#}", account.body);
    let account_id = account.body["id"].as_str().unwrap().to_owned();
    let credential = admin
        .post(
            &format!("/v1/regions/global/iam/service-accounts/{account_id}/credentials"),
            json!({}),
        )
        .await;
    assert_eq!(
        credential.status,
        StatusCode::CREATED,
        "{:#}",
        credential.body
    );
    let credential_id = credential.body["id"].as_str().unwrap().to_owned();
    admin
        .post("/v1/regions/global/organizations", json!({"id": "globex"}))
        .await;

    let valid = signed(&t, "default", &["owner"], (0, 600), None);
    // Change a character well inside the signature (the last one carries padding bits).
    let mut bad_signature = valid.clone().into_bytes();
    let at = bad_signature.len() - 10;
    bad_signature[at] = if bad_signature[at] == b'A' {
        b'B'
    } else {
        b'A'
    };
    let bad_signature = String::from_utf8(bad_signature).unwrap();
    let bad_tokens: [(&str, Option<String>); 5] = [
        ("no token", None),
        ("malformed token", Some("not-a-jwt".into())),
        ("bad signature", Some(bad_signature)),
        (
            "expired token",
            Some(signed(&t, "default", &["owner"], (-7200, -3600), None)),
        ),
        (
            "wrong audience",
            Some(signed(
                &t,
                "default",
                &["owner"],
                (0, 600),
                Some("elsewhere"),
            )),
        ),
    ];
    let other_org = with_token(
        &admin,
        Some(signed(&t, "globex", &["owner"], (0, 600), None)),
    );
    let viewer = with_token(
        &admin,
        Some(signed(&t, "default", &["viewer"], (0, 600), None)),
    );

    let doc = admin.get("/openapi.json").await.body;
    let mut table = coverage_table(&key_id, &account_id, &credential_id);
    let mut checked = 0;
    for (template, operations) in doc["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let op = operation["operationId"].as_str().unwrap();
            let e = table.remove(op).unwrap_or_else(|| {
                panic!("{op} ({method} {template}) is not in the coverage table")
            });
            let path = concrete_path(template, e.params);
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let send = |c: Client| {
                let (method, path, body) = (method.clone(), path.clone(), e.body.clone());
                async move { c.send(method, &path, body, &[]).await }
            };
            if let Some(status) = e.public {
                for (case, token) in &bad_tokens {
                    let reply = send(with_token(&admin, token.clone())).await;
                    assert_eq!(
                        reply.status.as_u16(),
                        status,
                        "{op} with {case}: {:#}",
                        reply.body
                    );
                }
                checked += 1;
                continue;
            }
            for (case, token) in &bad_tokens {
                let reply = send(with_token(&admin, token.clone())).await;
                assert_eq!(
                    reply.status,
                    StatusCode::UNAUTHORIZED,
                    "{op} with {case}: {:#}",
                    reply.body
                );
                reply.assert_error(401);
            }
            let reply = send(oidc_operator.clone()).await;
            reply.assert_error(401);
            assert!(
                reply.message().contains("super_admin"),
                "{op}: an external super_admin claim is refused by name: {}",
                reply.message()
            );
            for (case, caller, status) in [
                ("a token of another organization", &other_org, e.other_org),
                ("a viewer's token", &viewer, e.viewer),
                (
                    "a viewer key the administrator made",
                    &admin_made_key,
                    e.viewer,
                ),
            ] {
                let reply = send(caller.clone()).await;
                assert_eq!(
                    reply.status.as_u16(),
                    status,
                    "{op} {path} with {case}: {:#}",
                    reply.body
                );
                if status >= 400 {
                    reply.assert_error(status);
                }
                if status == 403 {
                    assert!(
                        reply.message().contains("permission") || reply.message().contains("role"),
                        "a 403 names what is missing: {}",
                        reply.message()
                    );
                }
            }
            checked += 1;
        }
    }
    assert!(
        table.is_empty(),
        "the table names operations the API lacks: {:?}",
        table.keys()
    );
    assert!(checked >= 40, "only {checked} operations were checked");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_organizations_instances_look_like_nothing() {
    let t = TestRegion::start().await;
    let admin = t.client.clone();
    admin
        .post("/v1/regions/global/organizations", json!({"id": "globex"}))
        .await;
    let project = admin
        .post(
            "/v1/regions/global/projects",
            json!({"id": "globex-web", "organizationId": "globex"}),
        )
        .await;
    assert_eq!(project.status, StatusCode::CREATED, "{:#}", project.body);
    let acme = with_token(
        &admin,
        Some(signed(&t, "default", &["owner"], (0, 600), None)),
    );
    let globex = with_token(
        &admin,
        Some(signed(&t, "globex", &["owner"], (0, 600), None)),
    );
    acme.create_instance("d-1").await;
    let globex_instances = "/v1/regions/local-1/projects/globex-web/compute/instances";
    let created = globex
        .post(globex_instances, json!({"id": "g-1", "type": TYPE_SMALL}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:#}", created.body);

    // Every verb on the other organization's instance answers exactly like a random id.
    for (caller, instances, victim) in [
        (&globex, INSTANCES, "d-1"),
        (&acme, globex_instances, "g-1"),
    ] {
        let requests: [(Method, &str, Option<Value>); 5] = [
            (Method::GET, "", None),
            (Method::PATCH, "", Some(json!({"labels": {"x": "y"}}))),
            (Method::POST, ":stop", None),
            (Method::GET, "/serialPortOutput", None),
            (Method::DELETE, "", None),
        ];
        for (method, suffix, body) in requests {
            let real = format!("{instances}/{victim}{suffix}");
            let random = real.replace(victim, "no-such-thing");
            let a = caller.send(method.clone(), &real, body.clone(), &[]).await;
            let b = caller.send(method.clone(), &random, body, &[]).await;
            a.assert_error(404);
            assert_eq!(a.status, b.status, "{method} {real}");
            assert_eq!(
                a.body, b.body,
                "{method} {real} tells nothing a random id would not"
            );
        }
    }
    // Listing the other organization's project answers like a project that does not exist.
    let theirs = globex.get(INSTANCES).await;
    let missing = globex
        .get(&INSTANCES.replace("projects/default", "projects/no-such-thing"))
        .await;
    theirs.assert_error(404);
    assert_eq!(
        theirs.message().replace("default", "X"),
        missing.message().replace("no-such-thing", "X")
    );
    let list = globex.get(globex_instances).await;
    assert_eq!(list.body["instances"].as_array().unwrap().len(), 1);
    acme.wait_status("d-1", "RUNNING", Duration::from_secs(10))
        .await;

    // The other organization's projects are invisible.
    let projects = globex.get("/v1/regions/global/projects").await;
    let ids: Vec<&str> = projects.body["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["globex-web"]);
    let theirs = globex
        .get("/v1/regions/global/projects?organizationId=default")
        .await;
    assert_eq!(theirs.body["projects"], json!([]), "{:#}", theirs.body);
    let a = globex.get("/v1/regions/global/projects/default").await;
    let b = globex
        .get("/v1/regions/global/projects/no-such-thing")
        .await;
    a.assert_error(404);
    assert_eq!(
        a.body["error"]["message"]
            .as_str()
            .unwrap()
            .replace("default", "X"),
        b.body["error"]["message"]
            .as_str()
            .unwrap()
            .replace("no-such-thing", "X")
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_rotate_with_grace_stay_private_and_tokens_revoke_at_once() {
    let t = TestRegion::start().await;
    let admin = t.client.clone();
    let base = admin.base.clone();
    let anonymous = Client::anonymous(&base);
    let exchange = |secret: String| {
        let anonymous = anonymous.clone();
        async move {
            anonymous
                .post(
                    "/v1/regions/global/auth/token",
                    json!({"grant_type": "api_key", "api_key": secret}),
                )
                .await
        }
    };
    let created = admin
        .post(
            "/v1/regions/global/iam/apikeys",
            json!({"displayName": "ci", "scope": "project", "scopeId": "default", "roles": ["member"]}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:#}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let first = created.body["secret"].as_str().unwrap().to_owned();
    let fetched = admin
        .get(&format!("/v1/regions/global/iam/apikeys/{id}"))
        .await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert!(
        fetched.body.get("secret").is_none(),
        "the secret is shown once"
    );
    assert_eq!(exchange(first.clone()).await.status, StatusCode::OK);

    // Somebody else cannot see or touch the key: a project admin who did not make it finds
    // nothing, exactly as for a random id, and lists nothing.
    let stranger = with_token(
        &admin,
        Some(signed_for_project(&t, "default", "default", &["admin"])),
    );
    let theirs = stranger
        .get(&format!("/v1/regions/global/iam/apikeys/{id}"))
        .await;
    let random = stranger
        .get("/v1/regions/global/iam/apikeys/key-nothing")
        .await;
    theirs.assert_error(404);
    assert_eq!(theirs.status, random.status);
    let listed = stranger
        .get("/v1/regions/global/iam/apikeys?createdBy=*")
        .await;
    assert_eq!(listed.body["apiKeys"], json!([]), "{:#}", listed.body);
    // An owner of the organization manages its keys within its power.
    let owner = with_token(
        &admin,
        Some(signed(&t, "default", &["owner"], (0, 600), None)),
    );
    assert_eq!(
        owner
            .get(&format!("/v1/regions/global/iam/apikeys/{id}"))
            .await
            .status,
        StatusCode::OK
    );
    let escalation = admin
        .post(
            "/v1/regions/global/iam/apikeys",
            json!({"scope": "project", "scopeId": "default", "roles": ["owner"]}),
        )
        .await;
    escalation.assert_error(400);
    assert_eq!(escalation.field(), "roles");

    // Rotation with a grace period: the old secret works until the grace ends, then 401.
    let rotated = admin
        .post(
            &format!("/v1/regions/global/iam/apikeys/{id}:rotate"),
            json!({"gracePeriodSeconds": 3}),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{:#}", rotated.body);
    let second = rotated.body["secret"].as_str().unwrap().to_owned();
    assert_ne!(first, second);
    assert!(rotated.body["previousSecretExpiresAt"].is_string());
    assert_eq!(
        exchange(first.clone()).await.status,
        StatusCode::OK,
        "inside the grace period"
    );
    assert_eq!(exchange(second.clone()).await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(3300)).await;
    let late = exchange(first.clone()).await;
    late.assert_error(401);
    assert!(late.message().contains("grace"), "{}", late.message());
    let fresh = exchange(second.clone()).await;
    assert_eq!(fresh.status, StatusCode::OK);
    let too_long = admin
        .post(
            &format!("/v1/regions/global/iam/apikeys/{id}:rotate"),
            json!({"gracePeriodSeconds": 301}),
        )
        .await;
    too_long.assert_error(400);
    assert_eq!(too_long.field(), "gracePeriodSeconds");

    // The key's token works in its project; revoked, it stops at once.
    let token = fresh.body["access_token"].as_str().unwrap().to_owned();
    let member = with_token(&admin, Some(token.clone()));
    assert_eq!(member.get(INSTANCES).await.status, StatusCode::OK);
    // A member of project `default` cannot touch another project of the same organization.
    let other_project = admin
        .post(
            "/v1/regions/global/projects",
            json!({"id": "payroll", "organizationId": "default"}),
        )
        .await;
    assert_eq!(
        other_project.status,
        StatusCode::CREATED,
        "{:#}",
        other_project.body
    );
    let payroll = INSTANCES.replace("projects/default", "projects/payroll");
    let denied = member.get(&payroll).await;
    denied.assert_error(403);
    assert!(
        denied.message().contains("compute.instances.list") && denied.message().contains("payroll"),
        "{}",
        denied.message()
    );
    member
        .post(&payroll, json!({"id": "sneaky", "type": TYPE_SMALL}))
        .await
        .assert_error(403);

    // auth/check answers as the operations do, for the caller or a key it administers.
    let questions = json!([
        {"action": "compute.instances.create", "resource": "default"},
        {"action": "compute.instances.create", "resource": "payroll"},
        {"action": "resourcemanager.projects.delete", "resource": "default"},
        {"action": "compute.instances.get", "resource": "no-such-project"},
    ]);
    let answers = member
        .post(
            "/v1/regions/global/auth/check",
            json!({"checks": questions}),
        )
        .await;
    assert_eq!(answers.status, StatusCode::OK, "{:#}", answers.body);
    let allowed: Vec<bool> = answers.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["allowed"].as_bool().unwrap())
        .collect();
    assert_eq!(allowed, [true, false, false, false]);
    let about_key = admin
        .post(
            "/v1/regions/global/auth/check",
            json!({"subject": id, "checks": questions}),
        )
        .await;
    assert_eq!(
        about_key.body, answers.body,
        "an administrator sees the key's answers"
    );
    let viewer = with_token(
        &admin,
        Some(signed(&t, "default", &["viewer"], (0, 600), None)),
    );
    viewer
        .post(
            "/v1/regions/global/auth/check",
            json!({"subject": id, "checks": questions}),
        )
        .await
        .assert_error(403);
    let unknown = member
        .post(
            "/v1/regions/global/auth/check",
            json!({"checks": [{"action": "compute.instances.fly", "resource": "default"}]}),
        )
        .await;
    unknown.assert_error(400);
    assert_eq!(unknown.field(), "checks[0].action");
    let introspected = admin
        .post(
            "/v1/regions/global/auth/introspect",
            json!({"token": token}),
        )
        .await;
    assert_eq!(introspected.body["active"], true, "{:#}", introspected.body);
    assert_eq!(introspected.body["credential_id"], id.as_str());
    assert_eq!(introspected.body["scope_id"], "default");
    let revoked = member
        .post("/v1/regions/global/auth/revoke", json!({"token": token}))
        .await;
    assert_eq!(revoked.body, json!({"revoked": true}));
    member.get(INSTANCES).await.assert_error(401);
    let introspected = admin
        .post(
            "/v1/regions/global/auth/introspect",
            json!({"token": token}),
        )
        .await;
    assert_eq!(introspected.body, json!({"active": false}));

    // A disabled key mints nothing, and the tokens it minted stop at once; deleted, it is gone.
    let still = with_token(
        &admin,
        Some(
            exchange(second.clone()).await.body["access_token"]
                .as_str()
                .unwrap()
                .to_owned(),
        ),
    );
    assert_eq!(still.get(INSTANCES).await.status, StatusCode::OK);
    let disabled = admin
        .patch(
            &format!("/v1/regions/global/iam/apikeys/{id}"),
            json!({"status": "disabled"}),
        )
        .await;
    assert_eq!(disabled.body["status"], "disabled", "{:#}", disabled.body);
    exchange(second.clone()).await.assert_error(401);
    let cut = still.get(INSTANCES).await;
    cut.assert_error(401);
    assert!(cut.message().contains("disabled"), "{}", cut.message());
    let deleted = admin
        .delete(&format!("/v1/regions/global/iam/apikeys/{id}"))
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    admin
        .get(&format!("/v1/regions/global/iam/apikeys/{id}"))
        .await
        .assert_error(404);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_logs() {
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().unwrap();
    let config_file = dir.path().join("stratus.toml");
    std::fs::write(&config_file, toml::to_string(&fast_config()).unwrap()).unwrap();
    let log_file = dir.path().join("serve.log");
    let mut serve = tokio::process::Command::new(env!("CARGO_BIN_EXE_stratus"))
        .args([
            "--log-format",
            "json",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&config_file)
        .env("STRATUS_LOG", "trace,sqlx=trace")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log_file).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Logs go to standard output with the banner; keep every line.
    let mut lines = tokio::io::BufReader::new(serve.stdout.take().unwrap()).lines();
    let (found, banner) = tokio::sync::oneshot::channel();
    let collector = tokio::spawn(async move {
        let mut found = Some(found);
        let mut all = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(rest) = line.split("serving on ").nth(1)
                && let Some(found) = found.take()
            {
                let _ = found.send(rest.trim().to_owned());
            }
            all.push(line);
        }
        all
    });
    let base = banner.await.expect("serve printed its banner");
    let admin_key = std::fs::read_to_string(dir.path().join("data/admin-api-key"))
        .unwrap()
        .trim()
        .to_owned();
    let host_credential = std::fs::read_to_string(dir.path().join("data/host-credential"))
        .unwrap()
        .trim()
        .to_owned();
    let admin = Client::login(&base, &admin_key).await;
    let mut secrets = vec![
        admin_key.clone(),
        host_credential,
        admin.token.clone().unwrap(),
    ];
    let key = admin
        .post(
            "/v1/regions/global/iam/apikeys",
            json!({"roles": ["member"]}),
        )
        .await;
    let first = key.body["secret"].as_str().unwrap().to_owned();
    let id = key.body["id"].as_str().unwrap();
    let rotated = admin
        .post(
            &format!("/v1/regions/global/iam/apikeys/{id}:rotate"),
            json!({"gracePeriodSeconds": 60}),
        )
        .await;
    let second = rotated.body["secret"].as_str().unwrap().to_owned();
    let member = Client::login(&base, &second).await;
    let old = Client::login(&base, &first).await;
    let wrong = "stk_ThisIsNotAKeyButStillASecretOfSomeone1234";
    let refused = Client::anonymous(&base)
        .post(
            "/v1/regions/global/auth/token",
            json!({"grant_type": "api_key", "api_key": wrong}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    member.create_instance("logged").await;
    member
        .post(
            "/v1/regions/global/auth/revoke",
            json!({"token": old.token.clone().unwrap()}),
        )
        .await;
    secrets.extend([
        first,
        second,
        wrong.to_owned(),
        member.token.unwrap(),
        old.token.unwrap(),
    ]);
    serve.start_kill().unwrap();
    serve.wait().await.unwrap();

    let log = std::fs::read_to_string(&log_file).unwrap() + &collector.await.unwrap().join("\n");
    assert!(
        log.contains("stratus::audit") && log.contains("/v1/regions/global/iam/apikeys"),
        "the log holds the requests, so the scan means something"
    );
    for secret in &secrets {
        // A token's signature alone identifies it too.
        let tail = secret.rsplit('.').next().unwrap();
        assert!(
            !log.contains(secret.as_str()),
            "a secret appears in the log"
        );
        assert!(!log.contains(tail), "part of a token appears in the log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_accounts_mint_tokens_with_client_credentials_and_the_trail_records_them() {
    let t = TestRegion::start().await;
    let admin = t.client.clone();
    let anonymous = Client::anonymous(&admin.base);
    let grant = |client_id: String, secret: String| {
        let anonymous = anonymous.clone();
        async move {
            anonymous
                .post(
                    "/v1/regions/global/auth/token",
                    json!({"grant_type": "client_credentials", "client_id": client_id,
                           "client_secret": secret}),
                )
                .await
        }
    };
    let accounts = "/v1/regions/global/iam/service-accounts";
    let created = admin
        .post(
            accounts,
            json!({"displayName": "deployer", "roles": ["member"]}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:#}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let client_id = created.body["clientId"].as_str().unwrap().to_owned();
    let credentials = format!("{accounts}/{id}/credentials");

    // At most five active credentials; each secret shown once.
    let mut secrets = Vec::new();
    for _ in 0..5 {
        let c = admin.post(&credentials, json!({})).await;
        assert_eq!(c.status, StatusCode::CREATED, "{:#}", c.body);
        assert!(c.body["clientSecret"].as_str().unwrap().starts_with("stc_"));
        secrets.push((
            c.body["id"].as_str().unwrap().to_owned(),
            c.body["clientSecret"].as_str().unwrap().to_owned(),
        ));
    }
    let sixth = admin.post(&credentials, json!({})).await;
    sixth.assert_error(409);
    assert!(sixth.message().contains("at most 5"), "{}", sixth.message());
    let listed = admin.get(&credentials).await;
    assert_eq!(listed.body["credentials"].as_array().unwrap().len(), 5);
    assert!(listed.body["credentials"][0].get("clientSecret").is_none());

    // The grant: the account's roles, nothing more.
    let token = grant(client_id.clone(), secrets[0].1.clone()).await;
    assert_eq!(token.status, StatusCode::OK, "{:#}", token.body);
    let deployer = with_token(
        &admin,
        Some(token.body["access_token"].as_str().unwrap().into()),
    );
    let made = deployer
        .post(INSTANCES, json!({"id": "deployed", "type": TYPE_SMALL}))
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{:#}", made.body);
    deployer
        .delete("/v1/regions/global/projects/default")
        .await
        .assert_error(403);
    grant(client_id.clone(), "stc_wrong".into())
        .await
        .assert_error(401);
    grant("someone-else@default.iam".into(), secrets[1].1.clone())
        .await
        .assert_error(401);
    let bad = anonymous
        .post(
            "/v1/regions/global/auth/token",
            json!({"grant_type": "client_credentials", "client_id": client_id}),
        )
        .await;
    bad.assert_error(400);
    assert_eq!(bad.field(), "client_secret");

    // A deleted credential and an expiring one stop minting; others go on.
    let (first_id, first_secret) = secrets[0].clone();
    let gone = admin.delete(&format!("{credentials}/{first_id}")).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    grant(client_id.clone(), first_secret)
        .await
        .assert_error(401);
    let expires_at = (chrono::Utc::now() + chrono::Duration::milliseconds(1500)).to_rfc3339();
    let short = admin
        .post(&credentials, json!({"expiresAt": expires_at}))
        .await;
    assert_eq!(short.status, StatusCode::CREATED, "{:#}", short.body);
    let short_secret = short.body["clientSecret"].as_str().unwrap().to_owned();
    assert_eq!(
        grant(client_id.clone(), short_secret.clone()).await.status,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let expired = grant(client_id.clone(), short_secret).await;
    expired.assert_error(401);
    assert!(
        expired.message().contains("expired"),
        "{}",
        expired.message()
    );

    // Only the organization's administrators see the account.
    let viewer = with_token(
        &admin,
        Some(signed(&t, "default", &["viewer"], (0, 600), None)),
    );
    viewer
        .get(&format!("{accounts}/{id}"))
        .await
        .assert_error(404);
    viewer.get(accounts).await.assert_error(403);

    // Disabled, it mints nothing and its tokens introspect inactive.
    let live_token = grant(client_id.clone(), secrets[1].1.clone()).await.body["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let disabled = admin
        .patch(&format!("{accounts}/{id}"), json!({"status": "disabled"}))
        .await;
    assert_eq!(disabled.body["status"], "disabled", "{:#}", disabled.body);
    grant(client_id.clone(), secrets[2].1.clone())
        .await
        .assert_error(401);
    let introspected = admin
        .post(
            "/v1/regions/global/auth/introspect",
            json!({"token": live_token}),
        )
        .await;
    assert_eq!(introspected.body, json!({"active": false}));
    with_token(&admin, Some(live_token))
        .get(INSTANCES)
        .await
        .assert_error(401);

    // The audit trail names who did what.
    let trail = admin
        .get("/v1/regions/global/audit/events?pageSize=500")
        .await;
    assert_eq!(trail.status, StatusCode::OK, "{:#}", trail.body);
    let events = trail.body["events"].as_array().unwrap();
    let create = events
        .iter()
        .find(|e| e["method"] == "POST" && e["path"] == INSTANCES)
        .expect("the create is in the trail");
    assert_eq!(create["principal"], client_id.as_str());
    assert_eq!(create["principalType"], "service_account");
    assert_eq!(create["credentialId"], secrets[0].0.as_str());
    assert_eq!(create["organizationId"], "default");
    assert_eq!(create["status"], 201);
    assert!(!create["requestId"].as_str().unwrap().is_empty());
    let refused = events
        .iter()
        .find(|e| e["path"] == "/v1/regions/global/projects/default" && e["method"] == "DELETE")
        .expect("the refused delete is in the trail");
    assert_eq!(refused["status"], 403);
    t.stop().await;
}

/// The attack: the README's "a key for a robot" flow, then the robot's key turned against its
/// maker. A key is a principal of its own, so it finds none of its maker's keys, cannot rotate,
/// disable or delete them, and cannot revoke its maker's token; an administrator's key never
/// manages a key holding more than it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_never_acts_as_the_administrator_who_made_it() {
    let t = TestRegion::start().await;
    let admin = t.client.clone();
    let keys = admin
        .get("/v1/regions/global/iam/apikeys?createdBy=*")
        .await;
    let bootstrap = keys.body["apiKeys"][0]["id"].as_str().unwrap().to_owned();
    let make = |roles: Value| {
        let admin = admin.clone();
        async move {
            let made = admin
                .post("/v1/regions/global/iam/apikeys", json!({"roles": roles}))
                .await;
            assert_eq!(made.status, StatusCode::CREATED, "{:#}", made.body);
            (
                made.body["id"].as_str().unwrap().to_owned(),
                Client::login(&admin.base, made.body["secret"].as_str().unwrap()).await,
            )
        }
    };
    let (member_id, member) = make(json!(["member"])).await;
    let (_, org_admin) = make(json!(["admin"])).await;
    let (owner_id, _) = make(json!(["owner"])).await;

    // The member key acts as itself: its own id, its own roles.
    let me = admin
        .post(
            "/v1/regions/global/auth/introspect",
            json!({"token": member.token.clone().unwrap()}),
        )
        .await;
    assert_eq!(me.body["sub"], member_id.as_str(), "{:#}", me.body);
    assert_eq!(me.body["roles"], json!(["member"]));

    // It manages no keys at all, least of all its maker's.
    let listed = member.get("/v1/regions/global/iam/apikeys").await;
    listed.assert_error(403);
    assert!(
        listed.message().contains("iam.apikeys.list"),
        "{}",
        listed.message()
    );
    let key = format!("/v1/regions/global/iam/apikeys/{bootstrap}");
    member.get(&key).await.assert_error(404);
    member
        .post(&format!("{key}:rotate"), json!({}))
        .await
        .assert_error(404);
    member
        .patch(&key, json!({"status": "disabled"}))
        .await
        .assert_error(404);
    member.delete(&key).await.assert_error(404);
    // Revoking the administrator's token is answered as always, and changes nothing.
    let revoked = member
        .post(
            "/v1/regions/global/auth/revoke",
            json!({"token": admin.token.clone().unwrap()}),
        )
        .await;
    assert_eq!(revoked.body, json!({"revoked": true}));
    assert_eq!(admin.get(INSTANCES).await.status, StatusCode::OK);
    // The bootstrap key still works.
    let secret = std::fs::read_to_string(&t.region.as_ref().unwrap().admin_key_path).unwrap();
    Client::login(&admin.base, secret.trim()).await;

    // An organization admin's key manages the organization's keys within its power: the
    // member key yes, the owner key and the operator's key no (they do not exist for it).
    assert_eq!(
        org_admin
            .get(&format!("/v1/regions/global/iam/apikeys/{member_id}"))
            .await
            .status,
        StatusCode::OK
    );
    for above in [&owner_id, &bootstrap] {
        let path = format!("/v1/regions/global/iam/apikeys/{above}");
        org_admin.get(&path).await.assert_error(404);
        org_admin
            .post(&format!("{path}:rotate"), json!({}))
            .await
            .assert_error(404);
    }
    let all = org_admin
        .get("/v1/regions/global/iam/apikeys?createdBy=*")
        .await;
    let ids: Vec<&str> = all.body["apiKeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&member_id.as_str()), "{ids:?}");
    assert!(
        !ids.contains(&owner_id.as_str()) && !ids.contains(&bootstrap.as_str()),
        "{ids:?}"
    );
    // Nor can it revoke a token of a principal above it.
    org_admin
        .post(
            "/v1/regions/global/auth/revoke",
            json!({"token": admin.token.clone().unwrap()}),
        )
        .await;
    assert_eq!(admin.get(INSTANCES).await.status, StatusCode::OK);
    t.stop().await;
}

/// Project ids are global in the region: a taken id is answered the same way whoever took it,
/// never naming the organization that holds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taken_global_ids_answer_alike_whoever_holds_them() {
    let t = TestRegion::start().await;
    let admin = t.client.clone();
    admin
        .post("/v1/regions/global/organizations", json!({"id": "globex"}))
        .await;
    let globex = with_token(
        &admin,
        Some(signed(&t, "globex", &["owner"], (0, 600), None)),
    );
    let own = globex
        .post(
            "/v1/regions/global/projects",
            json!({"id": "globex-web", "organizationId": "globex"}),
        )
        .await;
    assert_eq!(own.status, StatusCode::CREATED, "{:#}", own.body);
    let again = globex
        .post(
            "/v1/regions/global/projects",
            json!({"id": "globex-web", "organizationId": "globex"}),
        )
        .await;
    let probe = globex
        .post(
            "/v1/regions/global/projects",
            json!({"id": "default", "organizationId": "globex"}),
        )
        .await;
    again.assert_error(409);
    probe.assert_error(409);
    assert_eq!(
        probe.message().replace("default", "ID"),
        again.message().replace("globex-web", "ID")
    );
    assert_eq!(probe.reason(), again.reason());
    assert!(
        !probe.message().contains("organization"),
        "{}",
        probe.message()
    );
    t.stop().await;
}
