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
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde_json::Value;

use crate::gateways::{self, DeviceGateways, Summary};
use crate::next_step::NextStep;
use crate::outcome::DeviceReport;
use crate::plan::Migration;
use crate::runner::Calls;
use crate::ttn_lw_cli::{CliError, Invocation, Output};

/// The detection answers of a batch, read before the question.
///
/// The answers wait for the run in an unlinked temporary file, not in memory: a device's answer
/// is a few kilobytes, and 10,000 of them held until the run took them doubled the tool's
/// memory. Only the gateways each device needs stay in memory, for the summary.
pub struct Survey {
    /// Answers (or errors) the run has not used yet, by device ID.
    unused: Mutex<HashMap<String, Kept>>,
    /// The migration whose detection calls these answer.
    migration: Migration,
    /// Where answers wait; `None` if no temporary file could be made (then they wait here).
    spool: Option<File>,
    /// Every device read, with the gateways it needs, in the order of the batch.
    read: Vec<DeviceGateways>,
    /// Devices whose detection failed here, with the error.
    unread: Vec<(String, String)>,
}

/// An answer waiting for the run.
enum Kept {
    /// Its stdout is in the spool, at `at`.
    Spooled { at: u64, len: usize, stderr: String },
    /// Kept whole: an error, or an answer without a spool.
    Whole(Result<Output, CliError>),
}

/// What the survey made of one answer.
enum Read {
    Gateways(DeviceGateways),
    Unread(String),
}

/// Whether a migration reads its devices before the question: not with `--otaa`/`--abp` (no
/// detection call), nor within one network (the gateways stay where they are).
pub fn wanted(migration: &Migration) -> bool {
    migration.mode.is_none() && !crate::devaddr::same_network(&migration.source, &migration.target)
}

/// Runs the detection of `devices` on `jobs` workers (read-only). Each answer is read for its
/// gateways and put aside for the run as it arrives.
pub fn survey(calls: &dyn Calls, migration: &Migration, devices: &[String], jobs: u32) -> Survey {
    let next = AtomicUsize::new(0);
    let unused = Mutex::new(HashMap::new());
    let spool = tempfile::tempfile().ok();
    let spooled = Mutex::new((spool, 0u64));
    let reads: Mutex<Vec<Option<Read>>> = Mutex::new((0..devices.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..(jobs.max(1) as usize).min(devices.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(device) = devices.get(i) else { break };
                let answer = calls.run(&migration.detect(device));
                let read = read(device, &answer);
                let kept = keep(&spooled, answer);
                lock(&unused).insert(device.clone(), kept);
                lock(&reads)[i] = Some(read);
            });
        }
    });
    let mut survey = Survey {
        unused,
        migration: migration.clone(),
        spool: spooled.into_inner().unwrap_or_else(|e| e.into_inner()).0,
        read: Vec::new(),
        unread: Vec::new(),
    };
    for (device, read) in devices
        .iter()
        .zip(reads.into_inner().unwrap_or_else(|e| e.into_inner()))
    {
        match read {
            Some(Read::Gateways(gateways)) => survey.read.push(gateways),
            Some(Read::Unread(why)) => survey.unread.push((device.clone(), why)),
            None => {}
        }
    }
    survey
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The gateways a detection answer names, or why it names none that can be trusted.
fn read(device: &str, answer: &Result<Output, CliError>) -> Read {
    match answer {
        Ok(output) => match serde_json::from_slice::<Value>(&output.stdout) {
            // A device on another cluster has no MAC state here: unread, not silent.
            Ok(doc) => match crate::device::wrong_cluster(&doc, &output.stderr) {
                Some(problem) => Read::Unread(problem.to_string()),
                None => Read::Gateways(DeviceGateways::of(device, &doc)),
            },
            Err(_) => Read::Unread("ttn-lw-cli printed something that is not JSON".into()),
        },
        Err(e) => Read::Unread(e.detail.clone()),
    }
}

/// Puts an answer aside for the run: its stdout appended to the spool, if there is one. The run
/// gets the very answer, error included: its retries and refusals apply.
fn keep(spooled: &Mutex<(Option<File>, u64)>, answer: Result<Output, CliError>) -> Kept {
    let Ok(output) = answer else {
        return Kept::Whole(answer);
    };
    let mut spooled = lock(spooled);
    let (spool, end) = &mut *spooled;
    let Some(file) = spool.as_ref() else {
        return Kept::Whole(Ok(output));
    };
    // At its own offset: a write that failed halfway leaves the others where they are.
    match file.write_all_at(&output.stdout, *end) {
        Ok(()) => {
            let at = *end;
            *end += output.stdout.len() as u64;
            Kept::Spooled {
                at,
                len: output.stdout.len(),
                stderr: output.stderr,
            }
        }
        Err(_) => Kept::Whole(Ok(output)),
    }
}

impl Survey {
    /// The gateways the devices read need, each looked up on the target once.
    pub fn summary(&self, cli: &dyn Calls, target: &Path) -> Summary {
        gateways::summary_of(cli, target, &self.read)
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
        let device = invocation
            .args
            .iter()
            .position(|a| a == "--device-id")
            .and_then(|i| invocation.args.get(i + 1))?;
        let mut unused = lock(&self.unused);
        // Most calls are not a waiting detection: no argv to build for them.
        if !unused.contains_key(device) || invocation.argv() != self.migration.detect(device).argv()
        {
            return None;
        }
        let kept = unused.remove(device)?;
        drop(unused);
        match kept {
            Kept::Whole(answer) => Some(answer),
            // An answer the spool cannot give back: the run asks ttn-lw-cli again.
            Kept::Spooled { at, len, stderr } => {
                let mut stdout = vec![0; len];
                self.spool
                    .as_ref()?
                    .read_exact_at(&mut stdout, at)
                    .ok()
                    .map(|()| Ok(Output { stdout, stderr }))
            }
        }
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
            let device = invocation
                .args
                .iter()
                .position(|a| a == "--device-id")
                .map(|i| invocation.args[i + 1].clone());
            let doc = json!({"ids": {"device_id": device}, "supports_join": true, "mac_state": {"recent_uplinks": [
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
        assert_eq!(survey.read[0].gateways.len(), 1);
        assert_eq!(survey.unread[0].0, "dev-broken");

        let calls = Prefetched {
            inner: &inner,
            survey: Some(&survey),
            echo: false,
        };
        // The run's detection of dev-1 costs no call, and gives back the very answer, which
        // waited in the spool; a second one (a retry) costs a call.
        assert!(survey.spool.is_some());
        let answer = calls.run(&migration.detect("dev-1")).unwrap();
        let doc: Value = serde_json::from_slice(&answer.stdout).unwrap();
        assert_eq!(doc["ids"]["device_id"], "dev-1");
        let other = calls.run(&migration.detect("dev-2")).unwrap();
        let other: Value = serde_json::from_slice(&other.stdout).unwrap();
        assert_eq!(other["ids"]["device_id"], "dev-2");
        assert_eq!(
            doc["mac_state"]["recent_uplinks"][0]["rx_metadata"][0]["gateway_ids"]["gateway_id"],
            "gw-1"
        );
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
