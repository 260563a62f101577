//! `rpcctl`: operate an estate of rpc (and Apache Dubbo) services from the
//! shell, without writing Rust.
//!
//! * `rpcctl ls zookeeper://HOST:PORT[/chroot]`: the services registered in
//!   ZooKeeper (Dubbo's layout), each with its providers (address, protocol,
//!   version, group, weight, disabled, application) and consumers, as a
//!   table or, with `--json`, as one JSON document. Nodes that are not URLs
//!   are skipped with a warning on stderr naming the node; the rest is still
//!   listed.
//! * `rpcctl call TARGET INTERFACE METHOD 'JSON-ARGS'`: a generic call
//!   (`$invoke`, see `rpc::GenericClient`) through discovery (`TARGET` a
//!   registry, `zookeeper://...`) or to one provider (`rpc://`, `tri://` or
//!   `dubbo://HOST:PORT`); prints the JSON result on stdout, or the error with
//!   its kind on stderr. Not retried unless `--retries` says so: a generic
//!   call cannot know whether the method is idempotent.
//! * `rpcctl qos HOST:PORT COMMAND [ARGS...]`: sends a QoS command over HTTP
//!   (`GET /COMMAND?ARGS`, Dubbo's QoS form) and prints the answer.
//!
//! Exit status: 0 on success; 1 when the command failed (an error, a call's
//! error, a QoS answer other than 2xx); 2 for a usage error. Progress lines
//! and colour appear only when stderr is a terminal, so scripts and logs get
//! plain text.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use rpc::Url;
use rpc::registry::zookeeper::zookeeper_client as zk;
use serde::Serialize;
use serde_json::Value;

/// How long `ls` waits for each ZooKeeper step, and `qos` for the QoS port.
const NETWORK_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Parser)]
#[command(
    name = "rpcctl",
    version,
    about = "List registries, call services generically and send QoS commands"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Lists the services of a ZooKeeper registry with their providers and consumers.
    Ls(LsArgs),
    /// Calls a method of any service with JSON arguments (a generic call).
    Call(CallArgs),
    /// Sends a command to a process's QoS port over HTTP.
    Qos(QosArgs),
}

#[derive(Debug, Args)]
struct LsArgs {
    /// The registry: zookeeper://HOST:PORT[,HOST:PORT...][/chroot][?root=dubbo]
    registry: String,
    /// One JSON document on stdout instead of tables.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct CallArgs {
    /// A registry (zookeeper://HOST:PORT[/chroot]) or one provider (rpc://, tri://, dubbo://HOST:PORT).
    target: String,
    /// The service's interface, e.g. org.example.Greeter.
    interface: String,
    /// The method's wire name, e.g. sayHello.
    method: String,
    /// The arguments as a JSON array, e.g. '["world"]' or '[{"item":"tea","quantity":2}]'.
    #[arg(default_value = "[]")]
    args: String,
    /// Only providers of this version (default: any version, `*`).
    #[arg(long)]
    version: Option<String>,
    /// Only providers in this group (default: providers without a group).
    #[arg(long)]
    group: Option<String>,
    /// How long to wait for the answer: 500ms, 3s, 1m, or milliseconds.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    timeout: Duration,
    /// Extra attempts on other providers after a failure (default 0: the
    /// method may not be idempotent).
    #[arg(long, default_value_t = 0)]
    retries: u32,
    /// The application name this call is registered under.
    #[arg(long, default_value = "rpcctl")]
    application: String,
}

#[derive(Debug, Args)]
struct QosArgs {
    /// The QoS port's address, e.g. 127.0.0.1:22222.
    address: String,
    /// The command: ls, online, offline, ready, live, startup, metrics, help, ...
    command: String,
    /// The command's arguments, sent as the query string (joined with `&`).
    args: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = Out::new();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            out.error(&format!("cannot start the async runtime: {e}"), None);
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Ls(args) => ls(&out, args).await,
            Command::Call(args) => call(&out, args).await,
            Command::Qos(args) => qos(&out, args).await,
        }
    });
    // Registry sessions and connections end with the process.
    runtime.shutdown_timeout(Duration::from_millis(500));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if let Some(message) = failure.message {
                out.error(&message, failure.hint.as_deref());
            }
            ExitCode::FAILURE
        }
    }
}

