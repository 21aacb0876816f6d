//! What the operator should do next about a device, as data. Rendered in one place, with shell
//! quoting, for the device line, the summary and the `--report` file.

use std::fmt;
use std::path::PathBuf;

use serde::{Serialize, Serializer};

use crate::ttn_lw_cli::quote;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextStep {
    /// Nothing needs fixing: `resume` carries the device further.
    Resume { work_dir: PathBuf },
    /// Fix the cause named in the error (a login, a right, the network), then `resume`.
    FixThenResume { work_dir: PathBuf },
    /// The device is between the deployments: `resume` finishes it, `rollback` puts it back.
    ResumeOrRollback { work_dir: PathBuf, device: String },
    /// The device is back on the source: fix the target, then migrate it again.
    FixTargetThenMigrateAgain,
    /// The tool cannot tell where the device is: look in the Console; the export is kept.
    CheckConsole { export_dir: PathBuf },
    /// Rolled back, but the target holds a device with this ID that this migration did not
    /// create (left alone): look at it in the target's Console; the export is kept.
    CheckTarget { export_dir: PathBuf },
    /// A device with this ID is already in the target application.
    ResolveConflict,
    /// The source has no such device: a typo, or another application or cluster.
    CheckDeviceId { application_id: String },
    /// Refused by `--require-gateways`, nothing changed: connect a gateway that hears the device
    /// to the target, then migrate it again.
    ConnectGateways,
    /// Nothing changed, but an option pinned in the work directory (`--from`, `--otaa`/`--abp`)
    /// was wrong for the device: `resume` cannot help; a new migration can.
    NewMigration,
}

fn path(p: &std::path::Path) -> String {
    quote(&p.display().to_string())
}

impl NextStep {
    /// A stable name for scripts (the report's `next_action.step`).
    pub fn name(&self) -> &'static str {
        match self {
            NextStep::Resume { .. } => "resume",
            NextStep::FixThenResume { .. } => "fix-then-resume",
            NextStep::ResumeOrRollback { .. } => "resume-or-rollback",
            NextStep::FixTargetThenMigrateAgain => "fix-target-then-migrate-again",
            NextStep::CheckConsole { .. } => "check-console",
            NextStep::CheckTarget { .. } => "check-target",
            NextStep::ResolveConflict => "resolve-conflict",
            NextStep::CheckDeviceId { .. } => "check-device-id",
            NextStep::ConnectGateways => "connect-gateways",
            NextStep::NewMigration => "new-migration",
        }
    }

    /// The command that carries the device further, when there is one.
    pub fn command(&self) -> Option<String> {
        match self {
            NextStep::Resume { work_dir }
            | NextStep::FixThenResume { work_dir }
            | NextStep::ResumeOrRollback { work_dir, .. } => {
                Some(format!("ttn-session-migrate resume {}", path(work_dir)))
            }
            _ => None,
        }
    }
}

impl fmt::Display for NextStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NextStep::Resume { work_dir } => {
                write!(f, "run `ttn-session-migrate resume {}`", path(work_dir))
            }
            NextStep::FixThenResume { work_dir } => write!(
                f,
                "fix the cause named in the error, then run `ttn-session-migrate resume {}`",
                path(work_dir)
            ),
            NextStep::ResumeOrRollback { work_dir, device } => write!(
                f,
                "run `ttn-session-migrate resume {}` to finish, or `ttn-session-migrate rollback {} {}` to put it back on the source",
                path(work_dir),
                path(work_dir),
                quote(device)
            ),
            NextStep::FixTargetThenMigrateAgain => write!(
                f,
                "the device is back on the source: fix the cause on the target, then migrate it again with a new work directory"
            ),
            NextStep::CheckConsole { export_dir } => write!(
                f,
                "check where the device is in the Console; its export is kept in {}",
                path(export_dir)
            ),
            NextStep::CheckTarget { export_dir } => write!(
                f,
                "the device is back on the source: check the device with this ID in the target's Console; its export is kept in {}",
                path(export_dir)
            ),
            NextStep::ResolveConflict => write!(
                f,
                "delete or rename the device on the target, then migrate it again"
            ),
            NextStep::CheckDeviceId { application_id } => write!(
                f,
                "check the device ID: application `{application_id}` on the source has no such device; nothing was changed"
            ),
            NextStep::ConnectGateways => write!(
                f,
                "nothing was changed: connect a gateway that hears the device to the target (see the gateway table), then migrate it again"
            ),
            NextStep::NewMigration => write!(
                f,
                "nothing was changed; `resume` keeps this migration's options, so migrate the device again in a new migration with the right --from, --otaa or --abp"
            ),
        }
    }
}

/// `{"step": "resume", "command": "ttn-session-migrate resume …", "text": "run …"}`.
impl Serialize for NextStep {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("NextStep", 3)?;
        s.serialize_field("step", self.name())?;
        s.serialize_field("command", &self.command())?;
        s.serialize_field("text", &self.to_string())?;
        s.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_ids_are_shell_quoted() {
        let step = NextStep::ResumeOrRollback {
            work_dir: PathBuf::from("/tmp/my work"),
            device: "dev-1".into(),
        };
        assert_eq!(
            step.to_string(),
            "run `ttn-session-migrate resume '/tmp/my work'` to finish, or `ttn-session-migrate rollback '/tmp/my work' dev-1` to put it back on the source"
        );
        assert_eq!(
            serde_json::to_value(&step).unwrap(),
            serde_json::json!({
                "step": "resume-or-rollback",
                "command": "ttn-session-migrate resume '/tmp/my work'",
                "text": step.to_string(),
            })
        );
    }
}
