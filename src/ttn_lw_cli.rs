//! Locating and invoking `ttn-lw-cli`: the only place in the tool that spawns it.
//!
//! Every call is an [`Invocation`]: one profile config file, the arguments, where stdin comes
//! from and (for display) where stdout goes. The same value is rendered as a copy-pasteable
//! shell line for `--dry-run` and `-v`, and executed with a scrubbed environment.

use std::ffi::OsString;
use std::fmt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// Sessions (and MAC state) can be imported only from this version on.
pub const MIN_VERSION: Version = Version(3, 12, 0);

/// Environment the tool sets on every call. Environment variables rather than flags, so that an
/// older CLI does not fail on a flag it does not know. The log format and level are pinned (they
/// override a hand-written profile's `log:` section): the tool reads the CLI's `LEVEL<TAB>msg`
/// console lines, and a `WARN Deselecting …` line must not be filtered out.
pub const FIXED_ENV: [(&str, &str); 4] = [
    ("TTN_LW_SKIP_VERSION_CHECK", "true"),
    ("TTN_LW_TELEMETRY_ENABLE", "false"),
    ("TTN_LW_LOG_FORMAT", "console"),
    ("TTN_LW_LOG_LEVEL", "info"),
];

/// Variables of the operator's terminal that change the CLI's output: `COLORTERM` makes its
/// logger colour the levels even when stderr is a pipe (`pkg/log/zap_handler.go`), which would
/// hide its `ERROR` lines from the tool (real-cli-audit.md P4).
pub const SCRUBBED_ENV: [&str; 1] = ["COLORTERM"];

/// The command the `ttn-lw-stack` snap installs (`/snap/bin/ttn-lw-stack.ttn-lw-cli`); `sudo snap
/// alias ttn-lw-stack.ttn-lw-cli ttn-lw-cli` adds the short name as a symlink to it.
pub const SNAP_COMMAND: &str = "ttn-lw-stack.ttn-lw-cli";

/// Under the home directory: the snap's own directory, which the confined CLI may read and write
/// (it may not open hidden folders of home, like `~/.config` where profiles live, nor the
/// caller's `/tmp`).
pub const SNAP_SHARED_DIR: &str = "snap/ttn-lw-stack/common/ttn-session-migrate";

/// How long one call may take before it is treated as hung.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// A located `ttn-lw-cli` binary.
#[derive(Debug, Clone)]
pub struct TtnLwCli {
    path: PathBuf,
    /// What a shell line calls it: the bare name when it was found on `PATH`.
    display: String,
    /// Where it was found, for `doctor`.
    pub found_via: String,
    timeout: Duration,
    echo: bool,
    version: std::sync::OnceLock<Version>,
    /// The confined `ttn-lw-stack` snap: where it may read profiles (see [`SNAP_SHARED_DIR`]).
    snap: Option<PathBuf>,
}

/// Where the binary may come from, in the order it is looked for.
pub struct Locator<'a> {
    pub flag: Option<&'a Path>,
    pub env: Option<OsString>,
    pub search_path: Option<OsString>,
}

impl Locator<'_> {
    pub fn from_environment(flag: Option<&Path>) -> Locator<'_> {
        Locator {
            flag,
            env: std::env::var_os("TTN_LW_CLI").filter(|v| !v.is_empty()),
            search_path: std::env::var_os("PATH"),
        }
    }

    pub fn locate(&self) -> Result<TtnLwCli> {
        if let Some(path) = self.flag {
            return TtnLwCli::at(path, "--ttn-lw-cli");
        }
        if let Some(path) = &self.env {
            return TtnLwCli::at(Path::new(path), "TTN_LW_CLI");
        }
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        for name in ["ttn-lw-cli", "tti-lw-cli", SNAP_COMMAND] {
            if let Ok(path) = which::which_in(name, self.search_path.as_ref(), &cwd) {
                let mut cli = TtnLwCli::new(path, name.to_string());
                cli.found_via = format!("{name} on PATH");
                return Ok(cli);
            }
        }
        bail!(
            "ttn-lw-cli was not found: looked at --ttn-lw-cli, the TTN_LW_CLI environment variable, \
             and for `ttn-lw-cli`, `tti-lw-cli` and `ttn-lw-stack.ttn-lw-cli` (the snap) on PATH.\n\
             Install The Things Stack CLI (https://www.thethingsindustries.com/docs/concepts/features/cli/installing-cli/), \
             e.g. `sudo snap install ttn-lw-stack` or the release archive, then pass its path with --ttn-lw-cli PATH \
             or set TTN_LW_CLI=PATH"
        )
    }
}

