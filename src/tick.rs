//! One patrol tick for one profile:
//! lock → probe (ONE connection, ONE probe) → decide → act (opt-in guarded
//! resume on the same connection; the alert) → save → report. Every command
//! that watches (tick, patrol, wait, demo) is built from this.

use std::time::{Duration, Instant};

use crate::decide::{self, Decision, Observation};
use crate::probe::{self, Facts, Request};
use crate::profile::Profile;
use crate::report::{self, Report};
use crate::resume::{self, Plan};
use crate::state::{Lock, State, Store};
use crate::transport::{Conn, Failure, Limits, PROBE_COMMAND, Transport};

/// The outcome of one tick.
#[derive(Debug, Clone)]
pub struct Tick {
    pub report: Report,
    /// This tick auto-resumed the run: it is not terminal, whatever the verdict.
    pub resumed: bool,
    pub decision: Decision,
    pub facts: Option<Facts>,
}

/// What a caller wants of the tick.
#[derive(Debug, Clone)]
pub struct Options {
    /// What the probe asks of the box.
    pub request: Request,
    /// Alerts and auto-resume apply (tick, patrol) or not (wait, demo, triage).
    pub act: bool,
    /// How often the caller ticks (patrol's `--every`, `tick --every` from
    /// cron, wait's `--interval`): `status` flags a profile whose last tick
    /// is older than twice that.
    pub every: Option<Duration>,
}

impl Options {
    /// The `tick` and `patrol` commands: the tick's probe, and act.
    pub fn tick() -> Options {
        Options {
            request: Request::tick(),
            act: true,
            every: None,
        }
    }

    /// Look only: no alert, no resume.
    pub fn observe(request: Request) -> Options {
        Options {
            request,
            act: false,
            every: None,
        }
    }

    /// The same, ticking every `d`.
    pub fn every(self, d: Option<Duration>) -> Options {
        Options { every: d, ..self }
    }
}

