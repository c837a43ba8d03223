//! Instance operations: create, read, list, update, delete, actions, serial console.

use super::bodies::Body;
use super::trace::current_traceparent;
use super::{
    App, Caller, InstanceFilters, InstanceRef, Paging, Permission, Precondition, Principal,
    check_text, etag, now, resource_id,
};
use std::collections::HashSet;
use stratus_core::catalog::{
    ADDRESS_REF, GPU_TYPE_REF, IMAGE_REF, INSTANCE_TYPE_REF, NETWORK_REF, SUBNET_REF,
    parse_reference,
};
use stratus_core::lifecycle::{self, Action};
use stratus_core::placement::Demand;
use stratus_core::quota::holds_running_share;
use stratus_core::retry::optimistic;
use stratus_core::selector::LabelSelector;
use stratus_core::{Error, Result, ids};
use stratus_store::{InstanceRecord, InstanceSpec, InstanceVersion, PageRequest, ProjectRecord};
use stratus_types::{
    DesiredState, Disk, DiskInterface, DiskType, Gpu, Instance, InstanceCreateRequest,
    InstanceStatus, InstanceUpdateRequest, Lifecycle, MetadataItem, Nic, ResourceId,
    SerialPortOutput,
};
use uuid::Uuid;

/// Largest total size of an instance's metadata values.
const MAX_METADATA_BYTES: usize = 512 * 1024;
/// Largest disk.
const MAX_DISK_GB: u32 = 64 * 1024;
/// Largest page of instances as JSON; a page of large instances ends before its page size.
pub const MAX_PAGE_BYTES: usize = 4 << 20;

/// A page of instances as [`App::bounded_page`] reads it.
#[derive(Default)]
struct BoundedPage {
    instances: Vec<Body>,
    /// The id of the last instance on the page.
    last_id: Option<String>,
    /// Whether more instances follow.
    more: bool,
    /// How many instances there are, when the request counts them.
    total: Option<u64>,
}

/// The answer to a list of instances, shaped as [`stratus_types::InstanceList`], its instances
/// serialized already: each is sent as it was kept ([`super::bodies`]) or made to bound the
/// page by its size.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstancePage {
    pub instances: Vec<Body>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}
/// Instances read from the store at a time while a page is made.
const PAGE_BATCH: u32 = 50;
/// Largest window of serial output returned at once.
const MAX_SERIAL_CHUNK: u64 = 1 << 20;

/// An instance and its ETag, as returned by single-instance operations.
pub struct InstanceView {
    pub instance: Instance,
    pub etag: String,
}

/// An instance as the JSON a read sends, with its ETag.
pub struct InstanceBody {
    pub body: Body,
    pub etag: String,
}

impl App {
    /// The `selfLink` of instance `id` of `project` in this region.
    pub(crate) fn instance_self_link(&self, project: &str, id: &str) -> String {
        format!(
            "/v1/regions/{}/projects/{project}/compute/instances/{id}",
            self.region()
        )
    }

    pub(crate) fn instance_view(&self, r: &InstanceRecord) -> InstanceView {
        InstanceView {
            instance: Instance {
                self_link: self.instance_self_link(&r.project, &r.id),
                uid: r.uid,
                id: ResourceId::parse(&r.id).expect("stored ids are valid"),
                display_name: r.spec.display_name.clone(),
                description: r.spec.description.clone(),
                labels: r.spec.labels.clone(),
                instance_type: r.spec.instance_type.clone(),
                instance_metadata: r.spec.metadata.clone(),
                hostname: r.spec.hostname.clone(),
                lifecycle: Lifecycle {
                    status: r.status,
                    status_message: r.status_message.clone(),
                },
                disks: r.spec.disks.clone(),
                nics: self.nic_view(&r.project, &r.spec.nics),
                gpus: r.spec.gpus.clone(),
                created_at: r.created_at,
                updated_at: r.updated_at,
            },
            etag: etag(r.uid, r.generation),
        }
    }