impl TtnLwCli {
    fn new(path: PathBuf, display: String) -> Self {
        let snap = is_snap(&path)
            .then(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(SNAP_SHARED_DIR)))
            .flatten();
        TtnLwCli {
            path,
            display,
            found_via: String::new(),
            timeout: DEFAULT_TIMEOUT,
            echo: false,
            version: std::sync::OnceLock::new(),
            snap,
        }
    }

    /// Where the confined `ttn-lw-stack` snap is handed profiles, if this is the snap.
    pub fn snap_shared_dir(&self) -> Option<&Path> {
        self.snap.as_deref()
    }

    /// A private directory the CLI can work in (`use` writes its file there): in the snap's
    /// shared directory for the snap, else in the system's temporary directory.
    pub fn scratch_dir(&self) -> std::io::Result<tempfile::TempDir> {
        match &self.snap {
            Some(shared) => {
                std::fs::create_dir_all(shared)?;
                tempfile::Builder::new()
                    .prefix("scratch-")
                    .tempdir_in(shared)
            }
            None => tempfile::tempdir(),
        }
    }

    /// The config file the CLI is given: for the snap, a copy in its shared directory (a
    /// non-hidden name, mode 0600), refreshed on every call.
    fn readable_config(&self, config: &Path) -> PathBuf {
        let Some(shared) = &self.snap else {
            return config.to_path_buf();
        };
        if config.starts_with(shared) {
            return config.to_path_buf();
        }
        let Ok(content) = std::fs::read(config) else {
            return config.to_path_buf();
        };
        let stem = config
            .file_stem()
            .map(|s| s.to_string_lossy().trim_start_matches('.').to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "config".to_string());
        let copy = shared.join("profiles").join(format!(
            "{stem}-{:08x}.yml",
            fnv1a(config.as_os_str().as_encoded_bytes()) as u32
        ));
        let written = copy
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|_| write_private(&copy, &content));
        match written {
            Ok(()) => copy,
            Err(_) => config.to_path_buf(),
        }
    }

    /// The arguments as the CLI gets them (the config file possibly handed over for the snap).
    fn argv_for(&self, invocation: &Invocation) -> Vec<String> {
        let mut argv = invocation.argv();
        if self.snap.is_some() {
            argv[1] = self
                .readable_config(&invocation.config)
                .display()
                .to_string();
        }
        argv
    }

    fn at(path: &Path, via: &str) -> Result<Self> {
        let meta = std::fs::metadata(path).with_context(|| {
            format!(
                "ttn-lw-cli given by {via} does not exist: {}; check the path",
                path.display()
            )
        })?;
        if !meta.is_file() {
            bail!(
                "ttn-lw-cli given by {via} is not a file: {}",
                path.display()
            );
        }
        // Absolute, but symlinks kept: the snap's `/snap/bin/…` links to `/usr/bin/snap`, which
        // tells the snap from the name it was started by.
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let display = path.display().to_string();
        let mut cli = TtnLwCli::new(path, display);
        cli.found_via = via.to_string();
        Ok(cli)
    }

    /// The binary that runs.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Print each command on stderr as it runs (`-v`). Commands never carry keys: documents
    /// with keys only travel through files.
    pub fn with_echo(mut self, echo: bool) -> Self {
        self.echo = echo;
        self
    }

    /// `ttn-lw-cli version`, parsed from its `Version:` line; asked once per run.
    pub fn version(&self) -> Result<Version> {
        if let Some(version) = self.version.get() {
            return Ok(*version);
        }
        let output = self
            .run_plain(&["version"])
            .with_context(|| format!("could not run `{} version`", self.display))?;
        let text = String::from_utf8_lossy(&output);
        let version = Version::from_version_output(&text).with_context(|| {
            format!(
                "`{} version` printed no `Version:` line; is {} really ttn-lw-cli?",
                self.display,
                self.path.display()
            )
        })?;
        Ok(*self.version.get_or_init(|| version))
    }

    /// Checks the version is recent enough to import sessions.
    pub fn require_supported_version(&self) -> Result<Version> {
        let version = self.version()?;
        if version < MIN_VERSION {
            bail!(
                "ttn-lw-cli {version} at {} is too old: importing sessions needs 3.12 or newer. \
                 Upgrade The Things Stack CLI",
                self.path.display()
            );
        }
        Ok(version)
    }

    /// The shell line for an invocation.
    pub fn render(&self, invocation: &Invocation) -> String {
        let mut words = vec![self.display.clone()];
        words.extend(invocation.argv());
        // An API key is a secret: it never reaches the terminal.
        for i in 1..words.len() {
            if words[i - 1] == "--api-key" {
                words[i] = "<api-key>".to_string();
            }
        }
        let mut line = words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ");
        if let Some(dir) = &invocation.dir {
            line = format!("(cd {} && {line})", quote(&dir.display().to_string()));
        }
        if let Stdin::File(path) = &invocation.stdin {
            line.push_str(" < ");
            line.push_str(&quote(&path.display().to_string()));
        }
        if let Some(path) = &invocation.stdout_to {
            line.push_str(" > ");
            line.push_str(&quote(&path.display().to_string()));
        }
        line
    }

    /// Runs one invocation. Success returns stdout and stderr; a non-zero exit, a hang past
    /// the timeout or a failure to spawn becomes a [`CliError`].
    pub fn run(&self, invocation: &Invocation) -> Result<Output, CliError> {
        let rendered = self.render(invocation);
        if let Some(problem) = config_path_problem(&invocation.config) {
            return Err(CliError {
                kind: ErrorKind::Invalid,
                command: rendered,
                exit_code: None,
                error: None,
                detail: problem,
            });
        }
        if self.echo {
            eprintln!("$ {rendered}");
        }
        let mut expression = duct::cmd(&self.path, self.argv_for(invocation))
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            // A child in its own process group does not receive the terminal's Ctrl-C, so an
            // import in flight finishes while the tool winds down.
            .before_spawn(|command| {
                command.process_group(0);
                Ok(())
            });
        if let Some(dir) = &invocation.dir {
            expression = expression.dir(dir);
        }
        expression = match &invocation.stdin {
            Stdin::Null => expression.stdin_null(),
            // The snap gets the document through a pipe: AppArmor would replace an inherited
            // file it may not open (the work directory, /tmp) with a null device.
            Stdin::File(path) if self.snap.is_some() => match std::fs::read(path) {
                Ok(bytes) => expression.stdin_bytes(bytes),
                Err(_) => expression.stdin_path(path),
            },
            Stdin::File(path) => expression.stdin_path(path),
        };
        expression = scrub_environment(expression);

        let failure = |kind, detail: String| CliError {
            kind,
            command: rendered.clone(),
            exit_code: None,
            error: None,
            detail,
        };
        let handle = expression
            .start()
            .map_err(|e| failure(ErrorKind::Spawn, format!("could not start ttn-lw-cli: {e}")))?;
        let output = match handle.wait_timeout(self.timeout) {
            Ok(Some(output)) => output.clone(),
            Ok(None) => {
                let _ = handle.kill();
                return Err(failure(
                    ErrorKind::Timeout,
                    format!("no answer within {}s", self.timeout.as_secs()),
                ));
            }
            Err(e) => return Err(failure(ErrorKind::Spawn, format!("waiting failed: {e}"))),
        };
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if output.status.success() {
            return Ok(Output {
                stdout: output.stdout,
                stderr,
            });
        }
        Err(CliError::from_failure(
            rendered,
            output.status.code(),
            &stderr,
        ))
    }

    /// Runs a command with the terminal passed through (interactive OAuth login).
    pub fn run_interactive(&self, invocation: &Invocation) -> Result<()> {
        let rendered = self.render(invocation);
        if let Some(problem) = config_path_problem(&invocation.config) {
            anyhow::bail!("{problem}");
        }
        if self.echo {
            eprintln!("$ {rendered}");
        }
        // Standard input, output and error stay the terminal's; same process group, so the
        // browser flow and a pasted code reach ttn-lw-cli.
        let status = scrub_environment(duct::cmd(&self.path, self.argv_for(invocation)))
            .unchecked()
            .run()
            .with_context(|| format!("could not start `{rendered}`"))?
            .status;
        if !status.success() {
            bail!(
                "`{rendered}` failed (exit status {})",
                status
                    .code()
                    .map_or_else(|| "killed".to_string(), |c| c.to_string())
            );
        }
        Ok(())
    }

    /// Runs a command that needs no config file (`version`).
    fn run_plain(&self, args: &[&str]) -> Result<Vec<u8>> {
        let output = scrub_environment(duct::cmd(&self.path, args))
            .stdin_null()
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .run()?;
        if !output.status.success() {
            bail!(
                "exit status {}: {}",
                output.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(output.stdout)
    }
}

/// Removes every inherited `TTN_LW_*` variable (they would override the profile's config file)
/// and [`SCRUBBED_ENV`], and sets [`FIXED_ENV`].
fn scrub_environment(mut expression: duct::Expression) -> duct::Expression {
    for (key, _) in std::env::vars_os() {
        let name = key.to_string_lossy();
        if name.starts_with("TTN_LW_") || SCRUBBED_ENV.contains(&name.as_ref()) {
            expression = expression.env_remove(key);
        }
    }
    for (key, value) in FIXED_ENV {
        expression = expression.env(key, value);
    }
    expression
}

/// Whether a binary is the `ttn-lw-stack` snap: its command name, a path under `/snap/`, or a
/// symlink (chain) to one of them or to `/usr/bin/snap` (how `/snap/bin` commands and
/// `snap alias` names are made).
pub fn is_snap(path: &Path) -> bool {
    let mut current = path.to_path_buf();
    for _ in 0..8 {
        let named_snap = current.file_name().is_some_and(|name| name == SNAP_COMMAND);
        if named_snap || current.starts_with("/snap/") || current == Path::new("/usr/bin/snap") {
            return true;
        }
        let Ok(target) = std::fs::read_link(&current) else {
            return false;
        };
        current = match current.parent() {
            Some(dir) if target.is_relative() => dir.join(target),
            _ => target,
        };
    }
    false
}

/// Writes a file readable only by its owner.
fn write_private(path: &Path, content: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(content)
}

/// FNV-1a: a short, stable name for a profile's copy.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// POSIX shell quoting of one word.
pub fn quote(word: &str) -> String {
    shlex::try_quote(word)
        .map(|q| q.into_owned())
        .unwrap_or_else(|_| format!("'{}'", word.replace('\0', "")))
}

/// Where a call's stdin comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stdin {
    /// `/dev/null`: an open, empty pipe makes the real CLI wait forever.
    Null,
    /// Exactly one device document, for `end-devices create`.
    File(PathBuf),
}

