//! What every integration test shares: a real server on port 0 over a temporary SQLite
//! file, a minimal HTTP client over a real TCP socket, and a WebSocket client whose
//! every wait has a timeout.

use alongside::metrics::Metrics;
use alongside::protocol::{Message, Role};
use alongside::store::{self, CommitListener, Store};
use alongside::{Config, Server};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::WebSocketStream;

/// A byte stream a WebSocket client runs over: plain TCP, or TLS over it.
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// The longest any single wait in a test may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// Settings for tests: limits that would get in the way of many quick requests are off;
/// tests of those limits turn them back on.
pub fn test_config(database: &str) -> Config {
    Config {
        listen: "127.0.0.1:0".into(),
        database: database.into(),
        request_rate_per_s: 0.0,
        login_failures_per_account_address: 0,
        login_slowdown_ms: 0,
        login_attempts_per_address: 0,
        registrations_per_address: 0,
        registrations_per_hour: 0,
        max_sockets_per_address: 0,
        max_sockets_per_account: 0,
        presence_grace_ms: 0,
        shutdown_grace_s: 5.0,
        ..Config::default()
    }
}

/// `ALONGSIDE_TEST_LOG_DIR=DIR` (CI sets it) writes every server's log, at debug and as
/// JSON, to `DIR/server.log`, and every secret the tests hand the server (passwords,
/// tokens, message texts) to `DIR/secrets.txt`; `.ci/log-secrets` then checks that no
/// secret reached the log.
fn log_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("ALONGSIDE_TEST_LOG_DIR")?);
    std::fs::create_dir_all(&dir).expect("log dir");
    Some(dir)
}

/// Notes a secret for the log check (see [`log_dir`]); short ones (`hi`) are ordinary
/// words a log may well contain, so only those of 8 characters or more count.
pub fn note_secret(secret: &str) {
    if secret.chars().count() < 8 || secret.contains('\n') {
        return;
    }
    if let Some(dir) = log_dir() {
        let mut file =
            std::fs::File::options().create(true).append(true).open(dir.join("secrets.txt")).expect("secrets file");
        std::io::Write::write_all(&mut file, format!("{secret}\n").as_bytes()).expect("note a secret");
    }
}

/// A running server with its own database file.
pub struct TestServer {
    pub server: Option<Server>,
    pub addr: SocketAddr,
    pub db_path: PathBuf,
    pub config: Config,
    _dir: Arc<tempfile::TempDir>,
    _database: Option<Arc<alongside::store::postgres::test_database::TestDatabase>>,
}

/// `ALONGSIDE_TEST_ON_CLUSTER=1` runs every test's server as a node of a one-node
/// network on PostgreSQL and Redis (`ALONGSIDE_TEST_POSTGRES`, `ALONGSIDE_TEST_REDIS`)
/// instead of SQLite: the whole suite then holds the cluster to every promise. Tests
/// about the SQLite file itself say so and keep to SQLite.
pub fn on_cluster() -> bool {
    std::env::var("ALONGSIDE_TEST_ON_CLUSTER").is_ok_and(|v| v == "1")
}

