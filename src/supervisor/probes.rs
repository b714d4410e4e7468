//! Probes (liveness, readiness, startup) and lifecycle hooks (postStart, preStop), with
//! kubelet's timing, thresholds and messages. The handlers: exec inside the container,
//! httpGet (HTTP or HTTPS, see http_probe), tcpSocket and grpc (see grpc_probe) against
//! the pod (from inside its network namespace, so they work with or without a pod IP),
//! sleep for hooks. Each run is bounded by its timeout.
use super::worker::Worker;
use super::{grpc_probe, http_probe};
use k8s_openapi::api::core::v1::{
    Container, ExecAction, GRPCAction, HTTPGetAction, LifecycleHandler, Probe, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

impl ProbeKind {
    pub fn title(self) -> &'static str {
        match self {
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Startup => "Startup",
        }
    }
}

/// What one probe run concluded, once thresholds are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    Succeeded {
        threshold_reached: bool,
    },
    Failed {
        message: String,
        threshold_reached: bool,
    },
    Pending,
}

#[derive(Debug, Clone)]
struct ProbeState {
    kind: ProbeKind,
    probe: Probe,
    next: Option<Instant>,
    successes: i32,
    failures: i32,
}

/// The probes of one container and when each runs next.
#[derive(Debug, Clone, Default)]
pub struct ProbeRunner {
    probes: Vec<ProbeState>,
    started_at: Option<Instant>,
}

fn secs(v: Option<i32>, default: i32) -> Duration {
    Duration::from_secs(v.unwrap_or(default).max(0) as u64)
}

impl ProbeRunner {
    pub fn new(c: &Container) -> ProbeRunner {
        let mut probes = Vec::new();
        for (kind, p) in [
            (ProbeKind::Startup, &c.startup_probe),
            (ProbeKind::Liveness, &c.liveness_probe),
            (ProbeKind::Readiness, &c.readiness_probe),
        ] {
            if let Some(p) = p {
                probes.push(ProbeState {
                    kind,
                    probe: p.clone(),
                    next: None,
                    successes: 0,
                    failures: 0,
                });
            }
        }
        ProbeRunner {
            probes,
            started_at: None,
        }
    }

    pub fn has(&self, kind: ProbeKind) -> bool {
        self.probes.iter().any(|p| p.kind == kind)
    }

    /// A fresh container run: counters cleared, first runs after initialDelaySeconds.
    pub fn reset(&mut self, now: Instant) {
        self.started_at = Some(now);
        for p in &mut self.probes {
            p.successes = 0;
            p.failures = 0;
            p.next = Some(now + secs(p.probe.initial_delay_seconds, 0));
        }
    }

    /// The probe-level terminationGracePeriodSeconds, when set.
    pub fn grace(&self, kind: ProbeKind) -> Option<Duration> {
        self.probes
            .iter()
            .find(|p| p.kind == kind)
            .and_then(|p| p.probe.termination_grace_period_seconds)
            .map(|s| Duration::from_secs(s.max(0) as u64))
    }

    pub fn next_due(&self) -> Option<Instant> {
        self.probes.iter().filter_map(|p| p.next).min()
    }
}

