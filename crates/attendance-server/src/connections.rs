//! Accepting HTTP connections, with limits: a connection must send its
//! request head within `--header-read-timeout`, may stay idle between
//! requests for `--idle-timeout`, and at most `--max-connections` are open
//! at once (live sockets included).
//!
//! At the limit, the connection that has waited longest without a request
//! in progress (silent, half a header, idle keep-alive) is closed to make
//! room for the new one, so `/healthz` and real requests still get in while
//! slow or silent clients fill the server; only when every connection is
//! busy is the new one turned away. The limit sits below the process's file
//! descriptor limit (raised to its hard maximum when needed), so accepting
//! never fails for want of descriptors.
//!
//! The routes (a warp filter turned into a handler by `warp::service`) run
//! on hyper-util's connection builder, with WebSocket upgrades and graceful shutdown:
//! accepting stops, requests in progress finish.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tokio::time::Instant;
use warp::http::{Request, Response};

/// The limits connections are held to.
#[derive(Debug, Clone)]
pub struct Limits {
    /// From accepting a connection, or from the first byte of a request,
    /// to the end of its head.
    pub header_read_timeout: Duration,
    /// Between requests on a kept-alive connection; also the longest a
    /// request in progress may go without a byte read or written.
    pub idle_timeout: Duration,
    /// Open connections (WebSockets included).
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
        }
    }
}

/// File descriptors kept for everything but client connections: the
/// database pool (SQLite opens three files per connection), the listener,
/// logs, the runtime's own.
fn descriptors_reserved(db_connections: u32) -> u64 {
    64 + 4 * u64::from(db_connections)
}

/// How many connections may be open: `wanted`, or fewer when the file
/// descriptor limit (raised to its hard maximum if that helps) is lower.
pub fn effective_max_connections(wanted: usize, db_connections: u32) -> usize {
    let reserved = descriptors_reserved(db_connections);
    // Evictions in flight may briefly hold a few more.
    let needed = wanted as u64 + reserved + EVICTION_SLACK as u64;
    match descriptor_limit(needed) {
        Some(limit) => {
            let room = limit.saturating_sub(reserved + EVICTION_SLACK as u64) as usize;
            wanted.min(room).max(1)
        }
        None => wanted.max(1),
    }
}

/// The soft limit on open files, first raised towards `needed` (up to the
/// hard limit). `None` where there is no such limit.
#[cfg(unix)]
// rlim_t is u64 on Linux, not everywhere.
#[allow(clippy::useless_conversion)]
fn descriptor_limit(needed: u64) -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if u64::from(limit.rlim_cur) < needed && limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: libc::rlim_t::try_from(needed)
                    .unwrap_or(limit.rlim_max)
                    .min(limit.rlim_max),
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    Some(u64::from(limit.rlim_cur))
}

#[cfg(not(unix))]
fn descriptor_limit(_needed: u64) -> Option<u64> {
    None
}

/// Connections accepted past the limit while the ones evicted for them
/// close; past it, accepting waits.
const EVICTION_SLACK: usize = 32;

/// Milliseconds since the server started: a timestamp that fits an atomic.
fn clock_ms(origin: Instant) -> u64 {
    origin.elapsed().as_millis() as u64
}

/// What a connection is doing, shared by its I/O, its requests and the
/// task that serves it.
struct ConnState {
    origin: Instant,
    accepted_ms: u64,
    /// Requests whose response has not been fully written.
    in_flight: AtomicUsize,
    /// Requests started on this connection.
    requests: AtomicU64,
    /// When the last request ended (its response written).
    idle_since_ms: AtomicU64,
    /// When the first byte of the next request's head arrived (0: none yet).
    head_started_ms: AtomicU64,
    last_io_ms: AtomicU64,
    /// Closed to make room for a new connection.
    evicted: AtomicBool,
    /// HTTP is over: closed, or handed to a WebSocket (which keeps the
    /// connection's place but can no longer be evicted).
    finished: AtomicBool,
    wake: Notify,
}

