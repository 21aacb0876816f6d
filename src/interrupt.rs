//! Ctrl-C and SIGTERM. The first signal asks the run to stop: devices not yet deleted from the
//! source are not started, and a device between delete and import is carried to the end of
//! its import (or its rollback). A second signal stops at once, once no journal write is in
//! flight: the journal on disk then says truthfully where every device is. Sleeps between
//! retries wake at the first signal.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::journal::DURABLE_WRITE;

#[derive(Debug, Clone, Default)]
pub struct Interrupt {
    count: Arc<AtomicUsize>,
    /// Wakes sleepers when a signal arrives.
    wake: Arc<(Mutex<()>, Condvar)>,
}

impl Interrupt {
    /// Installs the handlers. `resume_hint` is printed on a forced stop.
    pub fn install(resume_hint: Option<String>) -> Interrupt {
        let interrupt = Interrupt::default();
        let handler = interrupt.clone();
        if let Ok(mut signals) = Signals::new([SIGINT, SIGTERM]) {
            std::thread::spawn(move || {
                for _ in signals.forever() {
                    if handler.request() == 1 {
                        eprintln!(
                            "\nStopping: devices already deleted from the source are finished first. \
                             Press Ctrl-C again to stop at once."
                        );
                        continue;
                    }
                    // Wait for the journal writes in flight to land, and keep others from starting.
                    let _guard = DURABLE_WRITE.write().unwrap_or_else(|e| e.into_inner());
                    eprintln!("\nStopped at once. The journal says where each device is.");
                    if let Some(hint) = &resume_hint {
                        eprintln!("Continue with: {hint}");
                    }
                    std::process::exit(130);
                }
            });
        }
        interrupt
    }

    /// Counts a stop request and wakes the sleepers; returns the count.
    fn request(&self) -> usize {
        let count = self.count.fetch_add(1, Ordering::SeqCst) + 1;
        let (lock, woken) = &*self.wake;
        let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        woken.notify_all();
        count
    }

    pub fn requested(&self) -> bool {
        self.count.load(Ordering::SeqCst) > 0
    }

    /// Sleeps for `duration`, or until a stop is requested. True when it slept the whole time.
    pub fn sleep(&self, duration: Duration) -> bool {
        let deadline = Instant::now() + duration;
        let (lock, woken) = &*self.wake;
        let mut guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if self.requested() {
                return false;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            guard = woken
                .wait_timeout(guard, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sleep_wakes_when_a_stop_is_requested() {
        let interrupt = Interrupt::default();
        let signal = interrupt.clone();
        let sleeper = std::thread::spawn(move || interrupt.sleep(Duration::from_secs(600)));
        std::thread::sleep(Duration::from_millis(20));
        signal.request();
        // Joins (the test would hang for ten minutes otherwise) and reports the early wake.
        assert!(!sleeper.join().unwrap());
        assert!(signal.requested());
    }

    #[test]
    fn a_sleep_without_a_stop_sleeps_through() {
        let interrupt = Interrupt::default();
        assert!(interrupt.sleep(Duration::from_millis(1)));
        interrupt.request();
        assert!(
            !interrupt.sleep(Duration::from_secs(600)),
            "already stopping"
        );
    }
}