/// Runs every probe of container `c` that is due, returning the outcomes.
pub fn due(w: &mut Worker, c: usize, now: Instant) -> Vec<(ProbeKind, ProbeOutcome)> {
    let started = w.ctrs[c].status.started == Some(true);
    let mut out = Vec::new();
    for i in 0..w.ctrs[c].probes.probes.len() {
        let st = w.ctrs[c].probes.probes[i].clone();
        let Some(next) = st.next else { continue };
        if next > now {
            continue;
        }
        // startupProbe gates the others; once it succeeded it stops.
        let gated = match st.kind {
            ProbeKind::Startup => started,
            _ => !started,
        };
        let period = secs(st.probe.period_seconds, 10);
        if gated {
            w.ctrs[c].probes.probes[i].next = Some(now + period);
            continue;
        }
        let fired = Instant::now();
        let result = run_probe(w, c, st.kind, &st.probe);
        trace_probe(
            &w.ctrs[c].spec.name,
            st.kind,
            fired.saturating_duration_since(next),
            result.is_ok(),
        );
        let p = &mut w.ctrs[c].probes.probes[i];
        // A fixed cadence like kubelet's ticker; skip ahead only when a run overran.
        let after = Instant::now();
        p.next = Some(if next + period > after {
            next + period
        } else {
            after + period
        });
        let success_threshold = st.probe.success_threshold.unwrap_or(1).max(1);
        let failure_threshold = st.probe.failure_threshold.unwrap_or(3).max(1);
        let outcome = match result {
            Ok(()) => {
                p.failures = 0;
                p.successes += 1;
                ProbeOutcome::Succeeded {
                    threshold_reached: p.successes >= success_threshold,
                }
            }
            Err(message) => {
                p.successes = 0;
                p.failures += 1;
                let reached = p.failures >= failure_threshold;
                if reached && st.kind != ProbeKind::Readiness {
                    p.failures = 0;
                    p.next = None; // the container is being restarted
                }
                ProbeOutcome::Failed {
                    message,
                    threshold_reached: reached,
                }
            }
        };
        out.push((st.kind, outcome));
    }
    out
}

/// With PODRUN_PROBE_TRACE=FILE in the supervisor's environment, one line per probe run:
/// `<container> <kind> <lateness µs> <ok>` (for bench/probes.sh).
fn trace_probe(container: &str, kind: ProbeKind, late: Duration, ok: bool) {
    static TRACE: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    let Some(path) = TRACE.get_or_init(|| std::env::var_os("PODRUN_PROBE_TRACE").map(Into::into))
    else {
        return;
    };
    let line = format!("{container} {} {} {ok}\n", kind.title(), late.as_micros());
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(line.as_bytes());
    }
}

fn run_probe(w: &mut Worker, c: usize, kind: ProbeKind, p: &Probe) -> Result<(), String> {
    let timeout = secs(p.timeout_seconds, 1).max(Duration::from_secs(1));
    let deadline = Instant::now() + timeout;
    if let Some(e) = &p.exec {
        return run_exec(w, c, e, Some(deadline)).map(|_| ());
    }
    if let Some(h) = &p.http_get {
        return run_http(w, c, kind, h, deadline);
    }
    if let Some(t) = &p.tcp_socket {
        return run_tcp(w, c, t, timeout);
    }
    if let Some(g) = &p.grpc {
        return run_grpc(w, g, timeout);
    }
    Err("probe has no handler".into())
}

/// Resolves a port given by number or by the name of a containerPort.
fn resolve_port(c: &Container, port: &IntOrString) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("invalid port {n}")),
        IntOrString::String(name) => {
            if let Ok(n) = name.parse::<u16>() {
                return Ok(n);
            }
            c.ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .ok_or_else(|| format!("couldn't find port {name} in {}", c.name))
        }
    }
}

/// Connects to host:port inside the pod's network namespace (the pod's IP when it has one,
/// else its loopback), within `timeout`. Returns the stream and the address kubelet would
/// print.
fn connect(
    w: &mut Worker,
    host: Option<&str>,
    port: u16,
    timeout: Duration,
) -> Result<(TcpStream, String), String> {
    let shown_host = host
        .map(String::from)
        .or_else(|| w.pod_ip().map(String::from))
        .unwrap_or_else(|| "127.0.0.1".into());
    let shown = format!("{shown_host}:{port}");
    let target_ip: std::net::IpAddr = match host {
        Some(h) => h
            .parse()
            .map_err(|_| format!("dial tcp: lookup {h}: no such host"))?,
        None => w
            .pod_ip()
            .and_then(|ip| ip.parse().ok())
            .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1])),
    };
    let addr = SocketAddr::new(target_ip, port);
    let sock = match w.probe_netns() {
        Some((target, own)) => crate::network::in_netns_fd(target, own, || new_socket(&addr))
            .map_err(|e| format!("dial tcp {shown}: {e}"))?,
        None => new_socket(&addr).map_err(|e| format!("dial tcp {shown}: {e}"))?,
    };
    let stream = connect_timeout(sock, &addr, timeout).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::ConnectionRefused => "connect: connection refused".to_string(),
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                "i/o timeout".to_string()
            }
            _ => format!("connect: {e}"),
        };
        format!("dial tcp {shown}: {why}")
    })?;
    Ok((stream, shown))
}