impl ConnState {
    fn new(origin: Instant) -> Self {
        let now = clock_ms(origin);
        ConnState {
            origin,
            accepted_ms: now,
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            idle_since_ms: AtomicU64::new(now),
            head_started_ms: AtomicU64::new(0),
            last_io_ms: AtomicU64::new(now),
            evicted: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            wake: Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        clock_ms(self.origin).max(1)
    }

    fn read_some(&self) {
        let now = self.now();
        self.last_io_ms.store(now, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Relaxed) == 0 {
            let _ =
                self.head_started_ms
                    .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    fn wrote_some(&self) {
        self.last_io_ms.store(self.now(), Ordering::Relaxed);
    }

    fn request_started(self: &Arc<Self>) -> RequestGuard {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.head_started_ms.store(0, Ordering::Relaxed);
        RequestGuard(self.clone())
    }

    /// Idle: no request in progress (silent, reading a head, or kept alive).
    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0
    }

    /// How long this connection has been idle, for choosing whom to evict.
    fn idle_since(&self) -> u64 {
        self.idle_since_ms.load(Ordering::Relaxed)
    }

    /// When this connection is due to be closed, in [`clock_ms`] time.
    fn deadline(&self, limits: &Limits) -> u64 {
        let ms = |d: Duration| d.as_millis() as u64;
        if !self.is_idle() {
            return self.last_io_ms.load(Ordering::Relaxed) + ms(limits.idle_timeout);
        }
        let head = self.head_started_ms.load(Ordering::Relaxed);
        if head != 0 {
            return head + ms(limits.header_read_timeout);
        }
        if self.requests.load(Ordering::Relaxed) == 0 {
            // A new connection owes us a request head.
            return self.accepted_ms + ms(limits.header_read_timeout);
        }
        self.idle_since() + ms(limits.idle_timeout)
    }

    fn evict(&self) {
        self.evicted.store(true, Ordering::Relaxed);
        self.wake.notify_one();
    }
}

/// Marks a connection's HTTP as over when its task ends.
struct Finished<'a>(&'a ConnState);

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        self.0.finished.store(true, Ordering::Relaxed);
    }
}

/// Counts a request until its response body is written (or dropped).
struct RequestGuard(Arc<ConnState>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let state = &self.0;
        state.idle_since_ms.store(state.now(), Ordering::Relaxed);
        state.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that ends its request when it is done.
struct TrackedBody<B> {
    inner: B,
    _request: RequestGuard,
}

impl<B: Body + Unpin> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The open connections, for counting and for choosing whom to evict.
#[derive(Default)]
struct Registry {
    open: Mutex<HashMap<u64, Arc<ConnState>>>,
    count: AtomicUsize,
    next_id: AtomicU64,
    /// The limit was reached and said so; cleared once well below it.
    at_limit: AtomicBool,
    freed: Notify,
}

/// A connection's place in the [`Registry`]; given back when the
/// connection's I/O is dropped (after an upgrade, when the WebSocket ends).
struct Place {
    id: u64,
    registry: Arc<Registry>,
}

impl Drop for Place {
    fn drop(&mut self) {
        self.registry
            .open
            .lock()
            .expect("registry lock")
            .remove(&self.id);
        self.registry.count.fetch_sub(1, Ordering::Relaxed);
        self.registry.freed.notify_waiters();
    }
}

impl Registry {
    fn enter(self: &Arc<Self>, state: Arc<ConnState>) -> Place {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.open.lock().expect("registry lock").insert(id, state);
        self.count.fetch_add(1, Ordering::Relaxed);
        Place {
            id,
            registry: self.clone(),
        }
    }

    /// Asks the connection idle the longest to close; `false` if none is idle.
    fn evict_one(&self) -> bool {
        let open = self.open.lock().expect("registry lock");
        let oldest = open
            .values()
            .filter(|c| {
                c.is_idle()
                    && !c.evicted.load(Ordering::Relaxed)
                    && !c.finished.load(Ordering::Relaxed)
            })
            .min_by_key(|c| c.idle_since());
        match oldest {
            Some(conn) => {
                conn.evict();
                true
            }
            None => false,
        }
    }

    /// One log line when the limit is reached, one when it is left.
    fn note_pressure(&self, max: usize) {
        let count = self.count.load(Ordering::Relaxed);
        if count >= max {
            if !self.at_limit.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    max_connections = max,
                    "connection limit reached: closing the longest-idle connections to admit \
                     new ones, turning new ones away while every connection is busy"
                );
            }
        } else if count < max - max / 10 && self.at_limit.swap(false, Ordering::Relaxed) {
            tracing::info!(max_connections = max, "back under the connection limit");
        }
    }
}

/// A TCP stream that tells its connection's state about every byte, and
/// holds the connection's place until it is dropped.
struct TrackedIo {
    stream: TcpStream,
    state: Arc<ConnState>,
    _place: Place,
}

impl AsyncRead for TrackedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.state.read_some();
        }
        result
    }
}

