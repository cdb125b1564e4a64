//! The HTTP edge of `guardmdm serve`: the accept loop, the limits every connection lives
//! under, and graceful shutdown.
//!
//! One connection goes: accept (or close at once when [`EdgeLimits::max_connections`] are
//! open) → `serve_io` over the stream (HTTP/1 or HTTP/2, told apart by hyper-util) under a
//! watchdog. With TLS the handshake comes between the two, bounded by the header read
//! timeout, and `serve_io` runs over the TLS stream; a TLS-ALPN-01 validation handshake
//! (`acme-tls/1`) ends there, and a plain-HTTP request on the TLS port is answered 400
//! ("use https://") and closed.
//!
//! The watchdog closes a connection that has no request in progress when
//! - it was opened and no whole request head arrived within the header read timeout,
//! - after a request, no byte arrived within the keep-alive timeout, or
//! - after a request, the next head started but did not end within the header read timeout;
//!
//! and a request whose body has not arrived in full within the request body timeout is
//! answered 408 and its connection closed; a connection with a response to write that the
//! client has not let through for the send timeout (it does not read) is closed. A request is
//! "in progress" from its head until its response has been written; these limits apply to
//! HTTP/1 and HTTP/2 alike (hyper's own header timeout only exists for HTTP/1, and
//! hyper-util's protocol detection has none).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, StatusCode, header};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long the accept loop waits after an accept error that is not one connection's (out of
/// file descriptors, for instance) before it tries again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);
/// The least time between two "connection limit reached" warnings in the log.
const SATURATION_WARNING_EVERY: Duration = Duration::from_secs(60);

/// The limits every connection lives under (`guardmdm serve` flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgeLimits {
    /// A new connection's first request head, and a later head once its first byte has
    /// arrived, must arrive in full within this long.
    pub header_read_timeout: Duration,
    /// A request's body must arrive in full within this long of its head.
    pub request_body_timeout: Duration,
    /// A connection with no request in progress and no byte of a new one is closed after this
    /// long.
    pub keep_alive_timeout: Duration,
    /// A connection with a response to write that has written nothing for this long (the
    /// client does not read) is closed.
    pub send_timeout: Duration,
    /// At most this many connections are open at once; further ones are closed at once.
    pub max_connections: usize,
}

/// Serves `app` on `listener` (over TLS with `tls`, else plain HTTP) until `shutdown` is cancelled, then lets open connections
/// finish their requests for up to `grace` and closes what is left.
///
/// The peer address reaches handlers as [`ConnectInfo<SocketAddr>`].
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: EdgeLimits,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: CancellationToken,
    grace: Duration,
) {
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    let force = CancellationToken::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The watchdog below bounds the wait for request heads on HTTP/1 and HTTP/2 alike.
    // hyper's own HTTP/1 header timeout (30 s by default, active only with a timer) starts
    // as soon as a kept-alive connection goes idle, so it would also cap the keep-alive
    // wait; it stays off.
    builder.http1().header_read_timeout(None);
    let builder = Arc::new(builder);
    let mut last_warning: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                tracing::error!(error = %e, "cannot accept connections; trying again in {ACCEPT_ERROR_PAUSE:?}");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => continue,
                }
            }
        };
        // At the cap the new connection is closed at once: it costs an accept and a close,
        // and the client learns at once instead of waiting in the listen backlog.
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            drop(stream);
            if last_warning.is_none_or(|at| at.elapsed() >= SATURATION_WARNING_EVERY) {
                last_warning = Some(Instant::now());
                tracing::warn!(
                    max_connections = limits.max_connections,
                    "the connection limit is reached: new connections are closed at once until some end (--max-connections)"
                );
            }
            continue;
        };
        connections.spawn(serve_tcp(
            stream,
            peer,
            Connection {
                app: app.clone(),
                builder: builder.clone(),
                limits,
                shutdown: shutdown.clone(),
                force: force.clone(),
            },
            tls.clone(),
            permit,
        ));
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "connections still open {grace:?} after shutdown began are closed"
        );
        force.cancel();
        connections.wait().await;
    }
}

/// Errors of one connection (the peer gave up before it was accepted), not of the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// What serving one connection needs.
struct Connection {
    app: Router,
    builder: Arc<auto::Builder<TokioExecutor>>,
    limits: EdgeLimits,
    shutdown: CancellationToken,
    force: CancellationToken,
}