fn new_socket(addr: &SocketAddr) -> std::io::Result<OwnedFd> {
    let family = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: socket(2) with constant arguments; the fd is owned below.
    let fd = unsafe {
        libc::socket(
            family,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh socket we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn connect_timeout(
    sock: OwnedFd,
    addr: &SocketAddr,
    timeout: Duration,
) -> std::io::Result<TcpStream> {
    let (raw, len) = sockaddr(addr);
    // SAFETY: raw is a valid sockaddr of `len` bytes.
    let r = unsafe {
        libc::connect(
            sock.as_raw_fd(),
            (&raw as *const libc::sockaddr_storage).cast(),
            len,
        )
    };
    if r < 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(err);
        }
        let mut pfd = libc::pollfd {
            fd: sock.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as i32) };
        if n == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::TimedOut));
        }
        let mut soerr: libc::c_int = 0;
        let mut l = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: valid out-pointers for SO_ERROR.
        unsafe {
            libc::getsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                (&mut soerr as *mut libc::c_int).cast(),
                &mut l,
            )
        };
        if soerr != 0 {
            return Err(std::io::Error::from_raw_os_error(soerr));
        }
    }
    let stream = TcpStream::from(sock);
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    Ok(stream)
}

fn sockaddr(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            (
                storage,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: sockaddr_in6 fits in sockaddr_storage.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            (
                storage,
                std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        }
    }
}

fn run_tcp(w: &mut Worker, c: usize, t: &TCPSocketAction, timeout: Duration) -> Result<(), String> {
    let port = resolve_port(&w.ctrs[c].spec, &t.port)?;
    connect(w, t.host.as_deref(), port, timeout).map(|_| ())
}

/// kubelet's httpGet probe (DoHTTPProbe): 2xx succeeds; a 3xx it did not follow (to
/// another host) succeeds with a ProbeWarning event carrying the body; anything else fails
/// with the status code only (kubelet keeps the body out of the message, issue 99425).
fn run_http(
    w: &mut Worker,
    c: usize,
    kind: ProbeKind,
    h: &HTTPGetAction,
    deadline: Instant,
) -> Result<(), String> {
    let resp = http_get(w, c, h, "probe", deadline)?;
    match resp.status {
        200..=299 => Ok(()),
        300..=399 => {
            let body = String::from_utf8_lossy(&resp.body);
            w.kubelet_event(
                c,
                "Warning",
                "ProbeWarning",
                &format!(
                    "{} probe warning: Probe terminated redirects, Response body: {body}",
                    kind.title()
                ),
            );
            Ok(())
        }
        code => Err(format!("HTTP probe failed with statuscode: {code}")),
    }
}

