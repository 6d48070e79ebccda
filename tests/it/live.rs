//! Going live: HTTPS and WSS with the server's own certificate (reloaded on SIGHUP),
//! the redirecting plain-HTTP listener, and `/metrics` read by a Prometheus text parser,
//! on the public port or a listener of its own.

use crate::support::*;
use serde_json::json;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A test certificate authority, and server certificates for `localhost` it signs.
struct Authority {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl Authority {
    fn new() -> Authority {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, "Alongside test authority");
        let issuer = rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap();
        Authority { issuer }
    }

    /// Writes a fresh certificate and key for `localhost` to `cert` and `key`; returns
    /// the certificate's DER, to recognise it when a server presents it.
    fn issue(&self, cert: &Path, key: &Path) -> Vec<u8> {
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let pair = rcgen::KeyPair::generate().unwrap();
        let certificate = params.signed_by(&pair, &self.issuer).unwrap();
        std::fs::write(cert, certificate.pem()).unwrap();
        std::fs::write(key, pair.serialize_pem()).unwrap();
        certificate.der().to_vec()
    }

    /// A client that trusts this authority only.
    fn connector(&self) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.issuer.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }

    /// A TLS connection to `addr` as `localhost`, and the certificate it presented.
    async fn connect(&self, addr: SocketAddr) -> (tokio_rustls::client::TlsStream<TcpStream>, Vec<u8>) {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tokio::time::timeout(WAIT, self.connector().connect(name, tcp))
            .await
            .expect("TLS handshake timed out")
            .expect("TLS handshake");
        let presented = tls.get_ref().1.peer_certificates().expect("a certificate")[0].to_vec();
        (tls, presented)
    }

    /// An HTTP/1.1 GET over TLS; returns the whole raw answer.
    async fn get(&self, addr: SocketAddr, path: &str) -> String {
        let (mut tls, _) = self.connect(addr).await;
        let request = format!("GET {path} HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n\r\n", addr.port());
        tls.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(WAIT, tls.read_to_end(&mut answer)).await.expect("answer timed out").ok();
        String::from_utf8_lossy(&answer).into_owned()
    }

    /// A WebSocket over TLS (`wss://localhost:PORT/ws`), with `origin` if given.
    async fn websocket(&self, addr: SocketAddr, origin: Option<&str>) -> Result<Client, u16> {
        let (tls, _) = self.connect(addr).await;
        let request = format!("wss://localhost:{}/ws", addr.port()).into_client_request().unwrap();
        Client::try_connect_over(request, origin, Box::new(tls)).await
    }
}

#[tokio::test]
async fn https_and_wss_are_served_with_the_servers_own_certificate_and_plain_http_redirects() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let authority = Authority::new();
    authority.issue(&cert, &key);
    let server = TestServer::start_with(|c| {
        c.tls_cert = cert.display().to_string();
        c.tls_key = key.display().to_string();
        c.redirect_listen = "127.0.0.1:0".into();
        c.members_may_create_rooms = true;
    })
    .await;
    let addr = server.addr;
    let health = authority.get(addr, "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.contains("\"status\":\"ok\""), "{health}");

    // Two members register and log in over HTTPS, then chat over WSS.
    let mut sockets = Vec::new();
    for name in ["ada", "bob"] {
        let token = login_over_tls(&authority, addr, name).await;
        let mut socket = authority.websocket(addr, None).await.expect("wss upgrade");
        assert_eq!(socket.request(json!({"type": "auth", "token": token})).await["type"], "ok");
        sockets.push(socket);
    }
    let (mut ada, mut bo) = (sockets.remove(0), sockets.remove(0));
    ada.ok(json!({"type": "create_room", "name": "over-tls"})).await;
    bo.ok(json!({"type": "join", "room": "over-tls"})).await;
    ada.ok(json!({"type": "send", "room": "over-tls", "body": "encrypted all the way"})).await;
    assert_eq!(bo.event_of("message").await["message"]["body"], "encrypted all the way");

    // The server's own origin is its https:// one; the http:// one is another site.
    let own = format!("https://localhost:{}", addr.port());
    assert!(authority.websocket(addr, Some(&own)).await.is_ok());
    let plain = format!("http://localhost:{}", addr.port());
    assert_eq!(authority.websocket(addr, Some(&plain)).await.err(), Some(403));

    // Plain HTTP on the TLS port gets no page: the handshake fails.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut answer)).await.expect("the server closes");
    assert!(!String::from_utf8_lossy(&answer).contains("200 OK"));

    // The redirect listener sends every path, query kept, to HTTPS on the TLS port.
    let redirect = server.server.as_ref().unwrap().redirect_addr().expect("a redirect listener");
    let answer = raw_request(redirect, "GET /assets/app.js?v=2 HTTP/1.1\r\nHost: localhost:80\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 308"), "{answer}");
    let location = format!("location: https://localhost:{}/assets/app.js?v=2", addr.port());
    assert!(answer.to_ascii_lowercase().contains(&location), "{answer}");
}