/// Why a command failed: a message and what to do about it (none when
/// the command already said so).
#[derive(Debug)]
struct Failure {
    message: Option<String>,
    hint: Option<String>,
}

impl Failure {
    fn new(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Failure {
            message: Some(message.into()),
            hint: Some(hint.into()).filter(|h: &String| !h.is_empty()),
        }
    }

    /// The command has reported it already; exit 1.
    fn reported() -> Self {
        Failure {
            message: None,
            hint: None,
        }
    }
}

/// Writes to stderr: colour and progress only on a terminal.
#[derive(Debug, Clone, Copy)]
struct Out {
    terminal: bool,
}

impl Out {
    fn new() -> Self {
        Out {
            terminal: std::io::stderr().is_terminal(),
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.terminal {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn error(&self, message: &str, hint: Option<&str>) {
        eprintln!("{} {message}", self.paint("1;31", "error:"));
        if let Some(hint) = hint {
            eprintln!("{} {hint}", self.paint("1", "hint:"));
        }
    }

    fn warning(&self, message: &str) {
        eprintln!("{} {message}", self.paint("1;33", "warning:"));
    }

    fn progress(&self, message: &str) {
        if self.terminal {
            eprintln!("{}", self.paint("2", message));
        }
    }
}

/// `500ms`, `3s`, `1m` or a number of milliseconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, ""), |at| text.split_at(at));
    let value: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration: write 500ms, 3s, 1m or milliseconds"))?;
    match unit.trim() {
        "" | "ms" => Ok(Duration::from_millis(value)),
        "s" => Ok(Duration::from_secs(value)),
        "m" => Ok(Duration::from_secs(value.saturating_mul(60))),
        other => Err(format!("unknown unit `{other}` in `{text}`: use ms, s or m")),
    }
}

// ------------------------------------------------------------------- ls

/// One provider or consumer node, as `ls` shows it.
#[derive(Debug, Serialize)]
struct Node {
    address: String,
    protocol: String,
    version: Option<String>,
    group: Option<String>,
    weight: u32,
    disabled: bool,
    application: Option<String>,
    /// The whole URL the node names.
    url: String,
}

impl Node {
    fn of(url: &Url) -> Node {
        let param = |key: &str| url.param(key).filter(|v| !v.is_empty()).map(str::to_string);
        Node {
            // A consumer's URL names its host only (port 0).
            address: if url.port() == 0 {
                url.host().to_string()
            } else {
                url.address()
            },
            protocol: url.protocol().to_string(),
            version: url.version().map(str::to_string),
            group: url.group().map(str::to_string),
            // Dubbo's default weight.
            weight: url.param_parsed("weight").unwrap_or(100),
            disabled: url.param("disabled") == Some("true") || url.param("enabled") == Some("false"),
            application: param("application"),
            url: url.to_string(),
        }
    }
}

#[derive(Debug, Serialize)]
struct Service {
    interface: String,
    providers: Vec<Node>,
    consumers: Vec<Node>,
}

/// A node `ls` could not read, and why.
#[derive(Debug, Serialize)]
struct Skipped {
    node: String,
    reason: String,
}

#[derive(Debug, Serialize)]
struct Listing {
    registry: String,
    services: Vec<Service>,
    skipped: Vec<Skipped>,
}

async fn ls(out: &Out, args: LsArgs) -> Result<(), Failure> {
    let url = Url::parse(&args.registry).map_err(|e| {
        Failure::new(
            format!("`{}` is not a registry URL: {e}", args.registry),
            "write it as zookeeper://HOST:PORT, e.g. zookeeper://127.0.0.1:2181",
        )
    })?;
    if url.protocol() != "zookeeper" {
        return Err(Failure::new(
            format!("`rpcctl ls` reads ZooKeeper registries, not {}://", url.protocol()),
            "give zookeeper://HOST:PORT[/chroot]",
        ));
    }
    let servers: Vec<String> = url
        .addresses()
        .into_iter()
        .map(|address| {
            if address
                .rsplit_once(':')
                .is_some_and(|(_, port)| port.parse::<u16>().is_ok())
            {
                address
            } else {
                format!("{address}:2181")
            }
        })
        .collect();
    let servers = servers.join(",");
    let chroot = url.path().trim_matches('/').to_string();
    let root = format!("/{}", url.param("root").unwrap_or("dubbo").trim_matches('/'));
    out.progress(&format!("connecting to ZooKeeper at {servers} ..."));
    let unreachable = |why: String| {
        let first = servers.split(',').next().unwrap_or_default().replace(':', " ");
        Failure::new(
            format!("cannot reach ZooKeeper at {servers}: {why}"),
            format!("is it running, and is the address right? try `echo ruok | nc {first}`"),
        )
    };
    let connecting = zk::Client::connector()
        .with_connection_timeout(NETWORK_WAIT)
        .with_session_timeout(Duration::from_secs(30))
        .connect(&servers);
    let client = match tokio::time::timeout(NETWORK_WAIT, connecting).await {
        Ok(Ok(client)) => client,
        Ok(Err(e)) => return Err(unreachable(e.to_string())),
        Err(_) => return Err(unreachable(format!("no session after {NETWORK_WAIT:?}"))),
    };
    let client = if chroot.is_empty() {
        client
    } else {
        client.chroot(format!("/{chroot}")).map_err(|_| {
            Failure::new(
                format!("`/{chroot}` is not a valid ZooKeeper chroot"),
                "write the chroot as a path: zookeeper://HOST:PORT/tenant-a",
            )
        })?
    };
    let mut listing = Listing {
        registry: args.registry.clone(),
        services: Vec::new(),
        skipped: Vec::new(),
    };
    let mut interfaces = children(&client, &root).await?.unwrap_or_default();
    interfaces.sort();
    for interface in interfaces {
        let base = format!("{root}/{interface}");
        let providers = children(&client, &format!("{base}/providers")).await?;
        let consumers = children(&client, &format!("{base}/consumers")).await?;
        if providers.is_none() && consumers.is_none() {
            // Not a service (Dubbo's `config`, `mapping`, `metadata` nodes).
            continue;
        }
        let mut service = Service {
            interface: interface.clone(),
            providers: Vec::new(),
            consumers: Vec::new(),
        };
        for (kind, names, nodes) in [
            ("providers", providers, &mut service.providers),
            ("consumers", consumers, &mut service.consumers),
        ] {
            for name in names.unwrap_or_default() {
                let path = format!("{base}/{kind}/{name}");
                match Url::decode(&name) {
                    Ok(url) if kind == "providers" && (url.host().is_empty() || url.port() == 0) => {
                        listing.skipped.push(Skipped {
                            node: path,
                            reason: format!("the provider URL `{url}` names no host and port"),
                        });
                    }
                    Ok(url) => nodes.push(Node::of(&url)),
                    Err(e) => listing.skipped.push(Skipped {
                        node: path,
                        reason: format!("not a URL: {e}"),
                    }),
                }
            }
            nodes.sort_by(|a, b| a.address.cmp(&b.address).then_with(|| a.url.cmp(&b.url)));
        }
        listing.services.push(service);
    }
    for skipped in &listing.skipped {
        out.warning(&format!("skipped {}: {}", skipped.node, skipped.reason));
    }
    let text = if args.json {
        serde_json::to_string_pretty(&listing).map_err(|e| Failure::new(format!("cannot write JSON: {e}"), ""))?
    } else {
        table(&listing, &root)
    };
    print_out(&text)
}

/// The children of `path`; `None` when it does not exist.
async fn children(client: &zk::Client, path: &str) -> Result<Option<Vec<String>>, Failure> {
    match tokio::time::timeout(NETWORK_WAIT, client.list_children(path)).await {
        Ok(Ok(children)) => Ok(Some(children)),
        Ok(Err(zk::Error::NoNode)) => Ok(None),
        Ok(Err(e)) => Err(Failure::new(
            format!("cannot list {path} in ZooKeeper: {e}"),
            "check the registry's state with zkCli.sh, then try again",
        )),
        Err(_) => Err(Failure::new(
            format!("ZooKeeper did not list {path} within {NETWORK_WAIT:?}"),
            "is the ensemble healthy? try again",
        )),
    }
}

/// The listing as text tables.
fn table(listing: &Listing, root: &str) -> String {
    if listing.services.is_empty() {
        return format!("no services under {root} in {}\n", listing.registry);
    }
    let dash = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".into());
    let mut text = String::new();
    for service in &listing.services {
        text.push_str(&format!("{}\n", service.interface));
        text.push_str(&format!("  providers ({}):\n", service.providers.len()));
        let rows: Vec<Vec<String>> = service
            .providers
            .iter()
            .map(|p| {
                vec![
                    p.address.clone(),
                    p.protocol.clone(),
                    dash(&p.version),
                    dash(&p.group),
                    p.weight.to_string(),
                    p.disabled.to_string(),
                    dash(&p.application),
                ]
            })
            .collect();
        let header = [
            "ADDRESS",
            "PROTOCOL",
            "VERSION",
            "GROUP",
            "WEIGHT",
            "DISABLED",
            "APPLICATION",
        ];
        text.push_str(&columns(&header, &rows));
        text.push_str(&format!("  consumers ({}):\n", service.consumers.len()));
        let rows: Vec<Vec<String>> = service
            .consumers
            .iter()
            .map(|c| {
                vec![
                    c.address.clone(),
                    dash(&c.version),
                    dash(&c.group),
                    dash(&c.application),
                ]
            })
            .collect();
        text.push_str(&columns(&["ADDRESS", "VERSION", "GROUP", "APPLICATION"], &rows));
    }
    text
}

/// Aligned columns, indented by four spaces; `(none)` without rows.
fn columns(header: &[&str], rows: &[Vec<String>]) -> String {
    if rows.is_empty() {
        return "    (none)\n".into();
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        format!("    {}\n", padded.join("  ").trim_end())
    };
    let mut text = line(header.to_vec());
    for row in rows {
        text.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    text
}

fn print_out(text: &str) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    let written = stdout.write_all(text.as_bytes());
    let written = written.and_then(|()| {
        if text.ends_with('\n') {
            Ok(())
        } else {
            stdout.write_all(b"\n")
        }
    });
    match written.and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        // A closed pipe (`rpcctl ls ... | head`) is not an error worth a message.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Failure::new(format!("cannot write to stdout: {e}"), "")),
    }
}

// ----------------------------------------------------------------- call

async fn call(out: &Out, args: CallArgs) -> Result<(), Failure> {
    let values: Vec<Value> = match serde_json::from_str::<Value>(&args.args) {
        Ok(Value::Array(values)) => values,
        Ok(other) => {
            return Err(Failure::new(
                format!("the arguments must be a JSON array, one element per parameter; got {other}"),
                format!("for one argument write '[{other}]'"),
            ));
        }
        Err(e) => {
            return Err(Failure::new(
                format!("the arguments are not JSON: {e}"),
                r#"quote them for the shell, e.g. '["world"]' or '[{"item":"tea","quantity":2}]'"#,
            ));
        }
    };
    let target = Url::parse(&args.target).map_err(|e| {
        Failure::new(
            format!("`{}` is not a registry or provider URL: {e}", args.target),
            "give zookeeper://HOST:PORT, or rpc://HOST:PORT, tri://HOST:PORT, dubbo://HOST:PORT",
        )
    })?;
    let (registry, protocol) = match target.protocol() {
        "zookeeper" | "memory" => (args.target.clone(), None),
        "rpc" | "tri" => (
            format!("{}://{}", target.protocol(), target.address()),
            Some(target.protocol()),
        ),
        "dubbo" => (direct_dubbo(&target, &args).await?, Some("dubbo")),
        other => {
            return Err(Failure::new(
                format!("cannot call through {other}://"),
                "give zookeeper://HOST:PORT, or rpc://HOST:PORT, tri://HOST:PORT, dubbo://HOST:PORT",
            ));
        }
    };
    out.progress(&format!("finding providers of {} in {registry} ...", args.interface));
    let consumer = rpc::Consumer::builder()
        .application(args.application.clone())
        .registry(registry.clone())
        .build()
        .await
        .map_err(|e| Failure::new(format!("cannot use {registry}: {e}"), ""))?;
    let client = consumer
        .generic(args.interface.clone())
        .version(args.version.clone().unwrap_or_else(|| "*".into()))
        .group(args.group.clone().unwrap_or_default())
        .timeout(args.timeout)
        .retries(args.retries)
        .protocol(protocol)
        .build()
        .await
        .map_err(|e| {
            Failure::new(
                format!("no provider to call: {e}"),
                format!(
                    "check the interface name, --version and --group; `rpcctl ls {}` lists what is registered",
                    args.target
                ),
            )
        })?;
    out.progress(&format!("calling {}.{} ...", args.interface, args.method));
    match client.call(&args.method, values).await {
        Ok(value) => {
            let text = if std::io::stdout().is_terminal() {
                serde_json::to_string_pretty(&value)
            } else {
                serde_json::to_string(&value)
            };
            print_out(&text.map_err(|e| Failure::new(format!("cannot write the result as JSON: {e}"), ""))?)
        }
        Err(error) => {
            let kind = format!("{:?}", error.kind());
            let outcome = match error.kind().outcome() {
                rpc::Outcome::NotSent => "not sent: the method did not run",
                rpc::Outcome::Remote => "answered by the provider",
                rpc::Outcome::Unknown => "unknown: the method may have run",
            };
            let hint = match error.kind() {
                rpc::ErrorKind::Timeout | rpc::ErrorKind::Expired => "raise --timeout if the method is slow",
                rpc::ErrorKind::Remote(rpc::Status::ServiceNotFound) => {
                    "check the method name and the service's --version and --group"
                }
                rpc::ErrorKind::Remote(rpc::Status::BadRequest) => {
                    "check the arguments: one JSON value per parameter, in order"
                }
                rpc::ErrorKind::NoProvider => "no provider matches: `rpcctl ls REGISTRY` lists them",
                _ => "",
            };
            out.error(
                &format!("{kind} ({outcome}): {error}"),
                Some(hint).filter(|h| !h.is_empty()),
            );
            Err(Failure::reported())
        }
    }
}

/// A registry holding only the `dubbo://` provider at `target` (there is
/// no direct `dubbo` registry): a process-local memory registry.
async fn direct_dubbo(target: &Url, args: &CallArgs) -> Result<String, Failure> {
    let registry = "memory://rpcctl-direct-dubbo";
    let memory =
        rpc::registry::from_address(registry).map_err(|e| Failure::new(format!("cannot set up the call: {e}"), ""))?;
    let mut provider = Url::new("dubbo", target.host(), target.port())
        .with_path(args.interface.clone())
        .with_param("interface", args.interface.clone())
        .with_param("serialization", "hessian2")
        .with_param("side", "provider");
    if let Some(version) = args.version.as_deref().filter(|v| *v != "*") {
        provider.set_param("version", version);
    }
    if let Some(group) = args.group.as_deref().filter(|g| !g.is_empty()) {
        provider.set_param("group", group);
    }
    memory
        .register(&provider)
        .await
        .map_err(|e| Failure::new(format!("cannot set up the call: {e}"), ""))?;
    Ok(registry.to_string())
}

// ------------------------------------------------------------------ qos

/// What a query string may hold as is: Dubbo's QoS arguments keep `=`, `,`,
/// `.` and `:` readable.
const QUERY: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'=')
    .remove(b',')
    .remove(b':');

