//! A minimal synchronous D-Bus client for systemd's manager on its private socket:
//! SASL EXTERNAL, method calls with the few argument types StartTransientUnit needs,
//! their replies and the signals that arrive meanwhile.
//!
//! Hand-written rather than a crate: podrun is a short-lived synchronous command that
//! makes one or two calls; zbus is async and heavy, dbus-rs needs libdbus.
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// A D-Bus failure: the connection, the protocol, or an error reply (name, message).
#[derive(Debug, thiserror::Error)]
pub enum DbusError {
    #[error("D-Bus {0}: {1}")]
    Io(&'static str, std::io::Error),
    #[error("D-Bus protocol: {0}")]
    Protocol(String),
    #[error("{0}: {1}")]
    Reply(String, String),
}

pub type Result<T> = std::result::Result<T, DbusError>;

/// A marshalled argument value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    ObjPath(String),
    Bool(bool),
    U32(u32),
    U64(u64),
    ArrayU32(Vec<u32>),
}

impl Value {
    fn signature(&self) -> &'static str {
        match self {
            Value::Str(_) => "s",
            Value::ObjPath(_) => "o",
            Value::Bool(_) => "b",
            Value::U32(_) => "u",
            Value::U64(_) => "t",
            Value::ArrayU32(_) => "au",
        }
    }
}

/// Little-endian marshalling into a message buffer (offsets are the message's).
#[derive(Default)]
struct Enc {
    b: Vec<u8>,
}

impl Enc {
    fn align(&mut self, n: usize) {
        while !self.b.len().is_multiple_of(n) {
            self.b.push(0);
        }
    }
    fn u32(&mut self, v: u32) {
        self.align(4);
        self.b.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.b.extend_from_slice(s.as_bytes());
        self.b.push(0);
    }
    fn sig(&mut self, s: &str) {
        self.b.push(s.len() as u8);
        self.b.extend_from_slice(s.as_bytes());
        self.b.push(0);
    }
    fn value(&mut self, v: &Value) {
        match v {
            Value::Str(s) | Value::ObjPath(s) => self.str(s),
            Value::Bool(x) => self.u32(u32::from(*x)),
            Value::U32(x) => self.u32(*x),
            Value::U64(x) => {
                self.align(8);
                self.b.extend_from_slice(&x.to_le_bytes());
            }
            Value::ArrayU32(xs) => {
                self.u32((xs.len() * 4) as u32);
                for x in xs {
                    self.u32(*x);
                }
            }
        }
    }
    fn variant(&mut self, v: &Value) {
        self.sig(v.signature());
        self.value(v);
    }
    /// An array of structs (8-aligned elements): `each` writes one element.
    fn array_of_structs<T>(&mut self, items: &[T], mut each: impl FnMut(&mut Enc, &T)) {
        self.u32(0);
        let len_at = self.b.len() - 4;
        self.align(8);
        let start = self.b.len();
        for it in items {
            self.align(8);
            each(self, it);
        }
        let len = (self.b.len() - start) as u32;
        self.b[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
    }
}

/// An argument of a method call: a plain value or a property list `a(sv)`.
pub enum Arg<'a> {
    Val(Value),
    Props(&'a [(String, Value)]),
    /// `a(sa(sv))`, always empty here (StartTransientUnit's auxiliary units).
    NoAux,
}

impl Arg<'_> {
    fn signature(&self) -> &'static str {
        match self {
            Arg::Val(v) => v.signature(),
            Arg::Props(_) => "a(sv)",
            Arg::NoAux => "a(sa(sv))",
        }
    }
}

/// A received message: its type, reply serial, error name, member and body arguments
/// (strings, object paths and u32s are decoded; other types end the decoding).
#[derive(Debug, Default)]
pub struct Message {
    pub kind: u8,
    pub reply_serial: Option<u32>,
    pub error_name: Option<String>,
    pub member: Option<String>,
    pub args: Vec<Value>,
}

const METHOD_CALL: u8 = 1;
const METHOD_RETURN: u8 = 2;
const ERROR: u8 = 3;
pub const SIGNAL: u8 = 4;

/// A connection to one D-Bus peer (systemd's private socket needs no Hello).
pub struct Conn {
    sock: UnixStream,
    serial: u32,
}

impl Conn {
    /// Connects to `path` and authenticates as our uid (SASL EXTERNAL).
    pub fn connect(path: &Path, timeout: Duration) -> Result<Conn> {
        let mut sock = UnixStream::connect(path).map_err(|e| DbusError::Io("connect", e))?;
        sock.set_read_timeout(Some(timeout))
            .map_err(|e| DbusError::Io("timeout", e))?;
        let uid = nix::unistd::getuid().as_raw().to_string();
        let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
        sock.write_all(format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes())
            .map_err(|e| DbusError::Io("auth", e))?;
        let line = read_line(&mut sock)?;
        if !line.starts_with("OK ") {
            return Err(DbusError::Protocol(format!(
                "authentication refused: {line}"
            )));
        }
        sock.write_all(b"BEGIN\r\n")
            .map_err(|e| DbusError::Io("auth", e))?;
        Ok(Conn { sock, serial: 0 })
    }

