//! The bare-metal servers of one project (operators).

use crate::{Client, ListOptions, Result, all_pages, segment};
use reqwest::Method;
use stratus_types::{
    Server, ServerCreateRequest, ServerJob, ServerList, ServerLogEntry, ServerLogList,
    ServerUpdateRequest, ServerValidation,
};

/// The servers of a project in a region; made by [`Client::servers`].
pub struct Servers<'a> {
    client: &'a Client,
    base: String,
}

impl<'a> Servers<'a> {
    pub(crate) fn new(client: &'a Client, region: &str, project: &str) -> Self {
        Self {
            client,
            base: format!(
                "/v1/regions/{}/projects/{}/infrastructure/servers",
                segment(region),
                segment(project)
            ),
        }
    }

    fn one(&self, id: &str) -> String {
        format!("{}/{}", self.base, segment(id))
    }

    /// Every server of the project.
    pub async fn list(&self) -> Result<Vec<Server>> {
        all_pages(|options: ListOptions| async move {
            let request = self
                .client
                .request(Method::GET, &self.base)
                .query(&options.query());
            let page: ServerList = self.client.send(request).await?;
            Ok((page.servers, page.next_page_token))
        })
        .await
    }

    pub async fn get(&self, id: &str) -> Result<Server> {
        self.client
            .send(self.client.request(Method::GET, &self.one(id)))
            .await
    }

    pub async fn register(&self, body: &ServerCreateRequest) -> Result<Server> {
        self.client
            .send(self.client.request(Method::POST, &self.base).json(body))
            .await
    }

    pub async fn update(&self, id: &str, body: &ServerUpdateRequest) -> Result<Server> {
        self.client
            .send(self.client.request(Method::PATCH, &self.one(id)).json(body))
            .await
    }

    /// Decommissions a server no instance is on.
    pub async fn decommission(&self, id: &str) -> Result<()> {
        self.client
            .send_empty(self.client.request(Method::DELETE, &self.one(id)))
            .await
    }

    /// `:provision`: queues the job that makes the server ready.
    pub async fn provision(&self, id: &str) -> Result<ServerJob> {
        let path = format!("{}:provision", self.one(id));
        self.client
            .send(
                self.client
                    .request(Method::POST, &path)
                    .json(&serde_json::json!({})),
            )
            .await
    }

    pub async fn validate(&self, id: &str) -> Result<ServerValidation> {
        let path = format!("{}:validate", self.one(id));
        self.client
            .send(self.client.request(Method::POST, &path))
            .await
    }

    /// `:powerOn`, `:powerOff`, `:reboot` or `:inspect`.
    pub async fn act(&self, id: &str, action: &str) -> Result<Server> {
        let path = format!("{}:{}", self.one(id), segment(action));
        self.client
            .send(self.client.request(Method::POST, &path))
            .await
    }

    /// The server's whole log, oldest first.
    pub async fn logs(&self, id: &str) -> Result<Vec<ServerLogEntry>> {
        let path = format!("{}/logs", self.one(id));
        let mut lines = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut request = self
                .client
                .request(Method::GET, &path)
                .query(&[("pageSize", "1000")]);
            if let Some(token) = &token {
                request = request.query(&[("pageToken", token)]);
            }
            let page: ServerLogList = self.client.send(request).await?;
            lines.extend(page.logs);
            match page.next_page_token {
                Some(next) => token = Some(next),
                None => return Ok(lines),
            }
        }
    }
}
