//! Running a batch of devices: the checks of both deployments before anything is deleted, the
//! one question, the worker pool, the dry run, and the summary at the end. `migrate`, `resume`
//! and `rollback` share it.

use std::collections::BTreeSet;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use anyhow::Result;

use crate::exit::{refused, Exit};
use crate::interrupt::{self, Interrupt};
use crate::journal::{Manifest, WorkDir};
use crate::lifecycle::{Goal, Place};
use crate::next_step::NextStep;
use crate::outcome::{count, first_few, DeviceReport, FailureKind, Outcome, Summary};
use crate::output::{self, outln, Progress};
use crate::pacing::{Lane, Pacing};
use crate::plan::Migration;
use crate::report::Destination;
use crate::runner::{Calls, Files, RetryPolicy, Runner};
use crate::selection;
use crate::survey::{self, Prefetched};
use crate::ttn_lw_cli::{quote, CliError, Invocation, Output, TtnLwCli};

/// How a batch of devices runs.
#[derive(Debug, Clone)]
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
    /// Target creates per minute the operator declared (`--target-rate`): paced from the first
    /// create rather than learned from the first refusals.
    pub target_rate: Option<u32>,
    /// The bucket of that rate, full at the start (`--target-burst`; `None`: one minute's).
    pub target_burst: Option<u32>,
    /// How long ago the run before this `resume` ended, pacing the target's creates: its
    /// bucket is taken as empty then, refilled at the rate since.
    pub target_emptied: Option<Duration>,
}

impl Batch {
    /// This batch, continuing after an earlier run on the same work directory (`resume`, or the
    /// rest after the canaries): at the target's create rate that run learned, unless one is
    /// declared, with the target's bucket as empty when that run ended and refilled since.
    pub fn continued(&self, manifest: &Manifest) -> Batch {
        Batch {
            target_rate: self.target_rate.or(manifest.learned_target_rate),
            target_emptied: manifest.ended_at.as_deref().map(ended_ago),
            ..self.clone()
        }
    }
}

/// How long ago a run ended, from the manifest's `ended_at`; zero (the bucket just emptied,
/// the careful guess) when that does not parse or lies ahead.
fn ended_ago(ended_at: &str) -> Duration {
    humantime::parse_rfc3339_weak(ended_at)
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .unwrap_or_default()
}