impl TestServer {
    /// A server with the test settings.
    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    /// A server with the test settings changed by `tweak`.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        if !on_cluster() {
            return TestServer::start_sqlite_with(tweak).await;
        }
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let db_path = dir.path().join("unused");
        use alongside::store::postgres::test_database;
        let postgres = test_database::server().expect("ALONGSIDE_TEST_ON_CLUSTER needs ALONGSIDE_TEST_POSTGRES");
        let database = test_database::create(&postgres).await;
        let mut config = test_config(&database.url);
        config.bus =
            std::env::var("ALONGSIDE_TEST_REDIS").expect("ALONGSIDE_TEST_ON_CLUSTER needs ALONGSIDE_TEST_REDIS");
        config.cluster = database.url.rsplit('/').next().unwrap_or("test").to_string();
        tweak(&mut config);
        let mut server = TestServer::start_on(config, db_path, dir).await;
        server._database = Some(Arc::new(database));
        server
    }

    /// A server on its own SQLite file even when the suite runs on a cluster (for the
    /// tests about the file itself).
    pub async fn start_sqlite_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let db_path = dir.path().join("alongside.db");
        let mut config = test_config(&format!("sqlite://{}", db_path.display()));
        tweak(&mut config);
        TestServer::start_on(config, db_path, dir).await
    }

    /// A server with exactly `config` (a cluster node on a shared database).
    pub async fn start_config(config: Config) -> TestServer {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let db_path = dir.path().join("unused");
        TestServer::start_on(config, db_path, dir).await
    }

    async fn start_on(config: Config, db_path: PathBuf, dir: Arc<tempfile::TempDir>) -> TestServer {
        if let Some(dir) = log_dir() {
            let file =
                std::fs::File::options().create(true).append(true).open(dir.join("server.log")).expect("log file");
            let filter: tracing_subscriber::filter::Targets = "info,alongside=debug,sqlx=debug".parse().unwrap();
            use tracing_subscriber::layer::SubscriberExt;
            use tracing_subscriber::util::SubscriberInitExt;
            let layer = tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(true)
                .with_writer(std::sync::Mutex::new(file));
            let _ = tracing_subscriber::registry().with(layer).with(filter).try_init();
        }
        // ALONGSIDE_TEST_LOG=debug shows the server's log while debugging a test.
        if let Ok(filter) = std::env::var("ALONGSIDE_TEST_LOG") {
            let filter: tracing_subscriber::filter::Targets = filter.parse().expect("log filter");
            use tracing_subscriber::layer::SubscriberExt;
            use tracing_subscriber::util::SubscriberInitExt;
            let _ = tracing_subscriber::registry()
                .with(tracing_subscriber::fmt::layer().with_test_writer())
                .with(filter)
                .try_init();
        }
        let server = Server::start(config.clone()).await.expect("server starts");
        let addr = server.local_addr();
        TestServer { server: Some(server), addr, db_path, config, _dir: dir, _database: None }
    }

    /// Shuts this server down gracefully and starts a new one on the same database.
    pub async fn restart(mut self) -> TestServer {
        self.server.take().expect("running").shutdown().await;
        let config = Config { listen: "127.0.0.1:0".into(), ..self.config.clone() };
        let mut server = TestServer::start_on(config, self.db_path.clone(), self._dir.clone()).await;
        server._database = self._database.clone();
        server
    }

    /// `ws://` URL of the socket endpoint.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Registers `name` (password `password-<name>`) and logs in; returns the token.
    pub async fn user(&self, name: &str) -> String {
        self.register(name).await;
        self.login(name).await
    }

    /// Registers `name` with a global `role` (set through a second connection to the
    /// same database, as `alongside user set-role` does) and logs in.
    pub async fn user_with_role(&self, name: &str, role: Role) -> String {
        self.register(name).await;
        let store = open_store(&self.config.database).await;
        store.update_user_role(name, role, None).await.expect("set role");
        store.close().await;
        self.login(name).await
    }

    /// Registers `name` with the password `password-<name>`.
    pub async fn register(&self, name: &str) {
        note_secret(&format!("password-{name}"));
        let (status, body) =
            self.post("/api/v1/register", &json!({"username": name, "password": format!("password-{name}")})).await;
        assert_eq!(status, 201, "register {name}: {body}");
    }

    /// Logs `name` in; returns the token.
    pub async fn login(&self, name: &str) -> String {
        let (status, body) =
            self.post("/api/v1/login", &json!({"username": name, "password": format!("password-{name}")})).await;
        assert_eq!(status, 200, "login {name}: {body}");
        let token = serde_json::from_str::<Value>(&body).unwrap()["token"].as_str().unwrap().to_string();
        note_secret(&token);
        token
    }

    /// POSTs JSON; returns status and body.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, String) {
        http(self.addr, "POST", path, &[], Some(&body.to_string())).await
    }

    /// Waits until `/metrics` has the line `line`.
    pub async fn wait_for_metric(&self, line: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let (_, text) = http(self.addr, "GET", "/metrics", &[], None).await;
            if text.lines().any(|l| l == line) {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "metrics never showed `{line}`:\n{text}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A client that has authenticated as the owner of `token`.
    pub async fn client(&self, token: &str) -> Client {
        let mut client = Client::connect(&self.ws_url(), None).await;
        let reply = client.request(json!({"type": "auth", "token": token})).await;
        assert_eq!(reply["type"], "ok", "auth failed: {reply}");
        client
    }

    /// Registers, logs in and connects `name` in one go.
    pub async fn member(&self, name: &str) -> Client {
        let token = self.user(name).await;
        self.client(&token).await
    }

    /// Registers and connects `name`, who then joins `room`.
    pub async fn member_of(&self, name: &str, room: &str) -> Client {
        let mut client = self.member(name).await;
        client.ok(json!({"type": "join", "room": room})).await;
        client
    }

    /// A moderator `owner`, connected, who has just created the topic room `room`.
    pub async fn room_owner(&self, owner: &str, room: &str) -> Client {
        let token = self.user_with_role(owner, Role::Moderator).await;
        let mut client = self.client(&token).await;
        client.ok(json!({"type": "create_room", "name": room})).await;
        client
    }
}

struct NoListener;
impl CommitListener for NoListener {
    fn message_committed(&self, _: &Message) {}
}

/// A second, independent connection to a server's database.
pub async fn open_store(url: &str) -> Arc<dyn Store> {
    store::open(url, Arc::new(NoListener), Arc::new(Metrics::default())).await.expect("open store")
}

/// An HTTP answer with its headers (lower-case names).
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    /// The value of header `name` (lower case), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request from the loopback address `source` (say 127.0.0.2), so the
/// server sees a client of its own; JSON body when given.
pub async fn http_from(source: &str, addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> Answer {
    http_from_with(source, addr, method, path, &[], body).await
}

/// [`http_from`] with extra request headers (say, `X-Forwarded-For`).
pub async fn http_from_with(
    source: &str,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Answer {
    let exchange = async {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind(format!("{source}:0").parse().expect("source address")).expect("bind the source address");
        let mut stream = socket.connect(addr).await.expect("connect");
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        match body {
            Some(body) => request
                .push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len())),
            None => request.push_str("\r\n"),
        }
        stream.write_all(request.as_bytes()).await.expect("write request");
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.expect("read response");
        let response = String::from_utf8(response).expect("utf-8 response");
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let mut lines = head.lines();
        let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("status");
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
            .collect();
        Answer { status, headers, body: body.to_string() }
    };
    tokio::time::timeout(WAIT, exchange).await.expect("HTTP request timed out")
}

/// One HTTP/1.1 request over a fresh TCP connection; returns status and body.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, String) {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(body) = body {
            request
                .push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()));
        } else {
            request.push_str("\r\n");
        }
        stream.write_all(request.as_bytes()).await.expect("write request");
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.expect("read response");
        let response = String::from_utf8(response).expect("utf-8 response");
        let status: u16 = response.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status line");
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let chunked = head.lines().any(|line| line.eq_ignore_ascii_case("transfer-encoding: chunked"));
        (status, if chunked { dechunk(body) } else { body.to_string() })
    };
    tokio::time::timeout(WAIT, exchange).await.expect("HTTP request timed out")
}

