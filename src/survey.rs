//! Before the question: the detection `get` of every device, run once before the confirmation,
//! so that the gateways the devices need can be shown above it (and `--require-gateways` can
//! refuse the devices no connected target gateway has heard). The run then takes each device's
//! detection from here instead of calling again ([`Prefetched`]): a device still costs one
//! detection call.
//!
//! An answer is used once: a retry, or `resume`, detects again. A device whose detection failed
//! here is detected by the run as before.
//!
//! The answers are as old as the question: what a device changes on the source between them (a
//! re-join, an edited attribute) is not in them. The export, read by the run, is always fresh.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde_json::Value;

use crate::gateways::{self, Summary};
use crate::next_step::NextStep;
use crate::outcome::DeviceReport;
use crate::plan::Migration;
use crate::runner::Calls;
use crate::ttn_lw_cli::{CliError, Invocation, Output};

/// The detection answers of a batch, read before the question.
pub struct Survey {
    /// Answers (or errors) the run has not used yet, by the detection call's argv.
    unused: Mutex<HashMap<Vec<String>, Result<Output, CliError>>>,
    /// Every device read, with its answer, in the order of the batch.
    read: Vec<(String, Value)>,
    /// Devices whose detection failed here, with the error.
    unread: Vec<(String, String)>,
}

/// Whether a migration reads its devices before the question: not with `--otaa`/`--abp` (no
/// detection call), nor within one network (the gateways stay where they are).
pub fn wanted(migration: &Migration) -> bool {
    migration.mode.is_none() && !crate::devaddr::same_network(&migration.source, &migration.target)
}

/// Runs the detection of `devices` on `jobs` workers (read-only).
pub fn survey(calls: &dyn Calls, migration: &Migration, devices: &[String], jobs: u32) -> Survey {
    let next = AtomicUsize::new(0);
    let answers: Mutex<Vec<Option<Result<Output, CliError>>>> =
        Mutex::new(vec![None; devices.len()]);
    std::thread::scope(|scope| {
        for _ in 0..(jobs.max(1) as usize).min(devices.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(device) = devices.get(i) else { break };
                let answer = calls.run(&migration.detect(device));
                answers.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(answer);
            });
        }
    });
    let mut survey = Survey {
        unused: Mutex::new(HashMap::new()),
        read: Vec::new(),
        unread: Vec::new(),
    };
    let answers = answers.into_inner().unwrap_or_else(|e| e.into_inner());
    for (device, answer) in devices.iter().zip(answers) {
        let Some(answer) = answer else { continue };
        match &answer {
            Ok(output) => match serde_json::from_slice::<Value>(&output.stdout) {
                // A device on another cluster has no MAC state here: unread, not silent.
                Ok(doc) => match crate::device::wrong_cluster(&doc, &output.stderr) {
                    Some(problem) => survey.unread.push((device.clone(), problem.to_string())),
                    None => survey.read.push((device.clone(), doc)),
                },
                Err(_) => survey.unread.push((
                    device.clone(),
                    "ttn-lw-cli printed something that is not JSON".into(),
                )),
            },
            Err(e) => survey.unread.push((device.clone(), e.detail.clone())),
        }
        // The run gets the very answer, error included: its retries and refusals apply.
        survey
            .unused
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .insert(migration.detect(device).argv(), answer);
    }
    survey
}

impl Survey {
    /// The gateways the devices read need, each looked up on the target once.
    pub fn summary(&self, cli: &dyn Calls, target: &Path) -> Summary {
        gateways::summary_of(
            cli,
            target,
            self.read.iter().map(|(device, doc)| (device.as_str(), doc)),
        )
    }

    /// `--require-gateways`: the devices to refuse before their delete, with the reason: those
    /// no connected target gateway has heard, and those whose gateways could not be read.
    pub fn refusals(&self, summary: &Summary) -> Vec<(String, String)> {
        summary
            .unheard
            .iter()
            .map(|u| (u.device_id.clone(), u.reason.clone()))
            .chain(self.unread.iter().map(|(device, error)| {
                (
                    device.clone(),
                    format!("its gateways could not be read ({error})"),
                )
            }))
            .collect()
    }

    /// Takes the answer to `invocation`, if it is a detection read here and not used yet.
    fn take(&self, invocation: &Invocation) -> Option<Result<Output, CliError>> {
        if invocation.stdout_to.is_some() {
            return None;
        }
        self.unused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&invocation.argv())
    }
}

