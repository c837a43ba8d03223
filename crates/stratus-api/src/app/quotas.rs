//! Organization quotas: reading them with their usage, and setting them (see
//! [`stratus_core::quota`] for what counts and when it is checked).

use super::{App, Caller, Permission, Precondition, etag, now};
use crate::app::tenancy::Versioned;
use stratus_core::quota::{self, Amounts, GPU_TYPE_PREFIX, Overrides};
use stratus_core::retry::optimistic;
use stratus_core::{Error, Result};
use stratus_store::{Admission, OrganizationRecord, QuotaRecord};
use stratus_types::{QuotaUsage, Quotas, QuotasUpdateRequest, ResourceId};

/// The largest limit taken: far above any region, far below what sums could overflow.
const MAX_LIMIT: u64 = 1 << 40;

impl App {
    /// What the organization may hold, for the store to check in the transaction that adds to
    /// it.
    pub(crate) fn admission<'a>(&'a self, organization: &'a str) -> Admission<'a> {
        Admission {
            organization,
            defaults: &self.config.default_quotas,
        }
    }

    async fn quotas_view(
        &self,
        organization: &OrganizationRecord,
        stored: Option<&QuotaRecord>,
    ) -> Result<Versioned<Quotas>> {
        let overrides = stored.map(|q| q.overrides.clone()).unwrap_or_default();
        let limits = quota::effective(&self.config.default_quotas, &overrides);
        let usage = self.store.quota_usage(&organization.id).await?;
        let limit = |name: &str| limits.get(name).copied();
        let org_id = ResourceId::parse(&organization.id).expect("stored ids are valid");
        Ok(Versioned {
            value: Quotas {
                self_link: format!(
                    "/v1/regions/global/organizations/{}/quotas",
                    organization.id
                ),
                id: ResourceId::parse(&format!(
                    "quota-{}",
                    &organization.uid.simple().to_string()[..6]
                ))
                .expect("quota ids are valid"),
                organization_id: org_id,
                cpu_cores: limit("cpuCores"),
                ram_gb: limit("ramGb"),
                gpu_count: limit("gpuCount"),
                storage_tb: limit("storageTb"),
                cluster_count: limit("clusterCount"),
                instance_count: limit("instanceCount"),
                disk_gb: limit("diskGb"),
                gpu_count_by_type: limits
                    .iter()
                    .filter_map(|(name, l)| {
                        name.strip_prefix(GPU_TYPE_PREFIX)
                            .map(|t| (t.to_owned(), *l))
                    })
                    .collect(),
                usage: usage_view(&usage),
            },
            etag: etag(organization.uid, stored.map_or(0, |q| q.generation)),
        })
    }

    /// The organization's quotas and usage: for its owners and admins, and the operators.
    pub async fn get_quotas(
        &self,
        caller: &Caller,
        organization: &str,
    ) -> Result<Versioned<Quotas>> {
        let organization = self
            .organization_for(&caller.principal, organization, Permission::QuotasGet)
            .await?;
        let stored = self.store.get_quota(&organization.id).await?;
        self.quotas_view(&organization, stored.as_ref()).await
    }

    /// Sets the organization's quotas: for the region's operators.
    pub async fn update_quotas(
        &self,
        caller: &Caller,
        organization: &str,
        precondition: &Precondition,
        body: QuotasUpdateRequest,
    ) -> Result<Versioned<Quotas>> {
        let changes = &self.quota_changes(body)?;
        let record = optimistic(
            &format!("quotas of organization {organization}"),
            move || async move {
                let organization = self
                    .organization_for(&caller.principal, organization, Permission::QuotasUpdate)
                    .await?;
                let stored = self.store.get_quota(&organization.id).await?;
                let current = etag(
                    organization.uid,
                    stored.as_ref().map_or(0, |q| q.generation),
                );
                precondition.check(
                    &current,
                    &format!("quotas of organization {}", organization.id),
                )?;
                let mut record = stored.unwrap_or_else(|| QuotaRecord {
                    organization_id: organization.id.clone(),
                    overrides: Overrides::new(),
                    generation: 0,
                    updated_at: now(),
                });
                record.overrides.extend(changes.clone());
                record.updated_at = now();
                Ok(self
                    .store
                    .save_quota(&record)
                    .await?
                    .map(|saved| (organization, saved)))
            },
        )
        .await?;
        tracing::info!(
            organization = %record.0.id,
            overrides = ?record.1.overrides,
            request_id = caller.request_id,
            "quotas set"
        );
        self.quotas_view(&record.0, Some(&record.1)).await
    }

    /// The settings a request changes, by quota name, checked.
    fn quota_changes(&self, body: QuotasUpdateRequest) -> Result<Overrides> {
        let named = [
            ("cpuCores", body.cpu_cores),
            ("ramGb", body.ram_gb),
            ("gpuCount", body.gpu_count),
            ("storageTb", body.storage_tb),
            ("clusterCount", body.cluster_count),
            ("instanceCount", body.instance_count),
            ("diskGb", body.disk_gb),
        ];
        let mut changes: Overrides = named
            .into_iter()
            .filter_map(|(name, setting)| setting.map(|limit| (name.to_owned(), limit)))
            .collect();
        for (gpu_type, limit) in body.gpu_count_by_type {
            if self.catalog.gpu_type(&gpu_type).is_none() {
                let known: Vec<&str> = self
                    .catalog
                    .gpu_types
                    .iter()
                    .map(|g| g.id.as_str())
                    .collect();
                return Err(Error::invalid(
                    format!("gpuCountByType.{gpu_type}"),
                    format!(
                        "unknown GPU type {gpu_type}; the catalog has [{}]",
                        known.join(", ")
                    ),
                ));
            }
            changes.insert(format!("{GPU_TYPE_PREFIX}{gpu_type}"), limit);
        }
        if let Some((name, _)) = changes
            .iter()
            .find(|(_, limit)| limit.is_some_and(|l| l > MAX_LIMIT))
        {
            return Err(Error::invalid(
                name.clone(),
                format!("a limit is at most {MAX_LIMIT}; leave it unlimited with null"),
            ));
        }
        Ok(changes)
    }
}

fn usage_view(usage: &Amounts) -> QuotaUsage {
    QuotaUsage {
        cpu_cores: usage.in_quota_units("cpuCores"),
        ram_gb: usage.in_quota_units("ramGb"),
        gpu_count: usage.in_quota_units("gpuCount"),
        storage_tb: usage.in_quota_units("storageTb"),
        cluster_count: usage.in_quota_units("clusterCount"),
        instance_count: usage.in_quota_units("instanceCount"),
        disk_gb: usage.in_quota_units("diskGb"),
        gpu_count_by_type: usage.gpus_by_type.clone(),
    }
}
