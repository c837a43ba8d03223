//! The metadata service guests read their identity, ssh-keys and user-data from.
//!
//! It speaks the Compute Engine dialect (`/computeMetadata/v1/…`, `Metadata-Flavor: Google`
//! required and echoed, `X-Forwarded-For` refused, `?recursive=true`, `?wait_for_change=true`
//! long-polls) and serves NoCloud documents (`/nocloud/meta-data`, `user-data`,
//! `vendor-data`) so stock cloud images configure themselves.
//!
//! Each VM gets its own listener on a unix socket in its directory, and the guest's requests
//! to 169.254.169.254:80 reach exactly that socket (QEMU forwards each guest connection to a
//! small proxy process bound to it). Which instance is asking is therefore decided by the
//! host's plumbing, not by anything the guest says, and a guest can only ever read its own
//! metadata.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use stratus_types::agent::VmSpec;
use tokio::sync::watch;

/// What one guest may read.
#[derive(Clone, Debug, PartialEq)]
pub struct GuestMetadata {
    pub uid: String,
    pub id: String,
    pub hostname: String,
    pub project: String,
    pub attributes: BTreeMap<String, String>,
    /// The MACs of the guest's NICs, when the guest sees them (bridged networking): they make
    /// its NoCloud `network-config` (DHCP on each).
    pub macs: Vec<String>,
}

impl From<&VmSpec> for GuestMetadata {
    fn from(spec: &VmSpec) -> Self {
        Self {
            uid: spec.uid.to_string(),
            id: spec.id.clone(),
            hostname: spec.hostname.clone(),
            project: spec.project.clone(),
            attributes: spec
                .metadata
                .iter()
                .map(|m| (m.key.as_str().to_owned(), m.value.clone()))
                .collect(),
            macs: Vec::new(),
        }
    }
}

impl GuestMetadata {
    fn instance_json(&self) -> Value {
        json!({
            "id": self.uid,
            "name": self.id,
            "hostname": self.hostname,
            "attributes": self.attributes,
        })
    }

    /// The value at `path` below `computeMetadata/v1/`, as text or (recursive) JSON.
    fn lookup(&self, path: &str, recursive: bool) -> Option<Value> {
        let path = path.trim_end_matches('/');
        let text = |s: &str| Some(Value::String(s.to_owned()));
        match path {
            "" => Some(
                json!({ "instance": self.instance_json(), "project": {"projectId": self.project} }),
            ),
            "instance" => Some(self.instance_json()),
            "instance/id" => text(&self.uid),
            "instance/name" => text(&self.id),
            "instance/hostname" => text(&self.hostname),
            "project" => Some(json!({ "projectId": self.project })),
            "project/project-id" => text(&self.project),
            "instance/attributes" if recursive => Some(json!(self.attributes)),
            "instance/attributes" => Some(Value::String(
                self.attributes.keys().map(|k| format!("{k}\n")).collect(),
            )),
            other => other
                .strip_prefix("instance/attributes/")
                .and_then(|key| self.attributes.get(key))
                .map(|v| Value::String(v.clone())),
        }
    }

