//! The HTTP client behind httpGet probes and lifecycle hooks, as kubelet's prober drives
//! Go's net/http (k8s.io/kubernetes pkg/probe/http): one GET per connection
//! (`Connection: close`), TLS for scheme HTTPS with certificate verification skipped,
//! redirects followed only while they stay on the same hostname (at most 10 requests),
//! the body read up to 10 KiB, and one time budget for every hop. Errors read as Go's
//! `*url.Error` does: `Get "URL": cause`.
//!
//! The caller supplies `dial`, which opens a TCP connection (inside the pod's network
//! namespace) within a given time; this module never creates sockets itself.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// kubelet reads at most this much of a probe's response body (maxRespBodyLength).
pub const MAX_BODY: usize = 10 * 1024;
/// Go's default limit on response header bytes (http.DefaultMaxHeaderBytes).
const MAX_HEADER_BYTES: usize = 1 << 20;
/// Go's http.Client stops after this many requests in one redirect chain.
const MAX_REQUESTS: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// One absolute http(s) URL, split the way the client needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub scheme: Scheme,
    /// The URL's host part as written (`10.0.0.5:8080`, `[::1]`, `10.0.0.5`): the Host
    /// header and what error messages show.
    pub authority: String,
    /// The hostname without brackets or port (Go's URL.Hostname()).
    pub hostname: String,
    /// The port dialed: the explicit one, else the scheme's default.
    pub port: u16,
    /// Path and query, always starting with `/`.
    pub path: String,
}

/// Go's net.JoinHostPort.
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

impl Target {
    /// The URL kubelet builds from an httpGet action (formatURL in request.go).
    pub fn new(scheme: Scheme, host: &str, port: u16, path: &str) -> Target {
        let path = strip_fragment(path);
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        Target {
            scheme,
            authority: join_host_port(host, port),
            hostname: host.to_string(),
            port,
            path,
        }
    }

    pub fn url(&self) -> String {
        format!("{}://{}{}", self.scheme.as_str(), self.authority, self.path)
    }

    /// Resolves a Location header against this URL (RFC 3986 section 5, as Go's
    /// URL.Parse/ResolveReference do it).
    pub fn resolve(&self, loc: &str) -> Result<Target, String> {
        let loc = strip_fragment(loc.trim());
        if let Some((scheme, rest)) = split_scheme(loc) {
            let scheme = match scheme.to_ascii_lowercase().as_str() {
                "http" => Scheme::Http,
                "https" => Scheme::Https,
                other => return Err(format!("unsupported protocol scheme \"{other}\"")),
            };
            let Some(rest) = rest.strip_prefix("//") else {
                return Err(format!("http: no Host in request URL \"{loc}\""));
            };
            return authority_target(scheme, rest);
        }
        if let Some(rest) = loc.strip_prefix("//") {
            return authority_target(self.scheme, rest);
        }
        let (base_path, _) = split_query(&self.path);
        let path = if loc.is_empty() {
            self.path.clone()
        } else if loc.starts_with('/') {
            remove_dot_segments(loc)
        } else if loc.starts_with('?') {
            format!("{base_path}{loc}")
        } else {
            let dir = match base_path.rfind('/') {
                Some(i) => &base_path[..=i],
                None => "/",
            };
            remove_dot_segments(&format!("{dir}{loc}"))
        };
        Ok(Target {
            path,
            ..self.clone()
        })
    }
}

fn strip_fragment(s: &str) -> &str {
    s.split_once('#').map_or(s, |(a, _)| a)
}

fn split_query(path: &str) -> (&str, &str) {
    match path.find('?') {
        Some(i) => (&path[..i], &path[i..]),
        None => (path, ""),
    }
}

/// `scheme:rest` when `s` starts with an RFC 3986 scheme.
fn split_scheme(s: &str) -> Option<(&str, &str)> {
    let i = s.find(':')?;
    let scheme = &s[..i];
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then(|| (scheme, &s[i + 1..]))
}

/// `host[:port][/path][?query]` after `//`.
fn authority_target(scheme: Scheme, rest: &str) -> Result<Target, String> {
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (auth, path) = rest.split_at(end);
    let auth = auth.rsplit_once('@').map_or(auth, |(_, h)| h);
    let (hostname, port) = if let Some(v6) = auth.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("missing ']' in host \"{auth}\""))?;
        (h.to_string(), after.strip_prefix(':'))
    } else {
        match auth.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (auth.to_string(), None),
        }
    };
    if hostname.is_empty() {
        return Err(format!(
            "http: no Host in request URL \"{scheme}://{rest}\"",
            scheme = scheme.as_str()
        ));
    }
    let port = match port {
        None | Some("") => scheme.default_port(),
        Some(p) => p
            .parse()
            .map_err(|_| format!("invalid port \":{p}\" after host"))?,
    };
    let authority = match auth.strip_suffix(':') {
        Some(a) => a.to_string(),
        None => auth.to_string(),
    };
    let path = if path.is_empty() {
        "/".to_string()
    } else if path.starts_with('?') {
        format!("/{path}")
    } else {
        let (p, q) = split_query(path);
        format!("{}{q}", remove_dot_segments(p))
    };
    Ok(Target {
        scheme,
        authority,
        hostname,
        port,
        path,
    })
}

