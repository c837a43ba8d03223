//! What passes between the control plane and the host agents (the pull protocol).
//!
//! An agent registers its host, then repeatedly asks for its assignments: every instance placed
//! on its host, with the owner's intent (`desired`), the last status the control plane
//! recorded, and that record's `generation`. The agent acts and reports the status it observed,
//! naming the generation it acted on; a report against a stale generation is refused, and the
//! agent simply asks again. An accepted report is answered with the record's new generation,
//! so the agent goes on to its next step without asking. The control plane never dials an
//! agent.

use crate::instance::{DesiredState, Disk, InstanceStatus, MetadataItem};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a host offers, sent when an agent registers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostRegistration {
    /// Stable name of the host (its hostname by default).
    pub name: String,
    pub zone: String,
    /// `sim` or `qemu`.
    pub driver: String,
    pub vcpus: u32,
    pub memory_mb: u64,
    /// GPU type id → count.
    pub gpus: Vec<(String, u32)>,
    /// How the driver runs guests (`kvm`, `tcg`), when it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accelerator: Option<String>,
    /// The agent's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<String>,
    /// The IPv4 address this host's overlay (VXLAN) traffic leaves from and arrives at, when
    /// its guests' networks span hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub underlay: Option<String>,
}

/// Everything a host needs to run one instance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VmSpec {
    pub uid: Uuid,
    pub project: String,
    pub id: String,
    pub hostname: String,
    pub vcpus: u32,
    pub memory_mb: u64,
    pub gpus: u32,
    pub disks: Vec<Disk>,
    pub metadata: Vec<MetadataItem>,
    /// Its network interfaces, in order.
    #[serde(default)]
    pub nics: Vec<VmNic>,
}

/// A network interface of a VM, with what the host needs to plumb it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmNic {
    pub mac: String,
    pub ipv4: String,
    /// The subnet's prefix length and gateway.
    pub prefix_len: u8,
    pub gateway: String,
    /// The NIC's IPv6 address.
    pub ipv6: String,
    /// The network: the VXLAN network identifier, and the CIDR of its subnet.
    pub vni: u32,
    pub cidr: String,
    /// The EXTERNAL address that reaches this NIC by 1:1 NAT, if it has one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub external_ipv4: String,
}

/// A NIC on another host in a network that has a NIC on the polling host: the overlay sends
/// frames for `mac` in network `vni` to `underlay`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OverlayPeer {
    pub vni: u32,
    pub mac: String,
    pub underlay: String,
}

/// One instance placed on the asking host.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    /// The instance as the host runs it; its `metadata` is left out (it may be large), and
    /// fetched apart when `metadata_digest` changes.
    pub spec: VmSpec,
    pub desired: DesiredState,
    pub status: InstanceStatus,
    pub generation: i64,
    /// Digest of the instance's metadata: the host fetches the metadata again when it changes.
    #[serde(default)]
    pub metadata_digest: String,
    /// The W3C `traceparent` of the request that last changed the instance: the host's work on
    /// it joins that trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The id of that request, carried into the host's logs and spans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// A status the agent observed for an instance, tied to the generation it acted on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    pub uid: Uuid,
    pub generation: i64,
    pub status: InstanceStatus,
    pub message: Option<String>,
    /// Set when the guest stopped on its own (powered off, crashed, vanished, failed to
    /// boot): the owner's intent becomes "stopped" too, so nothing restarts it behind the
    /// owner's back and `:start` is the way back.
    pub intent_stopped: bool,
}

/// The control plane's answer to a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReportOutcome {
    Accepted,
    /// The record changed since the agent read it: ask for assignments again.
    Stale,
}

/// Where an agent's view of its assignments stands: the control-plane epoch and revision of
/// the last answer it took in. The default asks for the whole list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AssignmentCursor {
    pub epoch: u64,
    pub revision: u64,
}

/// The answer to an assignments poll: every instance on the host, or (when the poll named a
/// revision of the same epoch the control plane still remembers) those written since.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AssignmentBatch {
    /// Pass back as `since` on the next poll: it returns at once when anything changed after.
    pub revision: u64,
    /// Pass back as `epoch` on the next poll: the control-plane process whose revisions these
    /// are.
    #[serde(default)]
    pub epoch: u64,
    /// Whether `assignments` are all the host's instances; otherwise they are those written
    /// since the poll's revision, and `removed` those of them no longer on the host.
    #[serde(default = "whole")]
    pub complete: bool,
    pub assignments: Vec<Assignment>,
    /// Instances the agent knew that are gone from the host (only when not `complete`).
    #[serde(default)]
    pub removed: Vec<Uuid>,
    /// Where the NICs of this host's networks on other hosts are.
    #[serde(default)]
    pub overlay: Vec<OverlayPeer>,
}

fn whole() -> bool {
    true
}

/// What a host needs to fetch an image from the control plane.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostImageInfo {
    pub id: String,
    /// `qcow2` or `raw`.
    pub format: String,
    pub sha256: Option<String>,
    pub size_bytes: u64,
}

/// The answer to a registration: the id the host is known by.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Registered {
    pub host_id: Uuid,
}

/// An instance's metadata, as its host fetches it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstanceMetadata {
    pub items: Vec<MetadataItem>,
}

/// The answer to a status report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reported {
    pub outcome: ReportOutcome,
    /// When the report was accepted: the instance's record as it stands now, so the agent can
    /// take its next step at once rather than ask for its assignments first. (Control planes
    /// that do not send it leave the agent to ask.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub now: Option<ReportedRecord>,
}

/// An instance's record right after a report was written to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedRecord {
    pub generation: i64,
    pub desired: DesiredState,
    pub status: InstanceStatus,
}

impl Reported {
    /// The report was refused: the record changed since the agent read it.
    pub fn stale() -> Self {
        Reported {
            outcome: ReportOutcome::Stale,
            now: None,
        }
    }
}

/// The query of an assignments poll.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AssignmentsQuery {
    /// The revision of the last answer; the poll returns at once when something changed after.
    #[serde(default)]
    pub since: u64,
    /// The epoch of the last answer: with the same epoch the answer may hold only what changed
    /// since; 0 asks for the whole list.
    #[serde(default)]
    pub epoch: u64,
    /// How long the poll may wait for a change, in milliseconds (at most 30 000).
    #[serde(default)]
    pub wait_ms: u64,
}

/// The query of a serial-console upload: the offset of its first byte.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SerialQuery {
    pub at: u64,
}

/// The answer to a serial-console upload: the offset after the last byte kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SerialEnd {
    pub end: u64,
}

/// The protocol's routes below a control plane's URL, as router templates.
pub mod routes {
    pub const REGISTER: &str = "/internal/v1/hosts";
    pub const ASSIGNMENTS: &str = "/internal/v1/hosts/{host}/assignments";
    pub const REPORTS: &str = "/internal/v1/hosts/{host}/reports";
    pub const DESTROYED: &str = "/internal/v1/hosts/{host}/destroyed/{uid}";
    pub const SERIAL: &str = "/internal/v1/hosts/{host}/serial/{uid}";
    pub const METADATA: &str = "/internal/v1/hosts/{host}/metadata/{uid}";
    pub const IMAGE: &str = "/internal/v1/images/{id}";
    pub const IMAGE_CONTENT: &str = "/internal/v1/images/{id}/content";

    /// `template` with each `{name}` replaced by its value.
    pub fn fill(template: &str, values: &[(&str, &dyn std::fmt::Display)]) -> String {
        values
            .iter()
            .fold(template.to_owned(), |path, (name, value)| {
                path.replace(&format!("{{{name}}}"), &value.to_string())
            })
    }
}
