//! Pacing: how fast the tool calls each deployment, learned from the deployments' answers, and
//! the circuit breaker that stops a run when the target does not answer.
//!
//! The ceiling of a large migration is the deployments' rate limits, not the workers. Calls go
//! through three lanes, paced separately: source reads, source deletes, target creates. A lane
//! starts unpaced, unless the operator declared its rate ([`Pacing::declare`], `--target-rate`):
//! then it is paced from its first call, a little under the declared rate, so that the devices
//! between their delete and their create when a bucket runs out are never refused; a declared
//! rate is also the fastest the lane ever probes. An undeclared lane's first
//! `pkg/ratelimit:rate_limit_exceeded` answer sets its pace to the rate the server names ("rate
//! limit of `N` accesses per minute": N per minute, a little slower, so that the server's bucket
//! refills a little between calls); without that figure, half the rate of its successes so far. From then on it is AIMD: a rejection of a call started under the
//! current pace slows the lane by a tenth (rejections of calls started before the last change
//! only mean the bucket is empty now); two minutes of successes in a row speed it up by 5 %.
//!
//! The real CLI prints no retry metadata (`x-rate-limit-*` are gRPC headers), and its own
//! `--retry.max` (off by default, `pkg/rpcmiddleware/rpcretry`) sleeps inside the subprocess,
//! where one process cannot know what the other workers do, the progress line cannot show it,
//! and Ctrl-C cannot wake it (each call runs in its own process group). It also retries a
//! `create` whose answer was `unavailable` blindly. So the tool does not turn it on: it paces
//! all workers from one place instead.
//!
//! The delete gate: a device is exported and deleted only once its create can follow at once.
//! [`Pacing::admit`] waits before the export until the target-create slot is near, and
//! [`Pacing::before_delete`] takes it before the delete, for the moment the create will start
//! (one delete later); the import then runs without waiting, so the time a device spends on
//! neither deployment stays about two call latencies, also when the target is rate limited.
//!
//! The circuit breaker: after `breaker_after` devices in a row failed on the target for a
//! transient reason (no answer, unavailable, timeout), no new device starts; devices in flight
//! finish or go back to the source. While the target's last create went unanswered, only one
//! device at a time may be between its delete and its import.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::ttn_lw_cli::{CliError, ErrorKind};

/// The calls paced separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    SourceRead,
    SourceDelete,
    TargetCreate,
}

impl Lane {
    const ALL: [Lane; 3] = [Lane::SourceRead, Lane::SourceDelete, Lane::TargetCreate];

    fn index(self) -> usize {
        match self {
            Lane::SourceRead => 0,
            Lane::SourceDelete => 1,
            Lane::TargetCreate => 2,
        }
    }
}

/// How a paced call ended, as far as pacing cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Ok,
    /// `rate_limit_exceeded`, with the rate per minute the server named.
    RateLimited(Option<u32>),
    /// No answer: unavailable, a lost connection, a timeout.
    Unanswered(String),
    /// Any other answer (not found, refused, …): the deployment answered.
    Other,
}

impl Answer {
    pub fn of<T>(result: &Result<T, CliError>) -> Answer {
        match result {
            Ok(_) => Answer::Ok,
            Err(e) if e.kind == ErrorKind::RateLimited => Answer::RateLimited(declared_rate(e)),
            Err(e) if e.kind.is_transient() => Answer::Unanswered(e.detail.clone()),
            Err(_) => Answer::Other,
        }
    }
}

/// The `N` of "rate limit of `N` accesses per minute" (`pkg/ratelimit`).
fn declared_rate(e: &CliError) -> Option<u32> {
    let text = e
        .error
        .as_ref()
        .map_or(e.detail.as_str(), |t| t.message.as_str());
    let rest = text.split("rate limit of `").nth(1)?;
    let rate: u32 = rest.split('`').next()?.parse().ok()?;
    (rate > 0 && rest.contains("per minute")).then_some(rate)
}

/// How a worker waits for a lane.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// A device already deleted: goes first, never stops.
    urgent: bool,
    /// The call starts this long after the wait returns (the slot is its start)…
    lead: Duration,
    /// … plus the usual durations of these lanes' calls, as known at each look: a worker that
    /// began to wait before the first of them answered leads by as much as one that came later.
    lead_of: &'static [Lane],
    /// Take the slot; else only wait until it is near (the gate before an export).
    take: bool,
}

