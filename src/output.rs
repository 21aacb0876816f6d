//! What the operator sees while devices move, and the summary at the end. Never keys.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::lifecycle::Goal;
use crate::outcome::{DeviceReport, Outcome};
use crate::terminal::wrap;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// `--report -` took standard output: result lines and plans go to standard error.
static RESULTS_TO_STDERR: AtomicBool = AtomicBool::new(false);

/// Sends the lines that normally go to standard output (results, plans) to standard error.
pub fn results_to_stderr() {
    RESULTS_TO_STDERR.store(true, Ordering::SeqCst);
}

/// One line of results or of a plan: standard output, unless `--report -` took it.
pub fn out_line(line: &str) {
    let result = match RESULTS_TO_STDERR.load(Ordering::SeqCst) {
        true => writeln!(std::io::stderr().lock(), "{line}"),
        false => writeln!(std::io::stdout().lock(), "{line}"),
    };
    drop(result);
}

/// `println!` for results and plans, through [`out_line`].
macro_rules! outln {
    () => {
        $crate::output::out_line("")
    };
    ($($arg:tt)*) => {
        $crate::output::out_line(&format!($($arg)*))
    };
}
pub(crate) use outln;

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
    /// Prints a notice where the operator sees it, from any thread (Ctrl-C).
    fn notifier(&self) -> crate::interrupt::Notify {
        Box::new(|text| eprintln!("{text}"))
    }
}

