//! The work directory and the per-device journal: what has happened to each device, made
//! durable before the next destructive step, so that a crash at any instant leaves a truthful
//! record and `resume`/`rollback` know where every device is.
//!
//! Layout of a work directory:
//! ```text
//! migration.json            what was asked (profiles, applications, options, devices)
//! .lock                     held by the run using the directory
//! <device-id>/journal.json  the steps, oldest first
//! <device-id>/export.json   stdout of `end-devices get`, unchanged (0600: holds keys)
//! <device-id>/import.json   the rewritten document given to `end-devices create` (0600)
//! <device-id>/created.json  what the target printed after the import (0600)
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::device::ActivationMode;

/// Held while a journal is being replaced, so that a forced stop (second Ctrl-C) never lands
/// between writing and renaming.
pub static DURABLE_WRITE: Mutex<()> = Mutex::new(());

pub const MANIFEST: &str = "migration.json";

/// A work directory, locked by this process while the value lives.
#[derive(Debug)]
pub struct WorkDir {
    path: PathBuf,
    _lock: File,
}

impl WorkDir {
    /// The default: `./ttn-migrate-<UTC timestamp>`.
    pub fn default_path() -> PathBuf {
        let stamp = humantime::format_rfc3339_seconds(SystemTime::now())
            .to_string()
            .replace([':', '-'], "");
        PathBuf::from(format!("ttn-migrate-{}", stamp.trim_end_matches('Z')))
    }

    /// Creates a new work directory (mode 0700). An existing, non-empty directory is refused:
    /// it belongs to another migration, which `resume` continues.
    pub fn create(path: &Path) -> Result<WorkDir> {
        if path.exists() {
            let empty = fs::read_dir(path)
                .with_context(|| format!("could not read {}", path.display()))?
                .next()
                .is_none();
            if !empty {
                bail!(
                    "work directory {} is not empty: it holds another migration. Continue it with \
                     `ttn-session-migrate resume {}`, or choose a new --work-dir",
                    path.display(),
                    path.display()
                );
            }
        } else {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(path)
                .with_context(|| format!("could not create work directory {}", path.display()))?;
        }
        WorkDir::lock(path)
    }

    /// Opens an existing work directory for `resume` or `rollback`.
    pub fn open(path: &Path) -> Result<WorkDir> {
        if !path.join(MANIFEST).is_file() {
            bail!(
                "{} is not a work directory of ttn-session-migrate (it has no {MANIFEST})",
                path.display()
            );
        }
        WorkDir::lock(path)
    }

    fn lock(path: &Path) -> Result<WorkDir> {
        let lock_path = path.join(".lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .with_context(|| format!("could not open {}", lock_path.display()))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => bail!(
                "work directory {} is in use by another ttn-session-migrate run; wait for it to finish",
                path.display()
            ),
            Err(fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("could not lock {}", lock_path.display()))
            }
        }
        let path = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        Ok(WorkDir { path, _lock: lock })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn device_dir(&self, device_id: &str) -> PathBuf {
        self.path.join(device_id)
    }

    pub fn write_manifest(&self, manifest: &Manifest) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(manifest)?;
        write_durably(&self.path.join(MANIFEST), &bytes)
    }

    pub fn read_manifest(&self) -> Result<Manifest> {
        let path = self.path.join(MANIFEST);
        let bytes =
            fs::read(&path).with_context(|| format!("could not read {}", path.display()))?;
        let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| {
            anyhow::anyhow!(
                "{} is damaged ({e}); nothing was changed. Restore it, or inspect the device \
                 directories by hand",
                path.display()
            )
        })?;
        if manifest.format != Manifest::FORMAT {
            bail!(
                "{} was written by another version of ttn-session-migrate (format {})",
                path.display(),
                manifest.format
            );
        }
        Ok(manifest)
    }

    /// The journal of a device, created empty (with its directory) if it has none yet.
    pub fn journal(&self, device_id: &str) -> Result<Journal> {
        let dir = self.device_dir(device_id);
        let path = dir.join("journal.json");
        if path.exists() {
            return Journal::load(&path);
        }
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("could not create {}", dir.display()))?;
        Ok(Journal {
            path,
            records: Vec::new(),
        })
    }

    /// Whether a device has a journal.
    pub fn has_journal(&self, device_id: &str) -> bool {
        self.device_dir(device_id).join("journal.json").exists()
    }
}