/// RFC 3986 section 5.2.4 on the path part (a query is kept as it is).
fn remove_dot_segments(path: &str) -> String {
    let (p, q) = split_query(path);
    let mut out: Vec<&str> = Vec::new();
    let segs: Vec<&str> = p.split('/').skip(1).collect();
    let last = segs.len().saturating_sub(1);
    let mut trailing = false;
    for (i, seg) in segs.iter().enumerate() {
        match *seg {
            "." => trailing = i == last,
            ".." => {
                out.pop();
                trailing = i == last;
            }
            s => {
                out.push(s);
                trailing = false;
            }
        }
    }
    let mut s = format!("/{}", out.join("/"));
    if trailing && !s.ends_with('/') {
        s.push('/');
    }
    s.push_str(q);
    s
}

/// Go's textproto.CanonicalMIMEHeaderKey: `x-custom-header` → `X-Custom-Header`.
pub fn canonical_header(name: &str) -> String {
    let valid = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !valid || name.is_empty() {
        return name.to_string();
    }
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            out
        })
        .collect()
}

/// What the request carries besides the URL.
#[derive(Debug, Clone)]
pub struct Request {
    pub target: Target,
    /// httpHeaders of the action, in order.
    pub headers: Vec<(String, String)>,
    /// `kube-probe/1.34` or `kube-lifecycle/1.34`, unless the headers set one.
    pub user_agent: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// At most MAX_BODY bytes of the (de-chunked) body.
    pub body: Vec<u8>,
}

/// Opens a TCP connection to `host:port` within the given time; errors read as Go's
/// dialer prints them (`dial tcp 10.0.0.5:80: connect: connection refused`).
pub type Dial<'a> = dyn FnMut(&str, u16, Duration) -> Result<TcpStream, String> + 'a;

/// Go's client error text when the overall timeout hits before the headers arrived.
const AWAITING_HEADERS: &str =
    "context deadline exceeded (Client.Timeout exceeded while awaiting headers)";

/// GETs the request's URL, following same-host redirects, all within `deadline`.
/// Returns the last response (a 3xx when the chain stopped at a redirect to another
/// host, or at a 3xx that is not followed), or the error as Go prints it.
pub fn get(req: &Request, deadline: Instant, dial: &mut Dial) -> Result<Response, String> {
    Chain::new(Prepared::new(req.clone())).run(deadline, dial)
}

/// A request made ready once for many GETs (a probe's, every period): its first bytes
/// are built here, not per run.
#[derive(Debug)]
pub struct Prepared {
    req: Request,
    first: Rc<[u8]>,
}

impl Prepared {
    pub fn new(req: Request) -> Rc<Prepared> {
        let first = request_bytes(&req, &req.target, header_value(&req.headers, "Host"), None);
        Rc::new(Prepared {
            first: first.into(),
            req,
        })
    }
}

/// Where a redirect chain stands: the next URL to GET and what its request carries.
struct Chain {
    prepared: Rc<Prepared>,
    first_host: String,
    custom_host: Option<String>,
    target: Target,
    host_header: Option<String>,
    referer: Option<String>,
    requests: usize,
}

impl Chain {
    fn new(prepared: Rc<Prepared>) -> Chain {
        let req = &prepared.req;
        let custom_host = header_value(&req.headers, "Host").map(String::from);
        Chain {
            first_host: req.target.hostname.clone(),
            host_header: custom_host.clone(),
            custom_host,
            target: req.target.clone(),
            referer: None,
            requests: 0,
            prepared,
        }
    }

    fn request_bytes(&self) -> Rc<[u8]> {
        if self.requests == 0 {
            return self.prepared.first.clone();
        }
        request_bytes(
            &self.prepared.req,
            &self.target,
            self.host_header.as_deref(),
            self.referer.as_deref(),
        )
        .into()
    }

    /// The rest of the chain, one blocking request after the other.
    fn run(&mut self, deadline: Instant, dial: &mut Dial) -> Result<Response, String> {
        loop {
            let url = self.target.url();
            let hop = get_once(
                &self.prepared.req,
                &self.target,
                self.host_header.as_deref(),
                self.referer.as_deref(),
                deadline,
                dial,
            )
            .map_err(|e| format!("Get \"{url}\": {e}"))?;
            if let Some(resp) = self.after(hop)? {
                return Ok(resp);
            }
        }
    }

    /// After a response: Some(it) when it ends the chain; None when the chain follows
    /// its redirect (`target` is then the next URL).
    fn after(&mut self, hop: Hop) -> Result<Option<Response>, String> {
        self.requests += 1;
        let url = self.target.url();
        if !matches!(hop.status, 301 | 302 | 303 | 307 | 308) {
            return Ok(Some(hop.response));
        }
        let Some(loc) = hop.location.clone().filter(|l| !l.is_empty()) else {
            return Ok(Some(hop.response));
        };
        let next = self.target.resolve(&loc).map_err(|e| {
            format!("Get \"{url}\": failed to parse Location header \"{loc}\": {e}")
        })?;
        // kubelet's redirect checker: another hostname ends the chain with this response
        // (a Warning); otherwise Go's limit of 10 requests.
        if next.hostname != self.first_host {
            return Ok(Some(hop.response));
        }
        if self.requests >= MAX_REQUESTS {
            return Err(format!("Get \"{loc}\": stopped after 10 redirects"));
        }
        // A custom Host survives only a relative Location (Go issue 22233).
        if self.custom_host.is_some() && split_scheme(&loc).is_some() {
            self.host_header = None;
        }
        self.referer =
            (!(self.target.scheme == Scheme::Https && next.scheme == Scheme::Http)).then_some(url);
        self.target = next;
        Ok(None)
    }
}

/// Opens a TCP connection to `host:port`: with Some(time), blocking as [`Dial`]; with
/// None, a non-blocking socket whose connect is started (not necessarily done). Errors
/// as [`Dial`]'s.
pub type DialAny<'a> = dyn FnMut(&str, u16, Option<Duration>) -> Result<TcpStream, String> + 'a;

