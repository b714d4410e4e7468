//! Probes (liveness, readiness, startup) and lifecycle hooks (postStart, preStop), with
//! kubelet's timing, thresholds and messages. The handlers: exec inside the container,
//! httpGet (HTTP or HTTPS, see http_probe), tcpSocket and grpc (see grpc_probe) against
//! the pod (from inside its network namespace, so they work with or without a pod IP),
//! sleep for hooks. Each run is bounded by its timeout.
use super::offload::{offload, Offloaded};
use super::{grpc_probe, http_probe};
use k8s_openapi::api::core::v1::{
    Container, ExecAction, GRPCAction, HTTPGetAction, Probe, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// What probes need of the pod, and all they touch: the seam that lets their gating,
/// thresholds and timing be tested with a fake, without root or containers.
pub trait ProbeHost {
    /// Starts `cmd` in container `c`'s current run, stdin from /dev/null, stdout and
    /// stderr to `out`; its pid and a pidfd.
    fn spawn_exec(
        &mut self,
        c: usize,
        cmd: &[String],
        out: RawFd,
    ) -> Result<(i32, OwnedFd), String>;
    /// A TCP socket (with `flags`, e.g. SOCK_NONBLOCK) made in the pod's network
    /// namespace, for connecting to `addr`.
    fn pod_socket(&mut self, addr: &SocketAddr, flags: libc::c_int) -> std::io::Result<OwnedFd>;
    /// The pod's IP, when it has one.
    fn pod_ip(&self) -> Option<&str>;
    /// Container `c`'s spec (its named ports).
    fn container(&self, c: usize) -> &Container;
    /// The id of container `c`'s current run (None: not running).
    fn run_id(&self, c: usize) -> Option<&str>;
    /// Whether container `c` counts as started (its startup probe, if any, passed).
    fn started(&self, c: usize) -> bool;
    /// Container `c`'s probes, where each probe's results are recorded.
    fn probes(&mut self, c: usize) -> &mut ProbeRunner;
    /// Records an event about container `c` (kubelet's source and field path).
    fn event(&mut self, c: usize, type_: &str, reason: &str, message: &str);
}

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

#[derive(Debug)]
struct ProbeState {
    kind: ProbeKind,
    probe: Probe,
    next: Option<Instant>,
    successes: i32,
    failures: i32,
    /// A run of this probe is still going (see [`ProbeRun`]).
    in_flight: bool,
    /// An exec probe's output file, kept for its next run (lent to a run).
    output: Option<std::fs::File>,
    /// An httpGet probe's request, made on its first run (the pod IP and the container
    /// do not change while the supervisor lives).
    http: Option<std::rc::Rc<http_probe::Prepared>>,
}

/// The probes of one container and when each runs next.
#[derive(Debug, Default)]
pub struct ProbeRunner {
    probes: Vec<ProbeState>,
    started_at: Option<Instant>,
}

/// The spacing of the instants probes start at (see [`ProbeRunner::reset`]); a first run
/// is at most this much later than initialDelaySeconds asks.
pub const PROBE_GRID: Duration = Duration::from_secs(1);

fn on_grid(t: Instant, epoch: Instant) -> Instant {
    let since = t.saturating_duration_since(epoch).as_micros();
    let grid = PROBE_GRID.as_micros();
    let steps = since.div_ceil(grid);
    epoch + Duration::from_micros((steps * grid) as u64)
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
                    in_flight: false,
                    output: None,
                    http: None,
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

    /// A fresh container run: counters cleared, first runs after initialDelaySeconds,
    /// rounded up onto the pod's probe grid (whole multiples of [`PROBE_GRID`] since
    /// `epoch`). Probes of one pod with the same period then fall due together and run in
    /// one wake-up of the supervisor instead of one each. kubelet's probe workers tick on
    /// their own phase too: its first probe after initialDelaySeconds comes up to a
    /// period later.
    pub fn reset(&mut self, now: Instant, epoch: Instant) {
        self.started_at = Some(now);
        for p in &mut self.probes {
            p.successes = 0;
            p.failures = 0;
            p.in_flight = false;
            p.next = Some(on_grid(now + secs(p.probe.initial_delay_seconds, 0), epoch));
        }
    }

    /// The probe-level terminationGracePeriodSeconds, when set.
    pub fn grace(&self, kind: ProbeKind) -> Option<Duration> {
        self.probes
            .iter()
            .find(|p| p.kind == kind)
            .and_then(|p| p.probe.termination_grace_period_seconds)
            .map(super::pod_state::seconds)
    }

    pub fn next_due(&self) -> Option<Instant> {
        self.probes.iter().filter_map(|p| p.next).min()
    }
}

/// A probe run still going: an exec probe's process, or an httpGet request waiting for
/// its answer. The supervisor's loop waits on it with everything else, so a slow probe
/// never holds up the pod (as kubelet runs each probe on its own worker), and the probes
/// due together overlap: all are started, then one sleep waits for their results.
pub struct ProbeRun {
    pub c: usize,
    probe: usize,
    kind: ProbeKind,
    /// The container run it belongs to: a result for an older run is dropped.
    run: String,
    pub deadline: Instant,
    late: Duration,
    work: Work,
}

enum Work {
    Exec {
        started: Started,
        cmd: Vec<String>,
        /// Set once over: the exit code (None: killed at the deadline, or lost).
        exit: Option<Option<i32>>,
        output: Vec<u8>,
    },
    /// A tcpSocket probe's connect, under way.
    Tcp {
        sock: TcpStream,
        addr: SocketAddr,
        result: Option<Result<(), String>>,
    },
    Http {
        pending: Box<http_probe::Pending>,
        /// What the request waits for (None: nothing, it has its result).
        wait: Option<(i32, i16)>,
        result: Option<Result<http_probe::Response, String>>,
    },
    /// An HTTPS or grpc probe, run to its end in a helper process (see offload).
    Offloaded {
        work: Offloaded,
        result: Option<Result<(), String>>,
    },
}

/// A helper process outlives its probe's timeout by this much before it is killed
/// (the probe's own timeout ends it first, with kubelet's message).
const OFFLOAD_SLACK: Duration = Duration::from_secs(1);

/// A command started in a container: its pid and pidfd, and the memfd its stdout and
/// stderr write to. A file rather than a pipe: nothing to drain while it runs, and its
/// exit is the only wake-up (a pipe's hang-up would be a second one); background
/// children still writing after it exited change nothing.
pub struct Started {
    pub pid: i32,
    pidfd: OwnedFd,
    out: std::fs::File,
}

/// kubelet keeps this much of an exec probe's output (maxReadLength).
const MAX_OUTPUT: usize = 10 * 1024;

impl Started {
    /// Reaps the process if it exited (without blocking); kills it at the deadline.
    /// Some(exit code, or None when killed or lost) once it is over.
    fn poll(&self, now: Instant, deadline: Option<Instant>) -> Option<Option<i32>> {
        match waitpid(
            Pid::from_raw(self.pid),
            Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL),
        ) {
            Ok(WaitStatus::Exited(_, code)) => return Some(Some(code)),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Some(Some(128 + sig as i32)),
            Ok(_) => {}
            Err(_) => return Some(None),
        }
        if deadline.is_some_and(|d| now >= d) {
            self.kill();
            return Some(None);
        }
        None
    }

    fn kill(&self) {
        let _ = nix::sys::signal::kill(Pid::from_raw(self.pid), nix::sys::signal::Signal::SIGKILL);
        let _ = waitpid(Pid::from_raw(self.pid), Some(WaitPidFlag::__WALL));
    }

    /// What the command wrote, up to kubelet's limit.
    fn output(&self) -> Vec<u8> {
        use std::os::unix::fs::FileExt;
        let mut out = Vec::new();
        let mut chunk = [0u8; 1024];
        while out.len() < MAX_OUTPUT {
            let want = chunk.len().min(MAX_OUTPUT - out.len());
            match self.out.read_at(&mut chunk[..want], out.len() as u64) {
                Ok(0) | Err(_) => break,
                Ok(k) => out.extend_from_slice(&chunk[..k]),
            }
        }
        out
    }
}

