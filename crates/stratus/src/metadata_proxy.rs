//! `stratus metadata-proxy SOCKET`: joins standard input and output to a unix socket.
//!
//! QEMU's user-mode network runs this once per guest connection to 169.254.169.254:80 and
//! hands it the connection on stdin/stdout; the socket is the listener of that one VM's
//! metadata service, so the connection can only ever reach the guest's own metadata.

use std::path::Path;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

pub async fn run(socket: &Path) -> anyhow::Result<()> {
    let stream = UnixStream::connect(socket).await?;
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