    /// The project in `region`, if the caller may use it for `permission`.
    pub(crate) async fn project_for(
        &self,
        principal: &Principal,
        region: &str,
        project: &str,
        permission: Permission,
    ) -> Result<ProjectRecord> {
        self.check_region(region)?;
        self.project_record(principal, "project", project, permission)
            .await
    }

    async fn instance_for(
        &self,
        principal: &Principal,
        at: InstanceRef<'_>,
        permission: Permission,
    ) -> Result<InstanceRecord> {
        let project = self
            .project_for(principal, at.region, at.project, permission)
            .await?;
        let id = resource_id("id", at.id)?;
        self.store
            .get_instance(&project.id, id.as_str())
            .await?
            .ok_or_else(|| {
                Error::NotFound(format!("instance {id} not found in project {}", project.id))
            })
    }

    pub async fn create_instance(
        &self,
        caller: &Caller,
        (region, project): (&str, &str),
        body: InstanceCreateRequest,
    ) -> Result<InstanceView> {
        let project = self
            .project_for(
                &caller.principal,
                region,
                project,
                Permission::InstancesCreate,
            )
            .await?;
        check_text("displayName", body.display_name.as_deref(), 256)?;
        check_text("description", body.description.as_deref(), 4096)?;
        let (zone, type_id) = self.resolve_instance_type(&body.instance_type)?;
        let instance_type = self
            .catalog
            .instance_type(&type_id)
            .expect("resolved instance type exists");
        let gpus = self.resolve_gpus(&zone, body.gpus.as_deref().unwrap_or_default())?;
        let gpu = match gpus.first() {
            Some(g) => Some((g.0.clone(), g.1)),
            None => instance_type
                .gpu
                .as_ref()
                .map(|g| (g.gpu_type.clone(), g.count)),
        };
        let disks = self.resolve_disks(body.disks.unwrap_or_default()).await?;
        let nics = self.nic_requests(&project.id, body.nics.unwrap_or_default())?;
        let metadata = check_metadata(
            body.instance_metadata.unwrap_or_default(),
            "instanceMetadata",
        )?;
        let demand = Demand {
            vcpus: instance_type.vcpus,
            memory_mb: instance_type.memory_mb,
            gpu: gpu.clone(),
            baremetal: instance_type.baremetal,
        };
        let now = now();
        let live_since =
            now - chrono::Duration::from_std(self.config.host_timeout).unwrap_or_default();
        let chosen_id = body.id.clone();
        for attempt in 0.. {
            let id = chosen_id
                .clone()
                .unwrap_or_else(|| ids::generate("instance"));
            let hostname = body
                .hostname
                .as_ref()
                .map(|h| h.as_str().to_owned())
                .unwrap_or_else(|| id.to_string());
            let record = InstanceRecord {
                uid: Uuid::new_v4(),
                project: project.id.clone(),
                id: id.to_string(),
                zone: zone.clone(),
                host_id: None,
                spec: InstanceSpec {
                    display_name: body.display_name.clone().unwrap_or_default(),
                    description: body.description.clone().unwrap_or_default(),
                    labels: body.labels.clone().unwrap_or_default(),
                    instance_type: format!(
                        "/v1/regions/{}/zones/{zone}/instance-types/{type_id}",
                        self.region()
                    ),
                    metadata: metadata.clone(),
                    hostname,
                    disks: disks.clone(),
                    nics: nics.clone(),
                    gpus: body.gpus.clone().unwrap_or_default(),
                },
                vcpus: instance_type.vcpus,
                memory_mb: instance_type.memory_mb,
                gpu_type: gpu.as_ref().map(|g| g.0.clone()),
                gpu_count: gpu.as_ref().map_or(0, |g| g.1),
                desired: DesiredState::Running,
                status: InstanceStatus::Provisioning,
                status_message: Some("placed on a host; preparing disks".into()),
                status_changed_at: now,
                generation: 1,
                created_at: now,
                updated_at: now,
                traceparent: current_traceparent(),
                request_id: Some(caller.request_id.to_string()),
            };
            match self
                .store
                .create_instance(
                    &record,
                    &demand,
                    live_since,
                    &self.admission(&project.organization_id),
                )
                .await
            {
                Ok(stored) => {
                    tracing::info!(project = %stored.project, id = %stored.id, uid = %stored.uid, "instance created");
                    return Ok(self.instance_view(&stored));
                }
                // A generated id that collides is drawn again; a chosen one is the caller's,
                // and anything else taken (an address) is the request's.
                Err(Error::AlreadyExists(taken))
                    if chosen_id.is_none()
                        && attempt < 5
                        && self
                            .store
                            .get_instance(&project.id, id.as_str())
                            .await?
                            .is_some() =>
                {
                    tracing::debug!(%id, taken, "a generated instance id was taken; drawing another");
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        unreachable!("the loop returns")
    }

    /// Reads `type` into (zone, instance type id), checking that both exist here.
    fn resolve_instance_type(&self, uri: &str) -> Result<(String, String)> {
        let parts = parse_reference("type", uri, INSTANCE_TYPE_REF)?;
        let (region, zone, type_id) = (parts[0], parts[1], parts[2]);
        if region != self.region() {
            return Err(Error::invalid(
                "type",
                format!(
                    "region {region} is not served here; use region {}",
                    self.region()
                ),
            ));
        }
        if self.catalog.zone(zone).is_none() {
            return Err(Error::invalid(
                "type",
                format!("zone {zone} does not exist in region {region}"),
            ));
        }
        if self.catalog.instance_type(type_id).is_none() {
            let known: Vec<_> = self
                .catalog
                .instance_types
                .iter()
                .map(|t| t.id.as_str())
                .collect();
            return Err(Error::invalid(
                "type",
                format!(
                    "unknown instance type {type_id}; zone {zone} offers {}",
                    known.join(", ")
                ),
            ));
        }
        Ok((zone.to_owned(), type_id.to_owned()))
    }

    fn resolve_gpus(&self, zone: &str, gpus: &[Gpu]) -> Result<Vec<(String, u32)>> {
        let mut resolved: Vec<(String, u32)> = Vec::new();
        for (i, gpu) in gpus.iter().enumerate() {
            let field = format!("gpus[{i}].type");
            let parts = parse_reference(&field, &gpu.gpu_type, GPU_TYPE_REF)?;
            if parts[0] != self.region() || parts[1] != zone {
                return Err(Error::invalid(
                    field,
                    format!(
                        "GPUs must come from the instance's zone {zone} in region {}",
                        self.region()
                    ),
                ));
            }
            if self.catalog.gpu_type(parts[2]).is_none() {
                return Err(Error::invalid(
                    field,
                    format!("unknown GPU type {}", parts[2]),
                ));
            }
            if gpu.count == 0 {
                return Err(Error::invalid(
                    format!("gpus[{i}].count"),
                    "must be at least 1",
                ));
            }
            match resolved.first_mut() {
                Some((t, n)) if t == parts[2] => *n += gpu.count,
                Some(_) => {
                    return Err(Error::invalid(
                        field,
                        "an instance can have GPUs of one type only",
                    ));
                }
                None => resolved.push((parts[2].to_owned(), gpu.count)),
            }
        }
        Ok(resolved)
    }

    /// Checks disk references and sizes, and fills in defaults.
    async fn resolve_disks(&self, disks: Vec<Disk>) -> Result<Vec<Disk>> {
        let mut resolved = Vec::with_capacity(disks.len());
        let mut boot_disks = 0;
        for (i, mut disk) in disks.into_iter().enumerate() {
            let min_gb = match &disk.source {
                Some(source) => {
                    let field = format!("disks[{i}].source");
                    let parts = parse_reference(&field, source, IMAGE_REF)?;
                    if parts[0] != self.region() {
                        return Err(Error::invalid(
                            field,
                            format!("images must come from region {}", self.region()),
                        ));
                    }
                    let image = self.usable_image(&field, parts[1]).await?;
                    disk.source = Some(self.image_link(&image.id));
                    image.min_disk_gb
                }
                None if disk.size_gb.is_none() => {
                    return Err(Error::invalid(
                        format!("disks[{i}].sizeGb"),
                        "a disk without a source needs a size",
                    ));
                }
                None => 1,
            };
            let size = disk.size_gb.unwrap_or(min_gb);
            if size < min_gb.max(1) || size > MAX_DISK_GB {
                return Err(Error::invalid(
                    format!("disks[{i}].sizeGb"),
                    format!(
                        "{size} GB is out of range; this disk needs {} to {MAX_DISK_GB} GB",
                        min_gb.max(1)
                    ),
                ));
            }
            disk.size_gb = Some(size);
            if disk.boot {
                boot_disks += 1;
                if boot_disks > 1 {
                    return Err(Error::invalid(
                        format!("disks[{i}].boot"),
                        "only one disk can be the boot disk",
                    ));
                }
            }
            disk.interface.get_or_insert(DiskInterface::Scsi);
            disk.disk_type.get_or_insert(DiskType::Persistent);
            resolved.push(disk);
        }
        Ok(resolved)
    }

    pub async fn get_instance(&self, caller: &Caller, at: InstanceRef<'_>) -> Result<InstanceBody> {
        let record = self
            .instance_for(&caller.principal, at, Permission::InstancesGet)
            .await?;
        Ok(InstanceBody {
            body: self.instance_body(&record)?,
            etag: etag(record.uid, record.generation),
        })
    }

    /// `record` as the JSON a read sends: kept from an earlier read of its version, or made
    /// (and kept) now.
    fn instance_body(&self, record: &InstanceRecord) -> Result<Body> {
        if let Some(body) = self.bodies.get(record.uid, record.generation) {
            return Ok(body);
        }
        let body = Body::of(&self.instance_view(record).instance)
            .map_err(|e| Error::internal(format!("serializing an instance: {e}")))?;
        self.bodies.keep(record.uid, record.generation, &body);
        Ok(body)
    }

    /// The JSON of each of `versions` of `project`'s instances that `selector` selects, in
    /// their order: kept bodies where the version is kept, the rest read in one go. An
    /// instance deleted since it was listed is left out; one written since is sent as it is
    /// now, if `selector` still selects it.
    async fn version_bodies(
        &self,
        project: &str,
        selector: &LabelSelector,
        versions: &[InstanceVersion],
    ) -> Result<Vec<(String, Body)>> {
        let kept: Vec<Option<Body>> = versions
            .iter()
            .map(|v| self.bodies.get(v.uid, v.generation))
            .collect();
        let missing: Vec<Uuid> = versions
            .iter()
            .zip(&kept)
            .filter(|(_, body)| body.is_none())
            .map(|(v, _)| v.uid)
            .collect();
        let mut read = std::collections::HashMap::with_capacity(missing.len());
        if !missing.is_empty() {
            for record in self.store.get_instances_by_uid(&missing).await? {
                if record.project == project && selector.matches(&record.spec.labels) {
                    read.insert(record.uid, self.instance_body(&record)?);
                }
            }
        }
        Ok(versions
            .iter()
            .zip(kept)
            .filter_map(|(v, body)| Some((v.id.clone(), body.or_else(|| read.remove(&v.uid))?)))
            .collect())
    }

    /// The instance once its ETag differs from `etag`, waiting up to `wait` for a change (or
    /// until the caller goes); `None` when it still has that ETag (the caller's copy is
    /// current).
    pub async fn get_instance_when_changed(
        &self,
        caller: &Caller,
        at: InstanceRef<'_>,
        (etag, wait): (Option<&str>, std::time::Duration),
        gone: &super::ClientGone,
    ) -> Result<Option<InstanceBody>> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            let revision = self.changes.revision();
            let view = self.get_instance(caller, at).await?;
            if etag != Some(view.etag.as_str()) {
                return Ok(Some(view));
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            // Changes made through other replicas are seen at the latest a second later.
            let waited = self
                .changes
                .wait_past(revision, left.min(std::time::Duration::from_secs(1)));
            if gone.unless_gone(waited).await.is_none() {
                return Ok(None);
            }
        }
    }

    pub async fn list_instances(
        &self,
        caller: &Caller,
        (region, project): (&str, &str),
        paging: &Paging,
        filters: &InstanceFilters,
    ) -> Result<InstancePage> {
        let (project, selector) = self
            .listed_instances(caller, (region, project), filters)
            .await?;
        let selector_text = filters.label_selector.as_deref().unwrap_or("");
        let query_key = format!("instances:{}:{selector_text}", project.id);
        let page_request = self.pages.page_request(paging, &query_key)?;
        let page = self
            .bounded_page(&project.id, &selector, &page_request)
            .await?;
        let next_page_token = match page.last_id {
            Some(last) if page.more && page_request.offset.is_none() => {
                Some(self.pages.next_token(&query_key, &last))
            }
            _ => None,
        };
        Ok(InstancePage {
            instances: page.instances,
            next_page_token,
            total: page.total,
        })
    }

    /// The project whose instances a list or a watch reads, if the caller may list them, and
    /// the label selector of `filters`.
    pub(crate) async fn listed_instances(
        &self,
        caller: &Caller,
        (region, project): (&str, &str),
        filters: &InstanceFilters,
    ) -> Result<(ProjectRecord, LabelSelector)> {
        let project = self
            .project_for(
                &caller.principal,
                region,
                project,
                Permission::InstancesList,
            )
            .await?;
        let selector = match filters.label_selector.as_deref() {
            None | Some("") => LabelSelector::default(),
            Some(text) => LabelSelector::parse(text)?,
        };
        Ok((project, selector))
    }

    /// A page of instances no larger than [`MAX_PAGE_BYTES`] as JSON (however many the page
    /// size allows), read from the store a few at a time: a page of large instances ends
    /// early, and its `nextPageToken` goes on from there. Each instance is serialized once, to
    /// measure it and to be sent.
    async fn bounded_page(
        &self,
        project: &str,
        selector: &LabelSelector,
        request: &PageRequest,
    ) -> Result<BoundedPage> {
        let wanted = request.limit as usize;
        let mut batch = PageRequest {
            limit: request.limit.min(PAGE_BATCH),
            ..request.clone()
        };
        let mut page = BoundedPage::default();
        let mut bytes = 0usize;
        loop {
            let read = self
                .store
                .list_instance_versions(project, selector, &batch)
                .await?;
            page.total = page.total.or(read.total);
            let bodies = self.version_bodies(project, selector, &read.items).await?;
            let mut items = bodies.into_iter();
            for (id, body) in items.by_ref() {
                let size = body.size();
                if !page.instances.is_empty() && bytes + size > MAX_PAGE_BYTES {
                    page.more = true;
                    return Ok(page);
                }
                bytes += size;
                page.instances.push(body);
                page.last_id = Some(id);
                if page.instances.len() == wanted {
                    break;
                }
            }
            page.more = items.next().is_some() || read.more;
            if page.instances.len() == wanted || !page.more {
                return Ok(page);
            }
            batch = PageRequest {
                after: read.items.last().map(|r| r.id.clone()),
                offset: None,
                limit: ((wanted - page.instances.len()) as u32).min(PAGE_BATCH),
                with_total: false,
            };
        }
    }

    pub async fn update_instance(
        &self,
        caller: &Caller,
        at: InstanceRef<'_>,
        precondition: &Precondition,
        body: InstanceUpdateRequest,
    ) -> Result<InstanceView> {
        check_text("displayName", body.display_name.as_deref(), 256)?;
        check_text("description", body.description.as_deref(), 4096)?;
        let metadata = body
            .instance_metadata
            .map(|m| check_metadata(m, "instanceMetadata"))
            .transpose()?;
        self.modify_instance(caller, at, precondition, Permission::InstancesUpdate, |r| {
            if let Some(v) = &body.display_name {
                r.spec.display_name = v.clone();
            }
            if let Some(v) = &body.description {
                r.spec.description = v.clone();
            }
            if let Some(v) = &body.labels {
                r.spec.labels = v.clone();
            }
            if let Some(v) = &metadata {
                r.spec.metadata = v.clone();
            }
            r.updated_at = now();
            Ok(())
        })
        .await
    }

    /// Read-modify-write with the generation guard: retried (a bounded number of times) when
    /// a concurrent write wins, unless the caller pinned a version with a precondition.
    async fn modify_instance(
        &self,
        caller: &Caller,
        at: InstanceRef<'_>,
        precondition: &Precondition,
        permission: Permission,
        change: impl Fn(&mut InstanceRecord) -> Result<()>,
    ) -> Result<InstanceView> {
        let what = format!("instance {}", at.id);
        let change = &change;
        let traceparent = &current_traceparent();
        optimistic(&what, move || async move {
            let mut record = self.instance_for(&caller.principal, at, permission).await?;
            let current = etag(record.uid, record.generation);
            precondition.check(&current, &format!("instance {}", record.id))?;
            let held_running_share = holds_running_share(record.desired);
            change(&mut record)?;
            record.traceparent = traceparent.clone();
            record.request_id = Some(caller.request_id.to_string());
            let stored = if !held_running_share && holds_running_share(record.desired) {
                let organization = self.organization_of(&record.project).await?;
                self.store
                    .update_instance_to_run(&record, &self.admission(&organization))
                    .await?
            } else {
                self.store.update_instance(&record).await?
            };
            Ok(stored.map(|stored| self.instance_view(&stored)))
        })
        .await
    }

    /// The organization project `project` belongs to.
    async fn organization_of(&self, project: &str) -> Result<String> {
        self.store
            .get_project(project)
            .await?
            .map(|p| p.organization_id)
            .ok_or_else(|| Error::NotFound(format!("project {project} not found")))
    }

    /// `:start`, `:stop`, `:reboot`, `:suspend`, `:resume`.
    pub async fn act_on_instance(
        &self,
        caller: &Caller,
        at: InstanceRef<'_>,
        precondition: &Precondition,
        action: Action,
    ) -> Result<InstanceView> {
        let permission = if action == Action::Delete {
            Permission::InstancesDelete
        } else {
            Permission::InstancesUpdate
        };
        let view = self
            .modify_instance(caller, at, precondition, permission, |r| {
                if matches!(action, Action::Suspend | Action::Resume) && self.is_baremetal(r) {
                    return Err(Error::FailedPrecondition(format!(
                        "instance {} is bare metal: a server cannot keep its memory while \
                         suspended; use :stop and :start",
                        r.id
                    )));
                }
                let t = lifecycle::apply(action, r.desired, r.status)?;
                r.desired = t.desired;
                r.set_status(t.status, Some(t.message.to_owned()), now());
                Ok(())
            })
            .await?;
        tracing::info!(
            project = at.project,
            id = at.id,
            action = action.verb(),
            request_id = caller.request_id,
            "instance action"
        );
        Ok(view)
    }

    /// Whether the instance is of a bare-metal type.
    fn is_baremetal(&self, r: &InstanceRecord) -> bool {
        let type_id = r.spec.instance_type.rsplit('/').next().unwrap_or_default();
        self.catalog
            .instance_type(type_id)
            .is_some_and(|t| t.baremetal)
    }

    pub async fn delete_instance(
        &self,
        caller: &Caller,
        at: InstanceRef<'_>,
        precondition: &Precondition,
    ) -> Result<()> {
        self.act_on_instance(caller, at, precondition, Action::Delete)
            .await
            .map(|_| ())
    }

    /// The serial console from byte `start`.
    pub async fn serial_port_output(
        &self,
        caller: &Caller,
        at: InstanceRef<'_>,
        start: u64,
    ) -> Result<SerialPortOutput> {
        let record = self
            .instance_for(&caller.principal, at, Permission::InstancesGet)
            .await?;
        let (start, bytes, next) = self
            .store
            .read_console(record.uid, start, MAX_SERIAL_CHUNK)
            .await?;
        Ok(SerialPortOutput {
            contents: String::from_utf8_lossy(&bytes).into_owned(),
            start,
            next,
        })
    }
}

fn check_metadata(items: Vec<MetadataItem>, field: &str) -> Result<Vec<MetadataItem>> {
    let mut seen = HashSet::new();
    let mut total = 0;
    for (i, item) in items.iter().enumerate() {
        if !seen.insert(item.key.as_str()) {
            return Err(Error::invalid(
                format!("{field}[{i}].key"),
                format!("key {} appears more than once", item.key.as_str()),
            ));
        }
        total += item.key.as_str().len() + item.value.len();
    }
    if total > MAX_METADATA_BYTES {
        return Err(Error::invalid(
            field,
            format!("{total} bytes of metadata; at most {MAX_METADATA_BYTES} are allowed"),
        ));
    }
    Ok(items)
}

impl App {
    /// Checks NIC requests and reads their references into the ids the store resolves: a
    /// network or subnet must be of this region and of the instance's own project. An
    /// instance that names no NIC gets one, in the project's default network.
    fn nic_requests(&self, project: &str, nics: Vec<Nic>) -> Result<Vec<Nic>> {
        let mut nics = if nics.is_empty() {
            vec![Nic::default()]
        } else {
            nics
        };
        for (i, nic) in nics.iter_mut().enumerate() {
            for (name, value, pattern) in [
                ("network", &mut nic.network, NETWORK_REF),
                ("subnet", &mut nic.subnet, SUBNET_REF),
                ("externalAddress", &mut nic.external_address, ADDRESS_REF),
            ] {
                if let Some(uri) = value.as_deref() {
                    let field = format!("nics[{i}].{name}");
                    let parts = parse_reference(&field, uri, pattern)?;
                    if parts[0] != self.region() || parts[1] != project {
                        return Err(Error::invalid(
                            field,
                            format!(
                                "{name} must be of this instance's region {} and project {project}",
                                self.region()
                            ),
                        ));
                    }
                    *value = Some(resource_id(&field, parts[2])?.to_string());
                }
            }
            if nic.mac_address.is_some() {
                return Err(Error::invalid(
                    format!("nics[{i}].macAddress"),
                    "macAddress is read-only; the region chooses it",
                ));
            }
            if let Some(addr) = &nic.ipv4_address
                && addr.parse::<std::net::Ipv4Addr>().is_err()
            {
                return Err(Error::invalid(
                    format!("nics[{i}].ipv4Address"),
                    format!("{addr:?} is not an IPv4 address"),
                ));
            }
            if nic.external_ipv4_address.is_some() {
                return Err(Error::invalid(
                    format!("nics[{i}].externalIpv4Address"),
                    "externalIpv4Address is read-only: name an EXTERNAL address in externalAddress",
                ));
            }
            if nic.ipv6_address.is_some() {
                return Err(Error::invalid(
                    format!("nics[{i}].ipv6Address"),
                    "ipv6Address follows from ipv4Address (the network's /64 with the IPv4 \
                     address as interface id); leave it out",
                ));
            }
            if let Some(vlan) = nic.vlan
                && !(1..=4094).contains(&vlan)
            {
                return Err(Error::invalid(
                    format!("nics[{i}].vlan"),
                    format!("{vlan} is not a VLAN id (1 to 4094)"),
                ));
            }
        }
        Ok(nics)
    }

    /// NICs as the API shows them: their network and subnet as URIs.
    fn nic_view(&self, project: &str, nics: &[Nic]) -> Vec<Nic> {
        let uri = |kind: &str, id: &Option<String>| {
            id.as_ref().map(|id| {
                if id.starts_with('/') {
                    id.clone()
                } else {
                    format!(
                        "/v1/regions/{}/projects/{project}/compute/{kind}/{id}",
                        self.region()
                    )
                }
            })
        };
        nics.iter()
            .map(|nic| Nic {
                network: uri("networks", &nic.network),
                subnet: uri("subnets", &nic.subnet),
                external_address: uri("addresses", &nic.external_address),
                ..nic.clone()
            })
            .collect()
    }
}
