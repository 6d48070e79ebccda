//! The fan-out load generator: Alongside side by side with the servers a network would
//! otherwise pick: InspIRCd (an IRC server, over its WebSocket module), NATS (a broker,
//! over WebSocket) and a minimal Node `ws` broadcast.
//!
//! Scenarios (`--scenario`):
//! - `room`: `--sockets` N in one room, `--senders` S of them sending. For each system of
//!   `--systems` (default `alongside`; `--peer` adds every peer), a fixed-load rung
//!   (`--cpu-rate` messages/s, the server's CPU per delivery), then a search for the
//!   highest rate the system sustains: doubling from `--start` until a rung fails, then
//!   bisecting until the step is under 10 % (or a fixed `--ladder R1,R2,...`). A rung
//!   holds when 100 % is delivered, no socket is closed, and the median of its
//!   per-second delivery p99s is under 200 ms (`--p99-limit-ms`; one stall of the
//!   shared machine does not fail a rung, a server that falls behind does). `--runs` K repeats the whole set,
//!   every system in every run, and prints each run, the median and the spread.
//!   With `--cw`, every message carries a content warning (`grief`, with the stamp as
//!   its note) and the accounts alternate between showing and collapsing it, so each
//!   message goes out in two variants (Alongside only).
//! - `rooms`: `--rooms` K rooms of N/K sockets, one sender per room (channels for
//!   InspIRCd, subjects for NATS; the Node peer has no rooms).
//! - `idle`: N idle sockets, authenticated and in a room (registered and in a channel;
//!   connected and subscribed): the server's resident memory per socket, per system.
//! - `storm`: chat at one rate, measured alone and then during `--logins` logins/s.
//! - `slowloris`: N connections that send half a request and stop, from `--addresses`
//!   source addresses; whether the server closes them all by its header deadline (2 s
//!   here), its memory meanwhile, and whether an ordinary client is served throughout.
//! - `stall`: N sockets that each ask for 50 pages of long messages (about 200 KB each)
//!   and never read them; the server's memory for them.
//! - `cluster`: the `room` scenario on one SQLite node, then with the room split over
//!   two nodes on PostgreSQL + Redis (`--postgres URL`, `--redis URL`, default the
//!   local servers or `ALONGSIDE_TEST_POSTGRES`/`ALONGSIDE_TEST_REDIS`), and the ratio.
//! - `durable`: `--senders` sockets each keeping `--window` sends in flight in a room of
//!   its own: messages stored and acknowledged per second with the acknowledgement
//!   latency, on SQLite and then on PostgreSQL.
//! - `summit`: a summit of `--sockets` in Q&A; speakers chat, alone and then while
//!   `--votes` votes a second arrive on one question: the chat's p99, and the
//!   `question_votes` events per vote that reach each member's socket.
//!
//! Every message text is `~~<send µs> <rung> load`, so each delivery is an end-to-end
//! latency sample and late arrivals never count for the next rung. Readers look for the
//! `~~` instead of parsing anything, so the generator spends its time on sockets. For
//! Alongside and the Node peer a frame holds one event, and for InspIRCd one IRC line;
//! NATS frames carry protocol lines, and each line with a stamp is one delivery. IRC does not echo a
//! message to its sender, so there a message is due to one member fewer. Client sockets
//! bind to several 127.0.0.x source addresses, so tens of thousands of connections do
//! not run out of ports.
//!
//! `ALONGSIDE_BIN=path/to/alongside` measures another build of the server.
//!
//! Run `benches/run.sh` for the whole set; or one scenario, e.g.
//! `cargo bench --bench fanout -- --scenario room --sockets 1000 --senders 10 --peer`.

mod raw;

use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpSocket;

/// A client socket: the frame reader and the write half.
struct Socket {
    reader: raw::Reader,
    writer: OwnedWriteHalf,
}

/// How long after the last send of a rung deliveries may still arrive.
const GRACE: Duration = Duration::from_secs(2);
/// The search stops bisecting once the failing rate is within this factor of the held one.
const FINE_STEP: f64 = 1.1;
/// Readers share this many sets of histograms (one per reader would be 10,000 sets).
const SHARDS: usize = 16;

#[derive(Clone)]
struct Options {
    scenario: String,
    sockets: usize,
    rooms: usize,
    senders: usize,
    /// A fixed ladder; without one, the search from `start`.
    ladder: Option<Vec<f64>>,
    start: f64,
    cpu_rate: f64,
    runs: usize,
    systems: Vec<System>,
    seconds: f64,
    accounts: usize,
    addresses: u8,
    logins: f64,
    postgres: String,
    redis: String,
    window: usize,
    nodes: usize,
    cw: bool,
    /// Votes a second in the `summit` scenario.
    votes: f64,
    /// A rung fails at or above this delivery p99 (the median of its seconds' p99s).
    p99_limit_ms: f64,
}

fn options() -> Options {
    let mut o = Options {
        scenario: "room".into(),
        sockets: 1000,
        rooms: 1,
        senders: 10,
        ladder: None,
        start: 100.0,
        cpu_rate: 0.0,
        runs: 1,
        systems: vec![System::Alongside],
        seconds: 5.0,
        accounts: 50,
        addresses: 8,
        logins: 50.0,
        postgres: std::env::var("ALONGSIDE_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
        redis: std::env::var("ALONGSIDE_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        window: 8,
        nodes: 2,
        cw: false,
        votes: 100.0,
        p99_limit_ms: 200.0,
    };
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--scenario" => o.scenario = value(),
            "--sockets" => o.sockets = value().parse().expect("--sockets N"),
            "--rooms" => o.rooms = value().parse().expect("--rooms K"),
            "--senders" => o.senders = value().parse().expect("--senders S"),
            "--ladder" => o.ladder = Some(value().split(',').map(|r| r.parse().expect("--ladder R1,R2,...")).collect()),
            "--start" => o.start = value().parse().expect("--start MSG_PER_S"),
            "--cpu-rate" => o.cpu_rate = value().parse().expect("--cpu-rate MSG_PER_S"),
            "--runs" => o.runs = value().parse::<usize>().expect("--runs K").max(1),
            "--systems" => o.systems = value().split(',').map(System::parse).collect(),
            "--peer" => o.systems = System::ALL.to_vec(),
            "--seconds" => o.seconds = value().parse().expect("--seconds S"),
            "--accounts" => o.accounts = value().parse().expect("--accounts N"),
            "--addresses" => o.addresses = value().parse().expect("--addresses N"),
            "--logins" => o.logins = value().parse().expect("--logins PER_S"),
            "--cw" => o.cw = true,
            "--p99-limit-ms" => o.p99_limit_ms = value().parse().expect("--p99-limit-ms MS"),
            "--postgres" => o.postgres = value(),
            "--redis" => o.redis = value(),
            "--window" => o.window = value().parse().expect("--window N"),
            "--nodes" => o.nodes = value().parse::<usize>().expect("--nodes N (1 to 4)").clamp(1, 4),
            "--votes" => o.votes = value().parse().expect("--votes PER_S"),
            other => panic!("unknown option {other}"),
        }
    }
    o
}

// ---------------------------------------------------------------------------------
// The systems under test
// ---------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum System {
    Alongside,
    /// `benches/peer/server.mjs`: every frame to every socket, nothing stored.
    Node,
    /// InspIRCd 3 with `benches/peer/inspircd.conf`: channels, over WebSocket.
    Inspircd,
    /// nats-server with `benches/peer/nats.conf`: subjects, over WebSocket.
    Nats,
}

impl System {
    const ALL: [System; 4] = [System::Alongside, System::Node, System::Inspircd, System::Nats];