/// Paced slightly under a declared rate, so the server's bucket gains a little between calls
/// and absorbs the jitter of process start-up.
const SLACK: f64 = 1.05;
/// A rejection under the current pace slows the lane by this factor.
const SLOWER: f64 = 1.1;
/// This much time of successes in a row speeds the lane up by [`FASTER`].
const PROBE_AFTER: Duration = Duration::from_secs(120);
const FASTER: f64 = 1.05;
/// The longest a waiting worker sleeps before it looks at its stop condition again.
const POLL: Duration = Duration::from_millis(50);

#[derive(Debug)]
struct Pace {
    /// Time between two calls; `None`: unpaced (no limit seen).
    interval: Option<Duration>,
    /// The earliest start of the next call.
    next: Instant,
    /// When the interval last changed.
    changed: Instant,
    /// Successes since the last change.
    streak: u32,
    /// Successes since the start, and when the first call started.
    successes: u32,
    first: Option<Instant>,
    /// Workers waiting that must go first (devices already deleted).
    urgent: usize,
    /// Answered `rate_limit_exceeded`.
    limited: usize,
    /// The rate per minute the deployment named when it first refused a call.
    named: Option<u32>,
    /// Moving average of the calls' durations.
    typical: Duration,
    /// The shortest interval the lane probes down to: the pace of a declared rate.
    fastest: Option<Duration>,
    /// How far ahead of the pace a call may go: the server's bucket holds a burst of calls
    /// (a declared rate's bucket starts full, as a real server's does, `pkg/ratelimit`). Slots
    /// follow the generic cell rate algorithm: a call may start once `next - burst` is past.
    burst: Duration,
}

impl Pace {
    fn new(now: Instant) -> Pace {
        Pace {
            interval: None,
            next: now,
            changed: now,
            streak: 0,
            successes: 0,
            first: None,
            urgent: 0,
            limited: 0,
            named: None,
            typical: Duration::ZERO,
            fastest: None,
            burst: Duration::ZERO,
        }
    }

    /// The interval of pacing a little under `per_minute`.
    fn under(per_minute: u32) -> Duration {
        Duration::from_secs(60)
            .div_f64(per_minute.max(1) as f64)
            .mul_f64(SLACK)
    }

    /// `committed`: when the caller took its slot (at the latest, when the call started): a
    /// rejection of a call committed before the last change says nothing about the new pace.
    fn answered(&mut self, committed: Instant, started: Instant, answer: &Answer, now: Instant) {
        let took = now.saturating_duration_since(started);
        self.typical = match self.typical.is_zero() {
            true => took,
            false => self.typical.mul_f64(0.8) + took.mul_f64(0.2),
        };
        match answer {
            Answer::Ok => {
                self.successes += 1;
                self.streak += 1;
                if let Some(interval) = self.interval {
                    if interval * self.streak >= PROBE_AFTER {
                        let faster = interval.div_f64(FASTER);
                        match self.fastest {
                            // Never faster than a little under the declared rate.
                            Some(fastest) if faster < fastest => match interval > fastest {
                                true => self.change(fastest, now),
                                false => self.streak = 0,
                            },
                            _ => self.change(faster, now),
                        }
                    }
                }
            }
            Answer::RateLimited(named_rate) => {
                self.limited += 1;
                self.named = self.named.or(*named_rate);
                // A little under the rate the server named.
                let named = named_rate.map(Pace::under);
                let slower = match self.interval {
                    // Committed before the last change: the bucket is empty now, nothing more.
                    Some(interval) if committed < self.changed => interval,
                    Some(interval) => interval.mul_f64(SLOWER),
                    None => match (named, self.first) {
                        (Some(named), _) => named,
                        (None, Some(first)) if self.successes > 0 => {
                            (now - first).div_f64(self.successes as f64) * 2
                        }
                        (None, _) => Duration::from_secs(1),
                    },
                };
                // A rate named slower than the pace (a declared rate too high): that rate at once.
                let slower = named.map_or(slower, |named| slower.max(named));
                let interval = slower.max(Duration::from_millis(1));
                if Some(interval) != self.interval {
                    self.change(interval, now);
                }
                // The bucket is empty now: the next call one interval from now.
                self.next = self.next.max(now + self.burst + interval);
            }
            Answer::Unanswered(_) | Answer::Other => {}
        }
    }

