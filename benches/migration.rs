//! Benchmark: a whole application through `ttn-session-migrate` against the manual procedure,
//! both driving the ttn-lw-cli test double with an artificial latency on every call.
//!
//! ```text
//! cargo bench --bench migration                 # N = 200 devices, 100 ms per call, 10,000 for RSS
//! BENCH_DEVICES=40 BENCH_LARGE_DEVICES=1000 cargo bench --bench migration   # quick
//! ```
//!
//! Settings (environment): `BENCH_DEVICES` (200), `BENCH_LATENCY_MS` (100),
//! `BENCH_LARGE_DEVICES` (10000; 0 skips the large run), `BENCH_JOBS` (`1,4,8,16`),
//! `BENCH_RUNS` (`table,overhead,large,idle,limited,declared,down`: the runs to make; `jobs` is
//! the table without the baseline, `declared` the rate-limited run with `--target-rate`),
//! `BENCH_LIMITED_JOBS` (16), `BENCH_IDLE_DEVICES` (60), `BENCH_SLOW_FSYNC_US` (5000: the idle run's slow disk; 0 skips it),
//! `BENCH_LIMITED_DEVICES` (300), `BENCH_LIMIT_PER_MIN` (120),
//! `BENCH_DOWN_DEVICES` (50), `BENCH_DOWN_JOBS` (8), `BENCH_TOOL` (another build of the tool,
//! to compare).
//!
//! Runs, each on a fresh simulated pair of deployments:
//! - baseline: the documented manual procedure as a shell script, one device after another:
//!   `get` the device with the documented field flags, strip the server addresses and
//!   `ids.dev_addr` with `jq`, `delete` from the source, `create` on the target;
//! - the tool with `--all` at each `--jobs`, and with `--otaa` (no detection) at `--jobs 8`;
//! - overhead: the tool at zero latency with `--jobs 1` against a shell script making the same
//!   CLI calls (version, both `auth-info`, both lists, then detect, export, strip, delete,
//!   create per device);
//! - peak RSS of the tool for `BENCH_LARGE_DEVICES` ABP devices at zero latency;
//! - idle workers: 60 devices at `--jobs 8`; from the double's call log, the wall time between
//!   the first device call's start and the last one's end, against the summed durations of the
//!   device calls divided by 8 (1.0: no worker ever waits between calls); once on this machine's
//!   disk, once with every fsync of the tool slowed to `BENCH_SLOW_FSYNC_US` by preloading
//!   `benches/slow_fsync.c` (needs `cc`);
//! - rate limited: 300 devices at `--jobs 16`, the target's `end-devices create` limited to
//!   `BENCH_LIMIT_PER_MIN` a minute (a bucket of that size that refills in a minute, as real
//!   servers' default profiles). The ceiling: the bucket, then the refill rate, so 300 creates
//!   take at least (300 − limit) / (limit per second); throughput is that time over the time
//!   from the first create's start to the last create's end. Also the delete-to-create window
//!   (p50/p99), CLI calls per device and `rate_limit_exceeded` answers; `declared`: the same
//!   with the limit given to the tool (`--target-rate`), paced from the first create;
//! - target down: every `end-devices create` on the target answers `unavailable` (a gRPC
//!   Unavailable, as ttn-lw-cli prints a refused connection) all run; how many devices were
//!   ever deleted, and where each ended.
//!
//! Peak RSS is the tool's own high-water mark (`VmHWM` in /proc/<pid>/status, sampled every
//! 5 ms while it runs). `wait4`'s rusage or `/usr/bin/time -v` would report the maximum over
//! the tool *and* every ttn-lw-cli process it waited for, which measures the double, not the
//! tool. The downtime window per device comes from the tool's `--report` (`downtime_ms`: from
//! the start of the delete to the end of the import); for the baseline, from the double's call
//! log (start of `delete` to end of `create`, millisecond timestamps).
//!
//! The double is built in release mode into its own target directory (`target/bench-double`),
//! so the nested cargo call never waits on the lock of the build that runs this benchmark.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use ttn_lw_cli_double::{DoubleState, Fault};

const CE: &str = "eu1.cloud.thethings.network";
const CLOUD: &str = "acme.eu1.cloud.thethings.industries";
const APP: &str = "app-1";
const BUILT_TOOL: &str = env!("CARGO_BIN_EXE_ttn-session-migrate");

