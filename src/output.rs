//! What the operator sees while devices move, and the summary at the end. Never keys.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::outcome::{DeviceReport, Outcome};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Events of a run, reported as they happen. Called from several workers at once.
pub trait Progress: Sync {
    /// `step` is the label of the action that starts.
    fn step(&self, device: &str, step: &str);
    fn retrying(&self, device: &str, step: &str, error: &str);
    /// A pause before the next try of `step`: `note` says why and for how long ("rate
    /// limited, retry 2 in 4 s"). Shown as the device's current step.
    fn waiting(&self, device: &str, step: &str, note: &str) {
        self.step(device, &format!("{step}: {note}"));
    }
    /// What an action found (a dry run prints it).
    fn note(&self, _device: &str, _note: &str) {}
    fn finished(&self, report: &DeviceReport);
    /// The run is over: no more events follow.
    fn close(&self) {}
}

/// Progress bars on a terminal; plain lines without one, with `--quiet`, or with `TERM=dumb`.
/// `NO_COLOR` turns the colours of the bars off.
pub fn progress_for(quiet: bool, devices: usize) -> Box<dyn Progress> {
    let terminal = std::io::stderr().is_terminal()
        && std::env::var("TERM").map_or(true, |term| term != "dumb");
    if quiet || !terminal {
        Box::new(PlainProgress::new(quiet))
    } else {
        let colour = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        Box::new(BarProgress::new(devices, colour))
    }
}

/// One line per event on stderr, no escape codes; the result line of each device on stdout.
pub struct PlainProgress {
    quiet: bool,
    lock: Mutex<()>,
}

impl PlainProgress {
    pub fn new(quiet: bool) -> PlainProgress {
        PlainProgress {
            quiet,
            lock: Mutex::new(()),
        }
    }
}

impl Progress for PlainProgress {
    fn step(&self, device: &str, step: &str) {
        if !self.quiet {
            let _guard = self.lock.lock();
            eprintln!("{device}: {step}");
        }
    }

    fn retrying(&self, device: &str, step: &str, error: &str) {
        if !self.quiet {
            let _guard = self.lock.lock();
            eprintln!("{device}: {step} failed, retrying: {error}");
        }
    }

    fn finished(&self, report: &DeviceReport) {
        let _guard = self.lock.lock();
        if !self.quiet || !report.is_success() {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", device_line(report));
        }
    }
}

/// An overall bar (done/total, failures, elapsed, ETA) and one spinner per device in flight
/// showing its current step, on stderr. The result line of each device goes to stdout between
/// redraws; the summary follows once the bars are cleared.
pub struct BarProgress {
    bars: MultiProgress,
    overall: ProgressBar,
    spinner_style: ProgressStyle,
    in_flight: Mutex<HashMap<String, ProgressBar>>,
    failed: AtomicUsize,
}

impl BarProgress {
    pub fn new(devices: usize, colour: bool) -> BarProgress {
        let bars = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let (bar, spinner) = if colour {
            ("{bar:30.cyan/blue}", "{spinner:.green}")
        } else {
            ("{bar:30}", "{spinner}")
        };
        let overall_style = ProgressStyle::with_template(&format!(
            "{bar} {{pos}}/{{len}} devices  {{msg}}  elapsed {{elapsed_precise}}  ETA {{eta}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        let spinner_style =
            ProgressStyle::with_template(&format!("  {spinner} {{prefix}}: {{msg}}"))
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let overall = bars.add(ProgressBar::new(devices as u64));
        overall.set_style(overall_style);
        overall.set_message("0 failed");
        overall.enable_steady_tick(Duration::from_millis(250));
        BarProgress {
            bars,
            overall,
            spinner_style,
            in_flight: Mutex::new(HashMap::new()),
            failed: AtomicUsize::new(0),
        }
    }

    fn show(&self, device: &str, message: String) {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let spinner = in_flight.entry(device.to_string()).or_insert_with(|| {
            let spinner = self.bars.add(ProgressBar::new_spinner());
            spinner.set_style(self.spinner_style.clone());
            spinner.set_prefix(device.to_string());
            spinner.enable_steady_tick(Duration::from_millis(120));
            spinner
        });
        spinner.set_message(message);
    }
}

impl Progress for BarProgress {
    fn step(&self, device: &str, step: &str) {
        self.show(device, step.to_string());
    }

    fn retrying(&self, device: &str, step: &str, error: &str) {
        self.show(device, format!("{step} failed, retrying: {error}"));
    }

    fn finished(&self, report: &DeviceReport) {
        let spinner = self
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&report.device_id);
        if let Some(spinner) = spinner {
            spinner.finish_and_clear();
            self.bars.remove(&spinner);
        }
        if !report.is_success() {
            let failed = self.failed.fetch_add(1, Ordering::SeqCst) + 1;
            self.overall.set_message(format!("{failed} failed"));
        }
        let line = device_line(report);
        self.bars.suspend(|| {
            let _ = writeln!(std::io::stdout().lock(), "{line}");
        });
        self.overall.inc(1);
    }

    fn close(&self) {
        for (_, spinner) in self
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
        {
            spinner.finish_and_clear();
        }
        self.overall.finish_and_clear();
        let _ = self.bars.clear();
    }
}

/// `dev-1  OTAA  DevAddr 260B1234  FCnt up 1234, down 56, app down 12  migrated`
pub fn device_line(report: &DeviceReport) -> String {
    let mode = report.mode.map_or("-".to_string(), |m| m.to_string());
    let session = match &report.session {
        Some(s) => format!(
            "DevAddr {}  FCnt up {}, down {}, app down {}",
            s.dev_addr.as_deref().unwrap_or("-"),
            s.last_f_cnt_up,
            s.last_n_f_cnt_down,
            s.last_a_f_cnt_down
        ),
        None => "DevAddr -".to_string(),
    };
    let result = match report.outcome {
        Outcome::Migrated => "migrated, session verified".to_string(),
        Outcome::RolledBack => "rolled back to the source".to_string(),
        Outcome::Skipped => format!("nothing to do ({})", report.location),
        Outcome::Conflict => format!(
            "conflict: {}",
            report
                .error
                .as_deref()
                .unwrap_or("already in the target application")
        ),
        Outcome::Interrupted => "interrupted before its delete; still on the source".to_string(),
        Outcome::Failed => format!(
            "FAILED: {} [device is {}]",
            report.error.as_deref().unwrap_or("unknown error"),
            report.location
        ),
    };
    format!("{}  {mode}  {session}  {result}", report.device_id)
}

/// The failed devices, each with its reason and next action.
pub fn failures(reports: &[DeviceReport]) -> Vec<String> {
    reports
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Failed | Outcome::Conflict))
        .map(|r| {
            let mut line = format!(
                "  {}: {} (device is {})",
                r.device_id,
                r.error.as_deref().unwrap_or("failed"),
                r.location
            );
            if let Some(next) = &r.next_action {
                line.push_str(&format!("\n    next: {next}"));
            }
            line
        })
        .collect()
}
