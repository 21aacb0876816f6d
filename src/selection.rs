//! Which devices a `migrate` covers: IDs named on the command line, a file of IDs (`-` for
//! stdin), or every device of the source application (`--all`), minus `--exclude`d ones.
//!
//! Exactly one of the three selections is given (the command line enforces it); `--exclude`
//! combines with any of them. Before anything runs, these are usage errors (exit 2), each
//! reported at once: an invalid ID, wherever it comes from; an ID given twice; an `--exclude`
//! that matches no device of the selection; a named ID that the source application does not
//! hold ([`missing_on_source`], after one paged listing).

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context as _, Result};
use serde_json::Value;

use crate::device::validate_id;
use crate::exit::{usage, ResultExt as _};
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
    let mut problems = Vec::new();
    let mut places: Vec<(&str, Vec<String>)> = Vec::new();
    for candidate in &candidates {
        let place = candidate.origin.clone().unwrap_or_default();
        match places.iter_mut().find(|(id, _)| *id == candidate.id) {
            Some((_, seen)) => seen.push(place),
            None => places.push((&candidate.id, vec![place])),
        }
    }
    for (id, seen) in &places {
        if seen.len() > 1 {
            let at: Vec<&str> = seen
                .iter()
                .map(String::as_str)
                .filter(|p| !p.is_empty())
                .collect();
            problems.push(match at.is_empty() {
                true => format!("`{id}` is given {} times", seen.len()),
                false => format!("`{id}` is given {} times ({})", seen.len(), at.join(", ")),
            });
        }
    }
    let mut unmatched = BTreeSet::new();
    for id in exclude {
        if !candidates.iter().any(|c| &c.id == id) && unmatched.insert(id) {
            problems.push(format!("--exclude {id} matches no device of the selection"));
        }
    }
    if !problems.is_empty() {
        return Err(usage(format!(
            "the selection has {}; nothing was run:\n  {}",
            if problems.len() == 1 {
                "a problem".to_string()
            } else {
                format!("{} problems", problems.len())
            },
            problems.join("\n  ")
        )));
    }
    let excluded: BTreeSet<&str> = exclude.iter().map(String::as_str).collect();
    Ok(candidates
        .into_iter()
        .map(|c| c.id)
        .filter(|id| !excluded.contains(id.as_str()))
        .collect())
}

/// The named devices the source application does not hold, in their given order.
pub fn missing_on_source(given: &[String], listed: &[String]) -> Vec<String> {
    let listed: BTreeSet<&str> = listed.iter().map(String::as_str).collect();
    given
        .iter()
        .filter(|d| !listed.contains(d.as_str()))
        .cloned()
        .collect()
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
    let mut rule = None;
    let errors: Vec<String> = candidates
        .iter()
        .chain(&excluded)
        .filter_map(|candidate| {
            let e = validate_id("device ID", &candidate.id).err()?;
            rule.get_or_insert(e.to_string());
            Some(match &candidate.origin {
                Some(origin) => format!("`{}` ({origin})", candidate.id),
                None => format!("`{}`", candidate.id),
            })
        })
        .collect();
    let Some(rule) = rule else { return Ok(()) };
    if errors.len() == 1 {
        let origin = candidates
            .iter()
            .chain(&excluded)
            .find(|c| validate_id("device ID", &c.id).is_err())
            .and_then(|c| c.origin.clone());
        return Err(usage(match origin {
            Some(origin) => format!("{origin}: {rule}; nothing was run"),
            None => format!("{rule}; nothing was run"),
        }));
    }
    // The rule once, then every invalid ID.
    let rule = rule.split_once(": ").map_or(rule.as_str(), |(_, r)| r);
    Err(usage(format!(
        "{} invalid device IDs; nothing was run. {rule}:\n  {}",
        errors.len(),
        errors.join("\n  ")
    )))
}

/// One device ID per line; blank lines and `#` comments (whole-line or trailing) are ignored.
fn read_devices_file(path: &Path) -> Result<Vec<Candidate>> {
    let (name, text) = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("could not read the device IDs from standard input")
            .or_usage()?;
        ("stdin".to_string(), text)
    } else {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("could not read the devices file {}", path.display()))
            .or_usage()?;
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
    fn excluded_devices_are_dropped_in_order() {
        let devices =
            given_devices(&named(&["dev-3", "dev-1", "dev-2"]), &["dev-1".into()]).unwrap();
        assert_eq!(
            devices,
            Some(vec!["dev-3".to_string(), "dev-2".to_string()])
        );
    }

    #[test]
    fn a_repeated_id_and_an_exclude_that_matches_nothing_are_usage_errors() {
        let error = given_devices(
            &named(&["dev-3", "dev-1", "dev-3", "dev-3"]),
            &["sensr-000".into(), "sensr-000".into()],
        )
        .unwrap_err();
        assert_eq!(crate::exit::of(&error), crate::exit::Exit::Usage);
        let text = error.to_string();
        assert!(text.contains("`dev-3` is given 3 times"), "{text}");
        assert_eq!(text.matches("dev-3").count(), 1, "{text}");
        assert_eq!(
            text.matches("--exclude sensr-000 matches no device of the selection")
                .count(),
            1,
            "{text}"
        );
        let listed = listed_devices(vec!["dev-1".into()], &["dev-2".into()]).unwrap_err();
        assert!(listed
            .to_string()
            .contains("--exclude dev-2 matches no device"));
        assert_eq!(
            missing_on_source(&["a-1".into(), "b-2".into()], &["b-2".into()]),
            ["a-1"]
        );
    }

    #[test]
    fn every_invalid_id_is_reported_together_with_the_rule_once() {
        let error = given_devices(&named(&["Dev_1", "ok-1", "x"]), &["-bad".into()]).unwrap_err();
        assert_eq!(crate::exit::of(&error), crate::exit::Exit::Usage);
        let error = error.to_string();
        assert!(
            error.starts_with("3 invalid device IDs; nothing was run"),
            "{error}"
        );
        for id in ["`Dev_1`", "`x`", "`-bad` (--exclude)"] {
            assert!(error.contains(id), "{error}");
        }
        assert_eq!(error.matches("lower-case").count(), 1, "{error}");
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
