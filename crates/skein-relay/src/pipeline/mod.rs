//! The relay's request pipeline, outside HTTP: the one path every vendor-compatible route
//! and every in-process caller takes.
//!
//! 1. **Plan** ([`plan`]): check the caller may use the model, find the channels that serve
//!    it, price it, and refuse early (every refusal here is free).
//! 2. **Hold** ([`bill::held`]): reserve an estimate on the payer's balance; from here on the
//!    work runs on a task of the service's own, so a caller that leaves cannot strand a hold.
//! 3. **Attempt** ([`attempt`]): try up to [`MAX_ATTEMPTS`] channels, failing over on
//!    retryable errors, feeding the circuit breakers, disabling a channel only when its own
//!    key confirms it is dead, and releasing the hold when nothing was delivered.
//! 4. **Bill and stream** ([`bill`], [`read`], [`chat`]): relay the answer (whole, SSE, bytes
//!    or typed chat events), count what was delivered, settle the exact cost and only then
//!    send the closing events.
//!
//! The routes differ only in how they estimate, what upstream path and body they send, and
//! how they read the bill from the answer ([`calls`] for the OpenAI routes besides chat,
//! [`chat`] for chat in every client format). HTTP handlers parse the client's request, call
//! these and render the [`Reply`].
//!
//! **Architecture Invariant:** nothing here knows about axum's request or response types;
//! clients' errors never name a channel or a host.

pub(crate) mod attempt;
pub(crate) mod bill;
pub(crate) mod calls;
pub(crate) mod chat;
pub(crate) mod fields;
pub(crate) mod input;
pub(crate) mod local;
pub(crate) mod plan;
pub(crate) mod read;
pub(crate) mod realtime;

use axum::http::{HeaderValue, StatusCode};
use bytes::Bytes;
use skein_core::api::RelayCharge;

pub use crate::caller::Caller;

/// Spawning a request's hand-off work (the relay task, a stream's reader, a settle) inside the
/// request's span, so it stays in the request's trace and log context.
pub(crate) trait SpawnInSpan {
    /// [`tokio_util::task::TaskTracker::spawn`] inside the caller's span.
    fn spawn_in_current_span<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static;
}

impl SpawnInSpan for tokio_util::task::TaskTracker {
    fn spawn_in_current_span<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        // Tracked, as `spawn` is: shutdown waits for it; nobody joins the handle. Boxed
        // first: these futures are large (a whole relay attempt), and tokio moves a future by
        // value several times on its way into the task and again when the task finishes —
        // copies of many kilobytes per request that showed as `memcpy` in the profile. A box
        // is moved as one pointer.
        let task: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> =
            Box::pin(tracing::Instrument::in_current_span(task));
        drop(self.spawn(task));
    }
}

/// Most channels tried for one request.
pub(crate) const MAX_ATTEMPTS: usize = 3;

/// What the relay answers a call with, for HTTP to render: a status, a content type and the
/// body whole or as it arrives, and the charge when the call was settled before the answer.
pub(crate) struct Reply {
    /// The status for the client.
    pub status: StatusCode,
    /// The body's content type.
    pub content_type: HeaderValue,
    /// The body.
    pub body: ReplyBody,
    /// The exact charge, when it was settled before the answer ([`Caller::User`]).
    pub charge: Option<RelayCharge>,
}

/// A reply's body.
pub(crate) enum ReplyBody {
    /// Read whole.
    Whole(Bytes),
    /// Sent as it arrives; the stream's reader runs on a task of the service's own.
    Stream(tokio::sync::mpsc::Receiver<Bytes>),
}

impl Reply {
    /// A whole JSON (or other) answer.
    pub fn whole(status: StatusCode, content_type: HeaderValue, bytes: Bytes) -> Reply {
        Reply {
            status,
            content_type,
            body: ReplyBody::Whole(bytes),
            charge: None,
        }
    }

    /// A 200 answer sent as it arrives.
    pub fn stream(
        content_type: HeaderValue,
        receiver: tokio::sync::mpsc::Receiver<Bytes>,
    ) -> Reply {
        Reply {
            status: StatusCode::OK,
            content_type,
            body: ReplyBody::Stream(receiver),
            charge: None,
        }
    }

    /// The whole body, or `None` for a stream.
    pub fn bytes(&self) -> Option<&Bytes> {
        match &self.body {
            ReplyBody::Whole(bytes) => Some(bytes),
            ReplyBody::Stream(_) => None,
        }
    }
}