/// One `ttn-lw-cli` call: always exactly one `-c <config>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub config: PathBuf,
    pub args: Vec<String>,
    pub stdin: Stdin,
    /// Where the tool saves stdout; shown as `> file` in the shell line.
    pub stdout_to: Option<PathBuf>,
    /// Working directory of the call (`use` writes its file there).
    pub dir: Option<PathBuf>,
}

impl Invocation {
    pub fn new(config: &Path, args: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Invocation {
            config: config.to_path_buf(),
            args: args.into_iter().map(Into::into).collect(),
            stdin: Stdin::Null,
            stdout_to: None,
            dir: None,
        }
    }

    pub fn in_dir(mut self, dir: &Path) -> Self {
        self.dir = Some(dir.to_path_buf());
        self
    }

    pub fn stdin_file(mut self, path: &Path) -> Self {
        self.stdin = Stdin::File(path.to_path_buf());
        self
    }

    pub fn stdout_to(mut self, path: &Path) -> Self {
        self.stdout_to = Some(path.to_path_buf());
        self
    }

    pub fn argv(&self) -> Vec<String> {
        let mut argv = vec!["-c".to_string(), self.config.display().to_string()];
        argv.extend(self.args.iter().cloned());
        argv
    }
}

/// What a successful call printed.
#[derive(Debug, Clone)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: String,
}

