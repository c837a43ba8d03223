//! Records and the rows of their tables, mapped once for every database.
//!
//! Both databases keep the same columns with the same meaning (times as milliseconds since the
//! epoch, JSON documents as text, uids as the database's own type); a row decodes alike on both
//! ([`Columns`]), and every record says once, as a [`Table`], which table holds it, how it is
//! read from a row and which values its columns take. Inserts, exports and imports are built
//! from that, never written out per table.

pub(crate) use crate::engine::ms;
use crate::engine::{Arg, Columns};
use crate::records::*;
use chrono::{DateTime, Utc};
use stratus_core::placement::HostUsage;
use stratus_core::{Error, Result};
use stratus_types::{AddressType, DesiredState, ImageFormat, ImageStatus, InstanceStatus};
use uuid::Uuid;

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("records serialize")
}

fn json<T: serde::de::DeserializeOwned>(row: &dyn Columns, col: &str) -> Result<T> {
    serde_json::from_str(&row.text(col)?)
        .map_err(|e| Error::internal(format!("bad json in {col}: {e}")))
}

/// Parses a uid stored as text.
pub(crate) fn parse_uuid(col: &str, text: &str) -> Result<Uuid> {
    Uuid::parse_str(text).map_err(|e| Error::internal(format!("bad uuid in {col}: {e}")))
}

fn parsed<T>(col: &str, text: String, parse: fn(&str) -> Option<T>) -> Result<T> {
    parse(&text).ok_or_else(|| Error::internal(format!("bad {col} {text}")))
}