/// Progress bars on a terminal; plain lines without one, with `--quiet`, or with `TERM=dumb`.
/// `NO_COLOR` turns the colours of the bars off.
///
/// Bars only when the result lines reach the same terminal: with standard output piped (`| tee
/// log`) the results would land between the redraws and leave broken bars behind.
pub fn progress_for(quiet: bool, devices: usize) -> Box<dyn Progress> {
    let results_on_terminal =
        RESULTS_TO_STDERR.load(Ordering::SeqCst) || std::io::stdout().is_terminal();
    let terminal = std::io::stderr().is_terminal()
        && results_on_terminal
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
            eprintln!(
                "{}",
                wrap(&format!("{device}: {step} failed, retrying: {error}"))
            );
        }
    }

    /// Every result line, also with `--quiet`; never-started devices are only counted.
    fn finished(&self, report: &DeviceReport) {
        let _guard = self.lock.lock();
        if report.outcome != Outcome::Interrupted {
            out_line(&device_line(report));
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
    with_eta: ProgressStyle,
    without_eta: ProgressStyle,
    stopping: Arc<AtomicBool>,
    in_flight: Mutex<HashMap<String, ProgressBar>>,
    failed: AtomicUsize,
}

impl BarProgress {
    pub fn new(devices: usize, colour: bool) -> BarProgress {
        let bars = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let (bar, spinner) = if colour {
            ("{bar:24.cyan/blue}", "{spinner:.green}")
        } else {
            ("{bar:24}", "{spinner}")
        };
        // The ETA only once a device has finished, and not while stopping: an estimate from
        // nothing is "0s", and one after Ctrl-C counts devices that will not run.
        let style = |eta: &str| {
            ProgressStyle::with_template(&format!(
                "{bar} {{pos}}/{{len}} devices  {{msg}}  {{elapsed_precise}}{eta}"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ")
        };
        let overall_style = style("");
        let with_eta = style("  ETA {eta}");
        let spinner_style =
            ProgressStyle::with_template(&format!("  {spinner} {{prefix}}: {{msg}}"))
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let overall = bars.add(ProgressBar::new(devices as u64));
        overall.set_style(overall_style.clone());
        overall.set_message("0 failed");
        overall.enable_steady_tick(Duration::from_millis(250));
        BarProgress {
            bars,
            overall,
            without_eta: overall_style,
            with_eta,
            spinner_style,
            stopping: Arc::new(AtomicBool::new(false)),
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
        self.overall.inc(1);
        if self.overall.position() == 1 && !self.stopping.load(Ordering::SeqCst) {
            self.overall.set_style(self.with_eta.clone());
        }
        // Never-started devices are neither failures nor results: the summary counts them.
        if report.outcome == Outcome::Interrupted {
            return;
        }
        if !report.is_success() {
            let failed = self.failed.fetch_add(1, Ordering::SeqCst) + 1;
            self.overall.set_message(format!("{failed} failed"));
        }
        let line = device_line(report);
        self.bars.suspend(|| out_line(&line));
    }

    fn notifier(&self) -> crate::interrupt::Notify {
        let bars = self.bars.clone();
        let overall = self.overall.clone();
        let without_eta = self.without_eta.clone();
        let stopping = self.stopping.clone();
        Box::new(move |text| {
            stopping.store(true, Ordering::SeqCst);
            overall.set_style(without_eta.clone());
            overall.set_message("stopping");
            let _ = bars.println(text);
        })
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

/// `dev-1  OTAA  DevAddr 260B1234  FCnt 1234/56  migrated, session verified` (FCnt: the last
/// uplink / network downlink frame counter): short enough for 80 columns with IDs up to 14
/// characters. What is not known is left out. A failure
/// only says so: [`failures`] prints it once, with its next step, at the end.
pub fn device_line(report: &DeviceReport) -> String {
    let mut parts = vec![report.device_id.clone()];
    if let Some(mode) = report.mode {
        parts.push(mode.to_string());
    }
    // Frame counters only with a DevAddr: an export without a session has no counters to show.
    match &report.session {
        Some(s) if s.dev_addr.is_some() => {
            parts.push(format!(
                "DevAddr {}",
                s.dev_addr.as_deref().unwrap_or_default()
            ));
            parts.push(format!("FCnt {}/{}", s.last_f_cnt_up, s.last_n_f_cnt_down));
        }
        Some(_) => parts.push("no session".to_string()),
        None => {}
    }
    parts.push(match report.outcome {
        Outcome::Migrated => "migrated, session verified".to_string(),
        Outcome::RolledBack => "rolled back to the source".to_string(),
        Outcome::Skipped => format!("nothing to do ({})", report.location),
        Outcome::Conflict => "conflict (see below)".to_string(),
        Outcome::Interrupted => "not started".to_string(),
        Outcome::Failed => "FAILED (see below)".to_string(),
    });
    parts.join("  ")
}

/// The devices that did not reach the goal, each once: its reason, where it is, and the next
/// step; wrapped to the terminal. Empty when there are none.
pub fn failures(reports: &[DeviceReport], goal: Goal) -> String {
    let failed: Vec<&DeviceReport> = reports
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Failed | Outcome::Conflict))
        .collect();
    if failed.is_empty() {
        return String::new();
    }
    let mut text = match goal {
        Goal::Migrate => "Not migrated:".to_string(),
        Goal::Rollback => "Not rolled back:".to_string(),
    };
    for r in failed {
        text.push_str(&format!(
            "\n  {}: {}",
            r.device_id,
            r.error.as_deref().unwrap_or("failed")
        ));
        text.push_str(&format!("\n    where: {}", r.location));
        if let Some(next) = &r.next_action {
            text.push_str(&format!("\n    next: {next}"));
        }
    }
    wrap(&text)
}

/// A spinner on standard error while the checks before the question run (on a terminal, and
/// not with `--quiet`); nothing otherwise.
pub struct Activity {
    spinner: Option<ProgressBar>,
}

impl Activity {
    pub fn start(quiet: bool, what: &str) -> Activity {
        let terminal = std::io::stderr().is_terminal()
            && std::env::var("TERM").map_or(true, |term| term != "dumb");
        let spinner = (terminal && !quiet).then(|| {
            let spinner = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            spinner.set_style(
                ProgressStyle::with_template("{spinner} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            spinner.enable_steady_tick(Duration::from_millis(120));
            spinner
        });
        let activity = Activity { spinner };
        activity.set(what);
        activity
    }

    /// What is being done now.
    pub fn set(&self, what: &str) {
        if let Some(spinner) = &self.spinner {
            spinner.set_message(what.to_string());
        }
    }

    /// Prints a line above the spinner.
    pub fn println(&self, line: &str) {
        match &self.spinner {
            Some(spinner) => spinner.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }
}

impl Drop for Activity {
    fn drop(&mut self) {
        if let Some(spinner) = &self.spinner {
            spinner.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::SessionSummary;

    fn report(id: &str, outcome: Outcome, dev_addr: Option<&str>) -> DeviceReport {
        let mut report = DeviceReport::new(id, "app-1", "app-1");
        report.outcome = outcome;
        report.mode = Some(crate::device::ActivationMode::Otaa);
        report.session = Some(SessionSummary {
            dev_addr: dev_addr.map(String::from),
            last_f_cnt_up: 1234,
            last_n_f_cnt_down: 56,
            last_a_f_cnt_down: 12,
        });
        report
    }

    #[test]
    fn a_success_line_fits_80_columns_and_unknowns_are_left_out() {
        let line = device_line(&report(
            "sensor-000000001",
            Outcome::Migrated,
            Some("260B1234"),
        ));
        assert_eq!(
            line,
            "sensor-000000001  OTAA  DevAddr 260B1234  FCnt 1234/56  migrated, session verified"
        );
        assert!(
            device_line(&report(
                "sensor-0000001",
                Outcome::Migrated,
                Some("260B1234")
            ))
            .len()
                <= 80
        );
        assert_eq!(
            device_line(&report("dev-1", Outcome::Failed, None)),
            "dev-1  OTAA  no session  FAILED (see below)"
        );
        let unknown = DeviceReport::new("dev-2", "app-1", "app-1");
        assert_eq!(device_line(&unknown), "dev-2  FAILED (see below)");
    }

    #[test]
    fn each_failure_is_listed_once_with_where_and_next_in_the_words_of_the_goal() {
        let mut failed = report("dev-1", Outcome::Failed, Some("260B1234"));
        failed.error = Some("could not re-create the device on the source".into());
        failed.location = "on the target, session verified".into();
        failed.next_action = Some(crate::next_step::NextStep::ResolveConflict);
        let ok = report("dev-2", Outcome::RolledBack, Some("260B1234"));
        let text = failures(&[failed, ok], Goal::Rollback);
        assert!(
            text.starts_with("Not rolled back:\n  dev-1: could not re-create"),
            "{text}"
        );
        assert!(
            text.contains("\n    where: on the target, session verified"),
            "{text}"
        );
        assert!(text.contains("\n    next: delete or rename"), "{text}");
        assert!(!text.contains("dev-2"), "{text}");
        assert_eq!(
            failures(&[report("dev-3", Outcome::Migrated, None)], Goal::Migrate),
            ""
        );
    }
}