/// The largest QoS answer read (a metrics page is far smaller).
const MAX_ANSWER: u64 = 64 * 1024 * 1024;

async fn qos(out: &Out, args: QosArgs) -> Result<(), Failure> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let command = percent_encoding::utf8_percent_encode(args.command.trim_start_matches('/'), QUERY).to_string();
    let query: Vec<String> = args
        .args
        .iter()
        .map(|arg| percent_encoding::utf8_percent_encode(arg, QUERY).to_string())
        .collect();
    let target = if query.is_empty() {
        format!("/{command}")
    } else {
        format!("/{command}?{}", query.join("&"))
    };
    let unreachable = |why: String| {
        Failure::new(
            format!("cannot reach the QoS port at {}: {why}", args.address),
            "is the process running with its QoS port on (e.g. --qos-port), and is HOST:PORT right?",
        )
    };
    out.progress(&format!("GET http://{}{target}", args.address));
    let mut stream = match tokio::time::timeout(NETWORK_WAIT, tokio::net::TcpStream::connect(&args.address)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err(unreachable(e.to_string())),
        Err(_) => return Err(unreachable(format!("no connection after {NETWORK_WAIT:?}"))),
    };
    // HTTP/1.0: the answer ends with the connection, never chunked.
    let request = format!(
        "GET {target} HTTP/1.0\r\nHost: {}\r\nUser-Agent: rpcctl\r\nAccept: */*\r\n\r\n",
        args.address
    );
    let mut answer = Vec::new();
    let exchange = async {
        stream.write_all(request.as_bytes()).await?;
        (&mut stream).take(MAX_ANSWER).read_to_end(&mut answer).await
    };
    match tokio::time::timeout(Duration::from_secs(60), exchange).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(unreachable(e.to_string())),
        Err(_) => return Err(unreachable("no complete answer within 60 s".into())),
    }
    let Some((status, reason, body)) = parse_http(&answer) else {
        return Err(Failure::new(
            format!(
                "the QoS port at {} did not answer HTTP ({} bytes)",
                args.address,
                answer.len()
            ),
            "is HOST:PORT the QoS port, not the service port?",
        ));
    };
    print_out(&String::from_utf8_lossy(body))?;
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(Failure::new(
            format!("the QoS port answered {status} {reason} to `{}`", args.command),
            match status {
                403 => "commands other than the probes are refused from other hosts: run it on the process's host",
                404 => "unknown command: try `rpcctl qos HOST:PORT help`",
                _ => "",
            },
        ))
    }
}