#[tokio::test]
async fn sighup_reads_a_renewed_certificate_and_open_sockets_stay() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let authority = Authority::new();
    let first = authority.issue(&cert, &key);
    let binary = Binary::start_with(&dir.path().join("tls.db"), |command| {
        command.arg("--tls-cert").arg(&cert).arg("--tls-key").arg(&key);
    });
    let addr = binary.addr;
    let (_, presented) = authority.connect(addr).await;
    assert_eq!(presented, first);
    let token = login_over_tls(&authority, addr, "grace").await;
    let mut grace = authority.websocket(addr, None).await.unwrap();
    assert_eq!(grace.request(json!({"type": "auth", "token": token})).await["type"], "ok");
    grace.ok(json!({"type": "create_room", "name": "renewals"})).await;

    let renewed = authority.issue(&cert, &key);
    assert_ne!(renewed, first);
    // SAFETY: a signal to our own child, which has not been reaped.
    unsafe { libc::kill(binary.pid(), libc::SIGHUP) };
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, presented) = authority.connect(addr).await;
        if presented == renewed {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the renewed certificate was never served");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // The socket opened before the reload still works both ways.
    grace.ok(json!({"type": "send", "room": "renewals", "body": "still here"})).await;
    assert_eq!(grace.event_of("message").await["message"]["body"], "still here");

    // A broken file on the next SIGHUP keeps the renewed certificate in use.
    std::fs::write(&cert, "not a certificate").unwrap();
    // SAFETY: as above.
    unsafe { libc::kill(binary.pid(), libc::SIGHUP) };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (_, presented) = authority.connect(addr).await;
    assert_eq!(presented, renewed);
    binary.terminate();
}

/// Registers and logs in `name` over HTTPS; returns the token.
async fn login_over_tls(authority: &Authority, addr: SocketAddr, name: &str) -> String {
    let mut token = String::new();
    for path in ["/api/v1/register", "/api/v1/login"] {
        let body = json!({"username": name, "password": format!("password-{name}")}).to_string();
        let (mut tls, _) = authority.connect(addr).await;
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        tls.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(WAIT, tls.read_to_end(&mut answer)).await.expect("answer timed out").ok();
        let answer = String::from_utf8_lossy(&answer).into_owned();
        assert!(answer.starts_with("HTTP/1.1 20"), "{path}: {answer}");
        if let Some((_, json)) = answer.split_once("\r\n\r\n") {
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(json) {
                token = value["token"].as_str().unwrap_or_default().to_string();
            }
        }
    }
    assert!(!token.is_empty());
    token
}

/// Sends `request` as is over plain TCP; returns the raw answer.
async fn raw_request(addr: SocketAddr, request: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(WAIT, tcp.read(&mut answer)).await.expect("answer timed out").unwrap();
    String::from_utf8_lossy(&answer[..n]).into_owned()
}

/// Every family `/metrics` must have, by its name in the parsed samples.
const FAMILIES: [&str; 17] = [
    "alongside_sockets_open",
    "alongside_sockets_accepted_total",
    "alongside_messages_stored_total",
    "alongside_store_commit_failures_total",
    "alongside_store_writable",
    "alongside_store_commit_seconds",
    "alongside_deliveries_total",
    "alongside_outbox_overflows_total",
    "alongside_requests_total",
    "alongside_request_errors_total",
    "alongside_request_seconds",
    "alongside_logins_total",
    "alongside_bus_gaps_total",
    "alongside_bus_gap_reads_total",
    "alongside_bus_publish_seconds",
    "alongside_care_alerts_raised_total",
    "alongside_care_alerts_acknowledged_total",
];

