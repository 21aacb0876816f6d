//! The command line, parsed once into typed options.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

/// Shown at the end of `--help` of the tool and of every sub-command.
pub const ENVIRONMENT: &str = "Environment:
  TTN_LW_CLI                     path of ttn-lw-cli (else ttn-lw-cli, tti-lw-cli, then
                                 ttn-lw-stack.ttn-lw-cli, on PATH)
  TTN_SESSION_MIGRATE_PROFILES   directory of the profiles
  NO_COLOR                       no colour in the output
  TTN_LW_*                       ignored: removed from every ttn-lw-cli call (see `doctor`)";

/// The help heading of the options every sub-command takes.
const GLOBAL: &str = "Global options";
/// The help headings of `migrate`'s options.
const SELECTION: &str = "Selection options";
const SAFETY: &str = "Safety options";
const BATCH: &str = "Batch options";
const CALLS: &str = "Call options";
const AFTER: &str = "After the migration";

/// Limits of the options, shown in `--help` and enforced by the parser.
pub const MAX_JOBS: u32 = 64;
/// The highest `--target-rate`: a thousand creates a second.
const MAX_TARGET_RATE: i64 = 60_000;
pub const MAX_RETRIES: u32 = 10;
const TIMEOUT_RANGE: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(3600));
const RETRY_DELAY_RANGE: (Duration, Duration) = (Duration::from_millis(1), Duration::from_secs(30));

/// Parses the command line (exits with clap's message on bad input).
pub fn parse() -> Cli {
    Cli::from_arg_matches(&command().get_matches()).unwrap_or_else(|e| e.exit())
}

/// The command definition behind the parser, `--help`, the completions and the man page.
pub fn command() -> clap::Command {
    with_environment(Cli::command())
}

/// Appends [`ENVIRONMENT`] to the help of a command and of all its sub-commands.
fn with_environment(command: clap::Command) -> clap::Command {
    let after = match command.get_after_help() {
        Some(examples) => format!("{examples}\n\n{ENVIRONMENT}\n\n{}", crate::exit::HELP),
        None => format!("{ENVIRONMENT}\n\n{}", crate::exit::HELP),
    };
    command.after_help(after).mut_subcommands(with_environment)
}

/// Move LoRaWAN end devices between The Things Stack deployments, keeping their active session.
///
/// Drives the official ttn-lw-cli: exports each device from the source (The Things Network
/// Community Edition) with the documented flags, keeps the export on disk, deletes the device
/// from the source and imports it into the target (The Things Stack Cloud), then verifies the
/// session. Interrupted or failed migrations can be resumed or rolled back.
#[derive(Debug, Parser)]
#[command(name = "ttn-session-migrate", version)]
pub struct Cli {
    /// Path of the ttn-lw-cli binary
    #[arg(
        long = "ttn-lw-cli",
        value_name = "PATH",
        global = true,
        help_heading = GLOBAL
    )]
    pub ttn_lw_cli: Option<PathBuf>,

    /// Directory of the profiles [default: $XDG_CONFIG_HOME/ttn-session-migrate/profiles]
    #[arg(
        long,
        value_name = "DIR",
        env = "TTN_SESSION_MIGRATE_PROFILES",
        hide_env_values = true,
        global = true,
        help_heading = GLOBAL
    )]
    pub profiles_dir: Option<PathBuf>,

    /// Show each ttn-lw-cli command as it runs (keys are never shown)
    #[arg(short, long, global = true, conflicts_with = "quiet", help_heading = GLOBAL)]
    pub verbose: bool,

    /// No progress and no warnings: only each device's result, the summary and errors
    #[arg(short, long, global = true, help_heading = GLOBAL)]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Migrate(MigrateArgs),
    Resume(ResumeArgs),
    Rollback(RollbackArgs),
    Status(StatusArgs),
    #[command(subcommand)]
    Profile(ProfileCommand),
    Login(LoginArgs),
    Doctor(DoctorArgs),
    Gateways(GatewaysArgs),
    Watch(WatchArgs),
    Completions(CompletionsArgs),
    Man(ManArgs),
}

