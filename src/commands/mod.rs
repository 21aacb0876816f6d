//! One function per sub-command. Each returns its exit status ([`crate::exit`]).

mod canary;
mod checks;
mod doctor;
mod gateways;
mod migrate;
mod profiles;
mod shell_integration;
mod status;
mod watch;

use anyhow::Result;

use crate::cli::{CallOptions, Cli, Command};
use crate::exit::Exit;
use crate::runner::RetryPolicy;
use crate::ttn_lw_cli::{Locator, TtnLwCli};

/// Global options every command needs.
pub struct Context {
    pub cli: Cli,
}

impl Context {
    /// Finds ttn-lw-cli and checks that it can import sessions.
    pub fn ttn_lw_cli(&self, calls: Option<&CallOptions>) -> Result<TtnLwCli> {
        let cli = Locator::from_environment(self.cli.ttn_lw_cli.as_deref()).locate()?;
        cli.require_supported_version()?;
        let timeout = calls.map_or(crate::ttn_lw_cli::DEFAULT_TIMEOUT, |c| c.timeout);
        Ok(cli.with_timeout(timeout).with_echo(self.cli.verbose))
    }

    pub fn profiles(&self) -> Result<crate::profile::ProfileStore> {
        crate::profile::ProfileStore::new(self.cli.profiles_dir.clone())
    }
}

pub fn retry_policy(calls: &CallOptions) -> RetryPolicy {
    RetryPolicy {
        max_retries: calls.retries,
        base: calls.first_retry_delay(),
        ..RetryPolicy::default()
    }
}

pub fn run(cli: Cli) -> Result<Exit> {
    let context = Context { cli };
    match &context.cli.command {
        Command::Migrate(args) => migrate::migrate(&context, args),
        Command::Resume(args) => migrate::resume(&context, args),
        Command::Rollback(args) => migrate::rollback(&context, args),
        Command::Status(args) => status::status(&context, args),
        Command::Profile(command) => profiles::profile(&context, command).map(Exit::done_if),
        Command::Login(args) => profiles::login(&context, args).map(Exit::done_if),
        Command::Doctor(args) => doctor::doctor(&context, args).map(Exit::done_if),
        Command::Gateways(args) => gateways::gateways(&context, args).map(Exit::done_if),
        Command::Watch(args) => watch::watch(&context, args).map(Exit::done_if),
        Command::Completions(args) => shell_integration::completions(args).map(Exit::done_if),
        Command::Man(args) => shell_integration::man(args).map(Exit::done_if),
    }
}
