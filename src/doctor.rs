//! The checks of `doctor`, which `migrate` also runs before its first delete.
//!
//! Each check adds a [`Finding`]: ✓ fine, ! worth knowing, ✗ a problem (with the command that
//! fixes it), or - not checked because an earlier check failed. Every ttn-lw-cli call is
//! read-only and reported through `ran`, so that a dry run can print it.

use std::fmt::Write as _;

use anyhow::Result;
use serde_json::Value;

use crate::plan::Migration;
use crate::profile::{looks_like_path, Deployment, Profile, ProfileName, ProfileStore};
use crate::style::{Colour, Style};
use crate::ttn_lw_cli::{CliError, ErrorKind, Invocation, TtnLwCli, Version, MIN_VERSION};

/// Pending sessions and MAC states import only from this version on (lorawan-stack #5926,
/// fixed in 3.23.0).
pub const PENDING_STATE_VERSION: Version = Version(3, 23, 0);

/// `--mac-settings.schedule-downlinks` (what `--freeze-downlinks` sets) exists from this version
/// on (`mac_settings.schedule_downlinks`, api/ttn/lorawan/v3/end_device.proto).
pub const SCHEDULE_DOWNLINKS_VERSION: Version = Version(3, 21, 0);

/// `end-devices get-dev-addr-prefixes` (the gateway check) exists from this version on.
pub const DEV_ADDR_PREFIXES_VERSION: Version = Version(3, 21, 2);

pub const INSTALL_URL: &str =
    "https://www.thethingsindustries.com/docs/concepts/features/cli/installing-cli/";

/// The application rights a login needs on both sides: the source is read, exported, its
/// devices deleted and, on a rollback, re-created; the target's devices are created, read back
/// and, on a rollback, deleted. `end-devices create` reads the application (INFO, CLI 3.19 and
/// later), and the Network Server wants TRAFFIC_READ for a `get` of the whole session, which
/// holds the queued downlinks (real-cli-audit.md D1, D14).
pub const REQUIRED_RIGHTS: [(&str, &str); 6] = [
    (
        "RIGHT_APPLICATION_INFO",
        "read the application, which `end-devices create` does",
    ),
    (
        "RIGHT_APPLICATION_TRAFFIC_READ",
        "read sessions: the Network Server asks for it",
    ),
    ("RIGHT_APPLICATION_DEVICES_READ", "read devices"),
    (
        "RIGHT_APPLICATION_DEVICES_READ_KEYS",
        "read device keys and sessions",
    ),
    (
        "RIGHT_APPLICATION_DEVICES_WRITE",
        "delete and create devices",
    ),
    (
        "RIGHT_APPLICATION_DEVICES_WRITE_KEYS",
        "write device keys and sessions",
    ),
];

/// The required rights as one sentence part: `A, B, … and F`.
pub fn required_rights_text() -> String {
    let names: Vec<&str> = REQUIRED_RIGHTS.iter().map(|(r, _)| *r).collect();
    let (last, rest) = names.split_last().expect("rights listed");
    format!("{} and {last}", rest.join(", "))
}

/// Rights that include every application right.
const ALL_RIGHTS: [&str; 2] = ["RIGHT_ALL", "RIGHT_APPLICATION_ALL"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Warning,
    Problem,
    Skipped,
}

impl Status {
    fn mark(self, style: Style) -> String {
        match self {
            Status::Ok => style.paint(Colour::Green, "✓"),
            Status::Warning => style.paint(Colour::Yellow, "!"),
            Status::Problem => style.paint(Colour::Red, "✗"),
            Status::Skipped => "-".to_string(),
        }
    }
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub status: Status,
    pub text: String,
    /// The command (or step) that fixes a problem.
    pub fix: Option<String>,
}

impl Finding {
    /// `✓ text`, then `  fix: …` on the next line.
    pub fn render(&self, style: Style) -> String {
        let mut line = format!("{} {}", self.status.mark(style), self.text);
        if let Some(fix) = &self.fix {
            let _ = write!(line, "\n    fix: {fix}");
        }
        line
    }
}

/// Which side of the migration a profile is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Source,
    Target,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Source => "source",
            Side::Target => "target",
        }
    }

    fn example_host(self) -> &'static str {
        match self {
            Side::Source => "eu1.cloud.thethings.network",
            Side::Target => "<tenant>.eu1.cloud.thethings.industries",
        }
    }
}