/// The tool under test: this build, or `BENCH_TOOL`.
fn tool() -> String {
    std::env::var("BENCH_TOOL").unwrap_or_else(|_| BUILT_TOOL.to_string())
}
/// The documented OTAA export of the manual procedure.
const EXPORT_FLAGS: &str = "--name --description --lorawan-version --lorawan-phy-version \
     --frequency-plan-id --supports-join --root-keys --mac-settings --mac-state --session";
/// The commands made on behalf of one device; every other call is made once per application.
const PER_DEVICE_COMMANDS: [&str; 4] = [
    "end-devices get",
    "end-devices delete",
    "end-devices create",
    "end-devices set",
];
const STRIP: &str =
    "del(.ids.dev_addr, .network_server_address, .application_server_address, .join_server_address)";

fn main() {
    let devices = setting("BENCH_DEVICES", 200);
    let latency_ms = setting("BENCH_LATENCY_MS", 100) as u64;
    let large = setting("BENCH_LARGE_DEVICES", 10_000);
    let jobs: Vec<u32> = std::env::var("BENCH_JOBS")
        .unwrap_or_else(|_| "1,4,8,16".into())
        .split(',')
        .filter_map(|j| j.trim().parse().ok())
        .collect();
    let runs = std::env::var("BENCH_RUNS")
        .unwrap_or_else(|_| "table,overhead,large,idle,limited,declared,down".into());
    let run = |name: &str| runs.split(',').any(|r| r.trim() == name);
    if Command::new("jq").arg("--version").output().is_err() {
        eprintln!(
            "the baseline strips fields with jq, which is not installed; install jq and run again"
        );
        std::process::exit(1);
    }
    let double = build_double();
    println!("{}", machine());

    // `jobs`: the tool's rows of the table without the baseline (to compare builds).
    if run("table") || run("jobs") {
        let baseline = run("table").then(|| {
            eprintln!("baseline: manual procedure, {devices} devices, {latency_ms} ms per call");
            Lab::new(&double, devices, Fixture::Otaa, latency_ms).run_baseline()
        });
        let mut rows: Vec<Measured> = baseline.iter().cloned().collect();
        for &j in &jobs {
            eprintln!("tool: --jobs {j}");
            let lab = Lab::new(&double, devices, Fixture::Otaa, latency_ms);
            rows.push(lab.run_tool(&format!("tool --jobs {j}"), j, false));
        }
        eprintln!("tool: --jobs 8 --otaa");
        let lab = Lab::new(&double, devices, Fixture::Otaa, latency_ms);
        rows.push(lab.run_tool("tool --jobs 8 --otaa", 8, true));
        println!(
            "\n### {devices} devices, {latency_ms} ms per ttn-lw-cli call\n\n{}",
            table(&rows, baseline.as_ref(), latency_ms)
        );
        if let Some(row) = rows.iter().find(|r| r.name == "tool --jobs 8") {
            let calls: Vec<String> = row
                .application_commands
                .iter()
                .map(|(command, count)| format!("{command} ×{count}"))
                .collect();
            println!("\nPer-application calls of the tool: {}.", calls.join(", "));
        }
    }

    if run("overhead") {
        eprintln!("overhead: zero latency, --jobs 1 against a shell script");
        let script = Lab::new(&double, devices, Fixture::Otaa, 0).run_same_calls_script();
        let tool = Lab::new(&double, devices, Fixture::Otaa, 0).run_tool("tool --jobs 1", 1, false);
        println!(
            "\n### Overhead at zero latency, {devices} devices, one after another\n\n\
             | run | wall | calls/device | ratio to the script |\n|---|---:|---:|---:|\n\
             | shell script, same CLI calls | {:.2} s | {:.2} | 1.00 |\n\
             | tool --jobs 1 | {:.2} s | {:.2} | {:.2} |",
            script.wall.as_secs_f64(),
            script.calls_per_device(),
            tool.wall.as_secs_f64(),
            tool.calls_per_device(),
            tool.wall.as_secs_f64() / script.wall.as_secs_f64()
        );
    }

    if run("large") && large > 0 {
        eprintln!("peak RSS: {large} devices, zero latency, --jobs 8");
        let run = Lab::new(&double, large, Fixture::Abp, 0).run_tool("tool --jobs 8", 8, false);
        println!(
            "\n### {large} devices at zero latency, --jobs 8\n\n\
             | wall | migrated | failed | peak RSS of the tool |\n|---:|---:|---:|---:|\n\
             | {:.1} s | {} | {} | {:.1} MB |",
            run.wall.as_secs_f64(),
            run.migrated,
            run.failed,
            run.peak_rss_kb.unwrap_or(0) as f64 / 1024.0
        );
    }

    if run("idle") {
        let n = setting("BENCH_IDLE_DEVICES", 60);
        let slow_us = setting("BENCH_SLOW_FSYNC_US", 5000) as u64;
        println!(
            "\n### Idle workers: {n} devices, --jobs 8, {latency_ms} ms per call\n\n\
             | disk | wall, first to last device call | summed device-call time / 8 | ratio | migrated |\n\
             |---|---:|---:|---:|---:|"
        );
        let slow_disk = slow_fsync_library();
        let disks: Vec<(String, Option<(&Path, u64)>)> = match &slow_disk {
            Some(library) if slow_us > 0 => vec![
                ("this machine's".to_string(), None),
                (
                    format!("fsync slowed to {} ms", slow_us as f64 / 1000.0),
                    Some((library.as_path(), slow_us)),
                ),
            ],
            _ => vec![("this machine's".to_string(), None)],
        };
        for (disk, slow) in disks {
            eprintln!("idle workers: {n} devices, --jobs 8, {latency_ms} ms per call, {disk} disk");
            let mut lab = Lab::new(&double, n, Fixture::Otaa, latency_ms);
            lab.slow_fsync = slow.map(|(library, us)| (library.to_path_buf(), us));
            let before = lab.state.calls().len();
            let measured = lab.run_tool("tool --jobs 8", 8, false);
            let idle = lab.idle(before, 8);
            println!(
                "| {disk} | {:.2} s | {:.2} s | {:.3} | {}/{n} |",
                idle.span_ms as f64 / 1000.0,
                idle.busy_ms as f64 / 8.0 / 1000.0,
                idle.ratio(8),
                measured.migrated
            );
        }
    }

    // `declared`: the same run with the limit given to the tool (`--target-rate`).
    for (name, declared) in [("limited", false), ("declared", true)] {
        if run(name) {
            rate_limited(&double, latency_ms, declared);
        }
    }

    if run("down") {
        let n = setting("BENCH_DOWN_DEVICES", 50);
        let jobs = setting("BENCH_DOWN_JOBS", 8) as u32;
        eprintln!("target down: {n} devices, --jobs {jobs}");
        let lab = Lab::new(&double, n, Fixture::Otaa, latency_ms);
        lab.state
            .add_fault(Fault::unavailable("end-devices create").on(CLOUD));
        let before = lab.state.calls().len();
        let measured = lab.run_tool(&format!("tool --jobs {jobs}, target down"), jobs, false);
        let deleted = lab.deleted_from_source(before);
        let (on_source, complete) = lab.back_on_source();
        let on_target = lab.state.device_ids(CLOUD, APP).len();
        let outcomes: Vec<String> = measured
            .outcomes
            .iter()
            .map(|(outcome, count)| format!("{outcome} {count}"))
            .collect();
        println!(
            "\n### Target down: {n} devices, --jobs {jobs}, every create on the target answers unavailable\n\n\
             | wall | devices ever deleted | on the source at the end | of those complete | on the target | outcomes |\n\
             |---:|---:|---:|---:|---:|---|\n\
             | {:.1} s | {deleted} | {on_source}/{n} | {complete} | {on_target} | {} |",
            measured.wall.as_secs_f64(),
            outcomes.join(", ")
        );
    }
}

