//! The future every [`IpAllocator`](crate::IpAllocator) method returns.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use crate::Error;

/// The result of an allocator operation, to be awaited.
///
/// A backend that finishes in memory hands back a value that is ready at once, without a heap
/// allocation ([`IpamFuture::ready`]); a backend that talks to a server hands back its boxed
/// future ([`IpamFuture::boxed`]). Either way the trait stays usable as `dyn IpAllocator`.
///
/// # Contract
/// A ready value carries an operation that already happened when the method returned: dropping
/// it unawaited does not undo it (as for a network backend whose request reached the server).
/// `allocate` is idempotent per owner, so a retry after a dropped call gets the same lease.
#[must_use = "an allocator operation returns its outcome through this future"]
pub struct IpamFuture<'a, T> {
    inner: Inner<'a, T>,
}

enum Inner<'a, T> {
    Ready(Option<Result<T, Error>>),
    Boxed(Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 'a>>),
}

impl<'a, T> IpamFuture<'a, T> {
    /// An outcome that is already known.
    pub fn ready(outcome: Result<T, Error>) -> Self {
        Self { inner: Inner::Ready(Some(outcome)) }
    }

    /// An operation still to run.
    pub fn boxed(future: impl Future<Output = Result<T, Error>> + Send + 'a) -> Self {
        Self { inner: Inner::Boxed(Box::pin(future)) }
    }
}

impl<T: Unpin> Future for IpamFuture<'_, T> {
    type Output = Result<T, Error>;

    /// # Panics
    /// When a ready value is polled again after it returned its outcome (a misuse of any
    /// future).
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().inner {
            Inner::Ready(outcome) => match outcome.take() {
                Some(outcome) => Poll::Ready(outcome),
                None => panic!("IpamFuture polled after it completed"),
            },
            Inner::Boxed(future) => future.as_mut().poll(cx),
        }
    }
}

impl<T> fmt::Debug for IpamFuture<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.inner {
            Inner::Ready(Some(_)) => "ready",
            Inner::Ready(None) => "done",
            Inner::Boxed(_) => "pending",
        };
        f.debug_struct("IpamFuture").field("state", &state).finish()
    }
}