    /// How long a read may wait for the peer.
    pub fn set_timeout(&mut self, t: Duration) -> Result<()> {
        self.sock
            .set_read_timeout(Some(t))
            .map_err(|e| DbusError::Io("timeout", e))
    }

    /// Calls `member` and returns its reply; signals received meanwhile go to `signals`.
    pub fn call(
        &mut self,
        dest: &str,
        path: &str,
        iface: &str,
        member: &str,
        args: &[Arg<'_>],
        signals: &mut Vec<Message>,
    ) -> Result<Message> {
        self.serial += 1;
        let serial = self.serial;
        let msg = encode_call(serial, dest, path, iface, member, args);
        self.sock
            .write_all(&msg)
            .map_err(|e| DbusError::Io("write", e))?;
        loop {
            let m = self.read()?;
            match m.kind {
                SIGNAL => signals.push(m),
                METHOD_RETURN if m.reply_serial == Some(serial) => return Ok(m),
                ERROR if m.reply_serial == Some(serial) => {
                    let text = match m.args.first() {
                        Some(Value::Str(s)) => s.clone(),
                        _ => String::new(),
                    };
                    return Err(DbusError::Reply(m.error_name.unwrap_or_default(), text));
                }
                _ => {}
            }
        }
    }

    /// The next message from the peer.
    pub fn read(&mut self) -> Result<Message> {
        let mut fixed = [0u8; 16];
        self.sock
            .read_exact(&mut fixed)
            .map_err(|e| DbusError::Io("read", e))?;
        if fixed[0] != b'l' {
            return Err(DbusError::Protocol(
                "big-endian messages are not supported".into(),
            ));
        }
        let le =
            |i: usize| u32::from_le_bytes([fixed[i], fixed[i + 1], fixed[i + 2], fixed[i + 3]]);
        let (body_len, fields_len) = (le(4) as usize, le(12) as usize);
        let head_end = (16 + fields_len).div_ceil(8) * 8;
        if head_end + body_len > 64 << 20 {
            return Err(DbusError::Protocol("message too large".into()));
        }
        let mut rest = vec![0u8; head_end - 16 + body_len];
        self.sock
            .read_exact(&mut rest)
            .map_err(|e| DbusError::Io("read", e))?;
        let mut all = fixed.to_vec();
        all.extend_from_slice(&rest);
        decode(&all, fixed[1], 16 + fields_len, head_end)
    }
}

fn read_line(sock: &mut UnixStream) -> Result<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        sock.read_exact(&mut byte)
            .map_err(|e| DbusError::Io("auth", e))?;
        line.push(byte[0]);
        if line.len() > 4096 {
            return Err(DbusError::Protocol("authentication line too long".into()));
        }
    }
    Ok(String::from_utf8_lossy(&line).trim_end().to_string())
}

fn encode_call(
    serial: u32,
    dest: &str,
    path: &str,
    iface: &str,
    member: &str,
    args: &[Arg<'_>],
) -> Vec<u8> {
    let signature: String = args.iter().map(|a| a.signature()).collect();
    let mut body = Enc::default();
    for a in args {
        match a {
            Arg::Val(v) => body.value(v),
            Arg::Props(props) => body.array_of_structs(props, |e, (name, v)| {
                e.str(name);
                e.variant(v);
            }),
            Arg::NoAux => body.array_of_structs::<()>(&[], |_, _| {}),
        }
    }
    let mut h = Enc::default();
    h.b.extend_from_slice(&[b'l', METHOD_CALL, 0, 1]);
    h.u32(body.b.len() as u32);
    h.u32(serial);
    let mut fields = vec![
        (1u8, Value::ObjPath(path.into())),
        (2, Value::Str(iface.into())),
        (3, Value::Str(member.into())),
        (6, Value::Str(dest.into())),
    ];
    if !signature.is_empty() {
        fields.push((8, Value::Str(signature)));
    }
    h.array_of_structs(&fields, |e, (code, v)| {
        e.b.push(*code);
        if *code == 8 {
            if let Value::Str(s) = v {
                e.sig("g");
                e.sig(s);
            }
        } else {
            e.variant(v);
        }
    });
    h.align(8);
    h.b.extend_from_slice(&body.b);
    h.b
}

/// Little-endian reads at message offsets.
struct Dec<'a> {
    b: &'a [u8],
    at: usize,
}

