//! kubelet's grpc probe (k8s.io/kubernetes pkg/probe/grpc): one
//! `/grpc.health.v1.Health/Check` call over plaintext HTTP/2 with prior knowledge (h2c;
//! kubelet uses no TLS for grpc probes), on a small synchronous HTTP/2 client: preface,
//! SETTINGS and their ACKs, one stream with HEADERS (+CONTINUATION) and DATA, flow
//! control both ways, PING answered, GOAWAY and RST_STREAM honoured, HPACK (see hpack).
//!
//! Like grpc-go's blocking dial, connecting is retried with back-off until the deadline,
//! so a refused or silent port reads `timeout: failed to connect service "IP:PORT" within
//! 1s: context deadline exceeded`; the other messages are kubelet's word for word.
use super::hpack;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PUSH_PROMISE: u8 = 5;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const WINDOW_UPDATE: u8 = 8;
const CONTINUATION: u8 = 9;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// Our SETTINGS_MAX_FRAME_SIZE (the protocol default; we announce nothing else).
const MAX_FRAME: usize = 16384;
/// The one stream this client opens.
const STREAM: u32 = 1;

/// What ends a probe run: kubelet's failure message.
type Failure = String;

/// Go's time.Duration String() for whole seconds: 1s, 1m30s, 1h0m0s.
pub fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    let ms = d.subsec_millis();
    if s < 60 {
        if ms == 0 {
            return format!("{s}s");
        }
        let frac = format!("{ms:03}");
        return format!("{s}.{}s", frac.trim_end_matches('0'));
    }
    if s < 3600 {
        return format!("{}m{}s", s / 60, s % 60);
    }
    format!("{}h{}m{}s", s / 3600, (s % 3600) / 60, s % 60)
}

/// grpc-go's codes.Code names.
fn code_name(code: u32) -> String {
    const NAMES: [&str; 17] = [
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    NAMES
        .get(code as usize)
        .map_or_else(|| format!("Code({code})"), |n| n.to_string())
}

const UNIMPLEMENTED: u32 = 12;
const DEADLINE_EXCEEDED: u32 = 4;
const INTERNAL: u32 = 13;
const UNAVAILABLE: u32 = 14;
const CANCELED: u32 = 1;
const UNKNOWN: u32 = 2;

/// An RPC that ended with a status other than OK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: u32,
    pub message: String,
}

/// How an attempt went wrong.
#[derive(Debug)]
enum CallError {
    /// The connection never became ready (grpc-go retries; kubelet shows no cause).
    Connect,
    /// The deadline passed.
    Timeout,
    /// The RPC failed with a status.
    Rpc(Status),
}

fn unavailable(msg: impl Into<String>) -> CallError {
    CallError::Rpc(Status {
        code: UNAVAILABLE,
        message: msg.into(),
    })
}

fn io_err(e: std::io::Error, connected: bool) -> CallError {
    match e.kind() {
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => CallError::Timeout,
        _ if !connected => CallError::Connect,
        std::io::ErrorKind::UnexpectedEof => unavailable("error reading from server: EOF"),
        _ => unavailable(format!("error reading from server: {e}")),
    }
}

/// The serving status names of grpc.health.v1.HealthCheckResponse.ServingStatus.
fn serving_status_name(v: u64) -> String {
    match v {
        0 => "UNKNOWN".into(),
        1 => "SERVING".into(),
        2 => "NOT_SERVING".into(),
        3 => "SERVICE_UNKNOWN".into(),
        other => other.to_string(),
    }
}