    fn change(&mut self, interval: Duration, now: Instant) {
        self.interval = Some(interval);
        self.changed = now;
        self.streak = 0;
    }
}

/// The target's health, for the delete gate and the circuit breaker.
#[derive(Debug, Default)]
struct Target {
    /// The last create went unanswered.
    failing: bool,
    /// Devices between their delete (or the export before it) and their import.
    in_window: usize,
    /// Devices in a row that failed on the target for a transient reason.
    failed_in_a_row: usize,
    last_error: Option<String>,
}

/// Pacing of every worker of a run; shared by reference.
#[derive(Debug)]
pub struct Pacing {
    lanes: [(Mutex<Pace>, Condvar); 3],
    target: (Mutex<Target>, Condvar),
    breaker_after: usize,
    /// The breaker is open: no new device starts. Outside the lock, so that stop conditions
    /// can read it while a lock is held.
    open: AtomicBool,
}

/// Why the breaker stopped the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tripped {
    pub devices: usize,
    pub last_error: String,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Pacing {
    /// `breaker_after`: devices in a row failing on the target that stop the run (0: never).
    pub fn new(breaker_after: usize) -> Pacing {
        let now = Instant::now();
        let lane = || (Mutex::new(Pace::new(now)), Condvar::new());
        Pacing {
            lanes: [lane(), lane(), lane()],
            target: (Mutex::new(Target::default()), Condvar::new()),
            breaker_after,
            open: AtomicBool::new(false),
        }
    }

    /// Paces `lane` from its first call a little under `per_minute`, the rate the operator
    /// declared for it (`--target-rate`), with the `burst` of a server's bucket that starts full
    /// (`--target-burst`; the default profile of `pkg/ratelimit` holds `max-per-min`, one
    /// minute of calls); refusals still slow it and empty the modelled bucket, and it never
    /// probes faster.
    pub fn declare(&self, lane: Lane, per_minute: u32, burst: u32) {
        let mut pace = lock(&self.lane(lane).0);
        let interval = Pace::under(per_minute);
        pace.fastest = Some(interval);
        pace.burst = interval * burst.saturating_sub(1);
        pace.change(interval, Instant::now());
    }

    /// The server's bucket of a paced lane was empty `ago` (when the run before a `resume`
    /// ended, pacing at the rate) and has refilled since: by the generic cell rate algorithm a
    /// bucket emptied at `e` lets the next call start at `e + interval`, and holds its whole
    /// burst again at `e + burst + interval`.
    pub fn emptied(&self, lane: Lane, ago: Duration) {
        let mut pace = lock(&self.lane(lane).0);
        let Some(interval) = pace.interval else {
            return;
        };
        if let Some(full_in) = (pace.burst + interval).checked_sub(ago) {
            pace.next = pace.next.max(Instant::now() + full_in);
        }
    }

    fn lane(&self, lane: Lane) -> &(Mutex<Pace>, Condvar) {
        &self.lanes[lane.index()]
    }

    /// Waits for the lane's next slot and takes it. An `urgent` caller (a device already
    /// deleted from the source) goes before the others. False when `stop` said so first; an
    /// urgent caller never stops.
    pub fn wait(&self, lane: Lane, urgent: bool, stop: &dyn Fn() -> bool) -> bool {
        let slot = Slot {
            urgent,
            lead: Duration::ZERO,
            lead_of: &[],
            take: true,
        };
        self.wait_for(lane, slot, stop)
    }

    fn wait_for(&self, lane: Lane, slot: Slot, stop: &dyn Fn() -> bool) -> bool {
        let (mutex, ready) = self.lane(lane);
        let mut pace = lock(mutex);
        if slot.urgent {
            pace.urgent += 1;
        }
        let taken = loop {
            // When the call would reach the deployment.
            let at = Instant::now() + slot.lead + self.typical_sum(lane, slot.lead_of);
            if !slot.urgent && stop() {
                break false;
            }
            let behind_urgent = !slot.urgent && pace.urgent > 0;
            match pace.interval {
                None if !behind_urgent => break true,
                Some(interval) if !behind_urgent && at + pace.burst >= pace.next => {
                    if slot.take {
                        pace.next = pace.next.max(at) + interval;
                    }
                    break true;
                }
                _ => {}
            }
            let sleep = pace
                .next
                .saturating_duration_since(at + pace.burst)
                .clamp(Duration::from_millis(1), POLL);
            pace = ready
                .wait_timeout(pace, sleep)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        };
        if slot.urgent {
            pace.urgent -= 1;
            ready.notify_all();
        }
        if taken && pace.first.is_none() {
            pace.first = Some(Instant::now());
        }
        taken
    }

    /// The usual duration of a call of the lane (a moving average; zero before the first).
    pub fn typical(&self, lane: Lane) -> Duration {
        lock(&self.lane(lane).0).typical
    }

    /// The summed usual durations of `lanes`, read while `holding`'s lock is held (locks are
    /// only ever taken in this order: the target-create lane, then a source lane).
    fn typical_sum(&self, holding: Lane, lanes: &[Lane]) -> Duration {
        debug_assert!(!lanes.contains(&holding));
        lanes.iter().map(|l| self.typical(*l)).sum()
    }

    /// Takes the target-create slot for a device about to be deleted: the slot is the moment
    /// its create will start, one delete later. So a create after a delete and a retried one
    /// (which starts at once) reach the target evenly spaced.
    pub fn before_delete(&self, stop: &dyn Fn() -> bool) -> bool {
        let slot = Slot {
            urgent: false,
            lead: Duration::ZERO,
            lead_of: &[Lane::SourceDelete],
            take: true,
        };
        self.wait_for(Lane::TargetCreate, slot, stop)
    }

    /// How long until the lane's next free slot.
    pub fn delay(&self, lane: Lane) -> Duration {
        let pace = lock(&self.lane(lane).0);
        pace.next
            .saturating_duration_since(Instant::now() + pace.burst)
    }

    /// Learns from a call's answer. `started`: when the call started.
    pub fn answered(&self, lane: Lane, started: Instant, answer: &Answer) {
        self.answered_slot(lane, started, started, answer);
    }

    /// Learns from the answer of a call whose slot was taken at `committed` (before a delete,
    /// for the create after it).
    pub fn answered_slot(&self, lane: Lane, committed: Instant, started: Instant, answer: &Answer) {
        let (mutex, ready) = self.lane(lane);
        lock(mutex).answered(committed.min(started), started, answer, Instant::now());
        ready.notify_all();
        if lane == Lane::TargetCreate {
            let (mutex, changed) = &self.target;
            let mut target = lock(mutex);
            match answer {
                Answer::Unanswered(error) => {
                    target.failing = true;
                    target.last_error = Some(error.clone());
                }
                Answer::RateLimited(_) => {}
                Answer::Ok | Answer::Other => {
                    target.failing = false;
                    target.failed_in_a_row = 0;
                }
            }
            changed.notify_all();
        }
    }

    /// The delete gate: waits until this device's create can follow its delete at once, and
    /// takes its target-create slot. The device enters the delete window (leave it with
    /// [`Pacing::left_window`]). False when the run stops first (breaker open, or `stop`).
    pub fn admit(&self, stop: &dyn Fn() -> bool) -> bool {
        {
            let (mutex, changed) = &self.target;
            let mut target = lock(mutex);
            loop {
                if self.breaker_open() || stop() {
                    return false;
                }
                // While the target does not answer, one device at a time tries.
                if !target.failing || target.in_window == 0 {
                    target.in_window += 1;
                    break;
                }
                target = changed
                    .wait_timeout(target, POLL)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
        // Wait until the create slot is near: an export, then a delete, away.
        let slot = Slot {
            urgent: false,
            lead: Duration::ZERO,
            lead_of: &[Lane::SourceRead, Lane::SourceDelete],
            take: false,
        };
        let stopped = || stop() || self.breaker_open();
        if self.wait_for(Lane::TargetCreate, slot, &stopped) {
            return true;
        }
        self.left_window();
        false
    }

    /// The device left the delete window: imported, or its run ended.
    pub fn left_window(&self) {
        let (mutex, changed) = &self.target;
        let mut target = lock(mutex);
        target.in_window = target.in_window.saturating_sub(1);
        changed.notify_all();
    }

    /// A device gave up on the target for a transient reason.
    pub fn failed_on_target(&self, error: &str) {
        let (mutex, changed) = &self.target;
        let mut target = lock(mutex);
        target.failed_in_a_row += 1;
        // The CLI's own words from the last unanswered create, else the device's error.
        if target.last_error.is_none() {
            target.last_error = Some(error.to_string());
        }
        if self.breaker_after > 0 && target.failed_in_a_row >= self.breaker_after {
            self.open.store(true, Ordering::SeqCst);
        }
        changed.notify_all();
    }

    pub fn breaker_open(&self) -> bool {
        self.open.load(Ordering::SeqCst)
    }

    /// Why the run was stopped, if the breaker did.
    pub fn tripped(&self) -> Option<Tripped> {
        let target = lock(&self.target.0);
        self.breaker_open().then(|| Tripped {
            devices: target.failed_in_a_row,
            last_error: target.last_error.clone().unwrap_or_default(),
        })
    }

    /// The current pace of a lane: calls per minute, if paced.
    pub fn per_minute(&self, lane: Lane) -> Option<f64> {
        lock(&self.lane(lane).0)
            .interval
            .map(|i| 60.0 / i.as_secs_f64())
    }

    /// The rate per minute a lane's deployment named in its first `rate_limit_exceeded`
    /// ("rate limit of `N` accesses per minute"), if it refused a call of the lane.
    pub fn named_rate(&self, lane: Lane) -> Option<u32> {
        lock(&self.lane(lane).0).named
    }

    /// `rate_limit_exceeded` answers seen, over all lanes.
    pub fn rate_limited(&self) -> usize {
        Lane::ALL
            .iter()
            .map(|l| lock(&self.lane(*l).0).limited)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn never() -> bool {
        false
    }

    #[test]
    fn a_lane_is_unpaced_until_the_first_rate_limit() {
        let pacing = Pacing::new(3);
        let started = Instant::now();
        for _ in 0..100 {
            assert!(pacing.wait(Lane::TargetCreate, false, &never));
            pacing.answered(Lane::TargetCreate, Instant::now(), &Answer::Ok);
        }
        assert_eq!(pacing.per_minute(Lane::TargetCreate), None);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn the_declared_rate_sets_the_pace_a_little_under_it() {
        let pacing = Pacing::new(3);
        pacing.answered(
            Lane::TargetCreate,
            Instant::now(),
            &Answer::RateLimited(Some(600)),
        );
        let pace = pacing.per_minute(Lane::TargetCreate).unwrap();
        assert!((570.0..600.0).contains(&pace), "{pace}");
        // Other lanes are not touched.
        assert_eq!(pacing.per_minute(Lane::SourceRead), None);
        assert_eq!(pacing.rate_limited(), 1);
    }

    /// A rate the operator declared paces the lane from its first call, before any answer:
    /// the first call goes at once, the second waits a little more than a declared interval.
    #[test]
    fn a_declared_rate_paces_from_the_first_call() {
        let pacing = Pacing::new(3);
        pacing.declare(Lane::TargetCreate, 1, 1);
        let pace = pacing.per_minute(Lane::TargetCreate).unwrap();
        assert!((0.9..1.0).contains(&pace), "{pace}");
        assert!(pacing.wait(Lane::TargetCreate, false, &never));
        // The next slot is more than the declared minute away.
        assert!(pacing.delay(Lane::TargetCreate) > Duration::from_secs(60));
        let asked = AtomicUsize::new(0);
        let give_up = || asked.fetch_add(1, Ordering::SeqCst) >= 2;
        assert!(
            !pacing.wait(Lane::TargetCreate, false, &give_up),
            "the second call waits for its slot"
        );
        // Nothing was learned, and other lanes are not touched.
        assert_eq!(pacing.rate_limited(), 0);
        assert!(pacing.wait(Lane::SourceDelete, false, &never));
        assert!(pacing.wait(Lane::SourceDelete, false, &never));
        assert_eq!(pacing.per_minute(Lane::SourceDelete), None);
    }

    #[test]
    fn a_declared_rate_still_slows_on_a_refusal_and_never_probes_faster() {
        let t0 = Instant::now();
        let mut pace = Pace::new(t0);
        pace.fastest = Some(Pace::under(60));
        pace.change(Pace::under(60), t0);
        let declared = pace.interval.unwrap();
        // A refusal of a call committed under the declared pace slows it by a tenth.
        let later = t0 + Duration::from_millis(10);
        pace.answered(later, later, &Answer::RateLimited(None), later);
        assert_eq!(pace.interval, Some(declared.mul_f64(SLOWER)));
        // Two minutes of successes speed it up, but only back to the declared pace.
        for _ in 0..400 {
            pace.answered(later, later, &Answer::Ok, later);
        }
        assert_eq!(pace.interval, Some(declared));
    }

    /// A declared bucket that starts full lets its burst go at once, then paces; a refusal
    /// (another client emptied it) empties the modelled bucket: the next call one interval on.
    #[test]
    fn a_declared_burst_goes_at_once_and_a_refusal_empties_it() {
        let pacing = Pacing::new(3);
        pacing.declare(Lane::TargetCreate, 60, 3);
        for _ in 0..3 {
            assert!(pacing.wait(Lane::TargetCreate, false, &never));
        }
        // The fourth waits for the pace: a little over a second.
        let delay = pacing.delay(Lane::TargetCreate);
        assert!(
            delay > Duration::from_millis(900) && delay < Duration::from_millis(1200),
            "{delay:?}"
        );
        let pacing = Pacing::new(3);
        pacing.declare(Lane::TargetCreate, 60, 3);
        pacing.answered(
            Lane::TargetCreate,
            Instant::now(),
            &Answer::RateLimited(Some(60)),
        );
        let delay = pacing.delay(Lane::TargetCreate);
        assert!(delay > Duration::from_millis(900), "{delay:?}");
    }

    /// A bucket emptied just now (a resume started at once): the first call one interval on.
    /// Emptied long ago: full again, the burst goes at once. In between: what it regained.
    #[test]
    fn a_bucket_emptied_before_regains_its_calls_at_the_rate() {
        let just_now = Pacing::new(3);
        just_now.declare(Lane::TargetCreate, 60, 3);
        just_now.emptied(Lane::TargetCreate, Duration::ZERO);
        let delay = just_now.delay(Lane::TargetCreate);
        assert!(
            delay > Duration::from_millis(900) && delay < Duration::from_millis(1200),
            "{delay:?}"
        );

        let long_ago = Pacing::new(3);
        long_ago.declare(Lane::TargetCreate, 60, 3);
        long_ago.emptied(Lane::TargetCreate, Duration::from_secs(600));
        for _ in 0..3 {
            assert!(long_ago.wait(Lane::TargetCreate, false, &never));
        }
        assert!(long_ago.delay(Lane::TargetCreate) > Duration::from_millis(900));

        // Emptied 2.2 s ago at one a second (1.05 s paced): two calls regained, not three.
        let between = Pacing::new(3);
        between.declare(Lane::TargetCreate, 60, 3);
        between.emptied(Lane::TargetCreate, Duration::from_millis(2200));
        for _ in 0..2 {
            assert!(between.wait(Lane::TargetCreate, false, &never));
        }
        assert!(between.delay(Lane::TargetCreate) > Duration::from_millis(700));

        // Unpaced lanes have no bucket to model.
        let unpaced = Pacing::new(3);
        unpaced.emptied(Lane::TargetCreate, Duration::ZERO);
        assert_eq!(unpaced.delay(Lane::TargetCreate), Duration::ZERO);
    }

    #[test]
    fn the_first_rate_a_deployment_names_is_kept() {
        let pacing = Pacing::new(3);
        assert_eq!(pacing.named_rate(Lane::TargetCreate), None);
        for named in [None, Some(120), Some(60)] {
            pacing.answered(
                Lane::TargetCreate,
                Instant::now(),
                &Answer::RateLimited(named),
            );
        }
        assert_eq!(pacing.named_rate(Lane::TargetCreate), Some(120));
        assert_eq!(pacing.named_rate(Lane::SourceRead), None);
    }

    #[test]
    fn a_rate_named_slower_than_a_declared_one_paces_at_once() {
        let pacing = Pacing::new(3);
        pacing.declare(Lane::TargetCreate, 600, 600);
        pacing.answered(
            Lane::TargetCreate,
            Instant::now(),
            &Answer::RateLimited(Some(60)),
        );
        let pace = pacing.per_minute(Lane::TargetCreate).unwrap();
        assert!((57.0..60.0).contains(&pace), "{pace}");
    }

    #[test]
    fn the_error_text_names_the_rate() {
        let e = CliError {
            kind: ErrorKind::RateLimited,
            command: String::new(),
            exit_code: Some(255),
            error: crate::ttn_lw_cli::TtsError::parse("error:pkg/ratelimit:rate_limit_exceeded (rate limit of `20` accesses per minute exceeded for resource `grpc:method:x`)").map(Box::new),
            detail: String::new(),
        };
        assert_eq!(Answer::of::<()>(&Err(e)), Answer::RateLimited(Some(20)));
    }

    #[test]
    fn without_a_declared_rate_the_pace_is_half_the_rate_seen() {
        let pacing = Pacing::new(3);
        let start = Instant::now();
        for _ in 0..10 {
            pacing.wait(Lane::SourceRead, false, &never);
            pacing.answered(Lane::SourceRead, start, &Answer::Ok);
        }
        std::thread::sleep(Duration::from_millis(100));
        pacing.answered(Lane::SourceRead, Instant::now(), &Answer::RateLimited(None));
        let pace = pacing.per_minute(Lane::SourceRead).unwrap();
        // 10 successes in ≥ 100 ms: at most 6000 per minute; half of that at most.
        assert!(pace <= 3000.0, "{pace}");
    }

    #[test]
    fn a_rejection_under_the_current_pace_slows_it_one_committed_earlier_does_not() {
        let mut pace = Pace::new(Instant::now());
        let t0 = Instant::now();
        pace.answered(t0, t0, &Answer::RateLimited(Some(60)), t0);
        let first = pace.interval.unwrap();
        // A call whose slot was taken before the change (it started after it, one delete
        // later) is rejected: the pace stays.
        let before = t0 - Duration::from_millis(1);
        let after = t0 + Duration::from_millis(5);
        pace.answered(before, after, &Answer::RateLimited(Some(60)), after);
        assert_eq!(pace.interval, Some(first));
        // One started after it: slower by a tenth.
        let later = t0 + Duration::from_millis(10);
        pace.answered(later, later, &Answer::RateLimited(Some(60)), later);
        assert_eq!(pace.interval, Some(first.mul_f64(SLOWER)));
    }

    #[test]
    fn two_minutes_of_successes_speed_the_pace_up() {
        let t0 = Instant::now();
        let mut pace = Pace::new(t0);
        pace.answered(t0, t0, &Answer::RateLimited(Some(60)), t0);
        let first = pace.interval.unwrap();
        let calls = (PROBE_AFTER.as_secs_f64() / first.as_secs_f64()).ceil() as u32;
        for _ in 0..calls {
            pace.answered(t0, t0, &Answer::Ok, t0);
        }
        assert!(pace.interval.unwrap() < first);
        assert_eq!(pace.streak, 0);
    }

    /// Paced calls keep the interval (timing-free check: the slots handed out are spaced).
    #[test]
    fn paced_slots_are_spaced_by_the_interval() {
        let pacing = Pacing::new(3);
        pacing.answered(
            Lane::TargetCreate,
            Instant::now(),
            &Answer::RateLimited(Some(6000)),
        );
        let interval = Duration::from_secs(60).div_f64(6000.0).mul_f64(SLACK);
        let started = Instant::now();
        for _ in 0..5 {
            assert!(pacing.wait(Lane::TargetCreate, false, &never));
        }
        // The bucket was empty: five slots after the rejection take at least five intervals.
        assert!(started.elapsed() >= interval * 5 - Duration::from_millis(2));
    }

    /// A slot taken ahead (before a delete) is for the moment the call will start: the wait
    /// returns up to one lead early, and the next slot follows the call, not the wait.
    #[test]
    fn a_slot_taken_ahead_is_for_the_moment_the_call_starts() {
        let pacing = Pacing::new(3);
        pacing.answered(
            Lane::TargetCreate,
            Instant::now(),
            &Answer::RateLimited(Some(6)),
        );
        // One create every 10.5 s; the next one is ~10 s away. With a lead of a minute the
        // wait returns at once (a lead of zero would wait 10 s).
        let ahead = Slot {
            urgent: false,
            lead: Duration::from_secs(60),
            lead_of: &[],
            take: true,
        };
        assert!(pacing.wait_for(Lane::TargetCreate, ahead, &never));
        // The slot after it is an interval after the call's start, a minute from now.
        assert!(pacing.delay(Lane::TargetCreate) > Duration::from_secs(65));
    }

    /// A worker that began to wait for a create slot before any delete had answered leads by
    /// the usual delete as soon as one is known, like the workers that came later (else those
    /// would take every slot ahead of it, and the slots would slip by its lateness).
    #[test]
    fn a_waiting_worker_leads_by_the_usual_call_known_while_it_waits() {
        let pacing = Pacing::new(3);
        pacing.declare(Lane::TargetCreate, 6, 1);
        assert!(pacing.wait(Lane::TargetCreate, false, &never));
        // The next slot is ~10 s away; no delete has answered yet.
        let (done, returned) = std::sync::mpsc::channel();
        let looked = AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let waiting = Slot {
                    urgent: false,
                    lead: Duration::ZERO,
                    lead_of: &[Lane::SourceDelete],
                    take: true,
                };
                // Its stop condition is asked at each look: it says when the wait is under way.
                let looking = || {
                    looked.store(true, Ordering::SeqCst);
                    false
                };
                let taken = pacing.wait_for(Lane::TargetCreate, waiting, &looking);
                done.send(taken).unwrap();
            });
            while !looked.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
            // A delete that took a minute answers: the waiter's slot is near now.
            let a_minute_ago = Instant::now() - Duration::from_secs(60);
            pacing.answered(Lane::SourceDelete, a_minute_ago, &Answer::Ok);
            let taken = returned.recv_timeout(Duration::from_secs(5));
            assert_eq!(taken, Ok(true), "the waiter kept the lead it began with");
        });
    }

    #[test]
    fn a_waiting_worker_stops_when_told() {
        let pacing = Pacing::new(3);
        pacing.answered(
            Lane::TargetCreate,
            Instant::now(),
            &Answer::RateLimited(Some(1)),
        );
        let asked = AtomicUsize::new(0);
        let stop = || asked.fetch_add(1, Ordering::SeqCst) >= 2;
        assert!(!pacing.wait(Lane::TargetCreate, false, &stop));
        // An urgent worker is never stopped (its device is already deleted).
        let pacing = Pacing::new(3);
        assert!(pacing.wait(Lane::TargetCreate, true, &|| true));
    }

    #[test]
    fn the_breaker_opens_after_k_devices_in_a_row_and_a_success_resets_the_count() {
        let pacing = Pacing::new(3);
        pacing.failed_on_target("unavailable");
        pacing.failed_on_target("unavailable");
        pacing.answered(Lane::TargetCreate, Instant::now(), &Answer::Ok);
        pacing.failed_on_target("unavailable");
        pacing.failed_on_target("unavailable");
        assert!(!pacing.breaker_open());
        pacing.failed_on_target("connection refused");
        assert_eq!(
            pacing.tripped(),
            Some(Tripped {
                devices: 3,
                last_error: "unavailable".into()
            })
        );
        assert!(!pacing.admit(&never), "no device is admitted once open");
        assert!(!Pacing::new(0).breaker_open());
    }

    #[test]
    fn while_the_target_does_not_answer_one_device_at_a_time_is_admitted() {
        let pacing = Pacing::new(3);
        assert!(pacing.admit(&never));
        assert!(pacing.admit(&never), "a healthy target admits more");
        pacing.answered(
            Lane::TargetCreate,
            Instant::now(),
            &Answer::Unanswered("unavailable".into()),
        );
        let asked = AtomicUsize::new(0);
        let give_up = || asked.fetch_add(1, Ordering::SeqCst) >= 3;
        assert!(!pacing.admit(&give_up), "two devices are in the window");
        pacing.left_window();
        let asked = AtomicUsize::new(0);
        let give_up = || asked.fetch_add(1, Ordering::SeqCst) >= 3;
        assert!(!pacing.admit(&give_up), "one device is still in the window");
        pacing.left_window();
        assert!(
            pacing.admit(&never),
            "the window is empty: one device tries"
        );
        // A create that answers closes the failing state: more devices are admitted again.
        pacing.answered(Lane::TargetCreate, Instant::now(), &Answer::Ok);
        assert!(pacing.admit(&never));
    }
}