/// The findings so far, and where the calls are reported.
pub struct Checkup<'a> {
    pub findings: Vec<Finding>,
    ran: &'a mut dyn FnMut(&Invocation, &str),
}

impl<'a> Checkup<'a> {
    pub fn new(ran: &'a mut dyn FnMut(&Invocation, &str)) -> Checkup<'a> {
        Checkup {
            findings: Vec::new(),
            ran,
        }
    }

    fn add(&mut self, status: Status, text: impl Into<String>, fix: Option<String>) {
        self.findings.push(Finding {
            status,
            text: text.into(),
            fix,
        });
    }

    pub fn problems(&self) -> Vec<&Finding> {
        self.of(Status::Problem)
    }

    pub fn warnings(&self) -> Vec<&Finding> {
        self.of(Status::Warning)
    }

    fn of(&self, status: Status) -> Vec<&Finding> {
        self.findings
            .iter()
            .filter(|f| f.status == status)
            .collect()
    }

    /// The binary was found and is recent enough. Returns it when it can be used.
    pub fn cli(&mut self, located: Result<TtnLwCli>) -> Option<TtnLwCli> {
        let cli = match located {
            Ok(cli) => cli,
            Err(e) => {
                let text = format!("{e:#}");
                let text = text.split('\n').next().unwrap_or_default().to_string();
                self.add(
                    Status::Problem,
                    text,
                    Some(format!(
                        "install The Things Stack CLI ({INSTALL_URL}), for example \
                         `sudo snap install ttn-lw-stack`, then `export TTN_LW_CLI=/path/to/ttn-lw-cli`"
                    )),
                );
                return None;
            }
        };
        match cli.version() {
            Ok(version) => {
                self.version(&cli, version);
                if let Some(shared) = cli.snap_shared_dir() {
                    self.add(
                        Status::Ok,
                        format!(
                            "ttn-lw-cli is the ttn-lw-stack snap, which cannot open hidden folders of \
                             your home nor /tmp: it gets copies of the profiles in {} and import \
                             documents through a pipe",
                            shared.display()
                        ),
                        None,
                    );
                }
                (version >= MIN_VERSION).then_some(cli)
            }
            Err(e) => {
                self.add(
                    Status::Problem,
                    format!("{e:#}"),
                    Some(format!(
                        "point TTN_LW_CLI at The Things Stack CLI ({INSTALL_URL})"
                    )),
                );
                None
            }
        }
    }

    /// What a ttn-lw-cli version can do.
    pub fn version(&mut self, cli: &TtnLwCli, version: Version) {
        let at = format!(
            "ttn-lw-cli {version} at {} ({})",
            cli.path().display(),
            cli.found_via
        );
        let upgrade = Some(format!(
            "install ttn-lw-cli {PENDING_STATE_VERSION} or newer ({INSTALL_URL})"
        ));
        if version < MIN_VERSION {
            self.add(
                Status::Problem,
                format!("{at}: too old, importing sessions needs {MIN_VERSION} or newer"),
                upgrade,
            );
        } else if version < PENDING_STATE_VERSION {
            self.add(
                Status::Warning,
                format!(
                    "{at}: devices with a pending session or MAC state fail to import before \
                     {PENDING_STATE_VERSION} (lorawan-stack #5926){}",
                    missing_commands(version)
                ),
                upgrade,
            );
        } else {
            self.add(Status::Ok, at, None);
        }
    }

    /// The profile exists, parses and names a deployment.
    pub fn profile(&mut self, store: &ProfileStore, side: Side, value: &str) -> Option<Profile> {
        let add = format!(
            "ttn-session-migrate profile add {value} --host {}",
            side.example_host()
        );
        if !looks_like_path(value) {
            if let Ok(name) = ProfileName::parse(value) {
                let path = store.path_of(&name);
                if !path.is_file() {
                    self.add(
                        Status::Problem,
                        format!(
                            "{} profile `{value}` does not exist (looked for {})",
                            side.name(),
                            path.display()
                        ),
                        Some(add),
                    );
                    return None;
                }
            }
        }
        match store.resolve(value) {
            Ok(profile) => {
                self.add(
                    Status::Ok,
                    format!(
                        "{} profile `{}`: {} ({})",
                        side.name(),
                        profile.label,
                        profile.deployment(),
                        profile.path.display()
                    ),
                    None,
                );
                Some(profile)
            }
            Err(e) => {
                let fix = if looks_like_path(value) {
                    "pass a config file written by `ttn-lw-cli use <HOST>`".to_string()
                } else {
                    format!("ttn-session-migrate profile remove {value}, then {add}")
                };
                self.add(
                    Status::Problem,
                    format!("{} profile `{value}`: {e:#}", side.name()),
                    Some(fix),
                );
                None
            }
        }
    }

    /// Two profiles that share a `credentials-id` share one login in ttn-lw-cli's cache: logging
    /// in to one logs the other out. One profile on both sides is a move between two
    /// applications of one deployment when `applications_differ`.
    pub fn distinct_logins(
        &mut self,
        source: &Profile,
        target: &Profile,
        applications_differ: bool,
    ) {
        let id = |p: &Profile| p.config.credentials_id.clone().unwrap_or_default();
        if source.path == target.path && applications_differ {
            self.add(
                Status::Ok,
                format!(
                    "one profile `{}` on both sides: a move between applications of {}",
                    source.label,
                    source.deployment()
                ),
                None,
            );
            return;
        }
        if source.path == target.path {
            self.add(
                Status::Warning,
                format!(
                    "the source and the target are the same profile `{}`",
                    source.label
                ),
                None,
            );
            return;
        }
        if id(source) == id(target) {
            let shown = match id(source) {
                id if id.is_empty() => "no credentials-id (both use the default slot)".to_string(),
                id => format!("credentials-id `{id}`"),
            };
            let host = crate::profile::host_of(
                target
                    .config
                    .identity_server_grpc_address
                    .as_deref()
                    .unwrap_or_default(),
            );
            // Two profiles of one host already share the host as their id: name the slot after
            // the target profile's file instead, so the fix changes something.
            let host = match host {
                host if host.is_empty() || host == id(source) => target
                    .path
                    .file_stem()
                    .map_or_else(|| "target".into(), |s| s.to_string_lossy().into_owned()),
                host => host,
            };
            self.add(
                Status::Problem,
                format!(
                    "profiles `{}` and `{}` share {shown}: logging in to one replaces the other's login",
                    source.label, target.label
                ),
                Some(format!(
                    "set `credentials-id: {host}` in {}, then `ttn-session-migrate login {}`",
                    target.path.display(),
                    target.label
                )),
            );
        } else {
            self.add(
                Status::Ok,
                format!(
                    "profiles `{}` and `{}` keep separate logins (distinct credentials-id)",
                    source.label, target.label
                ),
                None,
            );
        }
    }

    /// `auth-info`: the login works, and its rights are enough. Returns what `auth-info` said
    /// when the login works.
    pub fn login(&mut self, cli: &TtnLwCli, side: Side, profile: &Profile) -> Option<AuthInfo> {
        let call = Invocation::new(&profile.path, ["auth-info"]);
        let login = format!("ttn-session-migrate login {}", login_label(profile));
        let output = match cli.run(&call) {
            Ok(output) => output,
            Err(e) => {
                let (text, fix) = login_failure(&e, side, profile, &login);
                self.add(Status::Problem, text, Some(fix));
                return None;
            }
        };
        (self.ran)(&call, "login works");
        let info: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        let kind = if info.get("api_key").is_some() {
            "API key"
        } else if info.get("oauth_access_token").is_some() {
            "OAuth"
        } else {
            "login"
        };
        self.add(
            Status::Ok,
            format!(
                "{} login `{}` works on {} ({kind})",
                side.name(),
                profile.label,
                profile.deployment()
            ),
            None,
        );
        let auth = AuthInfo {
            kind,
            application: info
                .pointer("/api_key/entity_ids/application_ids/application_id")
                .and_then(Value::as_str)
                .map(str::to_string),
        };
        let Some(rights) = rights_of(&info) else {
            return Some(auth);
        };
        let missing: Vec<&(&str, &str)> = REQUIRED_RIGHTS
            .iter()
            .filter(|(right, _)| !has_right(&rights, right))
            .collect();
        if !missing.is_empty() {
            let list: Vec<String> = missing
                .iter()
                .map(|(right, what)| format!("{right} (to {what})"))
                .collect();
            self.add(
                Status::Problem,
                format!(
                    "the {kind} of `{}` lacks {}",
                    profile.label,
                    list.join(", ")
                ),
                Some(format!(
                    "in the Console ({}), add an API key to the application with the rights {}, \
                     then `{login} --api-key <KEY>`",
                    console_url(&profile.deployment()),
                    required_rights_text()
                )),
            );
        }
        Some(auth)
    }

    /// An API key of one application has rights on that application only (`auth-info` names
    /// its owner in `entity_ids`).
    pub fn scope(&mut self, side: Side, profile: &Profile, auth: &AuthInfo, app: &str) {
        let Some(owner) = &auth.application else {
            return;
        };
        if owner == app {
            self.add(
                Status::Ok,
                format!(
                    "the {} of `{}` belongs to application `{app}`",
                    auth.kind, profile.label
                ),
                None,
            );
            return;
        }
        self.add(
            Status::Problem,
            format!(
                "the {} of `{}` belongs to application `{owner}`, not `{app}`: it has no rights on `{app}` (the {})",
                auth.kind,
                profile.label,
                side.name()
            ),
            Some(format!(
                "in the Console ({}), add an API key to application `{app}` with the rights {}, \
                 then `ttn-session-migrate login {} --api-key <KEY>`",
                console_url(&profile.deployment()),
                required_rights_text(),
                login_label(profile)
            )),
        );
    }

    /// `applications get`: the application is readable on the source, and exists on the target.
    pub fn application(&mut self, cli: &TtnLwCli, side: Side, profile: &Profile, app: &str) {
        let call = Invocation::new(&profile.path, ["applications", "get", app]);
        match cli.run(&call) {
            Ok(_) => {
                (self.ran)(&call, "application exists");
                self.add(
                    Status::Ok,
                    format!(
                        "application `{app}` is on the {} ({})",
                        side.name(),
                        profile.deployment()
                    ),
                    None,
                );
            }
            Err(e) => {
                let console = console_url(&profile.deployment());
                let (text, fix) = match (e.kind, side) {
                    (ErrorKind::PermissionDenied | ErrorKind::ApplicationNotFound, Side::Source) => (
                        format!(
                            "application `{app}` cannot be read on the source ({}): it does not exist, \
                             or the login `{}` has no rights to it",
                            profile.deployment(),
                            profile.label
                        ),
                        format!(
                            "check the application ID in the Console ({console}/applications), or log in with \
                             an API key of that application: `ttn-session-migrate login {} --api-key <KEY>`",
                            login_label(profile)
                        ),
                    ),
                    (ErrorKind::PermissionDenied | ErrorKind::ApplicationNotFound, Side::Target) => (
                        format!(
                            "application `{app}` does not exist on the target ({}), or the login `{}` has no rights to it",
                            profile.deployment(),
                            profile.label
                        ),
                        format!(
                            "create application `{app}` in the Console ({console}/applications/add), \
                             or pick an existing one with --to-application"
                        ),
                    ),
                    _ => (
                        format!(
                            "application `{app}` on the {}: {}",
                            side.name(),
                            e.detail
                        ),
                        "check the network connection, then run the check again".to_string(),
                    ),
                };
                self.add(Status::Problem, text, Some(fix));
            }
        }
    }

    /// `TTN_LW_*` variables change what ttn-lw-cli does when run by hand, not through this tool.
    pub fn environment(&mut self, names: impl IntoIterator<Item = String>) {
        let mut stray: Vec<String> = names
            .into_iter()
            .filter(|n| n.starts_with("TTN_LW_"))
            .collect();
        stray.sort();
        if stray.is_empty() {
            self.add(Status::Ok, "no TTN_LW_* variables in the environment", None);
            return;
        }
        self.add(
            Status::Warning,
            format!(
                "{} set in your environment: this tool removes {} from its ttn-lw-cli calls, but \
                 ttn-lw-cli run by hand uses {} instead of the profile's settings",
                stray.join(", "),
                if stray.len() == 1 { "it" } else { "them" },
                if stray.len() == 1 { "it" } else { "them" },
            ),
            Some(format!("unset {}", stray.join(" "))),
        );
    }

    /// Not checked, because what it needs failed.
    pub fn skipped(&mut self, what: &str, because: &str) {
        self.add(
            Status::Skipped,
            format!("{what}: not checked ({because})"),
            None,
        );
    }
}

/// The checks `migrate` runs before its first delete: the CLI's version, separate logins, both
/// logins and their rights, both applications, and the environment. The CLI was already found
/// and its version read by the caller.
pub fn before_migration<'a>(
    cli: &TtnLwCli,
    migration: &Migration,
    ran: &'a mut dyn FnMut(&Invocation, &str),
) -> Checkup<'a> {
    let mut checkup = Checkup::new(ran);
    if let Ok(version) = cli.version() {
        checkup.version(cli, version);
    }
    checkup.distinct_logins(
        &migration.source,
        &migration.target,
        migration.application_id != migration.target_application_id,
    );
    for (side, profile, app) in [
        (Side::Source, &migration.source, &migration.application_id),
        (
            Side::Target,
            &migration.target,
            &migration.target_application_id,
        ),
    ] {
        if let Some(auth) = checkup.login(cli, side, profile) {
            checkup.scope(side, profile, &auth, app);
            checkup.application(cli, side, profile, app);
        }
    }
    checkup.environment(std::env::vars_os().map(|(k, _)| k.to_string_lossy().into_owned()));
    checkup
}