    fn parse(name: &str) -> System {
        match name {
            "alongside" => System::Alongside,
            "node" => System::Node,
            "inspircd" => System::Inspircd,
            "nats" => System::Nats,
            other => panic!("unknown system {other}: alongside, node, inspircd or nats"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            System::Alongside => "alongside",
            System::Node => "node ws",
            System::Inspircd => "inspircd",
            System::Nats => "nats",
        }
    }

    /// Frames carry protocol lines (several per frame, or one split over two); an
    /// InspIRCd frame is one line.
    fn lines(self) -> bool {
        self == System::Nats
    }

    /// Whether the sender receives its own message.
    fn echoes(self) -> bool {
        self != System::Inspircd
    }

    fn has_rooms(self) -> bool {
        self != System::Node
    }

    /// Why this system cannot run here, if it cannot (`benches/run.sh` installs them).
    fn missing(self) -> Option<String> {
        let program = self.program()?;
        program_path(program)
            .is_none()
            .then(|| format!("{} skipped: `{program}` is not installed (benches/run.sh installs it)", self.name()))
    }

    /// The peer's program (Alongside is this package's own binary).
    fn program(self) -> Option<&'static str> {
        match self {
            System::Alongside => None,
            System::Node => Some("node"),
            System::Inspircd => Some("inspircd"),
            System::Nats => Some("nats-server"),
        }
    }

    fn start(self) -> Target {
        match self {
            System::Alongside => Target::alongside(&[]),
            System::Node => Target::node(),
            System::Inspircd => Target::inspircd(),
            System::Nats => Target::nats(),
        }
    }

    /// The frame that sends `body` to `room`.
    fn send_frame(self, room: &str, body: &str, cw: bool, mask: u32) -> Vec<u8> {
        let text = match self {
            System::Alongside | System::Node if cw => {
                json!({"type": "send", "room": room, "body": body, "cw": ["grief"], "cw_note": body}).to_string()
            }
            System::Alongside | System::Node => json!({"type": "send", "room": room, "body": body}).to_string(),
            System::Inspircd => format!("PRIVMSG #{room} :{body}"),
            System::Nats => format!("PUB {room} {}\r\n{body}\r\n", body.len()),
        };
        raw::text_frame(text.as_bytes(), mask)
    }
}

/// Where `program` is: on the `PATH`, or in /usr/sbin (where Debian puts InspIRCd,
/// which a user's `PATH` may not name).
fn program_path(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([std::path::PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// A peer's command, by the full path `missing` found.
fn peer_command(system: System) -> Command {
    let program = system.program().expect("a peer");
    Command::new(program_path(program).unwrap_or_else(|| program.into()))
}

/// A server process and the address its WebSockets connect to.
struct Target {
    child: Child,
    addr: SocketAddr,
    system: System,
    _dir: Option<tempfile::TempDir>,
}

/// A port free at the moment (for servers that cannot listen on port 0 and say where).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A peer's configuration from `benches/peer/<name>` with its placeholders filled in.
fn peer_config(dir: &tempfile::TempDir, name: &str, fill: &[(&str, String)]) -> std::path::PathBuf {
    let template = std::fs::read_to_string(format!("{}/benches/peer/{name}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("read benches/peer/{name}: {e}"));
    let text = fill.iter().fold(template, |text, (key, value)| text.replace(key, value));
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

impl Target {
    fn alongside(extra_env: &[(&str, &str)]) -> Target {
        Target::alongside_on(None, extra_env)
    }

    /// A node on the database at `database` (a fresh SQLite file without one).
    fn alongside_on(database: Option<&str>, extra_env: &[(&str, &str)]) -> Target {
        let dir = tempfile::tempdir().unwrap();
        let database = match database {
            Some(url) => url.to_string(),
            None => format!("sqlite://{}", dir.path().join("bench.db").display()),
        };
        // ALONGSIDE_BIN runs another build (say, the one before a change) side by side.
        let binary = std::env::var("ALONGSIDE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_alongside").to_string());
        let mut command = Command::new(binary);
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--database", &database])
            .env("ALONGSIDE_REQUEST_RATE_PER_S", "0")
            .env("ALONGSIDE_MAX_SOCKETS_PER_ADDRESS", "0")
            // Thousands of sockets share a few accounts here, and many accounts are made.
            .env("ALONGSIDE_MAX_SOCKETS", "0")
            .env("ALONGSIDE_MAX_SOCKETS_PER_ACCOUNT", "0")
            .env("ALONGSIDE_REGISTRATIONS_PER_HOUR", "0")
            .env("ALONGSIDE_REGISTRATIONS_PER_ADDRESS", "0")
            .env("ALONGSIDE_LOGIN_ATTEMPTS_PER_ADDRESS", "0")
            .env("ALONGSIDE_LOGIN_FAILURES_PER_ACCOUNT_ADDRESS", "0")
            .env("ALONGSIDE_MEMBERS_MAY_CREATE_ROOMS", "true")
            // Like the peers' send queues (InspIRCd's hardsendq, NATS's max_pending), a
            // socket may fall far behind in an overloaded rung without being closed, so
            // the search can go on to a lower rate with the same sockets.
            .env("ALONGSIDE_OUTBOX_FRAMES", "65536")
            .env("ALONGSIDE_OUTBOX_BYTES", "67108864")
            .env("ALONGSIDE_LOG", "warn")
            // The generator's minimal client does not answer pings.
            .env("ALONGSIDE_PING_INTERVAL_S", "3600");
        for (key, value) in extra_env {
            command.env(key, value);
        }
        Target::spawn(command, "alongside listening on http://", System::Alongside, Some(dir))
    }

    fn node() -> Target {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/peer/server.mjs");
        let mut command = peer_command(System::Node);
        command.arg(script);
        Target::spawn(command, "peer listening on http://", System::Node, None)
    }

    fn inspircd() -> Target {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let fill = [("@PORT@", port.to_string()), ("@DIR@", dir.path().display().to_string())];
        let config = peer_config(&dir, "inspircd.conf", &fill);
        let mut command = peer_command(System::Inspircd);
        command.arg("--nofork").arg("--runasroot").arg(format!("--config={}", config.display()));
        Target::listening(command, port, System::Inspircd, dir)
    }

    fn nats() -> Target {
        let dir = tempfile::tempdir().unwrap();
        let (port, ws_port) = (free_port(), free_port());
        let config = peer_config(&dir, "nats.conf", &[("@PORT@", port.to_string()), ("@WSPORT@", ws_port.to_string())]);
        let mut command = peer_command(System::Nats);
        command.arg("-c").arg(config);
        Target::listening(command, ws_port, System::Nats, dir)
    }

    /// Starts a server that listens on a port chosen here, and waits until it accepts.
    fn listening(mut command: Command, port: u16, system: System, dir: tempfile::TempDir) -> Target {
        let child = command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start the server under test");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let until = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < until, "{} did not listen on {addr} within 20 s", system.name());
            std::thread::sleep(Duration::from_millis(50));
        }
        Target { child, addr, system, _dir: Some(dir) }
    }

    fn spawn(mut command: Command, prefix: &str, system: System, dir: Option<tempfile::TempDir>) -> Target {
        let mut child = command.stdout(Stdio::piped()).spawn().expect("start the server under test");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = loop {
            let line = lines.next().expect("server output").expect("read server output");
            if let Some(addr) = line.strip_prefix(prefix) {
                break addr.parse().expect("listen address");
            }
        };
        Target { child, addr, system, _dir: dir }
    }

    /// Resident memory of the server process, in KiB.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after ')'.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks: f64 = fields.get(11..13).map(|f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum()).unwrap_or(0.0);
    ticks / 100.0
}

/// One blocking HTTP GET, returning the body.
fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()
}

/// One blocking HTTP POST (setup and the login storm), returning status and body.
fn http_post(addr: SocketAddr, path: &str, body: &Value) -> (u16, Value) {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let body = body.to_string();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// Accounts for Alongside; the peers have none.
fn accounts(target: &Target, n: usize) -> Vec<String> {
    if target.system != System::Alongside {
        return Vec::new();
    }
    (0..n)
        .map(|i| {
            let credentials = json!({"username": format!("load{i}"), "password": "load password"});
            http_post(target.addr, "/api/v1/register", &credentials);
            let (status, reply) = http_post(target.addr, "/api/v1/login", &credentials);
            assert_eq!(status, 200, "login: {reply}");
            reply["token"].as_str().unwrap().to_string()
        })
        .collect()
}

/// Opens a WebSocket from source address 127.0.0.(2 + n % addresses).
async fn open_socket(target: &Target, n: usize, addresses: u8) -> Socket {
    let source = Ipv4Addr::new(127, 0, 0, 2 + (n % usize::from(addresses.max(1))) as u8);
    let tcp = TcpSocket::new_v4().unwrap();
    tcp.bind(SocketAddr::from((source, 0))).expect("bind a loopback source address");
    let stream = tcp.connect(target.addr).await.expect("connect");
    stream.set_nodelay(true).unwrap();
    let (path, origin) = if target.system == System::Alongside { ("/ws", false) } else { ("/", true) };
    let (reader, writer) = raw::handshake(stream, target.addr, path, origin).await;
    Socket { reader, writer }
}

/// Sends a request and waits for the reply with the same id (setup only).
async fn setup_request(socket: &mut Socket, request: Value) -> Value {
    let id = request["id"].clone();
    socket.writer.write_all(&raw::text_frame(request.to_string().as_bytes(), 7)).await.unwrap();
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(60), socket.reader.next()).await.expect("setup reply");
        match frame {
            raw::Incoming::Text(bytes) => {
                let value: Value = serde_json::from_slice(bytes).unwrap();
                if value["id"] == id {
                    assert_eq!(value["type"], "ok", "setup request failed: {value}");
                    return value;
                }
            }
            raw::Incoming::Other => {}
            raw::Incoming::Closed => panic!("closed during setup"),
        }
    }
}

/// Sends frames of protocol lines to a peer and waits for a frame that contains `until`.
async fn setup_lines(socket: &mut Socket, frames: &[&str], until: &str) {
    for frame in frames {
        socket.writer.write_all(&raw::text_frame(frame.as_bytes(), 7)).await.unwrap();
    }
    let finder = memchr::memmem::Finder::new(until.as_bytes());
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(60), socket.reader.next()).await.expect("setup reply");
        match frame {
            raw::Incoming::Text(bytes) if finder.find(bytes).is_some() => return,
            raw::Incoming::Text(_) | raw::Incoming::Other => {}
            raw::Incoming::Closed => panic!("closed during setup, waiting for {until:?} after {frames:?}"),
        }
    }
}

