//! The exit status, in one place: what each code means, and the errors that carry one.
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | done |
//! | 1 | some devices failed (the summary and `--report` say which), or another command failed |
//! | 2 | usage: a bad option, argument, device ID or devices file; nothing ran |
//! | 3 | refused before anything changed: checks, a declined prompt, conflicts, no terminal |
//! | 130 | interrupted (Ctrl-C) |
//!
//! Commands return an [`Exit`]; an error carries its code when it was made with [`usage`] or
//! [`refused`] (or passed through [`ResultExt::or_refused`]), and is a `1` otherwise.

use std::fmt;

/// How the tool ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Done,
    Failed,
    Usage,
    Refused,
    Interrupted,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Done => 0,
            Exit::Failed => 1,
            Exit::Usage => 2,
            Exit::Refused => 3,
            Exit::Interrupted => 130,
        }
    }

    /// 0 when everything succeeded, else 1.
    pub fn done_if(succeeded: bool) -> Exit {
        match succeeded {
            true => Exit::Done,
            false => Exit::Failed,
        }
    }
}

/// The table above, for the end of every `--help`.
pub const HELP: &str = "Exit status:
  0    done
  1    some devices failed (the summary and --report say which), or the command failed
  2    usage: a bad option, argument, device ID or devices file; nothing ran
  3    refused before anything changed: failed checks, a declined prompt, conflicts,
       no terminal to ask on (pass --yes), an unwritable --report
  130  interrupted (Ctrl-C); the tool prints the `resume` command";

/// An error with the exit status it ends the tool with. Shows as the error it wraps.
#[derive(Debug)]
struct Classified {
    exit: Exit,
    error: anyhow::Error,
}

impl fmt::Display for Classified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

impl std::error::Error for Classified {}

fn classify(exit: Exit, error: anyhow::Error) -> anyhow::Error {
    if class_of(&error).is_some() {
        return error;
    }
    anyhow::Error::new(Classified { exit, error })
}

/// The operator's input is wrong (exit 2).
pub fn usage(message: impl fmt::Display) -> anyhow::Error {
    classify(Exit::Usage, anyhow::anyhow!("{message}"))
}

/// Refused before anything changed (exit 3).
pub fn refused(message: impl fmt::Display) -> anyhow::Error {
    classify(Exit::Refused, anyhow::anyhow!("{message}"))
}

fn class_of(error: &anyhow::Error) -> Option<Exit> {
    error
        .chain()
        .find_map(|e| e.downcast_ref::<Classified>())
        .map(|c| c.exit)
}

/// The exit status an error ends the tool with.
pub fn of(error: &anyhow::Error) -> Exit {
    class_of(error).unwrap_or(Exit::Failed)
}

pub trait ResultExt<T> {
    /// An error here means nothing was changed: exit 3, unless it already has a status.
    fn or_refused(self) -> anyhow::Result<T>;
    /// An error here is the operator's input: exit 2, unless it already has a status.
    fn or_usage(self) -> anyhow::Result<T>;
}

impl<T, E: Into<anyhow::Error>> ResultExt<T> for Result<T, E> {
    fn or_refused(self) -> anyhow::Result<T> {
        self.map_err(|e| classify(Exit::Refused, e.into()))
    }

    fn or_usage(self) -> anyhow::Result<T> {
        self.map_err(|e| classify(Exit::Usage, e.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    #[test]
    fn an_error_keeps_the_first_status_it_was_given_and_its_text() {
        let typo: anyhow::Result<()> = Err(usage("bad ID `Dev`"));
        let later = typo.context("selection").or_refused().unwrap_err();
        assert_eq!(of(&later), Exit::Usage);
        assert_eq!(format!("{later:#}"), "selection: bad ID `Dev`");

        let plain: anyhow::Result<()> = Err(anyhow::anyhow!("no login"));
        let refusal = plain.or_refused().unwrap_err();
        assert_eq!(of(&refusal), Exit::Refused);
        assert_eq!(format!("{refusal:#}"), "no login");

        assert_eq!(of(&anyhow::anyhow!("anything")), Exit::Failed);
    }

    #[test]
    fn codes_match_the_help_table() {
        for exit in [
            Exit::Done,
            Exit::Failed,
            Exit::Usage,
            Exit::Refused,
            Exit::Interrupted,
        ] {
            assert!(
                HELP.contains(&format!("\n  {:<4} ", exit.code())),
                "{exit:?}"
            );
        }
    }
}
