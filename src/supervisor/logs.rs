//! Container logs in the CRI format (`<RFC3339Nano> <stdout|stderr> <F|P> <line>`), the
//! format kubelet's log readers and shippers expect, one file per container restart,
//! rotated as kubelet's container log manager rotates them.
//!
//! The supervisor is the writer: it turns what one read(2) brought into records (the
//! time formatted once per read, one write(2) per batch), and rotates by rename and
//! reopen at a record boundary once `N.log` would pass containerLogMaxSize: `N.log`
//! becomes `N.log.<20060102-150405>`, at most containerLogMaxFiles files stay (the live
//! one included), and every rotated file but the newest is gzip-compressed by a
//! short-lived child process, off the supervisor's loop.
use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};

/// Longest line kept whole; longer ones are split into `P` (partial) records.
pub const MAX_LINE: usize = 16 * 1024;
/// One read of a container's output pipe (the pipe itself holds 1 MiB).
const READ_SIZE: usize = 256 * 1024;
/// Reads per wake-up of the loop: a writer at full speed cannot starve the other events.
const READS_PER_PUMP: usize = 16;
/// Go's `20060102-150405`, the time kubelet appends to a rotated log's name (UTC here).
const ROTATED_TIME: &str = "%Y%m%d-%H%M%S";

/// The pod's log directory: `/var/log/pods/<ns>_<name>_<uid>` (PODRUN_POD_LOG_DIR moves
/// the base, for tests).
pub fn pod_log_dir(namespace: &str, name: &str, uid: &str) -> PathBuf {
    let base = std::env::var_os("PODRUN_POD_LOG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/log/pods"));
    base.join(format!("{namespace}_{name}_{uid}"))
}

/// The file of one run of a container: `<pod dir>/<container>/<restartCount>.log`.
pub fn container_log_path(pod_dir: &Path, container: &str, restart_count: i32) -> PathBuf {
    pod_dir.join(container).join(format!("{restart_count}.log"))
}

/// Turns one output stream of a container into CRI log records.
#[derive(Debug)]
pub struct CriLineWriter {
    stream: &'static str,
    pending: Vec<u8>,
    /// The records of one feed, written at once (kept to reuse its allocation).
    batch: Vec<u8>,
}

impl CriLineWriter {
    pub fn new(stream: &'static str) -> Self {
        CriLineWriter {
            stream,
            pending: Vec::new(),
            batch: Vec::new(),
        }
    }

    /// Feeds bytes read from the container; writes every complete line to `out`, all of
    /// them in one write, stamped with one time.
    pub fn feed(&mut self, data: &[u8], out: &mut impl Write) -> io::Result<()> {
        let stamp = crate::util::now().to_string();
        // "<time> <stream> F ", made once: each line then costs two copies.
        let prefix = format!("{stamp} {} F ", self.stream);
        let mut rest = data;
        while let Some(pos) = memchr::memchr(b'\n', rest) {
            if self.pending.is_empty() && pos < MAX_LINE {
                self.batch.extend_from_slice(prefix.as_bytes());
                self.batch.extend_from_slice(&rest[..=pos]);
            } else {
                self.pending.extend_from_slice(&rest[..pos]);
                self.flush_long(&stamp);
                let line = std::mem::take(&mut self.pending);
                self.record(&stamp, 'F', &line);
            }
            rest = &rest[pos + 1..];
        }
        self.pending.extend_from_slice(rest);
        self.flush_long(&stamp);
        self.write_batch(out)
    }