/// Runs devices with Ctrl-C handling and the progress display in place. `calls` is ttn-lw-cli,
/// or ttn-lw-cli with the detections read before the question ([`survey::Prefetched`]).
pub fn run(
    calls: &dyn Calls,
    migration: &Migration,
    work: &WorkDir,
    devices: &[String],
    batch: &Batch,
) -> Vec<DeviceReport> {
    let progress = output::progress_for(batch.quiet, devices.len());
    let interrupt = Interrupt::install(interrupt::Run {
        continue_with: match batch.goal {
            Goal::Migrate => resume_command(work.path()),
            Goal::Rollback => format!(
                "ttn-session-migrate rollback {} --yes",
                quote(&work.path().display().to_string())
            ),
        },
        work: work.path().to_path_buf(),
        devices: devices.to_vec(),
        notify: progress.notifier(),
    });
    let files = Files::Disk;
    let pacing = Pacing::new(batch.breaker_after);
    if let Some(per_minute) = batch.target_rate {
        pacing.declare(
            Lane::TargetCreate,
            per_minute,
            batch.target_burst.unwrap_or(per_minute),
        );
        if let Some(ago) = batch.target_emptied {
            pacing.emptied(Lane::TargetCreate, ago);
        }
    }
    let runner = Runner {
        calls,
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
    // A limit the target named, unless the operator declared one.
    let learned = match (batch.goal, batch.target_rate) {
        (Goal::Migrate, None) => pacing.named_rate(Lane::TargetCreate),
        _ => None,
    };
    record_the_end(work, learned);
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
        let advice = match learned {
            Some(rate) => format!(
                ": the target allows {rate} creates a minute into `{app}`, as it said refusing \
                 one (the work directory keeps it for `resume`). Give the next migration into \
                 `{app}` `--target-rate {rate}`, and it is paced from its first create, so that \
                 no device waits for a slot between its delete and its import",
                app = migration.target_application_id
            ),
            None => String::new(),
        };
        eprintln!(
            "\n{}",
            crate::terminal::wrap(&format!(
                "Rate limited: {limited} answer{} `rate_limit_exceeded`; paced {}{advice}.",
                if limited == 1 { " was" } else { "s were" },
                paces.join(", ")
            ))
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

/// Records in the manifest when the run ended and the target's create limit it learned, for
/// `resume`. Without them `resume` still works, and learns the limit again.
fn record_the_end(work: &WorkDir, learned: Option<u32>) {
    let recorded = work.read_manifest().and_then(|mut manifest| {
        manifest.ended_at = Some(humantime::format_rfc3339_millis(SystemTime::now()).to_string());
        if learned.is_some() {
            manifest.learned_target_rate = learned;
        }
        work.update_manifest(&manifest)
    });
    if let Err(e) = recorded {
        eprintln!(
            "{}",
            crate::terminal::wrap(&format!(
                "warning: could not record the end of the run in the work directory ({e:#}); \
                 `resume` learns the target's rate limit again"
            ))
        );
    }
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

/// A device that `--fail-fast`, Ctrl-C or the circuit breaker kept from starting: still on
/// the source.
fn not_started(device: &str, runner: &Runner) -> DeviceReport {
    let mut report = DeviceReport::new(
        device,
        &runner.migration.application_id,
        &runner.migration.target_application_id,
    );
    report.outcome = Outcome::Interrupted;
    report.resumable = true;
    report.error = Some(if runner.interrupt.requested() {
        "not started: Ctrl-C stopped the run".into()
    } else if runner.pacing.breaker_open() {
        "not started: the target did not answer, so the run stopped before deleting it".into()
    } else {
        "not started: --fail-fast stopped the run after a failure".into()
    });
    report.error_kind = Some(FailureKind::NotStarted);
    let work_dir = runner.work.to_path_buf();
    // After Ctrl-C nothing needs fixing; after a failure or an outage, its cause does.
    report.next_action = Some(match runner.interrupt.requested() {
        true => NextStep::Resume { work_dir },
        false => NextStep::FixThenResume { work_dir },
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
            "Roll back {} to {} (application {}) from the saved export{}, and remove {} from {} where this migration created {}?",
            list_devices(devices),
            migration.source.deployment(),
            migration.application_id,
            if devices.len() == 1 { "" } else { "s" },
            if devices.len() == 1 { "it" } else { "them" },
            migration.target.deployment(),
            if devices.len() == 1 { "it" } else { "them" },
        ),
        yes,
    )
}

/// One yes/no question on the terminal, wrapped to its width. Without a terminal, only
/// `--yes` goes on. A refusal is exit 3: nothing was changed.
pub fn ask(question: &str, yes: bool) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(refused("refusing to change the deployments without confirmation: no terminal to ask on. Pass --yes, or preview with --dry-run"));
    }
    eprint!("{} ", crate::terminal::wrap(&format!("{question} [y/N]")));
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if !matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        return Err(refused("cancelled; nothing was changed"));
    }
    Ok(())
}

/// `12 devices (a, b, … and 2 more)`.
fn list_devices(devices: &[String]) -> String {
    format!(
        "{} ({})",
        count(devices.len(), "device", "devices"),
        first_few(devices, 10)
    )
}

pub fn resume_command(work: &Path) -> String {
    format!(
        "ttn-session-migrate resume {}",
        quote(&work.display().to_string())
    )
}

/// `--report`, written whatever the outcome of the devices.
pub fn write_report(destination: Option<&Destination>, reports: &[DeviceReport]) -> Result<()> {
    if let Some(destination) = destination {
        crate::report::write(destination, reports)?;
        if let Some(path) = destination.describe() {
            eprintln!("Report: {path}");
        }
    }
    Ok(())
}

/// Prints the summary and each failure once; returns the exit status of the run.
pub fn finish(reports: &[DeviceReport], work: &Path, goal: Goal) -> Exit {
    let summary = Summary::of(reports);
    eprintln!("\n{}", summary.describe(goal));
    let failures = output::failures(reports, goal);
    if !failures.is_empty() {
        eprintln!("{failures}");
    }
    let warned: Vec<&DeviceReport> = reports.iter().filter(|r| !r.warnings.is_empty()).collect();
    if !warned.is_empty() {
        eprintln!("Warnings:");
        let width = crate::terminal::width();
        for report in warned {
            for warning in &report.warnings {
                let device = format!("  {}: ", report.device_id);
                eprintln!("{}", crate::terminal::hang(&device, warning, width));
            }
        }
    }
    let unfinished = reports.iter().filter(|r| r.resumable).count();
    if unfinished > 0 {
        crate::terminal::eprint_wrapped(&format!(
            "Unfinished: {unfinished}. Continue with: {}",
            resume_command(work)
        ));
    }
    exit_of(&summary)
}

/// 0 when every device succeeded; else 130 after Ctrl-C; 3 when nothing changed because every
/// device was a conflict; else 1.
pub fn exit_of(summary: &Summary) -> Exit {
    if summary.all_succeeded() {
        return Exit::Done;
    }
    // Ctrl-C that left devices unfinished (one that came too late to stop anything is no
    // interruption of the result).
    if interrupt::was_interrupted() {
        return Exit::Interrupted;
    }
    let nothing_changed = summary.failed == 0
        && summary.interrupted == 0
        && summary.migrated == 0
        && summary.rolled_back == 0;
    match nothing_changed {
        true => Exit::Refused,
        false => Exit::Failed,
    }
}

/// The head of a dry run's plan, printed before the first read-only command runs.
pub fn print_dry_run_header(migration: &Migration) {
    outln!("# Dry run: nothing is deleted or created. Commands marked `ran` are read-only");
    outln!("# and were run to make this plan exact. Every command runs with the TTN_LW_*");
    outln!(
        "# variables removed, and TTN_LW_SKIP_VERSION_CHECK=true TTN_LW_TELEMETRY_ENABLE=false."
    );
    outln!(
        "# Source: {} ({}), application {}",
        migration.source.label,
        migration.source.deployment(),
        migration.application_id
    );
    outln!(
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
            "get" | "list" | "auth-info" | "get-dev-addr-prefixes" | "get-connection-stats"
        )
    })
}