/// Current time as the report prints it: RFC 3339, UTC, whole seconds.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// An epoch second (a box clock) as the report prints time; None past chrono's range.
pub fn rfc3339(at: i64) -> Option<String> {
    chrono::DateTime::from_timestamp(at, 0).map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// One tick with alerts and auto-resume (the `tick` and `patrol` commands).
pub async fn run(profile: &Profile, store: &Store) -> Tick {
    run_with(profile, store, &Options::tick()).await
}

/// The same, holding one of a fleet's connection `slots` only while the
/// connection is open: not while it waits for the profile's lock, not while
/// an alert is delivered. The box's connect deadline starts with its own
/// connection, not while it waits its turn (200 handshakes started at once
/// time each other out).
pub async fn run_paced(
    profile: &Profile,
    store: &Store,
    slots: &tokio::sync::Semaphore,
    every: Option<Duration>,
) -> Tick {
    run_inner(profile, store, &Options::tick().every(every), Some(slots)).await
}

/// What the box told us this tick, and the connection (still open) for a resume.
struct Probed {
    obs: Observation,
    conn: Option<Conn>,
    connections: u32,
    transport: &'static str,
}

/// Run one tick. Never fails: every problem becomes a verdict.
pub async fn run_with(profile: &Profile, store: &Store, opts: &Options) -> Tick {
    run_inner(profile, store, opts, None).await
}

async fn run_inner(profile: &Profile, store: &Store, opts: &Options, slots: Option<&tokio::sync::Semaphore>) -> Tick {
    let started = Instant::now();
    let (lock, slot, queued) = lock_and_slot(profile, store, slots).await;
    // the tick's time is its own, not its wait for a fleet slot
    let started = started + queued;
    let (prev, state_warning) = store.load(&profile.name);
    let probed = probe_box(profile, &prev, lock.as_ref().err(), &opts.request).await;
    let ts = now_rfc3339();
    let mut decision = decide::decide(profile, &prev, &probed.obs, &ts);

    // act: the opt-in auto-resume, on the same connection, after this
    // tick's probe verified the run is not alive and not done
    let mut action = None;
    let mut resumed = false;
    if let (true, Some(c), Observation::Facts(f)) = (opts.act, &probed.conn, &probed.obs) {
        match resume::plan(profile, &decision.next, &decision, f.now) {
            Plan::None => {}
            Plan::Refuse(why) => action = Some(why),
            Plan::Resume { n, max } => {
                let out = resume::run(c, profile, n, max).await;
                out.apply(&mut decision.next, f.now);
                resumed = out.resumed;
                action = Some(out.action);
            }
        }
    }
    if let Some(c) = probed.conn {
        c.close().await;
    }
    drop(slot);
    let facts = match probed.obs {
        Observation::Facts(f) => Some(*f),
        _ => None,
    };
    let mut extra: Vec<String> = state_warning.into_iter().collect();
    let previous = prev.last.as_ref().and_then(|l| l.verdict);

    // history: this tick joins it (a tick that reached the box, under the
    // lock); rate, ETA, slowdowns and money come from it
    let mut pace = None;
    if let (Ok(_), Some(f)) = (&lock, &facts) {
        let (mut h, warn) = crate::history::load(store.dir(), &profile.name);
        extra.extend(warn);
        let draft = report::build(report::Inputs {
            ts: &ts,
            profile: &profile.name,
            previous,
            decision: &decision,
            facts: Some(f),
            transport: probed.transport,
            connections: probed.connections,
            elapsed_ms: 0,
            action: None,
            extra_warnings: &[],
            pace: None,
        });
        let total = match (&profile.job.progress, &decision.progress.line) {
            (Some(re), Some(l)) => crate::history::total_of(re, l),
            _ => None,
        };
        let entry = crate::history::entry_of(&draft, f, total, decision.next.run_started);
        // a tick the history does not keep (the box's clock a little
        // behind) is still the one the pace is read for
        let view: Vec<crate::history::Entry> = if crate::history::push(&mut h, entry.clone(), profile.history) {
            h.entries.clone()
        } else {
            {
                let at = entry.at;
                h.entries.iter().filter(|x| x.at < at).cloned().chain([entry]).collect()
            }
        };
        // when the run ended, by the box: the later of the marker and the
        // log (a marker left by an earlier run is older than this run's log)
        let log_mtime = f.log.as_ref().map(|l| l.mtime).filter(|m| *m > 0);
        let evidence = match decision.verdict {
            crate::verdict::Verdict::Done => f.markers.done_marker_mtime.max(log_mtime),
            _ => log_mtime,
        };
        let now = crate::history::Now {
            end_evidence: evidence,
            alive: f.alive.state == crate::probe::facts::Liveness::Yes,
            // this tick resumed it, or a resume waits its turn
            resuming: action
                .as_deref()
                .is_some_and(|a| !a.starts_with("restart budget spent")),
            after_outage: matches!(
                previous,
                Some(crate::verdict::Verdict::Unreachable | crate::verdict::Verdict::ProbeError)
            ),
        };
        let pc = crate::history::pace(profile, &view, now);
        extra.extend(pc.warnings.iter().cloned());
        pace = Some(pc);
        // saved before the state, so the summary `status` reads says so if it fails
        if opts.act
            && let Err(e) = crate::history::save(store.dir(), &h)
        {
            extra.push(format!("history not saved: {e}"));
        }
    } else if let Some(per_hour) = profile.cost_per_hour {
        // a box that did not answer may still bill: its price stays in
        // the fleet's burn, with the waste its last tick counted
        let wasted = prev
            .summary
            .as_ref()
            .and_then(|s| s.cost.as_ref())
            .map_or(0.0, |c| c.wasted);
        pace = Some(crate::history::Pace {
            cost: Some(crate::history::Cost { per_hour, wasted }),
            ..Default::default()
        });
    }
    let build = |decision: &Decision, extra: &[String], elapsed_ms: u64| {
        report::build(report::Inputs {
            ts: &ts,
            profile: &profile.name,
            previous,
            decision,
            facts: facts.as_ref(),
            transport: probed.transport,
            connections: probed.connections,
            elapsed_ms,
            action: action.as_deref(),
            extra_warnings: extra,
            pace: pace.as_ref(),
        })
    };

    // act: the alert and the heartbeat, before saving and under the lock,
    // so the state records whether the delivery worked (a failed one is
    // retried at a later tick). Both at once, each bounded. A tick that
    // could not take the lock did not run: it pings nothing.
    if let (true, Ok(_), Some(cfg)) = (opts.act, &lock, profile.alert.as_ref()) {
        let now_ours = chrono::Utc::now().timestamp();
        let draft = build(&decision, &extra, started.elapsed().as_millis() as u64);
        let st = &decision.next.alert;
        let alert = async {
            if cfg.notifies() && crate::alert::due(cfg, st, &draft, now_ours) {
                let to = crate::alert::channels(cfg, st, &draft);
                Some(crate::alert::send(cfg, &draft, &draft.line, &to).await)
            } else {
                None
            }
        };
        let ping = async {
            match &cfg.heartbeat {
                Some(h) => crate::notify::heartbeat(h, &draft, cfg.http_timeout).await.err(),
                None => None,
            }
        };
        let (sent, ping) = tokio::join!(alert, ping);
        if let Some(out) = sent {
            crate::alert::record_failed(
                &mut decision.next.alert,
                cfg,
                &draft,
                now_ours,
                out.problem.as_deref(),
                &out.failed,
            );
            extra.extend(out.problem);
        }
        extra.extend(ping.map(|e| format!("alert: delivery failed: {e}")));
    }

    // the report, once everything it tells has happened
    let elapsed = || started.elapsed().as_millis() as u64;
    let mut report = build(&decision, &extra, elapsed());

    // what `status` reads later, without a connection (the watchers' ticks:
    // a waiter's or a triage's look asks the box less)
    if opts.act && lock.is_ok() {
        let now_ours = chrono::Utc::now().timestamp();
        // a tick that does not say how often it runs (by hand) keeps what the watcher said
        let every = opts
            .every
            .or_else(|| prev.summary.as_ref().and_then(|s| s.every_s).map(Duration::from_secs));
        decision.next.summary = Some(crate::fleet::summarize(&report, profile, every, now_ours));
        crate::fleet::note_tick(&mut decision.next, now_ours);
    }

    // save; a state that could not be saved is said in the report
    if lock.is_ok()
        && let Err(e) = store.save(&decision.next)
    {
        extra.push(format!("state not saved: {}", e.render()));
        report = build(&decision, &extra, elapsed());
    }
    drop(lock);
    Tick {
        report,
        resumed,
        decision,
        facts,
    }
}

/// Two ticks of one profile wait for each other (bounded) rather than
/// interleave their offsets or resume one death twice.
async fn take_lock(profile: &Profile, store: &Store) -> crate::error::Result<Lock> {
    let wait = profile.connect_timeout * 2 + profile.probe_timeout + Duration::from_secs(100);
    store.lock_async(&profile.name, wait).await
}

/// The profile's lock and, in a fleet, a connection slot, and how long the
/// slots kept us waiting. A slot is taken first and the lock tried at once;
/// when another gpupatrol holds the lock the slot goes back while we wait for
/// it (a queued tick holds no lock, a waiting one no slot), then a slot again.
/// Without the lock no slot is needed: nothing connects.
async fn lock_and_slot<'a>(
    profile: &Profile,
    store: &Store,
    slots: Option<&'a tokio::sync::Semaphore>,
) -> (
    crate::error::Result<Lock>,
    Option<tokio::sync::SemaphorePermit<'a>>,
    Duration,
) {
    let Some(s) = slots else {
        return (take_lock(profile, store).await, None, Duration::ZERO);
    };
    let acquire = || async {
        let t = Instant::now();
        let p = s.acquire().await.expect("the semaphore is never closed");
        (p, t.elapsed())
    };
    let (slot, mut queued) = acquire().await;
    match store.lock_now(&profile.name) {
        Ok(Some(l)) => (Ok(l), Some(slot), queued),
        Err(e) => (Err(e), None, queued),
        Ok(None) => {
            drop(slot);
            match take_lock(profile, store).await {
                Ok(l) => {
                    let (slot, q) = acquire().await;
                    queued += q;
                    (Ok(l), Some(slot), queued)
                }
                Err(e) => (Err(e), None, queued),
            }
        }
    }
}

