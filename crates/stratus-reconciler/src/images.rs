//! The image importer: brings registered images into the region's image store.
//!
//! An administrator registers an image with a source (a path on the control plane's host or
//! an http(s) URL). The importer copies it into the image store as `<id>.<format>`, hashing
//! it on the way and writing its progress to the image's record every half second, verifies
//! the SHA-256 the registration named, checks with `qemu-img info` that the file is of the
//! declared format and how large a disk it needs, and marks the image READY, or FAILED with
//! the reason. Work is found by re-reading the images, so an import cut short by a crash is
//! simply started again. With several replicas, an image is imported by one of them at a
//! time, under a lease in its row that the importer renews with each progress write; when the
//! importing replica dies, another takes the image over once the lease has expired and
//! starts the import again. The file lands in the importing replica's image store, which the
//! replicas serve hosts from (a replica without the file answers 503 and the host asks the
//! next one), or which replicas share.

use crate::background::{BackgroundTask, TaskReport};
use async_trait::async_trait;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use stratus_core::Result;
use stratus_core::import_sources::{ImportSource, ImportSources, refusal, refused_address};
use stratus_core::retry::optimistic;
use stratus_store::{Changes, ImageRecord, PageRequest, Store};
use stratus_types::ImageStatus;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// The scripts that build the images of [`stratus_core::catalog::buildable_images`]; each
/// prints `progress: N%` lines on stderr and the image's path on stdout.
const BUILD_SCRIPTS: &[(&str, &str)] = &[(
    "debian-12",
    include_str!("../../../scripts/build-debian-image.sh"),
)];

/// How long an import lease lasts without renewal.
const LEASE: Duration = Duration::from_secs(30);

/// Imports registered images into `image_dir`.
pub struct ImageImporter {
    store: Arc<dyn Store>,
    changes: Changes,
    image_dir: PathBuf,
    /// Where images may come from; checked again here, when the bytes are read.
    sources: ImportSources,
    /// The lease owner name of this replica.
    owner: String,
}

impl ImageImporter {
    pub fn new(
        store: Arc<dyn Store>,
        changes: Changes,
        image_dir: PathBuf,
        sources: ImportSources,
        owner: String,
    ) -> Self {
        Self {
            store,
            changes,
            image_dir,
            sources,
            owner,
        }
    }

    /// Imports every image that is PENDING or IMPORTING (and not another replica's to import);
    /// an image that fails to import is marked FAILED and the others still are imported.
    pub async fn pass(&self) -> TaskReport {
        let mut report = TaskReport::default();
        let mut request = PageRequest {
            limit: 500,
            ..Default::default()
        };
        loop {
            let page = match self.store.list_images(&request).await {
                Ok(page) => page,
                Err(e) => {
                    report.failed(format!("listing images: {e}"));
                    return report;
                }
            };
            for image in &page.items {
                if matches!(image.status, ImageStatus::Pending | ImageStatus::Importing) {
                    let result = self.import_leased(image).await;
                    report.item(format!("image {}", image.id), result);
                }
            }
            match (page.more, page.items.last()) {
                (true, Some(last)) => request.after = Some(last.id.clone()),
                _ => return report,
            }
        }
    }

    /// Imports `image` under this replica's lease; whether this replica had the lease.
    async fn import_leased(&self, image: &ImageRecord) -> Result<bool> {
        if !self.renew_lease(&image.id).await? {
            return Ok(false);
        }
        let imported = self.import(image.clone()).await;
        self.store
            .release_image_lease(&image.id, &self.owner)
            .await?;
        imported.map(|()| true)
    }

    async fn import(&self, image: ImageRecord) -> Result<()> {
        let id = image.id.clone();
        tracing::info!(%id, source = image.source.as_deref().unwrap_or(""), "importing image");
        let part = self
            .image_dir
            .join(format!("{id}.{}.part", image.format.as_str()));
        let outcome = self.copy_and_check(image, &part).await?;
        metrics::counter!(
            "stratus_image_imports_total",
            "outcome" => if outcome.is_ok() { "ready" } else { "failed" }
        )
        .increment(1);
        match outcome {
            Ok(()) => tracing::info!(%id, "image ready"),
            Err(reason) => {
                let _ = tokio::fs::remove_file(&part).await;
                tracing::warn!(%id, reason, "image import failed");
                if let Some(mut current) = self.store.get_image(&id).await? {
                    current.status = ImageStatus::Failed;
                    current.status_message = Some(reason);
                    current.updated_at = now();
                    self.save(current).await?;
                }
            }
        }
        Ok(())
    }