/// Runs kubelet's grpc probe against `authority` (`IP:PORT`, opened by `dial` within the
/// time given); Ok when the service reports SERVING, else kubelet's message.
pub fn check(
    dial: &mut dyn FnMut(Duration) -> Result<TcpStream, String>,
    authority: &str,
    service: &str,
    user_agent: &str,
    timeout: Duration,
) -> Result<(), Failure> {
    let deadline = Instant::now() + timeout;
    let shown = go_duration(timeout);
    let connect_timeout = || {
        format!(
            "timeout: failed to connect service \"{authority}\" within {shown}: context deadline exceeded"
        )
    };
    // grpc-go's reconnect back-off: 1s, then ×1.6 (without its jitter).
    let mut backoff = Duration::from_secs(1);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(connect_timeout());
        }
        let attempt = match dial(left) {
            Ok(tcp) => call(tcp, authority, service, user_agent, deadline),
            Err(_) => Err(CallError::Connect),
        };
        match attempt {
            Ok(1) => return Ok(()),
            Ok(status) => {
                return Err(format!(
                    "service unhealthy (responded with \"{}\")",
                    serving_status_name(status)
                ))
            }
            Err(CallError::Connect) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left <= backoff {
                    std::thread::sleep(left);
                    return Err(connect_timeout());
                }
                std::thread::sleep(backoff);
                backoff = backoff.mul_f32(1.6).min(Duration::from_secs(120));
            }
            Err(CallError::Timeout) => {
                return Err(format!("timeout: health rpc did not complete within {shown}"))
            }
            Err(CallError::Rpc(s)) if s.code == DEADLINE_EXCEEDED => {
                return Err(format!("timeout: health rpc did not complete within {shown}"))
            }
            Err(CallError::Rpc(s)) if s.code == UNIMPLEMENTED => {
                return Err(format!(
                    "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): {}",
                    s.message
                ))
            }
            Err(CallError::Rpc(s)) => {
                return Err(format!(
                    "error: health rpc probe failed: rpc error: code = {} desc = {}",
                    code_name(s.code),
                    s.message
                ))
            }
        }
    }
}

/// The HealthCheckRequest message: `string service = 1`, left out when empty (proto3).
pub fn health_request(service: &str) -> Vec<u8> {
    let mut msg = Vec::new();
    if !service.is_empty() {
        msg.push(0x0a);
        put_varint(&mut msg, service.len() as u64);
        msg.extend_from_slice(service.as_bytes());
    }
    // The gRPC length-prefixed message: not compressed, 4-byte big-endian length.
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    framed.extend_from_slice(&msg);
    framed
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// The `status` (field 1) of a HealthCheckResponse; unknown fields are skipped.
pub fn parse_health_response(msg: &[u8]) -> Option<u64> {
    let mut pos = 0;
    let mut status = 0;
    while pos < msg.len() {
        let key = get_varint(msg, &mut pos)?;
        match (key >> 3, key & 7) {
            (1, 0) => status = get_varint(msg, &mut pos)?,
            (_, 0) => {
                get_varint(msg, &mut pos)?;
            }
            (_, 1) => pos += 8,
            (_, 2) => {
                let len = get_varint(msg, &mut pos)? as usize;
                pos = pos.checked_add(len)?;
            }
            (_, 5) => pos += 4,
            _ => return None,
        }
    }
    (pos == msg.len()).then_some(status)
}

/// One HTTP/2 frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

pub fn encode_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Reads one frame (header and payload) within the socket's timeouts.
pub fn read_frame(r: &mut impl Read) -> std::io::Result<Frame> {
    let mut head = [0u8; 9];
    r.read_exact(&mut head)?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::other(format!(
            "http2: frame too large ({len} bytes)"
        )));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    Ok(Frame {
        kind: head[3],
        flags: head[4],
        stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
        payload,
    })
}

/// The payload of a DATA or HEADERS frame without padding (and priority fields).
pub fn frame_content(f: &Frame) -> Result<&[u8], String> {
    let mut p = &f.payload[..];
    let mut pad = 0usize;
    if f.flags & PADDED != 0 {
        let (&n, rest) = p.split_first().ok_or("http2: padded frame too short")?;
        pad = n as usize;
        p = rest;
    }
    if f.kind == HEADERS && f.flags & PRIORITY != 0 {
        p = p.get(5..).ok_or("http2: priority fields missing")?;
    }
    if pad > p.len() {
        return Err("http2: pad length too large".into());
    }
    Ok(&p[..p.len() - pad])
}

fn settings_payload(pairs: &[(u16, u32)]) -> Vec<u8> {
    let mut p = Vec::new();
    for (id, v) in pairs {
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&v.to_be_bytes());
    }
    p
}

