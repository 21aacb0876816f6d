//! The work directory and the per-device journal: what has happened to each device, made
//! durable before the next destructive step, so that a crash at any instant leaves a truthful
//! record and `resume`/`rollback` know where every device is.
//!
//! Layout of a work directory (directories 0700, files 0600: exports hold keys):
//! ```text
//! migration.json                what was asked: profiles, applications, options, devices (format 1);
//!                               what a run learned: the target's create rate, when it ended
//! .lock                         held (flock) by the run using the directory
//! <device-id>/journal.json      {"format": 2, "records": [...]}: the device's records, oldest first
//! <device-id>/export.json       stdout of the documented `end-devices get`, unchanged
//! <device-id>/import.json       the rewritten document given to `end-devices create`
//! <device-id>/created.json      what the target printed after the import (verified against)
//! <device-id>/rollback.json     the export rewritten for the source, for a rollback's re-create
//! ```
//! A later attempt numbers its files: `export.2.json` with `import.2.json` (after a new export),
//! `created.2.json` (the second import), `rollback.2.json`. The record that wrote a file names
//! it (`file`), so the newest record of a step says which file is current; no file is ever
//! removed or overwritten (a crash can lose the in-memory `exported` record, see
//! [`can_wait`]: the next attempt then exports to the same name again, while the device is still
//! on the source).
//!
//! Records (`step`): `detected`, `frozen`, `unfrozen`, `exported`, `validated`,
//! `delete-started`, `deleted-from-source`, `delete-refused`, `delete-incomplete`, `import-started`,
//! `import-refused`, `imported`, `verified`, `failed`, `stuck`, `retried`, `rollback-started`,
//! `recreated-on-source`, `deleted-from-target`, `rolled-back`; each with its time (`at`), and
//! where it applies the shell line (`command`, never keys), `exit_status`, `mode`, `file`,
//! `schedule_downlinks_before`, `detail` and, on `delete-started`, `target_free` (the target
//! had no device with this ID before the delete). Which record may follow which is
//! [`crate::lifecycle::advance`]; [`Journal::append`] refuses any other, and a file that does
//! not replay is reported as damaged, never guessed. Format 1 (no `format` field) is read with
//! an implicit `retried` wherever a record follows a `failed`.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::SystemTime;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::device::ActivationMode;
use crate::lifecycle::{advance, replay, ImpossibleStep};
pub use crate::lifecycle::{Position, Step};
use crate::ttn_lw_cli::quote;

/// Writers share it (read side) while a file is being replaced; a forced stop (second Ctrl-C)
/// takes it exclusively, so it waits for the writes in flight and none starts after it: the
/// stop never lands between writing and renaming. Writers never exclude each other: each
/// writes its own device's files, and one worker's fsync must not hold up the others.
pub static DURABLE_WRITE: RwLock<()> = RwLock::new(());

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
            WorkDir::check_new(path)?;
        } else {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(path)
                .with_context(|| format!("could not create work directory {}", path.display()))?;
        }
        WorkDir::lock(path)
    }

    /// Whether `path` can hold a new migration: absent or empty (a dry run checks too).
    pub fn check_new(path: &Path) -> Result<()> {
        if !path.exists() {
            return Ok(());
        }
        let empty = fs::read_dir(path)
            .with_context(|| format!("could not read {}", path.display()))?
            .next()
            .is_none();
        if !empty && path.join(MANIFEST).is_file() {
            return Err(crate::exit::usage(format!(
                "work directory {} holds another migration. Continue it with \
                 `ttn-session-migrate resume {}`, see it with `ttn-session-migrate status {}`, \
                 or choose a new --work-dir",
                path.display(),
                quote(&path.display().to_string()),
                quote(&path.display().to_string())
            )));
        }
        if !empty {
            return Err(crate::exit::usage(format!(
                "--work-dir {} is not empty and is not a work directory of ttn-session-migrate; \
                 choose a new or empty directory",
                path.display()
            )));
        }
        Ok(())
    }

    /// Opens an existing work directory for `resume` or `rollback`.
    pub fn open(path: &Path) -> Result<WorkDir> {
        if !path.join(MANIFEST).is_file() {
            return Err(crate::exit::usage(format!(
                "{} is not a work directory of ttn-session-migrate (it has no {MANIFEST})",
                path.display()
            )));
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

    /// Writes `migration.json`, after creating the directory of each of its devices: the
    /// manifest's directory sync then makes their names durable too, so a device's first
    /// journal write need not sync the work directory on its worker's path.
    pub fn write_manifest(&self, manifest: &Manifest) -> Result<()> {
        for device in &manifest.devices {
            make_device_dir(&self.device_dir(device))?;
        }
        self.update_manifest(manifest)
    }

    /// Rewrites `migration.json` of a directory whose devices have their directories.
    pub fn update_manifest(&self, manifest: &Manifest) -> Result<()> {
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
        WorkDir::journal_in(&self.path, device_id)
    }

    /// [`WorkDir::journal`] for the work directory at `work` (locked by the caller).
    pub fn journal_in(work: &Path, device_id: &str) -> Result<Journal> {
        let dir = work.join(device_id);
        let path = dir.join("journal.json");
        if path.exists() {
            return Journal::load(&path, device_id);
        }
        if !dir.is_dir() {
            // Not in the manifest (which created the others): its name is made durable here.
            make_device_dir(&dir)?;
            File::open(work)
                .and_then(|d| d.sync_all())
                .with_context(|| format!("could not sync {}", work.display()))?;
        }
        Ok(Journal::new(path, device_id, true))
    }

    /// Whether a device has a journal.
    pub fn has_journal(&self, device_id: &str) -> bool {
        self.device_dir(device_id).join("journal.json").exists()
    }
}

fn make_device_dir(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("could not create {}", dir.display()))
}