/// `major.minor.patch` of ttn-lw-cli.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl Version {
    pub fn from_version_output(text: &str) -> Option<Version> {
        let line = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Version:"))?;
        Version::parse(line.trim())
    }

    /// Parses `3.32.1`, `v3.32.1` or `3.32.1-dev`.
    pub fn parse(text: &str) -> Option<Version> {
        let text = text.trim().trim_start_matches('v');
        let core = text.split(['-', '+', ' ']).next()?;
        let mut parts = core.split('.').map(|p| p.parse::<u32>());
        let major = parts.next()?.ok()?;
        let minor = parts.next()?.ok()?;
        let patch = parts.next().unwrap_or(Ok(0)).ok()?;
        Some(Version(major, minor, patch))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// What kind of failure a call ended in; callers decide on retry and rollback from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The end device does not exist (`end_device_not_found`, or a registry's `not_found`):
    /// the only failure that means "absent".
    NotFound,
    /// `pkg/identityserver/store:application_not_found`: the application does not exist.
    ApplicationNotFound,
    AlreadyExists,
    /// No valid credential: not logged in, an unknown or expired API key, a wrong secret, or an
    /// OAuth access token the server no longer has (`token_not_found`).
    Unauthenticated,
    UnknownHost,
    PermissionDenied,
    /// Connection refused, unavailable, deadline exceeded, a lost connection, a database that is
    /// down: the call may not have reached the server, or its answer was lost.
    Transport,
    RateLimited,
    /// The call did not answer within the timeout and was killed.
    Timeout,
    /// The document or a flag was rejected.
    Invalid,
    /// The binary could not be started.
    Spawn,
    Other,
}

