//! ttn-session-migrate: move LoRaWAN end devices between The Things Stack deployments while
//! keeping their active session, by driving the official ttn-lw-cli.
//!
//! Data flows one way: command line (`cli`) → plan (`plan`, `profile`) → runner (`runner`,
//! which calls `ttn_lw_cli` and records to `journal`) → report (`output`).

mod cli;
mod commands;
mod device;
mod interrupt;
mod journal;
mod output;
mod plan;
mod profile;
mod report;
mod runner;
mod selection;
mod ttn_lw_cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
