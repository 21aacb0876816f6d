//! The lifecycle of one device: where it can be, which journal records move it, and what to do
//! next. Pure: no I/O, no clock. `migrate`, `resume`, `rollback` and `--dry-run` all walk it.
//!
//! * [`advance`] is the one transition table: a [`Position`] and a journal [`Step`] give the next
//!   position, or [`ImpossibleStep`]. The journal refuses to write a record it rejects and
//!   replays every history through it.
//! * [`next`] decides the [`Action`] for a [`Goal`], a position and a [`Policy`]. The runner
//!   performs the action, which appends records, and asks again, until the action is
//!   [`Action::Done`] (the goal reached, a halt, or an interruption).
//!
//! A failure is a record too: `failed` (the step failed for good; with rollback-on-failure the
//! device is put back on the source) or `stuck` (no trustworthy answer; the device stays where it
//! is and `resume` continues). `retried` starts a new attempt after either.

use serde::{Deserialize, Serialize};

/// The records of a device's journal, oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    Detected,
    /// `--freeze-downlinks`: downlinks turned off on the source (recorded before the `set`).
    Frozen,
    /// Downlinks turned back on (restored) on the source.
    Unfrozen,
    Exported,
    /// The export is complete and the import document is written.
    Validated,
    /// About to delete from the source: if no answer follows, the delete may or may not have
    /// happened.
    DeleteStarted,
    DeletedFromSource,
    /// The device is still on the source (the delete was refused, or it was found there).
    DeleteRefused,
    /// The delete stopped between two servers: some of them still hold the device (`delete`
    /// runs AS, NS, JS, IS one after the other). Only the saved export holds it whole.
    DeleteIncomplete,
    ImportStarted,
    /// Nothing was created on the target (a definite refusal, or confirmed absent).
    ImportRefused,
    Imported,
    Verified,
    /// A step failed for good. With rollback-on-failure, a device off the source goes back.
    Failed,
    /// A step got no trustworthy answer: the device stays where it is; `resume` continues.
    Stuck,
    /// A new attempt after `failed` or `stuck` (`resume`, `rollback`).
    Retried,
    RollbackStarted,
    /// Re-created on the source from the saved export.
    RecreatedOnSource,
    DeletedFromTarget,
    RolledBack,
}

impl Step {
    #[cfg(test)]
    pub const ALL: [Step; 20] = [
        Step::Detected,
        Step::Frozen,
        Step::Unfrozen,
        Step::Exported,
        Step::Validated,
        Step::DeleteStarted,
        Step::DeletedFromSource,
        Step::DeleteRefused,
        Step::DeleteIncomplete,
        Step::ImportStarted,
        Step::ImportRefused,
        Step::Imported,
        Step::Verified,
        Step::Failed,
        Step::Stuck,
        Step::Retried,
        Step::RollbackStarted,
        Step::RecreatedOnSource,
        Step::DeletedFromTarget,
        Step::RolledBack,
    ];

    /// The name the journal file uses.
    pub fn name(self) -> String {
        serde_json::to_string(&self)
            .unwrap_or_default()
            .trim_matches('"')
            .to_string()
    }
}

/// Where the device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Place {
    /// Nothing done yet in this attempt: on the source, unchanged.
    OnSource,
    /// On the source, activation mode known.
    Detected,
    /// On the source, downlinks being turned off (or off).
    Frozen,
    /// On the source, export saved, not yet checked.
    Exported,
    /// On the source, export checked, import document written: ready to delete.
    Validated,
    /// A delete started and did not report back: ask the source.
    MaybeDeleted,
    /// Some servers of the source still hold the device, others not: finish the delete.
    PartlyDeleted,
    /// Only the saved export holds the device.
    ExportOnly,
    /// An import started and did not report back: ask the target.
    MaybeImported,
    /// On the target, not yet verified.
    Imported,
    /// On the target with the same session: done.
    Migrated,
    /// A re-create on the source started and did not report back.
    MaybeRecreated,
    /// Back on the source; maybe still on the target too.
    Recreated,
    /// Back on the source only: done.
    RolledBack,
}

impl Place {
    #[cfg(test)]
    pub const ALL: [Place; 14] = [
        Place::OnSource,
        Place::Detected,
        Place::Frozen,
        Place::Exported,
        Place::Validated,
        Place::MaybeDeleted,
        Place::PartlyDeleted,
        Place::ExportOnly,
        Place::MaybeImported,
        Place::Imported,
        Place::Migrated,
        Place::MaybeRecreated,
        Place::Recreated,
        Place::RolledBack,
    ];

