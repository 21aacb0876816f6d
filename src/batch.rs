//! Running a batch of devices: the checks of both deployments before anything is deleted, the
//! one question, the worker pool, the dry run, and the summary at the end. `migrate`, `resume`
//! and `rollback` share it.

use std::collections::BTreeSet;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{bail, Result};

use crate::interrupt::Interrupt;
use crate::journal::WorkDir;
use crate::lifecycle::{Goal, Place};
use crate::next_step::NextStep;
use crate::outcome::{DeviceReport, Outcome, Summary};
use crate::output::{self, Progress};
use crate::pacing::{Lane, Pacing};
use crate::plan::Migration;
use crate::runner::{Calls, Files, RetryPolicy, Runner};
use crate::selection;
use crate::ttn_lw_cli::{quote, CliError, Invocation, Output, TtnLwCli};

/// How a batch of devices runs.
pub struct Batch {
    pub goal: Goal,
    pub jobs: u32,
    pub fail_fast: bool,
    pub rollback_on_failure: bool,
    pub retry: RetryPolicy,
    pub quiet: bool,
    /// The circuit breaker: devices in a row failing on the target for a transient reason that
    /// stop the run (0: never).
    pub breaker_after: usize,
}

/// Runs devices with Ctrl-C handling and the progress display in place.
pub fn run(
    cli: &TtnLwCli,
    migration: &Migration,
    work: &WorkDir,
    devices: &[String],
    batch: &Batch,
) -> Vec<DeviceReport> {
    let interrupt = Interrupt::install(Some(match batch.goal {
        Goal::Migrate => resume_command(work.path()),
        Goal::Rollback => format!(
            "ttn-session-migrate rollback {} --yes",
            quote(&work.path().display().to_string())
        ),
    }));
    let progress = output::progress_for(batch.quiet, devices.len());
    let files = Files::Disk;
    let pacing = Pacing::new(batch.breaker_after);
    let runner = Runner {
        calls: cli,
        migration,
        work: work.path(),
        files: &files,
        retry: batch.retry,
        interrupt: &interrupt,
        pacing: &pacing,
        progress: progress.as_ref(),
        rollback_on_failure: batch.rollback_on_failure,
    };
    let reports = run_devices(&runner, devices, batch);
    let limited = pacing.rate_limited();
    if limited > 0 && !batch.quiet {
        let paces: Vec<String> = [
            (Lane::SourceRead, "source reads"),
            (Lane::SourceDelete, "source deletes"),
            (Lane::TargetCreate, "target creates"),
        ]
        .iter()
        .filter_map(|(lane, what)| {
            pacing
                .per_minute(*lane)
                .map(|pace| format!("{what} at {pace:.0} per minute"))
        })
        .collect();
        eprintln!(
            "\nRate limited: {limited} answer{} `rate_limit_exceeded`; paced {}.",
            if limited == 1 { " was" } else { "s were" },
            paces.join(", ")
        );
    }
    if let Some(tripped) = pacing.tripped() {
        // `resume` continues the devices not started; those put back are migrated again.
        let put_back = reports
            .iter()
            .filter(|r| r.outcome == Outcome::Failed && r.location == Place::RolledBack.describe())
            .count();
        let again = match put_back {
            0 => String::new(),
            n => format!(
                "; the {n} device{} put back on the source (listed below) are migrated again with `migrate`",
                if n == 1 { "" } else { "s" }
            ),
        };
        eprintln!(
            "\nStopped: the target ({}) is unreachable: {} devices in a row could not be imported ({}). \
             Devices in flight were finished or put back on the source; no further device was deleted. \
             Once the target answers, continue with: {}{again}",
            migration.target.deployment(),
            tripped.devices,
            tripped.last_error.trim_end_matches('.'),
            resume_command(work.path())
        );
    }
    reports
}