impl Dec<'_> {
    fn align(&mut self, n: usize) {
        self.at = self.at.div_ceil(n) * n;
    }
    fn u32(&mut self) -> Result<u32> {
        self.align(4);
        let s = self
            .b
            .get(self.at..self.at + 4)
            .ok_or_else(|| DbusError::Protocol("truncated message".into()))?;
        self.at += 4;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn bytes(&mut self, n: usize) -> Result<&[u8]> {
        let s = self
            .b
            .get(self.at..self.at + n)
            .ok_or_else(|| DbusError::Protocol("truncated message".into()))?;
        self.at += n + 1; // and the NUL
        Ok(s)
    }
    fn str(&mut self) -> Result<String> {
        let n = self.u32()? as usize;
        Ok(String::from_utf8_lossy(self.bytes(n)?).into_owned())
    }
    fn sig(&mut self) -> Result<String> {
        let n = *self
            .b
            .get(self.at)
            .ok_or_else(|| DbusError::Protocol("truncated message".into()))?
            as usize;
        self.at += 1;
        Ok(String::from_utf8_lossy(self.bytes(n)?).into_owned())
    }
    /// One value of a single-character type we decode, or None.
    fn value(&mut self, t: char) -> Result<Option<Value>> {
        Ok(Some(match t {
            's' => Value::Str(self.str()?),
            'o' => Value::ObjPath(self.str()?),
            'g' => Value::Str(self.sig()?),
            'u' => Value::U32(self.u32()?),
            _ => return Ok(None),
        }))
    }
}

fn decode(all: &[u8], kind: u8, fields_end: usize, head_end: usize) -> Result<Message> {
    let mut m = Message {
        kind,
        ..Message::default()
    };
    let mut d = Dec { b: all, at: 16 };
    let mut signature = String::new();
    while d.at < fields_end {
        d.align(8);
        if d.at >= fields_end {
            break;
        }
        let code = all[d.at];
        d.at += 1;
        let t = d.sig()?;
        let v = match t.as_str() {
            "s" | "o" | "g" | "u" => d.value(t.chars().next().unwrap_or('?'))?,
            _ => return Err(DbusError::Protocol(format!("header field type {t}"))),
        };
        match (code, v) {
            (3, Some(Value::Str(s))) => m.member = Some(s),
            (4, Some(Value::Str(s))) => m.error_name = Some(s),
            (5, Some(Value::U32(n))) => m.reply_serial = Some(n),
            (8, Some(Value::Str(s))) => signature = s,
            _ => {}
        }
    }
    let mut d = Dec {
        b: all,
        at: head_end,
    };
    for t in signature.chars() {
        match d.value(t)? {
            Some(v) => m.args.push(v),
            None => break,
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against a real peer: a private dbus-daemon (skipped where none is installed).
    #[test]
    fn a_private_dbus_daemon_answers_hello_and_get_id() {
        let dir = std::env::temp_dir().join(format!("podrun-dbus-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let sock = dir.join("bus");
        let child = std::process::Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--nopidfile"])
            .arg(format!("--address=unix:path={}", sock.display()))
            .spawn();
        let Ok(mut child) = child else {
            eprintln!("skipped: no dbus-daemon");
            return;
        };
        for _ in 0..100 {
            if sock.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let result = (|| -> Result<(Message, Message)> {
            let mut c = Conn::connect(&sock, Duration::from_secs(5))?;
            let mut sig = Vec::new();
            let d = "org.freedesktop.DBus";
            let hello = c.call(d, "/org/freedesktop/DBus", d, "Hello", &[], &mut sig)?;
            let id = c.call(d, "/org/freedesktop/DBus", d, "GetId", &[], &mut sig)?;
            let bad = c.call(
                d,
                "/org/freedesktop/DBus",
                d,
                "GetNameOwner",
                &[Arg::Val(Value::Str("no.such.name".into()))],
                &mut sig,
            );
            assert!(
                matches!(&bad, Err(DbusError::Reply(n, _)) if n.contains("NameHasNoOwner")),
                "{bad:?}"
            );
            Ok((hello, id))
        })();
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
        let (hello, id) = result.unwrap();
        assert!(
            matches!(hello.args.first(), Some(Value::Str(n)) if n.starts_with(':')),
            "{hello:?}"
        );
        assert!(
            matches!(id.args.first(), Some(Value::Str(n)) if n.len() == 32),
            "{id:?}"
        );
    }

    #[test]
    fn a_call_round_trips_through_the_decoder() {
        let props = vec![
            ("Slice".to_string(), Value::Str("system.slice".into())),
            ("PIDs".to_string(), Value::ArrayU32(vec![42])),
            ("MemoryMax".to_string(), Value::U64(1 << 30)),
            ("Delegate".to_string(), Value::Bool(true)),
        ];
        let msg = encode_call(
            7,
            "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "StartTransientUnit",
            &[
                Arg::Val(Value::Str("podrun-x.scope".into())),
                Arg::Val(Value::Str("fail".into())),
                Arg::Props(&props),
                Arg::NoAux,
            ],
        );
        assert_eq!(&msg[..4], &[b'l', 1, 0, 1]);
        let fields_len = u32::from_le_bytes([msg[12], msg[13], msg[14], msg[15]]) as usize;
        let head_end = (16 + fields_len).div_ceil(8) * 8;
        let body_len = u32::from_le_bytes([msg[4], msg[5], msg[6], msg[7]]) as usize;
        assert_eq!(msg.len(), head_end + body_len);
        let m = decode(&msg, 1, 16 + fields_len, head_end).unwrap();
        assert_eq!(m.member.as_deref(), Some("StartTransientUnit"));
        // The two leading strings decode; the property array stops the decoding.
        assert_eq!(
            m.args,
            vec![
                Value::Str("podrun-x.scope".into()),
                Value::Str("fail".into())
            ]
        );
    }
}
