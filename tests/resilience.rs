//! Never lose a device: the fault-injection matrix, interruption, a full disk, damaged journals,
//! `resume` and `rollback`, all against the ttn-lw-cli test double.
//!
//! Every case ends with the same check: the device is on exactly one deployment, its session
//! equals the one it had before, and the journal and the tool's last output say where it is.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// Fast retries and a short timeout, so hangs and transient faults resolve quickly.
const FAST: [&str; 6] = ["--timeout", "2", "--retry-delay-ms", "50", "--retries", "3"];

#[derive(Debug, Clone, Copy)]
enum Step {
    Detect,
    Export,
    Delete,
    Create,
    Verify,
}

#[derive(Debug, Clone, Copy)]
enum FaultKind {
    Permanent,
    TransientOnce,
    Hang,
    Kill,
    /// The write stops between two servers (real-cli-audit.md D5, D7): `delete` loses its
    /// connection after the AS and NS steps, `create` hangs after the IS step until the
    /// timeout kills it.
    BetweenServers,
}

/// The ttn-lw-cli call that carries a step: command, deployment, and which matching call.
fn call_of(step: Step) -> (&'static str, &'static str, u32) {
    match step {
        Step::Detect => ("end-devices get", CE, 1),
        Step::Export => ("end-devices get", CE, 2),
        Step::Delete => ("end-devices delete", CE, 1),
        Step::Create => ("end-devices create", CLOUD, 1),
        // Verification reads the target back when `create`'s answer was lost: the first target
        // `get` asks which servers hold the device, the second reads its session.
        Step::Verify => ("end-devices get", CLOUD, 2),
    }
}

