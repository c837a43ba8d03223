//! Optimistic writes, retried a bounded number of times.
//!
//! Records carry a generation, and every write names the generation it read: a write that
//! lost to a concurrent one changes nothing, and the writer reads again and decides again.
//! Under a storm of concurrent writers that could go on for ever; [`optimistic`] gives up
//! after [`MAX_ATTEMPTS`] lost races and answers `Unavailable`, which the caller may retry.

use crate::{Error, Result};
use std::future::Future;

/// Lost races after which an optimistic write gives up.
pub const MAX_ATTEMPTS: u32 = 16;

/// Runs `attempt` (read, decide, write guarded by the generation read) until it returns
/// `Some` — its write won — or has lost [`MAX_ATTEMPTS`] times. Errors end it at once.
pub async fn optimistic<T, F, Fut>(what: &str, mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    for _ in 0..MAX_ATTEMPTS {
        if let Some(done) = attempt().await? {
            return Ok(done);
        }
    }
    Err(Error::Unavailable(format!(
        "{what} is being changed by many writers at once; try again"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn block_on<F: Future>(future: F) -> F::Output {
        // The futures here never wait, so one poll finishes them.
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut future = std::pin::pin!(future);
        match future.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(out) => out,
            std::task::Poll::Pending => panic!("the attempt waited"),
        }
    }

    #[test]
    fn a_write_that_keeps_losing_gives_up() {
        let tries = Cell::new(0);
        let result: Result<()> = block_on(optimistic("instance x", || {
            tries.set(tries.get() + 1);
            async { Ok(None) }
        }));
        assert!(matches!(result, Err(Error::Unavailable(m)) if m.contains("instance x")));
        assert_eq!(tries.get(), MAX_ATTEMPTS);
    }

    #[test]
    fn a_write_that_wins_late_is_kept() {
        let tries = Cell::new(0);
        let result = block_on(optimistic("instance x", || {
            tries.set(tries.get() + 1);
            let n = tries.get();
            async move { Ok((n == 3).then_some(n)) }
        }));
        assert_eq!(result.unwrap(), 3);
    }
}
