//! The HTTP listener: how many connections, for how long, and what a malformed request gets.
//!
//! A public API must not be held hostage by the clients that misbehave. `axum::serve` accepts
//! every connection and keeps it for as long as the peer likes, so a few thousand idle or
//! half-sent connections exhaust file descriptors and memory and take the region down for
//! everyone. This listener bounds each resource a client can hold:
//!
//! - **connections**: at most `max_connections` at once (and never more than three quarters of
//!   the process's file-descriptor limit); a connection beyond that is closed at once, so the
//!   accept queue keeps moving and `/healthz` keeps answering;
//! - **time to send a request head**: `header_read_timeout` from the first byte the server
//!   waits for (slowloris);
//! - **idleness**: a connection on which nothing is read or written for `idle_timeout` is
//!   closed, whether the peer went quiet between requests or in the middle of a body. It is
//!   longer than the longest request ([`crate::REQUEST_TIMEOUT`]), so a waiting read that is
//!   being answered is never cut;
//! - **bodies**: the body limit and the request timeout of the router's middleware.
//!
//! Requests that never reach the router because hyper refuses them while parsing (a request
//! line or URI too long, header fields too large, bytes that are not HTTP) get hyper's bare
//! answer with an empty body. The connection wrapper recognises such an answer on its way out,
//! the only kind of response without an `x-request-id`, and gives it the contract's error
//! body, so every error a client can see has the same shape.

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};

/// What one listener allows its clients.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerLimits {
    /// Connections open at once.
    pub max_connections: usize,
    /// Longest time to receive a request's head.
    pub header_read_timeout: Duration,
    /// A connection with no traffic this long is closed.
    pub idle_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: crate::REQUEST_TIMEOUT + Duration::from_secs(15),
        }
    }
}

/// Largest request head (request line and header fields) read before answering 431.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Serves `router` on `listener` within `limits` until `shutdown` completes, then lets the
/// requests under way finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send,
) {
    let max_connections = limits.max_connections.min(descriptor_budget()).max(1);
    let permits = Arc::new(Semaphore::new(max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut refused_logged = Instant::now() - Duration::from_secs(60);
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors or a reset before accept: wait a little, go on.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            if refused_logged.elapsed() > Duration::from_secs(10) {
                refused_logged = Instant::now();
                tracing::warn!(
                    max_connections,
                    "connection refused: the listener is at its connection limit"
                );
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(GuardedStream::new(stream, limits.idle_timeout));
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_header_size(MAX_HEAD_BYTES)
            .serve_connection(io, TowerToHyperService::new(router.clone()));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Connections this process can afford: three quarters of its descriptor limit (raised to
/// the hard limit first), the rest kept for the database, guests and files.
fn descriptor_budget() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write the struct passed; nothing else.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return usize::MAX;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    if limit.rlim_cur == libc::RLIM_INFINITY {
        return usize::MAX;
    }
    (limit.rlim_cur as usize).saturating_mul(3) / 4
}

/// A client connection that is closed after `idle` without traffic, and whose bare parse-error
/// answers get the contract's error body.
struct GuardedStream {
    inner: TcpStream,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
    /// A rewritten answer still being written, and how many bytes of the original it stands for.
    rewritten: Option<(Vec<u8>, usize, usize)>,
}

impl GuardedStream {
    fn new(inner: TcpStream, idle: Duration) -> Self {
        Self {
            inner,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
            rewritten: None,
        }
    }

    fn touch(&mut self) {
        self.deadline.as_mut().reset(Instant::now() + self.idle);
    }

    fn timed_out(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline.as_mut().poll(cx).is_ready()
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    self.touch();
                }
                Poll::Ready(result)
            }
            Poll::Pending if self.timed_out(cx) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the connection was idle too long",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.rewritten.is_none()
            && let Some(answer) = contract_answer(buf)
        {
            self.rewritten = Some((answer, 0, buf.len()));
        }
        if let Some((answer, mut written, stands_for)) = self.rewritten.take() {
            while written < answer.len() {
                match Pin::new(&mut self.inner).poll_write(cx, &answer[written..]) {
                    Poll::Ready(Ok(n)) => written += n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {
                        self.rewritten = Some((answer, written, stands_for));
                        return Poll::Pending;
                    }
                }
            }
            self.touch();
            return Poll::Ready(Ok(stands_for));
        }
        let n = ready!(Pin::new(&mut self.inner).poll_write(cx, buf))?;
        self.touch();
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// For hyper's own bare answer to a request it could not parse (a 4xx or 5xx head with an empty
/// body and no `x-request-id`, which every answer of the router carries), the same answer with
/// the contract's error body.
fn contract_answer(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    let status_line = text.strip_prefix("HTTP/1.1 ")?;
    let code: u16 = status_line.get(..3)?.parse().ok()?;
    let lower = text.to_ascii_lowercase();
    if !(400..600).contains(&code)
        || !text.ends_with("\r\n\r\n")
        || !lower.contains("\r\ncontent-length: 0\r\n")
        || lower.contains("\r\nx-request-id:")
    {
        return None;
    }
    let reason = status_line[3..].lines().next().unwrap_or("").trim();
    let message = match code {
        400 => "the request is not valid HTTP".to_owned(),
        414 => "the request's URI is too long".to_owned(),
        431 => format!(
            "the request's header fields are too large (at most {} KiB in all)",
            MAX_HEAD_BYTES / 1024
        ),
        505 => "this server speaks HTTP/1.1".to_owned(),
        _ => format!("the request could not be handled ({reason})"),
    };
    let body = serde_json::to_vec(&stratus_types::ErrorBody {
        error: stratus_types::ErrorInfo {
            code,
            message,
            details: vec![stratus_types::ErrorDetail {
                reason: if code >= 500 {
                    "INTERNAL"
                } else {
                    "INVALID_ARGUMENT"
                }
                .into(),
                field: None,
                description: None,
            }],
        },
    })
    .ok()?;
    let mut answer = format!(
        "HTTP/1.1 {code} {reason}\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for line in text.lines().skip(1) {
        let name = line.split(':').next().unwrap_or("").to_ascii_lowercase();
        if !line.is_empty()
            && !matches!(
                name.as_str(),
                "content-length" | "connection" | "content-type"
            )
        {
            answer.push_str(line);
            answer.push_str("\r\n");
        }
    }
    answer.push_str("\r\n");
    let mut bytes = answer.into_bytes();
    bytes.extend_from_slice(&body);
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_parse_error_answers_get_the_contract_body() {
        let bare = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: Mon, 30 Nov 2026 06:00:00 GMT\r\n\r\n";
        let answer = String::from_utf8(contract_answer(bare).unwrap()).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 "), "{head}");
        assert!(head.contains("date: Mon"), "{head}");
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"]["code"], 431);
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("header")
        );
    }

    #[test]
    fn answers_of_the_router_are_left_alone() {
        for head in [
            &b"HTTP/1.1 404 Not Found\r\nx-request-id: 1\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 12\r\n\r\n",
            b"{\"error\":1}",
        ] {
            assert!(contract_answer(head).is_none());
        }
    }
}
