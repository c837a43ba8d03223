//! Images: the catalog's, and those an administrator registers for import.

use super::{App, Caller, Paging, Permission, Principal, check_text, etag, now, resource_id};
use stratus_core::catalog::ImageSpec;
use stratus_core::import_sources::ImportSource;
use stratus_core::{Error, Result};
use stratus_store::ImageRecord;
use stratus_types::{Image, ImageCreateRequest, ImageFormat, ImageList, ImageStatus};
use uuid::Uuid;

/// What a host needs to fetch an image.
#[derive(Clone, Debug, PartialEq)]
pub struct HostImage {
    pub format: ImageFormat,
    pub sha256: Option<String>,
    pub size_bytes: u64,
    /// The file on the control plane's host.
    pub file: String,
}

fn progress_message(done: u64, total: u64) -> String {
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    if total == 0 {
        format!("imported {:.1} MiB", mib(done))
    } else {
        format!(
            "imported {:.1} of {:.1} MiB ({}%)",
            mib(done),
            mib(total),
            done * 100 / total
        )
    }
}

impl App {
    pub(crate) fn image_view(&self, r: &ImageRecord) -> Image {
        let status_message = match r.status {
            ImageStatus::Importing => Some(progress_message(r.bytes_done, r.size_bytes)),
            _ => r.status_message.clone(),
        };
        Image {
            self_link: self.image_link(&r.id),
            uid: r.uid,
            id: r.id.clone(),
            display_name: r.display_name.clone(),
            description: r.description.clone(),
            format: r.format,
            size_bytes: r.size_bytes,
            min_disk_gb: r.min_disk_gb,
            os: r.os.clone(),
            status: r.status,
            status_message,
            source: r.source.clone(),
            sha256: r.sha256.clone(),
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }

    pub(crate) fn image_link(&self, id: &str) -> String {
        format!("/v1/regions/{}/compute/images/{id}", self.region())
    }

    /// Registers each image of `ids` that Stratus builds itself (see
    /// [`stratus_core::catalog::buildable_images`]) and the region does not have yet; the
    /// importer builds it, its progress in its status. Unknown ids are refused.
    pub async fn register_built_images(&self, ids: &[String]) -> Result<()> {
        let buildable = stratus_core::catalog::buildable_images();
        for id in ids {
            let spec = buildable.iter().find(|s| &s.id == id).ok_or_else(|| {
                Error::invalid(
                    "images.build",
                    format!(
                        "Stratus cannot build an image {id}; it builds {}",
                        buildable
                            .iter()
                            .map(|s| s.id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?;
            if self.store.get_image(id).await?.is_some() {
                continue;
            }
            let record = ImageRecord {
                status: ImageStatus::Pending,
                status_message: Some("waiting to be built from Debian's packages".into()),
                source: Some(format!(
                    "{}{id}",
                    stratus_core::catalog::BUILD_SOURCE_PREFIX
                )),
                bytes_done: 0,
                ..catalog_image(spec)
            };
            self.store.create_image(&record).await?;
            self.changes.bump();
            tracing::info!(%id, "image registered, to be built from Debian's packages");
        }
        Ok(())
    }

    /// Writes the configured catalog's images to the store (at every start).
    pub async fn seed_catalog_images(&self) -> Result<()> {
        for spec in &self.catalog.images {
            let wanted = catalog_image(spec);
            // An unchanged catalog image keeps its generation and `updatedAt` across restarts.
            if let Some(stored) = self.store.get_image(&wanted.id).await?
                && (
                    &stored.display_name,
                    &stored.description,
                    &stored.os,
                    stored.format,
                    stored.size_bytes,
                    stored.min_disk_gb,
                    stored.status,
                    &stored.file,
                ) == (
                    &wanted.display_name,
                    &wanted.description,
                    &wanted.os,
                    wanted.format,
                    wanted.size_bytes,
                    wanted.min_disk_gb,
                    wanted.status,
                    &wanted.file,
                )
            {
                continue;
            }
            self.store.upsert_image(&wanted).await?;
        }
        Ok(())
    }

    pub async fn list_images(
        &self,
        caller: &Caller,
        region: &str,
        paging: &Paging,
    ) -> Result<ImageList> {
        let principal = &caller.principal;
        self.check_region(region)?;
        principal.authorize_region(Permission::ImagesList)?;
        let request = self.pages.page_request(paging, "images")?;
        let page = self.store.list_images(&request).await?;
        Ok(ImageList {
            next_page_token: self.next_token(&page, &request, "images", |i| &i.id),
            images: page
                .items
                .iter()
                .map(|i| self.image_view_for(principal, i))
                .collect(),
        })
    }

    async fn image_record(&self, region: &str, id: &str) -> Result<ImageRecord> {
        self.check_region(region)?;
        let id = resource_id("id", id)?;
        self.store
            .get_image(id.as_str())
            .await?
            .ok_or_else(|| Error::NotFound(format!("image {id} not found in region {region}")))
    }

    pub async fn get_image(
        &self,
        caller: &Caller,
        region: &str,
        id: &str,
    ) -> Result<(Image, String)> {
        let principal = &caller.principal;
        principal.authorize_region(Permission::ImagesGet)?;
        let record = self.image_record(region, id).await?;
        Ok((
            self.image_view_for(principal, &record),
            etag(record.uid, record.generation),
        ))
    }

    /// The image as `principal` may see it: where it was imported from is the operators'
    /// business only.
    fn image_view_for(&self, principal: &Principal, r: &ImageRecord) -> Image {
        let mut image = self.image_view(r);
        if !principal.is_super_admin() {
            image.source = None;
        }
        image
    }

    /// Registers an image; the importer copies or downloads it, verifies it and marks it
    /// READY (or FAILED with the reason).
    pub async fn create_image(
        &self,
        caller: &Caller,
        region: &str,
        body: ImageCreateRequest,
    ) -> Result<(Image, String)> {
        self.check_region(region)?;
        caller
            .principal
            .authorize_region(Permission::ImagesCreate)?;
        check_text("displayName", body.display_name.as_deref(), 256)?;
        check_text("description", body.description.as_deref(), 4096)?;
        let sha256 = match body.sha256.as_deref().map(str::to_ascii_lowercase) {
            Some(h) if h.len() != 64 || !h.chars().all(|c| c.is_ascii_hexdigit()) => {
                return Err(Error::invalid(
                    "sha256",
                    "a SHA-256 is 64 hexadecimal digits",
                ));
            }
            other => other,
        };
        if body.min_disk_gb == Some(0) {
            return Err(Error::invalid("minDiskGb", "must be at least 1"));
        }
        let source = self.checked_source(body.source.trim())?;
        let now = now();
        let record = ImageRecord {
            uid: Uuid::new_v4(),
            id: body.id.to_string(),
            display_name: body.display_name.unwrap_or_default(),
            description: body.description.unwrap_or_default(),
            os: body.os.unwrap_or_default(),
            format: body.format,
            size_bytes: 0,
            min_disk_gb: body.min_disk_gb.unwrap_or(0),
            status: ImageStatus::Pending,
            status_message: Some("waiting to be imported".into()),
            source: Some(source.clone()),
            sha256,
            file: None,
            bytes_done: 0,
            generation: 1,
            created_at: now,
            updated_at: now,
        };
        self.store.create_image(&record).await?;
        self.changes.bump();
        tracing::info!(id = %record.id, %source, "image registered");
        Ok((
            self.image_view(&record),
            etag(record.uid, record.generation),
        ))
    }

    /// `source` if the region may import from it: a file inside an import directory (by its
    /// canonical path) or an http(s) URL that does not name the host's own services.
    fn checked_source(&self, source: &str) -> Result<String> {
        let sources = &self.config.import_sources;
        match sources
            .parse(source)
            .map_err(|why| Error::invalid("source", why))?
        {
            ImportSource::Url(_) => Ok(source.to_owned()),
            ImportSource::File(path) => {
                let canonical = std::fs::canonicalize(&path)
                    .ok()
                    .filter(|p| p.is_file())
                    .ok_or_else(|| {
                        Error::invalid(
                            "source",
                            format!("{source} is not a file on the control plane's host"),
                        )
                    })?;
                if !sources.file_allowed(&canonical) {
                    return Err(Error::invalid("source", sources.file_refusal(&canonical)));
                }
                Ok(source.to_owned())
            }
        }
    }

    pub async fn delete_image(&self, caller: &Caller, region: &str, id: &str) -> Result<()> {
        let record = self.image_record(region, id).await?;
        caller
            .principal
            .authorize_region(Permission::ImagesDelete)?;
        self.store
            .delete_image(&record.id, &self.image_link(&record.id))
            .await?;
        if record.source.is_some()
            && let Some(file) = &record.file
        {
            let _ = std::fs::remove_file(file);
        }
        Ok(())
    }

    /// A READY image for a disk of an instance; the error names `field`.
    pub(crate) async fn usable_image(&self, field: &str, id: &str) -> Result<ImageRecord> {
        let image = self
            .store
            .get_image(id)
            .await?
            .ok_or_else(|| Error::invalid(field, format!("image {id} does not exist")))?;
        if image.status != ImageStatus::Ready {
            return Err(Error::invalid(
                field,
                format!(
                    "image {id} is {} ({}); it can be used once READY",
                    image.status.as_str(),
                    self.image_view(&image).status_message.unwrap_or_default()
                ),
            ));
        }
        Ok(image)
    }

    /// What a host needs to fetch image `id`.
    pub async fn host_image(&self, id: &str) -> Result<HostImage> {
        let image = self
            .store
            .get_image(id)
            .await?
            .filter(|i| i.status == ImageStatus::Ready)
            .ok_or_else(|| Error::NotFound(format!("image {id} is not available")))?;
        let file = image.file.ok_or_else(|| {
            Error::NotFound(format!(
                "image {id} has no file in this region's image store"
            ))
        })?;
        Ok(HostImage {
            format: image.format,
            sha256: image.sha256,
            size_bytes: image.size_bytes,
            file,
        })
    }
}

fn catalog_image(spec: &ImageSpec) -> ImageRecord {
    let now = now();
    ImageRecord {
        uid: Uuid::new_v4(),
        id: spec.id.clone(),
        display_name: spec.display_name.clone(),
        description: spec.description.clone(),
        os: spec.os.clone(),
        format: ImageFormat::parse(&spec.format).unwrap_or(ImageFormat::Qcow2),
        size_bytes: spec.size_bytes,
        min_disk_gb: spec.min_disk_gb,
        status: ImageStatus::Ready,
        status_message: None,
        source: None,
        sha256: None,
        file: spec.file.clone(),
        bytes_done: spec.size_bytes,
        generation: 1,
        created_at: now,
        updated_at: now,
    }
}
