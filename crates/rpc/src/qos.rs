//! The QoS port: Dubbo's operations port, to ask a running process what it
//! serves, take its providers out of traffic before a deploy, and probe it
//! from Kubernetes.
//!
//! One TCP port (Dubbo's default [`DEFAULT_QOS_PORT`], 22222) answers two
//! forms of the same commands, told apart by a connection's first bytes as
//! Dubbo does: an HTTP request (`curl http://127.0.0.1:22222/ls`: one
//! command per request, path `/<command>`, its arguments as the query's
//! values or one more path segment, the connection closed after the answer)
//! or plain text lines (`nc`/`telnet`: `ls` and Enter; the answer, then the
//! prompt `dubbo>`; `quit` ends). A client that sends nothing for half a
//! second is taken for a telnet user and greeted with the prompt.
//!
//! | command | answer |
//! |---|---|
//! | `ls` | services provided (`PUB`: registered now) and consumed (`NUM`: providers known), as Dubbo's tables |
//! | `offline [pattern]`, `online [pattern]` | unregister / register again this process's providers (all, or the services matching the pattern) while it keeps serving: `OK`, or `service not found` |
//! | `live`, `ready`, `startup` | `true` or `false` (HTTP 200 or 503): alive; registered and not stopping; started and not stopping |
//! | `metrics` (also `/metrics`) | the Prometheus text of the metrics hook, or `metrics are not enabled` |
//! | `invoke svc.method(json args)` | a generic call through the invoke hook; without one, of a service this process provides (to its own `rpc`/`tri` port) |
//! | `help` | the commands |
//!
//! HTTP statuses follow Dubbo: 200, 503 (a probe says false), 403 (refused
//! caller), 404 (no such command), 500 (the command failed).
//!
//! **Who may ask.** The probes answer anyone (Kubernetes probes from the
//! node). Every other command answers only local callers, unless
//! [`QosBuilder::accept_foreign_ip`] is set or the caller's address is in
//! [`QosBuilder::accept_foreign_ip_whitelist`]: a caller is local when its
//! address is a loopback address (any `127.x`, `::1`, IPv4-mapped or not)
//! or the very address it reached this port on (a process of this host
//! connecting to one of the host's own addresses; the kernel picks that
//! address as the source). Dubbo checks loopback and the wildcard address.
//!
//! **Bad input.** Each connection lives at most an idle timeout without
//! input (default 60 s; HTTP headers must arrive within it too), a text
//! line or an HTTP head is at most 16 KiB, a text line must be UTF-8:
//! anything else gets an error answer and the connection is closed. At
//! most [`MAX_CONNECTIONS`] connections are served at once; more are closed
//! on accept. No input makes the server panic or stop.
//!
//! **Starting.** The server is off unless started; a port that cannot be
//! bound (already taken) is logged as a warning and the server runs
//! without a port ([`QosServer::local_addr`] is `None`), never failing the
//! process, as in Dubbo.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use rpc_core::BoxFuture;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::provider::Registration;
use crate::{Consumer, Error, RunningProvider};

