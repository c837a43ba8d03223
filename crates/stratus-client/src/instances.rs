//! Instances of one project: CRUD, lifecycle actions, the serial console.

use crate::{Client, ListOptions, Result, Versioned, all_pages, segment};
use reqwest::Method;
use stratus_types::{
    Instance, InstanceCreateRequest, InstanceList, InstanceUpdateRequest, SerialPortOutput,
};

/// A lifecycle action (`POST …/instances/{id}:{action}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstanceAction {
    Start,
    Stop,
    Reboot,
    Suspend,
    Resume,
}

impl InstanceAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Reboot => "reboot",
            Self::Suspend => "suspend",
            Self::Resume => "resume",
        }
    }
}

/// The instances of a project in a region; made by [`Client::instances`].
pub struct Instances<'a> {
    client: &'a Client,
    collection: String,
}

impl<'a> Instances<'a> {
    pub(crate) fn new(client: &'a Client, region: &str, project: &str) -> Self {
        let collection = format!(
            "/v1/regions/{}/projects/{}/compute/instances",
            segment(region),
            segment(project)
        );
        Self { client, collection }
    }

    fn item(&self, id: &str) -> String {
        format!("{}/{}", self.collection, segment(id))
    }

    /// One page of instances.
    pub async fn list(&self, options: &ListOptions) -> Result<InstanceList> {
        let request = self
            .client
            .request(Method::GET, &self.collection)
            .query(&options.query());
        self.client.send(request).await
    }

    /// Every instance, following `nextPageToken`; `label_selector` filters.
    pub async fn list_all(&self, label_selector: Option<&str>) -> Result<Vec<Instance>> {
        all_pages(|mut options| async move {
            options.label_selector = label_selector.map(str::to_owned);
            let page = self.list(&options).await?;
            Ok((page.instances, page.next_page_token))
        })
        .await
    }

    /// Opens a watch: the instances of `options`' selection as `ADDED` events (unless it
    /// resumes from a version), a `BOOKMARK`, then their changes as they happen.
    pub async fn watch(&self, options: &crate::WatchOptions) -> Result<crate::InstanceWatch> {
        let request = self
            .client
            .request(Method::GET, &self.collection)
            .header("Accept", "text/event-stream")
            .query(&options.query());
        let (url, response) = self.client.open(request).await?;
        Ok(crate::InstanceWatch::new(url, response))
    }

    /// One instance by id.
    pub async fn get(&self, id: &str) -> Result<Instance> {
        let request = self.client.request(Method::GET, &self.item(id));
        self.client.send(request).await
    }

    /// Creates an instance; it starts `PROVISIONING`.
    pub async fn create(&self, body: &InstanceCreateRequest) -> Result<Instance> {
        let request = self
            .client
            .request(Method::POST, &self.collection)
            .json(body);
        self.client.send(request).await
    }

    /// One instance with the `ETag` of the version read.
    pub async fn get_versioned(&self, id: &str) -> Result<Versioned<Instance>> {
        let request = self.client.request(Method::GET, &self.item(id));
        self.client.send_versioned(request).await
    }

    /// The instance once its ETag is no longer `etag`, the server holding the request up to
    /// `wait` (at most 50 s) for a change; `None` when it is still unchanged. Following an
    /// instance this way sees every status change as it happens, without polling.
    pub async fn get_when_changed(
        &self,
        id: &str,
        etag: &str,
        wait: std::time::Duration,
    ) -> Result<Option<Versioned<Instance>>> {
        let request = self
            .client
            .request(Method::GET, &self.item(id))
            .header("If-None-Match", etag)
            .header("Prefer", format!("wait={}", wait.as_secs()));
        self.client.send_unless_unchanged(request).await
    }

    /// Replaces the fields present in `body`.
    pub async fn update(&self, id: &str, body: &InstanceUpdateRequest) -> Result<Instance> {
        let request = self
            .client
            .request(Method::PATCH, &self.item(id))
            .json(body);
        self.client.send(request).await
    }

    /// Like [`Instances::update`], but only if the instance is still at version `etag`;
    /// otherwise the API answers 412 and nothing changes.
    pub async fn update_if_match(
        &self,
        id: &str,
        body: &InstanceUpdateRequest,
        etag: &str,
    ) -> Result<Instance> {
        let request = self
            .client
            .request(Method::PATCH, &self.item(id))
            .header("If-Match", etag)
            .json(body);
        self.client.send(request).await
    }

    /// Starts the deletion; the instance answers 404 once its host has destroyed it.
    pub async fn delete(&self, id: &str) -> Result<()> {
        let request = self.client.request(Method::DELETE, &self.item(id));
        self.client.send_empty(request).await
    }

    /// Runs a lifecycle action; answers the instance as the action left it.
    pub async fn act(&self, id: &str, action: InstanceAction) -> Result<Instance> {
        let path = format!("{}:{}", self.item(id), action.as_str());
        let request = self.client.request(Method::POST, &path);
        self.client.send(request).await
    }

    /// The serial console from byte `start`.
    pub async fn serial_port_output(&self, id: &str, start: u64) -> Result<SerialPortOutput> {
        let path = format!("{}/serialPortOutput", self.item(id));
        let request = self
            .client
            .request(Method::GET, &path)
            .query(&[("start", start)]);
        self.client.send(request).await
    }
}
