//! Ctrl-C and SIGTERM. The first signal asks the run to stop: devices not yet deleted from the
//! source are not started, and a device between delete and import is carried to the end of
//! its import (or its rollback); the notice says so above the progress bars. A second signal
//! stops at once, once no journal write is in flight: the journal on disk then says truthfully
//! where every device is, and the notice names the devices left between the deployments.
//! Sleeps between retries wake at the first signal.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::journal::{Journal, DURABLE_WRITE};
use crate::lifecycle::Place;

/// Set by the first signal of the process: the exit status is then 130.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether Ctrl-C (or SIGTERM) stopped a run of this process.
pub fn was_interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// The run a forced stop reports on: the one installed last.
static CURRENT_RUN: Mutex<Option<Run>> = Mutex::new(None);

/// Prints a line where the operator sees it (above the progress bars).
pub type Notify = Box<dyn Fn(&str) + Send + Sync>;

/// What a stop needs to know about the run.
pub struct Run {
    /// `resume …` (or `rollback … --yes`): printed on a forced stop.
    pub continue_with: String,
    pub work: PathBuf,
    pub devices: Vec<String>,
    pub notify: Notify,
}

#[derive(Debug, Clone, Default)]
pub struct Interrupt {
    count: Arc<AtomicUsize>,
    /// Wakes sleepers when a signal arrives.
    wake: Arc<(Mutex<()>, Condvar)>,
}

/// The first notice.
pub const STOPPING: &str = "Ctrl-C: stopping. No new device starts; devices in flight finish \
(one between delete and import is imported first). Press Ctrl-C again to stop at once.";

impl Interrupt {
    /// Installs the handlers, once per process, for this run: a later call (the second batch
    /// of a canary run) gets the same instance, so a Ctrl-C during the first batch is still
    /// seen, and its `run` replaces the one a forced stop reports on.
    pub fn install(run: Run) -> Interrupt {
        static INSTALLED: OnceLock<Interrupt> = OnceLock::new();
        *CURRENT_RUN.lock().unwrap_or_else(|e| e.into_inner()) = Some(run);
        INSTALLED.get_or_init(Interrupt::install_handlers).clone()
    }

    fn install_handlers() -> Interrupt {
        let interrupt = Interrupt::default();
        let handler = interrupt.clone();
        if let Ok(mut signals) = Signals::new([SIGINT, SIGTERM]) {
            std::thread::spawn(move || {
                for _ in signals.forever() {
                    INTERRUPTED.store(true, Ordering::SeqCst);
                    let first = handler.request() == 1;
                    let run = CURRENT_RUN.lock().unwrap_or_else(|e| e.into_inner());
                    if first {
                        if let Some(run) = run.as_ref() {
                            (run.notify)(&crate::terminal::wrap(STOPPING));
                        }
                        continue;
                    }
                    // Wait for the journal writes in flight to land, and keep others from starting.
                    let _guard = DURABLE_WRITE.write().unwrap_or_else(|e| e.into_inner());
                    if let Some(run) = run.as_ref() {
                        (run.notify)(&crate::terminal::wrap(&hard_stop(run)));
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

/// The notice of a forced stop: the devices off the source and not confirmed on the target,
/// read from their journals, and the command that continues.
fn hard_stop(run: &Run) -> String {
    let between: Vec<&str> = run
        .devices
        .iter()
        .filter(|device| {
            Journal::in_memory(&run.work.join(device.as_str()), device)
                .is_ok_and(|journal| between_deployments(journal.position().place))
        })
        .map(String::as_str)
        .collect();
    let mut text = String::from("Stopped at once. The journal says where each device is.");
    if !between.is_empty() {
        text.push_str(&format!(
            "\n{} between delete and import, off both networks until the run is continued: {}",
            crate::outcome::count(between.len(), "device is", "devices are"),
            between.join(", ")
        ));
    }
    text.push_str(&format!("\nContinue with: {}", run.continue_with));
    text
}

/// Off the source (or maybe), and not confirmed on the target (or back on the source).
fn between_deployments(place: Place) -> bool {
    matches!(
        place,
        Place::MaybeDeleted | Place::ExportOnly | Place::MaybeImported | Place::MaybeRecreated
    )
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
