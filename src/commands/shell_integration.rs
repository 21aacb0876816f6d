//! `completions SHELL` and `man`: generated from the same clap definition as the parser.

use std::io::Write;

use anyhow::{Context as _, Result};
use clap_complete::Shell;

use crate::cli::{CompletionsArgs, ManArgs};

const BIN: &str = "ttn-session-migrate";

/// The name bash's script is generated for, then renamed to [`BIN`]: see [`bash_completions`].
const BASH_STAND_IN: &str = "ttn_session_migrate";

/// Prints the completion script of a shell on stdout.
pub fn completions(args: &CompletionsArgs) -> Result<bool> {
    let script = match args.shell {
        Shell::Bash => bash_completions(),
        Shell::Zsh => zsh_completions(),
        shell => generate(shell, BIN),
    };
    write_stdout(script.as_bytes())
}

fn generate(shell: Shell, bin: &str) -> String {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut crate::cli::command(), bin, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// clap_complete's bash script never completes below the top level for a binary name with a
/// hyphen (clap-rs/clap#6421): its loop spells the state of `ttn-session-migrate migrate` as
/// `ttn__session__migrate__subcmd__migrate`, its `case` arms as
/// `ttn__subcmd__session__subcmd__migrate__subcmd__migrate`, so no arm ever matches and no
/// option of a sub-command completes. Generated for a name without a hyphen, the two spellings
/// agree; only the `complete` lines must then name the real command. The state names and the
/// function name (`_ttn_session_migrate`) are internal to the script.
fn bash_completions() -> String {
    let stand_in = format!(" {BASH_STAND_IN}");
    generate(Shell::Bash, BASH_STAND_IN)
        .lines()
        .map(|line| {
            let registration = line.trim_start().starts_with("complete -F ");
            match line.strip_suffix(&stand_in) {
                Some(head) if registration => format!("{head} {BIN}"),
                _ => line.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// clap_complete's zsh script specifies a repeatable positional (`migrate`'s DEVICE_ID,
/// `rollback`'s) as `'*::devices -- …'`; with two colons zsh's `_arguments` completes no option
/// once the words before the cursor reach it (`migrate my-app --fr<TAB>` offers nothing; see
/// clap-rs/clap#4652). One colon keeps the same positional and lets the options complete. The sub-command dispatch
/// (`'*::: :->…'`, three colons) is left as it is.
fn zsh_completions() -> String {
    generate(Shell::Zsh, BIN)
        .lines()
        .map(|line| match line.strip_prefix("'*::") {
            Some(rest) if !rest.starts_with(':') => format!("'*:{rest}"),
            _ => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Prints the man page (roff) on stdout, or writes it with one page per sub-command into a
/// directory.
///
/// The page on stdout is the whole tool: the top-level page followed by a section per
/// sub-command with its own options, so `man ./ttn-session-migrate.1` shows every option.
pub fn man(args: &ManArgs) -> Result<bool> {
    if let Some(dir) = &args.out_dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("could not create {}", dir.display()))?;
        let written = clap_mangen::generate_to(crate::cli::command(), dir).and_then(|()| {
            // The top-level page is the whole one, as `man` prints it.
            let mut page = Vec::new();
            render_whole_page(&mut page)?;
            std::fs::write(dir.join(format!("{BIN}.1")), page)
        });
        written.with_context(|| format!("could not write the man pages into {}", dir.display()))?;
        println!("Wrote the man pages into {}", dir.display());
        return Ok(true);
    }
    let mut out = Vec::new();
    render_whole_page(&mut out).context("could not render the man page")?;
    write_stdout(&out)
}

/// The top-level page, then one section per sub-command (depth first) with its synopsis,
/// description, options and examples, rendered by clap_mangen from the same definition.
fn render_whole_page(out: &mut Vec<u8>) -> std::io::Result<()> {
    let mut command = crate::cli::command();
    command.build();
    let man = clap_mangen::Man::new(command.clone());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    man.render_subcommands_section(out)?;
    for sub in sub_commands(&command) {
        render_sub_command(out, sub, BIN)?;
    }
    // The top level's after-help is the environment block, then the exit status: two sections,
    // their tables kept as written (no filling).
    let mut environment = Vec::new();
    man.render_extra_section(&mut environment)?;
    out.extend_from_slice(
        String::from_utf8_lossy(&environment)
            .replacen(".SH EXTRA\nEnvironment:\n", ".SH ENVIRONMENT\n.nf\n", 1)
            .replacen("\nExit status:\n", "\n.fi\n.SH \"EXIT STATUS\"\n.nf\n", 1)
            .as_bytes(),
    );
    out.extend_from_slice(b".fi\n");
    man.render_version_section(out)
}

fn sub_commands(command: &clap::Command) -> impl Iterator<Item = &clap::Command> {
    command
        .get_subcommands()
        .filter(|s| s.get_name() != "help" && !s.is_hide_set())
}

fn render_sub_command(out: &mut Vec<u8>, sub: &clap::Command, parent: &str) -> std::io::Result<()> {
    // After `build`, a sub-command's bin name is its whole path (`ttn-session-migrate migrate`).
    let path = format!("{parent} {}", sub.get_name());
    let mut page = sub.clone();
    // The global options are listed once, at the top; the environment once, at the end.
    let globals: Vec<clap::Id> = sub
        .get_arguments()
        .filter(|a| a.is_global_set())
        .map(|a| a.get_id().clone())
        .collect();
    for id in globals {
        page = page.mut_arg(id, |a| a.hide(true));
    }
    if let Some(after) = sub.get_after_help().map(|h| h.to_string()) {
        let examples = after.split(crate::cli::ENVIRONMENT).next().unwrap_or("");
        page = page.after_help(examples.trim_end().to_string());
    }
    let man = clap_mangen::Man::new(page);
    writeln!(out, ".SH \"{}\"", path.to_uppercase())?;
    let mut section = Vec::new();
    man.render_synopsis_section(&mut section)?;
    man.render_description_section(&mut section)?;
    man.render_options_section(&mut section)?;
    if sub.get_after_help().is_some() {
        man.render_extra_section(&mut section)?;
    }
    // Inside the whole page the sub-command's own sections become sub-sections.
    let section = String::from_utf8_lossy(&section)
        .replace(".SH EXTRA", ".SS EXAMPLES")
        .replace(".SH ", ".SS ");
    out.extend_from_slice(section.as_bytes());
    for child in sub_commands(sub) {
        render_sub_command(out, child, &path)?;
    }
    Ok(())
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