/// Dubbo's default QoS port.
pub const DEFAULT_QOS_PORT: u16 = 22222;
/// Most connections served at once; more are closed as they are accepted.
pub const MAX_CONNECTIONS: usize = 64;
/// Longest text line or HTTP request head, in bytes.
pub const MAX_LINE: usize = 16 * 1024;
/// The telnet prompt, Dubbo's.
pub const PROMPT: &str = "dubbo>";
/// How long a new connection may stay silent before it is taken for a
/// telnet user and greeted with the prompt.
const GREETING_DELAY: Duration = Duration::from_millis(500);
/// Default of [`QosBuilder::idle_timeout`].
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest a command may run (a registry that does not answer, a generic
/// call that hangs) before its caller is told it timed out.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest HTTP request body read (POST form arguments).
const MAX_BODY: usize = 64 * 1024;

/// The metrics hook: renders the Prometheus text exposition of the process.
pub type MetricsHook = Arc<dyn Fn() -> String + Send + Sync>;
/// The invoke hook: a generic call of `service`, `method` with the
/// arguments as a JSON array; the JSON result, or an error message.
pub type InvokeHook = Arc<dyn Fn(String, String, String) -> BoxFuture<Result<String, String>> + Send + Sync>;

/// Entry point: `Qos::builder()`.
#[derive(Debug)]
pub struct Qos;

impl Qos {
    /// A builder: port 22222, all interfaces, foreign callers refused.
    pub fn builder() -> QosBuilder {
        QosBuilder {
            port: DEFAULT_QOS_PORT,
            bind_host: "0.0.0.0".into(),
            accept_foreign_ip: false,
            whitelist: Vec::new(),
            providers: Vec::new(),
            consumers: Vec::new(),
            metrics: None,
            invoke: None,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// Configures and starts a [`QosServer`].
pub struct QosBuilder {
    port: u16,
    bind_host: String,
    accept_foreign_ip: bool,
    whitelist: Vec<String>,
    providers: Vec<Arc<Registration>>,
    consumers: Vec<Consumer>,
    metrics: Option<MetricsHook>,
    invoke: Option<InvokeHook>,
    idle_timeout: Duration,
}

impl std::fmt::Debug for QosBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QosBuilder")
            .field("port", &self.port)
            .field("bind_host", &self.bind_host)
            .field("accept_foreign_ip", &self.accept_foreign_ip)
            .field("whitelist", &self.whitelist)
            .finish_non_exhaustive()
    }
}

impl QosBuilder {
    /// The port (default 22222; 0 picks a free one).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// The address to listen on (default `0.0.0.0`, every IPv4 interface,
    /// as Dubbo; `::` for IPv6 too where the system maps IPv4 onto it).
    pub fn bind_host(mut self, host: impl Into<String>) -> Self {
        self.bind_host = host.into();
        self
    }

    /// Answers every command to callers from any address (default `false`:
    /// only the probes answer foreign callers). Dubbo's `qos.accept.foreign.ip`.
    pub fn accept_foreign_ip(mut self, accept: bool) -> Self {
        self.accept_foreign_ip = accept;
        self
    }

    /// Foreign addresses answered as local ones: IP addresses or CIDR
    /// blocks (`10.0.0.5`, `192.168.0.0/16`, `fd00::/8`). Dubbo's
    /// `qos.accept.foreign.ip.whitelist`; an entry that parses as neither
    /// fails [`start`](Self::start).
    pub fn accept_foreign_ip_whitelist<I, S>(mut self, entries: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.whitelist.extend(entries.into_iter().map(Into::into));
        self
    }

    /// Lists, takes offline and online, and probes `provider` (repeatable).
    pub fn provider(mut self, provider: &RunningProvider) -> Self {
        self.providers.push(provider.registration());
        self
    }

    /// Lists the references of `consumer` (repeatable).
    pub fn consumer(mut self, consumer: &Consumer) -> Self {
        self.consumers.push(consumer.clone());
        self
    }

    /// Answers `metrics` and `/metrics` with what `render` returns (the
    /// Prometheus text format).
    pub fn metrics(mut self, render: impl Fn() -> String + Send + Sync + 'static) -> Self {
        self.metrics = Some(Arc::new(render));
        self
    }

    /// Answers `invoke` through `invoke(service, method, json_args)`.
    pub fn invoke(
        mut self,
        invoke: impl Fn(String, String, String) -> BoxFuture<Result<String, String>> + Send + Sync + 'static,
    ) -> Self {
        self.invoke = Some(Arc::new(invoke));
        self
    }

    /// How long a connection may stay without input before it is closed
    /// (default 60 s).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Starts serving. Fails only on an invalid whitelist entry; a port that
    /// cannot be bound is a warning (see [`QosServer::local_addr`]).
    pub async fn start(self) -> Result<QosServer, Error> {
        let whitelist = self
            .whitelist
            .iter()
            .map(|entry| {
                Cidr::parse(entry).ok_or_else(|| {
                    Error::Config(format!(
                        "QoS whitelist entry `{entry}` is neither an IP address nor a CIDR block"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let commands = Arc::new(Commands {
            access: Access {
                accept_foreign_ip: self.accept_foreign_ip,
                whitelist,
            },
            providers: self.providers,
            consumers: self.consumers,
            metrics: self.metrics,
            invoke: self.invoke,
        });
        let address = if self.bind_host.contains(':') {
            format!("[{}]:{}", self.bind_host, self.port)
        } else {
            format!("{}:{}", self.bind_host, self.port)
        };
        let listener = match TcpListener::bind(address.as_str()).await {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(%address, error = %e, "cannot listen for QoS commands; running without the QoS port");
                return Ok(QosServer {
                    local_addr: None,
                    task: None,
                });
            }
        };
        let local_addr = listener.local_addr().ok();
        tracing::info!(%address, "QoS port listening");
        let task = tokio::spawn(accept(listener, commands, self.idle_timeout));
        Ok(QosServer {
            local_addr,
            task: Some(task),
        })
    }
}

/// A running QoS server; stops when shut down or dropped.
#[derive(Debug)]
pub struct QosServer {
    local_addr: Option<SocketAddr>,
    task: Option<JoinHandle<()>>,
}

impl QosServer {
    /// Where it listens; `None` when the port could not be bound.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Stops listening and closes every QoS connection.
    pub fn shutdown(&self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl Drop for QosServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Accepts connections until aborted; the connections' tasks live in a set
/// dropped (aborted) with this one.
async fn accept(listener: TcpListener, commands: Arc<Commands>, idle: Duration) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of descriptors and the like: wait, do not spin.
                        tracing::warn!(error = %e, "QoS accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, "too many QoS connections; closing this one");
                    continue;
                };
                let commands = commands.clone();
                connections.spawn(async move {
                    serve(stream, peer, commands, idle).await;
                    drop(permit);
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Serves one connection: HTTP if it starts like an HTTP request, else text.
async fn serve(stream: TcpStream, peer: SocketAddr, commands: Arc<Commands>, idle: Duration) {
    let local = match stream.local_addr() {
        Ok(local) => local,
        Err(_) => return,
    };
    let caller = Caller { peer, local };
    match sniff(&stream).await {
        Sniffed::Http => serve_http(stream, caller, commands, idle).await,
        Sniffed::Text => serve_text(stream, caller, commands, idle, false).await,
        Sniffed::Silent => serve_text(stream, caller, commands, idle, true).await,
        Sniffed::Closed => {}
    }
}

enum Sniffed {
    Http,
    Text,
    Silent,
    Closed,
}

const HTTP_METHODS: [&[u8]; 8] = [
    b"GET ",
    b"POST ",
    b"HEAD ",
    b"PUT ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"TRACE ",
];

/// Looks at the first bytes without consuming them, for at most the
/// greeting delay.
async fn sniff(stream: &TcpStream) -> Sniffed {
    let deadline = tokio::time::Instant::now() + GREETING_DELAY;
    let mut buf = [0u8; 8];
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Err(_) => return Sniffed::Silent,
            Ok(Err(_)) | Ok(Ok(0)) => return Sniffed::Closed,
            Ok(Ok(n)) => n,
        };
        let seen = &buf[..n];
        if HTTP_METHODS.iter().any(|m| seen.starts_with(m)) {
            return Sniffed::Http;
        }
        let undecided = HTTP_METHODS.iter().any(|m| m.starts_with(seen));
        if !undecided || tokio::time::Instant::now() >= deadline {
            return Sniffed::Text;
        }
        // A prefix of a method: wait for more bytes (peek returns at once
        // while any are buffered).
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The text form: one command per line, each answer followed by the prompt.
async fn serve_text(stream: TcpStream, caller: Caller, commands: Arc<Commands>, idle: Duration, greet: bool) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let greeting = format!("Welcome to the rpc QoS port. Type `help`.\r\n{PROMPT}");
    if greet && !send(&mut write, &greeting, idle).await {
        return;
    }
    let mut line = Vec::new();
    loop {
        line.clear();
        let mut limited = (&mut reader).take(MAX_LINE as u64 + 1);
        let read = tokio::time::timeout(idle, limited.read_until(b'\n', &mut line)).await;
        let (answer, close) = match read {
            Err(_) => ("\r\nidle timeout: closing\r\n".to_string(), true),
            Ok(Err(_)) | Ok(Ok(0)) => return,
            Ok(Ok(_)) if line.len() > MAX_LINE => (
                format!("error: a command line is at most {MAX_LINE} bytes; closing\r\n"),
                true,
            ),
            Ok(Ok(_)) => match std::str::from_utf8(&line) {
                Err(_) => ("error: a command is UTF-8 text; closing\r\n".to_string(), true),
                Ok(text) => text_answer(text.trim(), caller, &commands).await,
            },
        };
        if !send(&mut write, &answer, idle).await || close {
            return;
        }
    }
}

/// The answer to one text line, and whether to close after it.
async fn text_answer(text: &str, caller: Caller, commands: &Commands) -> (String, bool) {
    if text.is_empty() {
        return (PROMPT.to_string(), false);
    }
    let (name, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    if matches!(name, "quit" | "exit") {
        return ("BYE!\r\n".to_string(), true);
    }
    let answer = commands.execute(caller, name, &arguments(name, rest)).await;
    let body = match answer.status {
        404 => format!("{text} :no such command (try `help`)"),
        403 => format!("{text} :{}", answer.body),
        _ => answer.body,
    };
    (format!("{}\r\n{PROMPT}", body.trim_end()), false)
}

/// Writes `text` within `idle` (a client that does not read is dropped).
async fn send(write: &mut tokio::net::tcp::OwnedWriteHalf, text: &str, idle: Duration) -> bool {
    matches!(
        tokio::time::timeout(idle, write.write_all(text.as_bytes())).await,
        Ok(Ok(()))
    )
}

/// A text command's arguments: `invoke` takes the rest of the line whole
/// (its JSON may hold spaces), the others are split on whitespace.
fn arguments(name: &str, rest: &str) -> Vec<String> {
    let rest = rest.trim();
    if rest.is_empty() {
        Vec::new()
    } else if name == "invoke" {
        vec![rest.to_string()]
    } else {
        rest.split_whitespace().map(str::to_string).collect()
    }
}

/// The HTTP form: one request, one answer, then the connection closes.
async fn serve_http(stream: TcpStream, caller: Caller, commands: Arc<Commands>, idle: Duration) {
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let commands = commands.clone();
        async move { Ok::<_, std::convert::Infallible>(http_answer(request, caller, &commands).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .keep_alive(false)
        .max_buf_size(MAX_LINE)
        .timer(TokioTimer::new())
        .header_read_timeout(idle)
        .serve_connection(TokioIo::new(stream), service);
    // The whole exchange is bounded too: a client reading the answer slowly.
    match tokio::time::timeout(idle, connection).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(peer = %caller.peer, error = %e, "QoS HTTP connection failed"),
        Err(_) => tracing::debug!(peer = %caller.peer, "QoS HTTP connection timed out"),
    }
}

async fn http_answer(
    request: hyper::Request<Incoming>,
    caller: Caller,
    commands: &Commands,
) -> hyper::Response<Full<Bytes>> {
    let path = request.uri().path().to_string();
    let query = request.uri().query().map(str::to_string);
    let post = request.method() == hyper::Method::POST;
    let get = request.method() == hyper::Method::GET || request.method() == hyper::Method::HEAD;
    let segments: Vec<String> = path.split('/').skip(1).map(percent_decode).collect();
    let mut args: Vec<String> = Vec::new();
    let name = match segments.as_slice() {
        [name] if get || post => name.clone(),
        [name, arg] if get => {
            args.push(arg.clone());
            name.clone()
        }
        _ => return response(404, "text/plain; charset=utf-8", format!("no QoS command at {path}")),
    };
    if let Some(query) = query {
        args.extend(form_values(&query));
    }
    if post {
        match Limited::new(request.into_body(), MAX_BODY).collect().await {
            Ok(body) => {
                let body = body.to_bytes();
                match std::str::from_utf8(&body) {
                    Ok(text) => args.extend(form_values(text)),
                    Err(_) => return response(400, "text/plain; charset=utf-8", "the form is not UTF-8".into()),
                }
            }
            Err(e) => return response(400, "text/plain; charset=utf-8", format!("cannot read the body: {e}")),
        }
    }
    let answer = commands.execute(caller, &name, &args).await;
    let content_type = if name == "metrics" && answer.status == 200 {
        "text/plain; version=0.0.4; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    response(answer.status, content_type, answer.body)
}

fn response(status: u16, content_type: &'static str, body: String) -> hyper::Response<Full<Bytes>> {
    let mut response = hyper::Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(value) = hyper::header::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

/// The values of an `a=1&b=2` form, in order (Dubbo passes the values as
/// the command's arguments; a bare `x` is the value `x`).
fn form_values(form: &str) -> Vec<String> {
    form.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let value = pair.split_once('=').map_or(pair, |(_, value)| value);
            percent_decode(&value.replace('+', " "))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// Who sent a command: the peer's address and the address it reached.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Caller {
    pub(crate) peer: SocketAddr,
    pub(crate) local: SocketAddr,
}

/// A command's answer: HTTP status (the text form shows only the body).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: String,
}

impl Answer {
    fn ok(body: impl Into<String>) -> Self {
        Answer {
            status: 200,
            body: body.into(),
        }
    }

    fn probe(value: bool) -> Self {
        Answer {
            status: if value { 200 } else { 503 },
            body: value.to_string(),
        }
    }

    fn status(status: u16, body: impl Into<String>) -> Self {
        Answer {
            status,
            body: body.into(),
        }
    }
}

/// Which callers may run the commands other than the probes.
#[derive(Debug)]
struct Access {
    accept_foreign_ip: bool,
    whitelist: Vec<Cidr>,
}

impl Access {
    fn permits(&self, caller: Caller) -> bool {
        let peer = caller.peer.ip().to_canonical();
        self.accept_foreign_ip
            || peer.is_loopback()
            || peer == caller.local.ip().to_canonical()
            || self.whitelist.iter().any(|cidr| cidr.contains(peer))
    }
}

/// An IP address block: an address and how many leading bits must match.
#[derive(Debug, Clone, Copy)]
struct Cidr {
    network: IpAddr,
    bits: u32,
}

impl Cidr {
    fn parse(text: &str) -> Option<Cidr> {
        let text = text.trim();
        let (address, bits) = match text.split_once('/') {
            Some((address, bits)) => (address, Some(bits.parse::<u32>().ok()?)),
            None => (text, None),
        };
        let network: IpAddr = address.parse().ok()?;
        let network = network.to_canonical();
        let max = if network.is_ipv4() { 32 } else { 128 };
        let bits = bits.unwrap_or(max);
        (bits <= max).then_some(Cidr { network, bits })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let mask = |bits: u32, width: u32| -> u128 { if bits == 0 { 0 } else { u128::MAX << (width - bits) } };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let m = mask(self.bits, 32) as u32 as u128;
                (u128::from(u32::from(net)) & m) == (u128::from(u32::from(ip)) & m)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let m = mask(self.bits, 128);
                (u128::from(net) & m) == (u128::from(ip) & m)
            }
            _ => false,
        }
    }
}

/// The commands, over what the server was given.
pub(crate) struct Commands {
    access: Access,
    providers: Vec<Arc<Registration>>,
    consumers: Vec<Consumer>,
    metrics: Option<MetricsHook>,
    invoke: Option<InvokeHook>,
}

const HELP: [(&str, &str); 9] = [
    ("help", "list the commands"),
    (
        "ls",
        "services provided (PUB: registered) and consumed (NUM: providers known)",
    ),
    (
        "online",
        "register this process's providers again: online [service pattern]",
    ),
    (
        "offline",
        "unregister this process's providers, serving on: offline [service pattern]",
    ),
    (
        "ready",
        "true when the providers are registered and not stopping (HTTP 503 when false)",
    ),
    ("live", "true while the process answers"),
    ("startup", "true once started, until stopping (HTTP 503 when false)"),
    (
        "metrics",
        "the Prometheus text of the process's metrics (also /metrics)",
    ),
    (
        "invoke",
        "a generic call: invoke org.example.Greeter.sayHello(\"world\")",
    ),
];

impl Commands {
    /// Runs command `name` for `caller`, within [`COMMAND_TIMEOUT`].
    pub(crate) async fn execute(&self, caller: Caller, name: &str, args: &[String]) -> Answer {
        match tokio::time::timeout(COMMAND_TIMEOUT, self.run(caller, name, args)).await {
            Ok(answer) => answer,
            Err(_) => Answer::status(
                500,
                format!(
                    "`{name}` did not finish within {} s; it may have taken effect in part (see `ls`)",
                    COMMAND_TIMEOUT.as_secs()
                ),
            ),
        }
    }

    async fn run(&self, caller: Caller, name: &str, args: &[String]) -> Answer {
        let probe = matches!(name, "live" | "ready" | "startup");
        let known = HELP.iter().any(|(command, _)| *command == name);
        if !known {
            return Answer::status(404, format!("no such command `{name}` (try `help`)"));
        }
        if !probe && !self.access.permits(caller) {
            tracing::warn!(peer = %caller.peer, command = name, "QoS command refused to a foreign address");
            return Answer::status(
                403,
                format!(
                    "permission denied: `{name}` answers only local callers ({} is foreign); \
                     set accept_foreign_ip or a whitelist to allow it",
                    caller.peer.ip()
                ),
            );
        }
        let pattern = args.first().map_or("*", String::as_str);
        match name {
            "help" => Answer::ok(table(
                &["Command", "Summary"],
                HELP.iter().map(|(c, s)| vec![c.to_string(), s.to_string()]),
            )),
            "ls" => Answer::ok(self.ls()),
            "online" | "offline" => self.online(pattern, name == "online").await,
            "live" => Answer::probe(true),
            "ready" => Answer::probe(self.providers.iter().all(|p| p.ready())),
            "startup" => Answer::probe(self.providers.iter().all(|p| p.started())),
            "metrics" => match &self.metrics {
                Some(render) => Answer::ok(render()),
                None => Answer::ok("metrics are not enabled"),
            },
            _ => self.invoke(args).await,
        }
    }

    fn ls(&self) -> String {
        let provided = self
            .providers
            .iter()
            .flat_map(|p| p.services())
            .map(|(key, registered)| vec![key.to_string(), if registered { "Y" } else { "N" }.to_string()]);
        let consumed = self
            .consumers
            .iter()
            .flat_map(Consumer::references)
            .map(|r| vec![r.service.to_string(), r.providers.to_string()]);
        format!(
            "As Provider side:\r\n{}As Consumer side:\r\n{}",
            table(&["Provider Service Name", "PUB"], provided),
            table(&["Consumer Service Name", "NUM"], consumed)
        )
    }

    async fn online(&self, pattern: &str, online: bool) -> Answer {
        let mut matched = 0;
        let mut errors = Vec::new();
        for provider in &self.providers {
            match provider.set_online(pattern, online).await {
                Ok(n) => matched += n,
                Err(e) => errors.push(e.to_string()),
            }
        }
        if !errors.is_empty() {
            let action = if online { "online" } else { "offline" };
            return Answer::status(500, format!("{action} `{pattern}` failed: {}", errors.join("; ")));
        }
        if matched == 0 {
            return Answer::ok("service not found");
        }
        Answer::ok("OK")
    }

    async fn invoke(&self, args: &[String]) -> Answer {
        let text = args.join(" ");
        let Some((service, method, json)) = parse_invoke(&text) else {
            return Answer::status(
                500,
                format!("cannot read `{text}`: write invoke org.example.Greeter.sayHello(\"world\")"),
            );
        };
        let answered = match &self.invoke {
            Some(invoke) => invoke(service, method, json).await,
            None => self.invoke_own(&service, &method, &json).await,
        };
        match answered {
            Ok(result) => Answer::ok(result),
            Err(e) => Answer::status(500, e),
        }
    }

    /// `invoke` without a hook: a generic call of a service this process
    /// provides, as Dubbo's `invoke` command does, sent to the provider's
    /// own `rpc` or `tri` port (with its token, if it has one). Never retried.
    async fn invoke_own(&self, service: &str, method: &str, json: &str) -> Result<String, String> {
        let args: Vec<serde_json::Value> = match serde_json::from_str(json) {
            Ok(serde_json::Value::Array(args)) => args,
            Ok(_) => {
                return Err(format!(
                    "the arguments of `{method}` must be JSON values separated by commas"
                ));
            }
            Err(e) => return Err(format!("the arguments of `{method}` are not JSON: {e}")),
        };
        let url = self
            .providers
            .iter()
            .flat_map(|p| p.urls().iter())
            .find(|u| u.interface() == Some(service) && matches!(u.protocol(), "rpc" | "tri"))
            .cloned();
        let Some(url) = url else {
            let served: Vec<String> = self
                .providers
                .iter()
                .flat_map(|p| p.services())
                .map(|(k, _)| k.to_string())
                .collect();
            return Err(if served.is_empty() {
                "invoke is not available: this process provides no service".to_string()
            } else {
                format!(
                    "this process does not provide `{service}` over rpc or tri (it provides: {})",
                    served.join(", ")
                )
            });
        };
        let mut direct = format!("{}://{}", url.protocol(), url.address());
        if let Some(token) = url.param(rpc_cluster::TOKEN) {
            direct.push_str(&format!("?{}={token}", rpc_cluster::TOKEN));
        }
        let consumer = crate::Consumer::builder()
            .application("qos-invoke")
            .registry(direct)
            .build()
            .await
            .map_err(|e| e.to_string())?;
        let mut generic = consumer.generic(service).retries(0).protocol(Some(url.protocol()));
        if let Some(version) = url.param("version") {
            generic = generic.version(version);
        }
        if let Some(group) = url.param("group") {
            generic = generic.group(group);
        }
        let client = generic.build().await.map_err(|e| e.to_string())?;
        match client.call(method, args).await {
            Ok(value) => Ok(value.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// `a.b.Service.method(args)` → (`a.b.Service`, `method`, `[args]`).
fn parse_invoke(text: &str) -> Option<(String, String, String)> {
    let text = text.trim();
    let open = text.find('(')?;
    let inner = text[open + 1..].strip_suffix(')')?;
    let (service, method) = text[..open].trim().rsplit_once('.')?;
    if service.is_empty() || method.is_empty() {
        return None;
    }
    Some((service.to_string(), method.to_string(), format!("[{inner}]")))
}

/// Dubbo's table shape: every cell centred, a border line around every row.
fn table(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let mut all: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    all.extend(rows);
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            all.iter()
                .map(|row| row.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let border: String = widths.iter().fold(String::from("+"), |mut line, w| {
        line.push_str(&"-".repeat(*w));
        line.push('+');
        line
    });
    let mut out = String::new();
    let _ = write!(out, "{border}\r\n");
    for row in &all {
        out.push('|');
        for (c, width) in widths.iter().enumerate() {
            let cell = row.get(c).map_or("", String::as_str);
            let pad = width - cell.chars().count();
            let _ = write!(out, "{}{cell}{}|", " ".repeat(pad / 2), " ".repeat(pad - pad / 2));
        }
        let _ = write!(out, "\r\n{border}\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commands(accept_foreign_ip: bool, whitelist: &[&str]) -> Commands {
        Commands {
            access: Access {
                accept_foreign_ip,
                whitelist: whitelist.iter().filter_map(|e| Cidr::parse(e)).collect(),
            },
            providers: Vec::new(),
            consumers: Vec::new(),
            metrics: Some(Arc::new(|| "dubbo_provider_requests_total 1\n".to_string())),
            invoke: None,
        }
    }

    fn caller(peer: &str, local: &str) -> Caller {
        Caller {
            peer: peer.parse().unwrap(),
            local: local.parse().unwrap(),
        }
    }

    #[tokio::test]
    async fn a_foreign_caller_gets_the_probes_only() {
        let qos = commands(false, &[]);
        let foreign = caller("10.1.2.3:40000", "10.1.2.1:22222");
        for probe in ["live", "ready", "startup"] {
            assert_eq!(qos.execute(foreign, probe, &[]).await, Answer::probe(true), "{probe}");
        }
        for command in ["ls", "offline", "online", "metrics", "help", "invoke"] {
            let answer = qos.execute(foreign, command, &[]).await;
            assert_eq!(answer.status, 403, "{command}: {answer:?}");
            assert!(answer.body.contains("10.1.2.3"), "{answer:?}");
        }
    }

    #[tokio::test]
    async fn local_callers_are_loopback_or_the_address_they_reached() {
        let qos = commands(false, &[]);
        for (peer, local) in [
            ("127.0.0.1:1", "127.0.0.1:22222"),
            ("127.5.6.7:1", "0.0.0.0:22222"),
            ("[::1]:1", "[::1]:22222"),
            ("[::ffff:127.0.0.1]:1", "[::]:22222"),
            ("10.1.2.1:1", "10.1.2.1:22222"),
            ("[::ffff:10.1.2.1]:1", "[::ffff:10.1.2.1]:22222"),
        ] {
            let answer = qos.execute(caller(peer, local), "metrics", &[]).await;
            assert_eq!(answer.status, 200, "{peer} -> {local}: {answer:?}");
        }
        let answer = qos
            .execute(caller("10.1.2.9:1", "10.1.2.1:22222"), "metrics", &[])
            .await;
        assert_eq!(answer.status, 403);
    }

    #[tokio::test]
    async fn accept_foreign_ip_and_the_whitelist_let_foreign_callers_in() {
        let foreign = caller("192.168.7.7:1", "10.0.0.1:22222");
        assert_eq!(commands(true, &[]).execute(foreign, "ls", &[]).await.status, 200);
        let listed = commands(false, &["10.9.9.9", "192.168.0.0/16"]);
        assert_eq!(listed.execute(foreign, "ls", &[]).await.status, 200);
        let other = caller("192.169.0.1:1", "10.0.0.1:22222");
        assert_eq!(listed.execute(other, "ls", &[]).await.status, 403);
    }

    #[tokio::test]
    async fn unknown_commands_and_missing_hooks_answer_clearly() {
        let qos = commands(false, &[]);
        let local = caller("127.0.0.1:1", "127.0.0.1:22222");
        assert_eq!(qos.execute(local, "rm", &[]).await.status, 404);
        let invoke = qos.execute(local, "invoke", &["a.B.c(1)".into()]).await;
        assert_eq!(invoke.status, 500);
        assert!(invoke.body.contains("not available"), "{invoke:?}");
        let mut without = commands(false, &[]);
        without.metrics = None;
        assert_eq!(
            without.execute(local, "metrics", &[]).await,
            Answer::ok("metrics are not enabled")
        );
    }

    #[test]
    fn cidr_blocks_and_invoke_lines_parse() {
        assert!(
            Cidr::parse("10.0.0.0/8")
                .unwrap()
                .contains("10.200.1.1".parse().unwrap())
        );
        assert!(!Cidr::parse("10.0.0.0/8").unwrap().contains("11.0.0.1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains("8.8.8.8".parse().unwrap()));
        assert!(Cidr::parse("fd00::/8").unwrap().contains("fd12::1".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("localhost").is_none());
        assert_eq!(
            parse_invoke("org.example.Greeter.sayHello(\"a b\", 2)"),
            Some(("org.example.Greeter".into(), "sayHello".into(), "[\"a b\", 2]".into()))
        );
        assert_eq!(parse_invoke("sayHello(1)"), None);
    }

    #[test]
    fn tables_have_dubbos_shape() {
        let text = table(
            &["Provider Service Name", "PUB"],
            [vec!["org.example.Greeter:1.0.0".to_string(), "Y".to_string()]].into_iter(),
        );
        assert_eq!(
            text,
            "+-------------------------+---+\r\n\
             |  Provider Service Name  |PUB|\r\n\
             +-------------------------+---+\r\n\
             |org.example.Greeter:1.0.0| Y |\r\n\
             +-------------------------+---+\r\n"
        );
    }
}
