//! Carries devices through their lifecycle, one journal record at a time.
//!
//! The loop is the same for `migrate`, `resume`, `rollback` and `--dry-run`: ask
//! [`lifecycle::next`](crate::lifecycle::next) what to do from where the journal says the device
//! is, perform that action (which appends its records; the journal refuses any record the
//! lifecycle does not allow), and ask again, until the action is `Done`. A failed action adds a
//! `failed` or `stuck` record and `next` decides what follows (a rollback, or a stop). Transient
//! failures are retried here, in one place, with capped exponential backoff: the retry asks
//! `next` again, so a delete or import whose answer was lost is confirmed, never repeated
//! blindly. Whatever fails, the saved export is never removed, and the device is deleted from a
//! deployment only once it is safe somewhere else.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::device::{
    registry_errors, session_differences, ActivationMode, DeviceExport, ExportProblem, Server,
};
use crate::interrupt::Interrupt;
use crate::journal::{write_device_file, write_file, Durability, Journal, Record, WorkDir};
use crate::lifecycle::{
    failure_record, next, Action, End, Goal, Halt, Place, Policy, Position, Step,
};
use crate::next_step::NextStep;
use crate::outcome::{DeviceReport, FailureKind, Outcome};
use crate::output::Progress;
use crate::pacing::{Answer, Lane, Pacing};
use crate::plan::Migration;
use crate::ttn_lw_cli::{CliError, ErrorKind, Invocation, Output, TtnLwCli};
use crate::whole_device::{self, JoinState};

/// The ttn-lw-cli calls the runner makes. The real invocation layer implements it; unit tests
/// script it; the dry run wraps it so that only read-only calls run.
pub trait Calls: Sync {
    fn run(&self, invocation: &Invocation) -> Result<Output, CliError>;
    /// The shell line of an invocation (journaled; never holds keys).
    fn render(&self, invocation: &Invocation) -> String;
}

impl Calls for TtnLwCli {
    fn run(&self, invocation: &Invocation) -> Result<Output, CliError> {
        TtnLwCli::run(self, invocation)
    }

    fn render(&self, invocation: &Invocation) -> String {
        TtnLwCli::render(self, invocation)
    }
}

/// Where the files of a device directory go: the disk, or memory (a dry run).
#[derive(Debug, Default)]
pub enum Files {
    #[default]
    Disk,
    Memory(Mutex<HashMap<PathBuf, Vec<u8>>>),
}

impl Files {
    pub fn memory() -> Files {
        Files::Memory(Mutex::new(HashMap::new()))
    }

    /// Writes the file `name` of the device's directory, which the journal's next record names:
    /// the record is not made durable before the file (see [`write_device_file`]).
    fn keep(&self, journal: &mut Journal, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let path = journal.dir().join(name);
        match self {
            Files::Disk => {
                journal.sync_with_next_write(write_device_file(&path, bytes)?);
                Ok(())
            }
            Files::Memory(_) => self.write(&path, bytes, Durability::Full),
        }
    }

    fn write(&self, path: &Path, bytes: &[u8], durability: Durability) -> anyhow::Result<()> {
        match self {
            Files::Disk => write_file(path, bytes, durability),
            Files::Memory(files) => {
                files
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(path.to_path_buf(), bytes.to_vec());
                Ok(())
            }
        }
    }

    pub fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        match self {
            Files::Disk => fs::read(path),
            // What this run wrote, else what an earlier run left on disk (read-only).
            Files::Memory(files) => match files.lock().unwrap_or_else(|e| e.into_inner()).get(path)
            {
                Some(bytes) => Ok(bytes.clone()),
                None => fs::read(path),
            },
        }
    }
}

/// Capped exponential backoff for transient failures.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 4,
            base: Duration::from_secs(1),
            cap: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    fn delay(&self, attempt: u32) -> Duration {
        self.base
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(self.cap)
    }
}

/// Retries of a rate-limited call per device: it had no effect, and its lane paces the next.
const RATE_LIMITED_RETRIES: u32 = 30;

/// The pacing lane of an action's main call.
fn lane_of(action: Action) -> Option<Lane> {
    match action {
        Action::Detect | Action::Export | Action::ConfirmDelete => Some(Lane::SourceRead),
        Action::Delete => Some(Lane::SourceDelete),
        Action::Import => Some(Lane::TargetCreate),
        _ => None,
    }
}

/// A wait as the progress line shows it: `4 s`, `0.8 s`.
fn seconds(wait: Duration) -> String {
    let secs = wait.as_secs_f64();
    match secs >= 10.0 || secs.fract() == 0.0 {
        true => format!("{} s", secs.round()),
        false => format!("{secs:.1} s"),
    }
}

/// An action that did not complete.
#[derive(Debug)]
struct Failure {
    error: String,
    /// The error without the advice a failed call's error ends with ("retry later with
    /// `resume`"), which is for a failure that stays: a retry's line shows this.
    brief: Option<String>,
    /// What kind of failure, for scripts and for the next step.
    kind: FailureKind,
    /// Worth another try after a pause: the loop asks `next` again.
    transient: bool,
    /// The kind of the failed call, if a call failed.
    call_kind: Option<ErrorKind>,
    /// The record a final failure adds.
    halt: Halt,
}

impl Failure {
    fn new(error: impl Into<String>) -> Failure {
        Failure {
            error: error.into(),
            brief: None,
            kind: FailureKind::Other,
            transient: false,
            call_kind: None,
            halt: Halt::Failed,
        }
    }

    /// A failed call, in words that name what to do.
    fn call(e: &CliError, what: &str) -> Failure {
        let hint = match e.kind {
            ErrorKind::Unauthenticated | ErrorKind::UnknownHost => {
                " Log in again with `ttn-session-migrate login <PROFILE>`.".to_string()
            }
            ErrorKind::PermissionDenied => format!(
                " The login lacks rights on the application: it needs {} (`doctor` names the missing one).",
                crate::doctor::required_rights_text()
            ),
            ErrorKind::Transport | ErrorKind::Timeout => {
                " The deployment did not answer; retry later with `resume`.".to_string()
            }
            ErrorKind::RateLimited => " The deployment refused the call for its rate limit; \
                the tool paces its calls to that rate. If refusals go on (another client of the \
                same login), retry later with `resume`."
                .to_string(),
            _ => String::new(),
        };
        Failure {
            error: format!("could not {what}: {}.{hint}", e.detail),
            brief: Some(format!("could not {what}: {}", e.detail)),
            kind: e.kind.into(),
            transient: e.kind.is_transient(),
            call_kind: Some(e.kind),
            halt: Halt::Failed,
        }
    }

    fn stuck(mut self) -> Failure {
        self.halt = Halt::Stuck;
        self
    }

    fn kind(mut self, kind: FailureKind) -> Failure {
        self.kind = kind;
        self
    }

    /// A `get` that exited 0 while one of `servers` logged an ERROR line: its answer lacks
    /// that server's fields and must not be read. Retried when every such server was
    /// unavailable or rate limited; refused otherwise.
    fn servers_failed(stderr: &str, servers: &[Server], what: &str) -> Result<(), Failure> {
        let failed: Vec<_> = registry_errors(stderr)
            .into_iter()
            .filter(|e| servers.contains(&e.server))
            .collect();
        let Some(first) = failed.first() else {
            return Ok(());
        };
        let transient = failed.iter().all(|e| e.transient());
        Err(Failure {
            error: format!(
                "could not {what}: the {} failed inside `end-devices get` ({}), so its answer is incomplete{}",
                first.server,
                first.error,
                if transient { "; retrying" } else { "; nothing was taken from it" }
            ),
            brief: None,
            kind: match transient {
                true => FailureKind::Unavailable,
                false => FailureKind::ServerFailed,
            },
            transient,
            call_kind: None,
            halt: Halt::Failed,
        })
    }
}

/// Which servers of a deployment hold a device.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Presence {
    /// Not even the Identity Server.
    Absent,
    /// Every server that was asked.
    Whole,
    /// The Identity Server and some others; these lack it.
    Partial(Vec<Server>),
}

fn servers_list(servers: &[Server]) -> String {
    servers
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Failure {
        Failure::new(format!("{e:#}")).kind(FailureKind::WorkDirectory)
    }
}

pub struct Runner<'a> {
    pub calls: &'a dyn Calls,
    pub migration: &'a Migration,
    /// The work directory's path (for a dry run, the one the real run would use).
    pub work: &'a Path,
    /// Where device files and journals go: [`Files::Memory`] for a dry run, which writes
    /// nothing (it starts from a device's journal on disk, if there is one, and keeps its
    /// own records in memory).
    pub files: &'a Files,
    pub retry: RetryPolicy,
    pub interrupt: &'a Interrupt,
    /// Paces the calls, gates the deletes and holds the circuit breaker; shared by the workers.
    pub pacing: &'a Pacing,
    pub progress: &'a dyn Progress,
    /// Put a device back on the source when a step fails for good after its delete.
    pub rollback_on_failure: bool,
}