/// The line above the gateway table.
pub fn headline(migration: &Migration, survey: &Survey) -> String {
    let devices = survey.read.len();
    format!(
        "Gateways that heard {} device{} on {}, and their state on {}:",
        devices,
        if devices == 1 { "" } else { "s" },
        migration.source.deployment(),
        migration.target.deployment(),
    )
}

/// The report of a device `--require-gateways` refused: still on the source, nothing done.
pub fn refused(migration: &Migration, device: &str, reason: &str) -> DeviceReport {
    let mut report = DeviceReport::new(
        device,
        &migration.application_id,
        &migration.target_application_id,
    );
    report.error = Some(format!(
        "refused by --require-gateways, nothing was deleted: {reason}"
    ));
    report.next_action = Some(NextStep::ConnectGateways);
    report
}

/// ttn-lw-cli for the run: the detections read before the question are answered from the
/// survey (once each); every other call goes to `inner`.
pub struct Prefetched<'a> {
    pub inner: &'a dyn Calls,
    pub survey: Option<&'a Survey>,
    /// A dry run: say where an answer came from, as a comment line.
    pub echo: bool,
}

impl Calls for Prefetched<'_> {
    fn run(&self, invocation: &Invocation) -> Result<Output, CliError> {
        match self.survey.and_then(|s| s.take(invocation)) {
            Some(answer) => {
                if self.echo {
                    println!(
                        "# answered by the read before the question: {}",
                        self.inner.render(invocation)
                    );
                }
                answer
            }
            None => self.inner.run(invocation),
        }
    }

    fn render(&self, invocation: &Invocation) -> String {
        self.inner.render(invocation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ttn_lw_cli::ErrorKind;
    use serde_json::json;

    /// Answers every `get` with a device heard by one gateway; counts the calls.
    struct Counting {
        calls: Mutex<Vec<Vec<String>>>,
    }

    impl Calls for Counting {
        fn run(&self, invocation: &Invocation) -> Result<Output, CliError> {
            self.calls.lock().unwrap().push(invocation.args.clone());
            if invocation.args.iter().any(|a| a == "dev-broken") {
                return Err(CliError {
                    kind: ErrorKind::Transport,
                    command: String::new(),
                    exit_code: Some(1),
                    error: None,
                    detail: "connection reset".into(),
                });
            }
            let doc = json!({"supports_join": true, "mac_state": {"recent_uplinks": [
                {"rx_metadata": [{"gateway_ids": {"gateway_id": "gw-1", "eui": "AA00000000000001"}}]}]}});
            Ok(Output {
                stdout: serde_json::to_vec(&doc).unwrap(),
                stderr: String::new(),
            })
        }

        fn render(&self, invocation: &Invocation) -> String {
            invocation.args.join(" ")
        }
    }

    fn migration() -> Migration {
        Migration::example()
    }

    #[test]
    fn each_detection_is_read_once_and_answered_once_from_the_survey() {
        let inner = Counting {
            calls: Mutex::new(Vec::new()),
        };
        let migration = migration();
        let devices: Vec<String> = ["dev-1", "dev-2", "dev-broken"].map(String::from).to_vec();
        let survey = survey(&inner, &migration, &devices, 2);
        assert_eq!(inner.calls.lock().unwrap().len(), 3);
        assert_eq!(survey.read.len(), 2);
        assert_eq!(survey.unread[0].0, "dev-broken");

        let calls = Prefetched {
            inner: &inner,
            survey: Some(&survey),
            echo: false,
        };
        // The run's detection of dev-1 costs no call; a second one (a retry) does.
        calls.run(&migration.detect("dev-1")).unwrap();
        assert_eq!(inner.calls.lock().unwrap().len(), 3);
        calls.run(&migration.detect("dev-1")).unwrap();
        assert_eq!(inner.calls.lock().unwrap().len(), 4);
        // Other calls, and the unread device, go through.
        calls.run(&migration.exists_on_target("dev-2")).unwrap();
        // The unread device gets its error once, as the run would have; then a fresh call.
        assert!(calls.run(&migration.detect("dev-broken")).is_err());
        assert_eq!(inner.calls.lock().unwrap().len(), 5);
        assert!(calls.run(&migration.detect("dev-broken")).is_err());
        assert_eq!(inner.calls.lock().unwrap().len(), 6);
    }
}
