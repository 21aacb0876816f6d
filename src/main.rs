//! ttn-session-migrate: move LoRaWAN end devices between The Things Stack deployments while
//! keeping their active session, by driving the official ttn-lw-cli.
//!
//! Data flows one way: command line (`cli`) → plan (`plan`, `profile`) → batch (`batch`) →
//! runner (`runner`, which follows the pure state machine `lifecycle`, calls `ttn_lw_cli` and
//! records to `journal`) → results (`outcome`, `next_step`) → `output` and `report`.

mod batch;
mod cli;
mod commands;
mod devaddr;
mod device;
mod doctor;
mod exit;
mod gateways;
mod interrupt;
mod journal;
mod lifecycle;
mod next_step;
mod outcome;
mod output;
mod pacing;
mod plan;
mod profile;
mod report;
mod runner;
mod selection;
mod status;
mod style;
mod survey;
mod terminal;
mod ttn_lw_cli;
mod watch;
mod whole_device;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::parse();
    let exit = commands::run(cli).unwrap_or_else(|e| {
        terminal::eprint_wrapped(&format!("error: {e:#}"));
        exit::of(&e)
    });
    ExitCode::from(exit.code())
}