/// The directory a file is in; `.` for a bare file name.
pub fn directory_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// How much of a write survives a crash once [`write_file`] returns. A file is always replaced
/// whole (temp file, then rename): a reader never sees half of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Content and name: fsync of the file, rename, fsync of the directory.
    Full,
    /// The content (fsync of the file, then rename), not yet the name: until the directory is
    /// synced a crash may leave the file as it was before, never empty or torn. For the journal
    /// of a migrated device at its last record, `verified`, whose loss only puts the journal
    /// behind (`import-started` stays, and a read-back confirms the import again).
    Content,
    /// Neither: temp file and rename only, so a crash may leave the file empty. Only for a copy
    /// that is read with a fallback: `create`'s answer, which verification reads back from the
    /// target when the file does not parse.
    Cached,
}

/// Writes a file whole or not at all, mode 0600 (the files of a work directory hold keys), as
/// durable as asked. Every fsync here sits on the path of the worker that writes: on a disk
/// whose fsync takes milliseconds (a laptop, an SD card), fewer of them keep the workers calling
/// ttn-lw-cli.
pub fn write_file(path: &Path, bytes: &[u8], durability: Durability) -> Result<()> {
    replace(path, bytes, durability, || Ok(()))
}

/// [`write_file`], running `before_rename` once the new content is synced.
fn replace(
    path: &Path,
    bytes: &[u8],
    durability: Durability,
    before_rename: impl FnOnce() -> Result<()>,
) -> Result<()> {
    let _guard = DURABLE_WRITE.read().unwrap_or_else(|e| e.into_inner());
    let (temp, file) =
        write_temp(path, bytes).with_context(|| format!("could not write {}", path.display()))?;
    let result = (|| -> Result<()> {
        if durability != Durability::Cached {
            file.sync_all()?;
        }
        before_rename()?;
        fs::rename(&temp, path)?;
        if durability == Durability::Full {
            File::open(directory_of(path))?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result.with_context(|| format!("could not write {}", path.display()))
}

/// The bytes in `.<name>.tmp` next to `path`, not yet synced; removed again if writing fails.
fn write_temp(path: &Path, bytes: &[u8]) -> std::io::Result<(PathBuf, File)> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temp = directory_of(path).join(format!(".{name}.tmp"));
    let written = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .and_then(|mut file| file.write_all(bytes).map(|()| file));
    match written {
        Ok(file) => Ok((temp, file)),
        Err(e) => {
            let _ = fs::remove_file(&temp);
            Err(e)
        }
    }
}

/// A device file written with [`write_device_file`], its content being synced in the
/// background; [`Journal::sync_with_next_write`] makes the journal's next write wait for it.
#[derive(Debug)]
pub struct Syncing {
    path: PathBuf,
    sync: Sync,
}

#[derive(Debug)]
enum Sync {
    Running(std::thread::JoinHandle<std::io::Result<()>>),
    Done(std::io::Result<()>),
}

impl Syncing {
    fn wait(self) -> Result<()> {
        let synced = match self.sync {
            Sync::Running(thread) => thread
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("the sync thread panicked"))),
            Sync::Done(synced) => synced,
        };
        synced.with_context(|| format!("could not write {}", self.path.display()))
    }
}