/// What a CLI older than 3.21.2 lacks, as the end of a sentence (empty for newer ones).
fn missing_commands(version: Version) -> String {
    let mut missing = Vec::new();
    if version < SCHEDULE_DOWNLINKS_VERSION {
        missing.push(format!(
            "--freeze-downlinks needs {SCHEDULE_DOWNLINKS_VERSION} or newer"
        ));
    }
    if version < DEV_ADDR_PREFIXES_VERSION {
        missing.push(format!(
            "the gateway check cannot read the target's DevAddr prefixes before \
             {DEV_ADDR_PREFIXES_VERSION} (end-devices get-dev-addr-prefixes)"
        ));
    }
    if missing.is_empty() {
        String::new()
    } else {
        format!("; {}", missing.join("; "))
    }
}

/// What this migration asks of ttn-lw-cli that its version does not have: checked before the
/// first delete, also with `--skip-checks` (no call needed, the version is known).
pub fn unsupported_by(version: Version, migration: &Migration) -> Option<String> {
    if migration.freeze_downlinks && version < SCHEDULE_DOWNLINKS_VERSION {
        return Some(format!(
            "--freeze-downlinks needs ttn-lw-cli {SCHEDULE_DOWNLINKS_VERSION} or newer (its \
             --mac-settings.schedule-downlinks flag appeared then), and this one is {version}; \
             nothing was deleted. Install a newer ttn-lw-cli ({INSTALL_URL}), or migrate without \
             --freeze-downlinks"
        ));
    }
    None
}