/// Namespaces whose `not_found` is an end device missing from a registry (NS, AS, JS and the
/// stores behind them).
const DEVICE_REGISTRY_NAMESPACES: [&str; 4] = [
    "pkg/networkserver",
    "pkg/applicationserver",
    "pkg/joinserver",
    "pkg/util/store",
];

/// Texts of transport failures that carry no The Things Stack error name: plain dial errors
/// (v3.32.1) and gRPC statuses without details printed as `error:unknown:unknown (…)`
/// (`pkg/errors/grpc.go`; real-cli-audit.md E6).
const TRANSPORT_TEXTS: [&str; 15] = [
    "connection refused",
    "i/o timeout",
    "no such host",
    "transport",
    "connection reset",
    "error reading from server",
    "unexpected eof",
    "context deadline exceeded",
    "connection is draining",
    "name resolver error",
    "service unavailable",
    "bad gateway",
    "gateway timeout",
    "code = unavailable",
    "code = deadlineexceeded",
];

impl ErrorKind {
    /// Worth repeating after a pause, if the step is safe to repeat.
    pub fn is_transient(self) -> bool {
        matches!(self, Self::Transport | Self::RateLimited | Self::Timeout)
    }

    /// The kind of an error printed inside a log line (the `error` field of a registry's
    /// `ERROR Could not get end device from … Server` line of `end-devices get`).
    pub fn of_error_text(text: &str) -> ErrorKind {
        Self::classify(TtsError::parse(text).as_ref(), text)
    }

    fn classify(error: Option<&TtsError>, first_line: &str) -> ErrorKind {
        let (namespace, name) = error.map_or(("", ""), |e| (e.namespace.as_str(), e.name.as_str()));
        match name {
            "id_taken" | "end_device_euis_taken" | "already_exists" | "eui_taken" => {
                Self::AlreadyExists
            }
            "unknown_host" => Self::UnknownHost,
            "unauthenticated"
            | "api_key_not_found"
            | "api_key_expired"
            | "invalid_authorization"
            | "token_not_found"
            | "token_expired" => Self::Unauthenticated,
            "no_application_rights" | "permission_denied" => Self::PermissionDenied,
            n if n.starts_with("insufficient_") => Self::PermissionDenied,
            // pkg/errors/conversion.go, pkg/util/store/error.go.
            "context_deadline_exceeded" | "database_unavailable" => Self::Transport,
            n if namespace == "pkg/errors" && n.starts_with("net_") => Self::Transport,
            "rate_limit_exceeded" => Self::RateLimited,
            "field_value" | "validation" | "json_token" => Self::Invalid,
            "end_device_not_found" => Self::NotFound,
            "not_found"
                if DEVICE_REGISTRY_NAMESPACES
                    .iter()
                    .any(|ns| namespace == *ns || namespace.starts_with(&format!("{ns}/"))) =>
            {
                Self::NotFound
            }
            "application_not_found" => Self::ApplicationNotFound,
            n if n.ends_with("not_found") => Self::Other,
            n if n.starts_with("invalid_") || n.ends_with("_mismatch") => Self::Invalid,
            // Plain errors, and gRPC statuses without TTS details (`error:unknown:unknown`):
            // judge by the text.
            n if n.is_empty() || namespace == "unknown" => {
                let lower = first_line.to_ascii_lowercase();
                if lower.starts_with("oauth2:") {
                    Self::Unauthenticated
                } else if lower.contains("code = resourceexhausted") {
                    Self::RateLimited
                } else if TRANSPORT_TEXTS.iter().any(|needle| lower.contains(needle)) {
                    Self::Transport
                } else if lower.starts_with("unknown flag")
                    || lower.starts_with("unknown shorthand flag")
                    || lower.starts_with("flag needs an argument")
                    || lower.starts_with("invalid argument")
                    || lower.starts_with("unknown command")
                {
                    Self::Invalid
                } else {
                    Self::Other
                }
            }
            _ => Self::Other,
        }
    }
}