/// Writes a file of a device directory (export, import document, detection, rollback
/// document) that the device's journal names in a record before any call depends on it: the
/// file is in place at once (temp file, rename) and its content is synced in the background,
/// overlapping the worker's next call. The journal's next write waits for that sync, then
/// syncs the directory, which makes the file's name durable with the journal's. A crash
/// before then may leave the file empty, but then no record on disk names it (the record
/// naming it is not durable yet), and the next attempt writes it again. Nor does this replace a
/// file that a record on disk names: files are numbered by the records before them (see the
/// layout above), so such a file's number is taken.
pub fn write_device_file(path: &Path, bytes: &[u8]) -> Result<Syncing> {
    let _guard = DURABLE_WRITE.read().unwrap_or_else(|e| e.into_inner());
    let file = (|| -> std::io::Result<File> {
        let (temp, file) = write_temp(path, bytes)?;
        if let Err(e) = fs::rename(&temp, path) {
            let _ = fs::remove_file(&temp);
            return Err(e);
        }
        Ok(file)
    })()
    .with_context(|| format!("could not write {}", path.display()))?;
    let sync = match std::thread::Builder::new()
        .name("sync".into())
        .spawn(move || file.sync_all())
    {
        Ok(thread) => Sync::Running(thread),
        // No thread to spare: sync here.
        Err(_) => Sync::Done(File::open(path).and_then(|f| f.sync_all())),
    };
    Ok(Syncing {
        path: path.to_path_buf(),
        sync,
    })
}

/// [`write_file`] with [`Durability::Full`].
pub fn write_durably(path: &Path, bytes: &[u8]) -> Result<()> {
    write_file(path, bytes, Durability::Full)
}

/// Records that may wait in memory for the next durable write: each is followed, before any call
/// that changes a deployment, by a record that is written at once (`delete-started` before the
/// delete, `import-started` before the create, `verified` or a failure at the end), and losing
/// one in a crash leaves a journal that is only behind: a lost `detected`, `exported` or
/// `validated` means exporting again while the device is still on the source; a lost
/// `deleted-from-source` or `imported` means a `delete-started` or `import-started` without its
/// answer, which the lifecycle confirms with a read. The files they name are synced before the
/// write that carries them (see [`write_device_file`]). Each journal write costs two fsyncs on
/// the worker's path; five per device less keep the workers calling ttn-lw-cli rather than
/// waiting for the disk.
fn can_wait(step: Step) -> bool {
    matches!(
        step,
        Step::Detected
            | Step::Exported
            | Step::Validated
            | Step::DeletedFromSource
            | Step::Imported
    )
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
    /// `--jobs` of the run, kept by `resume`; absent in manifests of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs: Option<u32>,
    /// `--target-rate` of the run (target creates per minute), kept by `resume`; absent when
    /// not given, and in manifests of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_rate: Option<u32>,
    /// `--target-burst` of the run, kept by `resume` with the rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_burst: Option<u32>,
    /// The target's creates per minute, as it named them refusing one (`rate_limit_exceeded`)
    /// in a run without `--target-rate`: `resume` paces from its first create at this rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learned_target_rate: Option<u32>,
    /// When the last run on the directory ended (RFC 3339): a `resume` takes the target's
    /// bucket as empty then, and refilled at the rate since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
}

