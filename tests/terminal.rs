//! At an operator's terminal (a pseudo-terminal made by `script`, 80 columns): every line fits,
//! and Ctrl-C is acknowledged above the progress bars, with what happens next.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::*;

/// Seeds `count` OTAA devices `dev-1` … with their own DevEUIs.
fn seed_devices(env: &Env, count: usize) {
    for i in 1..=count {
        let mut device = DoubleState::fixture("otaa-eu1");
        device["ids"]["device_id"] = format!("dev-{i}").into();
        device["ids"]["application_ids"]["application_id"] = APP.into();
        device["ids"]["dev_eui"] = format!("70B3D57ED1{i:06X}").into();
        env.state.put_device(CE, &device);
    }
}

#[test]
fn a_run_at_80_columns_fits_and_the_first_ctrl_c_is_acknowledged_above_the_bars() {
    let env = Env::new().with_profiles();
    seed_devices(&env, 4);
    env.state
        .set_command_latency_ms("end-devices create", 1_500);
    let mut child = env
        .cmd()
        .args(&[
            "migrate",
            "app-1",
            "--all",
            "--jobs",
            "1",
            "--yes",
            "--work-dir",
            "w",
        ])
        .env("TERM", "xterm")
        .in_terminal_of(80)
        .spawn_with_keyboard();
    // The first device is between delete and import: its create is running.
    env.wait_for_ttn_lw_cli(&["end-devices", "create"]);
    // Ctrl-C on the keyboard: the terminal sends SIGINT to the tool.
    let mut keyboard = child.stdin.take().unwrap();
    keyboard.write_all(b"\x03").unwrap();
    keyboard.flush().unwrap();
    let output = child.wait_with_output().unwrap();
    drop(keyboard);
    let raw = String::from_utf8_lossy(&output.stdout);
    let lines = screen_lines(&raw);
    let screen = words(&lines.join("\n"));
    if std::env::var_os("SHOW_SCREEN").is_some() {
        eprintln!("{}", lines.join("\n"));
    }

    assert!(
        screen.contains(&words(
            "Ctrl-C: stopping. No new device starts; devices in flight finish (one between delete and import is imported first). Press Ctrl-C again to stop at once."
        )),
        "no Ctrl-C notice:\n{}",
        lines.join("\n")
    );
    assert!(
        screen.contains("dev-1 OTAA DevAddr 260B1234 FCnt 1234/56 migrated, session verified"),
        "{}",
        lines.join("\n")
    );
    assert!(
        screen.contains("1 migrated, 0 failed, 0 skipped, 0 conflicts, 3 not started"),
        "{}",
        lines.join("\n")
    );
    assert!(screen.contains("Continue with: ttn-session-migrate resume"));
    // Before the question, a spinner said what the checks were doing.
    for doing in [
        "checking ttn-lw-cli, the profiles and the logins",
        "listing application app-1 on the source",
        "listing application app-1 on the target",
    ] {
        assert!(
            screen.contains(doing),
            "no {doing:?}:\n{}",
            lines.join("\n")
        );
    }
    // The bar never counted the devices that did not start as failed.
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("devices") && l.contains("3 failed")),
        "{}",
        lines.join("\n")
    );
    assert_eq!(
        overflowing(&lines, 80),
        Vec::<String>::new(),
        "lines wider than 80 columns:\n{}",
        lines.join("\n")
    );
    assert!(env.on_cloud("dev-1").is_some());
    for untouched in ["dev-2", "dev-3", "dev-4"] {
        assert!(env.on_ce(untouched).is_some(), "{untouched} was touched");
    }
}

#[test]
fn failures_and_warnings_wrap_at_80_columns_and_each_failure_is_printed_once() {
    let env = Env::new().with_profiles();
    seed_devices(&env, 2);
    env.state.add_fault(
        Fault::error(
            "end-devices create",
            "pkg/networkserver",
            "field_value",
            "invalid value of field `mac_state`: a long explanation that the server gives here",
        )
        .on(CLOUD)
        .nth(1),
    );
    let run = env
        .cmd()
        .args(&["migrate", "app-1", "--all", "--jobs", "1", "--yes"])
        .env("TERM", "xterm")
        .in_terminal_of(80)
        .run();
    let lines = screen_lines(&run.stdout);
    assert_eq!(
        overflowing(&lines, 80),
        Vec::<String>::new(),
        "lines wider than 80 columns:\n{}",
        lines.join("\n")
    );
    let screen = words(&lines.join("\n"));
    assert!(screen.contains("! Gateways:"), "{}", lines.join("\n"));
    // The warning before the run takes a few short lines, not a paragraph.
    let start = lines
        .iter()
        .position(|l| l.starts_with("! Gateways: a migrated session"))
        .unwrap();
    let warning = 1 + lines[start + 1..]
        .iter()
        .take_while(|l| l.starts_with("  "))
        .count();
    assert!(warning <= 6, "{warning} lines:\n{}", lines.join("\n"));
    assert_eq!(
        screen.matches("invalid value of field `mac_state`").count(),
        1,
        "{}",
        lines.join("\n")
    );
    assert!(screen.contains("next: the device is back on the source"));
}

#[test]
fn with_standard_output_piped_the_terminal_gets_plain_lines_not_bars() {
    let env = Env::new().with_profiles();
    seed_devices(&env, 2);
    // `… | cat` inside the terminal: results go through the pipe, progress to the terminal.
    let mut test = env
        .cmd()
        .args(&["migrate", "app-1", "--all", "--yes", "--gateways-migrated"])
        .env("TERM", "xterm")
        .in_terminal_of(80);
    test = test.pipe_stdout_through("cat");
    let run = test.run();
    assert!(!run.stdout.contains("/2 devices"), "bars drawn: {run:#?}");
    assert!(run.stdout.contains("dev-2: verify"), "{run:#?}");
    assert!(run.stdout.contains("2 migrated, 0 failed"), "{run:#?}");
}

#[test]
fn a_declined_question_changes_nothing_and_exits_3() {
    let env = Env::new().with_profiles();
    seed_devices(&env, 1);
    let mut child = env
        .cmd()
        .args(&["migrate", "app-1", "dev-1", "--gateways-migrated"])
        .env("TERM", "xterm")
        .in_terminal_of(80)
        .spawn_with_keyboard();
    // Answer once the question is on the screen, as an operator would.
    let mut screen_out = child.stdout.take().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buffer = [0u8; 4096];
            while let Ok(n) = screen_out.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                seen.lock().unwrap().extend_from_slice(&buffer[..n]);
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !String::from_utf8_lossy(&seen.lock().unwrap()).contains("[y/N]") {
        assert!(Instant::now() < deadline, "no question asked");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut keyboard = child.stdin.take().unwrap();
    keyboard.write_all(b"n\n").unwrap();
    keyboard.flush().unwrap();
    let status = child.wait().unwrap();
    reader.join().unwrap();
    drop(keyboard);
    let output = std::process::Output {
        status,
        stdout: seen.lock().unwrap().clone(),
        stderr: Vec::new(),
    };
    let raw = String::from_utf8_lossy(&output.stdout);
    let lines = screen_lines(&raw);
    assert_eq!(output.status.code(), Some(3), "{}", lines.join("\n"));
    let screen = words(&lines.join("\n"));
    assert!(
        screen.contains("Migrate 1 device (dev-1) from The Things Stack Community Edition"),
        "{}",
        lines.join("\n")
    );
    assert!(screen.contains("error: cancelled; nothing was changed"));
    assert_eq!(overflowing(&lines, 80), Vec::<String>::new());
    assert!(env.writes().is_empty(), "{:?}", env.writes());
}