/// Migrate devices with their session: export, delete from the source, import, verify.
#[derive(Debug, Args)]
#[command(
    override_usage = "ttn-session-migrate migrate [OPTIONS] <APPLICATION_ID> <DEVICE_ID...|--devices-file FILE|--all>"
)]
#[command(after_help = "Examples:
  ttn-session-migrate migrate my-app my-device --dry-run
  ttn-session-migrate migrate my-app my-device --from ce --to cloud
  ttn-session-migrate migrate my-app dev-1 dev-2 --to-application my-new-app --yes
  ttn-session-migrate migrate my-app --all --exclude gateway-probe --jobs 8 --report report.json
  grep -v retired devices.txt | ttn-session-migrate migrate my-app --devices-file - --yes
  ttn-session-migrate migrate my-app --all --canary 3 --watch 30m --require-gateways

Select devices in exactly one way: DEVICE_ID arguments, --devices-file or --all; --exclude
combines with any of them. For large batches, log in with API keys (`login PROFILE --api-key`):
ttn-lw-cli's OAuth token cache has no locking, so parallel token refreshes can race.")]
#[command(group(ArgGroup::new("activation").args(["otaa", "abp"])))]
#[command(group(ArgGroup::new("selection").args(["devices", "devices_file", "all"]).required(true)))]
pub struct MigrateArgs {
    /// Application ID on the source
    #[arg(value_name = "APPLICATION_ID")]
    pub application_id: String,

    /// End device IDs to migrate
    #[arg(value_name = "DEVICE_ID")]
    pub devices: Vec<String>,

    /// Every device of the source application
    #[arg(long, help_heading = SELECTION)]
    pub all: bool,

    /// Read device IDs from FILE, one per line (`-`: standard input; `#` starts a comment)
    #[arg(long, value_name = "FILE", help_heading = SELECTION)]
    pub devices_file: Option<PathBuf>,

    /// Leave this device out (repeatable)
    #[arg(long, value_name = "DEVICE_ID", help_heading = SELECTION)]
    pub exclude: Vec<String>,

    /// Source profile name, or path of a ttn-lw-cli config file
    #[arg(long, value_name = "PROFILE|FILE", default_value = "ce", help_heading = SELECTION)]
    pub from: String,

    /// Target profile name, or path of a ttn-lw-cli config file (the source's, for a move
    /// between applications of one deployment)
    #[arg(long, value_name = "PROFILE|FILE", default_value = "cloud", help_heading = SELECTION)]
    pub to: String,

    /// Application ID on the target [default: the source application ID]
    #[arg(long, value_name = "ID", help_heading = SELECTION)]
    pub to_application: Option<String>,

    /// The devices are OTAA: skip the detection call. Only the documented export's fields
    /// travel (no class B/C support, attributes, model, formatters, labels or Join Server
    /// nonces), and no gateway summary
    #[arg(long, help_heading = SELECTION)]
    pub otaa: bool,

    /// The devices are ABP: skip the detection call (as --otaa: only the documented fields)
    #[arg(long, help_heading = SELECTION)]
    pub abp: bool,

    /// Print every command instead of changing anything (read-only commands still run)
    #[arg(long, help_heading = SAFETY)]
    pub dry_run: bool,

    /// Do not ask for confirmation before deleting devices from the source
    #[arg(short, long, help_heading = SAFETY)]
    pub yes: bool,

    /// Skip the `doctor` checks before the first delete
    #[arg(long, help_heading = SAFETY)]
    pub skip_checks: bool,

    /// The gateways that hear these devices are on the target already: no DevAddr warning
    #[arg(long, help_heading = SAFETY)]
    pub gateways_migrated: bool,