/// Makes socket `i` a member of `room` (and, for Alongside, signs it in first).
async fn enter(
    socket: &mut Socket,
    system: System,
    i: usize,
    token: Option<&str>,
    room: Option<&str>,
    first: bool,
    o: &Options,
) {
    match system {
        System::Alongside => {
            let token = token.expect("an account per Alongside socket");
            setup_request(socket, json!({"type": "auth", "token": token, "id": "auth"})).await;
            if o.cw && i % 2 == 1 {
                let show = json!({"type": "set_preferences", "cw": {"grief": "show"}, "id": "cw"});
                setup_request(socket, show).await;
            }
            if let Some(room) = room {
                if first {
                    setup_request(socket, json!({"type": "create_room", "name": room, "id": "create"})).await;
                }
                setup_request(socket, json!({"type": "join", "room": room, "id": "join"})).await;
            }
        }
        System::Node => {}
        System::Inspircd => {
            // Registered already (`register`); one line per WebSocket message.
            if let Some(room) = room {
                let join = format!("JOIN #{room}");
                setup_lines(socket, &[&join], " 366 ").await;
                if first {
                    // The channel's first member (its operator) makes it an auditorium
                    // (+u): joins are not announced to thousands of members, as
                    // Alongside's bench accounts do not announce each socket either.
                    let mode = format!("MODE #{room} +u");
                    setup_lines(socket, &[&mode], "+u").await;
                }
            }
        }
        System::Nats => {
            let connect = r#"CONNECT {"verbose":false,"pedantic":false,"echo":true}"#;
            let lines = match room {
                Some(room) => format!("{connect}\r\nSUB {room} {i}\r\nPING\r\n"),
                None => format!("{connect}\r\nPING\r\n"),
            };
            setup_lines(socket, &[&lines], "PONG").await
        }
    }
}

/// Registers IRC sockets, a thousand at a time: InspIRCd completes registrations once a
/// second, so one after another they would take a second each.
async fn register(sockets: &mut [Socket]) {
    for (chunk_index, chunk) in sockets.chunks_mut(1000).enumerate() {
        let registrations = chunk.iter_mut().enumerate().map(|(k, socket)| {
            let i = chunk_index * 1000 + k;
            async move {
                let (nick, user) = (format!("NICK u{i}"), format!("USER u{i} 0 * :bench"));
                setup_lines(socket, &[&nick, &user], " 001 ").await
            }
        });
        futures_util::future::join_all(registrations).await;
    }
}

/// Socket `i` uses account `i % accounts`; with rooms, each room has its own accounts
/// (membership belongs to the user, so a shared account would receive every room).
async fn connect_all(
    target: &Target,
    o: &Options,
    tokens: &[String],
    room_of: impl Fn(usize) -> Option<String>,
) -> Vec<Socket> {
    connect_spread(&[target], o, tokens, room_of).await
}

/// Socket `i` connects to `targets[i % targets.len()]` (the nodes of a cluster).
async fn connect_spread(
    targets: &[&Target],
    o: &Options,
    tokens: &[String],
    room_of: impl Fn(usize) -> Option<String>,
) -> Vec<Socket> {
    // IRC sockets are all opened and registered first (see `register`); the others are
    // opened one by one and enter at once (Alongside closes a socket that does not
    // authenticate within its deadline).
    let irc = targets[0].system == System::Inspircd;
    let mut sockets = Vec::with_capacity(o.sockets);
    if irc {
        for i in 0..o.sockets {
            sockets.push(open_socket(targets[i % targets.len()], i, o.addresses).await);
        }
        register(&mut sockets).await;
    }
    let mut created = std::collections::HashSet::new();
    for i in 0..o.sockets {
        let target = targets[i % targets.len()];
        if !irc {
            sockets.push(open_socket(target, i, o.addresses).await);
        }
        let socket = &mut sockets[i];
        let token = (!tokens.is_empty()).then(|| {
            if o.rooms > 1 {
                let per_room = o.sockets / o.rooms;
                let accounts_per_room = (tokens.len() / o.rooms).max(1);
                tokens[(i / per_room) * accounts_per_room + (i % per_room) % accounts_per_room].as_str()
            } else {
                tokens[i % tokens.len()].as_str()
            }
        });
        let room = room_of(i);
        let first = room.as_ref().is_some_and(|room| created.insert(room.clone()));
        // With content warnings, accounts (not sockets) alternate between show and collapse.
        let preference_index = if tokens.is_empty() { i } else { i % tokens.len() };
        enter(socket, target.system, preference_index, token, room.as_deref(), first, o).await;
    }
    sockets
}

// ---------------------------------------------------------------------------------
// Measuring
// ---------------------------------------------------------------------------------

/// What a shard of the readers saw in the current rung.
struct ShardStats {
    /// Delivery latencies by the second of the rung in which the message was sent.
    by_second: Vec<Histogram<u64>>,
    ack_us: Histogram<u64>,
    deliveries: u64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).unwrap()
}

impl ShardStats {
    fn new(seconds: usize) -> ShardStats {
        ShardStats { by_second: (0..seconds.max(1)).map(|_| histogram()).collect(), ack_us: histogram(), deliveries: 0 }
    }
}