/// The state of one device while it runs.
struct DeviceRun {
    journal: Journal,
    report: DeviceReport,
    delete_started: Option<Instant>,
    /// The first error of this run, and its kind.
    error: Option<String>,
    error_kind: Option<FailureKind>,
    /// Actions performed in this run.
    performed: usize,
    /// Passed the delete gate: in the delete window until its import answers or its run ends.
    in_window: bool,
    /// When it took the target-create slot its import will use.
    create_slot: Option<Instant>,
}

impl DeviceRun {
    fn device(&self) -> String {
        self.report.device_id.clone()
    }

    /// The file the journal's last `step` record wrote.
    fn file(&self, step: Step, what: &str) -> Result<PathBuf, Failure> {
        self.journal
            .file_of(step)
            .ok_or_else(|| Failure::new(format!("the journal names no {what}")))
    }
}

impl Runner<'_> {
    fn policy(&self) -> Policy {
        Policy {
            rollback_on_failure: self.rollback_on_failure,
            freeze_downlinks: self.migration.freeze_downlinks,
            mode_known: self.migration.mode.is_some(),
            stopping: self.interrupt.requested() || self.pacing.breaker_open(),
        }
    }

    fn journal(&self, device: &str) -> anyhow::Result<Journal> {
        match self.files {
            Files::Disk => WorkDir::journal_in(self.work, device),
            Files::Memory(_) => Journal::in_memory(&self.work.join(device), device),
        }
    }

    /// Runs one device towards `goal` and reports where it ended.
    pub fn run_device(&self, device: &str, goal: Goal) -> DeviceReport {
        let mut report = DeviceReport::new(
            device,
            &self.migration.application_id,
            &self.migration.target_application_id,
        );
        let journal = match self.journal(device) {
            Ok(journal) => journal,
            Err(e) => {
                report.error = Some(format!("{e:#}"));
                report.error_kind = Some(FailureKind::JournalDamaged);
                report.location = "unknown: journal damaged".into();
                report.next_action = Some(NextStep::CheckConsole {
                    export_dir: self.work.join(device),
                });
                self.progress.finished(&report);
                return report;
            }
        };
        report.mode = journal.mode().or(self.migration.mode);
        let mut run = DeviceRun {
            journal,
            report,
            delete_started: None,
            error: None,
            error_kind: None,
            performed: 0,
            in_window: false,
            create_slot: None,
        };
        if let Some(export) = run.journal.export_file() {
            if let Ok(bytes) = self.files.read(&export) {
                if let Ok(export) = DeviceExport::parse(bytes) {
                    run.report.session = Some(export.session_summary());
                }
            }
        }
        let mut end = self.drive(&mut run, goal);
        self.leave_window(&mut run);
        if let Err(e) = run.journal.flush() {
            run.error = Some(format!("{e:#}"));
            end = End::Halted;
        }
        self.conclude(&mut run, goal, end);
        self.progress.finished(&run.report);
        run.report
    }

    /// The loop: `next` → perform → (records appended by the action) → again.
    fn drive(&self, run: &mut DeviceRun, goal: Goal) -> End {
        // A new attempt after an earlier run's failure.
        if run.journal.position().halt.is_some() {
            if let Err(failure) = self.perform(run, Action::Retry) {
                run.error = Some(failure.error);
                return End::Halted;
            }
        }
        let mut retries = 0;
        let mut limited_retries = 0;
        loop {
            let action = next(goal, run.journal.position(), self.policy());
            if let Action::Done(end) = action {
                return end;
            }
            if !self.gate(run, action) {
                // Still on the source: `next` stops it (Ctrl-C or the breaker).
                continue;
            }
            self.progress.step(&run.report.device_id, action.label());
            let started = Instant::now();
            let written = run.journal.len();
            let result = self.perform(run, action).and_then(|()| {
                // Every action that succeeds moves the device on: the loop cannot spin.
                match run.journal.len() > written {
                    true => Ok(()),
                    false => Err(Failure::new(format!(
                        "`{}` made no progress; this is a bug in ttn-session-migrate",
                        action.label()
                    ))
                    .stuck()),
                }
            });
            run.report
                .time(action.label(), started.elapsed().as_millis() as u64);
            run.performed += 1;
            let Err(failure) = result else { continue };
            let rate_limited = failure.call_kind == Some(ErrorKind::RateLimited);
            // A rate-limited call had no effect and its lane paces the next one: such retries
            // have their own, larger budget.
            let retry = match rate_limited {
                true => limited_retries < RATE_LIMITED_RETRIES,
                false => retries < self.retry.max_retries,
            };
            // With the breaker open, a device in flight goes back rather than waiting on.
            if failure.transient && retry && !self.pacing.breaker_open() {
                self.progress.retrying(
                    &run.report.device_id,
                    action.label(),
                    failure.brief.as_deref().unwrap_or(&failure.error),
                );
                let (wait, attempt, why) = match rate_limited {
                    true => {
                        limited_retries += 1;
                        let lane = lane_of(action).unwrap_or(Lane::TargetCreate);
                        (self.pacing.delay(lane), limited_retries, "rate limited")
                    }
                    false => {
                        retries += 1;
                        let why = match failure.call_kind {
                            Some(ErrorKind::Timeout) => "timed out",
                            _ => "no answer",
                        };
                        (self.retry.delay(retries - 1), retries, why)
                    }
                };
                self.progress.waiting(
                    &run.report.device_id,
                    action.label(),
                    &format!("{why}, retry {attempt} in {}", seconds(wait)),
                );
                self.interrupt.sleep(wait);
                continue;
            }
            if failure.transient && matches!(action, Action::Import | Action::ConfirmImport) {
                self.pacing.failed_on_target(&failure.error);
            }
            let step = failure_record(run.journal.position(), failure.halt);
            run.error.get_or_insert(failure.error.clone());
            run.error_kind.get_or_insert(failure.kind);
            if let Err(e) = run
                .journal
                .append(Record::new(step).detail(failure.error.clone()))
            {
                // Not even the failure could be journaled (a full disk): stop here.
                run.error = Some(format!("{}; and {e:#}", failure.error));
                return End::Halted;
            }
        }
    }

    /// Fills in outcome, location, error and next step from where the device ended.
    fn conclude(&self, run: &mut DeviceRun, goal: Goal, end: End) {
        let position = run.journal.position();
        let report = &mut run.report;
        report.location = position.describe().to_string();
        let work_dir = self.work.to_path_buf();
        let device = report.device_id.clone();
        report.error_kind = run.error_kind;
        match (end, &run.error) {
            (End::Interrupted, _) => {
                report.outcome = Outcome::Interrupted;
                report.error_kind = Some(FailureKind::NotStarted);
                report.resumable = true;
                report.next_action = Some(NextStep::Resume { work_dir });
            }
            (End::Reached, None) => {
                report.outcome = match (run.performed, position.place) {
                    (0, _) => Outcome::Skipped,
                    (_, Place::Migrated) => Outcome::Migrated,
                    (_, Place::RolledBack) => Outcome::RolledBack,
                    _ => Outcome::Skipped,
                };
            }
            // Reached after a failure: rolled back on failure.
            (End::Reached, Some(error)) => {
                report.outcome = Outcome::Failed;
                report.error = Some(match goal {
                    Goal::Migrate => format!("{error}; rolled back to the source"),
                    Goal::Rollback => error.clone(),
                });
                report.next_action = Some(NextStep::FixTargetThenMigrateAgain);
            }
            (End::Halted, error) => {
                report.outcome = Outcome::Failed;
                report.error = Some(
                    error
                        .clone()
                        .unwrap_or_else(|| "stopped by an earlier failure".into()),
                );
                // Back on the source with the target left alone (someone else's device):
                // neither resume nor rollback has anything left to do.
                let back_on_source = position.place == Place::RolledBack;
                report.resumable = !position.untouched() && !back_on_source;
                report.next_action = Some(match (position.untouched(), run.error_kind) {
                    _ if back_on_source => NextStep::CheckTarget {
                        export_dir: self.work.join(&device),
                    },
                    (true, Some(FailureKind::NotFound)) if goal == Goal::Migrate => {
                        report.location = format!(
                            "not found in application `{}` on the source",
                            self.migration.application_id
                        );
                        NextStep::CheckDeviceId {
                            application_id: self.migration.application_id.clone(),
                        }
                    }
                    (true, Some(FailureKind::ExportRefused)) => NextStep::NewMigration,
                    (true, _) => NextStep::FixThenResume { work_dir },
                    (false, _) => NextStep::ResumeOrRollback { work_dir, device },
                });
            }
        }
    }

    fn perform(&self, run: &mut DeviceRun, action: Action) -> Result<(), Failure> {
        match action {
            Action::Retry => Ok(run.journal.append(Record::new(Step::Retried))?),
            Action::Detect => self.detect(run),
            Action::Freeze => self.freeze(run),
            Action::Export => self.export(run),
            Action::Validate => self.validate(run),
            Action::Delete => self.delete(run),
            Action::ConfirmDelete => self.confirm_delete(run),
            Action::FinishDelete => self.finish_delete(run),
            Action::Import => self.import(run),
            Action::ConfirmImport => self.confirm_import(run),
            Action::Verify => self.verify(run),
            Action::Unfreeze => self.unfreeze(run),
            Action::RollBack => self.start_rollback(run),
            Action::Recreate => self.recreate(run),
            Action::FinishRollback => self.finish_rollback(run),
            Action::Done(_) => Ok(()),
        }
    }

    fn render(&self, invocation: &Invocation) -> String {
        self.calls.render(invocation)
    }

    /// A call through its pacing lane: waits for the lane's slot, and teaches the lane.
    fn paced(&self, lane: Lane, invocation: &Invocation) -> Result<Output, CliError> {
        self.pacing.wait(lane, false, &|| false);
        self.teaching(lane, invocation)
    }

    /// A call whose lane slot was taken already; its answer teaches the lane.
    fn teaching(&self, lane: Lane, invocation: &Invocation) -> Result<Output, CliError> {
        let started = Instant::now();
        let result = self.calls.run(invocation);
        self.pacing.answered(lane, started, &Answer::of(&result));
        result
    }

    /// The delete gate: a device is exported and deleted only once its create can follow at
    /// once. Before the export it waits until the target-create slot is near; before the
    /// delete it takes the slot, for the moment its create will start. False when the run
    /// stops first; the device is still on the source then.
    fn gate(&self, run: &mut DeviceRun, action: Action) -> bool {
        if !matches!(action, Action::Freeze | Action::Export | Action::Delete) {
            return true;
        }
        let stop = || self.interrupt.requested() || self.pacing.breaker_open();
        if !run.in_window {
            if !self.pacing.admit(&stop) {
                return false;
            }
            run.in_window = true;
        }
        if action == Action::Delete && run.create_slot.is_none() {
            if !self.pacing.before_delete(&stop) {
                return false;
            }
            run.create_slot = Some(Instant::now());
        }
        true
    }

    /// Leaves the delete window if this device is in it.
    fn leave_window(&self, run: &mut DeviceRun) {
        if std::mem::take(&mut run.in_window) {
            self.pacing.left_window();
        }
    }

    /// Does a device exist? Not found is an answer; anything else is a failure.
    fn exists(&self, invocation: &Invocation) -> Result<bool, Failure> {
        self.exists_answer(self.calls.run(invocation))
    }

    fn exists_answer(&self, result: Result<Output, CliError>) -> Result<bool, Failure> {
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Failure::call(&e, "tell whether the device exists")),
        }
    }

    /// Asks one field of every server (`plan::presence_on_*`): which hold the device? A
    /// server that failed otherwise than not-found gives no answer.
    fn presence(&self, invocation: &Invocation) -> Result<Presence, Failure> {
        let output = match self.calls.run(invocation) {
            Ok(output) => output,
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(Presence::Absent),
            Err(e) => return Err(Failure::call(&e, "tell which servers hold the device")),
        };
        let errors = registry_errors(&output.stderr);
        if let Some(e) = errors.iter().find(|e| !e.device_absent()) {
            return Err(Failure {
                error: format!(
                    "could not tell which servers hold the device: the {e}; retry with `resume`"
                ),
                brief: Some(format!(
                    "could not tell which servers hold the device: the {e}"
                )),
                kind: match e.transient() {
                    true => FailureKind::Unavailable,
                    false => FailureKind::ServerFailed,
                },
                transient: e.transient(),
                call_kind: None,
                halt: Halt::Failed,
            });
        }
        let missing: Vec<Server> = errors.iter().map(|e| e.server).collect();
        Ok(match missing.is_empty() {
            true => Presence::Whole,
            false => Presence::Partial(missing),
        })
    }

    fn mode(&self, run: &DeviceRun) -> ActivationMode {
        run.report
            .mode
            .or(run.journal.mode())
            .or(self.migration.mode)
            .unwrap_or(ActivationMode::Otaa)
    }

    /// Read-only: the activation mode, the device fields the documented export leaves out, the
    /// gateways that heard it, and with `--freeze-downlinks` the setting to restore. The answer
    /// (no keys: the detection selects none) is saved next to the journal; a device that uses a
    /// MAC settings profile is refused here, before anything changes.
    fn detect(&self, run: &mut DeviceRun) -> Result<(), Failure> {
        let detect = self.migration.detect(&run.device());
        let output = self
            .paced(Lane::SourceRead, &detect)
            .map_err(|e| Failure::call(&e, "detect the activation mode"))?;
        let doc: Value = serde_json::from_slice(&output.stdout).map_err(|e| {
            Failure::new(format!(
                "ttn-lw-cli printed something that is not JSON ({e})"
            ))
        })?;
        // The Join Server's fields are extras for the detection; the export decides on them.
        if let Some(problem @ ExportProblem::WrongCluster { .. }) =
            crate::device::wrong_cluster(&doc, &output.stderr)
        {
            return Err(
                Failure::new(format!("export refused, nothing was deleted: {problem}"))
                    .kind(FailureKind::ExportRefused),
            );
        }
        if let Some(refusal) = whole_device::refusal(&doc) {
            return Err(self.unfreeze_after(run, Failure::new(refusal)));
        }
        // `supports_join` comes from the Network Server: without its answer an OTAA device
        // would look ABP (real-cli-audit.md D3). The AS and JS serve only extra fields.
        Failure::servers_failed(
            &output.stderr,
            &[Server::Network, Server::Identity],
            "detect the activation mode",
        )?;
        let mode = self.migration.mode.unwrap_or(ActivationMode::of(&doc));
        run.report.mode = Some(mode);
        self.progress.note(&run.report.device_id, &mode.to_string());
        self.progress
            .note(&run.report.device_id, &whole_device::describe(&doc, mode));
        if let Some(note) = JoinState::of(&doc, &output.stderr, mode).note(&doc) {
            self.progress.note(&run.report.device_id, &note);
            run.report.warnings.push(note);
        }
        let file_name = numbered("detected", run.journal.count(Step::Detected) + 1);
        self.files
            .keep(
                &mut run.journal,
                &file_name,
                &pretty(&whole_device::detection_record(&doc)),
            )
            .map_err(|e| Failure::new(format!("{e:#}; nothing was deleted")))?;
        let mut record = Record::new(Step::Detected)
            .command(self.render(&detect), Some(0))
            .file(&file_name);
        record.mode = Some(mode);
        // What to restore after a freeze; an earlier freeze's value wins (the setting now may
        // be ours).
        if self.migration.freeze_downlinks && !run.journal.frozen() {
            record.schedule_downlinks_before = Some(
                crate::device::at(&doc, "mac_settings.schedule_downlinks").and_then(Value::as_bool),
            );
        }
        run.journal.append(record)?;
        Ok(())
    }

    /// The saved detection answer: the fields the import carries beyond the documented export.
    /// `None` without a detection (`--otaa`/`--abp`), or for a journal of an earlier version.
    fn detected(&self, run: &DeviceRun) -> Option<Value> {
        let file = run.journal.file_of(Step::Detected)?;
        serde_json::from_slice(&self.files.read(&file).ok()?).ok()
    }

    /// Downlinks off on the source. Recorded first, with the setting to restore: a crash during
    /// the `set` leaves a journal that restores the original rather than one that forgets it.
    fn freeze(&self, run: &mut DeviceRun) -> Result<(), Failure> {
        let freeze = self.migration.schedule_downlinks(&run.device(), false);
        let before = match run.journal.frozen() {
            true => run.journal.schedule_downlinks_before(),
            false => run
                .journal
                .last(Step::Detected)
                .and_then(|r| r.schedule_downlinks_before),
        };
        let mut record = Record::new(Step::Frozen).command(self.render(&freeze), None);
        record.schedule_downlinks_before = Some(before.unwrap_or(None));
        run.journal.append(record)?;
        if let Err(e) = self.calls.run(&freeze) {
            return Err(
                self.unfreeze_after(run, Failure::call(&e, "turn off downlinks on the source"))
            );
        }
        Ok(())
    }

    /// The export itself, saved unchanged: from here on it is the only copy the tool controls.
    fn export(&self, run: &mut DeviceRun) -> Result<(), Failure> {
        let mode = self.mode(run);
        run.report.mode = Some(mode);
        let file_name = numbered("export", run.journal.count(Step::Exported) + 1);
        let file = run.journal.dir().join(&file_name);
        let export = self.migration.export(&run.device(), mode, &file);
        let output = match self.paced(Lane::SourceRead, &export) {
            Ok(output) => output,
            Err(e) => {
                let failure = Failure::call(&e, "export the device");
                return Err(match failure.transient {
                    true => failure,
                    false => self.unfreeze_after(run, failure),
                });
            }
        };
        // A server that was unavailable or rate limited inside the `get`: ask again. Other
        // server failures are refused by the validation, which names them.
        let busy: Vec<_> = registry_errors(&output.stderr)
            .into_iter()
            .filter(|e| e.transient())
            .collect();
        if let Some(first) = busy.first() {
            return Err(Failure {
                error: format!(
                    "could not export the device: the {first}; the export is incomplete, retrying"
                ),
                brief: None,
                kind: FailureKind::Unavailable,
                transient: true,
                call_kind: None,
                halt: Halt::Failed,
            });
        }
        self.files
            .keep(&mut run.journal, &file_name, &output.stdout)
            .map_err(|e| Failure::new(format!("{e:#}; nothing was deleted")))?;
        let mut record = Record::new(Step::Exported)
            .command(self.render(&export), Some(0))
            .file(&file_name);
        record.mode = Some(mode);
        if !output.stderr.trim().is_empty() {
            record.detail = Some(output.stderr.trim().to_string());
        }
        run.journal.append(record)?;
        Ok(())
    }

    /// Checks the saved export and writes the import document next to it.
    fn validate(&self, run: &mut DeviceRun) -> Result<(), Failure> {
        let file = run.file(Step::Exported, "export")?;
        let stderr = run
            .journal
            .last(Step::Exported)
            .and_then(|r| r.detail.clone())
            .unwrap_or_default();
        let bytes = self.files.read(&file).map_err(|e| {
            Failure::new(format!("could not read the export {}: {e}", file.display()))
        })?;
        let checked = DeviceExport::parse(bytes)
            .map_err(Failure::from)
            .and_then(|export| {
                run.report.session = Some(export.session_summary());
                export
                    .validate(self.mode(run), &stderr)
                    .map(|()| export)
                    .map_err(|problem| {
                        let problem = match (&problem, self.migration.mode) {
                            (ExportProblem::WrongMode { given, actual }, None) => format!(
                                "the device was detected as {given}, but its export says {actual}; \
                                 the detection read an incomplete answer. Run `resume` to detect \
                                 it again"
                            ),
                            _ => problem.to_string(),
                        };
                        Failure::new(format!("export refused, nothing was deleted: {problem}"))
                            .kind(FailureKind::ExportRefused)
                    })
            });
        let export = match checked {
            Ok(export) => export,
            Err(failure) => return Err(self.unfreeze_after(run, failure)),
        };
        let rewrite = self
            .migration
            .rewrite_for_target(run.journal.schedule_downlinks_before());
        let import_name = numbered("import", run.journal.count(Step::Exported));
        let summary = export.session_summary();
        self.progress.note(
            &run.report.device_id,
            &format!(
                "export complete: DevAddr {}, FCnt up {}, down {}",
                summary.dev_addr.as_deref().unwrap_or("-"),
                summary.last_f_cnt_up,
                summary.last_n_f_cnt_down
            ),
        );
        self.progress.note(
            &run.report.device_id,
            &format!(
                "rewrite {} into {}: {}",
                file.display(),
                run.journal.dir().join(&import_name).display(),
                rewrite.describe()
            ),
        );
        let mut import = rewrite.apply(&export.doc);
        if let Some(detected) = self.detected(run) {
            whole_device::merge_into_import(&mut import, &detected, self.mode(run));
            if let Some(note) = whole_device::rejoined(&detected, &export.doc, self.mode(run)) {
                self.progress.note(&run.report.device_id, &note);
                run.report.warnings.push(note);
            }
        }
        self.files
            .keep(&mut run.journal, &import_name, &pretty(&import))?;
        run.journal.append(
            Record::new(Step::Validated)
                .file(&import_name)
                .detail(rewrite.describe()),
        )?;
        Ok(())
    }

    /// After a failure before the delete: downlinks back on, keeping the first error.
    fn unfreeze_after(&self, run: &mut DeviceRun, mut failure: Failure) -> Failure {
        if let Err(also) = self.unfreeze(run) {
            failure.error.push_str(&format!(
                "; and downlinks stay off on the source: {}",
                also.error
            ));
        }
        failure
    }

    /// Turns downlinks back on at the source, if this migration turned them off.
    fn unfreeze(&self, run: &mut DeviceRun) -> Result<(), Failure> {
        if !run.journal.frozen() {
            return Ok(());
        }
        let before = run.journal.schedule_downlinks_before().flatten();
        let restore = self
            .migration
            .schedule_downlinks(&run.device(), before.unwrap_or(true));
        self.calls
            .run(&restore)
            .map_err(|e| Failure::call(&e, "turn downlinks back on at the source"))?;
        run.journal
            .append(Record::new(Step::Unfrozen).command(self.render(&restore), Some(0)))?;
        Ok(())
    }

    fn delete(&self, run: &mut DeviceRun) -> Result<(), Failure> {
        let device = run.device();
        let delete = self.migration.delete(&device);
        let line = self.render(&delete);
        // The slot first: the device is on the source while it waits.
        self.pacing.wait(Lane::SourceDelete, false, &|| false);
        let mut started = Record::new(Step::DeleteStarted).command(line.clone(), None);
        // A device reaches its delete only after the target's listing found no device with
        // its ID there (`batch::preflight`, before the first delete of `migrate`, and of
        // `resume` for devices that never started): what an import leaves there later is this
        // migration's.
        started.target_free = Some(true);
        run.journal.append(started)?;
        run.delete_started = Some(Instant::now());
        match self.teaching(Lane::SourceDelete, &delete) {
            Ok(_) => run
                .journal
                .append(Record::new(Step::DeletedFromSource).command(line, Some(0)))?,
            // Gone already: an earlier attempt whose answer was lost, or someone else. Either
            // way the saved export is the device now.
            Err(e) if e.kind == ErrorKind::NotFound => run.journal.append(
                Record::new(Step::DeletedFromSource)
                    .command(line, e.exit_code)
                    .detail("already absent from the source"),
            )?,
            // No answer: `next` confirms with the source.
            Err(e) if e.kind.is_transient() => {
                return Err(Failure::call(&e, "delete the device from the source"))
            }
            // `delete` runs AS, NS, JS, IS and stops at the first that fails: the servers
            // before it may have deleted the device (real-cli-audit.md D5). Ask every one.
            Err(e) => {
                let presence =
                    self.presence(&self.migration.presence_on_source(&device, self.mode(run)))?;
                match presence {
                    Presence::Whole => {
                        run.journal.append(
                            Record::new(Step::DeleteRefused)
                                .command(line, e.exit_code)
                                .detail(e.detail.clone()),
                        )?;
                        return Err(self.unfreeze_after(
                            run,
                            Failure::call(&e, "delete the device from the source"),
                        ));
                    }
                    Presence::Absent => run.journal.append(
                        Record::new(Step::DeletedFromSource)
                            .command(line, e.exit_code)
                            .detail(format!("{}; confirmed absent from the source", e.detail)),
                    )?,
                    // Finished by the next action.
                    Presence::Partial(missing) => run.journal.append(
                        Record::new(Step::DeleteIncomplete)
                            .command(line, e.exit_code)
                            .detail(format!(
                                "{}; deleted from the {} only",
                                e.detail,
                                servers_list(&missing)
                            )),
                    )?,
                }
            }
        }
        Ok(())
    }

    /// An unanswered delete: which servers of the source still hold the device?
    fn confirm_delete(&self, run: &mut DeviceRun) -> Result<(), Failure> {
        let device = run.device();
        let presence =
            self.presence(&self.migration.presence_on_source(&device, self.mode(run)))?;
        let record = match presence {
            // Still there: a new attempt starts from a fresh export.
            Presence::Whole => {
                Record::new(Step::DeleteRefused).detail("the device is still on the source")
            }
            Presence::Absent => {
                Record::new(Step::DeletedFromSource).detail("confirmed absent from the source")
            }
            Presence::Partial(missing) => Record::new(Step::DeleteIncomplete).detail(format!(
                "the {} no longer hold the device, the other servers of the source do",
                servers_list(&missing)
            )),
        };
        run.journal.append(record)?;
        Ok(())
    }

    /// A half-deleted device: delete the rest (the CLI skips the servers that lack it).
    fn finish_delete(&self, run: &mut DeviceRun) -> Result<(), Failure> {
        let delete = self.migration.delete(&run.device());
        let line = self.render(&delete);
        match self.calls.run(&delete) {
            Ok(_) => run.journal.append(
                Record::new(Step::DeletedFromSource)
                    .command(line, Some(0))
                    .detail("finished the delete of a half-deleted device"),
            )?,
            Err(e) if e.kind == ErrorKind::NotFound => run.journal.append(
                Record::new(Step::DeletedFromSource)
                    .command(line, e.exit_code)
                    .detail("already absent from the source"),
            )?,
            Err(e) => {
                let mut failure = Failure::call(
                    &e,
                    "finish deleting the half-deleted device from the source (its saved export is \
                     whole; `resume` tries again)",
                );
                failure.halt = Halt::Stuck;
                return Err(failure);
            }
        }
        Ok(())
    }

    /// One `create` on the target. An unanswered one is confirmed by `next` with a `get`; it is
    /// never repeated blindly.
    fn import(&self, run: &mut DeviceRun) -> Result<(), Failure> {
        let import_file = run.file(Step::Validated, "import document")?;
        let import = self.migration.import(&import_file);
        let line = self.render(&import);
        // Its slot was taken at the gate; a retry waits for the next one, before the others.
        let slot = run.create_slot.take().unwrap_or_else(|| {
            self.pacing.wait(Lane::TargetCreate, true, &|| false);
            Instant::now()
        });
        run.journal.append(
            Record::new(Step::ImportStarted)
                .command(line.clone(), None)
                .file(file_name(&import_file)),
        )?;
        let started = Instant::now();
        let result = self.calls.run(&import);
        self.pacing
            .answered_slot(Lane::TargetCreate, slot, started, &Answer::of(&result));
        if result.is_ok() {
            self.leave_window(run);
        }
        if let Some(started) = run.delete_started {
            run.report.downtime_ms = Some(started.elapsed().as_millis() as u64);
        }
        match result {
            Ok(output) => {
                let created = run
                    .journal
                    .dir()
                    .join(numbered("created", run.journal.count(Step::ImportStarted)));
                self.files
                    .write(&created, &output.stdout, Durability::Cached)?;
                run.journal.append(
                    Record::new(Step::Imported)
                        .command(line, Some(0))
                        .file(file_name(&created)),
                )?;
                Ok(())
            }
            Err(e) if e.kind == ErrorKind::AlreadyExists => {
                // Ours from an earlier attempt (whole, or half-created), or somebody else's?
                self.settle_target(run, &import_file)?;
                if run.journal.position().place == Place::Imported {
                    return Ok(());
                }
                if run.journal.position().place == Place::ExportOnly {
                    // Our half-created leftover was removed: `next` imports again.
                    return Ok(());
                }
                run.journal.append(
                    Record::new(Step::ImportRefused)
                        .command(line, e.exit_code)
                        .detail(e.detail.clone()),
                )?;
                Err(Failure::new(format!(
                    "the target already has a device with this ID or these EUIs ({}); it was not \
                     created by this migration and is left alone",
                    e.detail
                ))
                .kind(FailureKind::AlreadyExists))
            }
            Err(e) if e.kind.is_transient() => {
                Err(Failure::call(&e, "import the device into the target"))
            }
            // No error the servers give for a refusal: the answer may be lost. Ask the target
            // before anything else happens.
            Err(e) if e.kind == ErrorKind::Other => {
                self.confirm_import(run)?;
                match run.journal.position().place {
                    Place::Imported => Ok(()),
                    _ => Err(Failure::call(&e, "import the device into the target")),
                }
            }
            Err(e) => {
                run.journal.append(
                    Record::new(Step::ImportRefused)
                        .command(line, e.exit_code)
                        .detail(e.detail.clone()),
                )?;
                Err(Failure::call(&e, "import the device into the target"))
            }
        }
    }

    /// An unanswered import: ask the target.
    fn confirm_import(&self, run: &mut DeviceRun) -> Result<(), Failure> {
        let import_file = run.file(Step::ImportStarted, "import document")?;
        let another = self.settle_target(run, &import_file)?;
        if run.journal.position().place == Place::MaybeImported {
            run.journal
                .append(Record::new(Step::ImportRefused).detail(match another {
                    true => "the target holds another device with this ID, not ours; left alone",
                    false => "confirmed absent from the target",
                }))?;
        }
        Ok(())
    }

    /// After an import that may have reached the target: which of its servers hold the device,
    /// and is it ours? Records `imported` for our whole device; deletes our half-created one
    /// (the journal says the target had none before this migration's delete) and records
    /// `import-refused`; records nothing when the target has no such device, or another's
    /// (then it answers `true`).
    fn settle_target(&self, run: &mut DeviceRun, import_file: &Path) -> Result<bool, Failure> {
        let device = run.device();
        let mode = self.mode(run);
        match self.presence(&self.migration.presence_on_target(&device, mode))? {
            Presence::Absent => Ok(false),
            // The target had no such device before this migration's delete: a whole one now is
            // our import (verification compares its session next).
            Presence::Whole if run.journal.target_was_free() => {
                run.journal.append(
                    Record::new(Step::Imported).detail("found on the target after an import"),
                )?;
                Ok(false)
            }
            Presence::Whole => {
                let found = self.read_session(&self.migration.read_target(&device, mode))?;
                let ours = match &found {
                    Some(found) => self.differences(run, import_file, found)?.is_empty(),
                    None => false,
                };
                if ours {
                    run.journal.append(
                        Record::new(Step::Imported)
                            .detail("found on the target with this session after an import"),
                    )?;
                }
                Ok(!ours)
            }
            Presence::Partial(missing) if run.journal.target_was_free() => {
                // A `create` stopped between two servers (killed at the timeout): the IS
                // record and maybe more. Delete it and create it again.
                let delete = self.migration.delete_on_target(&device);
                match self.calls.run(&delete) {
                    Ok(_) => {}
                    Err(e) if e.kind == ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(Failure::call(
                            &e,
                            "delete the half-created device from the target",
                        ))
                    }
                }
                run.journal.append(
                    Record::new(Step::ImportRefused)
                        .command(self.render(&delete), Some(0))
                        .detail(format!(
                            "this migration's import left the device half-created on the \
                             target (missing from the {}); deleted it there",
                            servers_list(&missing)
                        )),
                )?;
                Ok(false)
            }
            Presence::Partial(missing) => Err(Failure::new(format!(
                "the target holds a half-created device `{device}` (missing from the {}) that \
                 this migration cannot tell it created; it is left alone. Remove it in the \
                 Console, then `resume`",
                servers_list(&missing)
            ))
            .stuck()),
        }
    }

    /// Compares the target's session with the import document: `create`'s answer when there is
    /// one, else a read-back.
    fn verify(&self, run: &mut DeviceRun) -> Result<(), Failure> {
        let import_file = run.file(Step::ImportStarted, "import document")?;
        let answered = run
            .journal
            .file_of(Step::Imported)
            .and_then(|f| self.files.read(&f).ok())
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok());
        let found = match answered {
            Some(found) => found,
            None => {
                let read = self.migration.read_target(&run.device(), self.mode(run));
                match self.read_session(&read)? {
                    Some(found) => found,
                    // The target confirmed the device, and now cannot find it: no answer to
                    // act on. The device stays where the journal says.
                    None => {
                        let device = run.device();
                        let error = match self.exists(&self.migration.exists_on_target(&device))? {
                            true => "the target confirmed the import, then answered not found when its session was read back, then found it again; the device was not verified. `resume` verifies it again".to_string(),
                            false => format!("the target confirmed the import and now answers not found: the device may have been deleted from the target. Check in the Console; its export is kept in {}, and `rollback` puts it back on the source", run.journal.dir().display()),
                        };
                        return Err(Failure::new(error).stuck());
                    }
                }
            }
        };
        let differences = self.differences(run, &import_file, &found)?;
        if !differences.is_empty() {
            return Err(Failure::new(format!(
                "the target's session differs from the export in {}",
                differences.join(", ")
            ))
            .kind(FailureKind::SessionDiffers));
        }
        run.journal.append(Record::new(Step::Verified))?;
        Ok(())
    }

    fn differences(
        &self,
        run: &DeviceRun,
        import_file: &Path,
        found: &Value,
    ) -> Result<Vec<String>, Failure> {
        let imported = self.document(import_file)?;
        Ok(session_differences(&imported, found, self.mode(run)))
    }

    fn document(&self, file: &Path) -> Result<Value, Failure> {
        let bytes = self
            .files
            .read(file)
            .map_err(|e| Failure::new(format!("could not read {}: {e}", file.display())))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Failure::new(format!("{} is damaged: {e}", file.display())))
    }

    /// Is the target's device the one this migration imported? Its session's identity is the
    /// import's (the counters may have advanced), or, on a target that had no such device
    /// before this migration's delete, it is the same OTAA device (DevEUI, JoinEUI, root keys)
    /// that joined again there since.
    fn is_ours(&self, run: &DeviceRun, import_file: &Path, found: &Value) -> Result<bool, Failure> {
        if self.differences(run, import_file, found)?.is_empty() {
            return Ok(true);
        }
        Ok(run.journal.target_was_free()
            && crate::device::rejoined(&self.document(import_file)?, found))
    }

    /// `get` with the session; `None` when the device is not there.
    /// A server that failed inside the `get` (rate limited, unavailable, or lacking the device)
    /// makes the answer incomplete: it is retried or refused, never compared, so that an
    /// incomplete answer never makes a device "not ours".
    fn read_session(&self, invocation: &Invocation) -> Result<Option<Value>, Failure> {
        match self.calls.run(invocation) {
            Ok(output) => Failure::servers_failed(
                &output.stderr,
                &[
                    Server::Identity,
                    Server::Network,
                    Server::Application,
                    Server::Join,
                ],
                "read the device's session back",
            )
            .and_then(|()| {
                serde_json::from_slice(&output.stdout)
                    .map(Some)
                    .map_err(|e| {
                        Failure::new(format!(
                            "ttn-lw-cli printed something that is not JSON ({e})"
                        ))
                    })
            }),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Failure::call(&e, "read the device back")),
        }
    }

    /// Writes the document that re-creates the device on the source, then starts the rollback.
    fn start_rollback(&self, run: &mut DeviceRun) -> Result<(), Failure> {
        let export_file = run.file(Step::Exported, "export to roll back from")?;
        let bytes = self.files.read(&export_file).map_err(|e| {
            Failure::new(format!(
                "could not read the saved export {}: {e}",
                export_file.display()
            ))
        })?;
        let export = DeviceExport::parse(bytes)?;
        let mut doc = self
            .migration
            .rewrite_for_source(run.journal.schedule_downlinks_before())
            .apply(&export.doc);
        // The delete took the whole device from the source: it comes back whole.
        if let Some(detected) = self.detected(run) {
            whole_device::merge_into_import(&mut doc, &detected, self.mode(run));
        }
        // A device that lived on the target since the import has advanced frame counters
        // there: the source gets that session back, not the stale export (which the device
        // would answer with counters the source takes for replays).
        let mut record = Record::new(Step::RollbackStarted);
        if let Some(current) = self.our_device_on_target(run)? {
            for field in ["session", "mac_state"] {
                if let Some(value) = current.get(field) {
                    if let Some(map) = doc.as_object_mut() {
                        map.insert(field.to_string(), value.clone());
                    }
                }
            }
            record = record.detail("with the session as the target holds it now");
        }
        let name = numbered("rollback", run.journal.count(Step::RollbackStarted) + 1);
        self.files.keep(&mut run.journal, &name, &pretty(&doc))?;
        run.journal.append(record.file(&name))?;
        Ok(())
    }

    /// The target's device when it is ours (the session's identity equals the import's), as
    /// read now.
    fn our_device_on_target(&self, run: &DeviceRun) -> Result<Option<Value>, Failure> {
        if !run.journal.may_be_on_target() {
            return Ok(None);
        }
        let Some(import_file) = run.journal.file_of(Step::ImportStarted) else {
            return Ok(None);
        };
        let mode = self.mode(run);
        let device = run.device();
        // Only a whole device has a session to carry; a half-created one is ours to delete
        // (`finish_rollback`).
        match self.presence(&self.migration.presence_on_target(&device, mode))? {
            Presence::Whole => {}
            // A not-found that contradicts a confirmed import is believed only when a second
            // read agrees: else the stale export would go back.
            Presence::Absent
                if run.journal.last(Step::Imported).is_some()
                    && self.exists(&self.migration.exists_on_target(&device))? =>
            {
                return Err(Failure::new(
                    "the target answered not found for the device, then found it; nothing was changed. Run the rollback again",
                )
                .stuck())
            }
            _ => return Ok(None),
        }
        let Some(found) = self.read_session(&self.migration.read_target(&device, mode))? else {
            return Err(Failure::new(
                "the target found the device, then answered not found when its session was read; nothing was changed. Run the rollback again",
            )
            .stuck());
        };
        if !self.is_ours(run, &import_file, &found)? {
            return Ok(None);
        }
        // It re-joined on the target and has sent no uplink since: its `session` is stale there
        // too (real-cli-audit.md D6), and the device already uses the pending keys.
        if found.get("pending_session").is_some() {
            return Err(Failure::new(
                "the device re-joined on the target and has sent no uplink since: its new keys are in pending_session and its session there is stale. Nothing was changed; wait for its next uplink, then run the rollback again",
            ));
        }
        Ok(Some(found))
    }

    /// Re-creates the device on the source from the saved export.
    fn recreate(&self, run: &mut DeviceRun) -> Result<(), Failure> {
        let file = run.file(Step::RollbackStarted, "rollback document")?;
        let create = self.migration.recreate_on_source(&file);
        match self.calls.run(&create) {
            Ok(_) => {}
            Err(e) if e.kind == ErrorKind::AlreadyExists || e.kind.is_transient() => {
                // Maybe an earlier attempt got there: compare what the source holds.
                let read = self.migration.read_source(&run.device(), self.mode(run));
                let same = match self.read_session(&read)? {
                    Some(found) => self.differences(run, &file, &found)?.is_empty(),
                    None => false,
                };
                if !same {
                    return Err(Failure::call(&e, "re-create the device on the source"));
                }
            }
            Err(e) => return Err(Failure::call(&e, "re-create the device on the source")),
        }
        run.journal
            .append(Record::new(Step::RecreatedOnSource).command(self.render(&create), Some(0)))?;
        Ok(())
    }

    /// Deletes the device from the target (already absent is fine); the record to append.
    fn delete_from_target(&self, device: &str) -> Result<Record, Failure> {
        let delete = self.migration.delete_on_target(device);
        match self.calls.run(&delete) {
            Ok(_) => {}
            Err(e) if e.kind == ErrorKind::NotFound => {}
            Err(e) => return Err(Failure::call(&e, "delete the device from the target")),
        }
        Ok(Record::new(Step::DeletedFromTarget).command(self.render(&delete), Some(0)))
    }

    /// Removes our copy from the target (never somebody else's device), then closes the rollback.
    fn finish_rollback(&self, run: &mut DeviceRun) -> Result<(), Failure> {
        let device = run.device();
        if run.journal.may_be_on_target() {
            let import_file = run.journal.file_of(Step::ImportStarted);
            let mode = self.mode(run);
            // What a `create` killed between two servers left (D7): ours when the target had
            // no such device before this migration's delete; never touched otherwise.
            if let Presence::Partial(missing) =
                self.presence(&self.migration.presence_on_target(&device, mode))?
            {
                if !run.journal.target_was_free() {
                    return Err(Failure::new(format!(
                        "the target holds a half-created device `{device}` (missing from the {}) \
                         that this migration cannot tell it created; nothing was deleted from \
                         the target. Remove it in the Console, then run the rollback again",
                        servers_list(&missing)
                    ))
                    .stuck());
                }
                let deleted = self.delete_from_target(&device)?;
                run.journal
                    .append(deleted.detail("this migration's half-created device"))?;
                run.journal.append(Record::new(Step::RolledBack))?;
                return Ok(());
            }
            let found = self.read_session(&self.migration.read_target(&device, mode))?;
            // A not-found that contradicts a confirmed import is believed only when a second
            // read agrees: else the device could stay on both deployments.
            if found.is_none()
                && run.journal.last(Step::Imported).is_some()
                && self.exists(&self.migration.exists_on_target(&device))?
            {
                return Err(Failure::new(
                    "the target answered not found for the device, then found it; nothing was deleted from the target. Run the rollback again",
                )
                .stuck());
            }
            let ours = match (&found, &import_file) {
                (Some(found), Some(file)) => self.is_ours(run, file, found)?,
                _ => false,
            };
            if ours {
                let deleted = self.delete_from_target(&device)?;
                run.journal.append(deleted)?;
            } else if found.is_some() {
                // Not ours: never touched. The device is back on the source; the run fails so
                // that the operator looks at the target.
                let detail = "a different device with this ID is on the target (another session); left alone";
                run.journal
                    .append(Record::new(Step::DeletedFromTarget).detail(detail))?;
                run.journal.append(Record::new(Step::RolledBack))?;
                return Err(Failure::new(format!(
                    "the device is back on the source, but {detail}: check it in the Console"
                )));
            } else {
                run.journal
                    .append(Record::new(Step::DeletedFromTarget).detail("not on the target"))?;
            }
        }
        run.journal.append(Record::new(Step::RolledBack))?;
        Ok(())
    }
}