impl Manifest {
    pub const FORMAT: u32 = 1;
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProfileRecord {
    pub label: String,
    pub path: PathBuf,
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
    /// `delete-started`: the target had no device with this ID just before (checked with a
    /// `get`). A device found there later, half-created, is then this migration's leftover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_free: Option<bool>,
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
            target_free: None,
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

/// The journal of one device: its records, oldest first, in `<device>/journal.json`.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    device_id: String,
    records: Vec<Record>,
    /// Where the records leave the device; checked on every append.
    position: Position,
    /// Written to disk (false: a dry run's journal, kept in memory).
    durable: bool,
    /// How many of the records are on disk; the others [can wait](can_wait).
    written: usize,
    /// Device files whose content is still being synced; the next write waits for them.
    syncing: Vec<Syncing>,
}

#[derive(Serialize, Deserialize)]
struct JournalFile {
    /// [`Journal::FORMAT`]; absent in format 1.
    #[serde(default = "format_one")]
    format: u32,
    records: Vec<Record>,
}

fn format_one() -> u32 {
    1
}

impl Journal {
    /// Version of `journal.json`. 2 added the `format` field and the `stuck` and `retried`
    /// records; format 1 (no `format` field) is read with an implicit `retried` wherever a
    /// record follows a failure.
    pub const FORMAT: u32 = 2;

    fn new(path: PathBuf, device_id: &str, durable: bool) -> Journal {
        Journal {
            path,
            device_id: device_id.to_string(),
            records: Vec::new(),
            position: Position::START,
            durable,
            written: 0,
            syncing: Vec::new(),
        }
    }

    /// A journal whose new records stay in memory (a dry run), for the files of `dir`: the
    /// device's journal on disk if it has one, else an empty one. Nothing is written.
    pub fn in_memory(dir: &Path, device_id: &str) -> Result<Journal> {
        let path = dir.join("journal.json");
        let mut journal = match path.exists() {
            true => Journal::load(&path, device_id)?,
            false => Journal::new(path, device_id, false),
        };
        journal.durable = false;
        Ok(journal)
    }

    /// How many records there are.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    fn load(path: &Path, device_id: &str) -> Result<Journal> {
        let bytes = fs::read(path).with_context(|| format!("could not read {}", path.display()))?;
        let damaged = |why: String| {
            anyhow::anyhow!(
                "journal {} is damaged ({why}); nothing was changed for this device. Restore the \
                 file, or check where the device is in the Console",
                path.display()
            )
        };
        let file: JournalFile =
            serde_json::from_slice(&bytes).map_err(|e| damaged(e.to_string()))?;
        if file.format > Journal::FORMAT {
            bail!(
                "journal {} was written by a newer ttn-session-migrate (format {}); use that version",
                path.display(),
                file.format
            );
        }
        let position =
            replay(file.records.iter().map(|r| r.step), file.format < 2).map_err(|(i, e)| {
                damaged(format!(
                    "record {} does not describe a possible history: {e}",
                    i + 1
                ))
            })?;
        let mut journal = Journal::new(path.to_path_buf(), device_id, true);
        journal.written = file.records.len();
        journal.records = file.records;
        journal.position = position;
        Ok(journal)
    }

    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    #[cfg(test)]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a record and makes it durable before returning, with every record before it
    /// (the file is rewritten whole). A record that [can wait](can_wait) is kept in memory and
    /// written with the next one that cannot. A record that cannot follow the journal's position
    /// is refused before anything is written.
    pub fn append(&mut self, record: Record) -> Result<()> {
        let position = advance(self.position, record.step).map_err(|e: ImpossibleStep| {
            anyhow::anyhow!(
                "refused to journal `{}` for device `{}`: the device is {} ({e}); this is a bug in \
                 ttn-session-migrate, nothing was written",
                record.step.name(),
                self.device_id,
                self.position.describe()
            )
        })?;
        let step = record.step;
        self.records.push(record);
        if !can_wait(step) {
            if let Err(e) = self.write() {
                self.records.pop();
                return Err(e);
            }
        }
        self.position = position;
        Ok(())
    }

    /// Makes the journal's next write wait for a device file's sync (see
    /// [`write_device_file`]): the record naming the file is then never durable before it.
    pub fn sync_with_next_write(&mut self, file: Syncing) {
        self.syncing.push(file);
    }

    /// Writes the records that waited in memory, if any.
    pub fn flush(&mut self) -> Result<()> {
        match self.written < self.records.len() {
            true => self.write(),
            false => Ok(()),
        }
    }