    /// Takes or renews this replica's import lease on image `id`; false when another replica
    /// holds it.
    async fn renew_lease(&self, id: &str) -> Result<bool> {
        let now = now();
        let until = now + chrono::Duration::from_std(LEASE).unwrap_or(chrono::Duration::MAX);
        self.store
            .claim_image_lease(id, &self.owner, now, until)
            .await
    }

    /// Writes `image` over whatever generation is stored (the import owns the image while it
    /// holds the lease); `None` when the image is gone.
    async fn save(&self, image: ImageRecord) -> Result<Option<ImageRecord>> {
        let what = format!("image {}", image.id);
        let image = &image;
        optimistic(&what, move || async move {
            let Some(current) = self.store.get_image(&image.id).await? else {
                return Ok(Some(None));
            };
            let mut update = image.clone();
            update.generation = current.generation;
            Ok(self.store.update_image(&update).await?.map(Some))
        })
        .await
    }

    /// Copies the source to `part` and checks it. The outer error is the store's; the inner
    /// one is why the image cannot be imported, for its status message.
    async fn copy_and_check(&self, image: ImageRecord, part: &Path) -> Result<Result<(), String>> {
        let source = image.source.clone().unwrap_or_default();
        let built = match source.strip_prefix(stratus_core::catalog::BUILD_SOURCE_PREFIX) {
            Some(name) => match self.build(image.clone(), name).await? {
                Ok(path) => Some(path),
                Err(why) => return Ok(Err(why)),
            },
            None => None,
        };
        let Some(image) = self.store.get_image(&image.id).await? else {
            return Ok(Err("the image was deleted".into()));
        };
        let mut record = image;
        record.status = ImageStatus::Importing;
        record.bytes_done = 0;
        record.updated_at = now();
        let Some(mut record) = self.save(record).await? else {
            return Ok(Err("the image was deleted".into()));
        };
        if let Err(e) = tokio::fs::create_dir_all(&self.image_dir).await {
            return Ok(Err(format!("creating {}: {e}", self.image_dir.display())));
        }
        let mut out = match tokio::fs::File::create(part).await {
            Ok(f) => f,
            Err(e) => return Ok(Err(format!("creating {}: {e}", part.display()))),
        };
        let opened = match &built {
            // Stratus's own build output, not a source anyone registered.
            Some(path) => Source::file(path).await,
            None => Source::open(&self.sources, &source).await,
        };
        let mut source_stream = match opened {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        record.size_bytes = source_stream.length.unwrap_or(0);
        let mut hasher = Sha256::new();
        let mut done: u64 = 0;
        let mut last_progress = Instant::now();
        loop {
            let chunk = match source_stream.next_chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => return Ok(Err(format!("reading {source}: {e}"))),
            };
            hasher.update(&chunk);
            if let Err(e) = out.write_all(&chunk).await {
                return Ok(Err(format!("writing {}: {e}", part.display())));
            }
            done += chunk.len() as u64;
            if last_progress.elapsed() >= PROGRESS_EVERY {
                last_progress = Instant::now();
                if !self.renew_lease(&record.id).await? {
                    return Ok(Err("another replica took the import over".into()));
                }
                record.bytes_done = done;
                record.updated_at = now();
                match self.save(record).await? {
                    Some(stored) => record = stored,
                    None => return Ok(Err("the image was deleted".into())),
                }
            }
        }
        if let Err(e) = out.sync_all().await {
            return Ok(Err(format!("writing {}: {e}", part.display())));
        }
        let digest = hex::encode(hasher.finalize());
        if let Some(expected) = &record.sha256
            && *expected != digest
        {
            return Ok(Err(format!(
                "checksum mismatch: the registration says SHA-256 {expected}, the file has {digest}"
            )));
        }
        let virtual_size = match inspect(part, record.format.as_str()).await {
            Ok(size) => size.unwrap_or(done),
            Err(e) => return Ok(Err(e)),
        };
        let file = self
            .image_dir
            .join(format!("{}.{}", record.id, record.format.as_str()));
        if let Err(e) = tokio::fs::rename(part, &file).await {
            return Ok(Err(format!("storing the image: {e}")));
        }
        const GIB: u64 = 1 << 30;
        metrics::counter!("stratus_image_import_bytes_total").increment(done);
        record.status = ImageStatus::Ready;
        record.status_message = None;
        record.sha256 = Some(digest);
        record.size_bytes = done;
        record.bytes_done = done;
        if record.min_disk_gb == 0 {
            record.min_disk_gb = virtual_size.div_ceil(GIB).max(1) as u32;
        }
        record.file = Some(file.display().to_string());
        record.updated_at = now();
        self.save(record).await?;
        self.changes.bump();
        if let Some(path) = built {
            // The image store has it now; the build's copy only took room.
            let _ = tokio::fs::remove_file(path).await;
        }
        Ok(Ok(()))
    }

