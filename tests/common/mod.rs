//! A small builder that runs the real `ttn-session-migrate` binary against the ttn-lw-cli test
//! double, in a temporary directory, so each test reads like a usage example:
//!
//! ```ignore
//! let env = Env::new().with_profiles();
//! env.seed_ce("otaa-eu1");
//! env.run(&["migrate", "app-1", "dev-1", "--yes"]).success();
//! ```
#![allow(dead_code, unused_imports)] // each test crate uses part of this module

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
pub use ttn_lw_cli_double::state::complete_registries;
pub use ttn_lw_cli_double::{DoubleState, Fault, Receiver, Registry, Traffic};

pub const CE: &str = "eu1.cloud.thethings.network";
pub const CLOUD: &str = "acme.eu1.cloud.thethings.industries";
pub const APP: &str = "app-1";

/// The `target/debug` directory holding both binaries.
pub fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_ttn-session-migrate"))
        .parent()
        .expect("binary has a directory")
        .to_path_buf()
}

/// One operator's machine: a home directory, the double on PATH, its state, and the profiles.
pub struct Env {
    dir: tempfile::TempDir,
    pub state: DoubleState,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let double = target_dir().join("ttn-lw-cli");
        assert!(
            double.is_file(),
            "the test double {} is missing: run `cargo test --workspace`",
            double.display()
        );
        std::os::unix::fs::symlink(&double, bin.join("ttn-lw-cli")).unwrap();
        std::fs::create_dir_all(dir.path().join("home/.config")).unwrap();
        std::fs::create_dir_all(dir.path().join("cwd")).unwrap();
        let state = DoubleState::new(dir.path().join("state"));
        state.add_application(CE, APP);
        state.add_application(CLOUD, APP);
        Env { dir, state }
    }

    /// ttn-lw-cli installed as the `ttn-lw-stack` snap: the double, confined like the snap, under
    /// the snap's command name `ttn-lw-stack.ttn-lw-cli`; `aliased` adds the `ttn-lw-cli` name
    /// that `sudo snap alias ttn-lw-stack.ttn-lw-cli ttn-lw-cli` makes (a symlink to it).
    pub fn with_snap_cli(self, aliased: bool) -> Env {
        let bin = self.bin_dir();
        std::fs::remove_file(bin.join("ttn-lw-cli")).unwrap();
        std::os::unix::fs::symlink(
            target_dir().join("ttn-lw-cli"),
            bin.join("ttn-lw-stack.ttn-lw-cli"),
        )
        .unwrap();
        if aliased {
            std::os::unix::fs::symlink("ttn-lw-stack.ttn-lw-cli", bin.join("ttn-lw-cli")).unwrap();
        }
        self.state.set_snap(true);
        self
    }

    /// `ce` and `cloud` profiles, created and logged in through the tool itself.
    pub fn with_profiles(self) -> Env {
        self.run(&["profile", "add", "ce", "--host", CE]).success();
        self.run(&["profile", "add", "cloud", "--host", CLOUD])
            .success();
        self.run(&["login", "ce", "--api-key", "NNSXS.CE.SECRET"])
            .success();
        self.run(&["login", "cloud", "--api-key", "NNSXS.CLOUD.SECRET"])
            .success();
        self
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The working directory the tool runs in.
    pub fn cwd(&self) -> PathBuf {
        self.dir.path().join("cwd")
    }

    pub fn bin_dir(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    pub fn profiles_dir(&self) -> PathBuf {
        self.dir
            .path()
            .join("home/.config/ttn-session-migrate/profiles")
    }

    pub fn profile(&self, name: &str) -> PathBuf {
        self.profiles_dir().join(format!("{name}.yml"))
    }

    /// Seeds a device fixture on Community Edition under `app-1`, with the given device ID.
    pub fn seed_ce(&self, fixture: &str, device_id: &str) -> Value {
        let mut device = DoubleState::fixture(fixture);
        device["ids"]["device_id"] = Value::String(device_id.into());
        device["ids"]["application_ids"]["application_id"] = Value::String(APP.into());
        self.state.put_device(CE, &device);
        device
    }

    /// The device on Community Edition when every server holds it; `None` when absent.
    /// Panics on a partial device (a create or delete stopped between two servers), which no
    /// test may leave behind unnoticed: see [`Env::registries_on`].
    #[track_caller]
    pub fn on_ce(&self, device_id: &str) -> Option<Value> {
        self.complete_on(CE, device_id)
    }

    /// The same on the Cloud.
    #[track_caller]
    pub fn on_cloud(&self, device_id: &str) -> Option<Value> {
        self.complete_on(CLOUD, device_id)
    }

    #[track_caller]
    fn complete_on(&self, host: &str, device_id: &str) -> Option<Value> {
        let device = self.state.device(host, APP, device_id)?;
        let held = self.state.registries(host, APP, device_id);
        assert_eq!(
            held,
            complete_registries(&device),
            "device {device_id} on {host} is held by only some servers"
        );
        Some(device)
    }

    /// The servers of `host` that hold the device (empty when absent).
    pub fn registries_on(&self, host: &str, device_id: &str) -> Vec<Registry> {
        self.state.registries(host, APP, device_id)
    }

    /// The commands the double saw, as `command` names, without the set-up calls.
    pub fn writes(&self) -> Vec<String> {
        self.writes_since(0)
    }

    /// The writes (`create`, `delete`, `set`) after the first `calls` calls of the call log.
    pub fn writes_since(&self, calls: usize) -> Vec<String> {
        self.state
            .calls()
            .into_iter()
            .skip(calls)
            .filter(|c| {
                matches!(
                    c.command.as_str(),
                    "end-devices create" | "end-devices delete" | "end-devices set"
                )
            })
            .map(|c| c.command)
            .collect()
    }

    pub fn cmd(&self) -> Test {
        Test::new(self)
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.cmd().args(args).run()
    }
}

pub struct Test {
    command: Command,
    stdin: Option<Vec<u8>>,
}

impl Test {
    fn new(env: &Env) -> Test {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ttn-session-migrate"));
        let path = format!(
            "{}:{}",
            env.bin_dir().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        command
            .current_dir(env.cwd())
            .env_clear()
            .env("PATH", path)
            .env("HOME", env.root().join("home"))
            .env("XDG_CONFIG_HOME", env.root().join("home/.config"))
            .env("TTN_DOUBLE_STATE", env.state.root())
            .env("NO_COLOR", "1");
        Test {
            command,
            stdin: None,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<std::ffi::OsStr>) -> Test {
        self.command.arg(arg);
        self
    }

    pub fn args(mut self, args: &[&str]) -> Test {
        self.command.args(args);
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Test {
        self.command.env(key, value);
        self
    }

    pub fn env_remove(mut self, key: &str) -> Test {
        self.command.env_remove(key);
        self
    }

    pub fn stdin(mut self, input: &str) -> Test {
        self.stdin = Some(input.as_bytes().to_vec());
        self
    }

    /// Runs the tool on a pseudo-terminal (util-linux `script`), as at an operator's terminal.
    /// Standard output and error arrive merged, as `stdout`.
    pub fn in_terminal(self) -> Test {
        let mut words = vec![self.command.get_program().to_string_lossy().into_owned()];
        words.extend(
            self.command
                .get_args()
                .map(|a| a.to_string_lossy().into_owned()),
        );
        let line = shlex::try_join(words.iter().map(String::as_str)).expect("quotable arguments");
        Test {
            command: script(&line, &self.command),
            stdin: self.stdin,
        }
    }

    /// [`Test::in_terminal`] with a terminal of `columns` columns (`stty` inside `script`).
    pub fn in_terminal_of(self, columns: u16) -> Test {
        let mut test = self.in_terminal();
        let args: Vec<String> = test
            .command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let line = format!("stty cols {columns} rows 40; exec {}", args[1]);
        test.command = script(&line, &test.command);
        test
    }

    /// Inside the terminal of [`Test::in_terminal_of`], pipes the tool's standard output
    /// through `filter` (as `… | tee log` does).
    pub fn pipe_stdout_through(mut self, filter: &str) -> Test {
        let args: Vec<String> = self
            .command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let line = format!("{} | {filter}", args[1]);
        self.command = script(&line, &self.command);
        self
    }

    /// Starts the tool with standard input as a pipe the test writes to (on a terminal made
    /// by `script`, bytes such as Ctrl-C, `\x03`, reach the tool as a keyboard would send them).
    pub fn spawn_with_keyboard(mut self) -> std::process::Child {
        self.command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        self.command.spawn().expect("spawn ttn-session-migrate")
    }

    pub fn spawn(mut self) -> std::process::Child {
        self.command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        self.command.spawn().expect("spawn ttn-session-migrate")
    }

    pub fn run(mut self) -> Run {
        use std::io::Write;
        self.command
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self.command.spawn().expect("spawn ttn-session-migrate");
        if let Some(input) = self.stdin.take() {
            child.stdin.take().unwrap().write_all(&input).unwrap();
        }
        let output = child.wait_with_output().unwrap();
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// What a run printed, with assertions that show everything when they fail.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn success(self) -> Run {
        assert_eq!(self.code, Some(0), "expected success:\n{self:#?}");
        self
    }

    #[track_caller]
    pub fn failure(self) -> Run {
        assert_eq!(self.code, Some(1), "expected exit status 1:\n{self:#?}");
        self
    }

    #[track_caller]
    pub fn code(self, code: i32) -> Run {
        assert_eq!(
            self.code,
            Some(code),
            "expected exit status {code}:\n{self:#?}"
        );
        self
    }

    #[track_caller]
    pub fn stdout_has(self, needle: &str) -> Run {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}:\n{self:#?}"
        );
        self
    }

    #[track_caller]
    pub fn stderr_has(self, needle: &str) -> Run {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{self:#?}"
        );
        self
    }

    /// stderr holds `needle`, whatever line breaks wrapping put between its words.
    #[track_caller]
    pub fn stderr_says(self, needle: &str) -> Run {
        assert!(
            words(&self.stderr).contains(&words(needle)),
            "stderr lacks {needle:?} (wrapping aside):\n{self:#?}"
        );
        self
    }

    /// stderr does not hold `needle`, whatever line breaks wrapping put between its words.
    #[track_caller]
    pub fn stderr_lacks(self, needle: &str) -> Run {
        assert!(
            !words(&self.stderr).contains(&words(needle)),
            "stderr says {needle:?}:\n{self:#?}"
        );
        self
    }

    /// stdout holds `needle`, whatever line breaks wrapping (also of `# ` comments) put
    /// between its words.
    #[track_caller]
    pub fn stdout_says(self, needle: &str) -> Run {
        assert!(
            words(&self.stdout).contains(&words(needle)),
            "stdout lacks {needle:?} (wrapping aside):\n{self:#?}"
        );
        self
    }

    /// Every line of stdout and stderr fits `columns`.
    #[track_caller]
    pub fn lines_fit(self, columns: usize) -> Run {
        for line in self.stdout.lines().chain(self.stderr.lines()) {
            assert!(
                line.chars().count() <= columns,
                "a line of {} columns: {line:?}\n{self:#?}",
                line.chars().count()
            );
        }
        self
    }

    /// No Rust debug formatting reaches the operator.
    #[track_caller]
    pub fn clean_errors(self) -> Run {
        for needle in ["Os {", "Error {", "panicked", "RUST_BACKTRACE"] {
            assert!(
                !self.stderr.contains(needle) && !self.stdout.contains(needle),
                "debug formatting {needle:?} in output:\n{self:#?}"
            );
        }
        self
    }

    /// No key of the device reaches the terminal.
    #[track_caller]
    pub fn no_keys_of(self, device: &Value) -> Run {
        for key in keys_of(device) {
            assert!(
                !self.stdout.contains(&key) && !self.stderr.contains(&key),
                "a key was printed:\n{self:#?}"
            );
        }
        self
    }
}

/// What a terminal shows, as lines: escape sequences removed, and a carriage return or a cursor
/// movement starting a new line (so every redraw of a progress bar is a line of its own).
pub fn screen_lines(raw: &str) -> Vec<String> {
    let mut lines = vec![String::new()];
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                // CSI: ESC [ parameters final-byte.
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                    lines.push(String::new());
                }
            }
            '\r' | '\n' => lines.push(String::new()),
            c => lines.last_mut().unwrap().push(c),
        }
    }
    lines.retain(|l| !l.trim().is_empty());
    lines
}