    /// The NoCloud `meta-data` document: instance id, hostname, public keys from `ssh-keys`.
    pub fn nocloud_meta_data(&self) -> String {
        let mut doc = format!(
            "instance-id: {}\nlocal-hostname: {}\n",
            self.uid, self.hostname
        );
        let keys: Vec<&str> = self
            .attributes
            .get("ssh-keys")
            .map(|v| {
                v.lines()
                    .map(|l| l.split_once(':').map_or(l, |(_, key)| key).trim())
                    .filter(|l| !l.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        if !keys.is_empty() {
            doc.push_str("public-keys:\n");
            for key in keys {
                doc.push_str(&format!("  - {key:?}\n"));
            }
        }
        doc
    }
}

impl GuestMetadata {
    /// The NoCloud `network-config` document (version 2): DHCP on each NIC, matched by MAC;
    /// `None` when the guest's NICs are not known by MAC (cloud-init then does DHCP on the
    /// first NIC by itself).
    pub fn nocloud_network_config(&self) -> Option<String> {
        if self.macs.is_empty() {
            return None;
        }
        let mut doc = String::from("version: 2\nethernets:\n");
        for (i, mac) in self.macs.iter().enumerate() {
            doc.push_str(&format!(
                "  nic{i}:\n    match:\n      macaddress: \"{mac}\"\n    dhcp4: true\n"
            ));
        }
        Some(doc)
    }

    /// The NoCloud `user-data` document: the `user-data` key, or an empty cloud-config.
    pub fn nocloud_user_data(&self) -> String {
        self.attributes
            .get("user-data")
            .cloned()
            .unwrap_or_else(|| "#cloud-config\n{}\n".into())
    }

    /// Writes a NoCloud seed volume (FAT, label `CIDATA`, `meta-data` and `user-data`) to
    /// `path`, for guests that configure themselves from a disk rather than the network.
    pub fn write_seed(&self, path: &std::path::Path) -> std::io::Result<()> {
        use std::io::Write;
        let tmp = path.with_extension("tmp");
        let mut disk = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        disk.set_len(2 << 20)?;
        fatfs::format_volume(
            &mut disk,
            fatfs::FormatVolumeOptions::new().volume_label(*b"CIDATA     "),
        )?;
        {
            let fs = fatfs::FileSystem::new(&mut disk, fatfs::FsOptions::new())?;
            let mut files = vec![
                ("meta-data", self.nocloud_meta_data()),
                ("user-data", self.nocloud_user_data()),
            ];
            if let Some(network) = self.nocloud_network_config() {
                files.push(("network-config", network));
            }
            for (name, text) in files {
                let mut file = fs.root_dir().create_file(name)?;
                file.truncate()?;
                file.write_all(text.as_bytes())?;
            }
            fs.unmount()?;
        }
        disk.sync_all()?;
        std::fs::rename(&tmp, path)
    }
}

fn etag_of(value: &Value) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    value.to_string().hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

fn reply(status: StatusCode, body: String, etag: Option<&str>) -> Response {
    metrics::counter!("stratus_agent_metadata_requests_total", "status" => status.as_u16().to_string())
        .increment(1);
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert("Metadata-Flavor", HeaderValue::from_static("Google"));
    if let Some(etag) = etag.and_then(|e| HeaderValue::from_str(e).ok()) {
        headers.insert("ETag", etag);
    }
    response
}

fn render(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

async fn compute_metadata(
    State(doc): State<watch::Receiver<GuestMetadata>>,
    headers: HeaderMap,
    path: Option<Path<String>>,
    RawQuery(query): RawQuery,
) -> Response {
    if headers.contains_key("x-forwarded-for") {
        return reply(
            StatusCode::FORBIDDEN,
            "X-Forwarded-For is not allowed\n".into(),
            None,
        );
    }
    let flavor_ok = headers
        .get("metadata-flavor")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "Google");
    if !flavor_ok {
        return reply(
            StatusCode::FORBIDDEN,
            "Missing Metadata-Flavor:Google header.\n".into(),
            None,
        );
    }
    let path = path.map(|Path(p)| p).unwrap_or_default();
    let params: BTreeMap<String, String> =
        form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let recursive = params.get("recursive").is_some_and(|v| v == "true");
    let wait = params.get("wait_for_change").is_some_and(|v| v == "true");
    let timeout = params
        .get("timeout_sec")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(60)
        .min(3600);
    let mut doc = doc;
    let current = doc.borrow_and_update().lookup(&path, recursive);
    if wait {
        let since = params
            .get("last_etag")
            .cloned()
            .or_else(|| current.as_ref().map(etag_of));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
        loop {
            let now = doc.borrow_and_update().lookup(&path, recursive);
            if now.as_ref().map(etag_of) != since {
                return answer(now);
            }
            if tokio::time::timeout_at(deadline, doc.changed())
                .await
                .is_err()
            {
                return answer(now);
            }
        }
    }
    answer(current)
}

fn answer(value: Option<Value>) -> Response {
    match value {
        Some(v) => {
            let etag = etag_of(&v);
            reply(StatusCode::OK, render(&v), Some(&etag))
        }
        None => reply(StatusCode::NOT_FOUND, "not found\n".into(), None),
    }
}

async fn nocloud(
    State(doc): State<watch::Receiver<GuestMetadata>>,
    Path(name): Path<String>,
) -> Response {
    let doc = doc.borrow().clone();
    match name.as_str() {
        "meta-data" => reply(StatusCode::OK, doc.nocloud_meta_data(), None),
        "user-data" => reply(
            StatusCode::OK,
            doc.attributes
                .get("user-data")
                .cloned()
                .unwrap_or_else(|| "#cloud-config\n{}\n".into()),
            None,
        ),
        "vendor-data" => reply(StatusCode::OK, String::new(), None),
        "network-config" => match doc.nocloud_network_config() {
            Some(network) => reply(StatusCode::OK, network, None),
            None => reply(StatusCode::NOT_FOUND, "not found\n".into(), None),
        },
        _ => reply(StatusCode::NOT_FOUND, "not found\n".into(), None),
    }
}

/// The router serving one guest's metadata.
pub fn router(doc: watch::Receiver<GuestMetadata>) -> Router {
    Router::new()
        .route("/computeMetadata/v1", get(compute_metadata))
        .route("/computeMetadata/v1/", get(compute_metadata))
        .route("/computeMetadata/v1/{*path}", get(compute_metadata))
        .route("/nocloud/{name}", get(nocloud))
        .with_state(doc)
}

/// What a guest is told when its metadata service is not there (the agent is restarting): a
/// proper HTTP answer it can retry on.
pub const UNAVAILABLE: &str = "HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\n\
Retry-After: 2\r\nConnection: close\r\nContent-Length: 59\r\n\r\n\
the metadata service is not available right now; try again\n";

/// Joins a guest's connection to the unix socket of its VM's metadata service, answering
/// [`UNAVAILABLE`] when the service cannot be reached.
///
/// When the guest half-closes after its request, the service's side is kept open: the server
/// would take a half-close for an abandoned request and drop the answer. The exchange ends
/// when the service has answered and closed.
pub async fn relay<R, W>(
    mut from_guest: R,
    mut to_guest: W,
    service: &std::path::Path,
) -> std::io::Result<()>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncWriteExt;
    let Ok(stream) = tokio::net::UnixStream::connect(service).await else {
        to_guest.write_all(UNAVAILABLE.as_bytes()).await?;
        return to_guest.flush().await;
    };
    let (mut from_service, mut to_service) = stream.into_split();
    let upstream = async {
        let _ = tokio::io::copy(&mut from_guest, &mut to_service).await;
        std::future::pending::<()>().await
    };
    let downstream = async {
        tokio::io::copy(&mut from_service, &mut to_guest).await?;
        to_guest.flush().await?;
        to_guest.shutdown().await
    };
    tokio::select! {
        _ = upstream => unreachable!("pending never completes"),
        done = downstream => done,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> GuestMetadata {
        GuestMetadata {
            uid: "u-1".into(),
            id: "web-1".into(),
            hostname: "web-1.internal".into(),
            project: "default".into(),
            attributes: [
                (
                    "ssh-keys".to_owned(),
                    "alice:ssh-ed25519 AAAA alice\n".to_owned(),
                ),
                ("user-data".to_owned(), "#cloud-config\n".to_owned()),
            ]
            .into(),
            macs: Vec::new(),
        }
    }

    #[test]
    fn bridged_guests_get_dhcp_on_each_nic_by_mac_and_others_no_network_config() {
        assert_eq!(doc().nocloud_network_config(), None);
        let seeded = tempfile::tempdir().unwrap();
        let bridged = GuestMetadata {
            macs: vec!["52:54:00:aa:00:01".into(), "52:54:00:aa:00:02".into()],
            ..doc()
        };
        let config = bridged.nocloud_network_config().unwrap();
        assert_eq!(
            config,
            "version: 2\nethernets:\n\
             \x20 nic0:\n    match:\n      macaddress: \"52:54:00:aa:00:01\"\n    dhcp4: true\n\
             \x20 nic1:\n    match:\n      macaddress: \"52:54:00:aa:00:02\"\n    dhcp4: true\n"
        );
        bridged.write_seed(&seeded.path().join("seed.img")).unwrap();
        let mut disk = std::fs::File::open(seeded.path().join("seed.img")).unwrap();
        let fs = fatfs::FileSystem::new(&mut disk, fatfs::FsOptions::new()).unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut fs.root_dir().open_file("network-config").unwrap(),
            &mut text,
        )
        .unwrap();
        assert_eq!(text, config);
    }

    #[test]
    fn paths_resolve_like_compute_engine() {
        let d = doc();
        assert_eq!(d.lookup("instance/id", false), Some(json!("u-1")));
        assert_eq!(
            d.lookup("project/project-id", false),
            Some(json!("default"))
        );
        assert_eq!(
            d.lookup("instance/attributes/", false),
            Some(json!("ssh-keys\nuser-data\n"))
        );
        assert_eq!(d.lookup("instance/attributes/nope", false), None);
        let all = d.lookup("instance/attributes/", true).unwrap();
        assert_eq!(all["user-data"], "#cloud-config\n");
    }

    #[test]
    fn the_seed_volume_holds_both_documents_under_the_cidata_label() {
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seed.img");
        doc().write_seed(&path).unwrap();
        let mut disk = std::fs::File::open(&path).unwrap();
        let fs = fatfs::FileSystem::new(&mut disk, fatfs::FsOptions::new()).unwrap();
        assert_eq!(fs.volume_label().trim(), "CIDATA");
        let mut text = String::new();
        fs.root_dir()
            .open_file("user-data")
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "#cloud-config\n");
        let mut meta = String::new();
        fs.root_dir()
            .open_file("meta-data")
            .unwrap()
            .read_to_string(&mut meta)
            .unwrap();
        assert!(meta.contains("instance-id: u-1"));
    }

    #[test]
    fn nocloud_meta_data_carries_the_keys() {
        let meta = doc().nocloud_meta_data();
        assert!(meta.contains("instance-id: u-1"), "{meta}");
        assert!(meta.contains("local-hostname: web-1.internal"), "{meta}");
        assert!(meta.contains("- \"ssh-ed25519 AAAA alice\""), "{meta}");
    }
}
