//! How many bad lines one client may log per window: enough to show what is wrong, not
//! so many that a misbehaving client floods the log at line rate. Everything refused is
//! still counted in `kairosd_points_rejected_total`.

use std::time::{Duration, Instant};

pub const LOG_LINES_PER_WINDOW: u32 = 10;
pub const LOG_WINDOW: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct LogBudget {
    left: u32,
    suppressed: u64,
    window_start: Instant,
}

impl Default for LogBudget {
    fn default() -> Self {
        LogBudget {
            left: LOG_LINES_PER_WINDOW,
            suppressed: 0,
            window_start: Instant::now(),
        }
    }
}

impl LogBudget {
    /// Whether this bad line may be logged.
    pub fn take(&mut self) -> bool {
        if self.left > 0 {
            self.left -= 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }

    /// Starts a new window once the current one is over, returning how many lines the
    /// old one did not log (if any).
    pub fn refill(&mut self) -> Option<u64> {
        if self.left == LOG_LINES_PER_WINDOW || self.window_start.elapsed() < LOG_WINDOW {
            return None;
        }
        let suppressed = std::mem::take(&mut self.suppressed);
        *self = LogBudget::default();
        (suppressed > 0).then_some(suppressed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_budget_caps_a_window_and_reports_what_it_dropped() {
        let mut b = LogBudget::default();
        assert_eq!((0..25).filter(|_| b.take()).count(), LOG_LINES_PER_WINDOW as usize);
        assert_eq!(b.refill(), None, "window not over yet");
        b.window_start -= LOG_WINDOW;
        assert_eq!(b.refill(), Some(15));
        assert!(b.take());
    }
}