    /// Plain words for the operator.
    pub fn describe(self) -> &'static str {
        match self {
            Place::OnSource | Place::Detected | Place::Frozen | Place::Exported | Place::Validated => "on the source",
            Place::MaybeDeleted => "on the source, or deleted from it (the delete did not report back)",
            Place::PartlyDeleted => "partly deleted from the source (some of its servers still hold it); whole only in the saved export",
            Place::ExportOnly => "deleted from the source; only in the saved export",
            Place::MaybeImported => "in the saved export; maybe imported into the target (the import did not report back)",
            Place::Imported => "on the target (not yet verified)",
            Place::Migrated => "on the target, session verified",
            Place::MaybeRecreated => "in the saved export, maybe still on the target; maybe re-created on the source (the rollback did not finish)",
            Place::Recreated => "back on the source (maybe still on the target)",
            Place::RolledBack => "back on the source",
        }
    }

    fn on_source_unchanged(self) -> bool {
        matches!(
            self,
            Place::OnSource | Place::Detected | Place::Frozen | Place::Exported | Place::Validated
        )
    }

    /// Places from which the device can be put back on the source from its export.
    fn can_roll_back(self) -> bool {
        matches!(
            self,
            Place::ExportOnly
                | Place::MaybeImported
                | Place::Imported
                | Place::Migrated
                | Place::MaybeRecreated
        )
    }
}

/// How the last attempt ended, when it did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Halt {
    /// `failed`: rollback-on-failure applies.
    Failed,
    /// `stuck`: stay where it is.
    Stuck,
}

/// Where a device is, and what the journal holds about it beyond the place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Position {
    pub place: Place,
    /// Downlinks may be turned off on the source by this migration.
    pub frozen: bool,
    /// The last attempt ended with a failure and no new attempt started.
    pub halt: Option<Halt>,
}

impl Position {
    pub const START: Position = Position {
        place: Place::OnSource,
        frozen: false,
        halt: None,
    };

    #[cfg(test)]
    pub fn at(place: Place) -> Position {
        Position {
            place,
            ..Position::START
        }
    }

    /// Every position, for the table tests.
    #[cfg(test)]
    fn all() -> Vec<Position> {
        let mut all = Vec::new();
        for place in Place::ALL {
            for frozen in [false, true] {
                for halt in [None, Some(Halt::Failed), Some(Halt::Stuck)] {
                    all.push(Position {
                        place,
                        frozen,
                        halt,
                    });
                }
            }
        }
        all
    }

    pub fn is_final(self) -> bool {
        matches!(self.place, Place::Migrated | Place::RolledBack)
    }

    pub fn describe(self) -> &'static str {
        self.place.describe()
    }

    /// Still on the source and nothing destructive has happened.
    pub fn untouched(self) -> bool {
        self.place.on_source_unchanged()
    }
}

/// A record that cannot follow a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImpossibleStep {
    pub position: Position,
    pub step: Step,
}

