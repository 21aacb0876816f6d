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
mod style;
mod ttn_lw_cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::parse();
    match commands::run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
