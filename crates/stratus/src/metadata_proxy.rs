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

pub async fn run(socket: &Path) -> anyhow::Result<()> {
    stratus_agent::metadata::relay(tokio::io::stdin(), tokio::io::stdout(), socket).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_unavailable_answer_is_well_formed_http() {
        let (head, body) = stratus_agent::metadata::UNAVAILABLE
            .split_once("\r\n\r\n")
            .unwrap();
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
