//! The networks, subnets and addresses of one project.

use crate::{Client, ListOptions, Result, all_pages, segment};
use reqwest::Method;
use stratus_types::{
    Address, AddressAllocateRequest, AddressList, Network, NetworkCreateRequest, NetworkList,
    NetworkUpdateRequest, Subnet, SubnetList,
};

/// The networking of a project in a region; made by [`Client::networks`].
pub struct Networks<'a> {
    client: &'a Client,
    base: String,
}

impl<'a> Networks<'a> {
    pub(crate) fn new(client: &'a Client, region: &str, project: &str) -> Self {
        Self {
            client,
            base: format!(
                "/v1/regions/{}/projects/{}/compute",
                segment(region),
                segment(project)
            ),
        }
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.client
            .send(self.client.request(Method::GET, path))
            .await
    }

    async fn page<T: serde::de::DeserializeOwned>(
        &self,
        kind: &str,
        options: &ListOptions,
    ) -> Result<T> {
        let path = format!("{}/{kind}", self.base);
        let request = self
            .client
            .request(Method::GET, &path)
            .query(&options.query());
        self.client.send(request).await
    }

    /// Every network of the project, each with its subnets.
    pub async fn list(&self) -> Result<Vec<Network>> {
        all_pages(|options| async move {
            let page: NetworkList = self.page("networks", &options).await?;
            Ok((page.networks, page.next_page_token))
        })
        .await
    }

    pub async fn get_network(&self, id: &str) -> Result<Network> {
        self.get(&format!("{}/networks/{}", self.base, segment(id)))
            .await
    }

    pub async fn create(&self, body: &NetworkCreateRequest) -> Result<Network> {
        let path = format!("{}/networks", self.base);
        self.client
            .send(self.client.request(Method::POST, &path).json(body))
            .await
    }

    pub async fn update(&self, id: &str, body: &NetworkUpdateRequest) -> Result<Network> {
        let path = format!("{}/networks/{}", self.base, segment(id));
        self.client
            .send(self.client.request(Method::PATCH, &path).json(body))
            .await
    }

    /// Deletes a network nothing uses any more.
    pub async fn delete(&self, id: &str) -> Result<()> {
        let path = format!("{}/networks/{}", self.base, segment(id));
        self.client
            .send_empty(self.client.request(Method::DELETE, &path))
            .await
    }

    /// Every subnet of the project.
    pub async fn subnets(&self) -> Result<Vec<Subnet>> {
        all_pages(|options| async move {
            let page: SubnetList = self.page("subnets", &options).await?;
            Ok((page.subnets, page.next_page_token))
        })
        .await
    }

    /// Every address the project reserved.
    pub async fn addresses(&self) -> Result<Vec<Address>> {
        all_pages(|options| async move {
            let page: AddressList = self.page("addresses", &options).await?;
            Ok((page.addresses, page.next_page_token))
        })
        .await
    }

    pub async fn get_address(&self, id: &str) -> Result<Address> {
        self.get(&format!("{}/addresses/{}", self.base, segment(id)))
            .await
    }

    pub async fn allocate_address(&self, body: &AddressAllocateRequest) -> Result<Address> {
        let path = format!("{}/addresses", self.base);
        self.client
            .send(self.client.request(Method::POST, &path).json(body))
            .await
    }

    /// Releases an address no NIC holds.
    pub async fn release_address(&self, id: &str) -> Result<()> {
        let path = format!("{}/addresses/{}", self.base, segment(id));
        self.client
            .send_empty(self.client.request(Method::DELETE, &path))
            .await
    }
}
