//! `--report FILE`: the result of every device as JSON, for scripts and audits.
//!
//! One entry per device (IDs, activation mode, DevAddr and frame counters, per-step timings,
//! outcome, error and next action) and the summary counts. Built from [`DeviceReport`], which
//! never holds keys. Written owner-only (0600) and atomically, also when devices failed.

use std::path::Path;

use anyhow::{bail, Result};
use serde::Serialize;

use crate::journal::{directory_of, write_durably};
use crate::outcome::{DeviceReport, Summary};

/// Format version of the report file.
const FORMAT: u32 = 1;

#[derive(Serialize)]
struct ReportFile<'a> {
    format: u32,
    summary: Summary,
    devices: &'a [DeviceReport],
}

/// Fails early, before any device runs, when the report could not be written at the end.
pub fn check_destination(path: &Path) -> Result<()> {
    if !directory_of(path).is_dir() {
        bail!(
            "the directory of the report file {} does not exist; create it or choose another --report path",
            path.display()
        );
    }
    if path.is_dir() {
        bail!("--report {} is a directory; name a file", path.display());
    }
    Ok(())
}

pub fn write(path: &Path, reports: &[DeviceReport]) -> Result<()> {
    let file = ReportFile {
        format: FORMAT,
        summary: Summary::of(reports),
        devices: reports,
    };
    let mut bytes = serde_json::to_vec_pretty(&file)?;
    bytes.push(b'\n');
    write_durably(path, &bytes)
}