    // The doc comment is the --help text: `<timestamp>` is a placeholder, not HTML.
    #[allow(rustdoc::invalid_html_tags)]
    /// Where exports and journals are kept [default: ./ttn-migrate-<timestamp>]
    #[arg(long, value_name = "DIR", help_heading = SAFETY)]
    pub work_dir: Option<PathBuf>,

    /// Leave a device whose import failed off the source (fix the target, then `resume`)
    #[arg(long, help_heading = SAFETY)]
    pub no_rollback: bool,

    /// Turn off downlinks on the source before the export (unverified end to end)
    #[arg(long, help_heading = SAFETY)]
    pub freeze_downlinks: bool,

    /// Refuse, before their delete, the devices that no gateway connected to the target has
    /// heard (see `gateways`)
    #[arg(long, conflicts_with = "activation", help_heading = SAFETY)]
    pub require_gateways: bool,

    /// After the migration, wait up to DURATION (e.g. 15m) until every migrated device is
    /// heard on the target, as `watch` does
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, conflicts_with = "dry_run", help_heading = AFTER)]
    pub watch: Option<Duration>,

    /// Migrate N devices first and go on with the rest only once they are heard on the target
    /// (within --watch); if one stays silent, stop before touching the rest
    #[arg(long, value_name = "N", requires = "watch", value_parser = clap::value_parser!(u32).range(1..), help_heading = AFTER)]
    pub canary: Option<u32>,

    /// Devices migrated at once, 1 to 64
    #[arg(short, long, value_name = "N", default_value_t = 4, allow_negative_numbers = true, value_parser = clap::value_parser!(u32).range(1..=MAX_JOBS as i64), help_heading = BATCH)]
    pub jobs: u32,

    /// Start no further device after the first failure (devices in flight finish)
    #[arg(long, help_heading = BATCH)]
    pub fail_fast: bool,

    /// The target's limit on device creates per minute, if known (e.g. 100): pace the creates
    /// 5 % under it from the first one, so that none is refused while its device is off the
    /// source; refusals still slow the pace [default: learned from the first refusal]
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = clap::value_parser!(u32).range(1..=MAX_TARGET_RATE), help_heading = BATCH)]
    pub target_rate: Option<u32>,

    /// With --target-rate: how many creates the target's bucket holds, full at the start (a
    /// server's default is one minute of creates) [default: --target-rate N]
    #[arg(long, value_name = "N", requires = "target_rate", allow_negative_numbers = true, value_parser = clap::value_parser!(u32).range(1..=MAX_TARGET_RATE), help_heading = BATCH)]
    pub target_burst: Option<u32>,

    /// Write the result of every device to FILE as JSON (never keys); `-`: standard output,
    /// and the human output goes to standard error
    #[arg(long, value_name = "FILE", help_heading = BATCH)]
    pub report: Option<PathBuf>,

    /// Devices per `end-devices list` page
    #[arg(long, value_name = "N", default_value_t = 1000, hide = true, help_heading = BATCH, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub page_size: u64,

    #[command(flatten)]
    pub calls: CallOptions,
}

/// How ttn-lw-cli calls are made.
#[derive(Debug, Clone, Args)]
pub struct CallOptions {
    /// How long a ttn-lw-cli call may take before it is stopped: `90s`, `2m`, or plain seconds;
    /// 1s to 1h
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = timeout, help_heading = CALLS)]
    pub timeout: Duration,

    /// Retries of a transient failure (unavailable, rate limited, timeout), 0 to 10
    #[arg(long, value_name = "N", default_value_t = 4, allow_negative_numbers = true, value_parser = clap::value_parser!(u32).range(0..=MAX_RETRIES as i64), help_heading = CALLS)]
    pub retries: u32,

    /// First retry delay (`500ms`, `2s`); it doubles up to 30s
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = retry_delay, help_heading = CALLS)]
    pub retry_delay: Duration,

    /// Stop the run once N devices in a row fail on the target for a transient reason
    /// (unavailable, no answer, timeout): no further device is deleted, those in flight finish
    /// or go back to the source, and `resume` continues; 0 never stops
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(0..=1000), help_heading = CALLS)]
    pub max_target_failures: u32,

    /// The first retry delay in milliseconds (before --retry-delay took durations)
    #[arg(long, value_name = "MS", hide = true, conflicts_with = "retry_delay", value_parser = clap::value_parser!(u64).range(1..=30_000))]
    pub retry_delay_ms: Option<u64>,
}