/// The problems as one error message, for `migrate`.
pub fn refusal(checkup: &Checkup) -> String {
    let problems = checkup.problems();
    let mut text = format!(
        "the checks before the migration found {} problem{}; nothing was deleted:",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for finding in problems {
        let _ = write!(text, "\n{}", finding.render(Style::plain()));
    }
    text.push_str(
        "\nFix them and run again (`ttn-session-migrate doctor` shows every check), or pass --skip-checks",
    );
    text
}

/// What `auth-info` said about a working login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthInfo {
    /// `API key`, `OAuth` or `login`.
    pub kind: &'static str,
    /// The application an application API key belongs to (`None` for user keys and tokens).
    pub application: Option<String>,
}

/// What a failed `auth-info` means, and what fixes it.
fn login_failure(e: &CliError, side: Side, profile: &Profile, login: &str) -> (String, String) {
    let who = format!("{} login `{}`", side.name(), profile.label);
    let name = e.error.as_ref().map_or("", |t| t.name.as_str());
    match e.kind {
        ErrorKind::Unauthenticated if name == "api_key_not_found" => (
            format!(
                "{who}: {} does not accept the stored API key (api_key_not_found)",
                profile.deployment()
            ),
            format!("{login} --api-key <KEY> (a key that exists in that deployment)"),
        ),
        ErrorKind::Unauthenticated if name == "token_not_found" => (
            format!(
                "{who}: the OAuth access token is gone (token_not_found): another ttn-lw-cli \
                 process refreshed it, or it was revoked"
            ),
            format!("{login} again; for large batches prefer `{login} --api-key <KEY>`"),
        ),
        ErrorKind::Unauthenticated if name == "invalid_authorization" => (
            format!(
                "{who}: {} knows the stored API key's ID but not its secret (invalid_authorization)",
                profile.deployment()
            ),
            format!("{login} --api-key <KEY> (the whole key, as the Console showed it)"),
        ),
        ErrorKind::Unauthenticated => (
            format!("{who}: not logged in to {}", profile.deployment()),
            format!("{login} (OAuth in the browser), or `{login} --api-key <KEY>`"),
        ),
        ErrorKind::UnknownHost => (
            format!(
                "{who}: the login was made for other server addresses than {} now names (unknown_host)",
                profile.path.display()
            ),
            login.to_string(),
        ),
        ErrorKind::Transport | ErrorKind::Timeout => (
            format!("{who}: cannot reach {}: {}", profile.deployment(), e.detail),
            format!(
                "check the network connection and the addresses in {} (`ttn-session-migrate profile show {}`)",
                profile.path.display(),
                login_label(profile)
            ),
        ),
        _ => (format!("{who}: {}", e.detail), login.to_string()),
    }
}