    fn write(&mut self) -> Result<()> {
        if !self.durable {
            return Ok(());
        }
        let bytes = serde_json::to_vec_pretty(&JournalFile {
            format: Journal::FORMAT,
            records: self.records.clone(),
        })?;
        // The last record of a migrated device can lose its name in a crash (see
        // `Durability::Content`); every other write makes the journal durable as it stands.
        let durability = match self.records.last().map(|r| r.step) {
            Some(Step::Verified) => Durability::Content,
            _ => Durability::Full,
        };
        // The files these records name are synced before the journal that names them.
        let syncing = std::mem::take(&mut self.syncing);
        replace(&self.path, &bytes, durability, || {
            syncing.into_iter().try_for_each(Syncing::wait)
        })?;
        self.written = self.records.len();
        Ok(())
    }

    pub fn position(&self) -> Position {
        self.position
    }

    /// The records, oldest first.
    #[cfg(test)]
    pub fn records(&self) -> &[Record] {
        &self.records
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

    /// Whether the target had no device with this ID before this migration's last delete from
    /// the source, so that what an import left there is this migration's.
    pub fn target_was_free(&self) -> bool {
        self.last(Step::DeleteStarted)
            .is_some_and(|r| r.target_free == Some(true))
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
        self.position.frozen
    }

    /// The value to restore after a freeze, if the source was frozen.
    pub fn schedule_downlinks_before(&self) -> Option<Option<bool>> {
        self.last(Step::Frozen)
            .and_then(|r| r.schedule_downlinks_before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::Place;
    use std::os::unix::fs::PermissionsExt;

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
        let cases: &[(&[Step], Place)] = &[
            (&[], Place::OnSource),
            (&[Detected, Exported, Validated], Place::Validated),
            (
                &[Detected, Exported, Validated, DeleteStarted],
                Place::MaybeDeleted,
            ),
            (
                &[Exported, Validated, DeleteStarted, DeletedFromSource],
                Place::ExportOnly,
            ),
            (
                &[
                    Exported,
                    Validated,
                    DeleteStarted,
                    DeletedFromSource,
                    ImportStarted,
                ],
                Place::MaybeImported,
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
                Place::Migrated,
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
                Place::MaybeImported,
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
                Place::RolledBack,
            ),
        ];
        for (steps, expected) in cases {
            let (_dir, journal) = journal_with(steps);
            assert_eq!(journal.position().place, *expected, "{steps:?}");
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
                jobs: None,
                target_rate: None,
                target_burst: None,
                learned_target_rate: None,
                ended_at: None,
            })
            .unwrap();
            let mut journal = work.journal("dev-1").unwrap();
            journal
                .append(Record::new(Step::Exported).file("export.json"))
                .unwrap();
            journal.append(Record::new(Step::Validated)).unwrap();
            journal.append(Record::new(Step::DeleteStarted)).unwrap();
        }
        let work = WorkDir::open(&path).unwrap();
        let journal = work.journal("dev-1").unwrap();
        assert_eq!(journal.position().place, Place::MaybeDeleted);
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
        assert!(format!("{err:#}").contains("is damaged"), "{err:#}");
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
        let reloaded = Journal::load(&journal.path, "dev-1").unwrap();
        assert_eq!(reloaded.schedule_downlinks_before(), Some(None));
    }

    #[test]
    fn append_refuses_an_impossible_record_and_names_device_record_and_position() {
        let (_dir, mut journal) = journal_with(&[
            Step::Exported,
            Step::Validated,
            Step::DeleteStarted,
            Step::DeletedFromSource,
            Step::ImportStarted,
            Step::Imported,
        ]);
        let before = fs::read(journal.path()).unwrap();
        let err = journal
            .append(Record::new(Step::ImportRefused))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`import-refused`"), "{err}");
        assert!(err.contains("`dev-1`"), "{err}");
        assert!(err.contains("on the target (not yet verified)"), "{err}");
        assert_eq!(
            fs::read(journal.path()).unwrap(),
            before,
            "the file changed"
        );
        assert_eq!(journal.position().place, Place::Imported);
        assert_eq!(journal.records().len(), 6);
    }