/// One accepted TCP connection, holding its slot until it ends.
async fn serve_tcp(
    stream: TcpStream,
    peer: SocketAddr,
    connection: Connection,
    tls: Option<tokio_rustls::TlsAcceptor>,
    _slot: OwnedSemaphorePermit,
) {
    let Some(tls) = tls else {
        serve_io(stream, peer, connection).await;
        return;
    };
    // The handshake counts against the wait for the first request head.
    let handshake = async {
        if starts_with_plain_http(&stream).await {
            answer_plain_http(stream).await;
            return None;
        }
        Some(tls.accept(stream).await)
    };
    let handshake = tokio::select! {
        done = tokio::time::timeout(connection.limits.header_read_timeout, handshake) => done,
        () = connection.force.cancelled() => return,
    };
    let stream = match handshake {
        Ok(None) => {
            tracing::debug!(%peer, "answered a plain-HTTP request on the HTTPS port");
            return;
        }
        Ok(Some(Ok(stream))) => stream,
        Ok(Some(Err(e))) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "closing a connection that did not finish its TLS handshake in time");
            return;
        }
    };
    if stream.get_ref().1.alpn_protocol() == Some(crate::tls::ACME_TLS_ALPN) {
        // TLS-ALPN-01 validation: the handshake itself was the answer (RFC 8737 §3).
        let mut stream = stream;
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut stream).await;
        return;
    }
    serve_io(stream, peer, connection).await;
}

/// Whether the connection's first byte is that of a plain-HTTP request (a method's first
/// letter) rather than of a TLS handshake record (content type 22).
async fn starts_with_plain_http(stream: &TcpStream) -> bool {
    let mut first = [0u8; 1];
    matches!(stream.peek(&mut first).await, Ok(1)) && first[0].is_ascii_uppercase()
}

/// Answers a plain-HTTP request sent to the HTTPS port with a 400 that says so, instead of
/// a TLS alert the client cannot show, then closes the connection.
async fn answer_plain_http(mut stream: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const BODY: &str = "This port serves HTTPS: use https:// in the URL.\n";
    let mut buf = [0u8; 4096];
    // The request head (what has arrived of it), so that closing does not reset the
    // connection before the client has read the answer.
    let _ = stream.read(&mut buf).await;
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    if stream.write_all(answer.as_bytes()).await.is_err() || stream.shutdown().await.is_err() {
        return;
    }
    // Until the client closes its side (the caller's timeout bounds the wait).
    while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
}

/// Serves HTTP/1 or HTTP/2 over `io` under the connection watchdog.
async fn serve_io<I>(io: I, peer: SocketAddr, connection: Connection)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Connection {
        app,
        builder,
        limits,
        shutdown,
        force,
    } = connection;
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: io,
        activity: activity.clone(),
    });
    let service_activity = activity.clone();
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        handle(
            app.clone(),
            req,
            peer,
            InFlight::start(service_activity.clone()),
            limits.request_body_timeout,
        )
    });
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        let deadline = activity.deadline(&limits);
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            () = activity.changed.notified() => {}
            () = sleep_until(deadline) => {
                if activity.deadline(&limits).is_some_and(|d| d <= Instant::now()) {
                    tracing::debug!(%peer, "closing a connection that sent no request, or read no response, in time");
                    return;
                }
            }
            () = shutdown.cancelled(), if !draining => {
                conn.as_mut().graceful_shutdown();
                draining = true;
            }
            () = force.cancelled() => return,
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// One request: the peer address for the handlers, the body under its deadline, the
/// response body holding the connection's "in progress" mark until it has been written.
async fn handle(
    app: Router,
    req: Request<Incoming>,
    peer: SocketAddr,
    mut in_flight: InFlight,
    body_timeout: Duration,
) -> Result<Response<Body>, Infallible> {
    let timed_out = Arc::new(AtomicBool::new(false));
    let (mut parts, body) = req.into_parts();
    parts.extensions.insert(ConnectInfo(peer));
    let body = Body::new(DeadlineBody {
        inner: body,
        deadline: Box::pin(tokio::time::sleep(body_timeout)),
        timeout: body_timeout,
        timed_out: timed_out.clone(),
        finished: false,
    });
    let response = match app.oneshot(Request::from_parts(parts, body)).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    in_flight.responding();
    let response = if timed_out.load(Ordering::Acquire) {
        body_timeout_response(body_timeout)
    } else {
        response
    };
    let (parts, body) = response.into_parts();
    Ok(Response::from_parts(
        parts,
        Body::new(InFlightBody {
            inner: body,
            _in_flight: in_flight,
        }),
    ))
}

/// 408, with the API's error shape; the connection closes after it.
fn body_timeout_response(timeout: Duration) -> Response<Body> {
    let body = serde_json::json!({
        "error": "request_timeout",
        "message": format!(
            "the request body did not arrive in full within {} s",
            timeout.as_secs()
        ),
    });
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = StatusCode::REQUEST_TIMEOUT;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    response
}

/// What the watchdog knows of a connection.
struct Activity {
    state: Mutex<ActivityState>,
    /// Woken when a request starts or ends, and on the first byte after one ended.
    changed: Notify,
}

struct ActivityState {
    in_flight: usize,
    /// Requests in progress whose handler has answered: their response is being written.
    responding: usize,
    /// When the connection last wrote a byte, or a response became ready to write.
    last_write: Instant,
    /// Since when the socket has refused more bytes (the client does not read), if it does.
    write_blocked_since: Option<Instant>,
    /// Whether a request has started on this connection.
    served: bool,
    /// When the connection opened, or its last request ended.
    idle_since: Instant,
    /// The first byte read since then, once a request has been served.
    first_byte: Option<Instant>,
}

