//! Runtime log sink: stderr by default, or runc's `--log FILE` with `--log-format json`
//! (one `{"level","msg","time"}` object a line, which containerd reads errors from).
use std::io::Write;
use std::sync::Mutex;

struct Sink {
    file: Option<std::fs::File>,
    json: bool,
    debug: bool,
}

static SINK: Mutex<Sink> = Mutex::new(Sink {
    file: None,
    json: false,
    debug: false,
});

/// Sends log lines to `file` (appended) in text or JSON format.
pub fn configure(file: Option<std::fs::File>, json: bool, debug: bool) {
    if let Ok(mut s) = SINK.lock() {
        *s = Sink { file, json, debug };
    }
}

/// Formats one log line in the configured format.
fn line(level: &str, msg: &str, json: bool) -> String {
    let time = crate::util::now_rfc3339();
    if json {
        let v = serde_json::json!({"level": level, "msg": msg, "time": time});
        format!("{v}\n")
    } else {
        format!("time=\"{time}\" level={level} msg={msg:?}\n")
    }
}

pub fn write(level: &str, msg: &str) {
    let Ok(mut s) = SINK.lock() else {
        return;
    };
    if level == "debug" && !s.debug {
        return;
    }
    let json = s.json;
    match s.file.as_mut() {
        Some(f) => {
            let _ = f.write_all(line(level, msg, json).as_bytes());
        }
        None => {
            let _ = writeln!(std::io::stderr(), "podrun: {level}: {msg}");
        }
    }
}

/// Is a log file configured (errors must then also go there)?
pub fn has_file() -> bool {
    SINK.lock().map(|s| s.file.is_some()).unwrap_or(false)
}

pub fn warn(msg: &str) {
    write("warning", msg);
}

pub fn debug(msg: &str) {
    write("debug", msg);
}

pub fn error(msg: &str) {
    write("error", msg);
}
