//! The fan-out load generator: Alongside side by side with a Node `ws` broadcast peer.
//!
//! Scenarios (`--scenario`):
//! - `room`: `--sockets` N in one room, `--senders` S of them sending; a rate ladder
//!   (`--ladder` messages/s in total, per rung) climbs until a rung fails (less than
//!   100 % delivered, or delivery p99 ≥ 200 ms). Runs against Alongside, then against the
//!   peer (`--peer`), and prints both and the ratio of their sustained deliveries/s.
//!   With `--cw`, every message carries a content warning (`grief`, with the stamp as
//!   its note) and the accounts alternate between showing and collapsing it, so each
//!   message goes out in two variants (Alongside only).
//! - `rooms`: `--rooms` K rooms of N/K sockets, one sender per room (Alongside only: the
//!   peer has no rooms).
//! - `idle`: N authenticated idle sockets; the server's resident memory per socket.
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
//!
//! Every body carries its send time (µs since the run started) and its rung, so each
//! delivery is an end-to-end latency sample and late arrivals never count for the next
//! rung. Readers scan frames for `"body":"` instead of parsing JSON, so the generator
//! spends its time on sockets, not on serde. Client sockets bind to several 127.0.0.x
//! source addresses, so tens of thousands of connections do not run out of ports.
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

/// A rung fails at or above this delivery p99.
const P99_LIMIT_MS: f64 = 200.0;
/// How long after the last send of a rung deliveries may still arrive.
const GRACE: Duration = Duration::from_secs(2);

#[derive(Clone)]
struct Options {
    scenario: String,
    sockets: usize,
    rooms: usize,
    senders: usize,
    ladder: Vec<f64>,
    seconds: f64,
    accounts: usize,
    addresses: u8,
    peer: bool,
    logins: f64,
    postgres: String,
    redis: String,
    window: usize,
    nodes: usize,
    cw: bool,
}