/// The GET of an httpGet action (kubelet's NewRequestForHTTPGetAction): to `host`, else
/// the pod IP, from inside the pod's network namespace; `purpose` names the user agent
/// (`kube-probe/1.34`, `kube-lifecycle/1.34`).
fn http_get(
    w: &mut Worker,
    c: usize,
    h: &HTTPGetAction,
    purpose: &str,
    deadline: Instant,
) -> Result<http_probe::Response, String> {
    let port = resolve_port(&w.ctrs[c].spec, &h.port)?;
    let host = h
        .host
        .clone()
        .filter(|h| !h.is_empty())
        .or_else(|| w.pod_ip().map(String::from))
        .unwrap_or_else(|| "127.0.0.1".into());
    let path = h.path.clone().unwrap_or_default();
    let scheme = match h
        .scheme
        .as_deref()
        .unwrap_or("HTTP")
        .to_ascii_lowercase()
        .as_str()
    {
        "http" | "" => http_probe::Scheme::Http,
        "https" => http_probe::Scheme::Https,
        other => {
            let url = format!(
                "{other}://{}{path}",
                http_probe::join_host_port(&host, port)
            );
            return Err(format!(
                "Get \"{url}\": unsupported protocol scheme \"{other}\""
            ));
        }
    };
    let req = http_probe::Request {
        target: http_probe::Target::new(scheme, &host, port, &path),
        headers: h
            .http_headers
            .iter()
            .flatten()
            .map(|x| (x.name.clone(), x.value.clone()))
            .collect(),
        user_agent: format!("kube-{purpose}/{KUBE_VERSION}"),
    };
    let mut dial =
        |host: &str, port: u16, t: Duration| connect(w, Some(host), port, t).map(|(s, _)| s);
    http_probe::get(&req, deadline, &mut dial)
}

/// The kubelet version podrun follows, in user agents.
const KUBE_VERSION: &str = "1.34";

/// kubelet's grpc probe: grpc.health.v1.Health/Check on the pod IP (plaintext HTTP/2).
fn run_grpc(w: &mut Worker, g: &GRPCAction, timeout: Duration) -> Result<(), String> {
    let host = w.pod_ip().unwrap_or("127.0.0.1").to_string();
    let port = u16::try_from(g.port).map_err(|_| format!("invalid port {}", g.port))?;
    let service = g.service.clone().unwrap_or_default();
    let mut dial = |t: Duration| connect(w, Some(&host), port, t).map(|(s, _)| s);
    grpc_probe::check(
        &mut dial,
        &http_probe::join_host_port(&host, port),
        &service,
        &format!("kube-probe/{KUBE_VERSION}"),
        timeout,
    )
}

/// Runs a command inside the container with the container's own process settings;
/// Ok(output) on exit 0, Err(output or timeout message) otherwise.
pub fn run_exec(
    w: &mut Worker,
    c: usize,
    e: &ExecAction,
    deadline: Option<Instant>,
) -> Result<String, String> {
    let cmd = e.command.clone().unwrap_or_default();
    let Some(id) = w.ctrs[c].id.clone() else {
        return Err("container is not running".into());
    };
    let Some(mut process) = w.ctrs[c].exec_process.clone() else {
        return Err("container has no process".into());
    };
    process.set_args(Some(cmd.clone()));
    process.set_terminal(Some(false));
    let (r, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| e.to_string())?;
    let devnull = std::fs::File::open("/dev/null").map_err(|e| e.to_string())?;
    let mut opts = crate::runtime::ExecOptions::new(process);
    opts.stdin = Some(devnull.as_raw_fd());
    opts.stdout = Some(wr.as_raw_fd());
    opts.stderr = Some(wr.as_raw_fd());
    let outcome = w.runtime().exec(&id, &opts).map_err(|e| e.to_string());
    drop(wr);
    drop(devnull);
    let pid = outcome?.pid;
    let _ = nix::fcntl::fcntl(
        &r,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    );
    let mut output = Vec::new();
    let mut file = std::fs::File::from(r);
    let status = loop {
        let mut buf = [0u8; 4096];
        while let Ok(n) = file.read(&mut buf) {
            if n == 0 {
                break;
            }
            if output.len() < 10240 {
                output.extend_from_slice(&buf[..n]);
            }
        }
        match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => break Some(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => break Some(128 + sig as i32),
            Ok(_) => {}
            Err(_) => break None,
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(pid), None);
            let secs = deadline.map(|_| "").unwrap_or("");
            return Err(format!("command \"{}\" timed out{secs}", cmd.join(" ")));
        }
        let mut pfd = libc::pollfd {
            fd: file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd; short sleep between exit checks.
        unsafe { libc::poll(&mut pfd, 1, 10) };
    };
    let mut buf = [0u8; 4096];
    while let Ok(n) = file.read(&mut buf) {
        if n == 0 {
            break;
        }
        output.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&output).into_owned();
    match status {
        Some(0) => Ok(text),
        Some(code) => Err(if text.is_empty() {
            format!("command {:?} exited with {code}", cmd.join(" "))
        } else {
            text
        }),
        None => Err("exec process lost".into()),
    }
}