impl CallOptions {
    pub fn first_retry_delay(&self) -> Duration {
        self.retry_delay_ms
            .map_or(self.retry_delay, Duration::from_millis)
    }
}

fn timeout(text: &str) -> Result<Duration, String> {
    duration_within(text, TIMEOUT_RANGE)
}

fn retry_delay(text: &str) -> Result<Duration, String> {
    duration_within(text, RETRY_DELAY_RANGE)
}

/// A duration as `90s`, `2m`, `1m30s`, `500ms`, or plain seconds (`120`), within `(min, max)`.
fn duration_within(text: &str, (min, max): (Duration, Duration)) -> Result<Duration, String> {
    let text = text.trim();
    let duration = if !text.is_empty() && text.chars().all(|c| c.is_ascii_digit()) {
        text.parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| format!("{text} seconds is too long"))?
    } else {
        humantime::parse_duration(text).map_err(|_| {
            "expected a duration such as 90s, 2m or 1m30s, or plain seconds".to_string()
        })?
    };
    if duration < min || duration > max {
        return Err(format!(
            "{} is not between {} and {}",
            humantime::format_duration(duration),
            humantime::format_duration(min),
            humantime::format_duration(max)
        ));
    }
    Ok(duration)
}

/// Continue an interrupted or failed migration from its work directory.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  ttn-session-migrate status ./ttn-migrate-20261124T101500       # where each device is
  ttn-session-migrate resume ./ttn-migrate-20261124T101500 --dry-run
  ttn-session-migrate resume ./ttn-migrate-20261124T101500

Devices that never started are deleted from the source only after a question (or --yes).")]
pub struct ResumeArgs {
    /// The work directory of the migration
    #[arg(value_name = "WORK_DIR")]
    pub work_dir: PathBuf,

    /// Devices continued at once, 1 to 64 [default: the --jobs of the migration]
    #[arg(short, long, value_name = "N", allow_negative_numbers = true, value_parser = clap::value_parser!(u32).range(1..=MAX_JOBS as i64))]
    pub jobs: Option<u32>,

    /// The target's limit on device creates, per minute, paced from the first create
    /// [default: the --target-rate of the migration, else learned from the first refusal]
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = clap::value_parser!(u32).range(1..=MAX_TARGET_RATE))]
    pub target_rate: Option<u32>,

    /// Print every command instead of changing anything (read-only commands still run)
    #[arg(long)]
    pub dry_run: bool,

    /// Do not ask before starting devices that never started
    #[arg(short, long)]
    pub yes: bool,

    /// Leave a device whose import failed off the source
    #[arg(long)]
    pub no_rollback: bool,

    /// Start no further device after the first failure (devices in flight finish)
    #[arg(long)]
    pub fail_fast: bool,

    /// Write the result of every device continued to FILE as JSON (never keys); `-`: stdout
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    #[command(flatten)]
    pub calls: CallOptions,
}

/// Put devices back on the source from their saved exports.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  ttn-session-migrate rollback ./ttn-migrate-20261124T101500
  ttn-session-migrate rollback ./ttn-migrate-20261124T101500 my-device --dry-run
  ttn-session-migrate rollback ./ttn-migrate-20261124T101500 my-device")]
pub struct RollbackArgs {
    /// The work directory of the migration
    #[arg(value_name = "WORK_DIR")]
    pub work_dir: PathBuf,

    /// Devices to roll back [default: all of the migration]
    #[arg(value_name = "DEVICE_ID")]
    pub devices: Vec<String>,

    /// Print every command instead of changing anything (read-only commands still run)
    #[arg(long)]
    pub dry_run: bool,