fn options() -> Options {
    let mut o = Options {
        scenario: "room".into(),
        sockets: 1000,
        rooms: 1,
        senders: 10,
        ladder: vec![100.0, 200.0, 400.0, 800.0, 1600.0],
        seconds: 5.0,
        accounts: 50,
        addresses: 8,
        peer: false,
        logins: 50.0,
        postgres: std::env::var("ALONGSIDE_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
        redis: std::env::var("ALONGSIDE_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        window: 8,
        nodes: 2,
        cw: false,
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
            "--ladder" => o.ladder = value().split(',').map(|r| r.parse().expect("--ladder R1,R2,...")).collect(),
            "--seconds" => o.seconds = value().parse().expect("--seconds S"),
            "--accounts" => o.accounts = value().parse().expect("--accounts N"),
            "--addresses" => o.addresses = value().parse().expect("--addresses N"),
            "--logins" => o.logins = value().parse().expect("--logins PER_S"),
            "--peer" => o.peer = true,
            "--cw" => o.cw = true,
            "--postgres" => o.postgres = value(),
            "--redis" => o.redis = value(),
            "--window" => o.window = value().parse().expect("--window N"),
            "--nodes" => o.nodes = value().parse::<usize>().expect("--nodes N (1 to 4)").clamp(1, 4),
            other => panic!("unknown option {other}"),
        }
    }
    o
}

// ---------------------------------------------------------------------------------
// The servers under test
// ---------------------------------------------------------------------------------

/// A server process and the address it listens on.
struct Target {
    child: Child,
    addr: SocketAddr,
    peer: bool,
    _dir: Option<tempfile::TempDir>,
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
            .env("ALONGSIDE_LOG", "warn")
            // The generator's minimal client does not answer pings.
            .env("ALONGSIDE_PING_INTERVAL_S", "3600");
        for (key, value) in extra_env {
            command.env(key, value);
        }
        Target::spawn(command, "alongside listening on http://", false, Some(dir))
    }

    fn peer() -> Target {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/peer/server.mjs");
        let mut command = Command::new("node");
        command.arg(script);
        Target::spawn(command, "peer listening on http://", true, None)
    }

    fn spawn(mut command: Command, prefix: &str, peer: bool, dir: Option<tempfile::TempDir>) -> Target {
        let mut child = command.stdout(Stdio::piped()).spawn().expect("start the server under test");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = loop {
            let line = lines.next().expect("server output").expect("read server output");
            if let Some(addr) = line.strip_prefix(prefix) {
                break addr.parse().expect("listen address");
            }
        };
        Target { child, addr, peer, _dir: dir }
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

fn accounts(target: &Target, n: usize) -> Vec<String> {
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
async fn open_socket(addr: SocketAddr, n: usize, addresses: u8) -> Socket {
    let source = Ipv4Addr::new(127, 0, 0, 2 + (n % usize::from(addresses.max(1))) as u8);
    let tcp = TcpSocket::new_v4().unwrap();
    tcp.bind(SocketAddr::from((source, 0))).expect("bind a loopback source address");
    let stream = tcp.connect(addr).await.expect("connect");
    stream.set_nodelay(true).unwrap();
    let (reader, writer) = raw::handshake(stream, addr).await;
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
    let mut sockets = Vec::with_capacity(o.sockets);
    let mut created = std::collections::HashSet::new();
    for i in 0..o.sockets {
        let target = targets[i % targets.len()];
        let mut socket = open_socket(target.addr, i, o.addresses).await;
        if !target.peer {
            let token = if o.rooms > 1 {
                let per_room = o.sockets / o.rooms;
                let accounts_per_room = (tokens.len() / o.rooms).max(1);
                &tokens[(i / per_room) * accounts_per_room + (i % per_room) % accounts_per_room]
            } else {
                &tokens[i % tokens.len()]
            };
            setup_request(&mut socket, json!({"type": "auth", "token": token, "id": "auth"})).await;
            if o.cw && (i % tokens.len()) % 2 == 1 {
                let show = json!({"type": "set_preferences", "cw": {"grief": "show"}, "id": "cw"});
                setup_request(&mut socket, show).await;
            }
            if let Some(room) = room_of(i) {
                if created.insert(room.clone()) {
                    setup_request(&mut socket, json!({"type": "create_room", "name": room, "id": "create"})).await;
                }
                setup_request(&mut socket, json!({"type": "join", "room": room, "id": "join"})).await;
            }
        }
        sockets.push(socket);
    }
    sockets
}

// ---------------------------------------------------------------------------------
// Measuring
// ---------------------------------------------------------------------------------

/// What one reader saw in the current rung.
struct ReaderStats {
    delivery_us: Histogram<u64>,
    ack_us: Histogram<u64>,
    deliveries: u64,
}

impl ReaderStats {
    fn new() -> ReaderStats {
        ReaderStats {
            delivery_us: Histogram::new_with_bounds(1, 120_000_000, 3).unwrap(),
            ack_us: Histogram::new_with_bounds(1, 120_000_000, 3).unwrap(),
            deliveries: 0,
        }
    }
}

/// Finds `"body":"<send µs> <rung>` in a frame without parsing the JSON (or, in a
/// message collapsed under its content warning, `"cw_note":"<send µs> <rung>`).
fn stamp(frame: &[u8]) -> Option<(u64, u32)> {
    let after = |key: &[u8]| frame.windows(key.len()).position(|w| w == key).map(|at| at + key.len());
    let at = after(b"\"body\":\"").or_else(|| after(b"\"cw_note\":\""))?;
    let mut numbers = frame[at..].split(|b| *b == b' ' || *b == b'"');
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
    closed: AtomicU64,
}

fn spawn_reader(mut reader: raw::Reader, run: Arc<Run>, stats: Arc<Mutex<ReaderStats>>) {
    tokio::spawn(async move {
        loop {
            let frame = match reader.next().await {
                raw::Incoming::Text(frame) => frame,
                raw::Incoming::Other => continue,
                raw::Incoming::Closed => {
                    run.closed.fetch_add(1, Relaxed);
                    return;
                }
            };
            let Some((sent, rung)) = stamp(frame) else { continue };
            if rung != run.rung.load(Relaxed) {
                continue;
            }
            let latency = (run.start.elapsed().as_micros() as u64).saturating_sub(sent).max(1);
            let mut stats = stats.lock().unwrap();
            if frame.starts_with(b"{\"type\":\"ok\"") {
                let _ = stats.ack_us.record(latency);
            } else {
                let _ = stats.delivery_us.record(latency);
                stats.deliveries += 1;
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
    max_ms: f64,
    ack_p50_ms: f64,
    ack_p99_ms: f64,
    closed: u64,
    /// Cores used on average during the rung: the server, and this generator.
    server_cores: f64,
    generator_cores: f64,
}

impl Rung {
    fn ok(&self) -> bool {
        self.delivered >= self.expected && self.expected > 0 && self.p99_ms < P99_LIMIT_MS && self.closed == 0
    }

    fn deliveries_per_s(&self) -> f64 {
        self.delivered as f64 / self.seconds
    }

    fn print(&self, ack: bool) {
        let pct = 100.0 * self.delivered as f64 / self.expected.max(1) as f64;
        print!(
            "  {:>6.0} msg/s (sent {:>6.0}/s): {:>9.0} deliveries/s, {:>7.3} % delivered, latency p50 {:>7.2} p99 {:>7.2} max {:>8.2} ms",
            self.rate,
            self.sent as f64 / self.seconds,
            self.deliveries_per_s(),
            pct,
            self.p50_ms,
            self.p99_ms,
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
    /// The server processes (one, or a cluster's nodes): their CPU is summed.
    server_pids: Vec<String>,
    run: Arc<Run>,
    stats: Vec<Arc<Mutex<ReaderStats>>>,
    senders: Vec<(OwnedWriteHalf, String, u64)>,
    /// Every message carries a content warning.
    cw: bool,
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
    let run = Arc::new(Run { start: Instant::now(), rung: AtomicU32::new(0), closed: AtomicU64::new(0) });
    let mut stats = Vec::new();
    let mut senders = Vec::new();
    let mut quiet = Vec::new();
    let per_room = o.sockets / o.rooms.max(1);
    for (i, socket) in sockets.into_iter().enumerate() {
        let Socket { reader, writer: sink } = socket;
        let reader_stats = Arc::new(Mutex::new(ReaderStats::new()));
        stats.push(reader_stats.clone());
        spawn_reader(reader, run.clone(), reader_stats);
        // Senders are the first sockets of each room.
        let is_sender = if o.rooms > 1 { i % per_room == 0 } else { i < o.senders };
        if is_sender {
            let room = room_of(i);
            let n = members(&room);
            senders.push((sink, room, n));
        } else {
            quiet.push(sink);
        }
    }
    let server_pids = targets.iter().map(|target| target.child.id().to_string()).collect();
    Load { server_pids, run, stats, senders, cw: o.cw, _quiet: quiet }
}

/// Runs one rung at `rate` messages/s in total, spread over the senders.
async fn rung(load: &mut Load, rung: u32, rate: f64, seconds: f64) -> Rung {
    for stats in &load.stats {
        *stats.lock().unwrap() = ReaderStats::new();
    }
    load.run.rung.store(rung, Relaxed);
    let started = Instant::now();
    let servers_cpu = |load: &Load| load.server_pids.iter().map(|pid| cpu_seconds(pid)).sum::<f64>();
    let (server_cpu, generator_cpu) = (servers_cpu(load), cpu_seconds("self"));
    let closed_before = load.run.closed.load(Relaxed);
    let per_sender = rate / load.senders.len() as f64;
    let run = load.run.clone();
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let cw = load.cw;
    let tasks = load.senders.drain(..).enumerate().map(|(index, (mut sink, room, members))| {
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
                let body = format!("{at} {rung} load");
                let frame = if cw {
                    json!({"type": "send", "room": room, "body": body, "cw": ["grief"], "cw_note": body})
                } else {
                    json!({"type": "send", "room": room, "body": body})
                }
                .to_string();
                if sink.write_all(&raw::text_frame(frame.as_bytes(), at as u32)).await.is_err() {
                    break;
                }
                sent += 1;
            }
            (sink, room, members, sent)
        })
    });
    let mut sent = 0;
    let mut expected = 0;
    for task in futures_util::future::join_all(tasks).await {
        let (sink, room, members, n) = task.unwrap();
        sent += n;
        expected += n * members;
        load.senders.push((sink, room, members));
    }
    // Give in-flight deliveries their grace period, but stop early once all are in.
    let grace_end = Instant::now() + GRACE;
    while Instant::now() < grace_end {
        let delivered: u64 = load.stats.iter().map(|s| s.lock().unwrap().deliveries).sum();
        if delivered >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    load.run.rung.store(u32::MAX, Relaxed);
    let wall = started.elapsed().as_secs_f64();
    let server_cores = (servers_cpu(load) - server_cpu) / wall;
    let generator_cores = (cpu_seconds("self") - generator_cpu) / wall;
    let mut delivery = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).unwrap();
    let mut ack = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).unwrap();
    let mut delivered = 0;
    for stats in &load.stats {
        let stats = stats.lock().unwrap();
        delivery.add(&stats.delivery_us).unwrap();
        ack.add(&stats.ack_us).unwrap();
        delivered += stats.deliveries;
    }
    let ms = |h: &Histogram<u64>, q: f64| if h.is_empty() { f64::NAN } else { h.value_at_quantile(q) as f64 / 1000.0 };
    Rung {
        rate,
        sent,
        expected,
        delivered,
        seconds,
        p50_ms: ms(&delivery, 0.5),
        p99_ms: ms(&delivery, 0.99),
        max_ms: if delivery.is_empty() { f64::NAN } else { delivery.max() as f64 / 1000.0 },
        ack_p50_ms: ms(&ack, 0.5),
        ack_p99_ms: ms(&ack, 0.99),
        closed: load.run.closed.load(Relaxed) - closed_before,
        server_cores,
        generator_cores,
    }
}

/// Climbs the ladder until a rung fails; returns the last good rung.
async fn ladder(load: &mut Load, o: &Options, ack: bool) -> Option<Rung> {
    let mut best: Option<Rung> = None;
    for (i, rate) in o.ladder.iter().enumerate() {
        let result = rung(load, i as u32 + 1, *rate, o.seconds).await;
        result.print(ack);
        if !result.ok() {
            break;
        }
        best = Some(result);
    }
    best
}

// ---------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------

async fn one_room(o: &Options, target: Target) -> Option<Rung> {
    let tokens = if target.peer { Vec::new() } else { accounts(&target, o.accounts) };
    let sockets = connect_all(&target, o, &tokens, |_| Some("summit".to_string())).await;
    let n = o.sockets as u64;
    let mut load = start_load(&[&target], sockets, o, |_| "summit".to_string(), |_| n);
    let name = if target.peer { "node ws peer" } else { "alongside" };
    let warned =
        if o.cw && !target.peer { ", every message with a content warning (half shown, half collapsed)" } else { "" };
    println!("{name}: {} sockets in one room, {} senders, {} s per rung{warned}", o.sockets, o.senders, o.seconds);
    let best = ladder(&mut load, o, !target.peer).await;
    match &best {
        Some(r) => println!("  sustained: {:.0} deliveries/s ({:.0} msg/s)", r.deliveries_per_s(), r.rate),
        None => println!("  sustained: no rung passed"),
    }
    best
}

async fn many_rooms(o: &Options) {
    let target = Target::alongside(&[]);
    let tokens = accounts(&target, o.rooms * (o.accounts / o.rooms).max(1));
    let per_room = o.sockets / o.rooms;
    let room_of = move |i: usize| format!("room-{}", i / per_room);
    let sockets = connect_all(&target, o, &tokens, |i| Some(room_of(i))).await;
    let mut load = start_load(&[&target], sockets, o, room_of, |_| per_room as u64);
    println!("alongside: {} rooms x {} sockets, one sender per room, {} s per rung", o.rooms, per_room, o.seconds);
    if let Some(best) = ladder(&mut load, o, true).await {
        println!("  sustained: {:.0} deliveries/s ({:.0} msg/s)", best.deliveries_per_s(), best.rate);
    }
}

async fn idle(o: &Options) {
    let target = Target::alongside(&[]);
    let tokens = accounts(&target, o.accounts);
    // Each account joins the room once, as members do; the measured sockets are their
    // later connections: authenticated, receiving the room, idle.
    let setup = Options { sockets: o.accounts, ..o.clone() };
    drop(connect_all(&target, &setup, &tokens, |_| Some("lobby".to_string())).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = target.rss_kib();
    let sockets = connect_all(&target, o, &tokens, |_| None).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = target.rss_kib();
    let per_socket = (after.saturating_sub(before)) as f64 * 1024.0 / o.sockets as f64;
    println!(
        "alongside: {} idle authenticated sockets (members of one room): server RSS {} -> {} KiB, {:.0} bytes per socket",
        o.sockets, before, after, per_socket
    );
    drop(sockets);
}

async fn storm(o: &Options) {
    let target = Target::alongside(&[]);
    let tokens = accounts(&target, o.accounts);
    let sockets = connect_all(&target, o, &tokens, |_| Some("summit".to_string())).await;
    let n = o.sockets as u64;
    let mut load = start_load(&[&target], sockets, o, |_| "summit".to_string(), |_| n);
    let rate = o.ladder[0];
    println!("alongside: {} sockets in one room at {rate} msg/s, without and with {} logins/s", o.sockets, o.logins);
    let calm = rung(&mut load, 1, rate, o.seconds).await;
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
    let stormy = rung(&mut load, 2, rate, o.seconds).await;
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
    let mut author = open_socket(target.addr, 0, 1).await;
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
        let mut socket = open_socket(target.addr, n, o.addresses).await;
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
    let single = one_room(o, Target::alongside(&[])).await;
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
            let mut socket = open_socket(target.addr, i, o.addresses).await;
            setup_request(&mut socket, json!({"type": "auth", "token": token, "id": "auth"})).await;
            let room = format!("journal-{i}");
            setup_request(&mut socket, json!({"type": "create_room", "name": room, "id": "create"})).await;
            let window = o.window;
            tasks.push(tokio::spawn(async move {
                let mut acks = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).unwrap();
                let mut in_flight = 0;
                let send = || {
                    let at = start.elapsed().as_micros();
                    let frame = json!({"type": "send", "room": room, "body": format!("{at} 0 durable"), "id": 1});
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
        "room" => {
            let ours = one_room(&o, Target::alongside(&[])).await;
            if o.peer {
                let theirs = one_room(&o, Target::peer()).await;
                if let (Some(ours), Some(theirs)) = (ours, theirs) {
                    println!(
                        "ratio: alongside sustains {:.1}x the peer's deliveries/s ({:.0} vs {:.0})",
                        ours.deliveries_per_s() / theirs.deliveries_per_s(),
                        ours.deliveries_per_s(),
                        theirs.deliveries_per_s()
                    );
                }
            }
        }
        "rooms" => many_rooms(&o).await,
        "idle" => idle(&o).await,
        "storm" => storm(&o).await,
        "slowloris" => slowloris(&o).await,
        "stall" => stall(&o).await,
        "cluster" => cluster(&o).await,
        "durable" => durable(&o).await,
        other => panic!("unknown scenario {other}: room, rooms, idle, storm, slowloris, stall, cluster or durable"),
    }
}