fn parse_metrics(text: &str) -> prometheus_parse::Scrape {
    let lines = text.lines().map(|line| Ok(line.to_string()));
    prometheus_parse::Scrape::parse(lines).expect("/metrics parses as Prometheus text")
}

/// The value of the sample `name` whose labels include `labels`.
fn sample(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<prometheus_parse::Value> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| s.value.clone())
}

fn number(value: Option<prometheus_parse::Value>) -> f64 {
    match value {
        Some(prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v))
        | Some(prometheus_parse::Value::Untyped(v)) => v,
        other => panic!("not a number: {other:?}"),
    }
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_with_every_family_and_count_what_happened() {
    let server = TestServer::start().await;
    let mut owner = server.room_owner("owner", "counted").await;
    owner.ok(json!({"type": "send", "room": "counted", "body": "one"})).await;
    owner.event_of("message").await;
    // A resend with the same client_msg_id is answered but not stored again.
    for _ in 0..2 {
        owner.ok(json!({"type": "send", "room": "counted", "body": "two", "client_msg_id": "c2"})).await;
    }
    owner.event_of("message").await;
    owner.refused(json!({"type": "join", "room": "no-such-room"}), "not_found").await;
    let (status, _) = server.post("/api/v1/login", &json!({"username": "owner", "password": "not the password"})).await;
    assert_eq!(status, 401);
    let (status, text) = http(server.addr, "GET", "/metrics", &[], None).await;
    assert_eq!(status, 200);
    let scrape = parse_metrics(&text);
    let names: std::collections::HashSet<&str> = scrape.samples.iter().map(|s| s.metric.as_str()).collect();
    for family in FAMILIES {
        assert!(names.contains(family), "no `{family}` in /metrics:\n{text}");
    }
    assert_eq!(number(sample(&scrape, "alongside_sockets_open", &[])), 1.0);
    assert_eq!(number(sample(&scrape, "alongside_messages_stored_total", &[])), 2.0);
    // The `room_created` event and the two messages.
    assert_eq!(number(sample(&scrape, "alongside_deliveries_total", &[])), 3.0);
    assert_eq!(number(sample(&scrape, "alongside_store_writable", &[])), 1.0);
    assert_eq!(number(sample(&scrape, "alongside_requests_total", &[("type", "send")])), 3.0);
    assert_eq!(number(sample(&scrape, "alongside_request_errors_total", &[("type", "join")])), 1.0);
    // The owner's login went through; the wrong password did not.
    assert_eq!(number(sample(&scrape, "alongside_logins_total", &[("outcome", "success")])), 1.0);
    assert_eq!(number(sample(&scrape, "alongside_logins_total", &[("outcome", "failure")])), 1.0);
    match sample(&scrape, "alongside_request_seconds", &[("type", "send")]) {
        Some(prometheus_parse::Value::Histogram(buckets)) => {
            assert_eq!(buckets.last().map(|b| b.count), Some(3.0), "{buckets:?}");
            assert!(buckets.windows(2).all(|w| w[0].count <= w[1].count), "cumulative: {buckets:?}");
        }
        other => panic!("the request latency is a histogram: {other:?}"),
    }
    drop(owner);
}

#[tokio::test]
async fn a_separate_metrics_listener_serves_them_and_the_public_port_does_not() {
    let server = TestServer::start_with(|c| c.metrics_listen = "127.0.0.1:0".into()).await;
    let private = server.server.as_ref().unwrap().metrics_addr().expect("a metrics listener");
    let (status, text) = http(private, "GET", "/metrics", &[], None).await;
    assert_eq!(status, 200);
    assert!(text.contains("alongside_sockets_open"), "{text}");
    let (status, _) = http(private, "GET", "/api/v1/registration", &[], None).await;
    assert_eq!(status, 404, "the metrics listener serves nothing else");
    let (status, body) = http(server.addr, "GET", "/metrics", &[], None).await;
    assert_eq!(status, 404, "{body}");
}