    /// Do not ask for confirmation
    #[arg(short, long)]
    pub yes: bool,

    #[command(flatten)]
    pub calls: CallOptions,
}

/// Where every device of a migration is, and what `resume` would do with it.
#[derive(Debug, Args)]
#[command(
    after_help = "Reads the work directory only; --check also asks both deployments (read-only calls).

Examples:
  ttn-session-migrate status ./ttn-migrate-20261124T101500
  ttn-session-migrate status ./ttn-migrate-20261124T101500 --check
  ttn-session-migrate status ./ttn-migrate-20261124T101500 --json | jq '.devices[] | select(.finished | not)'"
)]
pub struct StatusArgs {
    /// The work directory of the migration
    #[arg(value_name = "WORK_DIR")]
    pub work_dir: PathBuf,

    /// Print the status as one JSON object on stdout
    #[arg(long)]
    pub json: bool,

    /// Also ask the source and the target whether each device is there (read-only)
    #[arg(long)]
    pub check: bool,

    #[command(flatten)]
    pub calls: CallOptions,
}

/// Manage profiles: one ttn-lw-cli config file per deployment.
#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Create a profile with `ttn-lw-cli use HOST`, or from an existing config file
    #[command(
        group(ArgGroup::new("source").args(["host", "config"]).required(true)),
        after_help = "Examples:
  ttn-session-migrate profile add ce --host eu1.cloud.thethings.network
  ttn-session-migrate profile add cloud --host my-tenant.eu1.cloud.thethings.industries"
    )]
    Add {
        /// Profile name: lower-case letters, digits, `-`, `_`
        name: String,
        /// Server host name
        #[arg(long)]
        host: Option<String>,
        /// Existing ttn-lw-cli config file to copy
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// List the profiles
    List {
        /// Print them as a JSON array on stdout
        #[arg(long)]
        json: bool,
    },
    /// Show a profile's file and deployment
    Show { name: String },
    /// Remove a profile (its login stays in ttn-lw-cli's cache)
    Remove { name: String },
}

/// Log ttn-lw-cli in to a profile's deployment (OAuth in the browser, or an API key).
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  ttn-session-migrate login cloud --api-key -     # paste the key: it stays out of the shell history
  ttn-session-migrate login ce
  ttn-session-migrate login ce --no-callback      # OAuth on a machine without a browser

A new API key is checked with the deployment before it is stored; a key that does not work
never replaces the profile's login. API keys need these rights on the application:
RIGHT_APPLICATION_INFO, RIGHT_APPLICATION_DEVICES_READ, RIGHT_APPLICATION_DEVICES_WRITE,
RIGHT_APPLICATION_DEVICES_READ_KEYS and RIGHT_APPLICATION_DEVICES_WRITE_KEYS.")]
pub struct LoginArgs {
    /// Profile name, or path of a ttn-lw-cli config file
    pub profile: String,

    /// Log in with an API key instead of OAuth; `-` reads it from standard input
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,

    /// OAuth without the local callback: paste the code shown in the browser
    #[arg(long)]
    pub no_callback: bool,
}

/// Check ttn-lw-cli, the profiles, the logins and their rights, and the applications.
#[derive(Debug, Args)]
#[command(
    after_help = "Prints one line per check: ✓ fine, ! worth knowing, ✗ a problem, with the
command that fixes it. Exits 0 when there is no ✗. `migrate` runs the same checks before it
deletes anything (unless --skip-checks).

Examples:
  ttn-session-migrate doctor
  ttn-session-migrate doctor --application-id my-app
  ttn-session-migrate doctor --application-id my-app --json | jq '.checks[] | select(.status == \"problem\")'
  ttn-session-migrate doctor --from ce --to cloud --application-id my-app --to-application my-new-app"
)]
pub struct DoctorArgs {
    /// Source profile name, or path of a ttn-lw-cli config file
    #[arg(long, value_name = "PROFILE|FILE", default_value = "ce")]
    pub from: String,

