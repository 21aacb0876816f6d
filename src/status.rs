//! Where every device of a migration is and what `resume` would do with it, from the work
//! directory alone: each journal is replayed ([`crate::runner::position_of`]) and
//! [`lifecycle::next`] says the next action, exactly as `resume` would ask it.

use anyhow::Result;
use serde::Serialize;

use crate::journal::{Manifest, WorkDir};
use crate::lifecycle::{self, Action, End, Goal, Policy, Position, Step};
use crate::outcome::count;
use crate::runner::position_of;

#[derive(Debug, Clone, Serialize)]
pub struct DeviceStatus {
    pub device_id: String,
    /// Where the journal says the device is, in plain words.
    pub location: String,
    /// Migrated or rolled back: `resume` leaves it alone.
    pub finished: bool,
    /// It has a journal (`resume` asks before starting the others).
    pub started: bool,
    /// The last attempt ended in a failure (the journal's `failed`/`stuck`).
    pub failed: bool,
    /// What `resume` would do first (an action label), or `null` when finished.
    pub resume: Option<&'static str>,
    /// With `--check`: whether the source and the target hold the device (`null`: no answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_source: Option<Found>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_target: Option<Found>,
}

/// What a deployment answered about a device (`status --check`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Found {
    /// Every server asked holds it.
    Present,
    /// The Identity Server and only some of the others: a delete or a create stopped halfway.
    Partly,
    Absent,
    /// The deployment did not answer, or a server failed.
    NoAnswer,
}

impl Found {
    fn describe(self) -> &'static str {
        match self {
            Found::Present => "present",
            Found::Partly => "partly (a delete or create stopped between servers)",
            Found::Absent => "absent",
            Found::NoAnswer => "no answer",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub devices: Vec<DeviceStatus>,
}

impl Status {
    pub fn finished(&self) -> usize {
        self.devices.iter().filter(|d| d.finished).count()
    }

    pub fn not_started(&self) -> usize {
        self.devices.iter().filter(|d| !d.started).count()
    }

    pub fn in_progress(&self) -> usize {
        self.devices.len() - self.finished() - self.not_started()
    }
}

/// The status of every device of the manifest. A damaged journal is an error: nothing is
/// guessed.
pub fn of(work: &WorkDir, manifest: &Manifest, rollback_on_failure: bool) -> Result<Status> {
    let policy = Policy {
        rollback_on_failure,
        freeze_downlinks: manifest.freeze_downlinks,
        mode_known: manifest.mode.is_some(),
        stopping: false,
    };
    let mut devices = Vec::new();
    for device in &manifest.devices {
        let position = position_of(work, device)?;
        let started = work.has_journal(device);
        devices.push(DeviceStatus {
            device_id: device.clone(),
            location: match started {
                true => position.describe().to_string(),
                false => "on the source (not started)".to_string(),
            },
            finished: position.is_final(),
            started,
            failed: position.halt.is_some(),
            resume: resume_action(position, policy),
            on_source: None,
            on_target: None,
        });
    }
    Ok(Status { devices })
}

/// What `resume` does first from `position`: after a failure it starts a new attempt, then
/// follows [`lifecycle::next`].
fn resume_action(position: Position, policy: Policy) -> Option<&'static str> {
    let position = match position.halt {
        Some(_) => lifecycle::advance(position, Step::Retried).unwrap_or(position),
        None => position,
    };
    match lifecycle::next(Goal::Migrate, position, policy) {
        Action::Done(End::Reached) => None,
        Action::Done(_) => Some("nothing (stopped)"),
        action => Some(action.label()),
    }
}

/// The line `resume` prints before it continues.
pub fn header(work: &WorkDir, manifest: &Manifest, status: &Status) -> String {
    format!(
        "Resuming {}: application {} on profile `{}` to application {} on profile `{}`; {} finished, {} in progress, {} not started.",
        work.path().display(),
        manifest.application_id,
        manifest.source.label,
        manifest.target_application_id,
        manifest.target.label,
        status.finished(),
        status.in_progress(),
        status.not_started()
    )
}

/// The human view in `columns` columns: one line per device, padded to the longest ID (what
/// follows the ID wraps under its first line), then the counts.
pub fn render(manifest: &Manifest, status: &Status, columns: usize) -> String {
    let width = status
        .devices
        .iter()
        .map(|d| d.device_id.len())
        .max()
        .unwrap_or(0);
    let header = format!(
        "Migration of application {} (profile `{}`) to application {} (profile `{}`): {}",
        manifest.application_id,
        manifest.source.label,
        manifest.target_application_id,
        manifest.target.label,
        count(status.devices.len(), "device", "devices")
    );
    let mut lines = vec![crate::terminal::wrap_with(&header, columns, 2)];
    for d in &status.devices {
        let mut line = d.location.clone();
        if let Some(action) = d.resume {
            line.push_str(&format!("; resume: {action}"));
        }
        if let (Some(source), Some(target)) = (d.on_source, d.on_target) {
            line.push_str(&format!(
                " [source: {}, target: {}]",
                source.describe(),
                target.describe()
            ));
        }
        let device = format!("  {:width$}  ", d.device_id);
        lines.push(crate::terminal::hang(&device, &line, columns));
    }
    lines.push(format!(
        "{} finished, {} in progress, {} not started",
        status.finished(),
        status.in_progress(),
        status.not_started()
    ));
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::Place;

    /// F7: where the device may be on the target, the words say so.
    #[test]
    fn every_place_that_may_be_on_the_target_says_so() {
        for place in Place::ALL {
            let may_be_on_target = matches!(
                place,
                Place::MaybeImported
                    | Place::Imported
                    | Place::Migrated
                    | Place::MaybeRecreated
                    | Place::Recreated
            );
            assert_eq!(
                place.describe().contains("target"),
                may_be_on_target,
                "{place:?}: {}",
                place.describe()
            );
        }
    }

    #[test]
    fn resume_retries_after_a_failure_and_names_the_next_action() {
        let policy = Policy::default();
        let failed_off_source = Position {
            halt: Some(crate::lifecycle::Halt::Failed),
            ..Position::at(Place::ExportOnly)
        };
        assert_eq!(
            resume_action(failed_off_source, policy),
            Some("import into target")
        );
        assert_eq!(resume_action(Position::at(Place::Migrated), policy), None);
        assert_eq!(resume_action(Position::START, policy), Some("detect"));
    }
}