/// The lines of [`screen_lines`] that do not fit a terminal of `columns` columns. A progress
/// display pads its lines with spaces to the full width and lets the terminal wrap to the next
/// one; a line that overflows with text does not end its first `columns` characters with a space.
pub fn overflowing(lines: &[String], columns: usize) -> Vec<String> {
    lines
        .iter()
        .filter(|line| {
            let chars: Vec<char> = line.chars().collect();
            chars
                .chunks(columns)
                .rev()
                .skip(1)
                .any(|full| full.last() != Some(&' '))
        })
        .cloned()
        .collect()
}

/// The words of a text, one space apart (the `#` of a wrapped comment's continuation line,
/// `#   `, dropped).
pub fn words(text: &str) -> String {
    text.replace("\n#   ", " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every `key` value (hex keys) in a device document.
pub fn keys_of(doc: &Value) -> Vec<String> {
    let mut keys = Vec::new();
    fn walk(v: &Value, keys: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    if k == "key" {
                        if let Some(s) = v.as_str() {
                            keys.push(s.to_string());
                        }
                    }
                    walk(v, keys);
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, keys)),
            _ => {}
        }
    }
    walk(doc, &mut keys);
    keys
}

/// The target refuses its `nth` `end-devices create` for missing rights on `app-1`: a failure
/// that is neither transient nor the device's.
pub fn create_refused_for_rights(nth: u32) -> Fault {
    Fault::error(
        "end-devices create",
        "pkg/auth/rights",
        "insufficient_application_rights",
        "insufficient rights for application `app-1`",
    )
    .on(CLOUD)
    .nth(nth)
}

