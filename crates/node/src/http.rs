//! The node's HTTP(S) server: axum-server over hyper, with the edge's connection limits.
//!
//! - **Header-read timeout.** A connection that does not send a whole request head within
//!   `[limits] header_read_timeout_secs` is closed. The same clock runs while a keep-alive
//!   connection waits for its next request, so an idle connection is closed after it too. A
//!   client that opens connections and sends nothing, or a byte a minute, cannot hold file
//!   descriptors. (`axum::serve` gives hyper no timer, so hyper's own 30 s default never ran.)
//! - **Connection cap.** At most `[limits] max_connections` are open at once. Past it, a new
//!   connection is closed as soon as it is accepted, before TLS, and counted
//!   (`marquee_http_connections_refused_total`). `marquee_http_connections_open` shows the
//!   current number.
//! - **Descriptors.** At start, the process's soft limit of open files is raised to its hard
//!   limit ([`raise_open_files_limit`]), so the cap, not the default limit of 1,024, bounds the
//!   connections.
//! - **Stop.** On cancellation the server stops accepting and lets open requests finish for
//!   [`DRAIN`].

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum_server::accept::{Accept, DefaultAcceptor};
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use hyper_util::rt::TokioTimer;
use marquee_api::HttpMetrics;
use prometheus::{IntCounter, IntGauge};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// How long the server lets open requests finish after the stop.
pub const DRAIN: Duration = Duration::from_secs(10);

/// The limits the server applies to connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
}

/// Serves `app` on `listener` (over TLS with `tls`) until `cancel`; see the module docs.
pub fn serve(
    listener: TcpListener,
    app: axum::Router,
    tls: Option<RustlsConfig>,
    limits: ConnectionLimits,
    metrics: &HttpMetrics,
    cancel: CancellationToken,
) -> io::Result<JoinHandle<()>> {
    let handle = axum_server::Handle::new();
    let capped = Capped {
        inner: DefaultAcceptor,
        permits: Arc::new(Semaphore::new(limits.max_connections)),
        refused: metrics.connections_refused.clone(),
        open: metrics.connections_open.clone(),
    };
    let std_listener = listener.into_std()?;
    let drain = handle.clone();
    tokio::spawn(async move {
        cancel.cancelled().await;
        drain.graceful_shutdown(Some(DRAIN));
    });
    let service = app.into_make_service();
    Ok(match tls {
        None => {
            let mut server = axum_server::from_tcp(std_listener)?
                .acceptor(capped)
                .handle(handle);
            configure(server.http_builder(), limits);
            tokio::spawn(async move {
                if let Err(serve_error) = server.serve(service).await {
                    error!(error = %serve_error, "http server failed");
                }
            })
        }
        Some(tls) => {
            let mut server = axum_server::from_tcp(std_listener)?
                .acceptor(RustlsAcceptor::new(tls).acceptor(capped))
                .handle(handle);
            configure(server.http_builder(), limits);
            tokio::spawn(async move {
                if let Err(serve_error) = server.serve(service).await {
                    error!(error = %serve_error, "https server failed");
                }
            })
        }
    })
}

fn configure(
    builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    limits: ConnectionLimits,
) {
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
}

/// Raises the soft limit of open files to the hard limit; returns the limit in force.
pub fn raise_open_files_limit() -> Option<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft >= hard {
        return Some(soft);
    }
    match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => {
            info!(from = soft, to = hard, "raised the open files limit");
            Some(hard)
        }
        Err(cause) => {
            warn!(%cause, soft, hard, "cannot raise the open files limit");
            Some(soft)
        }
    }
}

/// An acceptor that admits at most as many connections as it has permits.
#[derive(Clone)]
struct Capped<A> {
    inner: A,
    permits: Arc<Semaphore>,
    refused: IntCounter,
    open: IntGauge,
}

impl<A, I, S> Accept<I, S> for Capped<A>
where
    A: Accept<I, S>,
    A::Future: Send + 'static,
    A::Stream: Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = Counted<A::Stream>;
    type Service = A::Service;
    type Future = Pin<
        Box<dyn std::future::Future<Output = io::Result<(Self::Stream, Self::Service)>> + Send>,
    >;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let permit = self.permits.clone().try_acquire_owned();
        let Ok(permit) = permit else {
            self.refused.inc();
            drop(stream);
            return Box::pin(std::future::ready(Err(io::Error::other(
                "the connection limit is reached",
            ))));
        };
        let accepted = self.inner.accept(stream, service);
        let open = self.open.clone();
        Box::pin(async move {
            let (stream, service) = accepted.await?;
            open.inc();
            Ok((
                Counted {
                    stream,
                    open,
                    _permit: permit,
                },
                service,
            ))
        })
    }
}

/// A connection that holds its permit, and its place in the open count, until dropped.
struct Counted<S> {
    stream: S,
    open: IntGauge,
    _permit: OwnedSemaphorePermit,
}

impl<S> Drop for Counted<S> {
    fn drop(&mut self) {
        self.open.dec();
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