/// The steps of a device's journal, oldest first.
fn journal_steps(work: &Path, device: &str) -> Vec<String> {
    let raw = std::fs::read(work.join(device).join("journal.json")).expect("a journal");
    let journal: Value = serde_json::from_slice(&raw).unwrap();
    journal["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["step"].as_str().unwrap().to_string())
        .collect()
}

/// The device is on exactly one deployment, whole, with its session (frame counters advanced
/// by the uplinks it sent since, never set back), and the tool said where.
#[track_caller]
fn assert_not_lost(env: &Env, seeded: &Value, last: &Run, work: &Path) {
    let on_source = env.on_ce("dev-1");
    let on_target = env.on_cloud("dev-1");
    let found = match (&on_source, &on_target) {
        (Some(d), None) | (None, Some(d)) => d,
        (None, None) => panic!("DEVICE LOST\n{last:#?}"),
        (Some(_), Some(_)) => panic!("device on both deployments\n{last:#?}"),
    };
    assert_eq!(
        identity_of(found),
        identity_of(seeded),
        "session changed\n{last:#?}"
    );
    let (now, before) = (counters_of(found), counters_of(seeded));
    assert!(
        now.iter().zip(before).all(|(n, b)| *n >= b),
        "frame counters went back: {now:?} < {before:?}\n{last:#?}"
    );
    let steps = journal_steps(work, "dev-1");
    // A `failed` record notes an error; the step before it says where the device is.
    let last_step = steps
        .iter()
        .rev()
        .find(|s| *s != "failed")
        .map(String::as_str);
    if on_target.is_some() {
        assert_eq!(last_step, Some("verified"), "{steps:?}");
        assert!(
            last.stdout.contains("migrated, session verified")
                || last.stdout.contains("Nothing to resume"),
            "{last:#?}"
        );
    } else {
        let left_source = steps.iter().any(|s| s == "deleted-from-source");
        assert!(
            !left_source || last_step == Some("rolled-back"),
            "journal says the device left the source: {steps:?}"
        );
        let said = format!("{}{}", last.stdout, last.stderr);
        assert!(
            said.contains("where: on the source")
                || said.contains("where: back on the source")
                || said.contains("rolled back"),
            "the tool did not say where the device is:\n{last:#?}"
        );
    }
}

fn matrix_case(step: Step, kind: FaultKind) {
    let env = Env::new().with_profiles();
    let seeded = env.seed_ce("otaa-eu1", "dev-1");
    // The device lives: once it is on the target, it sends an uplink between any two calls of
    // the tool (and gets a downlink now and then), during the migration, its resume, and after.
    let first_call = env.state.commands_started();
    for call in first_call + 1..first_call + 40 {
        env.state
            .deliver_after_call(call, CLOUD, APP, "dev-1", uplink());
        if call % 5 == 0 {
            env.state.deliver_after_call(
                call,
                CLOUD,
                APP,
                "dev-1",
                Traffic::application_downlink(),
            );
        }
    }
    let (command, deployment, nth) = call_of(step);
    if let Step::Verify = step {
        // The create's answer is lost the way the real CLI reports it: a gRPC Unavailable
        // status without details (real-cli-audit.md E6).
        let lost = ttn_lw_cli_double::errors::defs::connection_lost();
        env.state.add_fault(
            Fault::error_after_effect(
                "end-devices create",
                &lost.namespace,
                &lost.name,
                &lost.message,
            )
            .on(CLOUD)
            .nth(1),
        );
    }
    let fault = match kind {
        FaultKind::Permanent => Fault::error(
            command,
            "pkg/auth/rights",
            "insufficient_application_rights",
            "insufficient rights for application `app-1`",
        ),
        FaultKind::TransientOnce => Fault::unavailable(command),
        FaultKind::Hang => Fault::hang(command),
        FaultKind::Kill => Fault::delay_after_effect(command, 3_000),
        FaultKind::BetweenServers => match step {
            Step::Delete => Fault::error(
                command,
                "unknown",
                "unknown",
                "error reading from server: EOF",
            )
            .after(Registry::Ns),
            Step::Create => Fault::hang(command).after(Registry::Is),
            other => panic!("{other:?} writes to no server"),
        },
    };
    env.state.add_fault(fault.on(deployment).nth(nth));

    let mut args = vec!["migrate", "app-1", "dev-1", "--yes", "--work-dir", "w"];
    args.extend(FAST);
    let work = env.cwd().join("w");
    let first = match kind {
        FaultKind::Kill => {
            let mut child = env.cmd().args(&args).spawn();
            let verb = command.split(' ').nth(1).unwrap();
            env.wait_for_ttn_lw_cli(&["end-devices", verb]);
            // Let the call reach its effect, then kill the tool mid-step.
            std::thread::sleep(Duration::from_millis(300));
            child.kill().unwrap();
            child.wait().unwrap();
            env.wait_for_no_ttn_lw_cli();
            None
        }
        _ => Some(env.run(&args)),
    };
    // Killed during the detection, which runs before the question: no work directory was
    // made, and the device was never touched.
    if matches!((step, kind), (Step::Detect, FaultKind::Kill)) && !work.exists() {
        assert_eq!(
            env.on_ce("dev-1").as_ref(),
            Some(&seeded),
            "changed on the source"
        );
        assert!(env.on_cloud("dev-1").is_none());
        assert!(env.writes().is_empty(), "{:?}", env.writes());
        return;
    }
    let asked_for_resume = first
        .as_ref()
        .is_none_or(|run| run.stderr.contains("Continue with:"));
    let last = if asked_for_resume {
        // A device killed before its journal began never started: resume asks, --yes answers.
        let mut resume = vec!["resume", "w", "--yes"];
        resume.extend(FAST);
        env.run(&resume)
    } else {
        first.unwrap()
    };
    let last = last.clean_errors().no_keys_of(&seeded);
    assert_not_lost(&env, &seeded, &last, &work);
    // And after: wherever it is, it keeps its session.
    let home = if env.on_cloud("dev-1").is_some() {
        CLOUD
    } else {
        CE
    };
    assert!(env.state.deliver(home, APP, "dev-1", uplink()));
    assert_not_lost(&env, &seeded, &last, &work);
}

macro_rules! matrix {
    ($($name:ident: $step:ident, $kind:ident;)*) => {
        $(
            #[test]
            fn $name() {
                matrix_case(Step::$step, FaultKind::$kind);
            }
        )*
    };
}

matrix! {
    detect_permanent_error: Detect, Permanent;
    detect_transient_error: Detect, TransientOnce;
    detect_hang: Detect, Hang;
    detect_killed: Detect, Kill;
    export_permanent_error: Export, Permanent;
    export_transient_error: Export, TransientOnce;
    export_hang: Export, Hang;
    export_killed: Export, Kill;
    delete_permanent_error: Delete, Permanent;
    delete_transient_error: Delete, TransientOnce;
    delete_hang: Delete, Hang;
    delete_killed: Delete, Kill;
    delete_stops_between_servers: Delete, BetweenServers;
    create_permanent_error: Create, Permanent;
    create_transient_error: Create, TransientOnce;
    create_hang: Create, Hang;
    create_killed: Create, Kill;
    create_stops_between_servers: Create, BetweenServers;
    verify_permanent_error: Verify, Permanent;
    verify_transient_error: Verify, TransientOnce;
    verify_hang: Verify, Hang;
    verify_killed: Verify, Kill;
}

#[test]
fn ctrl_c_between_delete_and_import_finishes_that_device_then_stops() {
    let env = Env::new().with_profiles();
    let first = env.seed_ce("otaa-eu1", "dev-1");
    let second = env.seed_ce("abp-eu1", "dev-2");
    env.state
        .set_command_latency_ms("end-devices create", 1_500);
    let child = env
        .cmd()
        .args(&[
            "migrate",
            "app-1",
            "dev-1",
            "dev-2",
            "--yes",
            "--jobs",
            "1",
            "--work-dir",
            "w",
        ])
        .spawn();
    env.wait_for_ttn_lw_cli(&["end-devices", "create"]);
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Interrupted: 130, also when the first Ctrl-C stopped the run gracefully.
    assert_eq!(output.status.code(), Some(130), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("Ctrl-C: stopping. No new device starts"),
        "the first Ctrl-C is acknowledged: {stderr}"
    );
    assert!(
        stdout.contains("dev-1  OTAA") && stdout.contains("migrated, session verified"),
        "{stdout}"
    );
    // The device that never started is counted, not listed as a result.
    assert!(!stdout.contains("dev-2"), "{stdout}");
    assert!(
        stderr.contains("1 migrated, 0 failed, 0 skipped, 0 conflicts, 1 not started"),
        "{stderr}"
    );
    assert!(
        stderr.contains("Continue with: ttn-session-migrate resume"),
        "{stderr}"
    );
    assert_eq!(
        session_of(&env.on_cloud("dev-1").unwrap()),
        session_of(&first)
    );
    assert_eq!(
        env.on_ce("dev-2"),
        Some(second.clone()),
        "dev-2 was touched"
    );

    // dev-2 never started: resume asks first (no terminal: refused, nothing changed), keeps
    // the --jobs of the migration, and names what it continues.
    env.run(&["resume", "w"])
        .code(3)
        .stderr_has("Resuming ")
        .stderr_has("1 finished, 0 in progress, 1 not started")
        .stderr_has("Pass --yes");
    assert_eq!(env.on_ce("dev-2"), Some(second.clone()));
    env.run(&["resume", "w", "--yes"]).success();
    assert_eq!(
        session_of(&env.on_cloud("dev-2").unwrap()),
        session_of(&second)
    );
    env.run(&["resume", "w"])
        .success()
        .stdout_has("Nothing to resume");
}

/// A tmpfs, unmounted on drop.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(dir: &Path, kib: u32) -> SmallDisk {
        std::fs::create_dir_all(dir).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "this test mounts a small tmpfs and needs root"
        );
        SmallDisk(dir.to_path_buf())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_while_saving_the_export_deletes_nothing() {
    let env = Env::new().with_profiles();
    let seeded = env.seed_ce("otaa-eu1", "dev-1");
    let disk = env.cwd().join("disk");
    let _mounted = SmallDisk::mount(&disk, 64);
    // Leave two pages free: room for the work directory's small files, not for the export.
    std::fs::write(disk.join("filler"), vec![0u8; 56 * 1024]).unwrap();
    let run = env
        .run(&["migrate", "app-1", "dev-1", "--yes", "--work-dir", "disk/w"])
        .failure()
        .clean_errors()
        .no_keys_of(&seeded);
    assert!(
        run.stdout.contains("nothing was deleted") || run.stderr.contains("No space left"),
        "{run:#?}"
    );
    assert_eq!(env.on_ce("dev-1"), Some(seeded));
    assert!(env.writes().is_empty(), "{:?}", env.writes());
}