#[test]
fn the_grafana_dashboard_draws_only_metrics_the_server_serves() {
    let dashboard = include_str!("../../deploy/grafana.json");
    let dashboard: serde_json::Value = serde_json::from_str(dashboard).expect("the dashboard is JSON");
    // A labelled family shows once it has a series.
    let metrics = alongside::metrics::Metrics::default();
    metrics.request("send", std::time::Duration::from_millis(1), true);
    let served = metrics.render();
    let mut drawn = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("a PromQL expression");
            for name in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if name.starts_with("alongside_") {
                    let family = ["_bucket", "_sum", "_count"]
                        .iter()
                        .find_map(|suffix| name.strip_suffix(suffix))
                        .filter(|base| served.contains(&format!("# TYPE {base} histogram")))
                        .unwrap_or(name);
                    // OpenMetrics names a counter's family without its `_total`.
                    let known = served.contains(&format!("# TYPE {family} "))
                        || family
                            .strip_suffix("_total")
                            .is_some_and(|base| served.contains(&format!("# TYPE {base} counter")));
                    assert!(known, "the dashboard draws `{name}`, which /metrics does not serve");
                    drawn += 1;
                }
            }
        }
    }
    assert!(drawn >= 10, "the dashboard draws {drawn} series");
}

/// Every message of `room` as (seq, body), paging forwards from the start.
async fn whole_history(client: &mut Client, room: &str) -> Vec<(i64, String)> {
    let mut all = Vec::new();
    loop {
        let after = all.last().map_or(0, |(seq, _)| *seq);
        let page = client.ok(json!({"type": "history", "room": room, "after": after, "limit": 100})).await;
        for message in page["messages"].as_array().unwrap() {
            all.push((message["seq"].as_i64().unwrap(), message["body"].as_str().unwrap().to_string()));
        }
        if page["more"] != true {
            return all;
        }
    }
}

#[tokio::test]
async fn a_backup_taken_under_load_restores_every_acknowledged_message_and_seqs_go_on() {
    let server = TestServer::start_sqlite_with(|_| {}).await;
    let url = format!("sqlite://{}", server.db_path.display());
    let mut owner = server.room_owner("owner", "archive").await;
    // A sender keeps writing before, during and after the backup, noting when each
    // message was acknowledged.
    let acked = Arc::new(std::sync::Mutex::new(Vec::<(std::time::Instant, i64, String)>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = {
        let (acked, stop) = (acked.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let body = format!("kept message {n}");
                let reply = owner.ok(json!({"type": "send", "room": "archive", "body": body})).await;
                let seq = reply["message"]["seq"].as_i64().expect("an ok carries the stored seq");
                acked.lock().unwrap().push((std::time::Instant::now(), seq, body));
            }
            owner
        })
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    while acked.lock().unwrap().len() < 50 {
        assert!(tokio::time::Instant::now() < deadline, "the sender is stuck");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("nightly.db");
    let began = std::time::Instant::now();
    let (ok, output) =
        alongside_command(vec!["backup".into(), backup.display().to_string(), "--database".into(), url.clone()]).await;
    assert!(ok, "backup failed: {output}");
    assert!(output.contains("messages"), "{output}");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut owner = tokio::time::timeout(WAIT, sender).await.expect("the sender stops").unwrap();
    let acked = acked.lock().unwrap().clone();
    let before: Vec<(i64, String)> =
        acked.iter().filter(|(at, _, _)| *at < began).map(|(_, seq, body)| (*seq, body.clone())).collect();
    assert!(acked.len() > before.len(), "messages were also acknowledged during and after the backup");

    // The running server's database cannot be replaced under it.
    let restore = |database: String| {
        alongside_command(vec!["restore".into(), backup.display().to_string(), "--database".into(), database])
    };
    let (ok, output) = restore(url.clone()).await;
    assert!(!ok && output.contains("a server is using"), "{output}");
    owner.ok(json!({"type": "send", "room": "archive", "body": "the server still works"})).await;

    // Restored into a fresh database, a server has every message acknowledged before the
    // backup began, and new messages take the next seqs.
    let fresh = dir.path().join("restored.db");
    let fresh_url = format!("sqlite://{}", fresh.display());
    let (ok, output) = restore(fresh_url.clone()).await;
    assert!(ok, "restore failed: {output}");
    let restored = TestServer::start_config(test_config(&fresh_url)).await;
    let token = restored.login("owner").await;
    let mut owner = restored.client(&token).await;
    let history = whole_history(&mut owner, "archive").await;
    for message in &before {
        assert!(history.contains(message), "{message:?} was acknowledged before the backup and is missing");
    }
    let seqs: Vec<i64> = history.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "no gap in the restored seqs");
    let next = owner.ok(json!({"type": "send", "room": "archive", "body": "after the restore"})).await;
    assert_eq!(next["message"]["seq"], seqs.len() as i64 + 1);

    // Restoring over a stopped server's database keeps the replaced one beside it.
    drop(owner);
    restored.server.unwrap().shutdown().await;
    let (ok, output) = restore(fresh_url).await;
    assert!(ok, "restore over a stopped server's database failed: {output}");
    assert!(output.contains("kept as"), "{output}");
    let kept = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .any(|entry| entry.file_name().to_string_lossy().starts_with("restored.db.replaced-"));
    assert!(kept, "the replaced database is kept");
}

#[tokio::test]
async fn backup_and_restore_refuse_what_they_cannot_do_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = format!("sqlite://{}", dir.path().join("nothing.db").display());
    let target = dir.path().join("b.db").display().to_string();
    let (ok, output) = alongside_command(vec!["backup".into(), target.clone(), "--database".into(), missing]).await;
    assert!(!ok && output.contains("there is no database"), "{output}");
    let postgres = "postgres://postgres@127.0.0.1/x".to_string();
    let (ok, output) = alongside_command(vec!["backup".into(), target.clone(), "--database".into(), postgres]).await;
    assert!(!ok && output.contains("pg_dump"), "{output}");
    std::fs::write(&target, "not a database").unwrap();
    let db = format!("sqlite://{}", dir.path().join("x.db").display());
    let (ok, output) = alongside_command(vec!["restore".into(), target, "--database".into(), db]).await;
    assert!(!ok && output.contains("cannot"), "{output}");
    assert!(!dir.path().join("x.db").exists(), "a failed restore creates nothing");
}

