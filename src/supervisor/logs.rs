//! Container logs in the CRI format (`<RFC3339Nano> <stdout|stderr> <F|P> <line>`), the
//! format kubelet's log readers and shippers expect, one file per container restart.
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Longest line kept whole; longer ones are split into `P` (partial) records.
pub const MAX_LINE: usize = 16 * 1024;

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
}

impl CriLineWriter {
    pub fn new(stream: &'static str) -> Self {
        CriLineWriter {
            stream,
            pending: Vec::new(),
        }
    }

    /// Feeds bytes read from the container; writes every complete line to `out`.
    pub fn feed(&mut self, data: &[u8], out: &mut impl Write) -> io::Result<()> {
        let mut rest = data;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            self.pending.extend_from_slice(&rest[..pos]);
            self.emit(true, out)?;
            rest = &rest[pos + 1..];
        }
        self.pending.extend_from_slice(rest);
        while self.pending.len() >= MAX_LINE {
            let tail = self.pending.split_off(MAX_LINE);
            self.emit(false, out)?;
            self.pending = tail;
        }
        Ok(())
    }

    /// At end of stream: writes what is left as a final record.
    pub fn finish(&mut self, out: &mut impl Write) -> io::Result<()> {
        if !self.pending.is_empty() {
            self.emit(true, out)?;
        }
        Ok(())
    }

    fn emit(&mut self, full: bool, out: &mut impl Write) -> io::Result<()> {
        let mut rec = Vec::with_capacity(self.pending.len() + 48);
        write!(
            rec,
            "{} {} {} ",
            crate::util::now(),
            self.stream,
            if full { 'F' } else { 'P' }
        )?;
        rec.extend_from_slice(&self.pending);
        rec.push(b'\n');
        self.pending.clear();
        out.write_all(&rec)
    }
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
mod tests {
    use super::*;

    #[test]
    fn complete_lines_become_full_records_and_read_back() {
        let mut w = CriLineWriter::new("stdout");
        let mut out = Vec::new();
        w.feed(b"hello\nwor", &mut out).unwrap();
        w.feed(b"ld\n", &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.lines().all(|l| l.contains(" stdout F ")));
        let back: Vec<String> = parse(&text).into_iter().map(|l| l.text).collect();
        assert_eq!(back, vec!["hello", "world"]);
    }

    #[test]
    fn long_lines_split_into_partials_and_join_again() {
        let mut w = CriLineWriter::new("stderr");
        let mut out = Vec::new();
        let long = "x".repeat(MAX_LINE * 2 + 5);
        w.feed(long.as_bytes(), &mut out).unwrap();
        w.finish(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().filter(|l| l.contains(" stderr P ")).count(), 2);
        let back = parse(&text);
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].text, long);
    }
}
