//! Ctrl-C and SIGTERM. The first signal asks the run to stop: devices not yet deleted from the
//! source are not started, and a device between delete and import is carried to the end of
//! its import (or its rollback). A second signal stops at once, once no journal write is in
//! flight: the journal on disk then says truthfully where every device is.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::journal::DURABLE_WRITE;

#[derive(Debug, Clone, Default)]
pub struct Interrupt {
    count: Arc<AtomicUsize>,
}

impl Interrupt {
    /// Installs the handlers, once per process: a later call (the second batch of a canary run)
    /// gets the same instance, so a Ctrl-C during the first batch is still seen. `resume_hint`
    /// (of the first call) is printed on a forced stop.
    pub fn install(resume_hint: Option<String>) -> Interrupt {
        static INSTALLED: OnceLock<Interrupt> = OnceLock::new();
        INSTALLED
            .get_or_init(|| Interrupt::install_handlers(resume_hint))
            .clone()
    }

    fn install_handlers(resume_hint: Option<String>) -> Interrupt {
        let interrupt = Interrupt::default();
        let count = interrupt.count.clone();
        if let Ok(mut signals) = Signals::new([SIGINT, SIGTERM]) {
            std::thread::spawn(move || {
                for _ in signals.forever() {
                    if count.fetch_add(1, Ordering::SeqCst) == 0 {
                        eprintln!(
                            "\nStopping: devices already deleted from the source are finished first. \
                             Press Ctrl-C again to stop at once."
                        );
                        continue;
                    }
                    // Wait for any journal write to land, and keep others from starting.
                    let _guard = DURABLE_WRITE.lock().unwrap_or_else(|e| e.into_inner());
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

    pub fn requested(&self) -> bool {
        self.count.load(Ordering::SeqCst) > 0
    }
}