impl Activity {
    fn new() -> Self {
        Self {
            state: Mutex::new(ActivityState {
                in_flight: 0,
                responding: 0,
                last_write: Instant::now(),
                write_blocked_since: None,
                served: false,
                idle_since: Instant::now(),
                first_byte: None,
            }),
            changed: Notify::new(),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut ActivityState) -> T) -> T {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut state)
    }

    /// When the connection is to be closed, if nothing changes; none while requests are in
    /// progress and their answers, if any, are being written.
    fn deadline(&self, limits: &EdgeLimits) -> Option<Instant> {
        self.with(|s| {
            // The client does not read: the socket takes no more bytes (hyper may have
            // buffered a whole response and released it), or an answer is ready and nothing
            // has been written (HTTP/2 flow control the client does not open).
            let blocked = s
                .write_blocked_since
                .map(|since| since + limits.send_timeout);
            let stalled = (s.responding > 0).then(|| s.last_write + limits.send_timeout);
            let waiting = if s.in_flight > 0 {
                None
            } else if !s.served {
                Some(s.idle_since + limits.header_read_timeout)
            } else if let Some(first) = s.first_byte {
                Some(first + limits.header_read_timeout)
            } else {
                Some(s.idle_since + limits.keep_alive_timeout)
            };
            [blocked, stalled, waiting].into_iter().flatten().min()
        })
    }

    fn write_outcome(&self, written: &Poll<io::Result<usize>>) {
        match written {
            Poll::Ready(Ok(n)) if *n > 0 => self.with(|s| {
                s.last_write = Instant::now();
                s.write_blocked_since = None;
            }),
            Poll::Pending => {
                let first = self.with(|s| {
                    let first = s.write_blocked_since.is_none();
                    if first {
                        s.write_blocked_since = Some(Instant::now());
                    }
                    first
                });
                if first {
                    self.changed.notify_one();
                }
            }
            Poll::Ready(_) => {}
        }
    }

    fn bytes_read(&self) {
        let first = self.with(|s| {
            let first = s.in_flight == 0 && s.served && s.first_byte.is_none();
            if first {
                s.first_byte = Some(Instant::now());
            }
            first
        });
        if first {
            self.changed.notify_one();
        }
    }
}

/// A request in progress on its connection, from its head until its response is written
/// (or abandoned).
struct InFlight {
    activity: Arc<Activity>,
    responding: bool,
}

impl InFlight {
    fn start(activity: Arc<Activity>) -> Self {
        activity.with(|s| {
            s.in_flight += 1;
            s.served = true;
            s.first_byte = None;
        });
        activity.changed.notify_one();
        Self {
            activity,
            responding: false,
        }
    }

    /// The handler has answered: from now on the response is to be written.
    fn responding(&mut self) {
        if !self.responding {
            self.responding = true;
            self.activity.with(|s| {
                if s.responding == 0 {
                    s.last_write = Instant::now();
                }
                s.responding += 1;
            });
            self.activity.changed.notify_one();
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let responding = self.responding;
        self.activity.with(|s| {
            if responding {
                s.responding = s.responding.saturating_sub(1);
            }
            s.in_flight = s.in_flight.saturating_sub(1);
            if s.in_flight == 0 {
                s.idle_since = Instant::now();
                s.first_byte = None;
            }
        });
        self.activity.changed.notify_one();
    }
}

/// The connection's stream, telling the watchdog when bytes arrive.
struct Watched<I> {
    inner: I,
    activity: Arc<Activity>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_read();
        }
        result
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.activity.write_outcome(&written);
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.activity.write_outcome(&written);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A request body that fails once its deadline passes before it has arrived in full.
struct DeadlineBody {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
    timeout: Duration,
    timed_out: Arc<AtomicBool>,
    finished: bool,
}

/// The request body did not arrive in time.
#[derive(Debug)]
struct BodyTimeout(Duration);

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the request body did not arrive in full within {} s",
            self.0.as_secs()
        )
    }
}

impl std::error::Error for BodyTimeout {}

impl hyper::body::Body for DeadlineBody {
    type Data = hyper::body::Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        if self.finished || self.inner.is_end_stream() {
            return Poll::Ready(None);
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.timed_out.store(true, Ordering::Release);
            return Poll::Ready(Some(Err(Box::new(BodyTimeout(self.timeout)))));
        }
        let frame = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(frame, Poll::Ready(None)) {
            self.finished = true;
        }
        frame.map_err(|e| Box::new(e) as BoxError)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that keeps its request "in progress" until hyper is done with it.
struct InFlightBody {
    inner: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for InFlightBody {
    type Data = hyper::body::Bytes;
    type Error = axum::Error;

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