/// HTTP/2 error codes in grpc-go's wording and the gRPC code it maps them to.
fn h2_error(code: u32) -> (String, u32) {
    const NAMES: [&str; 14] = [
        "NO_ERROR",
        "PROTOCOL_ERROR",
        "INTERNAL_ERROR",
        "FLOW_CONTROL_ERROR",
        "SETTINGS_TIMEOUT",
        "STREAM_CLOSED",
        "FRAME_SIZE_ERROR",
        "REFUSED_STREAM",
        "CANCEL",
        "COMPRESSION_ERROR",
        "CONNECT_ERROR",
        "ENHANCE_YOUR_CALM",
        "INADEQUATE_SECURITY",
        "HTTP_1_1_REQUIRED",
    ];
    let name = NAMES.get(code as usize).map_or_else(
        || format!("unknown error code 0x{code:x}"),
        |n| n.to_string(),
    );
    let grpc = match code {
        7 => UNAVAILABLE,
        8 => CANCELED,
        11 => 8, // ResourceExhausted
        12 => 7, // PermissionDenied
        _ => INTERNAL,
    };
    (name, grpc)
}

/// grpc-go's mapping of an HTTP status without grpc-status.
fn http_status_code(status: u16) -> u32 {
    match status {
        400 => INTERNAL,
        401 => 16,
        403 => 7,
        404 => UNIMPLEMENTED,
        429 | 502..=504 => UNAVAILABLE,
        _ => UNKNOWN,
    }
}

/// grpc-message is percent-encoded (gRPC over HTTP/2 spec).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// grpc-timeout: at most 8 digits and a unit.
fn grpc_timeout(left: Duration) -> String {
    let us = left.as_micros();
    if us < 100_000_000 {
        format!("{us}u")
    } else {
        format!("{}m", left.as_millis().min(99_999_999))
    }
}

struct Conn {
    tcp: TcpStream,
    deadline: Instant,
    hpack: hpack::Decoder,
    /// What we may still send: connection and stream windows.
    conn_window: i64,
    stream_window: i64,
    /// The peer's SETTINGS_INITIAL_WINDOW_SIZE (its changes move open streams' windows).
    initial_window: i64,
    /// The peer's SETTINGS_MAX_FRAME_SIZE.
    peer_max_frame: usize,
    /// The server's SETTINGS arrived (grpc-go's READY).
    ready: bool,
}

