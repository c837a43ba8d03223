//! The host's image cache: image files fetched from the control plane, verified, kept.
//!
//! Disks are qcow2 overlays backed by an image file, so the file must stay as long as any disk
//! uses it; cached files are named by image id and checksum, so a re-imported image with new
//! content never replaces a file that existing disks are backed by.

use crate::agent::ControlPlane;
use crate::driver::{DriverError, ImageFile, ImageSource};
use async_trait::async_trait;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::AsyncReadExt;
use tokio::sync::Mutex;

/// Image files of this host, fetched on first use.
pub struct ImageCache {
    dir: PathBuf,
    control_plane: Arc<dyn ControlPlane>,
    /// One download at a time.
    fetching: Mutex<()>,
}

impl ImageCache {
    pub fn new(dir: PathBuf, control_plane: Arc<dyn ControlPlane>) -> Self {
        Self {
            dir,
            control_plane,
            fetching: Mutex::new(()),
        }
    }
}

async fn sha256_of(path: &std::path::Path) -> std::io::Result<String> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer).await?;
        if n == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buffer[..n]);
    }
}

#[async_trait]
impl ImageSource for ImageCache {
    async fn image_file(&self, id: &str) -> Result<ImageFile, DriverError> {
        let info = self
            .control_plane
            .image(id)
            .await
            .map_err(|e| DriverError::Transient(format!("image {id}: {e}")))?;
        let tag = info
            .sha256
            .as_deref()
            .map_or("unverified", |s| &s[..12.min(s.len())]);
        let path = self.dir.join(format!("{id}-{tag}.{}", info.format));
        let file = ImageFile {
            path: path.clone(),
            format: info.format.clone(),
        };
        if path.exists() {
            return Ok(file);
        }
        let _one_at_a_time = self.fetching.lock().await;
        if path.exists() {
            return Ok(file);
        }
        let io = |e: std::io::Error| DriverError::Transient(format!("image cache: {e}"));
        tokio::fs::create_dir_all(&self.dir).await.map_err(io)?;
        let part = path.with_extension("part");
        self.control_plane
            .download_image(id, &part)
            .await
            .map_err(|e| DriverError::Transient(format!("downloading image {id}: {e}")))?;
        if let Some(expected) = &info.sha256 {
            let actual = sha256_of(&part).await.map_err(io)?;
            if actual != *expected {
                let _ = tokio::fs::remove_file(&part).await;
                return Err(DriverError::Transient(format!(
                    "image {id} arrived with SHA-256 {actual}, expected {expected}"
                )));
            }
        }
        tokio::fs::rename(&part, &path).await.map_err(io)?;
        Ok(file)
    }
}