/// The result of an exec handler: Ok(output) on exit 0, else the output (or kubelet's
/// message when there is none).
fn exec_result(
    exit: Option<i32>,
    output: &[u8],
    cmd: &[String],
    deadline: Option<Instant>,
) -> Result<String, String> {
    let text = String::from_utf8_lossy(output).into_owned();
    match exit {
        Some(0) => Ok(text),
        Some(code) => Err(if text.is_empty() {
            format!("command {:?} exited with {code}", cmd.join(" "))
        } else {
            text
        }),
        None if deadline.is_some_and(|d| Instant::now() >= d) => {
            Err(format!("command \"{}\" timed out", cmd.join(" ")))
        }
        None => Err("exec process lost".into()),
    }
}

impl ProbeRun {
    /// The descriptor and poll(2) events to wait for, until the result is known.
    pub fn wait(&self) -> Option<(i32, i16)> {
        match &self.work {
            Work::Exec { started, exit, .. } => exit
                .is_none()
                .then(|| (started.pidfd.as_raw_fd(), libc::POLLIN)),
            Work::Tcp { sock, result, .. } => {
                result.is_none().then(|| (sock.as_raw_fd(), libc::POLLOUT))
            }
            Work::Http { wait, result, .. } => wait.filter(|_| result.is_none()),
            Work::Offloaded { work, result } => result
                .is_none()
                .then(|| work.fd().map(|fd| (fd, libc::POLLIN)))
                .flatten(),
        }
    }