    /// Builds image `name` with its script, its progress in the image's status message;
    /// returns the built file, or why it could not be built.
    async fn build(&self, mut record: ImageRecord, name: &str) -> Result<Result<PathBuf, String>> {
        use tokio::io::AsyncBufReadExt;
        let Some((_, script)) = BUILD_SCRIPTS.iter().find(|(n, _)| *n == name) else {
            return Ok(Err(format!("Stratus does not know how to build {name}")));
        };
        let dir = self.image_dir.join("build");
        let script_path = dir.join(format!("build-{name}.sh"));
        if let Err(e) = tokio::fs::create_dir_all(&dir).await {
            return Ok(Err(format!("creating {}: {e}", dir.display())));
        }
        if let Err(e) = tokio::fs::write(&script_path, script).await {
            return Ok(Err(format!("writing {}: {e}", script_path.display())));
        }
        tracing::info!(%name, "building image from Debian's packages");
        let mut child = match tokio::process::Command::new("bash")
            .arg(&script_path)
            .arg(dir.join("out"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
        {
            Ok(child) => child,
            Err(e) => return Ok(Err(format!("running the build of {name}: {e}"))),
        };
        // A build cut short (a stop, a lost lease) takes all of its processes with it.
        let group = child.id().map(ProcessGroup);
        let mut stdout = child.stdout.take().expect("stdout is piped");
        let reading = tokio::spawn(async move {
            let mut text = String::new();
            let _ = stdout.read_to_string(&mut text).await;
            text
        });
        let mut lines =
            tokio::io::BufReader::new(child.stderr.take().expect("stderr is piped")).lines();
        let mut tail: std::collections::VecDeque<String> = Default::default();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(percent) = line.strip_prefix("progress: ") {
                if !self.renew_lease(&record.id).await? {
                    return Ok(Err("another replica took the build over".into()));
                }
                record.status_message = Some(format!("building from Debian's packages: {percent}"));
                record.updated_at = now();
                match self.save(record).await? {
                    Some(stored) => record = stored,
                    None => return Ok(Err("the image was deleted".into())),
                }
                self.changes.bump();
            } else {
                tail.push_back(line);
                if tail.len() > 5 {
                    tail.pop_front();
                }
            }
        }
        let status = child.wait().await;
        // Ended by itself: its group id may soon be another's.
        std::mem::forget(group);
        let path = reading.await.unwrap_or_default();
        match status {
            Ok(status) if status.success() => Ok(Ok(PathBuf::from(path.trim()))),
            _ => Ok(Err(format!(
                "building {name} from Debian's packages failed: {}",
                Vec::from(tail).join(" / ")
            ))),
        }
    }
}

#[async_trait]
impl BackgroundTask for ImageImporter {
    fn name(&self) -> &'static str {
        "image-importer"
    }

    async fn activate(&self) -> TaskReport {
        self.pass().await
    }
}

fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    chrono::Utc::now().trunc_subsecs(3)
}

/// A process group killed when dropped.
struct ProcessGroup(u32);

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0)])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Where image bytes come from.
enum SourceKind {
    File(tokio::fs::File),
    Http(reqwest::Response),
}

struct Source {
    kind: SourceKind,
    length: Option<u64>,
}

/// Redirects followed, each checked like the first URL.
const MAX_REDIRECTS: usize = 5;

