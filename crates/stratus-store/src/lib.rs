//! The durable state of a Stratus region behind one [`Store`] interface.
//!
//! All SQL lives in this crate, written once ([`sql`]) for both databases; an [`engine`] is the
//! narrow seam where SQLite and PostgreSQL differ (binding uids, numbering placeholders,
//! transactions, a few words of dialect), and the schema has one source ([`migrate`]). The
//! interface speaks in records and in the domain's [`stratus_core::Error`], never in SQL terms,
//! and one conformance suite holds both databases to the same behaviour (`conformance`, with
//! the throwaway PostgreSQL server of `testing`, behind the `testing` feature).
//!
//! Three rules make the state safe to share between the API, the reconciler, host agents and
//! several replicas:
//! - **Generation-guarded writes.** Every write of a versioned record names the generation it
//!   read (`UPDATE … WHERE generation = ?`). A write against a stale generation changes nothing
//!   and returns `None`; the writer re-reads and decides again. Nobody overwrites what they did
//!   not see.
//! - **Decisions inside one transaction.** Placement reads host capacity and inserts the
//!   instance in the same write transaction, so two creates can never both take the last vCPU:
//!   SQLite runs writes on one connection with `BEGIN IMMEDIATE`; PostgreSQL locks the zone's
//!   row of `placement_zones`, and repeats a transaction that lost a serialization race.
//! - **Leases, not locks, for background work.** A reconciler claims an instance with a lease
//!   (owner, expiry) in the row; a crashed owner's lease simply expires.

mod addressing;
mod cache;
mod changes;
#[cfg(feature = "testing")]
pub mod conformance;
mod engine;
mod feed;
mod group_commit;
mod metered;
mod migrate;
mod postgres;
mod records;
mod rows;
mod sql;
mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;
mod zones;

pub use addressing::new_network;
pub use cache::SHARED_LAG;
pub use changes::Changes;
pub use feed::{ChangeKind, InstanceChange};
pub use postgres::PostgresStore;
pub use records::*;
pub use rows::metadata_digest;
pub use sql::SqlStore;
pub use sqlite::SqliteStore;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use stratus_core::Result;
use stratus_core::placement::Demand;
use stratus_core::quota;
use stratus_core::selector::LabelSelector;
use uuid::Uuid;

/// What the organization of an instance may hold: checked in the transaction that adds to it.
#[derive(Clone, Copy, Debug)]
pub struct Admission<'a> {
    pub organization: &'a str,
    /// The region's default limits; the organization's own settings go on top.
    pub defaults: &'a quota::Limits,
}

