//! Pull/import progress on a terminal: one status line (layers done, bytes fetched);
//! silent when stderr is not a tty.
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Progress {
    enabled: bool,
    state: Mutex<State>,
}

struct State {
    label: String,
    layers_total: usize,
    layers_done: usize,
    bytes_total: u64,
    bytes_done: u64,
    last_draw: Option<Instant>,
}

impl Progress {
    /// A progress line on stderr when `enabled` (callers pass "stderr is a tty && !quiet").
    pub fn new(enabled: bool) -> Progress {
        Progress {
            enabled,
            state: Mutex::new(State {
                label: String::new(),
                layers_total: 0,
                layers_done: 0,
                bytes_total: 0,
                bytes_done: 0,
                last_draw: None,
            }),
        }
    }

    pub fn quiet() -> Progress {
        Progress::new(false)
    }

    pub fn start(&self, label: &str, layers: usize, bytes: u64) {
        if let Ok(mut s) = self.state.lock() {
            s.label = label.to_string();
            s.layers_total = layers;
            s.bytes_total = bytes;
            self.draw(&mut s, true);
        }
    }

    pub fn bytes(&self, n: u64) {
        if !self.enabled {
            return;
        }
        if let Ok(mut s) = self.state.lock() {
            s.bytes_done += n;
            self.draw(&mut s, false);
        }
    }

    pub fn layer_done(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.layers_done += 1;
            self.draw(&mut s, true);
        }
    }

    pub fn finish(&self) {
        if !self.enabled {
            return;
        }
        if let Ok(mut s) = self.state.lock() {
            self.draw(&mut s, true);
            eprintln!();
        }
    }

    fn draw(&self, s: &mut State, force: bool) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if !force
            && s.last_draw
                .is_some_and(|t| now - t < Duration::from_millis(100))
        {
            return;
        }
        s.last_draw = Some(now);
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[K{}: layers {}/{}, {} / {}",
            s.label,
            s.layers_done,
            s.layers_total,
            human_size(s.bytes_done),
            human_size(s.bytes_total)
        );
        let _ = err.flush();
    }
}

/// Sizes as Docker prints them: decimal units, three significant digits ("22.5MB").
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n}B")
    } else if v >= 100.0 {
        format!("{v:.0}{}", UNITS[u])
    } else if v >= 10.0 {
        format!("{v:.1}{}", UNITS[u])
    } else {
        format!("{v:.2}{}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_print_like_docker() {
        assert_eq!(super::human_size(512), "512B");
        assert_eq!(super::human_size(1_234_567), "1.23MB");
        assert_eq!(super::human_size(22_500_000), "22.5MB");
        assert_eq!(super::human_size(126_000_000), "126MB");
    }
}