/// The values of a record's columns, by column name.
pub(crate) type Values = Vec<(&'static str, Arg)>;

/// A record kept as one row of one table.
pub(crate) trait Table: Sized + Send + Sync {
    const NAME: &'static str;
    /// The columns a page of these records reads.
    const COLUMNS: &'static str = "*";
    fn from_row(row: &dyn Columns) -> Result<Self>;
    fn values(&self) -> Values;
}

/// A record listed in pages, in the byte order of its `id`.
pub(crate) trait Listed: Table {
    fn id(&self) -> &str;
}

macro_rules! listed {
    ($($record:ty),*) => {
        $(impl Listed for $record {
            fn id(&self) -> &str {
                &self.id
            }
        })*
    };
}

listed!(
    InstanceVersion,
    NetworkRecord,
    SubnetRecord,
    ServerRecord,
    InstanceRecord,
    OrganizationRecord,
    ProjectRecord,
    ImageRecord,
    ApiKeyRecord,
    ServiceAccountRecord,
    AuditEventRecord
);

/// `INSERT` of `record`'s row, with its arguments.
pub(crate) fn insert<T: Table>(record: &T) -> (String, Vec<Arg>) {
    insert_many(&[record])
}

/// One `INSERT` of every row of `records` (which must not be empty), with its arguments.
pub(crate) fn insert_many<T: Table>(records: &[&T]) -> (String, Vec<Arg>) {
    let mut names = Vec::new();
    let mut args = Vec::new();
    let mut rows = Vec::with_capacity(records.len());
    for record in records {
        let values = record.values();
        if names.is_empty() {
            names = values.iter().map(|(name, _)| *name).collect();
        }
        rows.push(format!("({})", vec!["?"; values.len()].join(", ")));
        args.extend(values.into_iter().map(|(_, arg)| arg));
    }
    (
        format!(
            "INSERT INTO {} ({}) VALUES {}",
            T::NAME,
            names.join(", "),
            rows.join(", ")
        ),
        args,
    )
}

/// How one field is kept in its column: read from a row, written as an [`Arg`].
trait Codec<T> {
    fn get(row: &dyn Columns, col: &str) -> Result<T>;
    fn put(value: &T) -> Arg;
}

/// Text, nullable text, uids, byte strings, times, JSON, and integers narrower than the
/// column's 64 bits.
struct Text;
struct OptText;
struct Uid;
struct OptUid;
struct Bytes;
struct Int;
struct Narrow;
struct Time;
struct OptTime;
struct Json;
/// An enum kept by its name.
struct Named;

impl Codec<String> for Text {
    fn get(row: &dyn Columns, col: &str) -> Result<String> {
        row.text(col)
    }
    fn put(value: &String) -> Arg {
        value.into()
    }
}

impl Codec<Option<String>> for OptText {
    fn get(row: &dyn Columns, col: &str) -> Result<Option<String>> {
        row.opt_text(col)
    }
    fn put(value: &Option<String>) -> Arg {
        value.into()
    }
}

impl Codec<Uuid> for Uid {
    fn get(row: &dyn Columns, col: &str) -> Result<Uuid> {
        row.uuid(col)
    }
    fn put(value: &Uuid) -> Arg {
        (*value).into()
    }
}

impl Codec<Option<Uuid>> for OptUid {
    fn get(row: &dyn Columns, col: &str) -> Result<Option<Uuid>> {
        row.opt_uuid(col)
    }
    fn put(value: &Option<Uuid>) -> Arg {
        (*value).into()
    }
}

impl Codec<Vec<u8>> for Bytes {
    fn get(row: &dyn Columns, col: &str) -> Result<Vec<u8>> {
        row.bytes(col)
    }
    fn put(value: &Vec<u8>) -> Arg {
        value.into()
    }
}

impl Codec<i64> for Int {
    fn get(row: &dyn Columns, col: &str) -> Result<i64> {
        row.int(col)
    }
    fn put(value: &i64) -> Arg {
        (*value).into()
    }
}

impl<T: TryFrom<i64> + Copy + Into<i128>> Codec<T> for Narrow {
    fn get(row: &dyn Columns, col: &str) -> Result<T> {
        let n = row.int(col)?;
        T::try_from(n).map_err(|_| Error::internal(format!("{col} {n} is out of range")))
    }
    fn put(value: &T) -> Arg {
        // Values here are sizes and counts, far below 2^63.
        (Into::<i128>::into(*value) as i64).into()
    }
}

/// A nullable count or index.
struct OptNarrow;

impl Codec<Option<u32>> for OptNarrow {
    fn get(row: &dyn Columns, col: &str) -> Result<Option<u32>> {
        row.opt_int(col)?
            .map(|n| {
                u32::try_from(n).map_err(|_| Error::internal(format!("{col} {n} is out of range")))
            })
            .transpose()
    }
    fn put(value: &Option<u32>) -> Arg {
        value.map(i64::from).into()
    }
}

impl Codec<DateTime<Utc>> for Time {
    fn get(row: &dyn Columns, col: &str) -> Result<DateTime<Utc>> {
        row.time(col)
    }
    fn put(value: &DateTime<Utc>) -> Arg {
        ms(*value).into()
    }
}

impl Codec<Option<DateTime<Utc>>> for OptTime {
    fn get(row: &dyn Columns, col: &str) -> Result<Option<DateTime<Utc>>> {
        row.opt_time(col)
    }
    fn put(value: &Option<DateTime<Utc>>) -> Arg {
        value.map(ms).into()
    }
}

impl<T: serde::Serialize + serde::de::DeserializeOwned> Codec<T> for Json {
    fn get(row: &dyn Columns, col: &str) -> Result<T> {
        json(row, col)
    }
    fn put(value: &T) -> Arg {
        to_json(value).into()
    }
}

/// The enums kept by name, with how to read a name back.
trait ByName: Sized {
    fn name(&self) -> &'static str;
    fn from_name(name: &str) -> Option<Self>;
}

macro_rules! by_name {
    ($($kind:ty),*) => {
        $(impl ByName for $kind {
            fn name(&self) -> &'static str {
                self.as_str()
            }
            fn from_name(name: &str) -> Option<Self> {
                <$kind>::parse(name)
            }
        })*
    };
}

by_name!(
    DesiredState,
    InstanceStatus,
    ImageFormat,
    ImageStatus,
    AddressType
);

