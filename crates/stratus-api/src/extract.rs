//! Request extractors that turn every malformed input into a 400 naming the field.
//!
//! axum's own `Json` and `Query` rejections answer in plain text and do not say which field
//! was wrong. These extractors parse by hand: the body must be a JSON object; fields the
//! server sets (read-only) and fields fixed at creation (immutable) are refused by name; every
//! other problem carries the JSON path where serde found it (`disks[0].sizeGb`).

use crate::app::paging::PAGING_PARAMS;
use crate::app::{
    ApiKeyFilters, AuditFilter, InstanceFilters, OrganizationFilter, Paging, Precondition,
    StatusFilter,
};
use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use stratus_core::Error;

/// A request body type, with the fields a client may not send in it.
pub trait RequestBody: DeserializeOwned {
    /// Fields the server sets; sending them is an error.
    const READ_ONLY: &'static [&'static str] = &[];
    /// Fields that cannot change after creation; sending them is an error.
    const IMMUTABLE: &'static [&'static str] = &[];
}

/// A JSON body of type `T`, strictly parsed.
pub struct StrictJson<T>(pub T);

impl<S: Send + Sync, T: RequestBody> FromRequest<S> for StrictJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = read_json_body(req, state).await?;
        if is_blank(&bytes) {
            return Err(Error::invalid("body", "this operation needs a JSON object body").into());
        }
        parse_body(&bytes).map(StrictJson).map_err(ApiError)
    }
}

/// A JSON body of type `T` that may be left out (the operation then takes `{}`).
pub struct OptionalJson<T>(pub T);

impl<S: Send + Sync, T: RequestBody> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = read_json_body(req, state).await?;
        // A body that may be left out may also be sent as JSON `null`.
        let bytes =
            if serde_json::from_slice::<serde_json::Value>(&bytes).is_ok_and(|v| v.is_null()) {
                Bytes::from_static(b"{}")
            } else {
                bytes
            };
        parse_body(&bytes).map(OptionalJson).map_err(ApiError)
    }
}

/// The body of a request that must be JSON if it has a `Content-Type`; 413 past the limit.
async fn read_json_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    if let Some(content_type) = req.headers().get(header::CONTENT_TYPE)
        && !is_json(content_type.to_str().unwrap_or(""))
    {
        return Err(Error::invalid(
            "Content-Type",
            "the body must be JSON (Content-Type: application/json)",
        )
        .into());
    }
    Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            Error::TooLarge(format!(
                "the request body is larger than {} KiB",
                crate::MAX_BODY_BYTES / 1024
            ))
            .into()
        } else {
            Error::invalid("body", format!("the body could not be read: {e}")).into()
        }
    })
}

/// Whether a body holds nothing but JSON's whitespace (space, tab, line feed, carriage return),
/// as a body left out does.
fn is_blank(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

/// Whether a `Content-Type` names JSON: `application/json`, with parameters or without.
fn is_json(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// Parses a JSON object body into `T`, naming the offending field on failure.
pub fn parse_body<T: RequestBody>(bytes: &[u8]) -> Result<T, Error> {
    let bytes = if is_blank(bytes) {
        b"{}".as_slice()
    } else {
        bytes
    };
    let value = without_duplicate_keys(bytes)?;
    let Some(object) = value.as_object() else {
        return Err(Error::invalid("body", "the body must be a JSON object"));
    };
    for key in object.keys() {
        if T::READ_ONLY.contains(&key.as_str()) {
            return Err(Error::invalid(
                key.clone(),
                format!("{key} is read-only; the server sets it"),
            ));
        }
        if T::IMMUTABLE.contains(&key.as_str()) {
            return Err(Error::invalid(
                key.clone(),
                format!("{key} cannot be changed after creation"),
            ));
        }
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let (field, description) = describe_serde_error(&path, &inner);
        Error::invalid(field, description)
    })
}

/// The JSON value of `bytes`, refusing an object that names a key twice (JSON leaves the
/// meaning open, and taking the last silently hides a client's mistake).
fn without_duplicate_keys(bytes: &[u8]) -> Result<serde_json::Value, Error> {
    use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
    use serde_json::{Map, Value};

    struct Unique(Value);
    struct UniqueVisitor;

    impl<'de> serde::Deserialize<'de> for Unique {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(UniqueVisitor).map(Unique)
        }
    }

    impl<'de> Visitor<'de> for UniqueVisitor {
        type Value = Value;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
            Ok(Value::Bool(v))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_str<E>(self, v: &str) -> Result<Value, E> {
            Ok(Value::String(v.to_owned()))
        }
        fn visit_string<E>(self, v: String) -> Result<Value, E> {
            Ok(Value::String(v))
        }
        fn visit_unit<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_none<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
            let mut items = Vec::new();
            while let Some(Unique(item)) = seq.next_element()? {
                items.push(item);
            }
            Ok(Value::Array(items))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            let mut object = Map::new();
            while let Some(key) = map.next_key::<String>()? {
                let Unique(value) = map.next_value()?;
                if object.insert(key.clone(), value).is_some() {
                    return Err(serde::de::Error::custom(format!(
                        "the key {key:?} appears twice in one object"
                    )));
                }
            }
            Ok(Value::Object(object))
        }
    }

    serde_json::from_slice::<Unique>(bytes)
        .map(|Unique(value)| value)
        .map_err(|e| Error::invalid("body", format!("the body is not valid JSON: {e}")))
}