/// Device calls of a run, from the double's call log.
struct Idle {
    /// First device call's start to the last one's end.
    span_ms: u64,
    /// The device calls' durations, summed.
    busy_ms: u64,
}

impl Idle {
    fn ratio(&self, jobs: u32) -> f64 {
        self.span_ms as f64 / (self.busy_ms as f64 / jobs as f64)
    }
}

fn millis(at: &str) -> Option<u128> {
    humantime::parse_rfc3339(at)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis())
}

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Builds the double's `ttn-lw-cli` in release mode and returns its path.
/// The rate-limited run: 300 devices at `--jobs 16` against a target limited to
/// `BENCH_LIMIT_PER_MIN` creates a minute, the limit learned from the first refusal or, with
/// `declared`, given to the tool with `--target-rate`.
fn rate_limited(double: &Path, latency_ms: u64, declared: bool) {
    let n = setting("BENCH_LIMITED_DEVICES", 300);
    let per_min = setting("BENCH_LIMIT_PER_MIN", 120) as u32;
    let how = match declared {
        true => format!(", --target-rate {per_min}"),
        false => String::new(),
    };
    let jobs = setting("BENCH_LIMITED_JOBS", 16) as u32;
    eprintln!("rate limited: {n} devices, --jobs {jobs}{how}, {per_min} creates per minute");
    let lab = Lab::new(double, n, Fixture::Otaa, latency_ms);
    lab.state
        .set_rate_limit("end-devices create", CLOUD, per_min, 60_000);
    let before = lab.state.calls().len();
    let rate = per_min.to_string();
    let extra: &[&str] = match declared {
        true => &["--target-rate", &rate],
        false => &[],
    };
    let measured = lab.run_tool_with("tool, rate limited", jobs, false, extra);
    let creates = lab.span_of(before, "end-devices create", CLOUD);
    let ceiling_s = n.saturating_sub(per_min as usize) as f64 / (per_min as f64 / 60.0);
    let limited = lab.state.rate_limited_calls("end-devices create", CLOUD);
    let ms = |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{v} ms"));
    // The window in call latencies as this run's calls took them: the injected latency plus
    // the double's process start-up, slower while many run at once on few cores.
    let latency = lab.median_duration(
        before,
        &[("end-devices delete", CE), ("end-devices create", CLOUD)],
    );
    let p99 = percentile(&measured.downtime_ms, 99.0);
    let in_latencies = match (p99, latency) {
        (Some(p99), Some(latency)) if latency > 0 => format!("{:.2}", p99 as f64 / latency as f64),
        _ => "-".to_string(),
    };
    println!(
        "\n### Rate limited: {n} devices, --jobs {jobs}{how}, target creates limited to {per_min} a minute, {latency_ms} ms per call\n\n\
         | wall | creates, first to last | ceiling (({n} − {per_min}) / {per_min} per min) | share of the ceiling | window p50 | window p99 | delete/create median | p99 in call latencies | CLI calls/device | rate-limited answers | migrated | failed |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n\
         | {:.1} s | {:.1} s | {:.1} s | {:.1} % | {} | {} | {} | {in_latencies} | {:.2} | {limited} | {} | {} |",
        measured.wall.as_secs_f64(),
        creates as f64 / 1000.0,
        ceiling_s,
        100.0 * ceiling_s * 1000.0 / creates.max(1) as f64,
        ms(percentile(&measured.downtime_ms, 50.0)),
        ms(p99),
        ms(latency),
        measured.calls_per_device(),
        measured.migrated,
        measured.failed,
    );
}