/// A chunked body (a streamed answer) put back together; panics on a malformed or
/// unfinished one, so a stream cut short fails the test.
fn dechunk(mut body: &str) -> String {
    let mut whole = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").expect("a chunk size line");
        let size = usize::from_str_radix(size.trim(), 16).expect("a hexadecimal chunk size");
        if size == 0 {
            return whole;
        }
        whole.push_str(&rest[..size]);
        body = rest[size..].strip_prefix("\r\n").expect("CRLF after a chunk");
    }
}

/// Asserts an HTTP answer is the error `status` with `code`.
pub fn assert_http_error(answer: &(u16, String), status: u16, code: &str) {
    assert_eq!((answer.0, http_error_code(&answer.1).as_str()), (status, code), "{}", answer.1);
}

/// The error code of an HTTP error body.
pub fn http_error_code(body: &str) -> String {
    let value: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("error body is JSON: {body}"));
    value["error"]["code"].as_str().unwrap_or_else(|| panic!("error body has a code: {body}")).to_string()
}

/// A WebSocket client that keeps events that arrive while it waits for a reply.
pub struct Client {
    ws: WebSocketStream<Box<dyn Io>>,
    events: VecDeque<Value>,
    next_id: i64,
}

impl Client {
    /// Connects, optionally sending an `Origin` header.
    pub async fn connect(url: &str, origin: Option<&str>) -> Client {
        Client::try_connect(url, origin).await.expect("WebSocket upgrade")
    }