/// Turns serde's message into a field path and a description of the problem.
fn describe_serde_error(path: &str, message: &str) -> (String, String) {
    let at = |name: &str| {
        if path == "." || path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        }
    };
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((name, _)) = rest.split_once('`')
    {
        // The path already ends at the unknown field.
        let field = if path.ends_with(name) {
            path.to_owned()
        } else {
            at(name)
        };
        return (field, format!("unknown field {name}"));
    }
    if let Some(rest) = message.strip_prefix("missing field `")
        && let Some((name, _)) = rest.split_once('`')
    {
        return (at(name), format!("{name} is required"));
    }
    let field = if path == "." || path.is_empty() {
        "body".to_owned()
    } else {
        path.to_owned()
    };
    (field, message.to_owned())
}

/// The query string as a map, refusing parameters the operation does not know.
pub struct QueryParams(pub BTreeMap<String, String>);

impl QueryParams {
    pub fn parse(raw: Option<&str>, allowed: &[&str]) -> Result<Self, Error> {
        let mut map = BTreeMap::new();
        for (key, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            if !allowed.contains(&key.as_ref()) {
                return Err(Error::invalid(
                    key.to_string(),
                    format!(
                        "unknown query parameter {key}; this operation takes {}",
                        if allowed.is_empty() {
                            "none".to_owned()
                        } else {
                            allowed.join(", ")
                        }
                    ),
                ));
            }
            if map.insert(key.to_string(), value.to_string()).is_some() {
                return Err(Error::invalid(key.to_string(), "given more than once"));
            }
        }
        Ok(Self(map))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// An integer parameter within `min..=max`.
    pub fn integer(&self, key: &str, min: u64, max: u64) -> Result<Option<u64>, Error> {
        let Some(text) = self.get(key) else {
            return Ok(None);
        };
        let n: u64 = text
            .parse()
            .map_err(|_| Error::invalid(key, format!("{text:?} is not a whole number")))?;
        if n < min || n > max {
            return Err(Error::invalid(
                key,
                format!("{n} is out of range; it must be between {min} and {max}"),
            ));
        }
        Ok(Some(n))
    }
}

/// The query of a list: paging (`pageSize`, `pageToken`, `offset`) and the list's own filters
/// `F`; any other parameter is a 400 naming it.
pub struct ListQuery<F>(pub Paging, pub F);

/// The query parameters of one operation, read from the query string.
pub trait QueryFilters: Sized {
    /// The parameters the operation takes.
    const NAMES: &'static [&'static str];
    /// Whether its list pages by `offset` too (not only by `pageToken`).
    const OFFSET: bool = true;
    fn read(params: &QueryParams) -> Result<Self, Error>;
}

/// An operation that takes no query parameters of its own.
pub struct NoFilters;

impl QueryFilters for NoFilters {
    const NAMES: &'static [&'static str] = &[];
    fn read(_: &QueryParams) -> Result<Self, Error> {
        Ok(NoFilters)
    }
}

impl<S: Send + Sync, F: QueryFilters> FromRequestParts<S> for ListQuery<F> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let allowed: Vec<&str> = PAGING_PARAMS
            .iter()
            .filter(|p| F::OFFSET || **p != "offset")
            .chain(F::NAMES)
            .copied()
            .collect();
        let params = QueryParams::parse(parts.uri.query(), &allowed)?;
        let paging = Paging {
            page_size: params.integer("pageSize", 0, u64::MAX)?,
            page_token: params.get("pageToken").map(str::to_owned),
            offset: params.integer("offset", 0, i64::MAX as u64)?,
        };
        Ok(ListQuery(paging, F::read(&params)?))
    }
}