    /// At end of stream: writes what is left as a final record.
    pub fn finish(&mut self, out: &mut impl Write) -> io::Result<()> {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.record(&crate::util::now().to_string(), 'F', &line);
        }
        self.write_batch(out)
    }

    /// Pending bytes of MAX_LINE or more go out as `P` records.
    fn flush_long(&mut self, stamp: &str) {
        while self.pending.len() >= MAX_LINE {
            let tail = self.pending.split_off(MAX_LINE);
            let head = std::mem::replace(&mut self.pending, tail);
            self.record(stamp, 'P', &head);
        }
    }

    fn record(&mut self, stamp: &str, tag: char, text: &[u8]) {
        let b = &mut self.batch;
        b.extend_from_slice(stamp.as_bytes());
        b.push(b' ');
        b.extend_from_slice(self.stream.as_bytes());
        b.push(b' ');
        b.push(tag as u8);
        b.push(b' ');
        b.extend_from_slice(text);
        b.push(b'\n');
    }

    fn write_batch(&mut self, out: &mut impl Write) -> io::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let r = out.write_all(&self.batch);
        self.batch.clear();
        if self.batch.capacity() > 4 * READ_SIZE {
            self.batch.shrink_to(READ_SIZE);
        }
        r
    }
}

thread_local! {
    static READ_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_SIZE]);
}

/// Copies what a container wrote on `fd` into its log: a few large reads per call (all
/// that is there, with `final_drain`, which also ends an unfinished last line).
pub fn pump(
    fd: BorrowedFd<'_>,
    writer: &mut CriLineWriter,
    out: &mut impl Write,
    final_drain: bool,
) {
    READ_BUF.with(|buf| {
        let mut buf = buf.borrow_mut();
        let mut reads = 0;
        while final_drain || reads < READS_PER_PUMP {
            reads += 1;
            match nix::unistd::read(fd, &mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let _ = writer.feed(&buf[..n], out);
                }
                Err(nix::Error::EINTR) => {}
                Err(_) => break,
            }
        }
    });
    if final_drain {
        let _ = writer.finish(out);
    }
}

/// containerLogMaxSize and containerLogMaxFiles.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogLimits {
    pub max_size: u64,
    pub max_files: usize,
}

impl LogLimits {
    /// The node configuration's (its defaults when the file cannot be read).
    pub fn load(data_dir: &Path) -> LogLimits {
        let c = crate::node_config::load(data_dir).unwrap_or_default();
        LogLimits {
            max_size: c.container_log_max_size.max(1),
            max_files: usize::try_from(c.container_log_max_files.max(2)).unwrap_or(2),
        }
    }
}

/// The live log file of one container run, rotated past its size limit.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    file: File,
    size: u64,
    limits: LogLimits,
    /// The compressing child, while it may still run.
    compressor: Option<i32>,
    /// A rotation found the child busy: compress again at a later write.
    compress_due: bool,
    /// Compress in a child process (false: in place, for the unit tests).
    offload: bool,
}