/// What a [`Pending`] GET needs next.
#[derive(Debug)]
pub enum Step {
    /// Call `step` again once the socket has any of these poll(2) events (or at the
    /// deadline).
    Wait(RawFd, i16),
    Done(Result<Response, String>),
}

/// A plain-HTTP GET driven by its caller's event loop: the same request, redirects and
/// messages as [`get`], without blocking. Probes of many containers then overlap: each
/// is sent, and the loop sleeps once for all their answers. An HTTPS hop (a redirect
/// to https) finishes the chain with blocking requests.
pub struct Pending {
    chain: Chain,
    deadline: Instant,
    conn: Option<TcpStream>,
    out: Rc<[u8]>,
    sent: usize,
    connected: bool,
    inbuf: Vec<u8>,
    eof: bool,
    read_err: Option<std::io::Error>,
}

/// A response is read up to its headers' limit plus kubelet's body limit.
const MAX_READ: usize = MAX_HEADER_BYTES + MAX_BODY + 64 * 1024;

impl Pending {
    pub fn new(prepared: Rc<Prepared>, deadline: Instant) -> Pending {
        Pending {
            chain: Chain::new(prepared),
            deadline,
            conn: None,
            out: Rc::from(&[][..]),
            sent: 0,
            connected: false,
            inbuf: Vec::new(),
            eof: false,
            read_err: None,
        }
    }

    /// Goes as far as it can without blocking.
    pub fn step(&mut self, now: Instant, dial: &mut DialAny) -> Step {
        loop {
            if now >= self.deadline {
                return Step::Done(Err(self.expired()));
            }
            let Some(tcp) = self.conn.as_ref() else {
                if self.chain.target.scheme == Scheme::Https {
                    let mut blocking = |h: &str, p: u16, t: Duration| dial(h, p, Some(t));
                    return Step::Done(self.chain.run(self.deadline, &mut blocking));
                }
                match dial(&self.chain.target.hostname, self.chain.target.port, None) {
                    Ok(s) => {
                        self.conn = Some(s);
                        self.out = self.chain.request_bytes();
                        self.sent = 0;
                        self.connected = false;
                        self.inbuf.clear();
                        self.eof = false;
                        self.read_err = None;
                        continue;
                    }
                    Err(e) => {
                        return Step::Done(Err(format!("Get \"{}\": {e}", self.chain.target.url())))
                    }
                }
            };
            let fd = tcp.as_raw_fd();
            if self.sent < self.out.len() {
                // SAFETY: send(2) from a live buffer on our socket.
                let n = unsafe {
                    libc::send(
                        fd,
                        self.out[self.sent..].as_ptr().cast(),
                        self.out.len() - self.sent,
                        libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
                    )
                };
                if n >= 0 {
                    self.sent += n as usize;
                    self.connected = true;
                    continue;
                }
                let e = std::io::Error::last_os_error();
                match e.kind() {
                    // Still connecting (nothing sent yet) or a full send buffer.
                    std::io::ErrorKind::WouldBlock => return Step::Wait(fd, libc::POLLOUT),
                    std::io::ErrorKind::Interrupted => continue,
                    _ if !self.connected => {
                        let shown =
                            join_host_port(&self.chain.target.hostname, self.chain.target.port);
                        return Step::Done(Err(format!(
                            "Get \"{}\": {}",
                            self.chain.target.url(),
                            dial_error(&shown, &e)
                        )));
                    }
                    _ => {
                        return Step::Done(Err(format!(
                            "Get \"{}\": {}",
                            self.chain.target.url(),
                            io_text(&e, AWAITING_HEADERS)
                        )))
                    }
                }
            }
            self.receive();
            match self.parse() {
                Ok(hop) => {
                    self.conn = None;
                    match self.chain.after(hop) {
                        Ok(Some(resp)) => return Step::Done(Ok(resp)),
                        Ok(None) => continue,
                        Err(e) => return Step::Done(Err(e)),
                    }
                }
                Err(None) => {
                    if let Some(e) = &self.read_err {
                        let text = io_text(e, AWAITING_HEADERS);
                        let url = self.chain.target.url();
                        return Step::Done(Err(format!("Get \"{url}\": {text}")));
                    }
                    return Step::Wait(fd, libc::POLLIN);
                }
                Err(Some(e)) => {
                    return Step::Done(Err(format!("Get \"{}\": {e}", self.chain.target.url())))
                }
            }
        }
    }

    /// Reads what has arrived (until it would block, or EOF).
    fn receive(&mut self) {
        let Some(tcp) = self.conn.as_mut() else {
            return;
        };
        let mut chunk = [0u8; 8192];
        while !self.eof && self.read_err.is_none() && self.inbuf.len() < MAX_READ {
            match tcp.read(&mut chunk) {
                Ok(0) => self.eof = true,
                Ok(n) => self.inbuf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => self.read_err = Some(e),
            }
        }
    }

    /// The response in what was received: Err(None) while it is incomplete.
    fn parse(&mut self) -> Result<Hop, Option<String>> {
        let mut r = Reader {
            conn: None,
            buf: std::mem::take(&mut self.inbuf),
            pos: 0,
            deadline: self.deadline,
            eof: self.eof,
            starved: false,
        };
        let res = read_response(&mut r);
        self.inbuf = r.buf;
        match res {
            Ok(hop) => Ok(hop),
            Err(_) if r.starved => Err(None),
            Err(e) => Err(Some(e)),
        }
    }