/// The query parameters of an operation that is not a list.
pub struct Filters<F>(pub F);

impl<S: Send + Sync, F: QueryFilters> FromRequestParts<S> for Filters<F> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let params = QueryParams::parse(parts.uri.query(), F::NAMES)?;
        Ok(Filters(F::read(&params)?))
    }
}

/// Reads a filter struct of the application's whose fields are optional text parameters.
macro_rules! text_filters {
    ($($name:ident $(($offset:literal))? { $($field:ident = $param:literal),* $(,)? })*) => {
        $(impl QueryFilters for $name {
            const NAMES: &'static [&'static str] = &[$($param),*];
            $(const OFFSET: bool = $offset;)?
            fn read(params: &QueryParams) -> Result<Self, Error> {
                Ok(Self { $($field: params.get($param).map(str::to_owned),)* })
            }
        })*
    };
}

text_filters! {
    OrganizationFilter { organization_id = "organizationId" }
    AuditFilter(false) { organization_id = "organizationId" }
    ApiKeyFilters(false) { status = "status", created_by = "createdBy" }
    StatusFilter(false) { status = "status" }
}

impl QueryFilters for InstanceFilters {
    const NAMES: &'static [&'static str] = &[
        "labelSelector",
        "watch",
        "resourceVersion",
        "fieldSelector",
        "timeoutSeconds",
    ];
    fn read(params: &QueryParams) -> Result<Self, Error> {
        let watch = match params.get("watch") {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(Error::invalid(
                    "watch",
                    format!("{other:?} is neither true nor false"),
                ));
            }
        };
        let field_id = params
            .get("fieldSelector")
            .map(|text| match text.split_once('=') {
                Some(("id", name)) if !name.starts_with('=') => {
                    stratus_types::ResourceId::parse(name)
                        .map(|id| id.to_string())
                        .map_err(|why| Error::invalid("fieldSelector", why))
                }
                _ => Err(Error::invalid(
                    "fieldSelector",
                    format!("{text:?} is not a field selector this list takes: give id=NAME"),
                )),
            })
            .transpose()?;
        let filters = Self {
            label_selector: params.get("labelSelector").map(str::to_owned),
            watch,
            resource_version: params.get("resourceVersion").map(str::to_owned),
            field_id,
            timeout_seconds: params.integer(
                "timeoutSeconds",
                1,
                crate::app::watch::MAX_TIMEOUT_S,
            )?,
        };
        if !watch {
            for (given, name) in [
                (filters.resource_version.is_some(), "resourceVersion"),
                (filters.field_id.is_some(), "fieldSelector"),
                (filters.timeout_seconds.is_some(), "timeoutSeconds"),
            ] {
                if given {
                    return Err(Error::invalid(
                        name,
                        format!("{name} applies to watches only (watch=true)"),
                    ));
                }
            }
        } else {
            for name in ["pageSize", "pageToken", "offset"] {
                if params.get(name).is_some() {
                    return Err(Error::invalid(
                        name,
                        format!("{name} does not apply to a watch, which sends every instance"),
                    ));
                }
            }
        }
        Ok(filters)
    }
}

/// `start` of the serial console.
pub struct SerialStart(pub u64);

impl QueryFilters for SerialStart {
    const NAMES: &'static [&'static str] = &["start"];
    fn read(params: &QueryParams) -> Result<Self, Error> {
        Ok(SerialStart(
            params.integer("start", 0, i64::MAX as u64)?.unwrap_or(0),
        ))
    }
}

/// The version a change is based on, from the `If-Match` header.
impl<S: Send + Sync> FromRequestParts<S> for Precondition {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        match parts.headers.get(header::IF_MATCH) {
            None => Ok(Self(None)),
            Some(v) => v
                .to_str()
                .map(|s| Self(Some(s.to_owned())))
                .map_err(|_| Error::invalid("If-Match", "not a valid header value").into()),
        }
    }
}

/// A conditional, optionally waiting read: `If-None-Match: <etag>` with `Prefer: wait=<seconds>`
/// (RFC 7240) answers as soon as the resource no longer has that ETag, or 304 Not Modified
/// when the wait ends first.
pub struct WaitForChange {
    /// The ETag the caller already has.
    pub etag: Option<String>,
    pub wait: std::time::Duration,
}

/// The longest `Prefer: wait` honoured, below the request timeout.
pub const MAX_WAIT_SECONDS: u64 = 50;