/// Runs devices on `jobs` workers. Each device goes through all its steps on one worker, so its
/// import follows its delete at once. One device's failure does not stop the others; with
/// `fail_fast`, no further device starts after a failure, and once the circuit breaker is open
/// (the target does not answer) none starts either: those left are reported as not started
/// (still on the source, so `resume` continues them).
fn run_devices(runner: &Runner, devices: &[String], batch: &Batch) -> Vec<DeviceReport> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<Option<DeviceReport>>> = Mutex::new(vec![None; devices.len()]);
    std::thread::scope(|scope| {
        for _ in 0..(batch.jobs.max(1) as usize).min(devices.len()) {
            scope.spawn(|| loop {
                if batch.fail_fast && failed.load(Ordering::SeqCst) {
                    break;
                }
                if runner.pacing.breaker_open() {
                    break;
                }
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(device) = devices.get(i) else { break };
                let report = runner.run_device(device, batch.goal);
                if report.outcome == Outcome::Failed {
                    failed.store(true, Ordering::SeqCst);
                }
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(report);
            });
        }
    });
    runner.progress.close();
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .zip(devices)
        .map(|(report, device)| report.unwrap_or_else(|| not_started(device, runner)))
        .collect()
}

/// A device that `--fail-fast` or the circuit breaker kept from starting.
fn not_started(device: &str, runner: &Runner) -> DeviceReport {
    let mut report = DeviceReport::new(
        device,
        &runner.migration.application_id,
        &runner.migration.target_application_id,
    );
    report.outcome = Outcome::Interrupted;
    report.resumable = true;
    report.error = Some(match runner.pacing.breaker_open() {
        true => {
            "not started: the target did not answer, so the run stopped before deleting it".into()
        }
        false => "not started: --fail-fast stopped the run after a failure".into(),
    });
    report.next_action = Some(NextStep::FixThenResume {
        work_dir: runner.work.to_path_buf(),
    });
    report
}

/// Read-only checks of both deployments before anything is deleted: both logins work (run one
/// after the other, since ttn-lw-cli's credential cache has no locking; skipped when the
/// doctor checks already ran them), and the target application exists. Returns the selected
/// devices that are already in the target application.
pub fn preflight(
    cli: &TtnLwCli,
    migration: &Migration,
    devices: &[String],
    page_size: usize,
    logins_checked: bool,
    ran: &mut dyn FnMut(&Invocation, &str),
) -> Result<BTreeSet<String>> {
    let unchecked = if logins_checked {
        Vec::new()
    } else {
        vec![("source", &migration.source), ("target", &migration.target)]
    };
    for (side, profile) in unchecked {
        let check = Invocation::new(&profile.path, ["auth-info"]);
        cli.run(&check).map_err(|e| {
            anyhow::anyhow!(
                "the {side} login ({}, profile `{}`) does not work: {}. Log in with `ttn-session-migrate login {}`",
                profile.deployment(),
                profile.label,
                e.detail,
                profile.label
            )
        })?;
        ran(&check, "login works");
    }
    let present: BTreeSet<String> = selection::list_device_ids(
        cli,
        &migration.target,
        &migration.target_application_id,
        page_size,
        &mut |list, found| ran(list, &format!("{found} devices on this page")),
    )
    .map_err(|e| {
        anyhow::anyhow!(
            "cannot list application `{}` on the target ({}): {e}. Create the application in the target's Console, or check the login's rights",
            migration.target_application_id,
            migration.target.deployment()
        )
    })?
    .into_iter()
    .collect();
    Ok(devices
        .iter()
        .filter(|d| present.contains(*d))
        .cloned()
        .collect())
}

/// Devices already in the target application, as results; the others, to run.
pub fn split_conflicts(
    devices: &[String],
    conflicts: &BTreeSet<String>,
    migration: &Migration,
) -> (Vec<DeviceReport>, Vec<String>) {
    let (conflicting, to_run): (Vec<String>, Vec<String>) =
        devices.iter().cloned().partition(|d| conflicts.contains(d));
    let reports = conflicting
        .iter()
        .map(|d| {
            DeviceReport::new(
                d,
                &migration.application_id,
                &migration.target_application_id,
            )
            .conflict()
        })
        .collect();
    (reports, to_run)
}

