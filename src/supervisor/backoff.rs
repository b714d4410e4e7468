//! Kubelet's container restart back-off: the first restart is immediate, then 10 s,
//! doubling, capped at 300 s; forgotten when a container ran 10 minutes without failing.
//!
//! Mirrors kubelet's flowcontrol.Backoff: a container that finished is "in back-off"
//! while less than the current delay has passed since it finished; each restart calls
//! [`RestartBackoff::advance`], which doubles the delay (or resets it when the last
//! restart is more than twice the cap ago).
use std::time::{Duration, Instant};

/// The delay after the first failed restart.
pub const INITIAL: Duration = Duration::from_secs(10);
/// The cap on the delay.
pub const MAX: Duration = Duration::from_secs(300);

/// The back-off state of one container.
#[derive(Debug, Clone, Default)]
pub struct RestartBackoff {
    /// Current delay and when it was last advanced.
    entry: Option<(Duration, Instant)>,
}

impl RestartBackoff {
    fn expired(last_update: Instant, at: Instant) -> bool {
        at.saturating_duration_since(last_update) > MAX * 2
    }

    /// How long, from `now`, a container that finished at `finished` must still wait
    /// before it may be restarted (zero: restart now).
    pub fn remaining(&self, finished: Instant, now: Instant) -> Duration {
        match self.entry {
            None => Duration::ZERO,
            Some((_, last)) if Self::expired(last, finished) => Duration::ZERO,
            Some((delay, _)) => delay.saturating_sub(now.saturating_duration_since(finished)),
        }
    }

    /// Records a restart at `now` and returns the delay that will apply to the next one.
    pub fn advance(&mut self, now: Instant) -> Duration {
        let next = match self.entry {
            Some((delay, last)) if !Self::expired(last, now) => (delay * 2).min(MAX),
            _ => INITIAL,
        };
        self.entry = Some((next, now));
        next
    }

    /// The delay in force (None before the first restart).
    pub fn current(&self) -> Option<Duration> {
        self.entry.map(|(d, _)| d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_restart_is_immediate_then_ten_seconds_doubling_to_five_minutes() {
        let mut b = RestartBackoff::default();
        let t0 = Instant::now();
        assert_eq!(b.remaining(t0, t0), Duration::ZERO);
        let delays: Vec<u64> = (0..8)
            .map(|i| b.advance(t0 + Duration::from_secs(i)).as_secs())
            .collect();
        assert_eq!(delays, vec![10, 20, 40, 80, 160, 300, 300, 300]);
    }

    #[test]
    fn a_container_waits_out_the_current_delay_from_when_it_finished() {
        let mut b = RestartBackoff::default();
        let t0 = Instant::now();
        b.advance(t0);
        let finished = t0 + Duration::from_secs(1);
        assert_eq!(
            b.remaining(finished, finished + Duration::from_secs(4)),
            Duration::from_secs(6)
        );
        assert_eq!(
            b.remaining(finished, finished + Duration::from_secs(11)),
            Duration::ZERO
        );
    }

    #[test]
    fn resets_when_the_last_restart_is_more_than_ten_minutes_old() {
        let mut b = RestartBackoff::default();
        let t0 = Instant::now();
        for i in 0..5 {
            b.advance(t0 + Duration::from_secs(i));
        }
        let late = t0 + Duration::from_secs(4 + 601);
        assert_eq!(b.remaining(late, late), Duration::ZERO);
        assert_eq!(b.advance(late), INITIAL);
    }
}