    /// The exec probe's process.
    pub fn pid(&self) -> Option<i32> {
        match &self.work {
            Work::Exec { started, .. } => Some(started.pid),
            Work::Offloaded { work, .. } => Some(work.pid),
            Work::Tcp { .. } | Work::Http { .. } => None,
        }
    }

    /// Records an exit status reaped elsewhere.
    pub fn exited(&mut self, code: i32) {
        if let Work::Offloaded { work, .. } = &mut self.work {
            work.exited();
        }
        if let Work::Exec {
            started,
            exit,
            output,
            ..
        } = &mut self.work
        {
            if exit.is_none() {
                *exit = Some(Some(code));
                *output = started.output();
            }
        }
    }

    /// Moves the run on as far as it goes without blocking (an exec probe's process is
    /// reaped once it exited; a request is sent, read, redirected); a run past its
    /// deadline ends. True when the result is known. `dial` opens connections for
    /// redirects (see [`http_probe::DialAny`]).
    pub fn advance(&mut self, now: Instant, dial: &mut http_probe::DialAny) -> bool {
        let deadline = self.deadline;
        match &mut self.work {
            Work::Exec {
                started,
                exit,
                output,
                ..
            } => {
                if exit.is_none() {
                    *exit = started.poll(now, Some(deadline));
                    if exit.is_some() {
                        *output = started.output();
                    }
                }
                exit.is_some()
            }
            Work::Tcp { sock, addr, result } => {
                if result.is_none() {
                    *result = connect_done(sock, addr, now >= deadline);
                }
                result.is_some()
            }
            Work::Http {
                pending,
                wait,
                result,
            } => {
                if result.is_none() {
                    match pending.step(now, dial) {
                        http_probe::Step::Wait(fd, ev) => *wait = Some((fd, ev)),
                        http_probe::Step::Done(r) => *result = Some(r),
                    }
                }
                result.is_some()
            }
            Work::Offloaded { work, result } => {
                if result.is_none() {
                    *result = work.poll();
                }
                if result.is_none() && now >= deadline {
                    work.kill();
                    *result = Some(Err("probe run lost".into()));
                }
                result.is_some()
            }
        }
    }

    /// Ends a run still going (the pod is being torn down).
    pub fn kill(&self) {
        if let Work::Offloaded { work, .. } = &self.work {
            work.kill();
        }
        if let Work::Exec {
            started,
            exit: None,
            ..
        } = &self.work
        {
            started.kill();
        }
    }
}