    /// Connects; `Err(status)` if the upgrade is refused.
    pub async fn try_connect(url: &str, origin: Option<&str>) -> Result<Client, u16> {
        let request = url.into_client_request().unwrap();
        let authority = request.uri().authority().expect("a ws:// URL names its host").as_str().to_string();
        let tcp = tokio::time::timeout(WAIT, TcpStream::connect(authority)).await.expect("connect timed out");
        Client::try_connect_over(request, origin, Box::new(tcp.expect("TCP connect"))).await
    }

    /// Upgrades over an open connection (`wss://` over a TLS stream); `Err(status)` if
    /// the upgrade is refused.
    pub async fn try_connect_over(
        mut request: tokio_tungstenite::tungstenite::handshake::client::Request,
        origin: Option<&str>,
        io: Box<dyn Io>,
    ) -> Result<Client, u16> {
        if let Some(origin) = origin {
            request.headers_mut().insert("Origin", origin.parse().unwrap());
        }
        let connected = tokio::time::timeout(WAIT, tokio_tungstenite::client_async(request, io))
            .await
            .expect("WebSocket handshake timed out");
        match connected {
            Ok((ws, _)) => Ok(Client { ws, events: VecDeque::new(), next_id: 1 }),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
            Err(err) => panic!("connect failed: {err}"),
        }
    }

    /// Sends one raw frame.
    pub async fn send_frame(&mut self, frame: Frame) {
        tokio::time::timeout(WAIT, self.ws.send(frame)).await.expect("send timed out").expect("send");
    }

    /// Sends a JSON object as a text frame.
    pub async fn send_json(&mut self, value: &Value) {
        self.send_frame(Frame::text(value.to_string())).await;
    }

    /// The next JSON frame from the socket (not from the kept events).
    async fn read_json(&mut self) -> Value {
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("timed out waiting for a frame")
                .expect("socket ended")
                .expect("read frame");
            match frame {
                Frame::Text(text) => return serde_json::from_str(&text).expect("server frames are JSON"),
                Frame::Close(close) => panic!("socket closed while waiting for a frame: {close:?}"),
                _ => continue,
            }
        }
    }

    /// Sends a request with a fresh id and returns its reply; events that arrive first
    /// are kept for `event`.
    pub async fn request(&mut self, mut request: Value) -> Value {
        for secret in [&request["body"], &request["token"]] {
            if let Some(secret) = secret.as_str() {
                note_secret(secret);
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        request["id"] = json!(id);
        self.send_json(&request).await;
        self.reply_to(json!(id)).await
    }

    /// Reads until the reply echoing `id`, keeping events.
    pub async fn reply_to(&mut self, id: Value) -> Value {
        loop {
            let frame = self.read_json().await;
            if frame["type"] == "ok" || frame["type"] == "error" {
                if frame["id"] == id {
                    return frame;
                }
                panic!("reply for another request {frame} while waiting for id {id}");
            }
            self.events.push_back(frame);
        }
    }

    /// A request that must succeed.
    pub async fn ok(&mut self, request: Value) -> Value {
        let reply = self.request(request.clone()).await;
        assert_eq!(reply["type"], "ok", "{request} failed: {reply}");
        reply
    }

    /// A request that must fail with `code`; returns the error frame.
    pub async fn refused(&mut self, request: Value, code: &str) -> Value {
        let reply = self.request(request.clone()).await;
        assert_eq!(reply["type"], "error", "{request} should fail with {code}: {reply}");
        assert_eq!(reply["code"], code, "{request}: {reply}");
        reply
    }

    /// The next event (kept or new).
    pub async fn event(&mut self) -> Value {
        match self.events.pop_front() {
            Some(event) => event,
            None => self.read_json().await,
        }
    }

    /// The next event of `kind`, skipping others.
    pub async fn event_of(&mut self, kind: &str) -> Value {
        loop {
            let event = self.event().await;
            if event["type"] == kind {
                return event;
            }
        }
    }

    /// Asserts no frame arrives within `window` (used after the thing that would send
    /// it has already been acknowledged, so the window only guards against a late one).
    pub async fn assert_quiet(&mut self, window: Duration) {
        if let Some(event) = self.events.pop_front() {
            panic!("unexpected frame: {event}");
        }
        let deadline = tokio::time::Instant::now() + window;
        // Quiet means open and saying nothing: a socket that ended is not quiet.
        while let Ok(next) = tokio::time::timeout_at(deadline, self.ws.next()).await {
            match next {
                // Pings are the server checking the socket is alive, not messages.
                Some(Ok(Frame::Ping(_) | Frame::Pong(_))) => continue,
                Some(Ok(frame)) => panic!("unexpected frame: {frame:?}"),
                Some(Err(err)) => panic!("the socket failed while it should be quiet: {err}"),
                None => panic!("the socket ended while it should be quiet"),
            }
        }
    }

    /// Reads until the server closes the socket; returns the close code.
    pub async fn closed(&mut self) -> u16 {
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next()).await.expect("timed out waiting for the close");
            match frame {
                Some(Ok(Frame::Close(Some(close)))) => return u16::from(close.code),
                Some(Ok(Frame::Close(None))) => return u16::from(CloseCode::Status),
                Some(Ok(_)) => continue,
                Some(Err(err)) => panic!("socket failed before a close frame: {err}"),
                None => panic!("socket ended without a close frame"),
            }
        }
    }
}