/// Finds `~~<send µs> <rung>` in `bytes`.
fn stamp(bytes: &[u8]) -> Option<(u64, u32)> {
    let at = memchr::memmem::find(bytes, b"~~")? + 2;
    let mut numbers = bytes[at..].split(|b| *b == b' ');
    let number = |bytes: &[u8]| -> Option<u64> {
        if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(bytes.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
    };
    let sent = number(numbers.next()?)?;
    let rung = number(numbers.next()?)? as u32;
    Some((sent, rung))
}

struct Run {
    start: Instant,
    rung: AtomicU32,
    /// When the current rung began, in µs since `start`.
    rung_start_us: AtomicU64,
    closed: AtomicU64,
    /// Every stamped frame or line, of any rung: the backlog still arriving.
    seen: AtomicU64,
    /// `question_votes` events received (the `summit` scenario).
    vote_events: AtomicU64,
}

impl Run {
    /// Records one stamped delivery (or, for an Alongside `ok`, an acknowledgement).
    fn record(&self, sent: u64, rung: u32, ack: bool, stats: &Mutex<ShardStats>) {
        self.seen.fetch_add(1, Relaxed);
        if rung != self.rung.load(Relaxed) {
            return;
        }
        let latency = (self.start.elapsed().as_micros() as u64).saturating_sub(sent).max(1);
        let mut stats = stats.lock().unwrap();
        if ack {
            let _ = stats.ack_us.record(latency);
        } else {
            let second = (sent.saturating_sub(self.rung_start_us.load(Relaxed)) / 1_000_000) as usize;
            let last = stats.by_second.len() - 1;
            let _ = stats.by_second[second.min(last)].record(latency);
            stats.deliveries += 1;
        }
    }
}

fn spawn_reader(mut reader: raw::Reader, system: System, run: Arc<Run>, stats: Arc<Mutex<ShardStats>>) {
    tokio::spawn(async move {
        // Lines split over two frames wait here for their end.
        let mut partial: Vec<u8> = Vec::new();
        loop {
            let frame = match reader.next().await {
                raw::Incoming::Text(frame) => frame,
                raw::Incoming::Other => continue,
                raw::Incoming::Closed => {
                    run.closed.fetch_add(1, Relaxed);
                    return;
                }
            };
            if !system.lines() {
                if frame.starts_with(b"{\"type\":\"question_votes\"") {
                    run.vote_events.fetch_add(1, Relaxed);
                    continue;
                }
                if let Some((sent, rung)) = stamp(frame) {
                    run.record(sent, rung, frame.starts_with(b"{\"type\":\"ok\""), &stats);
                }
                continue;
            }
            let mut rest = frame;
            if !partial.is_empty() {
                let Some(end) = memchr::memchr(b'\n', rest) else {
                    partial.extend_from_slice(rest);
                    continue;
                };
                partial.extend_from_slice(&rest[..=end]);
                if let Some((sent, rung)) = stamp(&partial) {
                    run.record(sent, rung, false, &stats);
                }
                partial.clear();
                rest = &rest[end + 1..];
            }
            for line in rest.split_inclusive(|b| *b == b'\n') {
                if line.ends_with(b"\n") {
                    if let Some((sent, rung)) = stamp(line) {
                        run.record(sent, rung, false, &stats);
                    }
                } else {
                    partial.extend_from_slice(line);
                }
            }
        }
    });
}

/// One rung's figures.
#[derive(Debug, Clone)]
struct Rung {
    rate: f64,
    sent: u64,
    expected: u64,
    delivered: u64,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// The median of the per-second p99s: what the rung is judged on.
    judged_p99_ms: f64,
    max_ms: f64,
    ack_p50_ms: f64,
    ack_p99_ms: f64,
    closed: u64,
    /// Cores used on average during the rung: the server, and this generator.
    server_cores: f64,
    generator_cores: f64,
    /// Server CPU seconds over the rung, sends to grace end.
    server_cpu_s: f64,
    p99_limit_ms: f64,
}

impl Rung {
    fn ok(&self) -> bool {
        self.delivered >= self.expected
            && self.expected > 0
            && self.judged_p99_ms < self.p99_limit_ms
            && self.closed == 0
    }

    fn deliveries_per_s(&self) -> f64 {
        self.delivered as f64 / self.seconds
    }

    /// Server CPU per delivery, in µs.
    fn cpu_us_per_delivery(&self) -> f64 {
        self.server_cpu_s * 1e6 / self.delivered.max(1) as f64
    }

    fn print(&self, ack: bool) {
        let pct = 100.0 * self.delivered as f64 / self.expected.max(1) as f64;
        print!(
            "  {:>6.0} msg/s (sent {:>6.0}/s): {:>9.0} deliveries/s, {:>7.3} % delivered, latency p50 {:>7.2} p99 {:>7.2} (median second {:>7.2}) max {:>8.2} ms",
            self.rate,
            self.sent as f64 / self.seconds,
            self.deliveries_per_s(),
            pct,
            self.p50_ms,
            self.p99_ms,
            self.judged_p99_ms,
            self.max_ms
        );
        if ack {
            print!(", ack p50 {:.2} p99 {:.2} ms", self.ack_p50_ms, self.ack_p99_ms);
        }
        print!(", cpu server {:.2} / generator {:.2} cores", self.server_cores, self.generator_cores);
        println!(", closed {}{}", self.closed, if self.ok() { "" } else { "  <- fails" });
    }
}

/// Sockets split into readers (all) and sinks (the senders'), with the members per room.
struct Load {
    system: System,
    /// The server processes (one, or a cluster's nodes): their CPU is summed.
    server_pids: Vec<String>,
    run: Arc<Run>,
    shards: Vec<Arc<Mutex<ShardStats>>>,
    /// Each sender's write half, room, and how many deliveries each message is due.
    senders: Vec<(OwnedWriteHalf, String, u64)>,
    /// Every message carries a content warning.
    cw: bool,
    /// Rungs so far (each rung's number tags its messages).
    rungs: u32,
    p99_limit_ms: f64,
    /// The other sockets' write halves: dropping one would shut its connection down.
    _quiet: Vec<OwnedWriteHalf>,
}

fn start_load(
    targets: &[&Target],
    sockets: Vec<Socket>,
    o: &Options,
    room_of: impl Fn(usize) -> String,
    members: impl Fn(&str) -> u64,
) -> Load {
    let system = targets[0].system;
    let run = Arc::new(Run {
        start: Instant::now(),
        rung: AtomicU32::new(0),
        rung_start_us: AtomicU64::new(0),
        closed: AtomicU64::new(0),
        seen: AtomicU64::new(0),
        vote_events: AtomicU64::new(0),
    });
    let shards: Vec<_> =
        (0..SHARDS).map(|_| Arc::new(Mutex::new(ShardStats::new(o.seconds.ceil() as usize)))).collect();
    let mut senders = Vec::new();
    let mut quiet = Vec::new();
    let per_room = o.sockets / o.rooms.max(1);
    for (i, socket) in sockets.into_iter().enumerate() {
        let Socket { reader, writer: sink } = socket;
        spawn_reader(reader, system, run.clone(), shards[i % SHARDS].clone());
        // Senders are the first sockets of each room.
        let is_sender = if o.rooms > 1 { i % per_room == 0 } else { i < o.senders };
        if is_sender {
            let room = room_of(i);
            let due = members(&room) - u64::from(!system.echoes());
            senders.push((sink, room, due));
        } else {
            quiet.push(sink);
        }
    }
    let server_pids = targets.iter().map(|target| target.child.id().to_string()).collect();
    Load { system, server_pids, run, shards, senders, cw: o.cw, rungs: 0, p99_limit_ms: o.p99_limit_ms, _quiet: quiet }
}

/// Waits until what earlier rungs sent has stopped arriving and the server is idle (at
/// most 60 s), so a rung after an overloaded one does not pay for its backlog.
async fn settle(load: &Load) {
    let until = Instant::now() + Duration::from_secs(60);
    let servers_cpu = || load.server_pids.iter().map(|pid| cpu_seconds(pid)).sum::<f64>();
    let (mut seen, mut cpu) = (load.run.seen.load(Relaxed), servers_cpu());
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (now_seen, now_cpu) = (load.run.seen.load(Relaxed), servers_cpu());
        // Idle: nothing arrived, and the server used under 5 % of a core.
        if now_seen == seen && now_cpu - cpu <= 0.025 {
            return;
        }
        (seen, cpu) = (now_seen, now_cpu);
    }
    println!("  (the server was still busy after 60 s of waiting for the last rung's backlog)");
}