fn build_double() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = root.join("target/bench-double");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "ttn-lw-cli-double",
            "--bin",
            "ttn-lw-cli",
        ])
        .arg("--target-dir")
        .arg(&target)
        .status()
        .expect("run cargo to build the ttn-lw-cli double");
    assert!(status.success(), "building the ttn-lw-cli double failed");
    target.join("release/ttn-lw-cli")
}

/// `benches/slow_fsync.c` built into a preloadable library (a disk whose fsync takes
/// `BENCH_SLOW_FSYNC_US`), or `None` without a C compiler.
fn slow_fsync_library() -> Option<PathBuf> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/slow_fsync.c");
    let library = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-double/slow_fsync.so");
    std::fs::create_dir_all(library.parent()?).ok()?;
    let built = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2"])
        .arg(&source)
        .arg("-o")
        .arg(&library)
        .arg("-ldl")
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !built {
        eprintln!("no C compiler (cc): the idle run measures this machine's disk only");
    }
    built.then_some(library)
}

#[derive(Clone, Copy)]
enum Fixture {
    /// OTAA devices: what most applications hold.
    Otaa,
    /// ABP devices: no JoinEUI, so the double's per-create EUI scan (linear in the target's
    /// size) is skipped, which keeps the 10,000-device run about the tool rather than the double.
    Abp,
}