/// An empty output file for an exec handler: `reuse` (a probe's, from its last run)
/// emptied, else a new memfd. Append-only, so that writers sharing its offset (the
/// process's stdout and stderr) never leave a hole after it is emptied.
pub(super) fn output_file(reuse: Option<std::fs::File>) -> Result<std::fs::File, String> {
    if let Some(f) = reuse {
        if f.set_len(0).is_ok() {
            return Ok(f);
        }
    }
    // SAFETY: memfd_create with a constant name; the fd is owned below.
    let fd = unsafe { libc::memfd_create(c"exec-output".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(format!("memfd_create: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: a fresh descriptor we own.
    let out = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    nix::fcntl::fcntl(
        &out,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_APPEND),
    )
    .map_err(|e| format!("memfd: {e}"))?;
    Ok(out)
}

/// Starts `cmd` in container `c`, stdin from /dev/null, stdout and stderr to `out`.
pub(super) fn start_exec(
    w: &mut dyn ProbeHost,
    c: usize,
    cmd: &[String],
    out: std::fs::File,
) -> Result<Started, String> {
    let (pid, pidfd) = w.spawn_exec(c, cmd, out.as_raw_fd())?;
    Ok(Started { pid, pidfd, out })
}

/// Runs every probe of container `c` that is due, returning the outcomes. Exec and plain
/// httpGet probes are started and handed to `runs` instead: their outcome comes from
/// [`finish_run`].
pub fn due(
    w: &mut dyn ProbeHost,
    c: usize,
    now: Instant,
    runs: &mut Vec<ProbeRun>,
) -> Vec<(ProbeKind, ProbeOutcome)> {
    let started = w.started(c);
    let mut out = Vec::new();
    for i in 0..w.probes(c).probes.len() {
        let st = &w.probes(c).probes[i];
        let Some(next) = st.next else { continue };
        if next > now {
            continue;
        }
        let (kind, in_flight) = (st.kind, st.in_flight);
        let period = secs(st.probe.period_seconds, 10);
        // startupProbe gates the others; once it succeeded it stops. A run still going
        // drops this tick, as kubelet's ticker does.
        let gated = match kind {
            ProbeKind::Startup => started,
            _ => !started,
        };
        if gated || in_flight {
            w.probes(c).probes[i].next = Some(next_tick(next, period, now));
            continue;
        }
        // Borrowed out of the state for this run (put back before its result is counted).
        let probe = std::mem::take(&mut w.probes(c).probes[i].probe);
        let fired = now;
        let timeout = secs(probe.timeout_seconds, 1).max(Duration::from_secs(1));
        let late = fired.saturating_duration_since(next);
        let deadline = fired + timeout;
        let work = if let Some(e) = &probe.exec {
            let cmd = e.command.clone().unwrap_or_default();
            let reuse = w.probes(c).probes[i].output.take();
            let started = output_file(reuse).and_then(|out| start_exec(w, c, &cmd, out));
            Some(started.map(|started| Work::Exec {
                started,
                cmd,
                exit: None,
                output: Vec::new(),
            }))
        } else {
            match (&probe.http_get, &probe.tcp_socket) {
                (Some(h), _) if !is_https(h) => Some(start_http(w, c, i, h, deadline)),
                (None, Some(t)) => Some(start_tcp(w, c, t)),
                // HTTPS and grpc run to their end in a helper process.
                _ => Some(
                    offload(|| run_probe(w, c, kind, &probe, timeout))
                        .map(|work| Work::Offloaded { work, result: None }),
                ),
            }
        };
        if let Some(work) = work {
            let p = &mut w.probes(c).probes[i];
            p.probe = probe;
            p.next = Some(next_tick(next, period, now));
            match work {
                Ok(work) => {
                    p.in_flight = true;
                    let deadline = match work {
                        Work::Offloaded { .. } => deadline + OFFLOAD_SLACK,
                        _ => deadline,
                    };
                    let mut run = ProbeRun {
                        c,
                        probe: i,
                        kind,
                        run: w.run_id(c).unwrap_or_default().to_string(),
                        deadline,
                        late,
                        work,
                    };
                    // A request goes out now, so that the probes due together overlap.
                    if !matches!(run.work, Work::Exec { .. }) {
                        run.advance(Instant::now(), &mut |h, port, t| dial(w, h, port, t));
                    }
                    runs.push(run);
                }
                Err(message) => out.push((kind, conclude(w, c, i, late, Err(message)))),
            }
            continue;
        }
        let p = &mut w.probes(c).probes[i];
        p.probe = probe;
        p.next = Some(next_tick(next, period, now));
    }
    out
}

/// A fixed cadence like kubelet's ticker: ticks a run overran are dropped, and the
/// cadence (so the pod's grid) is kept.
fn next_tick(next: Instant, period: Duration, after: Instant) -> Instant {
    let period = period.max(Duration::from_millis(100));
    let mut t = next + period;
    if t <= after {
        let behind = after.duration_since(t).as_nanos() / period.as_nanos() + 1;
        t += period * behind as u32;
    }
    t
}

/// The outcome of a finished probe run, or None when its container run is gone.
pub fn finish_run(
    w: &mut dyn ProbeHost,
    run: ProbeRun,
) -> Option<(usize, ProbeKind, ProbeOutcome)> {
    let c = run.c;
    if w.run_id(c) != Some(run.run.as_str()) {
        return None;
    }
    let p = w.probes(c).probes.get_mut(run.probe)?;
    if !p.in_flight {
        return None;
    }
    p.in_flight = false;
    let result = match run.work {
        Work::Exec {
            exit,
            output,
            cmd,
            started,
        } => {
            p.output = Some(started.out);
            exec_result(exit.flatten(), &output, &cmd, Some(run.deadline)).map(|_| ())
        }
        Work::Tcp { result, .. } | Work::Offloaded { result, .. } => {
            result.unwrap_or_else(|| Err("probe run lost".into()))
        }
        Work::Http { result, .. } => http_verdict(
            w,
            c,
            run.kind,
            result.unwrap_or_else(|| Err("probe run lost".into())),
        ),
    };
    let outcome = conclude(w, c, run.probe, run.late, result);
    Some((c, run.kind, outcome))
}

/// Applies one run's result to the probe's counters and thresholds.
fn conclude(
    w: &mut dyn ProbeHost,
    c: usize,
    i: usize,
    late: Duration,
    result: Result<(), String>,
) -> ProbeOutcome {
    if tracing() {
        let kind = w.probes(c).probes[i].kind;
        trace_probe(&w.container(c).name.clone(), kind, late, result.is_ok());
    }
    let p = &mut w.probes(c).probes[i];
    let success_threshold = p.probe.success_threshold.unwrap_or(1).max(1);
    let failure_threshold = p.probe.failure_threshold.unwrap_or(3).max(1);
    match result {
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
            if reached && p.kind != ProbeKind::Readiness {
                p.failures = 0;
                p.next = None; // the container is being restarted
            }
            ProbeOutcome::Failed {
                message,
                threshold_reached: reached,
            }
        }
    }
}

/// Whether probe runs are traced (PODRUN_PROBE_TRACE).
fn tracing() -> bool {
    TRACE.with(|t| t.borrow().0.is_some())
}

/// With PODRUN_PROBE_TRACE=FILE in the supervisor's environment, one line per probe run:
/// `<container> <kind> <lateness µs> <ok>` (for bench/probes.sh). Lines are gathered and
/// written by [`flush_trace`] once per pass of the loop, so that measuring adds little.
fn trace_probe(container: &str, kind: ProbeKind, late: Duration, ok: bool) {
    TRACE.with(|t| {
        let mut t = t.borrow_mut();
        if t.0.is_none() {
            return;
        }
        let line = format!("{container} {} {} {ok}\n", kind.title(), late.as_micros());
        t.1.extend_from_slice(line.as_bytes());
    })
}

thread_local! {
    static TRACE: std::cell::RefCell<(Option<std::fs::File>, Vec<u8>)> =
        std::cell::RefCell::new((
            std::env::var_os("PODRUN_PROBE_TRACE").and_then(|path| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .ok()
            }),
            Vec::new(),
        ));
}

/// Writes the probe trace lines gathered so far (see [`trace_probe`]).
pub fn flush_trace() {
    TRACE.with(|t| {
        let mut t = t.borrow_mut();
        let (file, buf) = &mut *t;
        if let (Some(f), false) = (file.as_mut(), buf.is_empty()) {
            let _ = f.write_all(buf);
            buf.clear();
        }
    })
}

/// The probes that run to completion in place: httpGet over HTTPS, grpc (exec, plain
/// httpGet and tcpSocket probes are [`ProbeRun`]s).
fn run_probe(
    w: &mut dyn ProbeHost,
    c: usize,
    kind: ProbeKind,
    p: &Probe,
    timeout: Duration,
) -> Result<(), String> {
    if let Some(h) = &p.http_get {
        return run_http(w, c, kind, h, Instant::now() + timeout);
    }
    if let Some(g) = &p.grpc {
        return run_grpc(w, g, timeout);
    }
    Err("probe has no handler".into())
}

/// Resolves a port given by number or by the name of a containerPort.
pub(super) fn resolve_port(c: &Container, port: &IntOrString) -> Result<u16, String> {
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
    w: &mut dyn ProbeHost,
    host: Option<&str>,
    port: u16,
    timeout: Duration,
) -> Result<(TcpStream, String), String> {
    let (sock, addr, shown) = pod_socket(w, host, port, 0)?;
    let stream =
        connect_timeout(sock, &addr, timeout).map_err(|e| http_probe::dial_error(&shown, &e))?;
    Ok((stream, shown))
}

/// A socket (with `flags`) made inside the pod's network namespace for a probe to
/// host:port (see [`probe_host`]); its address, and host:port as Go's dialer shows it.
fn pod_socket(
    w: &mut dyn ProbeHost,
    host: Option<&str>,
    port: u16,
    flags: libc::c_int,
) -> Result<(OwnedFd, SocketAddr, String), String> {
    let (ip, shown_host) = probe_host(w, host)?;
    let shown = http_probe::join_host_port(&shown_host, port);
    let addr = SocketAddr::new(ip, port);
    let sock = w
        .pod_socket(&addr, flags)
        .map_err(|e| format!("dial tcp {shown}: {e}"))?;
    Ok((sock, addr, shown))
}

/// connect(2) on `fd`, retried when interrupted.
fn raw_connect(fd: RawFd, addr: &SocketAddr) -> std::io::Result<()> {
    let (raw, len) = sockaddr(addr);
    loop {
        // SAFETY: raw is a valid sockaddr of `len` bytes.
        let r = unsafe { libc::connect(fd, (&raw as *const libc::sockaddr_storage).cast(), len) };
        if r == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// The address a probe connects to: `host`, else the pod IP, else loopback (all inside
/// the pod's network namespace); and the host as messages show it.
fn probe_host(w: &dyn ProbeHost, host: Option<&str>) -> Result<(std::net::IpAddr, String), String> {
    match host {
        Some(h) => h
            .parse()
            .map(|ip| (ip, h.to_string()))
            .map_err(|_| format!("dial tcp: lookup {h}: no such host")),
        None => Ok(match w.pod_ip().and_then(|ip| ip.parse().ok()) {
            Some(ip) => (ip, w.pod_ip().unwrap_or_default().to_string()),
            None => (std::net::IpAddr::from([127, 0, 0, 1]), "127.0.0.1".into()),
        }),
    }
}

pub(super) fn new_socket(addr: &SocketAddr, flags: libc::c_int) -> std::io::Result<OwnedFd> {
    let family = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: socket(2) with constant arguments; the fd is owned below.
    let fd = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC | flags, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh socket we own.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // kubelet's probe dialer (pkg/probe/dialer_others.go): linger 1 s, so that the many
    // short connections of probes do not hold sockets in TIME-WAIT for a minute.
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 1,
    };
    // SAFETY: setsockopt with a valid linger struct on our socket.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    Ok(sock)
}

/// A blocking connect bounded by `timeout` (SO_SNDTIMEO bounds connect(2) too, and the
/// stream keeps both timeouts for the request): fewer syscalls than non-blocking + poll.
fn connect_timeout(
    sock: OwnedFd,
    addr: &SocketAddr,
    timeout: Duration,
) -> std::io::Result<TcpStream> {
    let stream = TcpStream::from(sock);
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    match raw_connect(stream.as_raw_fd(), addr) {
        Ok(()) => Ok(stream),
        // The send timeout expired during the handshake.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINPROGRESS | libc::EAGAIN)) => {
            Err(std::io::ErrorKind::TimedOut.into())
        }
        Err(e) => Err(e),
    }
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

/// kubelet's tcpSocket probe started without waiting: the connect is under way.
fn start_tcp(w: &mut dyn ProbeHost, c: usize, t: &TCPSocketAction) -> Result<Work, String> {
    let port = resolve_port(w.container(c), &t.port)?;
    let (ip, _) = probe_host(w, t.host.as_deref())?;
    let sock = dial(w, &ip.to_string(), port, None)?;
    Ok(Work::Tcp {
        sock,
        addr: SocketAddr::new(ip, port),
        result: None,
    })
}

/// Where a non-blocking connect stands: asking connect(2) again says (EALREADY: still
/// going; EISCONN or 0: done; else its error). None while it goes on; at the deadline,
/// Go's dial timeout.
fn connect_done(sock: &TcpStream, addr: &SocketAddr, expired: bool) -> Option<Result<(), String>> {
    let shown = http_probe::join_host_port(&addr.ip().to_string(), addr.port());
    let e = match raw_connect(sock.as_raw_fd(), addr) {
        Ok(()) => return Some(Ok(())),
        Err(e) => e,
    };
    match e.raw_os_error() {
        Some(libc::EISCONN) => Some(Ok(())),
        Some(libc::EALREADY | libc::EINPROGRESS) if expired => {
            Some(Err(format!("dial tcp {shown}: i/o timeout")))
        }
        Some(libc::EALREADY | libc::EINPROGRESS) => None,
        _ => Some(Err(http_probe::dial_error(&shown, &e))),
    }
}

/// kubelet's httpGet probe (DoHTTPProbe): 2xx succeeds; a 3xx it did not follow (to
/// another host) succeeds with a ProbeWarning event carrying the body; anything else fails
/// with the status code only (kubelet keeps the body out of the message, issue 99425).
fn run_http(
    w: &mut dyn ProbeHost,
    c: usize,
    kind: ProbeKind,
    h: &HTTPGetAction,
    deadline: Instant,
) -> Result<(), String> {
    let resp = http_get(w, c, h, "probe", deadline);
    http_verdict(w, c, kind, resp)
}

/// What an httpGet probe's response means.
fn http_verdict(
    w: &mut dyn ProbeHost,
    c: usize,
    kind: ProbeKind,
    resp: Result<http_probe::Response, String>,
) -> Result<(), String> {
    let resp = resp?;
    match resp.status {
        200..=299 => Ok(()),
        300..=399 => {
            let body = String::from_utf8_lossy(&resp.body);
            w.event(
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
pub(super) fn http_get(
    w: &mut dyn ProbeHost,
    c: usize,
    h: &HTTPGetAction,
    purpose: &str,
    deadline: Instant,
) -> Result<http_probe::Response, String> {
    let req = http_request(w, c, h, purpose)?;
    let mut dial =
        |host: &str, port: u16, t: Duration| connect(w, Some(host), port, t).map(|(s, _)| s);
    http_probe::get(&req, deadline, &mut dial)
}

fn is_https(h: &HTTPGetAction) -> bool {
    h.scheme
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case("https"))
}

/// Starts an httpGet probe's request (plain HTTP) without waiting for it.
fn start_http(
    w: &mut dyn ProbeHost,
    c: usize,
    i: usize,
    h: &HTTPGetAction,
    deadline: Instant,
) -> Result<Work, String> {
    let prepared = match &w.probes(c).probes[i].http {
        Some(p) => p.clone(),
        None => {
            let p = http_probe::Prepared::new(http_request(w, c, h, "probe")?);
            w.probes(c).probes[i].http = Some(p.clone());
            p
        }
    };
    Ok(Work::Http {
        pending: Box::new(http_probe::Pending::new(prepared, deadline)),
        wait: None,
        result: None,
    })
}

/// Opens a connection inside the pod's network namespace: blocking within `timeout`, or
/// (None) non-blocking with its connect started.
pub fn dial(
    w: &mut dyn ProbeHost,
    host: &str,
    port: u16,
    timeout: Option<Duration>,
) -> Result<TcpStream, String> {
    if let Some(t) = timeout {
        return connect(w, Some(host), port, t).map(|(s, _)| s);
    }
    let (sock, addr, shown) = pod_socket(w, Some(host), port, libc::SOCK_NONBLOCK)?;
    connect_started(sock, &addr).map_err(|e| http_probe::dial_error(&shown, &e))
}

/// Starts the connect of a non-blocking socket (EINPROGRESS is no error).
pub(super) fn connect_started(sock: OwnedFd, addr: &SocketAddr) -> std::io::Result<TcpStream> {
    match raw_connect(sock.as_raw_fd(), addr) {
        Err(e) if e.raw_os_error() != Some(libc::EINPROGRESS) => Err(e),
        _ => Ok(TcpStream::from(sock)),
    }
}

/// The request of an httpGet action (kubelet's NewRequestForHTTPGetAction).
fn http_request(
    w: &mut dyn ProbeHost,
    c: usize,
    h: &HTTPGetAction,
    purpose: &str,
) -> Result<http_probe::Request, String> {
    let port = resolve_port(w.container(c), &h.port)?;
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
    Ok(req)
}

/// The kubelet version podrun follows, in user agents.
const KUBE_VERSION: &str = "1.34";

/// kubelet's grpc probe: grpc.health.v1.Health/Check on the pod IP (plaintext HTTP/2).
fn run_grpc(w: &mut dyn ProbeHost, g: &GRPCAction, timeout: Duration) -> Result<(), String> {
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
    w: &mut dyn ProbeHost,
    c: usize,
    e: &ExecAction,
    deadline: Option<Instant>,
) -> Result<String, String> {
    let cmd = e.command.clone().unwrap_or_default();
    let started = start_exec(w, c, &cmd, output_file(None)?)?;
    let exit = loop {
        let now = Instant::now();
        if let Some(exit) = started.poll(now, deadline) {
            break exit;
        }
        let ms = deadline.map_or(-1, |d| {
            (d - now).as_millis().min(i32::MAX as u128 - 1) as i32 + 1
        });
        let mut pfd = libc::pollfd {
            fd: started.pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, ms) };
    };
    exec_result(exit, &started.output(), &cmd, deadline)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A non-blocking connect to `addr`, as [`dial`] starts one.
    fn start(addr: &SocketAddr) -> TcpStream {
        let sock = new_socket(addr, libc::SOCK_NONBLOCK).unwrap();
        connect_started(sock, addr).unwrap()
    }

    /// Asks until the connect is over (or `within` passed), waiting as the loop does.
    fn settle(sock: &TcpStream, addr: &SocketAddr, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(r) = connect_done(sock, addr, Instant::now() >= deadline) {
                return r;
            }
            let mut pfd = libc::pollfd {
                fd: sock.as_raw_fd(),
                events: libc::POLLOUT,
                revents: 0,
            };
            let ms = deadline
                .saturating_duration_since(Instant::now())
                .as_millis() as i32
                + 1;
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut pfd, 1, ms) };
        }
    }

    #[test]
    fn tcp_probe_connects_is_refused_and_times_out_as_kubelet_words_it() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        assert_eq!(settle(&start(&addr), &addr, Duration::from_secs(1)), Ok(()));

        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert_eq!(
            settle(&start(&closed), &closed, Duration::from_secs(1)),
            Err(format!("dial tcp {closed}: connect: connection refused"))
        );

        // A listener whose accept queue is full drops further SYNs: the connect hangs,
        // and the probe ends at its deadline without having blocked anything.
        // SAFETY: listen(2) on the listener's own socket.
        assert_eq!(unsafe { libc::listen(l.as_raw_fd(), 0) }, 0);
        let mut held = Vec::new();
        let hung = loop {
            let s = start(&addr);
            let mut pfd = libc::pollfd {
                fd: s.as_raw_fd(),
                events: libc::POLLOUT,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            if unsafe { libc::poll(&mut pfd, 1, 200) } == 0 {
                break s;
            }
            held.push(s);
            assert!(held.len() < 16, "the accept queue never filled");
        };
        let began = Instant::now();
        assert_eq!(
            settle(&hung, &addr, Duration::from_millis(300)),
            Err(format!("dial tcp {addr}: i/o timeout"))
        );
        assert!(began.elapsed() < Duration::from_secs(2));
    }
}

#[cfg(test)]
#[path = "probes_fake_tests.rs"]
mod fake_tests;