    /// The error at the deadline, as Go words it for the stage the request was in.
    pub fn expired(&mut self) -> String {
        let url = self.chain.target.url();
        let t = &self.chain.target;
        let text = if self.conn.is_some() && !self.connected {
            format!(
                "dial tcp {}: i/o timeout (Client.Timeout exceeded while awaiting headers)",
                join_host_port(&t.hostname, t.port)
            )
        } else if self.conn.is_some() && self.sent >= self.out.len() {
            // Awaiting the headers or reading the body: the parse of what came says which.
            let mut r = Reader {
                conn: None,
                buf: std::mem::take(&mut self.inbuf),
                pos: 0,
                deadline: self.deadline,
                eof: false,
                starved: false,
            };
            let res = read_response(&mut r);
            self.inbuf = r.buf;
            match res {
                Err(e) => e,
                Ok(_) => AWAITING_HEADERS.to_string(),
            }
        } else {
            AWAITING_HEADERS.to_string()
        };
        self.conn = None;
        format!("Get \"{url}\": {text}")
    }
}

/// A failed dial as Go's dialer prints it (`dial tcp 10.0.0.5:80: connect: connection
/// refused`).
pub fn dial_error(shown: &str, e: &std::io::Error) -> String {
    let why = match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connect: connection refused".to_string(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => "i/o timeout".to_string(),
        _ => format!("connect: {e}"),
    };
    format!("dial tcp {shown}: {why}")
}

fn header_value<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

struct Hop {
    status: u16,
    location: Option<String>,
    response: Response,
}

impl std::ops::Deref for Hop {
    type Target = Response;
    fn deref(&self) -> &Response {
        &self.response
    }
}

/// The request bytes as Go's http.Request.Write puts them (headers sorted by name).
fn request_bytes(req: &Request, t: &Target, host: Option<&str>, referer: Option<&str>) -> Vec<u8> {
    let mut headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(n, v)| (canonical_header(n), v.clone()))
        .filter(|(n, _)| {
            !matches!(
                n.as_str(),
                "Host" | "Content-Length" | "Transfer-Encoding" | "Trailer"
            )
        })
        .collect();
    let ua = match headers.iter().position(|(n, _)| n == "User-Agent") {
        Some(i) => headers.remove(i).1,
        None => req.user_agent.clone(),
    };
    headers.retain(|(n, _)| n != "User-Agent");
    match headers.iter().position(|(n, _)| n == "Accept") {
        None => headers.push(("Accept".into(), "*/*".into())),
        Some(i) if headers[i].1.is_empty() => headers.retain(|(n, _)| n != "Accept"),
        Some(_) => {}
    }
    if let Some(r) = referer {
        headers.retain(|(n, _)| n != "Referer");
        headers.push(("Referer".into(), r.to_string()));
    }
    headers.push(("Connection".into(), "close".into()));
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\n",
        t.path,
        host.unwrap_or(&t.authority)
    );
    if !ua.is_empty() {
        out.push_str(&format!("User-Agent: {ua}\r\n"));
    }
    for (n, v) in headers {
        // Go drops CR/LF from values rather than letting them split the header.
        let v: String = v
            .chars()
            .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
            .collect();
        out.push_str(&format!("{n}: {}\r\n", v.trim()));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

fn get_once(
    req: &Request,
    t: &Target,
    host: Option<&str>,
    referer: Option<&str>,
    deadline: Instant,
    dial: &mut Dial,
) -> Result<Hop, String> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(AWAITING_HEADERS.into());
    }
    let tcp = dial(&t.hostname, t.port, left).map_err(|e| {
        if e.ends_with("i/o timeout") {
            format!("{e} (Client.Timeout exceeded while awaiting headers)")
        } else {
            e
        }
    })?;
    let mut conn = match t.scheme {
        Scheme::Http => Conn::Plain(tcp),
        Scheme::Https => Conn::Tls(Box::new(tls_handshake(tcp, &t.hostname, deadline)?)),
    };
    conn.write_all_by(&request_bytes(req, t, host, referer), deadline)
        .map_err(|e| io_text(&e, AWAITING_HEADERS))?;
    let mut r = Reader {
        conn: Some(conn),
        buf: Vec::new(),
        pos: 0,
        deadline,
        eof: false,
        starved: false,
    };
    read_response(&mut r)
}

fn io_text(e: &std::io::Error, timeout: &str) -> String {
    match e.kind() {
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => timeout.to_string(),
        std::io::ErrorKind::UnexpectedEof => "unexpected EOF".into(),
        std::io::ErrorKind::ConnectionReset => "read: connection reset by peer".into(),
        std::io::ErrorKind::BrokenPipe => "write: broken pipe".into(),
        _ => match tls_error(e) {
            Some(t) => t,
            None => e.to_string(),
        },
    }
}

/// A connection: plain TCP or TLS over it.
enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, Sniff>>),
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => &s.sock.tcp,
        }
    }

    /// Sets the socket timeouts to what is left of the budget.
    fn arm(&self, deadline: Instant) -> std::io::Result<()> {
        arm(self.tcp(), deadline)
    }

    fn write_all_by(&mut self, data: &[u8], deadline: Instant) -> std::io::Result<()> {
        self.arm(deadline)?;
        match self {
            Conn::Plain(s) => s.write_all(data),
            Conn::Tls(s) => {
                s.write_all(data)?;
                s.flush()
            }
        }
    }

    fn read_by(&mut self, buf: &mut [u8], deadline: Instant) -> std::io::Result<usize> {
        self.arm(deadline)?;
        let r = match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        };
        match r {
            // A TLS peer that closes without close_notify: the body ends there, as
            // Go's client accepts for Connection: close responses.
            Err(e)
                if e.kind() == std::io::ErrorKind::UnexpectedEof
                    && matches!(self, Conn::Tls(_)) =>
            {
                Ok(0)
            }
            r => r,
        }
    }
}

