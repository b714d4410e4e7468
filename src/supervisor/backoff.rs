//! Kubelet's container restart back-off: 10 s, doubling, capped at 300 s, forgotten after
//! the container has run for 10 minutes.
use std::time::{Duration, Instant};

/// First delay after a container exits.
pub const INITIAL: Duration = Duration::from_secs(10);
/// The cap on the delay.
pub const MAX: Duration = Duration::from_secs(300);
/// A container that ran this long gets its back-off reset.
pub const RESET_AFTER: Duration = Duration::from_secs(600);

/// The back-off state of one container.
#[derive(Debug, Clone, Default)]
pub struct RestartBackoff {
    /// The delay used at the last restart (None: no restart yet, or reset).
    current: Option<Duration>,
}

impl RestartBackoff {
    /// The delay before the next restart of a container that ran `ran_for` and then
    /// exited; advances the back-off.
    pub fn next_delay(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= RESET_AFTER {
            self.current = None;
        }
        let next = match self.current {
            None => INITIAL,
            Some(d) => (d * 2).min(MAX),
        };
        self.current = Some(next);
        next
    }

    /// The delay in force (None before the first restart).
    pub fn current(&self) -> Option<Duration> {
        self.current
    }
}

/// When a back-off ends: the instant from which a restart may happen.
pub fn restart_at(exited: Instant, delay: Duration) -> Instant {
    exited + delay
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_ten_seconds_and_caps_at_five_minutes() {
        let mut b = RestartBackoff::default();
        let secs: Vec<u64> = (0..8)
            .map(|_| b.next_delay(Duration::from_secs(1)).as_secs())
            .collect();
        assert_eq!(secs, vec![10, 20, 40, 80, 160, 300, 300, 300]);
    }

    #[test]
    fn resets_after_ten_minutes_of_running() {
        let mut b = RestartBackoff::default();
        for _ in 0..5 {
            b.next_delay(Duration::from_secs(1));
        }
        assert_eq!(b.next_delay(Duration::from_secs(600)), INITIAL);
        assert_eq!(
            b.next_delay(Duration::from_secs(599)),
            Duration::from_secs(20)
        );
    }
}
