//! Carries devices through their steps, one journal record at a time.
//!
//! One state machine serves `migrate`, `resume` and `rollback`: it reads where the journal says
//! the device is, does the next step, records it durably, and repeats until the device is
//! migrated, back on the source, or stuck with a failure that says where it is. Whatever
//! fails, the saved export is never removed, and the device is deleted from a deployment only
//! once it is safe somewhere else.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::device::{session_differences, ActivationMode, DeviceExport, SessionSummary};
use crate::interrupt::Interrupt;
use crate::journal::{write_durably, Journal, Position, Record, Step, WorkDir};
use crate::output::Progress;
use crate::plan::{Migration, MigrationStep};
use crate::ttn_lw_cli::{CliError, ErrorKind, Invocation, Output, TtnLwCli};

/// Capped exponential backoff for transient failures of steps that are safe to repeat.
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

/// What the run should achieve for a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    Migrate,
    Rollback,
}

/// How a device's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Migrated,
    RolledBack,
    /// Not migrated: see `error` and `location`.
    Failed,
    /// Present in the target application before anything ran; left alone.
    Conflict,
    /// Nothing to do (already done, or never left the source).
    Skipped,
    /// Stopped by Ctrl-C before its delete; `resume` continues it.
    Interrupted,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepTiming {
    pub step: &'static str,
    pub millis: u64,
}

/// One device's result: what the summary, the report file and the exit status are made of.
/// Never holds keys.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceReport {
    pub device_id: String,
    pub application_id: String,
    pub target_application_id: String,
    pub mode: Option<ActivationMode>,
    pub session: Option<SessionSummary>,
    pub outcome: Outcome,
    /// Where the device is now, in plain words.
    pub location: String,
    pub error: Option<String>,
    pub next_action: Option<String>,
    pub steps: Vec<StepTiming>,
    /// From the start of the delete on the source to the end of the import on the target.
    pub downtime_ms: Option<u64>,
    /// `resume` would carry the device further without the operator fixing anything first.
    #[serde(skip)]
    pub resumable: bool,
}

impl DeviceReport {
    pub fn new(device_id: &str, migration: &Migration) -> DeviceReport {
        DeviceReport {
            device_id: device_id.to_string(),
            application_id: migration.application_id.clone(),
            target_application_id: migration.target_application_id.clone(),
            mode: None,
            session: None,
            outcome: Outcome::Failed,
            location: Position::OnSource.describe().to_string(),
            error: None,
            next_action: None,
            steps: Vec::new(),
            downtime_ms: None,
            resumable: false,
        }
    }

    pub fn is_success(&self) -> bool {
        matches!(
            self.outcome,
            Outcome::Migrated | Outcome::RolledBack | Outcome::Skipped
        )
    }
}

/// A step failed; the device is where the journal says.
struct Stop {
    error: String,
    next_action: Option<String>,
}

impl Stop {
    fn new(error: impl Into<String>) -> Stop {
        Stop {
            error: error.into(),
            next_action: None,
        }
    }

    fn then(mut self, next_action: impl Into<String>) -> Stop {
        self.next_action = Some(next_action.into());
        self
    }
}

impl From<anyhow::Error> for Stop {
    fn from(e: anyhow::Error) -> Stop {
        Stop::new(format!("{e:#}"))
    }
}

pub struct Runner<'a> {
    pub cli: &'a TtnLwCli,
    pub migration: &'a Migration,
    pub work: &'a WorkDir,
    pub retry: RetryPolicy,
    pub interrupt: &'a Interrupt,
    pub progress: &'a dyn Progress,
    /// Put a device back on the source when the target refuses it for good.
    pub rollback_on_failure: bool,
}

/// The state of one device while it runs.
struct DeviceRun {
    journal: Journal,
    report: DeviceReport,
    delete_started: Option<Instant>,
}

impl DeviceRun {
    /// The file the journal's last `step` record wrote.
    fn file(&self, step: Step, what: &str) -> Result<std::path::PathBuf, Stop> {
        self.journal
            .file_of(step)
            .ok_or_else(|| Stop::new(format!("the journal names no {what}")))
    }
}