pub fn confirm_migration(migration: &Migration, devices: &[String], yes: bool) -> Result<()> {
    if devices.is_empty() {
        return Ok(());
    }
    ask(
        &format!(
            "Migrate {} from {} (profile `{}`, application {}) to {} (profile `{}`, application {})? \
             Each device is deleted from the source once its export is saved.",
            list_devices(devices),
            migration.source.deployment(),
            migration.source.label,
            migration.application_id,
            migration.target.deployment(),
            migration.target.label,
            migration.target_application_id
        ),
        yes,
    )
}

pub fn confirm_rollback(migration: &Migration, devices: &[String], yes: bool) -> Result<()> {
    ask(
        &format!(
            "Put {} back on {} (application {}) from the saved exports, and remove them from {} where this migration created them?",
            list_devices(devices),
            migration.source.deployment(),
            migration.application_id,
            migration.target.deployment()
        ),
        yes,
    )
}

/// One yes/no question on the terminal. Without a terminal, only `--yes` goes on.
fn ask(question: &str, yes: bool) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!("refusing to change the deployments without confirmation: no terminal to ask on. Pass --yes, or preview with --dry-run");
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if !matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        bail!("cancelled; nothing was changed");
    }
    Ok(())
}

fn list_devices(devices: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut text = format!(
        "{} device{} ({}",
        devices.len(),
        if devices.len() == 1 { "" } else { "s" },
        devices
            .iter()
            .take(SHOWN)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    );
    if devices.len() > SHOWN {
        text.push_str(&format!(", and {} more", devices.len() - SHOWN));
    }
    text.push(')');
    text
}

pub fn resume_command(work: &Path) -> String {
    format!(
        "ttn-session-migrate resume {}",
        quote(&work.display().to_string())
    )
}

/// `--report FILE`, written whatever the outcome of the devices.
pub fn write_report(path: Option<&Path>, reports: &[DeviceReport]) -> Result<()> {
    if let Some(path) = path {
        crate::report::write(path, reports)?;
        eprintln!("Report: {}", path.display());
    }
    Ok(())
}

/// Prints the summary; true when every device succeeded.
pub fn finish(reports: &[DeviceReport], work: &Path) -> bool {
    let summary = Summary::of(reports);
    eprintln!("\n{summary}");
    let failures = output::failures(reports);
    if !failures.is_empty() {
        eprintln!("Not migrated:");
        for line in failures {
            eprintln!("{line}");
        }
    }
    let unfinished = reports.iter().filter(|r| r.resumable).count();
    if unfinished > 0 {
        eprintln!(
            "Unfinished: {unfinished}. Continue with: {}",
            resume_command(work)
        );
    }
    summary.all_succeeded()
}

/// The head of a dry run's plan, printed before the first read-only command runs.
pub fn print_dry_run_header(migration: &Migration) {
    println!("# Dry run: nothing is deleted or created. Commands marked `ran` are read-only and were run to make this plan exact.");
    println!("# Every command runs with the TTN_LW_* variables removed, and TTN_LW_SKIP_VERSION_CHECK=true TTN_LW_TELEMETRY_ENABLE=false.");
    println!(
        "# Source: {} ({}), application {}",
        migration.source.label,
        migration.source.deployment(),
        migration.application_id
    );
    println!(
        "# Target: {} ({}), application {}",
        migration.target.label,
        migration.target.deployment(),
        migration.target_application_id
    );
}

/// The dry run's view of ttn-lw-cli: read-only calls run and are printed as `# ran`; calls that
/// change a deployment are printed only, and answered as the deployment would if it accepted
/// them (`create` echoes its document, as the target does).
struct DryCalls<'a> {
    cli: &'a TtnLwCli,
    files: &'a Files,
}