#[test]
fn a_damaged_journal_stops_resume_and_destroys_nothing() {
    let env = Env::new().with_profiles();
    env.seed_ce("otaa-eu1", "dev-1");
    env.state.add_fault(
        Fault::error(
            "end-devices create",
            "pkg/errors",
            "validation",
            "invalid `frequency_plan_id`",
        )
        .on(CLOUD)
        .nth(1),
    );
    env.run(&[
        "migrate",
        "app-1",
        "dev-1",
        "--yes",
        "--no-rollback",
        "--work-dir",
        "w",
    ])
    .failure()
    .stderr_has("Continue with: ttn-session-migrate resume");
    let journal = env.cwd().join("w/dev-1/journal.json");
    let export = std::fs::read(env.cwd().join("w/dev-1/export.json")).unwrap();
    let calls = env.state.calls().len();

    std::fs::write(&journal, "{\"records\": [").unwrap();
    env.run(&["resume", "w"])
        .code(3)
        .stderr_has("is damaged")
        .stderr_has("nothing was changed")
        .clean_errors();
    std::fs::write(
        &journal,
        r#"{"records":[{"step":"imported","at":"2026-01-01T00:00:00Z"}]}"#,
    )
    .unwrap();
    env.run(&["resume", "w"])
        .code(3)
        .stderr_says("does not describe a possible history")
        .clean_errors();
    env.run(&["rollback", "w", "--yes"])
        .code(3)
        .stderr_says("does not describe a possible history");
    assert_eq!(env.state.calls().len(), calls, "a command ran");
    assert_eq!(
        std::fs::read(env.cwd().join("w/dev-1/export.json")).unwrap(),
        export
    );
}

#[test]
fn no_rollback_leaves_the_device_in_the_export_and_resume_finishes_it() {
    let env = Env::new().with_profiles();
    let seeded = env.seed_ce("otaa-eu1", "dev-1");
    env.state.add_fault(create_refused_for_rights(1));
    env.run(&[
        "migrate",
        "app-1",
        "dev-1",
        "--yes",
        "--no-rollback",
        "--work-dir",
        "w",
    ])
    .failure()
    .stderr_says("where: deleted from the source; only in the saved export")
    .stderr_has("RIGHT_APPLICATION_DEVICES_WRITE_KEYS");
    assert!(env.on_ce("dev-1").is_none() && env.on_cloud("dev-1").is_none());
    env.run(&["resume", "w"])
        .success()
        .stdout_has("migrated, session verified");
    assert_eq!(
        session_of(&env.on_cloud("dev-1").unwrap()),
        session_of(&seeded)
    );
}