/// The directory a file is in; `.` for a bare file name.
pub fn directory_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Writes a file whole or not at all: temp file, fsync, rename, fsync of the directory.
/// Mode 0600, since the files of a work directory hold keys.
pub fn write_durably(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = directory_of(path);
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temp = dir.join(format!(".{name}.tmp"));
    let _guard = DURABLE_WRITE.lock().unwrap_or_else(|e| e.into_inner());
    let result = (|| -> std::io::Result<()> {
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, path)?;
        File::open(dir)?.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&temp);
        return Err(e).with_context(|| format!("could not write {}", path.display()));
    }
    Ok(())
}

/// What a migration was asked to do, so `resume` and `rollback` can act without the original
/// command line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    pub format: u32,
    pub created_at: String,
    /// Profile label and the absolute path of its config file.
    pub source: ProfileRecord,
    pub target: ProfileRecord,
    pub application_id: String,
    pub target_application_id: String,
    /// `--otaa`/`--abp`, if given.
    pub mode: Option<ActivationMode>,
    pub freeze_downlinks: bool,
    pub devices: Vec<String>,
}

impl Manifest {
    pub const FORMAT: u32 = 1;
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProfileRecord {
    pub label: String,
    pub path: PathBuf,
}

/// The steps a device goes through, as the journal names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    Detected,
    /// `--freeze-downlinks`: downlinks turned off on the source.
    Frozen,
    /// Downlinks turned back on (restored) on the source after a refused export.
    Unfrozen,
    Exported,
    Validated,
    /// About to delete from the source: if no `deleted-from-source` follows, the delete may or
    /// may not have happened.
    DeleteStarted,
    DeletedFromSource,
    /// The source refused the delete with a definite answer: the device is still there.
    DeleteRefused,
    ImportStarted,
    /// The target refused the import with a definite answer: nothing was created there.
    ImportRefused,
    Imported,
    Verified,
    Failed,
    RollbackStarted,
    /// Re-created on the source from the saved export.
    RecreatedOnSource,
    DeletedFromTarget,
    RolledBack,
}

/// One journal entry. Commands are shell lines, which never hold keys.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    pub step: Step,
    pub at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_status: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ActivationMode>,
    /// A file of the device directory this step wrote (export, import document).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// `frozen`: `mac_settings.schedule_downlinks` before the freeze (`null` = unset).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_even_if_null"
    )]
    pub schedule_downlinks_before: Option<Option<bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Record {
    pub fn new(step: Step) -> Record {
        Record {
            step,
            at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            command: None,
            exit_status: None,
            mode: None,
            file: None,
            schedule_downlinks_before: None,
            detail: None,
        }
    }

    pub fn command(mut self, command: impl Into<String>, exit_status: Option<i32>) -> Record {
        self.command = Some(command.into());
        self.exit_status = exit_status;
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Record {
        self.detail = Some(detail.into());
        self
    }

    pub fn file(mut self, file: impl Into<String>) -> Record {
        self.file = Some(file.into());
        self
    }
}

/// A field that is present with `null` is `Some(None)`; an absent one stays `None` (default).
fn present_even_if_null<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<bool>>, D::Error> {
    Option::<bool>::deserialize(deserializer).map(Some)
}

/// Where a device is, as far as its journal can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// Nothing destructive has happened: the device is on the source, unchanged (or frozen).
    OnSource,
    /// A delete started and did not report back: ask the source.
    MaybeDeleted,
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
    /// Back on the source; may still be on the target too.
    Recreated,
    /// Back on the source only: done.
    RolledBack,
}

impl Position {
    pub fn is_final(self) -> bool {
        matches!(self, Position::Migrated | Position::RolledBack)
    }

    /// Plain words for the operator: where the device is.
    pub fn describe(self) -> &'static str {
        match self {
            Position::OnSource => "on the source",
            Position::MaybeDeleted => "on the source, or deleted from it (the delete did not report back)",
            Position::ExportOnly => "deleted from the source; only in the saved export",
            Position::MaybeImported => "in the saved export; maybe imported into the target (the import did not report back)",
            Position::Imported => "on the target (not yet verified)",
            Position::Migrated => "on the target, session verified",
            Position::MaybeRecreated => "in the saved export; maybe re-created on the source",
            Position::Recreated => "back on the source (maybe still on the target)",
            Position::RolledBack => "back on the source",
        }
    }
}

/// The journal of one device: its records, oldest first, in `<device>/journal.json`.
#[derive(Debug, Clone)]
pub struct Journal {
    path: PathBuf,
    records: Vec<Record>,
}

#[derive(Serialize, Deserialize)]
struct JournalFile {
    records: Vec<Record>,
}