impl Runner<'_> {
    /// Runs one device towards `goal` and reports where it ended.
    pub fn run_device(&self, device: &str, goal: Goal) -> DeviceReport {
        let mut report = DeviceReport::new(device, self.migration);
        let journal = match self.work.journal(device) {
            Ok(journal) => journal,
            Err(e) => {
                report.error = Some(format!("{e:#}"));
                report.location = "unknown: its journal cannot be read".into();
                report.next_action = Some(
                    "check the device in the Console; the work directory still holds its export"
                        .into(),
                );
                self.progress.finished(&report);
                return report;
            }
        };
        report.mode = journal.mode().or(self.migration.mode);
        let mut run = DeviceRun {
            journal,
            report,
            delete_started: None,
        };
        if let Some(export) = run.journal.export_file() {
            if let Ok(bytes) = fs::read(&export) {
                if let Ok(export) = DeviceExport::parse(bytes) {
                    run.report.session = Some(export.session_summary());
                }
            }
        }
        let result = self.drive(&mut run, goal);
        let position = run.journal.position();
        run.report.location = position.describe().to_string();
        run.report.resumable = !position.is_final() && position != Position::OnSource
            || matches!(result, Ok(Outcome::Interrupted));
        match result {
            Ok(outcome) => run.report.outcome = outcome,
            Err(stop) => {
                let _ = run
                    .journal
                    .append(Record::new(Step::Failed).detail(stop.error.clone()));
                run.report.outcome = Outcome::Failed;
                run.report.error = Some(stop.error);
                run.report.next_action = stop.next_action.or_else(|| {
                    Some(match position {
                        Position::OnSource => "fix the cause above, then run `resume` on the work directory".into(),
                        _ => format!(
                            "run `ttn-session-migrate resume {}` to finish, or `ttn-session-migrate rollback {} {}` to put it back on the source",
                            self.work.path().display(),
                            self.work.path().display(),
                            device
                        ),
                    })
                });
            }
        }
        self.progress.finished(&run.report);
        run.report
    }

    fn drive(&self, run: &mut DeviceRun, mut goal: Goal) -> Result<Outcome, Stop> {
        // An import refused for good, rolled back: the device failed to migrate.
        let mut failure: Option<Stop> = None;
        loop {
            let position = run.journal.position();
            if matches!(position, Position::MaybeRecreated | Position::Recreated) {
                goal = Goal::Rollback;
            }
            match (goal, position) {
                (Goal::Migrate, Position::Migrated) => {
                    return Ok(if run.report.steps.is_empty() {
                        Outcome::Skipped
                    } else {
                        Outcome::Migrated
                    })
                }
                (_, Position::RolledBack) => {
                    return match failure {
                        Some(stop) => Err(stop),
                        None => Ok(if run.report.steps.is_empty() {
                            Outcome::Skipped
                        } else {
                            Outcome::RolledBack
                        }),
                    }
                }
                (Goal::Migrate, Position::OnSource) => {
                    if self.interrupt.requested() {
                        return Ok(Outcome::Interrupted);
                    }
                    self.export(run)?;
                    if self.interrupt.requested() {
                        self.unfreeze(run)?;
                        return Ok(Outcome::Interrupted);
                    }
                    self.delete(run)?;
                }
                (Goal::Rollback, Position::OnSource) => {
                    self.unfreeze(run)?;
                    return Ok(Outcome::Skipped);
                }
                (_, Position::MaybeDeleted) => {
                    let exists = self.exists(
                        run,
                        MigrationStep::Delete,
                        &self.migration.exists_on_source(&run.report.device_id),
                    )?;
                    match (exists, goal) {
                        (false, _) => run.journal.append(
                            Record::new(Step::DeletedFromSource)
                                .detail("confirmed absent from the source"),
                        )?,
                        (true, Goal::Migrate) => self.delete(run)?,
                        (true, Goal::Rollback) => run.journal.append(
                            Record::new(Step::DeleteRefused)
                                .detail("the device is still on the source"),
                        )?,
                    }
                }
                (Goal::Migrate, Position::ExportOnly) => {
                    if let Err(stop) = self.import(run) {
                        if run.journal.position() == Position::ExportOnly
                            && self.rollback_on_failure
                        {
                            run.journal
                                .append(Record::new(Step::Failed).detail(stop.error.clone()))?;
                            failure = Some(
                                Stop::new(format!("{}; rolled back to the source", stop.error))
                                    .then(
                                    "fix the cause on the target, then migrate the device again",
                                ),
                            );
                            goal = Goal::Rollback;
                            continue;
                        }
                        return Err(stop);
                    }
                }
                (Goal::Migrate, Position::MaybeImported) => {
                    let device = run.report.device_id.clone();
                    let exists = self.exists(
                        run,
                        MigrationStep::Import,
                        &self.migration.exists_on_target(&device),
                    )?;
                    if exists {
                        run.journal.append(
                            Record::new(Step::Imported)
                                .detail("found on the target after an unanswered import"),
                        )?;
                    } else {
                        run.journal.append(
                            Record::new(Step::ImportRefused)
                                .detail("confirmed absent from the target"),
                        )?;
                    }
                }
                (Goal::Migrate, Position::Imported) => {
                    if let Err(stop) = self.verify(run) {
                        if self.rollback_on_failure {
                            run.journal
                                .append(Record::new(Step::Failed).detail(stop.error.clone()))?;
                            failure = Some(Stop::new(format!(
                                "{}; rolled back to the source",
                                stop.error
                            )));
                            goal = Goal::Rollback;
                            continue;
                        }
                        return Err(stop);
                    }
                }
                (
                    Goal::Rollback,
                    Position::ExportOnly
                    | Position::MaybeImported
                    | Position::Imported
                    | Position::Migrated,
                ) => {
                    self.start_rollback(run)?;
                }
                (_, Position::MaybeRecreated) => self.recreate(run)?,
                (_, Position::Recreated) => self.finish_rollback(run)?,
            }
        }
    }

    /// Runs a call, retrying transient failures when `repeatable`.
    fn call(
        &self,
        run: &mut DeviceRun,
        step: MigrationStep,
        invocation: &Invocation,
        repeatable: bool,
    ) -> Result<Output, CliError> {
        self.progress.step(&run.report.device_id, step);
        let started = Instant::now();
        let mut attempt = 0;
        let result = loop {
            match self.cli.run(invocation) {
                Err(e)
                    if repeatable && e.kind.is_transient() && attempt < self.retry.max_retries =>
                {
                    self.progress.retrying(&run.report.device_id, step, &e);
                    std::thread::sleep(self.retry.delay(attempt));
                    attempt += 1;
                }
                other => break other,
            }
        };
        let millis = started.elapsed().as_millis() as u64;
        match run.report.steps.iter_mut().find(|s| s.step == step.name()) {
            Some(timing) => timing.millis += millis,
            None => run.report.steps.push(StepTiming {
                step: step.name(),
                millis,
            }),
        }
        result
    }

    /// Does a device exist? Not found is an answer; anything else that fails is a stop.
    fn exists(
        &self,
        run: &mut DeviceRun,
        step: MigrationStep,
        invocation: &Invocation,
    ) -> Result<bool, Stop> {
        match self.call(run, step, invocation, true) {
            Ok(_) => Ok(true),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Stop::new(format!(
                "could not tell whether the device exists: {}",
                e.detail
            ))),
        }
    }

    fn render(&self, invocation: &Invocation) -> String {
        self.cli.render(invocation)
    }

    /// Detect, freeze, export, validate, rewrite. Nothing here deletes.
    fn export(&self, run: &mut DeviceRun) -> Result<(), Stop> {
        let device = run.report.device_id.clone();
        let mut mode = self.migration.mode;
        let mut schedule_downlinks_before = None;
        if mode.is_none() || self.migration.freeze_downlinks {
            let detect = self.migration.detect(&device);
            let output = self
                .call(run, MigrationStep::Detect, &detect, true)
                .map_err(|e| explain(&e, "detect the activation mode"))?;
            let doc: Value = serde_json::from_slice(&output.stdout).map_err(|e| {
                Stop::new(format!(
                    "ttn-lw-cli printed something that is not JSON ({e})"
                ))
            })?;
            if let Some(problem) = crate::device::wrong_cluster(&doc, &output.stderr) {
                return Err(Stop::new(format!(
                    "export refused, nothing was deleted: {problem}"
                )));
            }
            let detected = ActivationMode::of(&doc);
            mode = Some(mode.unwrap_or(detected));
            schedule_downlinks_before = Some(
                crate::device::at(&doc, "mac_settings.schedule_downlinks").and_then(Value::as_bool),
            );
            let mut record = Record::new(Step::Detected).command(self.render(&detect), Some(0));
            record.mode = mode;
            run.journal.append(record)?;
        }
        let mode = mode.expect("set above");
        run.report.mode = Some(mode);

        if self.migration.freeze_downlinks && !run.journal.frozen() {
            // Recorded first, with the setting to restore: a crash during the `set` then
            // leaves a journal that restores the original rather than one that forgets it.
            let freeze = self.migration.schedule_downlinks(&device, false);
            let mut record = Record::new(Step::Frozen).command(self.render(&freeze), None);
            record.schedule_downlinks_before = schedule_downlinks_before;
            run.journal.append(record)?;
            if let Err(e) = self.call(run, MigrationStep::Freeze, &freeze, true) {
                return Err(
                    self.unfreeze_after(run, explain(&e, "turn off downlinks on the source"))
                );
            }
        }
        self.save_export(run, mode)
            .map_err(|stop| self.unfreeze_after(run, stop))
    }

    /// The export itself: saved unchanged, validated, rewritten into the import document.
    fn save_export(&self, run: &mut DeviceRun, mode: ActivationMode) -> Result<(), Stop> {
        let device = run.report.device_id.clone();
        let attempt = run.journal.count(Step::Exported) + 1;
        let file_name = numbered("export", attempt);
        let file = run.journal.dir().join(&file_name);
        let export_call = self.migration.export(&device, mode, &file);
        let output = self
            .call(run, MigrationStep::Export, &export_call, true)
            .map_err(|e| explain(&e, "export the device"))?;
        // Saved unchanged before anything else happens: from here on it is the only copy
        // that the tool controls.
        write_durably(&file, &output.stdout)
            .map_err(|e| Stop::new(format!("{e:#}; nothing was deleted")))?;
        let mut record = Record::new(Step::Exported)
            .command(self.render(&export_call), Some(0))
            .file(&file_name);
        record.mode = Some(mode);
        run.journal.append(record)?;

        let export = DeviceExport::parse(output.stdout)?;
        run.report.session = Some(export.session_summary());
        if let Err(problem) = export.validate(mode, &output.stderr) {
            return Err(
                Stop::new(format!("export refused, nothing was deleted: {problem}"))
                    .then("fix the cause named above, then run `resume` on the work directory"),
            );
        }
        let rewrite = self
            .migration
            .rewrite_for_target(run.journal.schedule_downlinks_before());
        let import_doc = rewrite.apply(&export.doc);
        let import_name = numbered("import", attempt);
        write_durably(&run.journal.dir().join(&import_name), &pretty(&import_doc))?;
        run.journal.append(
            Record::new(Step::Validated)
                .file(&import_name)
                .detail(rewrite.describe()),
        )?;
        Ok(())
    }

    /// After a failure before the delete: turns downlinks back on, keeping the first error.
    fn unfreeze_after(&self, run: &mut DeviceRun, mut stop: Stop) -> Stop {
        if let Err(also) = self.unfreeze(run) {
            stop.error.push_str(&format!(
                "; and downlinks stay off on the source: {}",
                also.error
            ));
        }
        stop
    }

    /// Turns downlinks back on at the source, if this run turned them off.
    fn unfreeze(&self, run: &mut DeviceRun) -> Result<(), Stop> {
        let Some(before) = run.journal.schedule_downlinks_before() else {
            return Ok(());
        };
        if !run.journal.frozen() {
            return Ok(());
        }
        let restore = self
            .migration
            .schedule_downlinks(&run.report.device_id, before.unwrap_or(true));
        self.call(run, MigrationStep::Freeze, &restore, true)
            .map_err(|e| explain(&e, "turn downlinks back on at the source"))?;
        run.journal
            .append(Record::new(Step::Unfrozen).command(self.render(&restore), Some(0)))?;
        Ok(())
    }

    fn delete(&self, run: &mut DeviceRun) -> Result<(), Stop> {
        let delete = self.migration.delete(&run.report.device_id);
        run.journal
            .append(Record::new(Step::DeleteStarted).command(self.render(&delete), None))?;
        run.delete_started = Some(Instant::now());
        match self.call(run, MigrationStep::Delete, &delete, true) {
            Ok(_) => run.journal.append(
                Record::new(Step::DeletedFromSource).command(self.render(&delete), Some(0)),
            )?,
            // Gone already: an earlier attempt whose answer was lost, or someone else.
            // Either way the saved export is the device now.
            Err(e) if e.kind == ErrorKind::NotFound => run.journal.append(
                Record::new(Step::DeletedFromSource)
                    .command(self.render(&delete), e.exit_code)
                    .detail("already absent from the source"),
            )?,
            Err(e) if !e.kind.is_transient() => {
                run.journal.append(
                    Record::new(Step::DeleteRefused)
                        .command(self.render(&delete), e.exit_code)
                        .detail(e.detail.clone()),
                )?;
                self.unfreeze(run)?;
                return Err(explain(&e, "delete the device from the source"));
            }
            Err(e) => {
                return Err(Stop::new(format!(
                    "the delete on the source did not complete ({}); the device may be partly deleted, and its export is safe in {}",
                    e.detail,
                    run.journal.dir().display()
                )))
            }
        }
        Ok(())
    }

    /// One `create` on the target. Its outcome is checked with a `get` when the answer was
    /// lost; it is never repeated blindly.
    fn import(&self, run: &mut DeviceRun) -> Result<(), Stop> {
        let device = run.report.device_id.clone();
        let import_file = run.file(Step::Validated, "import document")?;
        let import = self.migration.import(&import_file);
        run.journal.append(
            Record::new(Step::ImportStarted)
                .command(self.render(&import), None)
                .file(file_name(&import_file)),
        )?;
        let result = self.call(run, MigrationStep::Import, &import, false);
        if let Some(started) = run.delete_started {
            run.report.downtime_ms = Some(started.elapsed().as_millis() as u64);
        }
        match result {
            Ok(output) => {
                let created = run
                    .journal
                    .dir()
                    .join(numbered("created", run.journal.count(Step::ImportStarted)));
                write_durably(&created, &output.stdout)?;
                run.journal.append(
                    Record::new(Step::Imported)
                        .command(self.render(&import), Some(0))
                        .file(file_name(&created)),
                )?;
                Ok(())
            }
            Err(e) if e.kind == ErrorKind::AlreadyExists => {
                // Ours from an earlier attempt, or somebody else's device?
                match self
                    .read_session(run, &self.migration.read_target(&device, self.mode(run)))?
                {
                    Some(found) if self.differences(run, &import_file, &found)?.is_empty() => {
                        run.journal.append(
                            Record::new(Step::Imported)
                                .command(self.render(&import), e.exit_code)
                                .detail("the target already holds this session"),
                        )?;
                        Ok(())
                    }
                    _ => {
                        run.journal.append(
                            Record::new(Step::ImportRefused)
                                .command(self.render(&import), e.exit_code)
                                .detail(e.detail.clone()),
                        )?;
                        Err(Stop::new(format!(
                            "the target already has a device with this ID or these EUIs ({})",
                            e.detail
                        )))
                    }
                }
            }
            Err(e) if e.kind.is_transient() => {
                // The answer was lost: ask the target before doing anything else.
                let exists = self.exists(
                    run,
                    MigrationStep::Import,
                    &self.migration.exists_on_target(&device),
                )?;
                if exists {
                    run.journal.append(
                        Record::new(Step::Imported)
                            .command(self.render(&import), e.exit_code)
                            .detail(format!("found on the target after: {}", e.detail)),
                    )?;
                } else {
                    run.journal.append(
                        Record::new(Step::ImportRefused)
                            .command(self.render(&import), e.exit_code)
                            .detail(format!("absent from the target after: {}", e.detail)),
                    )?;
                    if run.journal.count(Step::ImportStarted) as u32 > self.retry.max_retries {
                        return Err(Stop::new(format!("the import kept failing: {}", e.detail)).then(format!(
                            "run `ttn-session-migrate resume {}` when the target is reachable, or `rollback` to put the device back on the source",
                            self.work.path().display()
                        )));
                    }
                    std::thread::sleep(
                        self.retry
                            .delay(run.journal.count(Step::ImportStarted) as u32 - 1),
                    );
                }
                Ok(())
            }
            Err(e) => {
                run.journal.append(
                    Record::new(Step::ImportRefused)
                        .command(self.render(&import), e.exit_code)
                        .detail(e.detail.clone()),
                )?;
                Err(explain(&e, "import the device into the target"))
            }
        }
    }

    fn mode(&self, run: &DeviceRun) -> ActivationMode {
        run.report
            .mode
            .or(run.journal.mode())
            .unwrap_or(ActivationMode::Otaa)
    }

    /// Compares the target's session with the import document.
    fn verify(&self, run: &mut DeviceRun) -> Result<(), Stop> {
        let device = run.report.device_id.clone();
        let import_file = run.file(Step::ImportStarted, "import document")?;
        let found = match run
            .journal
            .file_of(Step::Imported)
            .and_then(|f| fs::read(f).ok())
        {
            Some(bytes) => serde_json::from_slice(&bytes).ok(),
            None => None,
        };
        let found = match found {
            Some(found) => found,
            None => match self
                .read_session(run, &self.migration.read_target(&device, self.mode(run)))?
            {
                Some(found) => found,
                None => {
                    run.journal.append(
                        Record::new(Step::ImportRefused)
                            .detail("not found on the target during verification"),
                    )?;
                    return Ok(());
                }
            },
        };
        self.progress.step(&device, MigrationStep::Verify);
        let differences = self.differences(run, &import_file, &found)?;
        if !differences.is_empty() {
            return Err(Stop::new(format!(
                "the target's session differs from the export in {}",
                differences.join(", ")
            )));
        }
        run.journal.append(Record::new(Step::Verified))?;
        Ok(())
    }

    fn differences(
        &self,
        run: &DeviceRun,
        import_file: &Path,
        found: &Value,
    ) -> Result<Vec<String>, Stop> {
        let imported: Value =
            serde_json::from_slice(&fs::read(import_file).map_err(|e| {
                Stop::new(format!("could not read {}: {e}", import_file.display()))
            })?)
            .map_err(|e| Stop::new(format!("{} is damaged: {e}", import_file.display())))?;
        Ok(session_differences(&imported, found, self.mode(run)))
    }

    /// `get` with the session; `None` when the device is not there.
    fn read_session(
        &self,
        run: &mut DeviceRun,
        invocation: &Invocation,
    ) -> Result<Option<Value>, Stop> {
        match self.call(run, MigrationStep::Verify, invocation, true) {
            Ok(output) => serde_json::from_slice(&output.stdout)
                .map(Some)
                .map_err(|e| {
                    Stop::new(format!(
                        "ttn-lw-cli printed something that is not JSON ({e})"
                    ))
                }),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(explain(&e, "read the device back")),
        }
    }

    fn start_rollback(&self, run: &mut DeviceRun) -> Result<(), Stop> {
        let export_file = run.file(Step::Exported, "export to roll back from")?;
        let bytes = fs::read(&export_file).map_err(|e| {
            Stop::new(format!(
                "could not read the saved export {}: {e}",
                export_file.display()
            ))
        })?;
        let export = DeviceExport::parse(bytes)?;
        let doc = self
            .migration
            .rewrite_for_source(run.journal.schedule_downlinks_before())
            .apply(&export.doc);
        let name = numbered("rollback", run.journal.count(Step::RollbackStarted) + 1);
        write_durably(&run.journal.dir().join(&name), &pretty(&doc))?;
        run.journal
            .append(Record::new(Step::RollbackStarted).file(&name))?;
        Ok(())
    }

    /// Re-creates the device on the source from the saved export.
    fn recreate(&self, run: &mut DeviceRun) -> Result<(), Stop> {
        let device = run.report.device_id.clone();
        let file = run.file(Step::RollbackStarted, "rollback document")?;
        let create = self.migration.recreate_on_source(&file);
        match self.call(run, MigrationStep::Rollback, &create, false) {
            Ok(_) => {}
            Err(e) if e.kind == ErrorKind::AlreadyExists || e.kind.is_transient() => {
                // Maybe an earlier attempt got there: compare what the source holds.
                let found =
                    self.read_session(run, &self.migration.read_source(&device, self.mode(run)))?;
                let same = match &found {
                    Some(found) => self.differences(run, &file, found)?.is_empty(),
                    None => false,
                };
                if !same {
                    return Err(explain(&e, "re-create the device on the source"));
                }
            }
            Err(e) => return Err(explain(&e, "re-create the device on the source")),
        }
        run.journal
            .append(Record::new(Step::RecreatedOnSource).command(self.render(&create), Some(0)))?;
        Ok(())
    }

    /// Removes our copy from the target (never somebody else's device), then closes the rollback.
    fn finish_rollback(&self, run: &mut DeviceRun) -> Result<(), Stop> {
        let device = run.report.device_id.clone();
        if run.journal.may_be_on_target() {
            let import_file = run.journal.file_of(Step::ImportStarted);
            let found =
                self.read_session(run, &self.migration.read_target(&device, self.mode(run)))?;
            let ours = match (&found, &import_file) {
                (Some(found), Some(file)) => self.differences(run, file, found)?.is_empty(),
                _ => false,
            };
            if found.is_some() && ours {
                let delete = self.migration.delete_on_target(&device);
                match self.call(run, MigrationStep::Rollback, &delete, true) {
                    Ok(_) => {}
                    Err(e) if e.kind == ErrorKind::NotFound => {}
                    Err(e) => return Err(explain(&e, "delete the device from the target")),
                }
                run.journal.append(
                    Record::new(Step::DeletedFromTarget).command(self.render(&delete), Some(0)),
                )?;
            } else {
                let detail = if found.is_some() {
                    "a different device with this ID is on the target; left alone"
                } else {
                    "not on the target"
                };
                run.journal
                    .append(Record::new(Step::DeletedFromTarget).detail(detail))?;
            }
        }
        run.journal.append(Record::new(Step::RolledBack))?;
        Ok(())
    }
}

fn numbered(stem: &str, attempt: usize) -> String {
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

/// A failed call, in words that name the next step.
fn explain(e: &CliError, what: &str) -> Stop {
    let hint = match e.kind {
        ErrorKind::Unauthenticated | ErrorKind::UnknownHost => {
            " Log in again with `ttn-session-migrate login <PROFILE>`."
        }
        ErrorKind::PermissionDenied => {
            " The login lacks rights on the application: it needs RIGHT_APPLICATION_DEVICES_READ, RIGHT_APPLICATION_DEVICES_WRITE, RIGHT_APPLICATION_DEVICES_READ_KEYS and RIGHT_APPLICATION_DEVICES_WRITE_KEYS."
        }
        ErrorKind::Transport | ErrorKind::Timeout | ErrorKind::RateLimited => {
            " The deployment did not answer; retry later with `resume`."
        }
        _ => "",
    };
    Stop::new(format!("could not {what}: {}.{hint}", e.detail))
}