fn open_append(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

impl LogFile {
    /// Opens (creating or appending to) the log at `path`.
    pub fn open(path: &Path, limits: LogLimits) -> io::Result<LogFile> {
        let file = open_append(path)?;
        let size = file.metadata()?.len();
        Ok(LogFile {
            path: path.to_path_buf(),
            file,
            size,
            limits,
            compressor: None,
            compress_due: false,
            offload: true,
        })
    }

    /// Compresses in this process instead of a child (for tests of the rotation).
    pub fn compress_in_place(mut self) -> Self {
        self.offload = false;
        self
    }

    /// Writes whole records, rotating first whenever the next ones would not fit.
    fn write_records(&mut self, mut rest: &[u8]) -> io::Result<()> {
        while !rest.is_empty() {
            let room = self.limits.max_size.saturating_sub(self.size);
            if rest.len() as u64 <= room {
                return self.append(rest);
            }
            let room = usize::try_from(room).unwrap_or(usize::MAX).min(rest.len());
            let mut cut = rest[..room]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            if cut == 0 && self.size == 0 {
                // One record longer than the limit: it goes whole into a file of its own.
                cut = rest
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(rest.len(), |i| i + 1);
            }
            self.append(&rest[..cut])?;
            rest = &rest[cut..];
            if !rest.is_empty() {
                if let Err(e) = self.rotate() {
                    // Better a file past its limit than a lost line.
                    eprintln!("supervisor: rotating {}: {e}", self.path.display());
                    return self.append(rest);
                }
            }
        }
        Ok(())
    }

    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)?;
        self.size += data.len() as u64;
        if self.compress_due {
            self.compress();
        }
        Ok(())
    }

    /// `N.log` becomes `N.log.<time>`, a new `N.log` is opened; the oldest rotated files
    /// go past containerLogMaxFiles, the older ones are compressed.
    fn rotate(&mut self) -> io::Result<()> {
        let target = rotated_name(&self.path, crate::util::now().as_second());
        std::fs::rename(&self.path, &target)?;
        self.file = open_append(&self.path)?;
        self.size = 0;
        let mut rotated = rotated_logs(&self.path);
        while rotated.len() + 1 > self.limits.max_files {
            let _ = std::fs::remove_file(rotated.remove(0));
        }
        if rotated.len() > 1 {
            self.compress();
        }
        Ok(())
    }

    /// Compresses the older rotated files in a child; while one runs, the rotations it
    /// missed are caught up by the child itself (it looks again before it leaves) or at
    /// the next write.
    fn compress(&mut self) {
        if !self.offload {
            compress_older(&self.path);
            return;
        }
        // Reaped here when it is done (the worker's reaping ignores a pid it does not know).
        let running = self.compressor.is_some_and(|pid| {
            let flags = nix::sys::wait::WaitPidFlag::WNOHANG;
            matches!(
                nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), Some(flags)),
                Ok(nix::sys::wait::WaitStatus::StillAlive)
            )
        });
        self.compress_due = running;
        if running {
            return;
        }
        // SAFETY: the supervisor is single-threaded (see supervisor::offload): the child
        // may run any code; it ends with _exit and holds none of our descriptors.
        match unsafe { nix::unistd::fork() } {
            Ok(nix::unistd::ForkResult::Child) => {
                // SAFETY: a plain syscall on the child's own descriptors.
                unsafe {
                    libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
                }
                compress_older(&self.path);
                // SAFETY: ends the child without running the supervisor's destructors.
                unsafe { libc::_exit(0) }
            }
            Ok(nix::unistd::ForkResult::Parent { child }) => {
                self.compressor = Some(child.as_raw());
            }
            Err(e) => eprintln!("supervisor: compressing rotated logs: fork: {e}"),
        }
    }
}

