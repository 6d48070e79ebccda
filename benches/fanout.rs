//! Fan-out load generator: N sockets in one room, S of them sending R messages per
//! second each; every body carries its send time, so every delivery is an end-to-end
//! latency sample.
//!
//! It spawns the release `alongside` binary as its own process (so the generator does
//! not share the server's threads) over a temporary database, and prints one block of
//! figures. Run:
//!
//! ```text
//! cargo bench --bench fanout -- --sockets 1000 --senders 10 --rate 10 --seconds 10
//! ```

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message as Frame;

struct Options {
    sockets: usize,
    senders: usize,
    rate: f64,
    seconds: f64,
    accounts: usize,
}

fn options() -> Options {
    let mut o = Options { sockets: 200, senders: 10, rate: 10.0, seconds: 5.0, accounts: 20 };
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).map(String::as_str).unwrap_or("");
        match pair[0].as_str() {
            "--sockets" => o.sockets = value.parse().expect("--sockets N"),
            "--senders" => o.senders = value.parse().expect("--senders N"),
            "--rate" => o.rate = value.parse().expect("--rate MSGS_PER_S"),
            "--seconds" => o.seconds = value.parse().expect("--seconds S"),
            "--accounts" => o.accounts = value.parse().expect("--accounts N"),
            other => panic!("unknown option {other}"),
        }
    }
    assert!(o.senders <= o.sockets && o.accounts >= 1);
    o
}

/// One blocking HTTP request (setup only; not measured).
fn http(addr: SocketAddr, path: &str, body: &Value) -> Value {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = body.to_string();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    serde_json::from_str(body).unwrap_or(Value::Null)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index] as f64 / 1000.0
}

#[tokio::main]
async fn main() {
    let o = options();
    let dir = tempfile::tempdir().unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_alongside"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database"])
        .arg(format!("sqlite://{}", dir.path().join("bench.db").display()))
        .env("ALONGSIDE_REQUEST_RATE_PER_S", "0")
        .env("ALONGSIDE_MAX_SOCKETS_PER_ADDRESS", "0")
        .env("ALONGSIDE_REGISTRATIONS_PER_ADDRESS", "0")
        .env("ALONGSIDE_LOGIN_ATTEMPTS_PER_ADDRESS", "0")
        .env("ALONGSIDE_MEMBERS_MAY_CREATE_ROOMS", "true")
        .env("ALONGSIDE_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the server (cargo bench builds it in release)");
    let line = BufReader::new(server.stdout.take().unwrap()).lines().next().unwrap().unwrap();
    let addr: SocketAddr = line.rsplit("http://").next().unwrap().parse().unwrap();

    let tokens: Vec<String> = (0..o.accounts)
        .map(|n| {
            let credentials = json!({"username": format!("load{n}"), "password": "load password"});
            http(addr, "/api/v1/register", &credentials);
            http(addr, "/api/v1/login", &credentials)["token"].as_str().expect("login").to_string()
        })
        .collect();

    let url = format!("ws://{addr}/ws");
    let mut sockets = Vec::with_capacity(o.sockets);
    for n in 0..o.sockets {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.expect("connect");
        ws.send(Frame::text(json!({"type": "auth", "token": tokens[n % tokens.len()], "id": 0}).to_string()))
            .await
            .unwrap();
        if n == 0 {
            ws.send(Frame::text(json!({"type": "create_room", "name": "summit", "id": 1}).to_string())).await.unwrap();
        }
        ws.send(Frame::text(json!({"type": "join", "room": "summit", "id": 2}).to_string())).await.unwrap();
        loop {
            let frame = ws.next().await.unwrap().unwrap();
            if let Frame::Text(text) = frame {
                let value: Value = serde_json::from_str(&text).unwrap();
                if value["id"] == 2 {
                    assert_eq!(value["type"], "ok", "join: {value}");
                    break;
                }
            }
        }
        sockets.push(ws);
    }

    let start = Instant::now();
    let deliveries = Arc::new(AtomicU64::new(0));
    let closed = Arc::new(AtomicU64::new(0));
    let run_for = Duration::from_secs_f64(o.seconds);
    let mut readers = Vec::new();
    let mut senders = Vec::new();
    for (n, ws) in sockets.into_iter().enumerate() {
        let (mut sink, mut stream) = ws.split();
        let (deliveries, closed) = (deliveries.clone(), closed.clone());
        readers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut acks = Vec::new();
            let deadline = tokio::time::Instant::now() + run_for + Duration::from_secs(3);
            while let Ok(Some(frame)) = tokio::time::timeout_at(deadline, stream.next()).await {
                let text = match frame {
                    Ok(Frame::Text(text)) => text,
                    Ok(Frame::Close(_)) | Err(_) => {
                        closed.fetch_add(1, Relaxed);
                        break;
                    }
                    Ok(_) => continue,
                };
                let value: Value = serde_json::from_str(&text).unwrap();
                let now = start.elapsed().as_micros() as u64;
                let sent_at = |m: &Value| m["body"].as_str().and_then(|b| b.split(' ').next()?.parse::<u64>().ok());
                match value["type"].as_str() {
                    Some("message") => {
                        if let Some(at) = sent_at(&value["message"]) {
                            latencies.push(now.saturating_sub(at));
                            deliveries.fetch_add(1, Relaxed);
                        }
                    }
                    Some("ok") if value["message"].is_object() => {
                        if let Some(at) = sent_at(&value["message"]) {
                            acks.push(now.saturating_sub(at));
                        }
                    }
                    _ => {}
                }
            }
            (latencies, acks)
        }));
        if n < o.senders {
            let interval = Duration::from_secs_f64(1.0 / o.rate);
            senders.push(tokio::spawn(async move {
                let mut ticker = tokio::time::interval(interval);
                let mut sent = 0u64;
                while start.elapsed() < run_for {
                    ticker.tick().await;
                    let at = start.elapsed().as_micros();
                    let frame = json!({"type": "send", "room": "summit", "body": format!("{at} load")}).to_string();
                    if sink.send(Frame::text(frame)).await.is_err() {
                        break;
                    }
                    sent += 1;
                }
                sent
            }));
        }
    }
    let mut sent = 0u64;
    for sender in senders {
        sent += sender.await.unwrap();
    }
    let mut latencies = Vec::new();
    let mut acks = Vec::new();
    for reader in readers {
        let (l, a) = reader.await.unwrap();
        latencies.extend(l);
        acks.extend(a);
    }
    latencies.sort_unstable();
    acks.sort_unstable();
    let expected = sent * o.sockets as u64;
    let delivered = deliveries.load(Relaxed);
    println!("fanout: {} sockets in one room, {} senders x {} msg/s for {} s", o.sockets, o.senders, o.rate, o.seconds);
    println!("  messages sent         {sent} ({:.0}/s stored)", sent as f64 / o.seconds);
    println!(
        "  deliveries            {delivered} of {expected} ({:.2} %)",
        100.0 * delivered as f64 / expected.max(1) as f64
    );
    println!("  deliveries/s          {:.0}", delivered as f64 / o.seconds);
    println!(
        "  delivery latency ms   p50 {:.2}  p99 {:.2}  max {:.2}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0)
    );
    println!("  send-ack latency ms   p50 {:.2}  p99 {:.2}", percentile(&acks, 0.5), percentile(&acks, 0.99));
    println!("  sockets closed        {}", closed.load(Relaxed));
    let _ = server.kill();
    let _ = server.wait();
}
