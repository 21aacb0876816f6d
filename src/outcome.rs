//! The result model: how each device's run ended ([`DeviceReport`], [`Outcome`]) and the counts
//! of a run ([`Summary`]). Made by the runner, read by the output and the report file. Never
//! holds keys.

use serde::Serialize;

use crate::device::{ActivationMode, SessionSummary};
use crate::lifecycle::{Goal, Position};
use crate::next_step::NextStep;
use crate::ttn_lw_cli::ErrorKind;

/// Why a device did not reach its goal, for scripts (the report's `error_kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The device does not exist where it was looked for.
    NotFound,
    ApplicationNotFound,
    /// The target (or, in a rollback, the source) already has a device with this ID or EUIs.
    AlreadyExists,
    Unauthenticated,
    UnknownHost,
    PermissionDenied,
    /// The deployment did not answer (retried first).
    Unavailable,
    RateLimited,
    Timeout,
    /// The document or a flag was rejected.
    Invalid,
    /// ttn-lw-cli could not be started.
    CouldNotStart,
    /// A server failed inside an `end-devices get` that exited 0: its answer was incomplete.
    ServerFailed,
    /// The export cannot carry the session (checked before the delete).
    ExportRefused,
    /// The target holds another session than the one imported.
    SessionDiffers,
    /// Already in the target application before anything ran.
    Conflict,
    /// Stopped by Ctrl-C or `--fail-fast` before its delete.
    NotStarted,
    /// The journal does not replay.
    JournalDamaged,
    /// A file of the work directory could not be written or read.
    WorkDirectory,
    Other,
}

impl From<ErrorKind> for FailureKind {
    fn from(kind: ErrorKind) -> FailureKind {
        match kind {
            ErrorKind::NotFound => FailureKind::NotFound,
            ErrorKind::ApplicationNotFound => FailureKind::ApplicationNotFound,
            ErrorKind::AlreadyExists => FailureKind::AlreadyExists,
            ErrorKind::Unauthenticated => FailureKind::Unauthenticated,
            ErrorKind::UnknownHost => FailureKind::UnknownHost,
            ErrorKind::PermissionDenied => FailureKind::PermissionDenied,
            ErrorKind::Transport => FailureKind::Unavailable,
            ErrorKind::RateLimited => FailureKind::RateLimited,
            ErrorKind::Timeout => FailureKind::Timeout,
            ErrorKind::Invalid => FailureKind::Invalid,
            ErrorKind::Spawn => FailureKind::CouldNotStart,
            ErrorKind::Other => FailureKind::Other,
        }
    }
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
    /// Stopped by Ctrl-C (or `--fail-fast`) before its delete; `resume` continues it.
    Interrupted,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepTiming {
    pub step: &'static str,
    pub millis: u64,
}

/// One device's result: what the summary, the report file and the exit status are made of.
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
    /// What kind of failure `error` is.
    pub error_kind: Option<FailureKind>,
    pub next_action: Option<NextStep>,
    pub steps: Vec<StepTiming>,
    /// From the start of the delete on the source to the end of the import on the target.
    pub downtime_ms: Option<u64>,
    /// What the operator should know about a device that did move (e.g. a Join Server nonce
    /// state that could not be carried).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// `resume` would carry the device further without the operator fixing anything first.
    #[serde(skip)]
    pub resumable: bool,
}

impl DeviceReport {
    pub fn new(device_id: &str, application_id: &str, target_application_id: &str) -> Self {
        DeviceReport {
            device_id: device_id.to_string(),
            application_id: application_id.to_string(),
            target_application_id: target_application_id.to_string(),
            mode: None,
            session: None,
            outcome: Outcome::Failed,
            location: Position::START.describe().to_string(),
            error: None,
            error_kind: None,
            next_action: None,
            steps: Vec::new(),
            downtime_ms: None,
            warnings: Vec::new(),
            resumable: false,
        }
    }