/// Gzips every rotated file of `live` but the newest (kubelet leaves that one plain),
/// until none is left (more may be rotated meanwhile).
fn compress_older(live: &Path) {
    let mut quiet = 0;
    // A file that cannot be compressed (removed meanwhile, past containerLogMaxFiles) is
    // not tried again.
    let mut failed: std::collections::BTreeSet<PathBuf> = std::collections::BTreeSet::new();
    loop {
        let mut rotated = rotated_logs(live);
        rotated.pop();
        rotated.retain(|p| p.extension().is_none_or(|e| e != "gz") && !failed.contains(p));
        if rotated.is_empty() {
            quiet += 1;
            if quiet > 2 {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
            continue;
        }
        quiet = 0;
        for f in rotated {
            if compress_file(&f).is_err() {
                failed.insert(f);
            }
        }
    }
}

impl Write for LogFile {
    /// `buf` holds whole records (the writer's batches): it goes in whole or not at all.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_records(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The live log as both output streams of a run share it (they write one file, in the
/// order their records arrive).
#[derive(Debug, Clone)]
pub struct SharedLog(std::rc::Rc<RefCell<LogFile>>);

impl SharedLog {
    pub fn new(file: LogFile) -> Self {
        SharedLog(std::rc::Rc::new(RefCell::new(file)))
    }
}

impl Write for SharedLog {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A free name for the rotated `path`: `N.log.<time>`, with `.1`, `.2`… when several
/// rotations fall in one second (each past the highest of that second: names sort by
/// age even after the oldest are gone).
fn rotated_name(path: &Path, unix_seconds: i64) -> PathBuf {
    let stamp = k8s_openapi::jiff::Timestamp::from_second(unix_seconds)
        .map(|t| t.strftime(ROTATED_TIME).to_string())
        .unwrap_or_else(|_| "19700101-000000".into());
    let base = format!("{}.{stamp}", path.display());
    let next = rotated_keys(path)
        .into_iter()
        .filter(|((s, _), _)| *s == stamp)
        .map(|((_, k), _)| k + 1)
        .max();
    match next {
        None => PathBuf::from(base),
        Some(k) => PathBuf::from(format!("{base}.{k}")),
    }
}

/// The rotated files of the live log `path`, oldest first.
pub fn rotated_logs(path: &Path) -> Vec<PathBuf> {
    rotated_keys(path).into_iter().map(|(_, p)| p).collect()
}

/// The rotated files with their (time, sequence) keys, oldest first.
fn rotated_keys(path: &Path) -> Vec<((String, u32), PathBuf)> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Vec::new();
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<((String, u32), PathBuf)> = rd
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let suffix = n.strip_prefix(&prefix)?;
            let suffix = suffix.strip_suffix(".gz").unwrap_or(suffix);
            let (stamp, seq) = match suffix.split_once('.') {
                Some((s, k)) => (s, k.parse().ok()?),
                None => (suffix, 0),
            };
            let ok = stamp.len() == 15 && stamp.as_bytes()[8] == b'-';
            ok.then(|| ((stamp.to_string(), seq), e.path()))
        })
        .collect();
    found.sort();
    found
}

/// `f` becomes `f.gz` (via a hidden temporary file; `f` goes before the rename, so a
/// reader never sees one run of lines twice).
fn compress_file(f: &Path) -> io::Result<()> {
    let name = f.file_name().map(|n| n.to_string_lossy().into_owned());
    let (Some(dir), Some(name)) = (f.parent(), name) else {
        return Ok(());
    };
    let tmp = dir.join(format!(".{name}.gz.tmp"));
    let gz = dir.join(format!("{name}.gz"));
    let result = (|| {
        let mut input = File::open(f)?;
        let mut enc =
            flate2::write::GzEncoder::new(File::create(&tmp)?, flate2::Compression::fast());
        io::copy(&mut input, &mut enc)?;
        enc.finish()?;
        std::fs::remove_file(f)?;
        std::fs::rename(&tmp, &gz)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The text of a log file, rotated or live, gzip-compressed or not.
pub fn read_log_file(path: &Path) -> io::Result<String> {
    let mut bytes = Vec::new();
    if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::GzDecoder::new(File::open(path)?).read_to_end(&mut bytes)?;
    } else {
        File::open(path)?.read_to_end(&mut bytes)?;
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// One log line read back: its time, stream and text (partial records joined).
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub time: String,
    pub stream: String,
    pub text: String,
}

/// Parses CRI log records, joining `P` records with the `F` record that ends them.
pub fn parse(content: &str) -> Vec<LogLine> {
    let mut lines = Vec::new();
    let mut partial: Option<LogLine> = None;
    for rec in content.split_inclusive('\n') {
        let Some(rec) = rec.strip_suffix('\n') else {
            break;
        }; // an unfinished record: not yet
        let mut parts = rec.splitn(4, ' ');
        let (Some(time), Some(stream), Some(tag)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let text = parts.next().unwrap_or("");
        let line = match partial.take() {
            Some(mut p) => {
                p.text.push_str(text);
                p
            }
            None => LogLine {
                time: time.to_string(),
                stream: stream.to_string(),
                text: text.to_string(),
            },
        };
        if tag == "P" {
            partial = Some(line);
        } else {
            lines.push(line);
        }
    }
    lines
}

#[cfg(test)]
#[path = "logs_tests.rs"]
mod tests;