impl<T: ByName> Codec<T> for Named {
    fn get(row: &dyn Columns, col: &str) -> Result<T> {
        parsed(col, row.text(col)?, T::from_name)
    }
    fn put(value: &T) -> Arg {
        value.name().into()
    }
}

/// Implements [`Table`] for a record whose fields are its table's columns, each with the
/// [`Codec`] that keeps it.
macro_rules! table {
    ($record:ty, $name:literal, { $($field:ident: $codec:ty),* $(,)? }) => {
        impl Table for $record {
            const NAME: &'static str = $name;
            fn from_row(row: &dyn Columns) -> Result<Self> {
                Ok(Self { $($field: <$codec as Codec<_>>::get(row, stringify!($field))?),* })
            }
            fn values(&self) -> Values {
                vec![$((stringify!($field), <$codec as Codec<_>>::put(&self.$field))),*]
            }
        }
    };
}

impl Table for InstanceRecord {
    const NAME: &'static str = "instances";

    /// The metadata is in its own column (or, in a row not yet moved, still in the spec); a
    /// row read without it (`NULL AS metadata`) has none.
    fn from_row(row: &dyn Columns) -> Result<Self> {
        let mut spec: InstanceSpec = <Json as Codec<_>>::get(row, "spec")?;
        if let Some(text) = row.opt_text("metadata")? {
            spec.metadata = serde_json::from_str(&text)
                .map_err(|e| Error::internal(format!("bad json in metadata: {e}")))?;
        }
        Ok(Self {
            uid: Uid::get(row, "uid")?,
            project: Text::get(row, "project")?,
            id: Text::get(row, "id")?,
            zone: Text::get(row, "zone")?,
            host_id: OptUid::get(row, "host_id")?,
            spec,
            vcpus: <Narrow as Codec<_>>::get(row, "vcpus")?,
            memory_mb: <Narrow as Codec<_>>::get(row, "memory_mb")?,
            gpu_type: OptText::get(row, "gpu_type")?,
            gpu_count: <Narrow as Codec<_>>::get(row, "gpu_count")?,
            desired: <Named as Codec<_>>::get(row, "desired")?,
            status: <Named as Codec<_>>::get(row, "status")?,
            status_message: OptText::get(row, "status_message")?,
            status_changed_at: Time::get(row, "status_changed_at")?,
            generation: Int::get(row, "generation")?,
            created_at: Time::get(row, "created_at")?,
            updated_at: Time::get(row, "updated_at")?,
            traceparent: OptText::get(row, "traceparent")?,
            request_id: OptText::get(row, "request_id")?,
        })
    }

    fn values(&self) -> Values {
        let mut values = vec![
            ("uid", Uid::put(&self.uid)),
            ("project", Text::put(&self.project)),
            ("id", Text::put(&self.id)),
            ("zone", Text::put(&self.zone)),
            ("host_id", OptUid::put(&self.host_id)),
            ("vcpus", <Narrow as Codec<u32>>::put(&self.vcpus)),
            ("memory_mb", <Narrow as Codec<u64>>::put(&self.memory_mb)),
            ("gpu_type", OptText::put(&self.gpu_type)),
            ("gpu_count", <Narrow as Codec<u32>>::put(&self.gpu_count)),
            ("desired", <Named as Codec<_>>::put(&self.desired)),
            ("status", <Named as Codec<_>>::put(&self.status)),
            ("status_message", OptText::put(&self.status_message)),
            ("status_changed_at", Time::put(&self.status_changed_at)),
            ("generation", Int::put(&self.generation)),
            ("created_at", Time::put(&self.created_at)),
            ("updated_at", Time::put(&self.updated_at)),
            ("traceparent", OptText::put(&self.traceparent)),
            ("request_id", OptText::put(&self.request_id)),
        ];
        values.extend(spec_values(&self.spec));
        values
    }
}