/// ONE connection, ONE probe. The connection stays open for a resume.
async fn probe_box(profile: &Profile, prev: &State, lock_error: Option<&crate::error::Error>, req: &Request) -> Probed {
    let transport = Transport::for_profile(profile);
    let kind = match &transport {
        Ok(t) => t.kind(),
        Err(_) => "ssh",
    };
    let mut p = Probed {
        obs: Observation::ProbeError(String::new()),
        conn: None,
        connections: 0,
        transport: kind,
    };
    if let Some(e) = lock_error {
        p.obs = Observation::ProbeError(format!("cannot take the profile lock: {e}"));
        return p;
    }
    let t = match transport {
        Ok(t) => t,
        Err(f) => {
            p.obs = failure(f);
            return p;
        }
    };
    let c = match t.connect().await {
        Ok(c) => c,
        Err(f) => {
            // the server answered and refused us: one connection was made
            if matches!(f, Failure::Auth(_)) {
                p.connections = 1;
            }
            p.obs = failure(f);
            return p;
        }
    };
    p.connections = c.connections();
    let probe = probe::script::render_for(profile, prev, req);
    let limits = Limits {
        deadline: profile.probe_timeout,
        max_stdout: probe::script::MAX_PROBE_BYTES,
    };
    p.obs = match c.exec(PROBE_COMMAND, probe.script.as_bytes(), limits).await {
        Err(f) => failure(f),
        Ok(out) => {
            trace(profile, &probe.script, &out.stdout);
            match probe::observe(&out.stdout, &out.stderr, &probe, profile) {
                Ok(f) => Observation::Facts(Box::new(f)),
                Err(why) => Observation::ProbeError(why),
            }
        }
    };
    p.conn = Some(c);
    p
}

fn failure(f: Failure) -> Observation {
    Observation::Transport {
        verdict: f.verdict(),
        message: f.message().to_string(),
    }
}

/// The worst exit code of several reports (monitoring-plugin convention).
pub fn worst_exit(reports: &[&Report]) -> i32 {
    reports
        .iter()
        .map(|r| r.exit_code)
        .max()
        .unwrap_or(crate::exit_codes::UNKNOWN)
}

/// With `GPUPATROL_TRACE_DIR` set, keep the last probe script and its raw
/// output per profile there (for bug reports).
fn trace(profile: &Profile, script: &str, stdout: &[u8]) {
    if let Some(dir) = std::env::var_os("GPUPATROL_TRACE_DIR") {
        let dir = std::path::PathBuf::from(dir);
        // never into a folder that is not ours
        if crate::fsutil::private_dir(&dir).is_err() {
            return;
        }
        let _ = crate::fsutil::write_atomic(&dir.join(format!("{}.probe.sh", profile.name)), script.as_bytes());
        let _ = crate::fsutil::write_atomic(&dir.join(format!("{}.out", profile.name)), stdout);
    }
}