/// Socket timeouts set to what is left until `deadline` (TimedOut once it passed).
pub fn arm(tcp: &TcpStream, deadline: Instant) -> std::io::Result<()> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(std::io::ErrorKind::TimedOut.into());
    }
    tcp.set_read_timeout(Some(left))?;
    tcp.set_write_timeout(Some(left))
}

/// Buffered reading of a response: from a connection, or (conn None) from the bytes
/// received so far.
struct Reader {
    conn: Option<Conn>,
    buf: Vec<u8>,
    pos: usize,
    deadline: Instant,
    eof: bool,
    /// Without a connection: the parse needed bytes that have not arrived yet.
    starved: bool,
}

impl Reader {
    /// Reads more into the buffer; Ok(false) at EOF.
    fn fill(&mut self) -> std::io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        let Some(conn) = self.conn.as_mut() else {
            self.starved = true;
            return Err(std::io::ErrorKind::WouldBlock.into());
        };
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        let mut chunk = [0u8; 8192];
        let n = conn.read_by(&mut chunk, self.deadline)?;
        if n == 0 {
            self.eof = true;
            return Ok(false);
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(true)
    }

    fn pending(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// One line without its CRLF; None at EOF before any byte of it.
    fn line(&mut self, limit: usize) -> std::io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(i) = self.pending().iter().position(|&b| b == b'\n') {
                let mut l = self.pending()[..i].to_vec();
                self.pos += i + 1;
                if l.last() == Some(&b'\r') {
                    l.pop();
                }
                return Ok(Some(l));
            }
            if self.pending().len() > limit {
                return Err(std::io::Error::other("line too long"));
            }
            if !self.fill()? {
                if self.pending().is_empty() {
                    return Ok(None);
                }
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// Up to `max` bytes (fewer at EOF).
    fn take(&mut self, max: usize) -> std::io::Result<Vec<u8>> {
        while self.pending().len() < max {
            if !self.fill()? {
                break;
            }
        }
        let n = self.pending().len().min(max);
        let out = self.pending()[..n].to_vec();
        self.pos += n;
        Ok(out)
    }
}

fn read_response(r: &mut Reader) -> Result<Hop, String> {
    loop {
        let status_line = match r.line(MAX_HEADER_BYTES) {
            Ok(Some(l)) => l,
            Ok(None) => return Err("EOF".into()),
            Err(e) => return Err(io_text(&e, AWAITING_HEADERS)),
        };
        let line = String::from_utf8_lossy(&status_line).into_owned();
        let mut parts = line.splitn(3, ' ');
        let proto = parts.next().unwrap_or_default();
        let code = parts.next().unwrap_or_default();
        if !proto.starts_with("HTTP/") {
            return Err(format!(
                "net/http: HTTP/1.x transport connection broken: malformed HTTP response \"{line}\""
            ));
        }
        let status: u16 = match code.parse() {
            Ok(c) if code.len() == 3 => c,
            _ => {
                return Err(format!(
                    "net/http: HTTP/1.x transport connection broken: malformed HTTP status code \"{code}\""
                ))
            }
        };
        let mut headers: Vec<(String, String)> = Vec::new();
        let mut total = status_line.len();
        loop {
            let l = match r.line(MAX_HEADER_BYTES) {
                Ok(Some(l)) => l,
                Ok(None) => return Err("unexpected EOF".into()),
                Err(e) => return Err(io_text(&e, AWAITING_HEADERS)),
            };
            if l.is_empty() {
                break;
            }
            total += l.len();
            if total > MAX_HEADER_BYTES {
                return Err(format!(
                    "net/http: server response headers exceeded {MAX_HEADER_BYTES} bytes; aborted"
                ));
            }
            let l = String::from_utf8_lossy(&l).into_owned();
            if let Some((n, v)) = l.split_once(':') {
                headers.push((n.trim().to_string(), v.trim().to_string()));
            }
        }
        // Interim 1xx responses (but 101) are skipped, as Go's transport does.
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        let location = header_value(&headers, "Location").map(String::from);
        let body = read_body(r, status, &headers).map_err(|e| {
            io_text(
                &e,
                "context deadline exceeded (Client.Timeout or context cancellation while reading body)",
            )
        })?;
        return Ok(Hop {
            status,
            location,
            response: Response { status, body },
        });
    }
}

fn read_body(
    r: &mut Reader,
    status: u16,
    headers: &[(String, String)],
) -> std::io::Result<Vec<u8>> {
    if status == 204 || status == 304 || (100..200).contains(&status) {
        return Ok(Vec::new());
    }
    let chunked = header_value(headers, "Transfer-Encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        let mut body = Vec::new();
        while body.len() < MAX_BODY {
            let line = r.line(4096)?.ok_or(std::io::ErrorKind::UnexpectedEof)?;
            let text = String::from_utf8_lossy(&line);
            let size_text = text.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| std::io::Error::other("invalid byte in chunk length"))?;
            if size == 0 {
                break;
            }
            let want = size.min(MAX_BODY - body.len());
            let got = r.take(want)?;
            if got.len() < want {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            body.extend_from_slice(&got);
            if want < size {
                break; // the limit is reached; the rest is never read
            }
            r.line(4096)?; // the CRLF after the chunk
        }
        return Ok(body);
    }
    if let Some(len) = header_value(headers, "Content-Length") {
        let len: usize = len
            .parse()
            .map_err(|_| std::io::Error::other(format!("bad Content-Length \"{len}\"")))?;
        let want = len.min(MAX_BODY);
        let got = r.take(want)?;
        if got.len() < want {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        return Ok(got);
    }
    r.take(MAX_BODY)
}

/// The TCP stream under TLS, remembering the first bytes the server sent so that a
/// plain-HTTP answer can be told apart from a broken handshake (as Go's transport does).
pub struct Sniff {
    tcp: TcpStream,
    first: Vec<u8>,
}

impl Read for Sniff {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.tcp.read(buf)?;
        if self.first.len() < 5 {
            let take = n.min(5 - self.first.len());
            self.first.extend_from_slice(&buf[..take]);
        }
        Ok(n)
    }
}

impl Write for Sniff {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tcp.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.tcp.flush()
    }
}

/// The text Go's transport gives when an HTTPS request meets a plain HTTP server.
pub const HTTP_TO_HTTPS: &str = "http: server gave HTTP response to HTTPS client";

fn tls_handshake(
    tcp: TcpStream,
    hostname: &str,
    deadline: Instant,
) -> Result<rustls::StreamOwned<rustls::ClientConnection, Sniff>, String> {
    // An IP address gives no SNI, a name does: what Go's tls.Config{ServerName: host} does.
    let name = rustls::pki_types::ServerName::try_from(hostname.to_string())
        .map_err(|e| format!("tls: invalid server name {hostname:?}: {e}"))?;
    let mut conn =
        rustls::ClientConnection::new(tls_config()?, name).map_err(|e| format!("tls: {e}"))?;
    let mut sock = Sniff {
        tcp,
        first: Vec::new(),
    };
    while conn.is_handshaking() {
        let step = arm(&sock.tcp, deadline).and_then(|_| conn.complete_io(&mut sock));
        if let Err(e) = step {
            if sock.first.starts_with(b"HTTP/") {
                return Err(HTTP_TO_HTTPS.into());
            }
            return Err(match e.kind() {
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                    AWAITING_HEADERS.into()
                }
                std::io::ErrorKind::UnexpectedEof => "EOF".into(),
                _ => tls_error(&e).unwrap_or_else(|| e.to_string()),
            });
        }
    }
    Ok(rustls::StreamOwned::new(conn, sock))
}