/// The target refuses its `nth` `end-devices create` as invalid (the Network Server rejects
/// the MAC state): a failure of the device's document, not transient.
pub fn create_refused_as_invalid(nth: u32) -> Fault {
    Fault::error(
        "end-devices create",
        "pkg/networkserver",
        "field_value",
        "invalid value of field `mac_state`",
    )
    .on(CLOUD)
    .nth(nth)
}

/// The source's `nth` `end-devices delete` stops between servers: the Application Server has
/// deleted the device, the Network Server fails (`internal`), the rest still hold it.
pub fn delete_stopped_after_the_application_server(nth: u32) -> Fault {
    Fault::error(
        "end-devices delete",
        "pkg/networkserver",
        "internal",
        "internal error",
    )
    .after(Registry::As)
    .on(CE)
    .nth(nth)
}

/// An uplink, heard by a gateway of the deployment.
pub fn uplink() -> Traffic {
    Traffic::uplink(&[Receiver::gateway("gw-1", Some("58A0CBFFFE800101"))])
}

/// What makes a session this device's: DevAddr, session key ID, session keys and the root key.
/// Unlike [`session_of`] it leaves out the frame counters and the MAC state, which move with
/// traffic.
pub fn identity_of(doc: &Value) -> Value {
    let mut session = session_of(doc);
    let map = session.as_object_mut().unwrap();
    for moving in [
        "last_f_cnt_up",
        "last_n_f_cnt_down",
        "last_a_f_cnt_down",
        "mac_state",
    ] {
        map.remove(moving);
    }
    session
}