impl<S: Send + Sync> FromRequestParts<S> for WaitForChange {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let text = |name: header::HeaderName| -> Result<Option<String>, ApiError> {
            match parts.headers.get(&name) {
                None => Ok(None),
                Some(v) => v
                    .to_str()
                    .map(|s| Some(s.trim().to_owned()))
                    .map_err(|_| Error::invalid(name.as_str(), "not a valid header value").into()),
            }
        };
        let etag = text(header::IF_NONE_MATCH)?;
        let mut wait = std::time::Duration::ZERO;
        if let Some(prefer) = text(header::HeaderName::from_static("prefer"))? {
            for preference in prefer.split(',') {
                if let Some(seconds) = preference.trim().strip_prefix("wait=") {
                    let seconds: u64 = seconds.trim().parse().map_err(|_| {
                        Error::invalid("Prefer", "wait= takes a whole number of seconds")
                    })?;
                    wait = std::time::Duration::from_secs(seconds.min(MAX_WAIT_SECONDS));
                }
            }
        }
        Ok(Self { etag, wait })
    }
}

impl RequestBody for stratus_types::InstanceCreateRequest {
    const READ_ONLY: &'static [&'static str] = stratus_types::INSTANCE_READ_ONLY_FIELDS;
}

impl RequestBody for stratus_types::InstanceUpdateRequest {
    const READ_ONLY: &'static [&'static str] = stratus_types::INSTANCE_READ_ONLY_FIELDS;
    const IMMUTABLE: &'static [&'static str] = stratus_types::INSTANCE_IMMUTABLE_FIELDS;
}

const TENANCY_READ_ONLY: &[&str] = &["selfLink", "uid", "createdAt", "updatedAt"];

impl RequestBody for stratus_types::OrganizationCreateRequest {
    const READ_ONLY: &'static [&'static str] = TENANCY_READ_ONLY;
}

impl RequestBody for stratus_types::OrganizationUpdateRequest {
    const READ_ONLY: &'static [&'static str] = TENANCY_READ_ONLY;
    const IMMUTABLE: &'static [&'static str] = &["id"];
}

impl RequestBody for stratus_types::ProjectCreateRequest {
    const READ_ONLY: &'static [&'static str] = TENANCY_READ_ONLY;
}

impl RequestBody for stratus_types::ProjectUpdateRequest {
    const READ_ONLY: &'static [&'static str] = TENANCY_READ_ONLY;
    const IMMUTABLE: &'static [&'static str] = &["id", "organizationId"];
}

impl RequestBody for stratus_types::NetworkCreateRequest {
    const READ_ONLY: &'static [&'static str] =
        &["selfLink", "uid", "subnets", "createdAt", "updatedAt"];
}

impl RequestBody for stratus_types::NetworkUpdateRequest {
    const READ_ONLY: &'static [&'static str] =
        &["selfLink", "uid", "subnets", "createdAt", "updatedAt"];
    const IMMUTABLE: &'static [&'static str] = &["id", "cidr"];
}

impl RequestBody for stratus_types::AddressAllocateRequest {
    const READ_ONLY: &'static [&'static str] = &["selfLink", "uid", "status", "user", "createdAt"];
}

impl RequestBody for stratus_types::QuotasUpdateRequest {
    const READ_ONLY: &'static [&'static str] = &["selfLink", "id", "organizationId", "usage"];
}

impl RequestBody for stratus_types::auth::TokenRequest {}

impl RequestBody for stratus_types::ImageCreateRequest {
    const READ_ONLY: &'static [&'static str] = &[
        "selfLink",
        "uid",
        "status",
        "statusMessage",
        "sizeBytes",
        "createdAt",
        "updatedAt",
    ];
}

const API_KEY_READ_ONLY: &[&str] = &[
    "status",
    "id",
    "createdBy",
    "createdAt",
    "lastUsedAt",
    "lastRotatedAt",
    "secret",
    "previousSecretExpiresAt",
];

impl RequestBody for stratus_types::auth::ApiKeyCreateRequest {
    const READ_ONLY: &'static [&'static str] = API_KEY_READ_ONLY;
}

impl RequestBody for stratus_types::auth::ApiKeyUpdateRequest {
    // `status` (listed first) is read-only at create and changes here (active ⇄ disabled).
    const READ_ONLY: &'static [&'static str] = API_KEY_READ_ONLY.split_at(1).1;
    const IMMUTABLE: &'static [&'static str] = &["scope", "scopeId"];
}

impl RequestBody for stratus_types::auth::ApiKeyRotateRequest {}

const SERVICE_ACCOUNT_READ_ONLY: &[&str] = &[
    "status",
    "id",
    "clientId",
    "createdBy",
    "createdAt",
    "updatedAt",
];