impl AsyncWrite for TrackedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.stream).poll_write(cx, data);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.state.wrote_some();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.state.wrote_some();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Serves `handler` (each request to its response) on `listener` until
/// `shutdown` resolves; then stops accepting and returns once the requests
/// in progress have finished.
pub async fn serve<H, Fut, B>(
    handler: H,
    listener: TcpListener,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) where
    H: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let registry = Arc::new(Registry::default());
    let origin = Instant::now();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let max = limits.max_connections.max(1);
    tokio::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        // Past the limit and its slack (evicted connections still closing):
        // wait for a place before taking another descriptor.
        while registry.count.load(Ordering::Relaxed) >= max + EVICTION_SLACK {
            let freed = registry.freed.notified();
            tokio::select! {
                _ = freed => {}
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    accept_error(error).await;
                    continue;
                }
            },
        };
        registry.note_pressure(max);
        if registry.count.load(Ordering::Relaxed) >= max && !registry.evict_one() {
            // Every connection is busy: this one waits for nothing.
            drop(stream);
            continue;
        }
        // Every response and push is written whole as soon as it is ready:
        // without this, the tail segment of a push bigger than one segment
        // (a snapshot, a part) would wait for the client's acknowledgement
        // of the rest (Nagle), a round trip or a delayed ACK later.
        let _ = stream.set_nodelay(true);
        let state = Arc::new(ConnState::new(origin));
        let io = TrackedIo {
            stream,
            state: state.clone(),
            _place: registry.enter(state.clone()),
        };
        connections.spawn(serve_connection(
            handler.clone(),
            io,
            state,
            limits.clone(),
            stop_rx.clone(),
        ));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    while connections.join_next().await.is_some() {}
}

async fn accept_error(error: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    // Out of descriptors (another part of the process used them) or
    // similar: wait a little rather than spin.
    tracing::error!(%error, "accept failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

async fn serve_connection<H, Fut, B>(
    handler: H,
    io: TrackedIo,
    state: Arc<ConnState>,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) where
    H: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let requests = state.clone();
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let guard = requests.request_started();
        let response = handler(request);
        async move {
            let response = response.await?;
            Ok::<_, Infallible>(response.map(|inner| TrackedBody {
                inner,
                _request: guard,
            }))
        }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    // The timeouts are ours (below): hyper's header timer would also close
    // kept-alive connections after the header timeout.
    builder.http1().header_read_timeout(None);
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(connection);
    let _finished = Finished(&state);
    let mut stopping = false;
    loop {
        let deadline = state.origin + Duration::from_millis(state.deadline(&limits));
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            _ = tokio::time::sleep_until(deadline) => {
                if state.deadline(&limits) <= clock_ms(state.origin) {
                    tracing::debug!("connection timed out");
                    return;
                }
            }
            _ = state.wake.notified() => {
                if state.evicted.load(Ordering::Relaxed) && state.is_idle() {
                    tracing::debug!("idle connection closed to admit a new one");
                    return;
                }
                state.evicted.store(false, Ordering::Relaxed);
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10,
        }
    }

    #[test]
    fn deadlines_follow_what_the_connection_is_doing() {
        let state = Arc::new(ConnState::new(Instant::now()));
        let accepted = state.accepted_ms;
        // Silent since accepted: the header timeout.
        assert_eq!(state.deadline(&limits()), accepted + 10_000);
        // A request in progress: no deadline while bytes move.
        let guard = state.request_started();
        state.wrote_some();
        let io = state.last_io_ms.load(Ordering::Relaxed);
        assert_eq!(state.deadline(&limits()), io + 60_000);
        // Done: kept alive for the idle timeout.
        drop(guard);
        let idle = state.idle_since();
        assert_eq!(state.deadline(&limits()), idle + 60_000);
        // The next head has begun: the header timeout again.
        state.read_some();
        let head = state.head_started_ms.load(Ordering::Relaxed);
        assert_eq!(state.deadline(&limits()), head + 10_000);
    }

    #[test]
    fn the_longest_idle_is_evicted_never_a_busy_one_or_a_websocket() {
        let registry = Arc::new(Registry::default());
        let origin = Instant::now();
        let conn = |idle_since: u64| {
            let state = Arc::new(ConnState::new(origin));
            state.idle_since_ms.store(idle_since, Ordering::Relaxed);
            state
        };
        let (websocket, busy, older, newer) = (conn(1), conn(2), conn(3), conn(4));
        websocket.finished.store(true, Ordering::Relaxed);
        let _request = busy.request_started();
        busy.idle_since_ms.store(2, Ordering::Relaxed);
        let _places: Vec<Place> = [&websocket, &busy, &older, &newer]
            .into_iter()
            .map(|c| registry.enter(c.clone()))
            .collect();
        assert!(registry.evict_one());
        assert!(older.evicted.load(Ordering::Relaxed));
        assert!(registry.evict_one());
        assert!(newer.evicted.load(Ordering::Relaxed));
        assert!(
            !registry.evict_one(),
            "only busy connections and a WebSocket are left"
        );
        assert!(
            !websocket.evicted.load(Ordering::Relaxed) && !busy.evicted.load(Ordering::Relaxed)
        );
    }

    #[test]
    fn the_limit_leaves_room_for_everything_else() {
        let max = effective_max_connections(10_000, 8);
        assert!(max >= 1);
        #[cfg(unix)]
        {
            let limit = descriptor_limit(0).unwrap();
            assert!(max as u64 + descriptors_reserved(8) <= limit.max(max as u64 + 96 + 32));
        }
    }
}