/// The first `error:<namespace>:<name> (<message>)` line of a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TtsError {
    pub namespace: String,
    pub name: String,
    pub message: String,
}

impl TtsError {
    pub fn parse(line: &str) -> Option<TtsError> {
        let rest = line.trim().strip_prefix("error:")?;
        let (id, message) = match rest.find(" (") {
            Some(i) => (
                &rest[..i],
                rest[i + 2..].strip_suffix(')').unwrap_or(&rest[i + 2..]),
            ),
            None => (rest, ""),
        };
        let (namespace, name) = id.rsplit_once(':')?;
        Some(TtsError {
            namespace: namespace.to_string(),
            name: name.to_string(),
            message: message.to_string(),
        })
    }
}

impl fmt::Display for TtsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "error:{}:{} ({})",
            self.namespace, self.name, self.message
        )
    }
}

/// A failed ttn-lw-cli call.
#[derive(Debug, Clone, thiserror::Error)]
#[error("`{command}` failed: {detail}")]
pub struct CliError {
    pub kind: ErrorKind,
    /// The shell line that failed (never holds keys).
    pub command: String,
    pub exit_code: Option<i32>,
    pub error: Option<Box<TtsError>>,
    /// The first error line, or a description.
    pub detail: String,
}

impl CliError {
    fn from_failure(command: String, exit_code: Option<i32>, stderr: &str) -> CliError {
        let error = stderr.lines().find_map(TtsError::parse).map(Box::new);
        let first_line = stderr
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("error:"))
            .or_else(|| stderr.lines().map(str::trim).find(|l| !is_log_line(l)))
            .unwrap_or("")
            .to_string();
        let mut kind = ErrorKind::classify(error.as_deref(), &first_line);
        if exit_code == Some(130) && error.is_none() {
            kind = ErrorKind::Transport;
        }
        let mut detail = if first_line.is_empty() {
            format!("exit status {} with no error message", exit_text(exit_code))
        } else {
            format!("{first_line} (exit status {})", exit_text(exit_code))
        };
        // `insufficient_…_rights` names the right it misses in an attribute line.
        if let Some(missing) = stderr
            .lines()
            .find_map(|l| l.trim().strip_prefix("missing="))
        {
            detail.push_str(&format!(", missing right {missing}"));
        }
        CliError {
            kind,
            command,
            exit_code,
            error,
            detail,
        }
    }
}

fn exit_text(code: Option<i32>) -> String {
    code.map_or_else(|| "none: killed by a signal".to_string(), |c| c.to_string())
}

/// `-c` is a string slice flag: ttn-lw-cli reads its value as comma-separated values
/// (`pkg/config/config.go`, pflag `StringSlice`), so a path with a comma names two files and a
/// double quote breaks the parse (real-cli-audit.md P7, D13).
pub fn config_path_problem(path: &Path) -> Option<String> {
    let text = path.display().to_string();
    text.contains([',', '"']).then(|| {
        format!(
            "the profile {text} has a comma or a double quote in its path, which ttn-lw-cli's -c \
             reads as a list of files. Keep the profiles in a directory without one: set \
             XDG_CONFIG_HOME (or HOME) to such a path and add the profiles again"
        )
    })
}

