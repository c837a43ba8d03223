//! Turning database rows into records, once for every backend.
//!
//! Both backends keep the same columns with the same meaning (times as milliseconds since the
//! epoch, JSON documents as text); they differ only in how a column is decoded, chiefly uids:
//! text in SQLite, the native `UUID` type in PostgreSQL. [`Columns`] hides that difference, so
//! each record has exactly one mapping from a row.

use crate::records::*;
use crate::{Page, PageRequest};
use chrono::{DateTime, TimeZone, Utc};
use stratus_core::placement::HostUsage;
use stratus_core::{Error, Result};
use stratus_types::{DesiredState, ImageFormat, ImageStatus, InstanceStatus};
use uuid::Uuid;

/// Typed access to the columns of a row.
pub(crate) trait Columns {
    fn text(&self, col: &str) -> Result<String>;
    fn opt_text(&self, col: &str) -> Result<Option<String>>;
    fn int(&self, col: &str) -> Result<i64>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>>;
    fn bytes(&self, col: &str) -> Result<Vec<u8>>;
    fn uuid(&self, col: &str) -> Result<Uuid>;
    fn opt_uuid(&self, col: &str) -> Result<Option<Uuid>>;

    fn time(&self, col: &str) -> Result<DateTime<Utc>> {
        Ok(time(self.int(col)?))
    }

    fn json<T: serde::de::DeserializeOwned>(&self, col: &str) -> Result<T> {
        serde_json::from_str(&self.text(col)?)
            .map_err(|e| Error::internal(format!("bad json in {col}: {e}")))
    }
}

/// Implements [`Columns`] for a backend's row type; `$uuid` and `$opt_uuid` decode uids.
macro_rules! impl_columns {
    ($row:ty, $error:path, $uuid:expr, $opt_uuid:expr) => {
        impl $crate::rows::Columns for $row {
            fn text(&self, col: &str) -> stratus_core::Result<String> {
                sqlx::Row::try_get(self, col).map_err($error)
            }
            fn opt_text(&self, col: &str) -> stratus_core::Result<Option<String>> {
                sqlx::Row::try_get(self, col).map_err($error)
            }
            fn int(&self, col: &str) -> stratus_core::Result<i64> {
                sqlx::Row::try_get(self, col).map_err($error)
            }
            fn opt_int(&self, col: &str) -> stratus_core::Result<Option<i64>> {
                sqlx::Row::try_get(self, col).map_err($error)
            }
            fn bytes(&self, col: &str) -> stratus_core::Result<Vec<u8>> {
                sqlx::Row::try_get(self, col).map_err($error)
            }
            fn uuid(&self, col: &str) -> stratus_core::Result<uuid::Uuid> {
                $uuid(self, col)
            }
            fn opt_uuid(&self, col: &str) -> stratus_core::Result<Option<uuid::Uuid>> {
                $opt_uuid(self, col)
            }
        }
    };
}
pub(crate) use impl_columns;

pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("records serialize")
}

/// Parses a uid stored as text.
pub(crate) fn parse_uuid(col: &str, text: &str) -> Result<Uuid> {
    Uuid::parse_str(text).map_err(|e| Error::internal(format!("bad uuid in {col}: {e}")))
}