/// The operations a region's state supports. Implemented by each database backend.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    // settings
    /// Stores `value` under `key` unless a value is there already; returns the stored value.
    async fn setting_or_init(&self, key: &str, value: &str) -> Result<String>;

    async fn get_setting(&self, key: &str) -> Result<Option<String>>;

    // organizations
    async fn create_organization(&self, org: &OrganizationRecord) -> Result<()>;
    async fn get_organization(&self, id: &str) -> Result<Option<OrganizationRecord>>;
    async fn list_organizations(&self, page: &PageRequest) -> Result<Page<OrganizationRecord>>;
    /// Writes `org` if its `generation` is still current; returns the stored record.
    async fn update_organization(
        &self,
        org: &OrganizationRecord,
    ) -> Result<Option<OrganizationRecord>>;
    /// Deletes the organization; fails with `FailedPrecondition` while it has projects.
    async fn delete_organization(&self, id: &str) -> Result<bool>;

    // quotas
    /// The organization's own quota settings, if any were ever stored.
    async fn get_quota(&self, organization: &str) -> Result<Option<QuotaRecord>>;
    /// Stores quota settings: inserted when `generation` is 0, else written if `generation`
    /// is still the stored one; returns the stored record, or `None` when someone else wrote
    /// first.
    async fn save_quota(&self, quota: &QuotaRecord) -> Result<Option<QuotaRecord>>;
    /// What the organization's instances hold, as its quotas count it.
    async fn quota_usage(&self, organization: &str) -> Result<quota::Amounts>;

    // projects
    /// Fails with `InvalidArgument` on `organizationId` when the organization does not exist.
    async fn create_project(&self, project: &ProjectRecord) -> Result<()>;
    async fn get_project(&self, id: &str) -> Result<Option<ProjectRecord>>;
    async fn list_projects(
        &self,
        organization_id: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<ProjectRecord>>;
    async fn update_project(&self, project: &ProjectRecord) -> Result<Option<ProjectRecord>>;
    /// Deletes the project; fails with `FailedPrecondition` while it has instances.
    async fn delete_project(&self, id: &str) -> Result<bool>;

    // networks
    /// Creates a network with its subnet, giving it a VNI of its own; `AlreadyExists` when
    /// its project has one of that id.
    async fn create_network(
        &self,
        network: &NetworkRecord,
        subnet: &SubnetRecord,
    ) -> Result<NetworkRecord>;
    async fn get_network(&self, project: &str, id: &str) -> Result<Option<NetworkRecord>>;
    async fn list_networks(&self, project: &str, page: &PageRequest)
    -> Result<Page<NetworkRecord>>;
    /// Writes the display name and description if `generation` is still the stored one.
    async fn update_network(&self, network: &NetworkRecord) -> Result<Option<NetworkRecord>>;
    /// Deletes a network and its subnets; `FailedPrecondition` naming the instances and
    /// addresses that still use it.
    async fn delete_network(&self, project: &str, id: &str) -> Result<bool>;
    async fn subnets_of_network(&self, network_uid: Uuid) -> Result<Vec<SubnetRecord>>;
    async fn get_subnet(&self, project: &str, id: &str) -> Result<Option<SubnetRecord>>;
    /// Subnet `subnet` of network `network` in `project` with the network's VNI, in one read:
    /// what a host needs to plumb a NIC. `None` unless both exist and belong together.
    async fn get_subnet_in_network(
        &self,
        project: &str,
        network: &str,
        subnet: &str,
    ) -> Result<Option<(SubnetRecord, i64)>>;
    async fn list_subnets(&self, project: &str, page: &PageRequest) -> Result<Page<SubnetRecord>>;

    // addresses
    /// Reserves `address` in `range` (its subnet's CIDR, or the external pool): the `ip` it
    /// names (`AlreadyExists` when taken), or a free one — in a subnet the next in turn, in the
    /// external pool the lowest (`ResourceExhausted` when none is left).
    async fn allocate_address(
        &self,
        address: &AddressRecord,
        range: &ipnet::Ipv4Net,
    ) -> Result<AddressRecord>;
    async fn get_address(&self, project: &str, id: &str) -> Result<Option<AddressRecord>>;
    /// The addresses a project reserved.
    async fn list_addresses(
        &self,
        project: &str,
        page: &PageRequest,
    ) -> Result<Page<AddressRecord>>;
    /// Releases a reservation; `FailedPrecondition` while a NIC holds it.
    async fn release_address(&self, project: &str, id: &str) -> Result<bool>;
    /// The addresses an instance's NICs hold.
    async fn addresses_of_instance(&self, instance: Uuid) -> Result<Vec<AddressRecord>>;

    // servers
    /// Registers a server; `AlreadyExists` when its project has one of that id or another
    /// server (not decommissioned) has its BMC address.
    async fn create_server(&self, server: &ServerRecord) -> Result<()>;
    async fn get_server(&self, project: &str, id: &str) -> Result<Option<ServerRecord>>;
    async fn get_server_by_uid(&self, uid: Uuid) -> Result<Option<ServerRecord>>;
    async fn list_servers(&self, project: &str, page: &PageRequest) -> Result<Page<ServerRecord>>;
    /// Every server of the region that is not decommissioned.
    async fn active_servers(&self) -> Result<Vec<ServerRecord>>;
    /// Writes every field but the uid, project, id and creation time if `generation` is still
    /// the stored one, bumping it; `None` when someone else wrote first.
    async fn update_server(&self, server: &ServerRecord) -> Result<Option<ServerRecord>>;
    /// Appends a line to a server's log (a taken `seq` moves on to the next free one).
    async fn append_server_log(&self, line: &ServerLogRecord) -> Result<()>;
    /// The server's log lines with `seq` in `[from, until)`, oldest first, at most `limit`.
    async fn list_server_logs(
        &self,
        server_uid: Uuid,
        from: i64,
        until: i64,
        limit: u32,
    ) -> Result<Vec<ServerLogRecord>>;
    /// Removes a host no instance is on (a decommissioned server's); false when instances
    /// are still on it or it is gone.
    async fn remove_host(&self, host_id: Uuid) -> Result<bool>;

    // hosts
    /// Registers a host by name, or updates the capacity of a known one; returns its record.
    async fn register_host(&self, host: &HostRegistrationRecord) -> Result<HostRecord>;
    /// The NICs on other hosts (with an underlay address) of every network that has a NIC on
    /// host `host_id`.
    async fn overlay_peers(&self, host_id: Uuid) -> Result<Vec<OverlayPeerRecord>>;
    async fn touch_host(&self, host_id: Uuid, now: DateTime<Utc>) -> Result<()>;
    async fn list_hosts(&self) -> Result<Vec<HostRecord>>;
    /// Sets whether placement may use the host (`SCHEDULABLE`, `CORDONED`, `DRAINING`);
    /// returns the stored record, `None` for an unknown host.
    async fn set_host_scheduling(
        &self,
        host_id: Uuid,
        scheduling: &str,
    ) -> Result<Option<HostRecord>>;
    /// Sets the gauges of the database's connection pools (called when metrics are scraped).
    fn record_pool_metrics(&self) {}
    /// Every host with its capacity and what its instances hold of it.
    async fn host_usage(&self) -> Result<Vec<stratus_core::placement::HostUsage>>;

    // instances
    /// Places and inserts an instance in one transaction: picks a host of `instance.zone`
    /// seen since `live_since` with room for `demand`, and stores the instance on it.
    /// Admits it under its organization's quotas and gives its NICs their addresses
    /// ([`addressing`]) in the same transaction (`QuotaExceeded` otherwise); returns it with
    /// its NICs resolved.
    async fn create_instance(
        &self,
        instance: &InstanceRecord,
        demand: &Demand,
        live_since: DateTime<Utc>,
        admission: &Admission<'_>,
    ) -> Result<InstanceRecord>;
    async fn get_instance(&self, project: &str, id: &str) -> Result<Option<InstanceRecord>>;
    /// The instance of `uid` as the database has it now.
    async fn get_instance_by_uid(&self, uid: Uuid) -> Result<Option<InstanceRecord>>;
    /// The instance of `uid` from memory where this store keeps it, else from the database:
    /// it may be as old as what [`Store::get_instance`] answers (never older than a write
    /// through this store that was acknowledged; within the documented lag of a write
    /// through another replica). A caller that must not act on an older record checks what
    /// it found (its generation) and asks [`Store::get_instance_by_uid`] when in doubt.
    async fn get_cached_instance_by_uid(&self, uid: Uuid) -> Result<Option<InstanceRecord>>;
    async fn list_instances(
        &self,
        project: &str,
        selector: &LabelSelector,
        page: &PageRequest,
    ) -> Result<Page<InstanceRecord>>;
    /// The page [`Store::list_instances`] answers, as the version of each instance on it: a
    /// reader that keeps what it made of each version (its JSON) asks
    /// [`Store::get_instances_by_uid`] only for those it does not hold.
    async fn list_instance_versions(
        &self,
        project: &str,
        selector: &LabelSelector,
        page: &PageRequest,
    ) -> Result<Page<InstanceVersion>>;
    /// The instances of `uids` that exist, in no particular order.
    async fn get_instances_by_uid(&self, uids: &[Uuid]) -> Result<Vec<InstanceRecord>>;
    /// Writes `instance` if its `generation` is still the stored one, bumping it; returns the
    /// stored record, or `None` when someone else wrote first.
    async fn update_instance(&self, instance: &InstanceRecord) -> Result<Option<InstanceRecord>>;
    /// Like [`Store::update_instance`] for a change of `instance`'s lifecycle alone (its
    /// desired state and status, as a host reports them): the rest of the record is as stored,
    /// so only those columns are written.
    async fn update_instance_status(
        &self,
        instance: &InstanceRecord,
    ) -> Result<Option<InstanceRecord>>;
    /// Like [`Store::update_instance`] for an instance that goes from holding only its place and
    /// disks to running: in one transaction with admitting what running takes under its
    /// organization's quotas (`QuotaExceeded` otherwise).
    async fn update_instance_to_run(
        &self,
        instance: &InstanceRecord,
        admission: &Admission<'_>,
    ) -> Result<Option<InstanceRecord>>;
    /// Removes an instance whose owner asked for deletion (`desired = DELETED`); the final step
    /// of a delete. Returns whether a row was removed.
    async fn finalize_instance_deletion(&self, uid: Uuid) -> Result<bool>;
    async fn list_instances_on_host(&self, host_id: Uuid) -> Result<Vec<InstanceRecord>>;
    /// The instances on a host as its agent polls them: without their metadata (which may be
    /// large), each with the digest of its metadata. Never to be written back.
    async fn list_assignments_on_host(
        &self,
        host_id: Uuid,
    ) -> Result<Vec<(InstanceRecord, String)>>;
    /// Like [`Store::list_assignments_on_host`] for those of `uids` on the host.
    async fn list_assignments_among(
        &self,
        host_id: Uuid,
        uids: &[Uuid],
    ) -> Result<Vec<(InstanceRecord, String)>>;
    /// Instances whose status is one of `statuses` and has not changed since `before`.
    async fn list_instances_in_status_since(
        &self,
        statuses: &[stratus_types::InstanceStatus],
        before: DateTime<Utc>,
    ) -> Result<Vec<InstanceRecord>>;
    /// Takes the background-work lease on an instance if it is free or expired.
    async fn claim_instance_lease(
        &self,
        uid: Uuid,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool>;
    async fn release_instance_lease(&self, uid: Uuid, owner: &str) -> Result<()>;
    async fn count_instances(&self) -> Result<u64>;
    /// How many instances have each status on each host (`None`: not placed).
    async fn count_instances_by_status_and_host(
        &self,
    ) -> Result<Vec<(stratus_types::InstanceStatus, Option<Uuid>, u64)>>;

    // images
    /// Inserts an image, or refreshes the descriptive fields and file of one with the same id
    /// (catalog images from the configuration, at every start).
    async fn upsert_image(&self, image: &ImageRecord) -> Result<ImageRecord>;
    /// Inserts a new image; `AlreadyExists` when the id is taken.
    async fn create_image(&self, image: &ImageRecord) -> Result<()>;
    async fn get_image(&self, id: &str) -> Result<Option<ImageRecord>>;
    async fn list_images(&self, page: &PageRequest) -> Result<Page<ImageRecord>>;
    /// Writes `image` if its generation is current; returns the stored record.
    async fn update_image(&self, image: &ImageRecord) -> Result<Option<ImageRecord>>;
    /// Takes (or renews) the import lease on an image if it is free, expired or already
    /// `owner`'s.
    async fn claim_image_lease(
        &self,
        id: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool>;
    async fn release_image_lease(&self, id: &str, owner: &str) -> Result<()>;
    /// Deletes an image; `FailedPrecondition` while instances use it.
    async fn delete_image(&self, id: &str, self_link: &str) -> Result<bool>;

    // serial console
    /// Appends `bytes` at byte offset `at` of an instance's console log, keeping at most
    /// `keep` bytes. When `at` is not the log's end nothing is written. Returns the end offset.
    async fn append_console(&self, uid: Uuid, at: u64, bytes: &[u8], keep: u64) -> Result<u64>;
    /// Up to `max` bytes of the console log from `start`; returns `(start, bytes, end)` where
    /// `start` is later than asked when older output was discarded.
    async fn read_console(&self, uid: Uuid, start: u64, max: u64) -> Result<(u64, Vec<u8>, u64)>;

    // identity
    async fn list_signing_keys(&self) -> Result<Vec<SigningKeyRecord>>;
    /// Inserts the key unless one exists already; returns all keys after the call.
    async fn init_signing_key(&self, key: &SigningKeyRecord) -> Result<Vec<SigningKeyRecord>>;
    async fn create_api_key(&self, key: &ApiKeyRecord) -> Result<()>;
    /// The key whose current or previous secret has this hash.
    async fn find_api_key_by_hash(&self, secret_hash: &str) -> Result<Option<ApiKeyRecord>>;
    async fn touch_api_key(&self, uid: Uuid, now: DateTime<Utc>) -> Result<()>;
    async fn get_api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>>;
    /// Keys of `organization` (all when `None`) made by `created_by` (anyone when `None`).
    async fn list_api_keys(
        &self,
        organization: Option<&str>,
        created_by: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<ApiKeyRecord>>;
    /// Writes the mutable fields of a key (name, roles, status, secrets); returns the stored
    /// record, or `None` when the key is gone.
    async fn update_api_key(&self, key: &ApiKeyRecord) -> Result<Option<ApiKeyRecord>>;
    async fn delete_api_key(&self, id: &str) -> Result<bool>;
    /// Remembers a revoked token until `expires_at`; revoking twice is fine.
    async fn revoke_token(&self, token: &RevokedTokenRecord) -> Result<()>;
    async fn is_token_revoked(&self, jti: &str) -> Result<bool>;

    // service accounts
    /// `AlreadyExists` when the id or client id is taken.
    async fn create_service_account(&self, account: &ServiceAccountRecord) -> Result<()>;
    async fn get_service_account(&self, id: &str) -> Result<Option<ServiceAccountRecord>>;
    async fn get_service_account_by_client_id(
        &self,
        client_id: &str,
    ) -> Result<Option<ServiceAccountRecord>>;
    /// Accounts of `organization` (all when `None`).
    async fn list_service_accounts(
        &self,
        organization: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<ServiceAccountRecord>>;
    /// Writes name, description, roles and status; `None` when the account is gone.
    async fn update_service_account(
        &self,
        account: &ServiceAccountRecord,
    ) -> Result<Option<ServiceAccountRecord>>;
    /// Deletes an account and its credentials.
    async fn delete_service_account(&self, id: &str) -> Result<bool>;
    /// Adds a credential unless its account has `max_active` active ones at `now` already
    /// (`FailedPrecondition`), in one transaction.
    async fn create_credential(
        &self,
        credential: &CredentialRecord,
        max_active: usize,
        now: DateTime<Utc>,
    ) -> Result<()>;
    async fn list_credentials(&self, service_account_id: &str) -> Result<Vec<CredentialRecord>>;
    async fn get_credential(&self, id: &str) -> Result<Option<CredentialRecord>>;
    async fn find_credential_by_hash(&self, secret_hash: &str) -> Result<Option<CredentialRecord>>;
    async fn touch_credential(&self, uid: Uuid, now: DateTime<Utc>) -> Result<()>;
    async fn delete_credential(&self, id: &str) -> Result<bool>;

    // audit
    async fn record_audit_event(&self, event: &AuditEventRecord) -> Result<()>;
    /// Deletes audit events recorded before `before`; returns how many.
    async fn prune_audit_events(&self, before: DateTime<Utc>) -> Result<u64>;
    /// Forgets revoked tokens that have expired anyway; returns how many.
    async fn prune_revoked_tokens(&self, now: DateTime<Utc>) -> Result<u64>;
    /// Events of `organization` (all when `None`), oldest first.
    async fn list_audit_events(
        &self,
        organization: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<AuditEventRecord>>;

    // moving a region between backends
    /// Every row the region stores.
    async fn export(&self) -> Result<Snapshot>;
    /// Loads `snapshot` in one transaction into this store, which must be empty
    /// (`FailedPrecondition` otherwise).
    async fn import(&self, snapshot: &Snapshot) -> Result<()>;
    /// The number of rows in every table of the schema, by table name (the migrations'
    /// own bookkeeping left out). Tells whether a copy carried everything.
    async fn row_counts(&self) -> Result<BTreeMap<String, u64>>;

    /// Bumps `changes` whenever another process sharing this database (a replica) changes
    /// instances or images, where the backend can tell: on PostgreSQL through
    /// `LISTEN`/`NOTIFY`, in a background task. Elsewhere (one process owns an SQLite store;
    /// databases without notifications) nothing happens, and waiters fall back to their
    /// bounded waits.
    fn follow_changes(&self, changes: Changes) {
        let _ = changes;
    }

    /// The feed of committed instance writes, through this replica and, where the database
    /// announces them, through others ([`InstanceChange`]).
    fn instance_changes(&self) -> tokio::sync::broadcast::Receiver<InstanceChange>;
}
