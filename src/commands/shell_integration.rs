//! `completions SHELL` and `man`: generated from the same clap definition as the parser.

use std::io::Write;

use anyhow::{Context as _, Result};

use crate::cli::{CompletionsArgs, ManArgs};

const BIN: &str = "ttn-session-migrate";

/// Prints the completion script of a shell on stdout.
pub fn completions(args: &CompletionsArgs) -> Result<bool> {
    let mut command = crate::cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut command, BIN, &mut out);
    write_stdout(&out)
}

/// Prints the man page (roff) on stdout, or writes it with one page per sub-command into a
/// directory.
pub fn man(args: &ManArgs) -> Result<bool> {
    if let Some(dir) = &args.out_dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("could not create {}", dir.display()))?;
        clap_mangen::generate_to(crate::cli::command(), dir)
            .with_context(|| format!("could not write the man pages into {}", dir.display()))?;
        println!("Wrote the man pages into {}", dir.display());
        return Ok(true);
    }
    let mut out = Vec::new();
    clap_mangen::Man::new(crate::cli::command())
        .render(&mut out)
        .context("could not render the man page")?;
    write_stdout(&out)
}

fn write_stdout(bytes: &[u8]) -> Result<bool> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(true),
        // `… | head` closes the pipe early: not an error worth reporting.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(true),
        Err(e) => Err(anyhow::anyhow!("could not write to standard output: {e}")),
    }
}