#[test]
fn rollback_after_a_successful_migration_puts_the_device_back() {
    let env = Env::new().with_profiles();
    let seeded = env.seed_ce("otaa-eu1", "dev-1");
    env.run(&["migrate", "app-1", "dev-1", "--yes", "--work-dir", "w"])
        .success();
    env.run(&["rollback", "w"]).code(3).stderr_has("Pass --yes");
    env.run(&["rollback", "w", "dev-1", "--yes"])
        .success()
        .stdout_has("rolled back to the source");
    assert!(env.on_cloud("dev-1").is_none());
    let back = env.on_ce("dev-1").expect("back on the source");
    assert_eq!(session_of(&back), session_of(&seeded));
    assert_eq!(back["network_server_address"], Value::String(CE.into()));
    // Idempotent: a second rollback and a resume change nothing.
    let calls = env.state.calls().len();
    env.run(&["rollback", "w", "--yes"]).success();
    env.run(&["resume", "w"])
        .success()
        .stdout_has("Nothing to resume");
    let writes_after = env.writes_since(calls);
    assert!(writes_after.is_empty(), "{writes_after:?}");
}

#[test]
fn two_runs_on_one_work_directory_are_refused() {
    let env = Env::new().with_profiles();
    env.seed_ce("otaa-eu1", "dev-1");
    env.state
        .set_command_latency_ms("end-devices create", 2_000);
    let mut child = env
        .cmd()
        .args(&["migrate", "app-1", "dev-1", "--yes", "--work-dir", "w"])
        .spawn();
    env.wait_for_ttn_lw_cli(&["end-devices", "create"]);
    env.run(&["resume", "w"])
        .code(3)
        .stderr_has("in use by another ttn-session-migrate run");
    assert!(child.wait().unwrap().success());
}

#[test]
fn freeze_downlinks_turns_them_off_on_the_source_and_not_on_the_target() {
    let env = Env::new().with_profiles();
    let seeded = env.seed_ce("otaa-eu1", "dev-1");
    env.run(&[
        "migrate",
        "app-1",
        "dev-1",
        "--yes",
        "--freeze-downlinks",
        "--work-dir",
        "w",
    ])
    .success();
    let moved = env.on_cloud("dev-1").unwrap();
    assert_eq!(
        moved.pointer("/mac_settings/schedule_downlinks"),
        seeded.pointer("/mac_settings/schedule_downlinks"),
        "the freeze travelled to the target"
    );
    assert!(
        env.writes().starts_with(&["end-devices set".to_string()]),
        "{:?}",
        env.writes()
    );
    // A rollback restores the source's own setting.
    env.run(&["rollback", "w", "--yes"]).success();
    let back = env.on_ce("dev-1").unwrap();
    assert_eq!(
        back.pointer("/mac_settings/schedule_downlinks"),
        seeded.pointer("/mac_settings/schedule_downlinks")
    );
}

