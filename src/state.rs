//! Per-profile state kept between ticks: the log offsets, the last step and
//! when it advanced (by the box's clock), the last verdict. One JSON file per
//! profile, versioned, written atomically (temp file + rename), guarded by a
//! lock file so two ticks of one profile never interleave. A corrupt file is
//! set aside and replaced, never a crash.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::verdict::Verdict;

pub const STATE_VERSION: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogCursor {
    pub offset: u64,
    pub inode: u64,
    /// cksum of the file's first `fp_len` bytes: a copytruncate that grew past
    /// the offset between two ticks changes it (inode and size do not tell).
    pub fp: String,
    pub fp_len: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Progress {
    pub step: Option<u64>,
    pub line: Option<String>,
    /// Box clock (epoch s) when the step last changed.
    pub advanced_at: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LastTick {
    pub ts: String,
    pub verdict: Option<Verdict>,
    pub step: Option<u64>,
    /// Box clock of that tick.
    pub box_now: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    pub version: u32,
    pub profile: String,
    pub log: LogCursor,
    pub master: LogCursor,
    pub progress: Progress,
    /// `done_pattern` was seen in the per-run log (it is scanned incrementally).
    pub done_seen: bool,
    /// `done_pattern` was seen in the master log (also scanned incrementally).
    pub master_done_seen: bool,
    /// Box clock of the tick that first saw the done text: a job process
    /// that started after it is a new run, and the text is not about it.
    pub done_seen_at: Option<i64>,
    /// The per-run log (inode, fingerprint) when the done marker last counted:
    /// a marker beside a different log is an earlier run's.
    pub done_log: Option<LogCursor>,
    /// Box clock: when the run last seen alive started (its process start,
    /// else the first tick that saw it alive). A done marker older than this
    /// is left over from an earlier run.
    pub run_started: Option<i64>,
    /// The previous tick saw every GPU busy at near-idle power.
    pub gpu_spin: bool,
    /// GPUs seen busy while the job was alive (a GPU the job never used is
    /// not a dead rank when it idles), and those idle among busy ones at the
    /// previous tick (a rank must idle two ticks in a row to be named).
    pub gpu_busy_seen: Vec<u32>,
    pub gpu_idle_prev: Vec<u32>,
    /// The most GPUs this box has answered for: fewer later is a GPU that
    /// fell off the bus.
    pub gpu_count_seen: Option<u32>,
    /// The highest step ever seen: only a step beyond it is progress for the
    /// restart budget (a crash loop that restarts from an earlier checkpoint
    /// shows Epoch 2 after Epoch 4).
    pub best_step: Option<u64>,
    /// Box clock of the first tick that saw this run (stall clock before any step).
    pub first_seen: Option<i64>,
    pub oom_kills: Option<u64>,
    pub last: Option<LastTick>,
    /// Consecutive UNREACHABLE/PROBE_ERROR ticks.
    pub failures_in_a_row: u32,
    /// Box clock of each auto-resume, newest last (cleared on verified progress).
    pub restarts: Vec<i64>,
    pub alert: AlertState,
    /// The last tick as `status` shows it (no connection needed to read it).
    pub summary: Option<Summary>,
    /// Our clock (epoch s) of the last few ticks, oldest first: the cadence
    /// a watcher keeps, when it did not say (`status` flags `patrol stale`).
    pub ticks_at: Vec<i64>,
}

/// What `status` shows of a profile's last tick.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub ts: String,
    /// Our clock (epoch s) of that tick.
    pub at: i64,
    pub verdict: Verdict,
    pub severity: crate::verdict::Severity,
    pub exit_code: i32,
    pub step: Option<u64>,
    /// Seconds since the step last advanced, at that tick.
    pub step_age_s: Option<i64>,
    /// "8x 97%/88%" (util/memory), "no gpu", "?".
    pub gpu: String,
    pub disk_pct: Option<f64>,
    pub remediation: String,
    pub line: String,
    /// How often the watcher ticks, as it said (patrol's `--every`, `tick
    /// --every` from cron); a tick that did not say keeps the last said.
    pub every_s: Option<u64>,
    /// How long the tick took (a watcher sleeps after its tick: the gap
    /// between two ticks is the interval plus this).
    #[serde(default)]
    pub took_ms: u64,
    /// The longest a tick of this profile may take (connect, probe, alert
    /// delivery): a watcher mid-tick is not a watcher that stopped.
    #[serde(default)]
    pub bound_s: u64,
    /// The tick's warnings (why an ok verdict is a warning).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// The box's price and its waste at that tick (null without `cost_per_hour`).
    #[serde(default)]
    pub cost: Option<crate::history::Cost>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AlertState {
    /// Our clock (epoch s) of the last alert sent.
    pub last_at: Option<i64>,
    pub last_verdict: Option<Verdict>,
    /// The severity last delivered (news more urgent than it beats the cooldown).
    pub last_severity: Option<crate::verdict::Severity>,
    /// The action text of the last alert (a spent restart budget alerts once).
    pub last_action: Option<String>,
    /// The verdict whose alert could not be delivered: retried later.
    pub undelivered: Option<Verdict>,
    /// Failed deliveries in a row, and our clock (epoch s) before which no
    /// attempt is made: a failing command backs off instead of running
    /// every tick.
    #[serde(default)]
    pub failures: u32,
    #[serde(default)]
    pub retry_at: Option<i64>,
    /// The last delivered alert told of a failed GPU (`gpu_hardware`): the
    /// box is bad whatever the verdict says, and that is news once.
    #[serde(default)]
    pub hardware_told: bool,
    /// The channels whose delivery of `undelivered` failed: the retry goes
    /// to them only (the others have it already).
    #[serde(default)]
    pub failed: Vec<String>,
    /// The news those channels missed (verdict, action, failed GPU): a retry
    /// goes to them alone only while the news is the same.
    #[serde(default)]
    pub failed_news: Option<String>,
}

impl State {
    pub fn new(profile: &str) -> Self {
        State {
            version: STATE_VERSION,
            profile: profile.to_string(),
            ..Default::default()
        }
    }
}

/// Where state lives: `--state-dir`, else `$XDG_STATE_HOME/gpupatrol`, else
/// `~/.local/state/gpupatrol`.
pub fn default_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("gpupatrol");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/state/gpupatrol")
}

#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

/// Who holds a waiter lock.
#[derive(Debug, Clone)]
pub struct Holder {
    pub pid: u32,
    pub what: String,
    /// The host the holder runs on (a state dir on NFS is shared by several).
    pub host: String,
}

/// This machine's name, as the lock files record it.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// How often a waiting tick tries the profile's lock again.
const LOCK_POLL: Duration = Duration::from_millis(50);

/// The profile's lock file, held by another gpupatrol.
struct Busy(PathBuf);

impl Busy {
    fn waited(self, wait: Duration) -> Error {
        Error::Lock {
            path: self.0,
            message: format!("another gpupatrol holds it (waited {}s)", wait.as_secs()),
        }
    }
}

/// Held while a tick of one profile runs; released on drop.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

impl Store {
    pub fn open(dir: PathBuf) -> Result<Self> {
        // private: state files hold host names, log lines, alert text
        crate::fsutil::private_dir(&dir).map_err(|e| Error::StateDir {
            dir: dir.clone(),
            message: e.to_string(),
        })?;
        Ok(Store { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    /// Take the profile's lock, waiting at most `wait`.
    pub fn lock(&self, name: &str, wait: Duration) -> Result<Lock> {
        let deadline = Instant::now() + wait;
        loop {
            match self.try_lock(name)? {
                Ok(l) => return Ok(l),
                Err(_) if Instant::now() < deadline => std::thread::sleep(LOCK_POLL),
                Err(busy) => return Err(busy.waited(wait)),
            }
        }
    }

    /// The same, for async callers: no thread sleeps while another holds it.
    pub async fn lock_async(&self, name: &str, wait: Duration) -> Result<Lock> {
        let deadline = Instant::now() + wait;
        loop {
            match self.try_lock(name)? {
                Ok(l) => return Ok(l),
                Err(_) if Instant::now() < deadline => tokio::time::sleep(LOCK_POLL).await,
                Err(busy) => return Err(busy.waited(wait)),
            }
        }
    }

    /// One try, without waiting: `Ok(None)` while another gpupatrol holds it.
    pub fn lock_now(&self, name: &str) -> Result<Option<Lock>> {
        Ok(self.try_lock(name)?.ok())
    }

    /// One try: the lock, or `Busy` while another gpupatrol holds it.
    fn try_lock(&self, name: &str) -> Result<std::result::Result<Lock, Busy>> {
        let path = self.dir.join(format!("{name}.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::Lock {
                path: path.clone(),
                message: e.to_string(),
            })?;
        match file.try_lock() {
            Ok(()) => Ok(Ok(Lock { _file: file })),
            Err(fs::TryLockError::WouldBlock) => Ok(Err(Busy(path))),
            Err(fs::TryLockError::Error(e)) => Err(Error::Lock {
                path,
                message: e.to_string(),
            }),
        }
    }

    /// Take the one-waiter-per-profile lock, recording our pid and target.
    /// Fails with the current holder when another waiter has it.
    pub fn waiter_lock(&self, name: &str, what: &str) -> std::result::Result<Lock, Holder> {
        let path = self.dir.join(format!("{name}.wait.lock"));
        let file = match OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) => {
                return Err(Holder {
                    pid: 0,
                    what: format!("(cannot open {}: {e})", path.display()),
                    host: String::new(),
                });
            }
        };
        match file.try_lock() {
            Ok(()) => {
                let _ = file.set_len(0);
                let mut w = &file;
                let _ = writeln!(w, "{}\n{}\n{}", std::process::id(), what.replace('\n', " "), hostname());
                Ok(Lock { _file: file })
            }
            Err(_) => {
                let text = fs::read_to_string(&path).unwrap_or_default();
                let mut lines = text.lines();
                Err(Holder {
                    pid: lines.next().and_then(|l| l.trim().parse().ok()).unwrap_or(0),
                    what: lines.next().unwrap_or("?").to_string(),
                    host: lines.next().unwrap_or("").trim().to_string(),
                })
            }
        }
    }

    /// Load a profile's state. A missing file is a fresh state; an unreadable
    /// or corrupt one is moved aside to `NAME.json.corrupt` and replaced by a
    /// fresh state, with a warning for the report.
    pub fn load(&self, name: &str) -> (State, Option<String>) {
        let path = self.path(name);
        let fresh = |why: String| (State::new(name), Some(format!("state file {} {why}", path.display())));
        match read_saved(&path) {
            Saved::Missing => (State::new(name), None),
            Saved::Found(s) => {
                let mut s = *s;
                s.version = STATE_VERSION;
                s.profile = name.to_string();
                (s, None)
            }
            Saved::Unreadable(e) => fresh(format!("unreadable ({e}); starting fresh")),
            Saved::Newer(v) => {
                // kept for the newer gpupatrol it belongs to, as a corrupt one is
                let aside = path.with_extension(format!("json.v{v}"));
                let _ = fs::rename(&path, &aside);
                fresh(format!(
                    "is version {v} (newer than this gpupatrol); kept as {} and started fresh",
                    aside.display()
                ))
            }
            Saved::Corrupt(e) => {
                let aside = path.with_extension("json.corrupt");
                let _ = fs::rename(&path, &aside);
                fresh(format!(
                    "was corrupt ({e}); kept as {} and started fresh",
                    aside.display()
                ))
            }
        }
    }

    /// Read a profile's saved state without touching anything (`status`):
    /// `Ok(None)` when there is none; a corrupt, unreadable or newer file is
    /// an error, left as it is.
    pub fn peek(dir: &Path, name: &str) -> std::result::Result<Option<State>, String> {
        let path = dir.join(format!("{name}.json"));
        match read_saved(&path) {
            Saved::Missing => Ok(None),
            Saved::Found(s) => Ok(Some(*s)),
            Saved::Unreadable(e) => Err(format!("{}: {e}", path.display())),
            Saved::Newer(v) => Err(format!("{}: version {v}, newer than this gpupatrol", path.display())),
            Saved::Corrupt(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// The profile names with a saved state in `dir`, sorted.
    pub fn saved(dir: &Path) -> std::io::Result<Vec<String>> {
        let mut out = Vec::new();
        for e in fs::read_dir(dir)? {
            let name = e?.file_name().to_string_lossy().into_owned();
            if let Some(n) = name.strip_suffix(".json")
                && !n.is_empty()
                && !n.starts_with('.')
            {
                out.push(n.to_string());
            }
        }
        out.sort();
        Ok(out)
    }

    /// Write atomically: a crash or a signal leaves either the old or the new
    /// file; the temp file has a random name and is created exclusively, 0600.
    pub fn save(&self, state: &State) -> Result<()> {
        let path = self.path(&state.profile);
        let mut data = serde_json::to_vec_pretty(state).map_err(|e| Error::Other(format!("encode state: {e}")))?;
        data.push(b'\n');
        crate::fsutil::write_atomic(&path, &data).map_err(|source| Error::Write { path, source })
    }
}

/// A state file as it was found, judged but untouched.
enum Saved {
    Missing,
    Found(Box<State>),
    Unreadable(std::io::Error),
    Newer(u32),
    Corrupt(serde_json::Error),
}

fn read_saved(path: &Path) -> Saved {
    match fs::read(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Saved::Missing,
        Err(e) => Saved::Unreadable(e),
        Ok(b) => match serde_json::from_slice::<State>(&b) {
            Ok(s) if s.version <= STATE_VERSION => Saved::Found(Box::new(s)),
            Ok(s) => Saved::Newer(s.version),
            Err(e) => Saved::Corrupt(e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("gp-state-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_newer_state_is_kept_aside_not_overwritten() {
        let store = Store::open(tmpdir("newer")).unwrap();
        let path = store.path("box");
        fs::write(&path, r#"{"version": 9, "future_field": 1}"#).unwrap();
        assert!(Store::peek(store.dir(), "box").unwrap_err().contains("version 9"));
        assert!(path.exists(), "peek touches nothing");
        let (s, warn) = store.load("box");
        assert_eq!(s.version, STATE_VERSION);
        assert!(warn.unwrap().contains("kept as"));
        let kept = fs::read_to_string(path.with_extension("json.v9")).unwrap();
        assert!(kept.contains("future_field"), "the newer gpupatrol's state survives");
    }

    #[test]
    fn round_trip_and_corruption() {
        let store = Store::open(tmpdir("rt")).unwrap();
        let (fresh, warn) = store.load("box");
        assert!(warn.is_none());
        assert_eq!(fresh.version, STATE_VERSION);
        let mut s = fresh.clone();
        s.log.offset = 42;
        s.progress.step = Some(7);
        store.save(&s).unwrap();
        assert_eq!(store.load("box").0, s);

        fs::write(store.path("box"), b"{\"version\": 1, \"log\": {\"offs").unwrap();
        let (s2, warn) = store.load("box");
        assert!(warn.unwrap().contains("corrupt"));
        assert_eq!(s2.log.offset, 0);
        assert!(store.path("box").with_extension("json.corrupt").exists());
    }

    #[test]
    fn old_state_without_new_fields_loads() {
        let store = Store::open(tmpdir("old")).unwrap();
        fs::write(store.path("b"), br#"{"version":1,"log":{"offset":10,"inode":5}}"#).unwrap();
        let (s, warn) = store.load("b");
        assert!(warn.is_none());
        assert_eq!(s.log.offset, 10);
        assert_eq!(s.profile, "b");
    }

    #[test]
    fn lock_is_exclusive_and_bounded() {
        let store = Store::open(tmpdir("lock")).unwrap();
        let held = store.lock("p", Duration::from_secs(1)).unwrap();
        let t = Instant::now();
        let e = store.lock("p", Duration::from_millis(300)).unwrap_err();
        assert!(e.to_string().contains("another gpupatrol"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(2));
        drop(held);
        store.lock("p", Duration::from_millis(300)).unwrap();
    }
}