    /// Target profile name, or path of a ttn-lw-cli config file
    #[arg(long, value_name = "PROFILE|FILE", default_value = "cloud")]
    pub to: String,

    /// Also check this application: readable on the source, present on the target
    #[arg(long, value_name = "ID")]
    pub application_id: Option<String>,

    /// Application ID on the target [default: --application-id]
    #[arg(long, value_name = "ID", requires = "application_id")]
    pub to_application: Option<String>,

    /// Print the checks as one JSON object on stdout (status: ok, warning, problem, skipped)
    #[arg(long)]
    pub json: bool,
}

/// Which gateways the devices need, and whether the target has them (read-only).
#[derive(Debug, Args)]
#[command(
    after_help = "Prints one row per gateway that heard the devices on the source (by EUI where
recorded, else by ID): the devices that depend on it and its state on the target (connected /
registered, not connected / not registered), then the devices that no connected target gateway
has heard. Reads `mac_state.recent_uplinks` of each device (no keys) and looks each gateway up on
the target with `gateways get` and `gateways get-connection-stats`.

Examples:
  ttn-session-migrate gateways my-app
  ttn-session-migrate gateways my-app dev-1 dev-2 --from ce --to cloud --json"
)]
pub struct GatewaysArgs {
    /// Application ID on the source
    #[arg(value_name = "APPLICATION_ID")]
    pub application_id: String,

    /// End device IDs [default: every device of the application]
    #[arg(value_name = "DEVICE_ID")]
    pub devices: Vec<String>,

    /// Source profile name, or path of a ttn-lw-cli config file
    #[arg(long, value_name = "PROFILE|FILE", default_value = "ce")]
    pub from: String,

    /// Target profile name, or path of a ttn-lw-cli config file
    #[arg(long, value_name = "PROFILE|FILE", default_value = "cloud")]
    pub to: String,

    /// Print JSON instead of the table
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub calls: CallOptions,
}

/// Wait until every device of a migration is heard on the target.
#[derive(Debug, Args)]
#[command(
    after_help = "Polls the target application with `end-devices list --last-seen-at` (a few
paged calls per poll, never one per device; no keys are read) until every device this work
directory migrated has sent an uplink after its import, or the timeout passes. Then prints one
line per device: heard (with the time, and for up to 100 devices the gateway), or silent (with
the gateways that last heard it on the source). Exits 0 when every device was heard, 1 otherwise.

Examples:
  ttn-session-migrate watch ./ttn-migrate-20261124T101500
  ttn-session-migrate watch ./ttn-migrate-20261124T101500 --timeout 1h --report heard.json"
)]
pub struct WatchArgs {
    /// The work directory of the migration
    #[arg(value_name = "WORK_DIR")]
    pub work_dir: PathBuf,

    /// How long to wait for the devices (e.g. 30m, 2h)
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,

    /// Write one JSON entry per device to FILE
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    /// Seconds between two polls
    #[arg(long, value_name = "SECONDS", default_value_t = 30, hide = true)]
    pub interval: u64,

    /// Devices per `end-devices list` page
    #[arg(long, value_name = "N", default_value_t = 1000, hide = true, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub page_size: u64,
}

/// Print the shell completion script.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  ttn-session-migrate completions bash > ~/.local/share/bash-completion/completions/ttn-session-migrate
  ttn-session-migrate completions zsh > ~/.zfunc/_ttn-session-migrate
  ttn-session-migrate completions fish > ~/.config/fish/completions/ttn-session-migrate.fish")]
pub struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Print the man page (roff): every sub-command with its options.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  ttn-session-migrate man > ttn-session-migrate.1 && man ./ttn-session-migrate.1
  sudo \"$(command -v ttn-session-migrate)\" man --out-dir /usr/local/share/man/man1")]
pub struct ManArgs {
    /// Write ttn-session-migrate.1 (the whole page) and one page per sub-command into DIR instead
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}
