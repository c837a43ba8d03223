//! A minimal QMP client: one connection per command.
//!
//! QMP speaks JSON lines over a unix socket: a greeting, `qmp_capabilities`, then commands
//! whose replies carry `return` or `error`, with asynchronous events interleaved. Opening a
//! connection per command keeps no state in the agent that a restart could lose; the cost is
//! a millisecond, next to operations that take seconds.

use crate::driver::DriverError;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

const TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `command` with `arguments` on the QMP socket at `socket`; returns its `return` value.
pub async fn execute(
    socket: &Path,
    command: &str,
    arguments: Option<Value>,
) -> Result<Value, DriverError> {
    tokio::time::timeout(TIMEOUT, execute_inner(socket, command, arguments))
        .await
        .map_err(|_| DriverError::Transient(format!("QMP {command} timed out after {TIMEOUT:?}")))?
}

async fn execute_inner(
    socket: &Path,
    command: &str,
    arguments: Option<Value>,
) -> Result<Value, DriverError> {
    let stream = UnixStream::connect(socket).await.map_err(|e| {
        DriverError::Transient(format!("connecting to QMP at {}: {e}", socket.display()))
    })?;
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let io = |e: std::io::Error| DriverError::Transient(format!("QMP: {e}"));
    // Greeting.
    lines.next_line().await.map_err(io)?;
    let mut exchange = async |message: Value| -> Result<Value, DriverError> {
        let mut text = message.to_string();
        text.push('\n');
        write.write_all(text.as_bytes()).await.map_err(io)?;
        loop {
            let line = lines
                .next_line()
                .await
                .map_err(io)?
                .ok_or_else(|| DriverError::Transient("QMP connection closed".into()))?;
            let reply: Value = serde_json::from_str(&line)
                .map_err(|e| DriverError::Transient(format!("QMP sent invalid JSON: {e}")))?;
            if let Some(ret) = reply.get("return") {
                return Ok(ret.clone());
            }
            if let Some(err) = reply.get("error") {
                return Err(DriverError::Permanent(format!(
                    "QMP {}: {}",
                    message["execute"],
                    err["desc"].as_str().unwrap_or("error")
                )));
            }
            // An event: not the reply.
        }
    };
    exchange(json!({"execute": "qmp_capabilities"})).await?;
    let mut message = json!({ "execute": command });
    if let Some(arguments) = arguments {
        message["arguments"] = arguments;
    }
    exchange(message).await
}