/// What to type after `login`: the profile name, or its path quoted for the shell.
fn login_label(profile: &Profile) -> String {
    crate::ttn_lw_cli::quote(&profile.label)
}

/// The rights an `auth-info` answer grants (API key or OAuth token), if it lists any.
fn rights_of(info: &Value) -> Option<Vec<String>> {
    let rights = info
        .pointer("/api_key/api_key/rights")
        .or_else(|| info.pointer("/oauth_access_token/rights"))?
        .as_array()?;
    Some(
        rights
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
    )
}

fn has_right(rights: &[String], right: &str) -> bool {
    rights
        .iter()
        .any(|r| r == right || ALL_RIGHTS.contains(&r.as_str()))
}

/// The Console of a deployment.
pub fn console_url(deployment: &Deployment) -> String {
    match deployment {
        Deployment::CommunityEdition { cluster } => {
            format!("https://{cluster}.cloud.thethings.network/console")
        }
        Deployment::Cloud { tenant, cluster } => {
            format!("https://{tenant}.{cluster}.cloud.thethings.industries/console")
        }
        Deployment::Other { host } => format!("https://{host}/console"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_rights_from_api_keys_and_oauth_tokens() {
        let key = json!({"api_key": {"api_key": {"id": "X", "rights": ["RIGHT_APPLICATION_DEVICES_READ"]}}});
        assert_eq!(
            rights_of(&key).unwrap(),
            vec!["RIGHT_APPLICATION_DEVICES_READ"]
        );
        let token = json!({"oauth_access_token": {"rights": ["RIGHT_ALL"]}});
        assert_eq!(rights_of(&token).unwrap(), vec!["RIGHT_ALL"]);
        assert!(rights_of(&json!({"user_session": {}})).is_none());
    }

    #[test]
    fn all_rights_include_each_application_right() {
        let all = vec!["RIGHT_APPLICATION_ALL".to_string()];
        let read = vec!["RIGHT_APPLICATION_DEVICES_READ".to_string()];
        for (right, _) in REQUIRED_RIGHTS {
            assert!(has_right(&all, right));
        }
        assert!(has_right(&read, "RIGHT_APPLICATION_DEVICES_READ"));
        assert!(!has_right(&read, "RIGHT_APPLICATION_DEVICES_WRITE_KEYS"));
    }

    #[test]
    fn names_consoles() {
        assert_eq!(
            console_url(&Deployment::of_host("acme.au1.cloud.thethings.industries")),
            "https://acme.au1.cloud.thethings.industries/console"
        );
        assert_eq!(
            console_url(&Deployment::of_host("nam1.cloud.thethings.network")),
            "https://nam1.cloud.thethings.network/console"
        );
    }

    #[test]
    fn stray_variables_are_a_warning_with_the_unset_command() {
        let mut ran = |_: &Invocation, _: &str| {};
        let mut checkup = Checkup::new(&mut ran);
        checkup.environment(["HOME".to_string(), "TTN_LW_APPLICATION_ID".to_string()]);
        assert_eq!(checkup.warnings().len(), 1);
        assert_eq!(
            checkup.findings[0].fix.as_deref(),
            Some("unset TTN_LW_APPLICATION_ID")
        );
        let mut checkup = Checkup::new(&mut ran);
        checkup.environment(["HOME".to_string()]);
        assert_eq!(checkup.findings[0].status, Status::Ok);
    }

    #[test]
    fn findings_render_with_their_fix() {
        let finding = Finding {
            status: Status::Problem,
            text: "not logged in".into(),
            fix: Some("ttn-session-migrate login ce".into()),
        };
        assert_eq!(
            finding.render(Style::plain()),
            "✗ not logged in\n    fix: ttn-session-migrate login ce"
        );
    }
}