pub(crate) fn instance_from_row(row: &impl Columns) -> Result<InstanceRecord> {
    let desired = row.text("desired")?;
    let status = row.text("status")?;
    Ok(InstanceRecord {
        uid: row.uuid("uid")?,
        project: row.text("project")?,
        id: row.text("id")?,
        zone: row.text("zone")?,
        host_id: row.opt_uuid("host_id")?,
        spec: row.json("spec")?,
        vcpus: row.int("vcpus")? as u32,
        memory_mb: row.int("memory_mb")? as u64,
        gpu_type: row.opt_text("gpu_type")?,
        gpu_count: row.int("gpu_count")? as u32,
        desired: DesiredState::parse(&desired)
            .ok_or_else(|| Error::internal(format!("bad desired state {desired}")))?,
        status: InstanceStatus::parse(&status)
            .ok_or_else(|| Error::internal(format!("bad status {status}")))?,
        status_message: row.opt_text("status_message")?,
        status_changed_at: row.time("status_changed_at")?,
        generation: row.int("generation")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

pub(crate) fn organization_from_row(row: &impl Columns) -> Result<OrganizationRecord> {
    Ok(OrganizationRecord {
        uid: row.uuid("uid")?,
        id: row.text("id")?,
        display_name: row.text("display_name")?,
        description: row.text("description")?,
        generation: row.int("generation")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

pub(crate) fn project_from_row(row: &impl Columns) -> Result<ProjectRecord> {
    Ok(ProjectRecord {
        uid: row.uuid("uid")?,
        id: row.text("id")?,
        organization_id: row.text("organization_id")?,
        display_name: row.text("display_name")?,
        description: row.text("description")?,
        generation: row.int("generation")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

pub(crate) fn host_from_row(row: &impl Columns) -> Result<HostRecord> {
    Ok(HostRecord {
        id: row.uuid("id")?,
        name: row.text("name")?,
        zone: row.text("zone")?,
        driver: row.text("driver")?,
        vcpus: row.int("vcpus")? as u32,
        memory_mb: row.int("memory_mb")? as u64,
        gpus: row.json("gpus")?,
        registered_at: row.time("registered_at")?,
        last_seen_at: row.time("last_seen_at")?,
    })
}

pub(crate) fn image_from_row(row: &impl Columns) -> Result<ImageRecord> {
    let format = row.text("format")?;
    let status = row.text("status")?;
    Ok(ImageRecord {
        uid: row.uuid("uid")?,
        id: row.text("id")?,
        display_name: row.text("display_name")?,
        description: row.text("description")?,
        os: row.text("os")?,
        format: ImageFormat::parse(&format)
            .ok_or_else(|| Error::internal(format!("bad image format {format}")))?,
        size_bytes: row.int("size_bytes")? as u64,
        min_disk_gb: row.int("min_disk_gb")? as u32,
        status: ImageStatus::parse(&status)
            .ok_or_else(|| Error::internal(format!("bad image status {status}")))?,
        status_message: row.opt_text("status_message")?,
        source: row.opt_text("source")?,
        sha256: row.opt_text("sha256")?,
        file: row.opt_text("file")?,
        bytes_done: row.int("bytes_done")? as u64,
        generation: row.int("generation")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

pub(crate) fn api_key_from_row(row: &impl Columns) -> Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        uid: row.uuid("uid")?,
        id: row.text("id")?,
        secret_hash: row.text("secret_hash")?,
        organization_id: row.text("organization_id")?,
        scope: row.text("scope")?,
        scope_id: row.text("scope_id")?,
        roles: row.json("roles")?,
        created_by: row.text("created_by")?,
        display_name: row.text("display_name")?,
        created_at: row.time("created_at")?,
        last_used_at: row.opt_int("last_used_at")?.map(time),
        status: row.text("status")?,
        previous_secret_hash: row.opt_text("previous_secret_hash")?,
        previous_secret_expires_at: row.opt_int("previous_secret_expires_at")?.map(time),
        last_rotated_at: row.opt_int("last_rotated_at")?.map(time),
    })
}

pub(crate) fn service_account_from_row(row: &impl Columns) -> Result<ServiceAccountRecord> {
    Ok(ServiceAccountRecord {
        uid: row.uuid("uid")?,
        id: row.text("id")?,
        client_id: row.text("client_id")?,
        organization_id: row.text("organization_id")?,
        display_name: row.text("display_name")?,
        description: row.text("description")?,
        scope: row.text("scope")?,
        scope_id: row.text("scope_id")?,
        roles: row.json("roles")?,
        status: row.text("status")?,
        created_by: row.text("created_by")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

pub(crate) fn credential_from_row(row: &impl Columns) -> Result<CredentialRecord> {
    Ok(CredentialRecord {
        uid: row.uuid("uid")?,
        id: row.text("id")?,
        service_account_id: row.text("service_account_id")?,
        secret_hash: row.text("secret_hash")?,
        expires_at: row.opt_int("expires_at")?.map(time),
        created_at: row.time("created_at")?,
        last_used_at: row.opt_int("last_used_at")?.map(time),
    })
}

pub(crate) fn audit_event_from_row(row: &impl Columns) -> Result<AuditEventRecord> {
    Ok(AuditEventRecord {
        id: row.text("id")?,
        at: row.time("at")?,
        principal: row.text("principal")?,
        principal_type: row.text("principal_type")?,
        organization_id: row.text("organization_id")?,
        credential_id: row.text("credential_id")?,
        method: row.text("method")?,
        path: row.text("path")?,
        status: row.int("status")? as u16,
        request_id: row.text("request_id")?,
    })
}

pub(crate) fn revoked_token_from_row(row: &impl Columns) -> Result<RevokedTokenRecord> {
    Ok(RevokedTokenRecord {
        jti: row.text("jti")?,
        expires_at: row.time("expires_at")?,
    })
}

pub(crate) fn signing_key_from_row(row: &impl Columns) -> Result<SigningKeyRecord> {
    Ok(SigningKeyRecord {
        kid: row.text("kid")?,
        algorithm: row.text("algorithm")?,
        private_key: row.bytes("private_key")?,
        public_key: row.bytes("public_key")?,
        created_at: row.time("created_at")?,
    })
}

pub(crate) fn console_log_from_row(row: &impl Columns) -> Result<ConsoleLogRecord> {
    Ok(ConsoleLogRecord {
        instance_uid: row.uuid("instance_uid")?,
        base_offset: row.int("base_offset")? as u64,
        content: row.bytes("content")?,
    })
}

/// vCPUs and memory placed on each host.
pub(crate) const USAGE_BY_HOST: &str = "SELECT host_id, CAST(SUM(vcpus) AS BIGINT) AS vcpus, \
     CAST(SUM(memory_mb) AS BIGINT) AS memory_mb FROM instances WHERE host_id IS NOT NULL \
     GROUP BY host_id";

/// GPUs of each type placed on each host.
pub(crate) const GPU_USAGE_BY_HOST: &str = "SELECT host_id, gpu_type, \
     CAST(SUM(gpu_count) AS BIGINT) AS n FROM instances \
     WHERE host_id IS NOT NULL AND gpu_type IS NOT NULL GROUP BY host_id, gpu_type";

/// What placement needs to know of `hosts`: their capacity and the sums of
/// [`USAGE_BY_HOST`] and [`GPU_USAGE_BY_HOST`].
pub(crate) fn host_usage(
    hosts: &[HostRecord],
    sums: &[impl Columns],
    gpu_sums: &[impl Columns],
) -> Result<Vec<HostUsage>> {
    let mut usage: Vec<HostUsage> = hosts
        .iter()
        .map(|h| HostUsage {
            host_id: h.id,
            vcpus: h.vcpus,
            memory_mb: h.memory_mb,
            gpus: h.gpus.clone(),
            used_vcpus: 0,
            used_memory_mb: 0,
            used_gpus: vec![],
        })
        .collect();
    for row in sums {
        let host = row.uuid("host_id")?;
        if let Some(u) = usage.iter_mut().find(|u| u.host_id == host) {
            u.used_vcpus = row.int("vcpus")? as u32;
            u.used_memory_mb = row.int("memory_mb")? as u64;
        }
    }
    for row in gpu_sums {
        let host = row.uuid("host_id")?;
        if let Some(u) = usage.iter_mut().find(|u| u.host_id == host) {
            u.used_gpus
                .push((row.text("gpu_type")?, row.int("n")? as u32));
        }
    }
    Ok(usage)
}

/// Refuses to import into a store that holds rows already.
pub(crate) fn ensure_empty(counts: std::collections::BTreeMap<String, u64>) -> Result<()> {
    let held: Vec<String> = counts
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(table, n)| format!("{n} {table}"))
        .collect();
    if held.is_empty() {
        Ok(())
    } else {
        Err(Error::FailedPrecondition(format!(
            "the target database already holds a region ({}); copy into an empty database",
            held.join(", ")
        )))
    }
}

/// Reads one page of an id-ordered collection in keyset batches, keeping the items `keep`
/// accepts. `fetch(cursor, n)` returns up to `n` items with ids after `cursor`, in id order.
pub(crate) async fn page_from_batches<T, F, Fut>(
    page: &PageRequest,
    mut fetch: F,
    id_of: fn(&T) -> &str,
    keep: &(dyn Fn(&T) -> bool + Send + Sync),
) -> Result<Page<T>>
where
    F: FnMut(String, usize) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<T>>>,
{
    let limit = page.limit as usize;
    let mut to_skip = page.offset.unwrap_or(0);
    let batch = (limit + 1).max(if page.offset.is_some() || page.with_total {
        500
    } else {
        0
    });
    let mut cursor = page.after.clone().unwrap_or_default();
    let mut items = Vec::new();
    let mut more = false;
    let mut total: u64 = 0;
    loop {
        let fetched = fetch(cursor.clone(), batch).await?;
        let exhausted = fetched.len() < batch;
        for item in fetched {
            cursor = id_of(&item).to_owned();
            if !keep(&item) {
                continue;
            }
            total += 1;
            if to_skip > 0 {
                to_skip -= 1;
            } else if items.len() < limit {
                items.push(item);
            } else {
                more = true;
                if !page.with_total {
                    break;
                }
            }
        }
        if exhausted || (more && !page.with_total) {
            break;
        }
    }
    Ok(Page {
        items,
        more,
        total: page.with_total.then_some(total),
    })
}

/// The error for a service account that has as many active credentials as allowed.
pub(crate) fn too_many_credentials(max_active: usize) -> Error {
    Error::FailedPrecondition(format!(
        "a service account has at most {max_active} active credentials; delete one first"
    ))
}
