//! Watching instances: the server-sent events of `GET …/compute/instances?watch=true`, read
//! one event at a time.

use crate::{Error, Result};
use stratus_types::InstanceWatchEvent;

/// What a watch follows and where it starts.
#[derive(Clone, Debug, Default)]
pub struct WatchOptions {
    /// `k=v,k2!=v2`: only instances whose labels match.
    pub label_selector: Option<String>,
    /// Only this instance (`fieldSelector=id=…`).
    pub id: Option<String>,
    /// Resume after this event's `resourceVersion` instead of listing first.
    pub resource_version: Option<String>,
    /// End the stream after this long (the server's default, 30 minutes, when absent).
    pub timeout: Option<std::time::Duration>,
}

impl WatchOptions {
    pub(crate) fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = vec![("watch", "true".to_owned())];
        if let Some(selector) = &self.label_selector {
            query.push(("labelSelector", selector.clone()));
        }
        if let Some(id) = &self.id {
            query.push(("fieldSelector", format!("id={id}")));
        }
        if let Some(version) = &self.resource_version {
            query.push(("resourceVersion", version.clone()));
        }
        if let Some(timeout) = self.timeout {
            query.push((
                "timeoutSeconds",
                timeout.as_secs().clamp(1, 3600).to_string(),
            ));
        }
        query
    }
}

/// An open watch; made by [`crate::Instances::watch`].
pub struct InstanceWatch {
    url: String,
    response: reqwest::Response,
    /// Bytes received and not yet parsed into events.
    buffer: Vec<u8>,
    /// The `resourceVersion` of the last event read that had one: where to resume.
    pub last_version: Option<String>,
}

impl InstanceWatch {
    pub(crate) fn new(url: String, response: reqwest::Response) -> Self {
        Self {
            url,
            response,
            buffer: Vec::new(),
            last_version: None,
        }
    }

    /// The next event, `None` once the server ended the stream (its timeout, or a shutdown):
    /// watch again from [`InstanceWatch::last_version`]. An `ERROR` event is returned as
    /// it came; the server ends the stream after it.
    pub async fn next(&mut self) -> Result<Option<InstanceWatchEvent>> {
        loop {
            while let Some(end) = frame_end(&self.buffer) {
                let frame: Vec<u8> = self.buffer.drain(..end).collect();
                if let Some(event) = self.parse(&frame)? {
                    return Ok(Some(event));
                }
            }
            let chunk = self
                .response
                .chunk()
                .await
                .map_err(|source| Error::Transport {
                    url: self.url.clone(),
                    source,
                })?;
            match chunk {
                Some(bytes) => self.buffer.extend_from_slice(&bytes),
                None => return Ok(None),
            }
        }
    }

    /// The event of one frame (its `data` lines); `None` for a frame without data (a comment,
    /// a keep-alive).
    fn parse(&mut self, frame: &[u8]) -> Result<Option<InstanceWatchEvent>> {
        let text = String::from_utf8_lossy(frame);
        let data: Vec<&str> = text
            .lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .map(|d| d.strip_prefix(' ').unwrap_or(d))
            .collect();
        if data.is_empty() {
            return Ok(None);
        }
        let event: InstanceWatchEvent =
            serde_json::from_str(&data.join("\n")).map_err(|e| Error::Unexpected {
                url: self.url.clone(),
                status: 200,
                message: format!("a watch event does not match the API's schema: {e}"),
            })?;
        if !event.resource_version.is_empty() {
            self.last_version = Some(event.resource_version.clone());
        }
        Ok(Some(event))
    }
}

/// Where the first complete frame of `buffer` ends (after its blank line).
fn frame_end(buffer: &[u8]) -> Option<usize> {
    buffer
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|at| at + 2)
}

#[cfg(test)]
mod tests {
    use super::frame_end;

    #[test]
    fn frames_end_at_a_blank_line() {
        assert_eq!(frame_end(b"event: A\ndata: {}\n\nevent"), Some(19));
        assert_eq!(frame_end(b"event: A\ndata: {}\n"), None);
    }
}