impl RequestBody for stratus_types::auth::ServiceAccountCreateRequest {
    const READ_ONLY: &'static [&'static str] = SERVICE_ACCOUNT_READ_ONLY;
}

impl RequestBody for stratus_types::auth::ServiceAccountUpdateRequest {
    // `status` (listed first) is read-only at create and changes here.
    const READ_ONLY: &'static [&'static str] = SERVICE_ACCOUNT_READ_ONLY.split_at(1).1;
    const IMMUTABLE: &'static [&'static str] = &["scope", "scopeId"];
}

impl RequestBody for stratus_types::auth::CredentialCreateRequest {
    const READ_ONLY: &'static [&'static str] = &[
        "id",
        "serviceAccountId",
        "clientId",
        "status",
        "createdAt",
        "lastUsedAt",
        "clientSecret",
    ];
}

impl RequestBody for stratus_types::auth::TokenBody {}

impl RequestBody for stratus_types::auth::CheckRequest {}

const SERVER_READ_ONLY: &[&str] = &[
    "selfLink",
    "uid",
    "hardwareSpecs",
    "provisioningState",
    "healthStatus",
    "statusMessage",
    "powerState",
    "instance",
    "createdAt",
    "updatedAt",
];

impl RequestBody for stratus_types::ServerCreateRequest {
    const READ_ONLY: &'static [&'static str] = SERVER_READ_ONLY;
}

impl RequestBody for stratus_types::ServerUpdateRequest {
    const READ_ONLY: &'static [&'static str] = SERVER_READ_ONLY;
    const IMMUTABLE: &'static [&'static str] =
        &["id", "bmcAddress", "bmcUsername", "bmcPassword", "zone"];
}

impl RequestBody for stratus_types::ServerBatchCreateRequest {}

impl RequestBody for stratus_types::ServerProvisionRequest {}

#[cfg(test)]
mod tests {
    use super::*;
    use stratus_types::{InstanceCreateRequest, InstanceUpdateRequest};

    fn field_of(e: Error) -> String {
        match e {
            Error::InvalidArgument { fields, .. } => fields[0].field.clone(),
            other => panic!("want InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn nested_problems_are_named_by_json_path() {
        let e = parse_body::<InstanceCreateRequest>(br#"{"type":"/t","disks":[{"sizeGb":"big"}]}"#)
            .unwrap_err();
        assert_eq!(field_of(e), "disks[0].sizeGb");
        let e = parse_body::<InstanceCreateRequest>(br#"{"type":"/t","disks":[{"colour":1}]}"#)
            .unwrap_err();
        assert_eq!(field_of(e), "disks[0].colour");
        let e = parse_body::<InstanceCreateRequest>(br#"{"type":"/t","id":"Bad"}"#).unwrap_err();
        assert_eq!(field_of(e), "id");
        let e = parse_body::<InstanceCreateRequest>(br#"{}"#).unwrap_err();
        assert_eq!(field_of(e), "type");
        let e = parse_body::<InstanceCreateRequest>(
            br#"{"type":"/t","instanceMetadata":[{"key":"a b","value":""}]}"#,
        )
        .unwrap_err();
        assert_eq!(field_of(e), "instanceMetadata[0].key");
    }

    #[test]
    fn read_only_and_immutable_fields_are_refused_by_name() {
        let e = parse_body::<InstanceCreateRequest>(br#"{"type":"/t","uid":"x"}"#).unwrap_err();
        assert_eq!(field_of(e), "uid");
        let e = parse_body::<InstanceUpdateRequest>(br#"{"type":"/t"}"#).unwrap_err();
        assert_eq!(field_of(e), "type");
        let e = parse_body::<InstanceUpdateRequest>(br#"[1]"#).unwrap_err();
        assert_eq!(field_of(e), "body");
        assert!(parse_body::<InstanceUpdateRequest>(b"").is_ok());
    }

    #[test]
    fn query_parameters_are_checked() {
        let q = QueryParams::parse(Some("pageSize=10"), &["pageSize"]).unwrap();
        assert_eq!(q.integer("pageSize", 1, 500).unwrap(), Some(10));
        let q = QueryParams::parse(Some("pageSize=0"), &["pageSize"]).unwrap();
        assert!(q.integer("pageSize", 1, 500).is_err());
        assert!(QueryParams::parse(Some("colour=red"), &["pageSize"]).is_err());
        assert!(QueryParams::parse(Some("pageSize=1&pageSize=2"), &["pageSize"]).is_err());
    }
}