/// One operator's machine with two simulated deployments and `devices` devices on the source.
struct Lab {
    dir: tempfile::TempDir,
    state: DoubleState,
    devices: usize,
    /// The slow-fsync library preloaded into the tool, and its delay in µs (idle run).
    slow_fsync: Option<(PathBuf, u64)>,
}

/// What one run measured.
#[derive(Clone)]
struct Measured {
    name: String,
    jobs: u32,
    wall: Duration,
    /// Calls on behalf of single devices (`end-devices get|delete|create|set`).
    device_calls: usize,
    /// Calls made once per application (version, auth-info, list, …).
    application_calls: usize,
    /// Those calls by command.
    application_commands: BTreeMap<String, usize>,
    devices: usize,
    downtime_ms: Vec<u64>,
    peak_rss_kb: Option<u64>,
    migrated: usize,
    failed: usize,
    /// Devices per outcome in the tool's report.
    outcomes: BTreeMap<String, usize>,
}

impl Measured {
    fn calls_per_device(&self) -> f64 {
        self.device_calls as f64 / self.devices as f64
    }
}

impl Lab {
    fn new(double: &Path, devices: usize, fixture: Fixture, latency_ms: u64) -> Lab {
        // BENCH_KEEP: leave the directory (call log, work directory) for a look afterwards.
        let dir = tempfile::Builder::new()
            .disable_cleanup(std::env::var_os("BENCH_KEEP").is_some())
            .tempdir()
            .expect("temporary directory");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(double, bin.join("ttn-lw-cli")).unwrap();
        for sub in ["home/.config", "cwd"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        if std::env::var_os("BENCH_KEEP").is_some() {
            eprintln!("keeping {}", dir.path().display());
        }
        let state = DoubleState::new(dir.path().join("state"));
        state.add_application(CE, APP);
        state.add_application(CLOUD, APP);
        let lab = Lab {
            dir,
            state,
            devices,
            slow_fsync: None,
        };
        for args in [
            &["profile", "add", "ce", "--host", CE][..],
            &["profile", "add", "cloud", "--host", CLOUD],
            &["login", "ce", "--api-key", "NNSXS.CE.SECRET"],
            &["login", "cloud", "--api-key", "NNSXS.CLOUD.SECRET"],
        ] {
            let status = lab
                .command(tool())
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            assert!(status.success(), "set-up `{}` failed", args.join(" "));
        }
        let name = match fixture {
            Fixture::Otaa => "otaa-eu1",
            Fixture::Abp => "abp-eu1",
        };
        let template = DoubleState::fixture(name);
        for i in 1..=devices {
            let mut device = template.clone();
            device["ids"]["device_id"] = format!("dev-{i}").into();
            device["ids"]["application_ids"]["application_id"] = APP.into();
            device["ids"]["dev_eui"] = format!("70B3D57ED1{i:06X}").into();
            lab.state.put_device(CE, &device);
        }
        lab.state.set_latency_ms(latency_ms);
        lab
    }

    fn profile(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!(
            "home/.config/ttn-session-migrate/profiles/{name}.yml"
        ))
    }

    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let root = self.dir.path();
        let path = format!(
            "{}:{}",
            root.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut command = Command::new(program);
        command
            .current_dir(root.join("cwd"))
            .env_clear()
            .env("PATH", path)
            .env("HOME", root.join("home"))
            .env("XDG_CONFIG_HOME", root.join("home/.config"))
            .env("TTN_DOUBLE_STATE", self.state.root())
            .stdin(Stdio::null());
        command
    }

    fn run_tool(&self, name: &str, jobs: u32, otaa: bool) -> Measured {
        self.run_tool_with(name, jobs, otaa, &[])
    }

