//! The host agent that `serve` runs in-process, talking to the application directly.

use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use stratus_agent::ControlPlane;
use stratus_agent::agent::ControlPlaneError;
use stratus_api::App;
use stratus_types::MetadataItem;
use stratus_types::agent::{
    AssignmentBatch, AssignmentCursor, HostImageInfo, HostRegistration, Reported, StatusReport,
};
use uuid::Uuid;

/// The control plane as seen by an agent in the same process.
pub struct LocalControlPlane(pub Arc<App>);

fn cp_error(e: stratus_core::Error) -> ControlPlaneError {
    ControlPlaneError(e.to_string())
}

#[async_trait]
impl ControlPlane for LocalControlPlane {
    async fn register(&self, host: &HostRegistration) -> Result<Uuid, ControlPlaneError> {
        self.0.register_host(host).await.map_err(cp_error)
    }

    async fn assignments(
        &self,
        host: Uuid,
        since: AssignmentCursor,
        wait: Duration,
    ) -> Result<AssignmentBatch, ControlPlaneError> {
        self.0
            .host_assignments(host, since, wait, &Default::default())
            .await
            .map_err(cp_error)
    }

    async fn report(
        &self,
        host: Uuid,
        report: &StatusReport,
    ) -> Result<Reported, ControlPlaneError> {
        self.0.host_report(host, report).await.map_err(cp_error)
    }

    async fn report_destroyed(&self, host: Uuid, uid: Uuid) -> Result<(), ControlPlaneError> {
        self.0.host_destroyed(host, uid).await.map_err(cp_error)
    }

    async fn append_serial(
        &self,
        host: Uuid,
        uid: Uuid,
        at: u64,
        bytes: &[u8],
    ) -> Result<u64, ControlPlaneError> {
        self.0
            .host_serial(host, uid, at, bytes)
            .await
            .map_err(cp_error)
    }

    async fn instance_metadata(
        &self,
        host: Uuid,
        uid: Uuid,
    ) -> Result<Vec<MetadataItem>, ControlPlaneError> {
        self.0
            .host_instance_metadata(host, uid)
            .await
            .map_err(cp_error)
    }

    async fn image(&self, id: &str) -> Result<HostImageInfo, ControlPlaneError> {
        let image = self.0.host_image(id).await.map_err(cp_error)?;
        Ok(HostImageInfo {
            id: id.to_owned(),
            format: image.format.as_str().to_owned(),
            sha256: image.sha256,
            size_bytes: image.size_bytes,
        })
    }

    async fn download_image(
        &self,
        id: &str,
        dest: &std::path::Path,
    ) -> Result<(), ControlPlaneError> {
        let image = self.0.host_image(id).await.map_err(cp_error)?;
        // Same machine: a hard link when the image store and the cache share a filesystem.
        if std::fs::hard_link(&image.file, dest).is_ok() {
            return Ok(());
        }
        tokio::fs::copy(&image.file, dest)
            .await
            .map(|_| ())
            .map_err(|e| ControlPlaneError(format!("copying {}: {e}", image.file)))
    }
}