    /// `detected`, `exported` and `validated` wait in memory; `delete-started` writes them all
    /// before the delete; `deleted-from-source` waits for `import-started`; `flush` writes what
    /// waits.
    #[test]
    fn records_that_can_wait_are_written_with_the_next_durable_one() {
        use Step::*;
        let on_disk = |journal: &Journal| -> Vec<String> {
            match fs::read(journal.path()) {
                Ok(bytes) => {
                    let file: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                    file["records"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|r| r["step"].as_str().unwrap().to_string())
                        .collect()
                }
                Err(_) => Vec::new(),
            }
        };
        let (_dir, mut journal) = journal_with(&[Detected, Exported, Validated]);
        assert!(on_disk(&journal).is_empty());
        journal.append(Record::new(DeleteStarted)).unwrap();
        assert_eq!(
            on_disk(&journal),
            ["detected", "exported", "validated", "delete-started"]
        );
        journal.append(Record::new(DeletedFromSource)).unwrap();
        assert_eq!(on_disk(&journal).len(), 4);
        journal.append(Record::new(ImportStarted)).unwrap();
        assert_eq!(on_disk(&journal).len(), 6);
        journal.append(Record::new(Imported)).unwrap();
        journal.flush().unwrap();
        assert_eq!(on_disk(&journal).last().unwrap(), "imported");
        // What is on disk always replays, and never ahead of what happened.
        let reloaded = Journal::load(journal.path(), "dev-1").unwrap();
        assert_eq!(reloaded.position().place, Place::Imported);
    }

    #[test]
    fn a_record_is_written_only_after_the_files_it_names_are_synced() {
        use Step::*;
        let (dir, mut journal) = journal_with(&[Detected]);
        journal.append(Record::new(Frozen)).unwrap();
        // The export is in place at once, its sync still running.
        let export = dir.path().join("w/dev-1/export.json");
        let syncing = write_device_file(&export, b"{}").unwrap();
        assert_eq!(fs::read(&export).unwrap(), b"{}");
        assert_eq!(
            fs::metadata(&export).unwrap().permissions().mode() & 0o777,
            0o600
        );
        journal.sync_with_next_write(syncing);
        journal
            .append(Record::new(Exported).file("export.json"))
            .unwrap();
        journal.append(Record::new(Validated)).unwrap();
        journal.append(Record::new(DeleteStarted)).unwrap();
        assert_eq!(Journal::load(journal.path(), "dev-1").unwrap().len(), 5);
        assert!(journal.syncing.is_empty());

        // A file whose sync failed: the record naming it is refused, and the journal on disk
        // stays as it was (never a record naming a file that may not be on the disk).
        let (dir, mut journal) = journal_with(&[Detected]);
        journal.append(Record::new(Frozen)).unwrap();
        let before = fs::read(journal.path()).unwrap();
        journal.sync_with_next_write(Syncing {
            path: dir.path().join("w/dev-1/export.json"),
            sync: Sync::Done(Err(std::io::Error::other("disk full"))),
        });
        journal.append(Record::new(Exported)).unwrap();
        journal.append(Record::new(Validated)).unwrap();
        let err = journal.append(Record::new(DeleteStarted)).unwrap_err();
        assert!(format!("{err:#}").contains("export.json"), "{err:#}");
        assert!(format!("{err:#}").contains("disk full"), "{err:#}");
        assert_eq!(fs::read(journal.path()).unwrap(), before);
        assert!(!dir.path().join("w/dev-1/.journal.json.tmp").exists());
        assert_eq!(journal.position().place, Place::Validated);
    }

    #[test]
    fn journals_carry_their_format_and_format_one_still_replays() {
        let (_dir, mut journal) = journal_with(&[Step::Detected]);
        journal.flush().unwrap();
        let written: serde_json::Value =
            serde_json::from_slice(&fs::read(journal.path()).unwrap()).unwrap();
        assert_eq!(written["format"], Journal::FORMAT);
        fs::write(
            journal.path(),
            r#"{"records":[{"step":"detected","at":"x"},{"step":"failed","at":"x"},{"step":"detected","at":"x"}]}"#,
        )
        .unwrap();
        let reloaded = Journal::load(journal.path(), "dev-1").unwrap();
        assert_eq!(reloaded.position().place, Place::Detected);
        fs::write(journal.path(), r#"{"format":99,"records":[]}"#).unwrap();
        let err = Journal::load(journal.path(), "dev-1").unwrap_err();
        assert!(err.to_string().contains("newer"), "{err}");
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