/// Runs one rung at `rate` messages/s in total, spread over the senders.
async fn rung(load: &mut Load, rate: f64, seconds: f64) -> Rung {
    settle(load).await;
    load.rungs += 1;
    let rung = load.rungs;
    for shard in &load.shards {
        *shard.lock().unwrap() = ShardStats::new(seconds.ceil() as usize);
    }
    load.run.rung_start_us.store(load.run.start.elapsed().as_micros() as u64, Relaxed);
    load.run.rung.store(rung, Relaxed);
    let started = Instant::now();
    let servers_cpu = |load: &Load| load.server_pids.iter().map(|pid| cpu_seconds(pid)).sum::<f64>();
    let (server_cpu, generator_cpu) = (servers_cpu(load), cpu_seconds("self"));
    let closed_before = load.run.closed.load(Relaxed);
    let per_sender = rate / load.senders.len() as f64;
    let run = load.run.clone();
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let (cw, system) = (load.cw, load.system);
    let tasks = load.senders.drain(..).enumerate().map(|(index, (mut sink, room, due))| {
        let run = run.clone();
        tokio::spawn(async move {
            // Spread the senders' phases evenly over one interval (golden-ratio steps):
            // senders that all tick together turn a steady rate into bursts.
            let interval = Duration::from_secs_f64(1.0 / per_sender);
            let phase = (index as f64 * 0.618_033_988_75).fract();
            let first = tokio::time::Instant::now() + interval.mul_f64(phase);
            let mut ticker = tokio::time::interval_at(first, interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut sent = 0u64;
            while Instant::now() < deadline {
                ticker.tick().await;
                let at = run.start.elapsed().as_micros();
                let body = format!("~~{at} {rung} load");
                if sink.write_all(&system.send_frame(&room, &body, cw, at as u32)).await.is_err() {
                    break;
                }
                sent += 1;
            }
            (sink, room, due, sent)
        })
    });
    let mut sent = 0;
    let mut expected = 0;
    for task in futures_util::future::join_all(tasks).await {
        let (sink, room, due, n) = task.unwrap();
        sent += n;
        expected += n * due;
        load.senders.push((sink, room, due));
    }
    // Give in-flight deliveries their grace period, but stop early once all are in.
    let delivered = |load: &Load| load.shards.iter().map(|s| s.lock().unwrap().deliveries).sum::<u64>();
    let grace_end = Instant::now() + GRACE;
    while Instant::now() < grace_end && delivered(load) < expected {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    load.run.rung.store(u32::MAX, Relaxed);
    let wall = started.elapsed().as_secs_f64();
    let server_cpu_s = servers_cpu(load) - server_cpu;
    let generator_cores = (cpu_seconds("self") - generator_cpu) / wall;
    let mut all = histogram();
    let mut by_second: Vec<Histogram<u64>> = (0..seconds.ceil() as usize).map(|_| histogram()).collect();
    let mut ack = histogram();
    let mut delivered = 0;
    for shard in &load.shards {
        let shard = shard.lock().unwrap();
        for (second, h) in shard.by_second.iter().enumerate() {
            all.add(h).unwrap();
            by_second[second].add(h).unwrap();
        }
        ack.add(&shard.ack_us).unwrap();
        delivered += shard.deliveries;
    }
    let ms = |h: &Histogram<u64>, q: f64| if h.is_empty() { f64::NAN } else { h.value_at_quantile(q) as f64 / 1000.0 };
    let mut second_p99s: Vec<f64> = by_second.iter().filter(|h| !h.is_empty()).map(|h| ms(h, 0.99)).collect();
    second_p99s.sort_by(f64::total_cmp);
    let judged_p99_ms = second_p99s.get(second_p99s.len() / 2).copied().unwrap_or(f64::NAN);
    Rung {
        rate,
        sent,
        expected,
        delivered,
        seconds,
        p50_ms: ms(&all, 0.5),
        p99_ms: ms(&all, 0.99),
        judged_p99_ms,
        max_ms: if all.is_empty() { f64::NAN } else { all.max() as f64 / 1000.0 },
        ack_p50_ms: ms(&ack, 0.5),
        ack_p99_ms: ms(&ack, 0.99),
        closed: load.run.closed.load(Relaxed) - closed_before,
        server_cores: server_cpu_s / wall,
        generator_cores,
        server_cpu_s,
        p99_limit_ms: load.p99_limit_ms,
    }
}

/// The highest rate that holds: a fixed ladder climbed until a rung fails, or a search
/// (doubling from `--start` until a rung fails, then bisecting down to a 10 % step).
async fn ladder(load: &mut Load, o: &Options, ack: bool) -> Option<Rung> {
    let mut best: Option<Rung> = None;
    if let Some(ladder) = &o.ladder {
        for rate in ladder {
            let result = rung(load, *rate, o.seconds).await;
            result.print(ack);
            if !result.ok() {
                break;
            }
            best = Some(result);
        }
        return best;
    }
    let mut failed: Option<f64> = None;
    let mut rate = o.start;
    loop {
        let result = rung(load, rate, o.seconds).await;
        result.print(ack);
        if result.closed > 0 {
            // The sockets are gone: no lower rate can be measured with them.
            return best;
        }
        if result.ok() {
            best = Some(result);
        } else {
            failed = Some(rate);
        }
        let held = best.as_ref().map(|b| b.rate);
        rate = match (held, failed) {
            (Some(held), None) => held * 2.0,
            (Some(held), Some(failed)) if failed / held > FINE_STEP => (held * failed).sqrt(),
            (None, Some(failed)) if failed >= 2.0 => failed / 2.0,
            _ => return best,
        };
        // Round to two significant digits; a rate already tried ends the search.
        let step = 10f64.powf(rate.log10().floor() - 1.0).max(1.0);
        rate = (rate / step).round() * step;
        if Some(rate) == held || Some(rate) == failed {
            return best;
        }
    }
}
// ---------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------

/// What one system sustained in one run.
struct Outcome {
    sustained: Option<Rung>,
    /// Server CPU per delivery at `--cpu-rate`, in µs (if that rung held).
    cpu_us: Option<f64>,
}

/// The room of socket `i`: one room, or `--rooms` rooms of equal size.
fn room_of(o: &Options) -> impl Fn(usize) -> String + Clone {
    let (rooms, per_room) = (o.rooms, o.sockets / o.rooms.max(1));
    move |i| if rooms > 1 { format!("room-{}", i / per_room) } else { "summit".to_string() }
}

/// The `room` and `rooms` scenarios for one system: connect, the fixed-load rung, the search.
async fn fan_out(o: &Options, target: Target) -> Outcome {
    let per_room = (o.sockets / o.rooms.max(1)) as u64;
    let account_count = if o.rooms > 1 { o.rooms * (o.accounts / o.rooms).max(1) } else { o.accounts };
    let tokens = accounts(&target, account_count);
    let rooms = room_of(o);
    let connecting = Instant::now();
    let sockets = connect_all(&target, o, &tokens, |i| Some(rooms(i))).await;
    let connected = connecting.elapsed().as_secs_f64();
    let mut load = start_load(&[&target], sockets, o, rooms, |_| per_room);
    let alongside = target.system == System::Alongside;
    let warned =
        if o.cw && alongside { ", every message with a content warning (half shown, half collapsed)" } else { "" };
    let shape = if o.rooms > 1 {
        format!("{} rooms x {per_room} sockets, one sender per room", o.rooms)
    } else {
        format!("{} sockets in one room, {} senders", o.sockets, o.senders)
    };
    println!("{}: {shape}, {} s per rung (connected in {connected:.1} s){warned}", target.system.name(), o.seconds);
    let mut cpu_us = None;
    if o.cpu_rate > 0.0 {
        let fixed = rung(&mut load, o.cpu_rate, o.seconds).await;
        print!("  fixed load:");
        fixed.print(alongside);
        if fixed.ok() {
            println!("  server cpu per delivery at {} msg/s: {:.2} µs", o.cpu_rate, fixed.cpu_us_per_delivery());
            cpu_us = Some(fixed.cpu_us_per_delivery());
        }
    }
    let sustained = ladder(&mut load, o, alongside).await;
    match &sustained {
        Some(r) => println!("  sustained: {:.0} deliveries/s ({:.0} msg/s)", r.deliveries_per_s(), r.rate),
        None => println!("  sustained: no rung passed"),
    }
    drop(load);
    drop(target);
    Outcome { sustained, cpu_us }
}

/// The systems of `--systems` that can run this scenario here.
fn runnable(o: &Options) -> Vec<System> {
    o.systems
        .iter()
        .copied()
        .filter(|system| match system.missing() {
            Some(why) => {
                println!("{why}");
                false
            }
            None if o.rooms > 1 && !system.has_rooms() => {
                println!("{} skipped: it has no rooms", system.name());
                false
            }
            None => true,
        })
        .collect()
}

/// `room` and `rooms`: every system in every run, then the table.
async fn compare(o: &Options) {
    let systems = runnable(o);
    let mut table = Vec::new();
    for run in 1..=o.runs {
        if o.runs > 1 {
            println!("\n## run {run} of {}", o.runs);
        }
        let mut row = Vec::new();
        for system in &systems {
            row.push(fan_out(o, system.start()).await);
        }
        table.push(row);
    }
    let sustained = |outcome: &Outcome| outcome.sustained.as_ref().map(Rung::deliveries_per_s);
    println!("\nsustained deliveries/s (all systems in each run):");
    print_table(&systems, &table, sustained, thousands, true);
    if o.cpu_rate > 0.0 {
        println!("\nserver cpu per delivery at {} msg/s, µs (lower is better):", o.cpu_rate);
        print_table(&systems, &table, |outcome| outcome.cpu_us, |v| format!("{v:.2}"), false);
    }
}

fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// A Markdown table: one row per run, then the median and the spread (min–max). With
/// Alongside among the systems, a ratio column per peer (Alongside's figure over the
/// peer's when `higher_is_better`, the peer's over Alongside's otherwise: above 1 means
/// Alongside does better either way).
fn print_table(
    systems: &[System],
    table: &[Vec<Outcome>],
    figure: impl Fn(&Outcome) -> Option<f64>,
    format: impl Fn(f64) -> String,
    higher_is_better: bool,
) {
    let ours = systems.iter().position(|s| *s == System::Alongside);
    let peers: Vec<usize> = (0..systems.len()).filter(|i| Some(*i) != ours).collect();
    let ratio = |row: &[Outcome], peer: usize| -> Option<f64> {
        let (a, p) = (figure(&row[ours?])?, figure(&row[peer])?);
        Some(if higher_is_better { a / p } else { p / a })
    };
    let mut header = String::from("| run |");
    for system in systems {
        header += &format!(" {} |", system.name());
    }
    if ours.is_some() {
        for peer in &peers {
            header += &format!(" vs {} |", systems[*peer].name());
        }
    }
    println!("{header}");
    println!("|{}", "---|".repeat(1 + systems.len() + if ours.is_some() { peers.len() } else { 0 }));
    let cell = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map(f).unwrap_or_else(|| "-".into());
    let ratio_text = |v: f64| format!("{v:.2}x");
    for (run, row) in table.iter().enumerate() {
        let mut line = format!("| {} |", run + 1);
        for outcome in row {
            line += &format!(" {} |", cell(figure(outcome), &format));
        }
        if ours.is_some() {
            for peer in &peers {
                line += &format!(" {} |", cell(ratio(row, *peer), &ratio_text));
            }
        }
        println!("{line}");
    }
    if table.len() < 2 {
        return;
    }
    let column =
        |f: &dyn Fn(&[Outcome]) -> Option<f64>| -> Vec<f64> { table.iter().filter_map(|row| f(row)).collect() };
    let mut median_line = String::from("| median |");
    let mut spread_line = String::from("| spread |");
    let mut summarise = |mut values: Vec<f64>, f: &dyn Fn(f64) -> String| {
        median_line += &format!(" {} |", cell(median(&mut values), f));
        let spread = match (values.first(), values.last()) {
            (Some(lo), Some(hi)) => format!("{}–{}", f(*lo), f(*hi)),
            _ => "-".into(),
        };
        spread_line += &format!(" {spread} |");
    };
    for i in 0..systems.len() {
        summarise(column(&|row| figure(&row[i])), &format);
    }
    if ours.is_some() {
        for peer in &peers {
            summarise(column(&|row| ratio(row, *peer)), &ratio_text);
        }
    }
    println!("{median_line}");
    println!("{spread_line}");
}

/// Memory per idle socket: authenticated and in a room (Alongside), registered and in a
/// channel (InspIRCd), connected and subscribed (NATS), connected (Node).
async fn idle(o: &Options) {
    let mut figures = Vec::new();
    for system in runnable(o) {
        let target = system.start();
        // Alongside's measured sockets are each account's later connections: every
        // account joins the room once first, as members do, so these are
        // authenticated, receive the room, and are idle. A peer's sockets join as they
        // connect.
        let tokens = accounts(&target, o.accounts);
        if system == System::Alongside {
            let setup = Options { sockets: o.accounts, ..o.clone() };
            drop(connect_all(&target, &setup, &tokens, |_| Some("lobby".to_string())).await);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = target.rss_kib();
        let room = (system != System::Alongside).then(|| "lobby".to_string());
        let sockets = connect_all(&target, o, &tokens, |_| room.clone()).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        figures.push((system, before, target.rss_kib()));
        drop(sockets);
    }
    println!("memory per idle socket, {} sockets:", o.sockets);
    println!("| system | server RSS before | after | bytes per socket |");
    println!("|---|---|---|---|");
    let per_socket = |before: u64, after: u64| after.saturating_sub(before) as f64 * 1024.0 / o.sockets as f64;
    for (system, before, after) in &figures {
        println!(
            "| {} | {} KiB | {} KiB | {} |",
            system.name(),
            thousands(*before as f64),
            thousands(*after as f64),
            thousands(per_socket(*before, *after))
        );
    }
    if let Some((_, b, a)) = figures.iter().find(|(s, _, _)| *s == System::Alongside) {
        let ours = per_socket(*b, *a);
        for (system, before, after) in figures.iter().filter(|(s, _, _)| *s != System::Alongside) {
            println!(
                "alongside uses {:.2}x the memory per socket of {}",
                ours / per_socket(*before, *after),
                system.name()
            );
        }
    }
}

async fn storm(o: &Options) {
    let target = Target::alongside(&[]);
    let tokens = accounts(&target, o.accounts);
    let sockets = connect_all(&target, o, &tokens, |_| Some("summit".to_string())).await;
    let n = o.sockets as u64;
    let mut load = start_load(&[&target], sockets, o, |_| "summit".to_string(), |_| n);
    let rate = o.ladder.as_ref().map_or(o.start, |ladder| ladder[0]);
    println!("alongside: {} sockets in one room at {rate} msg/s, without and with {} logins/s", o.sockets, o.logins);
    let calm = rung(&mut load, rate, o.seconds).await;
    calm.print(true);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let logins = Arc::new(AtomicU64::new(0));
    let storm = {
        let (stop, logins, addr) = (stop.clone(), logins.clone(), target.addr);
        let interval = Duration::from_secs_f64(1.0 / o.logins);
        std::thread::spawn(move || {
            let mut next = Instant::now();
            let mut workers = Vec::new();
            while !stop.load(Relaxed) {
                next += interval;
                let logins = logins.clone();
                workers.push(std::thread::spawn(move || {
                    let credentials = json!({"username": "load0", "password": "load password"});
                    if http_post(addr, "/api/v1/login", &credentials).0 == 200 {
                        logins.fetch_add(1, Relaxed);
                    }
                }));
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
            for worker in workers {
                let _ = worker.join();
            }
        })
    };
    let stormy = rung(&mut load, rate, o.seconds).await;
    stop.store(true, Relaxed);
    stormy.print(true);
    let _ = storm.join();
    println!(
        "  logins completed during the storm: {}; chat p99 {:.2} ms -> {:.2} ms ({:.2}x)",
        logins.load(Relaxed),
        calm.p99_ms,
        stormy.p99_ms,
        stormy.p99_ms / calm.p99_ms
    );
}

/// `summit`: `--sockets` members in a summit in Q&A, where the organiser and speakers
/// (`--senders`) chat, first alone and then while `--votes` votes a second arrive on one
/// question from members' sockets of their own (one vote per account). Chat delivery
/// p99 without and with the votes, and the `question_votes` events each member's
/// socket got per vote: coalesced, far below one.
async fn summit(o: &Options) {
    let target = Target::alongside(&[]);
    let voters = (o.votes * o.seconds).ceil() as usize;
    let first_voter = o.accounts.max(o.senders + 1);
    let tokens = accounts(&target, first_voter + voters);
    let dir = target._dir.as_ref().expect("Alongside runs in a directory of its own");
    let database = format!("sqlite://{}", dir.path().join("bench.db").display());
    let binary = std::env::var("ALONGSIDE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_alongside").to_string());
    let promoted = Command::new(&binary)
        .args(["user", "set-role", "load0", "organiser", "--database", &database])
        .output()
        .expect("run alongside user set-role");
    assert!(promoted.status.success(), "{}", String::from_utf8_lossy(&promoted.stderr));
    // The organiser opens the summit, puts it in Q&A and takes one question.
    let room = "summit-qa";
    let mut control = open_socket(&target, 0, o.addresses).await;
    setup_request(&mut control, json!({"type": "auth", "token": tokens[0], "id": "auth"})).await;
    let create = json!({"type": "create_room", "name": room, "kind": "summit", "id": "create"});
    setup_request(&mut control, create).await;
    setup_request(&mut control, json!({"type": "set_phase", "room": room, "phase": "qa", "id": "phase"})).await;
    let ask = json!({"type": "ask", "room": room, "body": "Where next?", "id": "ask"});
    let question = setup_request(&mut control, ask).await["question"]["id"].as_i64().expect("a question id");
    let approve =
        json!({"type": "moderate_question", "room": room, "question_id": question, "status": "approved", "id": "ok"});
    setup_request(&mut control, approve).await;
    // Every member's socket joins; the first `--senders` accounts speak.
    let mut sockets = connect_all(&target, o, &tokens[..first_voter], |_| None).await;
    for socket in &mut sockets {
        setup_request(socket, json!({"type": "join", "room": room, "id": "join"})).await;
    }
    for speaker in 1..o.senders {
        let user = format!("load{speaker}");
        let role = json!({"type": "set_room_role", "room": room, "user": user, "role": "speaker", "id": "role"});
        setup_request(&mut control, role).await;
    }
    // The voters: a socket each for accounts no member socket uses, joined and quiet.
    let mut votes = Vec::with_capacity(voters);
    for (k, token) in tokens[first_voter..].iter().enumerate() {
        let mut socket = open_socket(&target, o.sockets + k, o.addresses).await;
        setup_request(&mut socket, json!({"type": "auth", "token": token, "id": "auth"})).await;
        setup_request(&mut socket, json!({"type": "join", "room": room, "id": "join"})).await;
        let Socket { mut reader, writer } = socket;
        tokio::spawn(async move { while !matches!(reader.next().await, raw::Incoming::Closed) {} });
        votes.push(writer);
    }
    // Each message is due to every member's socket (the voters' and the organiser's
    // control socket get it too, uncounted).
    let members = o.sockets as u64;
    let mut load = start_load(&[&target], sockets, o, |_| room.to_string(), |_| members);
    let rate = o.ladder.as_ref().map_or(o.start, |ladder| ladder[0]);
    println!(
        "alongside: a summit in Q&A, {} member sockets and {voters} voters, chat at {rate} msg/s from {} speakers, \
         then with {} votes/s",
        o.sockets, o.senders, o.votes
    );
    let calm = rung(&mut load, rate, o.seconds).await;
    print!("  chat alone:");
    calm.print(true);
    let heard_before = load.run.vote_events.load(Relaxed);
    let cast = Arc::new(AtomicU64::new(0));
    let voting = {
        let (cast, interval) = (cast.clone(), Duration::from_secs_f64(1.0 / o.votes));
        let upvote = json!({"type": "upvote", "room": room, "question_id": question}).to_string();
        let frame = raw::text_frame(upvote.as_bytes(), 9);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            let mut open = Vec::with_capacity(votes.len());
            for mut writer in votes {
                ticks.tick().await;
                if writer.write_all(&frame).await.is_ok() {
                    cast.fetch_add(1, Relaxed);
                }
                // Kept open: a closed socket would take its vote's member away.
                open.push(writer);
            }
            open
        })
    };
    let stormy = rung(&mut load, rate, o.seconds).await;
    let _open = voting.await;
    // The last coalesced count goes out within a second of the last vote.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    print!("  with votes:");
    stormy.print(true);
    let (cast, heard) = (cast.load(Relaxed), load.run.vote_events.load(Relaxed) - heard_before);
    let per_socket = heard as f64 / o.sockets as f64;
    println!(
        "  votes cast: {cast} in {:.0} s; question_votes events per member socket: {per_socket:.1}, that is {:.3} per \
         vote (1.000 without coalescing); chat p99 {:.2} ms -> {:.2} ms ({:.2}x)",
        o.seconds,
        per_socket / cast.max(1) as f64,
        calm.p99_ms,
        stormy.p99_ms,
        stormy.p99_ms / calm.p99_ms
    );
}

async fn slowloris(o: &Options) {
    use tokio::io::AsyncReadExt;
    let target = Target::alongside(&[("ALONGSIDE_HEADER_READ_TIMEOUT_S", "2")]);
    let before = target.rss_kib();
    let started = Instant::now();
    let mut attackers = Vec::new();
    for n in 0..o.sockets {
        let source = Ipv4Addr::new(127, 0, 0, 2 + (n % usize::from(o.addresses.max(1))) as u8);
        let tcp = TcpSocket::new_v4().unwrap();
        tcp.bind(SocketAddr::from((source, 0))).expect("bind a loopback source address");
        let mut stream = tcp.connect(target.addr).await.expect("connect");
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        attackers.push(tokio::spawn(async move {
            // Held open, saying nothing more, until the server closes it.
            let mut buffer = [0u8; 256];
            let opened = Instant::now();
            loop {
                match tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buffer)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => return Some(opened.elapsed()),
                    Ok(Ok(_)) => continue,
                    Err(_) => return None,
                }
            }
        }));
    }
    let opened = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = target.rss_kib();
    // An ordinary client meanwhile.
    let mut served = Histogram::<u64>::new(3).unwrap();
    let mut failed = 0;
    let probe_until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < probe_until {
        let asked = Instant::now();
        match tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(target.addr)).await {
            Ok(Ok(mut stream)) => {
                let request = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", target.addr);
                let mut answer = Vec::new();
                let exchange = async {
                    stream.write_all(request.as_bytes()).await?;
                    stream.read_to_end(&mut answer).await
                };
                match tokio::time::timeout(Duration::from_secs(5), exchange).await {
                    Ok(Ok(_)) if answer.starts_with(b"HTTP/1.1 200") => {
                        served.record(asked.elapsed().as_micros() as u64).unwrap();
                    }
                    _ => failed += 1,
                }
            }
            _ => failed += 1,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut closed = Histogram::<u64>::new(3).unwrap();
    let mut still_open = 0;
    for attacker in attackers {
        match attacker.await.unwrap() {
            Some(after) => closed.record(after.as_millis() as u64).unwrap(),
            None => still_open += 1,
        }
    }
    println!(
        "alongside: {} slow-header connections from {} addresses (opened in {:.1} s): server RSS {} -> {} KiB",
        o.sockets,
        o.addresses,
        opened.as_secs_f64(),
        before,
        during
    );
    println!(
        "  closed by the server after p50 {} ms, max {} ms (deadline 2,000 ms); {} never closed",
        closed.value_at_quantile(0.5),
        closed.max(),
        still_open
    );
    println!(
        "  an ordinary client meanwhile: {} requests served, p50 {:.2} ms, p99 {:.2} ms, {} failed",
        served.len(),
        served.value_at_quantile(0.5) as f64 / 1000.0,
        served.value_at_quantile(0.99) as f64 / 1000.0,
        failed
    );
}

