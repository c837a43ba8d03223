//! `stratus metadata-proxy SOCKET`: joins standard input and output to a unix socket.
//!
//! QEMU's user-mode network runs this once per guest connection to 169.254.169.254:80 and
//! hands it the connection on stdin/stdout; the socket is the listener of that one VM's
//! metadata service, so the connection can only ever reach the guest's own metadata.
//!
//! QEMU hands this process the guest's connection as standard input, output and error alike,
//! so it must never print anything of its own: when the metadata service cannot be reached it
//! answers `503` in HTTP, and its errors end it silently.

use std::path::Path;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

/// What the guest is told when its metadata service is not there (the agent is restarting):
/// a proper HTTP answer it can retry on, never this process's own error text.
const UNAVAILABLE: &str = "HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\n\
Retry-After: 2\r\nConnection: close\r\nContent-Length: 59\r\n\r\n\
the metadata service is not available right now; try again\n";

pub async fn run(socket: &Path) -> anyhow::Result<()> {
    let stream = match UnixStream::connect(socket).await {
        Ok(stream) => stream,
        Err(_) => {
            let mut stdout = tokio::io::stdout();
            stdout.write_all(UNAVAILABLE.as_bytes()).await?;
            stdout.flush().await?;
            return Ok(());
        }
    };
    let (mut from_vm, mut to_vm) = stream.into_split();
    let mut stdin = tokio::io::stdin();
    let mut stdout = tokio::io::stdout();
    // When the guest half-closes after its request, the socket is kept open: the metadata
    // server would take a half-close for an abandoned request and drop the answer. The
    // exchange ends when the server has answered and closed.
    let upstream = async {
        let _ = tokio::io::copy(&mut stdin, &mut to_vm).await;
        std::future::pending::<()>().await
    };
    let downstream = async {
        tokio::io::copy(&mut from_vm, &mut stdout).await?;
        stdout.flush().await
    };
    tokio::select! {
        _ = upstream => unreachable!("pending never completes"),
        done = downstream => done?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_unavailable_answer_is_well_formed_http() {
        let (head, body) = super::UNAVAILABLE.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.0 503 "));
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(length, body.len());
    }
}