#[tokio::test]
async fn config_check_prints_each_settings_value_and_source_and_refuses_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "listen = \"0.0.0.0:8443\"\noutbox_frames = 16\nmetrics_token = \"hunter2-metrics\"\n")
        .unwrap();
    let output = tokio::task::spawn_blocking({
        let good = good.clone();
        move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_alongside"))
                .args(["config", "check"])
                .arg(&good)
                .args(["--outbox-frames", "32"])
                .env("ALONGSIDE_PING_INTERVAL_S", "12.5")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}{}", String::from_utf8_lossy(&output.stderr));
    let line = |name: &str| {
        text.lines()
            .find(|line| line.trim_start().starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(line("listen"), "listen = \"0.0.0.0:8443\" # file");
    assert_eq!(line("outbox_frames"), "outbox_frames = 32 # flag");
    assert_eq!(line("ping_interval_s"), "ping_interval_s = 12.5 # environment");
    assert_eq!(line("max_frame_bytes"), "max_frame_bytes = 65536 # default");
    assert!(!text.contains("hunter2-metrics"), "the token is never printed:\n{text}");
    assert!(line("metrics_token").contains("not shown"));

    for (contents, says) in [
        ("listen = \"0.0.0.0:80\"\nlisen = 3\n", "line 2: unknown field `lisen`"),
        ("auth_timeout_s = -1.0\n", "--auth-timeout-s must be a positive number"),
        ("tls_cert = \"/nonexistent/cert.pem\"\ntls_key = \"/nonexistent/key.pem\"\n", "cannot read the certificate"),
        ("outbox_frames = \"many\"\n", "invalid type"),
    ] {
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, contents).unwrap();
        let (ok, output) = alongside_command(vec!["config".into(), "check".into(), bad.display().to_string()]).await;
        assert!(!ok, "{contents} passed");
        assert!(output.contains(says), "{contents}: {output}");
        assert_eq!(output.trim().lines().count(), 1, "one line: {output}");
    }
}