/// The frame counters (up, network down, application down); absent is 0.
pub fn counters_of(doc: &Value) -> [u64; 3] {
    ["last_f_cnt_up", "last_n_f_cnt_down", "last_a_f_cnt_down"]
        .map(|c| doc["session"][c].as_u64().unwrap_or(0))
}

/// The session fields that must survive a migration.
pub fn session_of(doc: &Value) -> Value {
    let pick = |p: &str| doc.pointer(p).cloned().unwrap_or(Value::Null);
    serde_json::json!({
        "dev_addr": pick("/session/dev_addr"),
        "session_key_id": pick("/session/keys/session_key_id"),
        "f_nwk_s_int_key": pick("/session/keys/f_nwk_s_int_key/key"),
        "s_nwk_s_int_key": pick("/session/keys/s_nwk_s_int_key/key"),
        "nwk_s_enc_key": pick("/session/keys/nwk_s_enc_key/key"),
        "app_s_key": pick("/session/keys/app_s_key/key"),
        "last_f_cnt_up": pick("/session/last_f_cnt_up"),
        "last_n_f_cnt_down": pick("/session/last_n_f_cnt_down"),
        "last_a_f_cnt_down": pick("/session/last_a_f_cnt_down"),
        "app_key": pick("/root_keys/app_key/key"),
        "mac_state": pick("/mac_state"),
    })
}

impl Env {
    /// The argv of the running ttn-lw-cli processes of this environment (their `-c` names a
    /// profile of it). The double logs a call when it ends; this sees calls in flight.
    pub fn ttn_lw_cli_processes(&self) -> Vec<Vec<String>> {
        let marker = self.profiles_dir().display().to_string();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok())
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .map(|raw| {
                raw.split(|b| *b == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect::<Vec<_>>()
            })
            .filter(|argv| {
                argv.first().is_some_and(|a| a.ends_with("ttn-lw-cli"))
                    && argv.iter().any(|a| a.contains(&marker))
            })
            .collect()
    }

    /// Waits (30 s at most) until a ttn-lw-cli process of this environment runs with all of
    /// `words` in its argv.
    pub fn wait_for_ttn_lw_cli(&self, words: &[&str]) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if self
                .ttn_lw_cli_processes()
                .iter()
                .any(|argv| words.iter().all(|w| argv.iter().any(|a| a == w)))
            {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("no ttn-lw-cli process ran {words:?}");
    }

    /// Waits (30 s at most) until no ttn-lw-cli process of this environment is left.
    pub fn wait_for_no_ttn_lw_cli(&self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !self.ttn_lw_cli_processes().is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "ttn-lw-cli processes left over"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

/// `script -qec LINE /dev/null`: LINE on a pseudo-terminal, with the environment and the working
/// directory of `like` (and nothing else of the caller's environment).
fn script(line: &str, like: &Command) -> Command {
    let mut command = Command::new("script");
    command.args(["-qec", line, "/dev/null"]).env_clear();
    for (key, value) in like.get_envs() {
        if let Some(value) = value {
            command.env(key, value);
        }
    }
    if let Some(dir) = like.get_current_dir() {
        command.current_dir(dir);
    }
    command
}