/// Runs a lifecycle hook to completion (postStart).
pub fn run_hook(w: &mut Worker, c: usize, h: &LifecycleHandler) -> Result<(), String> {
    run_hook_until(w, c, h, Instant::now() + Duration::from_secs(3600))
}

/// Runs a lifecycle hook, giving up at `deadline` (preStop within the grace period).
pub fn run_hook_until(
    w: &mut Worker,
    c: usize,
    h: &LifecycleHandler,
    deadline: Instant,
) -> Result<(), String> {
    let name = w.ctrs[c].spec.name.clone();
    let pod_desc = crate::spec::user::pod_desc(&w.pod);
    if let Some(e) = &h.exec {
        let cmd = e.command.clone().unwrap_or_default();
        return run_exec(w, c, e, Some(deadline)).map(|_| ()).map_err(|out| {
            format!(
                "Exec lifecycle hook ({cmd:?}) for Container \"{name}\" in Pod \"{pod_desc}\" failed - error: command '{}' exited with error, message: \"{}\"",
                cmd.join(" "),
                out.trim_end()
            )
        });
    }
    if let Some(hg) = &h.http_get {
        let timeout = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_secs(30));
        return run_http_hook(w, c, hg, Instant::now() + timeout)
            .map_err(|e| format!("HTTP lifecycle hook ({}) for Container \"{name}\" in Pod \"{pod_desc}\" failed - error: {e}", hg.path.clone().unwrap_or_default()));
    }
    if let Some(s) = &h.sleep {
        let d = Duration::from_secs(s.seconds.max(0) as u64)
            .min(deadline.saturating_duration_since(Instant::now()));
        std::thread::sleep(d);
        return Ok(());
    }
    if h.tcp_socket.is_some() {
        return Err("tcpSocket lifecycle hooks are deprecated and not supported".into());
    }
    Ok(())
}

/// kubelet's HTTP lifecycle handler (runHTTPHandler): only a failed request fails the
/// hook, whatever the status code; an HTTPS hook answered in plain HTTP is retried over
/// HTTP, with a LifecycleHTTPFallback event when that works.
fn run_http_hook(
    w: &mut Worker,
    c: usize,
    hg: &HTTPGetAction,
    deadline: Instant,
) -> Result<(), String> {
    match http_get(w, c, hg, "lifecycle", deadline) {
        Ok(_) => Ok(()),
        Err(e) if e.contains(http_probe::HTTP_TO_HTTPS) => {
            let mut plain = hg.clone();
            plain.scheme = Some("HTTP".into());
            http_get(w, c, &plain, "lifecycle", deadline).map_err(|_| e.clone())?;
            let port = resolve_port(&w.ctrs[c].spec, &hg.port).unwrap_or_default();
            let host = hg
                .host
                .clone()
                .filter(|h| !h.is_empty())
                .or_else(|| w.pod_ip().map(String::from))
                .unwrap_or_default();
            w.event(
                "Warning",
                "LifecycleHTTPFallback",
                "kubelet",
                "",
                &format!(
                    "request to HTTPS lifecycle hook {} got HTTP response, retry with HTTP succeeded",
                    http_probe::join_host_port(&host, port)
                ),
            );
            Ok(())
        }
        Err(e) => Err(e),
    }
}