/// `export.json`, then `export.2.json`, … for later attempts.
pub fn numbered(stem: &str, attempt: usize) -> String {
    if attempt <= 1 {
        format!("{stem}.json")
    } else {
        format!("{stem}.{attempt}.json")
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn pretty(doc: &Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(doc).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// Where a device is, for `resume`, `rollback` and `status`: its journal's position, or the
/// start. A journal that does not replay says "unknown", never "on the source".
pub fn position_of(work: &WorkDir, device: &str) -> anyhow::Result<Position> {
    if !work.has_journal(device) {
        return Ok(Position::START);
    }
    use anyhow::Context as _;
    Ok(work
        .journal(device)
        .with_context(|| {
            format!(
                "device `{device}` is at an unknown place (journal damaged); {}",
                NextStep::CheckConsole {
                    export_dir: work.device_dir(device)
                }
            )
        })?
        .position())
}

#[cfg(test)]
mod tests {
    //! The runner against a scripted ttn-lw-cli: two deployments in memory, and a fault at any
    //! call. Every fault at every call of a migration, in milliseconds; the subprocess matrix in
    //! `tests/resilience.rs` is the end-to-end check.

    use super::*;
    use crate::output::Progress;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Fault {
        /// A definite refusal: no effect.
        Refused,
        /// No answer: no effect.
        Unanswered,
        /// The effect happens; the answer is lost.
        LostAnswer,
        /// A read answers not found, whatever is there (a `delete` or `create` answering so
        /// is taken at its word, as from the real servers; this fault leaves them alone).
        NotFound,
    }

    const FAULTS: [Fault; 4] = [
        Fault::Refused,
        Fault::Unanswered,
        Fault::LostAnswer,
        Fault::NotFound,
    ];

    #[derive(Default)]
    struct World {
        source: HashMap<String, Value>,
        target: HashMap<String, Value>,
        calls: usize,
        /// Faults at the n-th call (0-based).
        faults: Vec<(usize, Fault)>,
        /// The device lives on the target: one uplink there before every call (its
        /// `last_f_cnt_up` rises), as a real Network Server sees it.
        living: bool,
    }

    /// ttn-lw-cli as a script: `get`, `set`, `delete`, `create` on two deployments.
    struct Scripted {
        world: Mutex<World>,
    }

    fn error(kind: ErrorKind, detail: &str) -> CliError {
        CliError {
            kind,
            command: String::new(),
            exit_code: Some(255),
            error: None,
            detail: detail.to_string(),
        }
    }

    impl Calls for Scripted {
        fn run(&self, invocation: &Invocation) -> Result<Output, CliError> {
            let mut world = self.world.lock().unwrap();
            let n = world.calls;
            world.calls += 1;
            if world.living {
                if let Some(session) = world
                    .target
                    .get_mut("dev-1")
                    .and_then(|d| d.get_mut("session"))
                {
                    let up = session["last_f_cnt_up"].as_u64().unwrap_or(0);
                    session["last_f_cnt_up"] = Value::from(up + 1);
                }
            }
            let fault = world
                .faults
                .iter()
                .find(|(at, _)| *at == n)
                .map(|(_, f)| *f);
            match fault {
                Some(Fault::Refused) => {
                    return Err(error(ErrorKind::PermissionDenied, "insufficient rights"))
                }
                Some(Fault::Unanswered) => {
                    return Err(error(ErrorKind::Transport, "connection reset"))
                }
                Some(Fault::NotFound) if invocation.args[1] == "get" => {
                    return Err(error(ErrorKind::NotFound, "not found"))
                }
                _ => {}
            }
            let on_target = invocation.config == Path::new("/cloud.yml");
            let verb = invocation.args[1].clone();
            let device = invocation
                .args
                .iter()
                .position(|a| a == "--device-id")
                .map(|i| invocation.args[i + 1].clone());
            let deployment = match on_target {
                true => &mut world.target,
                false => &mut world.source,
            };
            let result = match verb.as_str() {
                "get" => match deployment.get(device.as_deref().unwrap()) {
                    Some(doc) => Ok(serde_json::to_vec(doc).unwrap()),
                    None => Err(error(ErrorKind::NotFound, "not found")),
                },
                "set" => Ok(Vec::new()),
                "delete" => match deployment.remove(device.as_deref().unwrap()) {
                    Some(_) => Ok(Vec::new()),
                    None => Err(error(ErrorKind::NotFound, "not found")),
                },
                "create" => {
                    let crate::ttn_lw_cli::Stdin::File(file) = &invocation.stdin else {
                        panic!("create without a document")
                    };
                    let doc: Value = serde_json::from_slice(&fs::read(file).unwrap()).unwrap();
                    let id = doc["ids"]["device_id"].as_str().unwrap().to_string();
                    match deployment.entry(id) {
                        std::collections::hash_map::Entry::Occupied(_) => {
                            Err(error(ErrorKind::AlreadyExists, "id taken"))
                        }
                        std::collections::hash_map::Entry::Vacant(slot) => {
                            slot.insert(doc.clone());
                            Ok(serde_json::to_vec(&doc).unwrap())
                        }
                    }
                }
                other => panic!("unexpected call {other}"),
            };
            if fault == Some(Fault::LostAnswer) {
                return Err(error(ErrorKind::Transport, "answer lost"));
            }
            result.map(|stdout| Output {
                stdout,
                stderr: String::new(),
            })
        }

        fn render(&self, invocation: &Invocation) -> String {
            invocation.argv().join(" ")
        }
    }

    struct Silent;

    impl Progress for Silent {
        fn step(&self, _: &str, _: &str) {}
        fn retrying(&self, _: &str, _: &str, _: &str) {}
        fn finished(&self, _: &DeviceReport) {}
    }

    fn device() -> Value {
        let mut doc: Value =
            serde_json::from_str(include_str!("../fixtures/devices/otaa-eu1.json")).unwrap();
        doc["ids"]["device_id"] = Value::String("dev-1".into());
        doc["ids"]["application_ids"]["application_id"] = Value::String("app-1".into());
        doc
    }

    fn migration(freeze_downlinks: bool) -> Migration {
        Migration {
            freeze_downlinks,
            ..Migration::example()
        }
    }

    struct Case {
        calls: Scripted,
        migration: Migration,
        work: tempfile::TempDir,
        files: Files,
        interrupt: Interrupt,
    }

    impl Case {
        fn new(faults: &[(usize, Fault)], freeze_downlinks: bool) -> Case {
            Case::living(faults, freeze_downlinks, false)
        }

        fn living(faults: &[(usize, Fault)], freeze_downlinks: bool, living: bool) -> Case {
            let mut world = World {
                faults: faults.to_vec(),
                living,
                ..World::default()
            };
            world.source.insert("dev-1".into(), device());
            Case {
                calls: Scripted {
                    world: Mutex::new(world),
                },
                migration: migration(freeze_downlinks),
                work: tempfile::tempdir().unwrap(),
                files: Files::Disk,
                interrupt: Interrupt::default(),
            }
        }

        fn run(&self, goal: Goal, rollback_on_failure: bool) -> (DeviceReport, Position) {
            let pacing = Pacing::new(0);
            let runner = Runner {
                calls: &self.calls,
                migration: &self.migration,
                work: self.work.path(),
                files: &self.files,
                retry: RetryPolicy {
                    max_retries: 2,
                    base: Duration::ZERO,
                    cap: Duration::ZERO,
                },
                interrupt: &self.interrupt,
                pacing: &pacing,
                progress: &Silent,
                rollback_on_failure,
            };
            let report = runner.run_device("dev-1", goal);
            let position = WorkDir::journal_in(self.work.path(), "dev-1")
                .map(|j| j.position())
                .unwrap_or(Position::START);
            (report, position)
        }

        fn clear_fault(&self) {
            self.calls.world.lock().unwrap().faults.clear();
        }

        fn calls(&self) -> usize {
            self.calls.world.lock().unwrap().calls
        }

        /// Where the device is: (on the source, on the target).
        fn whereabouts(&self) -> (bool, bool) {
            let world = self.calls.world.lock().unwrap();
            (
                world.source.contains_key("dev-1"),
                world.target.contains_key("dev-1"),
            )
        }
    }

    /// The journal's place is consistent with where the device really is.
    fn truthful(place: Place, on_source: bool, on_target: bool) -> bool {
        match place {
            Place::OnSource
            | Place::Detected
            | Place::Frozen
            | Place::Exported
            | Place::Validated
            | Place::RolledBack => on_source && !on_target,
            Place::MaybeDeleted | Place::PartlyDeleted => !on_target,
            Place::ExportOnly => !on_source && !on_target,
            Place::MaybeImported => !on_source,
            Place::Imported | Place::Migrated => on_target && !on_source,
            Place::MaybeRecreated => true,
            Place::Recreated => on_source,
        }
    }

    #[test]
    fn a_clean_run_migrates_with_four_calls() {
        let case = Case::new(&[], false);
        let (report, position) = case.run(Goal::Migrate, true);
        assert_eq!(report.outcome, Outcome::Migrated, "{report:?}");
        assert_eq!(position.place, Place::Migrated);
        assert_eq!(case.whereabouts(), (false, true));
        // Detect, export, delete, create.
        assert_eq!(case.calls(), 4);
        let labels: Vec<&str> = report.steps.iter().map(|s| s.step).collect();
        assert_eq!(
            labels,
            [
                "detect",
                "export",
                "check export",
                "delete from source",
                "import into target",
                "verify"
            ]
        );
    }

    /// The session kept its identity, and its uplink counter never went back (a living device
    /// raises it on the target).
    fn same_session(found: &Value, original: &Value) -> bool {
        let identity = |doc: &Value| {
            let mut session = doc["session"].clone();
            session
                .as_object_mut()
                .unwrap()
                .shift_remove("last_f_cnt_up");
            session
        };
        let up = |doc: &Value| doc["session"]["last_f_cnt_up"].as_u64().unwrap_or(0);
        identity(found) == identity(original) && up(found) >= up(original)
    }

    /// Every fault at every call, with and without rollback-on-failure and downlink freezing,
    /// with a device that sends uplinks on the target and one that does not: the device is
    /// never lost or doubled, the run says truthfully where it is, and a second run without the
    /// fault (`resume`) finishes it: migrated, or back on the source, with its session.
    #[test]
    fn every_fault_at_every_call_leaves_a_truthful_journal_and_resume_finishes() {
        let mut cases = 0;
        for (freeze, living) in [(false, false), (true, false), (false, true), (true, true)] {
            let clean = Case::living(&[], freeze, living);
            clean.run(Goal::Migrate, true);
            let calls = clean.calls();
            for at in 0..calls + 3 {
                for fault in FAULTS {
                    for rollback_on_failure in [false, true] {
                        cases += 1;
                        let label = format!(
                            "{fault:?} at call {at}, freeze {freeze}, rollback {rollback_on_failure}, living {living}"
                        );
                        let case = Case::living(&[(at, fault)], freeze, living);
                        let original = device();
                        let (first, position) = case.run(Goal::Migrate, rollback_on_failure);
                        let (on_source, on_target) = case.whereabouts();
                        assert!(
                            on_source || on_target || position.place == Place::ExportOnly,
                            "{label}: lost with the journal at {position:?}"
                        );
                        assert!(
                            !(on_source && on_target) || position.place == Place::Recreated,
                            "{label}: on both deployments at {position:?}"
                        );
                        assert!(
                            truthful(position.place, on_source, on_target),
                            "{label}: journal says {position:?}, source {on_source}, target {on_target}"
                        );
                        // A device the source answered "not found" for is said to be so.
                        if first.error_kind == Some(FailureKind::NotFound) && position.untouched() {
                            assert_eq!(
                                first.location, "not found in application `app-1` on the source",
                                "{label}"
                            );
                        } else {
                            assert_eq!(first.location, position.describe(), "{label}");
                        }
                        if first.outcome == Outcome::Failed {
                            assert!(first.next_action.is_some(), "{label}: no next step");
                        }

                        case.clear_fault();
                        let (second, position) = case.run(Goal::Migrate, rollback_on_failure);
                        let (on_source, on_target) = case.whereabouts();
                        match position.place {
                            Place::Migrated => {
                                assert_eq!((on_source, on_target), (false, true), "{label}")
                            }
                            Place::RolledBack => {
                                assert_eq!((on_source, on_target), (true, false), "{label}")
                            }
                            other => panic!("{label}: resume ended at {other:?}: {second:?}"),
                        }
                        assert!(!position.frozen, "{label}: downlinks left off");
                        let world = case.calls.world.lock().unwrap();
                        let found = world
                            .source
                            .get("dev-1")
                            .or(world.target.get("dev-1"))
                            .unwrap();
                        assert!(same_session(found, &original), "{label}: session changed");
                        if !living {
                            assert_eq!(found["session"], original["session"], "{label}");
                        }
                    }
                }
            }
        }
        assert!(cases > 100, "{cases}");
    }

    /// `rollback` of a migrated device with every fault at every call: never lost, never on
    /// both deployments once done, and a second `rollback` finishes it.
    #[test]
    fn every_fault_during_a_rollback_and_a_second_rollback_finishes() {
        for living in [false, true] {
            let clean = Case::living(&[], false, living);
            clean.run(Goal::Migrate, true);
            let migrated_calls = clean.calls();
            clean.run(Goal::Rollback, false);
            let rollback_calls = clean.calls() - migrated_calls;
            assert_eq!(clean.whereabouts(), (true, false));
            for at in migrated_calls..migrated_calls + rollback_calls + 2 {
                for fault in FAULTS {
                    let label = format!("{fault:?} at call {at}, living {living}");
                    let case = Case::living(&[(at, fault)], false, living);
                    let (migrated, _) = case.run(Goal::Migrate, true);
                    assert_eq!(migrated.outcome, Outcome::Migrated, "{label}");
                    let (first, position) = case.run(Goal::Rollback, false);
                    let (on_source, on_target) = case.whereabouts();
                    assert!(on_source || on_target, "{label}: lost");
                    assert!(
                        truthful(position.place, on_source, on_target),
                        "{label}: journal says {position:?}, source {on_source}, target {on_target}"
                    );
                    assert_eq!(first.location, position.describe(), "{label}");
                    case.clear_fault();
                    let (second, position) = case.run(Goal::Rollback, false);
                    assert_eq!(position.place, Place::RolledBack, "{label}: {second:?}");
                    assert_eq!(case.whereabouts(), (true, false), "{label}");
                    let world = case.calls.world.lock().unwrap();
                    let back = &world.source["dev-1"];
                    assert!(same_session(back, &device()), "{label}: session changed");
                    // It lived on the target: the source gets the advanced counter back.
                    let up = |doc: &Value| doc["session"]["last_f_cnt_up"].as_u64().unwrap();
                    assert_eq!(up(back) > up(&device()), living, "{label}");
                }
            }
        }
    }

    /// Progress labels come from the action: the read-backs of a rollback are "roll back".
    #[test]
    fn a_rollback_shows_as_rollback() {
        let case = Case::new(&[], false);
        case.run(Goal::Migrate, true);
        let before = case.calls();
        let (report, position) = case.run(Goal::Rollback, false);
        assert_eq!(report.outcome, Outcome::RolledBack);
        assert_eq!(position.place, Place::RolledBack);
        // Which servers of the target hold it, its current session; re-create; the same two
        // reads again, and delete it there.
        assert_eq!(case.calls() - before, 6);
        let labels: Vec<&str> = report.steps.iter().map(|s| s.step).collect();
        assert_eq!(labels, ["roll back"]);
    }

    /// A journal that does not replay: the device is at an unknown place, never "on the
    /// source", and nothing runs.
    #[test]
    fn a_damaged_journal_is_unknown_and_nothing_runs() {
        let case = Case::new(&[], false);
        let dir = case.work.path().join("dev-1");
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("journal.json"),
            r#"{"format":2,"records":[{"step":"imported","at":"x"}]}"#,
        )
        .unwrap();
        let (report, _) = case.run(Goal::Migrate, true);
        assert_eq!(report.outcome, Outcome::Failed);
        assert_eq!(report.location, "unknown: journal damaged");
        assert_eq!(
            report.next_action,
            Some(NextStep::CheckConsole { export_dir: dir })
        );
        assert!(report.error.unwrap().contains("is damaged"));
        assert_eq!(case.calls(), 0);
    }

    /// A failed call's advice is for a failure that stays; a retry's line leaves it out. A
    /// refusal for the rate is an answer, not silence.
    #[test]
    fn a_failed_calls_advice_names_what_happened_and_stays_off_a_retry() {
        let limited = Failure::call(&error(ErrorKind::RateLimited, "rate limit"), "import");
        assert!(limited
            .error
            .contains("refused the call for its rate limit"));
        assert!(limited.error.contains("retry later with `resume`"));
        assert_eq!(
            limited.brief.as_deref(),
            Some("could not import: rate limit")
        );
        let silent = Failure::call(&error(ErrorKind::Transport, "EOF"), "import");
        assert!(silent.error.contains("did not answer"));
        assert_eq!(silent.brief.as_deref(), Some("could not import: EOF"));
    }

    /// `create`'s answer is kept without a sync (`Durability::Cached`): after a crash it may be
    /// empty while a durable record names it. Verification then reads the session back from the
    /// target instead.
    #[test]
    fn an_empty_create_answer_after_a_crash_is_verified_by_a_read_back() {
        let case = Case::new(&[], false);
        let (first, _) = case.run(Goal::Migrate, true);
        assert_eq!(first.outcome, Outcome::Migrated, "{first:?}");
        // The journal as a failed verification leaves it, with the answer lost to a crash.
        let dir = case.work.path().join("dev-1");
        let path = dir.join("journal.json");
        let mut file: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        let records = file["records"].as_array_mut().unwrap();
        assert_eq!(records.pop().unwrap()["step"], "verified");
        records.push(serde_json::json!({"step": "failed", "at": "2026-12-01T07:00:00Z"}));
        fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
        fs::write(dir.join("created.json"), b"").unwrap();
        let calls = case.calls();

        let (second, position) = case.run(Goal::Migrate, true);
        assert_eq!(second.outcome, Outcome::Migrated, "{second:?}");
        assert_eq!(position.place, Place::Migrated);
        // One call: the read-back of the session from the target.
        assert_eq!(case.calls(), calls + 1);
        assert_eq!(case.whereabouts(), (false, true));
    }

    /// Issue 9: `create`'s answer is lost, the `get` confirms the import, the read-back answers
    /// not found. The device is on the target, and the journal says so.
    #[test]
    fn a_not_found_read_back_after_a_confirmed_import_stays_on_the_target() {
        // Calls: detect 0, export 1, delete 2, create 3 (lost), confirm 4, read-back 5.
        let case = Case::new(&[(3, Fault::LostAnswer), (5, Fault::NotFound)], false);
        let (first, position) = case.run(Goal::Migrate, true);
        assert_eq!(first.outcome, Outcome::Failed);
        assert_eq!(position.place, Place::Imported);
        assert_eq!(first.location, "on the target (not yet verified)");
        assert!(matches!(
            first.next_action,
            Some(NextStep::ResumeOrRollback { .. })
        ));
        assert_eq!(case.whereabouts(), (false, true));
        let (second, position) = case.run(Goal::Migrate, true);
        assert_eq!(second.outcome, Outcome::Migrated, "{second:?}");
        assert_eq!(position.place, Place::Migrated);
    }
}