impl Table for InstanceVersion {
    const NAME: &'static str = "instances";
    const COLUMNS: &'static str = "uid, id, generation, labels";

    fn from_row(row: &dyn Columns) -> Result<Self> {
        Ok(Self {
            uid: Uid::get(row, "uid")?,
            id: Text::get(row, "id")?,
            generation: Int::get(row, "generation")?,
            labels: labels_column(&row.text("labels")?)?,
        })
    }

    fn values(&self) -> Values {
        vec![
            ("uid", Uid::put(&self.uid)),
            ("id", Text::put(&self.id)),
            ("generation", Int::put(&self.generation)),
            ("labels", to_json(&self.labels).into()),
        ]
    }
}

/// The labels an instance's `labels` column holds: its labels as a JSON object, or, in a row
/// last written before the column existed (migration 0010, on SQLite), its whole spec.
fn labels_column(text: &str) -> Result<stratus_types::Labels> {
    if text.is_empty() {
        return Ok(Default::default());
    }
    serde_json::from_str(text)
        .or_else(|_| serde_json::from_str::<InstanceSpec>(text).map(|spec| spec.labels))
        .map_err(|e| Error::internal(format!("bad json in labels: {e}")))
}

/// The columns that keep an instance's spec: the spec without its metadata, the metadata,
/// its digest, the disk it holds, and its labels (for label-selected pages).
pub(crate) fn spec_values(spec: &InstanceSpec) -> Values {
    let disk_gb = spec.disk_gb();
    let mut bare = spec.clone();
    let metadata = std::mem::take(&mut bare.metadata);
    vec![
        ("spec", to_json(&bare).into()),
        ("metadata", to_json(&metadata).into()),
        ("metadata_digest", metadata_digest(&metadata).into()),
        ("disk_gb", (disk_gb as i64).into()),
        ("labels", to_json(&bare.labels).into()),
    ]
}