impl Journal {
    fn load(path: &Path) -> Result<Journal> {
        let bytes = fs::read(path).with_context(|| format!("could not read {}", path.display()))?;
        let file: JournalFile = serde_json::from_slice(&bytes).map_err(|e| {
            anyhow::anyhow!(
                "journal {} is damaged ({e}); nothing was changed for this device. Restore the \
                 file, or check where the device is in the Console",
                path.display()
            )
        })?;
        let journal = Journal {
            path: path.to_path_buf(),
            records: file.records,
        };
        journal.replay().with_context(|| {
            format!(
                "journal {} does not describe a possible history; nothing was changed for this \
                 device. Restore the file, or check where the device is in the Console",
                path.display()
            )
        })?;
        Ok(journal)
    }

    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// Appends a record and makes it durable before returning.
    pub fn append(&mut self, record: Record) -> Result<()> {
        self.records.push(record);
        let bytes = serde_json::to_vec_pretty(&JournalFile {
            records: self.records.clone(),
        })?;
        if let Err(e) = write_durably(&self.path, &bytes) {
            self.records.pop();
            return Err(e);
        }
        Ok(())
    }

    pub fn position(&self) -> Position {
        self.replay().unwrap_or(Position::OnSource)
    }

    /// The last record of a step.
    pub fn last(&self, step: Step) -> Option<&Record> {
        self.records.iter().rev().find(|r| r.step == step)
    }

    pub fn mode(&self) -> Option<ActivationMode> {
        self.records.iter().rev().find_map(|r| r.mode)
    }

    /// The file of the newest export, relative to the device directory.
    pub fn export_file(&self) -> Option<PathBuf> {
        self.file_of(Step::Exported)
    }

    /// Whether our import may have reached the target (and not been removed since).
    pub fn may_be_on_target(&self) -> bool {
        let mut maybe = false;
        for record in &self.records {
            match record.step {
                Step::ImportStarted | Step::Imported => maybe = true,
                Step::ImportRefused | Step::DeletedFromTarget => maybe = false,
                _ => {}
            }
        }
        maybe
    }

    /// The file the last record of `step` wrote, as a path.
    pub fn file_of(&self, step: Step) -> Option<PathBuf> {
        self.last(step)
            .and_then(|r| r.file.as_ref())
            .map(|f| self.dir().join(f))
    }

    /// How many records of a step there are (numbers the files of later attempts).
    pub fn count(&self, step: Step) -> usize {
        self.records.iter().filter(|r| r.step == step).count()
    }

    /// Whether downlinks may be turned off on the source by this migration right now.
    pub fn frozen(&self) -> bool {
        self.records
            .iter()
            .fold(false, |frozen, record| match record.step {
                Step::Frozen => true,
                Step::Unfrozen => false,
                _ => frozen,
            })
    }

    /// The value to restore after a freeze, if the source was frozen.
    pub fn schedule_downlinks_before(&self) -> Option<Option<bool>> {
        self.last(Step::Frozen)
            .and_then(|r| r.schedule_downlinks_before)
    }