/// A zap console log line: `LEVEL<TAB>message`.
pub fn is_log_line(line: &str) -> bool {
    ["DEBUG", "INFO", "WARN", "ERROR", "FATAL"]
        .iter()
        .any(|level| {
            line.strip_prefix(level)
                .is_some_and(|rest| rest.starts_with('\t') || rest.starts_with(' '))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_error_line_of_an_error_block() {
        let e = TtsError::parse("error:pkg/util/store:id_taken (ID already taken, choose a different one and try again)").unwrap();
        assert_eq!(e.namespace, "pkg/util/store");
        assert_eq!(e.name, "id_taken");
        assert_eq!(
            e.message,
            "ID already taken, choose a different one and try again"
        );
        let e = TtsError::parse(
            "error:cmd/ttn-lw-cli/commands:unknown_host (unknown host `x` for current credentials)",
        )
        .unwrap();
        assert_eq!(e.namespace, "cmd/ttn-lw-cli/commands");
        assert_eq!(e.name, "unknown_host");
        assert!(TtsError::parse("INFO\tsomething").is_none());
    }

    #[test]
    fn classifies_failures_by_error_name() {
        let kind = |stderr: &str| CliError::from_failure("x".into(), Some(255), stderr).kind;
        assert_eq!(kind("error:pkg/identityserver/store:end_device_not_found (end device with id `d` not found in application with id `a`)\n    correlation_id=0123"), ErrorKind::NotFound);
        assert_eq!(
            kind("error:pkg/util/store:id_taken (ID already taken)\n--- error:pkg/util/store:already_exists (already exists)"),
            ErrorKind::AlreadyExists
        );
        assert_eq!(kind("error:pkg/identityserver:end_device_euis_taken (an end device with JoinEUI `1` and DevEUI `2` is already registered as `d` in application `a`)"), ErrorKind::AlreadyExists);
        assert_eq!(kind("error:cmd/ttn-lw-cli/commands:unauthenticated (not authenticated with either API key or OAuth access token)"), ErrorKind::Unauthenticated);
        assert_eq!(kind("ERROR\tFound an unknown host\nerror:cmd/ttn-lw-cli/commands:unknown_host (unknown host `h` for current credentials)"), ErrorKind::UnknownHost);
        assert_eq!(
            kind("error:pkg/auth/rights:no_application_rights (no rights for application `a`)"),
            ErrorKind::PermissionDenied
        );
        assert_eq!(kind("error:pkg/auth/rights:insufficient_application_rights (insufficient rights for application `a`)\n    missing=RIGHT_APPLICATION_DEVICES_WRITE_KEYS"), ErrorKind::PermissionDenied);
        assert_eq!(
            kind("error:pkg/ratelimit:rate_limit_exceeded (rate limit exceeded)"),
            ErrorKind::RateLimited
        );
        assert_eq!(
            kind("rpc error: dial tcp 1.2.3.4:8884: i/o timeout"),
            ErrorKind::Transport
        );
        assert_eq!(kind("unknown flag: --bogus"), ErrorKind::Invalid);
        assert_eq!(
            kind("error:pkg/joinserver:field_value (invalid value of field `ids.dev_addr`)"),
            ErrorKind::Invalid
        );
        assert_eq!(kind("error:unknown:unknown (connection error: desc = \"transport: Error while dialing: dial tcp 127.0.0.1:8884: connect: connection refused\")"), ErrorKind::Transport);
        assert_eq!(kind(""), ErrorKind::Other);
    }

    // real-cli-audit.md E1/D4: only a device that is not found means "absent".
    #[test]
    fn only_a_missing_device_is_not_found() {
        let kind = |stderr: &str| CliError::from_failure("x".into(), Some(255), stderr).kind;
        assert_eq!(
            kind("error:pkg/identityserver:token_not_found (access token not found)"),
            ErrorKind::Unauthenticated
        );
        assert_eq!(
            kind("error:pkg/identityserver/store:application_not_found (application with id `a` not found)\n    application_id=a"),
            ErrorKind::ApplicationNotFound
        );
        for other in [
            "error:pkg/identityserver/store:user_not_found (user with id `u` not found)",
            "error:pkg/identityserver/store:client_not_found (client with id `cli` not found)",
            "error:pkg/frequencyplans:not_found (frequency plan `EU` not found)",
        ] {
            assert_eq!(kind(other), ErrorKind::Other, "{other}");
        }
        assert_eq!(
            kind("error:pkg/identityserver/gormstore:end_device_not_found (end device with id `d` not found in application with id `a`)"),
            ErrorKind::NotFound
        );
        assert_eq!(
            kind("error:pkg/networkserver:not_found (end device not found)"),
            ErrorKind::NotFound
        );
        assert_eq!(
            kind("error:pkg/identityserver:invalid_authorization (invalid authorization)"),
            ErrorKind::Unauthenticated
        );
        assert_eq!(
            kind("error:pkg/identityserver:api_key_expired (API key expired)"),
            ErrorKind::Unauthenticated
        );
    }

    // real-cli-audit.md E6/E7: the transient failures as the real CLI prints them.
    #[test]
    fn transient_failures_are_recognised_by_their_real_names_and_texts() {
        let kind = |stderr: &str| CliError::from_failure("x".into(), Some(255), stderr).kind;
        for transport in [
            "error:unknown:unknown (error reading from server: EOF)",
            "error:pkg/errors:context_deadline_exceeded (context deadline exceeded)",
            "error:pkg/util/store:database_unavailable (database unavailable)",
            "error:unknown:unknown (the connection is draining)",
            "error:unknown:unknown (name resolver error: produced zero addresses)",
            "error:unknown:unknown (unexpected HTTP status code received from server: 503 (Service Unavailable))",
            "error:unknown:unknown (rpc error: code = Unavailable desc = )",
            "context deadline exceeded",
            "dial tcp 1.2.3.4:8884: connect: connection refused",
            "error:pkg/errors:net_operation (net operation failed)",
        ] {
            assert_eq!(kind(transport), ErrorKind::Transport, "{transport}");
        }
        assert_eq!(
            kind("error:pkg/ratelimit:rate_limit_exceeded (rate limit of `10` accesses per minute exceeded for resource `k`)\n    key=k\n    rate=10"),
            ErrorKind::RateLimited
        );
        // The fictional shapes the tool used to look for are not special any more.
        assert_eq!(
            kind("error:pkg/rpcclient:unavailable (service unavailable)"),
            ErrorKind::Other
        );
    }

    #[test]
    fn error_detail_is_the_first_error_line_not_the_log_noise() {
        let e = CliError::from_failure(
            "cmd".into(),
            Some(255),
            "INFO\tTelemetry is enabled\nERROR\tCould not create end device, rolling back...\nerror:pkg/joinserver:field_value (invalid value of field `ids.dev_addr`)\n    field=ids.dev_addr\n    correlation_id=abc\n",
        );
        assert_eq!(
            e.detail,
            "error:pkg/joinserver:field_value (invalid value of field `ids.dev_addr`) (exit status 255)"
        );
        assert_eq!(e.error.unwrap().name, "field_value");
    }

    #[test]
    fn parses_versions() {
        let out = "The Things Network Command-line Interface: ttn-lw-cli\nVersion:             3.32.1\nGo version:          go1.23.2\n";
        assert_eq!(Version::from_version_output(out), Some(Version(3, 32, 1)));
        assert_eq!(Version::parse("v3.11.3-dev"), Some(Version(3, 11, 3)));
        assert!(Version(3, 11, 9) < MIN_VERSION);
        assert_eq!(Version::from_version_output("no version here"), None);
    }

    #[test]
    fn renders_copy_pasteable_lines() {
        let cli = TtnLwCli::new(PathBuf::from("/usr/bin/ttn-lw-cli"), "ttn-lw-cli".into());
        let get = Invocation::new(
            Path::new("/home/op/my profiles/ce.yml"),
            ["end-devices", "get", "--application-id", "app-1"],
        )
        .stdout_to(Path::new("/tmp/w/dev's export.json"));
        assert_eq!(
            cli.render(&get),
            "ttn-lw-cli -c '/home/op/my profiles/ce.yml' end-devices get --application-id app-1 > \"/tmp/w/dev's export.json\""
        );
        let create = Invocation::new(Path::new("/c.yml"), ["end-devices", "create"])
            .stdin_file(Path::new("/w/import.json"));
        assert_eq!(
            cli.render(&create),
            "ttn-lw-cli -c /c.yml end-devices create < /w/import.json"
        );
    }

    #[test]
    fn quoted_lines_split_back_into_the_same_words() {
        for word in [
            "plain",
            "with space",
            "it's",
            "$HOME",
            "a\"b",
            "*",
            "",
            "new\nline",
        ] {
            assert_eq!(shlex::split(&quote(word)).unwrap(), vec![word.to_string()]);
        }
    }
}
