//! Which devices a `migrate` covers: IDs named on the command line, a file of IDs (`-` for
//! stdin), or every device of the source application (`--all`), minus `--exclude`d ones.
//!
//! Exactly one of the three selections is given (the command line enforces it); `--exclude`
//! combines with any of them. Every invalid ID, wherever it comes from, is reported at once
//! before anything runs.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _, Result};
use serde_json::Value;

use crate::device::validate_id;
use crate::profile::Profile;
use crate::ttn_lw_cli::{Invocation, TtnLwCli};

/// The largest page The Things Stack returns for `end-devices list`.
pub const MAX_PAGE_SIZE: usize = 1000;

/// Where the device IDs come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Positional device IDs.
    Named(Vec<String>),
    /// One ID per line; `-` reads standard input.
    File(PathBuf),
    /// Every device of the source application, listed page by page.
    WholeApplication,
}

impl Selection {
    /// The selection of the command line, which allows exactly one of them.
    pub fn of(named: &[String], devices_file: Option<&Path>, all: bool) -> Selection {
        match (devices_file, all) {
            (Some(file), _) => Selection::File(file.to_path_buf()),
            (None, true) => Selection::WholeApplication,
            (None, false) => Selection::Named(named.to_vec()),
        }
    }
}

/// A device ID and where it was read, for error messages.
struct Candidate {
    id: String,
    origin: Option<String>,
}

impl Candidate {
    fn plain(id: String) -> Candidate {
        Candidate { id, origin: None }
    }
}

/// The devices known without asking the source (named, or read from a file), validated,
/// de-duplicated, in their given order, without the excluded ones. `None` for `--all`, whose
/// devices come from [`listed_devices`]; its exclusions are still checked here.
pub fn given_devices(selection: &Selection, exclude: &[String]) -> Result<Option<Vec<String>>> {
    let candidates = match selection {
        Selection::Named(ids) => ids.iter().cloned().map(Candidate::plain).collect(),
        Selection::File(path) => read_devices_file(path)?,
        Selection::WholeApplication => {
            check_ids(&[], exclude)?;
            return Ok(None);
        }
    };
    finish_selection(candidates, exclude).map(Some)
}

/// The devices of a listed source application, without the excluded ones.
pub fn listed_devices(listed: Vec<String>, exclude: &[String]) -> Result<Vec<String>> {
    finish_selection(listed.into_iter().map(Candidate::plain).collect(), exclude)
}

fn finish_selection(candidates: Vec<Candidate>, exclude: &[String]) -> Result<Vec<String>> {
    check_ids(&candidates, exclude)?;
    let excluded: BTreeSet<&str> = exclude.iter().map(String::as_str).collect();
    let mut seen = BTreeSet::new();
    Ok(candidates
        .into_iter()
        .map(|c| c.id)
        .filter(|id| !excluded.contains(id.as_str()) && seen.insert(id.clone()))
        .collect())
}

/// Reports every invalid ID at once.
fn check_ids(candidates: &[Candidate], exclude: &[String]) -> Result<()> {
    let excluded: Vec<Candidate> = exclude
        .iter()
        .map(|id| Candidate {
            id: id.clone(),
            origin: Some("--exclude".into()),
        })
        .collect();
    let errors: Vec<String> = candidates
        .iter()
        .chain(&excluded)
        .filter_map(|candidate| {
            validate_id("device ID", &candidate.id)
                .err()
                .map(|e| match &candidate.origin {
                    Some(origin) => format!("{origin}: {e}"),
                    None => e.to_string(),
                })
        })
        .collect();
    if !errors.is_empty() {
        bail!(
            "{} invalid device ID{}; nothing was run:\n  {}",
            errors.len(),
            if errors.len() == 1 { "" } else { "s" },
            errors.join("\n  ")
        );
    }
    Ok(())
}

/// One device ID per line; blank lines and `#` comments (whole-line or trailing) are ignored.
fn read_devices_file(path: &Path) -> Result<Vec<Candidate>> {
    let (name, text) = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("could not read the device IDs from standard input")?;
        ("stdin".to_string(), text)
    } else {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("could not read the devices file {}", path.display()))?;
        (path.display().to_string(), text)
    };
    Ok(parse_device_lines(&text)
        .map(|(line, id)| Candidate {
            id: id.to_string(),
            origin: Some(format!("{name} line {line}")),
        })
        .collect())
}

/// `(line number, ID)` of every line that names a device.
fn parse_device_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().filter_map(|(index, line)| {
        let id = line.split('#').next().unwrap_or_default().trim();
        (!id.is_empty()).then_some((index + 1, id))
    })
}

/// The device IDs of an application, with `end-devices list` one page at a time until a short
/// page. `each_page` sees every call and the number of devices it returned.
pub fn list_device_ids(
    cli: &TtnLwCli,
    profile: &Profile,
    application_id: &str,
    page_size: usize,
    each_page: &mut dyn FnMut(&Invocation, usize),
) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    for page in 1.. {
        let list = Invocation::new(
            &profile.path,
            [
                "end-devices".to_string(),
                "list".to_string(),
                "--application-id".to_string(),
                application_id.to_string(),
                "--limit".to_string(),
                page_size.to_string(),
                "--page".to_string(),
                page.to_string(),
            ],
        );
        let output = cli.run(&list).map_err(|e| anyhow!(e.detail))?;
        let items: Vec<Value> = serde_json::from_slice(&output.stdout)
            .map_err(|_| anyhow!("ttn-lw-cli printed a device list that is not a JSON array"))?;
        ids.extend(
            items
                .iter()
                .filter_map(|item| item.pointer("/ids/device_id").and_then(Value::as_str))
                .map(str::to_string),
        );
        each_page(&list, items.len());
        if items.len() < page_size {
            break;
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(ids: &[&str]) -> Selection {
        Selection::Named(ids.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn blank_lines_and_comments_are_skipped_and_lines_are_numbered() {
        let text = "# sensors of building A\ndev-1\n\n  dev-2  # the roof one\n#dev-3\n";
        let lines: Vec<_> = parse_device_lines(text).collect();
        assert_eq!(lines, [(2, "dev-1"), (4, "dev-2")]);
    }

    #[test]
    fn excluded_and_repeated_devices_are_dropped_in_order() {
        let devices = given_devices(
            &named(&["dev-3", "dev-1", "dev-3", "dev-2"]),
            &["dev-1".into()],
        )
        .unwrap();
        assert_eq!(
            devices,
            Some(vec!["dev-3".to_string(), "dev-2".to_string()])
        );
    }

    #[test]
    fn every_invalid_id_is_reported_together() {
        let error = given_devices(&named(&["Dev_1", "ok-1", "x"]), &["-bad".into()])
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("3 invalid device IDs; nothing was run"),
            "{error}"
        );
        for id in ["`Dev_1`", "`x`", "--exclude: invalid device ID `-bad`"] {
            assert!(error.contains(id), "{error}");
        }
    }

    #[test]
    fn the_whole_application_comes_from_the_listing() {
        assert_eq!(
            given_devices(&Selection::WholeApplication, &["dev-2".into()]).unwrap(),
            None
        );
        assert!(given_devices(&Selection::WholeApplication, &["Bad".into()]).is_err());
        let devices = listed_devices(
            vec!["dev-1".into(), "dev-2".into(), "dev-3".into()],
            &["dev-2".into()],
        )
        .unwrap();
        assert_eq!(devices, ["dev-1", "dev-3"]);
    }
}