/// A rustls error inside an io::Error, worded like Go's crypto/tls.
fn tls_error(e: &std::io::Error) -> Option<String> {
    let inner = e.get_ref()?.downcast_ref::<rustls::Error>()?;
    Some(match inner {
        rustls::Error::AlertReceived(a) => format!("remote error: tls: {}", alert_words(a)),
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            "tls: first record does not look like a TLS handshake".into()
        }
        rustls::Error::PeerIncompatible(_) => {
            "tls: server selected unsupported protocol version or cipher suite".into()
        }
        other => format!("tls: {other}"),
    })
}

/// `HandshakeFailure` → `handshake failure`, Go's wording for most alerts.
fn alert_words(a: &rustls::AlertDescription) -> String {
    let name = format!("{a:?}");
    match name.as_str() {
        "ProtocolVersion" => return "protocol version not supported".into(),
        "UnrecognisedName" => return "unrecognized name".into(),
        _ => {}
    }
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push(' ');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// Accepts any server certificate, as kubelet's prober does (Go's
/// `tls.Config{InsecureSkipVerify: true}` in pkg/probe/http): a probe checks that the
/// container answers, not who it is; pods commonly serve self-signed certificates that
/// no node could verify, and the connection never leaves the node. This is only ever
/// used for probes and lifecycle hooks. As with Go, the handshake signature is still
/// checked against the presented certificate's key.
#[derive(Debug)]
struct SkipCertificateVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for SkipCertificateVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// One client configuration for every probe of this supervisor (TLS 1.2 and 1.3, the
/// ring provider, HTTP/1.1 offered by ALPN).
fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("tls: {e}"))?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(SkipCertificateVerification(provider)))
                .with_no_client_auth();
            cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
            Ok(Arc::new(cfg))
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn t(url: &str) -> Target {
        let (s, rest) = url.split_once("://").unwrap();
        let scheme = if s == "https" {
            Scheme::Https
        } else {
            Scheme::Http
        };
        authority_target(scheme, rest).unwrap()
    }

    #[test]
    fn locations_resolve_like_go() {
        let base = Target::new(Scheme::Http, "10.0.0.5", 8080, "/a/b/c?x=1");
        assert_eq!(base.url(), "http://10.0.0.5:8080/a/b/c?x=1");
        assert_eq!(
            base.resolve("/ok").unwrap().url(),
            "http://10.0.0.5:8080/ok"
        );
        assert_eq!(
            base.resolve("d").unwrap().url(),
            "http://10.0.0.5:8080/a/b/d"
        );
        assert_eq!(
            base.resolve("../d?y=2").unwrap().url(),
            "http://10.0.0.5:8080/a/d?y=2"
        );
        assert_eq!(
            base.resolve("./").unwrap().url(),
            "http://10.0.0.5:8080/a/b/"
        );
        assert_eq!(
            base.resolve("?q").unwrap().url(),
            "http://10.0.0.5:8080/a/b/c?q"
        );
        assert_eq!(
            base.resolve("/x#frag").unwrap().url(),
            "http://10.0.0.5:8080/x"
        );
        let abs = base.resolve("https://10.0.0.5:8443/s").unwrap();
        assert_eq!(
            (abs.scheme, abs.port, abs.hostname.as_str()),
            (Scheme::Https, 8443, "10.0.0.5")
        );
        let other = base.resolve("http://example.com/").unwrap();
        assert_eq!(
            (
                other.hostname.as_str(),
                other.port,
                other.authority.as_str()
            ),
            ("example.com", 80, "example.com")
        );
        assert_eq!(
            base.resolve("//10.0.0.6/p").unwrap().url(),
            "http://10.0.0.6/p"
        );
        let v6 = base.resolve("http://[::1]:81/").unwrap();
        assert_eq!((v6.hostname.as_str(), v6.port), ("::1", 81));
        assert!(base
            .resolve("ftp://x/")
            .unwrap_err()
            .contains("unsupported protocol scheme \"ftp\""));
        assert_eq!(t("http://h/a/./b/../c").path, "/a/c");
    }

    #[test]
    fn header_names_are_canonical_and_defaults_apply() {
        assert_eq!(canonical_header("x-custom-header"), "X-Custom-Header");
        assert_eq!(canonical_header("USER-agent"), "User-Agent");
        let req = Request {
            target: Target::new(Scheme::Http, "10.0.0.5", 80, "/healthz"),
            headers: vec![
                ("x-b".into(), "2".into()),
                ("Host".into(), "example.com".into()),
                ("accept".into(), "".into()),
            ],
            user_agent: "kube-probe/1.34".into(),
        };
        let text =
            String::from_utf8(request_bytes(&req, &req.target, Some("example.com"), None)).unwrap();
        assert_eq!(
            text,
            "GET /healthz HTTP/1.1\r\nHost: example.com\r\nUser-Agent: kube-probe/1.34\r\nConnection: close\r\nX-B: 2\r\n\r\n"
        );
    }

    /// A one-shot server thread answering each connection with the next canned reply.
    fn serve(replies: Vec<Vec<u8>>) -> (u16, std::thread::JoinHandle<Vec<String>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let h = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for reply in replies {
                let (mut s, _) = l.accept().unwrap();
                let mut buf = Vec::new();
                let mut b = [0u8; 1024];
                while !buf.ends_with(b"\r\n\r\n") {
                    let n = s.read(&mut b).unwrap();
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&b[..n]);
                }
                seen.push(String::from_utf8_lossy(&buf).into_owned());
                s.write_all(&reply).unwrap();
            }
            seen
        });
        (port, h)
    }

    fn plain_dial(host: &str, port: u16, t: Duration) -> Result<TcpStream, String> {
        let addr: std::net::SocketAddr = format!("{host}:{port}")
            .parse()
            .map_err(|e| format!("{e}"))?;
        TcpStream::connect_timeout(&addr, t).map_err(|e| format!("dial tcp {addr}: {e}"))
    }

    fn probe(port: u16, path: &str) -> Result<Response, String> {
        let req = Request {
            target: Target::new(Scheme::Http, "127.0.0.1", port, path),
            headers: vec![],
            user_agent: "kube-probe/1.34".into(),
        };
        get(
            &req,
            Instant::now() + Duration::from_secs(5),
            &mut plain_dial,
        )
    }

    /// The dial a supervisor gives [`Pending`]: blocking with a time, else a
    /// non-blocking socket with its connect started.
    fn any_dial(host: &str, port: u16, t: Option<Duration>) -> Result<TcpStream, String> {
        if let Some(t) = t {
            return plain_dial(host, port, t);
        }
        use super::super::probes::{connect_started, new_socket};
        let addr: std::net::SocketAddr = format!("{host}:{port}").parse().unwrap();
        let sock = new_socket(&addr, libc::SOCK_NONBLOCK).unwrap();
        connect_started(sock, &addr).map_err(|e| dial_error(&addr.to_string(), &e))
    }

    /// Drives a [`Pending`] GET as the supervisor's loop does; returns its result and
    /// how many times it had to wait.
    fn drive(port: u16, path: &str, within: Duration) -> (Result<Response, String>, usize) {
        let req = Request {
            target: Target::new(Scheme::Http, "127.0.0.1", port, path),
            headers: vec![],
            user_agent: "kube-probe/1.34".into(),
        };
        let deadline = Instant::now() + within;
        let mut p = Pending::new(Prepared::new(req), deadline);
        let mut waits = 0;
        loop {
            match p.step(Instant::now(), &mut any_dial) {
                Step::Done(r) => return (r, waits),
                Step::Wait(fd, events) => {
                    waits += 1;
                    let ms = deadline
                        .saturating_duration_since(Instant::now())
                        .as_millis() as i32
                        + 1;
                    let mut pfd = libc::pollfd {
                        fd,
                        events,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd.
                    unsafe { libc::poll(&mut pfd, 1, ms) };
                }
            }
        }
    }

    #[test]
    fn a_pending_get_reads_as_the_blocking_one() {
        let replies = || {
            vec![
                b"HTTP/1.1 302 Found\r\nLocation: /next\r\nContent-Length: 0\r\n\r\n".to_vec(),
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
                    .to_vec(),
            ]
        };
        let (port, h) = serve(replies());
        let blocking = probe(port, "/start");
        let first = h.join().unwrap();
        let (port, h) = serve(replies());
        // (How often it waits depends on the server thread's timing.)
        let (pending, _) = drive(port, "/start", Duration::from_secs(5));
        let second = h.join().unwrap();
        assert_eq!(pending, blocking);
        assert_eq!(pending.unwrap().body, b"abcde");
        // The same request bytes, but the port in Host and Referer.
        assert_eq!(
            first[1].replace(&format!(":{}", port_of(&first[1])), ":P"),
            second[1].replace(&format!(":{port}"), ":P")
        );

        let mut big = b"HTTP/1.0 500 Oops\r\n\r\n".to_vec();
        big.extend(std::iter::repeat_n(b'x', 20000));
        let (port, h) = serve(vec![big, Vec::new()]);
        let (r, _) = drive(port, "/", Duration::from_secs(5));
        assert_eq!(r.map(|r| (r.status, r.body.len())), Ok((500, MAX_BODY)));
        let (r, _) = drive(port, "/", Duration::from_secs(5));
        assert_eq!(r, Err(format!("Get \"http://127.0.0.1:{port}/\": EOF")));
        h.join().unwrap();
    }

    fn port_of(request: &str) -> u16 {
        let host = request
            .lines()
            .find_map(|l| l.strip_prefix("Host: "))
            .unwrap_or_default();
        host.rsplit(':')
            .next()
            .unwrap_or_default()
            .parse()
            .unwrap_or(0)
    }

    #[test]
    fn a_pending_get_waits_for_a_body_sent_later_and_times_out_as_go() {
        // Headers first, the body 200 ms later: waits, then the whole body.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let h = std::thread::spawn(move || {
            let mut held = Vec::new();
            for step in 0..3 {
                let (mut s, _) = l.accept().unwrap();
                let mut b = [0u8; 4096];
                let _ = s.read(&mut b);
                match step {
                    0 => {
                        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
                            .unwrap();
                        std::thread::sleep(Duration::from_millis(200));
                        s.write_all(b"hello").unwrap();
                    }
                    // No answer at all, then half a body: held open past the deadline.
                    1 => held.push(s),
                    _ => {
                        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
                            .unwrap();
                        held.push(s);
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(500));
        });
        let (r, waits) = drive(port, "/", Duration::from_secs(5));
        assert_eq!(r.map(|r| r.body), Ok(b"hello".to_vec()));
        assert!(
            waits >= 1,
            "the body came 200 ms after the headers: waited {waits} times"
        );
        let url = format!("http://127.0.0.1:{port}/");
        let (r, _) = drive(port, "/", Duration::from_millis(300));
        assert_eq!(r, Err(format!("Get \"{url}\": {AWAITING_HEADERS}")));
        let (r, _) = drive(port, "/", Duration::from_millis(300));
        assert_eq!(
            r,
            Err(format!("Get \"{url}\": context deadline exceeded (Client.Timeout or context cancellation while reading body)"))
        );
        h.join().unwrap();

        // Nobody listening: Go's dial error.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let (r, _) = drive(port, "/", Duration::from_secs(1));
        assert_eq!(
            r,
            Err(format!(
                "Get \"http://127.0.0.1:{port}/\": dial tcp 127.0.0.1:{port}: connect: connection refused"
            ))
        );
    }

    #[test]
    fn same_host_redirects_are_followed_and_bodies_decoded() {
        let (port, h) = serve(vec![
            b"HTTP/1.1 302 Found\r\nLocation: /next\r\nContent-Length: 0\r\n\r\n".to_vec(),
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n".to_vec(),
        ]);
        let r = probe(port, "/start").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"abcde"[..]));
        let seen = h.join().unwrap();
        assert!(seen[1].starts_with("GET /next HTTP/1.1\r\n"), "{}", seen[1]);
        assert!(
            seen[1].contains(&format!("Referer: http://127.0.0.1:{port}/start\r\n")),
            "{}",
            seen[1]
        );
    }

    #[test]
    fn other_host_redirect_stops_with_the_3xx_and_loops_stop_at_ten() {
        let (port, h) = serve(vec![
            b"HTTP/1.1 301 Moved\r\nLocation: http://example.com/\r\nContent-Length: 5\r\n\r\nmoved".to_vec(),
        ]);
        let r = probe(port, "/").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (301, &b"moved"[..]));
        h.join().unwrap();
        let (port, h) = serve(vec![
            b"HTTP/1.1 302 Found\r\nLocation: /loop\r\n\r\n"
                .to_vec();
            10
        ]);
        let e = probe(port, "/loop").unwrap_err();
        assert_eq!(e, "Get \"/loop\": stopped after 10 redirects");
        h.join().unwrap();
    }

    #[test]
    fn body_is_cut_at_ten_kib_and_eof_reads_as_go() {
        let mut big = b"HTTP/1.0 500 Oops\r\n\r\n".to_vec();
        big.extend(std::iter::repeat_n(b'x', 20000));
        let (port, h) = serve(vec![big, Vec::new()]);
        let r = probe(port, "/").unwrap();
        assert_eq!((r.status, r.body.len()), (500, MAX_BODY));
        let e = probe(port, "/").unwrap_err();
        assert_eq!(e, format!("Get \"http://127.0.0.1:{port}/\": EOF"));
        h.join().unwrap();
    }

    #[test]
    fn https_to_a_plain_server_reads_as_go() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let h = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut b = [0u8; 4096];
            let _ = s.read(&mut b);
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\nplain server\n");
        });
        let req = Request {
            target: Target::new(Scheme::Https, "127.0.0.1", port, "/"),
            headers: vec![],
            user_agent: "kube-probe/1.34".into(),
        };
        let e = get(
            &req,
            Instant::now() + Duration::from_secs(5),
            &mut plain_dial,
        )
        .unwrap_err();
        h.join().unwrap();
        assert_eq!(
            e,
            format!("Get \"https://127.0.0.1:{port}/\": {HTTP_TO_HTTPS}")
        );
    }
}