#[test]
fn a_second_ctrl_c_stops_at_once_and_resume_finds_the_import_that_was_in_flight() {
    let env = Env::new().with_profiles();
    let seeded = env.seed_ce("otaa-eu1", "dev-1");
    env.state
        .set_command_latency_ms("end-devices create", 2_000);
    let child = env
        .cmd()
        .args(&["migrate", "app-1", "dev-1", "--yes", "--work-dir", "w"])
        .spawn();
    env.wait_for_ttn_lw_cli(&["end-devices", "create"]);
    let pid = child.id().to_string();
    for _ in 0..2 {
        assert!(std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success());
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    // The hard stop names the device left between delete and import.
    assert!(
        words(&stderr).contains(
            "1 device is between delete and import, off both networks until the run is continued: dev-1"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("Continue with: ttn-session-migrate resume"),
        "{stderr}"
    );
    // The tool stopped while the import ran; the journal says the import may have happened.
    let work = env.cwd().join("w");
    assert_eq!(
        journal_steps(&work, "dev-1").last().map(String::as_str),
        Some("import-started")
    );

    env.wait_for_no_ttn_lw_cli();
    let last = env
        .run(&["resume", "w"])
        .success()
        .stdout_has("migrated, session verified");
    assert_not_lost(&env, &seeded, &last, &work);
    assert!(env.on_cloud("dev-1").is_some());
}

#[test]
fn a_target_that_answers_with_another_session_is_a_failure_and_the_device_goes_back() {
    let env = Env::new().with_profiles();
    let seeded = env.seed_ce("otaa-eu1", "dev-1");
    // A ttn-lw-cli whose `create` answer differs from what it stored.
    let wrapper = env.bin_dir().join("ttn-lw-cli");
    std::fs::remove_file(&wrapper).unwrap();
    std::fs::write(
        &wrapper,
        format!(
            "#!/usr/bin/env bash\nset -o pipefail\nfor a in \"$@\"; do\n  if [ \"$a\" = create ]; then\n    {double} \"$@\" | sed 's/\"last_f_cnt_up\": 1234/\"last_f_cnt_up\": 1/'\n    exit $?\n  fi\ndone\nexec {double} \"$@\"\n",
            double = target_dir().join("ttn-lw-cli").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();

    let last = env
        .run(&["migrate", "app-1", "dev-1", "--yes", "--work-dir", "w"])
        .failure()
        .stderr_says("the target's session differs from the export in session.last_f_cnt_up")
        .stderr_says("rolled back to the source")
        .clean_errors()
        .no_keys_of(&seeded);
    assert_not_lost(&env, &seeded, &last, &env.cwd().join("w"));
    assert!(env.on_ce("dev-1").is_some());
}

#[test]
fn a_failed_export_after_a_freeze_turns_downlinks_back_on_and_resume_freezes_again() {
    let env = Env::new().with_profiles();
    let seeded = env.seed_ce("otaa-eu1", "dev-1");
    env.state.add_fault(
        Fault::error(
            "end-devices get",
            "pkg/auth/rights",
            "insufficient_application_rights",
            "insufficient rights for application `app-1`",
        )
        .on(CE)
        .nth(2),
    );
    let mut args = vec![
        "migrate",
        "app-1",
        "dev-1",
        "--yes",
        "--freeze-downlinks",
        "--work-dir",
        "w",
    ];
    args.extend(FAST);
    env.run(&args)
        .failure()
        .stderr_has("could not export the device");
    let source = env.on_ce("dev-1").expect("still on the source");
    let downlinks = source.pointer("/mac_settings/schedule_downlinks");
    assert!(
        downlinks.is_none() || downlinks == Some(&Value::Bool(true)),
        "{downlinks:?}"
    );
    assert_eq!(
        journal_steps(&env.cwd().join("w"), "dev-1"),
        ["detected", "frozen", "unfrozen", "failed"]
    );

    let mut resume = vec!["resume", "w"];
    resume.extend(FAST);
    let last = env.run(&resume).success();
    assert_not_lost(&env, &seeded, &last, &env.cwd().join("w"));
    let steps = journal_steps(&env.cwd().join("w"), "dev-1");
    assert_eq!(
        steps.iter().filter(|s| *s == "frozen").count(),
        2,
        "{steps:?}"
    );
    let moved = env.on_cloud("dev-1").unwrap();
    assert_ne!(
        moved.pointer("/mac_settings/schedule_downlinks"),
        Some(&Value::Bool(false))
    );
}

/// `create`'s answer is lost, a `get` on the target confirms the import, and then the read-back
/// of the session answers not-found (issue 9). The device is on the target: the tool must say
/// so, keep a journal that replays, and `resume` must finish the migration.
#[test]
fn a_lost_create_answer_then_a_not_found_read_back_keeps_the_device_on_the_target() {
    let env = Env::new().with_profiles();
    let seeded = env.seed_ce("otaa-eu1", "dev-1");
    env.state.add_fault(
        Fault::error_after_effect(
            "end-devices create",
            "unknown",
            "unknown",
            "error reading from server: EOF",
        )
        .on(CLOUD)
        .nth(1),
    );
    // The first target `get` (does it exist?) answers; the second (the session read-back)
    // says not found.
    env.state.add_fault(
        Fault::error(
            "end-devices get",
            "pkg/identityserver/store",
            "end_device_not_found",
            "end device with id `dev-1` not found in application with id `app-1`",
        )
        .on(CLOUD)
        .nth(2),
    );
    let mut args = vec!["migrate", "app-1", "dev-1", "--yes", "--work-dir", "w"];
    args.extend(FAST);
    let first = env
        .run(&args)
        .failure()
        .stderr_says("where: on the target (not yet verified)")
        .stderr_has("Continue with: ttn-session-migrate resume")
        .no_keys_of(&seeded);
    assert!(!first.stderr.contains("where: on the source"), "{first:#?}");
    assert!(env.on_ce("dev-1").is_none());
    assert!(env.on_cloud("dev-1").is_some());
    let steps = journal_steps(&env.cwd().join("w"), "dev-1");
    assert!(!steps.contains(&"import-refused".to_string()), "{steps:?}");

    let mut resume = vec!["resume", "w"];
    resume.extend(FAST);
    let last = env
        .run(&resume)
        .success()
        .stdout_has("migrated, session verified")
        .clean_errors()
        .no_keys_of(&seeded);
    assert_not_lost(&env, &seeded, &last, &env.cwd().join("w"));
}

// Real-world failures (issue 10, real-cli-audit.md D2, D3, D5, D6, D7, E6/E7): each test failed
// before its fix.

/// D2: the device lived on the target after the migration (uplinks, a downlink). Its rollback
/// carries the target's current session back, with the advanced counters, and removes it from
/// the target: it is still ours although its counters differ from the export.
#[test]
fn a_device_that_lived_on_the_target_rolls_back_with_its_current_session() {
    let env = Env::new().with_profiles();
    let seeded = env.seed_ce("otaa-eu1", "dev-1");
    env.run(&["migrate", "app-1", "dev-1", "--yes", "--work-dir", "w"])
        .success();
    for _ in 0..3 {
        assert!(env.state.deliver(CLOUD, APP, "dev-1", uplink()));
    }
    assert!(env
        .state
        .deliver(CLOUD, APP, "dev-1", Traffic::application_downlink()));
    let lived = counters_of(&env.on_cloud("dev-1").unwrap());
    assert_eq!(lived[0], counters_of(&seeded)[0] + 3);

    let last = env
        .run(&["rollback", "w", "--yes"])
        .success()
        .stdout_has("rolled back to the source")
        .no_keys_of(&seeded);
    assert!(env.on_cloud("dev-1").is_none(), "{last:#?}");
    let back = env.on_ce("dev-1").expect("back on the source");
    assert_eq!(identity_of(&back), identity_of(&seeded));
    assert_eq!(counters_of(&back), lived, "the stale export went back");
}

/// D2: `create`'s answer is lost and the device sends an uplink on the target before the tool
/// reads it back: the read-back has a higher FCnt, and the device is still verified as ours.
#[test]
fn an_uplink_before_the_read_back_does_not_make_the_device_someone_elses() {
    let env = Env::new().with_profiles();
    let seeded = env.seed_ce("otaa-eu1", "dev-1");
    let lost = ttn_lw_cli_double::errors::defs::connection_lost();
    env.state.add_fault(
        Fault::error_after_effect(
            "end-devices create",
            &lost.namespace,
            &lost.name,
            &lost.message,
        )
        .on(CLOUD)
        .nth(1),
    );
    let first_call = env.state.commands_started();
    for call in first_call + 1..first_call + 20 {
        env.state
            .deliver_after_call(call, CLOUD, APP, "dev-1", uplink());
    }
    let mut args = vec!["migrate", "app-1", "dev-1", "--yes", "--work-dir", "w"];
    args.extend(FAST);
    let last = env
        .run(&args)
        .success()
        .stdout_has("migrated, session verified")
        .no_keys_of(&seeded);
    assert_not_lost(&env, &seeded, &last, &env.cwd().join("w"));
    assert!(counters_of(&env.on_cloud("dev-1").unwrap())[0] > counters_of(&seeded)[0]);
}

/// D2: a device the tool did not create (another session under the same ID) is never touched
/// by a rollback; the tool says so and exits non-zero.
#[test]
fn a_rollback_never_deletes_a_device_with_another_session_and_says_so() {
    let env = Env::new().with_profiles();
    let seeded = env.seed_ce("otaa-eu1", "dev-1");
    env.run(&["migrate", "app-1", "dev-1", "--yes", "--work-dir", "w"])
        .success();
    // Someone re-registers dev-1 on the target: another device (its own AppKey) with a session
    // of its own.
    let mut other = env.on_cloud("dev-1").unwrap();
    other["root_keys"]["app_key"]["key"] = Value::String("0F1E2D3C4B5A69788796A5B4C3D2E1F0".into());
    other["session"]["dev_addr"] = Value::String("27FF0042".into());
    other["session"]["keys"]["session_key_id"] = Value::String("AQIDBAUGBwgJCgsMDQ4PEA==".into());
    env.state.put_device(CLOUD, &other);

    let run = env
        .run(&["rollback", "w", "--yes"])
        .failure()
        .stderr_says("a different device with this ID is on the target")
        .stderr_says("next: the device is back on the source: check the device with this ID in the target's Console; its export is kept in")
        .no_keys_of(&seeded);
    // Neither resume nor rollback can do anything about someone else's device.
    assert!(!run.stderr.contains("Continue with"), "{run:#?}");
    assert!(
        !run.stderr.contains("ttn-session-migrate resume"),
        "{run:#?}"
    );
    assert_eq!(
        env.on_cloud("dev-1"),
        Some(other),
        "someone else's device was touched"
    );
    assert_eq!(
        identity_of(&env.on_ce("dev-1").unwrap()),
        identity_of(&seeded)
    );
}

/// D3: the Network Server is rate limited inside the detection `get` (ERROR line, exit 0, no
/// `supports_join`). The detection is retried, never read as ABP: the OTAA device arrives
/// with its root keys.
#[test]
fn a_rate_limited_network_server_during_detection_is_retried_not_read_as_abp() {
    let env = Env::new().with_profiles();
    let seeded = env.seed_ce("otaa-eu1", "dev-1");
    env.state.add_fault(
        Fault::rate_limited("end-devices get")
            .in_registry("ns")
            .on(CE)
            .nth(1),
    );
    let mut args = vec!["migrate", "app-1", "dev-1", "--yes", "--work-dir", "w"];
    args.extend(FAST);
    let last = env
        .run(&args)
        .success()
        .stdout_has("OTAA")
        .stdout_has("migrated, session verified")
        .no_keys_of(&seeded);
    assert_not_lost(&env, &seeded, &last, &env.cwd().join("w"));
    let moved = env.on_cloud("dev-1").unwrap();
    assert_eq!(moved["supports_join"], Value::Bool(true));
    assert_eq!(
        moved.pointer("/root_keys/app_key/key"),
        seeded.pointer("/root_keys/app_key/key")
    );
}

/// D3: the Network Server fails for good inside the detection `get`: refused before any delete.
#[test]
fn a_network_server_failing_during_detection_refuses_before_any_delete() {
    let env = Env::new().with_profiles();
    let seeded = env.seed_ce("otaa-eu1", "dev-1");
    let internal = Fault::error("end-devices get", "pkg/networkserver", "internal", "boom");
    env.state
        .add_fault(internal.in_registry("ns").on(CE).nth(1));
    env.run(&["migrate", "app-1", "dev-1", "--yes", "--work-dir", "w"])
        .failure()
        .stderr_says("Network Server failed inside `end-devices get`");
    assert_eq!(env.on_ce("dev-1"), Some(seeded));
    assert!(env.writes().is_empty(), "{:?}", env.writes());
}

/// D6: the device re-joined on the source and has sent no uplink since: its `session` is
/// stale. Refused before any delete, with the advice to wait for its next uplink; after that
/// uplink `resume` migrates the new session.
#[test]
fn a_rejoined_device_is_refused_before_any_delete_until_its_next_uplink() {
    let env = Env::new().with_profiles();
    env.seed_ce("otaa-eu1", "dev-1");
    let keys = serde_json::json!({"session_key_id": "AZZZZZZZZZZZZZZZZZZZZw==",
        "f_nwk_s_int_key": {"key": "33333333333333333333333333333333"},
        "s_nwk_s_int_key": {"key": "33333333333333333333333333333333"},
        "nwk_s_enc_key": {"key": "33333333333333333333333333333333"},
        "app_s_key": {"key": "44444444444444444444444444444444"}});
    assert!(env
        .state
        .deliver(CE, APP, "dev-1", Traffic::rejoin("260B9999", keys)));
    let rejoined = env.on_ce("dev-1").unwrap();
    env.run(&["migrate", "app-1", "dev-1", "--yes", "--work-dir", "w"])
        .failure()
        .stderr_says("Wait for its next uplink")
        .no_keys_of(&rejoined);
    assert_eq!(env.on_ce("dev-1"), Some(rejoined));
    assert!(env.writes().is_empty(), "{:?}", env.writes());

    assert!(env.state.deliver(CE, APP, "dev-1", uplink()));
    let current = env.on_ce("dev-1").unwrap();
    assert_eq!(current["session"]["dev_addr"], "260B9999");
    env.run(&["resume", "w"])
        .success()
        .stdout_has("migrated, session verified");
    let moved = env.on_cloud("dev-1").unwrap();
    assert_eq!(identity_of(&moved), identity_of(&current));
    assert!(moved.get("pending_session").is_none());
}

/// D5: the source's delete stops after the Application Server (the Network Server refuses):
/// the device is half-deleted. The tool asks every server, finishes the delete, and only then
/// imports; it never reports the device as on the source.
#[test]
fn a_delete_that_stops_between_servers_is_finished_before_the_import() {
    let env = Env::new().with_profiles();
    let seeded = env.seed_ce("otaa-eu1", "dev-1");
    env.state
        .add_fault(delete_stopped_after_the_application_server(1));
    let mut args = vec!["migrate", "app-1", "dev-1", "--yes", "--work-dir", "w"];
    args.extend(FAST);
    let last = env
        .run(&args)
        .success()
        .stdout_has("migrated, session verified");
    assert!(
        env.registries_on(CE, "dev-1").is_empty(),
        "left on the source"
    );
    assert_not_lost(&env, &seeded, &last, &env.cwd().join("w"));
    let steps = journal_steps(&env.cwd().join("w"), "dev-1");
    assert!(
        steps.contains(&"delete-incomplete".to_string()),
        "{steps:?}"
    );
    assert!(!steps.contains(&"delete-refused".to_string()), "{steps:?}");
}

/// D5: the finishing delete fails too: the device is reported half-deleted, never "on the
/// source", and `resume` finishes it.
#[test]
fn a_half_deleted_device_is_never_reported_as_on_the_source() {
    let env = Env::new().with_profiles();
    let seeded = env.seed_ce("otaa-eu1", "dev-1");
    for nth in 1..=2 {
        env.state
            .add_fault(delete_stopped_after_the_application_server(nth));
    }
    let mut args = vec!["migrate", "app-1", "dev-1", "--yes", "--work-dir", "w"];
    args.extend(FAST);
    let first = env
        .run(&args)
        .failure()
        .stderr_says("partly deleted from the source");
    assert!(
        !first.stdout.contains("[device is on the source]"),
        "{first:#?}"
    );
    assert_eq!(
        env.registries_on(CE, "dev-1"),
        [Registry::Is, Registry::Js, Registry::Ns]
    );
    let mut resume = vec!["resume", "w"];
    resume.extend(FAST);
    let last = env.run(&resume).success();
    assert!(env.registries_on(CE, "dev-1").is_empty());
    assert_not_lost(&env, &seeded, &last, &env.cwd().join("w"));
}

/// D7: `create` is killed at the timeout after the Identity Server step: an IS-only device on
/// the target. The journal says this migration's import started and the target had no such
/// device before, so the leftover is deleted and the device created again.
#[test]
fn a_create_killed_between_servers_is_deleted_and_created_again() {
    let env = Env::new().with_profiles();
    let seeded = env.seed_ce("otaa-eu1", "dev-1");
    env.state.add_fault(
        Fault::hang("end-devices create")
            .after(Registry::Is)
            .on(CLOUD)
            .nth(1),
    );
    let mut args = vec!["migrate", "app-1", "dev-1", "--yes", "--work-dir", "w"];
    args.extend(FAST);
    let first = env.run(&args);
    let last = if first.stderr.contains("Continue with:") {
        env.wait_for_no_ttn_lw_cli();
        let mut resume = vec!["resume", "w"];
        resume.extend(FAST);
        env.run(&resume)
    } else {
        first
    };
    let last = last.success().stdout_has("migrated, session verified");
    assert_not_lost(&env, &seeded, &last, &env.cwd().join("w"));
    assert!(env.writes().contains(&"end-devices delete".to_string()));
}

/// D7: a half-created device that this migration did not make (it was there before) is never
/// deleted: the target's listing before the first delete shows it (the IS holds it), and the
/// device is left on the source as a conflict.
#[test]
fn a_half_created_device_someone_else_left_is_never_deleted() {
    let env = Env::new().with_profiles();
    let seeded = env.seed_ce("otaa-eu1", "dev-1");
    let mut leftover = seeded.clone();
    leftover["network_server_address"] = Value::String(CLOUD.into());
    leftover["application_server_address"] = Value::String(CLOUD.into());
    leftover["join_server_address"] = Value::String(CLOUD.into());
    env.state
        .put_partial_device(CLOUD, &leftover, &[Registry::Is]);
    env.run(&["migrate", "app-1", "dev-1", "--yes", "--work-dir", "w"])
        .code(3)
        .stdout_has("dev-1  conflict");
    assert_eq!(env.on_ce("dev-1"), Some(seeded));
    assert_eq!(env.registries_on(CLOUD, "dev-1"), [Registry::Is]);
    assert!(env.writes().is_empty(), "{:?}", env.writes());
}

/// E6: `create`'s answer is lost with an error the tool does not know: the target is asked
/// before anything else happens, and the device found there is verified (no rollback).
#[test]
fn a_lost_create_answer_with_an_unknown_error_is_checked_with_a_get() {
    let env = Env::new().with_profiles();
    let seeded = env.seed_ce("otaa-eu1", "dev-1");
    env.state.add_fault(
        Fault::error_after_effect(
            "end-devices create",
            "unknown",
            "unknown",
            "stream terminated by RST_STREAM with error code: INTERNAL_ERROR",
        )
        .on(CLOUD)
        .nth(1),
    );
    let mut args = vec!["migrate", "app-1", "dev-1", "--yes", "--work-dir", "w"];
    args.extend(FAST);
    let last = env
        .run(&args)
        .success()
        .stdout_has("migrated, session verified");
    assert_not_lost(&env, &seeded, &last, &env.cwd().join("w"));
    let steps = journal_steps(&env.cwd().join("w"), "dev-1");
    assert!(
        !steps.iter().any(|s| s.starts_with("rollback")),
        "{steps:?}"
    );
}

/// E7: after a lost `create` answer, the Network Server is rate limited inside the `get`
/// that checks the target: retried, never read as "not ours" or "not there".
#[test]
fn a_rate_limited_network_server_inside_a_check_of_the_target_is_retried() {
    let env = Env::new().with_profiles();
    let seeded = env.seed_ce("otaa-eu1", "dev-1");
    let lost = ttn_lw_cli_double::errors::defs::connection_lost();
    env.state.add_fault(
        Fault::error_after_effect(
            "end-devices create",
            &lost.namespace,
            &lost.name,
            &lost.message,
        )
        .on(CLOUD)
        .nth(1),
    );
    for nth in 1..=2 {
        env.state.add_fault(
            Fault::rate_limited("end-devices get")
                .in_registry("ns")
                .on(CLOUD)
                .nth(nth),
        );
    }
    let mut args = vec!["migrate", "app-1", "dev-1", "--yes", "--work-dir", "w"];
    args.extend(FAST);
    let last = env
        .run(&args)
        .success()
        .stdout_has("migrated, session verified");
    assert_not_lost(&env, &seeded, &last, &env.cwd().join("w"));
}

/// The device re-joined on the target after the migration (new DevAddr and session keys, same
/// root keys) and sent an uplink: it is still this migration's device, and its rollback carries
/// the new session back.
#[test]
fn a_device_that_rejoined_on_the_target_rolls_back_with_its_new_session() {
    let env = Env::new().with_profiles();
    let seeded = env.seed_ce("otaa-eu1", "dev-1");
    env.run(&["migrate", "app-1", "dev-1", "--yes", "--work-dir", "w"])
        .success();
    let keys = serde_json::json!({"session_key_id": "AZZZZZZZZZZZZZZZZZZZZw==",
        "f_nwk_s_int_key": {"key": "55555555555555555555555555555555"},
        "s_nwk_s_int_key": {"key": "55555555555555555555555555555555"},
        "nwk_s_enc_key": {"key": "55555555555555555555555555555555"},
        "app_s_key": {"key": "66666666666666666666666666666666"}});
    assert!(env
        .state
        .deliver(CLOUD, APP, "dev-1", Traffic::rejoin("27FF0042", keys)));

    // Not yet confirmed by an uplink: refused, nothing changes.
    let pending = env.on_cloud("dev-1").unwrap();
    env.run(&["rollback", "w", "--yes"])
        .failure()
        .stderr_says("wait for its next uplink")
        .no_keys_of(&pending);
    assert_eq!(env.on_cloud("dev-1"), Some(pending));
    assert!(env.on_ce("dev-1").is_none());

    assert!(env.state.deliver(CLOUD, APP, "dev-1", uplink()));
    let joined = env.on_cloud("dev-1").unwrap();
    assert_eq!(joined["session"]["dev_addr"], "27FF0042");
    env.run(&["rollback", "w", "--yes"])
        .success()
        .stdout_has("rolled back to the source")
        .no_keys_of(&joined);
    assert!(env.on_cloud("dev-1").is_none());
    let back = env.on_ce("dev-1").expect("back on the source");
    assert_eq!(identity_of(&back), identity_of(&joined));
    assert_ne!(identity_of(&back), identity_of(&seeded));
}