    /// The tool with `extra` options.
    fn run_tool_with(&self, name: &str, jobs: u32, otaa: bool, extra: &[&str]) -> Measured {
        let calls_before = self.state.calls().len();
        let mut command = self.command(tool());
        command.args([
            "migrate",
            APP,
            "--all",
            "--yes",
            "--quiet",
            "--work-dir",
            "work",
        ]);
        command.args(["--report", "report.json", "--jobs", &jobs.to_string()]);
        if otaa {
            command.arg("--otaa");
        }
        command.args(extra);
        if let Some((library, us)) = &self.slow_fsync {
            command
                .env("LD_PRELOAD", library)
                .env("SLOW_FSYNC_US", us.to_string());
        }
        let log = self.dir.path().join("tool-stderr.txt");
        command.stderr(std::fs::File::create(&log).unwrap());
        let (wall, peak_rss_kb) = run_measured(command);
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if !text.contains(&format!("{} migrated, 0 failed", self.devices)) {
            eprintln!("warning: {name}: the tool said:\n{text}");
        }
        let text = std::fs::read_to_string(self.dir.path().join("cwd/report.json"))
            .expect("the tool wrote its report");
        let report: Value = serde_json::from_str(&text).expect("the report is JSON");
        let entries = report["devices"].as_array().cloned().unwrap_or_default();
        let downtime_ms = entries
            .iter()
            .filter_map(|d| d["downtime_ms"].as_u64())
            .collect();
        let count = |outcome: &str| entries.iter().filter(|d| d["outcome"] == outcome).count();
        let mut measured = self.measured(name, jobs, wall, calls_before);
        measured.downtime_ms = downtime_ms;
        measured.peak_rss_kb = peak_rss_kb;
        measured.migrated = count("migrated");
        for entry in &entries {
            let outcome = entry["outcome"].as_str().unwrap_or("-").to_string();
            *measured.outcomes.entry(outcome).or_default() += 1;
        }
        measured.failed = entries.len() - measured.migrated;
        if measured.failed > 0 || measured.migrated != self.devices {
            eprintln!(
                "warning: {name}: {} of {} devices migrated",
                measured.migrated, self.devices
            );
        }
        measured
    }

    /// The documented manual procedure, one device after another.
    fn run_baseline(&self) -> Measured {
        let mut script = self.script_header();
        writeln!(
            script,
            "for d in $(seq 1 {n}); do\n\
             \x20 ttn-lw-cli -c \"$CE\" end-devices get --application-id {APP} --device-id dev-$d {EXPORT_FLAGS} > dev-$d.json\n\
             \x20 jq '{STRIP}' dev-$d.json > dev-$d.import.json\n\
             \x20 ttn-lw-cli -c \"$CE\" end-devices delete --application-id {APP} --device-id dev-$d\n\
             \x20 ttn-lw-cli -c \"$CLOUD\" end-devices create --application-id {APP} < dev-$d.import.json > /dev/null\n\
             done",
            n = self.devices
        )
        .unwrap();
        self.run_script("baseline: manual procedure (script)", script)
    }

    /// The tool's CLI calls, made by a shell script: the overhead reference.
    fn run_same_calls_script(&self) -> Measured {
        let mut script = self.script_header();
        writeln!(
            script,
            "ttn-lw-cli version > /dev/null\n\
             ttn-lw-cli -c \"$CE\" auth-info > /dev/null\n\
             ttn-lw-cli -c \"$CLOUD\" auth-info > /dev/null\n\
             ttn-lw-cli -c \"$CE\" end-devices list --application-id {APP} --limit 1000 --page 1 > /dev/null\n\
             ttn-lw-cli -c \"$CLOUD\" end-devices list --application-id {APP} --limit 1000 --page 1 > /dev/null\n\
             for d in $(seq 1 {n}); do\n\
             \x20 ttn-lw-cli -c \"$CE\" end-devices get --application-id {APP} --device-id dev-$d --supports-join > /dev/null\n\
             \x20 ttn-lw-cli -c \"$CE\" end-devices get --application-id {APP} --device-id dev-$d {EXPORT_FLAGS} > dev-$d.json\n\
             \x20 jq '{STRIP}' dev-$d.json > dev-$d.import.json\n\
             \x20 ttn-lw-cli -c \"$CE\" end-devices delete --application-id {APP} --device-id dev-$d\n\
             \x20 ttn-lw-cli -c \"$CLOUD\" end-devices create --application-id {APP} < dev-$d.import.json > /dev/null\n\
             done",
            n = self.devices
        )
        .unwrap();
        self.run_script("shell script, same calls", script)
    }