/// The status, reason and body of an HTTP answer.
fn parse_http(answer: &[u8]) -> Option<(u16, String, &[u8])> {
    let end = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&answer[..end]).ok()?;
    let status_line = head.lines().next()?;
    let mut parts = status_line.splitn(3, ' ');
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    let status = parts.next()?.parse().ok()?;
    let reason = parts.next().unwrap_or_default().to_string();
    Some((status, reason, &answer[end + 4..]))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("250"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("3h").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn http_answers() {
        let (status, reason, body) = parse_http(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno").unwrap();
        assert_eq!((status, reason.as_str(), body), (403, "Forbidden", &b"no"[..]));
        assert!(parse_http(b"garbage").is_none());
        assert!(parse_http(b"SSH-2.0 x\r\n\r\n").is_none());
    }

    #[test]
    fn columns_align() {
        let rows = vec![
            vec!["127.0.0.1:1".to_string(), "rpc".into()],
            vec!["h:2".into(), "tri".into()],
        ];
        assert_eq!(
            columns(&["ADDRESS", "PROTOCOL"], &rows),
            "    ADDRESS      PROTOCOL\n    127.0.0.1:1  rpc\n    h:2          tri\n"
        );
        assert_eq!(columns(&["A"], &[]), "    (none)\n");
    }
}