impl Conn {
    fn send(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Result<(), CallError> {
        super::http_probe::arm(&self.tcp, self.deadline).map_err(|e| io_err(e, self.ready))?;
        self.tcp
            .write_all(&encode_frame(kind, flags, stream, payload))
            .map_err(|e| io_err(e, self.ready))
    }

    fn recv(&mut self) -> Result<Frame, CallError> {
        super::http_probe::arm(&self.tcp, self.deadline).map_err(|e| io_err(e, self.ready))?;
        let f = read_frame(&mut self.tcp).map_err(|e| io_err(e, self.ready))?;
        match f.kind {
            SETTINGS if f.flags & ACK == 0 => {
                if f.payload.len() % 6 != 0 {
                    return Err(unavailable("http2: invalid SETTINGS frame"));
                }
                for s in f.payload.chunks(6) {
                    let id = u16::from_be_bytes([s[0], s[1]]);
                    let v = u32::from_be_bytes([s[2], s[3], s[4], s[5]]);
                    match id {
                        // INITIAL_WINDOW_SIZE applies its change to open streams.
                        4 => {
                            self.stream_window += i64::from(v) - self.initial_window;
                            self.initial_window = i64::from(v);
                        }
                        5 => self.peer_max_frame = (v as usize).clamp(MAX_FRAME, 1 << 24),
                        _ => {}
                    }
                }
                self.send(SETTINGS, ACK, 0, &[])?;
                self.ready = true;
            }
            PING if f.flags & ACK == 0 => self.send(PING, ACK, 0, &f.payload)?,
            WINDOW_UPDATE if f.payload.len() == 4 => {
                let inc = i64::from(
                    u32::from_be_bytes([f.payload[0], f.payload[1], f.payload[2], f.payload[3]])
                        & 0x7fff_ffff,
                );
                if f.stream == 0 {
                    self.conn_window += inc;
                } else if f.stream == STREAM {
                    self.stream_window += inc;
                }
            }
            _ => {}
        }
        Ok(f)
    }
}

/// One connection and one Check call; Ok(serving status) or why not.
fn call(
    tcp: TcpStream,
    authority: &str,
    service: &str,
    user_agent: &str,
    deadline: Instant,
) -> Result<u64, CallError> {
    let mut c = Conn {
        tcp,
        deadline,
        hpack: hpack::Decoder::new(4096),
        conn_window: 65535,
        stream_window: 65535,
        initial_window: 65535,
        peer_max_frame: MAX_FRAME,
        ready: false,
    };
    let _ = c.tcp.set_nodelay(true);
    // Preface and our SETTINGS: no server push.
    let mut hello = PREFACE.to_vec();
    hello.extend_from_slice(&encode_frame(SETTINGS, 0, 0, &settings_payload(&[(2, 0)])));
    super::http_probe::arm(&c.tcp, deadline).map_err(|e| io_err(e, false))?;
    c.tcp.write_all(&hello).map_err(|e| io_err(e, false))?;
    // Ready once the server's SETTINGS came (its connection preface).
    while !c.ready {
        let f = c.recv()?;
        if f.kind == GOAWAY {
            return Err(CallError::Connect); // a GOAWAY before its preface
        }
    }
    // HEADERS: literal fields without indexing, pseudo-headers first.
    let left = deadline.saturating_duration_since(Instant::now());
    let mut block = Vec::new();
    for (n, v) in [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/grpc.health.v1.Health/Check"),
        (":authority", authority),
        ("content-type", "application/grpc"),
        ("user-agent", user_agent),
        ("te", "trailers"),
        ("grpc-timeout", &grpc_timeout(left)),
    ] {
        hpack::encode_literal(&mut block, n, v);
    }
    let mut chunks = block.chunks(c.peer_max_frame).peekable();
    let mut first = true;
    while let Some(chunk) = chunks.next() {
        let flags = if chunks.peek().is_none() {
            END_HEADERS
        } else {
            0
        };
        let kind = if first { HEADERS } else { CONTINUATION };
        c.send(kind, flags, STREAM, chunk)?;
        first = false;
    }
    // DATA within the peer's flow-control windows.
    let body = health_request(service);
    let mut sent = 0;
    while sent < body.len() {
        let room = c
            .conn_window
            .min(c.stream_window)
            .min(c.peer_max_frame as i64);
        if room <= 0 {
            handle(&mut c, &mut Response::default())?;
            continue;
        }
        let n = (body.len() - sent).min(room as usize);
        let end = if sent + n == body.len() {
            END_STREAM
        } else {
            0
        };
        c.send(DATA, end, STREAM, &body[sent..sent + n])?;
        c.conn_window -= n as i64;
        c.stream_window -= n as i64;
        sent += n;
    }
    let mut resp = Response::default();
    while !resp.done {
        handle(&mut c, &mut resp)?;
    }
    let _ = c.send(GOAWAY, 0, 0, &[0, 0, 0, 1, 0, 0, 0, 0]);
    resp.finish()
}

/// What came back on our stream so far.
#[derive(Default)]
struct Response {
    headers: Option<Vec<(String, String)>>,
    trailers: Option<Vec<(String, String)>>,
    data: Vec<u8>,
    done: bool,
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

impl Response {
    fn finish(self) -> Result<u64, CallError> {
        let headers = self.headers.unwrap_or_default();
        // Trailers-only responses carry grpc-status in the headers.
        let trailers = self.trailers.unwrap_or_else(|| headers.clone());
        let http = field(&headers, ":status").and_then(|s| s.parse::<u16>().ok());
        let grpc_status = field(&trailers, "grpc-status").and_then(|s| s.parse::<u32>().ok());
        let Some(code) = grpc_status else {
            if let Some(h) = http.filter(|&h| h != 200) {
                return Err(CallError::Rpc(Status {
                    code: http_status_code(h),
                    message: format!(
                        "unexpected HTTP status code received from server: {h} ({})",
                        http_reason(h)
                    ),
                }));
            }
            return Err(CallError::Rpc(Status {
                code: INTERNAL,
                message: "server closed the stream without sending trailers".into(),
            }));
        };
        if code != 0 {
            return Err(CallError::Rpc(Status {
                code,
                message: percent_decode(field(&trailers, "grpc-message").unwrap_or("")),
            }));
        }
        let d = &self.data;
        if d.len() < 5 {
            return Err(CallError::Rpc(Status {
                code: INTERNAL,
                message: "grpc: failed to receive server message".into(),
            }));
        }
        if d[0] != 0 {
            return Err(CallError::Rpc(Status {
                code: INTERNAL,
                message: "grpc: compressed flag set with identity or empty encoding".into(),
            }));
        }
        let len = u32::from_be_bytes([d[1], d[2], d[3], d[4]]) as usize;
        let msg = d.get(5..5 + len).ok_or_else(|| {
            CallError::Rpc(Status {
                code: INTERNAL,
                message: "grpc: truncated message".into(),
            })
        })?;
        parse_health_response(msg).ok_or_else(|| {
            CallError::Rpc(Status {
                code: INTERNAL,
                message: "grpc: failed to unmarshal the received message: proto: cannot parse invalid wire-format data".into(),
            })
        })
    }
}

fn http_reason(code: u16) -> &'static str {
    match code {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

/// Reads and handles one frame (and the CONTINUATIONs of a header block).
fn handle(c: &mut Conn, resp: &mut Response) -> Result<(), CallError> {
    let f = c.recv()?;
    match f.kind {
        HEADERS | PUSH_PROMISE => {
            let mut block = frame_content(&f).map_err(unavailable)?.to_vec();
            if f.kind == PUSH_PROMISE {
                block.drain(..block.len().min(4)); // the promised stream id
            }
            let mut flags = f.flags;
            while flags & END_HEADERS == 0 {
                let next = c.recv()?;
                if next.kind != CONTINUATION || next.stream != f.stream {
                    return Err(unavailable("http2: expected CONTINUATION frame"));
                }
                block.extend_from_slice(&next.payload);
                flags = next.flags;
            }
            // Every block goes through the decoder to keep its table in step.
            let fields = c
                .hpack
                .decode(&block)
                .map_err(|e| unavailable(e.to_string()))?;
            if f.kind == HEADERS && f.stream == STREAM {
                if resp.headers.is_none() {
                    resp.headers = Some(fields);
                } else {
                    resp.trailers = Some(fields);
                }
                if f.flags & END_STREAM != 0 {
                    resp.done = true;
                }
            }
        }
        DATA if f.stream == STREAM => {
            let content = frame_content(&f).map_err(unavailable)?;
            if resp.data.len() < 1 << 20 {
                resp.data.extend_from_slice(content);
            }
            // Give back what the frame took from our receive windows.
            if !f.payload.is_empty() {
                let inc = (f.payload.len() as u32).to_be_bytes();
                c.send(WINDOW_UPDATE, 0, 0, &inc)?;
                if f.flags & END_STREAM == 0 {
                    c.send(WINDOW_UPDATE, 0, STREAM, &inc)?;
                }
            }
            if f.flags & END_STREAM != 0 {
                resp.done = true;
            }
        }
        RST_STREAM if f.stream == STREAM => {
            let code = f
                .payload
                .get(..4)
                .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            let (name, grpc) = h2_error(code);
            return Err(CallError::Rpc(Status {
                code: grpc,
                message: format!("stream terminated by RST_STREAM with error code: {name}"),
            }));
        }
        GOAWAY => {
            let last = f.payload.get(..4).map_or(0, |b| {
                u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff
            });
            if last < STREAM {
                return Err(unavailable(
                    "the connection is draining due to the server sending GOAWAY",
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn frames_round_trip_and_padding_is_stripped() {
        let bytes = encode_frame(
            HEADERS,
            END_HEADERS | PADDED | PRIORITY,
            3,
            &[2, 0, 0, 0, 0, 16, b'h', b'i', 0, 0],
        );
        assert_eq!(&bytes[..9], &[0, 0, 10, 1, 0x2c, 0, 0, 0, 3]);
        let f = read_frame(&mut &bytes[..]).unwrap();
        assert_eq!((f.kind, f.stream), (HEADERS, 3));
        assert_eq!(frame_content(&f).unwrap(), b"hi");
        let bad = encode_frame(DATA, PADDED, 1, &[9, 1, 2]);
        assert!(frame_content(&read_frame(&mut &bad[..]).unwrap()).is_err());
        let mut huge = encode_frame(DATA, 0, 1, &[]);
        huge[0] = 1; // 65536 bytes announced
        assert!(read_frame(&mut &huge[..]).is_err());
    }

    #[test]
    fn health_messages_encode_and_decode() {
        assert_eq!(health_request(""), vec![0, 0, 0, 0, 0]);
        assert_eq!(
            health_request("ab"),
            vec![0, 0, 0, 0, 4, 0x0a, 2, b'a', b'b']
        );
        assert_eq!(parse_health_response(&[0x08, 0x01]), Some(1));
        assert_eq!(parse_health_response(&[]), Some(0));
        // An unknown string field and a fixed64 before the status.
        assert_eq!(
            parse_health_response(&[0x12, 1, b'x', 0x19, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 2]),
            Some(2)
        );
        assert_eq!(parse_health_response(&[0x08]), None);
        assert_eq!(
            percent_decode("unknown%20service%3A x"),
            "unknown service: x"
        );
        assert_eq!(go_duration(Duration::from_secs(1)), "1s");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
    }

    /// A scripted HTTP/2 server: checks the preface, answers with `reply` frames once the
    /// request's END_STREAM arrived.
    fn server(reply: Vec<Vec<u8>>) -> (u16, std::thread::JoinHandle<Vec<Frame>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let h = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut pre = [0u8; 24];
            s.read_exact(&mut pre).unwrap();
            assert_eq!(&pre[..], PREFACE);
            // SETTINGS with a tiny stream window, and a PING to be answered.
            s.write_all(&encode_frame(SETTINGS, 0, 0, &settings_payload(&[(4, 3)])))
                .unwrap();
            s.write_all(&encode_frame(PING, 0, 0, b"12345678")).unwrap();
            let mut seen = Vec::new();
            let mut opened = false;
            loop {
                let f = read_frame(&mut s).unwrap();
                seen.push(f.clone());
                if f.kind == HEADERS && !opened {
                    opened = true;
                    // Open the window the request's DATA needs.
                    s.write_all(&encode_frame(WINDOW_UPDATE, 0, 1, &100u32.to_be_bytes()))
                        .unwrap();
                }
                if f.kind == DATA && f.flags & END_STREAM != 0 {
                    break;
                }
            }
            for r in reply {
                s.write_all(&r).unwrap();
            }
            let _ = read_frame(&mut s); // WINDOW_UPDATE / GOAWAY from the client
            seen
        });
        (port, h)
    }

    fn run(port: u16, service: &str) -> Result<(), String> {
        let mut dial = |t: Duration| {
            TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), t).map_err(|e| e.to_string())
        };
        check(
            &mut dial,
            &format!("127.0.0.1:{port}"),
            service,
            "kube-probe/1.34",
            Duration::from_secs(5),
        )
    }

    /// Response headers as a Huffman/indexed block like grpcio sends: `:status 200`
    /// (static index 8), `content-type: application/grpc` (literal, indexed name 31).
    fn response_headers() -> Vec<u8> {
        let mut b = vec![0x88];
        b.push(0x40 | 31);
        b.push(16);
        b.extend_from_slice(b"application/grpc");
        b
    }

    #[test]
    fn check_talks_http2_with_flow_control_and_continuation() {
        let mut trailers = Vec::new();
        hpack::encode_literal(&mut trailers, "grpc-status", "0");
        let headers = response_headers();
        let (a, b) = headers.split_at(2);
        let (port, h) = server(vec![
            encode_frame(HEADERS, 0, 1, a),
            encode_frame(CONTINUATION, END_HEADERS, 1, b),
            encode_frame(DATA, 0, 1, &[0, 0, 0, 0, 2, 0x08, 0x01]),
            encode_frame(HEADERS, END_HEADERS | END_STREAM, 1, &trailers),
        ]);
        assert_eq!(run(port, "svc"), Ok(()));
        let seen = h.join().unwrap();
        // SETTINGS, SETTINGS ACK, PING ACK, HEADERS, DATA.
        assert!(seen
            .iter()
            .any(|f| f.kind == PING && f.flags == ACK && f.payload == b"12345678"));
        assert!(seen.iter().any(|f| f.kind == SETTINGS && f.flags == ACK));
        let hdr = seen.iter().find(|f| f.kind == HEADERS).unwrap();
        let fields = hpack::Decoder::default().decode(&hdr.payload).unwrap();
        assert!(fields.contains(&(":path".into(), "/grpc.health.v1.Health/Check".into())));
        assert!(fields.contains(&(":authority".into(), format!("127.0.0.1:{port}"))));
        // The first DATA fits the 3-byte window; the rest waits for WINDOW_UPDATE.
        let frames: Vec<&Frame> = seen.iter().filter(|f| f.kind == DATA).collect();
        assert_eq!(frames[0].payload.len(), 3);
        assert!(frames.len() >= 2);
        let data: Vec<u8> = frames.iter().flat_map(|f| f.payload.clone()).collect();
        assert_eq!(data, health_request("svc"));
    }

    #[test]
    fn not_serving_unimplemented_and_reset_read_as_kubelet() {
        let mut trailers = Vec::new();
        hpack::encode_literal(&mut trailers, "grpc-status", "0");
        let (port, h) = server(vec![
            encode_frame(HEADERS, END_HEADERS, 1, &response_headers()),
            encode_frame(DATA, 0, 1, &[0, 0, 0, 0, 2, 0x08, 0x02]),
            encode_frame(HEADERS, END_HEADERS | END_STREAM, 1, &trailers),
        ]);
        assert_eq!(
            run(port, "x").unwrap_err(),
            "service unhealthy (responded with \"NOT_SERVING\")"
        );
        h.join().unwrap();

        let mut only = response_headers();
        hpack::encode_literal(&mut only, "grpc-status", "12");
        hpack::encode_literal(&mut only, "grpc-message", "Method%20not%20found!");
        let (port, h) = server(vec![encode_frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            1,
            &only,
        )]);
        assert_eq!(
            run(port, "").unwrap_err(),
            "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): Method not found!"
        );
        h.join().unwrap();

        let mut nf = response_headers();
        hpack::encode_literal(&mut nf, "grpc-status", "5");
        hpack::encode_literal(&mut nf, "grpc-message", "unknown service");
        let (port, h) = server(vec![encode_frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            1,
            &nf,
        )]);
        assert_eq!(
            run(port, "nope").unwrap_err(),
            "error: health rpc probe failed: rpc error: code = NotFound desc = unknown service"
        );
        h.join().unwrap();

        let (port, h) = server(vec![encode_frame(RST_STREAM, 0, 1, &7u32.to_be_bytes())]);
        assert_eq!(
            run(port, "").unwrap_err(),
            "error: health rpc probe failed: rpc error: code = Unavailable desc = stream terminated by RST_STREAM with error code: REFUSED_STREAM"
        );
        h.join().unwrap();
    }

    #[test]
    fn refused_connections_time_out_like_grpc_go() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut dial = |t: Duration| {
            TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), t).map_err(|e| e.to_string())
        };
        let t0 = Instant::now();
        let e = check(
            &mut dial,
            &format!("127.0.0.1:{port}"),
            "",
            "ua",
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert_eq!(
            e,
            format!("timeout: failed to connect service \"127.0.0.1:{port}\" within 1s: context deadline exceeded")
        );
        assert!(t0.elapsed() >= Duration::from_millis(900));
    }
}