    fn script_header(&self) -> String {
        format!(
            "set -eu\nexport TTN_LW_SKIP_VERSION_CHECK=true TTN_LW_TELEMETRY_ENABLE=false\nCE='{}'\nCLOUD='{}'\n",
            self.profile("ce").display(),
            self.profile("cloud").display()
        )
    }

    fn run_script(&self, name: &str, script: String) -> Measured {
        let file = self.dir.path().join("procedure.sh");
        std::fs::write(&file, script).unwrap();
        let calls_before = self.state.calls().len();
        let mut command = self.command("bash");
        command.arg(&file);
        let (wall, _) = run_measured(command);
        let mut measured = self.measured(name, 1, wall, calls_before);
        measured.migrated = self.state.device_ids(CLOUD, APP).len();
        measured.failed = self.devices - measured.migrated;
        measured.downtime_ms = self.downtime_from_call_log(calls_before);
        measured
    }

    /// How busy the workers kept the CLI: see [`Idle`].
    fn idle(&self, skip: usize, _jobs: u32) -> Idle {
        let (mut first, mut last, mut busy) = (u128::MAX, 0u128, 0u128);
        for call in self.state.calls().into_iter().skip(skip) {
            if !PER_DEVICE_COMMANDS.contains(&call.command.as_str()) {
                continue;
            }
            let start = millis(&call.started_at);
            let end = call.ended_at.as_deref().and_then(millis);
            if let (Some(start), Some(end)) = (start, end) {
                first = first.min(start);
                last = last.max(end);
                busy += end - start;
            }
        }
        Idle {
            span_ms: last.saturating_sub(first) as u64,
            busy_ms: busy as u64,
        }
    }

    /// The median duration, in ms, of the successful calls of these commands on these
    /// deployments.
    fn median_duration(&self, skip: usize, of: &[(&str, &str)]) -> Option<u64> {
        let durations: Vec<u64> = self
            .state
            .calls()
            .into_iter()
            .skip(skip)
            .filter(|c| c.exit_code == Some(0))
            .filter(|c| {
                of.iter().any(|(command, deployment)| {
                    c.command == *command && c.deployment.as_deref() == Some(*deployment)
                })
            })
            .filter_map(|c| Some((millis(c.ended_at.as_deref()?)? - millis(&c.started_at)?) as u64))
            .collect();
        percentile(&durations, 50.0)
    }

    /// First start to last end of `command` on `deployment`, in ms.
    fn span_of(&self, skip: usize, command: &str, deployment: &str) -> u64 {
        let (mut first, mut last) = (u128::MAX, 0u128);
        for call in self.state.calls().into_iter().skip(skip) {
            if call.command != command || call.deployment.as_deref() != Some(deployment) {
                continue;
            }
            if let Some(start) = millis(&call.started_at) {
                first = first.min(start);
            }
            if let Some(end) = call.ended_at.as_deref().and_then(millis) {
                last = last.max(end);
            }
        }
        last.saturating_sub(first) as u64
    }

    /// Devices whose delete on the source succeeded.
    fn deleted_from_source(&self, skip: usize) -> usize {
        let mut deleted = std::collections::BTreeSet::new();
        for call in self.state.calls().into_iter().skip(skip) {
            if call.command == "end-devices delete"
                && call.deployment.as_deref() == Some(CE)
                && call.exit_code == Some(0)
            {
                if let Some(i) = call.argv.iter().position(|a| a == "--device-id") {
                    deleted.insert(call.argv[i + 1].clone());
                }
            }
        }
        deleted.len()
    }

    /// Devices on the source at the end, and of those how many hold the session they started
    /// with (DevAddr, keys, counters).
    fn back_on_source(&self) -> (usize, usize) {
        let template = DoubleState::fixture("otaa-eu1");
        let ids = self.state.device_ids(CE, APP);
        let complete = ids
            .iter()
            .filter_map(|id| self.state.device(CE, APP, id))
            .filter(|d| {
                d["session"] == template["session"] && d["root_keys"] == template["root_keys"]
            })
            .count();
        (ids.len(), complete)
    }