    pub fn is_success(&self) -> bool {
        matches!(
            self.outcome,
            Outcome::Migrated | Outcome::RolledBack | Outcome::Skipped
        )
    }

    /// A device already in the target application: left alone.
    pub fn conflict(mut self) -> Self {
        self.outcome = Outcome::Conflict;
        self.error = Some(format!(
            "a device with this ID is already in application `{}` on the target; nothing was done",
            self.target_application_id
        ));
        self.error_kind = Some(FailureKind::Conflict);
        self.next_action = Some(NextStep::ResolveConflict);
        self
    }

    /// Adds the time of one action.
    pub fn time(&mut self, step: &'static str, millis: u64) {
        match self.steps.iter_mut().find(|s| s.step == step) {
            Some(timing) => timing.millis += millis,
            None => self.steps.push(StepTiming { step, millis }),
        }
    }
}

/// Counts of a run's outcomes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub migrated: usize,
    pub rolled_back: usize,
    pub failed: usize,
    pub skipped: usize,
    pub conflicts: usize,
    pub interrupted: usize,
}

impl Summary {
    pub fn of(reports: &[DeviceReport]) -> Summary {
        let mut summary = Summary::default();
        for report in reports {
            match report.outcome {
                Outcome::Migrated => summary.migrated += 1,
                Outcome::RolledBack => summary.rolled_back += 1,
                Outcome::Failed => summary.failed += 1,
                Outcome::Skipped => summary.skipped += 1,
                Outcome::Conflict => summary.conflicts += 1,
                Outcome::Interrupted => summary.interrupted += 1,
            }
        }
        summary
    }

    pub fn all_succeeded(&self) -> bool {
        self.failed == 0 && self.conflicts == 0 && self.interrupted == 0
    }

    /// One line in the words of the goal: `3 migrated, 1 failed, 0 skipped, 1 conflict` or
    /// `2 rolled back, 0 failed, 1 skipped`; `N not started` when some never started.
    pub fn describe(&self, goal: Goal) -> String {
        let mut parts = match goal {
            Goal::Migrate => vec![
                format!("{} migrated", self.migrated),
                format!("{} failed", self.failed),
                format!("{} skipped", self.skipped),
                count(self.conflicts, "conflict", "conflicts"),
            ],
            Goal::Rollback => vec![
                format!("{} rolled back", self.rolled_back),
                format!("{} failed", self.failed),
                format!("{} skipped", self.skipped),
            ],
        };
        if goal == Goal::Migrate && self.rolled_back > 0 {
            parts.push(format!("{} rolled back", self.rolled_back));
        }
        if self.interrupted > 0 {
            parts.push(format!("{} not started", self.interrupted));
        }
        parts.join(", ")
    }
}

/// `1 device`, `2 devices`.
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `a, b, c and 7 more`: the first `shown` of `items`, and how many more there are.
pub fn first_few(items: &[String], shown: usize) -> String {
    let mut text = items
        .iter()
        .take(shown)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > shown {
        text.push_str(&format!(" and {} more", items.len() - shown));
    }
    text
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe(Goal::Migrate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_count_in_words_of_the_goal() {
        let migrate = Summary {
            migrated: 3,
            conflicts: 1,
            interrupted: 34,
            ..Summary::default()
        };
        assert_eq!(
            migrate.describe(Goal::Migrate),
            "3 migrated, 0 failed, 0 skipped, 1 conflict, 34 not started"
        );
        let rollback = Summary {
            rolled_back: 1,
            skipped: 1,
            ..Summary::default()
        };
        assert_eq!(
            rollback.describe(Goal::Rollback),
            "1 rolled back, 0 failed, 1 skipped"
        );
        assert_eq!(count(1, "device", "devices"), "1 device");
    }

    #[test]
    fn long_lists_are_shortened_to_their_first_few() {
        let ids: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        assert_eq!(first_few(&ids, 4), "a, b, c, d");
        assert_eq!(first_few(&ids, 2), "a, b and 2 more");
        assert_eq!(first_few(&[], 2), "");
    }
}
