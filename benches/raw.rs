//! A deliberately minimal WebSocket client for the load generator.
//!
//! The generator reads every frame the server sends to thousands of sockets. Through
//! tungstenite that cost ~1.5 µs of CPU per frame, more than the server spends
//! delivering it, and on a 2-core machine the generator's cost caps the rate it can
//! measure. This client does the handshake, writes masked text frames and reads
//! unmasked server frames straight out of one reusable buffer per socket: no allocation
//! and no UTF-8 validation per frame. It only supports what the benchmark needs.

use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// What the reader found next.
pub enum Incoming<'a> {
    /// A text or binary frame's payload (a broker may send its protocol as binary).
    Text(&'a [u8]),
    /// A control or other frame, skipped.
    Other,
    /// The server closed the socket (close frame or end of stream).
    Closed,
}

/// The read half with its buffer.
pub struct Reader {
    read: OwnedReadHalf,
    buffer: Vec<u8>,
    start: usize,
    end: usize,
}

/// Upgrades `stream` to a WebSocket at `path`. `origin` adds an `Origin` header, which
/// some servers require of every client (a browser always sends one).
pub async fn handshake(mut stream: TcpStream, addr: SocketAddr, path: &str, origin: bool) -> (Reader, OwnedWriteHalf) {
    let origin = if origin { format!("Origin: http://{addr}\r\n") } else { String::new() };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{origin}\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("send the upgrade request");
    let mut buffer = vec![0u8; 16 * 1024];
    let mut end = 0;
    let header_end = loop {
        let n = stream.read(&mut buffer[end..]).await.expect("read the upgrade response");
        assert!(n > 0, "the server closed during the upgrade");
        end += n;
        if let Some(at) = buffer[..end].windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    assert!(buffer.starts_with(b"HTTP/1.1 101"), "upgrade refused: {}", String::from_utf8_lossy(&buffer[..end]));
    let (read, write) = stream.into_split();
    (Reader { read, buffer, start: header_end, end }, write)
}

impl Reader {
    /// The next frame. Text payloads borrow the buffer until the next call.
    pub async fn next(&mut self) -> Incoming<'_> {
        loop {
            if let Some((opcode, payload_at, payload_len)) = parse_header(&self.buffer[self.start..self.end]) {
                let frame_end = self.start + payload_at + payload_len;
                if frame_end <= self.end {
                    let payload = self.start + payload_at..frame_end;
                    self.start = frame_end;
                    return match opcode {
                        0x1 | 0x2 => Incoming::Text(&self.buffer[payload]),
                        0x8 => Incoming::Closed,
                        _ => Incoming::Other,
                    };
                }
                if payload_at + payload_len > self.buffer.len() {
                    // A frame bigger than the buffer: grow it once.
                    self.buffer.resize(payload_at + payload_len, 0);
                }
            }
            // Move what is left to the front, then read more.
            self.buffer.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            match self.read.read(&mut self.buffer[self.end..]).await {
                Ok(0) | Err(_) => return Incoming::Closed,
                Ok(n) => self.end += n,
            }
        }
    }
}

/// (opcode, where the payload starts, its length), if the header is complete. Server
/// frames are never masked.
fn parse_header(bytes: &[u8]) -> Option<(u8, usize, usize)> {
    if bytes.len() < 2 {
        return None;
    }
    let opcode = bytes[0] & 0x0f;
    match bytes[1] & 0x7f {
        126 => {
            let len = u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?);
            Some((opcode, 4, usize::from(len)))
        }
        127 => {
            let len = u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?);
            Some((opcode, 10, len as usize))
        }
        len => Some((opcode, 2, usize::from(len))),
    }
}

/// One masked text frame, as a client must send it.
pub fn text_frame(payload: &[u8], mask_seed: u32) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 14);
    frame.push(0x81);
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n <= usize::from(u16::MAX) => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let mask = mask_seed.wrapping_mul(2_654_435_761).to_be_bytes();
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, byte)| byte ^ mask[i % 4]));
    frame
}