/// A short digest of an instance's metadata: equal digests, equal metadata.
pub fn metadata_digest(metadata: &[stratus_types::MetadataItem]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(to_json(&metadata).as_bytes())[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

table!(NetworkRecord, "networks", {
    uid: Uid, project: Text, id: Text, display_name: Text, description: Text, cidr: Text,
    vni: Int, generation: Int, created_at: Time, updated_at: Time,
});

table!(SubnetRecord, "subnets", {
    uid: Uid, project: Text, id: Text, network_uid: Uid, network: Text, display_name: Text,
    description: Text, ipv4_cidr: Text, ipv6_cidr: Text, created_at: Time, updated_at: Time,
});

table!(AddressRecord, "addresses", {
    uid: Uid, project: Text, id: OptText, space: Text, ip: Text, address_type: Named,
    network: OptText, subnet: OptText, instance_uid: OptUid, nic: OptNarrow, display_name: Text,
    description: Text, created_at: Time,
});

impl Listed for AddressRecord {
    fn id(&self) -> &str {
        self.id.as_deref().unwrap_or("")
    }
}

table!(ServerRecord, "servers", {
    uid: Uid, project: Text, id: Text, zone: Text, display_name: Text, description: Text,
    bmc_address: Text, bmc_secret: Text, hardware: Json, provisioning_state: Text,
    status_message: OptText, health: Json, power_state: OptText, tags: Json, persona: Text,
    host_id: OptUid, generation: Int, created_at: Time, updated_at: Time,
});

table!(ServerLogRecord, "server_logs", {
    server_uid: Uid, seq: Int, severity: Text, message: Text,
});

table!(QuotaRecord, "quotas", {
    organization_id: Text, overrides: Json, generation: Int, updated_at: Time,
});

table!(OrganizationRecord, "organizations", {
    uid: Uid, id: Text, display_name: Text, description: Text, generation: Int,
    created_at: Time, updated_at: Time,
});

table!(ProjectRecord, "projects", {
    uid: Uid, id: Text, organization_id: Text, display_name: Text, description: Text,
    generation: Int, created_at: Time, updated_at: Time,
});

table!(HostRecord, "hosts", {
    id: Uid, name: Text, zone: Text, driver: Text, vcpus: Narrow, memory_mb: Narrow, gpus: Json,
    registered_at: Time, last_seen_at: Time, scheduling: Text, accelerator: OptText,
    agent_version: OptText, underlay: OptText,
});

table!(ImageRecord, "images", {
    uid: Uid, id: Text, display_name: Text, description: Text, os: Text, format: Named,
    size_bytes: Narrow, min_disk_gb: Narrow, status: Named, status_message: OptText,
    source: OptText, sha256: OptText, file: OptText, bytes_done: Narrow, generation: Int,
    created_at: Time, updated_at: Time,
});

table!(ApiKeyRecord, "api_keys", {
    uid: Uid, id: Text, secret_hash: Text, organization_id: Text, scope: Text, scope_id: Text,
    roles: Json, created_by: Text, display_name: Text, created_at: Time, last_used_at: OptTime,
    status: Text, previous_secret_hash: OptText, previous_secret_expires_at: OptTime,
    last_rotated_at: OptTime,
});

table!(ServiceAccountRecord, "service_accounts", {
    uid: Uid, id: Text, client_id: Text, organization_id: Text, display_name: Text,
    description: Text, scope: Text, scope_id: Text, roles: Json, status: Text,
    created_by: Text, created_at: Time, updated_at: Time,
});

table!(CredentialRecord, "service_account_credentials", {
    uid: Uid, id: Text, service_account_id: Text, secret_hash: Text, expires_at: OptTime,
    created_at: Time, last_used_at: OptTime,
});

table!(AuditEventRecord, "audit_events", {
    id: Text, at: Time, principal: Text, principal_type: Text, organization_id: Text,
    credential_id: Text, method: Text, path: Text, status: Narrow, request_id: Text,
});

table!(RevokedTokenRecord, "revoked_tokens", { jti: Text, expires_at: Time });

table!(SigningKeyRecord, "signing_keys", {
    kid: Text, algorithm: Text, private_key: Bytes, public_key: Bytes, created_at: Time,
});

table!(ConsoleLogRecord, "console_logs", { instance_uid: Uid, base_offset: Narrow, content: Bytes });

/// A setting: one key and its value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Setting {
    pub key: String,
    pub value: String,
}

table!(Setting, "settings", { key: Text, value: Text });

/// What placement needs to know of hosts: their capacity and what is placed on them, from
/// rows of `hosts` (at least [`crate::sql::HOST_CAPACITY`]) and of `host_gpu_usage`.
pub(crate) fn host_usage(
    hosts: &[crate::engine::Row],
    gpu_rows: &[crate::engine::Row],
) -> Result<Vec<HostUsage>> {
    let mut usage = Vec::with_capacity(hosts.len());
    let mut index = std::collections::HashMap::with_capacity(hosts.len());
    for row in hosts {
        let row = row.as_ref();
        let id = Uid::get(row, "id")?;
        index.insert(id, usage.len());
        let gpus = row.text("gpus")?;
        usage.push(HostUsage {
            host_id: id,
            vcpus: Narrow::get(row, "vcpus")?,
            memory_mb: Narrow::get(row, "memory_mb")?,
            gpus: match gpus.as_str() {
                "[]" => Vec::new(),
                _ => json(row, "gpus")?,
            },
            used_vcpus: Narrow::get(row, "used_vcpus")?,
            used_memory_mb: Narrow::get(row, "used_memory_mb")?,
            used_gpus: vec![],
            instances: Narrow::get(row, "placed_instances")?,
            baremetal: row.text("driver")? == "redfish",
        });
    }
    for row in gpu_rows {
        if let Some(&i) = index.get(&row.uuid("host_id")?) {
            usage[i]
                .used_gpus
                .push((row.text("gpu_type")?, row.int("n")? as u32));
        }
    }
    Ok(usage)
}