impl std::fmt::Display for ImpossibleStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` cannot follow a device that is {}",
            self.step.name(),
            self.position.describe()
        )?;
        if let Some(halt) = self.position.halt {
            write!(
                f,
                " after a `{}` record",
                if halt == Halt::Failed {
                    "failed"
                } else {
                    "stuck"
                }
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for ImpossibleStep {}

/// The one transition table.
pub fn advance(position: Position, step: Step) -> Result<Position, ImpossibleStep> {
    use Place::*;
    let impossible = Err(ImpossibleStep { position, step });
    let place = position.place;
    if let Some(halt) = position.halt {
        // After a failure: a new attempt, or the rollback that rollback-on-failure starts.
        return match step {
            Step::Retried => Ok(Position {
                place: if place.on_source_unchanged() {
                    OnSource
                } else {
                    place
                },
                halt: None,
                ..position
            }),
            // A failure while already halted (a rollback on failure that fails in turn): stop.
            Step::Stuck => Ok(Position {
                halt: Some(Halt::Stuck),
                ..position
            }),
            Step::RollbackStarted if halt == Halt::Failed && place.can_roll_back() => {
                Ok(Position {
                    place: MaybeRecreated,
                    halt: None,
                    ..position
                })
            }
            _ => impossible,
        };
    }
    let to = |place: Place| Ok(Position { place, ..position });
    match (place, step) {
        // Also where the goal was reached: a rollback of a migrated device can fail too.
        (_, Step::Failed) => Ok(Position {
            halt: Some(Halt::Failed),
            ..position
        }),
        (_, Step::Stuck) => Ok(Position {
            halt: Some(Halt::Stuck),
            ..position
        }),
        (OnSource, Step::Detected) => to(Detected),
        (Detected, Step::Frozen) => Ok(Position {
            place: Frozen,
            frozen: true,
            halt: None,
        }),
        (OnSource | Detected | Frozen | Exported | Validated, Step::Unfrozen)
            if position.frozen =>
        {
            Ok(Position {
                place: OnSource,
                frozen: false,
                halt: None,
            })
        }
        (OnSource | Detected | Frozen, Step::Exported) => to(Exported),
        (Exported, Step::Validated) => to(Validated),
        (Validated | MaybeDeleted, Step::DeleteStarted) => to(MaybeDeleted),
        // Off the source: nothing left there to turn back on.
        (MaybeDeleted, Step::DeletedFromSource) => Ok(Position {
            place: ExportOnly,
            frozen: false,
            halt: None,
        }),
        (MaybeDeleted, Step::DeleteRefused) => to(OnSource),
        (MaybeDeleted, Step::DeleteIncomplete) => to(PartlyDeleted),
        // The delete finished: nothing left on the source to turn back on.
        (PartlyDeleted, Step::DeletedFromSource) => Ok(Position {
            place: ExportOnly,
            frozen: false,
            halt: None,
        }),
        (ExportOnly, Step::ImportStarted) => to(MaybeImported),
        (MaybeImported, Step::Imported) => to(Imported),
        (MaybeImported, Step::ImportRefused) => to(ExportOnly),
        (Imported, Step::Verified) => to(Migrated),
        (p, Step::RollbackStarted) if p.can_roll_back() => to(MaybeRecreated),
        // The re-created document carries the source's original downlink setting.
        (MaybeRecreated, Step::RecreatedOnSource) => Ok(Position {
            place: Recreated,
            frozen: false,
            halt: None,
        }),
        (Recreated, Step::DeletedFromTarget) => to(Recreated),
        (Recreated, Step::RolledBack) => to(RolledBack),
        _ => impossible,
    }
}

/// Replays records from the start. `implicit_retry` reads journals of format 1, which wrote no
/// `retried` record when a new attempt followed a failure.
pub fn replay(
    steps: impl IntoIterator<Item = Step>,
    implicit_retry: bool,
) -> Result<Position, (usize, ImpossibleStep)> {
    let mut position = Position::START;
    for (i, step) in steps.into_iter().enumerate() {
        if implicit_retry && position.halt.is_some() && advance(position, step).is_err() {
            position = advance(position, Step::Retried).map_err(|e| (i, e))?;
        }
        position = advance(position, step).map_err(|e| (i, e))?;
    }
    Ok(position)
}

/// The record that ends an attempt with a failure of kind `halt`. A failure while the position
/// is already halted (the rollback that rollback-on-failure started fails before its first
/// record) is `stuck`: the loop must stop rather than start that rollback again.
pub fn failure_record(position: Position, halt: Halt) -> Step {
    match (position.halt, halt) {
        (Some(_), _) | (None, Halt::Stuck) => Step::Stuck,
        (None, Halt::Failed) => Step::Failed,
    }
}

/// What the run should achieve for a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    Migrate,
    Rollback,
}

/// The options `next` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Policy {
    /// Put a device back on the source when a step fails for good after its delete.
    pub rollback_on_failure: bool,
    /// `--freeze-downlinks`.
    pub freeze_downlinks: bool,
    /// `--otaa`/`--abp` given: no detection needed.
    pub mode_known: bool,
    /// Ctrl-C: start nothing destructive.
    pub stopping: bool,
}

/// How a device's run ends, as far as the lifecycle decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum End {
    /// Where the goal wanted it.
    Reached,
    /// Stopped by a failure (see the journal's last `failed`/`stuck`).
    Halted,
    /// Stopped by Ctrl-C while still on the source.
    Interrupted,
}

/// The next thing to do for a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// A new attempt after a failure.
    Retry,
    Detect,
    Freeze,
    Export,
    /// Check the saved export and write the import document.
    Validate,
    Delete,
    /// Ask the source whether an unanswered delete happened.
    ConfirmDelete,
    /// Delete what is left of a half-deleted device from the source.
    FinishDelete,
    Import,
    /// Ask the target whether an unanswered import happened.
    ConfirmImport,
    Verify,
    /// Turn downlinks back on at the source.
    Unfreeze,
    /// Write the rollback document and start the rollback.
    RollBack,
    /// Re-create the device on the source from its export.
    Recreate,
    /// Remove our copy from the target, then close the rollback.
    FinishRollback,
    Done(End),
}

impl Action {
    /// What the operator sees while the action runs.
    pub fn label(self) -> &'static str {
        match self {
            Action::Retry => "retry",
            Action::Detect => "detect",
            Action::Freeze => "freeze downlinks",
            Action::Export => "export",
            Action::Validate => "check export",
            Action::Delete => "delete from source",
            Action::ConfirmDelete => "confirm delete",
            Action::FinishDelete => "finish delete",
            Action::Import => "import into target",
            Action::ConfirmImport => "confirm import",
            Action::Verify => "verify",
            Action::Unfreeze => "restore downlinks",
            Action::RollBack | Action::Recreate | Action::FinishRollback => "roll back",
            Action::Done(_) => "done",
        }
    }

    /// Every sequence of records the action may write when run at `position` (the runner may
    /// add one `failed` or `stuck` after any of them). Downlinks are turned back on only where
    /// they were turned off. The table tests check each from where `next` runs it.
    #[cfg(test)]
    pub fn records(self, position: Position) -> Vec<&'static [Step]> {
        self.writes()
            .iter()
            .copied()
            .filter(|records| position.frozen || !records.contains(&Step::Unfrozen))
            .collect()
    }

    #[cfg(test)]
    fn writes(self) -> &'static [&'static [Step]] {
        use Step::*;
        match self {
            Action::Retry => &[&[Retried]],
            Action::Detect => &[&[], &[Detected]],
            Action::Freeze => &[&[Frozen], &[Frozen, Unfrozen]],
            Action::Export => &[&[], &[Exported], &[Unfrozen], &[Exported, Unfrozen]],
            Action::Validate => &[&[], &[Validated], &[Unfrozen]],
            Action::Delete => &[
                &[DeleteStarted],
                &[DeleteStarted, DeletedFromSource],
                &[DeleteStarted, DeleteRefused],
                &[DeleteStarted, DeleteRefused, Unfrozen],
                &[DeleteStarted, DeleteIncomplete],
            ],
            Action::ConfirmDelete => &[
                &[],
                &[DeletedFromSource],
                &[DeleteRefused],
                &[DeleteIncomplete],
            ],
            Action::FinishDelete => &[&[], &[DeletedFromSource]],
            Action::Import => &[
                &[ImportStarted],
                &[ImportStarted, Imported],
                &[ImportStarted, ImportRefused],
            ],
            Action::ConfirmImport => &[&[], &[Imported], &[ImportRefused]],
            Action::Verify => &[&[], &[Verified]],
            Action::Unfreeze => &[&[], &[Unfrozen]],
            Action::RollBack => &[&[], &[RollbackStarted]],
            Action::Recreate => &[&[], &[RecreatedOnSource]],
            Action::FinishRollback => &[
                &[],
                &[RolledBack],
                &[DeletedFromTarget],
                &[DeletedFromTarget, RolledBack],
            ],
            Action::Done(_) => &[&[]],
        }
    }
}

/// The decision function: what to do next.
pub fn next(goal: Goal, position: Position, policy: Policy) -> Action {
    use Place::*;
    if let Some(halt) = position.halt {
        let roll_back = halt == Halt::Failed
            && goal == Goal::Migrate
            && policy.rollback_on_failure
            && matches!(position.place, ExportOnly | MaybeImported | Imported);
        return if roll_back {
            Action::RollBack
        } else {
            Action::Done(End::Halted)
        };
    }
    match (goal, position.place) {
        // A rollback once started is finished whatever the goal: the device must not stay
        // half re-created.
        (_, MaybeRecreated) => Action::Recreate,
        (_, Recreated) => Action::FinishRollback,
        (_, RolledBack) => Action::Done(End::Reached),
        (_, MaybeDeleted) => Action::ConfirmDelete,
        // Whatever the goal: a half-deleted device works nowhere, and the source refuses its
        // re-create until the rest is gone.
        (_, PartlyDeleted) => Action::FinishDelete,
        (Goal::Migrate, Migrated) => Action::Done(End::Reached),
        (Goal::Migrate, p) if p.on_source_unchanged() && policy.stopping => match position.frozen {
            true => Action::Unfreeze,
            false => Action::Done(End::Interrupted),
        },
        (Goal::Migrate, OnSource) if !policy.mode_known || policy.freeze_downlinks => {
            Action::Detect
        }
        (Goal::Migrate, OnSource) => Action::Export,
        (Goal::Migrate, Detected) if policy.freeze_downlinks => Action::Freeze,
        (Goal::Migrate, Detected | Frozen) => Action::Export,
        (Goal::Migrate, Exported) => Action::Validate,
        (Goal::Migrate, Validated) => Action::Delete,
        (Goal::Migrate, ExportOnly) => Action::Import,
        (Goal::Migrate, MaybeImported) => Action::ConfirmImport,
        (Goal::Migrate, Imported) => Action::Verify,
        (Goal::Rollback, OnSource | Detected | Frozen | Exported | Validated) => {
            match position.frozen {
                true => Action::Unfreeze,
                false => Action::Done(End::Reached),
            }
        }
        (Goal::Rollback, ExportOnly | MaybeImported | Imported | Migrated) => Action::RollBack,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The positions some journal can reach from the start.
    fn reachable() -> Vec<Position> {
        let mut seen = vec![Position::START];
        let mut i = 0;
        while i < seen.len() {
            for step in Step::ALL {
                if let Ok(p) = advance(seen[i], step) {
                    if !seen.contains(&p) {
                        seen.push(p);
                    }
                }
            }
            i += 1;
        }
        seen
    }

    fn policies() -> Vec<Policy> {
        let mut all = Vec::new();
        for bits in 0..16u8 {
            all.push(Policy {
                rollback_on_failure: bits & 1 != 0,
                freeze_downlinks: bits & 2 != 0,
                mode_known: bits & 4 != 0,
                stopping: bits & 8 != 0,
            });
        }
        all
    }

    /// The whole table, written out: for every place and step, the place it leads to (for a
    /// position that is not halted and not frozen), or `None`.
    #[test]
    fn every_step_from_every_place() {
        use Place as P;
        use Step as S;
        let expected = |place: Place, step: Step| -> Option<Place> {
            Some(match (place, step) {
                (p, S::Failed | S::Stuck) => p,
                (P::OnSource, S::Detected) => P::Detected,
                (P::Detected, S::Frozen) => P::Frozen,
                (P::OnSource | P::Detected | P::Frozen, S::Exported) => P::Exported,
                (P::Exported, S::Validated) => P::Validated,
                (P::Validated | P::MaybeDeleted, S::DeleteStarted) => P::MaybeDeleted,
                (P::MaybeDeleted, S::DeletedFromSource) => P::ExportOnly,
                (P::MaybeDeleted, S::DeleteRefused) => P::OnSource,
                (P::MaybeDeleted, S::DeleteIncomplete) => P::PartlyDeleted,
                (P::PartlyDeleted, S::DeletedFromSource) => P::ExportOnly,
                (P::ExportOnly, S::ImportStarted) => P::MaybeImported,
                (P::MaybeImported, S::Imported) => P::Imported,
                (P::MaybeImported, S::ImportRefused) => P::ExportOnly,
                (P::Imported, S::Verified) => P::Migrated,
                (
                    P::ExportOnly
                    | P::MaybeImported
                    | P::Imported
                    | P::Migrated
                    | P::MaybeRecreated,
                    S::RollbackStarted,
                ) => P::MaybeRecreated,
                (P::MaybeRecreated, S::RecreatedOnSource) => P::Recreated,
                (P::Recreated, S::DeletedFromTarget) => P::Recreated,
                (P::Recreated, S::RolledBack) => P::RolledBack,
                // `frozen`, `unfrozen`: only with downlinks tracked (the test below).
                _ => return None,
            })
        };
        for place in Place::ALL {
            for step in Step::ALL {
                let got = advance(Position::at(place), step).ok().map(|p| p.place);
                assert_eq!(got, expected(place, step), "{place:?} + {step:?}");
            }
        }
    }

    #[test]
    fn freezing_is_tracked_until_unfrozen_or_recreated() {
        for place in Place::ALL {
            for step in Step::ALL {
                let frozen = Position {
                    frozen: true,
                    ..Position::at(place)
                };
                let got = advance(frozen, step);
                match (place, step) {
                    (Place::Detected, Step::Frozen) => {
                        assert!(got.unwrap().frozen)
                    }
                    (_, Step::Unfrozen) if place.on_source_unchanged() => {
                        assert_eq!(got, Ok(Position::START))
                    }
                    (_, Step::Unfrozen) => assert!(got.is_err()),
                    (_, Step::RecreatedOnSource | Step::DeletedFromSource) => {
                        assert_eq!(
                            got.ok().map(|p| p.frozen),
                            advance(Position::at(place), step).ok().map(|_| false)
                        )
                    }
                    _ => assert_eq!(
                        got.ok().map(|p| p.frozen),
                        advance(Position::at(place), step).ok().map(|_| true),
                        "{place:?} + {step:?}"
                    ),
                }
                // Nothing to turn back on when nothing was turned off.
                if step == Step::Unfrozen {
                    assert!(advance(Position::at(place), step).is_err());
                }
            }
        }
    }

    #[test]
    fn after_a_failure_only_a_new_attempt_or_the_rollback_may_follow() {
        for position in Position::all() {
            let Some(halt) = position.halt else { continue };
            for step in Step::ALL {
                let got = advance(position, step);
                match step {
                    Step::Retried => {
                        let after = got.unwrap();
                        assert_eq!(after.halt, None);
                        assert_eq!(after.frozen, position.frozen);
                        if position.place.on_source_unchanged() {
                            assert_eq!(after.place, Place::OnSource);
                        } else {
                            assert_eq!(after.place, position.place);
                        }
                    }
                    Step::Stuck => assert_eq!(got.unwrap().halt, Some(Halt::Stuck)),
                    Step::RollbackStarted
                        if halt == Halt::Failed && position.place.can_roll_back() =>
                    {
                        assert_eq!(got.unwrap().place, Place::MaybeRecreated)
                    }
                    _ => assert!(got.is_err(), "{position:?} + {step:?}"),
                }
            }
        }
    }

    /// Every record an action may write is legal from every position in which `next` runs it,
    /// and so is a `failed` or `stuck` after it. This is the check the verify bug of issue 9
    /// (an `import-refused` after `imported`) fails.
    #[test]
    fn every_record_an_action_may_write_is_legal_where_it_runs() {
        for goal in [Goal::Migrate, Goal::Rollback] {
            for policy in policies() {
                for position in reachable() {
                    let action = next(goal, position, policy);
                    for records in action.records(position) {
                        let mut at = position;
                        for step in records.iter() {
                            at = advance(at, *step).unwrap_or_else(|e| {
                                panic!("{action:?} at {position:?} ({goal:?}, {policy:?}): {e}")
                            });
                        }
                        if !matches!(action, Action::Done(_)) {
                            for halt in [Halt::Failed, Halt::Stuck] {
                                let halt = failure_record(at, halt);
                                let after = advance(at, halt).unwrap_or_else(|e| {
                                    panic!("{action:?} at {position:?} then {halt:?}: {e}")
                                });
                                // And the loop then stops, or starts the rollback once: a
                                // failure never leads back into a loop.
                                let then = next(goal, after, policy);
                                assert!(
                                    then == Action::Done(End::Halted)
                                        || (then == Action::RollBack && position.halt.is_none()),
                                    "{action:?} at {position:?}, failed, then {then:?}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// The verify action may not write `import-refused`: the device was confirmed on the target.
    #[test]
    fn verification_never_takes_a_device_off_the_target() {
        assert!(advance(Position::at(Place::Imported), Step::ImportRefused).is_err());
        assert!(!Action::Verify
            .writes()
            .iter()
            .any(|records| records.contains(&Step::ImportRefused)));
    }

    /// Following `next` with the happy outcome of each action reaches the goal in a few steps,
    /// from every position that is not halted.
    #[test]
    fn the_happy_path_reaches_the_goal_from_everywhere() {
        for goal in [Goal::Migrate, Goal::Rollback] {
            for policy in policies() {
                for start in reachable() {
                    if start.halt.is_some() {
                        continue;
                    }
                    let mut position = start;
                    let mut actions = Vec::new();
                    loop {
                        let action = next(goal, position, policy);
                        actions.push(action);
                        assert!(actions.len() < 20, "{start:?} {goal:?}: {actions:?}");
                        if let Action::Done(end) = action {
                            let expected =
                                if policy.stopping && goal == Goal::Migrate && position.untouched()
                                {
                                    End::Interrupted
                                } else {
                                    End::Reached
                                };
                            assert_eq!(end, expected, "{start:?} {goal:?}: {actions:?}");
                            break;
                        }
                        // The longest sequence is the successful one.
                        let records = action
                            .records(position)
                            .into_iter()
                            .filter(|r| {
                                let refused = r.contains(&Step::DeleteRefused)
                                    || r.contains(&Step::ImportRefused);
                                let undone =
                                    r.contains(&Step::Unfrozen) && action != Action::Unfreeze;
                                !refused && !undone
                            })
                            .max_by_key(|r| r.len())
                            .unwrap();
                        for step in records.iter() {
                            position = advance(position, *step).unwrap();
                        }
                    }
                    let done = match goal {
                        Goal::Migrate => {
                            matches!(position.place, Place::Migrated | Place::RolledBack)
                                || (policy.stopping && position.untouched())
                        }
                        Goal::Rollback => {
                            position.untouched() || position.place == Place::RolledBack
                        }
                    };
                    assert!(done, "{start:?} {goal:?} ended at {position:?}");
                    assert!(!position.frozen, "{start:?} {goal:?}: downlinks stay off");
                }
            }
        }
    }

    #[test]
    fn rollback_on_failure_is_a_policy_next_reads() {
        let failed_after_delete = Position {
            halt: Some(Halt::Failed),
            ..Position::at(Place::ExportOnly)
        };
        let with = Policy {
            rollback_on_failure: true,
            ..Policy::default()
        };
        assert_eq!(
            next(Goal::Migrate, failed_after_delete, with),
            Action::RollBack
        );
        assert_eq!(
            next(Goal::Migrate, failed_after_delete, Policy::default()),
            Action::Done(End::Halted)
        );
        let stuck = Position {
            halt: Some(Halt::Stuck),
            ..Position::at(Place::Imported)
        };
        assert_eq!(next(Goal::Migrate, stuck, with), Action::Done(End::Halted));
    }

    /// D5: a delete that stopped between two servers is finished whatever the goal, also
    /// after Ctrl-C, before anything else: an import, or the re-create of a rollback.
    #[test]
    fn a_half_deleted_device_is_finished_first_whatever_the_goal() {
        use Step::*;
        let half = replay(
            [
                Detected,
                Exported,
                Validated,
                DeleteStarted,
                DeleteIncomplete,
            ],
            false,
        )
        .unwrap();
        assert_eq!(half.place, Place::PartlyDeleted);
        assert!(
            !half.untouched(),
            "a half-deleted device is not on the source"
        );
        assert!(!Place::PartlyDeleted.describe().starts_with("on the source"));
        for goal in [Goal::Migrate, Goal::Rollback] {
            for policy in policies() {
                assert_eq!(next(goal, half, policy), Action::FinishDelete);
            }
        }
        let done = advance(half, DeletedFromSource).unwrap();
        assert_eq!(done.place, Place::ExportOnly);
        // Nothing else moves it: not a refusal (it is not whole on the source), not an import.
        for step in [
            DeleteRefused,
            ImportStarted,
            RollbackStarted,
            Unfrozen,
            DeleteStarted,
        ] {
            assert!(advance(half, step).is_err(), "{step:?}");
        }
        // Halted there, a rollback on failure does not start: the re-create would collide
        // with what is left on the source.
        let failed = advance(half, Failed).unwrap();
        let with = Policy {
            rollback_on_failure: true,
            ..Policy::default()
        };
        assert_eq!(next(Goal::Migrate, failed, with), Action::Done(End::Halted));
        assert_eq!(
            next(Goal::Migrate, advance(failed, Retried).unwrap(), with),
            Action::FinishDelete
        );
    }

    #[test]
    fn format_one_journals_replay_with_an_implicit_retry() {
        use Step::*;
        let old = [Detected, Frozen, Unfrozen, Failed, Detected, Frozen];
        assert!(replay(old, false).is_err());
        let position = replay(old, true).unwrap();
        assert_eq!(position.place, Place::Frozen);
        assert!(position.frozen);
    }
}
