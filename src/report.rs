//! `--report FILE`: the result of every device as JSON, for scripts and audits.
//!
//! One entry per device (IDs, activation mode, DevAddr and frame counters, per-step timings,
//! outcome, `error` with its `error_kind`, and the next step as data: `next_action.step`,
//! `.command`, `.text`) and the summary counts. Built from [`DeviceReport`], which never holds
//! keys.
//!
//! Where it goes, decided before anything runs:
//! * `-`: standard output (the human output then goes to standard error);
//! * a new file, or an existing regular file: written owner-only (0600) and atomically (a
//!   temporary file renamed over it). A symlink to a regular file stays a symlink: its target is
//!   replaced;
//! * anything else that exists (a named pipe, `/dev/stdout`, a terminal): written through, as
//!   `>` in a shell would. It is never replaced: the rename is for regular files only.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::Serialize;

use crate::exit::refused;
use crate::journal::{directory_of, write_durably};
use crate::outcome::{DeviceReport, Summary};

/// Format version of the report file: 2 added `error_kind` and made `next_action` an object.
const FORMAT: u32 = 2;

#[derive(Serialize)]
struct ReportFile<'a> {
    format: u32,
    summary: Summary,
    devices: &'a [DeviceReport],
}

/// Where the report goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Stdout,
    /// A regular file (maybe new), replaced atomically. The path is the symlink's target.
    File(PathBuf),
    /// An existing file that is not a regular one: written through, never replaced.
    Through(PathBuf),
}

/// Checks `--report` before any device runs; an error is a refusal (exit 3).
pub fn destination(path: &Path) -> Result<Destination> {
    if path == Path::new("-") {
        return Ok(Destination::Stdout);
    }
    let shown = path.display();
    let Ok(link) = std::fs::symlink_metadata(path) else {
        let dir = directory_of(path);
        if !dir.is_dir() {
            return Err(refused(format!(
                "the directory of the report file {shown} does not exist; create it or choose another --report path"
            )));
        }
        check_writable_dir(dir, path)?;
        return Ok(Destination::File(path.to_path_buf()));
    };
    let Ok(meta) = std::fs::metadata(path) else {
        return Err(refused(format!(
            "--report {shown} is a symlink to nothing; remove it or choose another path"
        )));
    };
    if meta.is_dir() {
        return Err(refused(format!(
            "--report {shown} is a directory; name a file"
        )));
    }
    if meta.is_file() {
        let target = match link.file_type().is_symlink() {
            true => std::fs::canonicalize(path)
                .with_context(|| format!("could not resolve --report {shown}"))
                .map_err(refused)?,
            false => path.to_path_buf(),
        };
        check_writable_dir(directory_of(&target), path)?;
        return Ok(Destination::File(target));
    }
    Ok(Destination::Through(path.to_path_buf()))
}

/// Whether a new file can be made in `dir` (the atomic write needs one).
fn check_writable_dir(dir: &Path, report: &Path) -> Result<()> {
    tempfile::Builder::new()
        .prefix(".report-check")
        .tempfile_in(dir)
        .map(drop)
        .map_err(|e| {
            refused(format!(
                "cannot write the report file {} ({e}); choose another --report path",
                report.display()
            ))
        })
}

pub fn write(destination: &Destination, reports: &[DeviceReport]) -> Result<()> {
    let file = ReportFile {
        format: FORMAT,
        summary: Summary::of(reports),
        devices: reports,
    };
    let mut bytes = serde_json::to_vec_pretty(&file)?;
    bytes.push(b'\n');
    match destination {
        Destination::Stdout => {
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes)
                .and_then(|()| out.flush())
                .context("could not write the report to standard output")
        }
        Destination::File(path) => write_durably(path, &bytes),
        Destination::Through(path) => OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|mut f| f.write_all(&bytes))
            .with_context(|| format!("could not write the report to {}", path.display())),
    }
}

impl Destination {
    /// What to tell the operator once written (nothing for standard output).
    pub fn describe(&self) -> Option<String> {
        match self {
            Destination::Stdout => None,
            Destination::File(p) | Destination::Through(p) => Some(p.display().to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    #[test]
    fn a_symlink_to_a_regular_file_stays_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.json");
        std::fs::write(&target, "old").unwrap();
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let destination = destination(&link).unwrap();
        write(&destination, &[]).unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        let written: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&target).unwrap()).unwrap();
        assert_eq!(written["format"], 2);
    }

    #[test]
    fn a_named_pipe_behind_a_symlink_is_written_through_and_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let link = dir.path().join("stdout");
        std::os::unix::fs::symlink(&fifo, &link).unwrap();
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
        };
        let destination = destination(&link).unwrap();
        assert_eq!(destination, Destination::Through(link.clone()));
        write(&destination, &[]).unwrap();
        let text = reader.join().unwrap();
        assert!(text.contains("\"format\": 2"), "{text}");
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    }

    #[test]
    fn directories_and_dangling_symlinks_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let e = destination(dir.path()).unwrap_err();
        assert_eq!(crate::exit::of(&e), crate::exit::Exit::Refused);
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("nothing"), &dangling).unwrap();
        assert!(destination(&dangling).is_err());
        assert_eq!(destination(Path::new("-")).unwrap(), Destination::Stdout);
    }
}