/// How long connecting to an image's server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl Source {
    /// Opens a file Stratus made itself.
    async fn file(path: &Path) -> Result<Self, String> {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| format!("opening {}: {e}", path.display()))?;
        let length = file.metadata().await.map_err(|e| e.to_string())?.len();
        Ok(Self {
            kind: SourceKind::File(file),
            length: Some(length),
        })
    }

    /// Opens `source` if the region may read it (see [`stratus_core::import_sources`]).
    async fn open(sources: &ImportSources, source: &str) -> Result<Self, String> {
        match sources.parse(source)? {
            ImportSource::File(path) => {
                let canonical = tokio::fs::canonicalize(&path)
                    .await
                    .map_err(|e| format!("opening {source}: {e}"))?;
                if !sources.file_allowed(&canonical) {
                    return Err(sources.file_refusal(&canonical));
                }
                let file = tokio::fs::File::open(&canonical)
                    .await
                    .map_err(|e| format!("opening {source}: {e}"))?;
                let metadata = file.metadata().await.map_err(|e| e.to_string())?;
                if !metadata.is_file() {
                    return Err(format!("{source} is not a file"));
                }
                Ok(Self {
                    kind: SourceKind::File(file),
                    length: Some(metadata.len()),
                })
            }
            ImportSource::Url(mut url) => {
                for _ in 0..=MAX_REDIRECTS {
                    let response = get_checked(sources, &url).await?;
                    if response.status().is_redirection() {
                        let location = response
                            .headers()
                            .get(reqwest::header::LOCATION)
                            .and_then(|l| l.to_str().ok())
                            .ok_or_else(|| format!("{url} redirects nowhere"))?;
                        let next = url
                            .join(location)
                            .map_err(|e| format!("{url} redirects to {location:?}: {e}"))?;
                        url = match sources.parse(next.as_str())? {
                            ImportSource::Url(next) => next,
                            ImportSource::File(_) => {
                                return Err(format!("{url} redirects to a file"));
                            }
                        };
                        continue;
                    }
                    let response = response
                        .error_for_status()
                        .map_err(|e| format!("downloading {url}: {e}"))?;
                    let length = response.content_length();
                    return Ok(Self {
                        kind: SourceKind::Http(response),
                        length,
                    });
                }
                Err(format!(
                    "{source} redirects more than {MAX_REDIRECTS} times"
                ))
            }
        }
    }

    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, String> {
        match &mut self.kind {
            SourceKind::File(file) => {
                let mut buffer = vec![0u8; 1 << 20];
                let n = file.read(&mut buffer).await.map_err(|e| e.to_string())?;
                buffer.truncate(n);
                Ok((n > 0).then_some(buffer))
            }
            SourceKind::Http(response) => response
                .chunk()
                .await
                .map(|c| c.map(|b| b.to_vec()))
                .map_err(|e| e.to_string()),
        }
    }
}

/// Resolves `url`'s host, refuses it when an address is one the region must not fetch from
/// (unless the configuration allows the host), and sends the request to the checked addresses
/// only, without following redirects.
async fn get_checked(
    sources: &ImportSources,
    url: &reqwest::Url,
) -> Result<reqwest::Response, String> {
    let host = url.host_str().unwrap_or_default().to_owned();
    let port = url.port_or_known_default().unwrap_or(80);
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let addresses: Vec<std::net::SocketAddr> = tokio::net::lookup_host((bare.as_str(), port))
        .await
        .map_err(|e| format!("resolving {host}: {e}"))?
        .collect();
    if addresses.is_empty() {
        return Err(format!("{host} has no address"));
    }
    if !sources.host_allowed(&host) {
        for address in &addresses {
            let ip = address.ip();
            let why = refused_address(ip)
                .or_else(|| is_own_address(ip).then_some("an address of this host"));
            if let Some(why) = why {
                return Err(refusal(&host, ip, why));
            }
        }
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .resolve_to_addrs(&bare, &addresses)
        .build()
        .map_err(|e| format!("preparing the download: {e}"))?;
    client
        .get(url.clone())
        .send()
        .await
        .map_err(|e| format!("downloading {url}: {e}"))
}

/// Whether `ip` is an address of this host: only a local address can be bound.
fn is_own_address(ip: std::net::IpAddr) -> bool {
    std::net::UdpSocket::bind((ip, 0)).is_ok()
}

/// Checks with `qemu-img info` that `file` is in `format`; returns its virtual size. Without
/// `qemu-img` on this host the check is skipped (`None`).
async fn inspect(file: &Path, format: &str) -> Result<Option<u64>, String> {
    let output = match tokio::process::Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(file)
        .output()
        .await
    {
        Ok(output) => output,
        Err(_) => return Ok(None),
    };
    if !output.status.success() {
        return Err(format!(
            "qemu-img cannot read the image: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let info: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|e| format!("qemu-img info: {e}"))?;
    let detected = info["format"].as_str().unwrap_or("");
    if detected != format {
        return Err(format!(
            "the file is a {detected} image, but the registration says {format}"
        ));
    }
    // A disk that reads another file (a backing file or an external data file) would hand
    // that file's bytes to whoever boots from it.
    if let Some(backing) = info["backing-filename"].as_str() {
        return Err(format!(
            "the image names a backing file ({backing}); import a standalone image"
        ));
    }
    if let Some(data_file) = info["format-specific"]["data"]["data-file"].as_str() {
        return Err(format!(
            "the image names an external data file ({data_file}); import a standalone image"
        ));
    }
    Ok(info["virtual-size"].as_u64())
}