/// The real binary, serving on a free port over a database file: for tests where the
/// process must die, or where the operating system must treat it as a process of its
/// own (file-size limits, capabilities).
pub struct Binary {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Binary {
    /// Starts `alongside serve` over `db`.
    pub fn start(db: &Path) -> Binary {
        Binary::start_with(db, |_| {})
    }

    /// Starts `alongside serve` over `db`, with `configure` applied to the command.
    pub fn start_with(db: &Path, configure: impl FnOnce(&mut Command)) -> Binary {
        Binary::start_on(&format!("sqlite://{}", db.display()), configure)
    }

    /// Starts `alongside serve` over the database at `url`, with `configure` applied.
    pub fn start_on(url: &str, configure: impl FnOnce(&mut Command)) -> Binary {
        let mut command = Command::new(env!("CARGO_BIN_EXE_alongside"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--database", url])
            .env("ALONGSIDE_MEMBERS_MAY_CREATE_ROOMS", "true")
            .env("ALONGSIDE_REQUEST_RATE_PER_S", "0")
            .env("ALONGSIDE_LOGIN_FAILURES_PER_ACCOUNT_ADDRESS", "0")
            .env("ALONGSIDE_LOGIN_ATTEMPTS_PER_ADDRESS", "0")
            .env("ALONGSIDE_REGISTRATIONS_PER_ADDRESS", "0")
            .env("ALONGSIDE_REGISTRATIONS_PER_HOUR", "0")
            .env("ALONGSIDE_MAX_SOCKETS_PER_ACCOUNT", "0")
            .env("ALONGSIDE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(dir) = log_dir() {
            let file =
                std::fs::File::options().create(true).append(true).open(dir.join("server.log")).expect("log file");
            command
                .env("ALONGSIDE_LOG", "info,alongside=debug,sqlx=debug")
                .env("ALONGSIDE_LOG_FORMAT", "json")
                .stderr(file);
        }
        configure(&mut command);
        let mut child = command.spawn().expect("spawn alongside");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let addr = line.strip_prefix("alongside listening on http://");
                if let Some(addr) = addr.or_else(|| line.strip_prefix("alongside listening on https://")) {
                    let _ = tx.send(addr.parse().expect("address"));
                }
            }
        });
        let addr = match rx.recv_timeout(WAIT) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!("the binary did not print its address within {WAIT:?}");
            }
        };
        Binary { child, addr }
    }

    /// The process id, for signals and resource limits.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// `ws://` URL of the socket endpoint.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// SIGKILL: the process gets no chance to finish anything.
    pub fn kill_9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }

    /// SIGTERM, then waits (with a timeout) for the graceful shutdown to finish.
    pub fn terminate(mut self) {
        // SAFETY: a signal to our own child, which has not been reaped yet.
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        let deadline = std::time::Instant::now() + WAIT;
        while self.child.try_wait().expect("wait").is_none() {
            assert!(std::time::Instant::now() < deadline, "no graceful exit within {WAIT:?} of SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the real binary with `args`; returns whether it succeeded, and its stdout and
/// stderr together.
pub async fn alongside_command(args: Vec<String>) -> (bool, String) {
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_alongside")).args(&args).output().expect("run alongside")
    });
    let output = tokio::time::timeout(WAIT * 3, output).await.expect("the command finished in time").unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}