async fn stall(o: &Options) {
    let target = Target::alongside(&[]);
    let tokens = accounts(&target, o.accounts.max(1));
    let mut author = open_socket(&target, 0, 1).await;
    setup_request(&mut author, json!({"type": "auth", "id": 1, "token": tokens[0]})).await;
    setup_request(&mut author, json!({"type": "create_room", "id": 2, "name": "heavy"})).await;
    let long = "😀".repeat(3000);
    for n in 0..40 {
        setup_request(&mut author, json!({"type": "send", "id": 3 + n, "room": "heavy", "body": long})).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = target.rss_kib();
    let mut stalled = Vec::new();
    for n in 0..o.sockets {
        let mut socket = open_socket(&target, n, o.addresses).await;
        let token = &tokens[n % tokens.len()];
        setup_request(&mut socket, json!({"type": "auth", "id": 1, "token": token})).await;
        for id in 0..50 {
            let request = json!({"type": "history", "id": 10 + id, "room": "heavy", "limit": 100});
            socket.writer.write_all(&raw::text_frame(request.to_string().as_bytes(), 7)).await.unwrap();
        }
        stalled.push(socket);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = target.rss_kib();
    let asked_mb = o.sockets as f64 * 50.0 * 0.2;
    println!(
        "alongside: {} sockets asking for 50 pages of ~200 KB each ({asked_mb:.0} MB asked) and reading none: \
         server RSS {} -> {} KiB, {:.0} KiB per stalled socket",
        o.sockets,
        before,
        after,
        after.saturating_sub(before) as f64 / o.sockets as f64
    );
    drop(stalled);
}

/// A fresh PostgreSQL database for one run (dropped at the end).
async fn fresh_database(o: &Options) -> alongside::store::postgres::test_database::TestDatabase {
    alongside::store::postgres::test_database::create(&o.postgres).await
}

/// One room of `--sockets` on one SQLite node, then the same room split over two nodes
/// on PostgreSQL + Redis, with the same ladder.
async fn cluster(o: &Options) {
    let single = fan_out(o, Target::alongside(&[])).await.sustained;
    let database = fresh_database(o).await;
    let cluster_name = format!("bench-{}", std::process::id());
    let nodes: Vec<Target> = ["bench-a", "bench-b", "bench-c", "bench-d"][..o.nodes]
        .iter()
        .map(|node| {
            let env = [
                ("ALONGSIDE_BUS", o.redis.as_str()),
                ("ALONGSIDE_CLUSTER", &cluster_name),
                ("ALONGSIDE_NODE_ID", node),
            ];
            Target::alongside_on(Some(&database.url), &env)
        })
        .collect();
    let targets: Vec<&Target> = nodes.iter().collect();
    let tokens = accounts(targets[0], o.accounts);
    let sockets = connect_spread(&targets, o, &tokens, |_| Some("summit".to_string())).await;
    let n = o.sockets as u64;
    let mut load = start_load(&targets, sockets, o, |_| "summit".to_string(), |_| n);
    println!(
        "alongside, {} nodes on PostgreSQL + Redis: {} sockets in one room (spread evenly), {} senders, {} s per rung",
        o.nodes, o.sockets, o.senders, o.seconds
    );
    let best = ladder(&mut load, o, true).await;
    match (&single, &best) {
        (Some(single), Some(best)) => println!(
            "  sustained: {:.0} deliveries/s ({:.0} msg/s); {:.2}x the single SQLite node's {:.0}",
            best.deliveries_per_s(),
            best.rate,
            best.deliveries_per_s() / single.deliveries_per_s(),
            single.deliveries_per_s()
        ),
        (_, Some(best)) => {
            println!("  sustained: {:.0} deliveries/s ({:.0} msg/s)", best.deliveries_per_s(), best.rate)
        }
        (_, None) => println!("  sustained: no rung passed"),
    }
    for node in &nodes {
        let text = http_get(node.addr, "/metrics");
        let figure = |name: &str| {
            text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse::<u64>().ok())).unwrap_or(0)
        };
        println!(
            "  node {}: {} gaps on arrival from the bus, {} read back from the store",
            node.addr,
            figure("alongside_bus_gaps_total "),
            figure("alongside_bus_gap_reads_total ")
        );
    }
    drop(load);
    drop(nodes);
}