fn changes_a_deployment(invocation: &Invocation) -> bool {
    let argv = invocation.argv();
    !argv.iter().any(|a| {
        matches!(
            a.as_str(),
            "get" | "list" | "auth-info" | "get-dev-addr-prefixes"
        )
    })
}

impl Calls for DryCalls<'_> {
    fn run(&self, invocation: &Invocation) -> Result<Output, CliError> {
        let line = self.cli.render(invocation);
        if changes_a_deployment(invocation) {
            println!("{line}");
            let stdout = match &invocation.stdin {
                crate::ttn_lw_cli::Stdin::File(path) => self.files.read(path).unwrap_or_default(),
                crate::ttn_lw_cli::Stdin::Null => Vec::new(),
            };
            return Ok(Output {
                stdout,
                stderr: String::new(),
            });
        }
        // Read-only: run it, without saving what a redirect would write.
        let mut read = invocation.clone();
        let saved = read.stdout_to.take();
        let result = self.cli.run(&read);
        match (&result, saved) {
            (Ok(_), Some(_)) => println!("{line}  # ran (not saved)"),
            (Ok(_), None) => println!("{line}  # ran"),
            (Err(e), _) => println!("{line}  # ran: {}", e.detail),
        }
        result
    }

    fn render(&self, invocation: &Invocation) -> String {
        self.cli.render(invocation)
    }
}

/// Dry-run progress: the notes of each action as comments; each device's end as the real run
/// would report it.
struct DryProgress;

impl Progress for DryProgress {
    fn step(&self, _device: &str, _step: &str) {}

    fn retrying(&self, _device: &str, step: &str, error: &str) {
        println!("# {step} failed, the real run retries: {error}");
    }

    fn note(&self, _device: &str, note: &str) {
        println!("# {note}");
    }

    fn finished(&self, report: &DeviceReport) {
        if !report.is_success() {
            println!(
                "# the real run stops here for this device: {}",
                output::device_line(report)
            );
        }
    }
}

/// `--dry-run`: the same lifecycle as the real run, one device after another, with only the
/// read-only calls run and nothing written. `work` is the directory the real run would use.
pub fn dry_run(
    cli: &TtnLwCli,
    migration: &Migration,
    devices: &[String],
    conflicts: &BTreeSet<String>,
    work: &Path,
) -> Vec<DeviceReport> {
    let files = Files::memory();
    let calls = DryCalls { cli, files: &files };
    let interrupt = Interrupt::default();
    let pacing = Pacing::new(0);
    let progress = DryProgress;
    let runner = Runner {
        calls: &calls,
        migration,
        work,
        files: &files,
        retry: RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        },
        interrupt: &interrupt,
        pacing: &pacing,
        progress: &progress,
        rollback_on_failure: false,
    };
    let mut reports = Vec::new();
    for device in devices {
        println!();
        println!("# device {device}");
        if conflicts.contains(device) {
            println!(
                "# conflict: already in application `{}` on the target; the real run leaves it alone",
                migration.target_application_id
            );
            reports.push(
                DeviceReport::new(
                    device,
                    &migration.application_id,
                    &migration.target_application_id,
                )
                .conflict(),
            );
            continue;
        }
        reports.push(runner.run_device(device, Goal::Migrate));
    }
    reports
}

/// The dry run's summary, as a comment; true when the real run would migrate every device.
pub fn finish_dry_run(reports: &[DeviceReport]) -> bool {
    let summary = Summary::of(reports);
    println!();
    println!(
        "# Dry run: {} would migrate, {} would fail, {} conflicts",
        summary.migrated, summary.failed, summary.conflicts
    );
    summary.all_succeeded()
}

/// The work directory the real run would use, as the operator gave it.
pub fn planned_work_dir(given: Option<&Path>) -> PathBuf {
    given.map_or_else(WorkDir::default_path, Path::to_path_buf)
}