    /// Replays the records through the possible transitions. A history no run could have
    /// written (a hand edit, a truncated file) is an error, never a guess.
    fn replay(&self) -> Result<Position> {
        use Position::*;
        let mut position = OnSource;
        for (i, record) in self.records.iter().enumerate() {
            let next = match (position, record.step) {
                (_, Step::Failed) => Some(position),
                (
                    OnSource,
                    Step::Detected
                    | Step::Frozen
                    | Step::Unfrozen
                    | Step::Exported
                    | Step::Validated,
                ) => Some(OnSource),
                (OnSource | MaybeDeleted, Step::DeleteStarted) => Some(MaybeDeleted),
                (MaybeDeleted, Step::DeletedFromSource) => Some(ExportOnly),
                (MaybeDeleted, Step::DeleteRefused) => Some(OnSource),
                (ExportOnly | MaybeImported, Step::ImportStarted) => Some(MaybeImported),
                (MaybeImported, Step::Imported) => Some(Imported),
                (MaybeImported, Step::ImportRefused) => Some(ExportOnly),
                (MaybeImported, Step::DeletedFromSource) => Some(ExportOnly),
                (Imported, Step::Verified) => Some(Migrated),
                (Imported | Migrated, Step::Imported) => Some(Imported),
                (
                    ExportOnly | MaybeImported | Imported | Migrated | MaybeRecreated,
                    Step::RollbackStarted,
                ) => Some(MaybeRecreated),
                (MaybeRecreated, Step::RecreatedOnSource) => Some(Recreated),
                (Recreated, Step::DeletedFromTarget) => Some(Recreated),
                (Recreated, Step::RolledBack) => Some(RolledBack),
                _ => None,
            };
            position = match next {
                Some(p) => p,
                None => bail!(
                    "record {} (`{}`) cannot follow a device that is {}",
                    i + 1,
                    serde_json::to_string(&record.step)
                        .unwrap_or_default()
                        .trim_matches('"'),
                    position.describe()
                ),
            };
        }
        Ok(position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal_with(steps: &[Step]) -> (tempfile::TempDir, Journal) {
        let dir = tempfile::tempdir().unwrap();
        let work = WorkDir::create(&dir.path().join("w")).unwrap();
        let mut journal = work.journal("dev-1").unwrap();
        for step in steps {
            journal.append(Record::new(*step)).unwrap();
        }
        (dir, journal)
    }

    #[test]
    fn positions_follow_the_steps() {
        use Step::*;
        let cases: &[(&[Step], Position)] = &[
            (&[], Position::OnSource),
            (&[Detected, Exported, Validated], Position::OnSource),
            (
                &[Detected, Exported, Validated, DeleteStarted],
                Position::MaybeDeleted,
            ),
            (
                &[Exported, Validated, DeleteStarted, DeletedFromSource],
                Position::ExportOnly,
            ),
            (
                &[
                    Exported,
                    Validated,
                    DeleteStarted,
                    DeletedFromSource,
                    ImportStarted,
                ],
                Position::MaybeImported,
            ),
            (
                &[
                    Exported,
                    Validated,
                    DeleteStarted,
                    DeletedFromSource,
                    ImportStarted,
                    Imported,
                    Verified,
                ],
                Position::Migrated,
            ),
            (
                &[
                    Exported,
                    Validated,
                    DeleteStarted,
                    DeletedFromSource,
                    ImportStarted,
                    Failed,
                ],
                Position::MaybeImported,
            ),
            (
                &[
                    Exported,
                    Validated,
                    DeleteStarted,
                    DeletedFromSource,
                    ImportStarted,
                    Failed,
                    RollbackStarted,
                    RecreatedOnSource,
                    RolledBack,
                ],
                Position::RolledBack,
            ),
        ];
        for (steps, expected) in cases {
            let (_dir, journal) = journal_with(steps);
            assert_eq!(journal.position(), *expected, "{steps:?}");
        }
    }

    #[test]
    fn a_journal_survives_reopening_and_refuses_impossible_histories() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w");
        {
            let work = WorkDir::create(&path).unwrap();
            work.write_manifest(&Manifest {
                format: Manifest::FORMAT,
                created_at: "now".into(),
                source: ProfileRecord {
                    label: "ce".into(),
                    path: "/ce.yml".into(),
                },
                target: ProfileRecord {
                    label: "cloud".into(),
                    path: "/cloud.yml".into(),
                },
                application_id: "app-1".into(),
                target_application_id: "app-1".into(),
                mode: None,
                freeze_downlinks: false,
                devices: vec!["dev-1".into()],
            })
            .unwrap();
            let mut journal = work.journal("dev-1").unwrap();
            journal
                .append(Record::new(Step::Exported).file("export.json"))
                .unwrap();
            journal.append(Record::new(Step::DeleteStarted)).unwrap();
        }
        let work = WorkDir::open(&path).unwrap();
        let journal = work.journal("dev-1").unwrap();
        assert_eq!(journal.position(), Position::MaybeDeleted);
        assert_eq!(
            journal.export_file(),
            Some(work.device_dir("dev-1").join("export.json"))
        );
        let mode = fs::metadata(work.device_dir("dev-1").join("journal.json")).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o600
        );

        let file = work.device_dir("dev-1").join("journal.json");
        fs::write(&file, r#"{"records":[{"step":"verified","at":"x"}]}"#).unwrap();
        let err = work.journal("dev-1").unwrap_err();
        assert!(format!("{err:#}").contains("cannot follow"), "{err:#}");
        fs::write(&file, "{not json").unwrap();
        let err = work.journal("dev-1").unwrap_err();
        assert!(format!("{err:#}").contains("is damaged"), "{err:#}");
    }

    #[test]
    fn an_unset_setting_before_a_freeze_survives_a_reload() {
        let (_dir, mut journal) = journal_with(&[Step::Detected]);
        let mut record = Record::new(Step::Frozen);
        record.schedule_downlinks_before = Some(None);
        journal.append(record).unwrap();
        let reloaded = Journal::load(&journal.path).unwrap();
        assert_eq!(reloaded.schedule_downlinks_before(), Some(None));
    }

    #[test]
    fn a_second_run_on_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w");
        let _first = WorkDir::create(&path).unwrap();
        fs::write(path.join(MANIFEST), "{}").unwrap();
        let err = WorkDir::open(&path).unwrap_err();
        assert!(err.to_string().contains("in use"), "{err}");
    }
}
