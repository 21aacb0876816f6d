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
    /// Fix the cause named in the error, then `resume`.
    FixThenResume { work_dir: PathBuf },
    /// The device is between the deployments: `resume` finishes it, `rollback` puts it back.
    ResumeOrRollback { work_dir: PathBuf, device: String },
    /// The device is back on the source: fix the target, then migrate it again.
    FixTargetThenMigrateAgain,
    /// The tool cannot tell where the device is: look in the Console; the export is kept.
    CheckConsole { export_dir: PathBuf },
    /// A device with this ID is already in the target application.
    ResolveConflict,
}

fn path(p: &std::path::Path) -> String {
    quote(&p.display().to_string())
}

impl fmt::Display for NextStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NextStep::Resume { work_dir } => {
                write!(f, "run `ttn-session-migrate resume {}`", path(work_dir))
            }
            NextStep::FixThenResume { work_dir } => write!(
                f,
                "fix the cause above, then run `ttn-session-migrate resume {}`",
                path(work_dir)
            ),
            NextStep::ResumeOrRollback { work_dir, device } => write!(
                f,
                "run `ttn-session-migrate resume {}` to finish, or `ttn-session-migrate rollback {} {}` to put it back on the source",
                path(work_dir),
                path(work_dir),
                quote(device)
            ),
            NextStep::FixTargetThenMigrateAgain => {
                write!(f, "fix the cause on the target, then migrate the device again")
            }
            NextStep::CheckConsole { export_dir } => write!(
                f,
                "check where the device is in the Console; its export is kept in {}",
                path(export_dir)
            ),
            NextStep::ResolveConflict => write!(
                f,
                "delete or rename the device on the target, then migrate it again"
            ),
        }
    }
}

impl Serialize for NextStep {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
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
            serde_json::Value::String(step.to_string())
        );
    }
}