impl Calls for DryCalls<'_> {
    fn run(&self, invocation: &Invocation) -> Result<Output, CliError> {
        let line = self.cli.render(invocation);
        if changes_a_deployment(invocation) {
            outln!("{line}");
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
            (Ok(_), Some(_)) => outln!("{line}  # ran (not saved)"),
            (Ok(_), None) => outln!("{line}  # ran"),
            (Err(e), _) => outln!("{line}  # ran: {}", e.detail),
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
        outln!(
            "{}",
            crate::terminal::comment(&format!("{step} failed, the real run retries: {error}"))
        );
    }

    fn note(&self, _device: &str, note: &str) {
        outln!("{}", crate::terminal::comment(note));
    }

    fn finished(&self, report: &DeviceReport) {
        if !report.is_success() {
            let mut text = format!(
                "the real run stops here for this device: {}",
                report.error.as_deref().unwrap_or("failed")
            );
            if let Some(next) = &report.next_action {
                text.push_str(&format!("\nnext: {next}"));
            }
            outln!("{}", crate::terminal::comment(&text));
        }
    }
}

/// What a dry run reads before the devices, as `migrate` does before its question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Survey {
    /// Nothing (`resume`, `rollback`).
    None,
    /// The detections and the gateway summary.
    Gateways,
    /// The same, and `--require-gateways` refuses the unheard devices.
    RequireGateways,
}

/// `--dry-run`: the same lifecycle as the real run, one device after another, with only the
/// read-only calls run and nothing written. `work` is the directory the real run would use
/// (for `resume`/`rollback --dry-run`, the one whose journals the plan starts from).
/// Before a migration's question, the detections come first, then the gateway summary.
pub fn dry_run(
    cli: &TtnLwCli,
    migration: &Migration,
    devices: &[String],
    conflicts: &BTreeSet<String>,
    work: &Path,
    goal: Goal,
    before_question: Survey,
) -> Vec<DeviceReport> {
    let files = Files::memory();
    let dry = DryCalls { cli, files: &files };
    let candidates: Vec<String> = devices
        .iter()
        .filter(|d| !conflicts.contains(*d))
        .cloned()
        .collect();
    let survey = match before_question != Survey::None
        && survey::wanted(migration)
        && !candidates.is_empty()
    {
        true => {
            outln!();
            outln!("{}", crate::terminal::comment("Before the question: the detection of every device (the run reuses the answers), and the gateways they need"));
            Some(survey::survey(&dry, migration, &candidates, 1))
        }
        false => None,
    };
    let mut refused = std::collections::BTreeMap::new();
    if let Some(survey) = &survey {
        let summary = survey.summary(&dry, &migration.target.path);
        outln!();
        outln!(
            "{}",
            crate::terminal::comment(&survey::headline(migration, survey))
        );
        // The table as it is (its columns kept), two columns narrower for the `# `.
        for line in summary
            .render(crate::terminal::width().saturating_sub(2))
            .lines()
        {
            match line.is_empty() {
                true => outln!("#"),
                false => outln!("# {line}"),
            }
        }
        if before_question == Survey::RequireGateways {
            refused.extend(survey.refusals(&summary));
        }
    }
    let calls = Prefetched {
        inner: &dry,
        survey: survey.as_ref(),
        echo: true,
    };
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
        outln!();
        outln!("# device {device}");
        if conflicts.contains(device) {
            outln!(
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
        if let Some(reason) = refused.get(device) {
            outln!(
                "# refused by --require-gateways: {reason}; the real run leaves it on the source"
            );
            reports.push(survey::refused(migration, device, reason));
            continue;
        }
        reports.push(runner.run_device(device, goal));
    }
    reports
}

/// The dry run's summary, as a comment; the exit status the real run would end with.
pub fn finish_dry_run(reports: &[DeviceReport], goal: Goal) -> Exit {
    let summary = Summary::of(reports);
    outln!();
    let done = match goal {
        Goal::Migrate => format!("{} would migrate", summary.migrated),
        Goal::Rollback => format!("{} would roll back", summary.rolled_back),
    };
    outln!(
        "# Dry run: {done}, {} would fail, {}, {} with nothing to do",
        summary.failed,
        count(summary.conflicts, "conflict", "conflicts"),
        summary.skipped
    );
    exit_of(&summary)
}

/// The work directory the real run would use: as the operator gave it, or a new one named after
/// the time (`-2`, `-3` … when one of that second exists already).
pub fn planned_work_dir(given: Option<&Path>) -> PathBuf {
    if let Some(given) = given {
        return given.to_path_buf();
    }
    let base = WorkDir::default_path();
    let mut path = base.clone();
    for n in 2.. {
        if !path.exists() {
            break;
        }
        path = PathBuf::from(format!("{}-{n}", base.display()));
    }
    path
}