/// Stored messages per second: `--senders` sockets, each in a room of its own, each
/// keeping `--window` sends in flight for `--seconds`; on SQLite, then on PostgreSQL.
async fn durable(o: &Options) {
    let database = fresh_database(o).await;
    let mut figures = Vec::new();
    for (name, target) in
        [("sqlite", Target::alongside(&[])), ("postgres", Target::alongside_on(Some(&database.url), &[]))]
    {
        let tokens = accounts(&target, o.senders);
        let mut tasks = Vec::new();
        let start = Instant::now();
        let until = start + Duration::from_secs_f64(o.seconds);
        for (i, token) in tokens.iter().enumerate() {
            let mut socket = open_socket(&target, i, o.addresses).await;
            setup_request(&mut socket, json!({"type": "auth", "token": token, "id": "auth"})).await;
            let room = format!("journal-{i}");
            setup_request(&mut socket, json!({"type": "create_room", "name": room, "id": "create"})).await;
            let window = o.window;
            tasks.push(tokio::spawn(async move {
                let mut acks = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).unwrap();
                let mut in_flight = 0;
                let send = || {
                    let at = start.elapsed().as_micros();
                    let frame = json!({"type": "send", "room": room, "body": format!("~~{at} 0 durable"), "id": 1});
                    raw::text_frame(frame.to_string().as_bytes(), at as u32)
                };
                for _ in 0..window {
                    let frame = send();
                    socket.writer.write_all(&frame).await.unwrap();
                    in_flight += 1;
                }
                while in_flight > 0 {
                    let frame = match tokio::time::timeout(Duration::from_secs(30), socket.reader.next()).await {
                        Ok(raw::Incoming::Text(frame)) => frame,
                        Ok(raw::Incoming::Other) => continue,
                        _ => panic!("the server closed or stalled"),
                    };
                    if !frame.starts_with(b"{\"type\":\"ok\"") {
                        continue;
                    }
                    if let Some((sent, _)) = stamp(frame) {
                        let _ = acks.record((start.elapsed().as_micros() as u64).saturating_sub(sent).max(1));
                    }
                    in_flight -= 1;
                    if Instant::now() < until {
                        let frame = send();
                        socket.writer.write_all(&frame).await.unwrap();
                        in_flight += 1;
                    }
                }
                acks
            }));
        }
        let mut acks = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).unwrap();
        for task in tasks {
            acks.add(task.await.unwrap()).unwrap();
        }
        let seconds = start.elapsed().as_secs_f64();
        let per_s = acks.len() as f64 / seconds;
        println!(
            "alongside on {name}: {} senders x {} in flight: {:.0} messages stored and acknowledged per second, ack p50 {:.2} p99 {:.2} ms",
            o.senders,
            o.window,
            per_s,
            acks.value_at_quantile(0.5) as f64 / 1000.0,
            acks.value_at_quantile(0.99) as f64 / 1000.0
        );
        figures.push(per_s);
    }
    println!("ratio: postgres stores {:.2}x what sqlite stores per second", figures[1] / figures[0]);
}

#[tokio::main]
async fn main() {
    let o = options();
    match o.scenario.as_str() {
        "room" => compare(&o).await,
        "rooms" => compare(&Options { rooms: o.rooms.max(2), ..o.clone() }).await,
        "idle" => idle(&o).await,
        "storm" => storm(&o).await,
        "slowloris" => slowloris(&o).await,
        "stall" => stall(&o).await,
        "cluster" => cluster(&o).await,
        "durable" => durable(&o).await,
        "summit" => summit(&o).await,
        other => {
            panic!("unknown scenario {other}: room, rooms, idle, storm, slowloris, stall, cluster, durable or summit")
        }
    }
}