    /// Delete start to create end of each device, from the double's call log.
    fn downtime_from_call_log(&self, skip: usize) -> Vec<u64> {
        let mut delete_started: BTreeMap<String, u128> = BTreeMap::new();
        let mut downtime = Vec::new();
        let millis = |at: &str| {
            humantime::parse_rfc3339(at)
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_millis())
        };
        let mut device_of_next_create: Option<String> = None;
        for call in self.state.calls().into_iter().skip(skip) {
            match call.command.as_str() {
                "end-devices delete" => {
                    let i = call.argv.iter().position(|a| a == "--device-id");
                    if let (Some(i), Some(start)) = (i, millis(&call.started_at)) {
                        let device = call.argv[i + 1].clone();
                        delete_started.insert(device.clone(), start);
                        device_of_next_create = Some(device);
                    }
                }
                // The script is sequential: a create belongs to the device deleted just before.
                "end-devices create" => {
                    let start = device_of_next_create
                        .take()
                        .and_then(|d| delete_started.get(&d).copied());
                    let end = call.ended_at.as_deref().and_then(millis);
                    if let (Some(start), Some(end)) = (start, end) {
                        downtime.push((end - start) as u64);
                    }
                }
                _ => {}
            }
        }
        downtime
    }

    fn measured(&self, name: &str, jobs: u32, wall: Duration, calls_before: usize) -> Measured {
        let calls = self.state.calls();
        let mut device_calls = 0;
        let mut application_commands: BTreeMap<String, usize> = BTreeMap::new();
        for call in &calls[calls_before..] {
            if PER_DEVICE_COMMANDS.contains(&call.command.as_str()) {
                device_calls += 1;
            } else {
                *application_commands
                    .entry(call.command.clone())
                    .or_default() += 1;
            }
        }
        let application_calls = application_commands.values().sum();
        Measured {
            name: name.to_string(),
            jobs,
            wall,
            device_calls,
            application_calls,
            application_commands,
            devices: self.devices,
            downtime_ms: Vec::new(),
            peak_rss_kb: None,
            migrated: 0,
            failed: 0,
            outcomes: BTreeMap::new(),
        }
    }
}

/// Runs a command to its end; wall time and the process's own peak RSS (VmHWM, in kB).
fn run_measured(mut command: Command) -> (Duration, Option<u64>) {
    let started = Instant::now();
    let mut child = command
        .stdout(Stdio::null())
        .spawn()
        .expect("start the measured process");
    let status_file = PathBuf::from(format!("/proc/{}/status", child.id()));
    let mut peak = None;
    let status = loop {
        if let Some(kb) = high_water_mark_kb(&status_file) {
            peak = Some(peak.map_or(kb, |p: u64| p.max(kb)));
        }
        match child.try_wait().expect("wait for the measured process") {
            Some(status) => break status,
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    let wall = started.elapsed();
    if !status.success() {
        eprintln!("warning: the measured process exited with {status}");
    }
    (wall, peak)
}

fn high_water_mark_kb(status_file: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(status_file).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn percentile(values: &[u64], p: f64) -> Option<u64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

fn table(rows: &[Measured], baseline: Option<&Measured>, latency_ms: u64) -> String {
    let mut out = String::from(
        "| run | wall | speed-up vs baseline | CLI calls/device (+ per application) | ideal N×calls×latency/jobs | wall / ideal | downtime p50 | downtime p99 | peak RSS | migrated |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for row in rows {
        let ideal = row.device_calls as f64 * latency_ms as f64 / 1000.0 / row.jobs as f64;
        let ms = |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{v} ms"));
        writeln!(
            out,
            "| {} | {:.1} s | {} | {:.2} (+{}) | {:.1} s | {:.3} | {} | {} | {} | {}/{} |",
            row.name,
            row.wall.as_secs_f64(),
            baseline.map_or("-".to_string(), |b| format!(
                "{:.2}×",
                b.wall.as_secs_f64() / row.wall.as_secs_f64()
            )),
            row.calls_per_device(),
            row.application_calls,
            ideal,
            row.wall.as_secs_f64() / ideal,
            ms(percentile(&row.downtime_ms, 50.0)),
            ms(percentile(&row.downtime_ms, 99.0)),
            row.peak_rss_kb.map_or("-".to_string(), |kb| format!(
                "{:.1} MB",
                kb as f64 / 1024.0
            )),
            row.migrated,
            row.devices
        )
        .unwrap();
    }
    out
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("Machine: {cores} cores, {cpu}; release builds of the tool and the double.")
}
